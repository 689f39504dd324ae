//! Entries kept from an earlier run go back in through the catalog's checks.

use super::*;
use crate::proto::gossip::{Restored, Stats};

fn tombstone(who: &Identity, name: &str, seq: u64) -> Entry {
    let mut r = record(name, seq, adapter(seq as u32));
    r.tombstone = true;
    Entry::sign(who, r).unwrap()
}

#[test]
fn restored_entries_meet_the_checks_of_entries_from_peers() {
    let (me, who, late) = (identity(0), identity(1), identity(2));
    let config = Config {
        catalog: Limits {
            per_publisher: 2,
            ..Limits::default()
        },
        ..Config::default()
    };
    let mut g = Gossip::new(me.public(), config, NOW, 1);
    let gone = tombstone(&who, "a", 2);
    let live = entry(&who, "a", 1);
    let b = entry(&who, "b", 1);
    let over = entry(&who, "c", 1);
    let mut r = record("x", 1, adapter(1));
    r.expires_ms = NOW.as_millis();
    let expired = Entry::sign(&late, r).unwrap();
    // The tombstone comes first: the live entry it withdrew stays out all the same.
    let stored = [
        gone.clone(),
        live.clone(),
        b.clone(),
        over.clone(),
        expired.clone(),
        b.clone(),
    ];
    let counts = g.restore_all(NOW, stored);
    assert_eq!(
        counts,
        Restored {
            stored: 2,
            known: 1,
            refused: 3,
        }
    );
    let c = g.catalog();
    assert!(c.contains(gone.digest()) && c.contains(b.digest()));
    for e in [&live, &over, &expired] {
        assert!(!c.contains(e.digest()), "{} restored", e.record().name);
    }
    assert!(
        c.by_name(who.public().as_bytes(), 1, "a").is_none(),
        "withdrawn"
    );
    assert_eq!(*g.stats(), Stats::default(), "not peer traffic");
}

#[test]
fn restored_own_entries_are_this_nodes_own_again() {
    let config = Config {
        catalog: Limits {
            max_entries: 1,
            ..Limits::default()
        },
        ..Config::default()
    };
    let mut net = Net::new(2, config);
    let mut r = record("mine", 1, adapter(1));
    r.expires_ms = NOW.as_millis() + 1_000;
    let mine = Entry::sign(&net.ids[0], r).unwrap();
    assert_eq!(net.nodes[0].restore_all(NOW, [mine.clone()]).stored, 1);
    // Full, and this node's entry expires sooner, but it is never the one evicted.
    let theirs = entry(&identity(1), "theirs", 1);
    assert_eq!(net.nodes[0].restore_all(NOW, [theirs]).refused, 1);
    assert!(net.nodes[0].catalog().contains(mine.digest()));
    // It spreads again with the next session.
    assert!(!net.nodes[1].catalog().contains(mine.digest()));
    net.session(0, 1);
    assert!(net.nodes[1].catalog().contains(mine.digest()));
}
