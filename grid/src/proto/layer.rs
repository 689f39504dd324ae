//! The grid layer as one state machine over rns-core's [`Transport`]: GridFrames from
//! other nodes in (link requests, channel messages, frames from bundles), answers,
//! subscription events and progress out on links, and what it cannot do itself handed to
//! its driver as [`Output`]s: audit records, commands to run, bundles to send, trust
//! levels to store, events for this node's listeners.
//!
//! The same value runs in the tokio node and on the deterministic test network
//! (`rns_core::testnet`), so tests of trust, the ACL, replays and subscriptions exercise
//! the code the node runs. Call order, as for quinn-proto: feed it ([`GridLayer::on_link_event`],
//! [`GridLayer::on_bundle_frame`], [`GridLayer::emit`], [`GridLayer::finish`]), then drain
//! [`GridLayer::poll_output`] and perform each output before feeding it again (a
//! [`Output::Trust`] must be stored before the next frame is checked).

use std::collections::{BTreeMap, VecDeque};

use rns_core::identity::PublicIdentity;
use rns_core::link::{wire::path_hash, LinkEvent, LinkId, LinkState};
use rns_core::transport::Transport;
use rns_core::{rmpv, AddressHash, Instant};
use serde_json::{json, Value};

use super::acl::Acl;
use super::capabilities::Capabilities;
use super::frame::{Body, ErrorCode, GridFrame, Outcome, CHANNEL_MSGTYPE, PREFIX_LEN};
use super::inbound::{command_name, Inbound, Sender, Verdict};
use super::pairing::{JoinError, Pairing, PairingState};
use super::request_log::RequestKey;
use super::subscriptions::ProgressExpected;
use crate::audit::{AuditEntry, Direction, Outcome as Audit};
use crate::commands::{BUILTINS, FRAME_PATH, JOIN_COMMAND};
use crate::trust::TrustLevel;

/// Trust levels as the driver keeps them (a trust store on disk, a map in a test).
pub trait TrustLevels {
    /// The level of `id` here (the default level for identities not listed).
    fn level(&self, id: &AddressHash) -> TrustLevel;
    /// The level of callers that did not identify.
    fn default_level(&self) -> TrustLevel;
}

/// Who may do what here: the ACL and the trust levels, lent for one call.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    /// Command rules.
    pub acl: &'a Acl,
    /// Trust levels of other identities.
    pub trust: &'a dyn TrustLevels,
}

/// The time, as the grid layer needs it: the monotonic clock for its own deadlines, the
/// wall clock for the timestamps and TTLs frames carry.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// The node's monotonic clock.
    pub mono: Instant,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

/// Where the answer to a frame goes: back on the link it came on, or (for a frame that
/// came in a bundle) in a bundle sealed to its sender.
#[derive(Debug, Clone)]
pub enum FrameReply {
    /// A link request to answer.
    Link {
        /// The link.
        link: LinkId,
        /// The request.
        request_id: AddressHash,
        /// The caller, when it identified: an answer whose link is gone goes to it as a
        /// bundle instead.
        caller: Option<Box<PublicIdentity>>,
    },
    /// A bundle to send to the sender's node.
    Bundle {
        /// The sender, whose identity the answer is sealed to.
        to: Box<PublicIdentity>,
    },
}

/// A registered command to run for a caller; its answer comes back through
/// [`GridLayer::finish`] with `key` and `reply`.
pub struct Run<H> {
    /// The command's handler, as registered.
    pub handler: H,
    /// The request (answer with [`GridFrame::respond`]).
    pub frame: GridFrame,
    /// The command name.
    pub command: String,
    /// Its parameters (`null` when there were none or they were not JSON).
    pub params: Value,
    /// Who asked, if it identified.
    pub caller: Option<AddressHash>,
    /// The link it came on (progress goes back on it); `None` for a bundle.
    pub link: Option<LinkId>,
    /// The request's key in the request log.
    pub key: RequestKey,
    /// Where the answer goes.
    pub reply: FrameReply,
    /// The audit record to complete and keep when the command ends.
    pub audit: AuditEntry,
}

impl<H> std::fmt::Debug for Run<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("command", &self.command)
            .field("caller", &self.caller)
            .field("link", &self.link)
            .field("correlation", &self.frame.correlation)
            .finish_non_exhaustive()
    }
}

