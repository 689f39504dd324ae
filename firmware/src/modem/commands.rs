//! The host command set (RNode `serial_callback`): what each command does and what the
//! modem answers.
//!
//! Settings are echoed with the value actually in force, which is how RNS checks them:
//! TX power is clamped to the radio's maximum, SF to 5–12 and CR to 5–8 (as RNode
//! does); a frequency or bandwidth outside RNS's range (137 MHz–3 GHz, 7.8–1625 kHz) or
//! one the radio refuses is not applied, so the echo shows the old value and RNS's
//! validation fails. `0` (frequency, bandwidth) or `0xFF` (TX power, SF, CR) only asks
//! for the current value.

use super::{Modem, Settings, RSSI_UNKNOWN, SNR_UNKNOWN};
use crate::airtime::{BANDWIDTH_MAX_HZ, BANDWIDTH_MIN_HZ, CR_MAX, CR_MIN, SF_MAX, SF_MIN};
use crate::airtime_meter::AirtimeLimits;
use crate::cmd;
use crate::csma::{ContentionWindow, Csma, CsmaTiming};
use crate::noise::RfEnvironment;
use crate::queue::QueueError;
use crate::radio::Radio;
use crate::report::{self, rssi_byte};
use crate::rng::Rng;
use crate::split::Reassembler;

/// Lowest frequency RNS configures, Hz.
pub const FREQUENCY_MIN_HZ: u32 = 137_000_000;
/// Highest frequency RNS configures, Hz.
pub const FREQUENCY_MAX_HZ: u32 = 3_000_000_000;

/// "Report the current value" for the one-byte settings.
const QUERY: u8 = 0xFF;

fn be_u32(data: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(..4)?.try_into().ok()?))
}

fn be_u16(data: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(..2)?.try_into().ok()?))
}

