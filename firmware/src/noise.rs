//! Noise floor and interference, from RSSI samples of an idle channel.
//!
//! As RNode does it (`update_noise_floor`, `update_modem_status`): while no carrier is
//! detected, RSSI samples feed a 128-sample ring whose mean is the noise floor; once it
//! is known, samples more than 11 dB above it are left out. An idle channel more than
//! 11 dB above the floor is *interference*, and RNode does not transmit into it. Until
//! 128 samples have been seen there is no floor and no interference.

/// Samples averaged into the noise floor (`NOISE_FLOOR_SAMPLES`).
pub const NOISE_FLOOR_SAMPLES: usize = 128;
/// dB above the floor that counts as interference (`CSMA_INFR_THRESHOLD_DB`).
pub const INTERFERENCE_THRESHOLD_DB: i16 = 11;

/// The radio environment as seen through RSSI samples.
#[derive(Debug, Clone)]
pub struct RfEnvironment {
    samples: [i16; NOISE_FLOOR_SAMPLES],
    next: usize,
    filled: bool,
    noise_floor: Option<i16>,
    current_rssi: Option<i16>,
    interference: bool,
}

impl Default for RfEnvironment {
    fn default() -> Self {
        Self::new()
    }
}

impl RfEnvironment {
    /// Nothing sampled yet.
    pub const fn new() -> Self {
        RfEnvironment {
            samples: [0; NOISE_FLOOR_SAMPLES],
            next: 0,
            filled: false,
            noise_floor: None,
            current_rssi: None,
            interference: false,
        }
    }

    /// Take one sample: the channel RSSI in dBm and whether a carrier is present.
    pub fn sample(&mut self, rssi_dbm: i16, carrier: bool) {
        self.current_rssi = Some(rssi_dbm);
        let threshold = self
            .noise_floor
            .map(|nf| nf.saturating_add(INTERFERENCE_THRESHOLD_DB));
        self.interference = !carrier && threshold.is_some_and(|t| rssi_dbm > t);
        if carrier || threshold.is_some_and(|t| rssi_dbm >= t) {
            return;
        }
        if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = rssi_dbm;
        }
        self.next += 1;
        if self.next >= NOISE_FLOOR_SAMPLES {
            self.next = 0;
            self.filled = true;
        }
        if self.filled {
            let sum: i32 = self.samples.iter().map(|&s| i32::from(s)).sum();
            self.noise_floor = Some((sum / NOISE_FLOOR_SAMPLES as i32) as i16);
        }
    }

    /// The mean RSSI of the idle channel, once 128 samples are in.
    pub const fn noise_floor(&self) -> Option<i16> {
        self.noise_floor
    }

    /// The last RSSI sample.
    pub const fn current_rssi(&self) -> Option<i16> {
        self.current_rssi
    }

    /// Whether the last sample saw an idle channel well above the noise floor.
    pub const fn interference(&self) -> bool {
        self.interference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_after_128_idle_samples_then_interference() {
        let mut rf = RfEnvironment::new();
        for i in 0..127 {
            rf.sample(-110 + (i % 3) as i16 - 1, false);
        }
        rf.sample(-20, true); // carrier: ignored for the floor
        assert_eq!(rf.noise_floor(), None);
        assert!(!rf.interference(), "no interference without a floor");
        rf.sample(-110, false);
        let nf = rf.noise_floor().unwrap();
        assert!((-111..=-109).contains(&nf), "{nf}");
        rf.sample(nf + 12, false);
        assert!(rf.interference());
        assert_eq!(
            rf.noise_floor(),
            Some(nf),
            "interference stays out of the floor"
        );
        rf.sample(nf + 12, true);
        assert!(!rf.interference(), "a carrier is traffic, not interference");
        rf.sample(nf + 5, false);
        assert!(!rf.interference());
        assert_eq!(rf.current_rssi(), Some(nf + 5));
    }
}
