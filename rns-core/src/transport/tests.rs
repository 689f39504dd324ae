//! Deterministic multi-node tests: several transports wired together in one process.

use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::ifac::Ifac;
use crate::packet::{Packet, PacketType};
use crate::resource::SegmentSpec;

type Net = crate::testnet::TestNet;
use crate::testnet::Wire;

#[test]
fn direct_announce_single_packet_and_proof() {
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    let d = net.register(0, "grid.node", ProofStrategy::All);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.flush();
    assert_eq!(net.announces(1, &d), vec![(1, false)]);
    let p = net.nodes[1].path(&d).unwrap();
    assert_eq!((p.hops, p.next_hop), (1, d));
    assert_eq!(net.nodes[1].recall_app_data(&d).unwrap(), b"app");

    let h = net.nodes[1].send_single(now, &d, b"ping").unwrap();
    net.flush();
    assert!(net.nodes[0].events.iter().any(|e| matches!(e,
        Event::Packet { data, destination, hops: 1, .. } if data == b"ping" && *destination == d)));
    assert!(net.nodes[1]
        .events
        .iter()
        .any(|e| matches!(e, Event::Proof { packet_hash, .. } if *packet_hash == h)));
    assert_eq!(net.nodes[1].pending_receipts(), 0);
}

#[test]
fn transport_node_rebroadcasts_forwards_and_routes_proofs() {
    // 0 — T(1) — 2
    let mut net = Net::new(&[false, true, false]);
    net.connect(0, 1);
    net.connect(1, 2);
    let d = net.register(0, "grid.node", ProofStrategy::All);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.flush();
    assert_eq!(net.announces(1, &d), vec![(1, false)]);
    assert!(
        net.announces(2, &d).is_empty(),
        "rebroadcast waits for jitter"
    );
    net.run(Duration::from_secs(2));
    assert_eq!(net.announces(2, &d), vec![(2, false)]);
    let p = net.nodes[2].path(&d).unwrap();
    assert_eq!(p.next_hop, net.nodes[1].transport_id());

    // The rebroadcast is a HEADER_2 announce (0x51) from T.
    let rebroadcast = net
        .log
        .iter()
        .find(|s| s.from == 1 && s.to == 2 && s.frame[0] == 0x51)
        .expect("HEADER_2 rebroadcast");
    assert_eq!(
        &rebroadcast.frame[2..18],
        net.nodes[1].transport_id().as_bytes()
    );

    // Retries stop: after a while T has sent the announce at most twice towards 2.
    net.run(Duration::from_secs(20));
    let count = net
        .log
        .iter()
        .filter(|s| s.from == 1 && s.to == 2 && s.frame[0] & 0x03 == 1)
        .count();
    assert!((1..=2).contains(&count), "rebroadcast {count} times");

    net.log.clear();
    let now = net.now;
    let h = net.nodes[2].send_single(now, &d, b"through T").unwrap();
    net.flush();
    // Sender emits HEADER_2 to T; T delivers HEADER_1 (last hop).
    assert!(net
        .log
        .iter()
        .any(|s| s.from == 2 && s.to == 1 && s.frame[0] == 0x50));
    assert!(net
        .log
        .iter()
        .any(|s| s.from == 1 && s.to == 0 && s.frame[0] == 0x00));
    assert!(net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Packet { data, hops: 2, .. } if data == b"through T")));
    assert!(net.nodes[2]
        .events
        .iter()
        .any(|e| matches!(e, Event::Proof { packet_hash, .. } if *packet_hash == h)));
    assert!(net.nodes[1].stats().forwarded >= 2);
}

#[test]
fn a_transport_node_that_lost_a_path_asks_for_it_when_traffic_comes() {
    // 0 — T(1) — 2: T forgets its path to 0 (as after a restart); 2 still routes via T.
    let mut net = Net::new(&[false, true, false]);
    net.connect(0, 1);
    let (t_to_2, _) = net.connect(1, 2);
    let d = net.register(0, "grid.node", ProofStrategy::All);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.run(Duration::from_secs(2));
    assert!(net.nodes[2].path(&d).is_some());
    assert!(net.nodes[1].drop_path(&d));
    assert!(!net.nodes[1].drop_path(&d));
    let now = net.now;
    let first = net.nodes[2].send_single(now, &d, b"lost").unwrap();
    net.flush();
    assert!(!net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Packet { data, .. } if data == b"lost")));
    // T asked for the path, 0 answered, and the retry gets through.
    net.run(Duration::from_secs(2));
    assert!(net.nodes[1].path(&d).is_some(), "T relearned the path");
    let now = net.now;
    let h = net.nodes[2].send_single(now, &d, b"found").unwrap();
    net.flush();
    assert!(net.nodes[2]
        .events
        .iter()
        .any(|e| matches!(e, Event::Proof { packet_hash, .. } if *packet_hash == h)));
    let _ = first;
    // Made-up destinations do not turn into a flood of path requests.
    assert!(net.nodes[1].drop_path(&d));
    net.log.clear();
    let now = net.now;
    for i in 0..50u8 {
        let bogus = AddressHash([i; 16]);
        let mut raw = vec![0x50, 0];
        raw.extend_from_slice(net.nodes[1].transport_id().as_bytes());
        raw.extend_from_slice(bogus.as_bytes());
        raw.push(0);
        raw.extend_from_slice(&[0u8; 40]);
        net.nodes[1].handle_inbound(now, t_to_2, &raw);
    }
    net.flush();
    let requests = net.log.iter().filter(|s| s.from == 1).count();
    assert!(
        (2..=2 * 4).contains(&requests),
        "{requests} frames sent for 50 unknown destinations"
    );
}

