//! Airtime and channel-load accounting, and the airtime lock.
//!
//! Follows RNode (`Config.h`, `update_airtime`): time is cut into bins of 7.5 s
//! (`STATUS_INTERVAL_MS` 3 ms × `DCD_SAMPLES` 2500) aligned to the clock, 480 of them
//! covering the one-hour long-term window. Each bin sums the airtime this modem spent
//! transmitting in it.
//!
//! * Short-term airtime = (current bin + previous bin) / 15 s.
//! * Long-term airtime = all bins / 1 h.
//! * Short-term channel load = time others kept the channel busy (same two bins) plus
//!   our own short-term airtime, at most 100 %.
//! * Long-term channel load = the mean over all bins of the highest short-term load
//!   sampled in each bin ([`AirtimeMeter::sample_load`], once a second in RNode).
//!
//! All ratios are percent × 100 (`10000` = 100 %), the unit of `ST_ALOCK`, `LT_ALOCK`
//! and `STAT_CHTM`. Time is passed in as milliseconds; the meter has no clock. A bin is
//! cleared when the clock enters it, so gaps between calls cost nothing.

/// Length of one bin, ms.
pub const BIN_MS: u64 = 7_500;
/// The long-term window, ms (one hour).
pub const LONG_TERM_MS: u64 = 3_600_000;
/// Bins in the long-term window.
pub const BINS: usize = (LONG_TERM_MS / BIN_MS) as usize;
/// 100 % in the meter's unit (percent × 100).
pub const FULL: u16 = 10_000;

const BIN_US: u64 = BIN_MS * 1_000;
const SHORT_WINDOW_US: u64 = 2 * BIN_US;
const LONG_WINDOW_US: u64 = LONG_TERM_MS * 1_000;

/// The host's airtime limits, percent × 100; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AirtimeLimits {
    /// Short-term limit (`ST_ALOCK`).
    pub short_term: u16,
    /// Long-term limit (`LT_ALOCK`).
    pub long_term: u16,
}

impl AirtimeLimits {
    /// No limits.
    pub const NONE: AirtimeLimits = AirtimeLimits {
        short_term: 0,
        long_term: 0,
    };

    /// A limit as RNode stores it from the wire: 100 % or more means no limit.
    pub const fn normalize(wire: u16) -> u16 {
        if wire >= FULL {
            0
        } else {
            wire
        }
    }
}

/// The four ratios `STAT_CHTM` carries, percent × 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AirtimeStats {
    /// Our airtime over the short-term window.
    pub airtime_short: u16,
    /// Our airtime over the last hour.
    pub airtime_long: u16,
    /// Channel load (others' traffic plus ours) over the short-term window.
    pub load_short: u16,
    /// Mean of the per-bin peak loads over the last hour.
    pub load_long: u16,
}

fn ratio(part_us: u64, window_us: u64) -> u16 {
    let r = part_us.saturating_mul(u64::from(FULL)) / window_us;
    r.min(u64::from(FULL)) as u16
}

/// Binned airtime and channel-busy accounting over the last hour.
#[derive(Debug, Clone)]
pub struct AirtimeMeter {
    tx_us: [u32; BINS],
    busy_us: [u32; BINS],
    load_peak: [u16; BINS],
    /// Absolute index (ms / [`BIN_MS`]) of the current bin.
    bin: u64,
}

impl Default for AirtimeMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl AirtimeMeter {
    /// A meter with empty history.
    pub const fn new() -> Self {
        AirtimeMeter {
            tx_us: [0; BINS],
            busy_us: [0; BINS],
            load_peak: [0; BINS],
            bin: 0,
        }
    }

