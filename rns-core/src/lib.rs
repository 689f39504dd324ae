//! # rns-core
//!
//! A sans-IO implementation of the Reticulum (RNS 1.5.x) network protocol core.
//!
//! The crate does no IO and reads no clock. Callers pass time in ([`time::Instant`]) and
//! hand over a CSPRNG; frames go in through [`transport::Transport::handle_inbound`] and
//! come out of [`transport::Transport::poll_transmit`]. That makes every behaviour
//! deterministic under test and lets whole networks run inside one process.
//!
//! Layers, bottom up:
//! - [`hash`], [`crypto`]: SHA-256 addressing, HKDF, the RNS token (AES-256-CBC + HMAC).
//! - [`identity`], [`destination`]: keys, signatures, SINGLE encryption, address derivation.
//! - [`packet`], [`announce`], [`proof`], [`path_request`], [`ifac`]: wire formats.
//! - [`transport`]: path table, forwarding, announce propagation and caps, path requests,
//!   ingress control, receipts, and the link table.
//! - [`link`]: link state machines (both roles), requests and responses, link proofs.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod announce;
pub mod crypto;
pub mod destination;
pub mod hash;
pub mod identity;
pub mod ifac;
pub mod link;
pub mod packet;
pub mod path_request;
pub mod proof;
pub mod ratchets;
pub mod resource;
/// A deterministic in-process network of transports with a virtual clock, for tests
/// here and in the layers above (feature `testnet`).
#[cfg(any(test, feature = "testnet"))]
pub mod testnet;
pub mod time;
pub mod transport;

pub use hash::AddressHash;
pub use identity::{Identity, PublicIdentity};
/// The msgpack value type used by link requests and responses.
pub use rmpv;
pub use time::Instant;
