//! Range-based set reconciliation over the sorted digests of two catalogs, in the spirit
//! of Negentropy: two nodes compare fingerprints of ranges of the digest space, split the
//! ranges that differ into [`BUCKETS`] parts, and once a range is small enough swap its
//! digest list; then each sends the other the entries it lacks. Two catalogs of N entries
//! differing in k cost about `k · log16(N)` ranges, not N entries.
//!
//! A range's fingerprint is the first 16 bytes of SHA-256 over the sum (mod 2^128) of its
//! digests read as little-endian u128, then its count (u32, little-endian): cheap to
//! compute, and it does not depend on the order digests were learned in.
//!
//! Nothing is kept between messages: each reply is computed from the message and the
//! catalog alone. A reply fits a byte budget; what does not fit is folded into one
//! fingerprint range to the end of the digest space, so the next round picks it up.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound as B;

use rns_core::hash::full_hash;

use super::entry::{Digest, Entry};
use super::message::{Bound, Mode, Range, EMPTY_LEN, MAX_ENTRIES, MAX_RANGES, MAX_WANTS};

/// Parts a differing range is split into.
pub const BUCKETS: usize = 16;
/// A differing range with fewer digests than this is answered with its digest list.
pub const ID_LIST_BELOW: usize = 16;
/// Bytes of the fold range that ends a reply cut short by its budget.
const FOLD_LEN: usize = 1 + 16;
const ZERO: Digest = [0; 16];
/// Bytes of a fingerprint range with a bound, at most.
const FINGERPRINT_LEN: usize = 1 + 1 + 16 + 16;

/// The fingerprint of a set of digests.
pub fn fingerprint<'a>(digests: impl IntoIterator<Item = &'a Digest>) -> [u8; 16] {
    let (mut sum, mut count) = (0u128, 0u32);
    for d in digests {
        sum = sum.wrapping_add(u128::from_le_bytes(*d));
        count = count.wrapping_add(1);
    }
    let mut input = [0u8; 20];
    input[..16].copy_from_slice(&sum.to_le_bytes());
    input[16..].copy_from_slice(&count.to_le_bytes());
    let mut fp = [0; 16];
    fp.copy_from_slice(&full_hash(&input)[..16]);
    fp
}

/// The digests of `set` from `lower` (inclusive) to `upper` (exclusive); none if the
/// bounds are the wrong way round.
fn within<'a>(set: &'a BTreeMap<Digest, Entry>, lower: &Digest, upper: &Bound) -> Vec<&'a Digest> {
    let hi = match upper {
        Bound::Below(d) if d < lower => return Vec::new(),
        Bound::Below(d) => B::Excluded(*d),
        Bound::End => B::Unbounded,
    };
    set.range((B::Included(*lower), hi))
        .map(|(d, _)| d)
        .collect()
}

/// The ranges a session starts with: the whole digest space as one fingerprint, or as
/// an id list if the catalog is small.
pub fn initiate(set: &BTreeMap<Digest, Entry>) -> Vec<Range> {
    let all: Vec<&Digest> = set.keys().collect();
    vec![describe(all, Bound::End)]
}

fn describe(items: Vec<&Digest>, upper: Bound) -> Range {
    let mode = if items.len() < ID_LIST_BELOW {
        Mode::IdList(items.into_iter().copied().collect())
    } else {
        Mode::Fingerprint(fingerprint(items))
    };
    Range { upper, mode }
}

/// What to send back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// Ranges still to work on (empty: nothing more to compare).
    pub ranges: Vec<Range>,
    /// Digests of entries to send the peer.
    pub give: Vec<Digest>,
    /// Digests to ask the peer for.
    pub wants: Vec<Digest>,
}

impl Reply {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.give.is_empty() && self.wants.is_empty()
    }
}

struct Builder<'a> {
    set: &'a BTreeMap<Digest, Entry>,
    budget: usize,
    used: usize,
    reply: Reply,
}

