//! Resources on a link: dispatch of resource packets, the outgoing queue (one transfer at
//! a time, as RNS does), accept policy, requests and responses too large for one packet.

use std::collections::VecDeque;

use rand_core::CryptoRngCore;

use super::{link_packet, Link, LinkError, LinkEvent};
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::packet::{Context, PacketType};
use crate::resource::{
    Advertisement, IncomingResource, OutgoingResource, ReceiverStep, SegmentBuffer, SegmentSpec,
    SenderStep, MAX_EFFICIENT_SIZE,
};
use crate::time::Instant;

/// Incoming transfers at once, per link.
const MAX_INCOMING: usize = 4;
/// Outgoing transfers queued behind the active one, per link.
const MAX_QUEUED: usize = 16;
/// Offers waiting for the application to accept or reject them.
const MAX_OFFERS: usize = 8;
/// Segments a request or response may span (each at most [`MAX_EFFICIENT_SIZE`]); the
/// joined body is also bounded by its advertised size and
/// [`MAX_REQUEST_BYTES`](super::intake::MAX_REQUEST_BYTES) (about 16 MiB).
pub const MAX_REQUEST_SEGMENTS: u64 = 16;

/// Which incoming resources a link accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResourcePolicy {
    /// None (requests and responses to our requests are still accepted).
    #[default]
    None,
    /// Every resource.
    All,
    /// Ask the application ([`LinkEvent::ResourceOffered`]).
    App,
}

/// What preparing a resource segment needs from its link, detached from the link so the
/// expensive part (compression, encryption, hashing) can run on another thread.
#[derive(Clone)]
pub struct ResourcePreparer {
    token: crate::crypto::Token,
    mtu: usize,
    rtt: std::time::Duration,
}

impl core::fmt::Debug for ResourcePreparer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ResourcePreparer(mtu={})", self.mtu)
    }
}

impl ResourcePreparer {
    /// Compress, encrypt and hash one segment for this link.
    pub fn prepare(
        &self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        data: &[u8],
        spec: &SegmentSpec,
    ) -> OutgoingResource {
        OutgoingResource::new(rng, &self.token, self.mtu, data, spec, now, self.rtt)
    }

    /// [`ResourcePreparer::prepare`] for data already in its segment buffer (say, read
    /// from a file straight into it): encrypted and sent from that buffer, not copied.
    pub fn prepare_buffer(
        &self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        data: SegmentBuffer,
        spec: &SegmentSpec,
    ) -> OutgoingResource {
        OutgoingResource::from_buffer(rng, &self.token, self.mtu, data, spec, now, self.rtt)
    }
}

/// Why a resource transfer ended without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceFailure {
    /// The other side rejected or cancelled it.
    Rejected,
    /// Timeouts and retries were exhausted.
    Timeout,
    /// The assembled data did not match its hash.
    Corrupt,
    /// The link closed.
    LinkClosed,
    /// We cancelled it.
    Cancelled,
    /// We refused it: too many transfers on the link, or over the budget for bytes held
    /// by incoming resources.
    NoRoom,
}

/// Per-link resource state.
#[derive(Debug, Default)]
pub(super) struct Resources {
    pub(super) policy: ResourcePolicy,
    pub(super) outgoing: VecDeque<OutgoingResource>,
    pub(super) incoming: Vec<IncomingResource>,
    pub(super) offers: Vec<Advertisement>,
    pub(super) last_window: Option<usize>,
    pub(super) proof_cache: VecDeque<([u8; FULL_HASH_LEN], Vec<u8>)>,
    pub(super) split: Vec<super::intake::SplitAssembly>,
    pub(super) budget: super::intake::ResourceBudget,
    /// Hand complete segments to the application to assemble off the event loop
    /// ([`LinkEvent::ResourceAssemble`]) instead of assembling them here.
    pub(super) defer_assembly: bool,
}

impl Link {
    /// Choose which incoming resources this link accepts.
    pub fn set_resource_policy(&mut self, policy: ResourcePolicy) {
        self.resources.policy = policy;
    }

    /// Assemble complete incoming segments (decrypt, decompress, hash: up to 1 MiB of
    /// work each) here (`false`, the default) or hand them out as
    /// [`LinkEvent::ResourceAssemble`] jobs for the application to run elsewhere and
    /// return with [`Link::resource_assembled`].
    pub fn set_defer_assembly(&mut self, defer: bool) {
        self.resources.defer_assembly = defer;
    }

