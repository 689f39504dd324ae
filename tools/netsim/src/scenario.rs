//! Scenario files: what network to build and what to run on it (TOML, see
//! `tools/netsim/scenarios/`). Unknown keys are refused, so a typo cannot silently fall
//! back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, repeated in the output.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// The network.
    pub network: Network,
    /// Nodes leaving and joining during the measurement.
    #[serde(default)]
    pub churn: Churn,
    /// A DHT workload.
    pub dht: Option<DhtWorkload>,
    /// A flood search workload.
    pub flood: Option<FloodWorkload>,
    /// A catalog gossip workload.
    pub gossip: Option<GossipWorkload>,
    /// Catalog gossip over the LoRa link model.
    pub lora: Option<LoraWorkload>,
    /// Catalog gossip on the whole stack (a real rns-core transport per node).
    pub stack: Option<StackWorkload>,
}

/// Catalog gossip on the whole stack ([`crate::stack_run`]): every node a real rns-core
/// transport announcing `grid.node` on wires of the topology (latency and loss from
/// `[network]`; jitter is not modelled), gossip over identified links. Every node
/// publishes its entries at the start; after a warm-up, new entries appear at random
/// nodes in a window, and the run measures how soon every node holds them and the wire
/// bytes that took, then the steady state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackWorkload {
    /// Entries each node publishes at the start.
    #[serde(default = "default_stack_entries")]
    pub entries_per_node: usize,
    /// New entries published in the window.
    pub published: usize,
    /// Before the window: announces, links, the first sessions, s.
    #[serde(default = "default_stack_warmup")]
    pub warmup_s: u64,
    /// The window the new entries appear in, s.
    #[serde(default = "default_window")]
    pub publish_window_s: u64,
    /// How long the run waits for every node to hold every new entry, s.
    #[serde(default = "default_window")]
    pub max_converge_s: u64,
    /// How long nothing changes after that, s.
    #[serde(default = "default_steady")]
    pub steady_s: u64,
    /// Gossip interval, s.
    #[serde(default = "default_interval")]
    pub interval_s: u64,
    /// How often each node announces `grid.node`, s.
    #[serde(default = "default_stack_announce")]
    pub announce_interval_s: u64,
    /// Every this many nodes one routes for others (0: none).
    #[serde(default)]
    pub transport_every: usize,
    /// After the steady state: flood searches from random nodes (0: none), for items
    /// placed then.
    #[serde(default)]
    pub searches: usize,
    /// Distinct items for the searches.
    #[serde(default = "default_stack_items")]
    pub items: usize,
    /// Nodes holding each item.
    #[serde(default = "default_stack_copies")]
    pub copies: usize,
    /// The searches' patience.
    #[serde(default = "default_stack_patience")]
    pub patience: String,
    /// The fraction of a query's sketch bits flipped from its item's.
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// The searches' threshold, as the fraction of bits that must agree.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// The window the searches start in, s.
    #[serde(default = "default_stack_search_window")]
    pub search_window_s: u64,
    /// After that: keys provided in the DHT, each by a random node (0: no DHT phase).
    #[serde(default)]
    pub dht_keys: usize,
    /// Provider lookups for random keys from random nodes.
    #[serde(default)]
    pub dht_lookups: usize,
    /// The window the lookups start in, s.
    #[serde(default = "default_stack_search_window")]
    pub dht_window_s: u64,
}

fn default_stack_items() -> usize {
    20
}

fn default_stack_copies() -> usize {
    3
}

fn default_stack_patience() -> String {
    "thorough".into()
}

fn default_stack_search_window() -> u64 {
    60
}

/// Nodes a stack scenario may have (each is a whole transport).
const MAX_STACK_NODES: usize = 1000;

fn default_stack_entries() -> usize {
    2
}

fn default_stack_warmup() -> u64 {
    300
}

fn default_stack_announce() -> u64 {
    600
}

