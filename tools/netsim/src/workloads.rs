//! The workloads a scenario can run (one per scenario): their keys, with defaults. See
//! [`crate::scenario`] for the file as a whole and the checks on every key.

use serde::Deserialize;

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
pub(crate) const MAX_STACK_NODES: usize = 1000;

fn default_stack_entries() -> usize {
    2
}

fn default_stack_warmup() -> u64 {
    300
}

fn default_stack_announce() -> u64 {
    600
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
