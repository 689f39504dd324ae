//! Inbound processing: IFAC, parsing, filtering, forwarding and local delivery.

use std::time::Duration;

use super::interface::LocalRole;
use super::path_table::{secs, should_accept, PathEntry, PathState};
use super::{
    Event, InterfaceId, ProofStrategy, RateEntry, ReverseEntry, Transport, PATHFINDER_RW_MS,
    PATH_REQUEST_GATE,
};
use crate::announce::Announce;
use crate::destination::DestinationType;
use crate::hash::AddressHash;
use crate::ifac;
use crate::packet::{Context, Flags, PacketType, PacketView, MAX_HOPS, MTU};
use crate::path_request::PathRequest;
use crate::proof;
use crate::time::Instant;

/// A parsed inbound packet with its internal (incremented) hop count.
pub(crate) struct Inbound {
    pub(crate) view: PacketView<Vec<u8>>,
    pub(crate) flags: Flags,
    pub(crate) hops: u8,
    pub(crate) iface: InterfaceId,
    pub(crate) hash: [u8; 32],
}

impl Inbound {
    fn destination(&self) -> AddressHash {
        self.view.destination()
    }
    fn truncated_hash(&self) -> [u8; 16] {
        self.hash[..16].try_into().expect("16 bytes")
    }
}

impl Transport {
    /// Process a frame received on `iface` (with IFAC, if the interface uses it).
    ///
    /// Never panics on any input; bad frames are counted on the interface and dropped.
    pub fn handle_inbound(&mut self, now: Instant, iface: InterfaceId, frame: &[u8]) {
        self.handle_inbound_vec(now, iface, frame.to_vec());
    }

    /// [`Transport::handle_inbound`] for a frame the caller owns (saves a copy).
    pub fn handle_inbound_vec(&mut self, now: Instant, iface: InterfaceId, frame: Vec<u8>) {
        let Some(state) = self.interfaces.get_mut(&iface) else {
            return;
        };
        state.stats.rx_packets += 1;
        state.stats.rx_bytes += frame.len() as u64;
        if frame.len() <= 2 {
            state.stats.protocol_violations += 1;
            self.stats.protocol_violations += 1;
            return;
        }
        let frame_len = frame.len();
        let raw = match &state.config.ifac {
            Some(i) => match i.verify(&frame) {
                Ok(raw) => raw,
                Err(_) => {
                    state.stats.ifac_violations += 1;
                    self.stats.ifac_violations += 1;
                    return;
                }
            },
            None => {
                if ifac::check_no_ifac(&frame).is_err() {
                    state.stats.ifac_violations += 1;
                    self.stats.ifac_violations += 1;
                    return;
                }
                frame
            }
        };
        if frame_len > state.max_frame() {
            state.stats.protocol_violations += 1;
            self.stats.protocol_violations += 1;
            return;
        }
        self.process(now, iface, raw, false);
    }