    /// Forget all history (RNode does this when the radio starts).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    fn index(abs: u64) -> usize {
        (abs % BINS as u64) as usize
    }

    fn current(&self) -> usize {
        Self::index(self.bin)
    }

    fn previous(&self) -> usize {
        Self::index(self.bin + BINS as u64 - 1)
    }

    /// Move the clock to `now_ms`, clearing every bin entered since the last call. A
    /// clock that goes backwards is ignored.
    pub fn advance(&mut self, now_ms: u64) {
        let target = now_ms / BIN_MS;
        if target <= self.bin {
            return;
        }
        let steps = (target - self.bin).min(BINS as u64);
        for k in 0..steps {
            let i = Self::index(target - k);
            self.tx_us[i] = 0;
            self.busy_us[i] = 0;
            self.load_peak[i] = 0;
        }
        self.bin = target;
    }

    /// When the current bin ends, ms: the earliest time the short-term figures can fall.
    pub const fn next_bin_ms(&self) -> u64 {
        (self.bin + 1).saturating_mul(BIN_MS)
    }

    /// Count `airtime_us` of our own transmission at `now_ms`.
    pub fn add_airtime(&mut self, now_ms: u64, airtime_us: u64) {
        self.advance(now_ms);
        let i = self.current();
        let add = u32::try_from(airtime_us).unwrap_or(u32::MAX);
        self.tx_us[i] = self.tx_us[i].saturating_add(add);
    }

    /// Count `busy_us` of channel occupancy by others (a frame heard) at `now_ms`.
    pub fn add_busy(&mut self, now_ms: u64, busy_us: u64) {
        self.advance(now_ms);
        let i = self.current();
        let add = u32::try_from(busy_us).unwrap_or(u32::MAX);
        self.busy_us[i] = self.busy_us[i].saturating_add(add);
    }

    /// Our short-term airtime.
    pub fn airtime_short(&mut self, now_ms: u64) -> u16 {
        self.advance(now_ms);
        let us = u64::from(self.tx_us[self.current()]) + u64::from(self.tx_us[self.previous()]);
        ratio(us, SHORT_WINDOW_US)
    }

    /// Our long-term airtime.
    pub fn airtime_long(&mut self, now_ms: u64) -> u16 {
        self.advance(now_ms);
        let us: u64 = self.tx_us.iter().map(|&v| u64::from(v)).sum();
        ratio(us, LONG_WINDOW_US)
    }

    /// Short-term channel load: others' busy time plus our airtime, capped at 100 %.
    pub fn load_short(&mut self, now_ms: u64) -> u16 {
        let airtime = self.airtime_short(now_ms);
        let busy_us =
            u64::from(self.busy_us[self.current()]) + u64::from(self.busy_us[self.previous()]);
        ratio(busy_us, SHORT_WINDOW_US)
            .saturating_add(airtime)
            .min(FULL)
    }

    /// Long-term channel load: the mean of per-bin peak loads over the hour.
    pub fn load_long(&mut self, now_ms: u64) -> u16 {
        self.advance(now_ms);
        let sum: u64 = self.load_peak.iter().map(|&v| u64::from(v)).sum();
        (sum / BINS as u64) as u16
    }

    /// Record the current short-term load as a candidate for this bin's peak (RNode
    /// samples once per second).
    pub fn sample_load(&mut self, now_ms: u64) {
        let load = self.load_short(now_ms);
        let i = self.current();
        self.load_peak[i] = self.load_peak[i].max(load);
    }

    /// All four figures at once.
    pub fn stats(&mut self, now_ms: u64) -> AirtimeStats {
        AirtimeStats {
            airtime_short: self.airtime_short(now_ms),
            airtime_long: self.airtime_long(now_ms),
            load_short: self.load_short(now_ms),
            load_long: self.load_long(now_ms),
        }
    }

    /// RNode's airtime lock: transmission is held while the airtime already spent has
    /// reached a configured limit (short-term or long-term). Like RNode, the check is
    /// made before each transmission against what has been spent, so a frame that
    /// starts under the limit is sent whole; a lock lifts as the windows roll on.
    #[must_use]
    pub fn locked(&mut self, now_ms: u64, limits: AirtimeLimits) -> bool {
        (limits.short_term != 0 && self.airtime_short(now_ms) >= limits.short_term)
            || (limits.long_term != 0 && self.airtime_long(now_ms) >= limits.long_term)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;

    #[test]
    fn bins_cover_one_hour() {
        assert_eq!(BINS, 480);
    }

    #[test]
    fn short_term_window_rolls_after_two_bins() {
        let mut m = Box::new(AirtimeMeter::new());
        m.add_airtime(1_000, 750_000);
        assert_eq!(m.airtime_short(1_000), 500); // 0.75 s of 15 s
        assert_eq!(m.airtime_short(7_499), 500);
        assert_eq!(m.airtime_short(7_500), 500, "previous bin still counts");
        assert_eq!(m.airtime_short(14_999), 500);
        assert_eq!(m.airtime_short(15_000), 0);
        assert_eq!(m.airtime_long(15_000), 2); // 0.75 s of 3600 s = 0.0208 %
        assert_eq!(m.airtime_long(3_599_999), 2);
        assert_eq!(
            m.airtime_long(3_600_000),
            0,
            "the bin is reused an hour later"
        );
    }

    #[test]
    fn lock_holds_until_the_window_rolls() {
        let mut m = Box::new(AirtimeMeter::new());
        let limits = AirtimeLimits {
            short_term: 400,
            long_term: 0,
        };
        assert!(!m.locked(0, limits));
        m.add_airtime(0, 750_000);
        assert!(m.locked(0, limits));
        assert!(m.locked(14_999, limits));
        assert!(!m.locked(15_000, limits));
        assert_eq!(m.next_bin_ms(), 22_500);

        let long = AirtimeLimits {
            short_term: 0,
            long_term: 2,
        };
        assert!(m.locked(15_000, long));
        assert!(!m.locked(3_600_000, long));
        assert!(!m.locked(3_600_000, AirtimeLimits::NONE));
    }

    #[test]
    fn load_adds_others_busy_time_and_keeps_hourly_peaks() {
        let mut m = Box::new(AirtimeMeter::new());
        m.add_busy(100, 1_500_000);
        m.add_airtime(200, 750_000);
        assert_eq!(m.load_short(300), 1_500);
        m.sample_load(300);
        m.add_busy(400, 1_500_000);
        m.sample_load(500); // peak rises to 25 %
        assert_eq!(m.load_long(500), 2_500 / 480);
        let s = m.stats(500);
        assert_eq!(
            s,
            AirtimeStats {
                airtime_short: 500,
                airtime_long: 2,
                load_short: 2_500,
                load_long: 5
            }
        );
        // Load is capped at 100 %.
        m.add_busy(600, 100_000_000);
        assert_eq!(m.load_short(600), FULL);
    }

    #[test]
    fn limits_at_or_above_100_percent_mean_none() {
        assert_eq!(AirtimeLimits::normalize(10_000), 0);
        assert_eq!(AirtimeLimits::normalize(u16::MAX), 0);
        assert_eq!(AirtimeLimits::normalize(9_999), 9_999);
    }

    #[test]
    fn odd_clocks_do_not_panic() {
        let mut m = Box::new(AirtimeMeter::new());
        m.add_airtime(u64::MAX, u64::MAX);
        m.add_airtime(u64::MAX, u64::MAX);
        assert_eq!(m.airtime_short(u64::MAX), FULL);
        m.add_airtime(5, 1_000); // backwards: counted in the current bin
        let _ = m.stats(0);
        let _ = m.next_bin_ms();
    }
}
