//! The per-interface announce bandwidth cap and its queue.
//!
//! After an announce of `L` bytes on an interface of bitrate `B`, the next rebroadcast is
//! allowed `(L·8/B)/cap` seconds later (cap defaults to 2 %). Announces arriving sooner are
//! queued (≤ 4096, one per destination, 3 h lifetime) and released lowest hops first,
//! then oldest first. An interface's own (hops = 0) announces are never capped.

use std::time::Duration;

use crate::hash::AddressHash;
use crate::time::Instant;

/// Most queued announces per interface.
pub(crate) const MAX_QUEUED: usize = 4096;
/// Lifetime of a queued announce.
pub(crate) const QUEUED_LIFETIME: Duration = Duration::from_secs(3 * 60 * 60);

#[derive(Debug, Clone)]
struct Queued {
    destination: AddressHash,
    queued_at: Instant,
    hops: u8,
    emitted: u64,
    raw: Vec<u8>,
}

/// What happened to an announce offered to the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CapDecision {
    /// Send it now.
    Send,
    /// It waits in the queue (or replaced an older queued announce).
    Queued,
    /// The queue is full.
    Dropped,
}

/// Announce cap state of one interface.
#[derive(Debug, Default)]
pub(crate) struct AnnounceCap {
    allowed_at: Instant,
    queue: Vec<Queued>,
}

fn wait_for(len: usize, bitrate: u64, cap: f64) -> Duration {
    if bitrate == 0 || cap <= 0.0 {
        return Duration::ZERO;
    }
    let tx = (len as f64 * 8.0) / bitrate as f64;
    Duration::from_secs_f64((tx / cap).min(86_400.0))
}

impl AnnounceCap {
    /// Offer a rebroadcast announce of `raw.len()` bytes.
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        (bitrate, cap): (u64, f64),
        destination: AddressHash,
        hops: u8,
        emitted: u64,
        raw: &[u8],
    ) -> CapDecision {
        if self.queue.is_empty() && now > self.allowed_at && bitrate > 0 {
            self.allowed_at = now + wait_for(raw.len(), bitrate, cap);
            return CapDecision::Send;
        }
        if let Some(e) = self.queue.iter_mut().find(|e| e.destination == destination) {
            if emitted > e.emitted {
                e.queued_at = now;
                e.hops = hops;
                e.emitted = emitted;
                e.raw = raw.to_vec();
            }
            return CapDecision::Queued;
        }
        if self.queue.len() >= MAX_QUEUED {
            return CapDecision::Dropped;
        }
        self.queue.push(Queued {
            destination,
            queued_at: now,
            hops,
            emitted,
            raw: raw.to_vec(),
        });
        CapDecision::Queued
    }

    /// When the next queued announce may go out, if any is queued.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        (!self.queue.is_empty()).then_some(self.allowed_at)
    }

    /// Release the next queued announce if the cap allows it now.
    pub(crate) fn release(&mut self, now: Instant, bitrate: u64, cap: f64) -> Option<Vec<u8>> {
        self.queue
            .retain(|e| now.saturating_since(e.queued_at) <= QUEUED_LIFETIME);
        if self.queue.is_empty() || now < self.allowed_at {
            return None;
        }
        let idx = self
            .queue
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| (e.hops, e.queued_at))
            .map(|(i, _)| i)?;
        let e = self.queue.swap_remove(idx);
        self.allowed_at = now + wait_for(e.raw.len(), bitrate, cap);
        Some(e.raw)
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_spaces_announces_and_queue_orders_by_hops() {
        let mut c = AnnounceCap::default();
        let t = Instant::from_secs(1000);
        // 1000 bit/s, 2 %: a 250-byte announce (2000 bits) blocks for 100 s.
        assert_eq!(
            c.offer(t, (1000, 0.02), AddressHash([1; 16]), 3, 1, &[0; 250]),
            CapDecision::Send
        );
        assert_eq!(
            c.offer(t, (1000, 0.02), AddressHash([2; 16]), 5, 1, &[2; 100]),
            CapDecision::Queued
        );
        assert_eq!(
            c.offer(t, (1000, 0.02), AddressHash([3; 16]), 2, 1, &[3; 100]),
            CapDecision::Queued
        );
        // Newer emission replaces the queued one for the same destination.
        assert_eq!(
            c.offer(t, (1000, 0.02), AddressHash([2; 16]), 1, 2, &[4; 100]),
            CapDecision::Queued
        );
        assert_eq!(c.queued(), 2);
        assert!(c.release(t + Duration::from_secs(50), 1000, 0.02).is_none());
        assert_eq!(c.next_release(), Some(t + Duration::from_secs(100)));
        let first = c.release(t + Duration::from_secs(101), 1000, 0.02).unwrap();
        assert_eq!(first, vec![4; 100]); // hops 1 beats hops 2
                                         // 100 bytes → 800 bits → 40 s of cap.
        assert!(c
            .release(t + Duration::from_secs(120), 1000, 0.02)
            .is_none());
        assert_eq!(
            c.release(t + Duration::from_secs(142), 1000, 0.02).unwrap(),
            vec![3; 100]
        );
    }

    #[test]
    fn queue_is_bounded_and_entries_expire() {
        let mut c = AnnounceCap::default();
        let t = Instant::from_secs(1000);
        c.offer(t, (1, 0.02), AddressHash([0; 16]), 1, 1, &[0; 10]);
        for i in 0..MAX_QUEUED as u32 + 10 {
            let mut d = [0u8; 16];
            d[..4].copy_from_slice(&(i + 1).to_be_bytes());
            c.offer(t, (1, 0.02), AddressHash(d), 1, 1, &[0; 10]);
        }
        assert_eq!(c.queued(), MAX_QUEUED);
        assert!(c
            .release(t + QUEUED_LIFETIME + Duration::from_secs(1), 1, 0.02)
            .is_none());
        assert_eq!(c.queued(), 0);
    }
}
