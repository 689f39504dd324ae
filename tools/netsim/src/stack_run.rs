//! Catalog gossip on the whole stack: every node is a real rns-core [`Transport`] on
//! the shared deterministic network ([`rns_core::testnet`]), announcing its `grid.node`
//! destination, and runs `grid::proto::gossip` as a node does (`grid/src/node/gossip.rs`):
//! Grid nodes heard announcing one hop away become neighbours, and each gossip message
//! is a link request on `grid/gossip` over an identified Reticulum link, answered by the
//! session's next round. So the figures include everything Reticulum adds: announces,
//! link set-up and proofs, encryption, keep-alives.
//!
//! The overlay workloads (`gossip_run`) count gossip bytes only; this one measures the
//! same convergence with the wire bytes of the real protocol, and the ratio of the two
//! (`wire_bytes_per_gossip_byte`). It builds a [`Transport`] and identity per node, so it
//! is for tens to a few hundred nodes, not thousands.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use grid::proto::bundle::envelope::node_destination;
use grid::proto::flood::message::{Message as FloodMessage, QueryId};
use grid::proto::flood::sketch::{threshold_bits, Item, Query, DIMENSIONS};
use grid::proto::flood::{
    Config as FloodConfig, Event as FloodEvent, Flood, Outcome, Patience, FLOOD_PATH,
};
use grid::proto::gossip::catalog::Event as CatalogEvent;
use grid::proto::gossip::entry::{Digest, Entry};
use grid::proto::gossip::message::Message;
use grid::proto::gossip::{Config, Gossip, Peer, GOSSIP_PATH};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use rand_core::RngCore;
use rns_core::link::{wire::path_hash, LinkEvent, LinkId};
use rns_core::testnet::{Host, TestNet, WireConfig};
use rns_core::transport::{Event, InterfaceConfig, ProofStrategy, Transport, TransportConfig};
use rns_core::{rmpv, AddressHash, Identity, Instant};
use serde_json::{json, Value};

use crate::figures::{percentile, Goal};
use crate::flood_run::{noisy, random_sketch};
use crate::gossip_run::{adapter_entry, identity};
use crate::scenario::{Scenario, StackWorkload};
use crate::topology::Topology;

/// Messages waiting for a neighbour's link to come up, at most (per neighbour).
const WAITING: usize = 16;
/// How long a gossip request on a link may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the entries live.
const LIFETIME: Duration = Duration::from_secs(6 * 24 * 3600);

