//! The simulator's clock and wires: messages in flight ordered by arrival time (ties by
//! the order they were sent, so a run is reproducible), each delayed by the network's
//! latency and jitter and lost at its loss rate, queued behind what its sender sent
//! before at the network's bitrate, split into frames at its MTU (each frame lost at the
//! loss rate), and cut while a partition separates sender and receiver; and one timer
//! per node, re-armed lazily (a node's latest wake-up time is kept; stale heap entries
//! are skipped).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use rns_core::Instant;

use crate::scenario::{Network, Partition};

/// The earlier of two optional times (a workload's next action and the engine's next
/// event, say).
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A message arriving.
#[derive(Debug)]
pub struct Delivery {
    /// The sending node.
    pub from: u32,
    /// The receiving node.
    pub to: u32,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Message counts, for the figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    /// Messages sent.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages lost on the way (one lost frame loses its message).
    pub lost: u64,
    /// Messages cut by a partition.
    pub partitioned: u64,
    /// Frames sent (messages longer than the MTU take several).
    pub frames: u64,
}

type InFlight = Reverse<(Instant, u64, u32, u32, Vec<u8>)>;

/// The clock, the messages in flight, and the nodes' timers.
pub struct Engine {
    /// The virtual time.
    pub now: Instant,
    latency: Duration,
    jitter: Duration,
    /// Loss per 2^32 messages.
    loss: u64,
    rng: ChaCha8Rng,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    timer_at: Vec<Option<Instant>>,
    bitrate_bps: Option<u64>,
    mtu: Option<usize>,
    /// When each node's interface is done sending what it was given.
    busy_until: Vec<Instant>,
    /// Each partition: when it starts and ends, and the first node of its second side.
    partitions: Vec<(Instant, Instant, u32)>,
    /// What was sent.
    pub traffic: Traffic,
    /// Events handled (deliveries and timers).
    pub steps: u64,
}

/// What happens next.
#[derive(Debug)]
pub enum Next {
    /// A message arrives.
    Deliver(Delivery),
    /// A node's timer is due.
    Timer(u32),
}

impl Engine {
    /// An engine for `nodes` nodes on `network`, its randomness from `rng`.
    pub fn new(network: &Network, nodes: usize, rng: ChaCha8Rng) -> Engine {
        let t0 = Instant::from_secs(1);
        let cut = |p: &Partition| {
            let at = t0 + Duration::from_secs(p.at_s);
            let first_of_second = (p.side * nodes as f64).round() as u32;
            (at, at + Duration::from_secs(p.for_s), first_of_second)
        };
        Engine {
            now: t0,
            latency: Duration::from_millis(network.latency_ms),
            jitter: Duration::from_millis(network.jitter_ms),
            loss: (network.loss * f64::from(u32::MAX)) as u64,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            timers: BinaryHeap::new(),
            timer_at: vec![None; nodes],
            bitrate_bps: network.bitrate_bps,
            mtu: network.mtu,
            busy_until: vec![t0; nodes],
            partitions: network.partitions.iter().map(cut).collect(),
            traffic: Traffic::default(),
            steps: 0,
        }
    }

    /// Whether a partition separates `a` and `b` now.
    fn cut(&self, a: u32, b: u32) -> bool {
        self.partitions.iter().any(|&(from, until, second)| {
            (from..until).contains(&self.now) && (a < second) != (b < second)
        })
    }

