//! Known destinations: the public key, app data and latest ratchet learned from announces.
//!
//! Kept compact because there is one per destination ever heard: the public key inline,
//! app data and ratchet in one optional allocation, and — only on transport nodes, which
//! replay announces to answer path requests — the rest of the signed announce.

use std::time::Duration;

use super::HashMap;
use crate::announce::{Announce, RANDOM_HASH_LEN, RATCHET_LEN};
use crate::hash::{AddressHash, NAME_HASH_LEN};
use crate::identity::{PublicIdentity, KEY_LEN, SIGNATURE_LEN};
use crate::time::Instant;

/// Ratchets received in announces are used for 30 days.
pub(crate) const RATCHET_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The parts of an announce needed, besides key and app data, to replay it.
const REPLAY_LEN: usize = NAME_HASH_LEN + RANDOM_HASH_LEN + SIGNATURE_LEN;

/// What is remembered about one remote destination.
#[derive(Debug, Clone)]
pub(crate) struct KnownDestination {
    public_key: [u8; KEY_LEN],
    /// Empty, or `has_ratchet(1) ‖ [ratchet(32)] ‖ app_data`.
    extra: Box<[u8]>,
    /// `name_hash ‖ random_hash ‖ signature` of the remembered announce (transport nodes).
    replay: Option<Box<[u8; REPLAY_LEN]>>,
    /// Unix seconds.
    received: u32,
    /// Unix seconds; 0 = never used.
    last_used: u32,
}

fn secs(t: Instant) -> u32 {
    t.as_secs().min(u64::from(u32::MAX)) as u32
}

impl KnownDestination {
    pub(crate) fn identity(&self) -> Option<PublicIdentity> {
        PublicIdentity::from_bytes(&self.public_key).ok()
    }

    fn ratchet_bytes(&self) -> Option<&[u8]> {
        (self.extra.first() == Some(&1)).then(|| &self.extra[1..1 + RATCHET_LEN])
    }

    pub(crate) fn app_data(&self) -> &[u8] {
        match self.extra.first() {
            None => &[],
            Some(1) => &self.extra[1 + RATCHET_LEN..],
            Some(_) => &self.extra[1..],
        }
    }

    pub(crate) fn ratchet(&self, now: Instant) -> Option<[u8; RATCHET_LEN]> {
        let age = Duration::from_secs(u64::from(secs(now).saturating_sub(self.received)));
        if age > RATCHET_LIFETIME {
            return None;
        }
        self.ratchet_bytes()?.try_into().ok()
    }

    /// The announce payload to replay as a path response, and its context flag.
    pub(crate) fn replay_payload(&self) -> Option<(Vec<u8>, bool)> {
        let r = self.replay.as_ref()?;
        let ratchet = self.ratchet_bytes();
        let mut out = Vec::with_capacity(KEY_LEN + REPLAY_LEN + 32 + self.app_data().len());
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&r[..NAME_HASH_LEN + RANDOM_HASH_LEN]);
        if let Some(rt) = ratchet {
            out.extend_from_slice(rt);
        }
        out.extend_from_slice(&r[NAME_HASH_LEN + RANDOM_HASH_LEN..]);
        out.extend_from_slice(self.app_data());
        Some((out, ratchet.is_some()))
    }

    fn from_announce(now: Instant, a: &Announce, keep_replay: bool, last_used: u32) -> Self {
        let extra: Box<[u8]> = match (&a.ratchet, a.app_data.is_empty()) {
            (None, true) => Box::new([]),
            (None, false) => std::iter::once(0)
                .chain(a.app_data.iter().copied())
                .collect(),
            (Some(r), _) => std::iter::once(1)
                .chain(r.iter().copied())
                .chain(a.app_data.iter().copied())
                .collect(),
        };
        let replay = keep_replay.then(|| {
            let mut r = Box::new([0u8; REPLAY_LEN]);
            r[..NAME_HASH_LEN].copy_from_slice(&a.name_hash);
            r[NAME_HASH_LEN..NAME_HASH_LEN + RANDOM_HASH_LEN].copy_from_slice(&a.random_hash);
            r[NAME_HASH_LEN + RANDOM_HASH_LEN..].copy_from_slice(&a.signature);
            r
        });
        KnownDestination {
            public_key: *a.identity.as_bytes(),
            extra,
            replay,
            received: secs(now),
            last_used,
        }
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
    keep_replay: bool,
}

impl KnownDestinations {
    /// `keep_replay`: remember enough of each announce to replay it (transport nodes).
    pub(crate) fn new(max: usize, keep_replay: bool, state: super::HashState) -> Self {
        KnownDestinations {
            map: HashMap::with_hasher(state),
            max: max.max(1),
            keep_replay,
        }
    }

