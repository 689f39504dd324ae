//! The flood search's messages on the wire. Every message is
//!
//! | bytes | field |
//! |---|---|
//! | 0 | version ([`VERSION`]) |
//! | 1 | kind: `0x01` query, `0x81` answer, `0x82` budget returned |
//! | 2..18 | query id (16 random bytes chosen by the origin) |
//! | 18.. | body, by kind |
//!
//! A query's body: TTL (1 to [`MAX_TTL`]), fan-out (1 to [`MAX_FANOUT`]), hops
//! travelled to reach the receiver (1 to [`MAX_TTL`]), message budget (u16, 1 to
//! [`MAX_BUDGET`]), results wanted (1 to [`MAX_WANT`]), threshold (u16, bits that must
//! agree, at most 384), a flags byte (bit 0: a sketch follows, bit 1: a topic follows, at
//! least one of them; bit 2: budget given back, sent on as a top-up; no other bits), then the 48-byte sketch, then the topic (a length byte, at
//! most [`MAX_TOPIC`], and that many bytes of UTF-8). About 80 bytes with a sketch.
//!
//! An answer's body: the answering node's hops from the origin (1 to [`MAX_TTL`]), a
//! count (1 to [`MAX_HITS`]), then that many hits of 34 bytes: item id (16), holder (16,
//! the identity hash of the node that holds it), score (u16, bits agreeing). A returned
//! budget's body: the budget (u16, 1 to [`MAX_BUDGET`]). Nothing may follow the body.
//! All integers are big-endian.

use crate::proto::wire::{self, Truncated};

use super::sketch::{Query, Sketch, FULL_SCORE, MAX_TOPIC, SKETCH_LEN};

/// The version this node speaks.
pub const VERSION: u8 = 1;
/// Hops a query may travel, at most.
pub const MAX_TTL: u8 = 10;
/// Neighbours a node forwards a query to, at most.
pub const MAX_FANOUT: u8 = 8;
/// A query's message budget, at most.
pub const MAX_BUDGET: u16 = 4096;
/// Results a query may want, at most.
pub const MAX_WANT: u8 = 20;
/// Hits in one answer, at most.
pub const MAX_HITS: usize = 8;
const HEADER: usize = 18;
const HIT_LEN: usize = 34;

/// A query's id.
pub type QueryId = [u8; 16];

/// A query as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Hops it may still travel, counting the one to the receiver.
    pub ttl: u8,
    /// Neighbours each node forwards it to.
    pub fanout: u8,
    /// Hops it travelled to reach the receiver.
    pub hops: u8,
    /// Query messages it and its forwards may still cost, the one to the receiver
    /// included.
    pub budget: u16,
    /// Results the origin wants; a relay passes at most this many back.
    pub want: u8,
    /// What it looks for.
    pub query: Query,
    /// Budget given back by leaves, sent on to a node that has seen the query (flag bit
    /// 2): it may top up its own branches in turn, where an ordinary repeat only goes to
    /// neighbours the query has not been to.
    pub top_up: bool,
}

/// One result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hit {
    /// The item's id.
    pub item: [u8; 16],
    /// The node that holds it (its identity hash, as it says).
    pub holder: [u8; 16],
    /// Bits agreeing with the query's sketch, as the holder scored it.
    pub score: u16,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A search, travelling out.
    Query(Search),
    /// Budget given back: a node that had nowhere to forward a query (no neighbour but
    /// the one it came from) returns the budget it could not use to that neighbour, which
    /// forwards it to others. On trees (leaves on a backbone) a query's budget would
    /// otherwise end at the leaves it happened to pick.
    Return {
        /// Query messages given back (at most what the sender was given, less one).
        budget: u16,
    },
    /// Results, travelling back on the query's reverse path.
    Answer {
        /// The answering node's hops from the origin.
        hops: u8,
        /// Its results (1 to [`MAX_HITS`]).
        hits: Vec<Hit>,
    },
}

/// One flood message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The query it belongs to.
    pub id: QueryId,
    /// What it says.
    pub body: Body,
}

/// Why bytes are not a flood message.
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
    /// A field out of its range.
    #[error("{field} = {value} is out of range")]
    Range {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// Flags other than a sketch and/or a topic.
    #[error("bad flags {0:#04x}")]
    Flags(u8),
    /// A topic that is not UTF-8.
    #[error("the topic is not UTF-8")]
    Topic,
    /// Bytes after the body.
    #[error("{0} bytes after the body")]
    Trailing(usize),
}

impl From<Truncated> for DecodeError {
    fn from(_: Truncated) -> Self {
        DecodeError::Truncated
    }
}

