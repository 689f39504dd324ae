//! The node's side of the embedded API: calls from handles, events to subscribers, request
//! handlers, and resources assembled in memory for the application.

use std::collections::HashMap;

use rns_core::link::{LinkId, ResourcePolicy};
use rns_core::resource::{
    split_metadata, with_metadata, SegmentInfo, SegmentSpec, MAX_EFFICIENT_SIZE,
};
use rns_core::{AddressHash, Instant};

use super::reply::Outcome;
use super::waiters::Wait;
use super::Node;
use crate::api::{Call, NodeEvent};

/// Largest resource assembled in memory for the application.
pub(super) const APP_RESOURCE_MAX: u64 = 64 * 1024 * 1024;
/// Application resources being assembled at once, at most.
const APP_RESOURCES_AT_ONCE: usize = 8;

/// A resource for the application, segments so far.
#[derive(Debug)]
pub(super) struct AppResource {
    data: Vec<u8>,
    remote: Option<AddressHash>,
    /// The segment being received now.
    segment: [u8; 32],
}

/// Incoming application resources by link and original hash.
pub(super) type AppResources = HashMap<(LinkId, [u8; 32]), AppResource>;

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
                self.files.app_resources = accept;
                let policy = if accept {
                    ResourcePolicy::App
                } else {
                    ResourcePolicy::None
                };
                let d = self.grid_destination;
                self.transport.set_destination_resource_policy(&d, policy);
                let links: Vec<LinkId> = self
                    .transport
                    .links()
                    .map(|l| l.id)
                    .filter(|l| self.is_app_link(l))
                    .collect();
                for l in links {
                    let _ = self.transport.set_link_resource_policy(&l, policy);
                }
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
                        "{} bytes do not fit one resource segment ({MAX_EFFICIENT_SIZE}); send files with grid cp",
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

    /// Whether a link's resources are the application's: every link except those to this
    /// node's `rncp.receive` destination, whose resources are files.
    pub(super) fn is_app_link(&self, link: &LinkId) -> bool {
        self.transport
            .link(link)
            .is_some_and(|l| Some(l.destination) != self.files.cp_destination)
    }

    /// A link came up: links we opened take resources too while the application accepts them.
    pub(super) fn app_link_established(&mut self, link: LinkId) {
        if self.files.app_resources && self.is_app_link(&link) {
            let _ = self
                .transport
                .set_link_resource_policy(&link, ResourcePolicy::App);
        }
    }

    /// Accept or refuse a resource offered on an application link.
    pub(super) fn on_app_resource_offered(
        &mut self,
        now: Instant,
        link: LinkId,
        segment: &SegmentInfo,
        remote: Option<AddressHash>,
    ) {
        let hash = segment.hash;
        let key = (link, segment.original_hash);
        let accept = if segment.segment_index == 1 {
            let ok = self.files.app_resources
                && segment.total_size <= APP_RESOURCE_MAX
                && self.files.incoming_app.len() < APP_RESOURCES_AT_ONCE;
            if ok {
                self.files.incoming_app.insert(
                    key,
                    AppResource {
                        data: Vec::new(),
                        remote,
                        segment: hash,
                    },
                );
            }
            ok
        } else {
            match self.files.incoming_app.get_mut(&key) {
                Some(r) => {
                    r.segment = hash;
                    true
                }
                None => false,
            }
        };
        let _ = self
            .transport
            .link_answer_resource(now, &link, &hash, accept);
    }

    /// A verified segment of an application resource arrived.
    pub(super) fn on_app_segment(&mut self, link: LinkId, segment: &SegmentInfo, data: Vec<u8>) {
        let key = (link, segment.original_hash);
        let Some(r) = self.files.incoming_app.get_mut(&key) else {
            return;
        };
        if r.data.len() as u64 + data.len() as u64 > APP_RESOURCE_MAX {
            tracing::warn!(%link, "application resource larger than announced; dropped");
            self.files.incoming_app.remove(&key);
            return;
        }
        r.data.extend_from_slice(&data);
        if !segment.is_last() {
            return;
        }
        let Some(r) = self.files.incoming_app.remove(&key) else {
            return;
        };
        let (metadata, body) = if segment.has_metadata {
            match split_metadata(&r.data) {
                Some((m, body)) => (Some(m), body.to_vec()),
                None => (None, r.data),
            }
        } else {
            (None, r.data)
        };
        let remote_identity = r.remote;
        self.emit(move || NodeEvent::Resource {
            link,
            data: body,
            metadata,
            remote_identity,
        });
    }

    /// An application resource's link closed: forget what it was receiving.
    pub(super) fn app_link_closed(&mut self, link: &LinkId) {
        self.files.incoming_app.retain(|(l, _), _| l != link);
    }

    /// An incoming segment failed: drop the resource it belonged to.
    pub(super) fn on_app_incoming_failed(&mut self, link: LinkId, hash: [u8; 32]) {
        self.files
            .incoming_app
            .retain(|(l, _), r| !(*l == link && r.segment == hash));
    }

    /// A resource we sent was proven.
    pub(super) fn on_app_resource_sent(&mut self, link: LinkId, hash: [u8; 32]) {
        self.answer(
            |w| matches!(w, Wait::ResourceSent { link: l, hash: h } if *l == link && *h == hash),
            |_| Ok(Outcome::ResourceDelivered { link }),
        );
    }

    /// A resource we sent failed.
    pub(super) fn on_app_resource_failed(&mut self, link: LinkId, hash: [u8; 32], why: String) {
        self.answer(
            |w| matches!(w, Wait::ResourceSent { link: l, hash: h } if *l == link && *h == hash),
            |_| Err(crate::Error::Failed(why.clone())),
        );
    }
}
