//! Bundles on the wire, without IO: the sealed envelope and the `grid/bundle` exchange.
//! (The store and the courier that moves bundles are in [`crate::bundle`].)

pub mod envelope;
pub mod wire;