/// What the driver does for the grid layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output<H> {
    /// Append to the audit log.
    Audit(AuditEntry),
    /// Run a registered command.
    Run(Box<Run<H>>),
    /// Send `frame` in a bundle sealed to `to` (an answer whose caller's link is gone,
    /// or to a caller that sent its request in a bundle).
    Bundle {
        /// The recipient.
        to: Box<PublicIdentity>,
        /// The frame.
        frame: GridFrame,
    },
    /// `identity` paired with this node: store its trust level (before the next frame).
    Trust {
        /// Who.
        identity: AddressHash,
        /// Its new level.
        level: TrustLevel,
    },
    /// An event for this node's listeners: emitted here, or pushed by a node this one
    /// subscribed to (`node` is the node it came from, proved by the link).
    Event {
        /// The node it happened on.
        node: AddressHash,
        /// The event name.
        event: String,
        /// Its payload (`null` when it was not JSON).
        payload: Value,
    },
}

/// A registered command.
#[derive(Debug, Clone)]
struct Command<H> {
    description: String,
    handler: H,
}

/// The grid layer of one node. `H` is the driver's command handler type.
pub struct GridLayer<H> {
    /// This node's `grid.node` destination.
    node: AddressHash,
    /// When the node started (for `grid/status`).
    started: Instant,
    /// The checks on frames from other nodes: trust, ACL, TTL, the request log (each
    /// request runs at most once) and remote subscriptions.
    pub inbound: Inbound<FrameReply>,
    /// Commands sent on links, whose progress may come back on them.
    pub progress: ProgressExpected,
    /// The open `grid pair` offer, and how the latest one ended.
    pub pairing: Pairing,
    /// What this node can do (its announce app_data).
    pub capabilities: Capabilities,
    commands: BTreeMap<String, Command<H>>,
    outputs: VecDeque<Output<H>>,
}

impl<H: std::fmt::Debug> std::fmt::Debug for GridLayer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridLayer")
            .field("node", &self.node)
            .field("commands", &self.commands.len())
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

/// An error answer to a request that could not be decoded.
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

fn payload_json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap_or(Value::Null)
}

