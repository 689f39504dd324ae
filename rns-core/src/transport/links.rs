//! Links in the transport: local links in either role, and the link table through which a
//! transport node forwards other nodes' links.

use std::time::Duration;

use super::{Event, InterfaceId, Transport};
use crate::hash::AddressHash;
use crate::identity::Identity;
use crate::link::wire::{self, LinkProof, LinkRequest, SIGNALLING_LEN};
use crate::link::{Link, LinkError, LinkId, LinkState, ResourcePolicy};
use crate::packet::{Context, PacketType, PacketView, MTU};
use crate::resource::SegmentSpec;
use crate::time::Instant;

/// Validated link-table entries are dropped after this long without traffic.
const LINK_TABLE_TIMEOUT: Duration = Duration::from_secs(900);
/// Per-hop allowance for the LRPROOF to come back through a transport node.
const PROOF_TIMEOUT_PER_HOP: Duration = Duration::from_secs(6);
/// Most links hosted at once, not counting half-open incoming links (bounded apart, see
/// [`TransportConfig::max_half_open_links`](super::TransportConfig::max_half_open_links)).
pub(crate) const MAX_LINKS: usize = 4096;
/// Most link-table entries (links we forward for others).
pub(crate) const MAX_LINK_TABLE: usize = 65_536;

/// A link this transport node forwards.
#[derive(Debug, Clone)]
pub(crate) struct LinkTableEntry {
    pub(crate) timestamp: Instant,
    pub(crate) next_hop_iface: InterfaceId,
    pub(crate) remaining_hops: u8,
    pub(crate) received_iface: InterfaceId,
    pub(crate) taken_hops: u8,
    pub(crate) destination: AddressHash,
    pub(crate) validated: bool,
    pub(crate) proof_deadline: Instant,
}

/// Summary of a local link for status displays.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkInfo {
    /// Link id.
    pub id: LinkId,
    /// Destination it leads to.
    pub destination: AddressHash,
    /// Whether we initiated it.
    pub initiator: bool,
    /// State.
    pub state: LinkState,
    /// MTU.
    pub mtu: usize,
    /// RTT once known.
    pub rtt: Option<Duration>,
    /// Interface.
    pub interface: Option<InterfaceId>,
    /// The identified initiator (responder side).
    pub remote_identity: Option<AddressHash>,
    /// The channel's send window, once the channel is in use.
    pub channel_window: Option<u16>,
    /// Whether the channel can take another message now.
    pub channel_ready: bool,
}

impl Transport {
    /// Let a local destination accept incoming links (RNS destinations accept by default).
    pub fn set_accept_links(&mut self, destination: &AddressHash, accept: bool) {
        if let Some(d) = self.destinations.get_mut(destination) {
            d.accept_links = accept;
        }
    }

    /// The resource policy links to a local destination start with.
    pub fn set_destination_resource_policy(
        &mut self,
        destination: &AddressHash,
        policy: ResourcePolicy,
    ) {
        if let Some(d) = self.destinations.get_mut(destination) {
            d.resource_policy = policy;
        }
    }

    /// Change a link's resource policy.
    pub fn set_link_resource_policy(
        &mut self,
        id: &LinkId,
        policy: ResourcePolicy,
    ) -> Result<(), LinkError> {
        let link = self.links.get_mut(id).ok_or(LinkError::Unknown(*id))?;
        link.set_resource_policy(policy);
        Ok(())
    }

    /// Send one resource segment on a link (see [`Link::send_resource`]).
    pub fn link_send_resource(
        &mut self,
        now: Instant,
        id: &LinkId,
        data: &[u8],
        spec: &SegmentSpec,
    ) -> Result<[u8; 32], LinkError> {
        self.with_link(now, id, |l, rng| l.send_resource(rng, now, data, spec))
    }

    /// Cancel an outgoing resource on a link (see [`Link::cancel_resource`]).
    pub fn link_cancel_resource(
        &mut self,
        now: Instant,
        id: &LinkId,
        hash: &[u8; 32],
    ) -> Result<(), LinkError> {
        self.with_link(now, id, |l, rng| l.cancel_resource(rng, now, hash))
    }

    /// What is needed to prepare resource segments for a link off the event loop.
    pub fn link_resource_preparer(
        &self,
        id: &LinkId,
    ) -> Result<crate::link::ResourcePreparer, LinkError> {
        self.links
            .get(id)
            .ok_or(LinkError::Unknown(*id))?
            .resource_preparer()
    }

