//! A node of the whole-stack workload ([`crate::stack_run`]): a real rns-core
//! [`Transport`] announcing `grid.node`, with catalog gossip and flood search run as a
//! `grid node` runs them (`grid/src/node/gossip.rs`, `flood.rs`): Grid nodes heard one hop
//! away are neighbours, and every message is a link request over an identified link to
//! the neighbour's `grid.node` (gossip answered in the response, flood answers as
//! requests of their own).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use grid::proto::bundle::envelope::node_destination;
use grid::proto::flood::message::{Message as FloodMessage, QueryId};
use grid::proto::flood::{Config as FloodConfig, Event as FloodEvent, Flood, Outcome, FLOOD_PATH};
use grid::proto::gossip::catalog::Event as CatalogEvent;
use grid::proto::gossip::entry::Digest;
use grid::proto::gossip::message::Message;
use grid::proto::gossip::{Config, Gossip, Peer, GOSSIP_PATH};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rns_core::link::{wire::path_hash, LinkEvent, LinkId};
use rns_core::testnet::Host;
use rns_core::transport::{Event, ProofStrategy, Transport, TransportConfig};
use rns_core::{rmpv, AddressHash, Identity, Instant};

/// Messages waiting for a neighbour's link to come up, at most (per neighbour).
const WAITING: usize = 16;
/// How long a gossip request on a link may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// A link to a neighbour: coming up (requests wait: path and bytes), or up.
enum LinkTo {
    Opening(VecDeque<(&'static str, Vec<u8>)>),
    Up(LinkId),
}

/// A node: its transport, its `grid.node` destination and its catalog gossip.
pub(crate) struct StackHost {
    pub(crate) transport: Transport,
    identity: Identity,
    pub(crate) gossip: Gossip,
    pub(crate) flood: Flood,
    /// This node's searches that ended.
    pub(crate) searched: Vec<(QueryId, Outcome)>,
    /// Flood message bytes this node sent, and how many.
    pub(crate) flood_bytes: u64,
    pub(crate) flood_messages: u64,
    /// Each neighbour's `grid.node` destination.
    nodes: HashMap<Peer, AddressHash>,
    /// This node's links to its neighbours, and whose each link is.
    links: HashMap<Peer, LinkTo>,
    link_peer: HashMap<LinkId, Peer>,
    /// Digests this node holds.
    pub(crate) held: HashSet<Digest>,
    /// Gossip message bytes this node sent (requests and responses).
    pub(crate) gossip_bytes: u64,
    pub(crate) links_opened: u64,
    /// Whether it routes for others (a transport node).
    pub(crate) routes: bool,
    /// When it announces `grid.node` next, and how often.
    next_announce: Instant,
    announce_every: Duration,
}

impl StackHost {
    pub(crate) fn new(
        identity: Identity,
        config: Config,
        now: Instant,
        seed: u64,
        routes: bool,
        announce_every: Duration,
    ) -> Self {
        let transport_config = TransportConfig {
            transport_enabled: routes,
            ..TransportConfig::default()
        };
        let mut transport = Transport::new(
            transport_config,
            identity.clone(),
            Box::new(ChaCha20Rng::seed_from_u64(seed)),
        );
        transport.register_destination(identity.clone(), "grid.node", ProofStrategy::None, vec![]);
        StackHost {
            gossip: Gossip::new(identity.public(), config, now, seed),
            flood: Flood::new(
                *identity.hash().as_bytes(),
                FloodConfig::default(),
                now,
                seed ^ 0xF100D,
            ),
            searched: Vec::new(),
            flood_bytes: 0,
            flood_messages: 0,
            transport,
            identity,
            nodes: HashMap::new(),
            links: HashMap::new(),
            link_peer: HashMap::new(),
            held: HashSet::new(),
            gossip_bytes: 0,
            links_opened: 0,
            routes,
            next_announce: now,
            announce_every,
        }
    }

    /// Announce `grid.node` if it is time (first at the start, then every interval, so a
    /// lost announce is made good).
    fn announce_due(&mut self, now: Instant) {
        if now >= self.next_announce {
            self.next_announce = now + self.announce_every;
            let dest = self.destination();
            let _ = self.transport.announce(now, &dest, None);
        }
    }

    pub(crate) fn destination(&self) -> AddressHash {
        AddressHash(node_destination(self.identity.public()))
    }

    /// Send what gossip and flood queued, and note what the catalog added and which
    /// searches ended.
    pub(crate) fn flush(&mut self, now: Instant) {
        while let Some(t) = self.gossip.poll_transmit() {
            self.send(now, t.to, GOSSIP_PATH, t.message.encode());
        }
        while let Some(t) = self.flood.poll_transmit() {
            let bytes = t.message.encode();
            self.flood_bytes += bytes.len() as u64;
            self.flood_messages += 1;
            self.send(now, t.to, FLOOD_PATH, bytes);
        }
        while let Some(e) = self.flood.poll_event() {
            if let FloodEvent::Done { id, outcome } = e {
                self.searched.push((id, outcome));
            }
        }
        while let Some(e) = self.gossip.poll_event() {
            if let CatalogEvent::Added(d) | CatalogEvent::Replaced { new: d, .. } = e {
                self.held.insert(d);
            }
        }
    }

    /// A request on `path` to `to`: on its link if up, else once a link comes up.
    fn send(&mut self, now: Instant, to: Peer, path: &'static str, bytes: Vec<u8>) {
        match self.links.get_mut(&to) {
            Some(LinkTo::Up(link)) => {
                let link = *link;
                self.request(now, link, path, bytes);
            }
            Some(LinkTo::Opening(waiting)) => {
                if waiting.len() < WAITING {
                    waiting.push_back((path, bytes));
                }
            }
            None => {
                let Some(dest) = self.nodes.get(&to).copied() else {
                    return;
                };
                if let Ok(link) = self.transport.open_link(now, &dest) {
                    self.links_opened += 1;
                    self.link_peer.insert(link, to);
                    self.links
                        .insert(to, LinkTo::Opening(VecDeque::from([(path, bytes)])));
                }
            }
        }
    }

    fn request(&mut self, now: Instant, link: LinkId, path: &'static str, bytes: Vec<u8>) {
        if path == GOSSIP_PATH {
            self.gossip_bytes += bytes.len() as u64;
        }
        let data = rmpv::Value::Binary(bytes);
        let _ = self
            .transport
            .link_request(now, &link, path, &data, Some(REQUEST_TIMEOUT));
    }

    fn on_link(&mut self, now: Instant, e: LinkEvent) {
        match e {
            LinkEvent::Established {
                link,
                initiator: true,
                ..
            } => {
                let Some(peer) = self.link_peer.get(&link).copied() else {
                    return;
                };
                let _ = self.transport.link_identify(now, &link, &self.identity);
                let waiting = match self.links.insert(peer, LinkTo::Up(link)) {
                    Some(LinkTo::Opening(w)) => w,
                    _ => VecDeque::new(),
                };
                for (path, bytes) in waiting {
                    self.request(now, link, path, bytes);
                }
            }
            LinkEvent::Closed { link, .. } => {
                if let Some(peer) = self.link_peer.remove(&link) {
                    self.links.remove(&peer);
                }
            }
            LinkEvent::Request {
                link,
                request_id,
                path_hash: p,
                data: rmpv::Value::Binary(bytes),
                remote_identity: Some(remote),
            } => {
                let from = *remote.hash().as_bytes();
                let answer = if p == path_hash(GOSSIP_PATH) {
                    // The session's next round is the response; the rest goes as usual.
                    let answer = Message::decode(&bytes)
                        .ok()
                        .and_then(|m| self.gossip.handle_request(now, from, m))
                        .map(|m| m.encode())
                        .unwrap_or_default();
                    self.gossip_bytes += answer.len() as u64;
                    answer
                } else if p == path_hash(FLOOD_PATH) {
                    // Answers travel as requests of their own; the response is empty.
                    if let Ok(m) = FloodMessage::decode(&bytes) {
                        self.flood.handle(now, from, m);
                    }
                    Vec::new()
                } else {
                    return;
                };
                let answer = rmpv::Value::Binary(answer);
                let _ = self
                    .transport
                    .link_respond(now, &link, &request_id, &answer);
            }
            LinkEvent::Response {
                link,
                data: rmpv::Value::Binary(bytes),
                ..
            } if !bytes.is_empty() => {
                let Some(from) = self.link_peer.get(&link).copied() else {
                    return;
                };
                if let Ok(m) = Message::decode(&bytes) {
                    self.gossip.handle(now, from, m);
                }
            }
            _ => {}
        }
    }
}

impl Host for StackHost {
    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn handle_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Announce {
                destination,
                hops: 1,
                ..
            } => {
                let Some(id) = self.transport.recall_identity(&destination) else {
                    return;
                };
                if node_destination(&id) != destination.0 {
                    return; // not a grid.node
                }
                let peer = *id.hash().as_bytes();
                self.nodes.insert(peer, destination);
                let _ = self.flood.add_neighbour(peer);
                if let Ok(true) = self.gossip.add_neighbour(peer) {
                    self.gossip.sync_with(peer);
                }
            }
            Event::Link(e) => self.on_link(now, e),
            _ => {}
        }
        self.flush(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let protocols = [self.gossip.poll_timeout(), self.flood.poll_timeout()];
        protocols
            .into_iter()
            .flatten()
            .min()
            .map_or(Some(self.next_announce), |t| {
                Some(t.min(self.next_announce))
            })
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.announce_due(now);
        if self.gossip.poll_timeout().is_some_and(|t| t <= now) {
            self.gossip.handle_timeout(now);
        }
        if self.flood.poll_timeout().is_some_and(|t| t <= now) {
            self.flood.handle_timeout(now);
        }
        self.flush(now);
    }
}
