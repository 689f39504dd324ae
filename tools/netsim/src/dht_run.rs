//! The DHT workload: every node a `grid::proto::dht::Dht`, the state machine the node
//! runs. Nodes bootstrap from a few contacts in the first minute (looking up their own
//! id), some provide keys at two minutes, then in the measurement window lookups for
//! random keys start from random live nodes while nodes leave and new ones join. Some of
//! the nodes that leave come back after a while, with their state (woken from sleep) or
//! with only their identity (restarted): those bootstrap again and provide again.
//!
//! Messages go between nodes directly, delayed by the network's latency and jitter and
//! lost at its rate: the overlay on top of a transport that already has paths. Public
//! keys are random bytes, not curve points: ids are hashed from them as on the wire, and
//! nothing here signs or encrypts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use grid::proto::dht::key::{Contact, Key, PUBLIC_LEN};
use grid::proto::dht::lookup::Outcome;
use grid::proto::dht::message::Message;
use grid::proto::dht::{Config, Dht, Event, LookupId};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use rns_core::Instant;
use serde_json::{json, Value};

use crate::engine::{run_until, Delivery, Engine, Workload};
use crate::figures::{percentile, Goal};
use crate::scenario::{Churn, DhtWorkload, Scenario};

/// When the nodes bootstrap (spread over this), and when keys are provided.
const BOOTSTRAP: Duration = Duration::from_secs(60);
const PROVIDE_AT: Duration = Duration::from_secs(120);
const WINDOW_AT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
enum Action {
    Bootstrap(u32),
    Provide(u32, u32),
    Lookup,
    Leave,
    Join(u32),
    /// Node back from its downtime; `true`: with the state it left with.
    Return(u32, bool),
}

/// A lookup being measured.
struct Measured {
    key: u32,
    /// The searching node came back after leaving: with its state (`Some(true)`).
    origin: Option<bool>,
}

struct Run<'a> {
    w: &'a DhtWorkload,
    churn: &'a Churn,
    config: Config,
    seed: u64,
    engine: Engine,
    rng: ChaCha8Rng,
    nodes: Vec<Dht>,
    up: Vec<bool>,
    index: HashMap<Key, u32>,
    /// Nodes up, for picking one at random.
    live: Vec<u32>,
    keys: Vec<Key>,
    providers: Vec<u32>,
    actions: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    action_list: Vec<Action>,
    measured: HashMap<(u32, LookupId), Measured>,
    /// Each ended lookup: its outcome, whether it named the key's live provider, and
    /// whether its node had come back (with its state: `Some(true)`).
    outcomes: Vec<(Outcome, bool, Option<bool>)>,
    /// Per node: came back after leaving, with its state or without.
    came_back: Vec<Option<bool>>,
    left: usize,
    joined: usize,
    /// Nodes back after leaving: with their state, without it.
    returned: (usize, usize),
    /// Lookups whose own node left before they ended.
    abandoned: usize,
}

fn contact(rng: &mut ChaCha8Rng) -> Contact {
    let mut p = [0u8; PUBLIC_LEN];
    rng.fill_bytes(&mut p);
    Contact::from_public(p)
}

