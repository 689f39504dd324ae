//! The catalog gossip workload. Every node starts holding every node's entries (the
//! catalog converged); then new entries are published at random nodes at random times in
//! the window, and the run measures how soon every node holds every new entry, the bytes
//! that took, and the bytes a converged catalog costs to keep in sync when nothing
//! changes. It runs twice on the same graph with the same entries and publication times:
//! once with `grid::proto::gossip` (set reconciliation, the state machine a node runs),
//! once with the origin design's scheme (each interval, send the most recent
//! `baseline_top` entries to `fanout` random neighbours, which merge them and send
//! theirs back), so the figures compare the two under the same conditions.

use std::collections::HashMap;
use std::time::Duration;

use grid::proto::flood::sketch::Sketch;
use grid::proto::gossip::catalog::{Catalog, Event};
use grid::proto::gossip::entry::{digest_of, Body, Digest, Entry, Record};
use grid::proto::gossip::message::Message;
use grid::proto::gossip::{Config, Gossip, Peer, Stats};
use grid::proto::neighbours::{Neighbours, Random};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use rns_core::{Identity, Instant};
use serde_json::{json, Value};

use crate::engine::{run_until, Delivery, Engine, Workload};
use crate::figures::{percentile, Goal};
use crate::scenario::{GossipWorkload, Scenario};
use crate::topology::{Graph, Topology};

/// Gossip before the first publication, not measured.
const WARMUP: Duration = Duration::from_secs(60);
/// How long the entries live (within the catalog's 7-day bound).
const LIFETIME: Duration = Duration::from_secs(6 * 24 * 3600);

/// What the run needs of a node, whichever scheme it runs.
trait Node {
    fn publish(&mut self, now: Instant, entry: Entry);
    fn handle(&mut self, now: Instant, from: Peer, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    /// Messages to send, each with the neighbour it goes to.
    fn transmits(&mut self, out: &mut Vec<(Peer, Vec<u8>)>);
    /// Digests newly held.
    fn added(&mut self, out: &mut Vec<Digest>);
    /// Figures of the scheme's own, summed over nodes.
    fn report(_nodes: &[Self]) -> Value
    where
        Self: Sized,
    {
        json!({})
    }
}

/// A node running `grid::proto::gossip`.
struct Reconciling(Gossip);

impl Node for Reconciling {
    fn publish(&mut self, now: Instant, entry: Entry) {
        let _ = self.0.publish(now, entry);
    }

