//! A Kademlia DHT over Reticulum identities, sans-IO: node ids are identity hashes, XOR
//! distance, k = 20 and α = 3 by default, provider records for content hashes and topic
//! keys with a 48 h TTL republished every 12 h (as libp2p keeps them), and Sybil brakes:
//! ids computed from public keys, a per-peer and per-node rate limit on requests, and
//! bucket diversity by next hop ([`table`]). No seed server: a node bootstraps from
//! contacts it already knows (Grid nodes it heard announce).
//!
//! The driver delivers [`Message`]s between nodes (on links to `grid.node`, or in the
//! simulator) and tells the DHT who sent each one. Call order, as for the rest of
//! `proto`: feed it ([`Dht::handle`], [`Dht::unreachable`], [`Dht::handle_timeout`],
//! the lookup calls), then drain [`Dht::poll_transmit`] and [`Dht::poll_event`], and wake
//! it at [`Dht::poll_timeout`].

pub mod key;
pub mod lookup;
pub mod message;
pub mod providers;
pub mod table;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use rns_core::{AddressHash, Instant};

use super::rate_limit::{Limiter, Limits, Rate};
use key::{Contact, Key, KEY_BITS};
use lookup::{Goal, Lookup, Outcome};
use message::{Body, Message, MAX_CONTACTS};
use providers::{ProviderLimits, ProviderStore};
use table::{Inserted, RoutingTable};

/// The link request path DHT messages travel on, to a node's `grid.node` destination.
pub const DHT_PATH: &str = "grid/dht";

/// The DHT's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bucket size and the number of nearest nodes a lookup settles on.
    pub k: usize,
    /// Requests a lookup keeps in flight.
    pub alpha: usize,
    /// How long a request may go unanswered.
    pub request_timeout: Duration,
    /// How long a lookup may take in all.
    pub lookup_timeout: Duration,
    /// Unanswered requests in a row after which a contact is dropped.
    pub failures_to_drop: u8,
    /// Contacts per bucket behind one next hop, at most.
    pub max_per_hop: usize,
    /// Provider records kept for others.
    pub providers: ProviderLimits,
    /// How often this node republishes what it provides.
    pub republish: Duration,
    /// How often buckets that heard nothing are refreshed by a lookup.
    pub refresh: Duration,
    /// Requests served, per peer, for peers together, and for the node.
    pub requests: Limits,
    /// Lookups (this node's own) under way at once, at most.
    pub max_lookups: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 20,
            alpha: 3,
            request_timeout: Duration::from_secs(5),
            lookup_timeout: Duration::from_secs(60),
            failures_to_drop: 2,
            max_per_hop: 10,
            providers: ProviderLimits {
                ttl: Duration::from_secs(48 * 3600),
                keys: 10_000,
                per_key: 20,
                per_provider: 256,
            },
            republish: Duration::from_secs(12 * 3600),
            refresh: Duration::from_secs(3600),
            // 10 a second per peer (bursts of 20), 200 a second for the node.
            requests: Limits {
                caller: Rate::new(20, Duration::from_millis(100)),
                anonymous: Rate::new(20, Duration::from_millis(100)),
                node: Rate::new(400, Duration::from_millis(5)),
            },
            max_lookups: 64,
        }
    }
}

/// A lookup's handle.
pub type LookupId = u64;

/// A message for the driver to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// To whom.
    pub to: Contact,
    /// What.
    pub message: Message,
}

/// What the DHT tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A lookup ended.
    Done {
        /// Which.
        id: LookupId,
        /// How.
        outcome: Outcome,
    },
}

/// Why a lookup could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// [`Config::max_lookups`] are under way.
    #[error("{0} lookups are under way already; wait for one to end")]
    Busy(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Lookup(LookupId),
    Ping,
    Provide,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    to: Key,
    purpose: Purpose,
}

