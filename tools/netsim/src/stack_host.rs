//! A node of the whole-stack workload ([`crate::stack_run`]): a real rns-core
//! [`Transport`] announcing `grid.node`, with catalog gossip and flood search run as a
//! `grid node` runs them (`grid/src/node/gossip.rs`, `flood.rs`): Grid nodes heard one hop
//! away are neighbours, and every message is a link request over an identified link to
//! the neighbour's `grid.node` (gossip answered in the response, flood answers as
//! requests of their own).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use grid::proto::bundle::envelope::node_destination;
use grid::proto::dht::key::Contact;
use grid::proto::dht::lookup::Outcome as LookupOutcome;
use grid::proto::dht::message::Message as DhtMessage;
use grid::proto::dht::{Config as DhtConfig, Dht, Event as DhtEvent, LookupId, DHT_PATH};
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
/// How long opening a link may take (for the DHT's request timeout, as in a node).
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request on a link may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// A request waiting for its link: its path, its bytes, and for a DHT request whom it
/// asks and the DHT's id for it.
type Waiting = (&'static str, Vec<u8>, Option<(Contact, u64)>);

/// A link to a node: coming up (requests wait), or up.
enum LinkTo {
    Opening(VecDeque<Waiting>),
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
    pub(crate) dht: Dht,
    /// DHT requests on links: the RNS request id → (link, contact asked, DHT request id).
    dht_pending: HashMap<AddressHash, (LinkId, Contact, u64)>,
    /// This node's DHT lookups that ended.
    pub(crate) looked_up: Vec<(LookupId, LookupOutcome)>,
    /// DHT message bytes this node sent (requests and answers), and how many.
    pub(crate) dht_bytes: u64,
    pub(crate) dht_messages: u64,
    /// Whether the DHT runs yet (a node's DHT is quiet until first used).
    pub(crate) dht_on: bool,
    /// The `grid.node` destination of every Grid node heard, by identity hash.
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
            dht: Dht::new(
                Contact::from_public(*identity.public().as_bytes()),
                DhtConfig {
                    request_timeout: LINK_TIMEOUT + REQUEST_TIMEOUT,
                    lookup_timeout: Duration::from_secs(90),
                    ..DhtConfig::default()
                },
                now,
                seed ^ 0xD47,
            ),
            dht_pending: HashMap::new(),
            looked_up: Vec::new(),
            dht_bytes: 0,
            dht_messages: 0,
            dht_on: false,
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
        while let Some(t) = self.dht.poll_transmit() {
            if !t.message.body.is_request() {
                continue; // answers go back in the response to the request they answer
            }
            let bytes = t.message.encode();
            self.dht_bytes += bytes.len() as u64;
            self.dht_messages += 1;
            let to = t.to.id.0;
            let request = t.message.id;
            if !self.send_tagged(now, to, DHT_PATH, bytes, Some((t.to, request))) {
                self.dht.unreachable(now, request);
            }
        }
        while let Some(e) = self.dht.poll_event() {
            #[allow(irrefutable_let_patterns)]
            if let DhtEvent::Done { id, outcome } = e {
                self.looked_up.push((id, outcome));
            }
        }
    }

    /// A request on `path` to `to`: on its link if up, else once a link comes up.
    fn send(&mut self, now: Instant, to: Peer, path: &'static str, bytes: Vec<u8>) {
        self.send_tagged(now, to, path, bytes, None);
    }

    /// [`StackHost::send`], with a DHT request's contact and id; whether it is on its way.
    fn send_tagged(
        &mut self,
        now: Instant,
        to: Peer,
        path: &'static str,
        bytes: Vec<u8>,
        dht: Option<(Contact, u64)>,
    ) -> bool {
        match self.links.get_mut(&to) {
            Some(LinkTo::Up(link)) => {
                let link = *link;
                self.request(now, link, (path, bytes, dht))
            }
            Some(LinkTo::Opening(waiting)) => {
                let room = waiting.len() < WAITING;
                if room {
                    waiting.push_back((path, bytes, dht));
                }
                room
            }
            None => {
                let Some(dest) = self.nodes.get(&to).copied() else {
                    return false;
                };
                let Ok(link) = self.transport.open_link(now, &dest) else {
                    return false;
                };
                self.links_opened += 1;
                self.link_peer.insert(link, to);
                let waiting = VecDeque::from([(path, bytes, dht)]);
                self.links.insert(to, LinkTo::Opening(waiting));
                true
            }
        }
    }

    /// Send a request on an established link; whether it went.
    fn request(&mut self, now: Instant, link: LinkId, (path, bytes, dht): Waiting) -> bool {
        if path == GOSSIP_PATH {
            self.gossip_bytes += bytes.len() as u64;
        }
        let data = rmpv::Value::Binary(bytes);
        let Ok(id) = self
            .transport
            .link_request(now, &link, path, &data, Some(REQUEST_TIMEOUT))
        else {
            return false;
        };
        if let Some((contact, request)) = dht {
            self.dht_pending.insert(id, (link, contact, request));
        }
        true
    }

    /// DHT requests that will get no answer: those on `link` (it closed), or the one
    /// with RNS request id `only`.
    fn dht_lost(&mut self, now: Instant, link: LinkId, only: Option<AddressHash>) {
        let lost: Vec<AddressHash> = self
            .dht_pending
            .iter()
            .filter(|(id, (l, ..))| *l == link && only.is_none_or(|o| o == **id))
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some((_, _, request)) = self.dht_pending.remove(&id) {
                self.dht.unreachable(now, request);
            }
        }
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
                for w in waiting {
                    let dht = w.2.map(|(_, r)| r);
                    if !self.request(now, link, w) {
                        if let Some(r) = dht {
                            self.dht.unreachable(now, r);
                        }
                    }
                }
            }
            LinkEvent::Closed { link, .. } => {
                if let Some(peer) = self.link_peer.remove(&link) {
                    // DHT requests waiting for this link, or sent on it, get no answer.
                    if let Some(LinkTo::Opening(waiting)) = self.links.remove(&peer) {
                        for (_, _, dht) in waiting {
                            if let Some((_, r)) = dht {
                                self.dht.unreachable(now, r);
                            }
                        }
                    }
                }
                self.dht_lost(now, link, None);
            }
            LinkEvent::RequestTimeout { link, request_id } => {
                self.dht_lost(now, link, Some(request_id));
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
                } else if p == path_hash(DHT_PATH) {
                    self.dht_answer(now, *remote.as_bytes(), &bytes)
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
                request_id,
                data: rmpv::Value::Binary(bytes),
            } => {
                if let Some((_, contact, request)) = self.dht_pending.remove(&request_id) {
                    match DhtMessage::decode(&bytes) {
                        Ok(m) => self.dht.handle(now, contact, None, m),
                        Err(_) => self.dht.unreachable(now, request),
                    }
                    return;
                }
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

    /// A DHT request from `public`'s node: handled, and its answer (if any) is the
    /// response; anything else it caused goes out as usual.
    fn dht_answer(&mut self, now: Instant, public: [u8; 64], bytes: &[u8]) -> Vec<u8> {
        let Ok(message) = DhtMessage::decode(bytes) else {
            return Vec::new();
        };
        let from = Contact::from_public(public);
        let answer = self
            .dht
            .handle_request(now, from, None, message)
            .map(|m| m.encode())
            .unwrap_or_default();
        self.dht_bytes += answer.len() as u64;
        self.dht_messages += u64::from(!answer.is_empty());
        answer
    }
}

