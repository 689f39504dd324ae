//! Delay-tolerant delivery on the shared deterministic network: the courier's planner
//! (`proto::courier`), custody acceptance (`proto::custody`) and the bundle wire format
//! and envelope (`proto::bundle`) moving sealed frames over real rns-core links, with a
//! dead wire that comes back. The store is a vector here; the node's is redb.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use grid::frame::{Body, GridFrame};
use grid::proto::bundle::envelope::{node_destination, open_frame, seal_frame};
use grid::proto::bundle::wire::{Exchange, ExchangeReply, WireBundle, BUNDLE_PATH, MAX_SEALED};
use grid::proto::courier::{choose_custodians, Courier, Job, Routes};
use grid::proto::custody::{triage, within_share, Giver, Offered, Policy, StrangerLimits, Triage};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rns_core::identity::Identity;
use rns_core::link::{wire::path_hash, LinkEvent, LinkId};
use rns_core::testnet::{seeded_transport, Host, TestNet, WireConfig};
use rns_core::transport::{Event, InterfaceConfig, ProofStrategy, Transport, TransportConfig};
use rns_core::{rmpv, AddressHash, Instant};

/// How often a courier round runs.
const ROUND: Duration = Duration::from_secs(1);

struct DtnHost {
    transport: Transport,
    identity: Identity,
    grid: AddressHash,
    policy: Policy,
    limits: StrangerLimits,
    /// Identities this node trusts.
    trusted: HashSet<AddressHash>,
    /// Custodians configured.
    custodians: Vec<AddressHash>,
    /// Bundles waiting here (own and held for others), and the stranger each is held for.
    store: Vec<(WireBundle, Option<[u8; 16]>)>,
    /// Frames delivered to this node.
    delivered: Vec<GridFrame>,
    courier: Courier,
    next_round: Instant,
    heard: HashMap<AddressHash, u64>,
    /// Exchanges under way: the link opened for each job, then its request.
    opening: HashMap<LinkId, Job>,
    asked: HashMap<LinkId, (Job, Vec<[u8; 16]>)>,
    rng: ChaCha20Rng,
}

impl DtnHost {
    fn new(seed: u64, transport_enabled: bool, custody: bool) -> DtnHost {
        let mut transport = seeded_transport(
            TransportConfig {
                transport_enabled,
                ..TransportConfig::default()
            },
            seed,
        );
        let identity = transport.identity().clone();
        let grid = transport.register_destination(
            identity.clone(),
            "grid.node",
            ProofStrategy::None,
            vec![],
        );
        assert_eq!(grid.0, node_destination(identity.public()));
        DtnHost {
            transport,
            identity,
            grid,
            policy: Policy {
                me: grid,
                custody,
                stranger_max_ttl: Duration::from_secs(24 * 3600),
                max_sealed: MAX_SEALED,
            },
            limits: StrangerLimits {
                bundles: 2,
                bytes: 1 << 20,
                total_bytes: 4 << 20,
            },
            trusted: HashSet::new(),
            custodians: Vec::new(),
            store: Vec::new(),
            delivered: Vec::new(),
            courier: Courier::default(),
            next_round: Instant::from_secs(0),
            heard: HashMap::new(),
            opening: HashMap::new(),
            asked: HashMap::new(),
            rng: ChaCha20Rng::seed_from_u64(seed + 100),
        }
    }

    /// Queue a request for the node whose identity is `to`.
    fn queue(&mut self, now: Instant, to: &Identity, command: &str) {
        let f = GridFrame {
            correlation: self.store.len() as u64 + 1,
            source: self.grid.0,
            target: node_destination(to.public()),
            timestamp_ms: now.as_millis(),
            ttl_ms: 3_600_000,
            body: Body::Request {
                command: command.into(),
                params: Vec::new(),
            },
        };
        let expires = now.as_millis() + 3_600_000;
        let b = seal_frame(
            &mut self.rng,
            &self.identity,
            to.public(),
            &f,
            now.as_millis(),
            expires,
        );
        self.store.push((b, None));
    }

    fn holds_for(&self, node: &DtnHost) -> usize {
        self.store
            .iter()
            .filter(|(b, _)| b.destination == node.grid.0)
            .count()
    }

    fn round(&mut self, now: Instant) {
        let mut dests: Vec<[u8; 16]> = self.store.iter().map(|(b, _)| b.destination).collect();
        dests.sort();
        dests.dedup();
        let known =
            |t: &Transport, d: &AddressHash| t.path(d).is_some() && t.recall_identity(d).is_some();
        let routes = Routes {
            reachable: dests
                .iter()
                .map(|d| known(&self.transport, &AddressHash(*d)))
                .collect(),
            heard_ms: dests
                .iter()
                .map(|d| self.heard.get(&AddressHash(*d)).copied())
                .collect(),
            custodians: choose_custodians(
                &self.custodians,
                &[],
                |c| known(&self.transport, c),
                self.grid,
            ),
        };
        for job in self.courier.plan(now.as_millis(), &dests, &routes) {
            let target = match job {
                Job::Push { to, .. } => to,
                Job::Pull { custodian } => custodian,
            };
            match self.transport.open_link(now, &target) {
                Ok(link) => {
                    self.opening.insert(link, job);
                }
                Err(_) => self.courier.done(now.as_millis(), &job, false),
            }
        }
    }

