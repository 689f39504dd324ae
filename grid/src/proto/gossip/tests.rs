//! Catalog gossip between in-memory nodes: entries signed and checked, the catalog's
//! bounds, and reconciliation sessions driven message by message through the wire
//! encoding. (The simulator, `grid-netsim`, runs the same state machine on 100 nodes.)

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use rns_core::{Identity, Instant};

use super::catalog::{Catalog, CatalogError, Event, Inserted, Limits, Removal};
use super::entry::{Body, Entry, EntryError, Record, MAX_ENTRY};
use super::message::{Bound, Message, Mode, Range, MAX_ROUNDS};
use super::reconcile::{fingerprint, respond};
use super::{Config, Gossip, GossipError, Peer, LORA_BUDGET};
use crate::proto::flood::sketch::Sketch;

const NOW: Instant = Instant::from_secs(1_800_000_000);
const DAY_MS: u64 = 24 * 3600 * 1000;

fn identity(n: u32) -> Identity {
    let mut k = [0x11u8; 64];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k[32..36].copy_from_slice(&n.to_be_bytes());
    Identity::from_private_bytes(&k).unwrap()
}

fn record(name: &str, seq: u64, body: Body) -> Record {
    Record {
        seq,
        expires_ms: NOW.as_millis() + DAY_MS,
        tombstone: false,
        name: name.into(),
        summary: format!("what {name} does"),
        body,
    }
}

fn adapter(n: u32) -> Body {
    let mut s = [0u8; 48];
    s[..4].copy_from_slice(&n.to_be_bytes());
    Body::Adapter {
        content_hash: [n as u8; 32],
        sketch: Sketch(s),
        vector_hash: [!(n as u8); 16],
    }
}

fn entry(who: &Identity, name: &str, seq: u64) -> Entry {
    Entry::sign(who, record(name, seq, adapter(seq as u32))).unwrap()
}

#[test]
fn entries_round_trip_and_any_changed_byte_is_refused() {
    let who = identity(1);
    let bodies = [
        adapter(7),
        Body::Command {
            sketch: Sketch([0xa5; 48]),
        },
        Body::Compute {
            ram_mb: 8192,
            gpu_mb: 0,
            load_pct: 35,
        },
    ];
    for body in bodies {
        let e = Entry::sign(&who, record("summarise", 3, body)).unwrap();
        assert!(e.bytes().len() <= MAX_ENTRY);
        let back = Entry::decode(e.bytes()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.record().body, body);
        for i in 0..e.bytes().len() {
            let mut b = e.bytes().to_vec();
            b[i] ^= 0x01;
            assert!(
                Entry::decode(&b).is_err(),
                "byte {i} changed, still accepted"
            );
        }
    }
}

#[test]
fn entries_with_bad_fields_are_refused_before_the_signature() {
    let who = identity(1);
    let e = entry(&who, "a", 1);
    let b = e.bytes();
    assert_eq!(Entry::decode(&b[..b.len() - 1]), Err(EntryError::Truncated));
    let mut long = b.to_vec();
    long.push(0);
    assert_eq!(Entry::decode(&long), Err(EntryError::Trailing(1)));
    let mut v = b.to_vec();
    v[0] = 2;
    assert_eq!(Entry::decode(&v), Err(EntryError::Version(2)));
    v = b.to_vec();
    v[1] = 9;
    assert_eq!(Entry::decode(&v), Err(EntryError::Kind(9)));
    v = b.to_vec();
    v[82] = 0x02;
    assert_eq!(Entry::decode(&v), Err(EntryError::Flags(2)));
    let too_long = record(&"n".repeat(65), 1, adapter(1));
    assert!(matches!(
        Entry::sign(&who, too_long),
        Err(EntryError::Length { field: "name", .. })
    ));
    let mut bad_load = record("c", 1, adapter(1));
    bad_load.body = Body::Compute {
        ram_mb: 1,
        gpu_mb: 1,
        load_pct: 101,
    };
    assert_eq!(Entry::sign(&who, bad_load), Err(EntryError::Load(101)));
    // Re-signed by someone else but claiming the first publisher: refused.
    let other = identity(2);
    let mut forged = b.to_vec();
    let n = forged.len();
    let mut signed = super::entry::DOMAIN.to_vec();
    signed.extend_from_slice(&forged[..n - 64]);
    forged[n - 64..].copy_from_slice(&other.sign(&signed));
    assert_eq!(Entry::decode(&forged), Err(EntryError::Signature));
}

