//! The LoRa link model: one shared, half-duplex radio channel with RNode's framing, the
//! firmware's airtime and an exact duty-cycle budget per node.
//!
//! What is modelled:
//! - **Airtime** of a packet is `grid_firmware::split::packet_airtime_us` for the
//!   scenario's [`Modulation`] (RNode's preamble): a packet of up to 254 bytes is one
//!   LoRa frame, a longer one two frames sent back to back, taken here as one
//!   transmission of their summed airtime. Packets longer than Reticulum's 500-byte MTU
//!   are refused when queued.
//! - **Range**: a transmission is heard by the sender's neighbours in the topology
//!   (random-geometric: the nodes within radio range) and by no one else. A packet is
//!   addressed to one neighbour (or to all of them); the others still hear it, so it
//!   occupies the channel and can collide there.
//! - **Half duplex**: a node sends one packet at a time from a bounded FIFO queue, and
//!   hears nothing while it transmits.
//! - **Listen before talk**, after RNode (`grid_firmware::csma`, whose slot and DIFS
//!   it uses: 49 ms and 98 ms at SF9): for each packet a node draws 0–14 slots (RNode's
//!   first contention band); the channel must then be free for DIFS plus that many
//!   slots before it transmits. A transmission heard in the meantime restarts the wait
//!   when it ends (RNode freezes the slots already counted instead). Detection is taken
//!   as instant: two nodes that draw the same slot, or that cannot hear each other
//!   (hidden terminals), still overlap.
//! - **Collisions**: a receiver that hears two transmissions overlapping in time loses
//!   both (no capture effect), and a receiver that is transmitting loses what it would
//!   have heard.
//! - **Duty cycle**: each node may transmit at most `duty_cycle` of any sliding window
//!   of `window` (1 % of an hour: 36 s). A packet whose airtime would break that waits,
//!   at the head of the queue, until the earliest moment it fits; a packet that has
//!   waited longer than `max_hold` in all is dropped. The check is exact (every window,
//!   not RNode's 7.5 s bins), and stricter than RNode's airtime lock, which only stops
//!   a node once the limit has been reached and so can overshoot by one packet.
//!
//! Not modelled: path loss, fading, SNR and the capture effect (in range means heard,
//! unless it collides); propagation delay (microseconds); RNode's CSMA details (its
//! contention window grows with the channel load); Reticulum's packet bookkeeping
//! beyond its size ([`link_packet_len`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use grid_firmware::airtime::Modulation;
use grid_firmware::csma::{CsmaTiming, CW_PER_BAND_WINDOWS};
use grid_firmware::split::packet_airtime_us;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use rns_core::Instant;

use crate::topology::Graph;

/// Reticulum's packet MTU, bytes: a longer packet is refused.
pub const RNS_MTU: usize = 500;

/// The size of a Reticulum packet carrying `payload` bytes on a link: a 19-byte header
/// (flags, hops, 16-byte link id, context), then the link's token: a 16-byte IV, the
/// payload padded to whole 16-byte blocks (PKCS7: 1–16 bytes more) and a 32-byte HMAC.
pub const fn link_packet_len(payload: usize) -> usize {
    19 + 16 + (payload / 16 + 1) * 16 + 32
}

/// The link's settings.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// The modulation (airtime comes from it).
    pub modulation: Modulation,
    /// The fraction of any window a node may transmit (0.01 for 1 %).
    pub duty_cycle: f64,
    /// The sliding window the duty cycle holds over.
    pub window: Duration,
    /// Packets a node's queue holds, at most; past it new ones are dropped.
    pub queue: usize,
    /// A packet queued longer than this is dropped instead of sent.
    pub max_hold: Duration,
    /// Whether a node listens before it talks.
    pub carrier_sense: bool,
}

/// Why a packet was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Longer than [`RNS_MTU`] (or empty); carries the length.
    Size(usize),
    /// The sender's queue is full.
    QueueFull,
}

/// A packet heard by the node it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// The sender.
    pub from: u32,
    /// The receiver.
    pub to: u32,
    /// The packet.
    pub bytes: Vec<u8>,
}