/// A link to a neighbour: coming up (requests wait: path and bytes), or up.
enum LinkTo {
    Opening(VecDeque<(&'static str, Vec<u8>)>),
    Up(LinkId),
}

/// A node: its transport, its `grid.node` destination and its catalog gossip.
struct StackHost {
    transport: Transport,
    identity: Identity,
    gossip: Gossip,
    flood: Flood,
    /// This node's searches that ended.
    searched: Vec<(QueryId, Outcome)>,
    /// Flood message bytes this node sent, and how many.
    flood_bytes: u64,
    flood_messages: u64,
    /// Each neighbour's `grid.node` destination.
    nodes: HashMap<Peer, AddressHash>,
    /// This node's links to its neighbours, and whose each link is.
    links: HashMap<Peer, LinkTo>,
    link_peer: HashMap<LinkId, Peer>,
    /// Digests this node holds.
    held: HashSet<Digest>,
    /// Gossip message bytes this node sent (requests and responses).
    gossip_bytes: u64,
    links_opened: u64,
    /// Whether it routes for others (a transport node).
    routes: bool,
    /// When it announces `grid.node` next, and how often.
    next_announce: Instant,
    announce_every: Duration,
}

impl StackHost {
    fn new(
        identity: Identity,
        config: Config,
        now: Instant,
        seed: u64,
        routes: bool,
        announce_every: Duration,
    ) -> Self {
        let transport_config = TransportConfig {
            transport_enabled: routes,
            ..TransportConfig::default()
        };
        let mut transport = Transport::new(
            transport_config,
            identity.clone(),
            Box::new(ChaCha20Rng::seed_from_u64(seed)),
        );
        transport.register_destination(identity.clone(), "grid.node", ProofStrategy::None, vec![]);
        StackHost {
            gossip: Gossip::new(identity.public(), config, now, seed),
            flood: Flood::new(
                *identity.hash().as_bytes(),
                FloodConfig::default(),
                now,
                seed ^ 0xF100D,
            ),
            searched: Vec::new(),
            flood_bytes: 0,
            flood_messages: 0,
            transport,
            identity,
            nodes: HashMap::new(),
            links: HashMap::new(),
            link_peer: HashMap::new(),
            held: HashSet::new(),
            gossip_bytes: 0,
            links_opened: 0,
            routes,
            next_announce: now,
            announce_every,
        }
    }

    /// Announce `grid.node` if it is time (first at the start, then every interval, so a
    /// lost announce is made good).
    fn announce_due(&mut self, now: Instant) {
        if now >= self.next_announce {
            self.next_announce = now + self.announce_every;
            let dest = self.destination();
            let _ = self.transport.announce(now, &dest, None);
        }
    }

    fn destination(&self) -> AddressHash {
        AddressHash(node_destination(self.identity.public()))
    }

    /// Send what gossip and flood queued, and note what the catalog added and which
    /// searches ended.
    fn flush(&mut self, now: Instant) {
        while let Some(t) = self.gossip.poll_transmit() {
            self.send(now, t.to, GOSSIP_PATH, t.message.encode());
        }
        while let Some(t) = self.flood.poll_transmit() {
            let bytes = t.message.encode();
            self.flood_bytes += bytes.len() as u64;
            self.flood_messages += 1;
            self.send(now, t.to, FLOOD_PATH, bytes);
        }
        while let Some(e) = self.flood.poll_event() {
            if let FloodEvent::Done { id, outcome } = e {
                self.searched.push((id, outcome));
            }
        }
        while let Some(e) = self.gossip.poll_event() {
            if let CatalogEvent::Added(d) | CatalogEvent::Replaced { new: d, .. } = e {
                self.held.insert(d);
            }
        }
    }

    /// A request on `path` to `to`: on its link if up, else once a link comes up.
    fn send(&mut self, now: Instant, to: Peer, path: &'static str, bytes: Vec<u8>) {
        match self.links.get_mut(&to) {
            Some(LinkTo::Up(link)) => {
                let link = *link;
                self.request(now, link, path, bytes);
            }
            Some(LinkTo::Opening(waiting)) => {
                if waiting.len() < WAITING {
                    waiting.push_back((path, bytes));
                }
            }
            None => {
                let Some(dest) = self.nodes.get(&to).copied() else {
                    return;
                };
                if let Ok(link) = self.transport.open_link(now, &dest) {
                    self.links_opened += 1;
                    self.link_peer.insert(link, to);
                    self.links
                        .insert(to, LinkTo::Opening(VecDeque::from([(path, bytes)])));
                }
            }
        }
    }

    fn request(&mut self, now: Instant, link: LinkId, path: &'static str, bytes: Vec<u8>) {
        if path == GOSSIP_PATH {
            self.gossip_bytes += bytes.len() as u64;
        }
        let data = rmpv::Value::Binary(bytes);
        let _ = self
            .transport
            .link_request(now, &link, path, &data, Some(REQUEST_TIMEOUT));
    }

    fn on_link(&mut self, now: Instant, e: LinkEvent) {
        match e {
            LinkEvent::Established {
                link,
                initiator: true,
                ..
            } => {
                let Some(peer) = self.link_peer.get(&link).copied() else {
                    return;
                };
                let _ = self.transport.link_identify(now, &link, &self.identity);
                let waiting = match self.links.insert(peer, LinkTo::Up(link)) {
                    Some(LinkTo::Opening(w)) => w,
                    _ => VecDeque::new(),
                };
                for (path, bytes) in waiting {
                    self.request(now, link, path, bytes);
                }
            }
            LinkEvent::Closed { link, .. } => {
                if let Some(peer) = self.link_peer.remove(&link) {
                    self.links.remove(&peer);
                }
            }
            LinkEvent::Request {
                link,
                request_id,
                path_hash: p,
                data: rmpv::Value::Binary(bytes),
                remote_identity: Some(remote),
            } => {
                let from = *remote.hash().as_bytes();
                let answer = if p == path_hash(GOSSIP_PATH) {
                    // The session's next round is the response; the rest goes as usual.
                    let answer = Message::decode(&bytes)
                        .ok()
                        .and_then(|m| self.gossip.handle_request(now, from, m))
                        .map(|m| m.encode())
                        .unwrap_or_default();
                    self.gossip_bytes += answer.len() as u64;
                    answer
                } else if p == path_hash(FLOOD_PATH) {
                    // Answers travel as requests of their own; the response is empty.
                    if let Ok(m) = FloodMessage::decode(&bytes) {
                        self.flood.handle(now, from, m);
                    }
                    Vec::new()
                } else {
                    return;
                };
                let answer = rmpv::Value::Binary(answer);
                let _ = self
                    .transport
                    .link_respond(now, &link, &request_id, &answer);
            }
            LinkEvent::Response {
                link,
                data: rmpv::Value::Binary(bytes),
                ..
            } if !bytes.is_empty() => {
                let Some(from) = self.link_peer.get(&link).copied() else {
                    return;
                };
                if let Ok(m) = Message::decode(&bytes) {
                    self.gossip.handle(now, from, m);
                }
            }
            _ => {}
        }
    }
}

impl Host for StackHost {
    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn handle_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Announce {
                destination,
                hops: 1,
                ..
            } => {
                let Some(id) = self.transport.recall_identity(&destination) else {
                    return;
                };
                if node_destination(&id) != destination.0 {
                    return; // not a grid.node
                }
                let peer = *id.hash().as_bytes();
                self.nodes.insert(peer, destination);
                let _ = self.flood.add_neighbour(peer);
                if let Ok(true) = self.gossip.add_neighbour(peer) {
                    self.gossip.sync_with(peer);
                }
            }
            Event::Link(e) => self.on_link(now, e),
            _ => {}
        }
        self.flush(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let protocols = [self.gossip.poll_timeout(), self.flood.poll_timeout()];
        protocols
            .into_iter()
            .flatten()
            .min()
            .map_or(Some(self.next_announce), |t| {
                Some(t.min(self.next_announce))
            })
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.announce_due(now);
        if self.gossip.poll_timeout().is_some_and(|t| t <= now) {
            self.gossip.handle_timeout(now);
        }
        if self.flood.poll_timeout().is_some_and(|t| t <= now) {
            self.flood.handle_timeout(now);
        }
        self.flush(now);
    }
}

/// Wire bytes handed to wires since `from` (an index into the log), and frames.
fn wire_since(net: &TestNet<StackHost>, from: usize) -> (u64, u64) {
    let frames = &net.log[from..];
    (
        frames.iter().map(|s| s.frame.len() as u64).sum(),
        frames.len() as u64,
    )
}

/// Wire bytes since `from` by Reticulum packet type (the header's low two bits): data
/// (link traffic: requests, responses, keep-alives), announces, link requests, proofs.
fn wire_by_kind(net: &TestNet<StackHost>, from: usize) -> Value {
    let mut kinds = [0u64; 4];
    for s in &net.log[from..] {
        if let Some(flags) = s.frame.first() {
            kinds[usize::from(flags & 0x03)] += s.frame.len() as u64;
        }
    }
    json!({"data": kinds[0], "announce": kinds[1], "link_request": kinds[2], "proof": kinds[3]})
}

/// Run the workload: the figures and the goals.
pub fn run(
    s: &Scenario,
    w: &StackWorkload,
    seed: u64,
    progress: &indicatif::ProgressBar,
) -> (Value, Vec<Goal>) {
    let n = s.network.nodes;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (graph, graph_stats) = Topology::for_run(&s.network, seed, Topology::Full);
    let ids: Vec<Identity> = (0..n).map(|_| identity(&mut rng)).collect();
    let config = Config {
        interval: Duration::from_secs(w.interval_s),
        max_neighbours: Config::default().max_neighbours.max(graph_stats.max_degree),
        ..Config::default()
    };
    let start = Instant::from_secs(1_800_000_000);
    let hosts: Vec<StackHost> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let routes = w.transport_every > 0 && i % w.transport_every == 0;
            let seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let announce = Duration::from_secs(w.announce_interval_s);
            StackHost::new(id.clone(), config, start, seed, routes, announce)
        })
        .collect();
    let mut net = TestNet::with_hosts(hosts);
    let wire = WireConfig {
        latency: Duration::from_millis(s.network.latency_ms),
        loss_ppm: (s.network.loss * 1_000_000.0) as u32,
        ..WireConfig::default()
    };
    for a in 0..n as u32 {
        for b in graph.neighbours(a).filter(|b| *b > a) {
            net.connect_wire(a as usize, b as usize, || InterfaceConfig::tcp("sim"), wire);
        }
    }
    let expires = (net.now + LIFETIME).as_millis();
    // Every node publishes its entries; it announces at its first timer, at once.
    for (i, id) in ids.iter().enumerate() {
        let now = net.now;
        for j in 0..w.entries_per_node {
            let e = adapter_entry(id, format!("node{i}-skill{j}"), expires, &mut rng);
            let _ = net.nodes[i].gossip.publish(now, e);
        }
        net.nodes[i].flush(now);
    }
    let everyone = n * w.entries_per_node;
    let total =
        Duration::from_secs(w.warmup_s + w.publish_window_s + w.max_converge_s + w.steady_s);
    progress.set_length(total.as_secs());
    let all_hold =
        |net: &TestNet<StackHost>, want: usize| net.nodes.iter().all(|h| h.held.len() >= want);

    // Warm-up: announces, links, the first sessions; the starting catalogs converge.
    let t0 = net.now;
    let warm = net.run_until(Duration::from_secs(w.warmup_s), |net| {
        all_hold(net, everyone)
    });
    let warm_converged_s = warm.then(|| net.now.saturating_since(t0).as_secs_f64());
    let warm_end = t0 + Duration::from_secs(w.warmup_s);
    net.run_until(warm_end.saturating_since(net.now), |_| false);
    progress.set_position(w.warmup_s);
    let warmup_bytes = wire_since(&net, 0);
    let gossip_before: u64 = net.nodes.iter().map(|h| h.gossip_bytes).sum();

    // New entries at random nodes in the window.
    let log_mark = net.log.len();
    let window = Duration::from_secs(w.publish_window_s.max(1));
    let mut schedule: Vec<(Instant, usize, Entry)> = (0..w.published)
        .map(|k| {
            let at = net.now + Duration::from_micros(rng.next_u64() % window.as_micros() as u64);
            let node = (rng.next_u64() % n as u64) as usize;
            (
                at,
                node,
                adapter_entry(&ids[node], format!("new-skill{k}"), expires, &mut rng),
            )
        })
        .collect();
    schedule.sort_by_key(|(t, ..)| *t);
    let new: Vec<Digest> = schedule.iter().map(|(_, _, e)| *e.digest()).collect();
    for (at, node, entry) in schedule {
        net.run_until(at.saturating_since(net.now), |_| false);
        let now = net.now;
        let _ = net.nodes[node].gossip.publish(now, entry);
        net.nodes[node].flush(now);
    }
    let last = net.now;
    let spread = |net: &mut TestNet<StackHost>| {
        net.nodes
            .iter()
            .all(|h| new.iter().all(|d| h.held.contains(d)))
    };
    let converged = net.run_until(Duration::from_secs(w.max_converge_s), spread);
    let converge_s = converged.then(|| net.now.saturating_since(last).as_secs_f64());
    let holding = net
        .nodes
        .iter()
        .map(|h| new.iter().filter(|d| h.held.contains(*d)).count())
        .sum::<usize>() as f64
        / (n * new.len()).max(1) as f64;
    let (spread_bytes, spread_frames) = wire_since(&net, log_mark);
    let spread_kinds = wire_by_kind(&net, log_mark);
    let spread_gossip = net.nodes.iter().map(|h| h.gossip_bytes).sum::<u64>() - gossip_before;
    progress.set_position(total.as_secs() - w.steady_s);

    // Steady state: nothing new.
    let steady_mark = net.log.len();
    let gossip_steady_before: u64 = net.nodes.iter().map(|h| h.gossip_bytes).sum();
    net.run_until(Duration::from_secs(w.steady_s), |_| false);
    let (steady_bytes, _) = wire_since(&net, steady_mark);
    let steady_kinds = wire_by_kind(&net, steady_mark);
    let steady_gossip =
        net.nodes.iter().map(|h| h.gossip_bytes).sum::<u64>() - gossip_steady_before;
    progress.set_position(total.as_secs());
    let per_node_hour = |bytes: u64| bytes as f64 / n as f64 * 3600.0 / w.steady_s.max(1) as f64;
    let ratio = spread_bytes as f64 / spread_gossip.max(1) as f64;
    let figures = json!({
        "nodes": n,
        "graph": graph_stats,
        "transport_nodes": net.nodes.iter().filter(|h| h.routes).count(),
        "warmup_converged_s": warm_converged_s,
        "warmup_wire_bytes": warmup_bytes.0,
        "published": new.len(),
        "converged": converged,
        "converge_s": converge_s,
        "held_fraction": holding,
        "spread_wire_bytes": spread_bytes,
        "spread_wire_frames": spread_frames,
        "spread_wire_bytes_by_kind": spread_kinds,
        "spread_gossip_bytes": spread_gossip,
        "wire_bytes_per_gossip_byte": ratio,
        "steady_wire_bytes_per_node_hour": per_node_hour(steady_bytes),
        "steady_gossip_bytes_per_node_hour": per_node_hour(steady_gossip),
        "steady_wire_bytes_by_kind": steady_kinds,
        "links_opened": net.nodes.iter().map(|h| h.links_opened).sum::<u64>(),
    });
    let mut figures = figures;
    if w.searches > 0 {
        figures["flood"] = search_phase(&mut net, w, n, &mut rng, per_node_hour(steady_bytes));
    }
    let goals = vec![Goal::at_least("held_fraction", holding, 1.0)];
    (figures, goals)
}

