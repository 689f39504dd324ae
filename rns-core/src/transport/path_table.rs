//! The path table: for each destination, the next hop, hop count and interface to use.

use super::HashMap;

use super::interface::InterfaceId;
use crate::announce::{emission_time, RANDOM_HASH_LEN};
use crate::hash::AddressHash;
use crate::time::Instant;

/// Random blobs remembered per destination.
pub(crate) const MAX_RANDOM_BLOBS: usize = 64;

/// Whether a path is known to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathState {
    /// Not yet tried.
    #[default]
    Unknown,
    /// A communication attempt over it failed.
    Unresponsive,
    /// It has carried traffic successfully.
    Responsive,
}

/// One path table entry (kept small: there is one per reachable destination).
#[derive(Debug, Clone)]
pub(crate) struct PathEntry {
    /// Transport id of the next hop, or the destination itself when directly reachable.
    pub(crate) next_hop: AddressHash,
    /// When the entry was written or last used (Unix seconds).
    pub(crate) timestamp: u32,
    /// When the entry expires (Unix seconds); refreshed when the path is used.
    pub(crate) expires: u32,
    /// Interface the announce arrived on.
    pub(crate) interface: InterfaceId,
    /// Hops to the destination (1 = directly connected).
    pub(crate) hops: u8,
    /// Responsiveness.
    pub(crate) state: PathState,
    /// Random hashes of announces heard for this destination.
    pub(crate) blobs: RandomBlobs,
}

/// Unix seconds as stored in path entries.
pub(crate) fn secs(t: Instant) -> u32 {
    t.as_secs().min(u64::from(u32::MAX)) as u32
}

/// The random hashes of announces heard for a destination: the newest inline (most
/// destinations only ever have one), older ones boxed, at most [`MAX_RANDOM_BLOBS`] in all.
#[derive(Debug, Clone, Default)]
pub(crate) struct RandomBlobs {
    newest: Option<[u8; RANDOM_HASH_LEN]>,
    // Boxed on purpose: 8 bytes in every entry instead of Vec's 24; most never need it.
    #[allow(clippy::box_collection)]
    older: Option<Box<Vec<[u8; RANDOM_HASH_LEN]>>>,
}

impl RandomBlobs {
    pub(crate) fn contains(&self, b: &[u8; RANDOM_HASH_LEN]) -> bool {
        self.newest.as_ref() == Some(b) || self.older.as_ref().is_some_and(|o| o.contains(b))
    }

    fn iter(&self) -> impl Iterator<Item = &[u8; RANDOM_HASH_LEN]> {
        self.newest
            .iter()
            .chain(self.older.iter().flat_map(|o| o.iter()))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    fn push(&mut self, b: [u8; RANDOM_HASH_LEN]) {
        if let Some(prev) = self.newest.replace(b) {
            let older = self.older.get_or_insert_with(Default::default);
            older.push(prev);
            if older.len() >= MAX_RANDOM_BLOBS {
                let excess = older.len() + 1 - MAX_RANDOM_BLOBS;
                older.drain(..excess);
            }
        }
    }
}

impl PathEntry {
    /// Latest emission time among the remembered announces.
    pub(crate) fn timebase(&self) -> u64 {
        self.blobs.iter().map(emission_time).max().unwrap_or(0)
    }

    pub(crate) fn remember_blob(&mut self, blob: [u8; RANDOM_HASH_LEN]) {
        if !self.blobs.contains(&blob) {
            self.blobs.push(blob);
        }
    }

    /// Expiry as an instant.
    pub(crate) fn expires_at(&self) -> Instant {
        Instant::from_secs(u64::from(self.expires))
    }
}

/// Decide whether an announce (already validated) replaces the current path.
///
/// Rules (RNS 1.5): unknown destination → accept; fewer-or-equal hops → accept a new blob
/// emitted after the timebase; more hops → accept a new blob if the path expired or the
/// emission is newer than every known one, or the same emission over an unresponsive path.
pub(crate) fn should_accept(
    existing: Option<&PathEntry>,
    hops: u8,
    blob: &[u8; RANDOM_HASH_LEN],
    now: Instant,
) -> bool {
    let Some(e) = existing else { return true };
    let emitted = emission_time(blob);
    let new_blob = !e.blobs.contains(blob);
    let timebase = e.timebase();
    if hops <= e.hops {
        new_blob && emitted > timebase
    } else if now >= e.expires_at() || emitted > timebase {
        new_blob
    } else {
        emitted == timebase && e.state == PathState::Unresponsive
    }
}

/// The path table, bounded in size.
#[derive(Debug)]
pub(crate) struct PathTable {
    entries: HashMap<AddressHash, PathEntry>,
    max: usize,
}

impl PathTable {
    pub(crate) fn new(max: usize, state: super::HashState) -> Self {
        PathTable {
            entries: HashMap::with_hasher(state),
            max: max.max(1),
        }
    }

