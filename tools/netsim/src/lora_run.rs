//! Catalog gossip over the LoRa link model ([`crate::lora`]). Every node runs
//! `grid::proto::gossip` with the LoRa message budget; its messages to a neighbour go as
//! Reticulum link packets ([`link_packet_len`]) on the shared channel, so they take the
//! firmware's airtime, wait for the channel and the duty-cycle budget, and can collide.
//!
//! The catalog starts converged (every node holds every node's entries). At
//! `publish_at_s`, one new adapter entry is published at the node farthest in hops from
//! a far-edge node (the ends of a double sweep); the run measures when the far edge
//! holds it (it is then findable there from the local catalog) and when every node
//! does, each node's airtime per hour, and the worst sliding hour of any node, held to
//! the duty cycle.
//!
//! With `search_after_s` set, the far edge also runs a flood search for the new adapter
//! (`grid::proto::flood`, every node's catalog holding what its gossip catalog holds)
//! that long after the publication: thorough's reach (10 hops, fan-out 3, 250 queries)
//! with a wait of `search_time_s`, its queries and answers on the same channel.

use std::collections::HashMap;
use std::time::Duration;

use grid::proto::flood::sketch::{threshold_bits, Item, Query};
use grid::proto::flood::{self, Flood, Patience};
use grid::proto::gossip::catalog::Event;
use grid::proto::gossip::entry::{Body, Digest, Entry};
use grid::proto::gossip::message::Message;
use grid::proto::gossip::{Config, Gossip, Peer};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rns_core::{Identity, Instant};
use serde_json::{json, Value};

use crate::engine::{run_until, Delivery, Engine, Workload};
use crate::figures::{percentile, Goal};
use crate::gossip_run::{adapter_entry, identity, round1, round4};
use crate::lora::{airtime_between, link_packet_len, Heard, LinkConfig, Radio};
use crate::scenario::{LoraWorkload, Scenario};
use crate::topology::Topology;

/// How long the entries live (within the catalog's 7-day bound).
const LIFETIME: Duration = Duration::from_secs(6 * 24 * 3600);
/// An hour, µs.
const HOUR_US: u64 = 3_600_000_000;
/// Bytes in front of the message in a link packet: the header and the token's IV.
const FRONT: usize = 19 + 16;
/// The byte in front of a gossip message (the driver's own; a real node tells them
/// apart by destination).
const GOSSIP: u8 = 0;
/// The byte in front of a flood message.
const FLOOD: u8 = 1;
/// The id of the far edge's search.
const SEARCH_ID: [u8; 16] = *b"lora-30-search-0";

/// A gossip message as the link packet that carries it: its length (two bytes, standing
/// in for the header), filler to the header's and IV's size, the message, and filler for
/// the padding and HMAC, `link_packet_len` bytes in all.
fn packet(message: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; link_packet_len(message.len())];
    p[..2].copy_from_slice(&(message.len() as u16).to_be_bytes());
    p[FRONT..FRONT + message.len()].copy_from_slice(message);
    p
}

/// The message a [`packet`] carries.
fn unpacket(p: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([*p.first()?, *p.get(1)?]));
    p.get(FRONT..FRONT + len)
}

/// The flood search's view of a catalog entry: its adapter's sketch, under the first 16
/// bytes of its digest.
fn item(entry: &Entry) -> Option<Item> {
    let Body::Adapter { sketch, .. } = &entry.record().body else {
        return None;
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&entry.digest()[..16]);
    Some(Item {
        id,
        sketch: *sketch,
        topic: None,
    })
}

/// The far edge's search, and what became of it.
#[derive(Default)]
struct Search {
    at: Option<Instant>,
    ladder: Option<flood::Ladder>,
    query: Option<Query>,
    started: Option<Instant>,
    found: Option<(u8, Duration)>,
    ended: bool,
}

struct Run<'a> {
    engine: Engine,
    radio: Radio,
    nodes: Vec<Gossip>,
    floods: Vec<Flood>,
    search: Search,
    peers: &'a [Peer],
    index: HashMap<Peer, u32>,
    /// The new entry, where and when it is published (taken when it is).
    publish: Option<(Instant, u32, Entry)>,
    tracked: Option<(Digest, Instant)>,
    far_edge: u32,
    /// When the far edge got it, after publication.
    at_far_edge: Option<Duration>,
    holders: usize,
    everywhere: Option<Duration>,
    heard: Vec<Heard>,
    /// Gossip messages the radio refused (too long or queue full).
    refused: u64,
}