/// One node's DHT.
#[derive(Debug)]
pub struct Dht {
    own: Contact,
    config: Config,
    table: RoutingTable,
    providers: ProviderStore,
    lookups: HashMap<LookupId, (Lookup, Instant)>,
    /// Lookups whose nearest nodes are then told this node provides the key.
    providing: HashMap<LookupId, Key>,
    /// Keys this node provides, with when each is next republished.
    provided: BTreeMap<Key, Instant>,
    next_lookup: LookupId,
    pending: HashMap<u64, Pending>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_request: u64,
    limiter: Limiter,
    next_refresh: Instant,
    /// A xorshift state for refresh targets (seeded by the driver).
    random: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Dht {
    /// The DHT of node `own`, with `seed` for the random keys of bucket refreshes.
    pub fn new(own: Contact, config: Config, now: Instant, seed: u64) -> Dht {
        Dht {
            own,
            config,
            table: RoutingTable::new(own.id, config.k, config.max_per_hop),
            providers: ProviderStore::new(config.providers),
            lookups: HashMap::new(),
            providing: HashMap::new(),
            provided: BTreeMap::new(),
            next_lookup: 1,
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_request: 1,
            limiter: Limiter::new("DHT requests", config.requests, now),
            next_refresh: now + config.refresh,
            random: seed | 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// This node's contact.
    pub fn own(&self) -> &Contact {
        &self.own
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Provider records held for others.
    pub fn providers(&self) -> &ProviderStore {
        &self.providers
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A contact this node heard of (a Grid node that announced, say), reached through
    /// `next_hop` (the transport node its packets go through, if any).
    pub fn add_contact(
        &mut self,
        now: Instant,
        contact: Contact,
        next_hop: Option<[u8; 16]>,
    ) -> Inserted {
        self.table.insert(contact, next_hop, now)
    }

    /// Look up the k nodes nearest to `key`.
    pub fn find_node(&mut self, now: Instant, key: Key) -> Result<LookupId, DhtError> {
        self.start(now, key, Goal::Nodes)
    }

    /// Look up providers of `key`, stopping once `want` are found.
    pub fn find_providers(
        &mut self,
        now: Instant,
        key: Key,
        want: usize,
    ) -> Result<LookupId, DhtError> {
        let id = self.start(now, key, Goal::Providers { want })?;
        Ok(id)
    }

    /// Announce that this node provides `key`: find the k nodes nearest to it and tell
    /// them; done again every [`Config::republish`].
    pub fn provide(&mut self, now: Instant, key: Key) -> Result<LookupId, DhtError> {
        let id = self.start(now, key, Goal::Nodes)?;
        self.providing.insert(id, key);
        self.provided.insert(key, now + self.config.republish);
        Ok(id)
    }

    /// Ask `contact` whether it is there: an answer refreshes it in the table, silence
    /// counts against it.
    pub fn ping(&mut self, now: Instant, contact: Contact) {
        self.send(now, contact, Body::Ping, Purpose::Ping);
    }

    /// Stop providing `key` (records elsewhere expire with their TTL).
    pub fn unprovide(&mut self, key: &Key) {
        self.provided.remove(key);
    }

    fn start(&mut self, now: Instant, key: Key, goal: Goal) -> Result<LookupId, DhtError> {
        if self.lookups.len() >= self.config.max_lookups {
            return Err(DhtError::Busy(self.lookups.len()));
        }
        let id = self.next_lookup;
        self.next_lookup += 1;
        let seeds = self.table.closest(&key, self.config.k);
        let mut lookup = Lookup::new(key, goal, seeds, now, self.config.k);
        if let Goal::Providers { .. } = goal {
            // Records this node holds count: a provider found at hop 0.
            let here = self.providers.get(&key, now, MAX_CONTACTS);
            if !here.is_empty() {
                lookup.answered_locally(here);
            }
        }
        self.lookups.insert(id, (lookup, now));
        self.step(now, id);
        Ok(id)
    }

    fn send(&mut self, now: Instant, to: Contact, body: Body, purpose: Purpose) {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(id, Pending { to: to.id, purpose });
        self.deadlines
            .push(Reverse((now + self.config.request_timeout, id)));
        self.transmits.push_back(Transmit {
            to,
            message: Message { id, body },
        });
    }

    /// Ask the next contacts of lookup `id`, or end it if it is done.
    fn step(&mut self, now: Instant, id: LookupId) {
        let (k, alpha) = (self.config.k, self.config.alpha);
        let Some((lookup, _)) = self.lookups.get_mut(&id) else {
            return;
        };
        let target = lookup.target();
        let body = match lookup.goal() {
            Goal::Nodes => Body::FindNode(target),
            Goal::Providers { .. } => Body::GetProviders(target),
        };
        let ask = lookup.next(alpha, k);
        let done = lookup.is_done(k);
        for to in ask {
            self.send(now, to, body.clone(), Purpose::Lookup(id));
        }
        if done {
            self.finish(now, id, false);
        }
    }

    fn finish(&mut self, now: Instant, id: LookupId, timed_out: bool) {
        let Some((lookup, _)) = self.lookups.remove(&id) else {
            return;
        };
        let outcome = lookup.outcome(now, self.config.k, timed_out);
        if let Some(key) = self.providing.remove(&id) {
            for to in outcome.closest.clone() {
                self.send(now, to, Body::AddProvider(key), Purpose::Provide);
            }
        }
        self.events.push_back(Event::Done { id, outcome });
    }

    /// A message from `from` (its identity proved by the link it came on), reached
    /// through `next_hop`.
    pub fn handle(
        &mut self,
        now: Instant,
        from: Contact,
        next_hop: Option<[u8; 16]>,
        message: Message,
    ) {
        if from.id == self.own.id {
            return;
        }
        if message.body.is_request() {
            return self.serve(now, from, next_hop, message);
        }
        // Only the node a request went to may answer it.
        match self.pending.get(&message.id) {
            Some(p) if p.to == from.id => {}
            _ => return,
        }
        let Some(pending) = self.pending.remove(&message.id) else {
            return;
        };
        self.table.insert(from, next_hop, now);
        let Purpose::Lookup(id) = pending.purpose else {
            return; // a pong or a stored: hearing from it was the point
        };
        let Some((lookup, _)) = self.lookups.get_mut(&id) else {
            return; // the lookup ended already
        };
        match message.body {
            Body::Nodes(closer) => lookup.answered(&from.id, closer, Vec::new()),
            Body::Providers { providers, closer } => lookup.answered(&from.id, closer, providers),
            _ => lookup.failed(&from.id),
        }
        self.step(now, id);
    }

    fn serve(&mut self, now: Instant, from: Contact, next_hop: Option<[u8; 16]>, m: Message) {
        let caller = AddressHash(from.id.0);
        let body = if self.limiter.admit(Some(caller), now).is_err() {
            Body::Refused
        } else {
            self.table.insert(from, next_hop, now);
            let k = self.config.k.min(MAX_CONTACTS);
            let closest = |table: &RoutingTable, key: &Key| -> Vec<Contact> {
                let mut c = table.closest(key, k + 1);
                c.retain(|c| c.id != from.id);
                c.truncate(k);
                c
            };
            match m.body {
                Body::Ping => Body::Pong,
                Body::FindNode(key) => Body::Nodes(closest(&self.table, &key)),
                Body::GetProviders(key) => Body::Providers {
                    providers: self.providers.get(&key, now, k),
                    closer: closest(&self.table, &key),
                },
                Body::AddProvider(key) => Body::Stored(self.providers.add(key, from, now)),
                _ => return,
            }
        };
        self.transmits.push_back(Transmit {
            to: from,
            message: Message { id: m.id, body },
        });
    }

    /// The driver could not deliver request `request` (no path, the link failed): as if
    /// it went unanswered, at once.
    pub fn unreachable(&mut self, now: Instant, request: u64) {
        self.expire_request(now, request);
    }

    fn expire_request(&mut self, now: Instant, request: u64) {
        let Some(p) = self.pending.remove(&request) else {
            return;
        };
        self.table.failed(&p.to, self.config.failures_to_drop);
        if let Purpose::Lookup(id) = p.purpose {
            if let Some((lookup, _)) = self.lookups.get_mut(&id) {
                lookup.failed(&p.to);
                self.step(now, id);
            }
        }
    }

    /// When [`Dht::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.deadlines.peek().map(|Reverse((t, _))| *t);
        let lookups = self
            .lookups
            .values()
            .map(|(_, started)| *started + self.config.lookup_timeout)
            .min();
        let republish = self.provided.values().min().copied();
        let refresh = (!self.table.is_empty()).then_some(self.next_refresh);
        [requests, lookups, republish, refresh]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: requests time out, lookups run out of time, provided keys are
    /// republished and quiet buckets refreshed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            self.expire_request(now, id);
        }
        let mut late: Vec<LookupId> = self
            .lookups
            .iter()
            .filter(|(_, (_, started))| *started + self.config.lookup_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        late.sort_unstable(); // the same order every run
        for id in late {
            self.finish(now, id, true);
        }
        let due: Vec<Key> = self
            .provided
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if self.provide(now, key).is_err() {
                // Busy: try again a little later.
                self.provided.insert(key, now + self.config.request_timeout);
            }
        }
        if now >= self.next_refresh {
            self.next_refresh = now + self.config.refresh;
            self.providers.expire(now);
            let before = Instant::from_micros(
                now.as_micros()
                    .saturating_sub(self.config.refresh.as_micros() as u64),
            );
            let own = self.own.id;
            let _ = self.find_node(now, own);
            for bucket in self.table.stale_buckets(before).into_iter().take(4) {
                let target = own.in_bucket(bucket.min(KEY_BITS - 1), self.random_key());
                let _ = self.find_node(now, target);
            }
        }
    }

    fn random_key(&mut self) -> [u8; 16] {
        let mut out = [0; 16];
        for chunk in out.chunks_mut(8) {
            // xorshift64*
            self.random ^= self.random >> 12;
            self.random ^= self.random << 25;
            self.random ^= self.random >> 27;
            let v = self.random.wrapping_mul(0x2545_f491_4f6c_dd1d);
            chunk.copy_from_slice(&v.to_be_bytes()[..chunk.len()]);
        }
        out
    }

    /// The next message to deliver.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A request from `from` that arrived as a request (drivers that carry the DHT on
    /// request/response): handle it, and take its answer out of the queue for the
    /// response. Anything else it caused stays queued for [`Dht::poll_transmit`]; a
    /// message that is not a request is ignored.
    pub fn handle_request(
        &mut self,
        now: Instant,
        from: Contact,
        next_hop: Option<[u8; 16]>,
        message: Message,
    ) -> Option<Message> {
        if !message.body.is_request() {
            return None;
        }
        let id = message.id;
        self.handle(now, from, next_hop, message);
        let at = self.transmits.iter().position(|t| {
            !t.message.body.is_request() && t.to.id == from.id && t.message.id == id
        })?;
        self.transmits.remove(at).map(|t| t.message)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
