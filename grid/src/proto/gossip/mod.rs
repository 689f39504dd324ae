//! Catalog gossip, sans-IO: each node keeps a bounded catalog of signed entries (what
//! nodes offer: adapters, commands, compute) and keeps it in sync with its neighbours by
//! set reconciliation. Every [`Config::interval`] (30 s) a node starts a session with
//! [`Config::fanout`] (3) random neighbours; a session compares fingerprints of ranges
//! of the two catalogs' sorted digests and moves only the entries one side lacks, so a
//! session between catalogs that agree costs two short messages, not a hundred entries
//! (the origin design's scheme, which this replaces; docs/discovery.md compares them).
//!
//! Entries are signed by their publishers ([`entry`]) and checked before anything is
//! stored; the catalog is bounded ([`catalog`]); every message fits a byte budget
//! ([`Config::budget`]: 16 KiB on links, [`LORA_BUDGET`] on LoRa) and a session ends
//! after [`message::MAX_ROUNDS`] rounds; new sessions and messages are rate limited per
//! neighbour.
//!
//! Call order, as for the rest of `proto`: feed it ([`Gossip::handle`],
//! [`Gossip::handle_timeout`], [`Gossip::publish`]), then drain
//! [`Gossip::poll_transmit`] and [`Gossip::poll_event`], and wake it at
//! [`Gossip::poll_timeout`].

pub mod catalog;
pub mod entry;
pub mod message;
pub mod radio;
pub mod reconcile;

use std::collections::VecDeque;
use std::time::Duration;

use rns_core::{AddressHash, Instant, PublicIdentity};

pub use super::neighbours::Peer;
use super::neighbours::{Neighbours, Random};
use super::rate_limit::{Limiter, Limits as RateLimits, Rate};
use catalog::{Catalog, CatalogError, Event, Inserted, Limits};
use entry::{Entry, KEY_LEN};
use message::{Message, MAX_ROUNDS};
use radio::RadioConfig;

/// The link request path gossip messages travel on, to a node's `grid.node` destination.
pub const GOSSIP_PATH: &str = "grid/gossip";

/// A message budget for LoRa, bytes: about one RNS packet. An entry larger than the
/// budget still goes, alone (the driver carries it as a resource).
pub const LORA_BUDGET: usize = 400;
/// A message budget for links, bytes.
pub const LINK_BUDGET: usize = 16 * 1024;

/// The gossip's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How often this node starts sessions.
    pub interval: Duration,
    /// Neighbours it starts a session with each time.
    pub fanout: usize,
    /// Bytes a message may take (past a first entry that is larger on its own).
    pub budget: usize,
    /// Neighbours kept, at most.
    pub max_neighbours: usize,
    /// The catalog's bounds.
    pub catalog: Limits,
    /// Sessions a neighbour may start with this node, and all neighbours together.
    pub sessions: RateLimits,
    /// Messages a neighbour may send this node, and all neighbours together.
    pub messages: RateLimits,
    /// Messages waiting for the driver, at most (past it, new ones are dropped).
    pub max_transmits: usize,
    /// How neighbours heard over radio are treated.
    pub radio: RadioConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(30),
            fanout: 3,
            budget: LINK_BUDGET,
            max_neighbours: 64,
            catalog: Limits::default(),
            // A neighbour starts a session every 30 s or so; allow bursts of 4 and one
            // every 5 s, and 20 a second for the node.
            sessions: RateLimits {
                caller: Rate::new(4, Duration::from_secs(5)),
                anonymous: Rate::new(0, Duration::from_secs(1)),
                node: Rate::new(40, Duration::from_millis(50)),
            },
            // A session is at most 16 rounds; allow 40 messages at once per neighbour and
            // 4 a second after.
            messages: RateLimits {
                caller: Rate::new(40, Duration::from_millis(250)),
                anonymous: Rate::new(0, Duration::from_secs(1)),
                node: Rate::new(400, Duration::from_millis(5)),
            },
            max_transmits: 1024,
            radio: RadioConfig::default(),
        }
    }
}

impl Config {
    /// Settings for a LoRa interface: [`LORA_BUDGET`]-byte messages.
    pub fn lora() -> Config {
        Config {
            budget: LORA_BUDGET,
            ..Config::default()
        }
    }
}