    /// Process a logical packet. `released` is set for announces released by ingress control.
    pub(crate) fn process(
        &mut self,
        now: Instant,
        iface: InterfaceId,
        raw: Vec<u8>,
        released: bool,
    ) {
        let view = match PacketView::new_checked(raw) {
            Ok(v) => v,
            Err(_) => return self.violation(iface),
        };
        if view.hops() >= MAX_HOPS {
            return self.violation(iface);
        }
        let flags = view.flags();
        // Resource parts for our own links pass the duplicate filter by context and are
        // never proven by hash, so hashing them (every byte of a transfer, again) is waste.
        let d = view.destination();
        let unhashed = view.context() == Context::RESOURCE
            && flags.packet_type == PacketType::Data
            && flags.destination_type == DestinationType::Link
            && self.links.contains_key(&d)
            && !self.link_table.contains_key(&d);
        let hash = if unhashed { [0; 32] } else { view.hash() };
        if !self.packet_filter(&view, &flags, &hash, iface) {
            if let Some(s) = self.interfaces.get_mut(&iface) {
                s.stats.filtered += 1;
            }
            return;
        }
        // The hop between a shared instance and its local clients does not count.
        let role = self.role(iface);
        let hops = if role == LocalRole::Network {
            view.hops() + 1
        } else {
            view.hops()
        };
        let mut p = Inbound {
            hops,
            view,
            flags,
            iface,
            hash,
        };
        if role == LocalRole::Client || self.has_local_clients() {
            self.relay_plain_broadcast(&p);
        }

        if p.flags.packet_type == PacketType::Announce {
            if p.view.as_bytes().len() > MTU {
                return self.violation(iface);
            }
            let announce = match Announce::parse(p.view.data(), p.flags.context_flag) {
                Ok(a) => a,
                Err(_) => return self.violation(iface),
            };
            if announce.validate(&p.destination()).is_err() {
                return self.violation(iface);
            }
            let state = self.interfaces.get_mut(&iface).expect("checked above");
            state.stats.rx_announces += 1;
            state.ingress.announces.record(now);
            let d = p.destination();
            let known = self.paths.contains(&d);
            let awaited =
                self.path_requests.contains_key(&d) || self.discovery_requests.contains_key(&d);
            if !known && !awaited && !released && state.config.ingress_control {
                let age = state.age(now);
                if state.ingress.should_limit_announce(now, age) {
                    let raw = p.view.into_inner();
                    state.ingress.hold(d, raw, p.hops - 1);
                    return;
                }
            }
            // Announces bypass the duplicate filter by type (and a packet hash covers the
            // type), so their hashes are not remembered: that keeps the filter for data.
            return self.inbound_announce(now, p, announce);
        }

        let mut ingress_limited = false;
        if p.destination() == self.pr_destination {
            match self.admit_path_request(now, &p) {
                Some(limited) => ingress_limited = limited,
                None => return,
            }
        }

        // Remember the hash, except for LRPROOFs (only once known to be for us) and packets
        // of links we forward (only once it is our turn to forward them).
        let d = p.destination();
        let is_lrproof =
            p.flags.packet_type == PacketType::Proof && p.view.context() == Context::LRPROOF;
        let in_link_table = self.link_table.contains_key(&d);
        if !is_lrproof && !in_link_table && !unhashed {
            self.hashlist.insert(p.truncated_hash());
        }

        // A shared instance routes for its local clients even when it is not a transport
        // node; packets for a client arrive without our transport id (the network sees the
        // client one hop away), as RNS sends them.
        let from_local = role == LocalRole::Client;
        let for_local = p.flags.packet_type != PacketType::Announce && self.for_local_client(&d);
        let mut forwarded = false;
        if (self.config.transport_enabled || from_local || for_local)
            && (p.view.transport_id().is_some() || for_local)
        {
            forwarded = self.forward(now, &mut p);
        }
        if in_link_table
            && p.flags.packet_type != PacketType::LinkRequest
            && self.forward_link_packet(now, &p.view, p.hops, p.iface, p.truncated_hash())
        {
            return;
        }

        match p.flags.packet_type {
            PacketType::Announce => unreachable!("handled above"),
            PacketType::LinkRequest => {
                let tid = p.view.transport_id();
                if !forwarded && (tid.is_none() || tid == Some(self.identity.hash())) {
                    self.inbound_link_request(now, &p.view, p.hops, p.iface);
                }
            }
            PacketType::Data => self.inbound_data(now, &p, ingress_limited),
            PacketType::Proof => self.inbound_proof(now, &p),
        }
    }

    pub(crate) fn violation(&mut self, iface: InterfaceId) {
        self.stats.protocol_violations += 1;
        if let Some(s) = self.interfaces.get_mut(&iface) {
            s.stats.protocol_violations += 1;
        }
    }

    /// RNS's packet filter: drops duplicates, misrouted and non-routable packets.
    fn packet_filter(
        &mut self,
        view: &PacketView<Vec<u8>>,
        flags: &Flags,
        hash: &[u8; 32],
        iface: InterfaceId,
    ) -> bool {
        if let Some(t) = view.transport_id() {
            if flags.packet_type != PacketType::Announce && t != self.identity.hash() {
                return false;
            }
        }
        if view.context().bypasses_duplicate_filter() {
            return true;
        }
        match flags.destination_type {
            DestinationType::Plain | DestinationType::Group => {
                if flags.packet_type == PacketType::Announce {
                    self.violation(iface);
                    return false;
                }
                return view.hops() <= 1;
            }
            _ => {}
        }
        let key: [u8; 16] = hash[..16].try_into().expect("16 bytes");
        if !self.hashlist.contains(&key) {
            return true;
        }
        flags.packet_type == PacketType::Announce
            && flags.destination_type == DestinationType::Single
    }