fn catalog(own: &Identity, limits: Limits) -> Catalog {
    Catalog::new(*own.public().as_bytes(), limits)
}

#[test]
fn a_higher_seq_replaces_and_a_lower_one_is_stale() {
    let (me, who) = (identity(0), identity(1));
    let mut c = catalog(&me, Limits::default());
    let now = NOW.as_millis();
    let (e1, e2) = (entry(&who, "a", 1), entry(&who, "a", 2));
    assert_eq!(c.insert(now, e1.clone()), Ok(Inserted::New));
    assert_eq!(c.insert(now, e1.clone()), Ok(Inserted::Known));
    assert_eq!(c.insert(now, e2.clone()), Ok(Inserted::New));
    assert_eq!(c.len(), 1);
    assert_eq!(
        c.insert(now, e1.clone()),
        Err(CatalogError::Stale { held: 2, got: 1 })
    );
    assert_eq!(c.poll_event(), Some(Event::Added(*e1.digest())));
    assert_eq!(
        c.poll_event(),
        Some(Event::Replaced {
            old: *e1.digest(),
            new: *e2.digest()
        })
    );
    assert_eq!(c.by_name(who.public().as_bytes(), 1, "a"), Some(&e2));
}

#[test]
fn a_tombstone_keeps_a_withdrawn_entry_from_coming_back() {
    let (me, who) = (identity(0), identity(1));
    let mut c = catalog(&me, Limits::default());
    let now = NOW.as_millis();
    let live = entry(&who, "a", 1);
    let mut r = record("a", 2, adapter(1));
    r.tombstone = true;
    let gone = Entry::sign(&who, r).unwrap();
    c.insert(now, live.clone()).unwrap();
    c.insert(now, gone.clone()).unwrap();
    assert!(c.by_name(who.public().as_bytes(), 1, "a").is_none());
    assert!(c.insert(now, live.clone()).is_err(), "resurrected");
    assert!(c.contains(gone.digest()));
    // A stale peer still holding the live entry: a session leaves both withdrawn.
    let mut net = Net::new(2, Config::default());
    net.nodes[0].restore(NOW, gone.clone()).unwrap();
    net.nodes[1].restore(NOW, live.clone()).unwrap();
    net.session(0, 1);
    for n in &net.nodes {
        assert!(n.catalog().contains(gone.digest()));
        assert!(!n.catalog().contains(live.digest()));
    }
    // It goes when it expires.
    assert_eq!(c.sweep(now + DAY_MS), 1);
    assert!(c.is_empty());
}

#[test]
fn the_catalog_refuses_what_is_out_of_bounds() {
    let (me, who) = (identity(0), identity(1));
    let now = NOW.as_millis();
    let mut c = catalog(&me, Limits::default());
    let mut r = record("old", 1, adapter(1));
    r.expires_ms = now;
    let e = Entry::sign(&who, r).unwrap();
    assert_eq!(c.insert(now, e), Err(CatalogError::Expired));
    let mut r = record("far", 1, adapter(1));
    r.expires_ms = now + 7 * DAY_MS + 2 * 3600 * 1000 + 1;
    let e = Entry::sign(&who, r).unwrap();
    assert_eq!(c.insert(now, e), Err(CatalogError::TooLong));
    let mut r = record("near", 1, adapter(1));
    r.expires_ms = now + 7 * DAY_MS + 2 * 3600 * 1000;
    c.insert(now, Entry::sign(&who, r).unwrap()).unwrap();
    let limits = Limits {
        per_publisher: 3,
        ..Limits::default()
    };
    let mut c = catalog(&me, limits);
    for i in 0..3 {
        c.insert(now, entry(&who, &format!("e{i}"), 1)).unwrap();
    }
    assert_eq!(
        c.insert(now, entry(&who, "e3", 1)),
        Err(CatalogError::PublisherFull(3))
    );
    // Replacing one of its own is still allowed.
    c.insert(now, entry(&who, "e0", 2)).unwrap();
}

