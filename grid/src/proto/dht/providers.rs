//! Provider records: who provides a key (an adapter's content hash, a skill topic), kept
//! for a TTL after each (re)publication, as libp2p keeps them (48 h, republished every
//! 12 h). Bounded three ways: keys held, providers per key, and keys per provider, so no
//! one publisher can fill the store.

use std::collections::HashMap;
use std::time::Duration;

use rns_core::Instant;

use super::key::{Contact, Key};

/// The limits of a provider store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderLimits {
    /// How long a record is kept after it was last published.
    pub ttl: Duration,
    /// Keys held, at most.
    pub keys: usize,
    /// Providers kept per key, at most (the longest-lived are kept).
    pub per_key: usize,
    /// Keys one provider may hold records under here, at most.
    pub per_provider: usize,
}

/// Provider records held by this node for others.
#[derive(Debug)]
pub struct ProviderStore {
    limits: ProviderLimits,
    records: HashMap<Key, Vec<(Contact, Instant)>>,
    by_provider: HashMap<Key, usize>,
}

impl ProviderStore {
    /// An empty store.
    pub fn new(limits: ProviderLimits) -> ProviderStore {
        ProviderStore {
            limits,
            records: HashMap::new(),
            by_provider: HashMap::new(),
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Keep (or renew) `provider` for `key` at `now`; false if a limit refused it.
    pub fn add(&mut self, key: Key, provider: Contact, now: Instant) -> bool {
        let expires = now + self.limits.ttl;
        if let Some(list) = self.records.get_mut(&key) {
            if let Some(r) = list.iter_mut().find(|(c, _)| c.id == provider.id) {
                r.1 = expires;
                return true;
            }
        }
        let held = self.by_provider.get(&provider.id).copied().unwrap_or(0);
        if held >= self.limits.per_provider {
            return false;
        }
        if !self.records.contains_key(&key) && self.records.len() >= self.limits.keys {
            self.expire(now);
            if self.records.len() >= self.limits.keys {
                return false;
            }
        }
        let list = self.records.entry(key).or_default();
        if list.len() >= self.limits.per_key {
            return false;
        }
        list.push((provider, expires));
        *self.by_provider.entry(provider.id).or_default() += 1;
        true
    }

    /// The live providers of `key`, at most `n`.
    pub fn get(&self, key: &Key, now: Instant, n: usize) -> Vec<Contact> {
        self.records.get(key).map_or_else(Vec::new, |list| {
            list.iter()
                .filter(|(_, e)| *e > now)
                .take(n)
                .map(|(c, _)| *c)
                .collect()
        })
    }

    /// Drop expired records.
    pub fn expire(&mut self, now: Instant) {
        let by_provider = &mut self.by_provider;
        self.records.retain(|_, list| {
            list.retain(|(c, e)| {
                let live = *e > now;
                if !live {
                    if let Some(n) = by_provider.get_mut(&c.id) {
                        *n -= 1;
                        if *n == 0 {
                            by_provider.remove(&c.id);
                        }
                    }
                }
                live
            });
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dht::key::PUBLIC_LEN;

    fn contact(n: u8) -> Contact {
        Contact::from_public([n; PUBLIC_LEN])
    }

    const LIMITS: ProviderLimits = ProviderLimits {
        ttl: Duration::from_secs(100),
        keys: 3,
        per_key: 2,
        per_provider: 2,
    };

    #[test]
    fn records_expire_unless_renewed() {
        let mut s = ProviderStore::new(LIMITS);
        let (k, t0) = (Key([1; 16]), Instant::from_millis(0));
        assert!(s.add(k, contact(1), t0));
        assert!(s.add(k, contact(2), t0 + Duration::from_secs(60)));
        let later = t0 + Duration::from_secs(120);
        assert_eq!(s.get(&k, later, 10), vec![contact(2)]);
        s.expire(later);
        assert_eq!(s.len(), 1);
        // Renewing keeps it.
        assert!(s.add(k, contact(2), later));
        assert_eq!(
            s.get(&k, later + Duration::from_secs(90), 10),
            vec![contact(2)]
        );
    }

    #[test]
    fn limits_bound_keys_providers_and_publishers() {
        let mut s = ProviderStore::new(LIMITS);
        let t0 = Instant::from_millis(0);
        // One publisher: two keys at most.
        assert!(s.add(Key([1; 16]), contact(1), t0));
        assert!(s.add(Key([2; 16]), contact(1), t0));
        assert!(!s.add(Key([3; 16]), contact(1), t0));
        // Two providers per key.
        assert!(s.add(Key([1; 16]), contact(2), t0));
        assert!(!s.add(Key([1; 16]), contact(3), t0));
        // Three keys in all.
        assert!(s.add(Key([3; 16]), contact(3), t0));
        assert!(!s.add(Key([4; 16]), contact(4), t0));
        assert_eq!(s.len(), 4);
        // Once records expire, room comes back.
        let later = t0 + Duration::from_secs(101);
        assert!(s.add(Key([4; 16]), contact(4), later));
        assert!(s.add(Key([5; 16]), contact(1), later));
    }
}
