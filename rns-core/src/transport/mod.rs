//! The transport: a sans-IO state machine that routes RNS packets between interfaces.
//!
//! Drive it like this:
//! - attach interfaces with [`Transport::add_interface`];
//! - feed every received frame to [`Transport::handle_inbound`];
//! - call [`Transport::handle_timeout`] when [`Transport::poll_timeout`] is due;
//! - after any call, drain [`Transport::poll_transmit`] (frames to send, IFAC applied)
//!   and [`Transport::poll_event`] (announces, deliveries, proofs).
//!
//! Time is passed in; randomness comes from the RNG handed to [`Transport::new`].

mod admission;
mod announce_cap;
mod app_proofs;
mod duplicate_filter;
mod inbound;
mod ingress;
mod interface;
mod known;
mod links;
mod outbound;
mod path_table;
mod pathfinding;
mod periodic;
mod ratchets;
mod receipts;
mod shared_instance;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand_core::CryptoRngCore;

pub use admission::{
    LinkRequestRate, DEFAULT_MAX_HALF_OPEN_LINKS, DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE,
};
pub use interface::{
    AnnounceRate, InterfaceConfig, InterfaceId, InterfaceMode, InterfaceStats, LocalRole,
};
pub use links::LinkInfo;
pub use path_table::PathState;

use crate::destination::{self, DestinationType, NameHash};
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::identity::{Identity, PublicIdentity};
use crate::time::Instant;
use duplicate_filter::RotatingSet;
use interface::InterfaceState;
use known::KnownDestinations;
use path_table::PathTable;
use receipts::Receipts;

/// Hash maps keyed by hashes an attacker may influence: foldhash is fast on 16-byte
/// keys, and a seed drawn from the transport's generator ([`hash_state`]) keeps bucket
/// placement unpredictable. Build them with [`hash_state`], never `default()` (which
/// would draw a seed of its own and make iteration order differ between runs).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, HashState>;
/// The matching set type.
pub(crate) type HashSet<K> = std::collections::HashSet<K, HashState>;
/// The hasher state of [`HashMap`] and [`HashSet`].
pub(crate) type HashState = foldhash::fast::SeedableRandomState;

/// A hasher state seeded from `rng`, the randomness handed in: with the OS generator,
/// 64 unpredictable bits per state (the hashes never leave the process, so an attacker
/// cannot aim keys at one bucket); with a seeded generator (the test network, the
/// simulator), the same iteration order in every run.
pub(crate) fn hash_state(rng: &mut dyn rand_core::RngCore) -> HashState {
    foldhash::fast::SeedableRandomState::with_seed(
        rng.next_u64(),
        foldhash::SharedSeed::global_fixed(),
    )
}

/// Announce rebroadcast: retries after the first transmission.
const PATHFINDER_R: u8 = 1;
/// Announce rebroadcast: gap between transmissions.
const PATHFINDER_G: Duration = Duration::from_secs(5);
/// Announce rebroadcast: random window before the first transmission (ms).
const PATHFINDER_RW_MS: u64 = 500;
/// Stop rebroadcasting after hearing this many neighbours do it.
const LOCAL_REBROADCASTS_MAX: u8 = 2;
/// Default wait for a path.
pub const PATH_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Grace before a transport node answers a path request from its table.
const PATH_REQUEST_GRACE: Duration = Duration::from_millis(400);
/// Extra grace on roaming interfaces.
const PATH_REQUEST_RG: Duration = Duration::from_millis(1500);
/// A path request for the same destination within this time is batched, not re-sent.
const PATH_REQUEST_GATE: Duration = Duration::from_secs(45);
/// A local destination reuses its path-response announce for the same tag this long.
const PATH_RESPONSE_REUSE: Duration = Duration::from_secs(30);
/// Reverse table entries live this long.
const REVERSE_TIMEOUT: Duration = Duration::from_secs(8 * 60);
/// Per-hop timeout for packet receipts.
const PER_HOP_TIMEOUT: Duration = Duration::from_secs(6);
/// Job tick.
const JOB_INTERVAL: Duration = Duration::from_millis(250);

