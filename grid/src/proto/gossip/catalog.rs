//! The bounded catalog gossip keeps in sync: signed entries by digest, with an index by
//! (publisher, kind, name) so a newer entry replaces an older one, an index by expiry so
//! expired entries are swept and, when the catalog is full, the entries expiring soonest
//! make room (this node's own entries are never evicted).
//!
//! Bounds: [`Limits::max_entries`] in all (10,000), [`Limits::per_publisher`] for any
//! one publisher (256), and a lifetime of at most [`Limits::max_lifetime`] (7 days) plus
//! [`Limits::skew`] (2 h of clock disagreement): an entry expiring later than that is
//! refused, so nobody can pin a slot for long. Tombstones are kept until they expire, so
//! a withdrawn entry does not come back from a peer that missed the withdrawal.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::entry::{Digest, Entry, KEY_LEN};

/// The catalog's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in all, at most.
    pub max_entries: usize,
    /// Entries from one publisher, at most.
    pub per_publisher: usize,
    /// How far ahead an entry may expire.
    pub max_lifetime: Duration,
    /// Clock disagreement tolerated on top of `max_lifetime`.
    pub skew: Duration,
    /// Events waiting for the driver, at most (past it, the oldest are dropped).
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000,
            per_publisher: 256,
            max_lifetime: Duration::from_secs(7 * 24 * 3600),
            skew: Duration::from_secs(2 * 3600),
            max_events: 4096,
        }
    }
}

/// Why an entry was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// It expired.
    Expired,
    /// It made room for another (the catalog was full).
    Evicted,
}

/// What changed in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new entry (a tombstone too: check [`Entry::is_tombstone`]).
    Added(Digest),
    /// An entry replaced an older one of the same publisher, kind and name.
    Replaced {
        /// The old one's digest.
        old: Digest,
        /// The new one's.
        new: Digest,
    },
    /// An entry went.
    Removed {
        /// Its digest.
        digest: Digest,
        /// Why.
        why: Removal,
    },
}

/// Why an entry was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// It has expired.
    #[error("the entry has expired")]
    Expired,
    /// It expires further ahead than the catalog allows.
    #[error("the entry expires more than the allowed lifetime ahead")]
    TooLong,
    /// An entry of the same name with the same or a higher seq is held.
    #[error("an entry of that name with seq {held} is held (this one has {got})")]
    Stale {
        /// The held seq.
        held: u64,
        /// The refused one.
        got: u64,
    },
    /// Its publisher has [`Limits::per_publisher`] entries.
    #[error("its publisher has {0} entries already")]
    PublisherFull(usize),
    /// The catalog is full and nothing may make room.
    #[error("the catalog is full ({0} entries) and nothing expires sooner")]
    Full(usize),
}

/// The result of a successful insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// It is new here.
    New,
    /// It was held already.
    Known,
}

type Name = ([u8; KEY_LEN], u8, String);

/// The bounded catalog.
#[derive(Debug)]
pub struct Catalog {
    own: [u8; KEY_LEN],
    limits: Limits,
    entries: BTreeMap<Digest, Entry>,
    by_name: BTreeMap<Name, Digest>,
    by_expiry: BTreeSet<(u64, Digest)>,
    per_publisher: BTreeMap<[u8; KEY_LEN], usize>,
    events: VecDeque<Event>,
    events_dropped: u64,
}

fn name_of(e: &Entry) -> Name {
    (*e.publisher(), e.kind(), e.record().name.clone())
}

impl Catalog {
    /// An empty catalog of the node whose public key is `own` (its entries are never
    /// evicted).
    pub fn new(own: [u8; KEY_LEN], limits: Limits) -> Catalog {
        Catalog {
            own,
            limits,
            entries: BTreeMap::new(),
            by_name: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            per_publisher: BTreeMap::new(),
            events: VecDeque::new(),
            events_dropped: 0,
        }
    }

    /// Entries held (tombstones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry with `digest`.
    pub fn get(&self, digest: &Digest) -> Option<&Entry> {
        self.entries.get(digest)
    }

