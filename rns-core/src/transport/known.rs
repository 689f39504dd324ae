//! Known destinations: the public key, app data and latest ratchet learned from announces.
//!
//! The latest validated announce payload is kept whole: it is what a transport node
//! replays to answer path requests, and the identity and app data are read from it.

use std::collections::HashMap;
use std::time::Duration;

use crate::announce::{Announce, MIN_PAYLOAD};
use crate::hash::AddressHash;
use crate::identity::{PublicIdentity, KEY_LEN};
use crate::time::Instant;

/// Ratchets received in announces are used for 30 days.
pub(crate) const RATCHET_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// What is remembered about one remote destination.
#[derive(Debug, Clone)]
pub(crate) struct KnownDestination {
    /// The last validated announce payload and its context flag (ratchet present).
    pub(crate) payload: Box<[u8]>,
    pub(crate) has_ratchet: bool,
    pub(crate) received: Instant,
    pub(crate) last_used: Instant,
}

impl KnownDestination {
    pub(crate) fn public_key(&self) -> &[u8] {
        &self.payload[..KEY_LEN]
    }

    pub(crate) fn identity(&self) -> Option<PublicIdentity> {
        PublicIdentity::from_bytes(self.public_key()).ok()
    }

    pub(crate) fn announce(&self) -> Option<Announce> {
        Announce::parse(&self.payload, self.has_ratchet).ok()
    }

    pub(crate) fn ratchet(&self, now: Instant) -> Option<[u8; 32]> {
        if !self.has_ratchet || now.saturating_since(self.received) > RATCHET_LIFETIME {
            return None;
        }
        let at = MIN_PAYLOAD - 64;
        self.payload.get(at..at + 32)?.try_into().ok()
    }
}

/// Why an announce may not be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RememberError {
    /// The destination is known with another public key.
    KeyCollision,
}

/// Known destinations, bounded.
#[derive(Debug)]
pub(crate) struct KnownDestinations {
    map: HashMap<AddressHash, KnownDestination>,
    max: usize,
}

impl KnownDestinations {
    pub(crate) fn new(max: usize) -> Self {
        KnownDestinations {
            map: HashMap::new(),
            max: max.max(1),
        }
    }

    /// Check that an announced key does not contradict what is known.
    pub(crate) fn check(&self, d: &AddressHash, public_key: &[u8]) -> Result<(), RememberError> {
        match self.map.get(d) {
            Some(k) if k.public_key() != public_key => Err(RememberError::KeyCollision),
            _ => Ok(()),
        }
    }

    pub(crate) fn remember(
        &mut self,
        now: Instant,
        d: AddressHash,
        payload: &[u8],
        has_ratchet: bool,
    ) -> Result<(), RememberError> {
        self.check(&d, &payload[..KEY_LEN.min(payload.len())])?;
        if !self.map.contains_key(&d) && self.map.len() >= self.max {
            if let Some(victim) = self
                .map
                .iter()
                .min_by_key(|(_, k)| k.last_used.max(k.received))
                .map(|(k, _)| *k)
            {
                self.map.remove(&victim);
            }
        }
        let last_used = self.map.get(&d).map_or(Instant::ZERO, |k| k.last_used);
        self.map.insert(
            d,
            KnownDestination {
                payload: payload.into(),
                has_ratchet,
                received: now,
                last_used,
            },
        );
        Ok(())
    }

    pub(crate) fn get(&self, d: &AddressHash) -> Option<&KnownDestination> {
        self.map.get(d)
    }

    pub(crate) fn touch(&mut self, now: Instant, d: &AddressHash) {
        if let Some(k) = self.map.get_mut(d) {
            k.last_used = now;
        }
    }

    /// Forget destinations without a path: 6 min after the announce if never used,
    /// 8.75 days after last use otherwise.
    pub(crate) fn cull(&mut self, now: Instant, has_path: impl Fn(&AddressHash) -> bool) {
        const UNUSED: Duration = Duration::from_secs(6 * 60);
        const USED: Duration = Duration::from_secs(756_000);
        self.map.retain(|d, k| {
            if has_path(d) {
                return true;
            }
            if k.last_used == Instant::ZERO {
                now.saturating_since(k.received) < UNUSED
            } else {
                now.saturating_since(k.last_used) < USED
            }
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collisions_bounds_and_culling() {
        let mut k = KnownDestinations::new(2);
        let t = Instant::from_secs(1_000_000);
        let a = AddressHash([1; 16]);
        k.remember(t, a, &[1; 148], false).unwrap();
        assert_eq!(
            k.remember(t, a, &[2; 148], false),
            Err(RememberError::KeyCollision)
        );
        k.remember(t, AddressHash([2; 16]), &[2; 148], false)
            .unwrap();
        k.touch(t + Duration::from_secs(1), &a);
        let t2 = t + Duration::from_secs(2);
        k.remember(t2, AddressHash([3; 16]), &[3; 148], false)
            .unwrap();
        assert_eq!(k.len(), 2);
        assert!(k.get(&a).is_some(), "the used one survives eviction");
        assert!(k.get(&AddressHash([2; 16])).is_none());
        k.cull(t2 + Duration::from_secs(400), |_| false);
        assert!(k.get(&a).is_some());
        assert!(k.get(&AddressHash([3; 16])).is_none());
    }

    #[test]
    fn ratchet_is_read_and_expires() {
        let mut payload = vec![0u8; 180];
        payload[84..116].copy_from_slice(&[7; 32]);
        let mut k = KnownDestinations::new(4);
        let t = Instant::from_secs(1000);
        k.remember(t, AddressHash([1; 16]), &payload, true).unwrap();
        let e = k.get(&AddressHash([1; 16])).unwrap();
        assert_eq!(e.ratchet(t), Some([7; 32]));
        assert_eq!(
            e.ratchet(t + RATCHET_LIFETIME + Duration::from_secs(1)),
            None
        );
    }
}
