//! The flood search on small in-memory graphs: messages delivered between neighbours
//! after a fixed latency on a virtual clock. (The simulator, `grid-netsim`, runs the same
//! state machine on a thousand nodes.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rns_core::Instant;

use super::message::{Body, Hit, Message, QueryId, Search};
use super::sketch::{Item, Query, Sketch, SKETCH_LEN};
use super::{Config, Ended, Event, Flood, FloodError, Ladder, Outcome, Patience, Peer};
use crate::proto::rate_limit::{Limits, Rate};

const LATENCY: Duration = Duration::from_millis(40);

fn peer(n: usize) -> Peer {
    let mut p = [0x5a; 16];
    p[..4].copy_from_slice(&(n as u32).to_be_bytes());
    p
}

fn sketch(n: u8) -> Sketch {
    let mut s = [0u8; SKETCH_LEN];
    for (i, b) in s.iter_mut().enumerate() {
        *b = n
            .wrapping_mul(37)
            .wrapping_add(i as u8)
            .rotate_left(u32::from(n % 7));
    }
    Sketch(s)
}

fn item(n: u8) -> Item {
    Item {
        id: [n; 16],
        sketch: sketch(n),
        topic: None,
    }
}

fn query_for(n: u8) -> Query {
    Query {
        sketch: Some(sketch(n)),
        topic: None,
        threshold: 300,
    }
}

type InFlight = Reverse<(Instant, u64, usize, usize, Vec<u8>)>;

struct Net {
    now: Instant,
    nodes: Vec<Flood>,
    index: HashMap<Peer, usize>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    queries_sent: u64,
    answers_sent: u64,
    returns_sent: u64,
    done: HashMap<(usize, QueryId), Outcome>,
}

impl Net {
    /// `n` nodes joined by `edges`.
    fn new(n: usize, edges: &[(usize, usize)], config: Config) -> Net {
        let now = Instant::from_secs(1);
        let mut nodes: Vec<Flood> = (0..n)
            .map(|i| Flood::new(peer(i), config, now, i as u64 + 11))
            .collect();
        for (a, b) in edges {
            nodes[*a].add_neighbour(peer(*b)).unwrap();
            nodes[*b].add_neighbour(peer(*a)).unwrap();
        }
        Net {
            now,
            index: (0..n).map(|i| (peer(i), i)).collect(),
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            queries_sent: 0,
            answers_sent: 0,
            returns_sent: 0,
            done: HashMap::new(),
        }
    }

    fn line(n: usize) -> Net {
        let edges: Vec<_> = (1..n).map(|i| (i - 1, i)).collect();
        Net::new(n, &edges, Config::default())
    }

    fn complete(n: usize) -> Net {
        let mut edges = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                edges.push((a, b));
            }
        }
        let config = Config {
            max_neighbours: n,
            ..Config::default()
        };
        Net::new(n, &edges, config)
    }

    fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            match t.message.body {
                Body::Query(_) => self.queries_sent += 1,
                Body::Answer { .. } => self.answers_sent += 1,
                Body::Return { .. } => self.returns_sent += 1,
            }
            let to = self.index[&t.to];
            self.seq += 1;
            self.queue.push(Reverse((
                self.now + LATENCY,
                self.seq,
                i,
                to,
                t.message.encode(),
            )));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            if let Event::Done { id, outcome } = e {
                self.done.insert((i, id), outcome);
            }
        }
    }

    fn search(&mut self, at: usize, id: u8, query: Query, ladder: Ladder, want: u8) {
        let now = self.now;
        self.nodes[at]
            .search_with(now, [id; 16], query, ladder, want)
            .unwrap();
        self.flush(at);
    }

    fn run(&mut self, for_: Duration) {
        let end = self.now + for_;
        loop {
            let msg = self.queue.peek().map(|Reverse((t, ..))| *t);
            let timer = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.poll_timeout().map(|t| (t, i)))
                .min();
            let next = match (msg, timer) {
                (Some(m), Some((t, _))) => m.min(t),
                (Some(m), None) => m,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = next;
            if msg == Some(next) {
                let Reverse((_, _, from, to, bytes)) = self.queue.pop().unwrap();
                let m = Message::decode(&bytes).unwrap();
                let now = self.now;
                self.nodes[to].handle(now, peer(from), m);
                self.flush(to);
            } else if let Some((_, i)) = timer {
                let now = self.now;
                self.nodes[i].handle_timeout(now);
                self.flush(i);
            }
        }
        self.now = end;
    }
}