    fn handle(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        if let Ok(m) = Message::decode(bytes) {
            self.0.handle(now, from, m);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn transmits(&mut self, out: &mut Vec<(Peer, Vec<u8>)>) {
        while let Some(t) = self.0.poll_transmit() {
            out.push((t.to, t.message.encode()));
        }
    }

    fn added(&mut self, out: &mut Vec<Digest>) {
        while let Some(e) = self.0.poll_event() {
            if let Event::Added(d) | Event::Replaced { new: d, .. } = e {
                out.push(d);
            }
        }
    }

    fn report(nodes: &[Self]) -> Value {
        let sum = |f: fn(&Stats) -> u64| -> u64 { nodes.iter().map(|n| f(n.0.stats())).sum() };
        json!({
            "sessions": sum(|s| s.sessions_started),
            "entries_sent": sum(|s| s.entries_sent),
            "entries_received_twice": sum(|s| s.entries_known),
            "max_round": nodes.iter().map(|n| n.0.stats().max_round).max().unwrap_or(0),
            "rounds_cut": sum(|s| s.rounds_cut),
            "rate_limited": sum(|s| s.rate_limited),
        })
    }
}

const PUSH: u8 = 0;
const REPLY: u8 = 1;

/// The origin design's scheme, on the same signed entries and bounded catalog: each
/// interval, send the `top` entries learned most recently to `fanout` random
/// neighbours; a receiver merges them (checking each new one) and sends its own back.
/// A message is a kind byte (push or reply), a count (u16) and each entry as a length
/// (u16) and its bytes.
struct Origin {
    catalog: Catalog,
    /// Digests in the order they were learned.
    recent: Vec<Digest>,
    fresh: Vec<Digest>,
    neighbours: Neighbours,
    random: Random,
    next: Instant,
    interval: Duration,
    fanout: usize,
    top: usize,
    out: Vec<(Peer, Vec<u8>)>,
}

impl Origin {
    fn top_message(&self, kind: u8) -> Vec<u8> {
        let top: Vec<&Entry> = self
            .recent
            .iter()
            .rev()
            .filter_map(|d| self.catalog.get(d))
            .take(self.top)
            .collect();
        let mut m = vec![kind];
        m.extend_from_slice(&(top.len() as u16).to_be_bytes());
        for e in top {
            m.extend_from_slice(&(e.bytes().len() as u16).to_be_bytes());
            m.extend_from_slice(e.bytes());
        }
        m
    }

    fn insert(&mut self, now: Instant, entry: Entry) {
        let _ = self.catalog.insert(now.as_millis(), entry);
        while let Some(e) = self.catalog.poll_event() {
            if let Event::Added(d) | Event::Replaced { new: d, .. } = e {
                self.recent.push(d);
                self.fresh.push(d);
            }
        }
    }

    /// Merge a message's entries; its kind, if it was well formed.
    fn merge(&mut self, now: Instant, bytes: &[u8]) -> Option<u8> {
        let (&kind, mut rest) = bytes.split_first()?;
        let count = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        rest = &rest[2..];
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
            let raw = rest.get(2..2 + len)?;
            rest = &rest[2 + len..];
            // Held already: the same bytes, checked when they came first.
            if self.catalog.contains(&digest_of(raw)) {
                continue;
            }
            if let Ok(e) = Entry::decode(raw) {
                self.insert(now, e);
            }
        }
        Some(kind)
    }
}

impl Node for Origin {
    fn publish(&mut self, now: Instant, entry: Entry) {
        self.insert(now, entry);
    }

    fn handle(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        if !self.neighbours.contains(&from) {
            return;
        }
        if self.merge(now, bytes) == Some(PUSH) {
            let reply = self.top_message(REPLY);
            self.out.push((from, reply));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        for p in self.neighbours.choose(self.fanout, &[], &mut self.random) {
            let push = self.top_message(PUSH);
            self.out.push((p, push));
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next)
    }

    fn transmits(&mut self, out: &mut Vec<(Peer, Vec<u8>)>) {
        out.append(&mut self.out);
    }

    fn added(&mut self, out: &mut Vec<Digest>) {
        out.append(&mut self.fresh);
    }
}

/// What one scheme's run measured.
#[derive(Debug, Default)]
struct Outcome {
    /// New entries every node holds, and when each got to the last node after its
    /// publication.
    spread: Vec<Duration>,
    converged_at: Option<Instant>,
    bytes_to_converge: u64,
    messages_to_converge: u64,
    steady_bytes: u64,
    steady_messages: u64,
    steady: Duration,
    lost: u64,
    partitioned: u64,
    /// The scheme's own figures.
    report: Value,
}

struct Run<'a, N> {
    engine: Engine,
    graph: &'a Graph,
    nodes: Vec<N>,
    peers: &'a [Peer],
    index: &'a HashMap<Peer, u32>,
    /// Holders of each new entry, and when it was published.
    tracked: HashMap<Digest, (u32, Instant)>,
    left: usize,
    outcome: Outcome,
    scratch: Vec<(Peer, Vec<u8>)>,
    added: Vec<Digest>,
    /// The new entries: when, at which node; and the next to publish.
    schedule: &'a [(Instant, u32, Entry)],
    next_publish: usize,
    /// Stop as soon as every node holds every new entry.
    stop_when_converged: bool,
}

impl<N: Node> Run<'_, N> {
    fn flush(&mut self, i: u32) {
        let node = &mut self.nodes[i as usize];
        node.transmits(&mut self.scratch);
        node.added(&mut self.added);
        let at = node.poll_timeout();
        for (to, bytes) in std::mem::take(&mut self.scratch) {
            let Some(&to) = self.index.get(&to) else {
                continue;
            };
            debug_assert!(self.graph.are_neighbours(i, to), "{i} -> {to}");
            self.engine.send(i, to, bytes);
        }
        let now = self.engine.now;
        for d in std::mem::take(&mut self.added) {
            let Some((holders, published)) = self.tracked.get_mut(&d) else {
                continue;
            };
            *holders += 1;
            if *holders as usize == self.nodes.len() {
                self.outcome.spread.push(now.saturating_since(*published));
                self.left -= 1;
                if self.left == 0 {
                    self.outcome.converged_at = Some(now);
                }
            }
        }
        self.engine.arm(i, at);
    }
}

impl<N: Node> Workload for Run<'_, N> {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn next_action(&self) -> Option<Instant> {
        self.schedule.get(self.next_publish).map(|(t, ..)| *t)
    }

    /// Publish the next new entry.
    fn take_action(&mut self) {
        let Some((t, at, entry)) = self.schedule.get(self.next_publish) else {
            return;
        };
        self.next_publish += 1;
        self.tracked.insert(*entry.digest(), (0, *t));
        self.nodes[*at as usize].publish(*t, entry.clone());
        self.flush(*at);
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.engine.now;
        let from = self.peers[d.from as usize];
        self.nodes[d.to as usize].handle(now, from, &d.bytes);
        self.flush(d.to);
    }

    fn timer(&mut self, i: u32) {
        let now = self.engine.now;
        self.nodes[i as usize].handle_timeout(now);
        self.flush(i);
    }

    fn done(&self) -> bool {
        self.stop_when_converged && self.outcome.converged_at.is_some()
    }
}

