//! The node's side of the embedded API: calls from handles, events to subscribers, request
//! handlers (resources for the application are in `app_resources`).

use rns_core::resource::{with_metadata, SegmentSpec, MAX_EFFICIENT_SIZE};
use rns_core::Instant;

use super::app_resources::AppResourcePolicy;
use super::waiters::Wait;
use super::Node;
use crate::api::{Call, NodeEvent};

impl Node {
    /// Tell subscribers, if there are any (building events costs copies).
    pub(super) fn emit(&self, event: impl FnOnce() -> NodeEvent) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(event());
        }
    }

    pub(super) fn on_api(&mut self, now: Instant, call: Call) {
        match call {
            Call::Link(op, reply) => self.link_op(now, op, reply),
            Call::Control(request, reply) => {
                let req = crate::control::ControlRequest { request, reply };
                self.on_control(now, req)
            }
            Call::Handler(path, handler, done) => {
                self.links
                    .request_handlers
                    .insert(rns_core::link::wire::path_hash(&path), handler);
                self.links.async_handlers.remove(&path);
                let _ = done.send(());
            }
            Call::AsyncHandler(path, handler, done) => {
                self.links.async_handlers.insert(&path, handler);
                self.links
                    .request_handlers
                    .remove(&rns_core::link::wire::path_hash(&path));
                let _ = done.send(());
            }
            Call::LinkRespond {
                link,
                request_id,
                response,
            } => {
                if let Err(e) = self
                    .transport
                    .link_respond(now, &link, &request_id, &response)
                {
                    tracing::debug!(%link, error = %e, "could not respond");
                }
            }
            Call::Authorize(identity, command, done) => {
                let level = self.guard.trust.level(&identity);
                let _ = done.send(self.guard.acl.check(&command, level).map(|()| level));
            }
            Call::Command(name, description, handler, done) => {
                self.grid.layer.register(name, description, handler);
                let _ = done.send(());
            }
            Call::Emit(event, payload, done) => {
                let sent = self.emit_event(now, &event, &payload);
                let _ = done.send(sent);
            }
            Call::Respond {
                to,
                response,
                audit,
                request,
            } => {
                if let Some(entry) = audit {
                    self.guard.record(entry);
                }
                self.with_grid(now, |grid, at, transport, _| match request {
                    Some(key) => grid.finish(at, transport, key, to, response),
                    None => grid.answer(at, transport, &to, response),
                });
            }
            Call::AwaitBundle {
                correlation,
                node,
                waiter,
                done,
            } => {
                let _ = done.send(self.await_bundle(correlation, node, waiter));
            }
            Call::SendBundle {
                recipient,
                frame,
                waiter,
                done,
            } => {
                self.send_bundle_call(*recipient, frame, waiter, done);
            }
            Call::Route(route, command, done) => {
                let _ = done.send(self.route(now, route, &command));
            }
            Call::PlaceCompute(need_mb, done) => {
                let _ = done.send(self.place_compute(now, need_mb));
            }
            Call::DefaultRule(pattern, level, done) => {
                let r = if self.guard.acl.rule_for(&pattern).is_some() {
                    Ok(())
                } else {
                    self.guard
                        .acl
                        .insert(&pattern, level)
                        .map_err(|e| crate::Error::BadRequest(e.to_string()))
                };
                let _ = done.send(r);
            }
            Call::Peers(done) => {
                let mut peers: Vec<crate::api::Peer> = self
                    .grid
                    .peers
                    .iter()
                    .map(|(node, (caps, hops, seen))| crate::api::Peer {
                        node: *node,
                        capabilities: caps.clone(),
                        hops: *hops,
                        heard_ago: now.saturating_since(*seen),
                    })
                    .collect();
                peers.sort_by_key(|p| (p.hops, p.node.0));
                let _ = done.send(peers);
            }
            Call::UpdateCapabilities(change, done) => {
                let _ = done.send(self.update_capabilities(now, change));
            }
            Call::PairOffer(level, window, done) => {
                let _ = done.send(self.pair_offer(now, level, window));
            }
            Call::RunLocal(command, params, correlation, done) => {
                self.run_local(now, command, params, correlation, done)
            }
            Call::BundleRoutes(dests, done) => {
                let _ = done.send(self.bundle_routes(now, &dests));
            }
            Call::TakeBundles(list, done) => {
                let plan = self.plan_take(list, None, true);
                self.commit_take(now, plan, super::exchange::ExchangeTo::Courier(done));
            }
            Call::TakeCommitted(done) => self.finish_take(now, *done),
            Call::ExchangeDone { to, reply } => self.answer_exchange(now, to, reply),
            Call::RecallIdentity(node, done) => {
                let _ = done.send(self.recall_node(&node));
            }
            Call::RecallAppData(destination, done) => {
                let _ = done.send(self.transport.recall_app_data(&destination));
            }
            Call::Audit(entry) => self.guard.record(entry),
            Call::DhtAnswer { from, message } => self.on_dht_answer(now, *from, message),
            Call::DhtUnreachable(request) => self.on_dht_unreachable(now, request),
            Call::GossipAnswer { from, message } => self.on_gossip_answer(now, from, *message),
            Call::CatalogPublish(record, done) => {
                let _ = done.send(self.catalog_publish(now, record));
            }
            Call::Catalog(done) => {
                let _ = done.send(self.catalog_entries());
            }
            Call::Commands(done) => {
                let acl = &self.guard.acl;
                let list = self
                    .grid
                    .layer
                    .commands()
                    .map(
                        |(name, description)| crate::proto::command_offers::Registered {
                            name: name.to_string(),
                            description: description.to_string(),
                            level: acl.rule_for(name).map(|(_, level)| level),
                        },
                    )
                    .collect();
                let _ = done.send(list);
            }
            Call::FloodSearch(query, patience, want, done) => {
                self.flood_search(now, query, patience, want, done)
            }
            Call::SearchOffer(id, item) => self.search_offer(id, item),
            Call::ResourceAssembled { link, done } => self.on_resource_assembled(now, link, *done),
            Call::DhtLookup(key, what, done) => self.dht_lookup(now, key, what, done),
            Call::DhtUnprovide(key) => self.dht.dht.unprovide(&key),
            Call::Push { link, frame } => {
                if let Err(e) = self.transport.link_channel_send(
                    now,
                    &link,
                    crate::frame::CHANNEL_MSGTYPE,
                    &frame,
                ) {
                    tracing::debug!(%link, error = %e, "could not send progress");
                }
            }
            Call::LocalEvent(event, payload) => {
                if let Some(correlation) = crate::commands::job_of_event(&event, "complete") {
                    self.record_job(correlation, &payload);
                }
                let node = self.grid_destination.to_string();
                self.record_event(node, &event, payload);
            }
            Call::Trust(identity, level, done) => {
                let r = self
                    .guard
                    .trust
                    .set(identity, level)
                    .map_err(|e| crate::Error::Failed(e.to_string()));
                let _ = done.send(r);
            }
            Call::AcceptResources(accept, done) => {
                self.set_app_resources(if accept {
                    AppResourcePolicy::Memory
                } else {
                    AppResourcePolicy::Refuse
                });
                let _ = done.send(());
            }
            Call::AcceptResourcesInto(dir, max_bytes, done) => {
                self.set_app_resources(AppResourcePolicy::Directory { dir, max_bytes });
                let _ = done.send(());
            }
            Call::SendResource {
                link,
                data,
                metadata,
                compress,
                timeout,
                reply,
            } => {
                let payload = match &metadata {
                    Some(m) => match with_metadata(m, &data) {
                        Some(p) => p,
                        None => {
                            return reply
                                .fail(crate::Error::BadRequest("metadata too large".into()))
                        }
                    },
                    None => data,
                };
                if payload.len() > MAX_EFFICIENT_SIZE {
                    return reply.fail(crate::Error::BadRequest(format!(
                        "{} bytes do not fit one resource segment ({MAX_EFFICIENT_SIZE}); send larger data with send_reader or send_file",
                        payload.len()
                    )));
                }
                let spec = SegmentSpec {
                    original_hash: None,
                    segment_index: 1,
                    total_segments: 1,
                    total_size: payload.len() as u64,
                    has_metadata: metadata.is_some(),
                    request_id: None,
                    is_response: false,
                    compress,
                };
                match self
                    .transport
                    .link_send_resource(now, &link, &payload, &spec)
                {
                    Ok(hash) => self.wait(now + timeout, reply, Wait::ResourceSent { link, hash }),
                    Err(e) => reply.fail(e),
                }
            }
            Call::SendTransfer(req, tx) => {
                let _ = tx.send(self.start_app_transfer(now, *req));
            }
            Call::CancelTransfer(id, tx) => {
                let _ = tx.send(self.cancel_transfer(now, &id));
            }
            Call::EnableRatchets(d, path, file, tx) => {
                let _ = tx.send(self.enable_ratchets(d, path, file));
            }
            Call::RatchetSetting(d, setting, tx) => {
                let _ = tx.send(self.ratchet_setting(d, setting));
            }
            Call::Links(tx) => {
                let _ = tx.send(self.transport.links().collect());
            }
            Call::RegisterDestination(full_name, proof, identity, tx) => {
                let identity = identity.map_or_else(|| self.identity.clone(), |i| *i);
                let d =
                    self.transport
                        .register_destination(identity, &full_name, proof, Vec::new());
                self.links.app_destinations.insert(d);
                let _ = tx.send(d);
            }
            Call::RegisterNameless(full_name, key, tx) => {
                let d = match key {
                    Some(k) => self.transport.register_group_destination(&full_name, k),
                    None => self.transport.register_plain_destination(&full_name),
                };
                self.links.app_destinations.insert(d);
                let _ = tx.send(d);
            }
            Call::SendNameless(d, key, data, tx) => {
                let r = match &key {
                    Some(k) => self.transport.send_group(now, &d, k, &data),
                    None => self.transport.send_plain(now, &d, &data),
                };
                let _ = tx.send(r.map_err(|e| crate::Error::Failed(e.to_string())));
            }
            Call::DeregisterDestination(d, tx) => {
                // Only what a program registered: the node's own destinations stay.
                let ours = self.links.app_destinations.remove(&d);
                self.links.ratchet_files.remove(&d);
                let _ = tx.send(ours && self.transport.deregister_destination(&d));
            }
            Call::SendPacket(destination, data, tx) => {
                let r = self
                    .transport
                    .send_single(now, &destination, &data)
                    .map_err(|e| match e {
                        rns_core::transport::SendError::UnknownDestination(d) => {
                            crate::Error::NoPath {
                                destination: d,
                                message: format!(
                                    "{d} is unknown (no announce heard): find_path first"
                                ),
                            }
                        }
                        other => crate::Error::Failed(other.to_string()),
                    });
                let _ = tx.send(r);
            }
            Call::Prove(packet_hash, tx) => {
                let _ = tx.send(self.transport.prove(now, &packet_hash));
            }
            Call::WatchAnnounces(name_hash, tx) => {
                let w = &mut self.links.watched_names;
                let r = if w.len() < crate::api::MAX_WATCHED_NAMES || w.contains(&name_hash) {
                    w.insert(name_hash);
                    Ok(())
                } else {
                    Err(crate::Error::Busy(format!(
                        "{} destination names are watched already",
                        crate::api::MAX_WATCHED_NAMES
                    )))
                };
                let _ = tx.send(r);
            }
            Call::AnnounceDestination(d, app_data, tx) => {
                let r = if self.links.app_destinations.contains(&d) {
                    // Kept as the destination's app data, so answers to path requests
                    // carry it too (RNS's default app data). With no interface up the
                    // announce goes nowhere, as in RNS; path requests are answered once
                    // peers connect.
                    self.transport.set_app_data(&d, app_data);
                    match self.transport.announce(now, &d, None) {
                        Ok(()) | Err(rns_core::transport::SendError::NoInterface) => Ok(()),
                        Err(e) => Err(crate::Error::Failed(e.to_string())),
                    }
                } else {
                    Err(crate::Error::BadRequest(format!(
                        "{d} is not a destination this program registered"
                    )))
                };
                let _ = tx.send(r);
            }
        }
    }
}
