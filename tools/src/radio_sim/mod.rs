//! Virtual RNode radios (`grid radio-sim`): pseudo-terminals served by the
//! `grid-firmware` modem core, sharing a simulated LoRa channel.

pub mod medium;
pub mod pty;
pub mod sim;