    /// What is needed to prepare segments for this link off the event loop.
    pub fn resource_preparer(&self) -> Result<ResourcePreparer, LinkError> {
        self.require_active()?;
        Ok(ResourcePreparer {
            token: self.token.clone().ok_or(LinkError::NotActive(self.id))?,
            mtu: self.mtu,
            rtt: self.rtt.unwrap_or_default(),
        })
    }

    /// Queue a segment prepared with [`Link::resource_preparer`]. Returns its hash.
    pub fn enqueue_resource(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        resource: OutgoingResource,
    ) -> Result<[u8; FULL_HASH_LEN], LinkError> {
        self.require_active()?;
        if self.resources.outgoing.len() > MAX_QUEUED {
            return Err(LinkError::Busy(self.id));
        }
        let hash = resource.hash();
        self.resources.outgoing.push_back(resource);
        if self.resources.outgoing.len() == 1 {
            self.advertise_front(rng, now);
        }
        Ok(hash)
    }

    /// Send one resource segment (at most 1 MiB − 1 of data). It is advertised now, or
    /// when the transfer ahead of it on this link finishes. Returns the resource hash.
    pub fn send_resource(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        data: &[u8],
        spec: &SegmentSpec,
    ) -> Result<[u8; FULL_HASH_LEN], LinkError> {
        self.require_active()?;
        if data.len() > MAX_EFFICIENT_SIZE + crate::resource::METADATA_MAX_SIZE {
            return Err(LinkError::TooLarge {
                size: data.len(),
                mdu: MAX_EFFICIENT_SIZE,
            });
        }
        if self.resources.outgoing.len() > MAX_QUEUED {
            return Err(LinkError::Busy(self.id));
        }
        let token = self.token.clone().ok_or(LinkError::NotActive(self.id))?;
        let rtt = self.rtt.unwrap_or_default();
        let r = OutgoingResource::new(rng, &token, self.mtu, data, spec, now, rtt);
        let hash = r.hash();
        self.resources.outgoing.push_back(r);
        if self.resources.outgoing.len() == 1 {
            self.advertise_front(rng, now);
        }
        Ok(hash)
    }

    fn advertise_front(&mut self, rng: &mut dyn CryptoRngCore, now: Instant) {
        if let Some(step) = self
            .resources
            .outgoing
            .front_mut()
            .map(|r| r.advertise(now))
        {
            self.sender_step(rng, now, step);
        }
    }

    fn sender_step(&mut self, rng: &mut dyn CryptoRngCore, now: Instant, step: SenderStep) {
        let (ctx, body, encrypt) = match step {
            SenderStep::Advertise(b) => (Context::RESOURCE_ADV, b, true),
            SenderStep::Part(i) => {
                // Parts are sent from the front segment's buffer: one copy, into the packet.
                let Some(part) = self.resources.outgoing.front().map(|r| r.part(i)) else {
                    return;
                };
                let raw = link_packet(&self.id, PacketType::Data, Context::RESOURCE, part);
                return self.push_out(raw, now);
            }
            SenderStep::HashmapUpdate(b) => (Context::RESOURCE_HMU, b, true),
            SenderStep::CacheRequest(b) => (Context::CACHE_REQUEST, b, false),
            SenderStep::Cancel(b) => (Context::RESOURCE_ICL, b, true),
        };
        self.emit_data(rng, now, ctx, &body, encrypt);
    }

    pub(super) fn emit_data(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        ctx: Context,
        body: &[u8],
        encrypt: bool,
    ) {
        let raw = if encrypt {
            match self.encrypt(rng, body) {
                Some(c) => link_packet(&self.id, PacketType::Data, ctx, c),
                None => return,
            }
        } else {
            link_packet(&self.id, PacketType::Data, ctx, body)
        };
        self.push_out(raw, now);
    }

    /// Accept a resource offered under [`ResourcePolicy::App`].
    pub fn accept_resource(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        hash: &[u8; FULL_HASH_LEN],
    ) {
        if let Some(i) = self.resources.offers.iter().position(|a| a.hash == *hash) {
            let adv = self.resources.offers.swap_remove(i);
            self.start_incoming(rng, now, adv, true);
        }
    }

    /// Reject a resource offered under [`ResourcePolicy::App`].
    pub fn reject_resource(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        hash: &[u8; FULL_HASH_LEN],
    ) {
        self.resources.offers.retain(|a| a.hash != *hash);
        self.emit_data(rng, now, Context::RESOURCE_RCL, hash, true);
    }

