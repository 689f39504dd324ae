//! The LoRa transceiver as the modem sees it: a deliberately small trait, so an SX126x
//! driver on hardware and Grid's virtual radio can both implement it.

use crate::airtime::Modulation;
use core::fmt;

/// Why the transceiver refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadioError {
    /// The chip did not answer or could not be initialised.
    Init,
    /// The chip cannot use these settings (frequency, bandwidth, power …).
    Unsupported,
    /// The transmission could not be started.
    Transmit,
    /// The chip is busy (for example still transmitting).
    Busy,
}

impl fmt::Display for RadioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RadioError::Init => "the radio could not be initialised",
            RadioError::Unsupported => "the radio does not support these settings",
            RadioError::Transmit => "the radio could not start the transmission",
            RadioError::Busy => "the radio is busy",
        })
    }
}

/// A LoRa transceiver.
///
/// The modem calls these from [`Modem`](crate::modem::Modem) methods only, never from an
/// interrupt. Reception is pushed the other way: whoever drives the radio hands each
/// received frame to [`Modem::radio_received`](crate::modem::Modem::radio_received).
pub trait Radio {
    /// Apply modulation, centre frequency and output power. Called when the radio is
    /// switched on and whenever the host changes a setting while it is on.
    fn configure(
        &mut self,
        modulation: &Modulation,
        frequency_hz: u32,
        tx_power_dbm: i8,
    ) -> Result<(), RadioError>;

    /// Switch the transceiver on (listening) or off (sleep).
    fn set_on(&mut self, on: bool) -> Result<(), RadioError>;

    /// Whether a LoRa carrier (preamble or frame) is on the channel right now. Sampled
    /// for CSMA at each [`Modem::poll`](crate::modem::Modem::poll).
    fn channel_busy(&mut self) -> bool;

    /// The instantaneous channel RSSI in dBm, for the noise floor and interference
    /// detection.
    fn current_rssi(&mut self) -> i16;

    /// Start sending one LoRa frame (at most 255 bytes, header included). Returns as
    /// soon as the transmission has started; the modem itself knows how long the frame
    /// stays on air (see [`Modulation::airtime_us`]).
    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError>;
}

impl<T: Radio + ?Sized> Radio for &mut T {
    fn configure(
        &mut self,
        modulation: &Modulation,
        frequency_hz: u32,
        tx_power_dbm: i8,
    ) -> Result<(), RadioError> {
        (**self).configure(modulation, frequency_hz, tx_power_dbm)
    }
    fn set_on(&mut self, on: bool) -> Result<(), RadioError> {
        (**self).set_on(on)
    }
    fn channel_busy(&mut self) -> bool {
        (**self).channel_busy()
    }
    fn current_rssi(&mut self) -> i16 {
        (**self).current_rssi()
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError> {
        (**self).transmit(frame)
    }
}
