//! Links: encrypted, bidirectional sessions between an initiator and a SINGLE destination.
//!
//! A [`Link`] is a sans-IO state machine owned by the transport. Its methods take input
//! (time, packets, application calls) and leave packets in its outbox for the transport to
//! send on the link's interface, and [`LinkEvent`]s for the application.

mod assembly;
pub mod channel;
mod events;
mod intake;
mod link_channel;
mod requests;
mod resources;
pub mod stream;
mod timers;
pub mod wire;

pub use assembly::{AssemblyDone, AssemblyJob};
pub use events::{CloseReason, LinkError, LinkEvent, LinkState, LinkStats};
pub use intake::{
    DEFAULT_INCOMING_RESOURCE_BYTES, DEFAULT_INCOMING_RESOURCE_BYTES_PER_LINK, MAX_REQUEST_BYTES,
};
pub use resources::{ResourceFailure, ResourcePolicy, ResourcePreparer, MAX_REQUEST_SEGMENTS};

use std::collections::VecDeque;
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

use crate::crypto::{hkdf_sha256, Token};
use crate::destination::DestinationType;
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::identity::{Identity, PublicIdentity, KEY_LEN, SIGNATURE_LEN};
use crate::packet::{link_mdu, Context, Flags, Packet, PacketType, MTU};
use crate::proof::EXPLICIT_LEN;
use crate::time::Instant;
use crate::transport::{HashMap, HashState, InterfaceId};
use wire::{LinkProof, LinkRequest, LinkWireError, MODE_AES256_CBC};

/// A link id: the truncated hash of the link request.
pub type LinkId = AddressHash;

/// Keepalive bounds and the RTT that maps to the longest interval.
const KEEPALIVE_MIN: Duration = Duration::from_secs(5);
const KEEPALIVE_MAX: Duration = Duration::from_secs(360);
const KEEPALIVE_MAX_RTT: f64 = 1.75;
/// After going stale, wait `rtt × 4 + 5 s` before closing.
const KEEPALIVE_TIMEOUT_FACTOR: u32 = 4;
const STALE_GRACE: Duration = Duration::from_secs(5);
/// Per-hop establishment allowance.
const ESTABLISHMENT_PER_HOP: Duration = Duration::from_secs(6);
/// Request timeout: `rtt × 6 + 11.25 s`.
const TRAFFIC_TIMEOUT_FACTOR: u32 = 6;
const RESPONSE_GRACE: Duration = Duration::from_millis(11_250);
/// Link packets awaiting a proof, at most.
const MAX_RECEIPTS: usize = 256;
/// Outstanding requests, at most.
const MAX_REQUESTS: usize = 256;