    /// Send `bytes` from `from` to `to`: it arrives once the sender's interface has sent
    /// it (at the bitrate, after what it sent before) and the latency (± jitter) has
    /// passed, unless a frame of it is lost or a partition separates the two.
    pub fn send(&mut self, from: u32, to: u32, bytes: Vec<u8>) {
        self.traffic.messages += 1;
        self.traffic.bytes += bytes.len() as u64;
        let frames = self.mtu.map_or(1, |m| bytes.len().div_ceil(m).max(1));
        self.traffic.frames += frames as u64;
        // The interface is busy with it whatever becomes of it on the way.
        let mut sent = self.now;
        if let Some(bps) = self.bitrate_bps {
            let on_air =
                Duration::from_nanos((bytes.len() as u64 * 8).saturating_mul(1_000_000_000) / bps);
            let slot = &mut self.busy_until[from as usize];
            sent = (*slot).max(self.now) + on_air;
            *slot = sent;
        }
        if self.cut(from, to) {
            self.traffic.partitioned += 1;
            return;
        }
        // One draw a frame (one a message without an MTU, as runs had before there was
        // one).
        for _ in 0..frames {
            if self.loss > 0 && u64::from(self.rng.next_u32()) < self.loss {
                self.traffic.lost += 1;
                return;
            }
        }
        let mut delay = self.latency;
        let j = self.jitter.as_micros() as u64;
        if j > 0 {
            let offset = self.rng.next_u64() % (2 * j + 1);
            delay = (delay + Duration::from_micros(offset)).saturating_sub(self.jitter);
        }
        self.seq += 1;
        self.queue
            .push(Reverse((sent + delay, self.seq, from, to, bytes)));
    }

    /// Node `node` next wants to wake at `at`.
    pub fn arm(&mut self, node: u32, at: Option<Instant>) {
        let slot = &mut self.timer_at[node as usize];
        if *slot != at {
            *slot = at;
            if let Some(t) = at {
                self.timers.push(Reverse((t, node)));
            }
        }
    }

    /// When the next message arrives or timer is due.
    pub fn next_time(&mut self) -> Option<Instant> {
        // Skip timers re-armed since they were pushed.
        while let Some(Reverse((t, n))) = self.timers.peek().copied() {
            if self.timer_at[n as usize] == Some(t) {
                break;
            }
            self.timers.pop();
        }
        let m = self.queue.peek().map(|Reverse((t, ..))| *t);
        let t = self.timers.peek().map(|Reverse((t, _))| *t);
        earliest(m, t)
    }

    /// Take the next event if it is due by `until`, advancing the clock to it. Messages
    /// go before timers due at the same moment.
    pub fn pop(&mut self, until: Instant) -> Option<Next> {
        let next = self.next_time()?;
        if next > until {
            return None;
        }
        self.now = self.now.max(next);
        self.steps += 1;
        if self.queue.peek().is_some_and(|Reverse((t, ..))| *t == next) {
            let Reverse((_, _, from, to, bytes)) = self.queue.pop()?;
            return Some(Next::Deliver(Delivery { from, to, bytes }));
        }
        let Reverse((_, node)) = self.timers.pop()?;
        self.timer_at[node as usize] = None;
        Some(Next::Timer(node))
    }

    /// Move the clock to `t` (when nothing is due before it).
    pub fn advance(&mut self, t: Instant) {
        self.now = self.now.max(t);
    }
}

/// A workload the engine drives: actions of its own on a schedule (searches,
/// publications, churn), interleaved with the engine's messages and timers.
pub trait Workload {
    /// The engine.
    fn engine(&mut self) -> &mut Engine;
    /// When its next action is due.
    fn next_action(&self) -> Option<Instant>;
    /// Take the next action (the clock is at its time).
    fn take_action(&mut self);
    /// A message arrived.
    fn deliver(&mut self, d: Delivery);
    /// A node's timer is due.
    fn timer(&mut self, node: u32);
    /// Whether the run may stop before `end`.
    fn done(&self) -> bool {
        false
    }
}

