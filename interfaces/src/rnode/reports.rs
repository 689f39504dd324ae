//! Decoding what an RNode says: data frames for the node, and reports (detect, versions,
//! echoed settings, signal and channel statistics, flow control, errors).

use std::collections::VecDeque;

use grid_firmware::{cmd, kiss};
use serde::{Deserialize, Serialize};

/// The largest KISS payload accepted from a device: a reassembled packet (508) plus
/// IFAC and slack; long reports (framebuffer, display) are dropped as oversized.
const MAX_PAYLOAD: usize = 600;
/// Data frames kept while the node is not reading (bring-up).
const MAX_QUEUED: usize = 64;

/// What the device said about itself at detect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RadioInfo {
    /// Firmware version (major, minor).
    pub firmware: Option<(u8, u8)>,
    /// Platform byte (0x80 ESP32, 0x70 nRF52, 0x90 AVR).
    pub platform: Option<u8>,
    /// MCU byte.
    pub mcu: Option<u8>,
}

/// Settings the device echoed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Echoes {
    /// Frequency, Hz.
    pub frequency: Option<u32>,
    /// Bandwidth, Hz.
    pub bandwidth: Option<u32>,
    /// TX power, dBm.
    pub tx_power: Option<u8>,
    /// Spreading factor.
    pub sf: Option<u8>,
    /// Coding rate.
    pub cr: Option<u8>,
    /// Radio state.
    pub state: Option<u8>,
    /// Short-term airtime lock, percent × 100.
    pub st_alock: Option<u16>,
    /// Long-term airtime lock, percent × 100.
    pub lt_alock: Option<u16>,
}

/// Signal and channel figures the radio reports, for `grid status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RadioStats {
    /// RSSI of the last received packet, dBm.
    pub rssi_dbm: Option<i16>,
    /// SNR of the last received packet, dB.
    pub snr_db: Option<f32>,
    /// Airtime used over the short window, percent.
    pub airtime_short_pct: Option<f32>,
    /// Airtime used over the last hour, percent.
    pub airtime_long_pct: Option<f32>,
    /// Channel load over the short window, percent.
    pub channel_load_short_pct: Option<f32>,
    /// Channel load over the last hour, percent.
    pub channel_load_long_pct: Option<f32>,
    /// Noise floor, dBm.
    pub noise_floor_dbm: Option<i16>,
    /// Errors the radio reported (queue full, TX failed, …).
    pub device_errors: u64,
    /// Airtime this host sent in the last hour, percent of the hour (with `airtime_limit`).
    pub duty_used_pct: Option<f32>,
    /// Frames waiting for duty-cycle airtime.
    pub duty_deferred: usize,
    /// The configured `airtime_limit`, percent of an hour (none: not configured).
    #[serde(default)]
    pub airtime_limit_pct: Option<f32>,
}

/// Streaming decoder of one device's output.
#[derive(Debug, Default)]
pub struct Reports {
    decoder: kiss::Decoder<MAX_PAYLOAD>,
    /// Answered detect.
    pub detected: bool,
    /// Firmware, platform, MCU.
    pub info: RadioInfo,
    /// Echoed settings.
    pub echo: Echoes,
    /// Statistics.
    pub stats: RadioStats,
    /// READY frames seen and not yet taken by flow control.
    pub ready: u32,
    /// The last error code reported and not yet taken.
    pub last_error: Option<u8>,
    /// Data frames received and not yet taken.
    pub data: VecDeque<Vec<u8>>,
    /// Data frames dropped because `data` was full.
    pub dropped: u64,
    /// Whether `stats` changed since [`Reports::take_stats_changed`].
    stats_changed: bool,
}