/// The network the nodes are on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Nodes at the start.
    pub nodes: usize,
    /// One-way delay of a message between two nodes, ms (the mean).
    #[serde(default = "default_latency")]
    pub latency_ms: u64,
    /// Each message's delay varies uniformly by up to this much either way, ms.
    #[serde(default)]
    pub jitter_ms: u64,
    /// The fraction of messages lost.
    #[serde(default)]
    pub loss: f64,
    /// Who hears whom (see [`crate::topology`]): `full` (the default), `line`, `grid`,
    /// `random-regular`, `random-geometric` or `lan-clusters`. Workloads that ride on
    /// Reticulum paths (the DHT) ignore it.
    #[serde(default = "default_topology")]
    pub topology: String,
    /// Neighbours per node, for `random-regular`.
    pub degree: Option<usize>,
    /// Radio range in units of the unit square's side, for `random-geometric`.
    pub radius: Option<f64>,
    /// Nodes per cluster, for `lan-clusters`.
    pub cluster_size: Option<usize>,
}

fn default_topology() -> String {
    "full".into()
}

fn default_latency() -> u64 {
    50
}

/// Churn during the measurement window.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// The fraction of the starting nodes that leave (at random times, state lost).
    #[serde(default)]
    pub leave: f64,
    /// New nodes that join, as a fraction of the starting nodes (each bootstraps from a
    /// few live nodes it heard of).
    #[serde(default)]
    pub join: f64,
}

/// A DHT workload: nodes bootstrap, some provide keys, then lookups run for random keys
/// from random live nodes while the network churns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhtWorkload {
    /// Contacts each node starts with (Grid nodes it heard announce).
    #[serde(default = "default_contacts")]
    pub bootstrap_contacts: usize,
    /// Keys provided, each by one random node.
    pub keys: usize,
    /// Provider lookups in the measurement window.
    pub lookups: usize,
    /// The measurement window, s.
    #[serde(default = "default_window")]
    pub window_s: u64,
    /// Bucket size (k); the DHT's default if absent.
    pub k: Option<usize>,
    /// Requests in flight per lookup (α); the DHT's default if absent.
    pub alpha: Option<usize>,
}

/// A flood search workload: items placed at random nodes, then searches for them from
/// random nodes at each patience level, at random times in the window. Messages go only
/// between neighbours of the topology.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodWorkload {
    /// Distinct items.
    pub items: usize,
    /// Nodes holding each item (distinct nodes, at random).
    #[serde(default = "default_copies")]
    pub copies: usize,
    /// Searches per patience level.
    pub queries: usize,
    /// The patience levels to run; all four if absent.
    #[serde(default = "default_patience")]
    pub patience: Vec<String>,
    /// The fraction of the item's 384 sketch bits flipped in a query's sketch (how far the
    /// searcher's wording is from the item's description).
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// The similarity threshold (the fraction of bits that must agree).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Hits a search wants before it stops.
    #[serde(default = "default_want")]
    pub want: u8,
    /// The window searches start in, s.
    #[serde(default = "default_window")]
    pub window_s: u64,
}

/// A catalog gossip workload: every node starts holding every node's entries, then new
/// entries are published at random nodes at random times in the window, and the run
/// measures how soon every node holds every one of them and at what cost in bytes, for
/// `grid::proto::gossip` (set reconciliation) and, on the same network with the same
/// entries, the origin design's scheme (each interval, push the most recent entries to a
/// few random neighbours and get theirs back). Messages go only between neighbours of
/// the topology.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipWorkload {
    /// Entries each node has published before the run (every node holds them all).
    #[serde(default = "default_per_node")]
    pub entries_per_node: usize,
    /// New entries published during the run, each at a random node.
    pub published: usize,
    /// The window they are published in, s.
    #[serde(default = "default_publish_window")]
    pub publish_window_s: u64,
    /// Gossip interval, s (the origin design's 30).
    #[serde(default = "default_interval")]
    pub interval_s: u64,
    /// Neighbours a node gossips with each interval (the origin design's 3).
    #[serde(default = "default_fanout")]
    pub fanout: usize,
    /// Bytes a reconciliation message may take.
    #[serde(default = "default_budget")]
    pub budget: usize,
    /// Entries the origin's scheme sends each time (its "top 100").
    #[serde(default = "default_top")]
    pub baseline_top: usize,
    /// How long the run waits for every node to hold every entry, s, after the window.
    #[serde(default = "default_window")]
    pub max_converge_s: u64,
    /// How long nothing changes after that, to measure the steady-state cost, s.
    #[serde(default = "default_steady")]
    pub steady_s: u64,
}

