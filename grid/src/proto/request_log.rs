//! The request log: every command request a node accepted, by caller and correlation id,
//! until it can no longer arrive again. It makes a command run **at most once** when the
//! same request reaches the node twice — directly on a link and again as a bundle after
//! the link failed (delay-tolerant fallback), or retransmitted by its caller:
//!
//! - the first copy is admitted ([`Admit::Run`]) and marked running;
//! - a copy that arrives while the first still runs waits for its result
//!   ([`Admit::Joined`]): when [`RequestLog::finish`] records the response, every waiting
//!   reply gets it too;
//! - a copy that arrives after the first finished gets the kept response
//!   ([`Admit::Answer`]), or — when the result was too large to keep — a refusal saying it
//!   already ran ([`Admit::Forgotten`]).
//!
//! Sans-IO: time is handed in (ms), nothing is read or written. Memory is bounded by
//! [`Limits`]: entries per caller and per node, kept response bytes, waiting replies per
//! request. A caller that exceeds its share only loses its *own* oldest entries, so no
//! peer can flush another's (a command of one caller cannot be made to run twice by
//! anybody else). Frames that travel as bundles are also guarded by the bundle store's
//! durable seen set, so a captured bundle cannot be replayed after a restart.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::frame::{Body, GridFrame, Outcome};

/// Who sent a request: an identity hash, or (for callers that did not identify) the link
/// it came on, so anonymous callers never share entries.
pub type Caller = [u8; 16];

/// One request: its caller and correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    /// The caller.
    pub caller: Caller,
    /// The request's correlation id.
    pub correlation: u64,
}

/// What the log holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries one caller may have; beyond it its oldest entry is forgotten.
    pub per_caller: usize,
    /// Entries in all; beyond it the oldest entry of the caller with the most goes.
    pub total: usize,
    /// Responses larger than this (encoded) are not kept, only the fact that it ran.
    pub response_bytes: usize,
    /// Bytes of kept responses in all.
    pub total_response_bytes: usize,
    /// Copies that may wait for one running request.
    pub joined: usize,
    /// Least time an entry is kept (for requests with no or a short TTL), ms.
    pub min_keep_ms: u64,
    /// Most time an entry is kept, whatever the request's TTL, ms.
    pub max_keep_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_caller: 1024,
            total: 32 * 1024,
            response_bytes: 64 * 1024,
            total_response_bytes: 8 * 1024 * 1024,
            joined: 4,
            min_keep_ms: 10 * 60 * 1000,
            max_keep_ms: 24 * 3600 * 1000,
        }
    }
}

/// What to do with a request that arrived.
#[derive(Debug)]
#[must_use]
pub enum Admit<R> {
    /// First copy: run it, answer `reply`, and call [`RequestLog::finish`].
    Run(R),
    /// The same request is running; `reply` was kept and gets the result.
    Joined,
    /// The same request ran already: answer `reply` with this response.
    Answer(Box<GridFrame>, R),
    /// The same request ran already and its result was not kept: refuse `reply`.
    Forgotten(R),
}

#[derive(Debug)]
enum State<R> {
    Running(Vec<R>),
    Done(Option<Box<GridFrame>>),
}

#[derive(Debug)]
struct Entry<R> {
    expires_ms: u64,
    /// Admission order, for choosing what to forget.
    seq: u64,
    state: State<R>,
}

/// Requests accepted recently; see the module docs.
#[derive(Debug)]
pub struct RequestLog<R> {
    limits: Limits,
    entries: HashMap<RequestKey, Entry<R>>,
    /// Each caller's keys, oldest first.
    by_caller: HashMap<Caller, VecDeque<RequestKey>>,
    /// Keys by expiry.
    by_expiry: BTreeSet<(u64, RequestKey)>,
    response_bytes: usize,
    next_seq: u64,
}

impl<R> Default for RequestLog<R> {
    fn default() -> Self {
        RequestLog::new(Limits::default())
    }
}

fn frame_bytes(f: &GridFrame) -> usize {
    match &f.body {
        Body::Response(Outcome::Ok(b)) => b.len() + 64,
        Body::Response(Outcome::Err { message, .. }) => message.len() + 64,
        _ => 64,
    }
}

