//! Admission of incoming link requests: a per-interface rate limit on the requests a node
//! answers, and a bound on half-open links.
//!
//! Answering a link request costs an X25519 exchange and an Ed25519 signature, and the
//! resulting responder link waits in the `Handshake` state for the initiator's RTT packet
//! for up to 6 s per hop + 360 s (as in RNS). A peer that sends requests and never
//! completes them could therefore burn CPU and fill the link table. So:
//! - each interface answers at most [`LinkRequestRate::per_second`] requests per second
//!   (bursts up to [`LinkRequestRate::burst`]); the rest are dropped silently, as RNS drops
//!   on its ingress limits;
//! - half-open links are counted apart from established ones, node-wide and per interface,
//!   and when a cap is reached the oldest half-open link (on that interface, else anywhere)
//!   is given up. A flood thus only recycles its own slots and never displaces an
//!   established link. Python RNS initiators send the RTT packet as soon as the proof
//!   arrives, so an honest handshake completes within one round trip and is not the
//!   oldest for long.

use std::collections::VecDeque;

use super::{HashMap, InterfaceId};
use crate::link::{Link, LinkId, LinkState};
use crate::time::Instant;

/// Default node-wide bound on half-open links.
pub const DEFAULT_MAX_HALF_OPEN_LINKS: usize = 256;
/// Default per-interface bound on half-open links.
pub const DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE: usize = 64;

/// How many link requests one interface may have answered: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRequestRate {
    /// Requests answered per second, sustained.
    pub per_second: u32,
    /// Requests answered in a burst (the bucket's size).
    pub burst: u32,
}

impl LinkRequestRate {
    /// 50 requests a second, bursts of 100.
    pub const DEFAULT: LinkRequestRate = LinkRequestRate {
        per_second: 50,
        burst: 100,
    };
}

/// Micro-tokens per token: the bucket counts in millionths so refills stay exact integers.
const MICRO: u64 = 1_000_000;

/// A token bucket, full when first used.
#[derive(Debug, Default)]
pub(crate) struct TokenBucket {
    micro_tokens: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// Take one token at `now` if there is one.
    pub(crate) fn take(&mut self, now: Instant, rate: LinkRequestRate) -> bool {
        let cap = u64::from(rate.burst).saturating_mul(MICRO);
        self.micro_tokens = match self.last {
            None => cap,
            Some(last) => {
                let elapsed = now.saturating_since(last).as_micros();
                let refill = u64::try_from(elapsed)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(u64::from(rate.per_second));
                self.micro_tokens.saturating_add(refill).min(cap)
            }
        };
        // A clock that steps back refills nothing and keeps the later mark.
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

/// Whether a link is a half-open responder link.
pub(crate) fn is_half_open(link: &Link) -> bool {
    !link.is_initiator() && link.state() == LinkState::Handshake
}

/// Half-open links in the order they were accepted (oldest first).
#[derive(Debug, Default)]
pub(crate) struct HalfOpen {
    queue: VecDeque<(LinkId, InterfaceId)>,
}

impl HalfOpen {
    /// Forget links that completed their handshake, closed or are gone.
    pub(crate) fn prune(&mut self, links: &HashMap<LinkId, Link>) {
        self.queue
            .retain(|(id, _)| links.get(id).is_some_and(is_half_open));
    }

    /// Half-open links tracked (exact right after [`HalfOpen::prune`]).
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Take out, and return, the oldest half-open links that must go so one more from
    /// `iface` fits: at most `per_interface` on one interface and `node_wide` in all
    /// (each at least 1). Call [`HalfOpen::prune`] first.
    pub(crate) fn make_room(
        &mut self,
        iface: InterfaceId,
        node_wide: usize,
        per_interface: usize,
    ) -> Vec<LinkId> {
        let (node_wide, per_interface) = (node_wide.max(1), per_interface.max(1));
        let mut evicted = Vec::new();
        let mut on_iface = self.queue.iter().filter(|(_, i)| *i == iface).count();
        while on_iface >= per_interface {
            let Some(pos) = self.queue.iter().position(|(_, i)| *i == iface) else {
                break;
            };
            if let Some((id, _)) = self.queue.remove(pos) {
                evicted.push(id);
            }
            on_iface -= 1;
        }
        while self.queue.len() >= node_wide {
            let Some((id, _)) = self.queue.pop_front() else {
                break;
            };
            evicted.push(id);
        }
        evicted
    }

    /// Track a newly accepted half-open link.
    pub(crate) fn push(&mut self, id: LinkId, iface: InterfaceId) {
        self.queue.push_back((id, iface));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::AddressHash;

    fn id(n: u8) -> LinkId {
        AddressHash([n; 16])
    }

    #[test]
    fn bucket_allows_a_burst_then_the_sustained_rate() {
        let rate = LinkRequestRate {
            per_second: 10,
            burst: 20,
        };
        let mut b = TokenBucket::default();
        let t0 = Instant::from_secs(1000);
        let burst = (0..100).filter(|_| b.take(t0, rate)).count();
        assert_eq!(burst, 20);
        // Half a second refills five tokens.
        let t1 = t0 + std::time::Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.take(t1, rate)).count(), 5);
        // A long pause refills only up to the burst.
        let t2 = t1 + std::time::Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.take(t2, rate)).count(), 20);
        // Time going backwards refills nothing.
        assert!(!b.take(t0, rate));
    }

    #[test]
    fn zero_rate_answers_nothing_after_the_burst() {
        let rate = LinkRequestRate {
            per_second: 0,
            burst: 1,
        };
        let mut b = TokenBucket::default();
        let t0 = Instant::from_secs(1);
        assert!(b.take(t0, rate));
        assert!(!b.take(t0 + std::time::Duration::from_secs(60), rate));
    }

    #[test]
    fn make_room_evicts_oldest_on_the_same_interface_first() {
        let (a, b) = (InterfaceId(1), InterfaceId(2));
        let mut h = HalfOpen::default();
        h.push(id(1), b);
        h.push(id(2), a);
        h.push(id(3), a);
        h.push(id(4), b);
        // Interface a is at its cap of 2: its oldest goes, b's older one stays.
        assert_eq!(h.make_room(a, 10, 2), vec![id(2)]);
        assert_eq!(h.len(), 3);
        h.push(id(5), a);
        // Node-wide cap of 4 with 4 held: the oldest anywhere goes.
        assert_eq!(h.make_room(b, 4, 10), vec![id(1)]);
        // Caps of zero still admit one.
        assert_eq!(h.make_room(a, 0, 0).len(), 3);
        assert_eq!(h.len(), 0);
    }
}
