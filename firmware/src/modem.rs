//! The sans-IO RNode modem: host KISS bytes in, host bytes out, LoRa frames through a
//! [`Radio`], time passed in as milliseconds.
//!
//! Driving it:
//!
//! * every byte from the host goes to [`Modem::host_byte`];
//! * every frame the radio receives goes to [`Modem::radio_received`];
//! * [`Modem::poll`] runs CSMA, the airtime lock, the transmit queue and the periodic
//!   reports; call it at [`Modem::next_wakeup`] (and whenever the channel may have
//!   changed, so CSMA samples it);
//! * bytes for the host come out of [`Modem::pop_host_byte`] / [`Modem::host_output`].
//!
//! **On-air time.** [`Radio::transmit`] only starts a frame; the modem computes when
//! it ends from the modulation ([`Modulation::airtime_us`]) and keeps the radio busy
//! until then. [`Modem::poll`] reports each frame it starts as a [`TxStart`] whose
//! `end_ms` is that moment, and [`Modem::on_air_until`] tells the same later; the
//! second half of a split packet follows at the first poll at or after `end_ms`.
//! Frames received while the modem is transmitting are discarded (half duplex).

mod commands;

pub use commands::{FREQUENCY_MAX_HZ, FREQUENCY_MIN_HZ};

use crate::airtime::Modulation;
use crate::airtime_meter::{AirtimeLimits, AirtimeMeter};
use crate::cmd;
use crate::csma::{ContentionWindow, Csma, CsmaStep, CsmaTiming};
use crate::kiss;
use crate::noise::RfEnvironment;
use crate::queue::{Packet, TxQueue};
use crate::radio::Radio;
use crate::report::{self, ChannelStats, HostOutput};
use crate::rng::Rng;
use crate::split::{self, Reassembler, Received, Split, MTU};

/// Packets the transmit queue holds.
pub const TX_QUEUE_PACKETS: usize = 16;
/// Bytes the host output buffer holds (four escaped full-size data frames).
pub const HOST_OUTPUT_BYTES: usize = 4 * kiss::max_escaped_len(MTU);
/// The firmware version reported by default: 1.85 (`MAJ_VERS` 0x01, `MIN_VERS` 0x55 in
/// current RNode firmware; RNS needs at least 1.52).
pub const DEFAULT_FIRMWARE_VERSION: (u8, u8) = (0x01, 0x55);
/// How often channel statistics are reported while the radio is on, ms (RNode: about
/// once a second).
pub const DEFAULT_STATS_INTERVAL_MS: u64 = 1_000;
/// The highest TX power an SX1262 accepts, dBm; higher requests are clamped to it.
pub const SX1262_MAX_TX_POWER_DBM: u8 = 22;
/// The RSSI RNode reports before anything was received (`last_rssi = -292`).
const RSSI_UNKNOWN: i16 = -292;
/// The raw SNR RNode reports before anything was received (`0x80`).
const SNR_UNKNOWN: u8 = 0x80;

/// What the modem says about itself and a few behaviour choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModemConfig {
    /// Reported by `FW_VERSION`: major, minor.
    pub firmware_version: (u8, u8),
    /// Reported by `PLATFORM`.
    pub platform: u8,
    /// Reported by `MCU`.
    pub mcu: u8,
    /// TX power requests above this are clamped to it (and the clamped value echoed,
    /// as RNode does).
    pub max_tx_power_dbm: u8,
    /// Report `ERROR_QUEUE_FULL` when a data frame finds the queue full. RNS 1.5 treats
    /// that code as an unknown hardware failure and restarts the interface; current
    /// RNode firmware drops the packet silently, and so does this modem by default.
    pub queue_full_error: bool,
    /// Period of the unsolicited `STAT_CHTM` report while the radio is on, ms; 0 turns
    /// it off.
    pub stats_interval_ms: u64,
    /// Send the ESP32 boot notice (`RESET 0xF8`) from [`Modem::new`], as a real board
    /// does when it starts.
    pub boot_notice: bool,
}

