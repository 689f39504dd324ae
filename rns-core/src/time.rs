//! Time as the core sees it: an [`Instant`] handed in by the driver.
//!
//! The core never reads a clock. Drivers pass the current wall-clock time since the Unix
//! epoch, at microsecond resolution (link RTTs on a LAN are well under a millisecond);
//! it is used both for timers and for the emission timestamps inside announces (which
//! RNS defines as Unix seconds).

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in microseconds since the Unix epoch, supplied by the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself; useful as "never" for last-seen fields.
    pub const ZERO: Instant = Instant(0);

    /// Build from microseconds since the Unix epoch.
    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }

    /// Build from milliseconds since the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1000))
    }

    /// Build from whole seconds since the Unix epoch.
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1_000_000))
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// Whole seconds since the Unix epoch (what announces carry).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Seconds as a float, for RTT-style arithmetic.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(micros(rhs)))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(micros(rhs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(10);
        assert_eq!((t + Duration::from_millis(1500)).as_millis(), 11_500);
        assert_eq!((t - Duration::from_secs(20)), Instant::ZERO);
        assert_eq!(t.saturating_since(Instant::from_secs(20)), Duration::ZERO);
        assert_eq!(t.as_secs(), 10);
        let u = Instant::from_micros(10_000_250);
        assert_eq!(u.saturating_since(t), Duration::from_micros(250));
        assert_eq!((t + Duration::from_micros(7)).as_micros(), 10_000_007);
    }
}
