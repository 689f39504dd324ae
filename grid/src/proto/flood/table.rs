//! The seen-set and reverse-path table in one: for each query id a node has seen, which
//! neighbour it came from (none for the node's own searches), which neighbours it was
//! forwarded to (only they may answer it) and how many hits were passed back. Entries
//! live a fixed time, so insertion order is expiry order; the table is bounded, and when
//! it is full the oldest entry goes first.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rns_core::Instant;

use super::message::QueryId;
use super::Peer;

/// What a node remembers of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The neighbour it came from; `None` for this node's own search.
    pub from: Option<Peer>,
    /// The neighbours it was forwarded to (at most the fan-out).
    pub forwarded_to: Vec<Peer>,
    /// The budget each of them was given (same order); zeroed when it gives some back.
    pub budget_to: Vec<u16>,
    /// The query as this node forwarded it (TTL, hops, query), to forward budget given
    /// back ([`super::message::Body::Return`]) to other neighbours.
    pub search: Option<super::message::Search>,
    /// Budget given back and not yet placed again.
    pub regather: u16,
    /// Hits passed back towards the origin so far.
    pub passed: u8,
    /// Hits the origin wants (a relay passes no more).
    pub want: u8,
}

/// The bounded, expiring table of queries seen.
#[derive(Debug)]
pub struct Seen {
    entries: HashMap<QueryId, Entry>,
    order: VecDeque<(Instant, QueryId)>,
    max: usize,
    lifetime: Duration,
    evicted: u64,
}

impl Seen {
    /// A table of at most `max` entries (at least one), each kept `lifetime`.
    pub fn new(max: usize, lifetime: Duration) -> Seen {
        Seen {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            lifetime,
            evicted: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries pushed out early because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Whether `id` was seen (and not yet forgotten).
    pub fn contains(&self, id: &QueryId) -> bool {
        self.entries.contains_key(id)
    }

    /// Remember `id` at `now`; `false` (and nothing changes) if it was seen already.
    pub fn insert(&mut self, now: Instant, id: QueryId, entry: Entry) -> bool {
        self.expire(now);
        if self.entries.contains_key(&id) {
            return false;
        }
        while self.entries.len() >= self.max {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            if self.entries.remove(&old).is_some() {
                self.evicted += 1;
            }
        }
        self.entries.insert(id, entry);
        self.order.push_back((now + self.lifetime, id));
        true
    }

    /// The entry for `id`.
    pub fn get(&self, id: &QueryId) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// The entry for `id`, to change.
    pub fn get_mut(&mut self, id: &QueryId) -> Option<&mut Entry> {
        self.entries.get_mut(id)
    }

    /// Forget entries whose time is up.
    pub fn expire(&mut self, now: Instant) {
        while let Some((t, id)) = self.order.front().copied() {
            if t > now {
                break;
            }
            self.order.pop_front();
            self.entries.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            from: Some([1; 16]),
            forwarded_to: vec![],
            budget_to: vec![],
            search: None,
            regather: 0,
            passed: 0,
            want: 1,
        }
    }

    #[test]
    fn entries_are_deduplicated_expire_and_are_bounded() {
        let t = Instant::from_secs(10);
        let mut s = Seen::new(3, Duration::from_secs(30));
        assert!(s.insert(t, [1; 16], entry()));
        assert!(!s.insert(t, [1; 16], entry()), "a duplicate");
        for n in 2..=5u8 {
            assert!(s.insert(t + Duration::from_secs(u64::from(n)), [n; 16], entry()));
            assert!(s.len() <= 3);
        }
        assert_eq!(s.evicted(), 2);
        assert!(!s.contains(&[1; 16]) && !s.contains(&[2; 16]));
        assert!(s.contains(&[5; 16]));
        // Time passes: everything is forgotten, and an old id is new again.
        s.expire(t + Duration::from_secs(36));
        assert!(s.is_empty());
        assert!(s.insert(t + Duration::from_secs(40), [1; 16], entry()));
    }
}
