//! The receiving side of one resource segment.

use std::time::Duration;

use super::{
    decompress, map_hash, Advertisement, FAST_RATE_THRESHOLD, HASHMAP_MAX_LEN, MAPHASH_LEN,
    MAX_EFFICIENT_SIZE, MAX_RETRIES, METADATA_MAX_SIZE, RANDOM_HASH_LEN, RATE_FAST, RATE_VERY_SLOW,
    VERY_SLOW_RATE_THRESHOLD, WINDOW, WINDOW_FLEXIBILITY, WINDOW_MAX_FAST, WINDOW_MAX_SLOW,
    WINDOW_MAX_VERY_SLOW, WINDOW_MIN,
};
use crate::crypto::Token;
use crate::hash::FULL_HASH_LEN;
use crate::time::Instant;

/// Largest segment we assemble after decompression: a first segment that carries metadata
/// (RNS segments are ≤ 1 MiB, metadata up to 16 MiB). Other segments are bounded by
/// [`MAX_EFFICIENT_SIZE`].
const MAX_ASSEMBLED: usize = MAX_EFFICIENT_SIZE + METADATA_MAX_SIZE;
/// Per-packet overhead counted into request costs (header + token).
const PACKET_OVERHEAD: usize = 19 + 48;
/// A first request that brought no part within this many link round trips is sent again
/// (see [`IncomingResource::poll_timeout`]), waiting twice as long each time.
const FIRST_REQUEST_RTTS: u32 = 4;
/// The shortest wait before the first request is sent again.
const FIRST_REQUEST_MIN_WAIT: Duration = Duration::from_millis(5);
/// How often the first request is sent again before only the watchdog asks.
const FIRST_REQUEST_REPEATS: u32 = 4;

/// What the receiver wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverStep {
    /// Nothing to do.
    Wait,
    /// Send this part request (plaintext of a RESOURCE_REQ packet).
    Request(Vec<u8>),
    /// Every part is here: call [`IncomingResource::assemble`].
    Complete,
    /// The transfer failed; send a reject (RESOURCE_RCL with the hash).
    Failed,
}

/// An assembled, verified segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The segment's data (with the metadata prefix, if it has one).
    pub data: Vec<u8>,
    /// The proof to send (PROOF, context RESOURCE_PRF): `hash ‖ SHA256(data ‖ hash)`.
    pub proof: Vec<u8>,
}

/// One incoming resource segment.
#[derive(Debug)]
pub struct IncomingResource {
    adv: Advertisement,
    sdu: usize,
    /// Parts in all.
    total: usize,
    /// The encrypted stream as it arrives: part `i` is copied to `i × sdu` (allocated with
    /// the first part, decrypted in place once complete).
    stream: Vec<u8>,
    /// Which parts are here.
    have: Vec<bool>,
    hashmap: Vec<Option<[u8; MAPHASH_LEN]>>,
    hashmap_height: usize,
    received: usize,
    received_bytes: usize,
    outstanding: usize,
    consecutive: usize,
    window: usize,
    window_max: usize,
    window_min: usize,
    waiting_for_hmu: bool,
    req_sent: Instant,
    req_sent_bytes: usize,
    req_resp: Option<Instant>,
    rtt: Duration,
    part_timeout_factor: u32,
    req_resp_rate: f64,
    req_data_rate: f64,
    rxd_at_request: usize,
    fast_rounds: u32,
    very_slow_rounds: u32,
    retries_left: u32,
    last_activity: Instant,
    /// Times the first request was sent again.
    first_request_repeats: u32,
    failed: bool,
    /// Most bytes the segment may hold once decrypted and decompressed.
    data_limit: usize,
}