#[test]
fn a_full_catalog_evicts_the_soonest_to_expire_but_never_its_own() {
    let me = identity(0);
    let now = NOW.as_millis();
    let limits = Limits {
        max_entries: 4,
        ..Limits::default()
    };
    let mut c = catalog(&me, limits);
    let at = |who: &Identity, name: &str, hours: u64| {
        let mut r = record(name, 1, adapter(1));
        r.expires_ms = now + hours * 3600 * 1000;
        Entry::sign(who, r).unwrap()
    };
    let mine = at(&me, "mine", 1); // expires first, but is ours
    let soon = at(&identity(1), "soon", 2);
    let later = at(&identity(2), "later", 5);
    let latest = at(&identity(3), "latest", 9);
    for e in [&mine, &soon, &later, &latest] {
        c.insert(now, e.clone()).unwrap();
    }
    while c.poll_event().is_some() {}
    let newer = at(&identity(4), "newer", 6);
    c.insert(now, newer.clone()).unwrap();
    assert!(!c.contains(soon.digest()), "the soonest not ours goes");
    assert!(c.contains(mine.digest()));
    assert_eq!(
        c.poll_event(),
        Some(Event::Removed {
            digest: *soon.digest(),
            why: Removal::Evicted
        })
    );
    // A newcomer expiring before anything evictable is the one refused.
    let brief = at(&identity(5), "brief", 3);
    assert_eq!(c.insert(now, brief), Err(CatalogError::Full(4)));
    // Our own always find room.
    c.insert(now, at(&me, "mine2", 1)).unwrap();
    assert!(!c.contains(later.digest()));
    assert_eq!(c.len(), 4);
}

/// Nodes that all neighbour each other; messages go through their wire encoding.
struct Net {
    nodes: Vec<Gossip>,
    ids: Vec<Identity>,
    index: HashMap<Peer, usize>,
    now: Instant,
    messages: u64,
    bytes: u64,
    largest: usize,
    rounds: u8,
}

impl Net {
    fn new(n: usize, config: Config) -> Net {
        let ids: Vec<Identity> = (0..n as u32).map(|i| identity(100 + i)).collect();
        let mut nodes: Vec<Gossip> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Gossip::new(id.public(), config, NOW, i as u64))
            .collect();
        let peers: Vec<Peer> = nodes.iter().map(|g| *g.own()).collect();
        for g in &mut nodes {
            for p in &peers {
                g.add_neighbour(*p).unwrap();
            }
        }
        Net {
            index: peers.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
            nodes,
            ids,
            now: NOW,
            messages: 0,
            bytes: 0,
            largest: 0,
            rounds: 0,
        }
    }

    /// Deliver until nothing is left to send.
    fn run(&mut self) {
        loop {
            let mut sent = Vec::new();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while let Some(t) = n.poll_transmit() {
                    sent.push((i, t));
                }
            }
            if sent.is_empty() {
                return;
            }
            self.now = self.now + Duration::from_millis(50);
            for (from, t) in sent {
                let bytes = t.message.encode();
                assert_eq!(bytes.len(), t.message.wire_len());
                self.messages += 1;
                self.bytes += bytes.len() as u64;
                self.largest = self.largest.max(bytes.len());
                let m = Message::decode(&bytes).unwrap();
                self.rounds = self.rounds.max(m.round + 1);
                let to = self.index[&t.to];
                let own = *self.nodes[from].own();
                self.nodes[to].handle(self.now, own, m);
            }
        }
    }

    fn session(&mut self, a: usize, b: usize) {
        let peer = *self.nodes[b].own();
        assert!(self.nodes[a].sync_with(peer));
        self.run();
    }

    fn digests(&self, i: usize) -> Vec<[u8; 16]> {
        self.nodes[i].catalog().entries().keys().copied().collect()
    }
}