/// Catalog gossip over the LoRa link model ([`crate::lora`]): every node starts holding
/// every node's entries, then one new adapter entry is published at the node farthest
/// (in hops) from a far-edge node, and the run measures when the far edge holds it, the
/// airtime each node spends, and whether any node ever breaks its duty cycle. Messages
/// go only between neighbours (nodes in range).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraWorkload {
    /// Spreading factor.
    #[serde(default = "default_sf")]
    pub spreading_factor: u8,
    /// Bandwidth, Hz.
    #[serde(default = "default_bandwidth")]
    pub bandwidth_hz: u32,
    /// Coding rate denominator (5 for 4/5).
    #[serde(default = "default_coding_rate")]
    pub coding_rate: u8,
    /// The fraction of any hour a node may transmit.
    #[serde(default = "default_duty_cycle")]
    pub duty_cycle: f64,
    /// Packets a node's transmit queue holds.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// A packet waiting longer than this for the channel or the budget is dropped, s.
    #[serde(default = "default_max_hold")]
    pub max_hold_s: u64,
    /// Whether nodes listen before they talk.
    #[serde(default = "default_true")]
    pub carrier_sense: bool,
    /// Entries each node has published before the run (every node holds them all).
    #[serde(default = "default_lora_per_node")]
    pub entries_per_node: usize,
    /// Gossip interval, s.
    #[serde(default = "default_lora_interval")]
    pub interval_s: u64,
    /// Neighbours a node starts a session with each interval.
    #[serde(default = "default_lora_fanout")]
    pub fanout: usize,
    /// Bytes a gossip message may take.
    #[serde(default = "default_lora_budget")]
    pub budget: usize,
    /// When the new entry is published, s after the start.
    #[serde(default = "default_publish_at")]
    pub publish_at_s: u64,
    /// Virtual time simulated, s.
    #[serde(default = "default_duration")]
    pub duration_s: u64,
    /// If set: this long after the publication, the far edge starts a flood search for
    /// the new adapter (thorough's reach), s.
    pub search_after_s: Option<u64>,
    /// How long that search waits for answers, s (thorough's 5 s is a LAN's figure; a
    /// LoRa hop takes about a second each way).
    #[serde(default = "default_search_time")]
    pub search_time_s: u64,
}

fn default_search_time() -> u64 {
    60
}

fn default_sf() -> u8 {
    9
}

fn default_bandwidth() -> u32 {
    125_000
}

fn default_coding_rate() -> u8 {
    5
}

fn default_duty_cycle() -> f64 {
    0.01
}

fn default_queue() -> usize {
    16
}

fn default_max_hold() -> u64 {
    1800
}

fn default_true() -> bool {
    true
}

fn default_lora_per_node() -> usize {
    3
}

fn default_lora_interval() -> u64 {
    300
}

fn default_lora_fanout() -> usize {
    1
}

fn default_lora_budget() -> usize {
    grid::proto::gossip::LORA_BUDGET
}

fn default_publish_at() -> u64 {
    3600
}

fn default_duration() -> u64 {
    3 * 3600
}

fn default_per_node() -> usize {
    10
}

fn default_publish_window() -> u64 {
    60
}

fn default_interval() -> u64 {
    30
}

fn default_fanout() -> usize {
    3
}

fn default_budget() -> usize {
    grid::proto::gossip::LINK_BUDGET
}

fn default_top() -> usize {
    100
}

fn default_steady() -> u64 {
    3600
}

fn default_copies() -> usize {
    1
}

fn default_patience() -> Vec<String> {
    grid::proto::flood::Patience::ALL
        .iter()
        .map(|p| p.name().to_owned())
        .collect()
}

fn default_noise() -> f64 {
    0.1
}

fn default_threshold() -> f64 {
    0.75
}

fn default_want() -> u8 {
    1
}

fn default_contacts() -> usize {
    3
}

fn default_window() -> u64 {
    600
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// The topology settings are wrong.
    #[error("{path}: {source}")]
    Topology {
        /// The file.
        path: PathBuf,
        /// Why.
        source: crate::topology::TopologyError,
    },
    /// A value is out of range.
    #[error("{path}: {key} = {value}: {reason}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
}

/// Nodes a scenario may have, at most (starting nodes plus those that join).
pub const MAX_NODES: usize = 100_000;

