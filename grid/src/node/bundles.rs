//! Delay-tolerant delivery on the node's loop: the `grid/bundle` exchange (push, pull,
//! ack, identity lookup), opening bundles addressed to this node, holding bundles for
//! others as a custodian, and queueing bundles for the courier
//! ([`crate::bundle::courier`]) to deliver.

use std::time::Duration;

use rns_core::identity::PublicIdentity;
use rns_core::link::LinkId;
use rns_core::{rmpv, AddressHash, Instant};
use serde_json::json;
use tokio::sync::oneshot;

use super::grid_frames::FrameReply;
use super::Node;
use crate::bundle::envelope::{node_destination, open_frame, seal_frame};
use crate::bundle::store::{Inserted, StoredBundle};
use crate::bundle::wire::{
    Exchange, ExchangeReply, WireBundle, BATCH_BYTES, BATCH_COUNT, MAX_SEALED,
};
use crate::frame::{Body, GridFrame, Outcome};
use crate::trust::TrustLevel;

/// How long an answer bundle lives when the request gave no TTL.
const DEFAULT_ANSWER_TTL: Duration = Duration::from_secs(3600);
/// Most waiting callers of bundled commands.
const MAX_BUNDLE_WAITERS: usize = 4096;
/// How often a path is requested for a destination with waiting bundles.
const PATH_REQUEST_EVERY: Duration = Duration::from_secs(15);