    /// Forward a HEADER_2 packet addressed to this transport node. Returns whether it was.
    fn forward(&mut self, now: Instant, p: &mut Inbound) -> bool {
        let d = p.destination();
        let tid = p.view.transport_id();
        if tid != Some(self.identity.hash()) && !(tid.is_none() && self.for_local_client(&d)) {
            return false;
        }
        let Some(path) = self.paths.get_mut(&d) else {
            self.request_missing_path(now, &d);
            return false;
        };
        let (remaining, next_hop, outbound) = (path.hops, path.next_hop, path.interface);
        path.timestamp = secs(now);
        if let Some(i) = self.interfaces.get(&outbound) {
            path.expires = secs(now + i.config.mode.path_lifetime());
        }
        let raw = p.view.as_bytes();
        let mut out = Vec::with_capacity(raw.len());
        match remaining {
            // A local client: it gets the packet as if directly reachable (HEADER_1).
            0 if tid.is_some() => {
                out.push(raw[0] & 0x0F);
                out.push(p.hops);
                out.extend_from_slice(&raw[18..]);
            }
            0 => {
                out.extend_from_slice(raw);
                out[1] = p.hops;
            }
            1 => {
                out.push(raw[0] & 0x0F);
                out.push(p.hops);
                out.extend_from_slice(&raw[18..]);
            }
            _ => {
                out.push(raw[0]);
                out.push(p.hops);
                out.extend_from_slice(next_hop.as_bytes());
                out.extend_from_slice(&raw[18..]);
            }
        }
        if p.flags.packet_type == PacketType::LinkRequest {
            out = self.record_forwarded_link(now, p, out, outbound, remaining);
        } else {
            self.reverse_table.insert(
                AddressHash(p.truncated_hash()),
                ReverseEntry {
                    received_on: p.iface,
                    sent_on: outbound,
                    timestamp: now,
                },
            );
        }
        self.stats.forwarded += 1;
        self.transmit(outbound, out);
        true
    }

    fn inbound_announce(&mut self, now: Instant, p: Inbound, announce: Announce) {
        let d = p.destination();
        if self.destinations.contains_key(&d) {
            return;
        }
        if self.known.check(&d, announce.identity.as_bytes()).is_err() {
            return self.violation(p.iface);
        }
        // Like RNS, remember every valid announce's key and app data, even when it
        // does not change the path.
        let _ = self.known.remember(now, d, &announce);
        let transport_id = p.view.transport_id();
        if let Some(_tid) = transport_id {
            if self.config.transport_enabled {
                self.note_neighbour_rebroadcast(now, &d, p.hops);
            }
        }
        let received_from = transport_id.unwrap_or(d);
        if p.hops > MAX_HOPS {
            return;
        }
        let blob = announce.random_hash;
        if !should_accept(self.paths.get(&d), p.hops, &blob, now) {
            return;
        }
        let context = p.view.context();
        let path_response = context == Context::PATH_RESPONSE;
        let state = self.interfaces.get(&p.iface).expect("interface exists");
        let mode = state.config.mode;
        let rate_cfg = state.config.announce_rate;

        let mut rate_blocked = false;
        if !path_response {
            if let Some(rate) = rate_cfg {
                rate_blocked = self.rate_check(now, d, rate);
            }
        }

        let from_local = self.role(p.iface) == LocalRole::Client;
        if self.config.transport_enabled && !from_local && !path_response && !rate_blocked {
            let jitter = self.random_u64() % (PATHFINDER_RW_MS + 1);
            self.queue_rebroadcast(&p, now + Duration::from_millis(jitter), 0);
        }

        // Answer path requests we searched for on behalf of others.
        if let Some(req) = self.discovery_requests.remove(&d) {
            for iface in req.requesting {
                let mut pkt = crate::packet::Packet {
                    flags: Flags::new(DestinationType::Single, PacketType::Announce),
                    hops: p.hops,
                    transport_id: Some(self.identity.hash()),
                    destination: d,
                    context: Context::PATH_RESPONSE,
                    data: p.view.data().to_vec(),
                };
                pkt.flags.context_flag = p.flags.context_flag;
                pkt.flags.transport_type = crate::packet::TransportType::Transport;
                self.route(now, pkt.to_bytes(), Some(iface));
            }
        }

        let mut entry = match self.paths.remove(&d) {
            Some(mut old) => {
                old.timestamp = secs(now);
                old.next_hop = received_from;
                old.hops = p.hops;
                old.expires = secs(now + mode.path_lifetime());
                old.interface = p.iface;
                old.state = PathState::Unknown;
                old
            }
            None => PathEntry {
                timestamp: secs(now),
                next_hop: received_from,
                hops: p.hops,
                expires: secs(now + mode.path_lifetime()),
                interface: p.iface,
                state: PathState::Unknown,
                blobs: Default::default(),
            },
        };
        entry.remember_blob(blob);
        self.paths.insert(d, entry);
        self.inflight_path_requests.remove(&d);
        if from_local && !path_response {
            self.rebroadcast_for_local_client(now, &p);
        } else if from_local {
            // A client answered a path request we passed to it for someone on the network.
            if let Some((asker, _)) = self.pending_local_path_requests.remove(&d) {
                let raw = self.rebroadcast_packet(
                    d,
                    p.hops,
                    p.view.data().to_vec(),
                    p.flags.context_flag,
                    true,
                );
                self.route(now, raw, Some(asker));
            }
        }
        self.announce_to_local_clients(now, &p);
        self.push_event(Event::Announce {
            destination: d,
            identity: Box::new(announce.identity),
            name_hash: announce.name_hash,
            app_data: announce.app_data,
            hops: p.hops,
            interface: p.iface,
            path_response,
        });
    }

