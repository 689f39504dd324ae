//! The flood search workload: every node a `grid::proto::flood::Flood`, the state machine
//! a node runs, its neighbours those of the scenario's graph. Items are placed at random
//! nodes (each at `copies` distinct nodes); then, in the window, searches start from
//! random nodes for random items at each patience level, their sketches the item's with a
//! fraction of the bits flipped. Messages go only along the graph's edges, each one hop,
//! delayed by the network's latency and jitter and lost at its rate.
//!
//! A search succeeds when it finds the item it looked for. Its messages are every query
//! and answer message carrying its id, whenever sent (late answers included).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use grid::proto::flood::message::{Body, Message, QueryId};
use grid::proto::flood::sketch::{threshold_bits, Item, Query, Sketch, DIMENSIONS, SKETCH_LEN};
use grid::proto::flood::{Config, Event, Flood, Outcome, Patience, Peer};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use rns_core::Instant;
use serde_json::{json, Map, Value};

use crate::engine::{run_until, Delivery, Engine, Workload};
use crate::figures::{percentile, Goal};
use crate::scenario::{FloodWorkload, Scenario};
use crate::topology::{Graph, Topology};

/// When the first searches may start.
const WARMUP: Duration = Duration::from_secs(1);

/// A search being measured.
struct Measured {
    level: usize,
    item: [u8; 16],
    query_messages: u64,
    answer_messages: u64,
    /// Budget given back by leaves (none on graphs without leaves).
    return_messages: u64,
    reached: u64,
    first: Option<(u8, Duration)>,
    outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Copy)]
struct Start {
    origin: u32,
    level: usize,
    item: u32,
}

struct Run<'a> {
    engine: Engine,
    graph: &'a Graph,
    nodes: Vec<Flood>,
    index: HashMap<Peer, u32>,
    measured: HashMap<QueryId, Measured>,
    /// In start order, for reproducible figures.
    order: Vec<QueryId>,
    starts: BinaryHeap<Reverse<(Instant, u64)>>,
    start_list: Vec<(Start, QueryId, Query)>,
    busy: u64,
    levels: Vec<Patience>,
    want: u8,
}

fn peer(i: u32) -> Peer {
    let mut p = [0x6e; 16];
    p[..4].copy_from_slice(&i.to_be_bytes());
    p
}

impl Run<'_> {
    fn flush(&mut self, i: u32) {
        while let Some(t) = self.nodes[i as usize].poll_transmit() {
            let Some(&to) = self.index.get(&t.to) else {
                continue;
            };
            debug_assert!(self.graph.are_neighbours(i, to), "{i} -> {to}");
            if let Some(m) = self.measured.get_mut(&t.message.id) {
                match t.message.body {
                    Body::Query(_) => m.query_messages += 1,
                    Body::Answer { .. } => m.answer_messages += 1,
                    Body::Return { .. } => m.return_messages += 1,
                }
            }
            self.engine.send(i, to, t.message.encode());
        }
        while let Some(e) = self.nodes[i as usize].poll_event() {
            match e {
                Event::Found { id, found } => {
                    if let Some(m) = self.measured.get_mut(&id) {
                        if m.first.is_none() {
                            m.first = Some((found.hops, found.after));
                        }
                    }
                }
                Event::Done { id, outcome } => {
                    if let Some(m) = self.measured.get_mut(&id) {
                        m.outcome = Some(outcome);
                    }
                }
                _ => {}
            }
        }
        let t = self.nodes[i as usize].poll_timeout();
        self.engine.arm(i, t);
    }

    fn start(&mut self, idx: usize) {
        let want = self.want;
        let (s, id, query) = self.start_list[idx].clone();
        let now = self.engine.now;
        let item = {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&s.item.to_be_bytes());
            b
        };
        let node = &mut self.nodes[s.origin as usize];
        if node
            .search(now, id, query, self.levels[s.level], want)
            .is_err()
        {
            self.busy += 1;
            return;
        }
        self.order.push(id);
        self.measured.insert(
            id,
            Measured {
                level: s.level,
                item,
                query_messages: 0,
                answer_messages: 0,
                return_messages: 0,
                reached: 0,
                first: None,
                outcome: None,
            },
        );
        self.flush(s.origin);
    }
}

