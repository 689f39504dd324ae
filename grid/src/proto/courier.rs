//! Where waiting bundles go next, without IO: the courier's decisions.
//!
//! Every round (a second, or when a bundle is queued) the driver tells the planner which
//! destinations have bundles waiting and what the node knows of them ([`Routes`]); the
//! planner answers with [`Job`]s:
//! - a destination with a path gets its bundles **directly**, unless direct delivery to it
//!   failed in the last [`DIRECT_BACKOFF`] (its path may be stale) and it has not
//!   announced since;
//! - otherwise they go to the first reachable **custodian**, which carries them on;
//! - with neither, they are **held** here;
//! - bundles for this node are **pulled** from each reachable custodian when it becomes
//!   reachable, then every [`PULL_EVERY`].
//!
//! One exchange per destination or custodian runs at a time: a job holds its key until
//! [`Courier::done`].

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rns_core::AddressHash;

/// How often bundles are pulled from a reachable custody node.
pub const PULL_EVERY: Duration = Duration::from_secs(15);
/// How long direct delivery to a destination rests after it failed; custodians carry its
/// bundles meanwhile.
pub const DIRECT_BACKOFF: Duration = Duration::from_secs(30);

/// What the node knows about the destinations with waiting bundles, in the order asked.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Per destination: whether a path is known.
    pub reachable: Vec<bool>,
    /// Per destination: when its `grid.node` announce was last heard (node clock, ms).
    pub heard_ms: Vec<Option<u64>>,
    /// Custody nodes with a path, best first (see [`choose_custodians`]).
    pub custodians: Vec<AddressHash>,
}

/// A node that could hold bundles for others, as the node sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Its `grid.node` destination.
    pub node: AddressHash,
    /// Hops away.
    pub hops: u8,
    /// Whether this node trusts its identity (at least `trusted`).
    pub trusted: bool,
}

/// The custodians to use, best first: the configured ones in their order, then nodes
/// announcing the custody role whose identity this node trusts, nearest first — never a
/// stranger, which could take bundles and drop them. Each once, never this node, only
/// reachable ones.
pub fn choose_custodians(
    configured: &[AddressHash],
    announced: &[Candidate],
    reachable: impl Fn(&AddressHash) -> bool,
    me: AddressHash,
) -> Vec<AddressHash> {
    let mut trusted: Vec<(u8, AddressHash)> = announced
        .iter()
        .filter(|c| c.trusted)
        .map(|c| (c.hops, c.node))
        .collect();
    trusted.sort();
    let mut seen = HashSet::new();
    configured
        .iter()
        .copied()
        .chain(trusted.into_iter().map(|(_, d)| d))
        .filter(|c| *c != me && seen.insert(*c) && reachable(c))
        .collect()
}

/// One exchange to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Job {
    /// Hand the bundles for `destination` to `to` (the destination itself, or a custodian).
    Push {
        /// Who gets them.
        to: AddressHash,
        /// Whose bundles they are.
        destination: [u8; 16],
    },
    /// Take the bundles for this node that `custodian` holds.
    Pull {
        /// The custodian.
        custodian: AddressHash,
    },
}

impl Job {
    /// The key the job holds while it runs.
    fn key(&self) -> [u8; 16] {
        match self {
            Job::Push { destination, .. } => *destination,
            Job::Pull { custodian } => custodian.0,
        }
    }
}

/// The courier's state: what runs, what rests, when custodians were last pulled from.
#[derive(Debug, Default)]
pub struct Courier {
    /// Destinations whose direct delivery failed, and when (node clock, ms).
    resting: HashMap<[u8; 16], u64>,
    /// Destinations and custodians with an exchange under way.
    running: HashSet<[u8; 16]>,
    /// When each custodian was last pulled from (node clock, ms).
    pulled: HashMap<AddressHash, u64>,
}

impl Courier {
    /// The jobs for this round: `destinations` have bundles waiting, `routes` says what
    /// is known of them (same order). Each job's key stays busy until [`Courier::done`].
    pub fn plan(&mut self, now_ms: u64, destinations: &[[u8; 16]], routes: &Routes) -> Vec<Job> {
        let rest = DIRECT_BACKOFF.as_millis() as u64;
        self.resting
            .retain(|_, failed| now_ms.saturating_sub(*failed) < rest);
        // A destination that announced since it failed has a fresh path: try it again.
        for (dest, heard) in destinations.iter().zip(&routes.heard_ms) {
            if let (Some(heard), Some(failed)) = (heard, self.resting.get(dest)) {
                if heard > failed {
                    self.resting.remove(dest);
                }
            }
        }
        let mut jobs = Vec::new();
        for (dest, reachable) in destinations.iter().zip(&routes.reachable) {
            let to = if *reachable && !self.resting.contains_key(dest) {
                AddressHash(*dest)
            } else if let Some(c) = routes.custodians.first() {
                *c
            } else {
                continue;
            };
            let job = Job::Push {
                to,
                destination: *dest,
            };
            if self.running.insert(job.key()) {
                jobs.push(job);
            }
        }
        self.pulled.retain(|c, _| routes.custodians.contains(c));
        let every = PULL_EVERY.as_millis() as u64;
        for c in &routes.custodians {
            let due = self
                .pulled
                .get(c)
                .is_none_or(|t| now_ms.saturating_sub(*t) >= every);
            let job = Job::Pull { custodian: *c };
            if due && self.running.insert(job.key()) {
                self.pulled.insert(*c, now_ms);
                jobs.push(job);
            }
        }
        jobs
    }