fn ladder(ttl: u8, budget: u16) -> Ladder {
    Ladder {
        ttl,
        fanout: 3,
        time: Duration::from_secs(5),
        budget,
    }
}

#[test]
fn a_search_finds_an_item_hops_away_and_the_answer_comes_back_the_way_it_went() {
    let mut net = Net::line(8);
    net.nodes[5].add_item(item(1)).unwrap();
    net.search(0, 1, query_for(1), ladder(10, 100), 1);
    net.run(Duration::from_secs(10));
    let outcome = &net.done[&(0, [1; 16])];
    assert_eq!(outcome.ended, Ended::Enough);
    assert_eq!(outcome.found.len(), 1);
    let f = outcome.found[0];
    assert_eq!(
        (f.hit.item, f.hit.holder, f.hit.score),
        ([1; 16], peer(5), 384)
    );
    assert_eq!(f.hops, 5);
    // Out and back over five hops.
    assert_eq!(f.after, LATENCY * 10);
    // Node 5 answered with all that was wanted, so it did not forward: 5 queries out,
    // 5 answer messages back.
    assert_eq!((net.queries_sent, net.answers_sent), (5, 5));
}

#[test]
fn the_local_catalog_answers_first_and_nothing_is_sent() {
    let mut net = Net::line(3);
    net.nodes[0].add_item(item(2)).unwrap();
    net.search(0, 9, query_for(2), ladder(10, 100), 1);
    let outcome = &net.done[&(0, [9; 16])];
    assert_eq!(outcome.ended, Ended::Enough);
    assert_eq!(outcome.found[0].hops, 0);
    assert_eq!(net.queries_sent, 0);
    assert_eq!(net.nodes[0].searches(), 0);
}

#[test]
fn the_ttl_bounds_how_far_a_query_goes_and_the_search_times_out() {
    let mut net = Net::line(14);
    net.nodes[12].add_item(item(3)).unwrap();
    net.search(0, 3, query_for(3), ladder(10, 1000), 1);
    net.run(Duration::from_secs(10));
    let outcome = &net.done[&(0, [3; 16])];
    assert_eq!(outcome.ended, Ended::TimedOut);
    assert!(outcome.found.is_empty());
    assert_eq!(outcome.elapsed, Duration::from_secs(5));
    assert_eq!(net.queries_sent, 10, "nodes 1 to 10 and no further");
    assert!(net.nodes[11].seen().is_empty());
}

#[test]
fn the_message_budget_bounds_a_query_on_a_dense_graph_and_duplicates_stop() {
    let mut net = Net::complete(40);
    // Nobody has it: the query goes as far as it may.
    net.search(0, 4, query_for(4), ladder(10, 60), 1);
    net.run(Duration::from_secs(10));
    assert!(net.queries_sent <= 60, "{} queries", net.queries_sent);
    assert!(
        net.queries_sent >= 55,
        "the budget is spent, not lost at duplicates"
    );
    let dups: u64 = net.nodes.iter().map(|n| n.stats().duplicates).sum();
    let first: u64 = net.nodes.iter().map(|n| n.stats().queries).sum();
    assert_eq!(
        first + dups,
        net.queries_sent,
        "each query handled or dropped once"
    );
    assert!(first <= 39);
    // A duplicate's budget went on to nodes not yet reached: most of them are.
    assert!(first >= 25, "{first} of 39 reached");
    // No node sent the query to the same neighbour twice.
    for n in &net.nodes {
        assert!(n.stats().forwarded <= 39, "{:?}", n.stats());
    }
    // With the whole budget of the exhaustive level, everyone is reached.
    net.search(0, 5, query_for(5), Patience::Exhaustive.ladder(), 1);
    net.run(Duration::from_secs(40));
    let reached = net
        .nodes
        .iter()
        .filter(|n| n.seen().contains(&[5; 16]))
        .count();
    assert!(reached >= 38, "{reached} of 40 reached");
}

