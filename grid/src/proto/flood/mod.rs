//! A bounded flood search, sans-IO: for meshes of 100–1,000 nodes, where each node knows
//! its neighbours (nodes one hop away) and nothing more. A query (a sketch of an
//! embedding and/or a topic, with a threshold) spreads from its origin to 3 random
//! neighbours of each node it reaches (never back to the one it came from), at most 10
//! hops, each node matching it against its own catalog; answers come back hop by hop on
//! the reverse path each node remembers. Nothing names the origin: a node only knows the
//! neighbour a query came from.
//!
//! What bounds it: each query carries a message budget that every node splits between
//! the neighbours it forwards to, so a query costs at most its budget in query messages
//! whatever the graph (a node that sees a query again answers nothing but passes the
//! budget on to neighbours it has not sent it to); a TTL; a seen-set (a query is
//! answered once per node, with expiry); at most
//! `want` hits passed back by any node; a rate limit on queries per neighbour (10/s) and
//! per node; and bounded tables throughout (docs/security.md). The origin stops at
//! `want` hits or its time budget, and a node that answers with `want` hits of its own
//! does not forward. The [`Patience`] ladder sets TTL, fan-out, time and message budget.
//!
//! Call order, as for the rest of `proto`: feed it ([`Flood::handle`],
//! [`Flood::handle_timeout`], [`Flood::search`]), then drain [`Flood::poll_transmit`]
//! and [`Flood::poll_event`], and wake it at [`Flood::poll_timeout`].

pub mod message;
mod returns;
pub mod sketch;
pub mod table;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rns_core::{AddressHash, Instant};

use super::neighbours::{Neighbours, Random};
use super::rate_limit::{Limiter, Limits, Rate};
use message::MAX_WANT;
use message::{Body, Hit, Message, QueryId, Search, MAX_BUDGET, MAX_FANOUT, MAX_HITS, MAX_TTL};
use sketch::{Catalog, CatalogError, Item, Query};
use table::{Entry, Seen};

pub use super::neighbours::Peer;

/// The link request path flood messages travel on, to a node's `grid.node` destination.
pub const FLOOD_PATH: &str = "grid/flood";

/// How long a searcher will wait, and so how far a search goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Patience {
    /// Neighbours only.
    Instant,
    /// Three hops.
    Quick,
    /// Up to ten hops, a few hundred messages.
    Thorough,
    /// Up to ten hops, enough messages to reach a thousand nodes.
    Exhaustive,
}

/// What a patience level allows a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    /// Hops, at most [`MAX_TTL`].
    pub ttl: u8,
    /// Neighbours each node forwards to.
    pub fanout: u8,
    /// How long the origin waits for answers.
    pub time: Duration,
    /// Query messages the whole search may cost.
    pub budget: u16,
}

impl Patience {
    /// Every level, least patient first.
    pub const ALL: [Patience; 4] = [
        Patience::Instant,
        Patience::Quick,
        Patience::Thorough,
        Patience::Exhaustive,
    ];

    /// The level's limits (docs/discovery.md explains the numbers).
    pub fn ladder(self) -> Ladder {
        let (ttl, time_ms, budget) = match self {
            Patience::Instant => (1, 500, 3),
            Patience::Quick => (3, 1_500, 39),
            Patience::Thorough => (10, 5_000, 262),
            Patience::Exhaustive => (10, 30_000, 3_000),
        };
        Ladder {
            ttl,
            fanout: 3,
            time: Duration::from_millis(time_ms),
            budget,
        }
    }