/// Settings of a transport instance.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Forward packets and rebroadcast announces for others.
    pub transport_enabled: bool,
    /// Prove packets with 64-byte implicit proofs (RNS 1.5.7 default) instead of explicit.
    pub use_implicit_proofs: bool,
    /// Most paths kept.
    pub max_paths: usize,
    /// Most known destinations (public keys) kept.
    pub max_known_destinations: usize,
    /// Packet hashes remembered per generation by the duplicate filter.
    pub packet_hashlist_cap: usize,
    /// Path request tags remembered per generation.
    pub path_request_tag_cap: usize,
    /// Frames queued for transmission before new ones are dropped.
    pub max_pending_transmits: usize,
    /// Events queued before new ones are dropped.
    pub max_pending_events: usize,
    /// Serve local clients (a shared instance): keeps announces to answer their path
    /// requests, as a transport node does.
    pub share_instance: bool,
    /// Most half-open links (incoming, handshake not completed) held node-wide; the oldest
    /// is given up for a new one. Default [`DEFAULT_MAX_HALF_OPEN_LINKS`] (256).
    pub max_half_open_links: usize,
    /// Most half-open links held per interface; the interface's oldest is given up for a
    /// new one. Default [`DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE`] (64).
    pub max_half_open_links_per_interface: usize,
    /// How many link requests each interface may have answered; the rest are dropped
    /// silently. `None` = unlimited. Default [`LinkRequestRate::DEFAULT`] (50/s, burst 100).
    pub link_request_rate: Option<LinkRequestRate>,
    /// Most bytes incoming resources may hold across all links, counted by what they
    /// decompress to as advertised (plus what travels); advertisements beyond it are
    /// rejected. Default [`crate::link::DEFAULT_INCOMING_RESOURCE_BYTES`] (64 MiB).
    pub max_incoming_resource_bytes: u64,
    /// The same budget per link. Default
    /// [`crate::link::DEFAULT_INCOMING_RESOURCE_BYTES_PER_LINK`] (32 MiB).
    pub max_incoming_resource_bytes_per_link: u64,
    /// Hand complete incoming segments out as [`crate::link::LinkEvent::ResourceAssemble`]
    /// jobs (decrypt, decompress, hash: up to 1 MiB each) for the driver to run off its
    /// event loop, instead of assembling them inline. Default `false`.
    pub defer_resource_assembly: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            transport_enabled: false,
            use_implicit_proofs: true,
            max_paths: 262_144,
            max_known_destinations: 262_144,
            packet_hashlist_cap: 131_072,
            path_request_tag_cap: 16_000,
            max_pending_transmits: 65_536,
            max_pending_events: 65_536,
            share_instance: false,
            max_half_open_links: DEFAULT_MAX_HALF_OPEN_LINKS,
            max_half_open_links_per_interface: DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE,
            link_request_rate: Some(LinkRequestRate::DEFAULT),
            max_incoming_resource_bytes: crate::link::DEFAULT_INCOMING_RESOURCE_BYTES,
            max_incoming_resource_bytes_per_link:
                crate::link::DEFAULT_INCOMING_RESOURCE_BYTES_PER_LINK,
            defer_resource_assembly: false,
        }
    }
}

/// Whether a local destination proves the packets it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProofStrategy {
    /// Never.
    #[default]
    None,
    /// Every packet.
    All,
    /// The application decides per packet: after [`Event::Packet`], it calls
    /// [`Transport::prove`] with the packet's hash (RNS's `PROVE_APP`). Unproven packets
    /// are forgotten after [`APP_PROOF_WINDOW`] or beyond [`MAX_APP_PROOFS`].
    App,
}

/// How long a packet to a [`ProofStrategy::App`] destination can still be proved.
pub const APP_PROOF_WINDOW: Duration = Duration::from_secs(60);
/// Packets awaiting the application's proof, at most (the oldest is forgotten).
pub const MAX_APP_PROOFS: usize = 1024;

/// A received packet the application may still prove.
#[derive(Debug, Clone)]
pub(crate) struct AppProof {
    pub(crate) packet_hash: [u8; FULL_HASH_LEN],
    pub(crate) destination: AddressHash,
    pub(crate) interface: InterfaceId,
    pub(crate) received: Instant,
}