/// A link, in either role.
pub struct Link {
    id: LinkId,
    initiator: bool,
    destination: AddressHash,
    state: LinkState,
    eph: StaticSecret,
    eph_pub: [u8; 32],
    /// Signs our link proofs: the ephemeral key (initiator) or the destination key (responder).
    sig: SigningKey,
    /// Verifies the peer's link proofs.
    peer_sig: Option<VerifyingKey>,
    /// Initiator: the destination's identity (verifies the LRPROOF).
    dest_identity: Option<PublicIdentity>,
    token: Option<Token>,
    mtu: usize,
    attached: Option<InterfaceId>,
    expected_hops: u8,
    request_time: Instant,
    establishment_timeout: Duration,
    rtt: Option<Duration>,
    activated_at: Instant,
    last_inbound: Instant,
    last_outbound: Instant,
    last_keepalive: Instant,
    keepalive: Duration,
    stale_time: Duration,
    close_at: Option<Instant>,
    prove_packets: bool,
    remote_identity: Option<PublicIdentity>,
    requests: HashMap<AddressHash, Instant>,
    receipts: HashMap<[u8; FULL_HASH_LEN], (Instant, Instant)>,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    stats: LinkStats,
    resources: resources::Resources,
    /// Created on first channel use, sized from the RTT at that time.
    channel: Option<channel::Channel>,
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .field("initiator", &self.initiator)
            .field("state", &self.state)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

fn random_secret(rng: &mut dyn CryptoRngCore) -> [u8; 32] {
    let mut k = [0u8; 32];
    rng.fill_bytes(&mut k);
    k
}

fn derive_token(eph: &StaticSecret, peer: &[u8; 32], link_id: &LinkId) -> Token {
    let shared = eph.diffie_hellman(&XPublic::from(*peer));
    let mut key = [0u8; 64];
    hkdf_sha256(shared.as_bytes(), link_id.as_bytes(), &mut key);
    Token::new(&key)
}

/// Build a packet addressed to a link id (HEADER_1, no transport id), copying `data` once
/// behind the header.
fn link_packet(
    id: &LinkId,
    packet_type: PacketType,
    context: Context,
    data: impl AsRef<[u8]>,
) -> Vec<u8> {
    let data = data.as_ref();
    let mut out = Vec::with_capacity(crate::packet::HEADER_MINSIZE + data.len());
    out.push(Flags::new(DestinationType::Link, packet_type).to_byte());
    out.push(0);
    out.extend_from_slice(id.as_bytes());
    out.push(context.0);
    out.extend_from_slice(data);
    out
}

impl Link {
    /// Start a link to `destination` (initiator). Returns the link and the LINKREQUEST packet.
    ///
    /// `signal_mtu` is the MTU to offer: the next-hop interface's hardware MTU when it can
    /// carry more than 500 bytes, else 500. `first_hop_timeout` comes from the path.
    pub fn initiate(
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        destination: AddressHash,
        dest_identity: PublicIdentity,
        hops: u8,
        signal_mtu: u32,
        first_hop_timeout: Duration,
    ) -> (Link, Vec<u8>) {
        let eph = StaticSecret::from(random_secret(rng));
        let eph_pub = *XPublic::from(&eph).as_bytes();
        let sig = SigningKey::from_bytes(&random_secret(rng));
        let req = LinkRequest {
            x25519: eph_pub,
            ed25519: sig.verifying_key().to_bytes(),
            signalling: Some((signal_mtu, MODE_AES256_CBC)),
        };
        let raw = Packet {
            flags: Flags::new(DestinationType::Single, PacketType::LinkRequest),
            hops: 0,
            transport_id: None,
            destination,
            context: Context::NONE,
            data: req.emit(),
        }
        .to_bytes();
        let view = crate::packet::PacketView::new_checked(&raw[..]).expect("well-formed");
        let id = wire::link_id(&view);
        let peer_sig = VerifyingKey::from_bytes(&dest_identity.ed25519_public()).ok();
        let link = Link {
            id,
            initiator: true,
            destination,
            state: LinkState::Pending,
            eph,
            eph_pub,
            sig,
            peer_sig,
            dest_identity: Some(dest_identity),
            token: None,
            mtu: MTU,
            attached: None,
            expected_hops: hops,
            request_time: now,
            establishment_timeout: first_hop_timeout
                + ESTABLISHMENT_PER_HOP * u32::from(hops.max(1)),
            ..Link::blank(id, destination, now, crate::transport::hash_state(rng))
        };
        (link, raw)
    }

