//! Scenario files: what network to build and what to run on it (TOML, see
//! `tools/netsim/scenarios/`). Unknown keys are refused, so a typo cannot silently fall
//! back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::workloads::MAX_STACK_NODES;
pub use crate::workloads::{
    DhtWorkload, FloodWorkload, GossipWorkload, LoraWorkload, StackWorkload,
};

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
    /// Bits a second each node sends at (its interface): a message takes its size × 8 /
    /// bitrate to go out, after the ones it sent before. None: no limit.
    #[serde(default)]
    pub bitrate_bps: Option<u64>,
    /// The largest frame, bytes: a longer message goes as several frames, each lost at
    /// the loss rate (the message with it). None: any size in one.
    #[serde(default)]
    pub mtu: Option<usize>,
    /// Times the network splits in two (`[[network.partitions]]`).
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

/// A split of the network: from `at_s` seconds after the start, for `for_s` seconds,
/// messages between the first `side` of the nodes (by number; numbers are drawn at
/// random with respect to the topology) and the rest are lost.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// When it starts, seconds after the run starts.
    pub at_s: u64,
    /// How long it lasts, seconds.
    pub for_s: u64,
    /// The fraction of the nodes on the first side.
    #[serde(default = "half")]
    pub side: f64,
}

fn half() -> f64 {
    0.5
}

impl Network {
    /// Whether the scenario asks for more of the wires than latency, jitter and loss.
    pub fn shapes_wires(&self) -> bool {
        self.bitrate_bps.is_some() || self.mtu.is_some() || !self.partitions.is_empty()
    }
}

fn default_topology() -> String {
    "full".into()
}

fn default_latency() -> u64 {
    50
}

/// Churn during the measurement window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// The fraction of the starting nodes that leave (at random times, state lost).
    #[serde(default)]
    pub leave: f64,
    /// New nodes that join, as a fraction of the starting nodes (each bootstraps from a
    /// few live nodes it heard of).
    #[serde(default)]
    pub join: f64,
    /// The fraction of the nodes that leave which come back `downtime_s` later with
    /// their state (a laptop waking from sleep: its tables and records as it left them).
    #[serde(default)]
    pub return_with_state: f64,
    /// The fraction of the nodes that leave which come back `downtime_s` later with their
    /// identity and nothing else (a restart that kept only its key): they bootstrap
    /// again and provide what they hold again.
    #[serde(default)]
    pub return_without_state: f64,
    /// How long a node that comes back was away, seconds.
    #[serde(default = "default_downtime")]
    pub downtime_s: u64,
}

fn default_downtime() -> u64 {
    60
}

impl Default for Churn {
    fn default() -> Churn {
        Churn {
            leave: 0.0,
            join: 0.0,
            return_with_state: 0.0,
            return_without_state: 0.0,
            downtime_s: default_downtime(),
        }
    }
}

impl Churn {
    /// Whether the scenario asks for any churn at all.
    pub fn any(&self) -> bool {
        self.leave > 0.0 || self.join > 0.0
    }
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
        let returns = s.churn.return_with_state + s.churn.return_without_state;
        if s.churn.return_with_state < 0.0 || s.churn.return_without_state < 0.0 || returns > 1.0 {
            return bad(
                "churn.return_with_state",
                format!(
                    "{} + return_without_state {}",
                    s.churn.return_with_state, s.churn.return_without_state
                ),
                "fractions of the nodes that leave: each from 0, together at most 1",
            );
        }
        if !(1..=86_400).contains(&s.churn.downtime_s) {
            return bad(
                "churn.downtime_s",
                s.churn.downtime_s.to_string(),
                "from 1 to 86400",
            );
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
        if s.network.bitrate_bps == Some(0) {
            return bad(
                "network.bitrate_bps",
                "0".into(),
                "at least 1 (or leave it out)",
            );
        }
        if s.network.mtu.is_some_and(|m| !(16..=65_535).contains(&m)) {
            let m = s.network.mtu.unwrap_or_default();
            return bad("network.mtu", m.to_string(), "from 16 to 65535 bytes");
        }
        for p in &s.network.partitions {
            if !(0.0..=1.0).contains(&p.side) || p.for_s == 0 {
                return bad(
                    "network.partitions",
                    format!("side {} for_s {}", p.side, p.for_s),
                    "side from 0 to 1, for_s at least 1",
                );
            }
        }
        if (s.stack.is_some() || s.lora.is_some()) && s.network.shapes_wires() {
            return bad(
                "network",
                "(bitrate_bps, mtu or partitions)".into(),
                "the stack and LoRa workloads have wires of their own; the DHT, flood and gossip workloads take these",
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
            if s.churn.join > 0.0 || s.churn.return_without_state > 0.0 {
                return bad(
                    "churn",
                    "(join or return_without_state)".into(),
                    "the stack workload models nodes that leave (unplugged, their state kept) and come back with it: leave, return_with_state, downtime_s",
                );
            }
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
    if churn.any() {
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
        let back =
            |extra: &str| ok.replace("[dht]", &format!("[churn]\nleave = 0.2\n{extra}[dht]"));
        let fine = back("return_with_state = 0.5\nreturn_without_state = 0.5\n");
        assert!(Scenario::parse(&fine, p).is_ok());
        let more_than_all = back("return_with_state = 0.6\nreturn_without_state = 0.5\n");
        let e = Scenario::parse(&more_than_all, p).unwrap_err().to_string();
        assert!(e.contains("churn.return_with_state"), "{e}");
        let never_back = back("return_with_state = 0.5\ndowntime_s = 0\n");
        let e = Scenario::parse(&never_back, p).unwrap_err().to_string();
        assert!(e.contains("churn.downtime_s"), "{e}");
    }

    #[test]
    fn stack_scenarios_take_nodes_that_leave_and_come_back_with_their_state_only() {
        let p = Path::new("s.toml");
        let ok = "name = \"x\"\n[network]\nnodes = 10\ntopology = \"random-regular\"\ndegree = 4\n[churn]\nleave = 0.2\nreturn_with_state = 0.5\n[stack]\npublished = 2\nentries_per_node = 1\nwarmup_s = 60\npublish_window_s = 10\nmax_converge_s = 60\nsteady_s = 10\n";
        Scenario::parse(ok, p).unwrap();
        for other in ["join = 0.1\n", "return_without_state = 0.2\n"] {
            let bad = ok.replace("[stack]", &format!("{other}[stack]"));
            let e = Scenario::parse(&bad, p).unwrap_err().to_string();
            assert!(e.contains("churn") && e.contains("state kept"), "{e}");
        }
        let wires = ok.replace("degree = 4\n", "degree = 4\nmtu = 100\n");
        let e = Scenario::parse(&wires, p).unwrap_err().to_string();
        assert!(e.contains("wires of their own"), "{e}");
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