#[test]
fn a_relay_passes_back_no_more_than_the_origin_wants() {
    // A star: node 0 asks node 1, behind which nodes 2..6 all hold the item.
    let edges = [(0, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6)];
    let config = Config {
        max_fanout: 5,
        ..Config::default()
    };
    let mut net = Net::new(7, &edges, config);
    for n in 2..7 {
        net.nodes[n].add_item(item(6)).unwrap();
    }
    let l = Ladder {
        fanout: 5,
        ..ladder(3, 100)
    };
    net.search(0, 6, query_for(6), l, 2);
    net.run(Duration::from_secs(10));
    let outcome = &net.done[&(0, [6; 16])];
    assert_eq!(outcome.found.len(), 2);
    // Five answers reached node 1; it passed two.
    assert_eq!(net.nodes[1].stats().answers_dropped, 3);
    assert_eq!(net.answers_sent, 5 + 2);
}

#[test]
fn hits_below_the_threshold_or_repeated_are_not_taken() {
    let mut net = Net::line(2);
    let now = net.now;
    net.nodes[0]
        .search_with(now, [8; 16], query_for(8), ladder(2, 10), 3)
        .unwrap();
    let t = net.nodes[0].poll_transmit().unwrap();
    assert_eq!(t.to, peer(1));
    let hit = |score| Hit {
        item: [8; 16],
        holder: peer(1),
        score,
    };
    let answer = Message {
        id: [8; 16],
        body: Body::Answer {
            hops: 1,
            hits: vec![hit(10), hit(384), hit(384)],
        },
    };
    net.nodes[0].handle(now, peer(1), answer);
    assert_eq!(net.nodes[0].stats().hits_dropped, 2);
    assert_eq!(net.nodes[0].searches(), 1, "one of three found");
}

// --- attacks -----------------------------------------------------------------------

fn a_query(id: QueryId) -> Message {
    Message {
        id,
        body: Body::Query(Search {
            ttl: 10,
            fanout: 3,
            hops: 1,
            budget: 100,
            want: 1,
            query: query_for(1),
            top_up: false,
        }),
    }
}

#[test]
fn a_neighbour_flooding_queries_is_rate_limited() {
    let now = Instant::from_secs(1);
    let mut a = Flood::new(peer(0), Config::default(), now, 1);
    for n in 1..=4 {
        a.add_neighbour(peer(n)).unwrap();
    }
    for i in 0..100u32 {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        a.handle(now, peer(1), a_query(id));
    }
    assert_eq!(a.stats().queries, 20, "a burst of 20");
    assert_eq!(a.stats().rate_limited, 80);
    // Only what was admitted was forwarded: 3 each.
    let mut sent = 0;
    while let Some(t) = a.poll_transmit() {
        assert_ne!(t.to, peer(1), "never back to the sender");
        sent += 1;
    }
    assert_eq!(sent, 60);
    // Another neighbour is not held back by the first.
    a.handle(now, peer(2), a_query([0xee; 16]));
    assert_eq!(a.stats().queries, 21);
    // A second later, ten more from the flooder.
    let later = now + Duration::from_secs(1);
    for i in 100..130u32 {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        a.handle(later, peer(1), a_query(id));
    }
    assert_eq!(a.stats().queries, 31);
}

#[test]
fn a_forged_answer_for_a_query_never_forwarded_to_its_sender_is_dropped() {
    let now = Instant::from_secs(1);
    let mut a = Flood::new(peer(0), Config::default(), now, 1);
    for n in 1..=5 {
        a.add_neighbour(peer(n)).unwrap();
    }
    // A query from 1, forwarded to three of 2..=5.
    a.handle(now, peer(1), a_query([1; 16]));
    let sent: Vec<Peer> = std::iter::from_fn(|| a.poll_transmit())
        .map(|t| t.to)
        .collect();
    assert_eq!(sent.len(), 3);
    let left_out = (2..=5).map(peer).find(|p| !sent.contains(p)).unwrap();
    let answer = |id| Message {
        id,
        body: Body::Answer {
            hops: 2,
            hits: vec![Hit {
                item: [1; 16],
                holder: [0xbb; 16],
                score: 384,
            }],
        },
    };
    // From the neighbour the query did not go to: dropped.
    a.handle(now, left_out, answer([1; 16]));
    // For a query nobody sent: dropped.
    a.handle(now, sent[0], answer([2; 16]));
    // From a node that is not a neighbour: dropped.
    a.handle(now, peer(42), answer([1; 16]));
    assert!(a.poll_transmit().is_none());
    assert_eq!(a.stats().answers_dropped, 2);
    assert_eq!(a.stats().strangers, 1);
    // The real answer goes back to node 1.
    a.handle(now, sent[0], answer([1; 16]));
    assert_eq!(a.poll_transmit().map(|t| t.to), Some(peer(1)));
    // And a second one finds the want already passed.
    a.handle(now, sent[1], answer([1; 16]));
    assert!(a.poll_transmit().is_none());
}

