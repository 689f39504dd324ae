//! The reconciliation message on the wire (integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | version ([`VERSION`]) |
//! | 1..5 | session (u32, chosen at random by the node that started it) |
//! | 5 | round (below [`MAX_ROUNDS`]; the starter sends even rounds) |
//! | 6..8 | range count (u16, at most [`MAX_RANGES`]), then the ranges |
//! | .. | entry count (u16, at most [`MAX_ENTRIES`]), then each: length (u16) ‖ a signed entry |
//! | .. | want count (u16, at most [`MAX_WANTS`]), then 16-byte digests |
//!
//! A range covers the digests from the previous range's upper bound (the first from all
//! zeroes) up to its own, exclusive. Its first byte is its mode (0 skip, 1 fingerprint, 2
//! id list) with bit 7 set when the bound is the end of the digest space; otherwise the
//! bound follows as a length (1 to 16) and that many leading bytes of it, the rest zero
//! (a bound between two digests needs only the bytes up to where they first differ,
//! about 2 bytes in a catalog of a thousand, not 16). Then a fingerprint's 16 bytes, or an id list's count (u8, at
//! most [`MAX_IDS`]) and its digests. Bounds must rise, and only the last may be the end.
//! Entries travel as bytes and are checked (signature first) by the receiver one by one,
//! so one bad entry costs only itself.

use super::entry::{Digest, MAX_ENTRY};
use crate::proto::wire::{Reader, Truncated};

/// The version this node speaks.
pub const VERSION: u8 = 1;
/// Rounds in a session, at most (a round is one message).
pub const MAX_ROUNDS: u8 = 16;
/// Ranges in a message, at most.
pub const MAX_RANGES: usize = 1024;
/// Digests in one id list, at most.
pub const MAX_IDS: usize = 64;
/// Entries in a message, at most.
pub const MAX_ENTRIES: usize = 256;
/// Wanted digests in a message, at most.
pub const MAX_WANTS: usize = 1024;
/// Bytes of a message with nothing in it.
pub const EMPTY_LEN: usize = HEADER + 6;

const VERSION_AT: usize = 0;
const SESSION: std::ops::Range<usize> = 1..5;
const ROUND_AT: usize = 5;
const HEADER: usize = 6;
const END: u8 = 0x80;
const MODE_MASK: u8 = 0x03;

/// A range's upper bound (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    /// Digests below this one.
    Below(Digest),
    /// The end of the digest space.
    End,
}

/// What a range says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Nothing to do here.
    Skip,
    /// The sender's fingerprint of its digests in the range.
    Fingerprint([u8; 16]),
    /// The sender's digests in the range, all of them.
    IdList(Vec<Digest>),
}

/// One range of the digest space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Where it ends.
    pub upper: Bound,
    /// What it says.
    pub mode: Mode,
}

/// Bytes of `d` up to its last that is not zero (at least one): the prefix a bound
/// travels as.
fn prefix_len(d: &Digest) -> usize {
    (16 - d.iter().rev().take_while(|b| **b == 0).count()).max(1)
}

impl Bound {
    /// The shortest bound above `below` and at or under `at` (`below < at`), so a range
    /// ending there splits the two with as few bytes on the wire as can be.
    pub fn between(below: &Digest, at: &Digest) -> Bound {
        let common = below.iter().zip(at).take_while(|(a, b)| a == b).count();
        let mut d = [0; 16];
        let k = (common + 1).min(16);
        d[..k].copy_from_slice(&at[..k]);
        Bound::Below(d)
    }
}

impl Range {
    /// Its bytes on the wire.
    pub fn wire_len(&self) -> usize {
        let bound = match &self.upper {
            Bound::Below(d) => 1 + prefix_len(d),
            Bound::End => 0,
        };
        1 + bound
            + match &self.mode {
                Mode::Skip => 0,
                Mode::Fingerprint(_) => 16,
                Mode::IdList(ids) => 1 + 16 * ids.len(),
            }
    }
}

/// One reconciliation message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The session it belongs to.
    pub session: u32,
    /// Its round in the session.
    pub round: u8,
    /// Ranges of the digest space, rising.
    pub ranges: Vec<Range>,
    /// Signed entries, as bytes (the receiver checks each).
    pub entries: Vec<Vec<u8>>,
    /// Digests the sender wants the entries of.
    pub wants: Vec<Digest>,
}

/// Why bytes are not a reconciliation message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its fields say.
    #[error("truncated")]
    Truncated,
    /// A version this node does not speak.
    #[error("version {0} (this node speaks {VERSION})")]
    Version(u8),
    /// A count or field out of its range.
    #[error("{field} = {value} is out of range")]
    Range {
        /// The field.
        field: &'static str,
        /// Its value.
        value: usize,
    },
    /// An unknown range mode.
    #[error("unknown range mode {0:#04x}")]
    Mode(u8),
    /// Range bounds that do not rise, or an end bound before the last range.
    #[error("range bounds out of order")]
    Order,
    /// Bytes after the wants.
    #[error("{0} bytes after the message")]
    Trailing(usize),
}

impl From<Truncated> for DecodeError {
    fn from(_: Truncated) -> Self {
        DecodeError::Truncated
    }
}

fn digest(r: &mut Reader<'_>) -> Result<Digest, DecodeError> {
    r.array::<16, DecodeError>()
}