    /// Accept a link request for a local destination (responder). Returns the link, with
    /// the LRPROOF in its outbox.
    ///
    /// `mtu` is the MTU this side confirms (already clamped to what the receiving interface
    /// carries); `None` leaves the signalling bytes out (the interface MTU is unknown).
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        identity: &Identity,
        destination: AddressHash,
        link_id: LinkId,
        request: &LinkRequest,
        hops: u8,
        mtu: Option<u32>,
        interface: InterfaceId,
        prove_packets: bool,
    ) -> Link {
        let eph = StaticSecret::from(random_secret(rng));
        let eph_pub = *XPublic::from(&eph).as_bytes();
        let token = derive_token(&eph, &request.x25519, &link_id);
        let signalling = mtu.map(|m| wire::signalling_bytes(m, MODE_AES256_CBC));
        let signed = wire::proof_signed_data(
            &link_id,
            &eph_pub,
            &identity.public().ed25519_public(),
            signalling.as_ref(),
        );
        let proof = LinkProof {
            signature: identity.sign(&signed),
            x25519: eph_pub,
            signalling,
        };
        let mut link = Link {
            initiator: false,
            state: LinkState::Handshake,
            eph,
            eph_pub,
            sig: identity.signing_key().clone(),
            peer_sig: VerifyingKey::from_bytes(&request.ed25519).ok(),
            token: Some(token),
            mtu: mtu.map_or(MTU, |m| m as usize),
            attached: Some(interface),
            expected_hops: hops,
            request_time: now,
            establishment_timeout: ESTABLISHMENT_PER_HOP * u32::from(hops.max(1)) + KEEPALIVE_MAX,
            prove_packets,
            ..Link::blank(link_id, destination, now, crate::transport::hash_state(rng))
        };
        link.push_out(
            link_packet(&link_id, PacketType::Proof, Context::LRPROOF, proof.emit()),
            now,
        );
        link
    }

    fn blank(id: LinkId, destination: AddressHash, now: Instant, state: HashState) -> Link {
        let eph = StaticSecret::from([0u8; 32]);
        Link {
            id,
            initiator: false,
            destination,
            state: LinkState::Pending,
            eph_pub: *XPublic::from(&eph).as_bytes(),
            eph,
            sig: SigningKey::from_bytes(&[0u8; 32]),
            peer_sig: None,
            dest_identity: None,
            token: None,
            mtu: MTU,
            attached: None,
            expected_hops: 0,
            request_time: now,
            establishment_timeout: Duration::ZERO,
            rtt: None,
            activated_at: now,
            last_inbound: now,
            last_outbound: now,
            last_keepalive: now,
            keepalive: KEEPALIVE_MAX,
            stale_time: KEEPALIVE_MAX * 2,
            close_at: None,
            prove_packets: true,
            remote_identity: None,
            requests: HashMap::with_hasher(state.clone()),
            receipts: HashMap::with_hasher(state),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: LinkStats::default(),
            resources: resources::Resources::default(),
            channel: None,
        }
    }

    /// The link id.
    pub fn id(&self) -> LinkId {
        self.id
    }

    /// Whether we initiated it.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// The SINGLE destination the link leads to.
    pub fn destination(&self) -> AddressHash {
        self.destination
    }

    /// Current state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Negotiated MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Largest plaintext that fits one link packet.
    pub fn mdu(&self) -> usize {
        link_mdu(self.mtu)
    }

    /// Round-trip time, once known.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Interface the link runs over.
    pub fn interface(&self) -> Option<InterfaceId> {
        self.attached
    }

    /// Hops the link's packets are expected to travel.
    pub fn expected_hops(&self) -> u8 {
        self.expected_hops
    }

    /// The identified initiator, if any (responder side).
    pub fn remote_identity(&self) -> Option<&PublicIdentity> {
        self.remote_identity.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Keepalive interval.
    pub fn keepalive_interval(&self) -> Duration {
        self.keepalive
    }

    /// Next packet to send (on [`Link::interface`]).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    fn push_out(&mut self, raw: Vec<u8>, now: Instant) {
        self.stats.tx += 1;
        self.last_outbound = now;
        self.outbox.push_back(raw);
    }

    fn encrypt(&self, rng: &mut dyn CryptoRngCore, plaintext: &[u8]) -> Option<Vec<u8>> {
        self.token.as_ref().map(|t| t.encrypt(rng, plaintext))
    }

    fn decrypt(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let r = self.token.as_ref()?.decrypt(data).ok();
        if r.is_none() {
            self.stats.dropped += 1;
        }
        r
    }