/// Counts over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets transmitted.
    pub sent: u64,
    /// Packets received intact by a node they were for.
    pub delivered: u64,
    /// Receptions (by a node a packet was for) lost to an overlapping transmission.
    pub collided: u64,
    /// Receptions lost because the receiver was transmitting.
    pub missed_transmitting: u64,
    /// Packets for a node out of the sender's range (never heard).
    pub out_of_range: u64,
    /// Packets that had to wait for the duty-cycle budget.
    pub held: u64,
    /// Their total wait for the budget, µs.
    pub held_us: u64,
    /// Packets dropped after waiting longer than `max_hold`.
    pub dropped_held: u64,
    /// Packets refused because the queue was full.
    pub dropped_queue: u64,
    /// Packets refused as too long.
    pub refused_size: u64,
    /// Packets that found the channel busy at least once before they went.
    pub deferred: u64,
}

struct Queued {
    since: Instant,
    to: Option<u32>,
    bytes: Vec<u8>,
    airtime_us: u64,
    /// Whether the duty cycle has held it already (counted once).
    held_since: Option<Instant>,
    /// Its back-off: slots drawn, and since when the node has listened (µs).
    backoff: Option<(u64, u64)>,
    /// Whether it found the channel busy (counted once).
    deferred: bool,
}

#[derive(Default)]
struct Node {
    queue: VecDeque<Queued>,
    /// The transmission under way, an index into `Radio::txs`.
    sending: Option<usize>,
    /// Every transmission: start and end, µs.
    history: Vec<(u64, u64)>,
    /// When a wake-up to transmit is scheduled (at most one matters).
    wake: Option<Instant>,
    /// Until when this node hears the channel busy, µs.
    busy_until: u64,
}

struct Tx {
    from: u32,
    to: Option<u32>,
    end: u64,
    bytes: Vec<u8>,
    /// Each node in range, and how its reception fares.
    receivers: Vec<(u32, Rx)>,
}

/// A reception's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    Intact,
    Collided,
    /// The receiver was transmitting.
    Deaf,
}

const WAKE: u8 = 0;
const END: u8 = 1;

/// The channel and every node's radio.
pub struct Radio {
    config: LinkConfig,
    adj: Vec<Vec<u32>>,
    nodes: Vec<Node>,
    txs: Vec<Tx>,
    /// Transmissions under way (indices into `txs`).
    on_air: Vec<usize>,
    events: BinaryHeap<Reverse<(Instant, u64, u8, usize)>>,
    seq: u64,
    budget_us: u64,
    window_us: u64,
    slot_us: u64,
    difs_us: u64,
    rng: ChaCha8Rng,
    /// What happened.
    pub stats: LinkStats,
}

impl Radio {
    /// A channel for the nodes of `graph` (who hears whom), its backoffs drawn from
    /// `rng`.
    pub fn new(config: LinkConfig, graph: &Graph, rng: ChaCha8Rng) -> Radio {
        let n = graph.len();
        let adj = (0..n as u32)
            .map(|i| graph.neighbours(i).collect())
            .collect();
        let window_us = config.window.as_micros() as u64;
        Radio {
            adj,
            nodes: (0..n).map(|_| Node::default()).collect(),
            txs: Vec::new(),
            on_air: Vec::new(),
            events: BinaryHeap::new(),
            seq: 0,
            budget_us: (config.duty_cycle * window_us as f64).floor() as u64,
            window_us,
            slot_us: u64::from(CsmaTiming::for_modulation(&config.modulation).slot_ms) * 1000,
            difs_us: u64::from(CsmaTiming::for_modulation(&config.modulation).difs_ms) * 1000,
            rng,
            stats: LinkStats::default(),
            config,
        }
    }

    /// Airtime of a `len`-byte packet, µs (the firmware's figure).
    pub fn airtime_us(&self, len: usize) -> u64 {
        packet_airtime_us(&self.config.modulation, len)
    }

    /// Queue `bytes` at `from` for `to` (a neighbour; `None`: every node in range).
    pub fn send(
        &mut self,
        now: Instant,
        from: u32,
        to: Option<u32>,
        bytes: Vec<u8>,
    ) -> Result<(), Refused> {
        if bytes.is_empty() || bytes.len() > RNS_MTU {
            self.stats.refused_size += 1;
            return Err(Refused::Size(bytes.len()));
        }
        let airtime_us = self.airtime_us(bytes.len());
        let node = &mut self.nodes[from as usize];
        if node.queue.len() >= self.config.queue {
            self.stats.dropped_queue += 1;
            return Err(Refused::QueueFull);
        }
        node.queue.push_back(Queued {
            since: now,
            to,
            bytes,
            airtime_us,
            held_since: None,
            backoff: None,
            deferred: false,
        });
        if node.sending.is_none() {
            self.wake(from, now);
        }
        Ok(())
    }

