//! The node's clock: wall time in microseconds for the sans-IO core.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rns_core::Instant;

/// Now, as the core expects it.
pub fn now() -> Instant {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Instant::from_micros(d.as_micros() as u64)
}

/// A tokio deadline for a core instant (past instants become "now").
pub fn deadline(at: Instant) -> tokio::time::Instant {
    let wait = at.saturating_since(now());
    tokio::time::Instant::now() + wait
}