impl<R: Radio, G: Rng> Modem<R, G> {
    pub(super) fn handle_command(&mut self, command: u8, data: &[u8], now: u64) {
        let first = data.first().copied();
        match command {
            cmd::DATA => self.host_data(data, now),
            cmd::FREQUENCY => {
                if let Some(hz) = be_u32(data) {
                    if (FREQUENCY_MIN_HZ..=FREQUENCY_MAX_HZ).contains(&hz) {
                        self.change_settings(Settings {
                            frequency_hz: hz,
                            ..self.settings
                        });
                    }
                    self.report_frequency();
                }
            }
            cmd::BANDWIDTH => {
                if let Some(hz) = be_u32(data) {
                    if (BANDWIDTH_MIN_HZ..=BANDWIDTH_MAX_HZ).contains(&hz) {
                        self.change_settings(Settings {
                            bandwidth_hz: hz,
                            ..self.settings
                        });
                    }
                    let bw = self.settings.bandwidth_hz.to_be_bytes();
                    self.out.push_frame(cmd::BANDWIDTH, &bw);
                }
            }
            cmd::TXPOWER => {
                if let Some(p) = first {
                    if p != QUERY {
                        let p = p.min(self.config.max_tx_power_dbm);
                        self.change_settings(Settings {
                            tx_power_dbm: Some(p),
                            ..self.settings
                        });
                    }
                    let txp = self.settings.tx_power_dbm.unwrap_or(QUERY);
                    self.out.push_frame(cmd::TXPOWER, &[txp]);
                }
            }
            cmd::SF => {
                if let Some(sf) = first {
                    if sf != QUERY {
                        self.change_settings(Settings {
                            sf: sf.clamp(SF_MIN, SF_MAX),
                            ..self.settings
                        });
                    }
                    self.out.push_frame(cmd::SF, &[self.settings.sf]);
                }
            }
            cmd::CR => {
                if let Some(cr) = first {
                    if cr != QUERY {
                        self.change_settings(Settings {
                            cr: cr.clamp(CR_MIN, CR_MAX),
                            ..self.settings
                        });
                    }
                    self.out.push_frame(cmd::CR, &[self.settings.cr]);
                }
            }
            cmd::RADIO_STATE => {
                self.host_attached = true;
                match first {
                    Some(cmd::RADIO_ASK) => {}
                    Some(cmd::RADIO_OFF) => self.stop_radio(),
                    Some(cmd::RADIO_ON) => self.start_radio(now),
                    _ => return,
                }
                self.out
                    .push_frame(cmd::RADIO_STATE, &[u8::from(self.radio_on)]);
            }
            cmd::RADIO_LOCK => {
                let locked = u8::from(self.settings.locked());
                self.out.push_frame(cmd::RADIO_LOCK, &[locked]);
            }
            cmd::DETECT if first == Some(cmd::DETECT_REQ) => {
                self.host_attached = true;
                self.out.push_frame(cmd::DETECT, &[cmd::DETECT_RESP]);
            }
            cmd::LEAVE if first == Some(cmd::LEAVE_VALUE) => {
                self.host_attached = false;
                self.last_rssi = RSSI_UNKNOWN;
                self.last_snr_raw = SNR_UNKNOWN;
            }
            cmd::ST_ALOCK => {
                if let Some(v) = be_u16(data) {
                    self.limits.short_term = AirtimeLimits::normalize(v);
                    let echo = self.limits.short_term.to_be_bytes();
                    self.out.push_frame(cmd::ST_ALOCK, &echo);
                }
            }
            cmd::LT_ALOCK => {
                if let Some(v) = be_u16(data) {
                    self.limits.long_term = AirtimeLimits::normalize(v);
                    let echo = self.limits.long_term.to_be_bytes();
                    self.out.push_frame(cmd::LT_ALOCK, &echo);
                }
            }
            cmd::READY => {
                let ready = u8::from(!self.queue.is_full());
                self.out.push_frame(cmd::READY, &[ready]);
            }
            cmd::STAT_RX => {
                let v = self.stats.rx_packets.to_be_bytes();
                self.out.push_frame(cmd::STAT_RX, &v);
            }
            cmd::STAT_TX => {
                let v = self.stats.tx_packets.to_be_bytes();
                self.out.push_frame(cmd::STAT_TX, &v);
            }
            cmd::STAT_RSSI => {
                self.out
                    .push_frame(cmd::STAT_RSSI, &[rssi_byte(self.last_rssi)]);
            }
            cmd::STAT_SNR => {
                self.out.push_frame(cmd::STAT_SNR, &[self.last_snr_raw]);
            }
            cmd::STAT_CHTM => {
                let payload = self.channel_stats(now).to_bytes();
                self.out.push_frame(cmd::STAT_CHTM, &payload);
            }
            cmd::STAT_PHYPRM => self.report_phy(),
            cmd::STAT_CSMA => {
                let w = self.window.to_bytes();
                self.out.push_frame(cmd::STAT_CSMA, &w);
            }
            cmd::RANDOM => {
                let r = self.rng.next_u32() as u8;
                self.out.push_frame(cmd::RANDOM, &[r]);
            }
            cmd::FW_VERSION => {
                let (major, minor) = self.config.firmware_version;
                self.out.push_frame(cmd::FW_VERSION, &[major, minor]);
            }
            cmd::PLATFORM => {
                self.out.push_frame(cmd::PLATFORM, &[self.config.platform]);
            }
            cmd::MCU => {
                self.out.push_frame(cmd::MCU, &[self.config.mcu]);
            }
            cmd::RESET if first == Some(cmd::RESET_VALUE) => self.reboot(now),
            // No display: RNode answers a read with a single 0xFF.
            cmd::FB_READ | cmd::DISP_READ if first.is_some_and(|b| b != 0) => {
                self.out.push_frame(command, &[0xFF]);
            }
            // DETECT, LEAVE and RESET with other payloads; BLINK, FB_EXT, FB_WRITE,
            // BT_CTRL, ROM_READ and anything unknown: no LEDs, display, Bluetooth or
            // EEPROM here, and RNode sends nothing back for them.
            _ => {}
        }
    }

