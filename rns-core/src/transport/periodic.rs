//! Periodic work: announce retransmissions, receipts, ingress release, the announce
//! cap queues and table culling.

use std::time::Duration;

use super::InterfaceId;
use super::{Event, Transport, JOB_INTERVAL, LOCAL_REBROADCASTS_MAX, PATHFINDER_G, PATHFINDER_R};
use super::{PATHFINDER_RW_MS, PATH_REQUEST_GATE, REVERSE_TIMEOUT};
use crate::hash::AddressHash;
use crate::time::Instant;

const ANNOUNCE_JOB_INTERVAL: Duration = Duration::from_secs(1);
const CULL_INTERVAL: Duration = Duration::from_secs(5);

/// An announce due for (re)transmission this round.
struct Outgoing {
    destination: AddressHash,
    hops: u8,
    data: Vec<u8>,
    context_flag: bool,
    path_response: bool,
    attached: Option<InterfaceId>,
}

impl Transport {
    /// Run whatever timers are due. Call when [`Transport::poll_timeout`] has passed;
    /// calling more often is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release_capped_announces(now);
        self.resource_timers(now);
        if now < self.next_job {
            return;
        }
        self.next_job = now + JOB_INTERVAL;
        self.release_held_announces(now);
        self.link_timers(now);
        if now.saturating_since(self.last_announce_job) >= ANNOUNCE_JOB_INTERVAL {
            self.last_announce_job = now;
            self.announce_job(now);
            for r in self.receipts.expire(now) {
                self.push_event(Event::ReceiptTimeout {
                    packet_hash: r.packet_hash,
                    destination: r.destination,
                });
            }
        }
        if now.saturating_since(self.last_cull) >= CULL_INTERVAL {
            self.last_cull = now;
            self.cull(now);
        }
    }

    pub(crate) fn announce_job(&mut self, now: Instant) {
        let mut done: Vec<AddressHash> = Vec::new();
        let mut outgoing: Vec<Outgoing> = Vec::new();
        let jitter = self.random_u64() % (PATHFINDER_RW_MS + 1);
        for (d, e) in self.announce_table.iter_mut() {
            if e.retries >= LOCAL_REBROADCASTS_MAX || e.retries > PATHFINDER_R {
                done.push(*d);
                continue;
            }
            if now < e.retransmit_at {
                continue;
            }
            e.retransmit_at = now + PATHFINDER_G + Duration::from_millis(jitter);
            e.retries += 1;
            outgoing.push(Outgoing {
                destination: *d,
                hops: e.hops,
                data: e.data.clone(),
                context_flag: e.context_flag,
                path_response: e.block_rebroadcasts,
                attached: e.attached,
            });
        }
        for d in done {
            self.announce_table.remove(&d);
        }
        outgoing.sort_by_key(|o| o.hops);
        for o in outgoing {
            let d = o.destination;
            if self.paths.get(&d).is_none() && o.attached.is_none() {
                self.announce_table.remove(&d);
                continue;
            }
            let raw = self.rebroadcast_packet(d, o.hops, o.data, o.context_flag, o.path_response);
            if !o.path_response {
                self.stats.rebroadcasts += 1;
            }
            self.route(now, raw, o.attached);
            if let Some(held) = self.held_announces.remove(&d) {
                self.announce_table.insert(d, held);
            }
        }
    }

    fn release_held_announces(&mut self, now: Instant) {
        let ids: Vec<_> = self.interfaces.keys().copied().collect();
        for id in ids {
            let Some(s) = self.interfaces.get_mut(&id) else {
                continue;
            };
            let age = s.age(now);
            if let Some(h) = s.ingress.release(now, age) {
                self.process(now, id, h.raw, true);
            }
        }
    }

    fn release_capped_announces(&mut self, now: Instant) {
        let ids: Vec<_> = self.interfaces.keys().copied().collect();
        for id in ids {
            let Some(s) = self.interfaces.get_mut(&id) else {
                continue;
            };
            let (bitrate, cap) = (s.config.bitrate, s.config.announce_cap);
            if let Some(raw) = s.cap.release(now, bitrate, cap) {
                s.stats.tx_announces += 1;
                self.transmit(id, raw);
            }
        }
    }

    fn cull(&mut self, now: Instant) {
        let ifaces = &self.interfaces;
        self.paths.cull(now, |i| ifaces.contains_key(&i));
        self.reverse_table.retain(|_, e| {
            now.saturating_since(e.timestamp) < REVERSE_TIMEOUT
                && ifaces.contains_key(&e.received_on)
                && ifaces.contains_key(&e.sent_on)
        });
        let paths = &self.paths;
        self.known.cull(now, |d| paths.contains(d));
        self.path_requests
            .retain(|_, t| now.saturating_since(*t) < PATH_REQUEST_GATE);
        self.inflight_path_requests
            .retain(|_, t| now.saturating_since(*t) < PATH_REQUEST_GATE);
        self.discovery_requests.retain(|_, r| now < r.timeout);
        self.pending_local_path_requests
            .retain(|_, (_, t)| now.saturating_since(*t) < PATH_REQUEST_GATE);
        self.rate_table.retain(|d, _| paths.contains(d));
        for l in self.destinations.values_mut() {
            if l.path_response
                .as_ref()
                .is_some_and(|(_, _, at)| now.saturating_since(*at) > super::PATH_RESPONSE_REUSE)
            {
                l.path_response = None;
            }
        }
    }
}
