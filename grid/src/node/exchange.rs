//! The `grid/bundle` exchange on the node's loop (push, pull, ack, identity lookup), with
//! all its storage work off the loop ([`super::store_work`]): pushed bundles are checked
//! (and those for this node opened) here, then stored in one transaction on a blocking
//! thread, and only then answered and acted on — a bundle is accepted once it is durable,
//! and the loop never waits for an fsync. Whether a bundle for this node was handled
//! before is decided in that same transaction, so a bundle is acted on at most once even
//! when copies arrive in exchanges stored at the same time. A pull's read and an ack's
//! ownership check and removal run on a blocking thread too; their answers come back to
//! the loop as [`Call::ExchangeDone`].

use std::collections::HashSet;

use rns_core::identity::PublicIdentity;
use rns_core::link::LinkId;
use rns_core::{rmpv, AddressHash, Instant};
use tokio::sync::oneshot;

use super::Node;
use crate::api::Call;
use crate::bundle::envelope::open_frame;
use crate::bundle::store::{ExchangeCommit, StoreError, StoredBundle, StrangerLimits};
use crate::bundle::wire::{
    Exchange, ExchangeReply, WireBundle, BATCH_BYTES, BATCH_COUNT, MAX_SEALED,
};
use crate::frame::GridFrame;
use crate::proto::custody::{triage, Giver, Offered, Policy, Triage};
use crate::trust::TrustLevel;

/// Where an exchange's answer goes.
#[derive(Debug)]
pub(crate) enum ExchangeTo {
    /// A link request to answer.
    Link {
        /// The link.
        link: LinkId,
        /// The request.
        request_id: AddressHash,
    },
    /// This node's courier (bundles it pulled from a custodian).
    Courier(oneshot::Sender<ExchangeReply>),
}

/// Pushed (or pulled) bundles after their checks, waiting to be stored.
#[derive(Debug)]
pub(crate) struct TakePlan {
    /// Handled here before: taken, not acted on again.
    already: Vec<[u8; 16]>,
    refused: Vec<([u8; 16], String)>,
    /// For this node: marked seen when stored, then acted on unless the store had seen
    /// them already.
    ours_seen: Vec<([u8; 16], u64)>,
    /// The frames of `ours_seen`, in the same order.
    opened: Vec<(PublicIdentity, GridFrame)>,
    /// Held for others: for a trusted caller (`None`) or a stranger.
    held: Vec<(StoredBundle, Option<[u8; 16]>)>,
    limits: StrangerLimits,
}