/// What both schemes run on.
struct Setup<'a> {
    graph: &'a Graph,
    peers: &'a [Peer],
    /// The new entries: when, at which node.
    schedule: &'a [(Instant, u32, Entry)],
}

/// Run `nodes` through the workload: warm-up, the publications, convergence (or the
/// deadline), then `w.steady_s` of nothing changing.
fn simulate<N: Node>(
    s: &Scenario,
    w: &GossipWorkload,
    seed: u64,
    setup: &Setup<'_>,
    nodes: Vec<N>,
    progress: &indicatif::ProgressBar,
) -> Outcome {
    let (graph, peers, schedule) = (setup.graph, setup.peers, setup.schedule);
    let index: HashMap<Peer, u32> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i as u32))
        .collect();
    let engine = Engine::new(
        &s.network,
        nodes.len(),
        ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
    );
    let t0 = engine.now;
    let mut run = Run {
        engine,
        graph,
        nodes,
        peers,
        index: &index,
        tracked: HashMap::new(),
        left: schedule.len(),
        outcome: Outcome::default(),
        scratch: Vec::new(),
        added: Vec::new(),
        schedule,
        next_publish: 0,
        stop_when_converged: false,
    };
    for i in 0..run.nodes.len() as u32 {
        run.flush(i);
    }
    let first = schedule.first().map_or(t0 + WARMUP, |(t, ..)| *t);
    run_until(&mut run, first, progress);
    let (bytes0, messages0) = (run.engine.traffic.bytes, run.engine.traffic.messages);
    let deadline = t0
        + WARMUP
        + Duration::from_secs(w.publish_window_s)
        + Duration::from_secs(w.max_converge_s);
    run.stop_when_converged = true;
    run_until(&mut run, deadline, progress);
    run.stop_when_converged = false;
    let settled = run
        .outcome
        .converged_at
        .unwrap_or(deadline)
        .max(run.engine.now);
    let (bytes1, messages1) = (run.engine.traffic.bytes, run.engine.traffic.messages);
    run.outcome.bytes_to_converge = bytes1 - bytes0;
    run.outcome.messages_to_converge = messages1 - messages0;
    let steady = Duration::from_secs(w.steady_s);
    run_until(&mut run, settled + steady, progress);
    run.outcome.steady_bytes = run.engine.traffic.bytes - bytes1;
    run.outcome.steady_messages = run.engine.traffic.messages - messages1;
    run.outcome.steady = steady;
    run.outcome.lost = run.engine.traffic.lost;
    run.outcome.partitioned = run.engine.traffic.partitioned;
    run.outcome.report = N::report(&run.nodes);
    run.outcome
}