/// The most bytes one segment may assemble to, by its advertisement: its data size (for a
/// multi-segment resource, the whole resource's), and at most one segment's worth
/// ([`MAX_EFFICIENT_SIZE`], or more for a first segment carrying metadata).
pub fn segment_data_limit(adv: &Advertisement) -> usize {
    let cap = if adv.segment_index == 1 && adv.has_metadata() {
        MAX_ASSEMBLED
    } else {
        MAX_EFFICIENT_SIZE
    };
    usize::try_from(adv.data_size).map_or(cap, |d| d.min(cap))
}

impl IncomingResource {
    /// Accept an advertisement. Returns the receiver and its first part request.
    ///
    /// `window` is the last resource window on this link, if any. Memory allocated here is
    /// bounded by the advertisement checks (at most ~3 MiB of transfer, ~7000 parts).
    pub fn accept(
        adv: Advertisement,
        mtu: usize,
        link_rtt: Duration,
        window: Option<usize>,
        now: Instant,
    ) -> (IncomingResource, ReceiverStep) {
        let sdu = super::sdu(mtu);
        let total = (adv.transfer_size as usize).div_ceil(sdu);
        let first = adv.hashmap.clone();
        let mut r = IncomingResource {
            adv,
            sdu,
            total,
            stream: Vec::new(),
            have: vec![false; total],
            hashmap: vec![None; total],
            hashmap_height: 0,
            received: 0,
            received_bytes: 0,
            outstanding: 0,
            consecutive: 0,
            window: window.unwrap_or(WINDOW).clamp(WINDOW_MIN, WINDOW_MAX_FAST),
            window_max: WINDOW_MAX_SLOW,
            window_min: WINDOW_MIN,
            waiting_for_hmu: false,
            req_sent: now,
            req_sent_bytes: 0,
            req_resp: None,
            rtt: link_rtt.max(Duration::from_millis(1)),
            part_timeout_factor: 4,
            req_resp_rate: 0.0,
            req_data_rate: 0.0,
            rxd_at_request: 0,
            fast_rounds: 0,
            very_slow_rounds: 0,
            retries_left: MAX_RETRIES,
            last_activity: now,
            first_request_repeats: 0,
            failed: false,
            data_limit: 0,
        };
        r.data_limit = segment_data_limit(&r.adv);
        let step = r.update_hashmap(0, &first, now);
        (r, step)
    }

    /// The resource hash.
    pub fn hash(&self) -> [u8; FULL_HASH_LEN] {
        self.adv.hash
    }

    /// The advertisement.
    pub fn advertisement(&self) -> &Advertisement {
        &self.adv
    }

    /// (parts received, parts in all).
    pub fn progress(&self) -> (usize, usize) {
        (self.received, self.total)
    }

    /// Where part `i` goes in the stream.
    fn part_range(&self, i: usize) -> std::ops::Range<usize> {
        let size = usize::try_from(self.adv.transfer_size).unwrap_or(usize::MAX);
        let start = i.saturating_mul(self.sdu).min(size);
        start..start.saturating_add(self.sdu).min(size)
    }

    /// Most bytes the segment may assemble to: what its advertisement allows (its data
    /// size, at most one segment's worth), unless lowered by [`IncomingResource::restrict_data`].
    pub fn data_limit(&self) -> usize {
        self.data_limit
    }

    /// Lower the most bytes the segment may assemble to (say, what remains of a split
    /// request); a segment that decompresses to more fails.
    pub fn restrict_data(&mut self, max: usize) {
        self.data_limit = self.data_limit.min(max);
    }

    /// Bytes this transfer may occupy at its peak: the parts as received plus the data
    /// they assemble to.
    pub fn reserved_bytes(&self) -> u64 {
        self.adv
            .transfer_size
            .saturating_add(self.data_limit as u64)
    }

    /// The current window (carried to the next resource on the link).
    pub fn window(&self) -> usize {
        self.window
    }