    /// Heard a neighbour rebroadcast an announce we have scheduled.
    fn note_neighbour_rebroadcast(&mut self, now: Instant, d: &AddressHash, hops: u8) {
        let Some(e) = self.announce_table.get_mut(d) else {
            return;
        };
        let mut done = false;
        if hops.wrapping_sub(1) == e.hops {
            e.local_rebroadcasts = e.local_rebroadcasts.saturating_add(1);
            if e.retries > 0 && e.local_rebroadcasts >= super::LOCAL_REBROADCASTS_MAX {
                done = true;
            }
        }
        if hops.wrapping_sub(1) == e.hops.wrapping_add(1) && e.retries > 0 && now < e.retransmit_at
        {
            done = true;
        }
        if done {
            self.announce_table.remove(d);
        }
    }

    /// Per-destination announce rate limiting. Returns true if rebroadcast is blocked.
    fn rate_check(&mut self, now: Instant, d: AddressHash, rate: super::AnnounceRate) -> bool {
        let Some(e) = self.rate_table.get_mut(&d) else {
            self.rate_table.insert(
                d,
                RateEntry {
                    last: now,
                    violations: 0,
                    blocked_until: Instant::ZERO,
                },
            );
            return false;
        };
        if now <= e.blocked_until {
            return true;
        }
        if now.saturating_since(e.last) < rate.target {
            e.violations += 1;
        } else {
            e.violations = e.violations.saturating_sub(1);
        }
        if e.violations > rate.grace {
            e.blocked_until = e.last + rate.target + rate.penalty;
            true
        } else {
            e.last = now;
            false
        }
    }

    /// Early path-request checks. Returns `None` to drop, or whether it is ingress-limited.
    fn admit_path_request(&mut self, now: Instant, p: &Inbound) -> Option<bool> {
        let req = match PathRequest::parse(p.view.data()) {
            Ok(r) => r,
            Err(_) => {
                self.violation(p.iface);
                return None;
            }
        };
        if !self.pr_tags.insert(req.unique_tag()) {
            return None;
        }
        let state = self.interfaces.get_mut(&p.iface)?;
        state.ingress.path_requests.record(now);
        let age = state.age(now);
        let limited =
            state.config.ingress_control && state.ingress.should_limit_path_request(now, age);
        let d = req.destination;
        let inflight = self
            .inflight_path_requests
            .get(&d)
            .is_some_and(|t| now.saturating_since(*t) < PATH_REQUEST_GATE);
        if !inflight {
            self.inflight_path_requests.insert(d, now);
            return Some(limited);
        }
        if !limited {
            let timeout = now + super::PATH_REQUEST_TIMEOUT;
            let e = self
                .discovery_requests
                .entry(d)
                .or_insert(super::DiscoveryRequest {
                    timeout,
                    requesting: Vec::new(),
                    engaged: false,
                });
            if !e.requesting.contains(&p.iface) {
                e.requesting.push(p.iface);
            }
        }
        None
    }

