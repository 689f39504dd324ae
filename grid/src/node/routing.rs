//! Routing on the node's loop: the candidates the router weighs (peers heard announcing,
//! with their trust), and running a command here when the router says so.

use rns_core::Instant;
use serde_json::Value;
use tokio::sync::oneshot;

use super::Node;
use crate::commands::{CommandCall, CommandError, Progress};
use crate::frame::ErrorCode;
use crate::proto::compute_offer::Reading as Offer;
use crate::proto::gossip::entry::Body;
use crate::proto::placement::{place, Here};
use crate::routing::{plan, Candidate, Decision, Route, RouteError};
use crate::trust::TrustLevel;

impl Node {
    /// The trust level of the node behind a `grid.node` destination.
    fn node_trust(&self, node: &rns_core::AddressHash) -> TrustLevel {
        match self.transport.recall_identity(node) {
            Some(id) => self.guard.trust.level(&id.hash()),
            None => self.guard.trust.default_level(),
        }
    }

    /// The compute offers in the catalog, by the publisher's `grid.node` destination.
    fn compute_offers(&self) -> std::collections::HashMap<rns_core::AddressHash, Offer> {
        let mut offers = std::collections::HashMap::new();
        for e in self.catalog_entries() {
            let Body::Compute {
                ram_mb,
                gpu_mb,
                load_pct,
            } = e.record().body
            else {
                continue;
            };
            let Ok(publisher) = rns_core::PublicIdentity::from_bytes(e.publisher()) else {
                continue;
            };
            let node = crate::proto::bundle::envelope::node_destination(&publisher);
            offers.insert(
                rns_core::AddressHash(node),
                Offer {
                    ram_free_mb: ram_mb,
                    gpu_free_mb: gpu_mb,
                    load_pct,
                },
            );
        }
        offers
    }

    /// The other nodes heard announcing, as the router weighs them; with their compute
    /// offers from the catalog when `offers` is set.
    fn candidates(&self, now: Instant, offers: bool) -> Vec<Candidate> {
        let offers = if offers {
            self.compute_offers()
        } else {
            Default::default()
        };
        self.grid
            .peers
            .iter()
            .filter(|(node, _)| **node != self.grid_destination)
            .map(|(node, (caps, hops, seen))| Candidate {
                node: *node,
                capabilities: caps.clone(),
                hops: *hops,
                heard_ago: now.saturating_since(*seen),
                trust: self.node_trust(node),
                offer: offers.get(node).copied(),
            })
            .collect()
    }

    /// Where `command` may run under `route`, in the order to try.
    pub(super) fn route(
        &self,
        now: Instant,
        route: Route,
        command: &str,
    ) -> Result<Vec<Decision>, RouteError> {
        let candidates = self.candidates(now, route == Route::LeastLoaded);
        plan(
            route,
            command,
            &self.grid.layer.capabilities,
            self.governor.offer(),
            &candidates,
            |n| self.node_trust(n),
        )
    }

    /// Where a compute job needing `need_mb` of RAM may run, in the order to try, with
    /// why ([`crate::proto::placement::place`]).
    pub(super) fn place_compute(&self, now: Instant, need_mb: u32) -> Vec<(Decision, String)> {
        let here = Here {
            compute: self.grid.layer.capabilities.roles & crate::capabilities::roles::COMPUTE != 0,
            offer: self.governor.offer(),
        };
        place(need_mb, here, &self.candidates(now, true))
            .into_iter()
            .map(|c| (c.decision, c.why))
            .collect()
    }

    /// Run `command` on this node for its own user (no ACL: the caller is the owner).
    pub(super) fn run_local(
        &mut self,
        now: Instant,
        command: String,
        params: Value,
        correlation: u64,
        reply: oneshot::Sender<Result<Value, CommandError>>,
    ) {
        if let Some(v) = self.grid.layer.builtin(now, &self.transport, &command) {
            let _ = reply.send(Ok(v));
            return;
        }
        let Some(handler) = self.grid.layer.handler(&command).cloned() else {
            let _ = reply.send(Err(CommandError {
                code: ErrorCode::UnknownCommand,
                message: format!("no command \"{command}\" on this node (try \"list\")"),
            }));
            return;
        };
        // Progress of a local run shows up as this node's job events, as a remote one's
        // does at its caller.
        let calls = self.calls.clone();
        let progress = Progress {
            send: Some(std::sync::Arc::new(move |fraction, detail: Value| {
                let event = crate::commands::job_event(correlation, "progress");
                let payload = serde_json::json!({"fraction": fraction, "detail": detail});
                let _ = calls.try_send(crate::api::Call::LocalEvent(event, payload));
            })),
        };
        let call = CommandCall {
            command,
            params,
            caller: Some(self.identity.hash()),
            correlation,
            progress,
        };
        tokio::spawn(async move {
            let _ = reply.send(handler(call).await);
        });
    }
}
