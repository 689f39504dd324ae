//! Time as the core sees it: an [`Instant`] handed in by the driver.
//!
//! The core never reads a clock. Drivers pass the current wall-clock time in
//! milliseconds since the Unix epoch; it is used both for timers and for the
//! emission timestamps inside announces (which RNS defines as Unix seconds).

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in milliseconds since the Unix epoch, supplied by the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself; useful as "never" for last-seen fields.
    pub const ZERO: Instant = Instant(0);

    /// Build from milliseconds since the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Build from whole seconds since the Unix epoch.
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (what announces carry).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Seconds as a float, for RTT-style arithmetic.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(rhs.as_millis().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(
            self.0
                .saturating_sub(rhs.as_millis().min(u64::MAX as u128) as u64),
        )
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
    }
}