impl Run<'_> {
    fn schedule(&mut self, at: Instant, a: Action) {
        let seq = self.action_list.len() as u64;
        self.action_list.push(a);
        self.actions.push(Reverse((at, seq, seq as u32)));
    }

    fn pick_live(&mut self) -> Option<u32> {
        if self.live.is_empty() {
            return None;
        }
        let i = (self.rng.next_u64() % self.live.len() as u64) as usize;
        Some(self.live[i])
    }

    /// Deliver what node `i` sent, collect its events and re-arm its timer.
    fn flush(&mut self, i: u32) {
        let node = &mut self.nodes[i as usize];
        while let Some(t) = node.poll_transmit() {
            if let Some(to) = self.index.get(&t.to.id) {
                self.engine.send(i, *to, t.message.encode());
            }
        }
        while let Some(e) = node.poll_event() {
            let Event::Done { id, outcome } = e else {
                continue;
            };
            if let Some(m) = self.measured.remove(&(i, id)) {
                let provider = self.providers[m.key as usize];
                let live_provider = self.up[provider as usize]
                    && outcome
                        .providers
                        .iter()
                        .any(|p| self.index.get(&p.id) == Some(&provider));
                self.outcomes.push((outcome, live_provider, m.origin));
            }
        }
        let t = node.poll_timeout();
        self.engine.arm(i, t);
    }

    /// Give node `i` a few contacts among the live nodes, as the paths it heard would.
    fn bootstrap_from_live(&mut self, i: u32) {
        let now = self.engine.now;
        for _ in 0..self.w.bootstrap_contacts {
            if let Some(j) = self.pick_live().filter(|j| *j != i) {
                let c = *self.nodes[j as usize].own();
                self.nodes[i as usize].add_contact(now, c, None);
            }
        }
    }

    fn act(&mut self, a: Action) {
        let now = self.engine.now;
        match a {
            Action::Bootstrap(i) => {
                let own = self.nodes[i as usize].own().id;
                let _ = self.nodes[i as usize].find_node(now, own);
                self.flush(i);
            }
            Action::Provide(i, key) => {
                if self.up[i as usize] {
                    let k = self.keys[key as usize];
                    let _ = self.nodes[i as usize].provide(now, k);
                    self.flush(i);
                }
            }
            Action::Lookup => {
                let Some(i) = self.pick_live() else { return };
                // A key whose provider is still up.
                let live_keys: Vec<u32> = (0..self.keys.len() as u32)
                    .filter(|k| self.up[self.providers[*k as usize] as usize])
                    .collect();
                if live_keys.is_empty() {
                    return;
                }
                let key = live_keys[(self.rng.next_u64() % live_keys.len() as u64) as usize];
                let k = self.keys[key as usize];
                if let Ok(id) = self.nodes[i as usize].find_providers(now, k, 1) {
                    let origin = self.came_back[i as usize];
                    self.measured.insert((i, id), Measured { key, origin });
                }
                self.flush(i);
            }
            Action::Leave => {
                let Some(i) = self.pick_live() else { return };
                self.up[i as usize] = false;
                self.live.retain(|n| *n != i);
                // Its own lookups end with it: not counted either way.
                let before = self.measured.len();
                self.measured.retain(|(n, _), _| *n != i);
                self.abandoned += before - self.measured.len();
                self.engine.arm(i, None);
                self.left += 1;
                let (keep, lose) = (
                    self.churn.return_with_state,
                    self.churn.return_without_state,
                );
                if keep + lose > 0.0 {
                    // (Drawn only when some come back: runs without returns stay as before.)
                    let r = (self.rng.next_u64() % 1_000_000) as f64 / 1e6;
                    let back = now + Duration::from_secs(self.churn.downtime_s);
                    if r < keep {
                        self.schedule(back, Action::Return(i, true));
                    } else if r < keep + lose {
                        self.schedule(back, Action::Return(i, false));
                    }
                }
            }
            Action::Return(i, with_state) => {
                self.up[i as usize] = true;
                self.came_back[i as usize] = Some(with_state);
                self.live.push(i);
                if with_state {
                    // As it left: its timers, overdue now, run first.
                    self.returned.0 += 1;
                    self.nodes[i as usize].handle_timeout(now);
                    self.flush(i);
                } else {
                    // Its key kept, nothing else: a new table from a few live nodes, then
                    // it provides again what it holds, as a restarted node does.
                    self.returned.1 += 1;
                    let own = *self.nodes[i as usize].own();
                    let seed = self.seed ^ (u64::from(i) << 32) ^ self.returned.1 as u64;
                    self.nodes[i as usize] = Dht::new(own, self.config, now, seed);
                    self.bootstrap_from_live(i);
                    self.act(Action::Bootstrap(i));
                    for key in 0..self.keys.len() as u32 {
                        if self.providers[key as usize] == i {
                            self.act(Action::Provide(i, key));
                        }
                    }
                }
            }
            Action::Join(i) => {
                self.up[i as usize] = true;
                self.bootstrap_from_live(i);
                self.live.push(i);
                self.joined += 1;
                self.act(Action::Bootstrap(i));
            }
        }
    }
}