    fn host_data(&mut self, packet: &[u8], now: u64) {
        self.host_attached = true;
        match self.queue.push(packet) {
            Ok(()) => {
                if self.queue.is_full() {
                    self.host_wants_ready = true;
                } else {
                    self.out.push_frame(cmd::READY, &[0x01]);
                }
                if self.radio_on && self.burst.is_none() && self.tx_wake.is_none() {
                    self.tx_wake = Some(now);
                }
            }
            Err(QueueError::Full) => {
                self.stats.queue_rejected = self.stats.queue_rejected.saturating_add(1);
                self.host_wants_ready = true;
                if self.config.queue_full_error {
                    self.out.push_frame(cmd::ERROR, &[cmd::ERROR_QUEUE_FULL]);
                }
            }
            Err(QueueError::Empty | QueueError::TooLong(_)) => {}
        }
    }

    /// Apply new settings; while the radio is on they go to the radio first, and are
    /// kept only if it accepts them.
    fn change_settings(&mut self, new: Settings) {
        if new == self.settings {
            return;
        }
        if !self.radio_on {
            self.settings = new;
            return;
        }
        let Some(modulation) = new.modulation() else {
            return;
        };
        if self
            .radio
            .configure(&modulation, new.frequency_hz, new.tx_power_i8())
            .is_ok()
        {
            self.settings = new;
            self.modulation = Some(modulation);
            self.csma
                .set_timing(CsmaTiming::for_modulation(&modulation));
            self.report_phy();
        }
    }

    fn start_radio(&mut self, now: u64) {
        if self.radio_on || self.settings.locked() {
            return;
        }
        let Some(modulation) = self.settings.modulation() else {
            return;
        };
        let s = self.settings;
        let ok = self
            .radio
            .configure(&modulation, s.frequency_hz, s.tx_power_i8())
            .and_then(|()| self.radio.set_on(true));
        if ok.is_err() {
            let _ = self.radio.set_on(false);
            self.out.push_frame(cmd::ERROR, &[cmd::ERROR_INITRADIO]);
            return;
        }
        self.radio_on = true;
        self.modulation = Some(modulation);
        self.meter.reset();
        self.meter.advance(now);
        self.rf = RfEnvironment::new();
        self.reassembler.clear();
        self.csma = Csma::new(CsmaTiming::for_modulation(&modulation));
        self.window = ContentionWindow::default();
        self.flush_remaining = 0;
        self.tx_wake = (!self.queue.is_empty()).then_some(now);
        self.next_stats_ms = (self.config.stats_interval_ms > 0)
            .then(|| now.saturating_add(self.config.stats_interval_ms));
        self.report_phy();
        let w = self.window.to_bytes();
        self.out.push_frame(cmd::STAT_CSMA, &w);
    }

    pub(super) fn stop_radio(&mut self) {
        let _ = self.radio.set_on(false);
        self.radio_on = false;
        self.burst = None;
        self.flush_remaining = 0;
        self.csma.reset();
        self.tx_wake = None;
        self.next_stats_ms = None;
        self.reassembler.clear();
    }

    /// A hard reset: everything back to boot state, then the boot notice.
    fn reboot(&mut self, now: u64) {
        self.stop_radio();
        self.settings = Settings::BOOT;
        self.limits = AirtimeLimits::NONE;
        self.modulation = None;
        self.queue.clear();
        self.reassembler = Reassembler::new();
        self.meter.reset();
        self.meter.advance(now);
        self.rf = RfEnvironment::new();
        self.window = ContentionWindow::default();
        self.csma = Csma::new(CsmaTiming::DEFAULT);
        self.last_rssi = RSSI_UNKNOWN;
        self.last_snr_raw = SNR_UNKNOWN;
        self.host_wants_ready = false;
        self.host_attached = false;
        self.stats = Default::default();
        self.out.push_frame(cmd::RESET, &[cmd::RESET_VALUE]);
    }

    fn report_frequency(&mut self) {
        let f = self.settings.frequency_hz.to_be_bytes();
        self.out.push_frame(cmd::FREQUENCY, &f);
    }

    /// `STAT_PHYPRM`, when there is a modulation to describe.
    fn report_phy(&mut self) {
        if let Some(m) = self.modulation.filter(|_| self.radio_on) {
            let payload = report::phy_params(&m, &self.csma.timing());
            self.out.push_frame(cmd::STAT_PHYPRM, &payload);
        }
    }
}