#[test]
fn tables_stay_bounded_under_a_flood_of_distinct_queries() {
    let now = Instant::from_secs(1);
    let config = Config {
        seen: 64,
        queries: Limits {
            caller: Rate::new(10_000, Duration::from_micros(1)),
            anonymous: Rate::new(0, Duration::from_secs(1)),
            node: Rate::new(10_000, Duration::from_micros(1)),
        },
        max_transmits: 100,
        ..Config::default()
    };
    let mut a = Flood::new(peer(0), config, now, 1);
    for n in 1..=3 {
        a.add_neighbour(peer(n)).unwrap();
    }
    for i in 0..5_000u32 {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        a.handle(now, peer(1), a_query(id));
        assert!(a.seen().len() <= 64);
    }
    assert_eq!(a.seen().evicted(), 5_000 - 64);
    // Nobody drained the queue: it stopped at its bound.
    assert!(a.stats().transmits_dropped > 0);
    assert_eq!(std::iter::from_fn(|| a.poll_transmit()).count(), 100);
    // Neighbours are bounded too.
    let mut b = Flood::new(peer(0), Config::default(), now, 1);
    for n in 1..=64 {
        b.add_neighbour(peer(n)).unwrap();
    }
    assert_eq!(
        b.add_neighbour(peer(65)),
        Err(FloodError::TooManyNeighbours(64))
    );
    assert_eq!(b.add_neighbour(peer(0)), Ok(false), "not itself");
}

#[test]
fn own_searches_are_bounded_and_ids_must_be_new() {
    let now = Instant::from_secs(1);
    let mut a = Flood::new(peer(0), Config::default(), now, 1);
    a.add_neighbour(peer(1)).unwrap();
    for i in 0..32u8 {
        a.search(now, [i; 16], query_for(1), Patience::Quick, 1)
            .unwrap();
    }
    assert_eq!(
        a.search(now, [99; 16], query_for(1), Patience::Quick, 1),
        Err(FloodError::Busy(32))
    );
    let mut b = Flood::new(peer(0), Config::default(), now, 1);
    b.search(now, [1; 16], query_for(1), Patience::Quick, 1)
        .unwrap();
    assert_eq!(
        b.search(now, [1; 16], query_for(1), Patience::Quick, 1),
        Err(FloodError::Duplicate)
    );
    let nothing = Query {
        sketch: None,
        topic: None,
        threshold: 0,
    };
    assert_eq!(
        b.search(now, [2; 16], nothing, Patience::Quick, 1),
        Err(FloodError::Invalid)
    );
    // Each ends at its time budget.
    let t = b.poll_timeout().unwrap();
    assert_eq!(t, now + Patience::Quick.ladder().time);
    b.handle_timeout(t);
    assert_eq!(b.searches(), 0);
}

#[test]
fn the_patience_ladder_grows_and_stays_within_the_wire_limits() {
    let mut last = Patience::Instant.ladder();
    for p in Patience::ALL {
        let l = p.ladder();
        assert_eq!(Patience::from_name(p.name()), Some(p));
        assert!(l.ttl <= super::MAX_TTL && l.budget <= super::MAX_BUDGET);
        assert!(l.ttl >= last.ttl && l.budget >= last.budget && l.time >= last.time);
        last = l;
    }
    assert_eq!(Patience::from_name("eventually"), None);
}

