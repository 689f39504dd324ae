//! Delay-tolerant delivery on the node's loop: acting on bundles addressed to this node,
//! queueing bundles for the courier ([`crate::bundle::courier`]) to deliver, answers by
//! bundle, and the courier's routes (the exchange itself is in [`super::exchange`]).

use std::time::Duration;

use rns_core::identity::PublicIdentity;
use rns_core::{AddressHash, Instant};
use serde_json::json;
use tokio::sync::oneshot;

use super::Node;
use crate::bundle::envelope::{node_destination, seal_frame};
use crate::bundle::store::StoredBundle;
use crate::bundle::wire::WireBundle;
use crate::control::response::{BundleStore, Bundles, BundlesFor};
use crate::frame::{Body, GridFrame, Outcome};
use crate::proto::courier::{choose_custodians, Candidate};
use crate::trust::TrustLevel;

/// How long an answer bundle lives when the request gave no TTL.
const DEFAULT_ANSWER_TTL: Duration = Duration::from_secs(3600);
/// Most waiting callers of bundled commands.
const MAX_BUNDLE_WAITERS: usize = 4096;
/// How often a path is requested for a destination with waiting bundles.
const PATH_REQUEST_EVERY: Duration = Duration::from_secs(15);

/// Delay-tolerant delivery on the node: the persistent queue and its settings, the
/// courier's doorbell, bundles being opened, the keys of nodes heard, callers waiting for
/// answer bundles, and path requests for destinations with bundles waiting.
pub(super) struct Delay {
    /// The persistent bundle queue, reached only on blocking threads.
    pub(super) store: super::store_work::StoreWork,
    /// `[bundles]` of the config.
    pub(super) config: crate::config::BundleConfig,
    /// Wakes the courier when a bundle is queued or taken into custody.
    pub(super) courier_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Bundles for this node being stored (not yet acted on), so a copy pushed again
    /// meanwhile is not opened twice.
    pub(super) opening: super::exchange::Opening,
    /// Keys of Grid nodes heard, kept across restarts (for sealing bundles).
    pub(super) known_nodes: crate::known_nodes::KnownNodes,
    /// Callers waiting for an answer bundle, by correlation id: the node that must
    /// answer, and where the answer goes.
    pub(super) waiters: std::collections::HashMap<u64, (AddressHash, oneshot::Sender<GridFrame>)>,
    /// When a path was last requested for a destination with waiting bundles.
    pub(super) path_requested: std::collections::HashMap<AddressHash, Instant>,
}

pub(crate) use crate::proto::courier::Routes;

impl StoredBundle {
    /// The record for a bundle as it travels.
    pub(crate) fn from_wire(b: WireBundle, custody: bool) -> StoredBundle {
        StoredBundle {
            id: b.id,
            destination: b.destination,
            created_ms: b.created_ms,
            expires_ms: b.expires_ms,
            custody,
            sealed: b.sealed,
        }
    }

    /// The bundle as it travels.
    pub(crate) fn to_wire(&self) -> WireBundle {
        WireBundle {
            id: self.id,
            destination: self.destination,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            sealed: self.sealed.clone(),
        }
    }
}

