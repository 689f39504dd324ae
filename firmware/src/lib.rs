//! The RNode-compatible modem core.
//!
//! Everything an RNode does between its USB serial port and its LoRa radio, written
//! `#![no_std]` with fixed-size `heapless` buffers so the same code runs on a
//! microcontroller and inside Grid's virtual radios (`grid radio-sim`). The host side of
//! the protocol (Grid's RNode interface) uses the [`kiss`] codec and [`cmd`] bytes from
//! here too, so both ends agree by construction.
//!
//! Facts: `rns-wire.md` §10 (host ↔ RNode protocol) and `lora-airtime.md`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cmd;
pub mod kiss;
