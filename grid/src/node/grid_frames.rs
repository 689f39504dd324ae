//! GridFrames arriving on links to `grid.node`: decode, dispatch to a built-in or a
//! registered command, and answer with a response frame (typed errors for frames that
//! are malformed, from a newer version, expired, or for unknown commands).

use rns_core::link::LinkId;
use rns_core::{rmpv, AddressHash, Instant};
use serde_json::{json, Value};

use super::Node;
use crate::api::Call;
use crate::audit::{AuditEntry, Direction, Outcome as AuditOutcome};
use crate::commands::{CommandCall, BUILTINS};
use crate::frame::{Body, ErrorCode, GridFrame, Outcome};
use crate::proto::inbound::{command_name, Sender, Verdict};
use crate::proto::request_log::RequestKey;

/// Where the answer to a frame goes: back on the link it came on, or (for a frame that
/// came in a bundle) in a bundle sealed to its sender.
#[derive(Debug, Clone)]
pub(crate) enum FrameReply {
    /// A link request to answer.
    Link {
        /// The link.
        link: LinkId,
        /// The request.
        request_id: AddressHash,
        /// The caller, when it identified: an answer whose link is gone goes to it as a
        /// bundle instead.
        caller: Option<Box<rns_core::identity::PublicIdentity>>,
    },
    /// A bundle to send to the sender's node.
    Bundle {
        /// The sender, whose identity the answer is sealed to.
        to: Box<rns_core::identity::PublicIdentity>,
    },
}

/// A response frame for a request that could not be decoded.
fn error_frame(correlation: u64, code: ErrorCode, message: String, now_ms: u64) -> GridFrame {
    GridFrame {
        correlation,
        source: [0; 16],
        target: [0; 16],
        timestamp_ms: now_ms,
        ttl_ms: 0,
        body: Body::Response(Outcome::Err { code, message }),
    }
}

