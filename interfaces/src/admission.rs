//! What the socket servers (TCP server interfaces, the shared instance, and the grid
//! node's control socket) share when peers ask for more than a server gives: how long to wait after
//! `accept` fails, and warnings about refused or dropped peers that are logged at most
//! once per [`LOG_EVERY`] with a count, never once per peer (a flood of connections must
//! not become a flood of log lines).

use std::io;
use std::time::{Duration, Instant};

/// Shortest time between two warnings of one kind.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause after `accept` fails because the process or the system is out of file
/// descriptors or memory: retrying at once would fail again and spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// Pause after `accept` fails for another reason.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How long to wait before accepting again after `accept` failed with `e`.
///
/// Out of file descriptors (`EMFILE`, `ENFILE`) or memory (`ENOBUFS`, `ENOMEM`):
/// [`ACCEPT_BACKOFF`], since nothing frees up at once. A connection that was reset or
/// aborted before it was accepted concerns that connection only: no wait. Anything else:
/// [`ACCEPT_RETRY`].
pub fn accept_backoff(e: &io::Error) -> Duration {
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        if [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&code) {
            return ACCEPT_BACKOFF;
        }
    }
    match e.kind() {
        io::ErrorKind::OutOfMemory => ACCEPT_BACKOFF,
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => Duration::ZERO,
        _ => ACCEPT_RETRY,
    }
}

/// A count of one kind of event (connections refused, connections dropped, failed
/// accepts) that warns at most once per [`LOG_EVERY`]: the first event warns at once,
/// later ones are counted and reported together by the next warning, which comes from
/// [`Tally::hit`] or [`Tally::flush`] once [`LOG_EVERY`] has passed.
#[derive(Debug)]
pub struct Tally {
    /// What happened, as the warning says it.
    what: &'static str,
    /// Events since the server started.
    total: u64,
    /// Events not yet reported.
    unlogged: u64,
    /// When the last warning was logged.
    last: Option<Instant>,
}

impl Tally {
    /// A tally whose warnings say `what`.
    pub const fn new(what: &'static str) -> Tally {
        Tally {
            what,
            total: 0,
            unlogged: 0,
            last: None,
        }
    }

    /// Count one event at `now` (`latest` says which peer or error, if that helps);
    /// warns if the last warning is old enough. Returns how many events the warning
    /// reported (0: none logged now).
    pub fn hit(
        &mut self,
        server: &str,
        latest: Option<&dyn std::fmt::Display>,
        now: Instant,
    ) -> u64 {
        self.total += 1;
        self.unlogged += 1;
        self.log_if_due(server, latest, now)
    }

    /// Report events not yet reported if the last warning is old enough; returns how many
    /// it reported.
    pub fn flush(&mut self, server: &str, now: Instant) -> u64 {
        self.log_if_due(server, None, now)
    }

    /// Events since the server started.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When [`Tally::flush`] will next have something to report.
    pub fn due(&self) -> Option<Instant> {
        match (self.unlogged, self.last) {
            (0, _) => None,
            (_, None) => Some(Instant::now()),
            (_, Some(t)) => Some(t + LOG_EVERY),
        }
    }

    fn log_if_due(
        &mut self,
        server: &str,
        latest: Option<&dyn std::fmt::Display>,
        now: Instant,
    ) -> u64 {
        let due = self.last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
        if self.unlogged == 0 || !due {
            return 0;
        }
        let n = std::mem::take(&mut self.unlogged);
        self.last = Some(now);
        let (what, total) = (self.what, self.total);
        match latest {
            Some(latest) => tracing::warn!(
                server,
                %latest,
                "{what}: {n} since the last such warning, {total} in all"
            ),
            None => tracing::warn!(
                server,
                "{what}: {n} since the last such warning, {total} in all"
            ),
        }
        n
    }
}

/// The earliest of several optional instants.
pub fn earliest(times: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    times.into_iter().flatten().min()
}

/// Sleep until `t`, or for ever if there is none (to wake a server when a tally is due).
pub async fn sleep_until_std(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_backs_off_and_aborted_connections_do_not() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(accept_backoff(&e), ACCEPT_BACKOFF, "{e}");
        }
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(accept_backoff(&aborted), Duration::ZERO);
        let other = io::Error::other("something else");
        assert_eq!(accept_backoff(&other), ACCEPT_RETRY);
    }

    #[test]
    fn a_flood_is_one_warning_per_interval_with_its_count() {
        let mut t = Tally::new("refused");
        let t0 = Instant::now();
        // The first event warns at once.
        assert_eq!(t.hit("srv", Some(&"x"), t0), 1);
        assert_eq!(t.due(), None);
        // A thousand more within the interval: counted, not logged.
        for i in 0..1000u64 {
            let at = t0 + Duration::from_millis(i);
            assert_eq!(t.hit("srv", None, at), 0);
        }
        assert_eq!(t.due(), Some(t0 + LOG_EVERY));
        assert_eq!(t.flush("srv", t0 + LOG_EVERY / 2), 0);
        // Once the interval has passed, one warning reports them all.
        assert_eq!(t.flush("srv", t0 + LOG_EVERY), 1000);
        assert_eq!(t.flush("srv", t0 + LOG_EVERY * 3), 0);
        assert_eq!(t.total, 1001);
        // After a quiet spell the next event warns at once again.
        assert_eq!(t.hit("srv", Some(&"y"), t0 + LOG_EVERY * 3), 1);
    }
}