impl Builder<'_> {
    fn fits(&self, n: usize) -> bool {
        self.used + n + FOLD_LEN <= self.budget
    }

    fn push(&mut self, r: Range) {
        if let (Mode::Skip, Some(last)) = (&r.mode, self.reply.ranges.last_mut()) {
            if last.mode == Mode::Skip {
                // One skip says as much as two.
                self.used = self.used - last.wire_len() + r.wire_len();
                last.upper = r.upper;
                return;
            }
        }
        self.used += r.wire_len();
        self.reply.ranges.push(r);
    }

    /// Send the entry `d`, if it fits (an entry larger than the budget goes alone, first
    /// in a message that holds nothing else yet).
    fn give(&mut self, d: &Digest) -> bool {
        let Some(e) = self.set.get(d) else {
            return true;
        };
        let cost = 2 + e.bytes().len();
        let alone = self.used == EMPTY_LEN;
        if self.reply.give.len() >= MAX_ENTRIES || (!alone && !self.fits(cost)) {
            return false;
        }
        self.used += cost;
        self.reply.give.push(*d);
        true
    }

    fn want(&mut self, d: Digest) -> bool {
        if self.reply.wants.len() >= MAX_WANTS || !self.fits(16) {
            return false;
        }
        self.used += 16;
        self.reply.wants.push(d);
        true
    }

    /// Answer one range that starts at `lower`; false if it did not fit.
    fn answer(&mut self, lower: &Digest, r: &Range) -> bool {
        // Room for this range's skip and the fold after it.
        if self.reply.ranges.len() + 2 >= MAX_RANGES {
            return false;
        }
        if self.refine(lower, r) {
            return true;
        }
        // No room to work on it here: say what this side holds there, so the next round
        // takes it up as it is instead of folding it in with everything after it.
        let items = within(self.set, lower, &r.upper);
        let echo = Range {
            upper: r.upper,
            mode: Mode::Fingerprint(fingerprint(items)),
        };
        if !self.fits(echo.wire_len()) {
            return false;
        }
        self.push(echo);
        true
    }

    /// Work on one range that starts at `lower`: skip it, split it, list it or settle
    /// it; false if that did not fit.
    fn refine(&mut self, lower: &Digest, r: &Range) -> bool {
        match &r.mode {
            Mode::Skip => self.skip(r.upper),
            Mode::Fingerprint(theirs) => {
                let items = within(self.set, lower, &r.upper);
                let mut out = if fingerprint(items.iter().copied()) == *theirs {
                    vec![Range {
                        upper: r.upper,
                        mode: Mode::Skip,
                    }]
                } else if items.len() < ID_LIST_BELOW {
                    vec![describe(items.clone(), r.upper)]
                } else {
                    split(&items, r.upper, BUCKETS)
                };
                let cost = |out: &[Range]| out.iter().map(Range::wire_len).sum::<usize>();
                if !self.fits(cost(&out)) && items.len() >= 2 {
                    // Fewer, larger parts, as many as fit: this range still moves on.
                    let room = self.budget.saturating_sub(self.used + FOLD_LEN);
                    let parts = (room / FINGERPRINT_LEN).min(BUCKETS).min(items.len());
                    if parts < 2 {
                        return false;
                    }
                    out = split(&items, r.upper, parts);
                }
                if !self.fits(cost(&out)) || self.reply.ranges.len() + out.len() + 1 >= MAX_RANGES {
                    return false;
                }
                out.into_iter().for_each(|r| self.push(r));
                true
            }
            Mode::IdList(ids) => {
                let theirs: BTreeSet<&Digest> = ids.iter().collect();
                let ours = within(self.set, lower, &r.upper);
                for d in ids {
                    if !self.set.contains_key(d) && !self.want(*d) {
                        return false;
                    }
                }
                for d in ours {
                    if !theirs.contains(d) && !self.give(d) {
                        return false;
                    }
                }
                self.skip(r.upper)
            }
        }
    }

    /// Say there is nothing (more) to do up to `upper`, if it fits.
    fn skip(&mut self, upper: Bound) -> bool {
        let r = Range {
            upper,
            mode: Mode::Skip,
        };
        if !self.fits(r.wire_len()) {
            return false;
        }
        self.push(r);
        true
    }
}

/// `items` (at least `parts`) in `parts` ranges of about equal counts, each with its
/// fingerprint; the last ends at `upper`.
fn split(items: &[&Digest], upper: Bound, parts: usize) -> Vec<Range> {
    let n = items.len();
    (0..parts)
        .map(|i| {
            let (a, b) = (i * n / parts, (i + 1) * n / parts);
            let bound = if i + 1 == parts {
                upper
            } else {
                Bound::between(items[b - 1], items[b])
            };
            Range {
                upper: bound,
                mode: Mode::Fingerprint(fingerprint(items[a..b].iter().copied())),
            }
        })
        .collect()
}

/// The reply to a peer's `ranges` and `wants`, from catalog `set`, in at most `budget`
/// bytes of message (past the first entry, which always goes).
pub fn respond(
    set: &BTreeMap<Digest, Entry>,
    ranges: &[Range],
    wants: &[Digest],
    budget: usize,
) -> Reply {
    let mut b = Builder {
        set,
        budget,
        used: EMPTY_LEN,
        reply: Reply::default(),
    };
    let mut fold: Option<Digest> = None;
    if !wants.iter().all(|d| b.give(d)) {
        fold = Some(ZERO);
    }
    let mut lower = ZERO;
    if fold.is_none() {
        for r in ranges {
            if !b.answer(&lower, r) {
                fold = Some(lower);
                break;
            }
            match r.upper {
                Bound::Below(d) => lower = d,
                Bound::End => break,
            }
        }
    }
    if let Some(from) = fold {
        let rest = within(set, &from, &Bound::End);
        b.reply.ranges.push(Range {
            upper: Bound::End,
            mode: Mode::Fingerprint(fingerprint(rest)),
        });
    }
    while b.reply.ranges.last().is_some_and(|r| r.mode == Mode::Skip) {
        b.reply.ranges.pop();
    }
    b.reply
}
