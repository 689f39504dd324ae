//! Which Grid nodes are neighbours for the discovery protocols that talk hop by hop
//! (catalog gossip, flood search): those heard directly (one hop) whose identity the
//! node knows. On a fast interface they take part in both; heard over radio they are
//! gossip's radio neighbours only (a sparser round, LoRa-sized messages, priced against
//! the interface's airtime: [`crate::proto::gossip::radio`]). The flood search stays
//! off radio: its answers would need retransmission there (docs/discovery.md).

use rns_core::{AddressHash, Instant};

use super::Node;

impl Node {
    /// A Grid node announced `hops` away: if it is a neighbour, gossip and flood search
    /// take it on.
    pub(super) fn neighbour_heard(&mut self, now: Instant, node: AddressHash, hops: u8) {
        if hops > 1 {
            return;
        }
        let on_radio = self
            .transport
            .path(&node)
            .is_some_and(|p| self.interfaces.slow.contains(&p.interface));
        let Some(id) = self.recall_node(&node) else {
            return;
        };
        let peer = *id.hash().as_bytes();
        if on_radio {
            self.gossip_heard_on_radio(now, peer, node);
        } else {
            self.gossip_heard(now, peer, node);
            self.flood_heard(now, peer, node);
        }
    }
}