/// A message for the driver to deliver to a neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// To which neighbour.
    pub to: Peer,
    /// What.
    pub message: Message,
}

/// Why an entry could not be published or a neighbour added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GossipError {
    /// The entry is not signed by this node.
    #[error("the entry is not this node's (another publisher signed it)")]
    NotOwn,
    /// The catalog refused it.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// [`Config::max_neighbours`] are known.
    #[error("{0} neighbours known already")]
    TooManyNeighbours(usize),
}

/// Counts of what the node sent, received and refused, for figures and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent (queued for the driver).
    pub messages_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Messages received and handled.
    pub messages_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// Entries sent.
    pub entries_sent: u64,
    /// Entries received that were new here and stored.
    pub entries_stored: u64,
    /// Entries received that were held already.
    pub entries_known: u64,
    /// Entries refused as malformed or badly signed.
    pub entries_forged: u64,
    /// Entries the catalog refused (stale, expired, over a bound).
    pub entries_refused: u64,
    /// Sessions this node started.
    pub sessions_started: u64,
    /// Sessions neighbours started with this node.
    pub sessions_answered: u64,
    /// The highest round seen in a message received.
    pub max_round: u8,
    /// Sessions cut at [`MAX_ROUNDS`].
    pub rounds_cut: u64,
    /// Messages refused by a rate limit.
    pub rate_limited: u64,
    /// Messages from peers that are not neighbours, dropped.
    pub strangers: u64,
    /// Messages dropped because the transmit queue was full.
    pub transmits_dropped: u64,
    /// Sessions this node started with radio neighbours.
    pub radio_sessions_started: u64,
}

/// What [`Gossip::restore_all`] did with stored entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Entries stored.
    pub stored: usize,
    /// Entries held already (the same bytes).
    pub known: usize,
    /// Entries the catalog refused: expired, stale (a higher seq or a tombstone of the
    /// name is held), or over a bound.
    pub refused: usize,
}

/// One node's catalog gossip.
#[derive(Debug)]
pub struct Gossip {
    own: Peer,
    own_key: [u8; KEY_LEN],
    config: Config,
    catalog: Catalog,
    neighbours: Neighbours,
    /// Neighbours heard over radio: a sparser round, smaller messages.
    radio: Neighbours,
    next_radio_round: Instant,
    sessions: Limiter,
    messages: Limiter,
    next_round: Instant,
    /// For picking neighbours and session ids (seeded by the driver).
    random: Random,
    transmits: VecDeque<Transmit>,
    stats: Stats,
}

impl Gossip {
    /// The gossip of the node whose identity is `own`, with `seed` for its random
    /// choices. Its first sessions start at a random moment in the first interval, so
    /// nodes started together do not gossip in step.
    pub fn new(own: &PublicIdentity, config: Config, now: Instant, seed: u64) -> Gossip {
        let mut g = Gossip {
            own: *own.hash().as_bytes(),
            own_key: *own.as_bytes(),
            config,
            catalog: Catalog::new(*own.as_bytes(), config.catalog),
            neighbours: Neighbours::new(*own.hash().as_bytes(), config.max_neighbours),
            radio: Neighbours::new(*own.hash().as_bytes(), config.max_neighbours),
            next_radio_round: now,
            sessions: Limiter::new("gossip sessions", config.sessions, now),
            messages: Limiter::new("gossip messages", config.messages, now),
            next_round: now,
            random: Random::new(seed),
            transmits: VecDeque::new(),
            stats: Stats::default(),
        };
        let spread = config.interval.as_micros().max(1) as u64;
        // One draw for both rounds, so the generator's sequence (and every simulation
        // of fast neighbours) is the same as before radio neighbours existed.
        let draw = g.random.next_u64();
        g.next_round = now + Duration::from_micros(draw % spread);
        let radio_spread = config.radio.interval.as_micros().max(1) as u64;
        g.next_radio_round = now + Duration::from_micros(draw % radio_spread);
        g
    }

    /// This node's identity hash.
    pub fn own(&self) -> &Peer {
        &self.own
    }

    /// What it sent, received and refused.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The neighbours on fast interfaces.
    pub fn neighbours(&self) -> &[Peer] {
        self.neighbours.as_slice()
    }

