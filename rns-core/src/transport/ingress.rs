//! Ingress control: hold announces for unknown destinations while an interface sees a
//! burst, and release them slowly (lowest hop count first) once it calms down.

use std::collections::VecDeque;

use super::HashMap;
use std::time::Duration;

use crate::hash::AddressHash;
use crate::time::Instant;

/// Samples kept for frequency estimates.
const FREQ_SAMPLES: usize = 48;
/// Samples older than this are aged out (1 / 0.1 Hz).
const FREQ_DECAY: Duration = Duration::from_secs(10);
/// Interfaces younger than this use the "new" thresholds.
const NEW_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// Announce burst thresholds (Hz): new / established interface.
const BURST_FREQ_NEW: f64 = 3.0;
const BURST_FREQ: f64 = 10.0;
/// Path request burst thresholds (Hz).
const PR_BURST_FREQ_NEW: f64 = 3.0;
const PR_BURST_FREQ: f64 = 8.0;
/// How long a burst must calm down before it ends, and the initial penalty.
const BURST_HOLD: Duration = Duration::from_secs(15);
const BURST_PENALTY: Duration = Duration::from_secs(15);
/// Interval between releases of held announces.
const HELD_RELEASE_INTERVAL: Duration = Duration::from_secs(5);
/// Most announces held per interface.
pub(crate) const MAX_HELD: usize = 256;

/// Event-rate estimator over the last [`FREQ_SAMPLES`] events.
#[derive(Debug, Default)]
pub(crate) struct FrequencyMeter {
    samples: VecDeque<Instant>,
}

impl FrequencyMeter {
    pub(crate) fn record(&mut self, now: Instant) {
        if self.samples.len() == FREQ_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(now);
    }

    /// Events per second; 0 with too few samples.
    pub(crate) fn hz(&mut self, now: Instant) -> f64 {
        let n = self.samples.len();
        if n <= 2 {
            return 0.0;
        }
        let oldest = self.samples[0];
        let span = now.saturating_since(oldest);
        if span > FREQ_DECAY {
            self.samples.pop_front();
        }
        if span.is_zero() {
            return 0.0;
        }
        n as f64 / span.as_secs_f64()
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }
}

/// A burst detector with hysteresis: it engages above the threshold and ends only after
/// the rate has stayed below it for the hold time (and `cooldown` further calm checks).
#[derive(Debug, Default)]
struct Burst {
    active: bool,
    activated: Instant,
    sustained: Instant,
    cooldown: u8,
}

impl Burst {
    /// Feed the current rate; returns (limiting applies, a burst just began).
    fn update(
        &mut self,
        now: Instant,
        hz: f64,
        threshold: f64,
        cooldown: u8,
        may_end: bool,
    ) -> (bool, bool) {
        if self.active {
            let calm = hz < threshold
                && now > self.activated + BURST_HOLD
                && now > self.sustained + BURST_HOLD;
            if calm {
                if self.cooldown > 0 {
                    self.cooldown -= 1;
                } else if may_end {
                    self.active = false;
                }
            } else {
                self.cooldown = cooldown;
                if hz >= threshold {
                    self.sustained = now;
                }
            }
            (true, false)
        } else if hz > threshold {
            self.active = true;
            self.activated = now;
            self.sustained = now;
            self.cooldown = cooldown;
            (true, true)
        } else {
            (false, false)
        }
    }
}

/// One held announce: the logical packet bytes and its hop count.
#[derive(Debug, Clone)]
pub(crate) struct HeldAnnounce {
    pub(crate) raw: Vec<u8>,
    pub(crate) hops: u8,
}

/// Per-interface ingress control state.
#[derive(Debug, Default)]
pub(crate) struct IngressControl {
    pub(crate) announces: FrequencyMeter,
    pub(crate) path_requests: FrequencyMeter,
    announce_burst: Burst,
    pr_burst: Burst,
    held: HashMap<AddressHash, HeldAnnounce>,
    held_release: Instant,
}