impl Scenario {
    /// Read and check a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Parse and check scenario text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let bad = |key, value: String, reason| {
            Err(ScenarioError::Value {
                path: path.to_owned(),
                key,
                value,
                reason,
            })
        };
        let n = s.network.nodes;
        if !(2..=MAX_NODES).contains(&n) {
            return bad("network.nodes", n.to_string(), "between 2 and 100000");
        }
        if !(0.0..0.9).contains(&s.network.loss) {
            return bad(
                "network.loss",
                s.network.loss.to_string(),
                "from 0 to below 0.9",
            );
        }
        if !(0.0..=0.9).contains(&s.churn.leave) {
            return bad("churn.leave", s.churn.leave.to_string(), "from 0 to 0.9");
        }
        if !(0.0..=1.0).contains(&s.churn.join)
            || n as f64 * (1.0 + s.churn.join) > MAX_NODES as f64
        {
            return bad(
                "churn.join",
                s.churn.join.to_string(),
                "from 0 to 1, within 100000 nodes in all",
            );
        }
        if s.network.jitter_ms > s.network.latency_ms {
            return bad(
                "network.jitter_ms",
                s.network.jitter_ms.to_string(),
                "at most latency_ms",
            );
        }
        let topology = crate::topology::Topology::from_network(&s.network).map_err(|source| {
            ScenarioError::Topology {
                path: path.to_owned(),
                source,
            }
        })?;
        if let Some(w) = &s.stack {
            if s.dht.is_some() || s.flood.is_some() || s.gossip.is_some() || s.lora.is_some() {
                return bad(
                    "stack",
                    "(with another workload)".into(),
                    "one workload per scenario: [dht], [flood], [gossip], [lora] or [stack]",
                );
            }
            if n > MAX_STACK_NODES {
                return bad(
                    "network.nodes",
                    n.to_string(),
                    "the stack workload runs a real transport per node: at most 1000",
                );
            }
            if grid::proto::flood::Patience::from_name(&w.patience).is_none() {
                return bad(
                    "stack.patience",
                    format!("\"{}\"", w.patience),
                    "instant, quick, thorough or exhaustive",
                );
            }
            if w.searches > 0 && (w.items == 0 || w.copies == 0 || w.copies > n) {
                return bad(
                    "stack.copies",
                    w.copies.to_string(),
                    "searches need items (at least 1) held by 1 to nodes copies each",
                );
            }
            if w.interval_s == 0 || w.announce_interval_s == 0 {
                return bad(
                    "stack.interval_s",
                    "0".into(),
                    "intervals must be at least 1 s (interval_s, announce_interval_s)",
                );
            }
            refuse_churn(
                &s.churn,
                "the stack workload does not model churn yet",
                path,
            )?;
            return Ok(s);
        }
        if let Some(w) = &s.lora {
            if s.dht.is_some() || s.flood.is_some() || s.gossip.is_some() {
                return bad(
                    "lora",
                    "(with another workload)".into(),
                    "one workload per scenario: [dht], [flood], [gossip] or [lora]",
                );
            }
            if topology == crate::topology::Topology::Full {
                return bad(
                    "network.topology",
                    "\"full\"".into(),
                    "a LoRa mesh is heard within range: choose a graph",
                );
            }
            refuse_churn(&s.churn, "the LoRa workload does not model churn yet", path)?;
            check_lora(w, path)?;
            return Ok(s);
        }
        if let Some(w) = &s.gossip {
            if s.dht.is_some() || s.flood.is_some() {
                return bad(
                    "gossip",
                    "(with [dht] or [flood])".into(),
                    "one workload per scenario: [dht], [flood] or [gossip]",
                );
            }
            refuse_churn(
                &s.churn,
                "the gossip workload does not model churn yet",
                path,
            )?;
            check_gossip(w, path)?;
            return Ok(s);
        }
        if let Some(w) = &s.flood {
            if s.dht.is_some() {
                return bad(
                    "flood",
                    "(with [dht])".into(),
                    "one workload per scenario: [dht] or [flood]",
                );
            }
            if topology == crate::topology::Topology::Full {
                return bad(
                    "network.topology",
                    "\"full\"".into(),
                    "the flood search talks to neighbours only: choose a graph",
                );
            }
            refuse_churn(
                &s.churn,
                "the flood workload does not model churn yet",
                path,
            )?;
            check_flood(w, n, path)?;
            return Ok(s);
        }
        match &s.dht {
            None => {
                return bad(
                    "dht",
                    "(absent)".into(),
                    "a workload is needed ([dht], [flood], [gossip], [lora] or [stack])",
                );
            }
            Some(w) => {
                if w.keys == 0 || w.keys > n {
                    return bad(
                        "dht.keys",
                        w.keys.to_string(),
                        "from 1 to the number of nodes",
                    );
                }
                if w.bootstrap_contacts == 0 || w.bootstrap_contacts >= n {
                    return bad(
                        "dht.bootstrap_contacts",
                        w.bootstrap_contacts.to_string(),
                        "from 1 to below the number of nodes",
                    );
                }
                if w.window_s == 0 {
                    return bad("dht.window_s", "0".into(), "at least 1");
                }
                if w.k.is_some_and(|k| !(1..=20).contains(&k)) {
                    return bad("dht.k", format!("{:?}", w.k), "from 1 to 20");
                }
                if w.alpha.is_some_and(|a| a == 0) {
                    return bad("dht.alpha", "0".into(), "at least 1");
                }
            }
        }
        Ok(s)
    }
}

