//! The answer to `status`: the node's interfaces, traffic, peers, paths and links.

use grid_interfaces::rnode::RadioStats;
use rns_core::AddressHash;
use serde::{Deserialize, Serialize};

use super::LinkSummary;
use crate::control::request::hash;
use crate::proto::capabilities::CapabilitySummary;

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This node's identity hash.
    #[serde(with = "hash")]
    pub identity: AddressHash,
    /// Its `grid.node` destination.
    #[serde(with = "hash")]
    pub destination: AddressHash,
    /// Whether it forwards for others.
    pub transport: bool,
    /// The shared instance it serves to local programs, if any.
    pub shared_instance: Option<String>,
    /// The bundle store.
    pub bundles: Bundles,
    /// What this node announces it can do.
    pub capabilities: CapabilitySummary,
    /// Grid nodes heard, nearest first (at most 100).
    pub peers: Vec<Peer>,
    /// Programs attached to the shared instance.
    pub local_clients: usize,
    /// Seconds since the node started.
    pub uptime_s: u64,
    /// The interfaces as configured, listeners with no clients and LAN interfaces with
    /// no peers included, each with the connections it holds now.
    #[serde(default)]
    pub configured: Vec<ConfiguredInterface>,
    /// The interfaces traffic flows on (a listener's clients each have their own).
    pub interfaces: Vec<InterfaceStatus>,
    /// Paths known.
    pub path_count: usize,
    /// Paths, fewest hops first (at most 1000).
    pub paths: Vec<PathSummary>,
    /// The node's links.
    pub links: Vec<LinkSummary>,
    /// Entries in the link table (links this node relays).
    pub link_table: usize,
    /// Destinations whose identity is known.
    pub known_destinations: usize,
    /// Transport counters.
    pub stats: TrafficStats,
    /// The governor in short (`grid governor` has the rest).
    #[serde(default)]
    pub governor: Option<GovernorSummary>,
}

/// The governor in a line: pressure levels and room for jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernorSummary {
    /// Memory pressure level (`normal`, `warning`, `high`, `critical`).
    pub memory: String,
    /// CPU pressure level.
    pub cpu: String,
    /// RAM grid work may use, MB.
    pub ram_budget_mb: u64,
    /// RAM a new job could have now, MB.
    pub headroom_mb: u64,
}

/// The bundle store's figures, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bundles {
    /// The figures.
    Store(BundleStore),
    /// The store could not be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

/// Bundles held for destinations out of reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleStore {
    /// Whether this node takes custody of others' bundles.
    pub custody: bool,
    /// Bundles stored.
    pub queued: u64,
    /// Their sealed size.
    pub bytes: u64,
    /// Destinations with bundles waiting.
    pub destinations: u64,
    /// Bundles per destination (at most 50).
    pub waiting: Vec<BundlesFor>,
    /// Callers waiting for answers that come back as bundles.
    pub waiting_callers: usize,
}

/// How many bundles wait for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlesFor {
    /// The destination.
    #[serde(with = "hash")]
    pub destination: AddressHash,
    /// Bundles waiting.
    pub bundles: u64,
}

/// A grid node heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its `grid.node` destination.
    #[serde(with = "hash")]
    pub node: AddressHash,
    /// Hops away.
    pub hops: u8,
    /// Seconds since it was last heard.
    pub seen_s_ago: u64,
    /// What it announced it can do.
    pub capabilities: CapabilitySummary,
}

/// An interface from `config.toml`, whether or not anything is connected to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredInterface {
    /// Its name (`name` in config.toml, else `if<N>`).
    pub name: String,
    /// Its `type` in config.toml: `tcp_server`, `tcp_client`, `udp`, `auto`, `serial`,
    /// `kiss`, `rnode`, `local`.
    pub kind: String,
    /// Where: the address it listens on or connects to, the serial port, the LAN group.
    pub address: String,
    /// Its RNS mode (`full`, `gateway`, `access_point`, …).
    pub mode: String,
    /// Its nominal bitrate, bits/s.
    pub bitrate: u64,
    /// Connections it holds now: a listener's clients, a LAN interface's peers, 1 for a
    /// connected client, a radio or a serial line that is up.
    pub connections: usize,
}

/// One interface and its traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    /// Its number.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Whether it is up.
    pub online: bool,
    /// Its traffic and error counters (their fields sit beside `id` on the wire).
    #[serde(flatten)]
    pub stats: rns_core::transport::InterfaceStats,
    /// The radio's latest figures, for a radio interface.
    pub radio: Option<RadioStats>,
}

/// A path, in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSummary {
    /// The destination.
    #[serde(with = "hash")]
    pub destination: AddressHash,
    /// Hops away.
    pub hops: u8,
    /// The next hop.
    #[serde(with = "hash")]
    pub next_hop: AddressHash,
    /// The interface it goes out on (its number).
    pub interface: u32,
    /// Seconds until it expires unless refreshed.
    #[serde(default)]
    pub expires_in_s: u64,
}

/// Transport counters since the node started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficStats {
    /// Packets forwarded for others.
    pub forwarded: u64,
    /// Announces rebroadcast.
    pub rebroadcasts: u64,
    /// Packets delivered to local destinations.
    pub delivered: u64,
    /// Packets for local destinations that did not decrypt.
    pub undecryptable: u64,
    /// Malformed packets dropped.
    pub protocol_violations: u64,
    /// Frames dropped for a wrong interface access code.
    pub ifac_violations: u64,
    /// Packets for links this node does not know.
    pub unknown_link_packets: u64,
    /// Link requests for local destinations dropped unanswered.
    pub dropped_link_requests: u64,
    /// Half-open links evicted for newer ones.
    pub evicted_half_open_links: u64,
    /// Frames dropped on the way out (full transmit and interface queues).
    pub dropped_outbound: u64,
}