    /// The neighbours heard over radio.
    pub fn radio_neighbours(&self) -> &[Peer] {
        self.radio.as_slice()
    }

    /// Whether `peer` is a neighbour heard over radio (its messages are the driver's to
    /// price against airtime).
    pub fn is_radio(&self, peer: &Peer) -> bool {
        self.radio.contains(peer)
    }

    /// A node one hop away on a fast interface (heard directly, or linked); `Ok(false)`
    /// if known already there. A node known as a radio neighbour moves here.
    pub fn add_neighbour(&mut self, peer: Peer) -> Result<bool, GossipError> {
        let added = self
            .neighbours
            .add(peer)
            .map_err(GossipError::TooManyNeighbours)?;
        self.radio.remove(&peer);
        Ok(added)
    }

    /// A node one hop away over radio; `Ok(false)` if known already, or known on a fast
    /// interface (which it keeps using).
    pub fn add_radio_neighbour(&mut self, peer: Peer) -> Result<bool, GossipError> {
        if self.neighbours.contains(&peer) {
            return Ok(false);
        }
        self.radio.add(peer).map_err(GossipError::TooManyNeighbours)
    }

    /// A neighbour went away; whether it was one.
    pub fn remove_neighbour(&mut self, peer: &Peer) -> bool {
        self.neighbours.remove(peer) | self.radio.remove(peer)
    }

    /// Whether `peer` is a neighbour of either kind.
    fn knows(&self, peer: &Peer) -> bool {
        self.neighbours.contains(peer) || self.radio.contains(peer)
    }

    /// The byte budget of messages to `peer`.
    fn budget_for(&self, peer: &Peer) -> usize {
        if self.radio.contains(peer) {
            self.config.radio.budget
        } else {
            self.config.budget
        }
    }

    /// Publish (or replace, or withdraw with a tombstone) one of this node's entries;
    /// it spreads with the next sessions.
    pub fn publish(&mut self, now: Instant, entry: Entry) -> Result<(), GossipError> {
        if *entry.publisher() != self.own_key {
            return Err(GossipError::NotOwn);
        }
        self.catalog.insert(now.as_millis(), entry)?;
        Ok(())
    }

    /// Store `entry`, whoever signed it (checked already: see [`Entry::decode`]), as if
    /// gossip had brought it: for a driver restoring its catalog from disk.
    pub fn restore(&mut self, now: Instant, entry: Entry) -> Result<Inserted, CatalogError> {
        self.catalog.insert(now.as_millis(), entry)
    }

