//! The DHT on a small in-memory network: messages delivered after a fixed latency on a
//! virtual clock, nodes that can be stopped. (The simulator, `grid-netsim`, runs the same
//! state machine at thousands of nodes.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rns_core::Instant;

use super::key::{Contact, Key, PUBLIC_LEN};
use super::lookup::Outcome;
use super::message::{Body, Message};
use super::{Config, Dht, Event, LookupId};

const LATENCY: Duration = Duration::from_millis(40);

/// A message in flight: when it arrives, a sequence number, from, to, its bytes.
type InFlight = Reverse<(Instant, u64, usize, usize, Vec<u8>)>;

struct Net {
    now: Instant,
    nodes: Vec<Dht>,
    up: Vec<bool>,
    index: HashMap<Key, usize>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    done: HashMap<(usize, LookupId), Outcome>,
    delivered: u64,
}

fn contact(n: u32) -> Contact {
    let mut p = [0u8; PUBLIC_LEN];
    p[..4].copy_from_slice(&n.to_be_bytes());
    p[4] = 0x5a;
    Contact::from_public(p)
}

impl Net {
    /// `n` nodes; each knows `seeds` others (a ring neighbour and pseudo-random ones).
    fn new(n: usize, seeds: usize, config: Config) -> Net {
        let now = Instant::from_secs(1);
        let nodes: Vec<Dht> = (0..n)
            .map(|i| Dht::new(contact(i as u32), config, now, i as u64 + 7))
            .collect();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, d)| (d.own().id, i))
            .collect();
        let mut net = Net {
            now,
            up: vec![true; n],
            nodes,
            index,
            queue: BinaryHeap::new(),
            seq: 0,
            done: HashMap::new(),
            delivered: 0,
        };
        for i in 0..n {
            for s in 0..seeds {
                let j = (i + 1 + s * 7919 % n.max(1) + s * s) % n;
                if j != i {
                    let c = contact(j as u32);
                    net.nodes[i].add_contact(now, c, None);
                }
            }
        }
        net
    }

    fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            let to = self.index[&t.to.id];
            self.seq += 1;
            self.queue.push(Reverse((
                self.now + LATENCY,
                self.seq,
                i,
                to,
                t.message.encode(),
            )));
        }
        while let Some(Event::Done { id, outcome }) = self.nodes[i].poll_event() {
            self.done.insert((i, id), outcome);
        }
    }

    /// Run until nothing is left to deliver and no timer is due within `limit`.
    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            let next_msg = self.queue.peek().map(|Reverse((t, ..))| *t);
            let next_timer = (0..self.nodes.len())
                .filter(|i| self.up[*i])
                .filter_map(|i| self.nodes[i].poll_timeout().map(|t| (t, i)))
                .min();
            let next = match (next_msg, next_timer) {
                (Some(m), Some((t, _))) => m.min(t),
                (Some(m), None) => m,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_msg == Some(next) {
                let Reverse((_, _, from, to, bytes)) = self.queue.pop().unwrap();
                if self.up[to] {
                    self.delivered += 1;
                    let m = Message::decode(&bytes).unwrap();
                    let from = *self.nodes[from].own();
                    self.nodes[to].handle(self.now, from, None, m);
                    self.flush(to);
                }
            } else if let Some((_, i)) = next_timer {
                self.nodes[i].handle_timeout(self.now);
                self.flush(i);
            }
        }
        self.now = self.now.max(end.min(self.now + limit));
    }

    fn lookup(&mut self, i: usize, start: impl FnOnce(&mut Dht, Instant) -> LookupId) -> Outcome {
        let now = self.now;
        let id = start(&mut self.nodes[i], now);
        self.flush(i);
        for _ in 0..600 {
            if let Some(o) = self.done.remove(&(i, id)) {
                return o;
            }
            self.run(Duration::from_millis(100));
        }
        panic!("lookup {id} on node {i} never ended");
    }

    /// The `k` live nodes truly nearest to `key`.
    fn truth(&self, key: &Key, k: usize) -> Vec<Key> {
        let mut ids: Vec<Key> = (0..self.nodes.len())
            .filter(|i| self.up[*i])
            .map(|i| self.nodes[i].own().id)
            .collect();
        ids.sort_by_key(|id| key.distance(id));
        ids.truncate(k);
        ids
    }

    /// Every node looks up its own id, as a joining node does.
    fn bootstrap(&mut self) {
        for i in 0..self.nodes.len() {
            let own = self.nodes[i].own().id;
            let now = self.now;
            self.nodes[i].find_node(now, own).unwrap();
            self.flush(i);
        }
        self.run(Duration::from_secs(30));
        self.done.clear();
    }
}