impl Run<'_> {
    /// Put `message` (after its kind byte) on the air from `i` to the neighbour `to`.
    fn transmit(&mut self, i: u32, to: &Peer, kind: u8, message: Vec<u8>) {
        let Some(&to) = self.index.get(to) else {
            return;
        };
        let mut m = Vec::with_capacity(1 + message.len());
        m.push(kind);
        m.extend_from_slice(&message);
        if self
            .radio
            .send(self.engine.now, i, Some(to), packet(&m))
            .is_err()
        {
            self.refused += 1;
        }
    }

    fn flush(&mut self, i: u32) {
        let now = self.engine.now;
        while let Some(t) = self.nodes[i as usize].poll_transmit() {
            self.transmit(i, &t.to, GOSSIP, t.message.encode());
        }
        while let Some(t) = self.floods[i as usize].poll_transmit() {
            self.transmit(i, &t.to, FLOOD, t.message.encode());
        }
        while let Some(e) = self.floods[i as usize].poll_event() {
            match e {
                flood::Event::Found { found, .. } => {
                    self.search.found.get_or_insert((found.hops, found.after));
                }
                flood::Event::Done { .. } => self.search.ended = true,
                _ => {}
            }
        }
        while let Some(e) = self.nodes[i as usize].poll_event() {
            let (Event::Added(d) | Event::Replaced { new: d, .. }) = e else {
                continue;
            };
            let Some((digest, published)) = self.tracked else {
                continue;
            };
            if d != digest {
                continue;
            }
            // Held here, so found here: the flood search answers from it.
            if let Some(entry) = self.nodes[i as usize].catalog().get(&d) {
                if let Some(it) = item(entry) {
                    let _ = self.floods[i as usize].add_item(it);
                }
            }
            let after = now.saturating_since(published);
            self.holders += 1;
            if i == self.far_edge {
                self.at_far_edge = Some(after);
            }
            if self.holders == self.nodes.len() {
                self.everywhere = Some(after);
            }
        }
        let at = crate::engine::earliest(
            self.nodes[i as usize].poll_timeout(),
            self.floods[i as usize].poll_timeout(),
        );
        self.engine.arm(i, at);
    }
}

impl Workload for Run<'_> {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The publication, the search, or the radio's next transmission start or end.
    fn next_action(&self) -> Option<Instant> {
        let own = crate::engine::earliest(self.publish.as_ref().map(|p| p.0), self.search.at);
        crate::engine::earliest(own, self.radio.next_time())
    }

    fn take_action(&mut self) {
        let now = self.engine.now;
        if self.search.at.is_some_and(|t| t <= now) {
            self.search.at = None;
            let i = self.far_edge;
            if let (Some(q), Some(l)) = (self.search.query.take(), self.search.ladder) {
                if self.floods[i as usize]
                    .search_with(now, SEARCH_ID, q, l, 1)
                    .is_ok()
                {
                    self.search.started = Some(now);
                }
            }
            self.flush(i);
            return;
        }
        if let Some((t, at, entry)) = self.publish.take_if(|p| p.0 <= now) {
            self.tracked = Some((*entry.digest(), t));
            let _ = self.nodes[at as usize].publish(t, entry);
            self.flush(at);
            return;
        }
        self.radio.step(now, &mut self.heard);
        for h in std::mem::take(&mut self.heard) {
            let from = self.peers[h.from as usize];
            match unpacket(&h.bytes).and_then(|b| b.split_first()) {
                Some((&GOSSIP, m)) => {
                    if let Ok(m) = Message::decode(m) {
                        self.nodes[h.to as usize].handle(now, from, m);
                    }
                }
                Some((&FLOOD, m)) => {
                    if let Ok(m) = flood::message::Message::decode(m) {
                        self.floods[h.to as usize].handle(now, from, m);
                    }
                }
                _ => {}
            }
            self.flush(h.to);
        }
    }

    fn deliver(&mut self, _: Delivery) {
        // Every message goes over the radio; the engine carries none.
    }

    fn timer(&mut self, i: u32) {
        let now = self.engine.now;
        self.nodes[i as usize].handle_timeout(now);
        self.floods[i as usize].handle_timeout(now);
        self.flush(i);
    }
}

