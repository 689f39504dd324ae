//! Answers about the catalog: `catalog`.

use rns_core::AddressHash;
use serde::{Deserialize, Serialize};

use crate::control::request::hash;
use crate::proto::gossip::entry::{Body, Entry};

/// One catalog entry, as `grid catalog` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Its digest (32 hex characters).
    pub digest: String,
    /// `adapter`, `command` or `compute`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// A line about it.
    pub summary: String,
    /// The publisher's identity hash.
    #[serde(with = "hash")]
    pub publisher: AddressHash,
    /// Its version (a higher one replaces it).
    pub seq: u64,
    /// When it stops being valid, ms since the Unix epoch.
    pub expires_ms: u64,
    /// An adapter's package hash (64 hex characters), to fetch it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// A compute offer's free RAM and GPU memory (MB) and load (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<(u32, u32, u8)>,
}

impl CatalogEntry {
    /// How `entry` is shown (its signature was checked when it was made).
    pub fn of(entry: &Entry) -> CatalogEntry {
        let r = entry.record();
        let publisher = rns_core::PublicIdentity::from_bytes(entry.publisher())
            .map_or(AddressHash([0; 16]), |p| p.hash());
        let (kind, content_hash, compute) = match r.body {
            Body::Adapter { content_hash, .. } => {
                ("adapter", Some(hex::encode(content_hash)), None)
            }
            Body::Command { .. } => ("command", None, None),
            Body::Compute {
                ram_mb,
                gpu_mb,
                load_pct,
            } => ("compute", None, Some((ram_mb, gpu_mb, load_pct))),
        };
        CatalogEntry {
            digest: hex::encode(entry.digest()),
            kind: kind.into(),
            name: r.name.clone(),
            summary: r.summary.clone(),
            publisher,
            seq: r.seq,
            expires_ms: r.expires_ms,
            content_hash,
            compute,
        }
    }
}

/// The answer to `catalog`: the entries this node holds, its own and gossip's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The entries, by digest.
    pub entries: Vec<CatalogEntry>,
    /// Neighbours the node gossips with on fast interfaces.
    pub neighbours: usize,
    /// Neighbours it gossips with over radio.
    #[serde(default)]
    pub radio_neighbours: usize,
    /// Gossip messages to radio neighbours not sent because the interface's airtime for
    /// discovery was spent.
    #[serde(default)]
    pub radio_skipped: u64,
}
