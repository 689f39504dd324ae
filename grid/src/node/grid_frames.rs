//! The node as the driver of the grid layer ([`crate::proto::layer`]): it lends the layer
//! the transport and the guard's ACL and trust levels, and performs what the layer asks
//! for — audit records, registered commands on their own tasks, bundles, trust levels
//! stored, events for this node's listeners.

use rns_core::transport::Transport;
use rns_core::Instant;

use super::Node;
use crate::api::Call;
use crate::commands::{CommandCall, CommandHandler};
use crate::frame::{Body, GridFrame, Outcome};
use crate::proto::layer::{GridLayer, Now, Output, Policy, Run};

impl Node {
    /// Call into the grid layer with the transport and the guard lent to it, then perform
    /// every output it left.
    pub(super) fn with_grid<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut GridLayer<CommandHandler>, Now, &mut Transport, Policy<'_>) -> R,
    ) -> R {
        let at = Now {
            mono: now,
            wall_ms: crate::clock::wall_ms(),
        };
        let policy = Policy {
            acl: &self.guard.acl,
            trust: &self.guard.trust,
        };
        let r = f(&mut self.grid.layer, at, &mut self.transport, policy);
        while let Some(output) = self.grid.layer.poll_output() {
            self.perform(output);
        }
        r
    }

    fn perform(&mut self, output: Output<CommandHandler>) {
        match output {
            Output::Audit(entry) => self.guard.record(entry),
            Output::Run(run) => self.run_command(run),
            Output::Bundle { to, frame } => {
                if let Err(e) = self.send_bundle(&to, frame, None) {
                    tracing::warn!(to = %to.hash(), error = %e, "could not queue an answer bundle");
                }
            }
            Output::Trust { identity, level } => {
                if let Err(e) = self.guard.trust.set(identity, level) {
                    tracing::warn!(%identity, error = %e, "could not store a paired identity's trust level");
                }
            }
            Output::Event {
                node,
                event,
                payload,
            } => self.record_event(node.to_string(), &event, payload),
        }
    }

    /// Run a registered command on its own task; its answer comes back to the loop as
    /// [`Call::Respond`], and its progress (for a caller on a link) as [`Call::Push`].
    fn run_command(&mut self, run: Box<Run<CommandHandler>>) {
        let Run {
            handler,
            frame,
            command,
            params,
            caller,
            link,
            key,
            reply,
            mut audit,
        } = *run;
        let calls = self.calls.clone();
        let progress = match link {
            None => crate::commands::Progress { send: None },
            Some(link) => {
                let calls = calls.clone();
                let (correlation, source, target) = (frame.correlation, frame.target, frame.source);
                crate::commands::Progress {
                    send: Some(std::sync::Arc::new(move |fraction, detail| {
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
            command,
            params,
            caller,
            correlation: frame.correlation,
            progress,
        };
        let started_ms = audit.time_ms;
        let job = caller.and_then(|c| self.grid.jobs.start(c, frame.correlation));
        tokio::spawn(async move {
            let result = match job {
                None => handler(call).await,
                Some((_entry, cancel)) => tokio::select! {
                    r = handler(call) => r,
                    Ok(()) = cancel => Err(crate::commands::CommandError::failed(
                        "cancelled by its caller",
                    )),
                },
            };
            let outcome = match result {
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
            audit.duration_ms = done_ms.saturating_sub(started_ms);
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
}

/// The grid layer's state on the node: the layer itself, and what the node keeps beside
/// it for its own user (peers heard, recent events, when capabilities were announced).
pub(super) struct GridState {
    /// The grid layer: frames, checks, subscriptions, pairing, commands, capabilities.
    pub(super) layer: GridLayer<CommandHandler>,
    /// When grid.node was last (or is next) announced for a capability change.
    pub(super) capability_announced: Option<Instant>,
    /// Recent events for `grid listen`.
    pub(super) recent_events: super::events::RecentEvents,
    /// Grid nodes heard announcing, with what they can do: hops and when last heard.
    pub(super) peers: std::collections::HashMap<
        rns_core::AddressHash,
        (crate::capabilities::Capabilities, u8, Instant),
    >,
    /// Commands running for identified callers, which those callers may cancel.
    pub(super) jobs: super::jobs::Jobs,
}
