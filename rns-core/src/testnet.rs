//! A deterministic network of [`Transport`]s in one process, for tests at any layer.
//!
//! Every node is a [`Host`]: a transport plus whatever runs on top of it (nothing, for
//! rns-core's own tests; the grid layer's sans-IO core, for the grid's). Wires join two
//! (node, interface) pairs and carry frames with a latency, a loss rate and an MTU. Time
//! is virtual: [`TestNet::run`] jumps from one frame arrival or timer to the next, so a
//! test of minutes of network time runs in milliseconds, and a seeded generator makes
//! every run identical.
//!
//! Call order, as for the real driver: after anything that may produce output, the net
//! drains each transport's transmits (onto wires) and events (into its host), until
//! nothing moves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::identity::Identity;
use crate::transport::{
    Event, InterfaceConfig, InterfaceId, LocalRole, Transport, TransportConfig,
};
use crate::{AddressHash, Instant};

/// Something that runs on a node of the test network: a transport and its application.
pub trait Host {
    /// The node's transport.
    fn transport(&mut self) -> &mut Transport;
    /// An event from the transport. The host may call into its transport in reply;
    /// what that sends goes out on the next drain.
    fn handle_event(&mut self, now: Instant, event: Event);
    /// When the host (beyond its transport) next wants [`Host::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// A timer of the host's own came due.
    fn handle_timeout(&mut self, _now: Instant) {}
}

/// A host that only records what its transport reports: for transport-level tests.
/// It dereferences to its transport, so `net.nodes[i].announce(..)` reads naturally.
pub struct Recorder {
    /// The transport.
    pub transport: Transport,
    /// Every event the transport reported, oldest first.
    pub events: Vec<Event>,
}

impl Host for Recorder {
    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }
    fn handle_event(&mut self, _now: Instant, event: Event) {
        self.events.push(event);
    }
}

impl std::ops::Deref for Recorder {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        &self.transport
    }
}

impl std::ops::DerefMut for Recorder {
    fn deref_mut(&mut self) -> &mut Transport {
        &mut self.transport
    }
}

/// How a wire carries frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireConfig {
    /// One-way delay of every frame.
    pub latency: Duration,
    /// Chance that a frame is lost, in parts per million.
    pub loss_ppm: u32,
    /// Frames longer than this are dropped (`None`: any length).
    pub mtu: Option<usize>,
    /// A wire that is down carries nothing (a dead path).
    pub up: bool,
}

impl Default for WireConfig {
    /// An ideal wire: no delay, no loss, any length.
    fn default() -> Self {
        WireConfig {
            latency: Duration::ZERO,
            loss_ppm: 0,
            mtu: None,
            up: true,
        }
    }
}

/// A wire joining (node, interface) to (node, interface).
#[derive(Debug, Clone)]
pub struct Wire {
    /// One end.
    pub a: (usize, InterfaceId),
    /// The other end.
    pub b: (usize, InterfaceId),
    /// How it carries frames.
    pub config: WireConfig,
}

/// One frame handed to a wire.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Sending node.
    pub from: usize,
    /// Receiving node.
    pub to: usize,
    /// The frame.
    pub frame: Vec<u8>,
    /// Whether the wire lost it (loss, MTU, or down).
    pub dropped: bool,
}

/// A frame on its way: due time, order of sending (ties), receiving node and interface.
type InFlight = Reverse<(Instant, u64, usize, InterfaceId, Vec<u8>)>;

/// The network.
pub struct TestNet<H: Host = Recorder> {
    /// The nodes, by index.
    pub nodes: Vec<H>,
    /// The wires, by index.
    pub wires: Vec<Wire>,
    /// The virtual clock.
    pub now: Instant,
    /// Every frame handed to a wire, in order (clear it to measure a phase).
    pub log: Vec<Sent>,
    in_flight: BinaryHeap<InFlight>,
    sent: u64,
    rng: ChaCha20Rng,
    /// Timers are checked at least this often while [`TestNet::run`] advances time.
    pub tick: Duration,
    /// Frames this says to lose (sending node, frame) are lost: for tests of what a
    /// lost or withheld packet does.
    #[allow(clippy::type_complexity)]
    lose: Option<Box<dyn FnMut(usize, &[u8]) -> bool>>,
}

/// A transport with an identity and generator derived from `seed`, so runs repeat.
pub fn seeded_transport(config: TransportConfig, seed: u64) -> Transport {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let id = Identity::generate(&mut rng);
    Transport::new(config, id, Box::new(rng))
}

impl TestNet<Recorder> {
    /// Nodes of plain transports; `transport[i]` says whether node i routes for others.
    pub fn new(transport: &[bool]) -> Self {
        Self::with_configs(
            transport
                .iter()
                .map(|t| TransportConfig {
                    transport_enabled: *t,
                    ..TransportConfig::default()
                })
                .collect(),
        )
    }