/// A backbone of hubs with leaves hanging off each (a TCP backbone with LAN clients): a
/// query from a leaf at one end reaches a leaf at the other only if each hub sends it
/// on along the backbone. With fan-out 3 among a hub's six neighbours that is a coin
/// toss per hub (without budget given back, 1 seed in 20 got through); leaves give the
/// budget they cannot use back, the hub gathers it for a moment and sends it on to the
/// branch that did not give any back, and the search gets through on every seed.
#[test]
fn budget_given_back_by_leaves_carries_a_query_along_a_backbone() {
    const HUBS: usize = 5;
    const LEAVES: usize = 5;
    let leaf = |h: usize, l: usize| HUBS + h * LEAVES + l;
    let mut edges: Vec<(usize, usize)> = (1..HUBS).map(|h| (h - 1, h)).collect();
    for h in 0..HUBS {
        for l in 0..LEAVES {
            edges.push((h, leaf(h, l)));
        }
    }
    let n = HUBS + HUBS * LEAVES;
    let (from, to) = (leaf(0, 0), leaf(HUBS - 1, LEAVES - 1));
    let mut returns = 0;
    for seed in 0..20u64 {
        let mut net = Net::new(n, &edges, Config::default());
        for (i, node) in net.nodes.iter_mut().enumerate() {
            *node = Flood::new(peer(i), Config::default(), net.now, seed * 100 + i as u64);
        }
        for (a, b) in &edges {
            net.nodes[*a].add_neighbour(peer(*b)).unwrap();
            net.nodes[*b].add_neighbour(peer(*a)).unwrap();
        }
        net.nodes[to].add_item(item(7)).unwrap();
        net.search(from, 1, query_for(7), Patience::Thorough.ladder(), 1);
        net.run(Duration::from_secs(6));
        let outcome = &net.done[&(from, [1; 16])];
        assert_eq!(outcome.found.len(), 1, "seed {seed}: {outcome:?}");
        returns += net.returns_sent;
    }
    assert!(returns > 0, "leaves gave budget back");
}

/// A neighbour cannot give back more than it was given (less the message that reached
/// it), nor give back twice, nor give back for a query it was never sent.
#[test]
fn returned_budget_is_capped_at_what_was_given() {
    let mut net = Net::line(3);
    net.search(0, 2, query_for(9), Patience::Quick.ladder(), 1);
    // Node 0 forwarded to node 1 only (its one neighbour), with the whole budget.
    let given = Patience::Quick.ladder().budget;
    let forged = |budget| Message {
        id: [2; 16],
        body: Body::Return { budget },
    };
    let now = net.now;
    net.nodes[0].handle(now, peer(1), forged(4000));
    let sent: Vec<_> = std::iter::from_fn(|| net.nodes[0].poll_transmit()).collect();
    // Node 0 has no other neighbour: nothing to forward, whatever was claimed.
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(net.nodes[0].stats().returns_taken, 1);
    // Once only; and from a node the query never went to, nothing.
    net.nodes[0].handle(now, peer(1), forged(given));
    net.nodes[0].handle(now, peer(2), forged(given));
    assert_eq!(net.nodes[0].stats().returns_taken, 1);
    assert!(net.nodes[0].poll_transmit().is_none());
}

/// Good enough: hits stop coming, and the search ends without sitting out its budget.
#[test]
fn a_search_whose_hits_have_stopped_ends_before_its_time_budget() {
    let run = |quiet_factor: u32| {
        let config = Config {
            quiet_factor,
            ..Config::default()
        };
        let edges: Vec<(usize, usize)> = (0..7).map(|i| (i, i + 1)).collect();
        let mut net = Net::new(8, &edges, config);
        net.nodes[2].add_item(item(1)).unwrap();
        net.nodes[3].add_item(item(1)).unwrap();
        // Five hits wanted, two to be had; five seconds allowed.
        net.search(0, 7, query_for(1), ladder(10, 100), 5);
        net.run(Duration::from_secs(10));
        net.done[&(0, [7; 16])].clone()
    };
    let outcome = run(4);
    assert_eq!(outcome.ended, Ended::Quiet);
    assert_eq!(outcome.found.len(), 2, "both hits are in");
    // The first hit took 4 × 40 ms there and back; the second came 80 ms later, and
    // 4 × 160 ms of quiet after it ended the search.
    assert_eq!(outcome.found[0].after, LATENCY * 4);
    assert_eq!(outcome.found[1].after, LATENCY * 6);
    assert_eq!(outcome.elapsed, LATENCY * 6 + LATENCY * 4 * 4);
    // Turned off, the same search sits out its five seconds.
    let outcome = run(0);
    assert_eq!(outcome.ended, Ended::TimedOut);
    assert_eq!(outcome.found.len(), 2);
    assert_eq!(outcome.elapsed, Duration::from_secs(5));
}

#[test]
fn a_search_with_no_hits_waits_its_whole_budget() {
    let mut net = Net::line(4);
    net.search(0, 8, query_for(1), ladder(10, 100), 1);
    net.run(Duration::from_secs(10));
    let outcome = &net.done[&(0, [8; 16])];
    assert_eq!(outcome.ended, Ended::TimedOut);
    assert_eq!(outcome.elapsed, Duration::from_secs(5));
}