    /// Queue a prepared resource segment on a link.
    pub fn link_enqueue_resource(
        &mut self,
        now: Instant,
        id: &LinkId,
        resource: crate::resource::OutgoingResource,
    ) -> Result<[u8; 32], LinkError> {
        self.with_link(now, id, |l, rng| l.enqueue_resource(rng, now, resource))
    }

    /// Whether links hand complete incoming segments out to assemble off the event loop
    /// ([`super::TransportConfig::defer_resource_assembly`]), for links open now and later.
    pub fn set_defer_resource_assembly(&mut self, defer: bool) {
        self.config.defer_resource_assembly = defer;
        for link in self.links.values_mut() {
            link.set_defer_assembly(defer);
        }
    }

    /// A segment assembled off the event loop (the result of a
    /// [`crate::link::LinkEvent::ResourceAssemble`] job): the link proves and reports it.
    /// The link may have closed meanwhile ([`LinkError::Unknown`]: drop the result).
    pub fn link_resource_assembled(
        &mut self,
        now: Instant,
        id: &LinkId,
        done: crate::link::AssemblyDone,
    ) -> Result<(), LinkError> {
        self.with_link(now, id, |l, rng| {
            l.resource_assembled(rng, now, done);
            Ok(())
        })
    }

    /// Accept or reject a resource offered on a link.
    pub fn link_answer_resource(
        &mut self,
        now: Instant,
        id: &LinkId,
        hash: &[u8; 32],
        accept: bool,
    ) -> Result<(), LinkError> {
        if accept {
            self.hand_resource_budget(id);
        }
        self.with_link(now, id, |l, rng| {
            if accept {
                l.accept_resource(rng, now, hash);
            } else {
                l.reject_resource(rng, now, hash);
            }
            Ok(())
        })
    }

    /// Tell a link what its incoming resources may reserve: its per-link budget, and what
    /// is left of the node's (see [`TransportConfig::max_incoming_resource_bytes`]).
    ///
    /// [`TransportConfig::max_incoming_resource_bytes`]: super::TransportConfig::max_incoming_resource_bytes
    pub(crate) fn hand_resource_budget(&mut self, id: &LinkId) {
        if !self.links.contains_key(id) {
            return;
        }
        let used: u64 = self
            .links
            .values()
            .map(Link::incoming_resource_bytes)
            .fold(0, u64::saturating_add);
        let node_free = self.config.max_incoming_resource_bytes.saturating_sub(used);
        let per_link = self.config.max_incoming_resource_bytes_per_link;
        if let Some(l) = self.links.get_mut(id) {
            l.set_resource_budget(per_link, node_free);
        }
    }

    /// The MTU to offer or confirm on an interface: its HW MTU if negotiable, else 500;
    /// `None` if the interface's MTU is unknown.
    fn link_mtu_for(&self, iface: InterfaceId) -> Option<u32> {
        let s = self.interfaces.get(&iface)?;
        let hw = s.config.hw_mtu? as u32;
        Some(if s.config.mtu_negotiable {
            hw
        } else {
            MTU as u32
        })
    }

    /// Open a link to a destination whose identity is known. Returns the link id at once;
    /// [`crate::link::LinkEvent::Established`] follows when the responder proves it.
    pub fn open_link(
        &mut self,
        now: Instant,
        destination: &AddressHash,
    ) -> Result<LinkId, LinkError> {
        let identity = self
            .recall_identity(destination)
            .ok_or(LinkError::UnknownDestination(*destination))?;
        if self.established_link_count() >= MAX_LINKS {
            return Err(LinkError::Busy(*destination));
        }
        let (hops, iface) = self
            .paths
            .get(destination)
            .map_or((1, None), |p| (p.hops.max(1), Some(p.interface)));
        let mtu = iface
            .and_then(|i| self.link_mtu_for(i))
            .unwrap_or(MTU as u32);
        let first_hop = self.first_hop_timeout(destination);
        let (link, raw) = Link::initiate(
            &mut *self.rng,
            now,
            *destination,
            identity,
            hops,
            mtu,
            first_hop,
        );
        let id = link.id();
        let mut link = link;
        link.set_defer_assembly(self.config.defer_resource_assembly);
        self.links.insert(id, link);
        self.known.touch(now, destination);
        self.route(now, raw, None);
        Ok(id)
    }