impl<R> RequestLog<R> {
    /// An empty log.
    pub fn new(limits: Limits) -> RequestLog<R> {
        RequestLog {
            limits,
            entries: HashMap::new(),
            by_caller: HashMap::new(),
            by_expiry: BTreeSet::new(),
            response_bytes: 0,
            next_seq: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of responses kept.
    pub fn response_bytes(&self) -> usize {
        self.response_bytes
    }

    /// A request arrived at `now_ms` (a monotonic clock); copies of it may still arrive
    /// for `keep_ms` (what is left of its TTL; None: no TTL). `reply` is where its answer
    /// goes.
    pub fn admit(
        &mut self,
        now_ms: u64,
        key: RequestKey,
        keep_ms: Option<u64>,
        reply: R,
    ) -> Admit<R> {
        self.expire(now_ms);
        if let Some(e) = self.entries.get_mut(&key) {
            return match &mut e.state {
                State::Running(joined) => {
                    if joined.len() < self.limits.joined {
                        joined.push(reply);
                    }
                    Admit::Joined
                }
                State::Done(Some(f)) => Admit::Answer(f.clone(), reply),
                State::Done(None) => Admit::Forgotten(reply),
            };
        }
        let keep = keep_ms
            .unwrap_or(0)
            .clamp(self.limits.min_keep_ms, self.limits.max_keep_ms);
        let expires_ms = now_ms.saturating_add(keep);
        let mine = self.by_caller.get(&key.caller).map_or(0, VecDeque::len);
        if mine >= self.limits.per_caller.max(1) {
            self.evict_oldest_of(key.caller);
        } else if self.entries.len() >= self.limits.total.max(1) {
            // The caller holding the most goes first; among equals the one that came
            // last, so a crowd of newcomers cannot push out what was there before them.
            let entries = &self.entries;
            if let Some(biggest) = self
                .by_caller
                .iter()
                .max_by_key(|(_, keys)| {
                    let first = keys.front().and_then(|k| entries.get(k)).map(|e| e.seq);
                    (keys.len(), first)
                })
                .map(|(c, _)| *c)
            {
                self.evict_oldest_of(biggest);
            }
        }
        self.next_seq += 1;
        self.entries.insert(
            key,
            Entry {
                expires_ms,
                seq: self.next_seq,
                state: State::Running(Vec::new()),
            },
        );
        self.by_caller.entry(key.caller).or_default().push_back(key);
        self.by_expiry.insert((expires_ms, key));
        Admit::Run(reply)
    }

    /// The request finished with `response`: keep it (if small enough) for later copies,
    /// and return the replies of copies that joined while it ran.
    pub fn finish(&mut self, key: &RequestKey, response: &GridFrame) -> Vec<R> {
        let Some(e) = self.entries.get_mut(key) else {
            return Vec::new();
        };
        let size = frame_bytes(response);
        let keep = size <= self.limits.response_bytes
            && self.response_bytes + size <= self.limits.total_response_bytes;
        let old = std::mem::replace(
            &mut e.state,
            State::Done(keep.then(|| Box::new(response.clone()))),
        );
        if let State::Done(Some(f)) = &old {
            self.response_bytes -= frame_bytes(f);
        }
        if keep {
            self.response_bytes += size;
        }
        match old {
            State::Running(joined) => joined,
            State::Done(_) => Vec::new(),
        }
    }

    /// Forget entries that can no longer arrive again.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some(&(at, key)) = self.by_expiry.first() {
            if at > now_ms {
                break;
            }
            self.remove(&key);
        }
    }