/// Which of the asked destinations have a path now, and the custody nodes reachable.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes {
    /// Per asked destination: whether a path is known.
    pub(crate) reachable: Vec<bool>,
    /// Per asked destination: when its `grid.node` announce was last heard (node clock,
    /// ms), so the courier retries a destination that failed at once when it reappears.
    pub(crate) heard_ms: Vec<Option<u64>>,
    /// Custody nodes (`grid.node` destinations) with a path, other than this node.
    pub(crate) custodians: Vec<AddressHash>,
}

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
    /// A request on [`crate::bundle::wire::BUNDLE_PATH`].
    pub(super) fn on_bundle_request(
        &mut self,
        now: Instant,
        link: LinkId,
        request_id: AddressHash,
        data: rmpv::Value,
        caller: Option<AddressHash>,
    ) {
        if caller.is_some_and(|c| self.guard.trust.level(&c) == TrustLevel::Blocked) {
            return; // blocked peers get nothing at all
        }
        let reply = match data {
            rmpv::Value::Binary(bytes) => match Exchange::decode(&bytes) {
                Ok(x) => self.exchange(now, x, caller),
                Err(e) => ExchangeReply::Refused(e.to_string()),
            },
            _ => ExchangeReply::Refused("expected exchange bytes".into()),
        };
        let value = rmpv::Value::Binary(reply.encode());
        if let Err(e) = self.transport.link_respond(now, &link, &request_id, &value) {
            tracing::debug!(%link, error = %e, "could not answer a bundle exchange");
        }
    }

    fn exchange(
        &mut self,
        now: Instant,
        x: Exchange,
        caller: Option<AddressHash>,
    ) -> ExchangeReply {
        let caller_node =
            caller.map(|c| rns_core::destination::hash_from_name("grid.node", Some(&c)));
        match x {
            Exchange::Push(list) => self.take_bundles(now, list, caller, false),
            Exchange::Pull { max_bytes } => {
                let Some(node) = caller_node else {
                    return ExchangeReply::Refused("identify on the link to pull bundles".into());
                };
                let budget = (max_bytes as usize).min(BATCH_BYTES);
                match self.bundles.for_destination(&node.0, budget, BATCH_COUNT) {
                    Ok(list) => {
                        ExchangeReply::Pulled(list.iter().map(StoredBundle::to_wire).collect())
                    }
                    Err(e) => ExchangeReply::Refused(e.to_string()),
                }
            }
            Exchange::Ack(ids) => {
                let Some(node) = caller_node else {
                    return ExchangeReply::Refused(
                        "identify on the link to acknowledge bundles".into(),
                    );
                };
                // Only the destination may make a custodian forget its bundles.
                let mine: Vec<[u8; 16]> = ids
                    .into_iter()
                    .take(BATCH_COUNT)
                    .filter(
                        |id| matches!(self.bundles.get(id), Ok(Some(b)) if b.destination == node.0),
                    )
                    .collect();
                match self.bundles.remove(&mine) {
                    Ok(n) => ExchangeReply::Acked(n as u32),
                    Err(e) => ExchangeReply::Refused(e.to_string()),
                }
            }
            Exchange::Identity(d) => ExchangeReply::Identity(
                self.recall_node(&AddressHash(d))
                    .map(|p| p.as_bytes().to_vec()),
            ),
        }
    }

    /// Take pushed (or `pulled`) bundles: open those for this node; hold the others when
    /// this node is a custodian and the node handing them over (`caller`, its identity
    /// hash) may leave them here. A trusted caller is bounded by the store's quota only;
    /// a stranger by its share ([`crate::config::StrangerConfig`]) and the longest TTL
    /// held for strangers; an anonymous caller may hand over only bundles for this node.
    pub(super) fn take_bundles(
        &mut self,
        now: Instant,
        list: Vec<WireBundle>,
        caller: Option<AddressHash>,
        pulled: bool,
    ) -> ExchangeReply {
        let now_ms = crate::clock::wall_ms();
        let mut refused = Vec::new();
        // Checked first, then stored in one transaction (one fsync for the exchange),
        // then acted on: a bundle is accepted only once it is durable.
        let mut ours_seen = Vec::new();
        let mut opened = Vec::new();
        let mut already = Vec::new();
        let mut held: Vec<(StoredBundle, Option<[u8; 16]>)> = Vec::new();
        for b in list.into_iter().take(BATCH_COUNT) {
            let id = b.id;
            let r = if b.sealed.len() > MAX_SEALED {
                Err("too large".to_string())
            } else if b.expires_ms <= now_ms {
                Err("expired".to_string())
            } else if b.destination == self.grid_destination.0 {
                match self.bundles.is_seen(&b.id) {
                    Ok(true) => Ok(None), // handled before: taken, not acted on again
                    Ok(false) if ours_seen.iter().any(|(i, _)| *i == id) => Ok(None),
                    Ok(false) => open_frame(&self.identity, &b)
                        .map(|opened| Some((b.expires_ms, opened)))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
                .map(|o| match o {
                    Some((expires, (sender, frame))) => {
                        ours_seen.push((id, expires));
                        opened.push((sender, frame));
                    }
                    None => already.push(id),
                })
            } else if !self.bundle_config.custody || pulled {
                Err("not for this node, and this node holds no bundles for others".to_string())
            } else {
                self.may_hold(now_ms, &b, caller).map(|holder| {
                    held.push((StoredBundle::from_wire(b, true), holder));
                })
            };
            if let Err(e) = r {
                tracing::debug!(id = %hex::encode(id), reason = %e, "refused a bundle");
                refused.push((id, e));
            }
        }
        let limits = self.stranger_limits();
        // Bundles handled before count as taken.
        let mut accepted: Vec<[u8; 16]> = already;
        match self.bundles.commit_exchange(&ours_seen, &held, &limits) {
            Ok(results) => {
                accepted.extend(ours_seen.iter().map(|(id, _)| *id));
                let mut any = false;
                for ((b, _), r) in held.iter().zip(results) {
                    match r {
                        Ok(_) => {
                            any = true;
                            accepted.push(b.id);
                        }
                        Err(e) => refused.push((b.id, e.to_string())),
                    }
                }
                if any {
                    self.courier_wake.notify_one();
                }
                for (sender, frame) in opened {
                    tracing::debug!(from = %sender.hash(), correlation = frame.correlation, "bundle delivered");
                    self.on_bundle_frame(now, sender, frame);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "bundle store: could not take an exchange");
                let why = e.to_string();
                refused.extend(ours_seen.iter().map(|(id, _)| (*id, why.clone())));
                refused.extend(held.iter().map(|(b, _)| (b.id, why.clone())));
            }
        }
        ExchangeReply::Pushed { accepted, refused }
    }

    /// Whether `caller` may leave bundle `b` here for another node: Ok(None) for a
    /// trusted caller (bounded by the store's quota), Ok(Some(holder)) for a stranger
    /// (bounded by its share, checked when stored), Err with the reason otherwise.
    fn may_hold(
        &self,
        now_ms: u64,
        b: &WireBundle,
        caller: Option<AddressHash>,
    ) -> Result<Option<[u8; 16]>, String> {
        let Some(caller) = caller else {
            return Err("identify on the link to hand over bundles for other nodes".into());
        };
        if self.guard.trust.level(&caller) >= TrustLevel::Trusted {
            return Ok(None);
        }
        let max_ttl = self.bundle_config.strangers.max_ttl;
        if b.expires_ms > now_ms.saturating_add(max_ttl.as_millis() as u64) {
            return Err(format!(
                "lives longer than this custodian holds bundles from nodes it does not trust ({})",
                humantime::format_duration(max_ttl)
            ));
        }
        Ok(Some(caller.0))
    }

    /// What strangers may have this node hold, from `[bundles]`.
    fn stranger_limits(&self) -> crate::bundle::store::StrangerLimits {
        let strangers = self.bundle_config.strangers;
        crate::bundle::store::StrangerLimits {
            bundles: strangers.bundles,
            bytes: strangers.bytes,
            total_bytes: (self.bundle_config.store_limit as f64 * strangers.share) as u64,
        }
    }

    /// A frame that came in a bundle, from an authenticated sender.
    fn on_bundle_frame(&mut self, now: Instant, sender: PublicIdentity, frame: GridFrame) {
        match &frame.body {
            Body::Request { .. } | Body::Subscribe { .. } | Body::Unsubscribe { .. } => {
                let caller = Some(sender.hash());
                self.handle_frame(
                    now,
                    frame,
                    caller,
                    FrameReply::Bundle {
                        to: Box::new(sender),
                    },
                );
            }
            Body::Response(outcome) => {
                let correlation = frame.correlation;
                let outcome = outcome.clone();
                let from = AddressHash(node_destination(&sender));
                match self.bundle_waiters.get(&correlation) {
                    // Only the node the request went to may answer it.
                    Some((expected, _)) if *expected != from => {
                        tracing::info!(%from, expected = %expected, correlation, "dropped an answer from a node the request did not go to");
                        return;
                    }
                    Some(_) => {
                        if let Some((_, w)) = self.bundle_waiters.remove(&correlation) {
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
            Body::Progress { .. } => {}
        }
    }

    /// The key behind a destination: from the transport's known destinations, or from
    /// the Grid nodes remembered across restarts.
    pub(super) fn recall_node(&self, node: &AddressHash) -> Option<PublicIdentity> {
        self.transport
            .recall_identity(node)
            .or_else(|| self.known_nodes.get(node).cloned())
    }

    /// Keep a job's outcome for `grid exec --result`, across restarts.
    pub(super) fn record_job(&mut self, correlation: u64, outcome: &serde_json::Value) {
        let record = json!({"state": "done", "outcome": outcome}).to_string();
        if let Err(e) = self.bundles.put_job(correlation, record.as_bytes()) {
            tracing::warn!(error = %e, "cannot record a job's result");
        }
    }

    /// Seal `frame` to `to` and queue it for the courier.
    pub(super) fn send_bundle(
        &mut self,
        to: &PublicIdentity,
        mut frame: GridFrame,
    ) -> Result<(), String> {
        let now_ms = crate::clock::wall_ms();
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
        if node_destination(to) == self.grid_destination.0 {
            return Err("a bundle to this node itself".into());
        }
        match self.bundles.insert(&StoredBundle::from_wire(b, false)) {
            Ok(Inserted::New | Inserted::Duplicate) => {
                self.courier_wake.notify_one();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Queue a frame as a bundle and (optionally) wait for the response frame.
    pub(super) fn send_bundle_call(
        &mut self,
        to: PublicIdentity,
        frame: GridFrame,
        waiter: Option<oneshot::Sender<GridFrame>>,
    ) -> Result<(), String> {
        let correlation = frame.correlation;
        if let Some(w) = waiter {
            self.await_bundle(correlation, AddressHash(node_destination(&to)), w)?;
        }
        let r = self.send_bundle(&to, frame);
        if r.is_err() {
            self.bundle_waiters.remove(&correlation);
        }
        r
    }

    /// Route the answer bundle to request `correlation`, sent to `node`, to `waiter`
    /// (bounded; callers that gave up are forgotten first). Only `node` may answer.
    pub(super) fn await_bundle(
        &mut self,
        correlation: u64,
        node: AddressHash,
        waiter: oneshot::Sender<GridFrame>,
    ) -> Result<(), String> {
        if self.bundle_waiters.len() >= MAX_BUNDLE_WAITERS {
            self.bundle_waiters.retain(|_, (_, w)| !w.is_closed());
        }
        if self.bundle_waiters.len() >= MAX_BUNDLE_WAITERS {
            return Err("too many commands waiting for bundled answers".into());
        }
        self.bundle_waiters.insert(correlation, (node, waiter));
        Ok(())
    }

    /// Which destinations are reachable, and through which custodians; asks for paths to
    /// the others now and then.
    pub(super) fn bundle_routes(&mut self, now: Instant, dests: &[[u8; 16]]) -> Routes {
        let mut reachable = Vec::with_capacity(dests.len());
        let mut heard_ms = Vec::with_capacity(dests.len());
        for d in dests {
            let d = AddressHash(*d);
            heard_ms.push(self.peers.get(&d).map(|(_, _, t)| t.as_millis()));
            let known = self.transport.path(&d).is_some();
            if !known {
                let due = self
                    .path_requested
                    .get(&d)
                    .is_none_or(|t| now.saturating_since(*t) >= PATH_REQUEST_EVERY);
                if due && self.path_requested.len() < 10_000 {
                    self.path_requested.insert(d, now);
                    self.transport.request_path(now, &d, None);
                }
            }
            reachable.push(known);
        }
        self.path_requested
            .retain(|_, t| now.saturating_since(*t) < PATH_REQUEST_EVERY * 4);
        // Custodians are the configured ones, in their order, then nodes announcing the
        // custody role whose identity this node trusts: never a stranger, which could
        // take bundles and drop them.
        let mut custodians: Vec<AddressHash> = self.bundle_config.custody_peers.clone();
        let mut trusted: Vec<(u8, AddressHash)> = self
            .peers
            .iter()
            .filter(|(_, (caps, ..))| caps.roles & crate::capabilities::roles::CUSTODY != 0)
            .filter(|(d, _)| {
                self.recall_node(d)
                    .is_some_and(|id| self.guard.trust.level(&id.hash()) >= TrustLevel::Trusted)
            })
            .map(|(d, (_, hops, _))| (*hops, *d))
            .collect();
        trusted.sort();
        custodians.extend(trusted.into_iter().map(|(_, d)| d));
        let mut seen = std::collections::HashSet::new();
        custodians.retain(|c| {
            seen.insert(*c) && *c != self.grid_destination && self.transport.path(c).is_some()
        });
        Routes {
            reachable,
            heard_ms,
            custodians,
        }
    }

    /// Bundle store figures for `grid status`.
    pub(super) fn bundles_json(&self) -> serde_json::Value {
        let waiting: Vec<serde_json::Value> = self
            .bundles
            .destinations()
            .unwrap_or_default()
            .into_iter()
            .take(50)
            .map(|(d, n)| json!({"destination": AddressHash(d).to_string(), "bundles": n}))
            .collect();
        match self.bundles.stats() {
            Ok(s) => json!({
                "custody": self.bundle_config.custody,
                "queued": s.bundles, "bytes": s.bytes, "destinations": s.destinations,
                "waiting": waiting,
                "waiting_callers": self.bundle_waiters.len(),
            }),
            Err(e) => json!({"error": e.to_string()}),
        }
    }
}