    /// Its name: `instant`, `quick`, `thorough` or `exhaustive`.
    pub fn name(self) -> &'static str {
        match self {
            Patience::Instant => "instant",
            Patience::Quick => "quick",
            Patience::Thorough => "thorough",
            Patience::Exhaustive => "exhaustive",
        }
    }

    /// The level called `name`.
    pub fn from_name(name: &str) -> Option<Patience> {
        Patience::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The flood search's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Neighbours kept, at most.
    pub max_neighbours: usize,
    /// Fan-out this node forwards with, at most (a query asking for more gets this).
    pub max_fanout: u8,
    /// Queries remembered (seen-set and reverse paths), at most.
    pub seen: usize,
    /// How long a query is remembered: duplicates are dropped and answers passed back
    /// for this long.
    pub remember: Duration,
    /// This node's own searches under way at once, at most.
    pub max_searches: usize,
    /// Items in the local catalog, at most.
    pub catalog: usize,
    /// Queries handled per neighbour and for the node.
    pub queries: Limits,
    /// Messages waiting for the driver, at most (past it, new ones are dropped).
    pub max_transmits: usize,
    /// How long budget given back by leaves is gathered before it is placed (about a
    /// round trip to a neighbour, so the other leaves' returns are in).
    pub regather: Duration,
    /// Good enough: a search that has hits ends early once none has come for
    /// `quiet_factor` times as long as its first remote hit took (at least
    /// [`Config::min_quiet`]): answers from farther away come back in a few times the
    /// first one's round trip, so a search whose answers have stopped does not sit out
    /// its whole time budget. 0 turns it off.
    pub quiet_factor: u32,
    /// The shortest quiet time that ends a search with hits.
    pub min_quiet: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_neighbours: 64,
            max_fanout: 3,
            seen: 4096,
            remember: Duration::from_secs(60),
            max_searches: 32,
            catalog: 10_000,
            // 10 a second per neighbour (bursts of 20), 200 a second for the node.
            queries: Limits {
                caller: Rate::new(20, Duration::from_millis(100)),
                anonymous: Rate::new(0, Duration::from_secs(1)),
                node: Rate::new(400, Duration::from_millis(5)),
            },
            max_transmits: 1024,
            regather: Duration::from_millis(250),
            quiet_factor: 4,
            min_quiet: Duration::from_millis(250),
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

/// A hit a search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The hit.
    pub hit: Hit,
    /// Hops from this node to the holder (0: this node's own catalog).
    pub hops: u8,
    /// When it arrived, after the search started.
    pub after: Duration,
}

/// Why a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// It had the hits it wanted.
    Enough,
    /// Its time budget ran out.
    TimedOut,
    /// It had hits, and no more came for a while ([`Config::quiet_factor`]).
    Quiet,
}

/// How a search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What it found, in the order it arrived.
    pub found: Vec<Found>,
    /// Why it ended.
    pub ended: Ended,
    /// How long it ran.
    pub elapsed: Duration,
}

/// What the flood search tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A search of this node's found something.
    Found {
        /// Which search.
        id: QueryId,
        /// What.
        found: Found,
    },
    /// A search of this node's ended.
    Done {
        /// Which search.
        id: QueryId,
        /// How.
        outcome: Outcome,
    },
}

/// Why a search could not start, or a neighbour not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FloodError {
    /// [`Config::max_searches`] are under way.
    #[error("{0} searches are under way already; wait for one to end")]
    Busy(usize),
    /// The query id was seen already (ids must be random).
    #[error("query id seen already")]
    Duplicate,
    /// The query asks for nothing (no sketch, no topic), or its threshold or topic is
    /// out of range.
    #[error("the query needs a sketch or a topic, a threshold of at most 384 and a topic of at most 64 bytes")]
    Invalid,
    /// [`Config::max_neighbours`] are known.
    #[error("{0} neighbours known already")]
    TooManyNeighbours(usize),
}

/// Counts of what the node handled and dropped, for figures and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Queries from neighbours handled (first sight).
    pub queries: u64,
    /// Queries seen before, dropped.
    pub duplicates: u64,
    /// Queries refused by the rate limit.
    pub rate_limited: u64,
    /// Messages from peers that are not neighbours, dropped.
    pub strangers: u64,
    /// Queries forwarded (messages).
    pub forwarded: u64,
    /// Answers dropped: for a query not forwarded to their sender, or past `want`.
    pub answers_dropped: u64,
    /// Hits dropped at the origin: below the threshold or already found.
    pub hits_dropped: u64,
    /// Messages dropped because the transmit queue was full.
    pub transmits_dropped: u64,
    /// Budget returns sent (this node had nowhere to forward a query).
    pub returns_sent: u64,
    /// Budget returns taken (and the budget forwarded or passed up).
    pub returns_taken: u64,
}

#[derive(Debug)]
struct Running {
    query: Query,
    want: u8,
    started: Instant,
    deadline: Instant,
    found: Vec<Found>,
    /// When the search is good enough to end if no further hit comes (set by remote
    /// hits: see [`Config::quiet_factor`]).
    quiet_until: Option<Instant>,
}

impl Running {
    /// When it ends by itself: its time budget, or sooner once its hits stop coming.
    fn ends_at(&self) -> Instant {
        self.quiet_until
            .map_or(self.deadline, |q| q.min(self.deadline))
    }
}

