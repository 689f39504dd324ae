//! Rate limits on what peers may ask of a node (searches, package pulls, audit records of
//! refused frames): token buckets per caller identity, one bucket all unidentified
//! callers share, and one for the whole node. Sans-IO: time is handed in.
//!
//! A caller is admitted when its own bucket (or the shared anonymous one) and the node's
//! bucket both hold a token; then one is taken from each. A refusal says how long until
//! the caller may try again. Identities cost nothing to make, so the per-caller buckets
//! only keep one caller from crowding out others; the node-wide bucket is what bounds the
//! work a crowd of identities can cause. The table of caller buckets is bounded: when it
//! is full, the caller seen least recently loses its bucket (it gets a full one if it
//! comes back, which is no more than it would have had by waiting).

use std::collections::HashMap;
use std::time::Duration;

use rns_core::Instant;

use rns_core::AddressHash;

/// Caller buckets kept per limiter, at most.
pub const MAX_CALLERS: usize = 1024;

/// How fast a bucket refills and how many tokens it holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens a full bucket holds (requests that may come at once).
    pub burst: u32,
    /// One token comes back every this long.
    pub every: Duration,
}

impl Rate {
    /// `burst` at once, then one every `every`.
    pub const fn new(burst: u32, every: Duration) -> Rate {
        Rate { burst, every }
    }
}

/// A token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let every = self.rate.every.as_secs_f64();
        let gained = if every > 0.0 {
            now.saturating_since(self.at).as_secs_f64() / every
        } else {
            f64::INFINITY
        };
        self.tokens = (self.tokens + gained).min(f64::from(self.rate.burst));
        self.at = self.at.max(now);
    }

    /// `Ok` if a token is there now (nothing is taken), else how long until one is.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Ok(());
        }
        if self.rate.burst == 0 {
            return Err(Duration::MAX);
        }
        let missing = 1.0 - self.tokens;
        Err(self.rate.every.mul_f64(missing))
    }

    /// Take a token if one is there; else how long until one is.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.check(now)?;
        self.tokens -= 1.0;
        Ok(())
    }
}

/// Whose bucket ran dry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's own.
    Caller,
    /// The one all unidentified callers share.
    Anonymous,
    /// The node's, shared by everyone.
    Node,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Caller => "this caller",
            Scope::Anonymous => {
                "unidentified callers (identify on the link for a share of your own)"
            }
            Scope::Node => "this node, for all callers",
        })
    }
}

/// A request refused by a rate limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: {what} for {scope} is at its limit ({burst} at once, one more every {every_ms} ms), try again in {retry_ms} ms")]
pub struct RateLimited {
    /// What was asked for (`genome/search`, `genome/package`).
    pub what: &'static str,
    /// Whose bucket ran dry.
    pub scope: Scope,
    /// That bucket's burst.
    pub burst: u32,
    /// That bucket's refill interval in milliseconds.
    pub every_ms: u64,
    /// How long until a retry can succeed, in milliseconds (at least 1).
    pub retry_ms: u64,
}

impl RateLimited {
    /// How long until a retry can succeed.
    pub fn retry_after(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }
}

/// The limits on one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Each identified caller's rate.
    pub caller: Rate,
    /// The rate all unidentified callers share.
    pub anonymous: Rate,
    /// The rate for the whole node.
    pub node: Rate,
}

/// Rate limits for one kind of request.
#[derive(Debug)]
pub struct Limiter {
    what: &'static str,
    limits: Limits,
    max_callers: usize,
    /// Caller buckets, each with when it was last used.
    callers: HashMap<AddressHash, (TokenBucket, Instant)>,
    anonymous: TokenBucket,
    node: TokenBucket,
}

impl Limiter {
    /// A limiter for `what` (named in refusals), keeping at most [`MAX_CALLERS`] callers.
    pub fn new(what: &'static str, limits: Limits, now: Instant) -> Limiter {
        Limiter::with_capacity(what, limits, MAX_CALLERS, now)
    }

    /// A limiter keeping at most `max_callers` caller buckets (at least one).
    pub fn with_capacity(
        what: &'static str,
        limits: Limits,
        max_callers: usize,
        now: Instant,
    ) -> Limiter {
        Limiter {
            what,
            limits,
            max_callers: max_callers.max(1),
            callers: HashMap::new(),
            anonymous: TokenBucket::new(limits.anonymous, now),
            node: TokenBucket::new(limits.node, now),
        }
    }

    /// How many caller buckets are kept now.
    pub fn callers(&self) -> usize {
        self.callers.len()
    }