impl<H: Clone> GridLayer<H> {
    /// The grid layer of the node whose `grid.node` destination is `node`.
    pub fn new(node: AddressHash, started: Instant, capabilities: Capabilities) -> Self {
        GridLayer {
            node,
            started,
            inbound: Inbound::default(),
            progress: ProgressExpected::default(),
            pairing: Pairing::default(),
            capabilities,
            commands: BTreeMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Register (or replace) a command other nodes may run here, subject to the ACL.
    pub fn register(&mut self, name: String, description: String, handler: H) {
        self.commands.insert(
            name,
            Command {
                description,
                handler,
            },
        );
    }

    /// The registered commands: (name, description).
    pub fn commands(&self) -> impl Iterator<Item = (&str, &str)> {
        self.commands
            .iter()
            .map(|(n, c)| (n.as_str(), c.description.as_str()))
    }

    /// The handler of a registered command.
    pub fn handler(&self, name: &str) -> Option<&H> {
        self.commands.get(name).map(|c| &c.handler)
    }

    /// The next thing for the driver to do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<H>> {
        self.outputs.pop_front()
    }

    /// A link event from the transport. Returns whether the grid layer took it (frame
    /// requests and frame channel messages); events it does not take, and `Closed`, which
    /// it only notes, are the driver's.
    pub fn on_link_event(
        &mut self,
        now: Now,
        transport: &mut Transport,
        policy: Policy<'_>,
        event: &LinkEvent,
    ) -> bool {
        match event {
            LinkEvent::Request {
                link,
                request_id,
                path_hash: p,
                data,
                remote_identity,
            } if *p == path_hash(FRAME_PATH) => {
                self.on_frame_request(
                    now,
                    transport,
                    policy,
                    *link,
                    *request_id,
                    data,
                    remote_identity.clone(),
                );
                true
            }
            LinkEvent::ChannelMessage {
                link,
                msgtype,
                data,
                ..
            } if *msgtype == CHANNEL_MSGTYPE => {
                self.on_frame_message(transport, *link, data);
                true
            }
            LinkEvent::Closed { link, .. } => {
                self.inbound.subscriptions.unsubscribe(*link, None);
                self.progress.forget(*link);
                false
            }
            _ => false,
        }
    }

    /// A request on [`FRAME_PATH`].
    #[allow(clippy::too_many_arguments)]
    fn on_frame_request(
        &mut self,
        now: Now,
        transport: &mut Transport,
        policy: Policy<'_>,
        link: LinkId,
        request_id: AddressHash,
        data: &rmpv::Value,
        remote: Option<Box<PublicIdentity>>,
    ) {
        let refuse = |transport: &mut Transport, f: GridFrame| {
            let value = rmpv::Value::Binary(f.encode());
            if let Err(e) = transport.link_respond(now.mono, &link, &request_id, &value) {
                tracing::debug!(%link, error = %e, "could not answer a command");
            }
        };
        let rmpv::Value::Binary(bytes) = data else {
            let e = error_frame(
                0,
                ErrorCode::Malformed,
                "expected frame bytes".into(),
                now.wall_ms,
            );
            return refuse(transport, e);
        };
        let frame = match GridFrame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(%link, error = %e, "refused a frame");
                let f = error_frame(
                    e.correlation().unwrap_or(0),
                    e.code(),
                    e.to_string(),
                    now.wall_ms,
                );
                return refuse(transport, f);
            }
        };
        let caller = remote.as_ref().map(|i| i.hash());
        let reply = FrameReply::Link {
            link,
            request_id,
            caller: remote,
        };
        self.handle_frame(now, transport, policy, frame, caller, reply);
    }

    /// A frame that came in a bundle from `sender` (sealed by it, so authenticated):
    /// requests and subscription changes are checked and answered as on a link, the
    /// answer going back as a bundle. Other frames are the driver's (answers to its own
    /// requests, events); this returns them.
    pub fn on_bundle_frame(
        &mut self,
        now: Now,
        transport: &mut Transport,
        policy: Policy<'_>,
        sender: PublicIdentity,
        frame: GridFrame,
    ) -> Option<(PublicIdentity, GridFrame)> {
        match &frame.body {
            Body::Request { .. } | Body::Subscribe { .. } | Body::Unsubscribe { .. } => {
                let caller = Some(sender.hash());
                let reply = FrameReply::Bundle {
                    to: Box::new(sender),
                };
                self.handle_frame(now, transport, policy, frame, caller, reply);
                None
            }
            _ => Some((sender, frame)),
        }
    }

    /// Check, dispatch and answer a decoded frame from `caller` (trust, ACL, replays,
    /// subscriptions, built-ins, registered commands).
    fn handle_frame(
        &mut self,
        now: Now,
        transport: &mut Transport,
        policy: Policy<'_>,
        frame: GridFrame,
        caller: Option<AddressHash>,
        reply: FrameReply,
    ) {
        let link = match &reply {
            FrameReply::Link { link, .. } => Some(*link),
            FrameReply::Bundle { .. } => None,
        };
        let level = caller.map_or(policy.trust.default_level(), |c| policy.trust.level(&c));
        let entry = AuditEntry {
            time_ms: now.wall_ms,
            direction: Direction::In,
            peer: caller.map_or_else(|| "unidentified".to_string(), |c| c.to_string()),
            command: command_name(&frame).to_string(),
            correlation: frame.correlation,
            outcome: Audit::Success,
            duration_ms: 0,
        };
        let audit = |outcome: Audit| AuditEntry {
            outcome,
            ..entry.clone()
        };
        let sender = Sender {
            caller,
            level,
            link,
        };
        let verdict = self.inbound.handle(
            now.mono.as_millis(),
            now.wall_ms,
            policy.acl,
            sender,
            &frame,
            reply,
        );
        let (key, reply) = match verdict {
            Verdict::Run { key, to } => (key, to),
            Verdict::Drop { audit: outcome } => {
                tracing::debug!(?link, peer = %entry.peer, command = %entry.command, ?outcome, "frame dropped");
                self.outputs
                    .extend(outcome.map(|a| Output::Audit(audit(a))));
                return;
            }
            Verdict::Answer {
                to,
                response,
                audit: outcome,
            } => {
                if outcome == Some(Audit::Denied) {
                    tracing::info!(?link, peer = %entry.peer, command = %entry.command, "denied");
                }
                self.outputs
                    .extend(outcome.map(|a| Output::Audit(audit(a))));
                return self.answer(now, transport, &to, response);
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
        let outcome = if command == JOIN_COMMAND {
            Some(self.pair_join(now.mono, transport, caller, &params))
        } else {
            self.builtin(now.mono, transport, command).map(Ok)
        };
        if let Some(outcome) = outcome {
            let (outcome, audited) = match outcome {
                Ok(v) => (Outcome::Ok(v.to_string().into_bytes()), Audit::Success),
                Err((code, message)) => (Outcome::Err { code, message }, code.into()),
            };
            self.outputs.push_back(Output::Audit(audit(audited)));
            let f = frame.respond(outcome, now.wall_ms);
            return self.finish(now, transport, key, reply, f);
        }
        let Some(handler) = self.handler(command).cloned() else {
            self.outputs.push_back(Output::Audit(audit(Audit::Error)));
            let f = frame.respond(
                Outcome::Err {
                    code: ErrorCode::UnknownCommand,
                    message: format!("no command \"{command}\" here (try \"list\")"),
                },
                now.wall_ms,
            );
            return self.finish(now, transport, key, reply, f);
        };
        let command = command.clone();
        self.outputs.push_back(Output::Run(Box::new(Run {
            handler,
            command,
            params,
            caller,
            link,
            key,
            reply,
            audit: entry,
            frame,
        })));
    }

    /// A request finished with `response`: keep it in the request log and answer the
    /// request and every copy of it that arrived while it ran.
    pub fn finish(
        &mut self,
        now: Now,
        transport: &mut Transport,
        key: RequestKey,
        reply: FrameReply,
        response: GridFrame,
    ) {
        let joined = self.inbound.finish(&key, &response);
        for to in joined {
            self.answer(now, transport, &to, response.clone());
        }
        self.answer(now, transport, &reply, response);
    }

    /// Answer a frame where it came from. An answer whose link is gone (closed, or the
    /// response cannot be sent on it) goes to an identified caller as a bundle, so a
    /// delay-tolerant caller still gets it.
    pub fn answer(
        &mut self,
        now: Now,
        transport: &mut Transport,
        to: &FrameReply,
        frame: GridFrame,
    ) {
        match to {
            FrameReply::Link {
                link,
                request_id,
                caller,
            } => {
                let active = transport
                    .link(link)
                    .is_some_and(|l| l.state == LinkState::Active);
                let sent = active && {
                    let value = rmpv::Value::Binary(frame.encode());
                    match transport.link_respond(now.mono, link, request_id, &value) {
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
                if frame.expired(now.wall_ms) {
                    return;
                }
                tracing::info!(%link, correlation = frame.correlation, "the caller's link is gone; the answer goes as a bundle");
                self.outputs.push_back(Output::Bundle {
                    to: caller.clone(),
                    frame,
                });
            }
            FrameReply::Bundle { to } => self.outputs.push_back(Output::Bundle {
                to: to.clone(),
                frame,
            }),
        }
    }

    /// The built-in commands, answered at once.
    pub fn builtin(&self, now: Instant, transport: &Transport, command: &str) -> Option<Value> {
        Some(match command {
            "grid/ping" => json!({"pong": true, "node": self.node.to_string()}),
            "grid/status" => json!({
                "identity": transport.identity().hash().to_string(),
                "node": self.node.to_string(),
                "transport": transport.transport_enabled(),
                "uptime_s": now.saturating_since(self.started).as_secs(),
                "interfaces": transport.interfaces().filter(|i| i.2).count(),
                "paths": transport.path_count(),
                "links": transport.links().count(),
            }),
            "grid/capabilities" => self.capabilities.to_json(),
            "list" => {
                let mut all: Vec<Value> = BUILTINS
                    .iter()
                    .map(|(c, d)| json!({"command": c, "description": d}))
                    .collect();
                all.extend(
                    self.commands
                        .iter()
                        .map(|(c, r)| json!({"command": c, "description": r.description})),
                );
                Value::Array(all)
            }
            _ => return None,
        })
    }

    /// `grid/join` from `caller` with `{"code": "…"}`: the level granted, stored through
    /// [`Output::Trust`].
    fn pair_join(
        &mut self,
        now: Instant,
        transport: &Transport,
        caller: Option<AddressHash>,
        params: &Value,
    ) -> Result<Value, (ErrorCode, String)> {
        let code = params.get("code").and_then(Value::as_str);
        let level = match self.pairing.join(now, caller, code) {
            Ok(level) => level,
            Err(e) => {
                if self.pairing.state(now) == PairingState::Closed("too many wrong codes") {
                    tracing::warn!(?caller, "pairing offer closed after too many wrong codes");
                }
                return Err((ErrorCode::Denied, e.to_string()));
            }
        };
        let Some(caller) = caller else {
            return Err((ErrorCode::Denied, JoinError::Anonymous.to_string()));
        };
        tracing::info!(%caller, level = level.as_str(), "paired");
        self.outputs.push_back(Output::Trust {
            identity: caller,
            level,
        });
        Ok(json!({"identity": transport.identity().hash().to_string(), "level": level.as_str()}))
    }

    /// Emit an event: to this node's listeners and to every remote subscription it
    /// matches. Returns how many subscribed links it was sent on.
    pub fn emit(
        &mut self,
        now: Now,
        transport: &mut Transport,
        event: &str,
        payload: &Value,
    ) -> usize {
        self.outputs.push_back(Output::Event {
            node: self.node,
            event: event.to_string(),
            payload: payload.clone(),
        });
        let matching = self.inbound.subscriptions.matching(event);
        if matching.is_empty() {
            return 0;
        }
        let frame = GridFrame {
            correlation: 0,
            source: self.node.0,
            target: [0; 16],
            timestamp_ms: now.wall_ms,
            ttl_ms: 0,
            body: Body::Event {
                event: event.to_string(),
                payload: payload.to_string().into_bytes(),
            },
        }
        .encode();
        let mut sent = 0;
        for link in matching {
            match transport.link_channel_send(now.mono, &link, CHANNEL_MSGTYPE, &frame) {
                Ok(_) => sent += 1,
                Err(e) => tracing::debug!(%link, error = %e, "could not forward an event"),
            }
        }
        sent
    }

    /// A channel message carrying a GridFrame: an event from a subscription, or progress
    /// of a command this node sent. Taken only on a link this node opened, and only when
    /// it names the node at the other end as its source (the link's handshake proved who
    /// that is); progress only for a command sent on that link. Anything else is forged
    /// or stray and is dropped.
    fn on_frame_message(&mut self, transport: &Transport, link: LinkId, data: &[u8]) {
        let frame = match GridFrame::decode(data) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(%link, error = %e, "ignored a bad frame on the channel");
                return;
            }
        };
        let Some(peer) = transport
            .link(&link)
            .filter(|l| l.initiator)
            .map(|l| l.destination)
        else {
            tracing::debug!(%link, "ignored a frame pushed on a link this node did not open");
            return;
        };
        if frame.source != peer.0 {
            tracing::info!(%link, %peer, claimed = %AddressHash(frame.source), "dropped a frame naming another node as its source");
            return;
        }
        let (event, payload) = match frame.body {
            Body::Event { event, payload } => (event, payload_json(&payload)),
            Body::Progress { fraction, payload } => {
                if !self.progress.expected(link, frame.correlation) {
                    tracing::debug!(%link, correlation = frame.correlation, "ignored progress for a command not sent on this link");
                    return;
                }
                let payload = json!({"fraction": fraction, "detail": payload_json(&payload)});
                (
                    crate::commands::job_event(frame.correlation, "progress"),
                    payload,
                )
            }
            _ => {
                tracing::debug!(%link, "ignored a non-event frame on the channel");
                return;
            }
        };
        self.outputs.push_back(Output::Event {
            node: peer,
            event,
            payload,
        });
    }

    /// A command frame (`bytes`) is being sent on `link`: its progress may come back on it.
    pub fn expect_progress(&mut self, link: LinkId, bytes: &[u8]) {
        let Some(prefix) = bytes.get(1..PREFIX_LEN) else {
            return;
        };
        let Ok(prefix) = <[u8; 8]>::try_from(prefix) else {
            return;
        };
        self.progress.expect(link, u64::from_be_bytes(prefix));
    }
}
