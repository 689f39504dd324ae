//! What an RNode is told to be: frequency, bandwidth, power, spreading factor, coding
//! rate and airtime locks, checked against the limits RNS and the firmware apply.

use std::time::Duration;

/// Settings for one RNode radio.
#[derive(Debug, Clone, PartialEq)]
pub struct RnodeConfig {
    /// Serial port path (`/dev/ttyUSB0`, a `grid radio-sim` link, …).
    pub port: String,
    /// Centre frequency in Hz (137 MHz – 3 GHz).
    pub frequency: u32,
    /// Bandwidth in Hz (7.8 kHz – 1625 kHz).
    pub bandwidth: u32,
    /// TX power in dBm (0–37).
    pub tx_power: u8,
    /// Spreading factor (5–12).
    pub spreading_factor: u8,
    /// Coding rate denominator: 5–8 for 4/5 … 4/8.
    pub coding_rate: u8,
    /// Short-term airtime limit in percent (RNS `airtime_limit_short`), enforced by the radio.
    pub st_alock: Option<f32>,
    /// Long-term (one hour) airtime limit in percent (RNS `airtime_limit_long`), enforced
    /// by the radio.
    pub lt_alock: Option<f32>,
    /// Wait for the radio's READY after each frame (RNS `flow_control`).
    pub flow_control: bool,
    /// Pause after opening the port before talking: ESP32 boards reset when the port
    /// opens (RNS waits 2 s).
    pub open_settle: Duration,
}

impl RnodeConfig {
    /// A radio on `port` with RNS's defaults for everything but the modulation.
    pub fn new(port: impl Into<String>, frequency: u32, bandwidth: u32, sf: u8, cr: u8) -> Self {
        RnodeConfig {
            port: port.into(),
            frequency,
            bandwidth,
            tx_power: 14,
            spreading_factor: sf,
            coding_rate: cr,
            st_alock: None,
            lt_alock: None,
            flow_control: false,
            open_settle: Duration::from_secs(2),
        }
    }

    /// Check every value against the limits RNS enforces; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(137_000_000..=3_000_000_000).contains(&self.frequency) {
            return Err(("frequency", "must be 137 MHz to 3 GHz (in Hz)".into()));
        }
        if !(7_800..=1_625_000).contains(&self.bandwidth) {
            return Err(("bandwidth", "must be 7800 to 1625000 Hz".into()));
        }
        if self.tx_power > 37 {
            return Err(("tx_power", "must be 0 to 37 dBm".into()));
        }
        if !(5..=12).contains(&self.spreading_factor) {
            return Err(("spreading_factor", "must be 5 to 12".into()));
        }
        if !(5..=8).contains(&self.coding_rate) {
            return Err(("coding_rate", "must be 5 to 8 (4/5 to 4/8)".into()));
        }
        for (key, v) in [
            ("airtime_limit_short", self.st_alock),
            ("airtime_limit", self.lt_alock),
        ] {
            if let Some(v) = v {
                if !(v > 0.0 && v <= 100.0) {
                    return Err((key, "must be a percentage in (0, 100]".into()));
                }
            }
        }
        Ok(())
    }

    /// The link bitrate RNS estimates for this modulation, in bit/s:
    /// `sf · (4/cr) / (2^sf / bw_kHz) · 1000`.
    pub fn bitrate(&self) -> u64 {
        let sf = f64::from(self.spreading_factor);
        let cr = f64::from(self.coding_rate);
        let bw_khz = f64::from(self.bandwidth) / 1000.0;
        let bps = sf * (4.0 / cr) / (2f64.powf(sf) / bw_khz) * 1000.0;
        bps.max(1.0) as u64
    }

    /// The modulation as the radio runs it (RNode's preamble), if the values are valid.
    pub fn modulation(&self) -> Option<grid_firmware::airtime::Modulation> {
        grid_firmware::airtime::Modulation::rnode(
            self.spreading_factor,
            self.bandwidth,
            self.coding_rate,
        )
        .ok()
    }

    /// The host-side duty-cycle governor for `airtime_limit`, if one is set: the radio's
    /// own lock only stops it after the limit is reached, the governor before.
    pub fn governor(&self) -> Option<super::AirtimeGovernor> {
        let (limit, m) = (self.lt_alock?, self.modulation()?);
        Some(super::AirtimeGovernor::new(
            f64::from(limit) / 100.0,
            move |len| grid_firmware::split::packet_airtime_us(&m, len),
        ))
    }

    /// The airtime lock for the radio: percent × 100, as ST_ALOCK/LT_ALOCK carry it.
    pub(crate) fn lock_value(pct: f32) -> u16 {
        (pct * 100.0).round().clamp(0.0, 10_000.0) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_matches_the_rns_estimate() {
        // lora-airtime.md: SF7 5469 bit/s … SF12 293 bit/s at 125 kHz, CR 4/5.
        let c = |sf| RnodeConfig::new("x", 868_100_000, 125_000, sf, 5).bitrate();
        assert_eq!(c(7), 5468);
        assert_eq!(c(9), 1757);
        assert_eq!(c(12), 292);
    }

    #[test]
    fn validation_names_the_key() {
        let ok = RnodeConfig::new("x", 868_100_000, 125_000, 9, 5);
        assert!(ok.validate().is_ok());
        let bad = |f: fn(&mut RnodeConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate().unwrap_err().0
        };
        assert_eq!(bad(|c| c.frequency = 100_000_000), "frequency");
        assert_eq!(bad(|c| c.bandwidth = 2_000_000), "bandwidth");
        assert_eq!(bad(|c| c.spreading_factor = 13), "spreading_factor");
        assert_eq!(bad(|c| c.coding_rate = 4), "coding_rate");
        assert_eq!(bad(|c| c.tx_power = 40), "tx_power");
        assert_eq!(bad(|c| c.lt_alock = Some(0.0)), "airtime_limit");
        assert_eq!(RnodeConfig::lock_value(1.0), 100);
        assert_eq!(RnodeConfig::lock_value(12.34), 1234);
    }
}