/// One node's flood search.
#[derive(Debug)]
pub struct Flood {
    own: Peer,
    config: Config,
    catalog: Catalog,
    neighbours: Neighbours,
    seen: Seen,
    searches: HashMap<QueryId, Running>,
    limiter: Limiter,
    /// For picking neighbours (seeded by the driver).
    random: Random,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Queries with budget given back, gathering until then (bounded by the seen-set:
    /// one per query remembered).
    regather: VecDeque<(Instant, QueryId)>,
}

impl Flood {
    /// The flood search of node `own`, with `seed` for its random choice of neighbours.
    pub fn new(own: Peer, config: Config, now: Instant, seed: u64) -> Flood {
        Flood {
            own,
            config,
            catalog: Catalog::new(config.catalog),
            neighbours: Neighbours::new(own, config.max_neighbours),
            seen: Seen::new(config.seen, config.remember),
            searches: HashMap::new(),
            limiter: Limiter::new("flood queries", config.queries, now),
            random: Random::new(seed),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            regather: VecDeque::new(),
        }
    }

    /// This node's identity hash.
    pub fn own(&self) -> &Peer {
        &self.own
    }

    /// What it handled and dropped.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Queries remembered.
    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    /// This node's searches under way.
    pub fn searches(&self) -> usize {
        self.searches.len()
    }

    /// The neighbours.
    pub fn neighbours(&self) -> &[Peer] {
        self.neighbours.as_slice()
    }

    /// A node one hop away (heard directly, or linked); `Ok(false)` if known already.
    pub fn add_neighbour(&mut self, peer: Peer) -> Result<bool, FloodError> {
        self.neighbours
            .add(peer)
            .map_err(FloodError::TooManyNeighbours)
    }

    /// A neighbour went away; whether it was one.
    pub fn remove_neighbour(&mut self, peer: &Peer) -> bool {
        self.neighbours.remove(peer)
    }

    /// Offer `item` to searches (replacing the item with its id).
    pub fn add_item(&mut self, item: Item) -> Result<(), CatalogError> {
        self.catalog.insert(item)
    }

    /// Stop offering the item with id `id`.
    pub fn remove_item(&mut self, id: &[u8; 16]) -> bool {
        self.catalog.remove(id)
    }

    /// The local catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Start a search with id `id` (16 random bytes from the driver) at `patience`,
    /// ending at `want` hits (1 to 20). The local catalog answers first (hops 0); if it
    /// has `want` hits the search ends at once and nothing is sent.
    pub fn search(
        &mut self,
        now: Instant,
        id: QueryId,
        query: Query,
        patience: Patience,
        want: u8,
    ) -> Result<(), FloodError> {
        self.search_with(now, id, query, patience.ladder(), want)
    }

    /// [`Flood::search`] with limits of its own (clamped to the wire's).
    pub fn search_with(
        &mut self,
        now: Instant,
        id: QueryId,
        query: Query,
        ladder: Ladder,
        want: u8,
    ) -> Result<(), FloodError> {
        if !query.is_valid() {
            return Err(FloodError::Invalid);
        }
        if self.searches.len() >= self.config.max_searches {
            return Err(FloodError::Busy(self.searches.len()));
        }
        let want = want.clamp(1, MAX_WANT);
        let entry = Entry {
            from: None,
            forwarded_to: Vec::new(),
            budget_to: Vec::new(),
            search: None,
            regather: 0,
            passed: 0,
            want,
        };
        if !self.seen.insert(now, id, entry) {
            return Err(FloodError::Duplicate);
        }
        let mut run = Running {
            query: query.clone(),
            want,
            started: now,
            deadline: now + ladder.time,
            found: Vec::new(),
            quiet_until: None,
        };
        for (item, score) in self.catalog.matches(&query, usize::from(want)) {
            let found = Found {
                hit: Hit {
                    item,
                    holder: self.own,
                    score,
                },
                hops: 0,
                after: Duration::ZERO,
            };
            run.found.push(found);
            self.events.push_back(Event::Found { id, found });
        }
        if run.found.len() >= usize::from(want) {
            self.events.push_back(Event::Done {
                id,
                outcome: Outcome {
                    found: run.found,
                    ended: Ended::Enough,
                    elapsed: Duration::ZERO,
                },
            });
            return Ok(());
        }
        self.searches.insert(id, run);
        let search = Search {
            ttl: ladder.ttl.clamp(1, MAX_TTL),
            fanout: ladder.fanout.clamp(1, MAX_FANOUT),
            hops: 1,
            budget: ladder.budget.clamp(1, MAX_BUDGET),
            want,
            query,
            top_up: false,
        };
        let budget = search.budget;
        let _ = self.forward(id, search, &[], budget);
        Ok(())
    }