impl Workload for Run<'_> {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn next_action(&self) -> Option<Instant> {
        self.starts.peek().map(|Reverse((t, _))| *t)
    }

    fn take_action(&mut self) {
        if let Some(Reverse((_, idx))) = self.starts.pop() {
            self.start(idx as usize);
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let Ok(m) = Message::decode(&d.bytes) else {
            return;
        };
        if matches!(m.body, Body::Query(_)) && !self.nodes[d.to as usize].seen().contains(&m.id) {
            if let Some(x) = self.measured.get_mut(&m.id) {
                x.reached += 1;
            }
        }
        let now = self.engine.now;
        self.nodes[d.to as usize].handle(now, peer(d.from), m);
        self.flush(d.to);
    }

    fn timer(&mut self, i: u32) {
        let now = self.engine.now;
        self.nodes[i as usize].handle_timeout(now);
        self.flush(i);
    }
}

pub(crate) fn random_sketch(rng: &mut ChaCha8Rng) -> Sketch {
    let mut s = [0u8; SKETCH_LEN];
    rng.fill_bytes(&mut s);
    Sketch(s)
}

/// `s` with `flips` distinct random bits flipped.
pub(crate) fn noisy(s: &Sketch, flips: usize, rng: &mut ChaCha8Rng) -> Sketch {
    let mut bits: Vec<usize> = (0..DIMENSIONS).collect();
    let mut out = *s;
    for i in 0..flips.min(DIMENSIONS) {
        let j = i + (rng.next_u64() % (DIMENSIONS - i) as u64) as usize;
        bits.swap(i, j);
        out.0[bits[i] / 8] ^= 0x80 >> (bits[i] % 8);
    }
    out
}