/// A u16 count, at most `max`.
fn count(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<usize, DecodeError> {
    let n = usize::from(u16::from_be_bytes(r.array::<2, DecodeError>()?));
    if n > max {
        return Err(DecodeError::Range { field, value: n });
    }
    Ok(n)
}

fn byte(r: &mut Reader<'_>) -> Result<u8, DecodeError> {
    Ok(r.array::<1, DecodeError>()?[0])
}

impl Message {
    /// Its bytes on the wire.
    pub fn wire_len(&self) -> usize {
        EMPTY_LEN
            + self.ranges.iter().map(Range::wire_len).sum::<usize>()
            + self.entries.iter().map(|e| 2 + e.len()).sum::<usize>()
            + 16 * self.wants.len()
    }

    /// Whether it carries nothing (no ranges, entries or wants).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.entries.is_empty() && self.wants.is_empty()
    }

    /// The message's bytes. Lists past their bounds are cut to them, so what is sent
    /// always decodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        out.push(VERSION);
        out.extend_from_slice(&self.session.to_be_bytes());
        out.push(self.round.min(MAX_ROUNDS - 1));
        let ranges = &self.ranges[..self.ranges.len().min(MAX_RANGES)];
        out.extend_from_slice(&(ranges.len() as u16).to_be_bytes());
        for r in ranges {
            let (mode, payload): (u8, &[Digest]) = match &r.mode {
                Mode::Skip => (0, &[]),
                Mode::Fingerprint(_) => (1, &[]),
                Mode::IdList(ids) => (2, &ids[..ids.len().min(MAX_IDS)]),
            };
            match r.upper {
                Bound::End => out.push(mode | END),
                Bound::Below(d) => {
                    out.push(mode);
                    let k = prefix_len(&d);
                    out.push(k as u8);
                    out.extend_from_slice(&d[..k]);
                }
            }
            if let Mode::Fingerprint(fp) = &r.mode {
                out.extend_from_slice(fp);
            }
            if mode == 2 {
                out.push(payload.len() as u8);
                for d in payload {
                    out.extend_from_slice(d);
                }
            }
        }
        let entries: Vec<&Vec<u8>> = self
            .entries
            .iter()
            .filter(|e| e.len() <= MAX_ENTRY)
            .take(MAX_ENTRIES)
            .collect();
        out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        for e in entries {
            out.extend_from_slice(&(e.len() as u16).to_be_bytes());
            out.extend_from_slice(e);
        }
        let wants = &self.wants[..self.wants.len().min(MAX_WANTS)];
        out.extend_from_slice(&(wants.len() as u16).to_be_bytes());
        for w in wants {
            out.extend_from_slice(w);
        }
        out
    }

    /// Parse `bytes`, checking every count and the order of the ranges (entries are
    /// checked by the receiver, see [`super::entry::Entry::decode`]).
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() < EMPTY_LEN {
            return Err(DecodeError::Truncated);
        }
        if bytes[VERSION_AT] != VERSION {
            return Err(DecodeError::Version(bytes[VERSION_AT]));
        }
        let session = u32::from_be_bytes([
            bytes[SESSION.start],
            bytes[SESSION.start + 1],
            bytes[SESSION.start + 2],
            bytes[SESSION.start + 3],
        ]);
        let round = bytes[ROUND_AT];
        if round >= MAX_ROUNDS {
            return Err(DecodeError::Range {
                field: "round",
                value: usize::from(round),
            });
        }
        let mut r = Reader::new(&bytes[HEADER..]);
        let n = count(&mut r, "ranges", MAX_RANGES)?;
        let mut ranges = Vec::with_capacity(n);
        let mut last: Option<Bound> = None;
        for _ in 0..n {
            let mode = byte(&mut r)?;
            if mode & !(END | MODE_MASK) != 0 || mode & MODE_MASK == 3 {
                return Err(DecodeError::Mode(mode));
            }
            let upper = if mode & END != 0 {
                Bound::End
            } else {
                let k = usize::from(byte(&mut r)?);
                if !(1..=16).contains(&k) {
                    return Err(DecodeError::Range {
                        field: "bound length",
                        value: k,
                    });
                }
                let mut d = [0; 16];
                d[..k].copy_from_slice(r.take::<DecodeError>(k)?);
                Bound::Below(d)
            };
            if last.is_some_and(|l| l >= upper) {
                return Err(DecodeError::Order);
            }
            last = Some(upper);
            let mode = match mode & MODE_MASK {
                0 => Mode::Skip,
                1 => Mode::Fingerprint(digest(&mut r)?),
                _ => {
                    let k = usize::from(byte(&mut r)?);
                    if k > MAX_IDS {
                        return Err(DecodeError::Range {
                            field: "ids",
                            value: k,
                        });
                    }
                    let mut ids = Vec::with_capacity(k);
                    for _ in 0..k {
                        ids.push(digest(&mut r)?);
                    }
                    Mode::IdList(ids)
                }
            };
            ranges.push(Range { upper, mode });
        }
        let n = count(&mut r, "entries", MAX_ENTRIES)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let len = count(&mut r, "entry length", MAX_ENTRY)?;
            entries.push(r.take::<DecodeError>(len)?.to_vec());
        }
        let n = count(&mut r, "wants", MAX_WANTS)?;
        let mut wants = Vec::with_capacity(n);
        for _ in 0..n {
            wants.push(digest(&mut r)?);
        }
        if r.remaining() > 0 {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok(Message {
            session,
            round,
            ranges,
            entries,
            wants,
        })
    }
}
