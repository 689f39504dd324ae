//! A signed catalog entry: what a node offers (an adapter, a command, compute), in the
//! words its publisher signed. Every entry carries its publisher's full public key, so any
//! node can check it without asking anyone, and a relay cannot change a byte of it.
//!
//! Wire, version 1 (integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | version ([`VERSION`]) |
//! | 1 | kind: 1 adapter, 2 command, 3 compute |
//! | 2..66 | publisher: Reticulum public key (X25519 32 ‖ Ed25519 32) |
//! | 66..74 | seq (u64): a newer entry for the same name has a higher one |
//! | 74..82 | expires: wall-clock ms since the Unix epoch (u64) |
//! | 82 | flags: bit 0 tombstone (the entry is withdrawn); no other bits |
//! | 83 | name length (at most [`MAX_NAME`]), then the name (UTF-8) |
//! | .. | summary length (at most [`MAX_SUMMARY`]), then the summary (UTF-8) |
//! | .. | body, by kind: adapter content hash 32 ‖ sketch 48 ‖ vector hash 16; command sketch 48; compute RAM MB u32 ‖ GPU MB u32 ‖ load % u8 |
//! | last 64 | Ed25519 signature over `grid.catalog.v1` ‖ every byte before it |
//!
//! The 384-float embedding never travels in gossip: an adapter names it by
//! `vector_hash` (content-addressed) and carries its 48-byte sign-bit sketch for
//! choosing candidates; searchers score entries from their signed name and summary,
//! embedded locally, never from a vector the publisher supplies (docs/discovery.md). An entry's digest, the key reconciliation works on, is the first
//! 16 bytes of the SHA-256 of its bytes.

use rns_core::hash::full_hash;
use rns_core::{Identity, PublicIdentity};

use crate::proto::flood::sketch::{Sketch, SKETCH_LEN};
use crate::proto::wire::{Reader, Truncated};

/// The entry format this node speaks.
pub const VERSION: u8 = 1;
/// What a signature covers first, so a catalog signature is never valid as anything else.
pub const DOMAIN: &[u8] = b"grid.catalog.v1";
/// Bytes in a name, at most.
pub const MAX_NAME: usize = 64;
/// Bytes in a summary, at most.
pub const MAX_SUMMARY: usize = 96;
/// Bytes in a public key.
pub const KEY_LEN: usize = 64;
/// Bytes in a signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes in an entry, at most (an adapter with the longest name and summary).
pub const MAX_ENTRY: usize =
    NAME_LEN_AT + 1 + MAX_NAME + 1 + MAX_SUMMARY + ADAPTER_BODY + SIGNATURE_LEN;

const VERSION_AT: usize = 0;
const KIND_AT: usize = 1;
const PUBLISHER: std::ops::Range<usize> = 2..66;
const SEQ: std::ops::Range<usize> = 66..74;
const EXPIRES: std::ops::Range<usize> = 74..82;
const FLAGS_AT: usize = 82;
const NAME_LEN_AT: usize = 83;
const ADAPTER_BODY: usize = 32 + SKETCH_LEN + 16;
const COMPUTE_BODY: usize = 4 + 4 + 1;
const TOMBSTONE: u8 = 0x01;

/// An entry's digest: the first 16 bytes of the SHA-256 of its bytes.
pub type Digest = [u8; 16];

/// What an entry offers, with what is particular to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A LoRA adapter (a skill).
    Adapter {
        /// SHA-256 of the adapter package, to fetch it by.
        content_hash: [u8; 32],
        /// Sign-bit sketch of its embedding, for matching.
        sketch: Sketch,
        /// Names the full embedding (content-addressed), fetched only when wanted.
        vector_hash: [u8; 16],
    },
    /// A command the publisher answers.
    Command {
        /// Sign-bit sketch of its description's embedding.
        sketch: Sketch,
    },
    /// Compute the publisher offers.
    Compute {
        /// RAM free for jobs, MB.
        ram_mb: u32,
        /// GPU memory free for jobs, MB.
        gpu_mb: u32,
        /// Load, percent (0 to 100).
        load_pct: u8,
    },
}

impl Body {
    /// The kind byte on the wire.
    pub fn kind(&self) -> u8 {
        match self {
            Body::Adapter { .. } => 1,
            Body::Command { .. } => 2,
            Body::Compute { .. } => 3,
        }
    }
}