/// Run `w` until `end`, or until it is done: its actions and the engine's events in time
/// order (an action first when both are due at once); then the clock is at `end` (unless
/// it stopped early).
pub fn run_until<W: Workload>(w: &mut W, end: Instant, progress: &indicatif::ProgressBar) {
    loop {
        if w.done() {
            return;
        }
        let action_at = w.next_action();
        let Some(next) = earliest(action_at, w.engine().next_time()) else {
            break;
        };
        if next > end {
            break;
        }
        if action_at == Some(next) {
            w.engine().advance(next);
            w.take_action();
        } else {
            match w.engine().pop(end) {
                Some(Next::Deliver(d)) => w.deliver(d),
                Some(Next::Timer(i)) => w.timer(i),
                None => break,
            }
        }
        progress.set_position(w.engine().now.as_secs());
    }
    w.engine().advance(end);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn engine(network: &str, nodes: usize) -> Engine {
        let n: Network = toml::from_str(network).unwrap();
        Engine::new(&n, nodes, ChaCha8Rng::seed_from_u64(1))
    }

    /// Every delivery due by `until`: (arrival, from, to).
    fn deliveries(e: &mut Engine, until: Instant) -> Vec<(Instant, u32, u32)> {
        let mut out = Vec::new();
        while let Some(next) = e.pop(until) {
            if let Next::Deliver(d) = next {
                out.push((e.now, d.from, d.to));
            }
        }
        out
    }

    #[test]
    fn a_sender_sends_one_message_after_another_at_its_bitrate() {
        // 8,000 bit/s: a 500-byte message takes 0.5 s to send.
        let mut e = engine("nodes = 3\nlatency_ms = 10\nbitrate_bps = 8000", 3);
        let t0 = e.now;
        e.send(0, 1, vec![0; 500]);
        e.send(0, 2, vec![0; 500]);
        e.send(1, 2, vec![0; 500]); // another sender: its own interface
        let got = deliveries(&mut e, t0 + Duration::from_secs(5));
        let ms = |i: usize| got[i].0.saturating_since(t0).as_millis();
        assert_eq!(got.len(), 3);
        assert_eq!((ms(0), got[0].1), (510, 0), "{got:?}");
        assert_eq!((ms(1), got[1].1), (510, 1), "{got:?}");
        assert_eq!((ms(2), got[2].1, got[2].2), (1010, 0, 2), "{got:?}");
    }

    #[test]
    fn a_message_longer_than_the_mtu_is_lost_with_any_of_its_frames() {
        let delivered = |network: &str| {
            let mut e = engine(network, 2);
            let t0 = e.now;
            for _ in 0..2000 {
                e.send(0, 1, vec![0; 500]);
            }
            let n = deliveries(&mut e, t0 + Duration::from_secs(60)).len();
            (n as f64 / 2000.0, e.traffic)
        };
        let (whole, t) = delivered("nodes = 2\nloss = 0.1");
        assert!((0.87..=0.93).contains(&whole), "{whole}");
        assert_eq!(t.frames, 2000);
        // Five frames of 100 bytes: 0.9^5 = 0.59 arrive.
        let (split, t) = delivered("nodes = 2\nloss = 0.1\nmtu = 100");
        assert!((0.55..=0.63).contains(&split), "{split}");
        assert_eq!(t.frames, 10_000);
        assert_eq!(t.lost, 2000 - (split * 2000.0).round() as u64);
    }

    #[test]
    fn a_partition_cuts_only_across_it_and_only_while_it_lasts() {
        let mut e = engine(
            "nodes = 4\nlatency_ms = 10\n[[partitions]]\nat_s = 10\nfor_s = 10\nside = 0.5",
            4,
        );
        let t0 = e.now;
        let mut got = Vec::new();
        for at in [5, 15, 25] {
            let until = t0 + Duration::from_secs(at);
            got.extend(deliveries(&mut e, until));
            e.advance(until);
            e.send(0, 3, vec![1]); // across: nodes 0-1 | 2-3
            e.send(0, 1, vec![1]); // same side
            e.send(3, 2, vec![1]); // same side
        }
        got.extend(deliveries(&mut e, t0 + Duration::from_secs(30)));
        let across: Vec<u64> = got
            .iter()
            .filter(|(_, f, t)| (*f, *t) == (0, 3))
            .map(|(at, ..)| at.saturating_since(t0).as_secs())
            .collect();
        assert_eq!(across, vec![5, 25], "{got:?}");
        assert_eq!(got.len(), 8, "{got:?}");
        assert_eq!(e.traffic.partitioned, 1);
    }
}
