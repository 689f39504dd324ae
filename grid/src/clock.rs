//! The node's clocks.
//!
//! - [`now`]: what the sans-IO core runs its timers on (paths, links, keepalives,
//!   resources, rate limits, backoffs, the request log). It is monotonic — the wall clock
//!   at the first call, advanced by [`std::time::Instant`] — so a wall-clock step (NTP
//!   correcting a Raspberry Pi without a real-time clock by an hour) neither expires
//!   timers early nor freezes them. One exception: a process that started while the wall
//!   clock was implausible (before 2025, a board that booted without a time source) is
//!   re-anchored once when the wall clock becomes plausible, so its announces do not
//!   carry 1970 timestamps forever.
//! - [`wall_ms`]: the wall clock, only where the protocol carries absolute times set by
//!   nodes' clocks: frame timestamps and TTLs, bundle creation and expiry, audit records.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rns_core::Instant;

/// 2025-01-01T00:00:00Z: a wall clock before this has not been set.
const PLAUSIBLE_US: u64 = 1_735_689_600_000_000;

/// (core time at the anchor, monotonic instant of the anchor).
static ANCHOR: Mutex<Option<(u64, std::time::Instant)>> = Mutex::new(None);

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

/// Core time for `wall_us` read at monotonic instant `mono`, given the anchor (set or
/// re-anchored as the module docs say).
fn advance(
    anchor: &mut Option<(u64, std::time::Instant)>,
    wall: u64,
    mono: std::time::Instant,
) -> u64 {
    let (base, at) = match *anchor {
        Some((base, at)) if base >= PLAUSIBLE_US || wall < PLAUSIBLE_US => (base, at),
        _ => {
            *anchor = Some((wall, mono));
            (wall, mono)
        }
    };
    base.saturating_add(mono.saturating_duration_since(at).as_micros() as u64)
}

/// Now, for the core's timers (monotonic; see the module docs).
pub fn now() -> Instant {
    let mono = std::time::Instant::now();
    let mut anchor = ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
    Instant::from_micros(advance(&mut anchor, wall_us(), mono))
}

/// The wall clock in ms since the Unix epoch, for times the protocol carries.
pub fn wall_ms() -> u64 {
    wall_us() / 1000
}

/// A tokio deadline for a core instant (past instants become "now").
pub fn deadline(at: Instant) -> tokio::time::Instant {
    let wait = at.saturating_since(now());
    tokio::time::Instant::now() + wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_steps_do_not_move_the_core_clock() {
        let start = std::time::Instant::now();
        let mut anchor = None;
        let wall = PLAUSIBLE_US + 3_600_000_000;
        assert_eq!(advance(&mut anchor, wall, start), wall);
        let later = start + Duration::from_secs(10);
        // The wall clock jumps an hour ahead, then an hour back: 10 s passed, that's all.
        let plus = advance(&mut anchor, wall + 3_600_000_000 + 10_000_000, later);
        assert_eq!(plus, wall + 10_000_000);
        let minus = advance(&mut anchor, wall - 3_600_000_000, later);
        assert_eq!(minus, wall + 10_000_000);
    }

    #[test]
    fn a_clock_that_was_never_set_is_re_anchored_once_it_is() {
        let start = std::time::Instant::now();
        let mut anchor = None;
        let boot = 5_000_000; // 1970
        assert_eq!(advance(&mut anchor, boot, start), boot);
        let t1 = start + Duration::from_secs(1);
        assert_eq!(advance(&mut anchor, boot + 1_000_000, t1), boot + 1_000_000);
        // NTP sets the clock: from then on the core follows it, monotonically.
        let synced = PLAUSIBLE_US + 42;
        assert_eq!(advance(&mut anchor, synced, t1), synced);
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(
            advance(&mut anchor, synced - 1_000_000_000, t2),
            synced + 2_000_000
        );
    }
}
