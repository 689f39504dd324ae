//! Answering path requests: for local destinations, from the path table, or by searching.

use super::interface::{InterfaceMode, LocalRole};
use super::{AnnounceEntry, DiscoveryRequest, InterfaceId, Transport, PATHFINDER_R};
use super::{PATH_REQUEST_GRACE, PATH_REQUEST_RG, PATH_REQUEST_TIMEOUT};
use crate::hash::AddressHash;
use crate::path_request::PathRequest;
use crate::time::Instant;
use std::time::Duration;

impl Transport {
    pub(crate) fn answer_path_request(
        &mut self,
        now: Instant,
        req: PathRequest,
        iface: InterfaceId,
        ingress_limited: bool,
    ) {
        let d = req.destination;
        let Some(state) = self.interfaces.get(&iface) else {
            return;
        };
        let mode = state.config.mode;
        let transport = self.config.transport_enabled;
        let from_local = state.config.local == LocalRole::Client;
        let search = transport && (mode.discovers_paths() || mode == InterfaceMode::Boundary);
        let boundary_only = mode == InterfaceMode::Boundary;

        if self.destinations.contains_key(&d) {
            self.announce_path_response(now, &d, &req.tag, iface);
            self.inflight_path_requests.remove(&d);
            return;
        }

        // Transport nodes answer from their path table; a shared instance does for its
        // clients' requests and for destinations on its clients.
        let on_client = self
            .paths
            .get(&d)
            .is_some_and(|p| self.role(p.interface) == LocalRole::Client);
        if transport || from_local || on_client {
            if let Some(path) = self.paths.get(&d) {
                let (next_hop, hops, received_on) = (path.next_hop, path.hops, path.interface);
                self.inflight_path_requests.remove(&d);
                if mode == InterfaceMode::Roaming && received_on == iface {
                    return;
                }
                if req.requesting_transport == Some(next_hop) {
                    return;
                }
                let Some((data, context_flag)) =
                    self.known.get(&d).and_then(|k| k.replay_payload())
                else {
                    return;
                };
                let mut due = now + PATH_REQUEST_GRACE;
                if mode == InterfaceMode::Roaming {
                    due = due + PATH_REQUEST_RG;
                }
                if from_local || on_client {
                    due = now;
                }
                if let Some(held) = self.announce_table.remove(&d) {
                    self.held_announces.insert(d, held);
                }
                self.announce_table.insert(
                    d,
                    AnnounceEntry {
                        retransmit_at: due,
                        retries: PATHFINDER_R,
                        hops,
                        data,
                        context_flag,
                        local_rebroadcasts: 0,
                        block_rebroadcasts: true,
                        attached: Some(iface),
                    },
                );
                return;
            }
        }

        if from_local {
            // A client asks for a path we do not know: ask everywhere else for it.
            let tag = self.random_tag();
            let others: Vec<InterfaceId> = self
                .interfaces
                .iter()
                .filter(|(id, s)| **id != iface && s.online)
                .map(|(id, _)| *id)
                .collect();
            for o in others {
                self.send_path_request(now, &d, Some(o), &tag);
            }
            return;
        }
        if !search || ingress_limited {
            // A local client may host it without having announced it yet.
            let clients = self.local_clients();
            if !clients.is_empty() && self.pending_local_path_requests.len() < 1024 {
                self.pending_local_path_requests.insert(d, (iface, now));
                for c in clients {
                    self.send_path_request(now, &d, Some(c), &req.tag);
                }
            }
            return;
        }
        if self.discovery_requests.get(&d).is_some_and(|r| r.engaged) {
            return;
        }
        let mut requesting = self
            .discovery_requests
            .remove(&d)
            .map(|r| r.requesting)
            .unwrap_or_default();
        if !requesting.contains(&iface) {
            requesting.push(iface);
        }
        self.discovery_requests.insert(
            d,
            DiscoveryRequest {
                timeout: now + PATH_REQUEST_TIMEOUT,
                requesting,
                engaged: true,
            },
        );
        let others: Vec<InterfaceId> = self
            .interfaces
            .iter()
            .filter(|(id, s)| {
                **id != iface
                    && s.online
                    && (!boundary_only
                        || matches!(
                            s.config.mode,
                            InterfaceMode::Boundary | InterfaceMode::Gateway
                        ))
                    && s.cap.queued() == 0
            })
            .map(|(id, _)| *id)
            .collect();
        for o in others {
            self.send_path_request(now, &d, Some(o), &req.tag);
        }
    }
}

/// A destination's forward-miss path request is repeated at most this often.
const MISSING_PATH_INTERVAL: Duration = Duration::from_secs(5);
/// Forward-miss path requests per second, at most (a flood of packets for made-up
/// destinations must not turn into a flood of path requests).
const MISSING_PATH_RATE: u32 = 4;
/// Outstanding path requests remembered, at most.
const MAX_PATH_REQUESTS: usize = 4096;

impl Transport {
    /// A packet came to be forwarded to a destination with no known path (this node has
    /// restarted, say): ask for one, so that the sender's retry finds it.
    pub(crate) fn request_missing_path(&mut self, now: Instant, d: &AddressHash) {
        if self
            .path_requests
            .get(d)
            .is_some_and(|t| now.saturating_since(*t) < MISSING_PATH_INTERVAL)
            || self.path_requests.len() >= MAX_PATH_REQUESTS
        {
            return;
        }
        let (start, count) = &mut self.missing_path_requests;
        if now.saturating_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        if *count >= MISSING_PATH_RATE {
            return;
        }
        *count += 1;
        self.request_path(now, d, None);
    }
}
