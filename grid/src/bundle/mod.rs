//! Delay-tolerant bundles: sealed, end-to-end encrypted frames held until their destination
//! can be reached, kept in a crash-safe store ([`store::BundleStore`], DESIGN decision 6).
//!
//! - [`envelope`]: a frame sealed to its destination's identity, routing fields bound in.
//! - [`wire`]: the `grid/bundle` exchange between nodes (push, pull, ack, identity).
//! - [`store`]: the persistent queue, delivered-bundle marks and job results.
//! - `courier`: the task that delivers, hands over to custodians and pulls.

pub(crate) mod courier;
pub mod store;

pub use crate::proto::bundle::{envelope, wire};