    fn start_exchange(&mut self, now: Instant, link: LinkId, job: Job) {
        let me = self.identity.clone();
        let (x, ids) = match job {
            Job::Push { destination, .. } => {
                let list: Vec<WireBundle> = self
                    .store
                    .iter()
                    .filter(|(b, _)| b.destination == destination)
                    .map(|(b, _)| b.clone())
                    .collect();
                let ids = list.iter().map(|b| b.id).collect();
                (Exchange::Push(list), ids)
            }
            Job::Pull { .. } => (Exchange::Pull { max_bytes: 1 << 20 }, Vec::new()),
        };
        let value = rmpv::Value::Binary(x.encode());
        let sent = self
            .transport
            .link_identify(now, &link, &me)
            .and_then(|()| {
                self.transport
                    .link_request(now, &link, BUNDLE_PATH, &value, None)
            });
        match sent {
            Ok(_) => {
                self.asked.insert(link, (job, ids));
            }
            Err(_) => self.courier.done(now.as_millis(), &job, false),
        }
    }

    /// The custodian side of an exchange.
    fn serve(
        &mut self,
        now: Instant,
        data: rmpv::Value,
        caller: Option<AddressHash>,
    ) -> ExchangeReply {
        let rmpv::Value::Binary(bytes) = data else {
            return ExchangeReply::Refused("expected bytes".into());
        };
        let giver = Giver {
            identity: caller,
            trusted: caller.is_some_and(|c| self.trusted.contains(&c)),
        };
        match Exchange::decode(&bytes) {
            Ok(Exchange::Push(list)) => {
                let (mut accepted, mut refused) = (Vec::new(), Vec::new());
                for b in list {
                    let offered = Offered {
                        sealed: &b.sealed,
                        expires_ms: b.expires_ms,
                        destination: b.destination,
                    };
                    match triage(&self.policy, now.as_millis(), offered, giver, false) {
                        Triage::Ours => {
                            self.delivered
                                .push(open_frame(&self.identity, &b).unwrap().1);
                            accepted.push(b.id);
                        }
                        Triage::Hold(holder) => {
                            let size = b.sealed.len() as u64;
                            let share = holder.map_or(Ok(()), |h| {
                                let mine = self.store.iter().filter(|(_, x)| *x == Some(h));
                                let (count, bytes) = mine.fold((0, 0), |(c, n), (b, _)| {
                                    (c + 1, n + b.sealed.len() as u64)
                                });
                                let all = self
                                    .store
                                    .iter()
                                    .filter(|(_, x)| x.is_some())
                                    .map(|(b, _)| b.sealed.len() as u64)
                                    .sum();
                                within_share(&self.limits, (count, bytes), all, size)
                            });
                            match share {
                                Ok(()) => {
                                    accepted.push(b.id);
                                    self.store.push((b, holder));
                                }
                                Err(e) => refused.push((b.id, e.to_string())),
                            }
                        }
                        Triage::Refuse(why) => refused.push((b.id, why.to_string())),
                    }
                }
                ExchangeReply::Pushed { accepted, refused }
            }
            Ok(Exchange::Pull { .. }) => {
                let Some(c) = caller else {
                    return ExchangeReply::Refused("identify".into());
                };
                let node = rns_core::destination::hash_from_name("grid.node", Some(&c)).0;
                let (theirs, rest): (Vec<_>, Vec<_>) = self
                    .store
                    .drain(..)
                    .partition(|(b, _)| b.destination == node);
                self.store = rest;
                ExchangeReply::Pulled(theirs.into_iter().map(|(b, _)| b).collect())
            }
            _ => ExchangeReply::Refused("not in this test".into()),
        }
    }

    fn finish_exchange(&mut self, now: Instant, link: LinkId, data: rmpv::Value) {
        let Some((job, _)) = self.asked.remove(&link) else {
            return;
        };
        let rmpv::Value::Binary(bytes) = data else {
            return;
        };
        let ok = match ExchangeReply::decode(&bytes) {
            Ok(ExchangeReply::Pushed { accepted, .. }) => {
                self.store.retain(|(b, _)| !accepted.contains(&b.id));
                true
            }
            Ok(ExchangeReply::Pulled(list)) => {
                for b in list {
                    self.delivered
                        .push(open_frame(&self.identity, &b).unwrap().1);
                }
                true
            }
            _ => false,
        };
        self.courier.done(now.as_millis(), &job, ok);
        let _ = self.transport.close_link(now, &link);
    }