    /// A local link's summary.
    pub fn link(&self, id: &LinkId) -> Option<LinkInfo> {
        self.links.get(id).map(info)
    }

    /// Every local link.
    pub fn links(&self) -> impl Iterator<Item = LinkInfo> + '_ {
        self.links.values().map(info)
    }

    fn with_link<T>(
        &mut self,
        now: Instant,
        id: &LinkId,
        f: impl FnOnce(&mut Link, &mut dyn rand_core::CryptoRngCore) -> Result<T, LinkError>,
    ) -> Result<T, LinkError> {
        let link = self.links.get_mut(id).ok_or(LinkError::Unknown(*id))?;
        let r = f(link, &mut *self.rng);
        self.drain_link(now, id);
        r
    }

    /// Send a packet on a link; returns its hash (a proof event follows if the peer proves it).
    pub fn link_send(
        &mut self,
        now: Instant,
        id: &LinkId,
        data: &[u8],
    ) -> Result<[u8; 32], LinkError> {
        self.with_link(now, id, |l, rng| l.send(rng, now, data))
    }

    /// Send a channel message on a link; returns its sequence.
    pub fn link_channel_send(
        &mut self,
        now: Instant,
        id: &LinkId,
        msgtype: u16,
        data: &[u8],
    ) -> Result<u16, LinkError> {
        self.with_link(now, id, |l, rng| l.channel_send(rng, now, msgtype, data))
    }

    /// Write the front of `data` to a stream on a link; returns bytes taken and the
    /// message's channel sequence.
    pub fn link_stream_send(
        &mut self,
        now: Instant,
        id: &LinkId,
        stream_id: u16,
        data: &[u8],
        eof: bool,
    ) -> Result<(usize, u16), LinkError> {
        self.with_link(now, id, |l, rng| {
            l.stream_send(rng, now, stream_id, data, eof)
        })
    }

    /// Send a request on a link; returns the request id.
    pub fn link_request(
        &mut self,
        now: Instant,
        id: &LinkId,
        path: &str,
        data: &rmpv::Value,
        timeout: Option<Duration>,
    ) -> Result<AddressHash, LinkError> {
        self.with_link(now, id, |l, rng| l.request(rng, now, path, data, timeout))
    }

    /// Answer a request received on a link.
    pub fn link_respond(
        &mut self,
        now: Instant,
        id: &LinkId,
        request_id: &AddressHash,
        response: &rmpv::Value,
    ) -> Result<(), LinkError> {
        self.with_link(now, id, |l, rng| l.respond(rng, now, request_id, response))
    }

    /// Identify ourselves on a link we initiated.
    pub fn link_identify(
        &mut self,
        now: Instant,
        id: &LinkId,
        identity: &Identity,
    ) -> Result<(), LinkError> {
        self.with_link(now, id, |l, rng| l.identify(rng, now, identity))
    }

    /// Close a link.
    pub fn close_link(&mut self, now: Instant, id: &LinkId) -> Result<(), LinkError> {
        self.with_link(now, id, |l, rng| {
            l.close(rng, now);
            Ok(())
        })
    }

    /// Move a link's outgoing packets and events into the transport's queues.
    pub(crate) fn drain_link(&mut self, now: Instant, id: &LinkId) {
        let Some(link) = self.links.get_mut(id) else {
            self.resource_deadlines.remove(id);
            return;
        };
        let iface = link.interface();
        let mut out = Vec::new();
        while let Some(raw) = link.poll_transmit() {
            out.push(raw);
        }
        let mut events = Vec::new();
        while let Some(e) = link.poll_event() {
            events.push(e);
        }
        let closed = link.state() == LinkState::Closed;
        for raw in out {
            match iface {
                Some(i) => {
                    self.route(now, raw, Some(i));
                }
                None => {
                    self.route(now, raw, None);
                }
            }
        }
        for e in events {
            self.push_event(Event::Link(e));
        }
        if closed {
            self.links.remove(id);
        }
        match self.links.get(id).and_then(Link::poll_resource_timeout) {
            Some(t) => {
                self.resource_deadlines.insert(*id, t);
            }
            None => {
                self.resource_deadlines.remove(id);
            }
        }
    }

    /// Run the resource watchdogs that are due, as soon as they are due: a part request
    /// to repeat must not wait for the next job tick (a quarter of a second).
    pub(crate) fn resource_timers(&mut self, now: Instant) {
        let due: Vec<LinkId> = self
            .resource_deadlines
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(l) = self.links.get_mut(&id) {
                l.handle_resource_timeout(&mut *self.rng, now);
            }
            self.drain_link(now, &id);
            // Never spin on a deadline that handling did not move: fall back to the tick.
            if let Some(t) = self.resource_deadlines.get_mut(&id) {
                if *t <= now {
                    *t = self.next_job;
                }
            }
        }
    }

    /// Run link watchdogs and expire link-table entries.
    pub(crate) fn link_timers(&mut self, now: Instant) {
        // Watchdogs, receipts and request deadlines: cheap enough to run every tick.
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            if let Some(l) = self.links.get_mut(&id) {
                l.handle_timeout(&mut *self.rng, now);
            }
            self.drain_link(now, &id);
        }
        let ifaces = &self.interfaces;
        self.link_table.retain(|_, e| {
            let alive = if e.validated {
                now.saturating_since(e.timestamp) < LINK_TABLE_TIMEOUT
            } else {
                now < e.proof_deadline
            };
            alive
                && ifaces.contains_key(&e.next_hop_iface)
                && ifaces.contains_key(&e.received_iface)
        });
    }

    /// A LINKREQUEST for a local destination.
    pub(crate) fn inbound_link_request(
        &mut self,
        now: Instant,
        view: &PacketView<Vec<u8>>,
        hops: u8,
        iface: InterfaceId,
    ) {
        let d = view.destination();
        let Some(local) = self.destinations.get(&d) else {
            return;
        };
        if !local.accept_links || local.kind != crate::destination::DestinationType::Single {
            return;
        }
        let Some(identity) = local.identity.clone() else {
            return;
        };
        let prove = local.proof == super::ProofStrategy::All;
        let policy = local.resource_policy;
        let Ok(req) = LinkRequest::parse(view.data()) else {
            return self.violation(iface);
        };
        let id = wire::link_id(view);
        if self.links.contains_key(&id) {
            return;
        }
        if !self.admit_link_request(now, iface) {
            self.stats.dropped_link_requests += 1;
            return;
        }
        // Confirm at most what the receiving interface carries; no signalling if unknown.
        let mtu = match (req.signalling, self.link_mtu_for(iface)) {
            (Some((asked, _)), Some(here)) => Some(asked.min(here).max(MTU as u32)),
            _ => None,
        };
        let mut link = Link::accept(
            &mut *self.rng,
            now,
            &identity,
            d,
            id,
            &req,
            hops,
            mtu,
            iface,
            prove,
        );
        link.set_resource_policy(policy);
        link.set_defer_assembly(self.config.defer_resource_assembly);
        self.links.insert(id, link);
        self.half_open.push(id, iface);
        self.drain_link(now, &id);
    }

    /// Links other than half-open ones (ours in either state, and established incoming
    /// ones): what [`MAX_LINKS`] bounds.
    fn established_link_count(&mut self) -> usize {
        self.half_open.prune(&self.links);
        self.links.len().saturating_sub(self.half_open.len())
    }

    /// Whether a link request arriving on `iface` may be answered now: within the
    /// interface's link request rate and with room in the link table. Makes room among
    /// the half-open links by giving up the oldest (see [`super::admission`]).
    fn admit_link_request(&mut self, now: Instant, iface: InterfaceId) -> bool {
        if let Some(rate) = self.config.link_request_rate {
            let Some(s) = self.interfaces.get_mut(&iface) else {
                return false;
            };
            if !s.link_requests.take(now, rate) {
                return false;
            }
        }
        if self.established_link_count() >= MAX_LINKS {
            return false;
        }
        let evicted = self.half_open.make_room(
            iface,
            self.config.max_half_open_links,
            self.config.max_half_open_links_per_interface,
        );
        for old in evicted {
            if let Some(l) = self.links.get_mut(&old) {
                l.abandon();
                self.stats.evicted_half_open_links += 1;
            }
            self.drain_link(now, &old);
        }
        true
    }

    /// Record a link-table entry for a LINKREQUEST being forwarded, and clamp its MTU.
    /// Returns the (possibly rewritten) packet to forward.
    pub(crate) fn record_forwarded_link(
        &mut self,
        now: Instant,
        p: &super::inbound::Inbound,
        mut out: Vec<u8>,
        outbound: InterfaceId,
        remaining_hops: u8,
    ) -> Vec<u8> {
        let (view, hops, received) = (&p.view, p.hops, p.iface);
        if view.data().len() == wire::ECPUBSIZE + SIGNALLING_LEN {
            let sig: [u8; 3] = view.data()[wire::ECPUBSIZE..].try_into().expect("3 bytes");
            let (mtu, mode) = wire::parse_signalling(&sig);
            match (self.link_mtu_for(outbound), self.link_mtu_for(received)) {
                (Some(nh), prev)
                    if self
                        .interfaces
                        .get(&outbound)
                        .is_some_and(|s| s.config.mtu_negotiable) =>
                {
                    let clamp = nh.min(prev.unwrap_or(nh));
                    if clamp < mtu {
                        let n = out.len();
                        out[n - SIGNALLING_LEN..]
                            .copy_from_slice(&wire::signalling_bytes(clamp, mode));
                    }
                }
                _ => out.truncate(out.len() - SIGNALLING_LEN),
            }
        }
        if self.link_table.len() < MAX_LINK_TABLE {
            let bitrate = self
                .interfaces
                .get(&outbound)
                .map_or(0, |s| s.config.bitrate);
            let extra = if bitrate > 0 {
                Duration::from_secs_f64(500.0 * 8.0 / bitrate as f64)
            } else {
                Duration::ZERO
            };
            self.link_table.insert(
                wire::link_id(view),
                LinkTableEntry {
                    timestamp: now,
                    next_hop_iface: outbound,
                    remaining_hops,
                    received_iface: received,
                    taken_hops: hops,
                    destination: view.destination(),
                    validated: false,
                    proof_deadline: now
                        + extra
                        + PROOF_TIMEOUT_PER_HOP * u32::from(remaining_hops.max(1)),
                },
            );
        }
        out
    }

    /// A packet for a link in the link table. Returns true if it was handled here.
    pub(crate) fn forward_link_packet(
        &mut self,
        now: Instant,
        view: &PacketView<Vec<u8>>,
        hops: u8,
        iface: InterfaceId,
        hash16: [u8; 16],
    ) -> bool {
        let id = view.destination();
        let Some(e) = self.link_table.get(&id).cloned() else {
            return false;
        };
        let flags = view.flags();
        if flags.packet_type == PacketType::Proof && view.context() == Context::LRPROOF {
            if hops != e.remaining_hops || iface != e.next_hop_iface {
                return true;
            }
            let Some(dest_identity) = self.recall_identity(&e.destination) else {
                return true;
            };
            let valid = LinkProof::parse(view.data())
                .and_then(|p| p.verify(&id, &dest_identity.ed25519_public()))
                .is_ok();
            if !valid {
                self.violation(iface);
                return true;
            }
            if let Some(entry) = self.link_table.get_mut(&id) {
                entry.validated = true;
                entry.timestamp = now;
            }
            let mut out = view.as_bytes().to_vec();
            out[1] = hops;
            self.stats.forwarded += 1;
            self.transmit(e.received_iface, out);
            return true;
        }
        if !e.validated {
            self.violation(iface);
            return true;
        }
        let outbound = if e.next_hop_iface == e.received_iface {
            (hops == e.remaining_hops || hops == e.taken_hops).then_some(e.next_hop_iface)
        } else if iface == e.next_hop_iface && hops == e.remaining_hops {
            Some(e.received_iface)
        } else if iface == e.received_iface && hops == e.taken_hops {
            Some(e.next_hop_iface)
        } else {
            None
        };
        if let Some(out_iface) = outbound {
            self.hashlist.insert(hash16);
            let mut out = view.as_bytes().to_vec();
            out[1] = hops;
            if let Some(entry) = self.link_table.get_mut(&id) {
                entry.timestamp = now;
            }
            self.stats.forwarded += 1;
            self.transmit(out_iface, out);
        }
        true
    }

    /// Number of links this node forwards for others.
    pub fn link_table_len(&self) -> usize {
        self.link_table.len()
    }
}

fn info(l: &Link) -> LinkInfo {
    LinkInfo {
        id: l.id(),
        destination: l.destination(),
        initiator: l.is_initiator(),
        state: l.state(),
        mtu: l.mtu(),
        rtt: l.rtt(),
        interface: l.interface(),
        remote_identity: l.remote_identity().map(|i| i.hash()),
        channel_window: l.channel_window(),
        channel_ready: l.channel_ready(),
    }
}