/// An entry's content before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Higher replaces lower for the same publisher, kind and name.
    pub seq: u64,
    /// When it stops being valid: wall-clock ms since the Unix epoch.
    pub expires_ms: u64,
    /// Whether it withdraws the entry of that name (kept until it expires, so an older
    /// copy cannot come back from a stale peer).
    pub tombstone: bool,
    /// Its name, at most [`MAX_NAME`] bytes.
    pub name: String,
    /// A line about it, at most [`MAX_SUMMARY`] bytes.
    pub summary: String,
    /// What it offers.
    pub body: Body,
}

/// A signed entry, checked: only [`Entry::sign`] and [`Entry::decode`] make one, so
/// holding one means its signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    record: Record,
    publisher: [u8; KEY_LEN],
    bytes: Vec<u8>,
    digest: Digest,
}

/// Why bytes are not an entry, or a record cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Shorter than its fields say.
    #[error("truncated")]
    Truncated,
    /// Longer than any entry may be.
    #[error("{0} bytes, more than an entry may have ({MAX_ENTRY})")]
    TooLong(usize),
    /// A version this node does not speak.
    #[error("entry version {0} (this node speaks {VERSION})")]
    Version(u8),
    /// An unknown kind.
    #[error("unknown entry kind {0}")]
    Kind(u8),
    /// Flag bits other than the tombstone.
    #[error("bad flags {0:#04x}")]
    Flags(u8),
    /// A name or summary too long.
    #[error("{field} is {len} bytes, more than {max}")]
    Length {
        /// Which.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// A name or summary that is not UTF-8.
    #[error("{0} is not UTF-8")]
    Utf8(&'static str),
    /// A load above 100 %.
    #[error("load {0} % is above 100")]
    Load(u8),
    /// The publisher key is not a valid public key.
    #[error("the publisher key is not valid")]
    Key,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// Bytes after the signature's place.
    #[error("{0} bytes after the body")]
    Trailing(usize),
}

impl Record {
    fn check(&self) -> Result<(), EntryError> {
        if self.name.len() > MAX_NAME {
            return Err(EntryError::Length {
                field: "name",
                len: self.name.len(),
                max: MAX_NAME,
            });
        }
        if self.summary.len() > MAX_SUMMARY {
            return Err(EntryError::Length {
                field: "summary",
                len: self.summary.len(),
                max: MAX_SUMMARY,
            });
        }
        if let Body::Compute { load_pct, .. } = self.body {
            if load_pct > 100 {
                return Err(EntryError::Load(load_pct));
            }
        }
        Ok(())
    }

    /// The bytes the signature follows (all but the signature).
    fn unsigned_bytes(&self, publisher: &[u8; KEY_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_ENTRY);
        out.push(VERSION);
        out.push(self.body.kind());
        out.extend_from_slice(publisher);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.expires_ms.to_be_bytes());
        out.push(if self.tombstone { TOMBSTONE } else { 0 });
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        out.push(self.summary.len() as u8);
        out.extend_from_slice(self.summary.as_bytes());
        match &self.body {
            Body::Adapter {
                content_hash,
                sketch,
                vector_hash,
            } => {
                out.extend_from_slice(content_hash);
                out.extend_from_slice(&sketch.0);
                out.extend_from_slice(vector_hash);
            }
            Body::Command { sketch } => out.extend_from_slice(&sketch.0),
            Body::Compute {
                ram_mb,
                gpu_mb,
                load_pct,
            } => {
                out.extend_from_slice(&ram_mb.to_be_bytes());
                out.extend_from_slice(&gpu_mb.to_be_bytes());
                out.push(*load_pct);
            }
        }
        out
    }
}

fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + unsigned.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(unsigned);
    m
}

/// The digest of an entry's bytes.
pub fn digest_of(bytes: &[u8]) -> Digest {
    let mut d = [0; 16];
    d.copy_from_slice(&full_hash(bytes)[..16]);
    d
}

impl From<Truncated> for EntryError {
    fn from(_: Truncated) -> Self {
        EntryError::Truncated
    }
}