struct Reader<'a>(wire::Reader<'a>);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        self.0.take(n)
    }

    fn u8_in(&mut self, field: &'static str, lo: u8, hi: u8) -> Result<u8, DecodeError> {
        let v = self.take(1)?[0];
        check(field, u32::from(v), u32::from(lo), u32::from(hi))?;
        Ok(v)
    }

    fn u16_in(&mut self, field: &'static str, lo: u16, hi: u16) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        let v = u16::from_be_bytes([b[0], b[1]]);
        check(field, u32::from(v), u32::from(lo), u32::from(hi))?;
        Ok(v)
    }

    fn id(&mut self) -> Result<[u8; 16], DecodeError> {
        let mut out = [0; 16];
        out.copy_from_slice(self.take(16)?);
        Ok(out)
    }
}

fn check(field: &'static str, value: u32, lo: u32, hi: u32) -> Result<(), DecodeError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(DecodeError::Range { field, value })
    }
}

impl Message {
    /// The message's bytes. Fields out of range are clamped into it, so what is sent
    /// always decodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 80);
        out.push(VERSION);
        match &self.body {
            Body::Query(s) => {
                out.push(0x01);
                out.extend_from_slice(&self.id);
                out.push(s.ttl.clamp(1, MAX_TTL));
                out.push(s.fanout.clamp(1, MAX_FANOUT));
                out.push(s.hops.clamp(1, MAX_TTL));
                out.extend_from_slice(&s.budget.clamp(1, MAX_BUDGET).to_be_bytes());
                out.push(s.want.clamp(1, MAX_WANT));
                out.extend_from_slice(&s.query.threshold.min(FULL_SCORE).to_be_bytes());
                let topic = s.query.topic.as_deref().map(|t| clip(t, MAX_TOPIC));
                let flags = u8::from(s.query.sketch.is_some()) | (u8::from(topic.is_some()) << 1);
                // A query with neither is not sendable; an empty topic stands in.
                let flags = if flags == 0 { 2 } else { flags };
                out.push(flags | (u8::from(s.top_up) << 2));
                if let Some(sk) = &s.query.sketch {
                    out.extend_from_slice(&sk.0);
                }
                if flags == 0 || topic.is_some() {
                    let t = topic.unwrap_or("");
                    out.push(t.len() as u8);
                    out.extend_from_slice(t.as_bytes());
                }
            }
            Body::Return { budget } => {
                out.push(0x82);
                out.extend_from_slice(&self.id);
                out.extend_from_slice(&(*budget).clamp(1, MAX_BUDGET).to_be_bytes());
            }
            Body::Answer { hops, hits } => {
                out.push(0x81);
                out.extend_from_slice(&self.id);
                out.push((*hops).clamp(1, MAX_TTL));
                let n = hits.len().clamp(1, MAX_HITS);
                out.push(n as u8);
                let none = [Hit {
                    item: [0; 16],
                    holder: [0; 16],
                    score: 0,
                }];
                let hits = if hits.is_empty() { &none[..] } else { hits };
                for h in hits.iter().take(n) {
                    out.extend_from_slice(&h.item);
                    out.extend_from_slice(&h.holder);
                    out.extend_from_slice(&h.score.min(FULL_SCORE).to_be_bytes());
                }
            }
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
        let kind = bytes[1];
        let mut r = Reader(wire::Reader::new(&bytes[2..]));
        let id = r.id()?;
        let body = match kind {
            0x01 => {
                let ttl = r.u8_in("ttl", 1, MAX_TTL)?;
                let fanout = r.u8_in("fanout", 1, MAX_FANOUT)?;
                let hops = r.u8_in("hops", 1, MAX_TTL)?;
                let budget = r.u16_in("budget", 1, MAX_BUDGET)?;
                let want = r.u8_in("want", 1, MAX_WANT)?;
                let threshold = r.u16_in("threshold", 0, FULL_SCORE)?;
                let flags = r.take(1)?[0];
                if flags & 3 == 0 || flags > 7 {
                    return Err(DecodeError::Flags(flags));
                }
                let sketch = if flags & 1 != 0 {
                    let mut s = [0; SKETCH_LEN];
                    s.copy_from_slice(r.take(SKETCH_LEN)?);
                    Some(Sketch(s))
                } else {
                    None
                };
                let topic = if flags & 2 != 0 {
                    let n = r.u8_in("topic length", 0, MAX_TOPIC as u8)?;
                    let t = std::str::from_utf8(r.take(usize::from(n))?)
                        .map_err(|_| DecodeError::Topic)?;
                    Some(t.to_owned())
                } else {
                    None
                };
                Body::Query(Search {
                    ttl,
                    fanout,
                    hops,
                    budget,
                    want,
                    query: Query {
                        sketch,
                        topic,
                        threshold,
                    },
                    top_up: flags & 4 != 0,
                })
            }
            0x81 => {
                let hops = r.u8_in("hops", 1, MAX_TTL)?;
                let n = r.u8_in("hits", 1, MAX_HITS as u8)?;
                let mut hits = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    let item = r.id()?;
                    let holder = r.id()?;
                    let score = r.u16_in("score", 0, FULL_SCORE)?;
                    hits.push(Hit {
                        item,
                        holder,
                        score,
                    });
                }
                Body::Answer { hops, hits }
            }
            0x82 => Body::Return {
                budget: r.u16_in("budget", 1, MAX_BUDGET)?,
            },
            k => return Err(DecodeError::Kind(k)),
        };
        if r.0.remaining() > 0 {
            return Err(DecodeError::Trailing(r.0.remaining()));
        }
        Ok(Message { id, body })
    }

    /// The encoded size of an answer with `hits` hits.
    pub fn answer_len(hits: usize) -> usize {
        HEADER + 2 + HIT_LEN * hits.clamp(1, MAX_HITS)
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn query() -> Message {
        Message {
            id: [7; 16],
            body: Body::Query(Search {
                ttl: 10,
                fanout: 3,
                hops: 1,
                budget: 250,
                want: 1,
                query: Query {
                    sketch: Some(Sketch([0xa5; SKETCH_LEN])),
                    topic: Some("summarise".into()),
                    threshold: 288,
                },
                top_up: false,
            }),
        }
    }

    fn answer(n: usize) -> Message {
        let hit = |i: u8| Hit {
            item: [i; 16],
            holder: [i + 1; 16],
            score: 300,
        };
        Message {
            id: [9; 16],
            body: Body::Answer {
                hops: 4,
                hits: (0..n as u8).map(hit).collect(),
            },
        }
    }

    #[test]
    fn every_kind_round_trips_and_sizes_are_as_documented() {
        let q = query();
        let bytes = q.encode();
        assert_eq!(bytes.len(), 18 + 9 + 48 + 1 + 9);
        assert_eq!(Message::decode(&bytes), Ok(q));
        for n in [1, MAX_HITS] {
            let a = answer(n);
            let bytes = a.encode();
            assert_eq!(bytes.len(), Message::answer_len(n));
            assert_eq!(Message::decode(&bytes), Ok(a));
        }
        let mut sketch_only = query();
        if let Body::Query(s) = &mut sketch_only.body {
            s.query.topic = None;
        }
        assert_eq!(sketch_only.encode().len(), 18 + 9 + 48);
        assert_eq!(Message::decode(&sketch_only.encode()), Ok(sketch_only));
    }

    #[test]
    fn what_is_sent_always_decodes() {
        let mut q = query();
        if let Body::Query(s) = &mut q.body {
            s.ttl = 200;
            s.fanout = 0;
            s.budget = u16::MAX;
            s.query.sketch = None;
            s.query.topic = Some("é".repeat(40));
        }
        let d = Message::decode(&q.encode()).unwrap();
        let Body::Query(s) = d.body else {
            panic!("a query")
        };
        assert_eq!((s.ttl, s.fanout, s.budget), (MAX_TTL, 1, MAX_BUDGET));
        assert_eq!(s.query.topic.unwrap().len(), 64);
        let mut empty = answer(0);
        assert!(Message::decode(&empty.encode()).is_ok());
        empty = answer(MAX_HITS + 3);
        assert!(Message::decode(&empty.encode()).is_ok());
    }

    #[test]
    fn bad_messages_get_typed_errors() {
        let good = query().encode();
        assert_eq!(
            Message::decode(&good[..good.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut v = good.clone();
        v[0] = 2;
        assert_eq!(Message::decode(&v), Err(DecodeError::Version(2)));
        let mut v = good.clone();
        v[1] = 0x02;
        assert_eq!(Message::decode(&v), Err(DecodeError::Kind(2)));
        let mut v = good.clone();
        v.push(0);
        assert_eq!(Message::decode(&v), Err(DecodeError::Trailing(1)));
        let mut v = good.clone();
        v[HEADER] = 11;
        assert_eq!(
            Message::decode(&v),
            Err(DecodeError::Range {
                field: "ttl",
                value: 11
            })
        );
        let mut v = good.clone();
        v[HEADER + 8] = 4;
        assert_eq!(Message::decode(&v), Err(DecodeError::Flags(4)));
        let mut v = good.clone();
        let last = v.len() - 1;
        v[last] = 0xff;
        assert_eq!(Message::decode(&v), Err(DecodeError::Topic));
        let mut v = answer(1).encode();
        v[HEADER + 1] = 9;
        assert_eq!(
            Message::decode(&v),
            Err(DecodeError::Range {
                field: "hits",
                value: 9
            })
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(m) = Message::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }

        #[test]
        fn mutated_queries_decode_or_fail_without_panicking(i in 0usize..94, b in any::<u8>()) {
            let mut v = query().encode();
            let i = i % v.len();
            v[i] = b;
            if let Ok(m) = Message::decode(&v) {
                prop_assert_eq!(m.encode(), v);
            }
        }
    }
}
