//! Ratchets on local SINGLE destinations: enabling them with the keys kept so far, their
//! policy, and the file to store after a rotation ([`crate::ratchets`] holds the keys).

use super::{DestinationType, SendError, Transport};
use crate::identity::Identity;
use crate::ratchets::Ratchets;
use crate::{AddressHash, Instant};

impl Transport {
    /// Enable ratchets on a local SINGLE destination (RNS: `enable_ratchets`), with the
    /// keys kept so far (from [`Transport::ratchet_file`] read back through
    /// [`Ratchets::from_file`]; none for a new destination). Its next announce makes a
    /// new key, carries it, and raises [`super::Event::RatchetsRotated`].
    pub fn enable_ratchets(
        &mut self,
        destination: &AddressHash,
        keys: Vec<[u8; 32]>,
    ) -> Result<(), SendError> {
        let local = self
            .destinations
            .get_mut(destination)
            .filter(|l| l.kind == DestinationType::Single && l.identity.is_some())
            .ok_or(SendError::NotLocal(*destination))?;
        local.ratchets = Some(Ratchets::new(keys));
        // A cached path response would carry the announce without its ratchet.
        local.path_response = None;
        Ok(())
    }

    /// A local destination's ratchets, to set their policy (enforcement, interval, how
    /// many are kept); `None` when not enabled.
    pub fn ratchets_mut(&mut self, destination: &AddressHash) -> Option<&mut Ratchets> {
        self.destinations.get_mut(destination)?.ratchets.as_mut()
    }

    /// The signed ratchet file of a local destination (RNS's format), to store after
    /// [`super::Event::RatchetsRotated`].
    pub fn ratchet_file(&self, destination: &AddressHash) -> Option<Vec<u8>> {
        let local = self.destinations.get(destination)?;
        Some(local.ratchets.as_ref()?.to_file(local.identity.as_ref()?))
    }

    /// Decrypt a packet for local SINGLE destination `d` hosted by `identity`: its newest
    /// ratchets first, the older ones within their scan budget, then the identity key
    /// unless ratchets are enforced.
    pub(super) fn open_single(
        &mut self,
        now: Instant,
        d: &AddressHash,
        identity: &Identity,
        ciphertext: &[u8],
    ) -> Option<Vec<u8>> {
        let Some(r) = self
            .destinations
            .get_mut(d)
            .and_then(|l| l.ratchets.as_mut())
        else {
            return identity.decrypt(ciphertext, &[], false).ok();
        };
        if let Ok(plain) = identity.decrypt(ciphertext, r.recent(), true) {
            return Some(plain);
        }
        let older = if r.older().is_empty() || r.allow_deep_scan(now.as_millis()) {
            r.older()
        } else {
            self.stats.ratchet_scans_limited += 1;
            &[]
        };
        identity.decrypt(ciphertext, older, r.enforced()).ok()
    }

    /// The newest ratchet of a local destination, rotated first if due: what its next
    /// announce carries. Raises [`super::Event::RatchetsRotated`] when a key was made.
    pub(super) fn announce_ratchet(
        &mut self,
        now_s: u64,
        destination: &AddressHash,
    ) -> Option<[u8; 32]> {
        let local = self.destinations.get_mut(destination)?;
        let ratchets = local.ratchets.as_mut()?;
        if ratchets.rotate_if_due(&mut *self.rng, now_s) {
            self.push_event(super::Event::RatchetsRotated {
                destination: *destination,
            });
        }
        self.destinations
            .get(destination)?
            .ratchets
            .as_ref()?
            .current_public()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DestinationType, Event, ProofStrategy};
    use crate::ratchets::Ratchets;
    use crate::testnet::TestNet;

    fn delivered(net: &TestNet, node: usize, what: &[u8]) -> bool {
        net.nodes[node]
            .events
            .iter()
            .any(|e| matches!(e, Event::Packet { data, .. } if data == what))
    }