#[test]
fn a_shared_instance_routes_for_its_local_client() {
    // remote(0) — instance(1, not a transport node) = client(2) over the local socket.
    let mut net = Net::with_configs(vec![
        TransportConfig::default(),
        TransportConfig {
            share_instance: true,
            ..TransportConfig::default()
        },
        TransportConfig::default(),
    ]);
    net.connect(0, 1);
    net.connect_local(1, 2);
    let remote = net.register(0, "grid.node", ProofStrategy::All);
    let client = net.register(2, "app.client", ProofStrategy::All);

    // The client's announce goes out at once; the network sees it one hop away.
    let now = net.now;
    net.nodes[2].announce(now, &client, None).unwrap();
    net.flush();
    assert_eq!(net.announces(0, &client), vec![(1, false)]);
    assert_eq!(
        net.nodes[1].path(&client).unwrap().hops,
        0,
        "the local hop is free"
    );
    // The network's announce reaches the client at the hop count the instance sees.
    let now = net.now;
    net.nodes[0].announce(now, &remote, None).unwrap();
    net.flush();
    assert_eq!(net.announces(2, &remote), vec![(1, false)]);

    // Packets both ways, with proofs, though the instance is no transport node.
    let now = net.now;
    let h = net.nodes[2]
        .send_single(now, &remote, b"from client")
        .unwrap();
    net.flush();
    assert!(net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Packet { data, .. } if data == b"from client")));
    assert!(net.nodes[2]
        .events
        .iter()
        .any(|e| matches!(e, Event::Proof { packet_hash, .. } if *packet_hash == h)));
    let now = net.now;
    let h = net.nodes[0]
        .send_single(now, &client, b"to client")
        .unwrap();
    net.flush();
    assert!(net.nodes[2]
        .events
        .iter()
        .any(|e| matches!(e, Event::Packet { data, .. } if data == b"to client")));
    assert!(net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Proof { packet_hash, .. } if *packet_hash == h)));

    // The client asks for a path the instance does not know: it asks the network.
    let quiet = net.register(0, "grid.quiet", ProofStrategy::All);
    let now = net.now;
    net.nodes[2].request_path(now, &quiet, None);
    net.run(Duration::from_secs(2));
    assert_eq!(net.nodes[2].path(&quiet).map(|p| p.hops), Some(1));
    // The network asks for a destination only the client has: the client answers.
    let hidden = net.register(2, "app.hidden", ProofStrategy::All);
    let now = net.now;
    net.nodes[0].request_path(now, &hidden, None);
    net.run(Duration::from_secs(2));
    assert_eq!(net.nodes[0].path(&hidden).map(|p| p.hops), Some(1));
}

#[test]
fn path_requests_answered_locally_and_by_transport() {
    let mut net = Net::new(&[false, true, false]);
    net.connect(0, 1);
    net.connect(1, 2);
    let d = net.register(0, "grid.node", ProofStrategy::None);
    // Local answer: T asks 0 directly.
    let now = net.now;
    net.nodes[1].request_path(now, &d, None);
    net.flush();
    assert_eq!(net.announces(1, &d), vec![(1, true)]);
    // PATH_RESPONSE is not rebroadcast.
    net.run(Duration::from_secs(2));
    assert!(net.announces(2, &d).is_empty());
    // Node 2 asks; T answers from its table after the grace period.
    let now = net.now;
    net.nodes[2].request_path(now, &d, None);
    net.flush();
    assert!(net.announces(2, &d).is_empty());
    net.run(Duration::from_secs(2));
    assert_eq!(net.announces(2, &d), vec![(2, true)]);
    assert_eq!(net.nodes[2].path(&d).unwrap().hops, 2);
}

#[test]
fn non_transport_node_does_not_forward_or_answer_for_others() {
    let mut net = Net::new(&[false, false, false]);
    net.connect(0, 1);
    net.connect(1, 2);
    let d = net.register(0, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.run(Duration::from_secs(10));
    assert_eq!(net.announces(1, &d).len(), 1);
    assert!(net.announces(2, &d).is_empty());
    let now = net.now;
    net.nodes[2].request_path(now, &d, None);
    net.run(Duration::from_secs(3));
    assert!(net.nodes[2].path(&d).is_none());
}

#[test]
fn duplicates_are_filtered() {
    let mut net = Net::new(&[false, false]);
    let (_, ib) = net.connect(0, 1);
    let d = net.register(0, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.flush();
    let now = net.now;
    let _ = net.nodes[1].send_single(now, &d, b"x");
    let frame = net.nodes[1].poll_transmit().unwrap().frame;
    // Deliver the same data frame twice to node 0: the second is filtered.
    let (_, ia) = net.wires[0].a;
    net.nodes[0].handle_inbound(now, ia, &frame);
    net.nodes[0].handle_inbound(now, ia, &frame);
    net.flush();
    let delivered = net.nodes[0]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Packet { .. }))
        .count();
    assert_eq!(delivered, 1);
    let (_, _, _, st) = net.nodes[0].interfaces().next().unwrap();
    assert_eq!(st.filtered, 1);
    let _ = ib;
}

