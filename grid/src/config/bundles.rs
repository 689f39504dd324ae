//! `[bundles]`: delay-tolerant delivery, the custody role, and what a custody node holds
//! for strangers.

use std::time::Duration;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBundles {
    #[serde(default)]
    custody: bool,
    #[serde(default)]
    custody_peers: Vec<String>,
    #[serde(default = "default_store_limit")]
    store_limit_mb: u64,
    #[serde(default = "default_stranger_bundles")]
    stranger_bundles: u64,
    #[serde(default = "default_stranger_mb")]
    stranger_mb: u64,
    #[serde(default = "default_strangers_share")]
    strangers_share: f64,
    #[serde(default = "default_stranger_max_ttl")]
    stranger_max_ttl: String,
}

impl Default for RawBundles {
    fn default() -> Self {
        RawBundles {
            custody: false,
            custody_peers: Vec::new(),
            store_limit_mb: default_store_limit(),
            stranger_bundles: default_stranger_bundles(),
            stranger_mb: default_stranger_mb(),
            strangers_share: default_strangers_share(),
            stranger_max_ttl: default_stranger_max_ttl(),
        }
    }
}

fn default_store_limit() -> u64 {
    256
}

fn default_stranger_bundles() -> u64 {
    256
}

fn default_stranger_mb() -> u64 {
    16
}

fn default_strangers_share() -> f64 {
    0.25
}

fn default_stranger_max_ttl() -> String {
    "1d".into()
}

/// Delay-tolerant delivery settings (`[bundles]`).
#[derive(Debug, Clone, PartialEq)]
pub struct BundleConfig {
    /// Hold bundles for other nodes and hand them on (the custody role).
    pub custody: bool,
    /// Custody nodes (`grid.node` destinations) to use besides those heard announcing.
    pub custody_peers: Vec<rns_core::AddressHash>,
    /// Most bytes of bundles kept.
    pub store_limit: u64,
    /// What a custody node holds for nodes it does not trust.
    pub strangers: StrangerConfig,
}

/// What a custody node holds for strangers: nodes it does not trust (below
/// [`crate::trust::TrustLevel::Trusted`]), so that they cannot fill its store and make its
/// own bundles fail (`[bundles] stranger_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrangerConfig {
    /// Bundles one stranger may have held (`stranger_bundles`, default 256).
    pub bundles: u64,
    /// Bytes one stranger may have held (`stranger_mb`, default 16 MiB).
    pub bytes: u64,
    /// The share of the store all strangers together may use (`strangers_share`,
    /// default 0.25).
    pub share: f64,
    /// The longest TTL accepted from a stranger (`stranger_max_ttl`, default 1 day).
    pub max_ttl: Duration,
}

impl Default for StrangerConfig {
    fn default() -> Self {
        StrangerConfig {
            bundles: default_stranger_bundles(),
            bytes: default_stranger_mb() << 20,
            share: default_strangers_share(),
            max_ttl: Duration::from_secs(86_400),
        }
    }
}

impl Default for BundleConfig {
    fn default() -> Self {
        BundleConfig {
            custody: false,
            custody_peers: Vec::new(),
            store_limit: default_store_limit() << 20,
            strangers: StrangerConfig::default(),
        }
    }
}

/// Validate `[bundles]`; an error names the key and the reason.
pub(super) fn parse(raw: &RawBundles) -> Result<BundleConfig, (String, String)> {
    let err = |key: &str, reason: &str| (format!("bundles.{key}"), reason.to_string());
    let mut custody_peers = Vec::new();
    for (i, p) in raw.custody_peers.iter().enumerate() {
        custody_peers.push(p.parse().map_err(|e| {
            (
                format!("bundles.custody_peers[{i}]"),
                format!("invalid destination hash \"{p}\": {e}"),
            )
        })?);
    }
    if raw.store_limit_mb == 0 || raw.store_limit_mb > 1 << 20 {
        return Err(err("store_limit_mb", "must be between 1 and 1048576"));
    }
    if raw.stranger_bundles == 0 || raw.stranger_bundles > 1 << 24 {
        return Err(err("stranger_bundles", "must be between 1 and 16777216"));
    }
    if raw.stranger_mb == 0 || raw.stranger_mb > 1 << 20 {
        return Err(err("stranger_mb", "must be between 1 and 1048576"));
    }
    if !(0.0..=1.0).contains(&raw.strangers_share) {
        return Err(err("strangers_share", "must be between 0 and 1"));
    }
    let max_ttl = humantime::parse_duration(raw.stranger_max_ttl.trim()).map_err(|e| {
        err(
            "stranger_max_ttl",
            &format!("not a duration (\"12h\", \"1d\"): {e}"),
        )
    })?;
    if max_ttl < Duration::from_secs(60) {
        return Err(err("stranger_max_ttl", "must be at least 1m"));
    }
    Ok(BundleConfig {
        custody: raw.custody,
        custody_peers,
        store_limit: raw.store_limit_mb << 20,
        strangers: StrangerConfig {
            bundles: raw.stranger_bundles,
            bytes: raw.stranger_mb << 20,
            share: raw.strangers_share,
            max_ttl,
        },
    })
}