pub(crate) fn identity(rng: &mut ChaCha8Rng) -> Identity {
    let mut key = [0u8; 64];
    rng.fill_bytes(&mut key);
    // Any 64 bytes are a valid private key.
    Identity::from_private_bytes(&key).unwrap_or_else(|_| unreachable!())
}

pub(crate) fn adapter_entry(
    who: &Identity,
    name: String,
    expires_ms: u64,
    rng: &mut ChaCha8Rng,
) -> Entry {
    let mut content_hash = [0u8; 32];
    let mut sketch = [0u8; 48];
    let mut vector_hash = [0u8; 16];
    rng.fill_bytes(&mut content_hash);
    rng.fill_bytes(&mut sketch);
    rng.fill_bytes(&mut vector_hash);
    let record = Record {
        seq: 1,
        expires_ms,
        tombstone: false,
        summary: format!("{name}: a LoRA adapter for a task"),
        name,
        body: Body::Adapter {
            content_hash,
            sketch: Sketch(sketch),
            vector_hash,
        },
    };
    // Names and summaries are within bounds by construction.
    Entry::sign(who, record).unwrap_or_else(|e| unreachable!("{e}"))
}

fn figures(
    o: &Outcome,
    n: usize,
    published: Instant,
    interval: Duration,
    w: &GossipWorkload,
) -> Value {
    let spread: Vec<u64> = o.spread.iter().map(|d| d.as_millis() as u64).collect();
    let after = o.converged_at.map(|t| t.saturating_since(published));
    let per_hour = |x: u64| {
        let h = o.steady.as_secs_f64() / 3600.0;
        if h > 0.0 {
            (x as f64 / n as f64 / h).round() as u64
        } else {
            0
        }
    };
    json!({
        "converged": o.converged_at.is_some(),
        "entries_everywhere": spread.len(),
        "converge_s_after_last_publish": after.map(|d| round1(d.as_secs_f64())),
        "intervals_after_last_publish": after.map(|d| d.as_secs_f64() / interval.as_secs_f64()).map(round1),
        "spread_s_p50": round1(percentile(&spread, 50.0) as f64 / 1000.0),
        "spread_s_p99": round1(percentile(&spread, 99.0) as f64 / 1000.0),
        "spread_s_max": round1(spread.iter().max().copied().unwrap_or(0) as f64 / 1000.0),
        "bytes_to_converge": o.bytes_to_converge,
        "messages_to_converge": o.messages_to_converge,
        "bytes_per_new_entry_per_node": o.bytes_to_converge / (w.published * n).max(1) as u64,
        "steady_s": o.steady.as_secs(),
        "steady_bytes_per_node_per_hour": per_hour(o.steady_bytes),
        "steady_messages_per_node_per_hour": per_hour(o.steady_messages),
        "messages_lost": o.lost,
        "messages_partitioned": o.partitioned,
        "scheme": o.report,
    })
}