impl Node {
    /// A frame that came in a bundle, from an authenticated sender: requests and
    /// subscription changes are the grid layer's; answers to this node's requests and
    /// events are taken here.
    pub(super) fn on_bundle_frame(
        &mut self,
        now: Instant,
        sender: PublicIdentity,
        frame: GridFrame,
    ) {
        let Some((sender, frame)) = self.with_grid(now, |grid, at, transport, policy| {
            grid.on_bundle_frame(at, transport, policy, sender, frame)
        }) else {
            return;
        };
        match &frame.body {
            Body::Response(outcome) => {
                let correlation = frame.correlation;
                let outcome = outcome.clone();
                let from = AddressHash(node_destination(&sender));
                match self.dtn.waiters.get(&correlation) {
                    // Only the node the request went to may answer it.
                    Some((expected, _)) if *expected != from => {
                        tracing::info!(%from, expected = %expected, correlation, "dropped an answer from a node the request did not go to");
                        return;
                    }
                    Some(_) => {
                        if let Some((_, w)) = self.dtn.waiters.remove(&correlation) {
                            if w.send(frame).is_ok() {
                                return;
                            }
                        }
                    }
                    None => {}
                }
                // Nobody waits any more (detached, or this node restarted): keep the
                // result for `grid exec --result` and tell listeners.
                let payload = match outcome {
                    Outcome::Ok(bytes) => {
                        json!({"ok": true, "result": serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or(serde_json::Value::Null)})
                    }
                    Outcome::Err { code, message } => {
                        json!({"ok": false, "code": code.as_str(), "error": format!("{}: {message}", code.as_str())})
                    }
                };
                let mut payload = payload;
                payload["node"] = json!(from.to_string());
                let event = crate::commands::job_event(correlation, "complete");
                self.record_job(correlation, &payload);
                let node = self.grid_destination.to_string();
                self.record_event(node, &event, payload);
            }
            Body::Event { event, payload } => {
                let payload = serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
                // The sealed sender, not what the frame claims.
                let node = AddressHash(node_destination(&sender)).to_string();
                let event = event.clone();
                self.record_event(node, &event, payload);
            }
            _ => {}
        }
    }

    /// The key behind a destination: from the transport's known destinations, or from
    /// the Grid nodes remembered across restarts.
    pub(super) fn recall_node(&self, node: &AddressHash) -> Option<PublicIdentity> {
        self.transport
            .recall_identity(node)
            .or_else(|| self.dtn.known_nodes.get(node).cloned())
    }

    /// Keep a job's outcome for `grid exec --result`, across restarts.
    pub(super) fn record_job(&mut self, correlation: u64, outcome: &serde_json::Value) {
        let record = json!({"state": "done", "outcome": outcome}).to_string();
        self.dtn.store.run(move |store| {
            if let Err(e) = store.put_job(correlation, record.as_bytes()) {
                tracing::warn!(error = %e, "cannot record a job's result");
            }
        });
    }

    /// Seal `frame` to `to` and queue it for the courier. The store's write (an fsync)
    /// runs on a blocking thread; `done`, if given, hears once the bundle is durable (or
    /// why not). Errors found before that are returned (and told to `done` too).
    pub(super) fn send_bundle(
        &mut self,
        to: &PublicIdentity,
        mut frame: GridFrame,
        done: Option<oneshot::Sender<Result<(), crate::Error>>>,
    ) -> Result<(), crate::Error> {
        let now_ms = crate::clock::wall_ms();
        if node_destination(to) == self.grid_destination.0 {
            let e = crate::Error::BadRequest("a bundle to this node itself".into());
            if let Some(done) = done {
                let _ = done.send(Err(e.clone()));
            }
            return Err(e);
        }
        if frame.ttl_ms == 0 {
            frame.ttl_ms = DEFAULT_ANSWER_TTL.as_millis() as u64;
        }
        let expires_ms = frame.timestamp_ms.max(now_ms).saturating_add(frame.ttl_ms);
        let b = seal_frame(
            &mut rand_core::OsRng,
            &self.identity,
            to,
            &frame,
            now_ms,
            expires_ms,
        );
        let (wake, to) = (self.dtn.courier_wake.clone(), to.hash());
        self.dtn.store.run(move |store| {
            let r = store
                .insert(&StoredBundle::from_wire(b, false))
                .map(|_| wake.notify_one())
                .map_err(|e| crate::Error::Failed(e.to_string()));
            match done {
                Some(done) => {
                    let _ = done.send(r);
                }
                None => {
                    if let Err(e) = r {
                        tracing::warn!(%to, error = %e, "could not queue a bundle");
                    }
                }
            }
        });
        Ok(())
    }

    /// Queue a frame as a bundle and (optionally) wait for the response frame; `done`
    /// hears once the bundle is durable.
    pub(super) fn send_bundle_call(
        &mut self,
        to: PublicIdentity,
        frame: GridFrame,
        waiter: Option<oneshot::Sender<GridFrame>>,
        done: oneshot::Sender<Result<(), crate::Error>>,
    ) {
        let correlation = frame.correlation;
        if let Some(w) = waiter {
            if let Err(e) = self.await_bundle(correlation, AddressHash(node_destination(&to)), w) {
                let _ = done.send(Err(e));
                return;
            }
        }
        // Any failure reaches the caller through `done`; a waiter left by a failed store
        // write is forgotten once the caller drops it.
        if self.send_bundle(&to, frame, Some(done)).is_err() {
            self.dtn.waiters.remove(&correlation);
        }
    }

