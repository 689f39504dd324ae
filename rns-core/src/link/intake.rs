//! What a link takes in through resources: the budget on bytes held by incoming transfers,
//! and the joining of requests and responses that span several segments.
//!
//! A bz2 segment of a few hundred bytes can decompress to a megabyte, so what an incoming
//! resource costs is judged by what its advertisement says it decompresses to, not by
//! what travels. Each accepted transfer reserves its transfer size plus its data limit
//! (at most its advertised data size, at most one segment's worth). A split request or
//! response reserves, at its first segment, its whole advertised size plus room for one
//! segment in flight, and its later segments are charged nothing more: Python RNS does
//! not fail a request whose later segment is rejected, so a split once admitted must be
//! able to finish. An advertisement whose reservation does not fit the link's budget, or
//! the node's, is rejected (RESOURCE_RCL, as RNS rejects), and no segment may assemble to
//! more than it reserved. (A segment's decompressed copy, at most one segment's worth,
//! exists only while it is joined and is not counted.)

use std::time::Duration;

use super::{Link, MAX_REQUEST_SEGMENTS};
use crate::hash::FULL_HASH_LEN;
use crate::resource::{Advertisement, IncomingResource, MAX_EFFICIENT_SIZE};
use crate::time::Instant;

/// Default node-wide budget on bytes held by incoming resources (64 MiB).
pub const DEFAULT_INCOMING_RESOURCE_BYTES: u64 = 64 * 1024 * 1024;
/// Default per-link budget on bytes held by incoming resources (32 MiB).
pub const DEFAULT_INCOMING_RESOURCE_BYTES_PER_LINK: u64 = 32 * 1024 * 1024;
/// Largest request or response body joined from segments.
pub const MAX_REQUEST_BYTES: u64 = MAX_REQUEST_SEGMENTS * MAX_EFFICIENT_SIZE as u64;
/// Split requests and responses being assembled at once, per link.
const MAX_SPLIT_ASSEMBLIES: usize = 2;
/// A split assembly with no segment in flight for this long is dropped (its sender
/// advertises the next segment as soon as the previous one is proven).
const SPLIT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Transfer bytes a split reserves for its segment in flight: one full segment
/// uncompressed, with the random prefix, padding, IV and HMAC.
const SEGMENT_TRANSFER_ALLOWANCE: u64 = MAX_EFFICIENT_SIZE as u64 + 1024;

/// How many bytes incoming resources on a link may reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourceBudget {
    /// This link's budget.
    pub(crate) per_link: u64,
    /// What the node has left, this link's reservations included in its use.
    pub(crate) node_free: u64,
}

impl Default for ResourceBudget {
    fn default() -> Self {
        ResourceBudget {
            per_link: DEFAULT_INCOMING_RESOURCE_BYTES_PER_LINK,
            node_free: u64::MAX,
        }
    }
}

/// A request or response that spans several resource segments, joined as they arrive.
#[derive(Debug)]
pub(super) struct SplitAssembly {
    /// The first segment's hash (later segments carry it as their original hash).
    key: [u8; FULL_HASH_LEN],
    /// The segment expected next (in flight, or to be advertised).
    next_segment: u64,
    total_segments: u64,
    /// The advertised size of the whole body: reserved, and the most joined.
    size: u64,
    /// The most a segment of it may transfer (reserved too).
    transfer_allowance: u64,
    data: Vec<u8>,
    last_activity: Instant,
}

/// Which split assembly a segment belongs to.
pub(super) fn split_key(adv: &Advertisement) -> [u8; FULL_HASH_LEN] {
    if adv.segment_index == 1 {
        adv.hash
    } else {
        adv.original_hash
    }
}

fn is_split(adv: &Advertisement) -> bool {
    (adv.is_request() || adv.is_response()) && adv.total_segments > 1
}

impl Link {
    /// Set what incoming resources on this link may reserve (the transport does this
    /// before each advertisement, from its node-wide and per-link budgets).
    pub(crate) fn set_resource_budget(&mut self, per_link: u64, node_free: u64) {
        self.resources.budget = ResourceBudget {
            per_link,
            node_free,
        };
    }