    /// A query seen before came again from `from`: it is not answered again, but the
    /// budget it carries is not wasted either. It goes on to neighbours this node has not
    /// sent the query to (nor had it from), so a query's budget keeps looking for nodes
    /// it has not reached, as far as its TTL allows.
    fn pass_on(&mut self, id: QueryId, from: Peer, s: Search) {
        if s.ttl <= 1 || s.budget <= 1 {
            return;
        }
        let Some(e) = self.seen.get(&id) else {
            return;
        };
        if e.passed >= e.want {
            return; // this node had all that was wanted
        }
        let budget = s.budget - 1;
        let next = Search {
            ttl: s.ttl - 1,
            hops: s.hops.saturating_add(1).min(MAX_TTL),
            budget,
            ..s
        };
        // A top-up may top up this node's branches in turn; an ordinary repeat goes only
        // to neighbours the query has not been to.
        let unplaced = if s.top_up {
            self.place(
                id,
                Search {
                    top_up: false,
                    ..next
                },
                from,
            )
        } else {
            let mut skip = e.forwarded_to.clone();
            skip.push(from);
            skip.extend(e.from);
            self.forward(id, next, &skip, budget)
        };
        // A leaf (one neighbour) gives back what it cannot use, as at first sight.
        if self.neighbours.as_slice().len() == 1 {
            self.give_back(id, from, unplaced);
        }
    }

    /// Send `search` on to up to its fan-out of neighbours not in `skip`, splitting
    /// `budget` query messages between them. Returns the budget it could not place
    /// (all of it when no neighbour is left).
    #[must_use]
    fn forward(&mut self, id: QueryId, search: Search, skip: &[Peer], budget: u16) -> u16 {
        let fanout = search.fanout.min(self.config.max_fanout).max(1);
        let want = usize::from(fanout).min(usize::from(budget));
        let pool = self.neighbours.choose(want, skip, &mut self.random);
        let k = pool.len();
        if let Some(e) = self.seen.get_mut(&id) {
            e.search.get_or_insert_with(|| search.clone());
        }
        if k == 0 {
            return budget;
        }
        let (share, extra) = (budget / k as u16, budget % k as u16);
        for (i, to) in pool.iter().enumerate() {
            let mut s = search.clone();
            s.budget = share + u16::from((i as u16) < extra);
            self.push(Transmit {
                to: *to,
                message: Message {
                    id,
                    body: Body::Query(s),
                },
            });
        }
        self.stats.forwarded += k as u64;
        if let Some(e) = self.seen.get_mut(&id) {
            // At most every neighbour once, so bounded by the neighbour table; a top-up
            // adds to what a neighbour was given.
            for (i, p) in pool.into_iter().enumerate() {
                let given = share + u16::from((i as u16) < extra);
                match e.forwarded_to.iter().position(|q| *q == p) {
                    Some(j) => e.budget_to[j] = e.budget_to[j].saturating_add(given),
                    None => {
                        e.forwarded_to.push(p);
                        e.budget_to.push(given);
                    }
                }
            }
        }
        0
    }

    fn push(&mut self, t: Transmit) {
        if self.transmits.len() >= self.config.max_transmits {
            self.stats.transmits_dropped += 1;
        } else {
            self.transmits.push_back(t);
        }
    }

    /// A message from neighbour `from` (its identity proved by the link it came on).
    pub fn handle(&mut self, now: Instant, from: Peer, message: Message) {
        if from == self.own {
            return;
        }
        if !self.neighbours.contains(&from) {
            self.stats.strangers += 1;
            return;
        }
        match message.body {
            Body::Query(s) => self.serve(now, from, message.id, s),
            Body::Answer { hops, hits } => self.answered(now, from, message.id, hops, hits),
            Body::Return { budget } => self.returned(now, from, message.id, budget),
        }
    }