impl Node {
    /// A request on [`crate::commands::FRAME_PATH`].
    pub(super) fn on_frame_request(
        &mut self,
        now: Instant,
        link: LinkId,
        request_id: AddressHash,
        data: rmpv::Value,
        remote: Option<Box<rns_core::identity::PublicIdentity>>,
    ) {
        let now_ms = now.as_millis();
        let caller = remote.as_ref().map(|i| i.hash());
        let bytes = match data {
            rmpv::Value::Binary(b) => b,
            _ => {
                let e = error_frame(
                    0,
                    ErrorCode::Malformed,
                    "expected frame bytes".into(),
                    now_ms,
                );
                return self.respond_frame(now, link, request_id, &e);
            }
        };
        let frame = match GridFrame::decode(&bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(%link, error = %e, "refused a frame");
                let f = error_frame(
                    e.correlation().unwrap_or(0),
                    e.code(),
                    e.to_string(),
                    now_ms,
                );
                return self.respond_frame(now, link, request_id, &f);
            }
        };
        self.handle_frame(
            now,
            frame,
            caller,
            FrameReply::Link {
                link,
                request_id,
                caller: remote,
            },
        );
    }

    /// Check, dispatch and answer a decoded frame from `caller` (trust, ACL, replays,
    /// subscriptions, built-ins, registered commands).
    pub(super) fn handle_frame(
        &mut self,
        now: Instant,
        frame: GridFrame,
        caller: Option<AddressHash>,
        reply: FrameReply,
    ) {
        let now_ms = crate::clock::wall_ms();
        let link = match &reply {
            FrameReply::Link { link, .. } => Some(*link),
            FrameReply::Bundle { .. } => None,
        };
        let level = caller.map_or(self.guard.trust.default_level(), |c| {
            self.guard.trust.level(&c)
        });
        let peer = caller.map_or_else(|| "unidentified".to_string(), |c| c.to_string());
        let name = command_name(&frame).to_string();
        let entry = |outcome: AuditOutcome| AuditEntry {
            time_ms: now_ms,
            direction: Direction::In,
            peer: peer.clone(),
            command: name.clone(),
            correlation: frame.correlation,
            outcome,
            duration_ms: 0,
        };
        let sender = Sender {
            caller,
            level,
            link,
        };
        let verdict = self.grid.inbound.handle(
            now.as_millis(),
            now_ms,
            &self.guard.acl,
            sender,
            &frame,
            reply,
        );
        let (key, reply) = match verdict {
            Verdict::Run { key, to } => (key, to),
            Verdict::Drop { audit } => {
                tracing::debug!(?link, peer = %peer, command = %name, ?audit, "frame dropped");
                if let Some(a) = audit {
                    self.guard.record(&entry(a));
                }
                return;
            }
            Verdict::Answer {
                to,
                response,
                audit,
            } => {
                if audit == Some(AuditOutcome::Denied) {
                    tracing::info!(?link, peer = %peer, command = %name, "denied");
                }
                if let Some(a) = audit {
                    self.guard.record(&entry(a));
                }
                return self.answer_frame(now, &to, response);
            }
        };
        let Body::Request { command, params } = &frame.body else {
            return;
        };
        let params: Value = if params.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(params).unwrap_or(Value::Null)
        };
        tracing::debug!(?link, command = %command, correlation = frame.correlation, "command");
        if command == crate::commands::JOIN_COMMAND {
            let (outcome, audited) = match self.pair_join(now, caller, &params) {
                Ok(v) => (
                    Outcome::Ok(v.to_string().into_bytes()),
                    AuditOutcome::Success,
                ),
                Err(e) => (
                    Outcome::Err {
                        code: e.code,
                        message: e.message,
                    },
                    AuditOutcome::Denied,
                ),
            };
            self.guard.record(&entry(audited));
            let f = frame.respond(outcome, now_ms);
            return self.complete_request(now, key, reply, f);
        }
        if let Some(result) = self.builtin(now, command) {
            self.guard.record(&entry(AuditOutcome::Success));
            let f = frame.respond(Outcome::Ok(result.to_string().into_bytes()), now_ms);
            return self.complete_request(now, key, reply, f);
        }
        let Some(reg) = self.grid.commands.get(command).cloned() else {
            self.guard.record(&entry(AuditOutcome::Error));
            let f = frame.respond(
                Outcome::Err {
                    code: ErrorCode::UnknownCommand,
                    message: format!("no command \"{command}\" here (try \"list\")"),
                },
                now_ms,
            );
            return self.complete_request(now, key, reply, f);
        };
        let calls = self.calls.clone();
        let progress = match link {
            None => crate::commands::Progress { send: None },
            Some(link) => {
                let calls = calls.clone();
                let (correlation, source, target) = (frame.correlation, frame.target, frame.source);
                crate::commands::Progress {
                    send: Some(std::sync::Arc::new(move |fraction, detail: Value| {
                        let f = GridFrame {
                            correlation,
                            source,
                            target,
                            timestamp_ms: crate::clock::wall_ms(),
                            ttl_ms: 0,
                            body: Body::Progress {
                                fraction,
                                payload: detail.to_string().into_bytes(),
                            },
                        };
                        // Progress is best effort: dropped if the node's queue is full.
                        let _ = calls.try_send(Call::Push {
                            link,
                            frame: f.encode(),
                        });
                    })),
                }
            }
        };
        let call = CommandCall {
            command: command.clone(),
            params,
            caller,
            correlation: frame.correlation,
            progress,
        };
        let mut audit = entry(AuditOutcome::Success);
        tokio::spawn(async move {
            let outcome = match (reg.handler)(call).await {
                Ok(v) => Outcome::Ok(v.to_string().into_bytes()),
                Err(e) => {
                    audit.outcome = e.code.into();
                    Outcome::Err {
                        code: e.code,
                        message: e.message,
                    }
                }
            };
            let done_ms = crate::clock::wall_ms();
            audit.time_ms = done_ms;
            audit.duration_ms = done_ms.saturating_sub(now_ms);
            let response = frame.respond(outcome, done_ms);
            let _ = calls
                .send(Call::Respond {
                    to: reply,
                    response,
                    audit: Some(audit),
                    request: Some(key),
                })
                .await;
        });
    }

    /// A request finished with `response`: keep it in the request log and answer the
    /// request and every copy of it that arrived while it ran.
    pub(super) fn complete_request(
        &mut self,
        now: Instant,
        key: RequestKey,
        reply: FrameReply,
        response: GridFrame,
    ) {
        let joined = self.grid.inbound.finish(&key, &response);
        for to in joined {
            self.answer_frame(now, &to, response.clone());
        }
        self.answer_frame(now, &reply, response);
    }

    /// Answer a frame where it came from. An answer whose link is gone (closed, or the
    /// response cannot be sent on it) goes to an identified caller as a bundle, so a
    /// delay-tolerant caller still gets it.
    pub(super) fn answer_frame(&mut self, now: Instant, to: &FrameReply, frame: GridFrame) {
        match to {
            FrameReply::Link {
                link,
                request_id,
                caller,
            } => {
                let active = self
                    .transport
                    .link(link)
                    .is_some_and(|l| l.state == rns_core::link::LinkState::Active);
                let sent = active && {
                    let value = rmpv::Value::Binary(frame.encode());
                    match self.transport.link_respond(now, link, request_id, &value) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(%link, error = %e, "could not answer on the link");
                            false
                        }
                    }
                };
                if sent {
                    return;
                }
                let Some(caller) = caller else {
                    tracing::debug!(%link, "the link of an anonymous caller is gone; answer dropped");
                    return;
                };
                if frame.expired(crate::clock::wall_ms()) {
                    return;
                }
                tracing::info!(%link, correlation = frame.correlation, "the caller's link is gone; the answer goes as a bundle");
                if let Err(e) = self.send_bundle(caller, frame, None) {
                    tracing::warn!(to = %caller.hash(), error = %e, "could not queue an answer bundle");
                }
            }
            FrameReply::Bundle { to } => {
                if let Err(e) = self.send_bundle(to, frame, None) {
                    tracing::warn!(to = %to.hash(), error = %e, "could not queue an answer bundle");
                }
            }
        }
    }

    /// Answer a frame request.
    pub(super) fn respond_frame(
        &mut self,
        now: Instant,
        link: LinkId,
        request_id: AddressHash,
        frame: &GridFrame,
    ) {
        self.respond_bytes(now, link, request_id, frame.encode());
    }

    /// Answer a request with encoded frame bytes.
    pub(super) fn respond_bytes(
        &mut self,
        now: Instant,
        link: LinkId,
        request_id: AddressHash,
        bytes: Vec<u8>,
    ) {
        let value = rmpv::Value::Binary(bytes);
        if let Err(e) = self.transport.link_respond(now, &link, &request_id, &value) {
            tracing::debug!(%link, error = %e, "could not answer a command");
        }
    }

    /// The built-in commands, answered on the node's loop.
    pub(super) fn builtin(&self, now: Instant, command: &str) -> Option<Value> {
        Some(match command {
            "grid/ping" => json!({"pong": true, "node": self.grid_destination.to_string()}),
            "grid/status" => json!({
                "identity": self.identity.hash().to_string(),
                "node": self.grid_destination.to_string(),
                "transport": self.transport.transport_enabled(),
                "uptime_s": now.saturating_since(self.started).as_secs(),
                "interfaces": self.transport.interfaces().filter(|i| i.2).count(),
                "paths": self.transport.path_count(),
                "links": self.transport.links().count(),
            }),
            "grid/capabilities" => self.grid.capabilities.to_json(),
            "list" => {
                let mut all: Vec<Value> = BUILTINS
                    .iter()
                    .map(|(c, d)| json!({"command": c, "description": d}))
                    .collect();
                let mut registered: Vec<_> = self.grid.commands.iter().collect();
                registered.sort_by(|a, b| a.0.cmp(b.0));
                all.extend(
                    registered
                        .into_iter()
                        .map(|(c, r)| json!({"command": c, "description": r.description})),
                );
                Value::Array(all)
            }
            _ => return None,
        })
    }
}

