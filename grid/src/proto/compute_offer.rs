//! A node's compute offer in the catalog, sans-IO: what it says (free RAM, free GPU
//! memory, load) and when it is worth publishing again. The driver reads the machine
//! and hands readings in; this decides.
//!
//! An offer lives [`OFFER_LIFETIME`] (a node that stops offering, or dies, drops out of
//! others' catalogs within it), is republished every [`REFRESH`] while nothing changes,
//! and sooner when the load moves by [`LOAD_STEP`] points or free RAM by a quarter —
//! but never more often than every [`MIN_GAP`], so a busy machine does not flood gossip.

use std::time::Duration;

use super::gossip::entry::{Body, Record, MAX_SUMMARY};

/// The name of a node's compute offer (one per node).
pub const OFFER_NAME: &str = "compute";
/// How long a published offer is valid.
pub const OFFER_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// How often an unchanged offer is published again.
pub const REFRESH: Duration = Duration::from_secs(10 * 60);
/// Published at most this often.
pub const MIN_GAP: Duration = Duration::from_secs(60);
/// A load change of this many percentage points is news.
pub const LOAD_STEP: u8 = 25;

/// What the machine can give now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// RAM available, MB.
    pub ram_free_mb: u32,
    /// GPU memory free, MB (0: none).
    pub gpu_free_mb: u32,
    /// Load, percent of the cores busy (0 to 100).
    pub load_pct: u8,
}

impl Reading {
    /// The load in percent from a one-minute load average on `cores` cores (clamped to
    /// 0–100; 0 cores counts as one).
    pub fn load_from_average(loadavg: f32, cores: u16) -> u8 {
        let pct = loadavg / f32::from(cores.max(1)) * 100.0;
        if pct.is_nan() {
            return 0;
        }
        pct.clamp(0.0, 100.0).round() as u8
    }
}

/// When the offer was last published, and with what.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    last: Option<(Reading, u64)>,
}

impl Schedule {
    /// Whether `now` (a reading at wall-clock `now_ms`) should be published.
    pub fn due(&self, now: &Reading, now_ms: u64) -> bool {
        let Some((last, at)) = self.last else {
            return true;
        };
        let since = Duration::from_millis(now_ms.saturating_sub(at));
        if since < MIN_GAP {
            return false;
        }
        let load_moved = last.load_pct.abs_diff(now.load_pct) >= LOAD_STEP;
        let ram_moved = last.ram_free_mb.abs_diff(now.ram_free_mb) > last.ram_free_mb / 4;
        since >= REFRESH || load_moved || ram_moved || last.gpu_free_mb != now.gpu_free_mb
    }

    /// `reading` was published at `now_ms`.
    pub fn published(&mut self, reading: Reading, now_ms: u64) {
        self.last = Some((reading, now_ms));
    }
}

/// The catalog record of an offer: `summary` says what the machine is (cores, RAM), cut
/// to the catalog's limit.
pub fn record(reading: &Reading, summary: &str, now_ms: u64) -> Record {
    let mut end = summary.len().min(MAX_SUMMARY);
    while !summary.is_char_boundary(end) {
        end -= 1;
    }
    Record {
        seq: now_ms,
        expires_ms: now_ms + OFFER_LIFETIME.as_millis() as u64,
        tombstone: false,
        name: OFFER_NAME.into(),
        summary: summary[..end].to_string(),
        body: Body::Compute {
            ram_mb: reading.ram_free_mb,
            gpu_mb: reading.gpu_free_mb,
            load_pct: reading.load_pct.min(100),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn r(ram: u32, load: u8) -> Reading {
        Reading {
            ram_free_mb: ram,
            gpu_free_mb: 0,
            load_pct: load,
        }
    }

    #[test]
    fn the_first_reading_is_published_then_only_news_or_the_refresh() {
        let mut s = Schedule::default();
        assert!(s.due(&r(4000, 10), 0));
        s.published(r(4000, 10), 0);
        assert!(!s.due(&r(4000, 90), 30_000), "never within a minute");
        assert!(!s.due(&r(3900, 20), 2 * MIN), "small changes wait");
        assert!(s.due(&r(4000, 35), 2 * MIN), "load moved 25 points");
        assert!(
            s.due(&r(2900, 10), 2 * MIN),
            "free RAM moved over a quarter"
        );
        assert!(s.due(&r(4000, 10), 10 * MIN), "refreshed every 10 minutes");
        let gpu = Reading {
            gpu_free_mb: 8000,
            ..r(4000, 10)
        };
        assert!(s.due(&gpu, 2 * MIN), "a GPU appearing is news");
    }

    #[test]
    fn loads_are_percent_of_cores_clamped() {
        assert_eq!(Reading::load_from_average(1.0, 2), 50);
        assert_eq!(Reading::load_from_average(9.0, 2), 100);
        assert_eq!(Reading::load_from_average(-1.0, 2), 0);
        assert_eq!(Reading::load_from_average(f32::NAN, 2), 0);
        assert_eq!(Reading::load_from_average(0.5, 0), 50);
    }

    #[test]
    fn the_record_is_a_valid_signed_entry_named_compute() {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(7);
        let id = rns_core::identity::Identity::generate(&mut rng);
        let long = "é".repeat(200);
        let rec = record(&r(4000, 120), &long, 1_000);
        assert!(rec.summary.len() <= MAX_SUMMARY);
        assert_eq!(rec.expires_ms, 1_000 + 1_800_000);
        let entry = crate::proto::gossip::entry::Entry::sign(&id, rec).unwrap();
        assert_eq!(entry.record().name, OFFER_NAME);
        assert!(matches!(
            entry.record().body,
            Body::Compute {
                ram_mb: 4000,
                load_pct: 100,
                ..
            }
        ));
    }
}