/// A frame to send on an interface (IFAC already applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub interface: InterfaceId,
    /// The bytes to frame and send.
    pub frame: Vec<u8>,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An announce was accepted into the path table.
    Announce {
        /// Announced destination.
        destination: AddressHash,
        /// Its identity.
        identity: Box<PublicIdentity>,
        /// Its name hash.
        name_hash: NameHash,
        /// App data (may be empty).
        app_data: Vec<u8>,
        /// Hops away.
        hops: u8,
        /// Interface it arrived on.
        interface: InterfaceId,
        /// Whether it answered a path request.
        path_response: bool,
    },
    /// A packet for a local destination was received and decrypted.
    Packet {
        /// Local destination.
        destination: AddressHash,
        /// Plaintext.
        data: Vec<u8>,
        /// Full packet hash.
        packet_hash: [u8; FULL_HASH_LEN],
        /// Interface it arrived on.
        interface: InterfaceId,
        /// Hops it travelled.
        hops: u8,
    },
    /// A proof arrived for a packet we sent.
    Proof {
        /// The proven packet.
        packet_hash: [u8; FULL_HASH_LEN],
        /// Its destination.
        destination: AddressHash,
        /// Time from sending to proof.
        rtt: Duration,
    },
    /// Something happened on a local link.
    Link(crate::link::LinkEvent),
    /// No proof arrived in time.
    ReceiptTimeout {
        /// The unproven packet.
        packet_hash: [u8; FULL_HASH_LEN],
        /// Its destination.
        destination: AddressHash,
    },
    /// A local destination made a new ratchet key for its announce: store
    /// [`Transport::ratchet_file`] so packets encrypted to it still open after a restart.
    RatchetsRotated {
        /// The destination.
        destination: AddressHash,
    },
}

/// Why a packet could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The destination's public key is unknown (no announce heard).
    #[error("destination {0} is unknown; no announce has been heard")]
    UnknownDestination(AddressHash),
    /// The plaintext does not fit one packet.
    #[error("payload of {0} bytes exceeds the packet MDU")]
    TooLarge(usize),
    /// The destination is not registered locally.
    #[error("destination {0} is not a local destination")]
    NotLocal(AddressHash),
    /// No interface is attached.
    #[error("no interface to send on")]
    NoInterface,
}

/// A destination hosted by this transport instance.
#[derive(Debug, Clone)]
pub(crate) struct LocalDestination {
    pub(crate) identity: Option<Identity>,
    pub(crate) kind: DestinationType,
    pub(crate) name_hash: NameHash,
    pub(crate) proof: ProofStrategy,
    pub(crate) app_data: Vec<u8>,
    /// Last path response: (tag, packet data, when).
    pub(crate) path_response: Option<(Vec<u8>, Vec<u8>, Instant)>,
    /// Whether incoming links are accepted.
    pub(crate) accept_links: bool,
    /// Resource policy for links to this destination.
    pub(crate) resource_policy: crate::link::ResourcePolicy,
    /// A GROUP destination's key.
    pub(crate) group_key: Option<destination::GroupKey>,
    /// A SINGLE destination's ratchets, when enabled.
    pub(crate) ratchets: Option<crate::ratchets::Ratchets>,
}

/// A scheduled announce (re)transmission.
#[derive(Debug, Clone)]
pub(crate) struct AnnounceEntry {
    pub(crate) retransmit_at: Instant,
    pub(crate) retries: u8,
    pub(crate) hops: u8,
    pub(crate) data: Vec<u8>,
    pub(crate) context_flag: bool,
    pub(crate) local_rebroadcasts: u8,
    /// Sent as a path response (never rebroadcast further).
    pub(crate) block_rebroadcasts: bool,
    pub(crate) attached: Option<InterfaceId>,
}

/// Where to send a proof back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReverseEntry {
    pub(crate) received_on: InterfaceId,
    pub(crate) sent_on: InterfaceId,
    pub(crate) timestamp: Instant,
}

/// Per-destination announce rate state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateEntry {
    pub(crate) last: Instant,
    pub(crate) violations: u32,
    pub(crate) blocked_until: Instant,
}

/// A path request being searched for on behalf of other interfaces.
#[derive(Debug, Clone)]
pub(crate) struct DiscoveryRequest {
    pub(crate) timeout: Instant,
    pub(crate) requesting: Vec<InterfaceId>,
    pub(crate) engaged: bool,
}