    /// Store entries kept from an earlier run (a driver restoring its catalog from
    /// disk), each through the same checks as an entry a neighbour sends: only
    /// [`Entry::decode`] or [`Entry::sign`] make an [`Entry`], so its signature verified;
    /// expiry is checked against `now`, and the per-publisher and total bounds, seq
    /// order and tombstones apply. The order does not matter: a tombstone keeps an
    /// older live entry of its name out whichever comes first. Peer traffic figures
    /// ([`Gossip::stats`]) are left alone.
    pub fn restore_all(
        &mut self,
        now: Instant,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Restored {
        let mut counts = Restored::default();
        for entry in entries {
            match self.restore(now, entry) {
                Ok(Inserted::New) => counts.stored += 1,
                Ok(Inserted::Known) => counts.known += 1,
                Err(_) => counts.refused += 1,
            }
        }
        counts
    }

    /// Start a session with neighbour `peer` now (one of the interval's sessions, or a
    /// neighbour just met); false if it is not a neighbour.
    pub fn sync_with(&mut self, peer: Peer) -> bool {
        if !self.knows(&peer) {
            return false;
        }
        if self.radio.contains(&peer) {
            self.stats.radio_sessions_started += 1;
        }
        let session = self.random.next_u64() as u32;
        let message = Message {
            session,
            round: 0,
            ranges: reconcile::initiate(self.catalog.entries()),
            ..Message::default()
        };
        self.stats.sessions_started += 1;
        self.send(peer, message);
        true
    }

    fn send(&mut self, to: Peer, message: Message) {
        if self.transmits.len() >= self.config.max_transmits {
            self.stats.transmits_dropped += 1;
            return;
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += message.wire_len() as u64;
        self.stats.entries_sent += message.entries.len() as u64;
        self.transmits.push_back(Transmit { to, message });
    }

    /// A message from neighbour `from` (its identity proved by the link it came on).
    pub fn handle(&mut self, now: Instant, from: Peer, message: Message) {
        if from == self.own {
            return;
        }
        if !self.knows(&from) {
            self.stats.strangers += 1;
            return;
        }
        let caller = Some(AddressHash(from));
        if self.messages.admit(caller, now).is_err()
            || (message.round == 0 && self.sessions.admit(caller, now).is_err())
        {
            self.stats.rate_limited += 1;
            return;
        }
        self.stats.messages_received += 1;
        self.stats.bytes_received += message.wire_len() as u64;
        self.stats.max_round = self.stats.max_round.max(message.round);
        if message.round == 0 {
            self.stats.sessions_answered += 1;
        }
        let now_ms = now.as_millis();
        for raw in &message.entries {
            // The same bytes as an entry held: checked already.
            let digest = entry::digest_of(raw);
            if self
                .catalog
                .get(&digest)
                .is_some_and(|e| e.bytes() == raw.as_slice())
            {
                self.stats.entries_known += 1;
                continue;
            }
            match Entry::decode(raw) {
                Err(_) => self.stats.entries_forged += 1,
                Ok(e) => match self.catalog.insert(now_ms, e) {
                    Ok(_) => self.stats.entries_stored += 1,
                    Err(_) => self.stats.entries_refused += 1,
                },
            }
        }
        if message.ranges.is_empty() && message.wants.is_empty() {
            return; // the session is settled
        }
        // A message built in memory may carry any round; only those below the last are
        // answered.
        if message.round >= MAX_ROUNDS - 1 {
            self.stats.rounds_cut += 1;
            return;
        }
        let reply = reconcile::respond(
            self.catalog.entries(),
            &message.ranges,
            &message.wants,
            self.budget_for(&from),
        );
        if reply.is_empty() {
            return;
        }
        let entries = reply
            .give
            .iter()
            .filter_map(|d| self.catalog.get(d))
            .map(|e| e.bytes().to_vec())
            .collect();
        let out = Message {
            session: message.session,
            round: message.round + 1,
            ranges: reply.ranges,
            entries,
            wants: reply.wants,
        };
        self.send(from, out);
    }

    /// When [`Gossip::handle_timeout`] is next due: the next sessions (on fast
    /// interfaces, and over radio while there are radio neighbours), or the next entry
    /// to expire.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self
            .catalog
            .next_expiry()
            .map(|ms| Instant::from_millis(ms.saturating_add(1)));
        let radio = (!self.radio.as_slice().is_empty()).then_some(self.next_radio_round);
        [Some(self.next_round), radio, expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: expired entries go, and when an interval is up, sessions start with
    /// [`Config::fanout`] random neighbours on fast interfaces, or
    /// [`RadioConfig::fanout`] radio neighbours.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.catalog.sweep(now.as_millis());
        if now >= self.next_round {
            self.next_round = now + self.config.interval;
            for peer in self
                .neighbours
                .choose(self.config.fanout, &[], &mut self.random)
            {
                self.sync_with(peer);
            }
        }
        if now >= self.next_radio_round {
            self.next_radio_round = now + self.config.radio.interval;
            for peer in self
                .radio
                .choose(self.config.radio.fanout, &[], &mut self.random)
            {
                self.sync_with(peer);
            }
        }
    }

    /// The next message to deliver.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A message from `from` that arrived as a request (drivers that carry gossip on
    /// request/response): handle it, and take out of the queue the answer that belongs
    /// in its response — the next round of the same session to the same neighbour —
    /// if there is one. Anything else it caused stays queued for [`Gossip::poll_transmit`].
    pub fn handle_request(
        &mut self,
        now: Instant,
        from: Peer,
        message: Message,
    ) -> Option<Message> {
        let session = message.session;
        self.handle(now, from, message);
        let at = self
            .transmits
            .iter()
            .position(|t| t.to == from && t.message.session == session)?;
        self.transmits.remove(at).map(|t| t.message)
    }

    /// The next change to the catalog.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.catalog.poll_event()
    }
}

#[cfg(test)]
mod tests;