fn refuse_churn(churn: &Churn, reason: &'static str, path: &Path) -> Result<(), ScenarioError> {
    if churn.leave > 0.0 || churn.join > 0.0 {
        return Err(ScenarioError::Value {
            path: path.to_owned(),
            key: "churn",
            value: "(present)".into(),
            reason,
        });
    }
    Ok(())
}

fn check_gossip(w: &GossipWorkload, path: &Path) -> Result<(), ScenarioError> {
    let as_u64 = |x: usize| x as u64;
    let checks: [(&'static str, u64, u64, u64, &'static str); 9] = [
        (
            "gossip.entries_per_node",
            as_u64(w.entries_per_node),
            1,
            256,
            "from 1 to 256 (a publisher's bound)",
        ),
        (
            "gossip.published",
            as_u64(w.published),
            1,
            10_000,
            "from 1 to 10000",
        ),
        (
            "gossip.publish_window_s",
            w.publish_window_s,
            1,
            86_400,
            "from 1 to 86400",
        ),
        ("gossip.interval_s", w.interval_s, 1, 3600, "from 1 to 3600"),
        ("gossip.fanout", as_u64(w.fanout), 1, 16, "from 1 to 16"),
        (
            "gossip.budget",
            as_u64(w.budget),
            200,
            65_536,
            "from 200 to 65536",
        ),
        (
            "gossip.baseline_top",
            as_u64(w.baseline_top),
            1,
            1000,
            "from 1 to 1000",
        ),
        (
            "gossip.max_converge_s",
            w.max_converge_s,
            1,
            86_400,
            "from 1 to 86400",
        ),
        ("gossip.steady_s", w.steady_s, 0, 86_400, "from 0 to 86400"),
    ];
    check_ranges(&checks, path)
}

/// Each `(key, value, least, most, reason)` must hold `least <= value <= most`.
fn check_ranges(
    checks: &[(&'static str, u64, u64, u64, &'static str)],
    path: &Path,
) -> Result<(), ScenarioError> {
    for &(key, value, lo, hi, reason) in checks {
        if !(lo..=hi).contains(&value) {
            return Err(ScenarioError::Value {
                path: path.to_owned(),
                key,
                value: value.to_string(),
                reason,
            });
        }
    }
    Ok(())
}