/// Whole-transport counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Packets forwarded for others.
    pub forwarded: u64,
    /// Announces rebroadcast.
    pub rebroadcasts: u64,
    /// Packets delivered to local destinations.
    pub delivered: u64,
    /// Packets dropped because the transmit queue was full.
    pub dropped_transmits: u64,
    /// Events dropped because the event queue was full.
    pub dropped_events: u64,
    /// Packets for local destinations that failed to decrypt.
    pub undecryptable: u64,
    /// Packets to destinations with ratchets that opened with none of the newest keys
    /// and were not tried on the older ones: the budget for such scans was spent
    /// ([`crate::ratchets::DEEP_SCANS_PER_S`]).
    pub ratchet_scans_limited: u64,
    /// Inbound frames dropped as malformed or protocol violations (all interfaces, ever).
    pub protocol_violations: u64,
    /// Inbound frames dropped for a bad or missing access code (all interfaces, ever).
    pub ifac_violations: u64,
    /// Link packets for links this node neither hosts nor forwards.
    pub unknown_link_packets: u64,
    /// Link requests for local destinations dropped unanswered (over the interface's
    /// link request rate, or the link table full).
    pub dropped_link_requests: u64,
    /// Half-open links given up to make room for newer ones.
    pub evicted_half_open_links: u64,
}

/// Summary of a path for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The destination.
    pub destination: AddressHash,
    /// Hops.
    pub hops: u8,
    /// Next hop transport id (or the destination itself).
    pub next_hop: AddressHash,
    /// Interface.
    pub interface: InterfaceId,
    /// Expiry.
    pub expires: Instant,
}

/// The transport state machine.
pub struct Transport {
    config: TransportConfig,
    identity: Identity,
    rng: Box<dyn CryptoRngCore + Send>,
    interfaces: BTreeMap<InterfaceId, InterfaceState>,
    destinations: HashMap<AddressHash, LocalDestination>,
    known: KnownDestinations,
    paths: PathTable,
    announce_table: HashMap<AddressHash, AnnounceEntry>,
    held_announces: HashMap<AddressHash, AnnounceEntry>,
    reverse_table: HashMap<AddressHash, ReverseEntry>,
    rate_table: HashMap<AddressHash, RateEntry>,
    hashlist: RotatingSet<[u8; 16]>,
    pr_tags: RotatingSet<Vec<u8>>,
    path_requests: HashMap<AddressHash, Instant>,
    inflight_path_requests: HashMap<AddressHash, Instant>,
    discovery_requests: HashMap<AddressHash, DiscoveryRequest>,
    receipts: Receipts,
    /// Packets to [`ProofStrategy::App`] destinations the application may still prove.
    app_proofs: std::collections::VecDeque<AppProof>,
    links: HashMap<crate::link::LinkId, crate::link::Link>,
    /// When each link with resource transfers next needs its resource watchdogs run
    /// (kept up to date whenever a link is drained).
    resource_deadlines: HashMap<crate::link::LinkId, Instant>,
    /// The half-open subset of `links`, oldest first.
    half_open: admission::HalfOpen,
    link_table: HashMap<crate::link::LinkId, links::LinkTableEntry>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: TransportStats,
    next_job: Instant,
    last_announce_job: Instant,
    last_cull: Instant,
    pr_destination: AddressHash,
    tunnel_destination: AddressHash,
    /// Path requests sent because a packet came to forward with no path: (window start, count).
    missing_path_requests: (Instant, u32),
    /// Path requests from the network we passed to local clients: destination → asker.
    pending_local_path_requests: HashMap<AddressHash, (InterfaceId, Instant)>,
}