    /// Nodes of plain transports with these configurations.
    pub fn with_configs(configs: Vec<TransportConfig>) -> Self {
        let hosts = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Recorder {
                transport: seeded_transport(c, 1000 + i as u64),
                events: Vec::new(),
            })
            .collect();
        Self::with_hosts(hosts)
    }

    /// The announces of `dest` node `node` has heard: (hops, whether a path response).
    pub fn announces(&self, node: usize, dest: &AddressHash) -> Vec<(u8, bool)> {
        self.nodes[node]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Announce {
                    destination,
                    hops,
                    path_response,
                    ..
                } if destination == dest => Some((*hops, *path_response)),
                _ => None,
            })
            .collect()
    }

    /// Register a destination `name` of node `node`'s own identity, with app data `app`.
    pub fn register(
        &mut self,
        node: usize,
        name: &str,
        proof: crate::transport::ProofStrategy,
    ) -> AddressHash {
        let id = self.nodes[node].identity().clone();
        self.nodes[node].register_destination(id, name, proof, b"app".to_vec())
    }
}

impl<H: Host> TestNet<H> {
    /// A network of these hosts, not yet wired, at a fixed start time.
    pub fn with_hosts(nodes: Vec<H>) -> Self {
        TestNet {
            nodes,
            wires: Vec::new(),
            now: Instant::from_secs(1_800_000_000),
            log: Vec::new(),
            in_flight: BinaryHeap::new(),
            sent: 0,
            rng: ChaCha20Rng::seed_from_u64(7),
            tick: Duration::from_millis(100),
            lose: None,
        }
    }

    /// Wire node `a` to node `b` with interfaces made by `iface` and a wire `wire`.
    pub fn connect_wire(
        &mut self,
        a: usize,
        b: usize,
        iface: impl Fn() -> InterfaceConfig,
        wire: WireConfig,
    ) -> (InterfaceId, InterfaceId) {
        let ia = InterfaceId(self.wires.len() as u32 * 2);
        let ib = InterfaceId(self.wires.len() as u32 * 2 + 1);
        let now = self.now;
        self.nodes[a].transport().add_interface(now, ia, iface());
        self.nodes[b].transport().add_interface(now, ib, iface());
        self.wires.push(Wire {
            a: (a, ia),
            b: (b, ib),
            config: wire,
        });
        (ia, ib)
    }

    /// Wire node `a` to node `b` with interfaces made by `iface` over an ideal wire.
    pub fn connect_with(
        &mut self,
        a: usize,
        b: usize,
        iface: impl Fn() -> InterfaceConfig,
    ) -> (InterfaceId, InterfaceId) {
        self.connect_wire(a, b, iface, WireConfig::default())
    }

    /// Wire node `a` to node `b` over TCP-like interfaces and an ideal wire.
    pub fn connect(&mut self, a: usize, b: usize) -> (InterfaceId, InterfaceId) {
        self.connect_with(a, b, || InterfaceConfig::tcp("wire"))
    }

    /// A local-socket connection: `client` attached to `instance` as a shared instance.
    pub fn connect_local(&mut self, instance: usize, client: usize) -> (InterfaceId, InterfaceId) {
        let ia = InterfaceId(self.wires.len() as u32 * 2);
        let ib = InterfaceId(self.wires.len() as u32 * 2 + 1);
        let now = self.now;
        self.nodes[instance].transport().add_interface(
            now,
            ia,
            InterfaceConfig::local("client", LocalRole::Client),
        );
        self.nodes[client].transport().add_interface(
            now,
            ib,
            InterfaceConfig::local("instance", LocalRole::Instance),
        );
        self.wires.push(Wire {
            a: (instance, ia),
            b: (client, ib),
            config: WireConfig::default(),
        });
        (ia, ib)
    }

    /// Lose every frame for which `lose(sending node, frame)` is true (replacing any
    /// earlier rule), as well as what the wires lose.
    pub fn lose_if(&mut self, lose: impl FnMut(usize, &[u8]) -> bool + 'static) {
        self.lose = Some(Box::new(lose));
    }

    /// Take wire `w` down (frames on it are lost) or bring it back up.
    pub fn set_up(&mut self, w: usize, up: bool) {
        self.wires[w].config.up = up;
    }

    /// The wire and far end of (node, interface), if wired.
    fn far_end(&self, node: usize, iface: InterfaceId) -> Option<(WireConfig, usize, InterfaceId)> {
        self.wires.iter().find_map(|w| {
            if w.a == (node, iface) {
                Some((w.config, w.b.0, w.b.1))
            } else if w.b == (node, iface) {
                Some((w.config, w.a.0, w.a.1))
            } else {
                None
            }
        })
    }

    /// Put a frame on the wire from (node, iface): lost, queued, or (with no latency)
    /// handed over at once. Returns whether it was handed over now.
    fn send(&mut self, from: usize, iface: InterfaceId, frame: Vec<u8>) -> bool {
        let Some((wire, to, far)) = self.far_end(from, iface) else {
            return false;
        };
        let lost = !wire.up
            || wire.mtu.is_some_and(|m| frame.len() > m)
            || self.lose.as_mut().is_some_and(|lose| lose(from, &frame))
            || (wire.loss_ppm > 0 && self.rng.next_u32() % 1_000_000 < wire.loss_ppm);
        self.log.push(Sent {
            from,
            to,
            frame: frame.clone(),
            dropped: lost,
        });
        if lost {
            return false;
        }
        if wire.latency.is_zero() {
            let now = self.now;
            self.nodes[to].transport().handle_inbound(now, far, &frame);
            return true;
        }
        self.sent += 1;
        self.in_flight.push(Reverse((
            self.now + wire.latency,
            self.sent,
            to,
            far,
            frame,
        )));
        false
    }

