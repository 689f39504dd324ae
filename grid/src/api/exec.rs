//! Commands through a node handle: registering them, running them on other nodes
//! (directly, by routing hint, detached, delay-tolerant with bundles), trust and pairing,
//! and events to other nodes.

use std::sync::Arc;
use std::time::Duration;

use rns_core::{rmpv, AddressHash};
use tokio::sync::oneshot;

use super::*;

/// How long a delay-tolerant call tries to open a link to a node that has a path before
/// it sends a bundle instead.
const DIRECT_LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time a reused link gets to prove it is alive.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(3);

impl NodeHandle {
    /// Offer a command to other nodes (`domain/action`; see [`crate::commands`]). The
    /// handler runs on its own task for each call; `description` is what `list` shows.
    pub async fn register_command<F, Fut>(
        &self,
        name: &str,
        description: &str,
        handler: F,
    ) -> Result<(), Error>
    where
        F: Fn(crate::commands::CommandCall) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, crate::commands::CommandError>>
            + Send
            + 'static,
    {
        crate::frame::names::check_command(name)
            .map_err(|e| Error::BadRequest(format!("command name {e}")))?;
        let handler: crate::commands::CommandHandler =
            Arc::new(move |call| Box::pin(handler(call)));
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(Call::Command(
                name.to_string(),
                description.to_string(),
                handler,
                tx,
            ))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Run `command` with JSON `params` on the node whose `grid.node` destination is
    /// `node`, and wait up to `timeout` for its result. Reuses a link this node opened to
    /// it, or opens one (and identifies on it, so the target knows who calls).
    pub async fn execute(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, Error> {
        self.execute_with(node, command, params, ExecOptions::timeout(timeout))
            .await
    }

    /// Let callers of at least `level` run commands matching `pattern` (see
    /// [`crate::acl`]), unless a rule already decides `pattern` (the node's `[acl]`
    /// configuration, say `"genome/*" = "trusted"`): services use this for their
    /// read-only commands, and the node's owner keeps the last word.
    pub async fn default_rule(
        &self,
        pattern: &str,
        level: crate::trust::TrustLevel,
    ) -> Result<(), Error> {
        self.ask(|tx| Call::DefaultRule(pattern.to_string(), level, tx))
            .await?
    }

    /// The Grid nodes this node has heard announcing (at most 10,000), nearest first.
    pub async fn peers(&self) -> Result<Vec<Peer>, Error> {
        self.ask(Call::Peers).await
    }

    /// Change what this node announces it can do (a GPU found, adapters or models
    /// added): `change` edits the summary; if it differs, the node re-announces soon
    /// (at most every [`crate::node::CAPABILITY_ANNOUNCE_GAP`]) so peers route by the
    /// new one. Returns the summary now in force.
    pub async fn update_capabilities(
        &self,
        change: impl FnOnce(&mut crate::capabilities::Capabilities) + Send + 'static,
    ) -> Result<crate::capabilities::Capabilities, Error> {
        self.ask(|tx| Call::UpdateCapabilities(Box::new(change), tx))
            .await
    }

    /// Open a pairing offer: returns the four-word code to give the other node's user
    /// (who runs [`NodeHandle::pair_join`] or `grid pair <this node> <code>`). Whoever
    /// presents it within `window` gets `level` here. A new offer replaces an open one.
    pub async fn pair_offer(
        &self,
        level: crate::trust::TrustLevel,
        window: Duration,
    ) -> Result<String, Error> {
        self.ask(|tx| Call::PairOffer(level, window, tx)).await
    }

    /// Present the pairing code `node` shows; on a match `node` trusts this node, and
    /// this node gives `node`'s identity `level`. Returns that identity.
    pub async fn pair_join(
        &self,
        node: AddressHash,
        code: &str,
        level: crate::trust::TrustLevel,
        timeout: Duration,
    ) -> Result<AddressHash, Error> {
        let answer = self
            .execute(
                node,
                crate::commands::JOIN_COMMAND,
                &serde_json::json!({ "code": code }),
                timeout,
            )
            .await?;
        let identity: AddressHash = answer["identity"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::BadResponse("no identity in the pairing answer".into()))?;
        // The answer must come from the node we meant: its identity names its destination.
        if rns_core::destination::hash_from_name("grid.node", Some(&identity)) != node {
            return Err(Error::BadResponse(format!(
                "identity {identity} does not belong to {node}"
            )));
        }
        self.set_trust(identity, level).await?;
        Ok(identity)
    }

    /// Where `command` would run under `route` ([`crate::routing`]): this node's own
    /// destination for "here".
    pub async fn resolve_route(
        &self,
        route: crate::routing::Route,
        command: &str,
    ) -> Result<AddressHash, Error> {
        let nodes = self.resolve_routes(route, command).await?;
        nodes
            .first()
            .copied()
            .ok_or_else(|| Error::NoRoute(format!("no node for {command}")))
    }

    /// The nodes `route` allows for `command`, in the order to try them
    /// ([`crate::routing::plan`]; this node's destination when it may run here).
    pub async fn resolve_routes(
        &self,
        route: crate::routing::Route,
        command: &str,
    ) -> Result<Vec<AddressHash>, Error> {
        let plan = self
            .ask(|tx| Call::Route(route, command.to_string(), tx))
            .await?
            .map_err(|e| Error::NoRoute(e.to_string()))?;
        Ok(plan
            .into_iter()
            .map(|d| match d {
                crate::routing::Decision::Local => self.destination,
                crate::routing::Decision::Remote(n) => n,
            })
            .collect())
    }

    /// Where a compute job needing `need_mb` of RAM may run, in the order to try, each
    /// with why (this node's destination when it may run here; see
    /// [`crate::proto::placement`]). Empty when no node known takes compute jobs.
    pub async fn place_compute(&self, need_mb: u32) -> Result<Vec<(AddressHash, String)>, Error> {
        let choices = self.ask(|tx| Call::PlaceCompute(need_mb, tx)).await?;
        Ok(choices
            .into_iter()
            .map(|(d, why)| {
                let node = match d {
                    crate::routing::Decision::Local => self.destination,
                    crate::routing::Decision::Remote(n) => n,
                };
                (node, why)
            })
            .collect())
    }

    /// Run `command` where `route` says (a node, `local-only`, `prefer-gpu`,
    /// `max-compute`, `least-loaded`, `auto`: see [`crate::routing`]); returns the node
    /// that ran it (this node's destination when it ran here) and the result. A node that
    /// answers `busy` (its governor refused the job) is skipped for the next in the plan;
    /// when every node is busy, the last refusal comes back.
    pub async fn execute_routed(
        &self,
        route: crate::routing::Route,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
    ) -> Result<(AddressHash, serde_json::Value), Error> {
        let nodes = self.resolve_routes(route, command).await?;
        let (node, r) = self.execute_first(&nodes, command, params, options).await;
        r.map(|result| (node, result))
    }

    /// Run `command` on the first of `nodes` that takes it: a node answering `busy`,
    /// `unknown_command` or `unsupported` ([`Error::is_elsewhere`]) is passed over. The
    /// node that answered last, and its answer.
    pub async fn execute_first(
        &self,
        nodes: &[AddressHash],
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
    ) -> (AddressHash, Result<serde_json::Value, Error>) {
        let mut last = (
            self.destination,
            Err(Error::NoRoute(format!("no node for {command}"))),
        );
        for &node in nodes {
            let r = self.execute_with(node, command, params, options).await;
            match &r {
                Err(e) if e.is_elsewhere() => {
                    tracing::info!(%node, error = %e, "not taken there; trying the next node")
                }
                _ => return (node, r),
            }
            last = (node, r);
        }
        last
    }

    /// [`NodeHandle::execute`] with options: with a TTL the command reaches a node that
    /// is offline now, as a bundle, and the result comes back the same way.
    pub async fn execute_with(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
    ) -> Result<serde_json::Value, Error> {
        crate::frame::names::check_command(command)
            .map_err(|e| Error::BadRequest(format!("command name {e}")))?;
        let correlation = new_correlation();
        self.execute_as(node, command, params, options, correlation)
            .await
    }

    /// [`NodeHandle::execute_with`], calling `progress` with each progress report the
    /// target sends while it runs (fraction done if known, and the detail), in order.
    /// What streams (tokens of a generation, parts of a transfer) arrives here.
    pub async fn execute_with_progress(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
        progress: impl FnMut(Option<f32>, serde_json::Value) + Send,
    ) -> Result<serde_json::Value, Error> {
        crate::frame::names::check_command(command)
            .map_err(|e| Error::BadRequest(format!("command name {e}")))?;
        let correlation = new_correlation();
        self.execute_streaming(node, command, params, options, correlation, progress)
            .await
    }

    /// Run `command` under `correlation`, handing its progress reports to `progress`.
    async fn execute_streaming(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
        correlation: u64,
        mut progress: impl FnMut(Option<f32>, serde_json::Value) + Send,
    ) -> Result<serde_json::Value, Error> {
        let name = crate::commands::job_event(correlation, "progress");
        let mut events = self.events.subscribe();
        let run = self.execute_as(node, command, params, options, correlation);
        tokio::pin!(run);
        loop {
            tokio::select! {
                // Reports that came before the result are passed on before it.
                biased;
                ev = events.recv() => match ev {
                    Ok(NodeEvent::GridEvent { event, mut payload, .. }) if event == name => {
                        let fraction = payload["fraction"].as_f64().map(|f| f as f32);
                        progress(fraction, payload["detail"].take());
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return run.await,
                },
                r = &mut run => return r,
            }
        }
    }

    /// [`NodeHandle::execute_with_progress`] that stops when `cancel` resolves: the call
    /// ends with [`Error::Cancelled`] and `node` is asked (`grid/cancel`, best effort,
    /// 10 s) to stop the command, which it does if it still runs it for this node.
    pub async fn execute_cancellable(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
        progress: impl FnMut(Option<f32>, serde_json::Value) + Send,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<serde_json::Value, Error> {
        crate::frame::names::check_command(command)
            .map_err(|e| Error::BadRequest(format!("command name {e}")))?;
        let correlation = new_correlation();
        let run = self.execute_streaming(node, command, params, options, correlation, progress);
        tokio::select! {
            r = run => r,
            () = cancel => {
                let stop = serde_json::json!({"correlation": format!("{correlation:016x}")});
                let asked = self
                    .execute_with(
                        node,
                        crate::commands::CANCEL_COMMAND,
                        &stop,
                        ExecOptions::timeout(Duration::from_secs(10)),
                    )
                    .await;
                if let Err(e) = asked {
                    tracing::info!(%node, error = %e, "could not ask the node to cancel");
                }
                Err(Error::Cancelled)
            }
        }
    }

    /// Start `command` on `node` and return its handle (the correlation id) at once. Its
    /// progress arrives as the event `grid:job:<handle in hex>:progress` (as the target
    /// reports it) and its outcome as `grid:job:<handle in hex>:complete` with
    /// `{"ok": true, "result": …}` or `{"ok": false, "error": …}` — both as
    /// [`NodeEvent::GridEvent`]s and in `grid listen`.
    pub async fn execute_detached(
        &self,
        node: AddressHash,
        command: &str,
        params: serde_json::Value,
        timeout: Duration,
    ) -> Result<u64, Error> {
        self.execute_detached_with(node, command, params, ExecOptions::timeout(timeout))
            .await
    }

    /// [`NodeHandle::execute_detached`] with options (a TTL: see [`ExecOptions`]). The
    /// outcome is also kept in the node's store, so `grid exec --result` finds it after
    /// a restart, even when the answer bundle arrives after one.
    pub async fn execute_detached_with(
        &self,
        node: AddressHash,
        command: &str,
        params: serde_json::Value,
        options: ExecOptions,
    ) -> Result<u64, Error> {
        crate::frame::names::check_command(command)
            .map_err(|e| Error::BadRequest(format!("command name {e}")))?;
        let correlation = new_correlation();
        let (handle, command) = (self.clone(), command.to_string());
        tokio::spawn(async move {
            let r = handle
                .execute_as(node, &command, &params, options, correlation)
                .await;
            let payload = match r {
                Ok(result) => serde_json::json!({"ok": true, "result": result}),
                Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
            };
            let event = crate::commands::job_event(correlation, "complete");
            let _ = handle.calls.send(Call::LocalEvent(event, payload)).await;
        });
        Ok(correlation)
    }

    /// [`NodeHandle::execute`] with a given correlation id, audited.
    async fn execute_as(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
        correlation: u64,
    ) -> Result<serde_json::Value, Error> {
        if node == self.destination {
            // This node itself: run here, no frame, no audit (the caller is the owner).
            return self
                .ask(|tx| Call::RunLocal(command.to_string(), params.clone(), correlation, tx))
                .await?
                .map_err(|e| Error::Remote {
                    code: e.code,
                    message: e.message,
                });
        }
        let body = crate::frame::Body::Request {
            command: command.to_string(),
            params: params.to_string().into_bytes(),
        };
        let started = crate::clock::wall_ms();
        let result = match options.ttl {
            None => {
                self.frame_call_with(node, body, options.timeout, correlation)
                    .await
            }
            Some(ttl) => self.frame_call_tolerant(node, body, ttl, correlation).await,
        };
        let outcome = match &result {
            Ok(_) => crate::audit::Outcome::Success,
            Err(Error::Remote { code, .. }) => (*code).into(),
            Err(e) if e.is_unreachable() => crate::audit::Outcome::Timeout,
            Err(_) => crate::audit::Outcome::Error,
        };
        let done = crate::clock::wall_ms();
        let entry = crate::audit::AuditEntry {
            time_ms: done,
            direction: crate::audit::Direction::Out,
            peer: node.to_string(),
            command: command.to_string(),
            correlation,
            outcome,
            duration_ms: done.saturating_sub(started),
        };
        let _ = self.calls.send(Call::Audit(entry)).await;
        result
    }

    /// Give an identity a trust level on this node (persisted in `trust.json`).
    pub async fn set_trust(
        &self,
        identity: AddressHash,
        level: crate::trust::TrustLevel,
    ) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(Call::Trust(identity, level, tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Send a frame with `body` to `node` as a request and decode the response; returns
    /// the correlation id used too.
    async fn frame_call(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        timeout: Duration,
    ) -> (u64, Result<serde_json::Value, Error>) {
        let correlation = new_correlation();
        (
            correlation,
            self.frame_call_with(node, body, timeout, correlation).await,
        )
    }

    async fn frame_call_with(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        timeout: Duration,
        correlation: u64,
    ) -> Result<serde_json::Value, Error> {
        use crate::frame::{Body, GridFrame};
        if let Body::Subscribe { pattern } | Body::Unsubscribe { pattern } = &body {
            crate::frame::names::check_pattern(pattern)
                .map_err(|e| Error::BadRequest(format!("pattern {e}")))?;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let link = self.link_to(node, timeout).await?;
        let frame = GridFrame {
            correlation,
            source: self.destination.0,
            target: node.0,
            timestamp_ms: crate::clock::wall_ms(),
            ttl_ms: timeout.as_millis() as u64,
            body,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answer = self
            .request(
                link,
                crate::commands::FRAME_PATH,
                rmpv::Value::Binary(frame.encode()),
                left.max(Duration::from_millis(100)),
            )
            .await?;
        let rmpv::Value::Binary(bytes) = answer else {
            return Err(Error::BadResponse("not frame bytes".into()));
        };
        let response = GridFrame::decode(&bytes).map_err(|e| Error::BadResponse(e.to_string()))?;
        outcome_of(response, correlation)
    }

    /// A frame call with delay tolerance. The request goes directly when `node` has a
    /// path now; when that attempt fails in any way — the path leads nowhere, the link
    /// does not come up, goes stale or closes mid-request, the answer is lost with its
    /// link — the same frame (same correlation id) goes as a bundle, and the caller keeps
    /// waiting until the TTL. The answer may arrive either way (a target whose link to
    /// the caller dropped sends it as a bundle), so a bundled answer is awaited from the
    /// start. The target runs the request at most once whichever copies reach it (see
    /// [`crate::proto::request_log`]).
    async fn frame_call_tolerant(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        ttl: Duration,
        correlation: u64,
    ) -> Result<serde_json::Value, Error> {
        let deadline = tokio::time::Instant::now() + ttl;
        let (tx, mut rx) = oneshot::channel();
        self.ask(|done| Call::AwaitBundle {
            correlation,
            node,
            waiter: tx,
            done,
        })
        .await??;
        let routes = self.bundle_routes(vec![node.0]).await?;
        if routes.reachable.first() == Some(&true) {
            let direct = self.direct_call(node, body.clone(), deadline, correlation);
            tokio::select! {
                r = direct => match r {
                    // No path, a link that went away, no answer in time: try a bundle.
                    // Anything else (refused, malformed, stopped) a bundle cannot fix.
                    Err(e) if e.is_unreachable() => {
                        tracing::info!(%node, error = %e, "direct delivery failed; sending the command as a bundle");
                    }
                    other => return other,
                },
                answer = &mut rx => return match answer {
                    Ok(response) => outcome_of(response, correlation),
                    Err(_) => Err(Error::Stopped),
                },
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(ttl_ran_out(ttl));
        }
        self.queue_bundle(node, body, left, correlation, None)
            .await?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(response)) => outcome_of(response, correlation),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(ttl_ran_out(ttl)),
        }
    }

    /// One direct attempt of a delay-tolerant call: a link that works now (a reused one
    /// must prove it is alive), then the request, answered by `deadline`.
    async fn direct_call(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        deadline: tokio::time::Instant,
        correlation: u64,
    ) -> Result<serde_json::Value, Error> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.live_link_to(node, left.min(DIRECT_LINK_TIMEOUT))
            .await?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.frame_call_with(node, body, left, correlation).await
    }

    /// A link to `node` that works now. A reused link must answer a small request within
    /// a few round trips (a peer that restarted or vanished has forgotten it, and waiting
    /// for keepalives to tell would cost many seconds); otherwise it is closed and a new
    /// one opened, waiting up to `timeout`.
    pub async fn live_link_to(
        &self,
        node: AddressHash,
        timeout: Duration,
    ) -> Result<LinkId, Error> {
        let existing = self.links().await?.into_iter().find(|l| {
            l.destination == node && l.initiator && l.state == rns_core::link::LinkState::Active
        });
        if let Some(l) = existing {
            let wait = (l.rtt.unwrap_or_default() * 4).max(LIVENESS_TIMEOUT);
            let probe =
                rmpv::Value::Binary(crate::bundle::wire::Exchange::Identity([0; 16]).encode());
            if self
                .request(l.id, crate::bundle::wire::BUNDLE_PATH, probe, wait)
                .await
                .is_ok()
            {
                return Ok(l.id);
            }
            tracing::debug!(link = %l.id, %node, "reused link is dead; opening a new one");
            let _ = self.close_link(l.id).await;
        }
        let up = self.open_link(node, timeout).await?;
        self.identify(up.link).await?;
        Ok(up.link)
    }

    /// Which of `dests` have a path now, and the reachable custody nodes.
    pub(crate) async fn bundle_routes(
        &self,
        dests: Vec<[u8; 16]>,
    ) -> Result<crate::node::bundles::Routes, Error> {
        self.ask(|tx| Call::BundleRoutes(dests, tx)).await
    }

    /// Hand collected bundles to the node to open or hold.
    pub(crate) async fn take_bundles(
        &self,
        list: Vec<crate::bundle::wire::WireBundle>,
    ) -> Result<crate::bundle::wire::ExchangeReply, Error> {
        self.ask(|tx| Call::TakeBundles(list, tx)).await
    }

    /// Send an event to one node as a bundle that stays deliverable for `ttl`: it arrives
    /// there as a [`NodeEvent::GridEvent`] from this node, now or when it can be reached.
    pub async fn emit_to(
        &self,
        node: AddressHash,
        event: &str,
        payload: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), Error> {
        crate::frame::names::check_event(event)
            .map_err(|e| Error::BadRequest(format!("event name {e}")))?;
        let body = crate::frame::Body::Event {
            event: event.to_string(),
            payload: payload.to_string().into_bytes(),
        };
        let correlation = new_correlation();
        self.queue_bundle(node, body, ttl, correlation, None).await
    }

    /// Seal a frame with `body` to `node` (its key from an announce heard here or by a
    /// reachable custody node) and queue it as a bundle deliverable for `ttl`; `waiter`
    /// gets the answer frame.
    async fn queue_bundle(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        ttl: Duration,
        correlation: u64,
        waiter: Option<oneshot::Sender<crate::frame::GridFrame>>,
    ) -> Result<(), Error> {
        let recipient = crate::bundle::courier::lookup_identity(self, node)
            .await
            .ok_or_else(|| Error::NoPath {
                destination: node,
                message: format!(
                    "no announce from {node} was heard here or by a reachable custody node, \
                         so there is no key to seal a bundle to"
                ),
            })?;
        let frame = crate::frame::GridFrame {
            correlation,
            source: self.destination.0,
            target: node.0,
            timestamp_ms: crate::clock::wall_ms(),
            ttl_ms: ttl.as_millis() as u64,
            body,
        };
        let (done_tx, done_rx) = oneshot::channel();
        self.calls
            .send(Call::SendBundle {
                recipient: Box::new(recipient),
                frame,
                waiter,
                done: done_tx,
            })
            .await
            .map_err(|_| Error::Stopped)?;
        done_rx.await.map_err(|_| Error::Stopped)?
    }
}

/// The error of a delay-tolerant call whose TTL ran out.
fn ttl_ran_out(ttl: Duration) -> Error {
    Error::Remote {
        code: crate::frame::ErrorCode::Timeout,
        message: format!(
            "no result within the TTL ({})",
            humantime::format_duration(ttl)
        ),
    }
}

/// A fresh random correlation id.
fn new_correlation() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

/// The result a response frame carries for request `correlation`.
fn outcome_of(
    response: crate::frame::GridFrame,
    correlation: u64,
) -> Result<serde_json::Value, Error> {
    use crate::frame::{Body, Outcome};
    {
        match response.body {
            Body::Response(Outcome::Err { code, message }) => Err(Error::Remote { code, message }),
            _ if response.correlation != correlation => Err(Error::BadResponse(format!(
                "answer for request {:016x}, not {correlation:016x}",
                response.correlation
            ))),
            Body::Response(Outcome::Ok(json)) => serde_json::from_slice(&json)
                .map_err(|e| Error::BadResponse(format!("result is not JSON: {e}"))),
            _ => Err(Error::BadResponse("not a response".into())),
        }
    }
}

impl NodeHandle {
    /// Emit an event (`domain:collection:operation`) with a JSON payload: to this node's
    /// subscribers ([`NodeHandle::subscribe`] events) and to every remote node subscribed
    /// to a matching pattern. Returns how many remote subscriptions it went to.
    pub async fn emit(&self, event: &str, payload: serde_json::Value) -> Result<usize, Error> {
        crate::frame::names::check_event(event)
            .map_err(|e| Error::BadRequest(format!("event name {e}")))?;
        self.ask(|tx| Call::Emit(event.to_string(), payload, tx))
            .await
    }

    /// Ask `node` to forward its events matching `pattern` (`*`, `gpu:*`,
    /// `data:*:created`) to this node; they arrive as [`NodeEvent::GridEvent`]s for as long
    /// as the link lasts.
    pub async fn subscribe_remote(
        &self,
        node: AddressHash,
        pattern: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.frame_call(
            node,
            crate::frame::Body::Subscribe {
                pattern: pattern.to_string(),
            },
            timeout,
        )
        .await
        .1
        .map(|_| ())
    }
}
