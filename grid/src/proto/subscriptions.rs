//! Who hears this node's events, and which progress reports it expects back.
//!
//! A peer subscribes with a `Subscribe` frame on a link it opened to this node; from then
//! on, every event this node emits that matches the pattern goes back on that link.
//! Subscriptions end with the link or an `Unsubscribe`. Every table here is bounded:
//! per link, per identity (so a few peers opening many links cannot take the table from
//! the others) and per node.
//!
//! Progress works the other way: a command sent on a link this node opened may report
//! progress back on it, and only such reports are taken ([`ProgressExpected`]).

use std::collections::{HashMap, VecDeque};

use rns_core::link::LinkId;
use rns_core::AddressHash;

use crate::frame::names;

/// Subscriptions one link may hold.
pub const PER_LINK: usize = 32;
/// Subscriptions one identity may hold across all its links.
pub const PER_IDENTITY: usize = 128;
/// Subscriptions the node holds in all.
pub const PER_NODE: usize = 4096;
/// Links on which progress of sent commands is expected, at most.
pub const PROGRESS_LINKS: usize = 4096;
/// Commands per link whose progress is expected (the latest are kept).
pub const PROGRESS_PER_LINK: usize = 256;

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The link holds [`PER_LINK`] subscriptions.
    #[error("too many subscriptions on this link (at most {PER_LINK})")]
    LinkFull,
    /// The subscriber's identity holds [`PER_IDENTITY`] subscriptions.
    #[error("too many subscriptions for this identity (at most {PER_IDENTITY})")]
    IdentityFull,
    /// The node holds [`PER_NODE`] subscriptions.
    #[error("this node holds too many subscriptions (at most {PER_NODE})")]
    NodeFull,
}

/// One subscription: the link it came on, who holds it, and the event pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subscription {
    link: LinkId,
    identity: Option<AddressHash>,
    pattern: String,
}

/// Remote subscriptions to this node's events.
#[derive(Debug, Default)]
pub struct Subscriptions {
    all: Vec<Subscription>,
}

impl Subscriptions {
    /// Subscribe `link` (whose remote end identified as `identity`, if it did) to events
    /// matching `pattern`. Subscribing again to the same pattern is a no-op.
    pub fn subscribe(
        &mut self,
        link: LinkId,
        identity: Option<AddressHash>,
        pattern: &str,
    ) -> Result<(), SubscribeError> {
        if self
            .all
            .iter()
            .any(|s| s.link == link && s.pattern == pattern)
        {
            return Ok(());
        }
        if self.all.iter().filter(|s| s.link == link).count() >= PER_LINK {
            return Err(SubscribeError::LinkFull);
        }
        if identity.is_some()
            && self.all.iter().filter(|s| s.identity == identity).count() >= PER_IDENTITY
        {
            return Err(SubscribeError::IdentityFull);
        }
        if self.all.len() >= PER_NODE {
            return Err(SubscribeError::NodeFull);
        }
        self.all.push(Subscription {
            link,
            identity,
            pattern: pattern.to_string(),
        });
        Ok(())
    }

    /// Drop `link`'s subscription to `pattern`, or all of its subscriptions (`None`, when
    /// the link closes).
    pub fn unsubscribe(&mut self, link: LinkId, pattern: Option<&str>) {
        self.all
            .retain(|s| !(s.link == link && pattern.is_none_or(|p| p == s.pattern)));
    }

    /// The links subscribed to `event`, each once.
    pub fn matching(&self, event: &str) -> Vec<LinkId> {
        let mut links: Vec<LinkId> = Vec::new();
        for s in self
            .all
            .iter()
            .filter(|s| names::matches(&s.pattern, event))
        {
            if !links.contains(&s.link) {
                links.push(s.link);
            }
        }
        links
    }

