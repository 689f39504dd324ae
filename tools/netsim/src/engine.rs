//! The simulator's clock and wires: messages in flight ordered by arrival time (ties by
//! the order they were sent, so a run is reproducible), each delayed by the network's
//! latency and jitter and lost at its loss rate; and one timer per node, re-armed lazily
//! (a node's latest wake-up time is kept; stale heap entries are skipped).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use rns_core::Instant;

use crate::scenario::Network;

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
    /// Messages lost on the way.
    pub lost: u64,
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
        Engine {
            now: Instant::from_secs(1),
            latency: Duration::from_millis(network.latency_ms),
            jitter: Duration::from_millis(network.jitter_ms),
            loss: (network.loss * f64::from(u32::MAX)) as u64,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            timers: BinaryHeap::new(),
            timer_at: vec![None; nodes],
            traffic: Traffic::default(),
            steps: 0,
        }
    }

    /// Send `bytes` from `from` to `to`: it arrives after the latency (± jitter), unless
    /// lost.
    pub fn send(&mut self, from: u32, to: u32, bytes: Vec<u8>) {
        self.traffic.messages += 1;
        self.traffic.bytes += bytes.len() as u64;
        if self.loss > 0 && u64::from(self.rng.next_u32()) < self.loss {
            self.traffic.lost += 1;
            return;
        }
        let mut delay = self.latency;
        let j = self.jitter.as_micros() as u64;
        if j > 0 {
            let offset = self.rng.next_u64() % (2 * j + 1);
            delay = (delay + Duration::from_micros(offset)).saturating_sub(self.jitter);
        }
        self.seq += 1;
        self.queue
            .push(Reverse((self.now + delay, self.seq, from, to, bytes)));
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