    fn update_keepalive(&mut self) {
        let rtt = self.rtt.unwrap_or_default().as_secs_f64();
        let ka = (rtt * (KEEPALIVE_MAX.as_secs_f64() / KEEPALIVE_MAX_RTT))
            .clamp(KEEPALIVE_MIN.as_secs_f64(), KEEPALIVE_MAX.as_secs_f64());
        self.keepalive = Duration::from_secs_f64(ka);
        self.stale_time = self.keepalive * 2;
    }

    fn closed(&mut self, reason: CloseReason) {
        if self.state == LinkState::Closed {
            return;
        }
        self.state = LinkState::Closed;
        self.token = None;
        self.fail_all_resources();
        if let Some(c) = &mut self.channel {
            c.clear();
        }
        self.events.push_back(LinkEvent::Closed {
            link: self.id,
            reason,
        });
    }

    /// Initiator: handle an LRPROOF that arrived with `hops`.
    pub fn handle_lrproof(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        data: &[u8],
        hops: u8,
        interface: InterfaceId,
    ) -> Result<(), LinkError> {
        if !self.initiator || self.state != LinkState::Pending {
            return Ok(());
        }
        let proof = LinkProof::parse(data)?;
        let (mtu, mode) = proof.mtu_mode();
        if mode != MODE_AES256_CBC {
            return Err(LinkWireError::Mode(mode).into());
        }
        let ed = self
            .dest_identity
            .as_ref()
            .map(|i| i.ed25519_public())
            .ok_or(LinkError::UnknownDestination(self.destination))?;
        proof.verify(&self.id, &ed)?;
        if hops != self.expected_hops {
            // RNS re-balances the expected hops when the signature is valid.
            self.expected_hops = hops;
        }
        self.token = Some(derive_token(&self.eph, &proof.x25519, &self.id));
        let rtt = now
            .saturating_since(self.request_time)
            .max(Duration::from_micros(1));
        self.rtt = Some(rtt);
        self.mtu = (mtu as usize).clamp(MTU, 1 << 21);
        self.attached = Some(interface);
        self.state = LinkState::Active;
        self.activated_at = now;
        self.last_inbound = now;
        self.update_keepalive();
        let body = wire::encode_rtt(rtt.as_secs_f64());
        if let Some(ct) = self.encrypt(rng, &body) {
            self.push_out(
                link_packet(&self.id, PacketType::Data, Context::LRRTT, ct),
                now,
            );
        }
        self.events.push_back(LinkEvent::Established {
            link: self.id,
            destination: self.destination,
            initiator: true,
            rtt,
            mtu: self.mtu,
        });
        Ok(())
    }