    fn update_hashmap(&mut self, segment: usize, bytes: &[u8], now: Instant) -> ReceiverStep {
        let hashes: Vec<[u8; MAPHASH_LEN]> = bytes
            .chunks_exact(MAPHASH_LEN)
            .map(|c| c.try_into().expect("4 bytes"))
            .collect();
        if hashes.is_empty() {
            self.failed = true;
            return ReceiverStep::Failed;
        }
        for (i, h) in hashes.into_iter().enumerate() {
            let idx = segment * HASHMAP_MAX_LEN + i;
            if let Some(slot) = self.hashmap.get_mut(idx) {
                if slot.is_none() {
                    self.hashmap_height += 1;
                }
                *slot = Some(h);
            }
        }
        self.waiting_for_hmu = false;
        self.request_next(now)
    }

    /// Handle a hashmap update (plaintext of a RESOURCE_HMU packet).
    pub fn handle_hashmap_update(&mut self, plaintext: &[u8], now: Instant) -> ReceiverStep {
        if self.failed || !self.waiting_for_hmu || plaintext.len() <= FULL_HASH_LEN {
            return ReceiverStep::Wait;
        }
        let Ok(rmpv::Value::Array(a)) =
            crate::link::wire::decode_msgpack(&plaintext[FULL_HASH_LEN..])
        else {
            return ReceiverStep::Wait;
        };
        let (Some(seg), Some(rmpv::Value::Binary(map))) =
            (a.first().and_then(rmpv::Value::as_u64), a.get(1))
        else {
            return ReceiverStep::Wait;
        };
        if map.len() > HASHMAP_MAX_LEN * MAPHASH_LEN {
            return ReceiverStep::Wait;
        }
        self.last_activity = now;
        self.retries_left = MAX_RETRIES;
        let map = map.clone();
        self.update_hashmap(seg as usize, &map, now)
    }

    fn request_next(&mut self, now: Instant) -> ReceiverStep {
        if self.failed || self.waiting_for_hmu {
            return ReceiverStep::Wait;
        }
        self.outstanding = 0;
        let mut exhausted = false;
        let mut requested = Vec::new();
        for pn in self.consecutive..(self.consecutive + self.window).min(self.total) {
            if self.have[pn] {
                continue;
            }
            match self.hashmap[pn] {
                Some(h) => {
                    requested.extend_from_slice(&h);
                    self.outstanding += 1;
                }
                None => {
                    exhausted = true;
                    break;
                }
            }
        }
        let mut req = Vec::with_capacity(1 + MAPHASH_LEN + FULL_HASH_LEN + requested.len());
        if exhausted {
            req.push(0xFF);
            let last = self
                .hashmap_height
                .checked_sub(1)
                .and_then(|i| self.hashmap[i])
                .unwrap_or([0; 4]);
            req.extend_from_slice(&last);
            self.waiting_for_hmu = true;
        } else {
            req.push(0x00);
        }
        req.extend_from_slice(&self.adv.hash);
        req.extend_from_slice(&requested);
        self.last_activity = now;
        self.req_sent = now;
        self.req_sent_bytes = req.len() + PACKET_OVERHEAD;
        self.rxd_at_request = self.received_bytes;
        self.req_resp = None;
        ReceiverStep::Request(req)
    }

