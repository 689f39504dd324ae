//! Custody acceptance, without IO: which bundles handed to this node it takes, and how
//! much it holds for nodes it does not trust.
//!
//! A bundle handed over in an exchange is, in this order:
//! - refused when larger than the wire allows or already expired;
//! - **ours** when addressed to this node (opened and acted on);
//! - refused when this node is no custodian, or when it was pulled (a custodian hands
//!   over only bundles for the puller);
//! - refused when the caller did not identify (an anonymous caller may hand over only
//!   bundles for this node);
//! - **held** for a trusted caller, bounded by the store's quota only;
//! - **held** for a stranger when it lives no longer than the longest TTL held for
//!   strangers, then bounded by the stranger's share ([`within_share`], checked in the
//!   store's transaction, where the counts are).

use std::time::Duration;

use rns_core::AddressHash;

/// What strangers may have this node hold: each one's bundles and bytes, and all of
/// theirs together (the rest of the quota stays for this node's own bundles and its
/// trusted peers').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrangerLimits {
    /// Bundles one stranger may have held here.
    pub bundles: u64,
    /// Sealed bytes one stranger may have held here.
    pub bytes: u64,
    /// Sealed bytes all strangers together may have held here.
    pub total_bytes: u64,
}

/// This node's custody settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// This node's `grid.node` destination.
    pub me: AddressHash,
    /// Whether it holds bundles for other nodes.
    pub custody: bool,
    /// The longest a stranger's bundle may still live when handed over.
    pub stranger_max_ttl: Duration,
    /// The largest sealed bundle taken.
    pub max_sealed: usize,
}

/// A bundle as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Offered<'a> {
    /// Sealed bytes.
    pub sealed: &'a [u8],
    /// When it expires (wall clock, ms).
    pub expires_ms: u64,
    /// The node it is for.
    pub destination: [u8; 16],
}

/// Who handed the bundle over.
#[derive(Debug, Clone, Copy)]
pub struct Giver {
    /// Its identity, if it identified on the link.
    pub identity: Option<AddressHash>,
    /// Whether this node trusts it (at least `trusted`).
    pub trusted: bool,
}

/// What to do with a bundle handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Triage {
    /// For this node: open it and act on it.
    Ours,
    /// Hold it for its destination: for a trusted giver (`None`, bounded by the quota)
    /// or for a stranger (its identity hash, bounded by its share).
    Hold(Option<[u8; 16]>),
    /// Refuse it.
    Refuse(Refusal),
}

/// Why a bundle was not taken; the text goes back to the giver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Larger than the wire allows.
    #[error("too large")]
    TooLarge,
    /// Expired before it arrived.
    #[error("expired")]
    Expired,
    /// Not for this node, which holds no bundles for others (or it was pulled).
    #[error("not for this node, and this node holds no bundles for others")]
    NotCustodian,
    /// Handed over for another node by a caller that did not identify.
    #[error("identify on the link to hand over bundles for other nodes")]
    Anonymous,
    /// A stranger's bundle that lives too long.
    #[error("lives longer than this custodian holds bundles from nodes it does not trust ({})", humantime::format_duration(*.0))]
    LivesTooLong(Duration),
    /// Over a stranger's share.
    #[error("over the share of {what}: {used} used of {limit}")]
    StrangerShare {
        /// Which share.
        what: &'static str,
        /// Held now.
        used: u64,
        /// The share.
        limit: u64,
    },
}

/// Sort one bundle `b` handed over by `giver` at `now_ms` (wall clock); `pulled` when
/// this node pulled it from a custodian.
pub fn triage(policy: &Policy, now_ms: u64, b: Offered<'_>, giver: Giver, pulled: bool) -> Triage {
    if b.sealed.len() > policy.max_sealed {
        return Triage::Refuse(Refusal::TooLarge);
    }
    if b.expires_ms <= now_ms {
        return Triage::Refuse(Refusal::Expired);
    }
    if b.destination == policy.me.0 {
        return Triage::Ours;
    }
    if !policy.custody || pulled {
        return Triage::Refuse(Refusal::NotCustodian);
    }
    let Some(identity) = giver.identity else {
        return Triage::Refuse(Refusal::Anonymous);
    };
    if giver.trusted {
        return Triage::Hold(None);
    }
    let max = policy.stranger_max_ttl;
    if b.expires_ms > now_ms.saturating_add(max.as_millis() as u64) {
        return Triage::Refuse(Refusal::LivesTooLong(max));
    }
    Triage::Hold(Some(identity.0))
}