fn check_lora(w: &LoraWorkload, path: &Path) -> Result<(), ScenarioError> {
    if let Err(e) = w.modulation() {
        return Err(ScenarioError::Value {
            path: path.to_owned(),
            key: "lora.spreading_factor",
            value: format!(
                "{} (bandwidth {} Hz, coding rate 4/{})",
                w.spreading_factor, w.bandwidth_hz, w.coding_rate
            ),
            reason: match e {
                grid_firmware::airtime::ModulationError::SpreadingFactor(_) => "from 5 to 12",
                grid_firmware::airtime::ModulationError::Bandwidth(_) => {
                    "lora.bandwidth_hz must be from 7800 to 1625000"
                }
                _ => "lora.coding_rate must be from 5 to 8",
            },
        });
    }
    if !(w.duty_cycle > 0.0 && w.duty_cycle <= 1.0) {
        return Err(ScenarioError::Value {
            path: path.to_owned(),
            key: "lora.duty_cycle",
            value: w.duty_cycle.to_string(),
            reason: "above 0, at most 1",
        });
    }
    let as_u64 = |x: usize| x as u64;
    let checks = [
        ("lora.queue", as_u64(w.queue), 1, 1024, "from 1 to 1024"),
        (
            "lora.max_hold_s",
            w.max_hold_s,
            1,
            86_400,
            "from 1 to 86400",
        ),
        (
            "lora.entries_per_node",
            as_u64(w.entries_per_node),
            1,
            256,
            "from 1 to 256 (a publisher's bound)",
        ),
        (
            "lora.interval_s",
            w.interval_s,
            1,
            86_400,
            "from 1 to 86400",
        ),
        ("lora.fanout", as_u64(w.fanout), 1, 16, "from 1 to 16"),
        (
            "lora.budget",
            as_u64(w.budget),
            200,
            as_u64(grid::proto::gossip::LORA_BUDGET),
            "from 200 to 400 (a link packet within the 500-byte MTU)",
        ),
        (
            "lora.duration_s",
            w.duration_s,
            60,
            7 * 86_400,
            "from 60 to 604800",
        ),
        (
            "lora.search_after_s",
            w.search_after_s.unwrap_or(0),
            0,
            86_400,
            "from 0 to 86400",
        ),
        (
            "lora.search_time_s",
            w.search_time_s,
            1,
            3600,
            "from 1 to 3600",
        ),
        (
            "lora.publish_at_s",
            w.publish_at_s,
            0,
            w.duration_s.saturating_sub(1),
            "before duration_s",
        ),
    ];
    check_ranges(&checks, path)
}

impl LoraWorkload {
    /// The modulation, with RNode's preamble.
    pub fn modulation(
        &self,
    ) -> Result<grid_firmware::airtime::Modulation, grid_firmware::airtime::ModulationError> {
        grid_firmware::airtime::Modulation::rnode(
            self.spreading_factor,
            self.bandwidth_hz,
            self.coding_rate,
        )
    }
}