impl core::fmt::Debug for Transport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transport")
            .field("identity", &self.identity.hash())
            .field("interfaces", &self.interfaces.len())
            .field("paths", &self.paths.len())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Create a transport with the node's transport identity and a CSPRNG.
    pub fn new(
        config: TransportConfig,
        identity: Identity,
        mut rng: Box<dyn CryptoRngCore + Send>,
    ) -> Self {
        let state = hash_state(&mut *rng);
        let pr_destination =
            destination::hash_from_name(destination::well_known::PATH_REQUEST, None);
        let tunnel_destination =
            destination::hash_from_name(destination::well_known::TUNNEL_SYNTHESIZE, None);
        Transport {
            known: KnownDestinations::new(
                config.max_known_destinations,
                config.transport_enabled || config.share_instance,
                state.clone(),
            ),
            paths: PathTable::new(config.max_paths, state.clone()),
            hashlist: RotatingSet::new(config.packet_hashlist_cap, state.clone()),
            pr_tags: RotatingSet::new(config.path_request_tag_cap, state.clone()),
            config,
            identity,
            rng,
            interfaces: BTreeMap::new(),
            destinations: HashMap::with_hasher(state.clone()),
            announce_table: HashMap::with_hasher(state.clone()),
            held_announces: HashMap::with_hasher(state.clone()),
            reverse_table: HashMap::with_hasher(state.clone()),
            rate_table: HashMap::with_hasher(state.clone()),
            path_requests: HashMap::with_hasher(state.clone()),
            inflight_path_requests: HashMap::with_hasher(state.clone()),
            discovery_requests: HashMap::with_hasher(state.clone()),
            receipts: Receipts::default(),
            app_proofs: std::collections::VecDeque::new(),
            links: HashMap::with_hasher(state.clone()),
            resource_deadlines: HashMap::with_hasher(state.clone()),
            half_open: admission::HalfOpen::default(),
            link_table: HashMap::with_hasher(state.clone()),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: TransportStats::default(),
            next_job: Instant::ZERO,
            last_announce_job: Instant::ZERO,
            last_cull: Instant::ZERO,
            pr_destination,
            tunnel_destination,
            missing_path_requests: (Instant::ZERO, 0),
            pending_local_path_requests: HashMap::with_hasher(state.clone()),
        }
    }

    /// The transport identity hash (the transport id in HEADER_2 packets).
    pub fn transport_id(&self) -> AddressHash {
        self.identity.hash()
    }

    /// The transport identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Whether this node forwards for others.
    pub fn transport_enabled(&self) -> bool {
        self.config.transport_enabled
    }

    /// Attach an interface. Re-using an id replaces the old interface.
    pub fn add_interface(&mut self, now: Instant, id: InterfaceId, config: InterfaceConfig) {
        let mut config = config;
        if config.announce_rate.is_none() && self.config.transport_enabled {
            config.announce_rate = Some(AnnounceRate::TRANSPORT_DEFAULT);
        }
        self.interfaces.insert(id, InterfaceState::new(config, now));
    }

    /// Detach an interface; paths through it are dropped at the next cull.
    pub fn remove_interface(&mut self, id: InterfaceId) {
        self.interfaces.remove(&id);
        let gone = |i: InterfaceId| i == id;
        self.paths.cull(Instant::ZERO, |i| !gone(i));
        self.reverse_table
            .retain(|_, e| e.received_on != id && e.sent_on != id);
        self.link_table
            .retain(|_, e| e.received_iface != id && e.next_hop_iface != id);
    }

    /// Mark an interface up or down (a reconnecting TCP client, say).
    pub fn set_interface_online(&mut self, id: InterfaceId, online: bool) {
        if let Some(i) = self.interfaces.get_mut(&id) {
            i.online = online;
        }
    }

    /// Attached interfaces with their names, stats and online state.
    pub fn interfaces(&self) -> impl Iterator<Item = (InterfaceId, &str, bool, InterfaceStats)> {
        self.interfaces.iter().map(|(id, s)| {
            let mut st = s.stats.clone();
            st.held_announces = s.ingress.held_count() as u64;
            st.queued_announces = s.cap.queued() as u64;
            (*id, s.config.name.as_str(), s.online, st)
        })
    }

    /// Whole-transport counters.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// Stop hosting a destination registered here: packets and links to it are no longer
    /// taken. Returns whether it was registered.
    pub fn deregister_destination(&mut self, destination: &AddressHash) -> bool {
        self.app_proofs.retain(|p| &p.destination != destination);
        self.destinations.remove(destination).is_some()
    }

    /// Register a PLAIN destination (no identity, no encryption): it takes unencrypted
    /// packets from neighbours one hop away, as in RNS. Returns its hash.
    pub fn register_plain_destination(&mut self, full_name: &str) -> AddressHash {
        self.register_nameless(full_name, DestinationType::Plain, None)
    }

    /// Register a GROUP destination: packets are encrypted with `key`, which every member
    /// holds; from neighbours one hop away, as in RNS. Returns its hash.
    pub fn register_group_destination(
        &mut self,
        full_name: &str,
        key: destination::GroupKey,
    ) -> AddressHash {
        self.register_nameless(full_name, DestinationType::Group, Some(key))
    }

    fn register_nameless(
        &mut self,
        full_name: &str,
        kind: DestinationType,
        group_key: Option<destination::GroupKey>,
    ) -> AddressHash {
        let name_hash = destination::name_hash(full_name);
        let hash = destination::destination_hash(&name_hash, None);
        self.destinations.insert(
            hash,
            LocalDestination {
                identity: None,
                kind,
                name_hash,
                proof: ProofStrategy::None,
                app_data: Vec::new(),
                path_response: None,
                accept_links: false,
                resource_policy: crate::link::ResourcePolicy::None,
                group_key,
                ratchets: None,
            },
        );
        hash
    }

    /// Register a SINGLE destination hosted here. Returns its hash.
    pub fn register_destination(
        &mut self,
        identity: Identity,
        full_name: &str,
        proof: ProofStrategy,
        app_data: Vec<u8>,
    ) -> AddressHash {
        let name_hash = destination::name_hash(full_name);
        let hash = destination::destination_hash(&name_hash, Some(&identity.hash()));
        self.destinations.insert(
            hash,
            LocalDestination {
                identity: Some(identity),
                kind: DestinationType::Single,
                name_hash,
                proof,
                app_data,
                path_response: None,
                accept_links: true,
                resource_policy: crate::link::ResourcePolicy::None,
                group_key: None,
                ratchets: None,
            },
        );
        hash
    }

    /// Replace the default app data announced for a local destination.
    pub fn set_app_data(&mut self, destination: &AddressHash, app_data: Vec<u8>) {
        if let Some(d) = self.destinations.get_mut(destination) {
            d.app_data = app_data;
            d.path_response = None;
        }
    }

    /// Whether a destination is hosted here.
    pub fn is_local(&self, destination: &AddressHash) -> bool {
        self.destinations.contains_key(destination)
    }

    /// Forget the path to `destination` (as `rnpath -d`); returns whether there was one.
    pub fn drop_path(&mut self, destination: &AddressHash) -> bool {
        self.paths.remove(destination).is_some()
    }

    /// The path to a destination, if known.
    pub fn path(&self, destination: &AddressHash) -> Option<PathInfo> {
        self.paths.get(destination).map(|e| PathInfo {
            destination: *destination,
            hops: e.hops,
            next_hop: e.next_hop,
            interface: e.interface,
            expires: e.expires_at(),
        })
    }

    /// Every known path.
    pub fn paths(&self) -> impl Iterator<Item = PathInfo> + '_ {
        self.paths.iter().map(|(d, e)| PathInfo {
            destination: *d,
            hops: e.hops,
            next_hop: e.next_hop,
            interface: e.interface,
            expires: e.expires_at(),
        })
    }

    /// Number of known paths.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// Packets sent that still await a proof.
    pub fn pending_receipts(&self) -> usize {
        self.receipts.len()
    }

    /// Packet hashes held by the duplicate filter.
    pub fn remembered_packets(&self) -> usize {
        self.hashlist.len()
    }

    /// Number of known destinations (public keys).
    pub fn known_destination_count(&self) -> usize {
        self.known.len()
    }

    /// The identity announced for a destination, if one was heard.
    pub fn recall_identity(&self, destination: &AddressHash) -> Option<PublicIdentity> {
        if let Some(d) = self.destinations.get(destination) {
            return d.identity.as_ref().map(|i| i.public().clone());
        }
        self.known.get(destination)?.identity()
    }

    /// The app data of the last announce heard for a destination.
    pub fn recall_app_data(&self, destination: &AddressHash) -> Option<Vec<u8>> {
        Some(self.known.get(destination)?.app_data().to_vec())
    }

    /// Next frame to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Transport::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_job;
        for d in self.resource_deadlines.values() {
            t = t.min(*d);
        }
        for s in self.interfaces.values() {
            if let Some(r) = s.cap.next_release() {
                t = t.min(r);
            }
        }
        t
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= self.config.max_pending_events {
            self.stats.dropped_events += 1;
        } else {
            self.events.push_back(e);
        }
    }

    fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn random_tag(&mut self) -> [u8; 16] {
        let mut t = [0u8; 16];
        self.rng.fill_bytes(&mut t);
        t
    }

    fn first_hop_timeout(&self, destination: &AddressHash) -> Duration {
        let bitrate = self
            .paths
            .get(destination)
            .and_then(|p| self.interfaces.get(&p.interface))
            .map(|i| i.config.bitrate)
            .unwrap_or(0);
        if bitrate == 0 {
            PER_HOP_TIMEOUT
        } else {
            Duration::from_secs_f64(500.0 * 8.0 / bitrate as f64) + PER_HOP_TIMEOUT
        }
    }
}

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod tests;