    fn failed(&mut self, now: Instant, link: LinkId) {
        let job = self
            .opening
            .remove(&link)
            .or_else(|| self.asked.remove(&link).map(|(j, _)| j));
        if let Some(job) = job {
            self.courier.done(now.as_millis(), &job, false);
        }
    }
}

impl Host for DtnHost {
    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn handle_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Announce { destination, .. } => {
                self.heard.insert(destination, now.as_millis());
            }
            Event::Link(LinkEvent::Established {
                link,
                initiator: true,
                ..
            }) => {
                if let Some(job) = self.opening.remove(&link) {
                    self.start_exchange(now, link, job);
                }
            }
            Event::Link(LinkEvent::Request {
                link,
                request_id,
                path_hash: p,
                data,
                remote_identity,
            }) if p == path_hash(BUNDLE_PATH) => {
                let reply = self.serve(now, data, remote_identity.map(|i| i.hash()));
                let value = rmpv::Value::Binary(reply.encode());
                self.transport
                    .link_respond(now, &link, &request_id, &value)
                    .unwrap();
            }
            Event::Link(LinkEvent::Response { link, data, .. }) => {
                self.finish_exchange(now, link, data)
            }
            Event::Link(LinkEvent::RequestTimeout { link, .. })
            | Event::Link(LinkEvent::Closed { link, .. }) => self.failed(now, link),
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_round)
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_round {
            self.next_round = now + ROUND;
            self.round(now);
        }
    }
}

const A: usize = 0;
const C: usize = 1;
const B: usize = 2;
/// The wire between the custodian and B.
const C_TO_B: usize = 1;

/// A — C — B, 20 ms a hop; C is a transport and custody node; the wire to B is down and
/// B has never been heard. A knows B's key (as a node does from its known-nodes file).
fn network(a_trusted_by_c: bool) -> TestNet<DtnHost> {
    let mut net = TestNet::with_hosts(vec![
        DtnHost::new(11, false, false),
        DtnHost::new(12, true, true),
        DtnHost::new(13, false, false),
    ]);
    let wire = WireConfig {
        latency: Duration::from_millis(20),
        ..WireConfig::default()
    };
    net.connect_wire(A, C, || InterfaceConfig::tcp("ac"), wire);
    net.connect_wire(C, B, || InterfaceConfig::tcp("cb"), wire);
    net.set_up(C_TO_B, false);
    let c = net.nodes[C].grid;
    net.nodes[A].custodians.push(c);
    if a_trusted_by_c {
        let a = net.nodes[A].identity.hash();
        net.nodes[C].trusted.insert(a);
    }
    let now = net.now;
    net.nodes[C].transport.announce(now, &c, None).unwrap();
    net.run(Duration::from_secs(2));
    net
}

#[test]
fn a_bundle_reaches_an_offline_node_through_its_custodian() {
    let mut net = network(true);
    let b_identity = net.nodes[B].identity.clone();
    let now = net.now;
    net.nodes[A].queue(now, &b_identity, "grid/ping");
    net.run(Duration::from_secs(5));
    // A handed it to C, which holds it: B is out of reach.
    assert_eq!(net.nodes[A].store.len(), 0);
    assert_eq!(net.nodes[C].holds_for(&net.nodes[B]), 1);
    assert!(net.nodes[B].delivered.is_empty());

    // B comes back and announces: C delivers it directly.
    net.set_up(C_TO_B, true);
    let (now, b) = (net.now, net.nodes[B].grid);
    net.nodes[B].transport.announce(now, &b, None).unwrap();
    assert!(net.run_until(Duration::from_secs(10), |n| !n.nodes[B]
        .delivered
        .is_empty()));
    let f = &net.nodes[B].delivered[0];
    assert_eq!(f.source, net.nodes[A].grid.0);
    assert!(matches!(&f.body, Body::Request { command, .. } if command == "grid/ping"));
    net.run(Duration::from_secs(2));
    assert_eq!(
        net.nodes[C].store.len(),
        0,
        "delivered bundles are not kept"
    );
    assert_eq!(net.nodes[B].delivered.len(), 1, "delivered once");
}

#[test]
fn a_stranger_gets_only_its_share_of_a_custodian() {
    let mut net = network(false);
    let b_identity = net.nodes[B].identity.clone();
    for _ in 0..5 {
        let now = net.now;
        net.nodes[A].queue(now, &b_identity, "x/y");
    }
    net.run(Duration::from_secs(5));
    // C holds two (the share of one stranger); A keeps the rest for later.
    assert_eq!(net.nodes[C].holds_for(&net.nodes[B]), 2);
    assert_eq!(net.nodes[A].store.len(), 3);
    // Trusted, A gets the rest in.
    let a = net.nodes[A].identity.hash();
    net.nodes[C].trusted.insert(a);
    net.run(Duration::from_secs(5));
    assert_eq!(net.nodes[C].holds_for(&net.nodes[B]), 5);
    assert_eq!(net.nodes[A].store.len(), 0);
}
