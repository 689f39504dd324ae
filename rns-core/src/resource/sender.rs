//! The sending side of one resource segment.

use std::collections::VecDeque;
use std::time::Duration;

use rand_core::CryptoRngCore;

use super::{
    compress, flags, map_hash, worth_compressing, Advertisement, AUTO_COMPRESS_MAX_SIZE,
    COLLISION_GUARD, HASHMAP_MAX_LEN, MAPHASH_LEN, MAX_ADV_RETRIES, MAX_RETRIES, RANDOM_HASH_LEN,
};
use crate::crypto::{Token, TOKEN_HEADROOM, TOKEN_TAILROOM};
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::time::Instant;

/// Why a sender gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    /// The receiver sent a request that cannot be served.
    #[error("invalid part request")]
    InvalidRequest,
    /// Retries are exhausted.
    #[error("resource transfer timed out")]
    TimedOut,
}

/// How this segment fits into the whole transfer.
#[derive(Debug, Clone)]
pub struct SegmentSpec {
    /// Hash of the first segment (`None` for the first segment itself).
    pub original_hash: Option<[u8; FULL_HASH_LEN]>,
    /// 1-based index.
    pub segment_index: u64,
    /// Number of segments.
    pub total_segments: u64,
    /// Total data size over all segments, metadata included.
    pub total_size: u64,
    /// Whether the first segment starts with metadata.
    pub has_metadata: bool,
    /// Request id, when this is a request or a response.
    pub request_id: Option<AddressHash>,
    /// A response (rather than a request) when `request_id` is set.
    pub is_response: bool,
    /// Offer the data to bz2.
    pub compress: bool,
}

impl SegmentSpec {
    /// A whole resource of `size` bytes in one segment, no metadata, offered to bz2.
    pub fn single(size: u64) -> SegmentSpec {
        SegmentSpec {
            original_hash: None,
            segment_index: 1,
            total_segments: 1,
            total_size: size,
            has_metadata: false,
            request_id: None,
            is_response: false,
            compress: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Advertised,
    Transferring,
    AwaitingProof,
    Done,
}

/// What the sender wants sent (plaintexts of link packets of the given kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderStep {
    /// An advertisement (link-encrypted, context RESOURCE_ADV).
    Advertise(Vec<u8>),
    /// A part (context RESOURCE, sent as is): its index; the bytes are
    /// [`OutgoingResource::part`] (not copied out of the segment's buffer).
    Part(usize),
    /// A hashmap update (link-encrypted, context RESOURCE_HMU).
    HashmapUpdate(Vec<u8>),
    /// Ask the receiver to replay its proof (context CACHE_REQUEST, plain).
    CacheRequest(Vec<u8>),
    /// Cancel (link-encrypted resource hash, context RESOURCE_ICL).
    Cancel(Vec<u8>),
}

/// Bytes in front of a segment's data in a [`SegmentBuffer`]: the token's IV, then the
/// resource's random prefix.
const FRONT: usize = TOKEN_HEADROOM + RANDOM_HASH_LEN;

/// A segment's data in the buffer it is encrypted and sent from: with room in front for
/// the token's IV and the random prefix, and behind for padding and HMAC, so preparing
/// the segment copies nothing (the data is encrypted where it was written, and parts are
/// cut from it when they are sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentBuffer {
    buf: Vec<u8>,
}

