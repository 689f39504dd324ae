//! Proofs the application decides ([`ProofStrategy::App`], RNS's `PROVE_APP`): a packet
//! to such a destination is delivered as [`Event::Packet`] and remembered; the
//! application proves it with [`Transport::prove`] within [`APP_PROOF_WINDOW`], or not
//! at all. At most [`MAX_APP_PROOFS`] are remembered (the oldest is forgotten).

use super::{AppProof, InterfaceId, Transport, APP_PROOF_WINDOW, MAX_APP_PROOFS};
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::proof;
use crate::time::Instant;

#[cfg(doc)]
use super::{Event, ProofStrategy};

impl Transport {
    /// Remember a packet the application may prove.
    pub(super) fn await_app_proof(
        &mut self,
        now: Instant,
        destination: AddressHash,
        packet_hash: [u8; FULL_HASH_LEN],
        interface: InterfaceId,
    ) {
        self.forget_old_app_proofs(now);
        if self.app_proofs.len() >= MAX_APP_PROOFS {
            self.app_proofs.pop_front();
        }
        self.app_proofs.push_back(AppProof {
            packet_hash,
            destination,
            interface,
            received: now,
        });
    }

    fn forget_old_app_proofs(&mut self, now: Instant) {
        while self
            .app_proofs
            .front()
            .is_some_and(|p| now.saturating_since(p.received) > APP_PROOF_WINDOW)
        {
            self.app_proofs.pop_front();
        }
    }

    /// Prove a packet received for a [`ProofStrategy::App`] destination (the hash in its
    /// [`Event::Packet`]). Returns whether a proof was sent: false when the packet is
    /// unknown, already proved, or older than [`APP_PROOF_WINDOW`].
    pub fn prove(&mut self, now: Instant, packet_hash: &[u8; FULL_HASH_LEN]) -> bool {
        self.forget_old_app_proofs(now);
        let Some(i) = self
            .app_proofs
            .iter()
            .position(|p| &p.packet_hash == packet_hash)
        else {
            return false;
        };
        let Some(p) = self.app_proofs.remove(i) else {
            return false;
        };
        let Some(identity) = self
            .destinations
            .get(&p.destination)
            .and_then(|d| d.identity.clone())
        else {
            return false;
        };
        let pkt = proof::build(&identity, &p.packet_hash, !self.config.use_implicit_proofs);
        self.route(now, pkt.to_bytes(), Some(p.interface));
        true
    }
}