    /// Whether it holds `digest`.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.entries.contains_key(digest)
    }

    /// The entries, by digest.
    pub fn entries(&self) -> &BTreeMap<Digest, Entry> {
        &self.entries
    }

    /// The live (not withdrawn) entry of `publisher`, `kind` and `name`.
    pub fn by_name(&self, publisher: &[u8; KEY_LEN], kind: u8, name: &str) -> Option<&Entry> {
        let d = self.by_name.get(&(*publisher, kind, name.to_owned()))?;
        self.entries.get(d).filter(|e| !e.is_tombstone())
    }

    /// Events dropped because nobody drained them.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= self.limits.max_events {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    /// Store `entry` at wall-clock `now_ms`, replacing an older one of its name, making
    /// room if the catalog is full; or say why not.
    pub fn insert(&mut self, now_ms: u64, entry: Entry) -> Result<Inserted, CatalogError> {
        if self.entries.contains_key(entry.digest()) {
            return Ok(Inserted::Known);
        }
        if entry.expires_ms() <= now_ms {
            return Err(CatalogError::Expired);
        }
        let horizon = self.limits.max_lifetime + self.limits.skew;
        if entry.expires_ms() > now_ms.saturating_add(horizon.as_millis() as u64) {
            return Err(CatalogError::TooLong);
        }
        let name = name_of(&entry);
        let old = self.by_name.get(&name).copied();
        if let Some(old) = old.and_then(|d| self.entries.get(&d)) {
            if old.seq() >= entry.seq() {
                return Err(CatalogError::Stale {
                    held: old.seq(),
                    got: entry.seq(),
                });
            }
        }
        let own = *entry.publisher() == self.own;
        if old.is_none() {
            let n = self
                .per_publisher
                .get(entry.publisher())
                .copied()
                .unwrap_or(0);
            if n >= self.limits.per_publisher {
                return Err(CatalogError::PublisherFull(n));
            }
            if self.entries.len() >= self.limits.max_entries {
                let victim = self
                    .by_expiry
                    .iter()
                    .find(|(_, d)| {
                        self.entries
                            .get(d)
                            .is_some_and(|e| *e.publisher() != self.own)
                    })
                    .copied();
                match victim {
                    // A newcomer that expires sooner than any victim is the one to go.
                    Some((at, d)) if own || at < entry.expires_ms() => {
                        self.remove(&d);
                        self.event(Event::Removed {
                            digest: d,
                            why: Removal::Evicted,
                        });
                    }
                    _ => return Err(CatalogError::Full(self.entries.len())),
                }
            }
        }
        let digest = *entry.digest();
        if let Some(o) = old {
            self.remove(&o);
            self.event(Event::Replaced {
                old: o,
                new: digest,
            });
        } else {
            self.event(Event::Added(digest));
        }
        *self.per_publisher.entry(*entry.publisher()).or_insert(0) += 1;
        self.by_expiry.insert((entry.expires_ms(), digest));
        self.by_name.insert(name, digest);
        self.entries.insert(digest, entry);
        Ok(Inserted::New)
    }

    fn remove(&mut self, digest: &Digest) -> Option<Entry> {
        let e = self.entries.remove(digest)?;
        self.by_expiry.remove(&(e.expires_ms(), *digest));
        let name = name_of(&e);
        if self.by_name.get(&name) == Some(digest) {
            self.by_name.remove(&name);
        }
        if let Some(n) = self.per_publisher.get_mut(e.publisher()) {
            *n -= 1;
            if *n == 0 {
                self.per_publisher.remove(e.publisher());
            }
        }
        Some(e)
    }

    /// Remove every entry expired at wall-clock `now_ms`; how many went.
    pub fn sweep(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        while let Some(&(at, d)) = self.by_expiry.first() {
            if at > now_ms {
                break;
            }
            self.remove(&d);
            self.event(Event::Removed {
                digest: d,
                why: Removal::Expired,
            });
            n += 1;
        }
        n
    }

    /// The earliest expiry held, wall-clock ms.
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|(at, _)| *at)
    }
}
