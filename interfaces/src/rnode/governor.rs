//! The duty-cycle governor: frames for a radio go out only while the airtime they use
//! over any one-hour window stays within the configured limit (`airtime_limit`).
//!
//! Frames that would exceed it wait (deferred, in order). A newer announce for a
//! destination replaces the one still waiting, so a busy node's announces are delayed,
//! never piled up or dropped; other frames wait in a bounded queue and the oldest are
//! dropped only when it is full. Sans-IO: times are milliseconds passed in.

use std::collections::VecDeque;

use rns_core::packet::{PacketType, PacketView};
use rns_core::AddressHash;

/// The window duty-cycle rules are measured over.
pub const WINDOW_MS: u64 = 3_600_000;
/// A frame booked now may leave the radio later (its queue, listen-before-talk, the
/// radio's own lock rolling over): bookings are kept this much longer than the window, so
/// the hour measured at the antenna stays within the limit too.
pub const GRACE_MS: u64 = 60_000;
/// Frames held back at most (announces are replaced, not added, per destination).
pub const MAX_HELD: usize = 256;

/// A frame waiting for airtime.
#[derive(Debug, Clone)]
struct Held {
    frame: Vec<u8>,
    airtime_us: u64,
    announce_of: Option<AddressHash>,
    /// Already counted as deferred.
    counted: bool,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GovernorStats {
    /// Frames let through.
    pub sent: u64,
    /// Frames that had to wait for airtime.
    pub deferred: u64,
    /// Waiting announces replaced by a newer announce of the same destination.
    pub replaced: u64,
    /// Frames dropped because the queue was full (never announces while others wait).
    pub dropped: u64,
}

/// Duty-cycle accounting and the queue of frames waiting for airtime.
pub struct AirtimeGovernor {
    /// Airtime allowed per window, µs.
    budget_us: u64,
    /// (start ms, airtime µs) of frames sent within the window.
    sent: VecDeque<(u64, u64)>,
    used_us: u64,
    held: VecDeque<Held>,
    /// Held frames not yet counted as deferred.
    uncounted: usize,
    airtime: Box<dyn Fn(usize) -> u64 + Send>,
    /// Counters.
    pub stats: GovernorStats,
}

impl std::fmt::Debug for AirtimeGovernor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AirtimeGovernor")
            .field("budget_us", &self.budget_us)
            .field("used_us", &self.used_us)
            .field("held", &self.held.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl AirtimeGovernor {
    /// A governor allowing `limit` (a fraction of time, 0 < limit ≤ 1) per hour, with
    /// `airtime(len)` the time on air in µs of a packet of `len` bytes.
    pub fn new(limit: f64, airtime: impl Fn(usize) -> u64 + Send + 'static) -> Self {
        let limit = if limit.is_finite() {
            limit.clamp(0.0, 1.0)
        } else {
            1.0
        };
        AirtimeGovernor {
            budget_us: (limit * WINDOW_MS as f64 * 1000.0) as u64,
            sent: VecDeque::new(),
            used_us: 0,
            held: VecDeque::new(),
            uncounted: 0,
            airtime: Box::new(airtime),
            stats: GovernorStats::default(),
        }
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some(&(t, a)) = self.sent.front() {
            if t + WINDOW_MS + GRACE_MS > now_ms {
                break;
            }
            self.sent.pop_front();
            self.used_us -= a;
        }
    }

    /// Airtime used in the window ending now, µs.
    pub fn used_us(&mut self, now_ms: u64) -> u64 {
        self.expire(now_ms);
        self.used_us
    }

    /// Frames waiting.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Queue a frame for sending.
    pub fn offer(&mut self, frame: Vec<u8>) {
        let airtime_us = (self.airtime)(frame.len());
        let announce_of = PacketView::new_checked(&frame[..])
            .ok()
            .filter(|v| !v.flags().ifac && v.flags().packet_type == PacketType::Announce)
            .map(|v| v.destination());
        if let Some(d) = announce_of {
            if let Some(h) = self.held.iter_mut().find(|h| h.announce_of == Some(d)) {
                h.frame = frame;
                h.airtime_us = airtime_us;
                self.stats.replaced += 1;
                return;
            }
        }
        if self.held.len() >= MAX_HELD {
            // Make room by dropping the oldest frame that is not an announce.
            match self.held.iter().position(|h| h.announce_of.is_none()) {
                Some(i) => {
                    if self.held.remove(i).is_some_and(|h| !h.counted) {
                        self.uncounted -= 1;
                    }
                }
                None => {
                    self.stats.dropped += 1;
                    return;
                }
            }
            self.stats.dropped += 1;
        }
        self.held.push_back(Held {
            frame,
            airtime_us,
            announce_of,
            counted: false,
        });
        self.uncounted += 1;
    }

    /// The next frame that fits the budget now, in order; its airtime is booked.
    #[must_use]
    pub fn poll(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        self.expire(now_ms);
        let head = self.held.front()?;
        if self.used_us + head.airtime_us > self.budget_us {
            if self.uncounted > 0 {
                for h in self.held.iter_mut().filter(|h| !h.counted) {
                    h.counted = true;
                    self.stats.deferred += 1;
                }
                self.uncounted = 0;
            }
            return None;
        }
        let h = self.held.pop_front()?;
        if !h.counted {
            self.uncounted -= 1;
        }
        self.used_us += h.airtime_us;
        self.sent.push_back((now_ms, h.airtime_us));
        self.stats.sent += 1;
        Some(h.frame)
    }

    /// When the waiting head frame will fit, if one waits and does not fit now. Frames
    /// longer than the whole budget never fit (and are reported as `None`).
    pub fn next_ready(&mut self, now_ms: u64) -> Option<u64> {
        self.expire(now_ms);
        let need = self.held.front()?.airtime_us;
        if need > self.budget_us {
            return None;
        }
        let mut used = self.used_us;
        if used + need <= self.budget_us {
            return Some(now_ms);
        }
        for &(t, a) in &self.sent {
            used -= a;
            if used + need <= self.budget_us {
                return Some(t + WINDOW_MS + GRACE_MS);
            }
        }
        Some(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 1 ms of airtime per byte, 1 % of an hour = 36 s.
    fn gov() -> AirtimeGovernor {
        AirtimeGovernor::new(0.01, |len| len as u64 * 1000)
    }

    fn announce(dest: u8, tag: u8) -> Vec<u8> {
        // HEADER_1, broadcast, SINGLE, ANNOUNCE; hops; destination; context; body.
        let mut f = vec![0x01, 0x00];
        f.extend([dest; 16]);
        f.push(0);
        f.extend(std::iter::repeat_n(tag, 150));
        f
    }

    #[test]
    fn frames_wait_for_the_window_to_roll() {
        let mut g = gov();
        g.offer(vec![0; 20_000]); // 20 s
        g.offer(vec![1; 10_000]); // 10 s
        g.offer(vec![2; 10_000]); // would make 40 s
        assert_eq!(g.poll(0).map(|f| f.len()), Some(20_000));
        assert_eq!(g.poll(1).map(|f| f.len()), Some(10_000));
        assert!(g.poll(2).is_none());
        assert_eq!(g.stats.deferred, 1);
        let rolls = WINDOW_MS + GRACE_MS;
        assert_eq!(
            g.next_ready(2),
            Some(rolls),
            "when the first frame leaves the window"
        );
        assert!(g.poll(rolls - 1).is_none());
        assert_eq!(g.poll(rolls).map(|f| f[0]), Some(2));
    }

    #[test]
    fn a_newer_announce_replaces_the_waiting_one() {
        let mut g = gov();
        g.offer(vec![9; 36_000]);
        assert!(g.poll(0).is_some());
        g.offer(announce(7, 1));
        g.offer(vec![0; 100]);
        g.offer(announce(7, 2));
        g.offer(announce(8, 1));
        assert_eq!(g.held(), 3);
        assert_eq!(g.stats.replaced, 1);
        let first = g.poll(WINDOW_MS + GRACE_MS).unwrap();
        assert_eq!(
            first[30], 2,
            "the newest announce of 7, in the first one's place"
        );
    }

    #[test]
    fn the_queue_is_bounded_and_keeps_announces() {
        let mut g = AirtimeGovernor::new(0.000_001, |_| 1_000_000);
        for d in 0..10u8 {
            g.offer(announce(d, 0));
        }
        for i in 0..MAX_HELD {
            let mut data = vec![0u8; 30]; // flags 0: a DATA packet
            data[29] = i as u8;
            g.offer(data);
        }
        assert_eq!(g.held(), MAX_HELD);
        assert_eq!(g.stats.dropped, 10);
        let announces = g.held.iter().filter(|h| h.announce_of.is_some()).count();
        assert_eq!(announces, 10);
    }

    proptest! {
        /// Whatever is offered and whenever it is polled, no hour holds more than the budget.
        #[test]
        fn never_exceeds_the_budget_in_any_window(
            sizes in proptest::collection::vec(1usize..5000, 1..200),
            steps in proptest::collection::vec(1u64..120_000, 1..200),
        ) {
            let mut g = gov();
            let mut now = 0;
            let mut log: Vec<(u64, u64)> = Vec::new();
            for (i, s) in sizes.iter().enumerate() {
                g.offer(vec![0; *s]);
                now += steps[i % steps.len()];
                while let Some(f) = g.poll(now) {
                    log.push((now, f.len() as u64 * 1000));
                }
            }
            for &(start, _) in &log {
                let used: u64 = log.iter().filter(|(t, _)| *t >= start && *t < start + WINDOW_MS).map(|(_, a)| a).sum();
                prop_assert!(used <= 36_000_000, "{} µs in the hour from {}", used, start);
            }
        }
    }
}