    #[test]
    fn packets_no_key_opens_try_the_older_ratchets_only_within_a_budget() {
        use crate::ratchets::{DEEP_SCANS_PER_S, RECENT_RATCHETS};
        let mut net = TestNet::new(&[false, false]);
        let (iface, _) = net.connect(0, 1);
        let d = net.register(0, "app.ratchets", ProofStrategy::All);
        let now = net.now;
        net.nodes[0].enable_ratchets(&d, Vec::new()).unwrap();
        net.nodes[0].ratchets_mut(&d).unwrap().set_interval(1);
        // The sender hears the first ratchet, then the destination moves on by enough
        // rotations that this one is among the older keys.
        net.nodes[0].announce(now, &d, None).unwrap();
        net.flush();
        for i in 0..RECENT_RATCHETS as u64 + 2 {
            let later = now + std::time::Duration::from_secs(2 * (i + 1));
            net.nodes[0].announce_ratchet(later.as_secs(), &d).unwrap();
        }
        // Garbage addressed to the destination: after the burst, no deep scans.
        let garbage = 3 * DEEP_SCANS_PER_S;
        for i in 0..garbage {
            let data = [i as u8; 80];
            let pkt = crate::packet::Packet {
                flags: crate::packet::Flags::new(
                    DestinationType::Single,
                    crate::packet::PacketType::Data,
                ),
                hops: 0,
                transport_id: None,
                destination: d,
                context: crate::packet::Context::NONE,
                data: data.to_vec(),
            };
            net.nodes[0].handle_inbound(now, iface, &pkt.to_bytes());
        }
        let stats = net.nodes[0].stats.clone();
        assert_eq!(stats.undecryptable, garbage);
        assert_eq!(stats.ratchet_scans_limited, garbage - 2 * DEEP_SCANS_PER_S);
        // A second later there is budget again: a sender with the old ratchet gets through.
        let later = now + std::time::Duration::from_secs(1);
        net.nodes[1].send_single(later, &d, b"old ratchet").unwrap();
        net.now = later;
        net.flush();
        assert!(delivered(&net, 0, b"old ratchet"));
    }

    #[test]
    fn enforced_ratchets_refuse_identity_key_packets_and_open_ratchet_ones() {
        let mut net = TestNet::new(&[false, false]);
        net.connect(0, 1);
        let d = net.register(0, "app.ratchets", ProofStrategy::All);
        let now = net.now;
        // Heard without a ratchet: the sender encrypts to the identity key.
        net.nodes[0].announce(now, &d, None).unwrap();
        net.flush();
        net.nodes[0].enable_ratchets(&d, Vec::new()).unwrap();
        net.nodes[0].ratchets_mut(&d).unwrap().set_enforced(true);
        net.nodes[1]
            .send_single(now, &d, b"to the identity")
            .unwrap();
        net.flush();
        assert!(!delivered(&net, 0, b"to the identity"));
        assert_eq!(net.nodes[0].stats.undecryptable, 1);

        // The next announce makes and carries a ratchet; packets to it open.
        net.nodes[0].announce(now, &d, None).unwrap();
        net.flush();
        assert!(net.nodes[0]
            .events
            .iter()
            .any(|e| matches!(e, Event::RatchetsRotated { destination } if *destination == d)));
        net.nodes[1]
            .send_single(now, &d, b"to the ratchet")
            .unwrap();
        net.flush();
        assert!(delivered(&net, 0, b"to the ratchet"));

        // The stored file holds that key, signed by the destination's identity; loaded
        // again (a restart), packets to the ratchet the sender knows still open.
        let file = net.nodes[0].ratchet_file(&d).unwrap();
        let identity = net.nodes[0].recall_identity(&d).unwrap();
        let keys = Ratchets::from_file(&identity, &file).unwrap();
        assert_eq!(keys.len(), 1);
        net.nodes[0].enable_ratchets(&d, keys).unwrap();
        net.nodes[0].ratchets_mut(&d).unwrap().set_enforced(true);
        net.nodes[1]
            .send_single(now, &d, b"after a restart")
            .unwrap();
        net.flush();
        assert!(delivered(&net, 0, b"after a restart"));
        // Only SINGLE destinations hosted here take ratchets.
        let plain = net.nodes[0].register_plain_destination("app.plain");
        assert!(net.nodes[0].enable_ratchets(&plain, Vec::new()).is_err());
    }
}