    /// Drain every node's transmits and events until nothing moves, delivering frames on
    /// wires without latency at once.
    pub fn flush(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for n in 0..self.nodes.len() {
                while let Some(t) = self.nodes[n].transport().poll_transmit() {
                    moved |= self.send(n, t.interface, t.frame);
                }
                let now = self.now;
                while let Some(e) = self.nodes[n].transport().poll_event() {
                    moved = true;
                    self.nodes[n].handle_event(now, e);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("network did not quiesce");
    }

    /// The earliest frame arrival or host timer, if any.
    fn next_due(&mut self) -> Option<Instant> {
        let frame = self.in_flight.peek().map(|Reverse(f)| f.0);
        let host = self.nodes.iter().filter_map(|h| h.poll_timeout()).min();
        match (frame, host) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advance the clock by `d`: frames arrive when due, timers fire (checked at every
    /// step and at least every [`TestNet::tick`]), and output is delivered.
    pub fn run(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Run until `done` holds (checked after every step) or `limit` passes; whether it
    /// held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let end = self.now + limit;
        self.flush();
        while !done(self) {
            if self.now >= end {
                return false;
            }
            let mut next = (self.now + self.tick).min(end);
            if let Some(due) = self.next_due().filter(|due| *due > self.now) {
                next = next.min(due);
            }
            self.now = next;
            self.step();
        }
        true
    }

    /// At the current time: deliver due frames, fire due timers, drain output.
    fn step(&mut self) {
        let now = self.now;
        while self.in_flight.peek().is_some_and(|Reverse(f)| f.0 <= now) {
            let Some(Reverse((_, _, to, iface, frame))) = self.in_flight.pop() else {
                break;
            };
            self.nodes[to]
                .transport()
                .handle_inbound(now, iface, &frame);
        }
        for h in &mut self.nodes {
            if h.transport().poll_timeout() <= now {
                h.transport().handle_timeout(now);
            }
            if h.poll_timeout().is_some_and(|t| t <= now) {
                h.handle_timeout(now);
            }
        }
        self.flush();
    }

    /// Frames still on their way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ProofStrategy;

    /// An announce over a slow wire arrives after the wire's latency, not before.
    #[test]
    fn latency_delays_delivery() {
        let mut net = TestNet::new(&[false, false]);
        net.connect_wire(
            0,
            1,
            || InterfaceConfig::tcp("slow"),
            WireConfig {
                latency: Duration::from_millis(250),
                ..WireConfig::default()
            },
        );
        let d = net.register(0, "grid.node", ProofStrategy::None);
        let now = net.now;
        net.nodes[0].announce(now, &d, None).unwrap();
        net.flush();
        assert!(net.announces(1, &d).is_empty());
        assert_eq!(net.in_flight(), 1);
        net.run(Duration::from_millis(249));
        assert!(net.announces(1, &d).is_empty());
        net.run(Duration::from_millis(1));
        assert_eq!(net.announces(1, &d), vec![(1, false)]);
    }

    /// A wire that is down or whose MTU is too small carries nothing.
    #[test]
    fn down_wires_and_small_mtus_drop_frames() {
        for wire in [
            WireConfig {
                up: false,
                ..WireConfig::default()
            },
            WireConfig {
                mtu: Some(100),
                ..WireConfig::default()
            },
        ] {
            let mut net = TestNet::new(&[false, false]);
            net.connect_wire(0, 1, || InterfaceConfig::tcp("w"), wire);
            let d = net.register(0, "grid.node", ProofStrategy::None);
            let now = net.now;
            net.nodes[0].announce(now, &d, None).unwrap();
            net.run(Duration::from_secs(1));
            assert!(net.announces(1, &d).is_empty(), "{wire:?}");
            assert!(net.log.iter().all(|s| s.dropped));
        }
    }

    /// Loss is seeded: about the configured share of frames is lost, the same each run.
    #[test]
    fn loss_is_deterministic_and_about_right() {
        let lost = || {
            let mut net = TestNet::new(&[false, false]);
            net.connect_wire(
                0,
                1,
                || InterfaceConfig::tcp("lossy"),
                WireConfig {
                    loss_ppm: 300_000,
                    ..WireConfig::default()
                },
            );
            let ib = net.wires[0].b.1;
            for i in 0..1000u32 {
                net.send(1, ib, i.to_be_bytes().to_vec());
            }
            net.log.iter().filter(|s| s.dropped).count()
        };
        let a = lost();
        assert_eq!(a, lost());
        assert!((200..400).contains(&a), "{a} of ~1000 lost");
    }
}
