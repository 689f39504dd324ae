//! The DHT's messages on the wire. Every message is
//!
//! | bytes | field |
//! |---|---|
//! | 0 | version ([`VERSION`]) |
//! | 1 | kind (requests below `0x80`, answers from `0x80`) |
//! | 2..10 | request id, big-endian (an answer carries its request's) |
//! | 10.. | body, by kind |
//!
//! Bodies: a key is 16 bytes; a contact list is a count byte then that many 64-byte
//! public keys (ids are computed from them, never read). `FindNode`/`GetProviders`/
//! `AddProvider`: a key. `Nodes`: a contact list. `Providers`: providers, then closer
//! nodes, two contact lists. `Stored`: one byte, 1 if kept. `Ping`, `Pong`, `Refused`:
//! nothing. Nothing may follow the body.

use super::key::{Contact, Key, KEY_LEN, PUBLIC_LEN};
use crate::proto::wire::{self, Truncated};

/// The version this node speaks.
pub const VERSION: u8 = 1;
/// Contacts in one list, at most (k).
pub const MAX_CONTACTS: usize = 20;
const HEADER: usize = 10;

/// What a message asks or answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Are you there?
    Ping,
    /// The nodes you know nearest to this key.
    FindNode(Key),
    /// Who provides this key (and, if you know none, nearer nodes).
    GetProviders(Key),
    /// The sender provides this key: keep it as a provider.
    AddProvider(Key),
    /// Yes.
    Pong,
    /// The nearest nodes known.
    Nodes(Vec<Contact>),
    /// Providers known, and nearer nodes.
    Providers {
        /// Providers of the key.
        providers: Vec<Contact>,
        /// Nodes nearer to the key.
        closer: Vec<Contact>,
    },
    /// Whether a provider record was kept.
    Stored(bool),
    /// Not now (rate limited): ask someone else.
    Refused,
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Ping => 0x01,
            Body::FindNode(_) => 0x02,
            Body::GetProviders(_) => 0x03,
            Body::AddProvider(_) => 0x04,
            Body::Pong => 0x81,
            Body::Nodes(_) => 0x82,
            Body::Providers { .. } => 0x83,
            Body::Stored(_) => 0x84,
            Body::Refused => 0x8f,
        }
    }

    /// Whether this is a request (it gets an answer with the same id).
    pub fn is_request(&self) -> bool {
        self.kind() < 0x80
    }
}

/// One DHT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The request id (an answer carries its request's).
    pub id: u64,
    /// What it says.
    pub body: Body,
}

/// Why bytes are not a DHT message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its fields say.
    #[error("truncated")]
    Truncated,
    /// A version this node does not speak.
    #[error("version {0} (this node speaks {VERSION})")]
    Version(u8),
    /// An unknown kind byte.
    #[error("unknown kind {0:#04x}")]
    Kind(u8),
    /// A contact list longer than [`MAX_CONTACTS`].
    #[error("{0} contacts (at most {MAX_CONTACTS})")]
    TooMany(usize),
    /// Bytes after the body.
    #[error("{0} bytes after the body")]
    Trailing(usize),
    /// A flag byte other than 0 or 1.
    #[error("bad flag {0}")]
    Flag(u8),
}

fn put_contacts(out: &mut Vec<u8>, contacts: &[Contact]) {
    let n = contacts.len().min(MAX_CONTACTS);
    out.push(n as u8);
    for c in &contacts[..n] {
        out.extend_from_slice(&c.public);
    }
}

/// A reader over a message's body.
struct Reader<'a>(wire::Reader<'a>);

impl From<Truncated> for DecodeError {
    fn from(_: Truncated) -> Self {
        DecodeError::Truncated
    }
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        self.0.take(n)
    }

    fn key(&mut self) -> Result<Key, DecodeError> {
        let mut k = [0; KEY_LEN];
        k.copy_from_slice(self.take(KEY_LEN)?);
        Ok(Key(k))
    }

    fn contacts(&mut self) -> Result<Vec<Contact>, DecodeError> {
        let n = self.take(1)?[0] as usize;
        if n > MAX_CONTACTS {
            return Err(DecodeError::TooMany(n));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut p = [0; PUBLIC_LEN];
            p.copy_from_slice(self.take(PUBLIC_LEN)?);
            out.push(Contact::from_public(p));
        }
        Ok(out)
    }
}

impl Message {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + KEY_LEN);
        out.push(VERSION);
        out.push(self.body.kind());
        out.extend_from_slice(&self.id.to_be_bytes());
        match &self.body {
            Body::Ping | Body::Pong | Body::Refused => {}
            Body::FindNode(k) | Body::GetProviders(k) | Body::AddProvider(k) => {
                out.extend_from_slice(&k.0)
            }
            Body::Nodes(c) => put_contacts(&mut out, c),
            Body::Providers { providers, closer } => {
                put_contacts(&mut out, providers);
                put_contacts(&mut out, closer);
            }
            Body::Stored(kept) => out.push(u8::from(*kept)),
        }
        out
    }

    /// Parse a message.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() < HEADER {
            return Err(DecodeError::Truncated);
        }
        if bytes[0] != VERSION {
            return Err(DecodeError::Version(bytes[0]));
        }
        let id = u64::from_be_bytes(bytes[2..HEADER].try_into().expect("8 bytes"));
        let mut r = Reader(wire::Reader::new(&bytes[HEADER..]));
        let body = match bytes[1] {
            0x01 => Body::Ping,
            0x02 => Body::FindNode(r.key()?),
            0x03 => Body::GetProviders(r.key()?),
            0x04 => Body::AddProvider(r.key()?),
            0x81 => Body::Pong,
            0x82 => Body::Nodes(r.contacts()?),
            0x83 => Body::Providers {
                providers: r.contacts()?,
                closer: r.contacts()?,
            },
            0x84 => match r.take(1)?[0] {
                0 => Body::Stored(false),
                1 => Body::Stored(true),
                f => return Err(DecodeError::Flag(f)),
            },
            0x8f => Body::Refused,
            k => return Err(DecodeError::Kind(k)),
        };
        if r.0.remaining() > 0 {
            return Err(DecodeError::Trailing(r.0.remaining()));
        }
        Ok(Message { id, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contact(n: u8) -> Contact {
        Contact::from_public([n; PUBLIC_LEN])
    }

    #[test]
    fn every_kind_round_trips() {
        let k = Key([9; KEY_LEN]);
        for body in [
            Body::Ping,
            Body::FindNode(k),
            Body::GetProviders(k),
            Body::AddProvider(k),
            Body::Pong,
            Body::Nodes(vec![contact(1), contact(2)]),
            Body::Providers {
                providers: vec![contact(3)],
                closer: vec![],
            },
            Body::Stored(true),
            Body::Refused,
        ] {
            let m = Message { id: 77, body };
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn bad_messages_get_typed_errors() {
        let good = Message {
            id: 1,
            body: Body::Nodes(vec![contact(1)]),
        }
        .encode();
        assert_eq!(
            Message::decode(&good[..good.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(Message::decode(&v), Err(DecodeError::Version(9)));
        let mut v = good.clone();
        v.push(0);
        assert_eq!(Message::decode(&v), Err(DecodeError::Trailing(1)));
        let mut v = good.clone();
        v[HEADER] = 21;
        assert_eq!(Message::decode(&v), Err(DecodeError::TooMany(21)));
        let mut v = good;
        v[1] = 0x7e;
        assert_eq!(Message::decode(&v), Err(DecodeError::Kind(0x7e)));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(m) = Message::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