    /// Handle a part (data of a RESOURCE packet).
    pub fn handle_part(&mut self, part: &[u8], now: Instant) -> ReceiverStep {
        if self.failed {
            return ReceiverStep::Wait;
        }
        self.last_activity = now;
        self.retries_left = MAX_RETRIES;
        if self.req_resp.is_none() {
            self.req_resp = Some(now);
            let rtt = now.saturating_since(self.req_sent);
            self.part_timeout_factor = 2;
            if rtt < self.rtt {
                self.rtt = (self.rtt.mul_f64(0.95)).max(rtt);
            } else if rtt > self.rtt {
                self.rtt = (self.rtt.mul_f64(1.05)).min(rtt);
            }
            if !rtt.is_zero() {
                self.req_resp_rate = (part.len() + self.req_sent_bytes) as f64 / rtt.as_secs_f64();
                if self.req_resp_rate > RATE_FAST && self.fast_rounds < FAST_RATE_THRESHOLD {
                    self.fast_rounds += 1;
                    if self.fast_rounds == FAST_RATE_THRESHOLD {
                        self.window_max = WINDOW_MAX_FAST;
                    }
                }
            }
        }
        let h = map_hash(part, &self.adv.random_hash);
        let end = (self.consecutive + self.window).min(self.total);
        let mut stored = false;
        for i in self.consecutive..end {
            if self.hashmap[i] != Some(h) || self.have[i] {
                continue;
            }
            // Every part but the last is one SDU long (RNS cuts them so, and counts parts
            // by it); one of another length cannot belong here.
            let range = self.part_range(i);
            if part.len() != range.len() {
                continue;
            }
            if self.stream.is_empty() {
                self.stream = vec![0; self.part_range(self.total.saturating_sub(1)).end];
            }
            self.stream[range].copy_from_slice(part);
            self.have[i] = true;
            self.received += 1;
            self.received_bytes += part.len();
            self.outstanding = self.outstanding.saturating_sub(1);
            while self.consecutive < self.total && self.have[self.consecutive] {
                self.consecutive += 1;
            }
            stored = true;
            break;
        }
        if self.received == self.total {
            return ReceiverStep::Complete;
        }
        // A duplicate (say, of a window that was asked for twice) completes no round.
        if !stored || self.outstanding > 0 {
            return ReceiverStep::Wait;
        }
        // A full round arrived: grow the window, measure the rate, ask for more.
        if self.window < self.window_max {
            self.window += 1;
            if self.window.saturating_sub(self.window_min) > WINDOW_FLEXIBILITY - 1 {
                self.window_min += 1;
            }
        }
        let rtt = now.saturating_since(self.req_sent);
        if !rtt.is_zero() {
            self.req_data_rate =
                (self.received_bytes - self.rxd_at_request) as f64 / rtt.as_secs_f64();
            if self.req_data_rate > RATE_FAST && self.fast_rounds < FAST_RATE_THRESHOLD {
                self.fast_rounds += 1;
                if self.fast_rounds == FAST_RATE_THRESHOLD {
                    self.window_max = WINDOW_MAX_FAST;
                }
            }
            if self.fast_rounds == 0
                && self.req_data_rate < RATE_VERY_SLOW
                && self.very_slow_rounds < VERY_SLOW_RATE_THRESHOLD
            {
                self.very_slow_rounds += 1;
                if self.very_slow_rounds == VERY_SLOW_RATE_THRESHOLD {
                    self.window_max = WINDOW_MAX_VERY_SLOW;
                }
            }
        }
        self.request_next(now)
    }

    /// Decrypt (in place), decompress and verify the segment.
    pub fn assemble(&mut self, token: &Token) -> Option<Assembled> {
        if self.received != self.total || self.total == 0 {
            return None;
        }
        let mut stream = std::mem::take(&mut self.stream);
        let plain = if self.adv.encrypted() {
            token.decrypt_in_place(&mut stream).ok()?
        } else {
            0..stream.len()
        };
        if plain.len() < RANDOM_HASH_LEN {
            return None;
        }
        let body = plain.start + RANDOM_HASH_LEN..plain.end;
        // Never more than advertised: a bz2 bomb stops at the limit.
        let data = if self.adv.compressed() {
            decompress(&stream[body], self.data_limit)
        } else if body.len() <= self.data_limit {
            // Move the data to the front of the buffer it arrived in (no new allocation).
            stream.truncate(body.end);
            stream.drain(..body.start);
            Some(stream)
        } else {
            None
        };
        let Some(data) = data else {
            self.failed = true;
            return None;
        };
        let (hash, proof_hash) = super::hash_and_proof(&data, &self.adv.random_hash);
        if hash != self.adv.hash {
            self.failed = true;
            return None;
        }
        let mut proof = self.adv.hash.to_vec();
        proof.extend_from_slice(&proof_hash);
        Some(Assembled { data, proof })
    }