impl Default for ModemConfig {
    fn default() -> Self {
        ModemConfig {
            firmware_version: DEFAULT_FIRMWARE_VERSION,
            platform: cmd::PLATFORM_ESP32,
            mcu: cmd::MCU_ESP32,
            max_tx_power_dbm: SX1262_MAX_TX_POWER_DBM,
            queue_full_error: false,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
            boot_notice: true,
        }
    }
}

/// A frame [`Modem::poll`] just put on air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxStart {
    /// Frame length, RNode header included.
    pub frame_len: usize,
    /// Its time on air, µs.
    pub airtime_us: u64,
    /// When it started, ms.
    pub start_ms: u64,
    /// When it leaves the air, ms (start + airtime, rounded up).
    pub end_ms: u64,
}

/// Counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModemStats {
    /// Whole packets delivered to the host.
    pub rx_packets: u32,
    /// Frames handed in by the radio.
    pub rx_frames: u32,
    /// Received frames discarded (radio off, while transmitting, or by reassembly).
    pub rx_dropped: u32,
    /// Packets sent completely.
    pub tx_packets: u32,
    /// Frames started.
    pub tx_frames: u32,
    /// Transmissions the radio refused.
    pub tx_failed: u32,
    /// Data frames from the host refused because the queue was full.
    pub queue_rejected: u32,
}

/// The radio settings the host has made (RNode keeps 0 / `0xFF` for "unset").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    frequency_hz: u32,
    bandwidth_hz: u32,
    tx_power_dbm: Option<u8>,
    sf: u8,
    cr: u8,
}

impl Settings {
    const BOOT: Settings = Settings {
        frequency_hz: 0,
        bandwidth_hz: 0,
        tx_power_dbm: None,
        sf: 0,
        cr: 5,
    };

    /// RNode's radio lock: the radio may not start until frequency, bandwidth, TX power
    /// and spreading factor are set.
    fn locked(&self) -> bool {
        self.frequency_hz == 0
            || self.bandwidth_hz == 0
            || self.tx_power_dbm.is_none()
            || self.sf == 0
    }

    fn modulation(&self) -> Option<Modulation> {
        Modulation::rnode(self.sf, self.bandwidth_hz, self.cr).ok()
    }

    fn tx_power_i8(&self) -> i8 {
        i8::try_from(self.tx_power_dbm.unwrap_or(0)).unwrap_or(i8::MAX)
    }
}

/// The packet being sent.
#[derive(Debug, Clone)]
struct Burst {
    packet: Packet,
    header: u8,
    next_frame: usize,
    on_air_until: u64,
}

/// An RNode-compatible LoRa modem around a [`Radio`], drawing randomness from an
/// [`Rng`]. See the [module docs](self) for how to drive it.
#[derive(Debug)]
pub struct Modem<R: Radio, G: Rng> {
    radio: R,
    rng: G,
    config: ModemConfig,
    decoder: kiss::Decoder<MTU>,
    out: HostOutput<HOST_OUTPUT_BYTES>,
    settings: Settings,
    limits: AirtimeLimits,
    radio_on: bool,
    modulation: Option<Modulation>,
    csma: Csma,
    window: ContentionWindow,
    queue: TxQueue<TX_QUEUE_PACKETS>,
    burst: Option<Burst>,
    /// Packets still to go back to back after the current one (RNode flushes the whole
    /// queue once it wins the channel, except on rate-limited fast links).
    flush_remaining: usize,
    /// When the transmit side next needs a poll.
    tx_wake: Option<u64>,
    next_stats_ms: Option<u64>,
    meter: AirtimeMeter,
    rf: RfEnvironment,
    reassembler: Reassembler,
    last_rssi: i16,
    last_snr_raw: u8,
    /// A data frame was refused or filled the queue: send `READY` once there is room.
    host_wants_ready: bool,
    host_attached: bool,
    now_ms: u64,
    stats: ModemStats,
}