    fn inbound_data(&mut self, now: Instant, p: &Inbound, ingress_limited: bool) {
        let d = p.destination();
        if d == self.pr_destination {
            if let Ok(req) = PathRequest::parse(p.view.data()) {
                self.answer_path_request(now, req, p.iface, ingress_limited);
            }
            return;
        }
        if p.flags.destination_type == DestinationType::Link {
            return self.local_link_packet(now, p);
        }
        if d == self.tunnel_destination {
            return;
        }
        let Some(local) = self.destinations.get(&d) else {
            return;
        };
        if local.kind != p.flags.destination_type {
            return;
        }
        // PLAIN and GROUP: no identity, nothing proved (as in RNS).
        let nameless = match p.flags.destination_type {
            DestinationType::Plain => Some(Ok(p.view.data().to_vec())),
            DestinationType::Group => local
                .group_key
                .as_ref()
                .map(|k| k.decrypt(p.view.data()).map_err(|_| ())),
            _ => None,
        };
        if let Some(plain) = nameless {
            let Ok(data) = plain else {
                self.stats.undecryptable += 1;
                return;
            };
            return self.deliver(d, data, p);
        }
        let proof = local.proof;
        let Some(identity) = local.identity.clone() else {
            return;
        };
        let Some(data) = self.open_single(now, &d, &identity, p.view.data()) else {
            self.stats.undecryptable += 1;
            return;
        };
        match proof {
            ProofStrategy::All => {
                let pkt = proof::build(&identity, &p.hash, !self.config.use_implicit_proofs);
                self.route(now, pkt.to_bytes(), Some(p.iface));
            }
            ProofStrategy::App => self.await_app_proof(now, d, p.hash, p.iface),
            ProofStrategy::None => {}
        }
        self.deliver(d, data, p);
    }

    /// Hand a packet's plaintext for local destination `d` to the application.
    fn deliver(&mut self, d: AddressHash, data: Vec<u8>, p: &Inbound) {
        self.stats.delivered += 1;
        self.push_event(Event::Packet {
            destination: d,
            data,
            packet_hash: p.hash,
            interface: p.iface,
            hops: p.hops,
        });
    }

    fn local_link_packet(&mut self, now: Instant, p: &Inbound) {
        let id = p.destination();
        let (ptype, ctx) = (p.flags.packet_type, p.view.context());
        if ctx == Context::RESOURCE_ADV {
            self.hand_resource_budget(&id);
        }
        let Some(link) = self.links.get_mut(&id) else {
            self.stats.unknown_link_packets += 1;
            return;
        };
        link.handle_packet(
            &mut *self.rng,
            now,
            ptype,
            ctx,
            p.view.data(),
            &p.hash,
            p.iface,
        );
        self.drain_link(now, &id);
    }

    fn inbound_proof(&mut self, now: Instant, p: &Inbound) {
        let ctx = p.view.context();
        if ctx == Context::LRPROOF {
            let id = p.destination();
            let Some(link) = self.links.get_mut(&id) else {
                return;
            };
            if link
                .handle_lrproof(&mut *self.rng, now, p.view.data(), p.hops, p.iface)
                .is_ok()
                && link.state() == crate::link::LinkState::Active
            {
                self.hashlist.insert(p.truncated_hash());
            } else if link.state() != crate::link::LinkState::Active {
                self.violation(p.iface);
            }
            self.drain_link(now, &id);
            return;
        }
        if ctx == Context::RESOURCE_PRF || p.flags.destination_type == DestinationType::Link {
            return self.local_link_packet(now, p);
        }
        let d = p.destination();
        // Reverse entries exist only for packets we forwarded (as a transport node, or
        // for local clients).
        {
            if let Some(r) = self.reverse_table.remove(&d) {
                if r.sent_on == p.iface {
                    let mut out = p.view.as_bytes().to_vec();
                    out[1] = p.hops;
                    self.stats.forwarded += 1;
                    self.transmit(r.received_on, out);
                }
            }
        }
        let data = p.view.data();
        let candidates: Vec<[u8; 32]> = match proof::explicit_hash(data) {
            Some(h) => vec![h],
            None => self
                .receipts
                .iter()
                .filter(|r| r.packet_hash[..16] == d.0)
                .map(|r| r.packet_hash)
                .collect(),
        };
        for h in candidates {
            let Some(r) = self.receipts.iter().find(|r| r.packet_hash == h).cloned() else {
                continue;
            };
            let Some(signer) = self.recall_identity(&r.destination) else {
                continue;
            };
            if proof::validate(data, &r.packet_hash, &signer).is_ok() {
                self.receipts.take(&h);
                if let Some(path) = self.paths.get_mut(&r.destination) {
                    path.state = PathState::Responsive;
                }
                self.known.touch(now, &r.destination);
                self.push_event(Event::Proof {
                    packet_hash: h,
                    destination: r.destination,
                    rtt: now.saturating_since(r.sent_at),
                });
                return;
            }
        }
    }
}