    /// Check that an announced key does not contradict what is known.
    pub(crate) fn check(&self, d: &AddressHash, public_key: &[u8]) -> Result<(), RememberError> {
        match self.map.get(d) {
            Some(k) if k.public_key[..] != *public_key => Err(RememberError::KeyCollision),
            _ => Ok(()),
        }
    }

    pub(crate) fn remember(
        &mut self,
        now: Instant,
        d: AddressHash,
        announce: &Announce,
    ) -> Result<(), RememberError> {
        self.check(&d, announce.identity.as_bytes())?;
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
        let last_used = self.map.get(&d).map_or(0, |k| k.last_used);
        self.map.insert(
            d,
            KnownDestination::from_announce(now, announce, self.keep_replay, last_used),
        );
        Ok(())
    }

    pub(crate) fn get(&self, d: &AddressHash) -> Option<&KnownDestination> {
        self.map.get(d)
    }

    pub(crate) fn touch(&mut self, now: Instant, d: &AddressHash) {
        if let Some(k) = self.map.get_mut(d) {
            k.last_used = secs(now);
        }
    }

    /// Forget destinations without a path: 6 min after the announce if never used,
    /// 8.75 days after last use otherwise.
    pub(crate) fn cull(&mut self, now: Instant, has_path: impl Fn(&AddressHash) -> bool) {
        const UNUSED: u32 = 6 * 60;
        const USED: u32 = 756_000;
        let now = secs(now);
        self.map.retain(|d, k| {
            if has_path(d) {
                return true;
            }
            if k.last_used == 0 {
                now.saturating_sub(k.received) < UNUSED
            } else {
                now.saturating_sub(k.last_used) < USED
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
    use crate::announce::{build_payload, random_hash};
    use crate::destination::{destination_hash, name_hash};
    use crate::identity::Identity;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn announce(
        seed: u64,
        ratchet: Option<[u8; 32]>,
        app: &[u8],
    ) -> (AddressHash, Announce, Vec<u8>) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let id = Identity::generate(&mut rng);
        let nh = name_hash("a.b");
        let d = destination_hash(&nh, Some(&id.hash()));
        let rh = random_hash(&mut rng, 1_800_000_000);
        let p = build_payload(&id, &nh, &d, &rh, ratchet.as_ref(), app);
        (d, Announce::parse(&p, ratchet.is_some()).unwrap(), p)
    }

    #[test]
    fn collisions_bounds_and_culling() {
        let mut k = KnownDestinations::new(2, false, Default::default());
        let t = Instant::from_secs(1_000_000);
        let (a, ann_a, _) = announce(1, None, b"");
        k.remember(t, a, &ann_a).unwrap();
        let (_, other, _) = announce(2, None, b"");
        assert_eq!(k.remember(t, a, &other), Err(RememberError::KeyCollision));
        let (b, ann_b, _) = announce(3, None, b"");
        k.remember(t, b, &ann_b).unwrap();
        k.touch(t + Duration::from_secs(1), &a);
        let t2 = t + Duration::from_secs(2);
        let (c, ann_c, _) = announce(4, None, b"");
        k.remember(t2, c, &ann_c).unwrap();
        assert_eq!(k.len(), 2);
        assert!(k.get(&a).is_some(), "the used one survives eviction");
        assert!(k.get(&b).is_none());
        k.cull(t2 + Duration::from_secs(400), |_| false);
        assert!(k.get(&a).is_some());
        assert!(k.get(&c).is_none());
    }

    #[test]
    fn replay_reproduces_the_payload_with_and_without_ratchet() {
        for (ratchet, app) in [
            (None, &b""[..]),
            (None, &b"caps"[..]),
            (Some([7u8; 32]), &b"x"[..]),
            (Some([9u8; 32]), &b""[..]),
        ] {
            let (d, a, payload) = announce(5, ratchet, app);
            let mut k = KnownDestinations::new(4, true, Default::default());
            let t = Instant::from_secs(1000);
            k.remember(t, d, &a).unwrap();
            let e = k.get(&d).unwrap();
            assert_eq!(e.app_data(), app);
            assert_eq!(e.ratchet(t), ratchet);
            let (replay, flag) = e.replay_payload().unwrap();
            assert_eq!(replay, payload);
            assert_eq!(flag, ratchet.is_some());
            if ratchet.is_some() {
                assert_eq!(
                    e.ratchet(t + RATCHET_LIFETIME + Duration::from_secs(1)),
                    None
                );
            }
        }
        let (d, a, _) = announce(6, None, b"");
        let mut k = KnownDestinations::new(4, false, Default::default());
        k.remember(Instant::ZERO, d, &a).unwrap();
        assert!(k.get(&d).unwrap().replay_payload().is_none());
    }
}
