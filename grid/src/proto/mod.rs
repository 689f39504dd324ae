//! The grid layer's decisions without IO: state machines that take time (and anything
//! random) as input and say what to do, so they run the same in a node, in a test and in
//! a simulator. Nothing here uses tokio, sockets, files, threads or the clock (a test in
//! `tests/layering.rs` checks it).

pub mod acl;
pub mod bundle;
pub mod capabilities;
pub mod command_offers;
pub mod compute_offer;
pub mod courier;
pub mod custody;
pub mod dht;
pub mod flood;
pub mod frame;
pub mod gossip;
pub mod inbound;
pub mod layer;
pub mod neighbours;
pub mod pairing;
pub mod placement;
pub mod rate_limit;
pub mod request_log;
pub mod routing;
pub mod subscriptions;
pub mod wire;
