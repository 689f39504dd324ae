//! The routing table: one bucket of at most k contacts per bit of distance from this
//! node, as in Kademlia. A full bucket keeps the contacts it has (long-lived nodes are
//! the likeliest to stay, and a flood of fresh identities cannot push them out) unless
//! one has stopped answering. A bucket takes at most `max_per_hop` contacts reached
//! through the same next hop, so identities minted behind one transport node cannot
//! fill it.

use rns_core::Instant;

use super::key::{Contact, Key, KEY_BITS};

/// One contact in a bucket.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The contact.
    pub contact: Contact,
    /// The transport node its packets go through, if not a neighbour (or not known).
    pub next_hop: Option<[u8; 16]>,
    /// When it was last heard from.
    pub seen: Instant,
    /// Requests to it that went unanswered since it was last heard from.
    pub failures: u8,
}

/// What [`RoutingTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new contact.
    Added,
    /// A contact already there, now marked as heard from.
    Refreshed,
    /// The bucket is full of contacts that answer: the newcomer is not kept.
    BucketFull,
    /// Its bucket already holds `max_per_hop` contacts behind the same next hop.
    SameHop,
    /// This node itself.
    Own,
}

/// A Kademlia routing table.
#[derive(Debug)]
pub struct RoutingTable {
    own: Key,
    k: usize,
    max_per_hop: usize,
    buckets: Vec<Vec<Entry>>,
    len: usize,
}

impl RoutingTable {
    /// The table of node `own`: buckets of `k`, at most `max_per_hop` behind one hop each.
    pub fn new(own: Key, k: usize, max_per_hop: usize) -> RoutingTable {
        RoutingTable {
            own,
            k: k.max(1),
            max_per_hop: max_per_hop.max(1),
            buckets: vec![Vec::new(); KEY_BITS],
            len: 0,
        }
    }

    /// Contacts held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no contact is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Note that `contact` was heard from at `now` (reached through `next_hop`).
    pub fn insert(
        &mut self,
        contact: Contact,
        next_hop: Option<[u8; 16]>,
        now: Instant,
    ) -> Inserted {
        let Some(b) = self.own.distance(&contact.id).bucket() else {
            return Inserted::Own;
        };
        let bucket = &mut self.buckets[b];
        if let Some(e) = bucket.iter_mut().find(|e| e.contact.id == contact.id) {
            e.seen = now;
            e.failures = 0;
            e.next_hop = next_hop;
            return Inserted::Refreshed;
        }
        if next_hop.is_some()
            && bucket.iter().filter(|e| e.next_hop == next_hop).count() >= self.max_per_hop
        {
            return Inserted::SameHop;
        }
        let entry = Entry {
            contact,
            next_hop,
            seen: now,
            failures: 0,
        };
        if bucket.len() < self.k {
            bucket.push(entry);
            self.len += 1;
            return Inserted::Added;
        }
        // Full: replace the contact that failed most, if any failed.
        match bucket
            .iter_mut()
            .filter(|e| e.failures > 0)
            .max_by_key(|e| (e.failures, std::cmp::Reverse(e.seen)))
        {
            Some(worst) => {
                *worst = entry;
                Inserted::Added
            }
            None => Inserted::BucketFull,
        }
    }

    /// A request to `id` went unanswered: it is dropped after `limit` in a row.
    pub fn failed(&mut self, id: &Key, limit: u8) {
        let Some(b) = self.own.distance(id).bucket() else {
            return;
        };
        let bucket = &mut self.buckets[b];
        if let Some(i) = bucket.iter().position(|e| e.contact.id == *id) {
            bucket[i].failures = bucket[i].failures.saturating_add(1);
            if bucket[i].failures >= limit {
                bucket.swap_remove(i);
                self.len -= 1;
            }
        }
    }

    /// The `n` contacts nearest to `key`, nearest first (contacts that failed last).
    pub fn closest(&self, key: &Key, n: usize) -> Vec<Contact> {
        let mut all: Vec<&Entry> = self.buckets.iter().flatten().collect();
        all.sort_by_key(|e| (e.failures > 0, key.distance(&e.contact.id)));
        all.into_iter().take(n).map(|e| e.contact).collect()
    }

    /// Buckets that hold contacts but were not refreshed since `before`, nearest first
    /// (their ranges are worth a lookup).
    pub fn stale_buckets(&self, before: Instant) -> Vec<usize> {
        (0..KEY_BITS)
            .filter(|b| {
                let bucket = &self.buckets[*b];
                !bucket.is_empty() && bucket.iter().all(|e| e.seen < before)
            })
            .collect()
    }

    /// Every entry, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dht::key::PUBLIC_LEN;

    fn contact(n: u16) -> Contact {
        let mut p = [0; PUBLIC_LEN];
        p[..2].copy_from_slice(&n.to_be_bytes());
        Contact::from_public(p)
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn closest_orders_by_xor_distance() {
        let mut table = RoutingTable::new(contact(0).id, 20, 20);
        for n in 1..200 {
            table.insert(contact(n), None, t(0));
        }
        let target = contact(500).id;
        let got = table.closest(&target, 20);
        assert_eq!(got.len(), 20);
        let mut all: Vec<Contact> = table.entries().map(|e| e.contact).collect();
        all.sort_by_key(|c| target.distance(&c.id));
        assert_eq!(got, all[..20].to_vec());
    }

    #[test]
    fn a_full_bucket_keeps_live_contacts_and_replaces_failed_ones() {
        let own = contact(0).id;
        let mut table = RoutingTable::new(own, 2, 2);
        // Fill the far bucket (half the space lands there).
        let far: Vec<Contact> = (1..100)
            .map(contact)
            .filter(|c| own.distance(&c.id).bucket() == Some(127))
            .take(3)
            .collect();
        assert_eq!(table.insert(far[0], None, t(0)), Inserted::Added);
        assert_eq!(table.insert(far[1], None, t(0)), Inserted::Added);
        assert_eq!(table.insert(far[2], None, t(1)), Inserted::BucketFull);
        assert_eq!(table.insert(far[0], None, t(2)), Inserted::Refreshed);
        table.failed(&far[1].id, 3);
        assert_eq!(table.insert(far[2], None, t(3)), Inserted::Added);
        let held: Vec<Key> = table.entries().map(|e| e.contact.id).collect();
        assert!(held.contains(&far[2].id) && !held.contains(&far[1].id));
        // Failing past the limit drops a contact.
        table.failed(&far[0].id, 1);
        assert_eq!(table.len(), 1);
        assert_eq!(table.insert(contact(0), None, t(4)), Inserted::Own);
    }

    #[test]
    fn one_next_hop_cannot_fill_a_bucket() {
        let own = contact(0).id;
        let mut table = RoutingTable::new(own, 20, 3);
        let hop = Some([1; 16]);
        let far: Vec<Contact> = (1..400)
            .map(contact)
            .filter(|c| own.distance(&c.id).bucket() == Some(127))
            .take(6)
            .collect();
        let got: Vec<Inserted> = far[..5]
            .iter()
            .map(|c| table.insert(*c, hop, t(0)))
            .collect();
        assert_eq!(got[..3], [Inserted::Added; 3]);
        assert_eq!(got[3..], [Inserted::SameHop; 2]);
        // Another hop, or a neighbour, still gets in.
        assert_eq!(table.insert(far[5], Some([2; 16]), t(0)), Inserted::Added);
    }
}