    fn push(&mut self, at: Instant, kind: u8, index: usize) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, kind, index)));
    }

    fn wake(&mut self, node: u32, at: Instant) {
        let n = &mut self.nodes[node as usize];
        if n.wake.is_some_and(|w| w <= at) {
            return;
        }
        n.wake = Some(at);
        self.push(at, WAKE, node as usize);
    }

    /// When the next transmission starts or ends.
    pub fn next_time(&self) -> Option<Instant> {
        self.events.peek().map(|Reverse((t, ..))| *t)
    }

    /// Handle what is due at `now` (at most one event); packets heard intact go to
    /// `out`.
    pub fn step(&mut self, now: Instant, out: &mut Vec<Heard>) {
        let Some(Reverse((t, _, kind, index))) = self.events.peek().copied() else {
            return;
        };
        if t > now {
            return;
        }
        self.events.pop();
        if kind == END {
            self.end(index, out);
            return;
        }
        let node = &mut self.nodes[index];
        if node.wake != Some(t) {
            return; // superseded
        }
        node.wake = None;
        self.try_send(t, index as u32);
    }

    /// The earliest start, `start` or later, at which a transmission of `airtime` keeps
    /// every window within the budget. Only the window that ends with it needs checking:
    /// a window ending earlier holds less of it and at most as much more of the past.
    fn earliest_fit(&self, node: u32, start: u64, airtime: u64) -> u64 {
        let room = self.budget_us.saturating_sub(airtime);
        // Find the least x with (own airtime after x) <= room; then start at
        // x + window - airtime at the earliest.
        let window_start = (start + airtime).saturating_sub(self.window_us);
        let mut acc = 0u64;
        for &(s, e) in self.nodes[node as usize].history.iter().rev() {
            if e <= window_start {
                break;
            }
            let len = e - s.max(window_start);
            if acc + len > room {
                let x = e - (room - acc);
                return start.max((x + self.window_us).saturating_sub(airtime));
            }
            acc += len;
        }
        start
    }

    fn try_send(&mut self, now: Instant, i: u32) {
        let t = now.as_micros();
        let max_hold = self.config.max_hold;
        loop {
            let node = &mut self.nodes[i as usize];
            if node.sending.is_some() {
                return;
            }
            let Some(head) = node.queue.front() else {
                return;
            };
            if now.saturating_since(head.since) > max_hold {
                let q = node.queue.pop_front();
                self.stats.dropped_held += 1;
                if let Some(since) = q.and_then(|q| q.held_since) {
                    self.stats.held_us += t - since.as_micros();
                }
                continue;
            }
            break;
        }
        let airtime = self.nodes[i as usize]
            .queue
            .front()
            .map_or(0, |q| q.airtime_us);
        if airtime > self.budget_us {
            // Never fits: drop it as held too long.
            self.nodes[i as usize].queue.pop_front();
            self.stats.dropped_held += 1;
            self.wake(i, now);
            return;
        }
        let fit = self.earliest_fit(i, t, airtime);
        if fit > t {
            let head = self.nodes[i as usize].queue.front_mut();
            if let Some(h) = head {
                if h.held_since.is_none() {
                    h.held_since = Some(now);
                    self.stats.held += 1;
                }
            }
            self.wake(i, Instant::from_micros(fit));
            return;
        }
        if self.config.carrier_sense {
            let draw = self.rng.next_u64() % u64::from(CW_PER_BAND_WINDOWS);
            let (slot_us, difs_us) = (self.slot_us, self.difs_us);
            let node = &mut self.nodes[i as usize];
            let busy_until = node.busy_until;
            let Some(head) = node.queue.front_mut() else {
                return;
            };
            let (slots, since) = *head.backoff.get_or_insert((draw, t));
            if busy_until > t {
                if !head.deferred {
                    head.deferred = true;
                    self.stats.deferred += 1;
                }
                self.wake(i, Instant::from_micros(busy_until));
                return;
            }
            let ready = since.max(busy_until) + difs_us + slots * slot_us;
            if ready > t {
                self.wake(i, Instant::from_micros(ready));
                return;
            }
        }
        let Some(q) = self.nodes[i as usize].queue.pop_front() else {
            return;
        };
        if let Some(since) = q.held_since {
            self.stats.held_us += t - since.as_micros();
        }
        self.start(i, t, q);
    }

    fn start(&mut self, i: u32, t: u64, q: Queued) {
        let end = t + q.airtime_us;
        // What ends as this starts does not overlap it (its end is handled later).
        let overlapping: Vec<usize> = self
            .on_air
            .iter()
            .copied()
            .filter(|&k| self.txs[k].end > t)
            .collect();
        // A node that starts transmitting loses what it was receiving.
        for &k in &overlapping {
            for r in &mut self.txs[k].receivers {
                if r.0 == i && r.1 == Rx::Intact {
                    r.1 = Rx::Deaf;
                }
            }
        }
        let mut receivers = Vec::with_capacity(self.adj[i as usize].len());
        for &r in &self.adj[i as usize] {
            let heard = &mut self.nodes[r as usize].busy_until;
            *heard = (*heard).max(end);
            let sending = self.nodes[r as usize].sending;
            let mut state = if sending.is_none_or(|k| !overlapping.contains(&k)) {
                Rx::Intact
            } else {
                Rx::Deaf
            };
            // Overlap with what r hears already: both are lost at r.
            for &k in &overlapping {
                let other = &mut self.txs[k];
                if other.from == r {
                    continue;
                }
                if let Some(rx) = other.receivers.iter_mut().find(|x| x.0 == r) {
                    if rx.1 == Rx::Intact {
                        rx.1 = Rx::Collided;
                    }
                    if state == Rx::Intact {
                        state = Rx::Collided;
                    }
                }
            }
            receivers.push((r, state));
        }
        if let Some(to) = q.to {
            if self.adj[i as usize].binary_search(&to).is_err() {
                self.stats.out_of_range += 1;
            }
        }
        let k = self.txs.len();
        self.txs.push(Tx {
            from: i,
            to: q.to,
            end,
            bytes: q.bytes,
            receivers,
        });
        self.on_air.push(k);
        let node = &mut self.nodes[i as usize];
        node.sending = Some(k);
        node.history.push((t, end));
        self.stats.sent += 1;
        self.push(Instant::from_micros(end), END, k);
    }

    fn end(&mut self, k: usize, out: &mut Vec<Heard>) {
        self.on_air.retain(|&x| x != k);
        let tx = &mut self.txs[k];
        let from = tx.from;
        let bytes = std::mem::take(&mut tx.bytes);
        for &(r, state) in &tx.receivers {
            if tx.to.is_some_and(|to| to != r) {
                continue;
            }
            match state {
                Rx::Collided => self.stats.collided += 1,
                Rx::Deaf => self.stats.missed_transmitting += 1,
                Rx::Intact => {}
            }
            if state != Rx::Intact {
                continue;
            }
            self.stats.delivered += 1;
            out.push(Heard {
                from,
                to: r,
                bytes: bytes.clone(),
            });
        }
        let end = Instant::from_micros(tx.end);
        self.nodes[from as usize].sending = None;
        if !self.nodes[from as usize].queue.is_empty() {
            self.wake(from, end);
        }
    }

    /// Each node's transmissions so far: start and end, µs.
    pub fn history(&self, node: u32) -> &[(u64, u64)] {
        &self.nodes[node as usize].history
    }

    /// The most airtime `node` spent in any window of the configured length, µs.
    pub fn worst_window_us(&self, node: u32) -> u64 {
        worst_window(self.history(node), self.window_us)
    }

    /// The budget per window, µs.
    pub fn budget_us(&self) -> u64 {
        self.budget_us
    }

    /// Packets waiting in `node`'s queue.
    pub fn queued(&self, node: u32) -> usize {
        self.nodes[node as usize].queue.len()
    }
}