/// The grid layer's state on the node: registered commands, capabilities and the peers
/// heard with theirs, the inbound checks and subscriptions, progress expected, recent
/// events and pairing.
pub(super) struct GridState {
    /// When grid.node was last (or is next) announced for a capability change.
    pub(super) capability_announced: Option<Instant>,
    /// The open `grid pair` offer, and how the latest one ended.
    pub(super) pairing: crate::proto::pairing::Pairing,
    /// Commands registered by the program running this node.
    pub(super) commands: std::collections::HashMap<String, crate::commands::Registered>,
    /// Commands sent on links, whose progress may come back on them.
    pub(super) progress: crate::proto::subscriptions::ProgressExpected,
    /// Recent events for `grid listen`.
    pub(super) recent_events: super::events::RecentEvents,
    /// The checks on frames from other nodes: trust, ACL, TTL, the request log (each
    /// request runs at most once) and remote subscriptions (see [`crate::proto::inbound`]).
    pub(super) inbound: crate::proto::inbound::Inbound<FrameReply>,
    /// What this node can do (its announce app_data).
    pub(super) capabilities: crate::capabilities::Capabilities,
    /// Grid nodes heard announcing, with what they can do: hops and when last heard.
    pub(super) peers:
        std::collections::HashMap<AddressHash, (crate::capabilities::Capabilities, u8, Instant)>,
}
