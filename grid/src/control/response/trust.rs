//! Answers about trust and pairing: `trust`, `trust_list`, `pair_offer`, `pair_status`,
//! `pair_join`.

use rns_core::AddressHash;
use serde::{Deserialize, Serialize};

use crate::control::request::hash;
use crate::trust::TrustLevel;

/// The answer to `trust` and `pair_join`: an identity's trust level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustOf {
    /// The identity.
    #[serde(with = "hash")]
    pub identity: AddressHash,
    /// Its level.
    pub level: TrustLevel,
}

/// The answer to `trust_list`: the identities listed, and the level of all others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustList {
    /// Every listed identity with its level.
    pub entries: Vec<TrustOf>,
    /// The level of identities not listed.
    pub default: TrustLevel,
}

/// The answer to `pair_offer`: the code to give the other node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairOffered {
    /// The pairing code (four words).
    pub code: String,
    /// This node's `grid.node` destination, for `grid pair <node> <code>`.
    #[serde(with = "hash")]
    pub node: AddressHash,
    /// The level the code grants.
    pub level: TrustLevel,
    /// Seconds the offer stays open.
    pub expires_in_s: u64,
    /// Wrong codes tolerated before the offer closes.
    pub tries: u8,
}

/// The answer to `pair_status`: where the latest offer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PairStatus {
    /// No offer was made.
    None,
    /// The offer is open.
    Waiting {
        /// Seconds left.
        expires_in_s: u64,
    },
    /// Another node presented the code and is now trusted.
    Paired {
        /// Its identity.
        #[serde(with = "hash")]
        identity: AddressHash,
        /// The level granted.
        level: TrustLevel,
    },
    /// The offer closed without pairing.
    Closed {
        /// Why (expired, too many wrong codes, …).
        reason: String,
    },
}