/// Two nodes sharing `common` entries, each with `k` the other lacks; the bytes of
/// every entry both hold at the end.
fn diverged(net: &mut Net, common: usize, k: usize) -> u64 {
    let publishers: Vec<Identity> = (0..20).map(identity).collect();
    let mut all = 0;
    for i in 0..common + 2 * k {
        let e = entry(&publishers[i % 20], &format!("skill-{i}"), 1);
        all += e.bytes().len() as u64;
        if i < common + k {
            net.nodes[0].restore(NOW, e.clone()).unwrap();
        }
        if i < common || i >= common + k {
            net.nodes[1].restore(NOW, e).unwrap();
        }
    }
    all
}

#[test]
fn catalogs_differing_in_a_few_entries_converge_in_one_session_for_a_fraction_of_the_bytes() {
    let mut net = Net::new(2, Config::default());
    let all = diverged(&mut net, 1_000, 10);
    assert_ne!(net.digests(0), net.digests(1));
    net.session(0, 1);
    assert_eq!(net.digests(0), net.digests(1));
    assert_eq!(net.nodes[0].catalog().len(), 1_020);
    assert!(net.rounds <= 7, "{} rounds", net.rounds);
    assert!(
        net.bytes * 10 < all,
        "{} bytes against {all} for sending everything",
        net.bytes
    );
    let moved = net.nodes[0].stats().entries_sent + net.nodes[1].stats().entries_sent;
    assert_eq!(moved, 20, "only the missing entries travel");
    // In sync now: a session is one message of 29 bytes, whose fingerprint matches.
    let (bytes, messages) = (net.bytes, net.messages);
    net.session(1, 0);
    assert_eq!((net.bytes - bytes, net.messages - messages), (29, 1));
}

#[test]
fn a_lora_sized_budget_still_converges() {
    let mut net = Net::new(2, Config::lora());
    diverged(&mut net, 300, 12);
    let mut sessions = 0;
    while net.digests(0) != net.digests(1) {
        sessions += 1;
        // One entry a message at this budget: a few sessions of 16 rounds.
        assert!(sessions <= 8, "not converged after 8 sessions");
        net.session(sessions % 2, 1 - sessions % 2);
    }
    assert_eq!(net.nodes[1].catalog().len(), 324);
    // Every message within the budget (these entries are under it, so none goes alone).
    assert!(net.largest <= LORA_BUDGET, "{}", net.largest);
    assert!(net.rounds <= MAX_ROUNDS);
}

#[test]
fn small_and_empty_catalogs_reconcile() {
    let mut net = Net::new(2, Config::default());
    net.session(0, 1);
    assert_eq!(net.messages, 1, "two empty catalogs: one message");
    diverged(&mut net, 3, 2);
    net.session(1, 0);
    assert_eq!(net.digests(0), net.digests(1));
    assert_eq!(net.digests(0).len(), 7);
}

#[test]
fn a_neighbour_flooding_sessions_is_rate_limited() {
    let mut net = Net::new(2, Config::default());
    diverged(&mut net, 40, 0);
    let flooder = *net.nodes[1].own();
    for s in 0..100 {
        let m = Message {
            session: s,
            ranges: super::reconcile::initiate(net.nodes[1].catalog().entries()),
            ..Message::default()
        };
        net.nodes[0].handle(NOW, flooder, m);
    }
    let st = *net.nodes[0].stats();
    assert_eq!(st.sessions_answered, 4, "{st:?}");
    assert_eq!(st.rate_limited, 96);
    // Later rounds are bounded too.
    for s in 0..100 {
        let m = Message {
            session: s,
            round: 2,
            wants: vec![[7; 16]],
            ..Message::default()
        };
        net.nodes[0].handle(NOW, flooder, m);
    }
    assert!(net.nodes[0].stats().messages_received <= 40);
    // A session at its last round is not answered, whatever round a message claims.
    let mut q = Net::new(2, Config::default());
    diverged(&mut q, 40, 0);
    for round in [MAX_ROUNDS - 1, u8::MAX] {
        let m = Message {
            round,
            ranges: super::reconcile::initiate(q.nodes[1].catalog().entries()),
            ..Message::default()
        };
        let from = *q.nodes[1].own();
        q.nodes[0].handle(NOW, from, m);
    }
    assert_eq!(q.nodes[0].stats().rounds_cut, 2);
    assert_eq!(q.nodes[0].stats().messages_sent, 0);
    // A stranger is not answered at all.
    net.nodes[0].handle(NOW, [9; 16], Message::default());
    assert_eq!(net.nodes[0].stats().strangers, 1);
}

