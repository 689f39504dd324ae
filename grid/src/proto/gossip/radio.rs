//! Catalog gossip with neighbours heard over radio (LoRa): what differs from a fast
//! interface, and when the airtime allows it.
//!
//! A radio channel carries about 6.6 KB an hour at SF9 under a 1 % duty cycle, shared
//! by every node in range, so radio neighbours get their own, sparser round
//! ([`RadioConfig::interval`], one neighbour each time), messages cut to
//! [`LORA_BUDGET`](super::LORA_BUDGET) bytes, and no sessions at all once the
//! interface has spent [`DISCOVERY_SHARE`] of its airtime limit in the last hour
//! ([`airtime_allows`]): what is left stays for the traffic users asked for.
//! Full embedding vectors never travel in the catalog at all (entries carry 48-byte
//! sketches), so nothing here has to keep them off the air.

use std::time::Duration;

use super::LORA_BUDGET;

/// The share of an interface's airtime limit discovery may take, at most: past it,
/// gossip sessions over that interface wait for the hour's window to move on.
pub const DISCOVERY_SHARE: f32 = 0.5;
/// The airtime limit assumed for a radio that states none, percent of an hour: the
/// 1 % that the common European 868 MHz sub-bands allow.
pub const ASSUMED_LIMIT_PCT: f32 = 1.0;

/// How the gossip treats neighbours heard over radio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RadioConfig {
    /// How often this node starts a session with a radio neighbour.
    pub interval: Duration,
    /// Radio neighbours it starts a session with each time.
    pub fanout: usize,
    /// Bytes a message to a radio neighbour may take (past a first entry that is larger
    /// on its own).
    pub budget: usize,
}

impl Default for RadioConfig {
    /// Every 10 minutes with one neighbour, [`LORA_BUDGET`]-byte messages: a settled
    /// session is two short packets, so a node spends well under a tenth of a 1 % duty
    /// cycle keeping in step (docs/discovery.md gives the figures).
    fn default() -> Self {
        RadioConfig {
            interval: Duration::from_secs(600),
            fanout: 1,
            budget: LORA_BUDGET,
        }
    }
}

/// Whether gossip may use a radio interface that has spent `used_pct` of the last hour
/// transmitting (the radio's own figure or the host's, the larger; `None`: not known
/// yet), under an airtime limit of `limit_pct` (`None`: none configured, so
/// [`ASSUMED_LIMIT_PCT`]).
pub fn airtime_allows(used_pct: Option<f32>, limit_pct: Option<f32>) -> bool {
    let limit = limit_pct
        .filter(|l| l.is_finite() && *l > 0.0)
        .unwrap_or(ASSUMED_LIMIT_PCT);
    match used_pct {
        None => true,
        Some(u) if !u.is_finite() => false,
        Some(u) => u < limit * DISCOVERY_SHARE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_stops_at_half_the_limit() {
        assert!(airtime_allows(None, None));
        assert!(airtime_allows(Some(0.49), None));
        assert!(!airtime_allows(Some(0.5), None));
        assert!(airtime_allows(Some(4.9), Some(10.0)));
        assert!(!airtime_allows(Some(5.0), Some(10.0)));
        // A nonsense limit falls back to the assumed 1 %; a nonsense reading stops it.
        assert!(!airtime_allows(Some(0.6), Some(0.0)));
        assert!(!airtime_allows(Some(0.6), Some(f32::NAN)));
        assert!(!airtime_allows(Some(f32::NAN), Some(1.0)));
    }
}