    /// `job` ended at `now_ms`, well or not. A failed direct push rests its destination.
    pub fn done(&mut self, now_ms: u64, job: &Job, ok: bool) {
        self.running.remove(&job.key());
        if let Job::Push { to, destination } = job {
            if !ok && to.0 == *destination {
                self.resting.insert(*destination, now_ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: [u8; 16] = [1; 16];
    const C: AddressHash = AddressHash([9; 16]);

    fn routes(reachable: bool, custodians: &[AddressHash]) -> Routes {
        Routes {
            reachable: vec![reachable],
            heard_ms: vec![None],
            custodians: custodians.to_vec(),
        }
    }

    fn pushes(jobs: &[Job]) -> Vec<AddressHash> {
        jobs.iter()
            .filter_map(|j| match j {
                Job::Push { to, .. } => Some(*to),
                Job::Pull { .. } => None,
            })
            .collect()
    }

    #[test]
    fn direct_when_reachable_else_custody_else_hold() {
        let mut c = Courier::default();
        assert_eq!(
            pushes(&c.plan(0, &[D], &routes(true, &[C]))),
            vec![AddressHash(D)]
        );
        let mut c2 = Courier::default();
        assert_eq!(pushes(&c2.plan(0, &[D], &routes(false, &[C]))), vec![C]);
        let mut c3 = Courier::default();
        assert!(
            c3.plan(0, &[D], &routes(false, &[])).is_empty(),
            "held here"
        );
        // One exchange per destination at a time.
        assert!(pushes(&c.plan(10, &[D], &routes(true, &[]))).is_empty());
        let job = Job::Push {
            to: AddressHash(D),
            destination: D,
        };
        c.done(20, &job, true);
        assert_eq!(
            pushes(&c.plan(30, &[D], &routes(true, &[]))),
            vec![AddressHash(D)]
        );
    }

    #[test]
    fn a_failed_direct_push_rests_until_the_destination_announces() {
        let mut c = Courier::default();
        let jobs = c.plan(1_000, &[D], &routes(true, &[C]));
        c.done(2_000, &jobs[0], false);
        // Resting: the custodian carries it, even though a path is known.
        let jobs = c.plan(3_000, &[D], &routes(true, &[C]));
        assert_eq!(pushes(&jobs), vec![C]);
        for j in &jobs {
            c.done(3_500, j, true);
        }
        // An announce heard after the failure makes the path fresh again.
        let mut r = routes(true, &[C]);
        r.heard_ms = vec![Some(4_000)];
        assert_eq!(pushes(&c.plan(5_000, &[D], &r)), vec![AddressHash(D)]);

        // Without an announce, the rest ends after DIRECT_BACKOFF.
        let mut c = Courier::default();
        let jobs = c.plan(0, &[D], &routes(true, &[]));
        c.done(0, &jobs[0], false);
        assert!(c.plan(1_000, &[D], &routes(true, &[])).is_empty());
        let later = DIRECT_BACKOFF.as_millis() as u64;
        assert_eq!(
            pushes(&c.plan(later, &[D], &routes(true, &[]))),
            vec![AddressHash(D)]
        );
    }

    #[test]
    fn a_failed_push_to_a_custodian_does_not_rest_the_destination() {
        let mut c = Courier::default();
        let jobs = c.plan(0, &[D], &routes(false, &[C]));
        for j in &jobs {
            c.done(1, j, false);
        }
        assert_eq!(
            pushes(&c.plan(2, &[D], &routes(true, &[C]))),
            vec![AddressHash(D)]
        );
    }

    #[test]
    fn custodians_are_pulled_from_when_reachable_then_every_interval() {
        let mut c = Courier::default();
        let pull = Job::Pull { custodian: C };
        assert_eq!(c.plan(0, &[], &routes(false, &[C])), vec![pull]);
        c.done(100, &pull, true);
        assert!(c.plan(1_000, &[], &routes(false, &[C])).is_empty());
        let every = PULL_EVERY.as_millis() as u64;
        assert_eq!(c.plan(every, &[], &routes(false, &[C])), vec![pull]);
        c.done(every, &pull, true);
        // Gone and back: pulled at once.
        assert!(c.plan(every + 1, &[], &routes(false, &[])).is_empty());
        assert_eq!(c.plan(every + 2, &[], &routes(false, &[C])), vec![pull]);
    }

    #[test]
    fn custodians_configured_first_then_trusted_nearest_never_strangers_or_self() {
        let h = |n: u8| AddressHash([n; 16]);
        let cand = |n: u8, hops: u8, trusted: bool| Candidate {
            node: h(n),
            hops,
            trusted,
        };
        let announced = [
            cand(5, 3, true),
            cand(6, 1, true),
            cand(7, 0, false),
            cand(2, 1, true),
        ];
        let reachable = |c: &AddressHash| *c != h(4);
        let chosen = choose_custodians(&[h(3), h(4), h(2)], &announced, reachable, h(6));
        assert_eq!(chosen, vec![h(3), h(2), h(5)]);
    }
}