    /// How many subscriptions are held.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// Commands sent on links this node opened, whose progress reports may come back.
#[derive(Debug, Default)]
pub struct ProgressExpected {
    by_link: HashMap<LinkId, VecDeque<u64>>,
}

impl ProgressExpected {
    /// A command with `correlation` went out on `link`. Beyond [`PROGRESS_LINKS`] links
    /// nothing more is expected; beyond [`PROGRESS_PER_LINK`] the oldest is forgotten.
    pub fn expect(&mut self, link: LinkId, correlation: u64) {
        if !self.by_link.contains_key(&link) && self.by_link.len() >= PROGRESS_LINKS {
            return;
        }
        let list = self.by_link.entry(link).or_default();
        if list.len() >= PROGRESS_PER_LINK {
            list.pop_front();
        }
        list.push_back(correlation);
    }

    /// Whether progress for `correlation` may arrive on `link`.
    pub fn expected(&self, link: LinkId, correlation: u64) -> bool {
        self.by_link
            .get(&link)
            .is_some_and(|c| c.contains(&correlation))
    }

    /// The link closed.
    pub fn forget(&mut self, link: LinkId) {
        self.by_link.remove(&link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: u32) -> LinkId {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&n.to_be_bytes());
        rns_core::AddressHash(b)
    }

    fn id(n: u8) -> Option<AddressHash> {
        Some(AddressHash([n; 16]))
    }

    #[test]
    fn events_go_to_matching_links_once() {
        let mut s = Subscriptions::default();
        s.subscribe(link(1), id(1), "sensor:*").unwrap();
        s.subscribe(link(1), id(1), "sensor:temp").unwrap();
        s.subscribe(link(2), id(2), "other:*").unwrap();
        assert_eq!(s.matching("sensor:temp"), vec![link(1)]);
        assert_eq!(s.matching("other:x"), vec![link(2)]);
        assert!(s.matching("nothing").is_empty());
        s.subscribe(link(1), id(1), "sensor:*").unwrap();
        assert_eq!(s.len(), 3, "subscribing twice to a pattern keeps one");
        s.unsubscribe(link(1), Some("sensor:*"));
        assert_eq!(s.matching("sensor:temp"), vec![link(1)]);
        s.unsubscribe(link(1), None);
        assert!(s.matching("sensor:temp").is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn every_table_is_bounded() {
        let mut s = Subscriptions::default();
        for p in 0..PER_LINK {
            s.subscribe(link(1), id(1), &format!("e{p}")).unwrap();
        }
        assert_eq!(
            s.subscribe(link(1), id(1), "one-more"),
            Err(SubscribeError::LinkFull)
        );
        // One identity over many links.
        for l in 2..(PER_IDENTITY / PER_LINK) as u32 + 1 {
            for p in 0..PER_LINK {
                s.subscribe(link(l), id(1), &format!("e{p}")).unwrap();
            }
        }
        assert_eq!(
            s.subscribe(link(999), id(1), "x"),
            Err(SubscribeError::IdentityFull)
        );
        // Another identity still gets in; anonymous links are bounded per link and node.
        s.subscribe(link(1000), id(2), "x").unwrap();
        let mut n = 2000;
        while s.len() < PER_NODE {
            s.subscribe(link(n / PER_LINK as u32), None, &format!("p{n}"))
                .unwrap();
            n += 1;
        }
        assert_eq!(
            s.subscribe(link(u32::MAX), id(3), "x"),
            Err(SubscribeError::NodeFull)
        );
    }

    #[test]
    fn progress_is_expected_only_where_the_command_went() {
        let mut p = ProgressExpected::default();
        p.expect(link(1), 7);
        assert!(p.expected(link(1), 7));
        assert!(!p.expected(link(2), 7));
        assert!(!p.expected(link(1), 8));
        for c in 100..100 + PROGRESS_PER_LINK as u64 {
            p.expect(link(1), c);
        }
        assert!(!p.expected(link(1), 7), "the oldest is forgotten");
        p.forget(link(1));
        assert!(!p.expected(link(1), 100));
        for l in 0..PROGRESS_LINKS as u32 {
            p.expect(link(10_000 + l), 1);
        }
        p.expect(link(1), 1);
        assert!(
            !p.expected(link(1), 1),
            "beyond the link cap nothing is kept"
        );
    }
}