impl<R: Radio, G: Rng> Modem<R, G> {
    /// A freshly booted modem: radio off, nothing configured. With
    /// [`ModemConfig::boot_notice`] the host output starts with `RESET 0xF8`.
    pub fn new(radio: R, rng: G, config: ModemConfig) -> Self {
        let mut m = Modem {
            radio,
            rng,
            config,
            decoder: kiss::Decoder::new(),
            out: HostOutput::new(),
            settings: Settings::BOOT,
            limits: AirtimeLimits::NONE,
            radio_on: false,
            modulation: None,
            csma: Csma::new(CsmaTiming::DEFAULT),
            window: ContentionWindow::default(),
            queue: TxQueue::new(),
            burst: None,
            flush_remaining: 0,
            tx_wake: None,
            next_stats_ms: None,
            meter: AirtimeMeter::new(),
            rf: RfEnvironment::new(),
            reassembler: Reassembler::new(),
            last_rssi: RSSI_UNKNOWN,
            last_snr_raw: SNR_UNKNOWN,
            host_wants_ready: false,
            host_attached: false,
            now_ms: 0,
            stats: ModemStats::default(),
        };
        if config.boot_notice {
            m.out.push_frame(cmd::RESET, &[cmd::RESET_VALUE]);
        }
        m
    }

    // ---- host side -------------------------------------------------------------

    /// Take one byte from the host link. Complete frames are acted on at once; their
    /// answers go to the host output.
    pub fn host_byte(&mut self, byte: u8, now_ms: u64) {
        self.now_ms = now_ms;
        let frame = match self.decoder.push(byte) {
            Some(f) => {
                let mut data = heapless::Vec::<u8, MTU>::new();
                // Cannot fail: the decoder holds at most MTU bytes.
                let _ = data.extend_from_slice(f.data);
                Some((f.cmd, data))
            }
            None => None,
        };
        if let Some((command, data)) = frame {
            self.handle_command(command, &data, now_ms);
        }
    }

    /// Take several bytes from the host link.
    pub fn host_bytes(&mut self, bytes: &[u8], now_ms: u64) {
        for &b in bytes {
            self.host_byte(b, now_ms);
        }
    }

    /// The next byte for the host, if any.
    pub fn pop_host_byte(&mut self) -> Option<u8> {
        self.out.pop()
    }

    /// Move up to `out.len()` bytes for the host into `out`; returns how many.
    pub fn host_output(&mut self, out: &mut [u8]) -> usize {
        self.out.read(out)
    }

    /// Bytes waiting for the host.
    pub fn host_pending(&self) -> usize {
        self.out.len()
    }

    /// Frames for the host dropped because the output buffer was full.
    pub fn host_frames_dropped(&self) -> u32 {
        self.out.dropped_frames
    }

    // ---- radio side ------------------------------------------------------------

    /// The radio received `frame` (RNode header included) ending at `now_ms`, with the
    /// packet RSSI in dBm and the SNR in quarter dB. A whole packet goes to the host as
    /// `STAT_RSSI`, `STAT_SNR`, then `DATA`, as RNode sends it; the first half of a
    /// split packet is held for the second.
    pub fn radio_received(&mut self, frame: &[u8], rssi_dbm: i16, snr_db_x4: i8, now_ms: u64) {
        self.now_ms = now_ms;
        self.stats.rx_frames = self.stats.rx_frames.saturating_add(1);
        let Some(modulation) = self.modulation.filter(|_| self.radio_on) else {
            self.stats.rx_dropped = self.stats.rx_dropped.saturating_add(1);
            return;
        };
        if self.burst.as_ref().is_some_and(|b| now_ms < b.on_air_until) {
            self.stats.rx_dropped = self.stats.rx_dropped.saturating_add(1);
            return;
        }
        self.meter
            .add_busy(now_ms, modulation.airtime_us(frame.len()));
        match self.reassembler.push(frame) {
            Received::Packet(packet) => {
                self.last_rssi = rssi_dbm;
                self.last_snr_raw = snr_db_x4 as u8;
                self.stats.rx_packets = self.stats.rx_packets.saturating_add(1);
                let rssi = [report::rssi_byte(rssi_dbm)];
                let snr = [snr_db_x4 as u8];
                self.out.push_frames(&[
                    (cmd::STAT_RSSI, &rssi),
                    (cmd::STAT_SNR, &snr),
                    (cmd::DATA, packet),
                ]);
            }
            Received::Pending => {}
            Received::Dropped(_) => {
                self.stats.rx_dropped = self.stats.rx_dropped.saturating_add(1);
            }
        }
    }