impl Host for StackHost {
    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn handle_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Announce {
                destination, hops, ..
            } => {
                let Some(id) = self.transport.recall_identity(&destination) else {
                    return;
                };
                if node_destination(&id) != destination.0 {
                    return; // not a grid.node
                }
                // Every Grid node heard is a DHT contact (as in node/dht.rs); those one
                // hop away are gossip and flood neighbours.
                let peer = *id.hash().as_bytes();
                self.nodes.insert(peer, destination);
                let next_hop = self
                    .transport
                    .path(&destination)
                    .filter(|p| p.hops > 1)
                    .map(|p| p.next_hop.0);
                self.dht
                    .add_contact(now, Contact::from_public(*id.as_bytes()), next_hop);
                if hops == 1 {
                    let _ = self.flood.add_neighbour(peer);
                    if let Ok(true) = self.gossip.add_neighbour(peer) {
                        self.gossip.sync_with(peer);
                    }
                }
            }
            Event::Link(e) => self.on_link(now, e),
            _ => {}
        }
        self.flush(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let dht = self.dht_on.then(|| self.dht.poll_timeout()).flatten();
        let protocols = [self.gossip.poll_timeout(), self.flood.poll_timeout(), dht];
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
        if self.dht_on && self.dht.poll_timeout().is_some_and(|t| t <= now) {
            self.dht.handle_timeout(now);
        }
        self.flush(now);
    }
}