impl IngressControl {
    fn threshold(age: Duration, new: f64, established: f64) -> f64 {
        if age < NEW_TIME {
            new
        } else {
            established
        }
    }

    /// Should an announce for an unknown destination be held right now?
    pub(crate) fn should_limit_announce(&mut self, now: Instant, age: Duration) -> bool {
        let threshold = Self::threshold(age, BURST_FREQ_NEW, BURST_FREQ);
        let hz = self.announces.hz(now);
        let may_end = self.announces.len() >= 2;
        let (limited, began) = self.announce_burst.update(now, hz, threshold, 0, may_end);
        if began {
            self.held_release = now + BURST_PENALTY;
        }
        limited
    }

    /// Is the interface in a path-request burst?
    pub(crate) fn should_limit_path_request(&mut self, now: Instant, age: Duration) -> bool {
        let threshold = Self::threshold(age, PR_BURST_FREQ_NEW, PR_BURST_FREQ);
        let hz = self.path_requests.hz(now);
        self.pr_burst.update(now, hz, threshold, 3, true).0
    }

    /// Hold an announce (newest per destination wins; bounded).
    pub(crate) fn hold(&mut self, destination: AddressHash, raw: Vec<u8>, hops: u8) {
        if hops >= crate::packet::MAX_HOPS - 1 {
            return;
        }
        if self.held.contains_key(&destination) || self.held.len() < MAX_HELD {
            self.held.insert(destination, HeldAnnounce { raw, hops });
        }
    }

    /// Release one held announce (lowest hops) if the burst has calmed down.
    pub(crate) fn release(&mut self, now: Instant, age: Duration) -> Option<HeldAnnounce> {
        if self.held.is_empty() || now <= self.held_release {
            return None;
        }
        let threshold = Self::threshold(age, BURST_FREQ_NEW, BURST_FREQ);
        if self.announces.hz(now) >= threshold {
            return None;
        }
        // Fewest hops first; ties by destination, so the choice never depends on the
        // map's iteration order.
        let key = *self.held.iter().min_by_key(|(k, h)| (h.hops, **k))?.0;
        self.held_release = now + HELD_RELEASE_INTERVAL;
        self.held.remove(&key)
    }

    pub(crate) fn held_count(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_engages_holds_and_releases() {
        let mut ic = IngressControl::default();
        let mut t = Instant::from_secs(1_000_000);
        let young = Duration::from_secs(10);
        // 20 announces in one second: well above 3 Hz.
        for _ in 0..20 {
            t = t + Duration::from_millis(50);
            ic.announces.record(t);
        }
        assert!(ic.should_limit_announce(t, young));
        for i in 0..300u32 {
            let mut d = [0u8; 16];
            d[..4].copy_from_slice(&i.to_be_bytes());
            ic.hold(AddressHash(d), vec![1], (i % 7) as u8 + 1);
        }
        assert_eq!(ic.held_count(), MAX_HELD);
        // Nothing is released during the penalty.
        assert!(ic.release(t + Duration::from_secs(1), young).is_none());
        // After the burst has aged out, the lowest hop count comes first.
        let later = t + Duration::from_secs(120);
        for _ in 0..FREQ_SAMPLES {
            ic.announces.hz(later);
        }
        let first = ic.release(later, young).unwrap();
        assert_eq!(first.hops, 1);
        // ... and then one per release interval.
        assert!(ic.release(later + Duration::from_secs(1), young).is_none());
        assert!(ic.release(later + Duration::from_secs(6), young).is_some());
    }

    #[test]
    fn quiet_interface_is_not_limited() {
        let mut ic = IngressControl::default();
        let t = Instant::from_secs(1000);
        ic.announces.record(t);
        assert!(!ic.should_limit_announce(t + Duration::from_secs(1), Duration::ZERO));
        assert!(!ic.should_limit_path_request(t, Duration::ZERO));
    }
}