fn check_flood(w: &FloodWorkload, n: usize, path: &Path) -> Result<(), ScenarioError> {
    let bad = |key, value: String, reason| {
        Err(ScenarioError::Value {
            path: path.to_owned(),
            key,
            value,
            reason,
        })
    };
    if w.items == 0 || w.items > 100_000 {
        return bad("flood.items", w.items.to_string(), "from 1 to 100000");
    }
    if w.copies == 0 || w.copies > n {
        return bad(
            "flood.copies",
            w.copies.to_string(),
            "from 1 to the number of nodes",
        );
    }
    if w.queries == 0 || w.queries > 100_000 {
        return bad("flood.queries", w.queries.to_string(), "from 1 to 100000");
    }
    if w.patience.is_empty() {
        return bad("flood.patience", "[]".into(), "at least one level");
    }
    for p in &w.patience {
        if grid::proto::flood::Patience::from_name(p).is_none() {
            return bad(
                "flood.patience",
                format!("{p:?}"),
                "instant, quick, thorough or exhaustive",
            );
        }
    }
    if !(0.0..=0.5).contains(&w.noise) {
        return bad("flood.noise", w.noise.to_string(), "from 0 to 0.5");
    }
    if !(0.0..=1.0).contains(&w.threshold) {
        return bad("flood.threshold", w.threshold.to_string(), "from 0 to 1");
    }
    if !(1..=20).contains(&w.want) {
        return bad("flood.want", w.want.to_string(), "from 1 to 20");
    }
    if w.window_s == 0 {
        return bad("flood.window_s", "0".into(), "at least 1");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_bad_values_are_refused_with_the_key() {
        let p = Path::new("s.toml");
        let ok = "name = \"x\"\n[network]\nnodes = 10\n[dht]\nkeys = 2\nlookups = 5\n";
        assert!(Scenario::parse(ok, p).is_ok());
        let typo = ok.replace("nodes", "nodez");
        let e = Scenario::parse(&typo, p).unwrap_err().to_string();
        assert!(e.contains("nodez"), "{e}");
        let big = ok.replace("nodes = 10", "nodes = 1000000");
        let e = Scenario::parse(&big, p).unwrap_err().to_string();
        assert!(e.contains("network.nodes"), "{e}");
        let no_work = "name = \"x\"\n[network]\nnodes = 10\n";
        let e = Scenario::parse(no_work, p).unwrap_err().to_string();
        assert!(e.contains("[dht]"), "{e}");
    }

    #[test]
    fn gossip_scenarios_refuse_typos_bad_values_and_a_second_workload() {
        let p = Path::new("s.toml");
        let ok = "name = \"x\"\n[network]\nnodes = 10\n[gossip]\npublished = 5\n";
        let s = Scenario::parse(ok, p).unwrap();
        assert_eq!(s.gossip.unwrap().interval_s, 30);
        let err = |text: &str| Scenario::parse(text, p).unwrap_err().to_string();
        let e = err(&ok.replace("published", "publishd"));
        assert!(e.contains("publishd"), "{e}");
        let e = err(&format!("{ok}fanout = 0\n"));
        assert!(e.contains("gossip.fanout"), "{e}");
        let e = err(&format!("{ok}entries_per_node = 300\n"));
        assert!(e.contains("gossip.entries_per_node"), "{e}");
        let e = err(&format!("{ok}[dht]\nkeys = 2\nlookups = 5\n"));
        assert!(e.contains("one workload"), "{e}");
        let e = err(&format!("{ok}[churn]\nleave = 0.1\n"));
        assert!(e.contains("churn"), "{e}");
    }

    #[test]
    fn flood_scenarios_need_a_graph_and_known_values() {
        let p = Path::new("s.toml");
        let ok = "name = \"x\"\n[network]\nnodes = 10\ntopology = \"random-regular\"\ndegree = 4\n[flood]\nitems = 2\nqueries = 5\n";
        let s = Scenario::parse(ok, p).unwrap();
        assert_eq!(s.flood.unwrap().patience.len(), 4);
        let err = |text: &str| Scenario::parse(text, p).unwrap_err().to_string();
        let e = err(&ok.replace("random-regular", "random-irregular"));
        assert!(
            e.contains("network.topology") && e.contains("random-irregular"),
            "{e}"
        );
        let e = err(&ok.replace("degree = 4\n", ""));
        assert!(e.contains("network.degree"), "{e}");
        let e = err(&ok.replace("topology = \"random-regular\"\ndegree = 4\n", ""));
        assert!(
            e.contains("network.topology") && e.contains("neighbours"),
            "{e}"
        );
        let e = err(&ok.replace("queries = 5", "queries = 5\npatience = [\"eventually\"]"));
        assert!(e.contains("flood.patience"), "{e}");
        let e = err(&ok.replace("queries = 5", "queries = 5\ncopies = 11"));
        assert!(e.contains("flood.copies"), "{e}");
        let e = err(&format!("{ok}[churn]\nleave = 0.1\n"));
        assert!(e.contains("churn"), "{e}");
    }

    #[test]
    fn lora_scenarios_need_a_graph_a_valid_modulation_and_packets_that_fit() {
        let p = Path::new("s.toml");
        let ok = "name = \"x\"\n[network]\nnodes = 10\ntopology = \"line\"\n[lora]\n";
        let s = Scenario::parse(ok, p).unwrap();
        let w = s.lora.unwrap();
        assert_eq!((w.spreading_factor, w.interval_s, w.fanout), (9, 300, 1));
        assert_eq!(w.search_after_s, None);
        let err = |text: &str| Scenario::parse(text, p).unwrap_err().to_string();
        let e = err(&format!("{ok}spreading_factor = 13\n"));
        assert!(e.contains("lora.spreading_factor"), "{e}");
        let e = err(&format!("{ok}coding_rate = 9\n"));
        assert!(e.contains("coding_rate"), "{e}");
        let e = err(&format!("{ok}duty_cycle = 0.0\n"));
        assert!(e.contains("lora.duty_cycle"), "{e}");
        // A 500-byte message would make a 547-byte packet: over the MTU.
        let e = err(&format!("{ok}budget = 500\n"));
        assert!(e.contains("lora.budget"), "{e}");
        let e = err(&format!("{ok}duration_s = 600\npublish_at_s = 600\n"));
        assert!(e.contains("lora.publish_at_s"), "{e}");
        let e = err(&ok.replace("topology = \"line\"\n", ""));
        assert!(e.contains("network.topology"), "{e}");
        let e = err(&format!("{ok}[gossip]\npublished = 5\n"));
        assert!(e.contains("one workload"), "{e}");
    }
}
