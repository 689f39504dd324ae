//! Admission of what peers send: half-open links are bounded and recycled oldest first,
//! each interface answers link requests at a limited rate, and incoming resources share a
//! node-wide budget. Time is handed in.

use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::link::{CloseReason, Link, LinkEvent, LinkId, LinkState};

/// V's interface to the honest node H.
const V_H: InterfaceId = InterfaceId(1);
/// H's interface to V.
const H_V: InterfaceId = InterfaceId(0);
/// V's interfaces to attackers (frames sent there are dropped).
const ATTACKER_A: InterfaceId = InterfaceId(2);
const ATTACKER_B: InterfaceId = InterfaceId(3);

struct Setup {
    v: Transport,
    h: Transport,
    v_dest: AddressHash,
    h_dest: AddressHash,
    now: Instant,
    rng: ChaCha20Rng,
}

fn node(config: TransportConfig, seed: u64) -> Transport {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let id = Identity::generate(&mut rng);
    Transport::new(config, id, Box::new(rng))
}

impl Setup {
    /// V (configured by `config`) and H, wired together, each knowing the other's
    /// destination.
    fn new(config: TransportConfig) -> Setup {
        let now = Instant::from_secs(1_800_000_000);
        let mut v = node(config, 1);
        let mut h = node(TransportConfig::default(), 2);
        for iface in [V_H, ATTACKER_A, ATTACKER_B] {
            v.add_interface(now, iface, InterfaceConfig::tcp("v"));
        }
        h.add_interface(now, H_V, InterfaceConfig::tcp("h"));
        let vid = v.identity().clone();
        let v_dest = v.register_destination(vid, "grid.node", ProofStrategy::All, vec![]);
        let hid = h.identity().clone();
        let h_dest = h.register_destination(hid, "grid.node", ProofStrategy::All, vec![]);
        let mut s = Setup {
            v,
            h,
            v_dest,
            h_dest,
            now,
            rng: ChaCha20Rng::seed_from_u64(3),
        };
        s.v.announce(now, &v_dest, None).unwrap();
        s.h.announce(now, &h_dest, None).unwrap();
        s.exchange();
        assert!(s.h.path(&v_dest).is_some() && s.v.path(&h_dest).is_some());
        s
    }

    /// Move frames between V and H until quiet; V's frames to attackers are dropped.
    fn exchange(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.v.poll_transmit() {
                moved = true;
                if t.interface == V_H {
                    self.h.handle_inbound(self.now, H_V, &t.frame);
                }
            }
            while let Some(t) = self.h.poll_transmit() {
                moved = true;
                self.v.handle_inbound(self.now, V_H, &t.frame);
            }
            if !moved {
                return;
            }
        }
        panic!("V and H did not quiesce");
    }

    /// A link request to V with fresh random keys that will never be completed; returns
    /// the link id V gives it.
    fn stray_request(&mut self, iface: InterfaceId) -> LinkId {
        let identity = self.v.recall_identity(&self.v_dest).unwrap();
        let (link, raw) = Link::initiate(
            &mut self.rng,
            self.now,
            self.v_dest,
            identity,
            1,
            500,
            Duration::from_secs(6),
        );
        self.v.handle_inbound(self.now, iface, &raw);
        link.id()
    }

    /// LRPROOFs V sent to `iface` since the last call (other frames are dropped).
    fn proofs_sent(&mut self, iface: InterfaceId) -> usize {
        let mut n = 0;
        while let Some(t) = self.v.poll_transmit() {
            if t.interface == iface {
                n += 1;
            }
        }
        n
    }

    /// V's half-open links, per interface if given.
    fn half_open(&self, iface: Option<InterfaceId>) -> usize {
        self.v
            .links()
            .filter(|l| !l.initiator && l.state == LinkState::Handshake)
            .filter(|l| iface.is_none() || l.interface == iface)
            .count()
    }

    fn v_events(&mut self) -> Vec<LinkEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.v.poll_event() {
            if let Event::Link(l) = e {
                out.push(l);
            }
        }
        out
    }

    /// H opens a link to V; returns it once both ends have it active.
    fn honest_link(&mut self) -> LinkId {
        let id = self.h.open_link(self.now, &self.v_dest).unwrap();
        self.exchange();
        assert_eq!(self.h.link(&id).unwrap().state, LinkState::Active);
        assert_eq!(self.v.link(&id).unwrap().state, LinkState::Active);
        id
    }
}

fn unlimited(node_wide: usize, per_interface: usize) -> TransportConfig {
    TransportConfig {
        max_half_open_links: node_wide,
        max_half_open_links_per_interface: per_interface,
        link_request_rate: None,
        ..TransportConfig::default()
    }
}