/// The search phase: `w.items` items at `w.copies` random nodes each, then `w.searches`
/// flood searches from random nodes within `w.search_window_s`, each for a random item
/// with a sketch `w.noise` away from it; gossip goes on meanwhile. `background` is the
/// steady wire rate per node per hour, to tell the searches' share of the wire bytes.
fn search_phase(
    net: &mut TestNet<StackHost>,
    w: &StackWorkload,
    n: usize,
    rng: &mut ChaCha8Rng,
    background: f64,
) -> Value {
    let patience = Patience::from_name(&w.patience).unwrap_or(Patience::Thorough);
    let mut sketches = Vec::with_capacity(w.items);
    for k in 0..w.items as u32 {
        let sketch = random_sketch(rng);
        sketches.push(sketch);
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&k.to_be_bytes());
        let mut holders = Vec::new();
        while holders.len() < w.copies.min(n) {
            let h = (rng.next_u64() % n as u64) as usize;
            if !holders.contains(&h) {
                holders.push(h);
                let _ = net.nodes[h].flood.add_item(Item {
                    id,
                    sketch,
                    topic: None,
                });
            }
        }
    }
    let flips = (w.noise * DIMENSIONS as f64).round() as usize;
    let window = Duration::from_secs(w.search_window_s.max(1));
    let start = net.now;
    let mut plan: Vec<(Instant, usize, u32, QueryId, Query)> = (0..w.searches)
        .map(|_| {
            let at = start + Duration::from_micros(rng.next_u64() % window.as_micros() as u64);
            let origin = (rng.next_u64() % n as u64) as usize;
            let item = (rng.next_u64() % w.items as u64) as u32;
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            let query = Query {
                sketch: Some(noisy(&sketches[item as usize], flips, rng)),
                topic: None,
                threshold: threshold_bits(w.threshold as f32),
            };
            (at, origin, item, id, query)
        })
        .collect();
    plan.sort_by_key(|p| p.0);
    let mark = net.log.len();
    let sent_before: u64 = net.nodes.iter().map(|h| h.flood_messages).sum();
    let bytes_before: u64 = net.nodes.iter().map(|h| h.flood_bytes).sum();
    let mut wanted: HashMap<QueryId, u32> = HashMap::new();
    for (at, origin, item, id, query) in plan {
        net.run_until(at.saturating_since(net.now), |_| false);
        let now = net.now;
        if net.nodes[origin]
            .flood
            .search(now, id, query, patience, 1)
            .is_ok()
        {
            wanted.insert(id, item);
        }
        net.nodes[origin].flush(now);
    }
    let ended = |net: &mut TestNet<StackHost>| {
        net.nodes.iter().map(|h| h.searched.len()).sum::<usize>() >= wanted.len()
    };
    net.run_until(patience.ladder().time + Duration::from_secs(5), ended);
    let elapsed = net.now.saturating_since(start);
    let (mut found, mut times, mut hops) = (0u64, Vec::new(), Vec::new());
    for h in &net.nodes {
        for (id, outcome) in &h.searched {
            let Some(item) = wanted.get(id) else { continue };
            if let Some(f) = outcome
                .found
                .iter()
                .find(|f| f.hit.item[..4] == item.to_be_bytes())
            {
                found += 1;
                times.push(f.after.as_millis() as u64);
                hops.push(u64::from(f.hops));
            }
        }
    }
    let searches = wanted.len().max(1) as f64;
    let messages = net.nodes.iter().map(|h| h.flood_messages).sum::<u64>() - sent_before;
    let payload = net.nodes.iter().map(|h| h.flood_bytes).sum::<u64>() - bytes_before;
    let (wire, _) = wire_since(net, mark);
    let gossip_share = background * n as f64 * elapsed.as_secs_f64() / 3600.0;
    json!({
        "patience": patience.name(),
        "items": w.items,
        "copies": w.copies,
        "searches": wanted.len(),
        "success": found as f64 / searches,
        "first_hit_ms_p50": percentile(&times, 50.0),
        "first_hit_ms_p99": percentile(&times, 99.0),
        "hops_p50": percentile(&hops, 50.0),
        "messages_per_search": messages as f64 / searches,
        "flood_bytes_per_search": payload as f64 / searches,
        "wire_bytes_per_search": ((wire as f64 - gossip_share).max(0.0)) / searches,
        "phase_s": elapsed.as_secs_f64(),
    })
}
