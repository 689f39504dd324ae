//! Link packets with backpressure (`NodeHandle::send_paced`): at most [`WINDOW`] packets
//! per link wait for their proofs; a further send waits its turn (up to [`QUEUE`] per
//! link, then `busy`), so a program streams at the link's speed without flooding it (RNS
//! silently drops most of an unpaced flood). A packet whose proof times out frees its
//! slot too; closing the link fails the waiting sends.

use std::collections::{HashSet, VecDeque};

use rns_core::link::LinkId;
use rns_core::Instant;

use super::reply::{Outcome, Reply};
use super::Node;
use crate::Error;

/// Packets per link sent and not yet proven, at most.
pub(super) const WINDOW: usize = 8;
/// Sends per link waiting for a slot, at most.
pub(super) const QUEUE: usize = 256;

/// One link's paced packets.
#[derive(Default)]
pub(super) struct Paced {
    in_flight: HashSet<[u8; 32]>,
    queue: VecDeque<(Vec<u8>, Reply)>,
}

impl Node {
    /// Send `data` on `link` when a slot is free; `reply` is answered when it is sent.
    pub(super) fn send_paced(&mut self, now: Instant, link: LinkId, data: Vec<u8>, reply: Reply) {
        let p = self.links.paced.entry(link).or_default();
        if p.in_flight.len() < WINDOW && p.queue.is_empty() {
            self.paced_send(now, link, data, reply);
        } else if p.queue.len() >= QUEUE {
            reply.fail(Error::Busy(format!(
                "{QUEUE} paced packets already wait on link {link}"
            )));
        } else {
            p.queue.push_back((data, reply));
        }
    }

    fn paced_send(&mut self, now: Instant, link: LinkId, data: Vec<u8>, reply: Reply) {
        match self.transport.link_send(now, &link, &data) {
            Ok(hash) => {
                self.links
                    .paced
                    .entry(link)
                    .or_default()
                    .in_flight
                    .insert(hash);
                reply.ok(Outcome::Sent { link });
            }
            Err(e) => reply.fail(e),
        }
    }

    /// A packet on `link` was proven or its proof timed out: its slot is free.
    pub(super) fn paced_settled(&mut self, now: Instant, link: LinkId, packet: &[u8; 32]) {
        let Some(p) = self.links.paced.get_mut(&link) else {
            return;
        };
        if !p.in_flight.remove(packet) {
            return;
        }
        while let Some(p) = self.links.paced.get_mut(&link) {
            if p.in_flight.len() >= WINDOW {
                break;
            }
            let Some((data, reply)) = p.queue.pop_front() else {
                break;
            };
            self.paced_send(now, link, data, reply);
        }
    }

    /// The link closed: sends still waiting fail.
    pub(super) fn paced_closed(&mut self, link: &LinkId) {
        if let Some(p) = self.links.paced.remove(link) {
            for (_, reply) in p.queue {
                reply.fail(Error::LinkClosed(format!("link {link} closed")));
            }
        }
    }
}