/// A [`TakePlan`] whose storage work is done.
#[derive(Debug)]
pub(crate) struct TakeCommitted {
    pub(crate) plan: TakePlan,
    pub(crate) stored: Result<ExchangeCommit, StoreError>,
    pub(crate) to: ExchangeTo,
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
        let to = ExchangeTo::Link { link, request_id };
        let x = match data {
            rmpv::Value::Binary(bytes) => match Exchange::decode(&bytes) {
                Ok(x) => x,
                Err(e) => {
                    return self.answer_exchange(now, to, ExchangeReply::Refused(e.to_string()))
                }
            },
            _ => {
                let r = ExchangeReply::Refused("expected exchange bytes".into());
                return self.answer_exchange(now, to, r);
            }
        };
        let caller_node =
            caller.map(|c| rns_core::destination::hash_from_name("grid.node", Some(&c)));
        let reply = match x {
            Exchange::Push(list) => {
                let plan = self.plan_take(list, caller, false);
                return self.commit_take(now, plan, to);
            }
            Exchange::Pull { max_bytes } => {
                let Some(node) = caller_node else {
                    let r = ExchangeReply::Refused("identify on the link to pull bundles".into());
                    return self.answer_exchange(now, to, r);
                };
                let budget = (max_bytes as usize).min(BATCH_BYTES);
                let slot = match self.dtn.store.reserve() {
                    Ok(slot) => slot,
                    Err(e) => return self.answer_exchange(now, to, refused(e)),
                };
                let calls = self.calls.clone();
                self.dtn.store.run_in(slot, move |store| {
                    let reply = match store.for_destination(&node.0, budget, BATCH_COUNT) {
                        Ok(list) => {
                            ExchangeReply::Pulled(list.iter().map(StoredBundle::to_wire).collect())
                        }
                        Err(e) => ExchangeReply::Refused(e.to_string()),
                    };
                    let _ = calls.blocking_send(Call::ExchangeDone { to, reply });
                });
                return;
            }
            Exchange::Ack(ids) => {
                let Some(node) = caller_node else {
                    let r = ExchangeReply::Refused(
                        "identify on the link to acknowledge bundles".into(),
                    );
                    return self.answer_exchange(now, to, r);
                };
                let slot = match self.dtn.store.reserve() {
                    Ok(slot) => slot,
                    Err(e) => return self.answer_exchange(now, to, refused(e)),
                };
                let calls = self.calls.clone();
                self.dtn.store.run_in(slot, move |store| {
                    // Only the destination may make a custodian forget its bundles.
                    let mine: Vec<[u8; 16]> = ids
                        .into_iter()
                        .take(BATCH_COUNT)
                        .filter(
                            |id| matches!(store.get(id), Ok(Some(b)) if b.destination == node.0),
                        )
                        .collect();
                    let reply = match store.remove_delivered(&mine) {
                        Ok(n) => ExchangeReply::Acked(n as u32),
                        Err(e) => ExchangeReply::Refused(e.to_string()),
                    };
                    let _ = calls.blocking_send(Call::ExchangeDone { to, reply });
                });
                return;
            }
            Exchange::Identity(d) => ExchangeReply::Identity(
                self.recall_node(&AddressHash(d))
                    .map(|p| p.as_bytes().to_vec()),
            ),
        };
        self.answer_exchange(now, to, reply);
    }

    /// Send an exchange's answer where it goes.
    pub(super) fn answer_exchange(&mut self, now: Instant, to: ExchangeTo, reply: ExchangeReply) {
        match to {
            ExchangeTo::Link { link, request_id } => {
                let value = rmpv::Value::Binary(reply.encode());
                if let Err(e) = self.transport.link_respond(now, &link, &request_id, &value) {
                    tracing::debug!(%link, error = %e, "could not answer a bundle exchange");
                }
            }
            ExchangeTo::Courier(tx) => {
                let _ = tx.send(reply);
            }
        }
    }

    /// Check pushed (or `pulled`) bundles: open those for this node; plan to hold the
    /// others when this node is a custodian and the node handing them over (`caller`,
    /// its identity hash) may leave them here. A trusted caller is bounded by the store's
    /// quota only; a stranger by its share ([`crate::config::StrangerConfig`]) and the
    /// longest TTL held for strangers; an anonymous caller may hand over only bundles
    /// for this node.
    pub(super) fn plan_take(
        &mut self,
        list: Vec<WireBundle>,
        caller: Option<AddressHash>,
        pulled: bool,
    ) -> TakePlan {
        let now_ms = crate::clock::wall_ms();
        let mut plan = TakePlan {
            already: Vec::new(),
            refused: Vec::new(),
            ours_seen: Vec::new(),
            opened: Vec::new(),
            held: Vec::new(),
            limits: self.stranger_limits(),
        };
        let policy = Policy {
            me: self.grid_destination,
            custody: self.dtn.config.custody,
            stranger_max_ttl: self.dtn.config.strangers.max_ttl,
            max_sealed: MAX_SEALED,
        };
        let giver = Giver {
            identity: caller,
            trusted: caller.is_some_and(|c| self.guard.trust.level(&c) >= TrustLevel::Trusted),
        };
        for b in list.into_iter().take(BATCH_COUNT) {
            let id = b.id;
            let offered = Offered {
                sealed: &b.sealed,
                expires_ms: b.expires_ms,
                destination: b.destination,
            };
            let r = match triage(&policy, now_ms, offered, giver, pulled) {
                Triage::Refuse(why) => Err(why.to_string()),
                Triage::Hold(holder) => {
                    plan.held.push((StoredBundle::from_wire(b, true), holder));
                    Ok(())
                }
                Triage::Ours => {
                    // A copy being stored now is taken and not opened again; whether it
                    // was handled in the past is for the store to say, when it commits.
                    let in_flight = self.dtn.opening.contains(&id)
                        || plan.ours_seen.iter().any(|(i, _)| *i == id);
                    if in_flight {
                        plan.already.push(id);
                        Ok(())
                    } else {
                        open_frame(&self.identity, &b)
                            .map(|opened| {
                                plan.ours_seen.push((id, b.expires_ms));
                                plan.opened.push(opened);
                            })
                            .map_err(|e| e.to_string())
                    }
                }
            };
            if let Err(e) = r {
                tracing::debug!(id = %hex::encode(id), reason = %e, "refused a bundle");
                plan.refused.push((id, e));
            }
        }
        plan
    }

    /// Store what `plan` holds (one transaction, on a blocking thread), then answer `to`
    /// and act on the opened frames ([`Node::finish_take`]). A peer's exchange is refused
    /// whole while the store has [`super::store_work::MAX_STORE_JOBS`] jobs in flight (it
    /// pushes again later); the courier's own pulls always run.
    pub(super) fn commit_take(&mut self, now: Instant, plan: TakePlan, to: ExchangeTo) {
        if plan.ours_seen.is_empty() && plan.held.is_empty() {
            return self.finish_take(
                now,
                TakeCommitted {
                    plan,
                    stored: Ok(ExchangeCommit::default()),
                    to,
                },
            );
        }
        let slot = match &to {
            ExchangeTo::Courier(_) => None,
            ExchangeTo::Link { .. } => match self.dtn.store.reserve() {
                Ok(slot) => Some(slot),
                Err(e) => {
                    let why = e.to_string();
                    let TakePlan {
                        already,
                        mut refused,
                        ours_seen,
                        held,
                        ..
                    } = plan;
                    refused.extend(ours_seen.iter().map(|(id, _)| (*id, why.clone())));
                    refused.extend(held.iter().map(|(b, _)| (b.id, why.clone())));
                    let reply = ExchangeReply::Pushed {
                        accepted: already,
                        refused,
                    };
                    return self.answer_exchange(now, to, reply);
                }
            },
        };
        self.dtn
            .opening
            .extend(plan.ours_seen.iter().map(|(id, _)| *id));
        let calls = self.calls.clone();
        let job = move |store: &crate::bundle::store::BundleStore| {
            let stored = store.commit_exchange(&plan.ours_seen, &plan.held, &plan.limits);
            let done = TakeCommitted { plan, stored, to };
            let _ = calls.blocking_send(Call::TakeCommitted(Box::new(done)));
        };
        match slot {
            Some(slot) => self.dtn.store.run_in(slot, job),
            None => self.dtn.store.run(job),
        }
    }

    /// The storage work of a take is done: answer, and act on the opened frames.
    pub(super) fn finish_take(&mut self, now: Instant, done: TakeCommitted) {
        let TakeCommitted { plan, stored, to } = done;
        let TakePlan {
            already,
            mut refused,
            ours_seen,
            opened,
            held,
            ..
        } = plan;
        for (id, _) in &ours_seen {
            self.dtn.opening.remove(id);
        }
        let mut accepted = already;
        match stored {
            Ok(ExchangeCommit {
                first_seen,
                held: results,
            }) => {
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
                    self.dtn.courier_wake.notify_one();
                }
                self.answer_exchange(now, to, ExchangeReply::Pushed { accepted, refused });
                // Only bundles this exchange saw first are acted on; the others were
                // handled before (an earlier copy), and are taken all the same.
                for ((sender, frame), first) in opened.into_iter().zip(first_seen) {
                    if !first {
                        continue;
                    }
                    tracing::debug!(from = %sender.hash(), correlation = frame.correlation, "bundle delivered");
                    self.on_bundle_frame(now, sender, frame);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "bundle store: could not take an exchange");
                let why = e.to_string();
                refused.extend(ours_seen.iter().map(|(id, _)| (*id, why.clone())));
                refused.extend(held.iter().map(|(b, _)| (b.id, why.clone())));
                self.answer_exchange(now, to, ExchangeReply::Pushed { accepted, refused });
            }
        }
    }

    /// What strangers may have this node hold, from `[bundles]`.
    fn stranger_limits(&self) -> StrangerLimits {
        let strangers = self.dtn.config.strangers;
        StrangerLimits {
            bundles: strangers.bundles,
            bytes: strangers.bytes,
            total_bytes: (self.dtn.config.store_limit as f64 * strangers.share) as u64,
        }
    }
}

/// The refusal of an exchange the store has no room for now.
fn refused(e: super::store_work::StoreBusy) -> ExchangeReply {
    ExchangeReply::Refused(e.to_string())
}

/// Bundle ids being opened: stored but not yet acted on.
pub(crate) type Opening = HashSet<[u8; 16]>;