/// Run the LoRa workload of `s` with `seed`; the figures, and the goals they are held
/// to.
pub fn run(
    s: &Scenario,
    w: &LoraWorkload,
    seed: u64,
    progress: &indicatif::ProgressBar,
) -> (Value, Vec<Goal>) {
    // Scenarios are checked when loaded: the topology is a neighbour graph.
    let (graph, graph_stats) = Topology::for_run(&s.network, seed, Topology::Line);
    let n = graph.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let engine = Engine::new(&s.network, n, ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
    let t0 = engine.now;
    let expires = (t0 + LIFETIME).as_millis();
    // Checked when the scenario was loaded.
    let modulation = w.modulation().unwrap_or_else(|e| unreachable!("{e}"));
    let link = LinkConfig {
        modulation,
        duty_cycle: w.duty_cycle,
        window: Duration::from_secs(3600),
        queue: w.queue,
        max_hold: Duration::from_secs(w.max_hold_s),
        carrier_sense: w.carrier_sense,
    };
    let radio = Radio::new(link, &graph, ChaCha8Rng::seed_from_u64(seed ^ 0x10_4a));

    let ids: Vec<Identity> = (0..n).map(|_| identity(&mut rng)).collect();
    let peers: Vec<Peer> = ids.iter().map(|i| *i.hash().as_bytes()).collect();
    let mut start = Vec::with_capacity(n * w.entries_per_node);
    for (i, id) in ids.iter().enumerate() {
        for j in 0..w.entries_per_node {
            let name = format!("node{i}-skill{j}");
            start.push(adapter_entry(id, name, expires, &mut rng));
        }
    }
    let (far_edge, publisher, hops) = graph.far_pair(0);
    let new = adapter_entry(
        &ids[publisher as usize],
        "new-skill".into(),
        expires,
        &mut rng,
    );
    let published = t0 + Duration::from_secs(w.publish_at_s);

    let config = Config {
        interval: Duration::from_secs(w.interval_s),
        fanout: w.fanout,
        budget: w.budget,
        max_neighbours: Config::default().max_neighbours.max(graph_stats.max_degree),
        ..Config::lora()
    };
    let nodes: Vec<Gossip> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut g = Gossip::new(id.public(), config, t0, seed.wrapping_add(i as u64));
            for p in graph.neighbours(i as u32) {
                let _ = g.add_neighbour(peers[p as usize]);
            }
            for e in &start {
                let _ = g.restore(t0, e.clone());
            }
            while g.poll_event().is_some() {}
            g
        })
        .collect();
    let flood_config = flood::Config {
        max_neighbours: flood::Config::default()
            .max_neighbours
            .max(graph_stats.max_degree),
        // Reverse paths outlive the search, so late answers still find their way.
        remember: flood::Config::default()
            .remember
            .max(Duration::from_secs(w.search_time_s)),
        ..flood::Config::default()
    };
    let floods: Vec<Flood> = (0..n as u32)
        .map(|i| {
            let mut f = Flood::new(peers[i as usize], flood_config, t0, seed ^ u64::from(i));
            for p in graph.neighbours(i) {
                let _ = f.add_neighbour(peers[p as usize]);
            }
            f
        })
        .collect();
    // Thorough's reach (hops, fan-out, query budget), with a wait for LoRa.
    let ladder = flood::Ladder {
        time: Duration::from_secs(w.search_time_s),
        ..Patience::Thorough.ladder()
    };
    let search = Search {
        at: w.search_after_s.map(|d| published + Duration::from_secs(d)),
        ladder: Some(ladder),
        query: item(&new).map(|it| Query {
            sketch: Some(it.sketch),
            topic: None,
            threshold: threshold_bits(0.75),
        }),
        ..Search::default()
    };
    let mut run = Run {
        engine,
        radio,
        nodes,
        floods,
        search,
        peers: &peers,
        index: peers
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u32))
            .collect(),
        publish: Some((published, publisher, new.clone())),
        tracked: None,
        far_edge,
        at_far_edge: None,
        holders: 0,
        everywhere: None,
        heard: Vec::new(),
        refused: 0,
    };
    for i in 0..n as u32 {
        run.flush(i);
    }
    let end = t0 + Duration::from_secs(w.duration_s);
    progress.set_length(w.duration_s);
    run_until(&mut run, end, progress);

    // Airtime per node per whole hour of the run, and each node's worst sliding hour.
    let (t0_us, end_us) = (t0.as_micros(), end.as_micros());
    let hours = (end_us - t0_us) / HOUR_US;
    let mut hourly = Vec::new();
    let mut worst = 0u64;
    let mut total = 0u64;
    for i in 0..n as u32 {
        let h = run.radio.history(i);
        for k in 0..hours {
            let from = t0_us + k * HOUR_US;
            hourly.push(airtime_between(h, from, from + HOUR_US));
        }
        worst = worst.max(run.radio.worst_window_us(i));
        total += airtime_between(h, t0_us, end_us);
    }
    let fraction = |us: u64| round4(us as f64 / HOUR_US as f64);
    let duty_cycle_max = worst as f64 / HOUR_US as f64;
    let st = run.radio.stats;
    let gossip_sum = |f: fn(&grid::proto::gossip::Stats) -> u64| -> u64 {
        run.nodes.iter().map(|g| f(g.stats())).sum()
    };
    let steady_message = link_packet_len(new.bytes().len().min(w.budget));
    let figures = json!({
        "graph": graph_stats,
        "messaging": "neighbours (in range), over the LoRa link model",
        "modulation": {
            "spreading_factor": modulation.sf,
            "bandwidth_hz": modulation.bandwidth_hz,
            "coding_rate": format!("4/{}", modulation.coding_rate),
            "preamble_symbols": modulation.preamble_symbols,
            "bitrate_bps": modulation.bitrate_bps(),
        },
        "duty_cycle": w.duty_cycle,
        "interval_s": w.interval_s,
        "fanout": w.fanout,
        "budget_bytes": w.budget,
        "entries_at_start": start.len(),
        "entry_bytes": new.bytes().len(),
        "airtime_ms_entry_packet": run.radio.airtime_us(steady_message) as f64 / 1000.0,
        "airtime_ms_full_packet": run.radio.airtime_us(crate::lora::RNS_MTU) as f64 / 1000.0,
        "publisher": publisher,
        "far_edge": far_edge,
        "hops_publisher_to_far_edge": hops,
        "published_at_s": w.publish_at_s,
        "simulated_s": w.duration_s,
        "far_edge_holds_it": run.at_far_edge.is_some(),
        "far_edge_s": run.at_far_edge.map(|d| round1(d.as_secs_f64())),
        "nodes_holding_it": run.holders,
        "everywhere_s": run.everywhere.map(|d| round1(d.as_secs_f64())),
        "airtime_per_node_hour_p50": fraction(percentile(&hourly, 50.0)),
        "airtime_per_node_hour_max": fraction(hourly.iter().max().copied().unwrap_or(0)),
        "airtime_s_all_nodes": round1(total as f64 / 1e6),
        "duty_cycle_max": round4(duty_cycle_max),
        "packets": {
            "sent": st.sent,
            "delivered": st.delivered,
            "collided": st.collided,
            "missed_while_transmitting": st.missed_transmitting,
            "held_by_duty_cycle": st.held,
            "held_s": round1(st.held_us as f64 / 1e6),
            "dropped_held_too_long": st.dropped_held,
            "dropped_queue_full": st.dropped_queue,
            "refused_too_long": st.refused_size,
            "deferred_channel_busy": st.deferred,
        },
        "gossip": {
            "sessions": gossip_sum(|s| s.sessions_started),
            "messages": gossip_sum(|s| s.messages_sent),
            "bytes": gossip_sum(|s| s.bytes_sent),
            "entries_sent": gossip_sum(|s| s.entries_sent),
            "rate_limited": gossip_sum(|s| s.rate_limited),
            "rounds_cut": gossip_sum(|s| s.rounds_cut),
        },
    });
    let search = &run.search;
    let searched = w.search_after_s.map(|after| {
        json!({
            "started_s_after_publish": after,
            "started": search.started.is_some(),
            "far_edge_held_it_already": run.at_far_edge.is_some_and(|d| d.as_secs() <= after),
            "found": search.found.is_some(),
            "found_s_after_start": search.found.map(|(_, d)| round1(d.as_secs_f64())),
            "found_hops": search.found.map(|(h, _)| h),
            "ended": search.ended,
            "wait_s": w.search_time_s,
            "ttl": ladder.ttl,
            "fanout": ladder.fanout,
            "query_budget": ladder.budget,
            "queries_forwarded": run.floods.iter().map(|f| f.stats().forwarded).sum::<u64>(),
        })
    });
    let mut figures = figures;
    figures["flood_search"] = searched.unwrap_or(Value::Null);
    let goals = vec![
        Goal::at_most("duty_cycle_max", duty_cycle_max, w.duty_cycle),
        Goal::at_least(
            "far_edge_holds_it",
            f64::from(u8::from(run.at_far_edge.is_some())),
            1.0,
        ),
    ];
    (figures, goals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_its_packet() {
        let m = vec![9u8; 123];
        let p = packet(&m);
        assert_eq!(p.len(), link_packet_len(123));
        assert_eq!(unpacket(&p), Some(&m[..]));
        assert_eq!(unpacket(&[0]), None);
    }
}