    /// Run the modem at `now_ms`: sample the channel, advance CSMA, start the next
    /// frame if its time has come (calling [`Radio::transmit`]), and send due reports.
    /// Returns the frame started, if any.
    #[must_use = "a started frame tells when the radio is busy until"]
    pub fn poll(&mut self, now_ms: u64) -> Option<TxStart> {
        self.now_ms = now_ms;
        self.meter.advance(now_ms);
        if !self.radio_on {
            return None;
        }
        let busy = self.radio.channel_busy();
        let rssi = self.radio.current_rssi();
        self.rf.sample(rssi, busy);
        let started = self.drive_tx(now_ms, busy);
        self.periodic(now_ms);
        started
    }

    /// When [`Modem::poll`] next has work: the end of the frame on air, the next CSMA
    /// sample, the airtime lock's next chance to lift, or the next periodic report.
    /// `None` while the radio is off and nothing is pending.
    pub fn next_wakeup(&self) -> Option<u64> {
        if !self.radio_on {
            return None;
        }
        match (self.tx_wake, self.next_stats_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the frame now on air leaves it, ms.
    pub fn on_air_until(&self) -> Option<u64> {
        self.burst
            .as_ref()
            .map(|b| b.on_air_until)
            .filter(|&t| t > self.now_ms)
    }

    fn drive_tx(&mut self, now: u64, busy: bool) -> Option<TxStart> {
        if let Some(b) = &self.burst {
            if now < b.on_air_until {
                self.tx_wake = Some(b.on_air_until);
                return None;
            }
            let frames = Split::new(&b.packet, b.header).map_or(0, |s| s.frame_count());
            if b.next_frame < frames {
                return self.send_frame(now);
            }
            self.burst = None;
            self.stats.tx_packets = self.stats.tx_packets.saturating_add(1);
            self.report_channel_stats(now);
        }
        self.tx_wake = None;
        if self.queue.is_empty() {
            self.flush_remaining = 0;
            return None;
        }
        if self.meter.locked(now, self.limits) {
            self.flush_remaining = 0;
            self.tx_wake = Some(self.meter.next_bin_ms());
            return None;
        }
        if self.flush_remaining > 0 {
            self.flush_remaining -= 1;
            return self.start_packet(now);
        }
        let medium_free = !busy && !self.rf.interference();
        match self
            .csma
            .poll(now, medium_free, &self.window, &mut self.rng)
        {
            CsmaStep::Transmit => {
                let limited = self.modulation.is_some_and(|m| m.is_rate_limited());
                self.flush_remaining = if limited {
                    0
                } else {
                    self.queue.len().saturating_sub(1)
                };
                self.start_packet(now)
            }
            CsmaStep::WaitUntil(t) => {
                self.tx_wake = Some(t);
                None
            }
        }
    }

    fn start_packet(&mut self, now: u64) -> Option<TxStart> {
        let packet = self.queue.pop()?;
        if self.host_wants_ready {
            self.host_wants_ready = false;
            self.out.push_frame(cmd::READY, &[0x01]);
        }
        let random = self.rng.next_u32() as u8;
        let header = match Split::new(&packet, random) {
            Ok(s) => s.header(),
            Err(_) => return None,
        };
        self.burst = Some(Burst {
            packet,
            header,
            next_frame: 0,
            on_air_until: now,
        });
        self.send_frame(now)
    }

    fn send_frame(&mut self, now: u64) -> Option<TxStart> {
        let modulation = self.modulation?;
        let burst = self.burst.as_mut()?;
        let frame = Split::new(&burst.packet, burst.header)
            .ok()
            .and_then(|s| s.frame(burst.next_frame));
        let Some(frame) = frame else {
            self.burst = None;
            return None;
        };
        match self.radio.transmit(&frame) {
            Ok(()) => {
                let airtime_us = modulation.airtime_us(frame.len());
                let end_ms = now.saturating_add(airtime_us.div_ceil(1_000));
                burst.next_frame += 1;
                burst.on_air_until = end_ms;
                self.tx_wake = Some(end_ms);
                self.meter.add_airtime(now, airtime_us);
                self.stats.tx_frames = self.stats.tx_frames.saturating_add(1);
                Some(TxStart {
                    frame_len: frame.len(),
                    airtime_us,
                    start_ms: now,
                    end_ms,
                })
            }
            Err(_) => {
                self.burst = None;
                self.flush_remaining = 0;
                self.tx_wake = if self.queue.is_empty() {
                    None
                } else {
                    Some(now)
                };
                self.stats.tx_failed = self.stats.tx_failed.saturating_add(1);
                self.out.push_frame(cmd::ERROR, &[cmd::ERROR_TXFAILED]);
                None
            }
        }
    }

    fn periodic(&mut self, now: u64) {
        let interval = self.config.stats_interval_ms;
        if interval == 0 {
            self.next_stats_ms = None;
            return;
        }
        if self.next_stats_ms.is_some_and(|t| now < t) {
            return;
        }
        self.meter.sample_load(now);
        self.report_channel_stats(now);
        self.next_stats_ms = Some(now.saturating_add(interval));
    }

    /// Send `STAT_CHTM`, and `STAT_CSMA` if the contention window changed (RNode's
    /// `update_airtime`, run after each transmission and once a second).
    fn report_channel_stats(&mut self, now: u64) {
        let window = ContentionWindow::for_airtime(self.meter.airtime_short(now));
        if window != self.window {
            self.window = window;
            self.out.push_frame(cmd::STAT_CSMA, &window.to_bytes());
        }
        let payload = self.channel_stats(now).to_bytes();
        self.out.push_frame(cmd::STAT_CHTM, &payload);
    }

    fn channel_stats(&mut self, now: u64) -> ChannelStats {
        let current = self.rf.current_rssi().unwrap_or(RSSI_UNKNOWN);
        ChannelStats {
            airtime: self.meter.stats(now),
            current_rssi: current,
            noise_floor: self.rf.noise_floor().unwrap_or(RSSI_UNKNOWN),
            interference: self.rf.interference().then_some(current),
        }
    }

    // ---- state -----------------------------------------------------------------

    /// The radio.
    pub fn radio(&self) -> &R {
        &self.radio
    }

    /// The radio, mutably (for a driver or simulator that needs to reach it).
    pub fn radio_mut(&mut self) -> &mut R {
        &mut self.radio
    }

    /// The configuration given at construction.
    pub fn config(&self) -> &ModemConfig {
        &self.config
    }

    /// Whether the radio is on.
    pub fn is_radio_on(&self) -> bool {
        self.radio_on
    }

    /// The modulation in use while the radio is on (RNode's preamble rule applied).
    pub fn modulation(&self) -> Option<Modulation> {
        self.modulation.filter(|_| self.radio_on)
    }

    /// The centre frequency set by the host, Hz (0 = unset).
    pub fn frequency_hz(&self) -> u32 {
        self.settings.frequency_hz
    }

    /// The TX power set by the host (after clamping), dBm.
    pub fn tx_power_dbm(&self) -> Option<u8> {
        self.settings.tx_power_dbm
    }

    /// The airtime limits set by the host.
    pub fn airtime_limits(&self) -> AirtimeLimits {
        self.limits
    }

    /// Packets waiting to be sent.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// The current contention window.
    pub fn contention_window(&self) -> ContentionWindow {
        self.window
    }

    /// Whether a host is attached: set by `DETECT`, `RADIO_STATE` and data frames,
    /// cleared by `LEAVE` (RNode's cable state).
    pub fn host_attached(&self) -> bool {
        self.host_attached
    }

    /// Counters.
    pub fn stats(&self) -> ModemStats {
        self.stats
    }

    /// Time on air of one frame of `frame_len` bytes (header included) with the
    /// current modulation, µs.
    pub fn frame_airtime_us(&self, frame_len: usize) -> Option<u64> {
        self.modulation().map(|m| m.airtime_us(frame_len))
    }

    /// Time on air of a whole packet as it will be framed (one or two frames), µs.
    pub fn packet_airtime_us(&self, packet_len: usize) -> Option<u64> {
        self.modulation()
            .map(|m| split::packet_airtime_us(&m, packet_len))
    }
}

#[cfg(test)]
mod tests;