/// Run the flood workload of `s` with `seed`; the figures, and the goals they are held
/// to.
pub fn run(
    s: &Scenario,
    w: &FloodWorkload,
    seed: u64,
    progress: &indicatif::ProgressBar,
) -> (Value, Vec<Goal>) {
    let n = s.network.nodes;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (graph, graph_stats) = Topology::for_run(&s.network, seed, Topology::Line);
    let levels: Vec<Patience> = w
        .patience
        .iter()
        .filter_map(|p| Patience::from_name(p))
        .collect();

    let engine = Engine::new(&s.network, n, ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
    let t0 = engine.now;
    let config = Config {
        // A node keeps all its graph neighbours, however many.
        max_neighbours: Config::default().max_neighbours.max(graph_stats.max_degree),
        ..Config::default()
    };
    let mut nodes: Vec<Flood> = (0..n as u32)
        .map(|i| Flood::new(peer(i), config, t0, seed.wrapping_add(u64::from(i))))
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        for j in graph.neighbours(i as u32) {
            let _ = node.add_neighbour(peer(j));
        }
    }
    // Items, each at `copies` distinct random nodes.
    let mut sketches = Vec::with_capacity(w.items);
    for k in 0..w.items as u32 {
        let sketch = random_sketch(&mut rng);
        sketches.push(sketch);
        let mut holders: Vec<u32> = Vec::with_capacity(w.copies);
        while holders.len() < w.copies {
            let h = (rng.next_u64() % n as u64) as u32;
            if !holders.contains(&h) {
                holders.push(h);
            }
        }
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&k.to_be_bytes());
        for h in holders {
            let _ = nodes[h as usize].add_item(Item {
                id,
                sketch,
                topic: None,
            });
        }
    }
    let mut run = Run {
        engine,
        graph: &graph,
        index: (0..n as u32).map(|i| (peer(i), i)).collect(),
        nodes,
        measured: HashMap::new(),
        order: Vec::new(),
        starts: BinaryHeap::new(),
        start_list: Vec::new(),
        busy: 0,
        levels: levels.clone(),
        want: w.want,
    };
    let flips = (w.noise * DIMENSIONS as f64).round() as usize;
    let window = Duration::from_secs(w.window_s);
    for level in 0..levels.len() {
        for _ in 0..w.queries {
            let at =
                t0 + WARMUP + Duration::from_micros(rng.next_u64() % window.as_micros() as u64);
            let origin = (rng.next_u64() % n as u64) as u32;
            let item = (rng.next_u64() % w.items as u64) as u32;
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            let query = Query {
                sketch: Some(noisy(&sketches[item as usize], flips, &mut rng)),
                topic: None,
                threshold: threshold_bits(w.threshold as f32),
            };
            let idx = run.start_list.len() as u64;
            run.start_list.push((
                Start {
                    origin,
                    level,
                    item,
                },
                id,
                query,
            ));
            run.starts.push(Reverse((at, idx)));
        }
    }
    let longest = levels
        .iter()
        .map(|p| p.ladder().time)
        .max()
        .unwrap_or_default();
    let end = t0 + WARMUP + window + longest + Duration::from_secs(5);
    progress.set_length(end.as_secs());
    run_until(&mut run, end, progress);

    let mut by_level = Map::new();
    let mut goals = Vec::new();
    for (l, p) in levels.iter().enumerate() {
        let ms: Vec<&Measured> = run
            .order
            .iter()
            .filter_map(|id| run.measured.get(id))
            .filter(|m| m.level == l)
            .collect();
        let ok = |m: &Measured| {
            m.outcome
                .as_ref()
                .is_some_and(|o| o.found.iter().any(|f| f.hit.item == m.item))
        };
        let good: Vec<&Measured> = ms.iter().copied().filter(|m| ok(m)).collect();
        let success = good.len() as f64 / ms.len().max(1) as f64;
        let total: Vec<u64> = ms
            .iter()
            .map(|m| m.query_messages + m.answer_messages + m.return_messages)
            .collect();
        let queries: Vec<u64> = ms.iter().map(|m| m.query_messages).collect();
        let answers: Vec<u64> = ms.iter().map(|m| m.answer_messages).collect();
        let reached: Vec<u64> = ms.iter().map(|m| m.reached).collect();
        let hops: Vec<u64> = good
            .iter()
            .filter_map(|m| m.first.map(|(h, _)| u64::from(h)))
            .collect();
        let times: Vec<u64> = good
            .iter()
            .filter_map(|m| m.first.map(|(_, t)| t.as_millis() as u64))
            .collect();
        let ladder = p.ladder();
        let p99 = percentile(&total, 99.0);
        by_level.insert(
            p.name().to_owned(),
            json!({
                "ttl": ladder.ttl,
                "fanout": ladder.fanout,
                "time_budget_ms": ladder.time.as_millis() as u64,
                "message_budget": ladder.budget,
                "searches": ms.len(),
                "success_rate": round4(success),
                "messages_per_query_p50": percentile(&total, 50.0),
                "messages_per_query_p99": p99,
                "messages_per_query_max": total.iter().max().copied().unwrap_or(0),
                "query_messages_p50": percentile(&queries, 50.0),
                "answer_messages_p50": percentile(&answers, 50.0),
                "nodes_reached_p50": percentile(&reached, 50.0),
                "hops_to_first_answer_p50": percentile(&hops, 50.0),
                "hops_to_first_answer_p99": percentile(&hops, 99.0),
                "time_to_first_answer_ms_p50": percentile(&times, 50.0),
                "time_to_first_answer_ms_p99": percentile(&times, 99.0),
            }),
        );
        if *p == Patience::Thorough {
            goals.push(Goal::at_least("thorough.success_rate", success, 0.99));
            goals.push(Goal::at_most(
                "thorough.messages_per_query_p99",
                p99 as f64,
                300.0,
            ));
        }
    }
    let sum = |f: fn(&grid::proto::flood::Stats) -> u64| -> u64 {
        run.nodes.iter().map(|x| f(x.stats())).sum()
    };
    let figures = json!({
        "graph": graph_stats,
        "messaging": "neighbours",
        "items": w.items,
        "copies": w.copies,
        "noise": w.noise,
        "threshold": w.threshold,
        "want": w.want,
        "by_patience": by_level,
        "searches_refused_busy": run.busy,
        "messages": run.engine.traffic.messages,
        "bytes": run.engine.traffic.bytes,
        "messages_lost": run.engine.traffic.lost,
        "messages_partitioned": run.engine.traffic.partitioned,
        "duplicates": sum(|s| s.duplicates),
        "rate_limited": sum(|s| s.rate_limited),
        "answers_dropped": sum(|s| s.answers_dropped),
        "simulated_s": end.saturating_since(t0).as_secs(),
        "events": run.engine.steps,
    });
    (figures, goals)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
