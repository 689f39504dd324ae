//! # grid
//!
//! The Grid node: it drives the sans-IO [`rns_core`] transport with real interfaces from
//! [`grid_interfaces`], keeps its state in one directory ([`state::StateDir`]), and serves
//! the `grid` CLI over a local control socket.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod audit;
pub mod bundle;
pub mod clock;
pub mod commands;
pub mod config;
pub mod control;
pub mod error;
pub mod governor;
pub mod known_nodes;
pub mod node;
pub mod proto;
pub mod state;
#[cfg(test)]
mod test_util;
pub mod trust;

pub use error::Error;
pub use node::{run, run_with_services, NodeError};
/// The grid layer's sans-IO parts, at the crate root where callers have always found them.
pub use proto::{acl, capabilities, frame, routing};