    fn eifr_bits(&self) -> f64 {
        if self.req_data_rate > 0.0 {
            self.req_data_rate * 8.0
        } else {
            // Assume one part per round trip until a rate has been measured.
            (self.sdu * 8) as f64 / self.rtt.as_secs_f64().max(0.001)
        }
    }

    /// When the watchdog should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let eifr = self.eifr_bits();
        let retries_used = MAX_RETRIES.saturating_sub(self.retries_left);
        let extra = f64::from(retries_used) * 0.5;
        let sdu_bits = (self.sdu * 8) as f64;
        let wait = if self.req_resp_rate > 0.0 {
            let hmu = if self.waiting_for_hmu || self.outstanding == 0 {
                sdu_bits * 3.5 / eifr
            } else {
                0.0
            };
            f64::from(self.part_timeout_factor) * (self.outstanding as f64 * sdu_bits / eifr) + hmu
        } else {
            f64::from(self.part_timeout_factor) * (3.0 * sdu_bits / eifr)
        };
        let floor = self.rtt.as_secs_f64() * 2.5;
        let watchdog = self.last_activity + Duration::from_secs_f64(wait.max(floor) + 0.25 + extra);
        Some(match self.first_request_deadline() {
            Some(t) => t.min(watchdog),
            None => watchdog,
        })
    }

    /// When to send the first request again if no part has answered it.
    ///
    /// RNS 1.5.7 sends an advertisement before it registers the resource as outgoing on
    /// its link (on another thread), and drops part requests for resources it does not
    /// know. A receiver that answers an advertisement within a fraction of a millisecond
    /// can lose that race (the sender's threads contend for Python's lock, so registering
    /// can take several milliseconds), and the transfer would then sit until the watchdog
    /// (a quarter of a second or more) asks again. The first request is therefore repeated
    /// after a few round trips without a part, a few times, waiting twice as long each
    /// time. A sender that did take it answers with parts, which ends the repeats; one
    /// that was merely slow costs a duplicated window.
    fn first_request_deadline(&self) -> Option<Instant> {
        (self.received == 0
            && self.req_resp.is_none()
            && self.first_request_repeats < FIRST_REQUEST_REPEATS)
            .then(|| {
                let wait = (self.rtt * FIRST_REQUEST_RTTS).max(FIRST_REQUEST_MIN_WAIT);
                self.req_sent + wait * (1 << self.first_request_repeats)
            })
    }

    /// Run the watchdog: re-request with a smaller window, or give up.
    pub fn handle_timeout(&mut self, now: Instant) -> ReceiverStep {
        match self.poll_timeout() {
            Some(t) if now >= t => {}
            _ => return ReceiverStep::Wait,
        }
        if self.first_request_deadline().is_some_and(|t| now >= t) {
            // Not a loss: the sender may not have known the resource yet. Ask again as
            // before, without shrinking the window.
            self.first_request_repeats += 1;
            self.waiting_for_hmu = false;
            return self.request_next(now);
        }
        if self.retries_left == 0 {
            self.failed = true;
            return ReceiverStep::Failed;
        }
        if self.window > self.window_min {
            self.window -= 1;
            if self.window_max > self.window_min {
                self.window_max -= 1;
                if self.window_max.saturating_sub(self.window) > WINDOW_FLEXIBILITY - 1 {
                    self.window_max -= 1;
                }
            }
        }
        self.retries_left -= 1;
        self.waiting_for_hmu = false;
        self.request_next(now)
    }

    /// Whether the transfer failed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Mark failed (the sender cancelled, or the link closed).
    pub fn fail(&mut self) {
        self.failed = true;
    }
}