    /// Admit one request from `caller` (`None`: unidentified) at `now`, or say why not.
    pub fn admit(&mut self, caller: Option<AddressHash>, now: Instant) -> Result<(), RateLimited> {
        let (what, limits) = (self.what, self.limits);
        let refuse = |scope: Scope, rate: Rate, wait: Duration| RateLimited {
            what,
            scope,
            burst: rate.burst,
            every_ms: rate.every.as_millis() as u64,
            retry_ms: (wait.as_millis() as u64).max(1),
        };
        if let Some(c) = caller {
            if !self.callers.contains_key(&c) && self.callers.len() >= self.max_callers {
                self.evict_oldest();
            }
        }
        let own = match caller {
            Some(c) => {
                let (bucket, seen) = self
                    .callers
                    .entry(c)
                    .or_insert_with(|| (TokenBucket::new(limits.caller, now), now));
                *seen = now;
                (bucket, Scope::Caller, limits.caller)
            }
            None => (&mut self.anonymous, Scope::Anonymous, limits.anonymous),
        };
        let (bucket, scope, rate) = own;
        bucket.check(now).map_err(|w| refuse(scope, rate, w))?;
        self.node
            .take(now)
            .map_err(|w| refuse(Scope::Node, limits.node, w))?;
        // Re-borrow: the node's token is taken, now the caller's.
        let bucket = match caller {
            Some(c) => self.callers.get_mut(&c).map(|(b, _)| b),
            None => Some(&mut self.anonymous),
        };
        if let Some(b) = bucket {
            let _ = b.take(now);
        }
        Ok(())
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .callers
            .iter()
            // Ties go to the lowest id, so runs are reproducible.
            .min_by_key(|(c, (_, seen))| (*seen, **c))
            .map(|(c, _)| *c)
        {
            self.callers.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn id(n: u8) -> AddressHash {
        AddressHash([n; 16])
    }

    fn limits() -> Limits {
        Limits {
            caller: Rate::new(2, 100 * MS),
            anonymous: Rate::new(1, 1000 * MS),
            node: Rate::new(5, 10 * MS),
        }
    }

    #[test]
    fn a_bucket_gives_its_burst_then_one_per_interval() {
        let t = Instant::from_micros(1_000_000);
        let mut b = TokenBucket::new(Rate::new(3, 100 * MS), t);
        for _ in 0..3 {
            b.take(t).unwrap();
        }
        assert_eq!(b.take(t), Err(100 * MS));
        assert_eq!(b.take(t + 40 * MS), Err(60 * MS));
        b.take(t + 100 * MS).unwrap();
        assert!(b.take(t + 100 * MS).is_err());
        // Never more than the burst, however long it rests.
        let later = t + Duration::from_secs(3600);
        for _ in 0..3 {
            b.take(later).unwrap();
        }
        assert!(b.take(later).is_err());
        // A clock that goes backwards takes nothing away and gives nothing.
        assert!(b.take(t).is_err());
    }

    #[test]
    fn a_zero_bucket_refuses_for_ever() {
        let t = Instant::from_micros(1_000_000);
        let mut b = TokenBucket::new(Rate::new(0, 10 * MS), t);
        assert_eq!(b.take(t + Duration::from_secs(60)), Err(Duration::MAX));
    }

    #[test]
    fn each_caller_has_its_own_bucket_and_anonymous_callers_share_one() {
        let t = Instant::from_micros(1_000_000);
        let mut l = Limiter::new("genome/search", limits(), t);
        l.admit(Some(id(1)), t).unwrap();
        l.admit(Some(id(1)), t).unwrap();
        let e = l.admit(Some(id(1)), t).unwrap_err();
        assert_eq!((e.scope, e.retry_ms), (Scope::Caller, 100));
        let text = e.to_string();
        assert!(
            text.starts_with("rate limited: genome/search")
                && text.ends_with("try again in 100 ms"),
            "{text}"
        );
        // Another caller is not held back by the first.
        l.admit(Some(id(2)), t).unwrap();
        // Unidentified callers share one small bucket.
        l.admit(None, t).unwrap();
        let e = l.admit(None, t).unwrap_err();
        assert_eq!(e.scope, Scope::Anonymous);
        assert_eq!(e.retry_after(), 1000 * MS);
        // The first caller's bucket refills.
        l.admit(Some(id(1)), t + 100 * MS).unwrap();
    }

    #[test]
    fn the_node_bucket_bounds_everyone_together_and_refusals_take_nothing() {
        let t = Instant::from_micros(1_000_000);
        let mut l = Limiter::new("genome/search", limits(), t);
        for n in 0..5 {
            l.admit(Some(id(n)), t).unwrap();
        }
        // A fresh identity is still refused: the node's bucket is empty.
        let e = l.admit(Some(id(99)), t).unwrap_err();
        assert_eq!((e.scope, e.retry_ms), (Scope::Node, 10));
        // The refusal took nothing from id 99's own bucket: its two tokens are still there.
        l.admit(Some(id(99)), t + 10 * MS).unwrap();
        l.admit(Some(id(99)), t + 20 * MS).unwrap();
        assert_eq!(
            l.admit(Some(id(99)), t + 30 * MS).unwrap_err().scope,
            Scope::Caller
        );
        // A caller refused by its own bucket takes nothing from the node's.
        for _ in 0..10 {
            assert!(l.admit(Some(id(99)), t + 30 * MS).is_err());
        }
        l.admit(Some(id(7)), t + 30 * MS).unwrap();
    }

    #[test]
    fn the_caller_table_is_bounded_and_forgets_the_least_recent_caller() {
        let t = Instant::from_micros(1_000_000);
        let roomy = Limits {
            node: Rate::new(1000, MS),
            ..limits()
        };
        let mut l = Limiter::with_capacity("genome/package", roomy, 3, t);
        for n in 1..=3 {
            l.admit(Some(id(n)), t + u32::from(n) * MS).unwrap();
        }
        // id 1 is used again, so id 2 is now the least recent.
        l.admit(Some(id(1)), t + 5 * MS).unwrap();
        assert!(l.admit(Some(id(1)), t + 5 * MS).is_err(), "id 1 is spent");
        // A newcomer pushes out id 2; id 1 is kept (still spent), id 2 starts afresh.
        l.admit(Some(id(10)), t + 6 * MS).unwrap();
        assert!(l.admit(Some(id(1)), t + 6 * MS).is_err(), "id 1 was kept");
        l.admit(Some(id(2)), t + 6 * MS).unwrap();
        l.admit(Some(id(2)), t + 6 * MS).unwrap();
        assert_eq!(l.callers(), 3);
        for n in 11..=200 {
            l.admit(Some(id(n)), t + 6 * MS).unwrap();
            assert!(l.callers() <= 3);
        }
        assert_eq!(l.callers(), 3);
    }
}
