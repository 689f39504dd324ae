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

use std::collections::HashMap;
use std::time::Duration;

use grid::proto::dht::key::Key;
use grid::proto::flood::message::QueryId;
use grid::proto::flood::sketch::{threshold_bits, Item, Query, DIMENSIONS};
use grid::proto::flood::Patience;
use grid::proto::gossip::entry::{Digest, Entry};
use grid::proto::gossip::Config;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use rns_core::testnet::{TestNet, WireConfig};
use rns_core::transport::InterfaceConfig;
use rns_core::{Identity, Instant};
use serde_json::{json, Value};

use crate::figures::{percentile, Goal};
use crate::flood_run::{noisy, random_sketch};
use crate::gossip_run::{adapter_entry, identity};
use crate::scenario::{Scenario, StackWorkload};
use crate::stack_host::StackHost;
use crate::topology::Topology;

/// How long the entries live.
const LIFETIME: Duration = Duration::from_secs(6 * 24 * 3600);

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

/// Nodes unplugged during the publication window (`[churn] leave`), some plugged back in
/// `downtime_s` later with their state (`return_with_state`): a node is unplugged by
/// taking all its wires down; a wire is up when both its ends are.
struct Plugs {
    ends: Vec<(usize, usize)>,
    wires_of: Vec<Vec<usize>>,
    up: Vec<bool>,
    left: usize,
    /// Nodes back: when, and when they held every new entry.
    back: Vec<(usize, Instant, Option<Instant>)>,
}

impl Plugs {
    fn new(n: usize) -> Plugs {
        Plugs {
            ends: Vec::new(),
            wires_of: vec![Vec::new(); n],
            up: vec![true; n],
            left: 0,
            back: Vec::new(),
        }
    }

    /// Record the wire just connected between `a` and `b`.
    fn wired(&mut self, a: usize, b: usize) {
        let w = self.ends.len();
        self.ends.push((a, b));
        self.wires_of[a].push(w);
        self.wires_of[b].push(w);
    }

    fn set(&mut self, net: &mut TestNet<StackHost>, node: usize, up: bool) {
        self.up[node] = up;
        if up {
            self.back.push((node, net.now, None));
        } else {
            self.left += 1;
        }
        for &w in &self.wires_of[node] {
            let (a, b) = self.ends[w];
            net.set_up(w, self.up[a] && self.up[b]);
        }
    }

    /// Note the nodes back that now hold every entry of `new`.
    fn track(&mut self, net: &TestNet<StackHost>, new: &[Digest]) {
        for (node, _, caught_up) in &mut self.back {
            if caught_up.is_none() && new.iter().all(|d| net.nodes[*node].held.contains(d)) {
                *caught_up = Some(net.now);
            }
        }
    }

    fn figures(&self) -> Value {
        let times: Vec<u64> = self
            .back
            .iter()
            .filter_map(|(_, at, done)| done.map(|d| d.saturating_since(*at).as_millis() as u64))
            .collect();
        json!({
            "left": self.left,
            "returned": self.back.len(),
            "away_at_end": self.up.iter().filter(|u| !**u).count(),
            "returned_caught_up": times.len(),
            "caught_up_s_p50": percentile(&times, 50.0) as f64 / 1000.0,
            "caught_up_s_max": times.iter().max().copied().unwrap_or(0) as f64 / 1000.0,
        })
    }
}