    fn serve(&mut self, now: Instant, from: Peer, id: QueryId, s: Search) {
        if self.limiter.admit(Some(AddressHash(from)), now).is_err() {
            self.stats.rate_limited += 1;
            return;
        }
        if !s.query.is_valid() {
            return;
        }
        let want = s.want.clamp(1, MAX_WANT);
        let entry = Entry {
            from: Some(from),
            forwarded_to: Vec::new(),
            budget_to: Vec::new(),
            search: None,
            regather: 0,
            passed: 0,
            want,
        };
        if !self.seen.insert(now, id, entry) {
            self.stats.duplicates += 1;
            return self.pass_on(id, from, s);
        }
        self.stats.queries += 1;
        let limit = usize::from(want).min(MAX_HITS);
        let hits: Vec<Hit> = self
            .catalog
            .matches(&s.query, limit)
            .into_iter()
            .map(|(item, score)| Hit {
                item,
                holder: self.own,
                score,
            })
            .collect();
        let answered = hits.len();
        if answered > 0 {
            if let Some(e) = self.seen.get_mut(&id) {
                e.passed = answered as u8;
            }
            self.push(Transmit {
                to: from,
                message: Message {
                    id,
                    body: Body::Answer { hops: s.hops, hits },
                },
            });
        }
        // Good enough here: what lies beyond would only be more of it.
        if answered >= usize::from(want) || s.ttl <= 1 || s.budget <= 1 {
            return;
        }
        let budget = s.budget - 1;
        let next = Search {
            ttl: s.ttl - 1,
            hops: s.hops.saturating_add(1).min(MAX_TTL),
            budget,
            want,
            top_up: false,
            ..s
        };
        let unplaced = self.forward(id, next, &[from], budget);
        self.give_back(id, from, unplaced);
    }

    fn answered(&mut self, now: Instant, from: Peer, id: QueryId, hops: u8, hits: Vec<Hit>) {
        let Some(entry) = self.seen.get_mut(&id) else {
            self.stats.answers_dropped += 1;
            return;
        };
        // Only a neighbour the query went to may answer it.
        if !entry.forwarded_to.contains(&from) {
            self.stats.answers_dropped += 1;
            return;
        }
        let Some(up) = entry.from else {
            return self.found(now, id, hops, hits);
        };
        let room = usize::from(entry.want.saturating_sub(entry.passed));
        if room == 0 {
            self.stats.answers_dropped += 1;
            return;
        }
        let mut hits = hits;
        hits.truncate(room.min(MAX_HITS));
        entry.passed = entry.passed.saturating_add(hits.len() as u8);
        self.push(Transmit {
            to: up,
            message: Message {
                id,
                body: Body::Answer { hops, hits },
            },
        });
    }

    /// Hits for this node's own search `id`.
    fn found(&mut self, now: Instant, id: QueryId, hops: u8, hits: Vec<Hit>) {
        let Some(run) = self.searches.get_mut(&id) else {
            self.stats.answers_dropped += 1; // the search ended already
            return;
        };
        for hit in hits {
            let good = run.query.sketch.is_none() || hit.score >= run.query.threshold;
            let known = run
                .found
                .iter()
                .any(|f| f.hit.item == hit.item && f.hit.holder == hit.holder);
            if !good || known || run.found.len() >= usize::from(run.want) {
                self.stats.hits_dropped += 1;
                continue;
            }
            let found = Found {
                hit,
                hops,
                after: now.saturating_since(run.started),
            };
            run.found.push(found);
            self.events.push_back(Event::Found { id, found });
            if self.config.quiet_factor > 0 {
                let first = run
                    .found
                    .iter()
                    .find(|f| f.hops > 0)
                    .map_or(found.after, |f| f.after);
                let quiet = (first * self.config.quiet_factor).max(self.config.min_quiet);
                run.quiet_until = Some(now + quiet);
            }
        }
        if run.found.len() >= usize::from(run.want) {
            self.finish(now, id, Ended::Enough);
        }
    }

    fn finish(&mut self, now: Instant, id: QueryId, ended: Ended) {
        if let Some(run) = self.searches.remove(&id) {
            self.events.push_back(Event::Done {
                id,
                outcome: Outcome {
                    found: run.found,
                    ended,
                    elapsed: now.saturating_since(run.started),
                },
            });
        }
    }

    /// When [`Flood::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let searches = self.searches.values().map(Running::ends_at).min();
        let regather = self.regather.front().map(|(t, _)| *t);
        match (searches, regather) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: searches out of time, or whose hits have stopped coming, end; old
    /// queries are forgotten.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<(QueryId, Ended)> = self
            .searches
            .iter()
            .filter(|(_, r)| r.ends_at() <= now)
            .map(|(id, r)| {
                let why = if r.deadline <= now {
                    Ended::TimedOut
                } else {
                    Ended::Quiet
                };
                (*id, why)
            })
            .collect();
        due.sort_unstable_by_key(|(id, _)| *id); // the same order every run
        for (id, why) in due {
            self.finish(now, id, why);
        }
        self.regathered(now);
        self.seen.expire(now);
    }

    /// The next message to deliver.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