    pub(crate) fn get(&self, d: &AddressHash) -> Option<&PathEntry> {
        self.entries.get(d)
    }

    pub(crate) fn get_mut(&mut self, d: &AddressHash) -> Option<&mut PathEntry> {
        self.entries.get_mut(d)
    }

    pub(crate) fn contains(&self, d: &AddressHash) -> bool {
        self.entries.contains_key(d)
    }

    /// Insert or replace. When full, the entry that expires first makes room.
    pub(crate) fn insert(&mut self, d: AddressHash, e: PathEntry) {
        if !self.entries.contains_key(&d) && self.entries.len() >= self.max {
            if let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&victim);
            }
        }
        self.entries.insert(d, e);
    }

    pub(crate) fn remove(&mut self, d: &AddressHash) -> Option<PathEntry> {
        self.entries.remove(d)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&AddressHash, &PathEntry)> {
        self.entries.iter()
    }

    /// Drop expired entries and entries on interfaces that are gone.
    pub(crate) fn cull(&mut self, now: Instant, interface_exists: impl Fn(InterfaceId) -> bool) {
        let now = secs(now);
        self.entries
            .retain(|_, e| now < e.expires && interface_exists(e.interface));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn blob(t: u64, r: u8) -> [u8; 10] {
        let mut b = [r; 10];
        b[5..].copy_from_slice(&t.to_be_bytes()[3..]);
        b
    }

    fn entry(hops: u8, blobs: &[[u8; 10]], expires: Instant) -> PathEntry {
        PathEntry {
            timestamp: 0,
            next_hop: AddressHash([0; 16]),
            hops,
            expires: secs(expires),
            interface: InterfaceId(0),
            state: PathState::Unknown,
            blobs: {
                let mut b = RandomBlobs::default();
                for x in blobs {
                    b.push(*x);
                }
                b
            },
        }
    }

    #[test]
    fn acceptance_rules() {
        let now = Instant::from_secs(10_000);
        let later = now + Duration::from_secs(100);
        let e = entry(3, &[blob(100, 1)], later);
        assert!(should_accept(None, 9, &blob(1, 1), now));
        // Equal or fewer hops: needs a new blob emitted after the timebase.
        assert!(should_accept(Some(&e), 2, &blob(101, 2), now));
        assert!(!should_accept(Some(&e), 2, &blob(100, 2), now));
        assert!(!should_accept(Some(&e), 3, &blob(100, 1), now));
        // More hops: newer emission wins, same emission does not...
        assert!(should_accept(Some(&e), 5, &blob(101, 3), now));
        assert!(!should_accept(Some(&e), 5, &blob(100, 3), now));
        // ... unless the path is unresponsive.
        let mut u = e.clone();
        u.state = PathState::Unresponsive;
        assert!(should_accept(Some(&u), 5, &blob(100, 3), now));
        // Expired path: any new blob.
        let x = entry(3, &[blob(100, 1)], now);
        assert!(should_accept(Some(&x), 5, &blob(50, 4), now));
        assert!(!should_accept(Some(&x), 5, &blob(100, 1), now));
    }

    #[test]
    fn blobs_are_bounded_and_table_evicts() {
        let mut e = entry(1, &[], Instant::ZERO);
        for i in 0..100u64 {
            e.remember_blob(blob(i, 0));
        }
        assert_eq!(e.blobs.len(), MAX_RANDOM_BLOBS);
        assert!(e.blobs.contains(&blob(99, 0)) && e.blobs.contains(&blob(36, 0)));
        assert!(!e.blobs.contains(&blob(35, 0)));
        assert_eq!(e.timebase(), 99);

        let mut t = PathTable::new(2, Default::default());
        t.insert(AddressHash([1; 16]), entry(1, &[], Instant::from_secs(5)));
        t.insert(AddressHash([2; 16]), entry(1, &[], Instant::from_secs(9)));
        t.insert(AddressHash([3; 16]), entry(1, &[], Instant::from_secs(7)));
        assert_eq!(t.len(), 2);
        assert!(!t.contains(&AddressHash([1; 16])));
        t.cull(Instant::from_secs(8), |_| true);
        assert_eq!(t.len(), 1);
        t.cull(Instant::ZERO, |_| false);
        assert_eq!(t.len(), 0);
    }
}