/// What happens in the publication window, in time order.
enum Happening {
    Publish(usize, Box<Entry>),
    Unplug(usize),
    PlugIn(usize),
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
    let mut plugs = Plugs::new(n);
    for a in 0..n as u32 {
        for b in graph.neighbours(a).filter(|b| *b > a) {
            net.connect_wire(a as usize, b as usize, || InterfaceConfig::tcp("sim"), wire);
            plugs.wired(a as usize, b as usize);
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
    let mut happenings: Vec<(Instant, Happening)> = Vec::new();
    if s.churn.leave > 0.0 {
        // Nodes that publish nothing new are unplugged at random times in the window
        // (a publisher that left with its entry unsent would make the figure about it);
        // some come back, state kept, `downtime_s` later.
        let publishers: Vec<usize> = schedule.iter().map(|(_, node, _)| *node).collect();
        let mut others: Vec<usize> = (0..n).filter(|i| !publishers.contains(i)).collect();
        let leaving = ((s.churn.leave * n as f64).round() as usize).min(others.len());
        for _ in 0..leaving {
            let node = others.swap_remove((rng.next_u64() % others.len() as u64) as usize);
            let at = net.now + Duration::from_micros(rng.next_u64() % window.as_micros() as u64);
            happenings.push((at, Happening::Unplug(node)));
            if (rng.next_u64() % 1_000_000) as f64 / 1e6 < s.churn.return_with_state {
                let back = at + Duration::from_secs(s.churn.downtime_s);
                happenings.push((back, Happening::PlugIn(node)));
            }
        }
    }
    happenings.extend(
        schedule
            .into_iter()
            .map(|(at, node, entry)| (at, Happening::Publish(node, Box::new(entry)))),
    );
    happenings.sort_by_key(|(t, _)| *t);
    let mut last = net.now;
    for (at, happening) in happenings {
        net.run_until(at.saturating_since(net.now), |net| {
            plugs.track(net, &new);
            false
        });
        let now = net.now;
        match happening {
            Happening::Publish(node, entry) => {
                let _ = net.nodes[node].gossip.publish(now, *entry);
                net.nodes[node].flush(now);
                last = now;
            }
            Happening::Unplug(node) => plugs.set(&mut net, node, false),
            Happening::PlugIn(node) => plugs.set(&mut net, node, true),
        }
    }
    // Converged: every node plugged in holds every new entry.
    let converged = net.run_until(Duration::from_secs(w.max_converge_s), |net| {
        plugs.track(net, &new);
        net.nodes
            .iter()
            .zip(&plugs.up)
            .all(|(h, up)| !*up || new.iter().all(|d| h.held.contains(d)))
    });
    let converge_s = converged.then(|| net.now.saturating_since(last).as_secs_f64());
    let live = plugs.up.iter().filter(|u| **u).count();
    let holding = net
        .nodes
        .iter()
        .zip(&plugs.up)
        .filter(|(_, up)| **up)
        .map(|(h, _)| new.iter().filter(|d| h.held.contains(*d)).count())
        .sum::<usize>() as f64
        / (live * new.len()).max(1) as f64;
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
    if s.churn.leave > 0.0 {
        figures["churn"] = plugs.figures();
    }
    if w.searches > 0 {
        figures["flood"] = search_phase(&mut net, w, n, &mut rng, per_node_hour(steady_bytes));
    }
    let mut goals = vec![Goal::at_least("held_fraction", holding, 1.0)];
    if w.dht_keys > 0 && w.dht_lookups > 0 {
        let dht = dht_phase(&mut net, w, n, &mut rng, per_node_hour(steady_bytes));
        let success = dht["success"].as_f64().unwrap_or(0.0);
        let p50 = dht["hops_p50"].as_f64().unwrap_or(f64::MAX);
        figures["dht"] = dht;
        goals.push(Goal::at_least("dht.success", success, 0.99));
        goals.push(Goal::at_most("dht.hops_p50", p50, 5.0));
    }
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

/// The DHT phase: every node joins its DHT (a lookup of its own id, as a node does on
/// first use), `w.dht_keys` random keys are provided, each by a random node, then
/// `w.dht_lookups` provider lookups for random keys start from random nodes within
/// `w.dht_window_s`. Every DHT message is a link request on `grid/dht`, its answer the
/// response, as in a node (`grid/src/node/dht.rs`).
fn dht_phase(
    net: &mut TestNet<StackHost>,
    w: &StackWorkload,
    n: usize,
    rng: &mut ChaCha8Rng,
    background: f64,
) -> Value {
    let now = net.now;
    for h in net.nodes.iter_mut() {
        h.dht_on = true;
        let own = h.dht.own().id;
        let _ = h.dht.find_node(now, own);
        h.flush(now);
    }
    net.run_until(Duration::from_secs(60), |_| false);
    let keys: Vec<(Key, usize)> = (0..w.dht_keys)
        .map(|_| {
            let mut content = [0u8; 32];
            rng.fill_bytes(&mut content);
            (
                Key::of_content(&content),
                (rng.next_u64() % n as u64) as usize,
            )
        })
        .collect();
    let now = net.now;
    for (key, provider) in &keys {
        let _ = net.nodes[*provider].dht.provide(now, *key);
        net.nodes[*provider].flush(now);
    }
    net.run_until(Duration::from_secs(120), |_| false);
    for h in net.nodes.iter_mut() {
        h.looked_up.clear();
    }

    let mark = net.log.len();
    let sent_before: u64 = net.nodes.iter().map(|h| h.dht_messages).sum();
    let window = Duration::from_secs(w.dht_window_s.max(1));
    let start = net.now;
    let mut plan: Vec<(Instant, usize, usize)> = (0..w.dht_lookups)
        .map(|_| {
            let at = start + Duration::from_micros(rng.next_u64() % window.as_micros() as u64);
            let origin = (rng.next_u64() % n as u64) as usize;
            (at, origin, (rng.next_u64() % keys.len() as u64) as usize)
        })
        .collect();
    plan.sort_by_key(|p| p.0);
    // (node, lookup id) → the key's provider, by identity.
    let mut wanted: HashMap<(usize, u64), Key> = HashMap::new();
    for (at, origin, k) in plan {
        net.run_until(at.saturating_since(net.now), |_| false);
        let (key, provider) = keys[k];
        let provider_id = net.nodes[provider].dht.own().id;
        let now = net.now;
        if let Ok(id) = net.nodes[origin].dht.find_providers(now, key, 1) {
            wanted.insert((origin, id), provider_id);
        }
        net.nodes[origin].flush(now);
    }
    let total = wanted.len();
    let ended = |net: &mut TestNet<StackHost>| {
        net.nodes.iter().map(|h| h.looked_up.len()).sum::<usize>() >= total
    };
    net.run_until(Duration::from_secs(120), ended);
    let elapsed = net.now.saturating_since(start);
    let (mut found, mut hops, mut times, mut requests) = (0u64, Vec::new(), Vec::new(), Vec::new());
    for (i, h) in net.nodes.iter().enumerate() {
        for (id, outcome) in &h.looked_up {
            let Some(provider) = wanted.get(&(i, *id)) else {
                continue;
            };
            requests.push(u64::from(outcome.requests));
            if outcome.providers.iter().any(|c| c.id == *provider) {
                found += 1;
                hops.push(u64::from(outcome.hops));
                times.push(outcome.elapsed.as_millis() as u64);
            }
        }
    }
    let lookups = total.max(1) as f64;
    let messages = net.nodes.iter().map(|h| h.dht_messages).sum::<u64>() - sent_before;
    let (wire, _) = wire_since(net, mark);
    let gossip_share = background * n as f64 * elapsed.as_secs_f64() / 3600.0;
    json!({
        "keys": w.dht_keys,
        "lookups": total,
        "success": found as f64 / lookups,
        "hops_p50": percentile(&hops, 50.0),
        "hops_p99": percentile(&hops, 99.0),
        "time_ms_p50": percentile(&times, 50.0),
        "time_ms_p99": percentile(&times, 99.0),
        "requests_per_lookup_p50": percentile(&requests, 50.0),
        "messages_per_lookup": messages as f64 / lookups,
        "wire_bytes_per_lookup": ((wire as f64 - gossip_share).max(0.0)) / lookups,
    })
}