impl Workload for Run<'_> {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn next_action(&self) -> Option<Instant> {
        self.actions.peek().map(|Reverse((t, ..))| *t)
    }

    fn take_action(&mut self) {
        if let Some(Reverse((_, _, idx))) = self.actions.pop() {
            let a = self.action_list[idx as usize];
            self.act(a);
        }
    }

    fn deliver(&mut self, d: Delivery) {
        if !self.up[d.to as usize] {
            return;
        }
        let Ok(m) = Message::decode(&d.bytes) else {
            return;
        };
        let from = *self.nodes[d.from as usize].own();
        let now = self.engine.now;
        self.nodes[d.to as usize].handle(now, from, None, m);
        self.flush(d.to);
    }

    fn timer(&mut self, i: u32) {
        if self.up[i as usize] {
            let now = self.engine.now;
            self.nodes[i as usize].handle_timeout(now);
            self.flush(i);
        }
    }
}

/// Run the DHT workload of `s` with `seed`; the figures, and the goals they are held to.
pub fn run(
    s: &Scenario,
    w: &DhtWorkload,
    seed: u64,
    progress: &indicatif::ProgressBar,
) -> (Value, Vec<Goal>) {
    let mut config = Config::default();
    if let Some(k) = w.k {
        config.k = k;
    }
    if let Some(a) = w.alpha {
        config.alpha = a;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = s.network.nodes;
    let joining = (start as f64 * s.churn.join).round() as usize;
    let total = start + joining;
    let engine = Engine::new(&s.network, total, ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
    let t0 = engine.now;
    let nodes: Vec<Dht> = (0..total)
        .map(|i| Dht::new(contact(&mut rng), config, t0, seed.wrapping_add(i as u64)))
        .collect();
    let index = nodes
        .iter()
        .enumerate()
        .map(|(i, d)| (d.own().id, i as u32))
        .collect();
    let keys: Vec<Key> = (0..w.keys)
        .map(|_| {
            let mut h = [0u8; 32];
            rng.fill_bytes(&mut h);
            Key::of_content(&h)
        })
        .collect();
    let mut run = Run {
        w,
        churn: &s.churn,
        config,
        seed,
        engine,
        rng,
        nodes,
        up: (0..total).map(|i| i < start).collect(),
        index,
        live: (0..start as u32).collect(),
        keys,
        providers: Vec::new(),
        actions: BinaryHeap::new(),
        action_list: Vec::new(),
        measured: HashMap::new(),
        outcomes: Vec::new(),
        left: 0,
        joined: 0,
        returned: (0, 0),
        came_back: vec![None; total],
        abandoned: 0,
    };
    // Each starting node heard a few others.
    for i in 0..start {
        for _ in 0..w.bootstrap_contacts {
            let j = (run.rng.next_u64() % start as u64) as usize;
            if j != i {
                let c = *run.nodes[j].own();
                run.nodes[i].add_contact(t0, c, None);
            }
        }
    }
    let micros = |d: Duration| d.as_micros() as u64;
    for i in 0..start as u32 {
        let at = t0 + Duration::from_micros(run.rng.next_u64() % micros(BOOTSTRAP));
        run.schedule(at, Action::Bootstrap(i));
    }
    for key in 0..w.keys as u32 {
        let p = (run.rng.next_u64() % start as u64) as u32;
        run.providers.push(p);
        let at = t0 + PROVIDE_AT + Duration::from_millis(u64::from(key) * 10);
        run.schedule(at, Action::Provide(p, key));
    }
    let window = Duration::from_secs(w.window_s);
    let random_in_window = |rng: &mut ChaCha8Rng| {
        t0 + WINDOW_AT + Duration::from_micros(rng.next_u64() % micros(window))
    };
    for _ in 0..w.lookups {
        let at = random_in_window(&mut run.rng);
        run.schedule(at, Action::Lookup);
    }
    for _ in 0..(start as f64 * s.churn.leave).round() as usize {
        let at = random_in_window(&mut run.rng);
        run.schedule(at, Action::Leave);
    }
    for j in 0..joining {
        let at = random_in_window(&mut run.rng);
        run.schedule(at, Action::Join((start + j) as u32));
    }
    // Room for the last lookups to end (they time out after lookup_timeout at most).
    let end = t0 + WINDOW_AT + window + config.lookup_timeout + Duration::from_secs(10);
    progress.set_length(end.as_secs());
    run_until(&mut run, end, progress);

    // Lookups that never ended count as failures.
    let n = run.outcomes.len() + run.measured.len();
    let ok = run.outcomes.iter().filter(|(_, live, _)| *live).count();
    // Lookups started by nodes that had come back, with and without their state.
    let from = |kind: bool| {
        let mine: Vec<bool> = run
            .outcomes
            .iter()
            .filter(|(_, _, o)| *o == Some(kind))
            .map(|(_, live, _)| *live)
            .collect();
        let ok = mine.iter().filter(|l| **l).count();
        json!({"lookups": mine.len(), "success_rate": round4(ok as f64 / mine.len().max(1) as f64)})
    };
    let success = if n == 0 { 0.0 } else { ok as f64 / n as f64 };
    let hops: Vec<u64> = run
        .outcomes
        .iter()
        .filter(|(_, live, _)| *live)
        .map(|(o, _, _)| u64::from(o.hops))
        .collect();
    let requests: Vec<u64> = run
        .outcomes
        .iter()
        .map(|(o, _, _)| u64::from(o.requests))
        .collect();
    let times: Vec<u64> = run
        .outcomes
        .iter()
        .filter(|(_, live, _)| *live)
        .map(|(o, _, _)| o.elapsed.as_millis() as u64)
        .collect();
    let up: Vec<usize> = (0..total).filter(|i| run.up[*i]).collect();
    let table_mean = up
        .iter()
        .map(|i| run.nodes[*i].table().len())
        .sum::<usize>() as f64
        / up.len().max(1) as f64;
    let records: usize = up.iter().map(|i| run.nodes[*i].providers().len()).sum();
    let hops_p50 = percentile(&hops, 50.0);
    let figures = json!({
        "nodes_start": start,
        "nodes_left": run.left,
        "nodes_joined": run.joined,
        "nodes_returned_with_state": run.returned.0,
        "nodes_returned_without_state": run.returned.1,
        "from_returned_with_state": from(true),
        "from_returned_without_state": from(false),
        "keys": w.keys,
        "lookups": n,
        "lookups_not_ended": run.measured.len(),
        "lookups_abandoned": run.abandoned,
        "success_rate": round4(success),
        "hops_p50": hops_p50,
        "hops_p99": percentile(&hops, 99.0),
        "hops_max": hops.iter().max().copied().unwrap_or(0),
        "requests_per_lookup_p50": percentile(&requests, 50.0),
        "requests_per_lookup_p99": percentile(&requests, 99.0),
        "lookup_ms_p50": percentile(&times, 50.0),
        "lookup_ms_p99": percentile(&times, 99.0),
        "timed_out": run.outcomes.iter().filter(|(o, _, _)| o.timed_out).count(),
        "messages": run.engine.traffic.messages,
        "bytes": run.engine.traffic.bytes,
        "messages_lost": run.engine.traffic.lost,
        "messages_partitioned": run.engine.traffic.partitioned,
        "messages_per_node": round4(run.engine.traffic.messages as f64 / total as f64),
        "routing_table_mean": round4(table_mean),
        "provider_records": records,
        "simulated_s": end.saturating_since(t0).as_secs(),
        "events": run.engine.steps,
    });
    let goals = vec![
        Goal::at_least("success_rate", success, 0.99),
        Goal::at_most("hops_p50", hops_p50 as f64, 5.0),
    ];
    (figures, goals)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