#[test]
fn lookups_find_the_nearest_nodes_in_a_few_hops() {
    let mut net = Net::new(300, 3, Config::default());
    net.bootstrap();
    let mut hops = Vec::new();
    for n in 0..20u32 {
        let target = contact(100_000 + n).id;
        let from = (n as usize * 37) % 300;
        let o = net.lookup(from, |d, now| d.find_node(now, target).unwrap());
        let truth = net.truth(&target, 20);
        let got: Vec<Key> = o.closest.iter().map(|c| c.id).collect();
        let found = truth.iter().filter(|t| got.contains(t)).count();
        assert!(found >= 18, "lookup {n}: {found} of the 20 nearest");
        assert_eq!(got[0], truth[0], "lookup {n} missed the nearest node");
        assert!(!o.timed_out);
        hops.push(o.hops);
    }
    hops.sort_unstable();
    assert!(hops[hops.len() / 2] <= 5, "median hops {hops:?}");
}

#[test]
fn a_provided_key_is_found_from_anywhere_and_survives_churn() {
    let mut net = Net::new(300, 3, Config::default());
    net.bootstrap();
    let key = Key::of_content(&[42; 32]);
    let o = net.lookup(5, |d, now| d.provide(now, key).unwrap());
    assert_eq!(o.closest.len(), 20);
    net.run(Duration::from_secs(2));
    // The records went to the nodes nearest the key.
    let holders = (0..300)
        .filter(|i| !net.nodes[*i].providers().is_empty())
        .count();
    assert!(holders >= 15, "{holders} nodes hold the record");

    let o = net.lookup(250, |d, now| d.find_providers(now, key, 1).unwrap());
    assert_eq!(o.providers, vec![contact(5)]);
    assert!(o.hops <= 5, "{o:?}");

    // A fifth of the nodes leave (not the provider): lookups still find it.
    for i in (0..300).filter(|i| i % 5 == 3) {
        net.up[i] = false;
    }
    let mut found = 0;
    for from in [1, 2, 4, 6, 7, 9, 11, 12, 14, 16] {
        let o = net.lookup(from, |d, now| d.find_providers(now, key, 1).unwrap());
        found += usize::from(o.providers == vec![contact(5)]);
    }
    assert_eq!(found, 10);
}

#[test]
fn answers_from_nodes_not_asked_are_ignored() {
    let config = Config::default();
    let now = Instant::from_secs(1);
    let mut a = Dht::new(contact(1), config, now, 1);
    a.add_contact(now, contact(2), None);
    a.find_node(now, contact(99).id).unwrap();
    let t = a.poll_transmit().unwrap();
    assert_eq!(t.to, contact(2));
    // Node 3 answers the request it was not sent, naming itself: nothing changes.
    let forged = Message {
        id: t.message.id,
        body: Body::Nodes(vec![contact(3)]),
    };
    a.handle(now, contact(3), None, forged);
    assert!(a.poll_transmit().is_none());
    assert_eq!(a.table().len(), 1);
    assert_eq!(a.pending(), 1);
    // The node asked answers: the contact it names is asked next.
    let real = Message {
        id: t.message.id,
        body: Body::Nodes(vec![contact(3)]),
    };
    a.handle(now, contact(2), None, real);
    assert_eq!(a.poll_transmit().map(|t| t.to), Some(contact(3)));
}