    /// Handle a DATA or PROOF packet addressed to this link.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_packet(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        packet_type: PacketType,
        context: Context,
        data: &[u8],
        packet_hash: &[u8; FULL_HASH_LEN],
        interface: InterfaceId,
    ) {
        if self.state == LinkState::Closed {
            return;
        }
        // The initiator ignores keepalive requests entirely (they are its own kind).
        if self.initiator && context == Context::KEEPALIVE && data == [0xFF] {
            return;
        }
        if self.attached.is_some() && self.attached != Some(interface) {
            self.stats.dropped += 1;
            return;
        }
        self.stats.rx += 1;
        self.last_inbound = now;
        if self.state == LinkState::Stale {
            self.state = LinkState::Active;
            self.close_at = None;
        }
        match packet_type {
            PacketType::Proof if context == Context::RESOURCE_PRF => {
                self.handle_resource_proof(rng, now, data)
            }
            PacketType::Proof => self.handle_proof(now, context, data),
            PacketType::Data => self.handle_data(rng, now, context, data, packet_hash),
            _ => self.stats.dropped += 1,
        }
    }

    fn handle_proof(&mut self, now: Instant, context: Context, data: &[u8]) {
        if context != Context::NONE || data.len() != EXPLICIT_LEN {
            return; // resource proofs arrive with the resources work
        }
        let hash: [u8; FULL_HASH_LEN] = data[..FULL_HASH_LEN].try_into().expect("32 bytes");
        let receipt = self.receipts.get(&hash).copied();
        let channel = self.channel.as_ref().is_some_and(|c| c.awaits(&hash));
        if receipt.is_none() && !channel {
            return;
        }
        let sig = Signature::from_bytes(data[FULL_HASH_LEN..].try_into().expect("64 bytes"));
        if self
            .peer_sig
            .as_ref()
            .is_none_or(|k| k.verify_strict(&hash, &sig).is_err())
        {
            self.stats.dropped += 1;
            return;
        }
        if let Some((sent, _)) = receipt {
            self.receipts.remove(&hash);
            self.events.push_back(LinkEvent::Proof {
                link: self.id,
                packet_hash: hash,
                rtt: now.saturating_since(sent),
            });
        }
        let rtt = self.rtt.unwrap_or_default();
        if let Some(sequence) = self.channel.as_mut().and_then(|c| c.proven(&hash, rtt)) {
            self.events.push_back(LinkEvent::ChannelDelivered {
                link: self.id,
                sequence,
            });
        }
    }

    fn handle_data(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        context: Context,
        data: &[u8],
        packet_hash: &[u8; FULL_HASH_LEN],
    ) {
        match context {
            Context::KEEPALIVE
                if !self.initiator
                    && data == [0xFF]
                    && now.saturating_since(self.last_outbound) >= self.keepalive =>
            {
                self.push_out(
                    link_packet(&self.id, PacketType::Data, Context::KEEPALIVE, vec![0xFE]),
                    now,
                );
                self.last_keepalive = now;
            }
            Context::KEEPALIVE => {}
            Context::LRRTT => {
                if self.initiator || self.state != LinkState::Handshake {
                    return;
                }
                let Some(pt) = self.decrypt(data) else { return };
                let Ok(theirs) = wire::decode_rtt(&pt) else {
                    self.stats.dropped += 1;
                    return;
                };
                let measured = now.saturating_since(self.request_time);
                let rtt = measured.max(Duration::from_secs_f64(theirs.min(3600.0)));
                self.rtt = Some(rtt);
                self.state = LinkState::Active;
                self.activated_at = now;
                self.update_keepalive();
                self.events.push_back(LinkEvent::Established {
                    link: self.id,
                    destination: self.destination,
                    initiator: false,
                    rtt,
                    mtu: self.mtu,
                });
            }
            Context::LINKCLOSE => {
                let Some(pt) = self.decrypt(data) else { return };
                if pt == self.id.0 {
                    self.closed(if self.initiator {
                        CloseReason::DestinationClosed
                    } else {
                        CloseReason::InitiatorClosed
                    });
                }
            }
            // Like RNS, data is processed as soon as the link key exists: an initiator may
            // send (identify, requests, resources) before its RTT packet arrives.
            _ if self.token.is_none() => {
                self.stats.dropped += 1;
            }
            Context::NONE => {
                let Some(pt) = self.decrypt(data) else { return };
                if self.prove_packets {
                    self.prove(now, packet_hash);
                }
                self.events.push_back(LinkEvent::Packet {
                    link: self.id,
                    data: pt,
                    packet_hash: *packet_hash,
                });
            }
            Context::LINKIDENTIFY => {
                let Some(pt) = self.decrypt(data) else { return };
                if self.initiator || pt.len() != KEY_LEN + SIGNATURE_LEN {
                    return;
                }
                let Ok(identity) = PublicIdentity::from_bytes(&pt[..KEY_LEN]) else {
                    return;
                };
                let mut signed = self.id.0.to_vec();
                signed.extend_from_slice(&pt[..KEY_LEN]);
                if identity.verify(&signed, &pt[KEY_LEN..]).is_ok()
                    && self.remote_identity.is_none()
                {
                    self.remote_identity = Some(identity.clone());
                    self.events.push_back(LinkEvent::Identified {
                        link: self.id,
                        identity: Box::new(identity),
                    });
                }
            }
            Context::REQUEST => {
                let Some(pt) = self.decrypt(data) else { return };
                match wire::decode_request(&pt) {
                    Ok((_, path_hash, data)) => self.events.push_back(LinkEvent::Request {
                        link: self.id,
                        request_id: AddressHash::from_full(packet_hash),
                        path_hash,
                        data,
                        remote_identity: self.remote_identity.clone().map(Box::new),
                    }),
                    Err(_) => self.stats.dropped += 1,
                }
            }
            Context::RESPONSE => {
                let Some(pt) = self.decrypt(data) else { return };
                match wire::decode_response(&pt) {
                    Ok((request_id, data)) => {
                        if self.requests.remove(&request_id).is_some() {
                            self.events.push_back(LinkEvent::Response {
                                link: self.id,
                                request_id,
                                data,
                            });
                        }
                    }
                    Err(_) => self.stats.dropped += 1,
                }
            }
            Context::RESOURCE
            | Context::RESOURCE_ADV
            | Context::RESOURCE_REQ
            | Context::RESOURCE_HMU
            | Context::RESOURCE_ICL
            | Context::RESOURCE_RCL
            | Context::CACHE_REQUEST => {
                self.handle_resource_data(rng, now, context, data, packet_hash)
            }
            Context::CHANNEL => {
                let Some(pt) = self.decrypt(data) else { return };
                // Every channel packet is proven, as RNS does: the proof is the sender's ack.
                self.prove(now, packet_hash);
                self.receive_channel(&pt);
            }
            _ => self.stats.dropped += 1,
        }
    }

    /// Send an explicit proof for a packet we received.
    fn prove(&mut self, now: Instant, packet_hash: &[u8; FULL_HASH_LEN]) {
        let sig = self.sig.sign(packet_hash).to_bytes();
        let mut data = packet_hash.to_vec();
        data.extend_from_slice(&sig);
        self.push_out(
            link_packet(&self.id, PacketType::Proof, Context::NONE, data),
            now,
        );
    }

    fn require_active(&self) -> Result<(), LinkError> {
        match self.state {
            LinkState::Active | LinkState::Stale => Ok(()),
            _ => Err(LinkError::NotActive(self.id)),
        }
    }

    /// Send a data packet; returns its hash. A [`LinkEvent::Proof`] follows if the peer proves it.
    pub fn send(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        data: &[u8],
    ) -> Result<[u8; FULL_HASH_LEN], LinkError> {
        self.require_active()?;
        if data.len() > self.mdu() {
            return Err(LinkError::TooLarge {
                size: data.len(),
                mdu: self.mdu(),
            });
        }
        if self.receipts.len() >= MAX_RECEIPTS {
            return Err(LinkError::Busy(self.id));
        }
        let ct = self
            .encrypt(rng, data)
            .ok_or(LinkError::NotActive(self.id))?;
        let raw = link_packet(&self.id, PacketType::Data, Context::NONE, ct);
        let hash = crate::packet::PacketView::new_checked(&raw[..])
            .expect("well-formed")
            .hash();
        let timeout = (self.rtt.unwrap_or_default() * TRAFFIC_TIMEOUT_FACTOR)
            .max(Duration::from_millis(5))
            + Duration::from_secs(5);
        self.receipts.insert(hash, (now, now + timeout));
        self.push_out(raw, now);
        Ok(hash)
    }

    /// The initiator's ephemeral X25519 key (for tests and diagnostics).
    pub fn ephemeral_public(&self) -> [u8; 32] {
        self.eph_pub
    }
}

#[cfg(test)]
mod tests;
