//! RNode command bytes (the KISS command byte of each frame) and their fixed values.
//!
//! Unlike generic KISS, RNode does not mask the command byte to its low nibble.

/// A data frame: one raw RNS packet.
pub const DATA: u8 = 0x00;
/// Frequency, u32 big-endian Hz; echoed.
pub const FREQUENCY: u8 = 0x01;
/// Bandwidth, u32 big-endian Hz; echoed.
pub const BANDWIDTH: u8 = 0x02;
/// TX power, u8 dBm; echoed.
pub const TXPOWER: u8 = 0x03;
/// Spreading factor, u8 5–12; echoed.
pub const SF: u8 = 0x04;
/// Coding rate, u8 5–8 (4/5 … 4/8); echoed.
pub const CR: u8 = 0x05;
/// Radio state: [`RADIO_OFF`], [`RADIO_ON`] or [`RADIO_ASK`]; answered with the state.
pub const RADIO_STATE: u8 = 0x06;
/// Radio lock state.
pub const RADIO_LOCK: u8 = 0x07;
/// Detect: the host sends [`DETECT_REQ`], the device answers [`DETECT_RESP`].
pub const DETECT: u8 = 0x08;
/// The host is leaving ([`LEAVE_VALUE`]).
pub const LEAVE: u8 = 0x0A;
/// Short-term airtime limit, u16 big-endian percent × 100; echoed.
pub const ST_ALOCK: u8 = 0x0B;
/// Long-term airtime limit, u16 big-endian percent × 100; echoed.
pub const LT_ALOCK: u8 = 0x0C;
/// Flow control: the device is ready for the next packet.
pub const READY: u8 = 0x0F;
/// Received packet count, u32.
pub const STAT_RX: u8 = 0x21;
/// Transmitted packet count, u32.
pub const STAT_TX: u8 = 0x22;
/// RSSI of the last packet, u8: dBm = value − [`RSSI_OFFSET`].
pub const STAT_RSSI: u8 = 0x23;
/// SNR of the last packet, i8: dB = value × 0.25.
pub const STAT_SNR: u8 = 0x24;
/// Channel time: 11 bytes (see [`crate::cmd`] docs in `rns-wire.md` §10.2).
pub const STAT_CHTM: u8 = 0x25;
/// Physical parameters: 12 bytes (six u16).
pub const STAT_PHYPRM: u8 = 0x26;
/// Battery state and percent.
pub const STAT_BAT: u8 = 0x27;
/// CSMA contention window: band, min, max.
pub const STAT_CSMA: u8 = 0x28;
/// MCU temperature: °C = value − 120.
pub const STAT_TEMP: u8 = 0x29;
/// Blink the LEDs.
pub const BLINK: u8 = 0x30;
/// A random byte.
pub const RANDOM: u8 = 0x40;
/// External framebuffer on/off.
pub const FB_EXT: u8 = 0x41;
/// Read the framebuffer.
pub const FB_READ: u8 = 0x42;
/// Write a framebuffer line.
pub const FB_WRITE: u8 = 0x43;
/// Bluetooth control.
pub const BT_CTRL: u8 = 0x46;
/// Platform query / answer ([`PLATFORM_ESP32`] …).
pub const PLATFORM: u8 = 0x48;
/// MCU query / answer.
pub const MCU: u8 = 0x49;
/// Firmware version query / answer: major u8, minor u8.
pub const FW_VERSION: u8 = 0x50;
/// EEPROM read.
pub const ROM_READ: u8 = 0x51;
/// Reset ([`RESET_VALUE`]).
pub const RESET: u8 = 0x55;
/// Read the display.
pub const DISP_READ: u8 = 0x66;
/// An error report (one of the `ERROR_*` codes).
pub const ERROR: u8 = 0x90;

/// The detect request payload.
pub const DETECT_REQ: u8 = 0x73;
/// The detect answer payload.
pub const DETECT_RESP: u8 = 0x46;
/// [`RADIO_STATE`] off.
pub const RADIO_OFF: u8 = 0x00;
/// [`RADIO_STATE`] on.
pub const RADIO_ON: u8 = 0x01;
/// [`RADIO_STATE`] query.
pub const RADIO_ASK: u8 = 0xFF;
/// [`LEAVE`] payload.
pub const LEAVE_VALUE: u8 = 0xFF;
/// [`RESET`] payload.
pub const RESET_VALUE: u8 = 0xF8;
/// Subtract from [`STAT_RSSI`] (and channel-time RSSI bytes) for dBm.
pub const RSSI_OFFSET: i16 = 157;

/// Platform: AVR.
pub const PLATFORM_AVR: u8 = 0x90;
/// Platform: ESP32.
pub const PLATFORM_ESP32: u8 = 0x80;
/// Platform: nRF52.
pub const PLATFORM_NRF52: u8 = 0x70;

/// Error: the radio failed to initialise.
pub const ERROR_INITRADIO: u8 = 0x01;
/// Error: a transmission failed.
pub const ERROR_TXFAILED: u8 = 0x02;
/// Error: the EEPROM is locked.
pub const ERROR_EEPROM_LOCKED: u8 = 0x03;
/// Error: the TX queue is full.
pub const ERROR_QUEUE_FULL: u8 = 0x04;
/// Error: memory is low.
pub const ERROR_MEMORY_LOW: u8 = 0x05;
/// Error: the modem timed out.
pub const ERROR_MODEM_TIMEOUT: u8 = 0x06;

/// The oldest firmware version RNS accepts (1.52).
pub const MIN_FIRMWARE: (u8, u8) = (1, 52);

/// MCU: ATmega1284P.
pub const MCU_1284P: u8 = 0x91;
/// MCU: ATmega2560.
pub const MCU_2560: u8 = 0x92;
/// MCU: ESP32.
pub const MCU_ESP32: u8 = 0x81;
/// MCU: nRF52.
pub const MCU_NRF52: u8 = 0x71;