#[test]
fn a_flooding_peer_is_refused_beyond_its_rate() {
    let now = Instant::from_secs(1);
    let mut a = Dht::new(contact(1), Config::default(), now, 1);
    let mut refused = 0;
    for id in 0..100 {
        let m = Message {
            id,
            body: Body::FindNode(contact(7).id),
        };
        a.handle(now, contact(2), None, m);
        let t = a.poll_transmit().unwrap();
        refused += usize::from(t.message.body == Body::Refused);
    }
    assert_eq!(refused, 80, "a burst of 20, then refusals");
    // A second later, ten more are served.
    let later = now + Duration::from_secs(1);
    let served = (100..120)
        .filter(|id| {
            let m = Message {
                id: *id,
                body: Body::Ping,
            };
            a.handle(later, contact(2), None, m);
            a.poll_transmit().unwrap().message.body == Body::Pong
        })
        .count();
    assert_eq!(served, 10);
}

#[test]
fn unanswered_requests_time_out_and_drop_the_contact() {
    let config = Config::default();
    let now = Instant::from_secs(1);
    let mut a = Dht::new(contact(1), config, now, 1);
    a.add_contact(now, contact(2), None);
    let id = a.find_node(now, contact(99).id).unwrap();
    while a.poll_transmit().is_some() {}
    let due = a.poll_timeout().unwrap();
    assert_eq!(due, now + config.request_timeout);
    a.handle_timeout(due);
    let Some(Event::Done { id: done, outcome }) = a.poll_event() else {
        panic!("the lookup should end when its only contact fails");
    };
    assert_eq!((done, outcome.failures, outcome.closest.len()), (id, 1, 0));
    // One failure so far; a second drops it.
    assert_eq!(a.table().len(), 1);
    a.ping(due, contact(2));
    let _ = a.poll_transmit();
    a.handle_timeout(due + config.request_timeout);
    assert_eq!(a.table().len(), 0);
}

#[test]
fn an_unprovided_key_is_not_republished_and_its_records_run_out() {
    let mut net = Net::new(10, 3, Config::default());
    net.bootstrap();
    let (kept, dropped) = (Key::of_content(&[1; 32]), Key::of_content(&[2; 32]));
    for key in [kept, dropped] {
        let o = net.lookup(0, |d, now| d.provide(now, key).unwrap());
        assert!(!o.closest.is_empty());
    }
    net.nodes[0].unprovide(&dropped);
    // Past the records' TTL (48 h): only the key still provided was republished.
    net.run(Duration::from_secs(49 * 3600));
    let o = net.lookup(5, |d, now| d.find_providers(now, kept, 1).unwrap());
    assert_eq!(o.providers, vec![contact(0)]);
    let o = net.lookup(5, |d, now| d.find_providers(now, dropped, 1).unwrap());
    assert!(o.providers.is_empty(), "{o:?}");
}

/// A driver carrying the DHT on request/response takes a request's answer out of the
/// queue with `handle_request`; what is not a request gets no answer.
#[test]
fn handle_request_takes_out_the_answer_to_that_request_only() {
    let now = Instant::from_secs(1);
    let mut a = Dht::new(contact(1), Config::default(), now, 1);
    let ping = Message {
        id: 42,
        body: Body::Ping,
    };
    let answer = a.handle_request(now, contact(2), None, ping).unwrap();
    assert_eq!((answer.id, answer.body), (42, Body::Pong));
    assert!(a.poll_transmit().is_none(), "the answer was taken out");
    let pong = Message {
        id: 43,
        body: Body::Pong,
    };
    assert!(a.handle_request(now, contact(2), None, pong).is_none());
}
