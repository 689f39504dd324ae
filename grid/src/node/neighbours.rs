//! Which Grid nodes are neighbours for the discovery protocols that talk hop by hop
//! (catalog gossip, flood search): those heard directly (one hop) on a fast interface,
//! whose identity the node knows. Radio neighbours are left out for now: their messages
//! would need the LoRa budget and airtime pricing (docs/discovery.md).

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
        let Some(id) = self.recall_node(&node).filter(|_| !on_radio) else {
            return;
        };
        let peer = *id.hash().as_bytes();
        self.gossip_heard(now, peer, node);
        self.flood_heard(now, peer, node);
    }
}
