//! One iterative lookup: ask the α nearest contacts not yet asked, learn nearer ones from
//! their answers, and stop when the k nearest known have all answered (or, for providers,
//! when enough providers are found). Each contact carries the round it was learned in,
//! so the lookup reports how many hops its result took.

use std::collections::BTreeMap;
use std::time::Duration;

use rns_core::Instant;

use super::key::{Contact, Distance, Key};

/// What a lookup looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// The k nodes nearest to the key.
    Nodes,
    /// Providers of the key: stop once `want` are found.
    Providers {
        /// Providers wanted.
        want: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Asked,
    Answered,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    contact: Contact,
    /// The round this contact is asked in (1 for contacts from this node's table).
    depth: u32,
    state: State,
}

/// How a lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The key looked up.
    pub target: Key,
    /// The nearest contacts that answered, nearest first (at most k).
    pub closest: Vec<Contact>,
    /// Providers found (for a provider lookup).
    pub providers: Vec<Contact>,
    /// The round in which the first provider was found, or (for a node lookup) the
    /// deepest round among the nearest contacts.
    pub hops: u32,
    /// Requests sent.
    pub requests: u32,
    /// Requests that went unanswered or were refused.
    pub failures: u32,
    /// How long it took.
    pub elapsed: Duration,
    /// Whether it ran out of time before it was done.
    pub timed_out: bool,
}

/// A lookup under way.
#[derive(Debug)]
pub struct Lookup {
    target: Key,
    goal: Goal,
    started: Instant,
    candidates: BTreeMap<Distance, Candidate>,
    providers: Vec<Contact>,
    provider_depth: Option<u32>,
    in_flight: usize,
    requests: u32,
    failures: u32,
    /// Candidates kept, at most (bounds memory whatever the answers say).
    max_candidates: usize,
}

impl Lookup {
    /// A lookup for `target` starting from `seeds` (this node's nearest contacts).
    pub fn new(target: Key, goal: Goal, seeds: Vec<Contact>, now: Instant, k: usize) -> Lookup {
        let mut l = Lookup {
            target,
            goal,
            started: now,
            candidates: BTreeMap::new(),
            providers: Vec::new(),
            provider_depth: None,
            in_flight: 0,
            requests: 0,
            failures: 0,
            max_candidates: k * 8,
        };
        l.learn(seeds, 1);
        l
    }

    /// The key looked up.
    pub fn target(&self) -> Key {
        self.target
    }

    /// What it looks for.
    pub fn goal(&self) -> Goal {
        self.goal
    }

    fn learn(&mut self, contacts: Vec<Contact>, depth: u32) {
        for c in contacts {
            let d = self.target.distance(&c.id);
            self.candidates.entry(d).or_insert(Candidate {
                contact: c,
                depth,
                state: State::New,
            });
        }
        while self.candidates.len() > self.max_candidates {
            // Drop the farthest that is not waited on.
            let far = self
                .candidates
                .iter()
                .rev()
                .find(|(_, c)| c.state != State::Asked)
                .map(|(d, _)| *d);
            match far {
                Some(d) => {
                    self.candidates.remove(&d);
                }
                None => break,
            }
        }
    }

    /// Contacts to ask now (marked asked), with the round each is asked in: the nearest
    /// not yet asked among the k nearest still in the running, up to `alpha` in flight.
    pub fn next(&mut self, alpha: usize, k: usize) -> Vec<Contact> {
        if self.is_done(k) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for c in self
            .candidates
            .values_mut()
            .filter(|c| c.state != State::Failed)
            .take(k)
        {
            if self.in_flight >= alpha {
                break;
            }
            if c.state == State::New {
                c.state = State::Asked;
                self.in_flight += 1;
                self.requests += 1;
                out.push(c.contact);
            }
        }
        out
    }

    fn find(&mut self, id: &Key) -> Option<&mut Candidate> {
        let d = self.target.distance(id);
        self.candidates
            .get_mut(&d)
            .filter(|c| c.state == State::Asked)
    }

    /// `from` answered with nearer contacts and (for providers) providers.
    pub fn answered(&mut self, from: &Key, closer: Vec<Contact>, providers: Vec<Contact>) {
        let Some(c) = self.find(from) else { return };
        c.state = State::Answered;
        let depth = c.depth;
        self.in_flight -= 1;
        if !providers.is_empty() {
            self.provider_depth.get_or_insert(depth);
            for p in providers {
                if !self.providers.iter().any(|q| q.id == p.id) {
                    self.providers.push(p);
                }
            }
        }
        self.learn(closer, depth + 1);
    }

    /// Providers this node itself holds records for: found without asking (hop 0).
    pub fn answered_locally(&mut self, providers: Vec<Contact>) {
        self.provider_depth = Some(0);
        for p in providers {
            if !self.providers.iter().any(|q| q.id == p.id) {
                self.providers.push(p);
            }
        }
    }

    /// A request to `from` went unanswered or was refused.
    pub fn failed(&mut self, from: &Key) {
        let Some(c) = self.find(from) else { return };
        c.state = State::Failed;
        self.in_flight -= 1;
        self.failures += 1;
    }

    /// Whether the lookup has its answer.
    pub fn is_done(&self, k: usize) -> bool {
        if let Goal::Providers { want } = self.goal {
            if self.providers.len() >= want.max(1) {
                return true;
            }
        }
        let mut live = self
            .candidates
            .values()
            .filter(|c| c.state != State::Failed)
            .take(k)
            .peekable();
        if live.peek().is_none() {
            return self.in_flight == 0;
        }
        live.all(|c| c.state == State::Answered)
    }

    /// How the lookup ended (at `now`; `timed_out` if it was cut short).
    pub fn outcome(&self, now: Instant, k: usize, timed_out: bool) -> Outcome {
        let closest: Vec<&Candidate> = self
            .candidates
            .values()
            .filter(|c| c.state == State::Answered)
            .take(k)
            .collect();
        let hops = match (self.goal, self.provider_depth) {
            (Goal::Providers { .. }, Some(d)) => d,
            _ => closest.iter().map(|c| c.depth).max().unwrap_or(0),
        };
        Outcome {
            target: self.target,
            closest: closest.iter().map(|c| c.contact).collect(),
            providers: self.providers.clone(),
            hops,
            requests: self.requests,
            failures: self.failures,
            elapsed: now.saturating_since(self.started),
            timed_out,
        }
    }
}