#[test]
fn a_forged_entry_is_refused_and_not_stored() {
    let mut net = Net::new(2, Config::default());
    let who = identity(1);
    let e = entry(&who, "honest", 1);
    let mut forged = e.bytes().to_vec();
    let at = forged.len() - 64 - 96 - 10; // inside the summary
    forged[at] ^= 0x20;
    let from = *net.nodes[1].own();
    let m = Message {
        session: 1,
        round: 1,
        entries: vec![forged, vec![1, 2, 3], e.bytes().to_vec()],
        ..Message::default()
    };
    net.nodes[0].handle(NOW, from, m);
    let st = net.nodes[0].stats();
    assert_eq!(st.entries_forged, 2);
    assert_eq!(
        st.entries_stored, 1,
        "the honest one in the same message is kept"
    );
    assert_eq!(net.nodes[0].catalog().len(), 1);
    // Nobody publishes in another's name.
    let theirs = entry(&net.ids[1], "x", 1);
    assert_eq!(net.nodes[0].publish(NOW, theirs), Err(GossipError::NotOwn));
}

#[test]
fn published_entries_spread_on_the_interval_and_expire() {
    let mut net = Net::new(5, Config::default());
    let mine = entry(&net.ids[0], "mine", 1);
    net.nodes[0].publish(NOW, mine.clone()).unwrap();
    for _ in 0..6 {
        let t = net
            .nodes
            .iter()
            .filter_map(|n| n.poll_timeout())
            .min()
            .unwrap();
        assert!(t <= net.now + Duration::from_secs(30));
        net.now = net.now.max(t);
        let now = net.now;
        for n in &mut net.nodes {
            n.handle_timeout(now);
        }
        net.run();
    }
    assert!(net
        .nodes
        .iter()
        .all(|n| n.catalog().contains(mine.digest())));
    let later = Instant::from_millis(mine.expires_ms() + 1);
    net.nodes[3].handle_timeout(later);
    assert!(net.nodes[3].catalog().is_empty());
    let mut events = Vec::new();
    while let Some(e) = net.nodes[3].poll_event() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![
            Event::Added(*mine.digest()),
            Event::Removed {
                digest: *mine.digest(),
                why: Removal::Expired
            }
        ]
    );
}

#[test]
fn fingerprints_depend_on_the_set_only() {
    let a = [[1u8; 16], [2; 16], [3; 16]];
    let b = [[3u8; 16], [1; 16], [2; 16]];
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_ne!(fingerprint(&a), fingerprint(&a[..2]));
    assert_ne!(fingerprint(&[]), fingerprint(&[[0; 16]]));
}

#[test]
fn malformed_messages_are_refused() {
    let m = Message {
        session: 5,
        round: 3,
        ranges: vec![
            Range {
                upper: Bound::Below([5; 16]),
                mode: Mode::Skip,
            },
            Range {
                upper: Bound::End,
                mode: Mode::IdList(vec![[6; 16]]),
            },
        ],
        entries: vec![vec![1, 2]],
        wants: vec![[9; 16]],
    };
    let b = m.encode();
    assert_eq!(Message::decode(&b).unwrap(), m);
    let mut bad = b.clone();
    bad[5] = MAX_ROUNDS;
    assert!(Message::decode(&bad).is_err());
    let swapped = Message {
        ranges: vec![m.ranges[1].clone(), m.ranges[0].clone()],
        ..m.clone()
    };
    assert!(
        Message::decode(&swapped.encode()).is_err(),
        "bounds out of order"
    );
    assert!(Message::decode(&b[..b.len() - 1]).is_err());
    let mut long = b;
    long.push(0);
    assert!(Message::decode(&long).is_err());
}