    /// Route the answer bundle to request `correlation`, sent to `node`, to `waiter`
    /// (bounded; callers that gave up are forgotten first). Only `node` may answer.
    pub(super) fn await_bundle(
        &mut self,
        correlation: u64,
        node: AddressHash,
        waiter: oneshot::Sender<GridFrame>,
    ) -> Result<(), crate::Error> {
        if self.dtn.waiters.len() >= MAX_BUNDLE_WAITERS {
            self.dtn.waiters.retain(|_, (_, w)| !w.is_closed());
        }
        if self.dtn.waiters.len() >= MAX_BUNDLE_WAITERS {
            return Err(crate::Error::Busy(
                "too many commands waiting for bundled answers".into(),
            ));
        }
        self.dtn.waiters.insert(correlation, (node, waiter));
        Ok(())
    }

    /// Which destinations are reachable, and through which custodians; asks for paths to
    /// the others now and then.
    pub(super) fn bundle_routes(&mut self, now: Instant, dests: &[[u8; 16]]) -> Routes {
        let mut reachable = Vec::with_capacity(dests.len());
        let mut heard_ms = Vec::with_capacity(dests.len());
        for d in dests {
            let d = AddressHash(*d);
            heard_ms.push(self.grid.peers.get(&d).map(|(_, _, t)| t.as_millis()));
            let known = self.transport.path(&d).is_some();
            if !known {
                let due = self
                    .dtn
                    .path_requested
                    .get(&d)
                    .is_none_or(|t| now.saturating_since(*t) >= PATH_REQUEST_EVERY);
                if due && self.dtn.path_requested.len() < 10_000 {
                    self.dtn.path_requested.insert(d, now);
                    self.transport.request_path(now, &d, None);
                }
            }
            reachable.push(known);
        }
        self.dtn
            .path_requested
            .retain(|_, t| now.saturating_since(*t) < PATH_REQUEST_EVERY * 4);
        let announced: Vec<Candidate> = self
            .grid
            .peers
            .iter()
            .filter(|(_, (caps, ..))| caps.roles & crate::capabilities::roles::CUSTODY != 0)
            .map(|(d, (_, hops, _))| Candidate {
                node: *d,
                hops: *hops,
                trusted: self
                    .recall_node(d)
                    .is_some_and(|id| self.guard.trust.level(&id.hash()) >= TrustLevel::Trusted),
            })
            .collect();
        let custodians = choose_custodians(
            &self.dtn.config.custody_peers,
            &announced,
            |c| self.transport.path(c).is_some(),
            self.grid_destination,
        );
        Routes {
            reachable,
            heard_ms,
            custodians,
        }
    }

    /// What `grid status` says of the bundle store, but for what only the store knows
    /// (filled in by [`BundleFigures::read`] on a blocking thread).
    pub(super) fn bundle_figures(&self) -> BundleFigures {
        BundleFigures {
            custody: self.dtn.config.custody,
            waiting_callers: self.dtn.waiters.len(),
        }
    }
}

/// The bundle figures for `grid status` that the loop knows.
#[derive(Debug, Clone, Copy)]
pub(super) struct BundleFigures {
    custody: bool,
    waiting_callers: usize,
}

impl BundleFigures {
    /// Read the rest from `store` (blocking: call it on a blocking thread).
    pub(super) fn read(self, store: &crate::bundle::store::BundleStore) -> Bundles {
        let waiting = store
            .destinations()
            .unwrap_or_default()
            .into_iter()
            .take(50)
            .map(|(d, bundles)| BundlesFor {
                destination: AddressHash(d),
                bundles,
            })
            .collect();
        match store.stats() {
            Ok(s) => Bundles::Store(BundleStore {
                custody: self.custody,
                queued: s.bundles,
                bytes: s.bytes,
                destinations: s.destinations,
                waiting,
                waiting_callers: self.waiting_callers,
            }),
            Err(e) => Bundles::Unreadable {
                error: e.to_string(),
            },
        }
    }
}
