//! Answers about the DHT: `dht_provide` and `dht_find`.

use rns_core::AddressHash;
use serde::{Deserialize, Serialize};

use crate::control::request::hash;

/// A node found through the DHT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtNode {
    /// Its identity hash.
    #[serde(with = "hash")]
    pub identity: AddressHash,
    /// Its `grid.node` destination.
    #[serde(with = "hash")]
    pub node: AddressHash,
}

/// The answer to `dht_provide` and `dht_find`: how the lookup ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtLookup {
    /// The key looked up (32 hex characters).
    pub key: String,
    /// Providers found (`dht_find`).
    pub providers: Vec<DhtNode>,
    /// The nearest nodes that answered (for `dht_provide`: the nodes told).
    pub nodes: Vec<DhtNode>,
    /// The round the providers were found in (or the deepest round of `nodes`).
    pub hops: u32,
    /// Requests sent.
    pub requests: u32,
    /// Requests unanswered or refused.
    pub failures: u32,
    /// How long it took, ms.
    pub elapsed_ms: u64,
    /// Whether it ran out of time.
    pub timed_out: bool,
}
