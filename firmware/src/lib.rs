//! The RNode-compatible modem core.
//!
//! Everything an RNode does between its USB serial port and its LoRa radio, written
//! `#![no_std]` with fixed-size `heapless` buffers so the same code runs on a
//! microcontroller and inside Grid's virtual radios (`grid radio-sim`). The host side of
//! the protocol (Grid's RNode interface) uses the [`kiss`] codec and [`cmd`] bytes from
//! here too, so both ends agree by construction.
//!
//! Facts: `rns-wire.md` §10 (host ↔ RNode protocol) and `lora-airtime.md`.
//!
//! # How the pieces fit
//!
//! [`modem::Modem`] is the whole device, sans-IO: host bytes go in through the [`kiss`]
//! decoder and are acted on per [`cmd`] byte; replies and received packets come back out
//! of a bounded [`report::HostOutput`]. Data frames wait in the [`queue`]; each
//! [`Modem::poll`](modem::Modem::poll) samples the channel through the [`radio::Radio`]
//! trait (feeding the [`noise`] floor), checks the airtime lock kept by
//! [`airtime_meter`], runs listen-before-talk in [`csma`] (randomness from [`rng`]) and,
//! when the channel is won, cuts the packet into one or two LoRa frames with [`split`]
//! and starts them on the radio. How long each frame stays on air comes from
//! [`airtime`], which also gives RNode's preamble and the CSMA slot sizes. Received
//! frames are joined again by [`split::Reassembler`] and sent to the host after their
//! RSSI and SNR. Time is always passed in as milliseconds; nothing here owns a clock,
//! allocates or blocks.
//!
//! ```
//! use grid_firmware::{airtime::Modulation, modem::{Modem, ModemConfig}};
//! use grid_firmware::radio::{Radio, RadioError};
//! use grid_firmware::{cmd, kiss, rng::XorShift32};
//!
//! struct Air(Vec<Vec<u8>>);
//! impl Radio for Air {
//!     fn configure(&mut self, _: &Modulation, _: u32, _: i8) -> Result<(), RadioError> { Ok(()) }
//!     fn set_on(&mut self, _: bool) -> Result<(), RadioError> { Ok(()) }
//!     fn channel_busy(&mut self) -> bool { false }
//!     fn current_rssi(&mut self) -> i16 { -120 }
//!     fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError> {
//!         self.0.push(frame.to_vec());
//!         Ok(())
//!     }
//! }
//!
//! let mut modem = Modem::new(Air(Vec::new()), XorShift32::new(1), ModemConfig::default());
//! let host: Vec<u8> = [
//!     kiss::escaped(cmd::FREQUENCY, &868_100_000u32.to_be_bytes()).collect::<Vec<u8>>(),
//!     kiss::escaped(cmd::BANDWIDTH, &125_000u32.to_be_bytes()).collect(),
//!     kiss::escaped(cmd::TXPOWER, &[14]).collect(),
//!     kiss::escaped(cmd::SF, &[9]).collect(),
//!     kiss::escaped(cmd::RADIO_STATE, &[cmd::RADIO_ON]).collect(),
//!     kiss::escaped(cmd::DATA, b"hello").collect(),
//! ]
//! .concat();
//! modem.host_bytes(&host, 0);
//! let mut now = 0;
//! while modem.radio().0.is_empty() {
//!     let _ = modem.poll(now);
//!     now = modem.next_wakeup().unwrap();
//! }
//! assert_eq!(&modem.radio().0[0][1..], b"hello");
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod airtime;
pub mod airtime_meter;
pub mod cmd;
pub mod csma;
pub mod kiss;
pub mod modem;
pub mod noise;
pub mod queue;
pub mod radio;
pub mod report;
pub mod rng;
pub mod split;