    /// Bytes reserved by this link's incoming transfers and split assemblies.
    pub fn incoming_resource_bytes(&self) -> u64 {
        let transfers: u64 = self
            .resources
            .incoming
            .iter()
            .filter(|r| !is_split(r.advertisement()))
            .map(IncomingResource::reserved_bytes)
            .sum();
        let splits: u64 = self
            .resources
            .split
            .iter()
            .map(|s| s.size.saturating_add(s.transfer_allowance))
            .sum();
        transfers.saturating_add(splits)
    }

    /// Fit a newly advertised transfer into the budget: bound what it may assemble to
    /// (for a later segment of a split body, what remains of it) and check the bytes it
    /// reserves fit the link's and the node's budgets. A first split segment reserves
    /// for the whole body and opens its assembly; later ones only need to stay within it.
    pub(super) fn reserve_incoming(&mut self, r: &mut IncomingResource, now: Instant) -> bool {
        let adv = r.advertisement();
        let key = split_key(adv);
        if is_split(adv) && adv.segment_index > 1 {
            let Some(s) = self.resources.split.iter().find(|s| s.key == key) else {
                return false;
            };
            if adv.transfer_size > s.transfer_allowance {
                return false;
            }
            let left = s.size.saturating_sub(s.data.len() as u64);
            r.restrict_data(usize::try_from(left).unwrap_or(usize::MAX));
            return true;
        }
        let opens_split = is_split(adv);
        let transfer_allowance = adv.transfer_size.max(SEGMENT_TRANSFER_ALLOWANCE);
        let need = if opens_split {
            adv.data_size.saturating_add(transfer_allowance)
        } else {
            r.reserved_bytes()
        };
        let budget = self.resources.budget;
        let used = self.incoming_resource_bytes();
        if used.saturating_add(need) > budget.per_link || need > budget.node_free {
            return false;
        }
        if opens_split {
            self.resources.split.push(SplitAssembly {
                key,
                next_segment: 1,
                total_segments: adv.total_segments,
                size: adv.data_size,
                transfer_allowance,
                data: Vec::new(),
                last_activity: now,
            });
        }
        true
    }

    /// Whether a request or response segment fits what this link is assembling: a first
    /// segment when there is room, or the next segment of one under way.
    pub(super) fn split_acceptable(&self, adv: &Advertisement) -> bool {
        if adv.total_segments <= 1 {
            return true;
        }
        if adv.total_segments > MAX_REQUEST_SEGMENTS || adv.data_size > MAX_REQUEST_BYTES {
            return false;
        }
        let split = &self.resources.split;
        if adv.segment_index == 1 {
            return split.len() < MAX_SPLIT_ASSEMBLIES && split.iter().all(|s| s.key != adv.hash);
        }
        split.iter().any(|s| {
            s.key == adv.original_hash
                && s.next_segment == adv.segment_index
                && s.total_segments == adv.total_segments
                && s.size == adv.data_size
        })
    }

    /// Add a completed segment of a split request or response; the whole body once the
    /// last segment is in. A body growing past its advertised size is dropped.
    pub(super) fn join_split(
        &mut self,
        adv: &Advertisement,
        data: Vec<u8>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let key = split_key(adv);
        let split = &mut self.resources.split;
        let Some(i) = split
            .iter()
            .position(|s| s.key == key && s.next_segment == adv.segment_index)
        else {
            self.stats.dropped += 1;
            return None;
        };
        let s = &mut split[i];
        if (s.data.len() + data.len()) as u64 > s.size {
            split.swap_remove(i);
            self.stats.dropped += 1;
            return None;
        }
        if s.data.is_empty() {
            s.data = data;
        } else {
            s.data.extend_from_slice(&data);
        }
        s.next_segment += 1;
        s.last_activity = now;
        if adv.segment_index < s.total_segments {
            return None;
        }
        Some(split.swap_remove(i).data)
    }

    /// Forget the split assembly a failed segment belonged to.
    pub(super) fn drop_split(&mut self, adv: &Advertisement) {
        let key = split_key(adv);
        self.resources.split.retain(|s| s.key != key);
    }

    /// Drop split assemblies whose next segment has not come for a long time.
    pub(super) fn expire_splits(&mut self, now: Instant) {
        let incoming = &self.resources.incoming;
        self.resources.split.retain(|s| {
            incoming
                .iter()
                .any(|r| split_key(r.advertisement()) == s.key)
                || now.saturating_since(s.last_activity) < SPLIT_IDLE_TIMEOUT
        });
    }
}
