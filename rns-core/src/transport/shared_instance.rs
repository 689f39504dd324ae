//! Shared instance: routing for local clients — programs on this host attached over the
//! local socket (RNS `LocalInterface`) — and the client's view of its instance.
//!
//! As RNS does: the local hop does not count (a client's destinations are 0 hops from its
//! instance, and the network sees them 1 hop away); the instance routes for its clients
//! even when it is not a transport node; every announce it accepts is passed on to its
//! clients at once; a client's announces go out at once, one time; path requests travel
//! between clients and the network both ways. A client sends to any destination beyond
//! its instance through the instance (HEADER_2), even to the instance's neighbours.

use super::inbound::Inbound;
use super::interface::LocalRole;
use super::{AnnounceEntry, InterfaceId, Transport, PATHFINDER_R};
use crate::destination::DestinationType;
use crate::hash::AddressHash;
use crate::packet::PacketType;
use crate::time::Instant;

impl Transport {
    /// Which end of a shared-instance connection an interface is, if any.
    pub(crate) fn role(&self, iface: InterfaceId) -> LocalRole {
        self.interfaces
            .get(&iface)
            .map_or(LocalRole::Network, |s| s.config.local)
    }

    /// Whether any local client is attached.
    pub(crate) fn has_local_clients(&self) -> bool {
        self.interfaces
            .values()
            .any(|s| s.config.local == LocalRole::Client)
    }

    /// Interfaces to our local clients.
    pub(crate) fn local_clients(&self) -> Vec<InterfaceId> {
        self.interfaces
            .iter()
            .filter(|(_, s)| s.config.local == LocalRole::Client && s.online)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many programs are attached to this shared instance right now.
    pub fn local_client_count(&self) -> usize {
        self.local_clients().len()
    }

    /// Whether the path to `d` ends at one of our local clients.
    pub(crate) fn for_local_client(&self, d: &AddressHash) -> bool {
        self.paths
            .get(d)
            .is_some_and(|p| p.hops == 0 && self.role(p.interface) == LocalRole::Client)
    }

    /// Pass an accepted announce on to every local client but the one it came from, as
    /// coming through us, at once.
    pub(crate) fn announce_to_local_clients(&mut self, now: Instant, p: &Inbound) {
        let clients = self.local_clients();
        if clients.is_empty() {
            return;
        }
        let d = p.view.destination();
        for c in clients.into_iter().filter(|c| *c != p.iface) {
            let raw = self.rebroadcast_packet(
                d,
                p.hops,
                p.view.data().to_vec(),
                p.flags.context_flag,
                false,
            );
            self.route(now, raw, Some(c));
        }
    }

    /// Put a received announce in the announce table for rebroadcast at `at`; `retries`
    /// counts as already made (`PATHFINDER_R` means one send and no retry).
    pub(crate) fn queue_rebroadcast(&mut self, p: &Inbound, at: Instant, retries: u8) {
        self.announce_table.insert(
            p.view.destination(),
            AnnounceEntry {
                retransmit_at: at,
                retries,
                hops: p.hops,
                data: p.view.data().to_vec(),
                context_flag: p.flags.context_flag,
                local_rebroadcasts: 0,
                block_rebroadcasts: false,
                attached: None,
            },
        );
    }

    /// A local client announced: send it on to the network now, one time.
    pub(crate) fn rebroadcast_for_local_client(&mut self, now: Instant, p: &Inbound) {
        self.queue_rebroadcast(p, now, PATHFINDER_R);
        self.announce_job(now);
    }

    /// Plain broadcasts (other than path requests) cross between clients and the network:
    /// from a client to every other interface, from the network to every client.
    pub(crate) fn relay_plain_broadcast(&mut self, p: &Inbound) {
        let d = p.view.destination();
        if p.flags.destination_type != DestinationType::Plain
            || p.flags.packet_type != PacketType::Data
            || d == self.pr_destination
            || d == self.tunnel_destination
        {
            return;
        }
        let to: Vec<InterfaceId> = if self.role(p.iface) == LocalRole::Client {
            self.interfaces
                .keys()
                .copied()
                .filter(|i| *i != p.iface)
                .collect()
        } else {
            self.local_clients()
        };
        for i in to {
            self.transmit(i, p.view.as_bytes().to_vec());
        }
    }
}