/// Run the gossip workload of `s` with `seed`; the figures, and the goals they are held
/// to.
pub fn run(
    s: &Scenario,
    w: &GossipWorkload,
    seed: u64,
    progress: &indicatif::ProgressBar,
) -> (Value, Vec<Goal>) {
    let n = s.network.nodes;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (graph, graph_stats) = Topology::for_run(&s.network, seed, Topology::Full);
    let t0 = Engine::new(&s.network, 0, ChaCha8Rng::seed_from_u64(0)).now;
    let interval = Duration::from_secs(w.interval_s);
    let expires = (t0 + LIFETIME).as_millis();

    let ids: Vec<Identity> = (0..n).map(|_| identity(&mut rng)).collect();
    let peers: Vec<Peer> = ids.iter().map(|i| *i.hash().as_bytes()).collect();
    let mut start = Vec::with_capacity(n * w.entries_per_node);
    for (i, id) in ids.iter().enumerate() {
        for j in 0..w.entries_per_node {
            start.push(adapter_entry(
                id,
                format!("node{i}-skill{j}"),
                expires,
                &mut rng,
            ));
        }
    }
    let window = Duration::from_secs(w.publish_window_s);
    let mut schedule: Vec<(Instant, u32, Entry)> = (0..w.published)
        .map(|k| {
            let at =
                t0 + WARMUP + Duration::from_micros(rng.next_u64() % window.as_micros() as u64);
            let node = (rng.next_u64() % n as u64) as u32;
            let e = adapter_entry(
                &ids[node as usize],
                format!("new-skill{k}"),
                expires,
                &mut rng,
            );
            (at, node, e)
        })
        .collect();
    schedule.sort_by_key(|(t, ..)| *t);
    let last_publish = schedule.last().map_or(t0, |(t, ..)| *t);
    let max_degree = graph_stats.max_degree;
    let neighbours_of = |i: usize| graph.neighbours(i as u32).map(|j| peers[j as usize]);

    let config = Config {
        interval,
        fanout: w.fanout,
        budget: w.budget,
        max_neighbours: Config::default().max_neighbours.max(max_degree),
        ..Config::default()
    };
    let reconciling: Vec<Reconciling> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut g = Gossip::new(id.public(), config, t0, seed.wrapping_add(i as u64));
            for p in neighbours_of(i) {
                let _ = g.add_neighbour(p);
            }
            for e in &start {
                let _ = g.restore(t0, e.clone());
            }
            while g.poll_event().is_some() {}
            Reconciling(g)
        })
        .collect();
    let simulated = WARMUP + window + Duration::from_secs(w.max_converge_s + w.steady_s);
    progress.set_length(2 * simulated.as_secs());
    let setup = Setup {
        graph: &graph,
        peers: &peers,
        schedule: &schedule,
    };
    let recon = simulate(s, w, seed, &setup, reconciling, progress);

    let origin: Vec<Origin> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut random = Random::new(seed.wrapping_add(i as u64));
            let mut neighbours = Neighbours::new(peers[i], max_degree.max(1));
            for p in neighbours_of(i) {
                let _ = neighbours.add(p);
            }
            let mut o = Origin {
                catalog: Catalog::new(*id.public().as_bytes(), config.catalog),
                recent: Vec::new(),
                fresh: Vec::new(),
                next: t0 + Duration::from_micros(random.next_u64() % interval.as_micros() as u64),
                neighbours,
                random,
                interval,
                fanout: w.fanout,
                top: w.baseline_top,
                out: Vec::new(),
            };
            for e in &start {
                o.insert(t0, e.clone());
            }
            o.fresh.clear();
            o
        })
        .collect();
    let base = simulate(s, w, seed, &setup, origin, progress);

    let ratio = recon.bytes_to_converge as f64 / base.bytes_to_converge.max(1) as f64;
    let steady_ratio = recon.steady_bytes as f64 / base.steady_bytes.max(1) as f64;
    let both = recon.converged_at.is_some() && base.converged_at.is_some();
    let figures = json!({
        "graph": graph_stats,
        "messaging": "neighbours",
        "entries_at_start": start.len(),
        "published": w.published,
        "publish_window_s": w.publish_window_s,
        "interval_s": w.interval_s,
        "fanout": w.fanout,
        "budget_bytes": w.budget,
        "entry_bytes": start.first().map_or(0, |e| e.bytes().len()),
        "reconciliation": figures(&recon, n, last_publish, interval, w),
        "origin_scheme": figures(&base, n, last_publish, interval, w),
        "origin_top": w.baseline_top,
        "bytes_ratio_to_converge": round4(ratio),
        "steady_bytes_ratio": round4(steady_ratio),
        "both_converged": both,
    });
    let goals = vec![
        Goal::at_least(
            "reconciliation.converged",
            f64::from(u8::from(recon.converged_at.is_some())),
            1.0,
        ),
        Goal::at_most("bytes_ratio_to_converge", ratio, 0.1),
    ];
    (figures, goals)
}

pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