/// Whether a stranger holding `count` bundles of `bytes` here, with `all` bytes held for
/// all strangers, may leave one more of `size` bytes.
pub fn within_share(
    limits: &StrangerLimits,
    (count, bytes): (u64, u64),
    all: u64,
    size: u64,
) -> Result<(), Refusal> {
    let checks = [
        ("bundles of one stranger", count, 1, limits.bundles),
        ("bytes of one stranger", bytes, size, limits.bytes),
        ("bytes of all strangers", all, size, limits.total_bytes),
    ];
    for (what, used, add, limit) in checks {
        if used.saturating_add(add) > limit {
            return Err(Refusal::StrangerShare { what, used, limit });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const HOUR: u64 = 3_600_000;

    fn policy(custody: bool) -> Policy {
        Policy {
            me: AddressHash([1; 16]),
            custody,
            stranger_max_ttl: Duration::from_secs(24 * 3600),
            max_sealed: 1000,
        }
    }

    fn offered(sealed: &[u8], hours: u64, to: u8) -> Offered<'_> {
        Offered {
            sealed,
            expires_ms: NOW + hours * HOUR,
            destination: [to; 16],
        }
    }

    const STRANGER: Giver = Giver {
        identity: Some(AddressHash([5; 16])),
        trusted: false,
    };

    #[test]
    fn bundles_are_sorted_in_order() {
        let p = policy(true);
        let big = vec![0; 1001];
        assert_eq!(
            triage(&p, NOW, offered(&big, 1, 1), STRANGER, false),
            Triage::Refuse(Refusal::TooLarge)
        );
        assert_eq!(
            triage(&p, NOW, offered(b"x", 0, 1), STRANGER, false),
            Triage::Refuse(Refusal::Expired)
        );
        let anon = Giver {
            identity: None,
            trusted: false,
        };
        assert_eq!(
            triage(&p, NOW, offered(b"x", 1, 1), anon, false),
            Triage::Ours
        );
        assert_eq!(
            triage(&p, NOW, offered(b"x", 1, 2), anon, false),
            Triage::Refuse(Refusal::Anonymous)
        );
        assert_eq!(
            triage(&p, NOW, offered(b"x", 1, 2), STRANGER, true),
            Triage::Refuse(Refusal::NotCustodian)
        );
        assert_eq!(
            triage(&policy(false), NOW, offered(b"x", 1, 2), STRANGER, false),
            Triage::Refuse(Refusal::NotCustodian)
        );
        assert_eq!(
            triage(&p, NOW, offered(b"x", 1, 2), STRANGER, false),
            Triage::Hold(Some([5; 16]))
        );
        assert_eq!(
            triage(&p, NOW, offered(b"x", 25, 2), STRANGER, false),
            Triage::Refuse(Refusal::LivesTooLong(p.stranger_max_ttl))
        );
        let friend = Giver {
            trusted: true,
            ..STRANGER
        };
        assert_eq!(
            triage(&p, NOW, offered(b"x", 25 * 30, 2), friend, false),
            Triage::Hold(None)
        );
    }

    #[test]
    fn a_stranger_is_held_within_its_share_and_all_strangers_within_theirs() {
        let l = StrangerLimits {
            bundles: 2,
            bytes: 100,
            total_bytes: 150,
        };
        assert_eq!(within_share(&l, (0, 0), 0, 100), Ok(()));
        assert!(matches!(
            within_share(&l, (2, 10), 10, 1),
            Err(Refusal::StrangerShare {
                what: "bundles of one stranger",
                used: 2,
                limit: 2
            })
        ));
        assert!(matches!(
            within_share(&l, (1, 60), 60, 41),
            Err(Refusal::StrangerShare {
                what: "bytes of one stranger",
                ..
            })
        ));
        assert!(matches!(
            within_share(&l, (0, 0), 100, 51),
            Err(Refusal::StrangerShare {
                what: "bytes of all strangers",
                ..
            })
        ));
        assert_eq!(within_share(&l, (1, 50), 100, 50), Ok(()));
    }
}