    /// Start receiving an advertised resource if there is room for it (`offered`: the
    /// application accepted it, so it hears if there is not).
    fn start_incoming(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        adv: Advertisement,
        offered: bool,
    ) {
        if self.resources.incoming.iter().any(|r| r.hash() == adv.hash) {
            return;
        }
        let hash = adv.hash;
        let rtt = self.rtt.unwrap_or_default();
        let (mut r, step) =
            IncomingResource::accept(adv, self.mtu, rtt, self.resources.last_window, now);
        if self.resources.incoming.len() >= MAX_INCOMING || !self.reserve_incoming(&mut r, now) {
            self.stats.dropped += 1;
            self.emit_data(rng, now, Context::RESOURCE_RCL, &hash, true);
            if offered {
                self.events.push_back(LinkEvent::ResourceFailed {
                    link: self.id,
                    hash,
                    sending: false,
                    reason: ResourceFailure::NoRoom,
                });
            }
            return;
        }
        self.resources.incoming.push(r);
        self.receiver_step(rng, now, &hash, step);
    }

    fn receiver_step(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        hash: &[u8; FULL_HASH_LEN],
        step: ReceiverStep,
    ) {
        match step {
            ReceiverStep::Wait => {}
            ReceiverStep::Request(req) => {
                if let Some((done, total)) = self
                    .resources
                    .incoming
                    .iter()
                    .find(|r| r.hash() == *hash)
                    .map(|r| r.progress())
                {
                    self.events.push_back(LinkEvent::ResourceProgress {
                        link: self.id,
                        hash: *hash,
                        sending: false,
                        parts_done: done,
                        parts_total: total,
                    });
                }
                self.emit_data(rng, now, Context::RESOURCE_REQ, &req, true);
            }
            ReceiverStep::Failed => {
                self.emit_data(rng, now, Context::RESOURCE_RCL, hash, true);
                self.finish_incoming(hash, Some(ResourceFailure::Timeout));
            }
            ReceiverStep::Complete => self.complete_incoming(rng, now, hash),
        }
    }

    fn finish_incoming(
        &mut self,
        hash: &[u8; FULL_HASH_LEN],
        failure: Option<ResourceFailure>,
    ) -> Option<IncomingResource> {
        let i = self
            .resources
            .incoming
            .iter()
            .position(|r| r.hash() == *hash)?;
        let r = self.resources.incoming.swap_remove(i);
        self.resources.last_window = Some(r.window());
        if let Some(reason) = failure {
            // A split request or response missing a segment can never complete.
            self.drop_split(r.advertisement());
            self.events.push_back(LinkEvent::ResourceFailed {
                link: self.id,
                hash: *hash,
                sending: false,
                reason,
            });
        }
        Some(r)
    }

    fn complete_incoming(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        hash: &[u8; FULL_HASH_LEN],
    ) {
        let Some(token) = self.token.clone() else {
            return;
        };
        let Some(r) = self.finish_incoming(hash, None) else {
            return;
        };
        let job = super::assembly::AssemblyJob::new(r, token);
        if self.resources.defer_assembly {
            self.events
                .push_back(LinkEvent::ResourceAssemble { link: self.id, job });
        } else {
            let done = job.run();
            self.resource_assembled(rng, now, done);
        }
    }

    /// Handle a resource-related DATA packet (plaintext already decrypted where applicable).
    pub(super) fn handle_resource_data(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        ctx: Context,
        data: &[u8],
        packet_hash: &[u8; FULL_HASH_LEN],
    ) {
        match ctx {
            Context::RESOURCE => {
                let hashes: Vec<[u8; FULL_HASH_LEN]> =
                    self.resources.incoming.iter().map(|r| r.hash()).collect();
                for h in hashes {
                    let step = match self.resources.incoming.iter_mut().find(|r| r.hash() == h) {
                        Some(r) => r.handle_part(data, now),
                        None => continue,
                    };
                    self.receiver_step(rng, now, &h, step);
                }
            }
            Context::CACHE_REQUEST => {
                if let Some((_, raw)) = self
                    .resources
                    .proof_cache
                    .iter()
                    .find(|(h, _)| h[..] == *data)
                    .cloned()
                {
                    self.push_out(raw, now);
                }
            }
            _ => {
                let Some(pt) = self.decrypt(data) else { return };
                self.handle_resource_plaintext(rng, now, ctx, &pt, packet_hash);
            }
        }
    }