impl Reports {
    /// Decode bytes read from the device.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let Some(f) = self.decoder.push(b) else {
                continue;
            };
            let (c, d) = (f.cmd, f.data.to_vec());
            self.on_frame(c, &d);
        }
    }

    /// Forget echoed settings before configuring again.
    pub fn clear_echoes(&mut self) {
        self.echo = Echoes::default();
    }

    /// Whether the statistics changed since the last call.
    pub fn take_stats_changed(&mut self) -> bool {
        std::mem::take(&mut self.stats_changed)
    }

    fn on_frame(&mut self, c: u8, d: &[u8]) {
        let u16_at = |i: usize| d.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let u32_be = || {
            d.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let pct = |i: usize| u16_at(i).map(|v| f32::from(v) / 100.0);
        let dbm = |i: usize| d.get(i).map(|&v| i16::from(v) - cmd::RSSI_OFFSET);
        match c {
            cmd::DATA => {
                if self.data.len() >= MAX_QUEUED {
                    self.dropped += 1;
                } else if !d.is_empty() {
                    self.data.push_back(d.to_vec());
                }
            }
            cmd::DETECT => self.detected |= d.first() == Some(&cmd::DETECT_RESP),
            cmd::FW_VERSION => {
                if let [major, minor, ..] = *d {
                    self.info.firmware = Some((major, minor));
                }
            }
            cmd::PLATFORM => self.info.platform = d.first().copied(),
            cmd::MCU => self.info.mcu = d.first().copied(),
            cmd::FREQUENCY => self.echo.frequency = u32_be(),
            cmd::BANDWIDTH => self.echo.bandwidth = u32_be(),
            cmd::TXPOWER => self.echo.tx_power = d.first().copied(),
            cmd::SF => self.echo.sf = d.first().copied(),
            cmd::CR => self.echo.cr = d.first().copied(),
            cmd::RADIO_STATE => self.echo.state = d.first().copied(),
            cmd::ST_ALOCK => self.echo.st_alock = u16_at(0),
            cmd::LT_ALOCK => self.echo.lt_alock = u16_at(0),
            // READY 0 means "queue full": wait for the next one.
            cmd::READY if d.first() != Some(&0) => self.ready = self.ready.saturating_add(1),
            cmd::ERROR => {
                self.last_error = d.first().copied();
                self.stats.device_errors += 1;
                self.stats_changed = true;
            }
            cmd::STAT_RSSI => {
                self.stats.rssi_dbm = dbm(0);
                self.stats_changed = true;
            }
            cmd::STAT_SNR => {
                self.stats.snr_db = d.first().map(|&v| f32::from(v as i8) * 0.25);
                self.stats_changed = true;
            }
            cmd::STAT_CHTM if d.len() >= 11 => {
                self.stats.airtime_short_pct = pct(0);
                self.stats.airtime_long_pct = pct(2);
                self.stats.channel_load_short_pct = pct(4);
                self.stats.channel_load_long_pct = pct(6);
                self.stats.noise_floor_dbm = dbm(9);
                self.stats_changed = true;
            }
            // Other reports (counters, battery, temperature, CSMA, physical parameters,
            // random bytes) are not needed by the node.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(c: u8, d: &[u8]) -> Vec<u8> {
        kiss::escaped(c, d).collect()
    }

    #[test]
    fn decodes_detect_echoes_and_stats() {
        let mut r = Reports::default();
        let mut bytes = frame(cmd::DETECT, &[cmd::DETECT_RESP]);
        bytes.extend(frame(cmd::FW_VERSION, &[1, 82]));
        bytes.extend(frame(cmd::PLATFORM, &[cmd::PLATFORM_ESP32]));
        bytes.extend(frame(cmd::FREQUENCY, &868_100_000u32.to_be_bytes()));
        bytes.extend(frame(cmd::STAT_RSSI, &[157 - 90]));
        bytes.extend(frame(cmd::STAT_SNR, &[(-8i8) as u8]));
        bytes.extend(frame(
            cmd::STAT_CHTM,
            &[0, 50, 0, 100, 0x03, 0xE8, 0, 10, 60, 57, 0xFF],
        ));
        bytes.extend(frame(cmd::DATA, &[1, 2, 3]));
        // A split feed decodes the same.
        let (a, b) = bytes.split_at(7);
        r.feed(a);
        r.feed(b);
        assert!(r.detected);
        assert_eq!(r.info.firmware, Some((1, 82)));
        assert_eq!(r.info.platform, Some(0x80));
        assert_eq!(r.echo.frequency, Some(868_100_000));
        assert_eq!(r.stats.rssi_dbm, Some(-90));
        assert_eq!(r.stats.snr_db, Some(-2.0));
        assert_eq!(r.stats.airtime_short_pct, Some(0.5));
        assert_eq!(r.stats.airtime_long_pct, Some(1.0));
        assert_eq!(r.stats.channel_load_short_pct, Some(10.0));
        assert_eq!(r.stats.noise_floor_dbm, Some(-100));
        assert_eq!(r.data.pop_front(), Some(vec![1, 2, 3]));
        assert!(r.take_stats_changed());
        assert!(!r.take_stats_changed());
    }

    #[test]
    fn short_reports_and_noise_do_not_panic() {
        let mut r = Reports::default();
        for c in 0..=255u8 {
            r.feed(&frame(c, &[]));
            r.feed(&frame(c, &[1]));
        }
        r.feed(&[0xC0, 0xDB, 0xC0, 0xDB]);
        assert!(
            r.info.firmware.is_none(),
            "a 1-byte version is not a version"
        );
    }
}