    fn evict_oldest_of(&mut self, caller: Caller) {
        let oldest = self
            .by_caller
            .get(&caller)
            .and_then(|keys| keys.front().copied());
        if let Some(key) = oldest {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &RequestKey) {
        let Some(e) = self.entries.remove(key) else {
            return;
        };
        self.by_expiry.remove(&(e.expires_ms, *key));
        if let State::Done(Some(f)) = &e.state {
            self.response_bytes -= frame_bytes(f);
        }
        if let Some(keys) = self.by_caller.get_mut(&key.caller) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_caller.remove(&key.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ErrorCode;

    fn key(caller: u8, correlation: u64) -> RequestKey {
        RequestKey {
            caller: [caller; 16],
            correlation,
        }
    }

    fn response(correlation: u64, result: &str) -> GridFrame {
        GridFrame {
            correlation,
            source: [1; 16],
            target: [2; 16],
            timestamp_ms: 0,
            ttl_ms: 0,
            body: Body::Response(Outcome::Ok(result.as_bytes().to_vec())),
        }
    }

    #[test]
    fn a_request_runs_once_and_every_copy_gets_its_answer() {
        let mut log = RequestLog::<&str>::default();
        let k = key(1, 7);
        assert!(matches!(
            log.admit(0, k, Some(60_000), "link"),
            Admit::Run(..)
        ));
        // The bundle copy arrives while the direct one runs: it waits.
        assert!(matches!(
            log.admit(10, k, Some(60_000), "bundle"),
            Admit::Joined
        ));
        let joined = log.finish(&k, &response(7, "1"));
        assert_eq!(joined, vec!["bundle"]);
        // A later copy gets the same answer, not a second run.
        match log.admit(20, k, Some(60_000), "again") {
            Admit::Answer(f, r) => {
                assert_eq!(r, "again");
                assert_eq!(*f, response(7, "1"));
            }
            other => panic!("expected the kept answer, got {other:?}"),
        }
        // Another caller's request with the same correlation id is its own.
        assert!(matches!(
            log.admit(20, key(2, 7), None, "x"),
            Admit::Run(..)
        ));
    }

    #[test]
    fn entries_live_as_long_as_the_request_can_arrive_within_bounds() {
        let limits = Limits::default();
        let mut log = RequestLog::<()>::new(limits);
        let k = key(1, 1);
        assert!(matches!(
            log.admit(0, k, Some(3_600_000), ()),
            Admit::Run(..)
        ));
        let _ = log.finish(&k, &response(1, "true"));
        assert!(matches!(
            log.admit(3_599_000, k, None, ()),
            Admit::Answer(..)
        ));
        assert!(matches!(log.admit(3_600_001, k, None, ()), Admit::Run(..)));
        // No TTL: kept the minimum; a huge TTL: kept the maximum.
        let k2 = key(1, 2);
        assert!(matches!(log.admit(0, k2, None, ()), Admit::Run(..)));
        log.expire(limits.min_keep_ms + 1);
        assert!(matches!(
            log.admit(limits.min_keep_ms + 1, k2, None, ()),
            Admit::Run(..)
        ));
        let k3 = key(1, 3);
        assert!(matches!(
            log.admit(0, k3, Some(u64::MAX), ()),
            Admit::Run(..)
        ));
        log.expire(limits.max_keep_ms + limits.min_keep_ms + 2);
        assert!(log.is_empty());
    }

    #[test]
    fn large_results_are_not_kept_but_the_request_still_does_not_run_twice() {
        let limits = Limits {
            response_bytes: 100,
            ..Limits::default()
        };
        let mut log = RequestLog::<()>::new(limits);
        let k = key(1, 1);
        assert!(matches!(log.admit(0, k, None, ()), Admit::Run(..)));
        let big = "x".repeat(1000);
        let _ = log.finish(&k, &response(1, &big));
        assert_eq!(log.response_bytes(), 0);
        assert!(matches!(log.admit(1, k, None, ()), Admit::Forgotten(())));
    }

    #[test]
    fn a_flood_from_one_caller_cannot_flush_anothers_entries() {
        let limits = Limits {
            per_caller: 8,
            total: 16,
            ..Limits::default()
        };
        let mut log = RequestLog::<()>::new(limits);
        let honest = key(9, 42);
        assert!(matches!(log.admit(0, honest, None, ()), Admit::Run(..)));
        let _ = log.finish(&honest, &response(42, "1"));
        // One attacker identity, then many throwaway identities.
        for i in 0..1000 {
            let _ = log.admit(1, key(1, i), None, ());
        }
        for c in 10..=250u8 {
            for i in 0..3 {
                let _ = log.admit(1, key(c, i), None, ());
            }
        }
        for c in 10..=250u8 {
            let _ = log.admit(1, key(c, 99), None, ());
        }
        assert!(log.len() <= 16);
        assert!(matches!(log.admit(2, honest, None, ()), Admit::Answer(..)));
        // The running state of an error answer is kept too.
        let e = GridFrame {
            body: Body::Response(Outcome::Err {
                code: ErrorCode::Failed,
                message: "no".into(),
            }),
            ..response(5, "")
        };
        let k = key(3, 5);
        let _ = log.admit(2, k, None, ());
        let _ = log.finish(&k, &e);
        assert!(matches!(log.admit(3, k, None, ()), Admit::Answer(..)));
    }

    #[test]
    fn joined_copies_are_bounded() {
        let mut log = RequestLog::<u32>::default();
        let k = key(1, 1);
        let _ = log.admit(0, k, None, 0);
        for i in 1..100 {
            assert!(matches!(log.admit(0, k, None, i), Admit::Joined));
        }
        assert_eq!(log.finish(&k, &response(1, "1")).len(), 4);
    }
}