    fn handle_resource_plaintext(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        ctx: Context,
        pt: &[u8],
        packet_hash: &[u8; FULL_HASH_LEN],
    ) {
        let hash_at = |off: usize| -> Option<[u8; FULL_HASH_LEN]> {
            pt.get(off..off + FULL_HASH_LEN)?.try_into().ok()
        };
        match ctx {
            Context::RESOURCE_ADV => {
                let Ok(adv) = Advertisement::unpack(pt) else {
                    self.stats.dropped += 1;
                    return;
                };
                if self.resources.incoming.iter().any(|r| r.hash() == adv.hash)
                    || self.resources.offers.iter().any(|a| a.hash == adv.hash)
                {
                    return; // a re-advertisement of something already in hand
                }
                let wanted_response = adv.is_response()
                    && adv
                        .request_id
                        .is_some_and(|q| self.requests.contains_key(&q));
                if (adv.is_request() || wanted_response) && self.split_acceptable(&adv) {
                    self.start_incoming(rng, now, adv, false);
                } else if adv.is_request() || adv.is_response() {
                    let h = adv.hash;
                    self.emit_data(rng, now, Context::RESOURCE_RCL, &h, true);
                } else {
                    match self.resources.policy {
                        ResourcePolicy::None => {}
                        ResourcePolicy::All => self.start_incoming(rng, now, adv, false),
                        ResourcePolicy::App => {
                            if self.resources.offers.len() >= MAX_OFFERS {
                                let h = adv.hash;
                                self.emit_data(rng, now, Context::RESOURCE_RCL, &h, true);
                                return;
                            }
                            self.events.push_back(LinkEvent::ResourceOffered {
                                link: self.id,
                                segment: adv.segment(),
                                remote_identity: self.remote_identity.as_ref().map(|i| i.hash()),
                            });
                            self.resources.offers.push(adv);
                        }
                    }
                }
            }
            Context::RESOURCE_REQ => {
                let off = if pt.first() == Some(&0xFF) {
                    1 + crate::resource::MAPHASH_LEN
                } else {
                    1
                };
                let Some(h) = hash_at(off) else { return };
                let Some(front) = self.resources.outgoing.front_mut() else {
                    return;
                };
                if front.hash() != h {
                    return;
                }
                match front.handle_request(now, packet_hash, pt) {
                    Ok(steps) => {
                        let (sent, total) = (front.parts_sent(), front.part_count());
                        for s in steps {
                            self.sender_step(rng, now, s);
                        }
                        self.events.push_back(LinkEvent::ResourceProgress {
                            link: self.id,
                            hash: h,
                            sending: true,
                            parts_done: sent,
                            parts_total: total,
                        });
                    }
                    Err(_) => self.fail_outgoing(rng, now, ResourceFailure::Timeout, true),
                }
            }
            Context::RESOURCE_HMU => {
                let Some(h) = hash_at(0) else { return };
                let step = match self.resources.incoming.iter_mut().find(|r| r.hash() == h) {
                    Some(r) => r.handle_hashmap_update(pt, now),
                    None => return,
                };
                self.receiver_step(rng, now, &h, step);
            }
            Context::RESOURCE_ICL => {
                if let Some(h) = hash_at(0) {
                    self.finish_incoming(&h, Some(ResourceFailure::Rejected));
                    self.resources.offers.retain(|a| a.hash != h);
                }
            }
            Context::RESOURCE_RCL => {
                if let Some(h) = hash_at(0) {
                    if self
                        .resources
                        .outgoing
                        .front()
                        .is_some_and(|r| r.hash() == h)
                    {
                        self.fail_outgoing(rng, now, ResourceFailure::Rejected, false);
                    }
                }
            }
            _ => {}
        }
    }

    /// Cancel an outgoing resource: one on the wire is cancelled with the receiver, a
    /// queued one is dropped. A [`LinkEvent::ResourceFailed`] follows.
    pub fn cancel_resource(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        hash: &[u8; FULL_HASH_LEN],
    ) -> Result<(), LinkError> {
        let Some(i) = self
            .resources
            .outgoing
            .iter()
            .position(|r| r.hash() == *hash)
        else {
            return Err(LinkError::UnknownResource);
        };
        if i == 0 {
            self.fail_outgoing(rng, now, ResourceFailure::Cancelled, true);
        } else if let Some(r) = self.resources.outgoing.remove(i) {
            self.events.push_back(LinkEvent::ResourceFailed {
                link: self.id,
                hash: r.hash(),
                sending: true,
                reason: ResourceFailure::Cancelled,
            });
        }
        Ok(())
    }

    fn fail_outgoing(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        reason: ResourceFailure,
        tell: bool,
    ) {
        let Some(r) = self.resources.outgoing.pop_front() else {
            return;
        };
        if tell {
            let step = r.cancel_step();
            self.sender_step(rng, now, step);
        }
        self.events.push_back(LinkEvent::ResourceFailed {
            link: self.id,
            hash: r.hash(),
            sending: true,
            reason,
        });
        self.advertise_front(rng, now);
    }