#[test]
fn ifac_mismatch_is_not_heard() {
    for (pa, pb, heard) in [("secret", "secret", true), ("secret", "wrong", false)] {
        let mut net = Net::new(&[false, false]);
        let ifa = Ifac::new(Some("testnet"), Some(pa), 16);
        let ifb = Ifac::new(Some("testnet"), Some(pb), 16);
        let now = net.now;
        net.nodes[0].add_interface(
            now,
            InterfaceId(0),
            InterfaceConfig {
                ifac: ifa,
                ..InterfaceConfig::tcp("a")
            },
        );
        net.nodes[1].add_interface(
            now,
            InterfaceId(1),
            InterfaceConfig {
                ifac: ifb,
                ..InterfaceConfig::tcp("b")
            },
        );
        net.wires.push(Wire {
            a: (0, InterfaceId(0)),
            b: (1, InterfaceId(1)),
            config: crate::testnet::WireConfig::default(),
        });
        let d = net.register(0, "grid.node", ProofStrategy::None);
        net.nodes[0].announce(now, &d, None).unwrap();
        net.flush();
        assert_eq!(!net.announces(1, &d).is_empty(), heard);
        let (_, _, _, st) = net.nodes[1].interfaces().next().unwrap();
        assert_eq!(st.ifac_violations, u64::from(!heard));
    }
}

#[test]
fn garbage_never_panics_and_is_counted() {
    let mut net = Net::new(&[true]);
    let now = net.now;
    net.nodes[0].add_interface(now, InterfaceId(0), InterfaceConfig::tcp("x"));
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    use rand_core::RngCore;
    for len in 0..600 {
        let mut buf = vec![0u8; len];
        rng.fill_bytes(&mut buf);
        if let Some(b) = buf.first_mut() {
            *b &= 0x7f;
        }
        net.nodes[0].handle_inbound(now, InterfaceId(0), &buf);
    }
    net.nodes[0].handle_inbound(now, InterfaceId(9), &[1, 2, 3]);
    let (_, _, _, st) = net.nodes[0].interfaces().next().unwrap();
    assert_eq!(st.rx_packets, 600);
    assert!(st.protocol_violations + st.filtered > 0);
}