#[test]
fn a_flood_recycles_only_its_own_half_open_slots() {
    let mut s = Setup::new(unlimited(8, 5));
    let first: Vec<LinkId> = (0..5).map(|_| s.stray_request(ATTACKER_A)).collect();
    assert_eq!(s.half_open(Some(ATTACKER_A)), 5);
    // A sixth on the same interface gives up that interface's oldest.
    let sixth = s.stray_request(ATTACKER_A);
    assert_eq!(s.half_open(Some(ATTACKER_A)), 5);
    assert!(s.v.link(&first[0]).is_none());
    assert!(s.v.link(&sixth).is_some());
    assert_eq!(
        s.v_events(),
        vec![LinkEvent::Closed {
            link: first[0],
            reason: CloseReason::Timeout
        }]
    );
    // Node-wide: eight at most; B's newcomers push out the oldest anywhere (A's).
    let b: Vec<LinkId> = (0..5).map(|_| s.stray_request(ATTACKER_B)).collect();
    assert_eq!(s.half_open(None), 8);
    assert_eq!(s.half_open(Some(ATTACKER_B)), 5);
    assert_eq!(s.half_open(Some(ATTACKER_A)), 3);
    assert!(first[1..3].iter().all(|id| s.v.link(id).is_none()));
    assert!(first[3..].iter().all(|id| s.v.link(id).is_some()));
    assert!(b.iter().all(|id| s.v.link(id).is_some()));
    assert_eq!(s.v.stats().evicted_half_open_links, 3);
}

#[test]
fn established_links_are_never_given_up_for_half_open_ones() {
    let mut s = Setup::new(unlimited(2, 2));
    let honest: Vec<LinkId> = (0..3).map(|_| s.honest_link()).collect();
    // A flood on H's own interface and on another.
    for _ in 0..20 {
        s.stray_request(V_H);
        s.stray_request(ATTACKER_A);
    }
    s.exchange();
    assert_eq!(s.half_open(None), 2);
    for id in &honest {
        assert_eq!(s.v.link(id).unwrap().state, LinkState::Active);
    }
    // Under the flood an honest handshake still completes: it is the newest.
    s.honest_link();
}

#[test]
fn half_open_links_never_fill_the_link_table() {
    let mut s = Setup::new(unlimited(
        DEFAULT_MAX_HALF_OPEN_LINKS,
        DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE,
    ));
    // More requests than the link table holds, from two interfaces.
    for i in 0..links::MAX_LINKS + 100 {
        s.stray_request(if i % 2 == 0 { ATTACKER_A } else { ATTACKER_B });
    }
    assert_eq!(
        s.half_open(None),
        2 * DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE
    );
    assert_eq!(s.v.links().count(), s.half_open(None));
    // A newcomer gets a link to V, and V can still open its own.
    s.honest_link();
    let now = s.now;
    let own = s.v.open_link(now, &s.h_dest).unwrap();
    s.exchange();
    assert_eq!(s.v.link(&own).unwrap().state, LinkState::Active);
}

#[test]
fn link_requests_over_the_interface_rate_go_unanswered() {
    let rate = LinkRequestRate {
        per_second: 10,
        burst: 20,
    };
    let mut s = Setup::new(TransportConfig {
        link_request_rate: Some(rate),
        ..TransportConfig::default()
    });
    s.proofs_sent(ATTACKER_A);
    for _ in 0..50 {
        s.stray_request(ATTACKER_A);
    }
    assert_eq!(s.proofs_sent(ATTACKER_A), 20);
    assert_eq!(s.v.stats().dropped_link_requests, 30);
    // Another interface has its own bucket: an honest link still completes.
    s.honest_link();
    // One second refills ten.
    s.now = s.now + Duration::from_secs(1);
    for _ in 0..50 {
        s.stray_request(ATTACKER_A);
    }
    assert_eq!(s.proofs_sent(ATTACKER_A), 10);
    assert_eq!(s.v.stats().dropped_link_requests, 70);
}

#[test]
fn incoming_resources_share_the_node_wide_budget() {
    use crate::link::ResourcePolicy;
    use crate::resource::SegmentSpec;
    let mut s = Setup::new(TransportConfig {
        max_incoming_resource_bytes: 1_500_000,
        max_incoming_resource_bytes_per_link: 1_200_000,
        ..TransportConfig::default()
    });
    let v_dest = s.v_dest;
    s.v.set_destination_resource_policy(&v_dest, ResourcePolicy::All);
    let (one, two) = (s.honest_link(), s.honest_link());
    s.v_events();
    let zeros = vec![0u8; 1_000_000];
    let spec = SegmentSpec {
        original_hash: None,
        segment_index: 1,
        total_segments: 1,
        total_size: zeros.len() as u64,
        has_metadata: false,
        request_id: None,
        is_response: false,
        compress: true,
    };
    let now = s.now;
    // Both advertised at once: each fits its link's budget, not both the node's.
    s.h.link_send_resource(now, &one, &zeros, &spec).unwrap();
    s.h.link_send_resource(now, &two, &zeros, &spec).unwrap();
    s.exchange();
    let segments = |events: &[LinkEvent]| -> Vec<LinkId> {
        events
            .iter()
            .filter_map(|e| match e {
                LinkEvent::ResourceSegment { link, .. } => Some(*link),
                _ => None,
            })
            .collect()
    };
    assert_eq!(segments(&s.v_events()), vec![one]);
    // Once the first is done, its bytes are free again.
    s.h.link_send_resource(now, &two, &zeros, &spec).unwrap();
    s.exchange();
    assert_eq!(segments(&s.v_events()), vec![two]);
}