    /// A resource proof arrived.
    pub(super) fn handle_resource_proof(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        data: &[u8],
    ) {
        let Some(front) = self.resources.outgoing.front_mut() else {
            return;
        };
        if !front.handle_proof(data) {
            return;
        }
        let r = self.resources.outgoing.pop_front().expect("front exists");
        self.events.push_back(LinkEvent::ResourceSent {
            link: self.id,
            segment: r.advertisement().segment(),
        });
        self.advertise_front(rng, now);
    }

    /// When the resource watchdogs next need to run: the incoming transfers' and the
    /// advertised outgoing one's.
    pub fn poll_resource_timeout(&self) -> Option<Instant> {
        let out = self
            .resources
            .outgoing
            .front()
            .and_then(OutgoingResource::poll_timeout);
        self.resources
            .incoming
            .iter()
            .filter_map(IncomingResource::poll_timeout)
            .chain(out)
            .min()
    }

    /// Run the resource watchdogs alone (they may be due long before the link's own).
    pub fn handle_resource_timeout(&mut self, rng: &mut dyn CryptoRngCore, now: Instant) {
        if matches!(
            self.state,
            super::LinkState::Active | super::LinkState::Stale
        ) {
            self.resource_timers(rng, now);
        }
    }

    /// Resource watchdogs.
    pub(super) fn resource_timers(&mut self, rng: &mut dyn CryptoRngCore, now: Instant) {
        self.expire_splits(now);
        let id = self.id;
        if let Some(front) = self.resources.outgoing.front_mut() {
            match front.handle_timeout(now, &id) {
                Ok(steps) => {
                    for s in steps {
                        self.sender_step(rng, now, s);
                    }
                }
                Err(_) => self.fail_outgoing(rng, now, ResourceFailure::Timeout, true),
            }
        }
        let hashes: Vec<[u8; FULL_HASH_LEN]> =
            self.resources.incoming.iter().map(|r| r.hash()).collect();
        for h in hashes {
            let step = match self.resources.incoming.iter_mut().find(|r| r.hash() == h) {
                Some(r) => r.handle_timeout(now),
                None => continue,
            };
            self.receiver_step(rng, now, &h, step);
        }
    }

    /// Fail every transfer (the link closed).
    pub(super) fn fail_all_resources(&mut self) {
        for r in std::mem::take(&mut self.resources.outgoing) {
            self.events.push_back(LinkEvent::ResourceFailed {
                link: self.id,
                hash: r.hash(),
                sending: true,
                reason: ResourceFailure::LinkClosed,
            });
        }
        for r in std::mem::take(&mut self.resources.incoming) {
            self.events.push_back(LinkEvent::ResourceFailed {
                link: self.id,
                hash: r.hash(),
                sending: false,
                reason: ResourceFailure::LinkClosed,
            });
        }
        self.resources.offers.clear();
        self.resources.split.clear();
    }

    /// Send a request or response body as resource segments (it does not fit one packet):
    /// one segment per [`MAX_EFFICIENT_SIZE`] bytes, at most [`MAX_REQUEST_SEGMENTS`],
    /// each advertised when the one before it is proven, as RNS does.
    pub(super) fn request_as_resource(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        body: &[u8],
        is_response: bool,
        request_id: AddressHash,
    ) -> Result<(), LinkError> {
        self.require_active()?;
        let total_segments = body.len().div_ceil(MAX_EFFICIENT_SIZE).max(1) as u64;
        if total_segments > MAX_REQUEST_SEGMENTS {
            return Err(LinkError::TooLarge {
                size: body.len(),
                mdu: MAX_EFFICIENT_SIZE * MAX_REQUEST_SEGMENTS as usize,
            });
        }
        if self.resources.outgoing.len() + total_segments as usize > MAX_QUEUED + 1 {
            return Err(LinkError::Busy(self.id));
        }
        let mut original_hash = None;
        for (i, chunk) in body.chunks(MAX_EFFICIENT_SIZE).enumerate() {
            let spec = SegmentSpec {
                original_hash,
                segment_index: i as u64 + 1,
                total_segments,
                total_size: body.len() as u64,
                has_metadata: false,
                request_id: Some(request_id),
                is_response,
                compress: true,
            };
            let hash = self.send_resource(rng, now, chunk, &spec)?;
            original_hash.get_or_insert(hash);
        }
        Ok(())
    }
}