#[test]
fn announce_cap_queues_rebroadcasts_on_slow_interfaces() {
    // Announcers 0 and 2 reach T(1); T rebroadcasts onto slow link to 3.
    let mut net = Net::new(&[false, true, false, false]);
    net.connect(0, 1);
    net.connect(2, 1);
    net.connect_with(1, 3, || InterfaceConfig {
        bitrate: 1200,
        ..InterfaceConfig::tcp("slow")
    });
    let d0 = net.register(0, "grid.node", ProofStrategy::None);
    let d2 = net.register(2, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[0].announce(now, &d0, None).unwrap();
    net.nodes[2].announce(now, &d2, None).unwrap();
    net.run(Duration::from_secs(2));
    // Only one fits the cap: ~167 B at 1200 bit/s is 1.1 s of airtime → 55 s of cap.
    let heard = usize::from(!net.announces(3, &d0).is_empty())
        + usize::from(!net.announces(3, &d2).is_empty());
    assert_eq!(heard, 1);
    let queued: u64 = net.nodes[1]
        .interfaces()
        .map(|(_, _, _, s)| s.queued_announces)
        .sum();
    assert!(queued >= 1);
    // ~186 B as HEADER_2 at 1200 bit/s is 1.24 s of airtime: 62 s of cap.
    net.run(Duration::from_secs(70));
    assert!(!net.announces(3, &d0).is_empty() && !net.announces(3, &d2).is_empty());
}

#[test]
fn ingress_control_holds_announce_floods() {
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    // 40 different destinations announced 20 ms apart (50 Hz) from node 0.
    let mut dests = Vec::new();
    for i in 0..40u64 {
        net.now = net.now + Duration::from_millis(20);
        let now = net.now;
        let mut rng = ChaCha20Rng::seed_from_u64(77 + i);
        let id = Identity::generate(&mut rng);
        let d = net.nodes[0].register_destination(id, "flood.test", ProofStrategy::None, vec![]);
        net.nodes[0].announce(now, &d, None).unwrap();
        net.flush();
        dests.push(d);
    }
    let heard = dests
        .iter()
        .filter(|d| net.nodes[1].path(d).is_some())
        .count();
    assert!(heard < 40, "some announces are held ({heard} accepted)");
    let held: u64 = net.nodes[1]
        .interfaces()
        .map(|(_, _, _, s)| s.held_announces)
        .sum();
    assert_eq!(held as usize, 40 - heard);
    // They are released over time, lowest hops first, one per 5 s.
    net.run(Duration::from_secs(60));
    let later = dests
        .iter()
        .filter(|d| net.nodes[1].path(d).is_some())
        .count();
    assert!(later > heard);
}

#[test]
fn receipt_times_out_without_proof() {
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    let d = net.register(0, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.flush();
    let now = net.now;
    let h = net.nodes[1].send_single(now, &d, b"no proof").unwrap();
    net.run(Duration::from_secs(15));
    assert!(net.nodes[1]
        .events
        .iter()
        .any(|e| matches!(e, Event::ReceiptTimeout { packet_hash, .. } if *packet_hash == h)));
}

#[test]
fn send_errors_are_typed() {
    let mut net = Net::new(&[false]);
    let now = net.now;
    let unknown = AddressHash([3; 16]);
    assert_eq!(
        net.nodes[0].send_single(now, &unknown, b"x"),
        Err(SendError::UnknownDestination(unknown))
    );
    assert_eq!(
        net.nodes[0].announce(now, &unknown, None),
        Err(SendError::NotLocal(unknown))
    );
    let d = net.register(0, "a.b", ProofStrategy::None);
    assert_eq!(
        net.nodes[0].send_single(now, &d, &[0; 400]),
        Err(SendError::TooLarge(400))
    );
    assert_eq!(
        net.nodes[0].announce(now, &d, None),
        Err(SendError::NoInterface)
    );
}

#[test]
fn announce_packet_is_wire_valid() {
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    let d = net.register(0, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[0].announce(now, &d, Some(b"custom")).unwrap();
    let t = net.nodes[0].poll_transmit().unwrap();
    let p = Packet::parse(&t.frame).unwrap();
    assert_eq!(p.flags.packet_type, PacketType::Announce);
    assert_eq!(t.frame[0], 0x01);
    let a = crate::announce::Announce::parse(&p.data, false).unwrap();
    a.validate(&d).unwrap();
    assert_eq!(a.app_data, b"custom");
    assert_eq!(a.emission_time(), now.as_secs());
}

#[test]
fn announce_rate_limit_blocks_rebroadcast_but_not_path_updates() {
    // 0 announces often through T(1) to 2. T's default rate target is 3600 s, grace 5.
    let mut net = Net::new(&[false, true, false]);
    net.connect(0, 1);
    net.connect(1, 2);
    let d = net.register(0, "grid.node", ProofStrategy::None);
    for _ in 0..10 {
        let now = net.now;
        net.nodes[0].announce(now, &d, None).unwrap();
        net.run(Duration::from_secs(12));
    }
    // T keeps updating its path, but after grace (5) violations stops rebroadcasting.
    let heard_at_t = net.announces(1, &d).len();
    let heard_at_2 = net.announces(2, &d).len();
    assert_eq!(heard_at_t, 10);
    assert!(
        (5..=7).contains(&heard_at_2),
        "node 2 heard {heard_at_2} rebroadcasts of 10 announces"
    );
}

#[test]
fn access_point_interfaces_get_no_broadcast_announces_and_short_paths() {
    let mut net = Net::new(&[false, true, false]);
    net.connect(0, 1);
    net.connect_with(1, 2, || InterfaceConfig {
        mode: InterfaceMode::AccessPoint,
        ..InterfaceConfig::tcp("ap")
    });
    let d = net.register(0, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.run(Duration::from_secs(10));
    assert!(
        net.announces(2, &d).is_empty(),
        "no broadcast announces on AP interfaces"
    );
    // But a client behind the AP can still ask for the path.
    let now = net.now;
    net.nodes[2].request_path(now, &d, None);
    net.run(Duration::from_secs(2));
    assert_eq!(net.announces(2, &d), vec![(2, true)]);
    // Paths learned on an AP-mode interface expire after a day, not a week. (Both ends
    // of this wire are AP-mode, so node 2 only answers a path request from T.)
    let d2 = net.register(2, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[1].request_path(now, &d2, None);
    net.flush();
    let p = net.nodes[1].path(&d2).unwrap();
    let lifetime = p.expires.saturating_since(net.now);
    assert!(
        lifetime <= Duration::from_secs(24 * 3600) && lifetime > Duration::from_secs(23 * 3600)
    );
}

#[test]
fn roaming_interfaces_do_not_pass_announces_between_each_other() {
    let mut net = Net::new(&[false, true, false]);
    let roam = || InterfaceConfig {
        mode: InterfaceMode::Roaming,
        ..InterfaceConfig::tcp("roam")
    };
    net.connect_with(0, 1, roam);
    net.connect_with(1, 2, roam);
    let d = net.register(0, "grid.node", ProofStrategy::None);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.run(Duration::from_secs(10));
    assert_eq!(net.announces(1, &d).len(), 1);
    assert!(net.announces(2, &d).is_empty());
    let lifetime = net.nodes[1]
        .path(&d)
        .unwrap()
        .expires
        .saturating_since(net.now);
    assert!(lifetime <= Duration::from_secs(6 * 3600));
}

#[test]
fn path_request_bursts_are_ingress_limited_and_duplicates_ignored() {
    // A gateway-mode transport node searches for unknown paths on behalf of requesters,
    // unless the requesting interface is in a path-request burst.
    let mut net = Net::new(&[false, true, false]);
    net.connect_with(0, 1, || InterfaceConfig {
        mode: InterfaceMode::Gateway,
        ..InterfaceConfig::tcp("gw")
    });
    net.connect(1, 2);
    // One request for an unknown destination: T searches on its other interface.
    let unknown = AddressHash([0x42; 16]);
    let now = net.now;
    net.nodes[0].request_path(now, &unknown, None);
    net.flush();
    let searched = |net: &Net| {
        net.log
            .iter()
            .filter(|s| s.from == 1 && s.to == 2 && s.frame[0] == 0x08)
            .count()
    };
    assert_eq!(searched(&net), 1);
    // The same request again (same tag) is ignored.
    let again = net.log.iter().find(|s| s.from == 0).unwrap().frame.clone();
    let (_, ia) = net.wires[0].b;
    net.nodes[1].handle_inbound(net.now, ia, &again);
    net.flush();
    assert_eq!(searched(&net), 1);
    // A burst of requests for many destinations: searching stops once limited.
    for i in 0..40u8 {
        net.now = net.now + Duration::from_millis(20);
        let now = net.now;
        net.nodes[0].request_path(now, &AddressHash([i; 16]), None);
        net.flush();
    }
    let total = searched(&net);
    assert!(total < 30, "searched {total} of 41 while in a burst");
}

#[test]
fn group_token_round_trip() {
    use crate::crypto::Token;
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let key = crate::destination::GroupKey::generate(&mut rng);
    let ct = key.encrypt(&mut rng, b"to the group");
    assert_eq!(key.decrypt(&ct).unwrap(), b"to the group");
    let other = crate::destination::GroupKey::generate(&mut rng);
    assert!(other.decrypt(&ct).is_err());
    let _ = Token::encrypted_len(1);
}

fn link_events(net: &Net, node: usize) -> Vec<crate::link::LinkEvent> {
    net.nodes[node]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Link(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

fn link_net(transport_mid: bool, mid_to_b: fn() -> InterfaceConfig) -> (Net, AddressHash) {
    // a(0) — m(1) — b(2); b hosts the destination.
    let mut net = Net::new(&[false, transport_mid, false]);
    net.connect(0, 1);
    net.connect_with(1, 2, mid_to_b);
    let d = net.register(2, "grid.node", ProofStrategy::All);
    let now = net.now;
    net.nodes[2].announce(now, &d, None).unwrap();
    net.run(Duration::from_secs(3));
    (net, d)
}

#[test]
fn link_through_a_transport_node() {
    use crate::link::{CloseReason, LinkEvent, LinkState};
    let (mut net, d) = link_net(true, || InterfaceConfig::tcp("tcp"));
    assert_eq!(net.nodes[0].path(&d).unwrap().hops, 2);
    let now = net.now;
    let id = net.nodes[0].open_link(now, &d).unwrap();
    net.flush();
    assert_eq!(net.nodes[1].link_table_len(), 1);
    let ev = link_events(&net, 0);
    assert!(
        matches!(
            &ev[..],
            [LinkEvent::Established {
                initiator: true,
                mtu: 16384,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert!(link_events(&net, 2).iter().any(|e| matches!(
        e,
        LinkEvent::Established {
            initiator: false,
            ..
        }
    )));
    assert_eq!(net.nodes[0].link(&id).unwrap().state, LinkState::Active);

    // Data and proofs both ways through T.
    let now = net.now;
    let h = net.nodes[0].link_send(now, &id, b"across").unwrap();
    net.flush();
    assert!(link_events(&net, 2)
        .iter()
        .any(|e| matches!(e, LinkEvent::Packet { data, .. } if data == b"across")));
    assert!(link_events(&net, 0)
        .iter()
        .any(|e| matches!(e, LinkEvent::Proof { packet_hash, .. } if *packet_hash == h)));
    let h2 = net.nodes[2].link_send(now, &id, b"back").unwrap();
    net.flush();
    assert!(link_events(&net, 2)
        .iter()
        .any(|e| matches!(e, LinkEvent::Proof { packet_hash, .. } if *packet_hash == h2)));

    // Request and response.
    let rid = net.nodes[0]
        .link_request(now, &id, "/ping", &rmpv::Value::from("x"), None)
        .unwrap();
    net.flush();
    let req = link_events(&net, 2)
        .into_iter()
        .find_map(|e| match e {
            LinkEvent::Request {
                request_id,
                path_hash,
                ..
            } => Some((request_id, path_hash)),
            _ => None,
        })
        .unwrap();
    assert_eq!(req, (rid, crate::link::wire::path_hash("/ping")));
    net.nodes[2]
        .link_respond(now, &id, &rid, &rmpv::Value::from("pong:x"))
        .unwrap();
    net.flush();
    assert!(link_events(&net, 0).iter().any(
        |e| matches!(e, LinkEvent::Response { request_id, data, .. } if *request_id == rid && data.as_str() == Some("pong:x"))
    ));

    // Keepalives keep the idle link up for a minute.
    net.run(Duration::from_secs(60));
    assert_eq!(net.nodes[0].link(&id).unwrap().state, LinkState::Active);
    assert_eq!(net.nodes[2].link(&id).unwrap().state, LinkState::Active);

    // The responder closes; the initiator sees it.
    let now = net.now;
    net.nodes[2].close_link(now, &id).unwrap();
    net.flush();
    assert!(link_events(&net, 0).iter().any(|e| matches!(
        e,
        LinkEvent::Closed {
            reason: CloseReason::DestinationClosed,
            ..
        }
    )));
    assert!(net.nodes[0].link(&id).is_none());
}

#[test]
fn link_mtu_is_clamped_to_500_over_a_udp_hop() {
    use crate::link::LinkEvent;
    let (mut net, d) = link_net(true, || InterfaceConfig::udp("udp"));
    let now = net.now;
    net.nodes[0].open_link(now, &d).unwrap();
    net.flush();
    let ev = link_events(&net, 0);
    assert!(
        matches!(&ev[..], [LinkEvent::Established { mtu: 500, .. }]),
        "{ev:?}"
    );
}

#[test]
fn links_time_out_when_the_destination_is_gone() {
    use crate::link::{CloseReason, LinkEvent};
    let (mut net, d) = link_net(true, || InterfaceConfig::tcp("tcp"));
    // Cut the wire between T and the destination.
    net.wires.pop();
    let now = net.now;
    net.nodes[0].open_link(now, &d).unwrap();
    net.run(Duration::from_secs(20));
    assert!(link_events(&net, 0).iter().any(|e| matches!(
        e,
        LinkEvent::Closed {
            reason: CloseReason::Timeout,
            ..
        }
    )));
    net.run(Duration::from_secs(20));
    assert_eq!(
        net.nodes[1].link_table_len(),
        0,
        "unproven link-table entries expire"
    );
}

fn resource_roundtrip(mtu_case: fn() -> InterfaceConfig, size: usize, seed: u64) {
    use crate::link::{LinkEvent, ResourcePolicy};
    use rand_core::RngCore;
    let (mut net, d) = link_net(true, mtu_case);
    net.nodes[2].set_destination_resource_policy(&d, ResourcePolicy::All);
    let now = net.now;
    let id = net.nodes[0].open_link(now, &d).unwrap();
    net.flush();
    let mut data = vec![0u8; size];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut data);
    let spec = SegmentSpec::single(size as u64);
    let now = net.now;
    let hash = net.nodes[0]
        .link_send_resource(now, &id, &data, &spec)
        .unwrap();
    net.run(Duration::from_secs(60));
    let got = link_events(&net, 2).into_iter().find_map(|e| match e {
        LinkEvent::ResourceSegment { data, segment, .. } if segment.hash == hash => Some(data),
        _ => None,
    });
    assert_eq!(
        got.as_deref(),
        Some(&data[..]),
        "resource of {size} bytes arrived intact"
    );
    assert!(link_events(&net, 0)
        .iter()
        .any(|e| matches!(e, LinkEvent::ResourceSent { segment, .. } if segment.hash == hash)));
}

/// With assembly deferred, a complete segment comes out as a job: nothing is proven or
/// reported until the driver runs it and hands the result back; a job run twice counts
/// once.
#[test]
fn a_deferred_segment_is_proven_and_reported_only_when_its_job_comes_back() {
    use crate::link::{LinkEvent, ResourcePolicy};
    let (mut net, d) = link_net(true, || InterfaceConfig::tcp("tcp"));
    net.nodes[2].set_destination_resource_policy(&d, ResourcePolicy::All);
    net.nodes[2].set_defer_resource_assembly(true);
    let now = net.now;
    let id = net.nodes[0].open_link(now, &d).unwrap();
    net.flush();
    // Compressible, so the job decompresses as well as decrypts and hashes.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let spec = SegmentSpec::single(data.len() as u64);
    let now = net.now;
    let hash = net.nodes[0]
        .link_send_resource(now, &id, &data, &spec)
        .unwrap();
    net.run(Duration::from_secs(30));
    let job = link_events(&net, 2)
        .into_iter()
        .find_map(|e| match e {
            LinkEvent::ResourceAssemble { job, .. } => Some(job),
            _ => None,
        })
        .expect("the complete segment is handed out");
    assert_eq!(job.hash(), hash);
    let segment = |net: &Net| {
        link_events(net, 2).into_iter().find_map(|e| match e {
            LinkEvent::ResourceSegment { data, .. } => Some(data),
            _ => None,
        })
    };
    let sent = |net: &Net| {
        link_events(net, 0)
            .iter()
            .any(|e| matches!(e, LinkEvent::ResourceSent { segment, .. } if segment.hash == hash))
    };
    assert!(
        segment(&net).is_none(),
        "not reported before its job is back"
    );
    assert!(!sent(&net), "not proven before its job is back");
    let done = job.run();
    let again = job.clone().run();
    let now = net.now;
    net.nodes[2]
        .link_resource_assembled(now, &id, done)
        .unwrap();
    net.nodes[2]
        .link_resource_assembled(now, &id, again)
        .unwrap();
    net.run(Duration::from_secs(10));
    assert_eq!(segment(&net).as_deref(), Some(&data[..]), "reported intact");
    assert!(sent(&net), "proven to the sender");
    let reported = link_events(&net, 2)
        .iter()
        .filter(|e| matches!(e, LinkEvent::ResourceSegment { .. }))
        .count();
    assert_eq!(reported, 1, "a job run twice counts once");
}

#[test]
fn resources_cross_a_transport_node_at_mtu_16384_and_500() {
    resource_roundtrip(|| InterfaceConfig::tcp("tcp"), 1000, 1);
    resource_roundtrip(|| InterfaceConfig::tcp("tcp"), 1_000_000, 2);
    resource_roundtrip(|| InterfaceConfig::udp("udp"), 1000, 3);
    resource_roundtrip(|| InterfaceConfig::udp("udp"), 200_000, 4);
}

#[test]
fn large_requests_and_responses_travel_as_resources() {
    use crate::link::LinkEvent;
    let (mut net, d) = link_net(true, || InterfaceConfig::udp("udp"));
    let now = net.now;
    let id = net.nodes[0].open_link(now, &d).unwrap();
    net.flush();
    let big = rmpv::Value::Binary(vec![7u8; 5000]);
    let rid = net.nodes[0]
        .link_request(now, &id, "/big", &big, None)
        .unwrap();
    net.run(Duration::from_secs(10));
    let req = link_events(&net, 2).into_iter().find_map(|e| match e {
        LinkEvent::Request {
            request_id, data, ..
        } => Some((request_id, data)),
        _ => None,
    });
    assert_eq!(req, Some((rid, big.clone())));
    let now = net.now;
    net.nodes[2].link_respond(now, &id, &rid, &big).unwrap();
    net.run(Duration::from_secs(10));
    assert!(link_events(&net, 0).iter().any(
        |e| matches!(e, LinkEvent::Response { request_id, data, .. } if *request_id == rid && *data == big)
    ));
}

#[test]
fn requests_and_responses_over_1_mib_travel_as_several_segments() {
    use crate::link::{LinkError, LinkEvent, MAX_REQUEST_SEGMENTS};
    use rand_core::RngCore;
    let (mut net, d) = link_net(true, || InterfaceConfig::tcp("tcp"));
    let now = net.now;
    let id = net.nodes[0].open_link(now, &d).unwrap();
    net.flush();
    let mut bytes = vec![0u8; 2_500_000];
    ChaCha20Rng::seed_from_u64(9).fill_bytes(&mut bytes);
    let big = rmpv::Value::Binary(bytes);
    let rid = net.nodes[0]
        .link_request(now, &id, "/big", &big, Some(Duration::from_secs(600)))
        .unwrap();
    net.run(Duration::from_secs(120));
    let req = link_events(&net, 2).into_iter().find_map(|e| match e {
        LinkEvent::Request {
            request_id, data, ..
        } => Some((request_id, data)),
        _ => None,
    });
    assert!(
        req == Some((rid, big.clone())),
        "3-segment request arrived whole"
    );
    let now = net.now;
    net.nodes[2].link_respond(now, &id, &rid, &big).unwrap();
    net.run(Duration::from_secs(120));
    let responses: Vec<_> = link_events(&net, 0)
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::Response {
                request_id, data, ..
            } => Some((request_id, data)),
            _ => None,
        })
        .collect();
    assert!(
        responses == vec![(rid, big)],
        "one whole response, not one per segment"
    );
    // Beyond the segment bound the sender refuses up front.
    let huge = rmpv::Value::Binary(vec![0; MAX_REQUEST_SEGMENTS as usize * (1 << 20)]);
    let now = net.now;
    assert!(matches!(
        net.nodes[0].link_request(now, &id, "/huge", &huge, None),
        Err(LinkError::TooLarge { .. })
    ));
}

#[test]
fn offered_resources_can_be_rejected_and_closing_fails_transfers() {
    use crate::link::{LinkEvent, ResourceFailure, ResourcePolicy};
    let (mut net, d) = link_net(false, || InterfaceConfig::tcp("tcp"));
    net.nodes[2].set_destination_resource_policy(&d, ResourcePolicy::App);
    // (the middle node is not a transport node here: connect 0 to 2 directly)
    net.connect(0, 2);
    let now = net.now;
    net.nodes[2].announce(now, &d, None).unwrap();
    net.flush();
    let id = net.nodes[0].open_link(net.now, &d).unwrap();
    net.flush();
    let spec = SegmentSpec {
        original_hash: None,
        segment_index: 1,
        total_segments: 1,
        total_size: 4,
        has_metadata: false,
        request_id: None,
        is_response: false,
        compress: false,
    };
    let now = net.now;
    let hash = net.nodes[0]
        .link_send_resource(now, &id, b"nope", &spec)
        .unwrap();
    net.flush();
    let offered = link_events(&net, 2).into_iter().any(
        |e| matches!(e, LinkEvent::ResourceOffered { segment, .. } if segment.hash == hash && segment.total_size == 4),
    );
    assert!(offered);
    net.nodes[2]
        .link_answer_resource(now, &id, &hash, false)
        .unwrap();
    net.flush();
    assert!(link_events(&net, 0).iter().any(|e| matches!(
        e,
        LinkEvent::ResourceFailed {
            sending: true,
            reason: ResourceFailure::Rejected,
            ..
        }
    )));
    // A queued resource is dropped and one on the wire is cancelled with the receiver.
    let on_wire = net.nodes[0]
        .link_send_resource(now, &id, b"wire", &spec)
        .unwrap();
    let queued = net.nodes[0]
        .link_send_resource(now, &id, b"next", &spec)
        .unwrap();
    net.nodes[0]
        .link_cancel_resource(now, &id, &queued)
        .unwrap();
    net.nodes[0]
        .link_cancel_resource(now, &id, &on_wire)
        .unwrap();
    assert_eq!(
        net.nodes[0].link_cancel_resource(now, &id, &on_wire),
        Err(crate::link::LinkError::UnknownResource)
    );
    net.flush();
    let cancelled: Vec<[u8; 32]> = link_events(&net, 0)
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::ResourceFailed {
                hash,
                reason: ResourceFailure::Cancelled,
                ..
            } => Some(hash),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, vec![queued, on_wire]);
    // A transfer in flight fails when the link closes.
    let hash2 = net.nodes[0]
        .link_send_resource(now, &id, &[1u8; 3000], &spec)
        .unwrap();
    net.nodes[0].close_link(now, &id).unwrap();
    net.flush();
    assert!(link_events(&net, 0).iter().any(|e| matches!(
        e,
        LinkEvent::ResourceFailed { hash: h, reason: ResourceFailure::LinkClosed, .. } if *h == hash2
    )));
}

#[test]
fn a_lost_first_part_request_is_repeated_within_milliseconds_not_on_the_job_tick() {
    use crate::link::{LinkEvent, ResourcePolicy};
    use crate::packet::Context;
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    let d = net.register(1, "grid.node", ProofStrategy::All);
    let now = net.now;
    net.nodes[1].announce(now, &d, None).unwrap();
    net.run(Duration::from_secs(3));
    net.nodes[1].set_destination_resource_policy(&d, ResourcePolicy::All);
    let now = net.now;
    let id = net.nodes[0].open_link(now, &d).unwrap();
    net.flush();
    let spec = SegmentSpec {
        original_hash: None,
        segment_index: 1,
        total_segments: 1,
        total_size: 200_000,
        has_metadata: false,
        request_id: None,
        is_response: false,
        compress: false,
    };
    let hash = net.nodes[0]
        .link_send_resource(now, &id, &[0x5a; 200_000], &spec)
        .unwrap();
    // Deliver everything except the receiver's first part request (as RNS 1.5.7 drops
    // a request that beats the registration of its resource).
    let mut dropped = false;
    net.lose_if(move |from, frame| {
        let lose = from == 1 && !dropped && frame[18] == Context::RESOURCE_REQ.0;
        dropped |= lose;
        lose
    });
    net.flush();
    assert_eq!(net.log.iter().filter(|s| s.dropped).count(), 1);
    // The receiver's next deadline is its quick repeat, not the 250 ms job tick.
    let due = net.nodes[1].poll_timeout();
    assert!(
        due > now && due <= now + Duration::from_millis(10),
        "repeat due {:?} after the request",
        due.saturating_since(now)
    );
    net.now = due;
    net.nodes[1].handle_timeout(due);
    net.flush();
    assert!(link_events(&net, 1)
        .iter()
        .any(|e| matches!(e, LinkEvent::ResourceSegment { segment, .. } if segment.hash == hash)));
    assert!(link_events(&net, 0)
        .iter()
        .any(|e| matches!(e, LinkEvent::ResourceSent { segment, .. } if segment.hash == hash)));
}

#[test]
fn the_application_decides_which_packets_are_proved() {
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    let d = net.register(0, "app.decides", ProofStrategy::App);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.flush();
    let now = net.now;
    let first = net.nodes[1].send_single(now, &d, b"prove me").unwrap();
    let second = net.nodes[1].send_single(now, &d, b"not me").unwrap();
    net.flush();
    // Delivered, but nothing proved yet.
    let delivered: Vec<[u8; 32]> = net.nodes[0]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Packet { packet_hash, .. } => Some(*packet_hash),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![first, second]);
    let proved = |net: &Net, h: [u8; 32]| {
        net.nodes[1]
            .events
            .iter()
            .any(|e| matches!(e, Event::Proof { packet_hash, .. } if *packet_hash == h))
    };
    assert!(!proved(&net, first) && !proved(&net, second));
    // The application proves the first; a second proof of it does nothing.
    let now = net.now;
    assert!(net.nodes[0].prove(now, &first));
    assert!(!net.nodes[0].prove(now, &first));
    net.flush();
    assert!(proved(&net, first));
    assert!(!proved(&net, second));
    // Past the window the second can no longer be proved.
    net.run(APP_PROOF_WINDOW + Duration::from_secs(1));
    let now = net.now;
    assert!(!net.nodes[0].prove(now, &second));
}

#[test]
fn a_deregistered_destination_takes_no_more_packets() {
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    let d = net.register(0, "app.gone", ProofStrategy::All);
    let now = net.now;
    net.nodes[0].announce(now, &d, None).unwrap();
    net.flush();
    assert!(net.nodes[0].deregister_destination(&d));
    assert!(!net.nodes[0].deregister_destination(&d));
    let now = net.now;
    let h = net.nodes[1].send_single(now, &d, b"anyone?").unwrap();
    net.flush();
    assert!(!net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Packet { destination, .. } if *destination == d)));
    assert!(!net.nodes[1]
        .events
        .iter()
        .any(|e| matches!(e, Event::Proof { packet_hash, .. } if *packet_hash == h)));
}

#[test]
fn plain_and_group_destinations_take_packets_from_neighbours() {
    use crate::destination::GroupKey;
    let mut net = Net::new(&[false, false]);
    net.connect(0, 1);
    let plain = net.nodes[0].register_plain_destination("app.plain");
    assert_eq!(plain, crate::destination::hash_from_name("app.plain", None));
    let key = GroupKey::from_bytes([7; 64]);
    let group = net.nodes[0].register_group_destination("app.group", key.clone());
    let now = net.now;
    net.nodes[1].send_plain(now, &plain, b"to all").unwrap();
    net.nodes[1]
        .send_group(now, &group, &key, b"members only")
        .unwrap();
    let wrong = GroupKey::from_bytes([8; 64]);
    net.nodes[1]
        .send_group(now, &group, &wrong, b"not a member")
        .unwrap();
    net.flush();
    let got: Vec<(AddressHash, Vec<u8>)> = net.nodes[0]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Packet {
                destination, data, ..
            } => Some((*destination, data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (plain, b"to all".to_vec()),
            (group, b"members only".to_vec())
        ]
    );
    assert_eq!(net.nodes[0].stats().undecryptable, 1);
}