proptest! {
    #[test]
    fn a_short_bound_still_separates_two_digests(a in any::<[u8; 16]>(), b in any::<[u8; 16]>()) {
        prop_assume!(a != b);
        let (lo, hi) = (a.min(b), a.max(b));
        let Bound::Below(d) = Bound::between(&lo, &hi) else {
            panic!("a bound below");
        };
        prop_assert!(lo < d && d <= hi);
        let m = Message {
            ranges: vec![Range { upper: Bound::Below(d), mode: Mode::Skip }],
            ..Message::default()
        };
        let back = Message::decode(&m.encode()).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(m.encode().len(), m.wire_len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = Message::decode(&bytes);
        let _ = Entry::decode(&bytes);
    }

    #[test]
    fn replies_to_arbitrary_ranges_never_panic_and_fit(
        bounds in proptest::collection::vec(any::<[u8; 16]>(), 0..40),
        modes in proptest::collection::vec(0u8..3, 40),
        budget in 0usize..3000,
    ) {
        let mut bounds = bounds;
        bounds.sort_unstable();
        bounds.dedup();
        let ranges: Vec<Range> = bounds
            .iter()
            .zip(&modes)
            .map(|(b, m)| Range {
                upper: Bound::Below(*b),
                mode: match m {
                    0 => Mode::Skip,
                    1 => Mode::Fingerprint(*b),
                    _ => Mode::IdList(vec![*b]),
                },
            })
            .collect();
        let who = identity(1);
        let mut c = catalog(&who, Limits::default());
        for i in 0..40 {
            c.insert(NOW.as_millis(), entry(&who, &format!("p{i}"), 1)).unwrap();
        }
        let held = *c.entries().keys().nth(usize::from(modes[0]) * 7).unwrap();
        let reply = respond(c.entries(), &ranges, &[[3; 16], held], budget);
        let m = Message {
            entries: reply.give.iter().map(|d| c.get(d).unwrap().bytes().to_vec()).collect(),
            ranges: reply.ranges,
            wants: reply.wants,
            ..Message::default()
        };
        prop_assert!(Message::decode(&m.encode()).is_ok());
        // Within the budget, but for one entry alone and the range that says where to go on.
        let alone = super::message::EMPTY_LEN + 2 + MAX_ENTRY + 17;
        prop_assert!(m.wire_len() <= budget.max(alone), "{} > {budget}", m.wire_len());
    }
}

mod radio;
mod restore;

/// A driver that carries gossip on request/response takes a request's answer out of the
/// queue with `handle_request`: the next round of that session to that neighbour, and
/// nothing else; a session carried that way converges as one carried message by message.
#[test]
fn handle_request_takes_out_the_same_sessions_next_round_only() {
    let mut net = Net::new(2, Config::default());
    let mine = entry(&net.ids[0], "mine", 1);
    let theirs = entry(&net.ids[1], "theirs", 1);
    net.nodes[0].restore(NOW, mine).unwrap();
    net.nodes[1].restore(NOW, theirs).unwrap();
    let (a, b) = (*net.nodes[0].own(), *net.nodes[1].own());
    assert!(net.nodes[0].sync_with(b));
    let mut request = net.nodes[0].poll_transmit().map(|t| t.message);
    let mut exchanges = 0;
    // Request to B, answer back to A as the response, A's next round as a new request.
    while let Some(m) = request.take() {
        exchanges += 1;
        assert!(exchanges < 16, "the session ends");
        let session = m.session;
        let answer = net.nodes[1].handle_request(NOW, a, m);
        assert!(
            net.nodes[1].poll_transmit().is_none(),
            "only the answer was queued"
        );
        if let Some(answer) = answer {
            assert_eq!(answer.session, session);
            net.nodes[0].handle(NOW, b, answer);
            request = net.nodes[0].poll_transmit().map(|t| t.message);
        }
    }
    assert_eq!(net.digests(0).len(), 2);
    assert_eq!(net.digests(1).len(), 2);
    // A message of an unknown session from a stranger is answered with nothing.
    assert!(net.nodes[0].sync_with(b));
    let m = net.nodes[0].poll_transmit().unwrap().message;
    assert!(net.nodes[1].handle_request(NOW, [9u8; 16], m).is_none());
}