/// The most airtime in any window of `window_us` over `history` (sorted, disjoint
/// transmissions). A window that holds the most can be taken to start where a
/// transmission starts.
pub fn worst_window(history: &[(u64, u64)], window_us: u64) -> u64 {
    let mut best = 0;
    for (a, &(s, _)) in history.iter().enumerate() {
        let stop = s + window_us;
        let mut sum = 0;
        for &(s2, e2) in &history[a..] {
            if s2 >= stop {
                break;
            }
            sum += e2.min(stop) - s2;
        }
        best = best.max(sum);
    }
    best
}

/// Airtime of `history` inside `[from, to)`, µs.
pub fn airtime_between(history: &[(u64, u64)], from: u64, to: u64) -> u64 {
    history
        .iter()
        .map(|&(s, e)| e.min(to).saturating_sub(s.max(from)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;
    use rand_chacha::rand_core::SeedableRng;

    fn sf9() -> Modulation {
        Modulation::rnode(9, 125_000, 5).unwrap()
    }

    fn config(carrier_sense: bool) -> LinkConfig {
        LinkConfig {
            modulation: sf9(),
            duty_cycle: 0.01,
            window: Duration::from_secs(3600),
            queue: 64,
            max_hold: Duration::from_secs(24 * 3600),
            carrier_sense,
        }
    }

    /// Nodes 0 - 1 - 2 in a line: 0 and 2 cannot hear each other.
    fn line(n: usize, config: LinkConfig) -> Radio {
        let graph = Topology::Line.build(n, &mut ChaCha8Rng::seed_from_u64(1));
        Radio::new(config, &graph, ChaCha8Rng::seed_from_u64(2))
    }

    /// Step the radio until `until`; what was heard, with when.
    fn run(radio: &mut Radio, until: Instant) -> Vec<(Instant, Heard)> {
        let mut heard = Vec::new();
        let mut out = Vec::new();
        while let Some(t) = radio.next_time().filter(|t| *t <= until) {
            radio.step(t, &mut out);
            heard.extend(out.drain(..).map(|h| (t, h)));
        }
        heard
    }

    #[test]
    fn a_packet_takes_the_firmware_airtime_and_arrives_when_it_ends() {
        let mut radio = line(2, config(true));
        let t0 = Instant::from_secs(10);
        for len in [20, 167, 254, 255, 400, 500] {
            let want = packet_airtime_us(&sf9(), len);
            assert_eq!(radio.airtime_us(len), want);
            let start = radio.next_time().unwrap_or(t0).max(t0);
            radio.send(start, 0, Some(1), vec![7; len]).unwrap();
            let heard = run(&mut radio, Instant::from_secs(1_000_000));
            assert_eq!(heard.len(), 1, "{len}");
            let (at, h) = &heard[0];
            assert_eq!(h.bytes.len(), len);
            let (s, e) = *radio.history(0).last().unwrap();
            assert_eq!(e - s, want, "{len} bytes");
            assert_eq!(at.as_micros(), e);
        }
        // The reference's figure: a 167-byte announce at SF9, RNode preamble: 902 ms.
        assert_eq!(radio.airtime_us(167 - 1) / 1000, 902);
        assert_eq!(
            radio.send(t0, 0, Some(1), vec![0; RNS_MTU + 1]),
            Err(Refused::Size(RNS_MTU + 1))
        );
        assert_eq!(radio.stats.refused_size, 1);
    }

    #[test]
    fn a_node_never_exceeds_its_budget_under_a_saturating_load() {
        let mut radio = line(3, config(true));
        let mut t = Instant::from_secs(1);
        let mut out = Vec::new();
        // Node 1 always has 400-byte packets waiting, for five hours.
        let end = Instant::from_secs(5 * 3600);
        while t < end {
            while radio.queued(1) < 4 {
                radio.send(t, 1, None, vec![1; 400]).unwrap();
            }
            match radio.next_time() {
                Some(next) => {
                    t = next;
                    radio.step(t, &mut out);
                }
                None => break,
            }
        }
        let budget = radio.budget_us();
        assert_eq!(budget, 36_000_000);
        let worst = radio.worst_window_us(1);
        assert!(worst <= budget, "{worst} > {budget}");
        // Saturated: the budget is used up to less than one packet's airtime.
        assert!(worst + radio.airtime_us(400) > budget, "{worst}");
        assert!(radio.stats.held > 0);
        // And over every whole hour.
        for h in 0..5u64 {
            let a = airtime_between(radio.history(1), h * 3_600_000_000, (h + 1) * 3_600_000_000);
            assert!(a <= budget);
        }
        // Two idle hours later, the budget is whole again: a packet goes after its
        // back-off alone (DIFS and at most 14 slots: 98 + 14 × 49 ms at SF9).
        run(&mut radio, t + Duration::from_secs(3600));
        assert_eq!(radio.queued(1), 0);
        let later = t + Duration::from_secs(3 * 3600);
        radio.send(later, 1, None, vec![1; 400]).unwrap();
        let held = radio.stats.held;
        run(&mut radio, later + Duration::from_secs(10));
        let waited = radio.history(1).last().unwrap().0 - later.as_micros();
        assert!(waited <= 98_000 + 14 * 49_000, "{waited}");
        assert_eq!(radio.stats.held, held);
    }

    #[test]
    fn overlapping_packets_collide_at_a_receiver_in_range_of_both() {
        // 0 and 2 are hidden from each other; 1 hears both. (Without listening before
        // talking, so that the two start exactly when they are sent.)
        let mut radio = line(3, config(false));
        let t = Instant::from_secs(5);
        radio.send(t, 0, Some(1), vec![0; 100]).unwrap();
        radio
            .send(t + Duration::from_millis(100), 2, Some(1), vec![2; 100])
            .unwrap();
        let heard = run(&mut radio, Instant::from_secs(60));
        assert!(heard.is_empty(), "{heard:?}");
        assert_eq!(radio.stats.collided, 2);
        // Apart in time, both arrive.
        let t = Instant::from_secs(100);
        radio.send(t, 0, Some(1), vec![0; 100]).unwrap();
        radio
            .send(t + Duration::from_secs(2), 2, Some(1), vec![2; 100])
            .unwrap();
        let heard = run(&mut radio, Instant::from_secs(200));
        assert_eq!(heard.len(), 2);
        // Back to back, the second starting as the first ends: no overlap.
        let t = Instant::from_secs(300);
        let airtime = Duration::from_micros(radio.airtime_us(100));
        radio.send(t, 0, Some(1), vec![0; 100]).unwrap();
        radio.send(t + airtime, 2, Some(1), vec![2; 100]).unwrap();
        let heard = run(&mut radio, Instant::from_secs(400));
        assert_eq!(heard.len(), 2);
        assert_eq!(radio.stats.collided, 2, "no more than before");
    }

    /// 0 sends to 1 and, 10 ms after 0 has started transmitting, 1 to 0 (they hear
    /// each other); what was heard.
    fn exchange(radio: &mut Radio) -> Vec<(Instant, Heard)> {
        radio
            .send(Instant::from_secs(5), 0, Some(1), vec![0; 100])
            .unwrap();
        let mut out = Vec::new();
        while radio.history(0).is_empty() {
            let at = radio.next_time().unwrap();
            radio.step(at, &mut out);
        }
        let started = radio.history(0)[0].0;
        let t = Instant::from_micros(started) + Duration::from_millis(10);
        radio.send(t, 1, Some(0), vec![1; 100]).unwrap();
        run(radio, Instant::from_secs(60))
    }

    #[test]
    fn carrier_sense_defers_to_a_transmission_it_hears() {
        let mut radio = line(2, config(true));
        assert_eq!(exchange(&mut radio).len(), 2, "1 waits for 0 to finish");
        assert_eq!(radio.stats.deferred, 1);
        // Without it, the second overlaps the first: each is deaf to the other.
        let mut radio = line(2, config(false));
        assert!(exchange(&mut radio).is_empty());
        assert_eq!(radio.stats.missed_transmitting, 2);
    }

    #[test]
    fn packets_are_not_heard_out_of_range() {
        let mut radio = line(4, config(true));
        let t = Instant::from_secs(5);
        radio.send(t, 1, None, vec![1; 50]).unwrap();
        let heard = run(&mut radio, Instant::from_secs(60));
        let to: Vec<u32> = heard.iter().map(|(_, h)| h.to).collect();
        assert_eq!(to, [0, 2], "node 3 is two hops away");
        radio
            .send(t + Duration::from_secs(60), 0, Some(3), vec![0; 50])
            .unwrap();
        let heard = run(&mut radio, Instant::from_secs(200));
        assert!(heard.is_empty());
        assert_eq!(radio.stats.out_of_range, 1);
    }

    #[test]
    fn the_worst_window_is_found_exactly() {
        let h = [(0, 10), (50, 60), (95, 100), (200, 230)];
        assert_eq!(worst_window(&h[..3], 100), 25);
        assert_eq!(worst_window(&h, 100), 30);
        assert_eq!(worst_window(&h, 40), 30);
        assert_eq!(worst_window(&h, 1000), 55);
        assert_eq!(airtime_between(&h, 5, 55), 10);
    }

    #[test]
    fn link_packets_fit_the_mtu() {
        assert_eq!(link_packet_len(10), 83, "the reference's 10-byte command");
        assert!(link_packet_len(grid::proto::gossip::LORA_BUDGET) <= RNS_MTU);
    }
}