impl SegmentBuffer {
    /// An empty buffer with room for `data` bytes of data.
    pub fn with_capacity(data: usize) -> SegmentBuffer {
        let mut buf = Vec::with_capacity(FRONT + data + TOKEN_TAILROOM);
        buf.resize(FRONT, 0);
        SegmentBuffer { buf }
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(data: &[u8]) -> SegmentBuffer {
        let mut b = SegmentBuffer::with_capacity(data.len());
        b.extend_from_slice(data);
        b
    }

    /// Append data.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Append up to `n` bytes written in place by `fill` (say, read from a file), which
    /// returns how many it wrote; on error nothing is appended.
    pub fn append_with<E>(
        &mut self,
        n: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let at = self.buf.len();
        self.buf.resize(at + n, 0);
        match fill(&mut self.buf[at..]) {
            Ok(k) => {
                let k = k.min(n);
                self.buf.truncate(at + k);
                Ok(k)
            }
            Err(e) => {
                self.buf.truncate(at);
                Err(e)
            }
        }
    }

    /// The data.
    pub fn data(&self) -> &[u8] {
        &self.buf[FRONT..]
    }

    /// Bytes of data.
    pub fn len(&self) -> usize {
        self.buf.len() - FRONT
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One outgoing resource segment.
#[derive(Debug)]
pub struct OutgoingResource {
    adv: Advertisement,
    hashmap: Vec<[u8; MAPHASH_LEN]>,
    /// The encrypted stream; part `i` is `stream[i × sdu ..]`, `sdu` bytes or what is left.
    stream: Vec<u8>,
    sdu: usize,
    sent: Vec<bool>,
    sent_parts: usize,
    expected_proof: [u8; FULL_HASH_LEN],
    state: State,
    adv_sent: Instant,
    last_activity: Instant,
    last_part_sent: Instant,
    retries_left: u32,
    rtt: Option<Duration>,
    link_rtt: Duration,
    receiver_min_height: usize,
    seen_requests: VecDeque<[u8; FULL_HASH_LEN]>,
    /// Data size of this segment (for progress).
    segment_size: usize,
}

impl OutgoingResource {
    /// Prepare a segment: compress if it helps, encrypt, cut into parts, hash.
    pub fn new(
        rng: &mut dyn CryptoRngCore,
        token: &Token,
        mtu: usize,
        data: &[u8],
        spec: &SegmentSpec,
        now: Instant,
        link_rtt: Duration,
    ) -> OutgoingResource {
        let buf = SegmentBuffer::from_slice(data);
        OutgoingResource::from_buffer(rng, token, mtu, buf, spec, now, link_rtt)
    }

    /// [`OutgoingResource::new`] for data already in a [`SegmentBuffer`]: unless it is
    /// compressed, it is encrypted in that buffer and sent from it, never copied.
    pub fn from_buffer(
        rng: &mut dyn CryptoRngCore,
        token: &Token,
        mtu: usize,
        data: SegmentBuffer,
        spec: &SegmentSpec,
        now: Instant,
        link_rtt: Duration,
    ) -> OutgoingResource {
        let sdu = super::sdu(mtu);
        let segment_size = data.len();
        let digest = super::data_digest(data.data());
        let compressed = (spec.compress
            && segment_size <= AUTO_COMPRESS_MAX_SIZE
            && worth_compressing(data.data()))
        .then(|| compress(data.data()))
        .flatten()
        .filter(|c| c.len() < segment_size);
        let is_compressed = compressed.is_some();
        let mut buf = match compressed {
            Some(c) => SegmentBuffer::from_slice(&c).buf,
            None => data.buf,
        };
        rng.fill_bytes(&mut buf[TOKEN_HEADROOM..FRONT]);
        // The buffer is at least FRONT bytes long, so this cannot fail.
        let _ = token.encrypt_in_place(rng, &mut buf);
        let stream = buf;
        let (random_hash, hashmap) = loop {
            let mut random_hash = [0u8; RANDOM_HASH_LEN];
            rng.fill_bytes(&mut random_hash);
            let hashmap: Vec<[u8; MAPHASH_LEN]> = stream
                .chunks(sdu)
                .map(|c| map_hash(c, &random_hash))
                .collect();
            let collides = hashmap
                .iter()
                .enumerate()
                .any(|(i, h)| hashmap[i.saturating_sub(COLLISION_GUARD)..i].contains(h));
            if !collides {
                break (random_hash, hashmap);
            }
        };
        let (hash, expected_proof) = super::finish_hash_and_proof(digest, &random_hash);
        let mut f = flags::ENCRYPTED;
        if is_compressed {
            f |= flags::COMPRESSED;
        }
        if spec.total_segments > 1 {
            f |= flags::SPLIT;
        }
        if spec.has_metadata {
            f |= flags::HAS_METADATA;
        }
        if spec.request_id.is_some() {
            f |= if spec.is_response {
                flags::IS_RESPONSE
            } else {
                flags::IS_REQUEST
            };
        }
        let n = hashmap.len();
        let adv = Advertisement {
            transfer_size: stream.len() as u64,
            data_size: spec.total_size,
            parts: n as u64,
            hash,
            random_hash,
            original_hash: spec.original_hash.unwrap_or(hash),
            segment_index: spec.segment_index,
            total_segments: spec.total_segments,
            request_id: spec.request_id,
            flags: f,
            hashmap: Vec::new(),
        };
        OutgoingResource {
            expected_proof,
            hashmap,
            sent: vec![false; n],
            stream,
            sdu,
            sent_parts: 0,
            adv,
            state: State::Advertised,
            adv_sent: now,
            last_activity: now,
            last_part_sent: now,
            retries_left: MAX_ADV_RETRIES,
            rtt: None,
            link_rtt,
            receiver_min_height: 0,
            seen_requests: VecDeque::new(),
            segment_size,
        }
    }

    /// Part `i` (empty past the last part).
    pub fn part(&self, i: usize) -> &[u8] {
        let start = i.saturating_mul(self.sdu).min(self.stream.len());
        let end = start.saturating_add(self.sdu).min(self.stream.len());
        &self.stream[start..end]
    }

    /// The resource hash.
    pub fn hash(&self) -> [u8; FULL_HASH_LEN] {
        self.adv.hash
    }

    /// The advertisement this segment goes out with.
    pub fn advertisement(&self) -> &Advertisement {
        &self.adv
    }

    /// Number of parts.
    pub fn part_count(&self) -> usize {
        self.hashmap.len()
    }

    /// Parts sent so far.
    pub fn parts_sent(&self) -> usize {
        self.sent_parts
    }

    /// Data size of this segment.
    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// The advertisement packet plaintext (first hashmap slice).
    pub fn advertise(&mut self, now: Instant) -> SenderStep {
        let mut adv = self.adv.clone();
        adv.hashmap = self.hashmap_slice(0);
        self.adv_sent = now;
        self.last_activity = now;
        SenderStep::Advertise(adv.pack())
    }

    fn hashmap_slice(&self, segment: usize) -> Vec<u8> {
        let start = segment * HASHMAP_MAX_LEN;
        let end = ((segment + 1) * HASHMAP_MAX_LEN).min(self.hashmap.len());
        self.hashmap
            .get(start..end)
            .unwrap_or(&[])
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    /// Handle a part request (plaintext of a RESOURCE_REQ packet with its packet hash).
    /// Returns the parts and hashmap update to send; `Err` means cancel the transfer.
    pub fn handle_request(
        &mut self,
        now: Instant,
        packet_hash: &[u8; FULL_HASH_LEN],
        req: &[u8],
    ) -> Result<Vec<SenderStep>, SenderError> {
        if self.state == State::Done || self.seen_requests.contains(packet_hash) {
            return Ok(Vec::new());
        }
        if self.seen_requests.len() >= 64 {
            self.seen_requests.pop_front();
        }
        self.seen_requests.push_back(*packet_hash);
        if self.rtt.is_none() {
            self.rtt = Some(now.saturating_since(self.adv_sent));
        }
        self.state = State::Transferring;
        self.retries_left = MAX_RETRIES;
        let exhausted = req.first() == Some(&0xFF);
        let pad = if exhausted { 1 + MAPHASH_LEN } else { 1 };
        let requested = req
            .get(pad + FULL_HASH_LEN..)
            .ok_or(SenderError::InvalidRequest)?;
        let scope_end = (self.receiver_min_height + COLLISION_GUARD).min(self.hashmap.len());
        let mut steps = Vec::new();
        for want in requested.chunks_exact(MAPHASH_LEN) {
            let Some(i) = (self.receiver_min_height..scope_end).find(|&i| self.hashmap[i] == want)
            else {
                continue;
            };
            if !self.sent[i] {
                self.sent[i] = true;
                self.sent_parts += 1;
            }
            steps.push(SenderStep::Part(i));
            self.last_activity = now;
            self.last_part_sent = now;
        }
        if exhausted {
            let last: [u8; MAPHASH_LEN] = req[1..1 + MAPHASH_LEN]
                .try_into()
                .map_err(|_| SenderError::InvalidRequest)?;
            let found = (self.receiver_min_height..scope_end)
                .find(|&i| self.hashmap[i] == last)
                .ok_or(SenderError::InvalidRequest)?;
            let part_index = found + 1;
            self.receiver_min_height = part_index.saturating_sub(1 + super::WINDOW_MAX_FAST);
            if part_index % HASHMAP_MAX_LEN != 0 {
                return Err(SenderError::InvalidRequest);
            }
            let segment = part_index / HASHMAP_MAX_LEN;
            let slice = self.hashmap_slice(segment);
            if slice.is_empty() {
                return Err(SenderError::InvalidRequest);
            }
            let mut hmu = self.adv.hash.to_vec();
            hmu.extend_from_slice(&crate::link::wire::encode_msgpack(&rmpv::Value::Array(
                vec![
                    rmpv::Value::from(segment as u64),
                    rmpv::Value::Binary(slice),
                ],
            )));
            steps.push(SenderStep::HashmapUpdate(hmu));
            self.last_activity = now;
        }
        if self.sent_parts == self.hashmap.len() {
            self.state = State::AwaitingProof;
            self.retries_left = 3;
        }
        Ok(steps)
    }

    /// Check a resource proof: `hash ‖ SHA256(data ‖ hash)`.
    pub fn handle_proof(&mut self, proof: &[u8]) -> bool {
        let ok = proof.len() == 2 * FULL_HASH_LEN
            && proof[..FULL_HASH_LEN] == self.adv.hash
            && proof[FULL_HASH_LEN..] == self.expected_proof;
        if ok {
            self.state = State::Done;
        }
        ok
    }

    /// The packet hash of the proof we expect (for cache requests).
    fn expected_proof_packet_hash(&self, link_id: &AddressHash) -> [u8; FULL_HASH_LEN] {
        let mut data = self.adv.hash.to_vec();
        data.extend_from_slice(&self.expected_proof);
        crate::packet::Packet {
            flags: crate::packet::Flags::new(
                crate::destination::DestinationType::Link,
                crate::packet::PacketType::Proof,
            ),
            hops: 0,
            transport_id: None,
            destination: *link_id,
            context: crate::packet::Context::RESOURCE_PRF,
            data,
        }
        .hash()
    }

    /// When the watchdog should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rtt = self.rtt.unwrap_or(self.link_rtt);
        match self.state {
            State::Done => None,
            State::Advertised => Some(self.adv_sent + rtt * 6 + Duration::from_secs(1)),
            State::Transferring => {
                let extra: f64 = (1..=MAX_RETRIES).map(|r| f64::from(r) * 0.5).sum();
                Some(
                    self.last_activity
                        + rtt * 6 * MAX_RETRIES
                        + Duration::from_secs_f64(10.0 + extra),
                )
            }
            State::AwaitingProof => Some(self.last_part_sent + rtt * 3 + Duration::from_secs(10)),
        }
    }

    /// Run the watchdog. `Err(())` means the transfer failed and was cancelled.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        link_id: &AddressHash,
    ) -> Result<Vec<SenderStep>, SenderError> {
        let Some(due) = self.poll_timeout() else {
            return Ok(Vec::new());
        };
        if now < due {
            return Ok(Vec::new());
        }
        match self.state {
            State::Done => Ok(Vec::new()),
            State::Advertised => {
                if self.retries_left == 0 {
                    return self.fail();
                }
                self.retries_left -= 1;
                Ok(vec![self.advertise(now)])
            }
            State::Transferring => self.fail(),
            State::AwaitingProof => {
                if self.retries_left == 0 {
                    return self.fail();
                }
                self.retries_left -= 1;
                self.last_part_sent = now;
                Ok(vec![SenderStep::CacheRequest(
                    self.expected_proof_packet_hash(link_id).to_vec(),
                )])
            }
        }
    }

    fn fail(&mut self) -> Result<Vec<SenderStep>, SenderError> {
        self.state = State::Done;
        Err(SenderError::TimedOut)
    }

    /// The cancel message (resource hash) to send when giving up.
    pub fn cancel_step(&self) -> SenderStep {
        SenderStep::Cancel(self.adv.hash.to_vec())
    }
}