/// A length byte, at most `max`, then that many bytes of UTF-8.
fn text(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<String, EntryError> {
    let len = usize::from(r.take::<EntryError>(1)?[0]);
    if len > max {
        return Err(EntryError::Length { field, len, max });
    }
    let raw = r.take::<EntryError>(len)?;
    String::from_utf8(raw.to_vec()).map_err(|_| EntryError::Utf8(field))
}

impl Entry {
    /// Sign `record` as `identity`.
    pub fn sign(identity: &Identity, record: Record) -> Result<Entry, EntryError> {
        record.check()?;
        let publisher = *identity.public().as_bytes();
        let mut bytes = record.unsigned_bytes(&publisher);
        let signature = identity.sign(&signed_message(&bytes));
        bytes.extend_from_slice(&signature);
        Ok(Entry {
            digest: digest_of(&bytes),
            record,
            publisher,
            bytes,
        })
    }

    /// Parse and check `bytes`: lengths, version, kind, UTF-8, and the signature (checked
    /// before anything is accepted).
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() > MAX_ENTRY {
            return Err(EntryError::TooLong(bytes.len()));
        }
        if bytes.len() < NAME_LEN_AT + SIGNATURE_LEN {
            return Err(EntryError::Truncated);
        }
        if bytes[VERSION_AT] != VERSION {
            return Err(EntryError::Version(bytes[VERSION_AT]));
        }
        let kind = bytes[KIND_AT];
        if !(1..=3).contains(&kind) {
            return Err(EntryError::Kind(kind));
        }
        let flags = bytes[FLAGS_AT];
        if flags & !TOMBSTONE != 0 {
            return Err(EntryError::Flags(flags));
        }
        let mut publisher = [0; KEY_LEN];
        publisher.copy_from_slice(&bytes[PUBLISHER]);
        let u64_at = |r: std::ops::Range<usize>| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[r]);
            u64::from_be_bytes(b)
        };
        let (seq, expires_ms) = (u64_at(SEQ), u64_at(EXPIRES));
        let mut r = Reader::new(&bytes[NAME_LEN_AT..]);
        let name = text(&mut r, "name", MAX_NAME)?;
        let summary = text(&mut r, "summary", MAX_SUMMARY)?;
        let body = match kind {
            1 => Body::Adapter {
                content_hash: r.array::<_, EntryError>()?,
                sketch: Sketch(r.array::<_, EntryError>()?),
                vector_hash: r.array::<_, EntryError>()?,
            },
            2 => Body::Command {
                sketch: Sketch(r.array::<_, EntryError>()?),
            },
            _ => {
                let body: [u8; COMPUTE_BODY] = r.array::<COMPUTE_BODY, EntryError>()?;
                let load_pct = body[8];
                if load_pct > 100 {
                    return Err(EntryError::Load(load_pct));
                }
                Body::Compute {
                    ram_mb: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    gpu_mb: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    load_pct,
                }
            }
        };
        let signature = r.array::<SIGNATURE_LEN, EntryError>()?;
        if r.remaining() > 0 {
            return Err(EntryError::Trailing(r.remaining()));
        }
        let key = PublicIdentity::from_bytes(&publisher).map_err(|_| EntryError::Key)?;
        let unsigned = &bytes[..bytes.len() - SIGNATURE_LEN];
        key.verify(&signed_message(unsigned), &signature)
            .map_err(|_| EntryError::Signature)?;
        Ok(Entry {
            record: Record {
                seq,
                expires_ms,
                tombstone: flags & TOMBSTONE != 0,
                name,
                summary,
                body,
            },
            publisher,
            digest: digest_of(bytes),
            bytes: bytes.to_vec(),
        })
    }

    /// What it says.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The publisher's public key.
    pub fn publisher(&self) -> &[u8; KEY_LEN] {
        &self.publisher
    }

    /// Its bytes on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Its kind byte.
    pub fn kind(&self) -> u8 {
        self.record.body.kind()
    }

    /// Whether it withdraws its name.
    pub fn is_tombstone(&self) -> bool {
        self.record.tombstone
    }

    /// When it expires, wall-clock ms.
    pub fn expires_ms(&self) -> u64 {
        self.record.expires_ms
    }

    /// Its seq.
    pub fn seq(&self) -> u64 {
        self.record.seq
    }
}
