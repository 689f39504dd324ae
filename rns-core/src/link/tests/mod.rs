//! Two links talking to each other directly, without a transport.

use super::*;
use crate::packet::PacketView;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

struct Pair {
    rng: ChaCha20Rng,
    a: Link,
    b: Link,
    server: Identity,
    now: Instant,
}

const IA: InterfaceId = InterfaceId(1);
const IB: InterfaceId = InterfaceId(2);

fn deliver(
    rng: &mut ChaCha20Rng,
    now: Instant,
    from: &mut Link,
    to: &mut Link,
    iface: InterfaceId,
) -> usize {
    let mut n = 0;
    while let Some(raw) = from.poll_transmit() {
        n += 1;
        let v = PacketView::new_checked(&raw[..]).unwrap();
        let f = v.flags();
        if v.context() == Context::LRPROOF {
            let _ = to.handle_lrproof(rng, now, v.data(), 1, iface);
        } else {
            to.handle_packet(
                rng,
                now,
                f.packet_type,
                v.context(),
                v.data(),
                &v.hash(),
                iface,
            );
        }
    }
    n
}

fn establish(mtu: u32) -> Pair {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let server = Identity::generate(&mut rng);
    let dest = crate::destination::hash_from_name("grid.node", Some(&server.hash()));
    let now = Instant::from_secs(1_800_000_000);
    let (mut a, raw) = Link::initiate(
        &mut rng,
        now,
        dest,
        server.public().clone(),
        1,
        mtu,
        Duration::from_secs(6),
    );
    let v = PacketView::new_checked(&raw[..]).unwrap();
    let req = LinkRequest::parse(v.data()).unwrap();
    let id = wire::link_id(&v);
    assert_eq!(id, a.id());
    let later = now + Duration::from_millis(20);
    let mut b = Link::accept(
        &mut rng,
        later,
        &server,
        dest,
        id,
        &req,
        1,
        req.signalling.map(|s| s.0.min(mtu)),
        IB,
        true,
    );
    assert_eq!(b.state(), LinkState::Handshake);
    deliver(&mut rng, later, &mut b, &mut a, IA);
    assert_eq!(a.state(), LinkState::Active);
    deliver(&mut rng, later, &mut a, &mut b, IB);
    assert_eq!(b.state(), LinkState::Active);
    Pair {
        rng,
        a,
        b,
        server,
        now: later,
    }
}

fn events(l: &mut Link) -> Vec<LinkEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

#[test]
fn establishment_negotiates_mtu_and_reports_both_ends() {
    let mut p = establish(16384);
    assert_eq!(p.a.mtu(), 16384);
    assert_eq!(p.b.mtu(), 16384);
    assert_eq!(p.a.mdu(), 16303);
    assert!(matches!(
        events(&mut p.a)[..],
        [LinkEvent::Established {
            initiator: true,
            ..
        }]
    ));
    assert!(matches!(
        events(&mut p.b)[..],
        [LinkEvent::Established {
            initiator: false,
            mtu: 16384,
            ..
        }]
    ));
    let p = establish(500);
    assert_eq!((p.a.mtu(), p.a.mdu()), (500, 431));
    let _ = p.server;
}

#[test]
fn packets_are_delivered_and_proven_both_ways() {
    let mut p = establish(500);
    events(&mut p.a);
    events(&mut p.b);
    let h = p.a.send(&mut p.rng, p.now, b"hello link").unwrap();
    deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB);
    let ev = events(&mut p.b);
    assert!(
        matches!(&ev[..], [LinkEvent::Packet { data, packet_hash, .. }] if data == b"hello link" && *packet_hash == h)
    );
    deliver(&mut p.rng, p.now, &mut p.b, &mut p.a, IA);
    assert!(
        matches!(&events(&mut p.a)[..], [LinkEvent::Proof { packet_hash, .. }] if *packet_hash == h)
    );

    let h = p.b.send(&mut p.rng, p.now, b"back").unwrap();
    deliver(&mut p.rng, p.now, &mut p.b, &mut p.a, IA);
    deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB);
    assert!(events(&mut p.b)
        .iter()
        .any(|e| matches!(e, LinkEvent::Proof { packet_hash, .. } if *packet_hash == h)));

    assert!(matches!(
        p.a.send(&mut p.rng, p.now, &[0; 432]),
        Err(LinkError::TooLarge {
            size: 432,
            mdu: 431
        })
    ));
}

#[test]
fn requests_identify_and_responses() {
    let mut p = establish(500);
    events(&mut p.a);
    events(&mut p.b);
    let me = Identity::generate(&mut p.rng);
    p.a.identify(&mut p.rng, p.now, &me).unwrap();
    let rid =
        p.a.request(
            &mut p.rng,
            p.now,
            "/ping",
            &rmpv::Value::Binary(b"x".to_vec()),
            None,
        )
        .unwrap();
    deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB);
    let ev = events(&mut p.b);
    assert!(
        matches!(&ev[0], LinkEvent::Identified { identity, .. } if identity.hash() == me.hash())
    );
    let LinkEvent::Request {
        request_id,
        path_hash,
        data,
        remote_identity,
        ..
    } = &ev[1]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*request_id, rid);
    assert_eq!(*path_hash, wire::path_hash("/ping"));
    assert_eq!(*data, rmpv::Value::Binary(b"x".to_vec()));
    assert_eq!(remote_identity.as_ref().unwrap().hash(), me.hash());
    p.b.respond(
        &mut p.rng,
        p.now,
        &rid,
        &rmpv::Value::Binary(b"pong:x".to_vec()),
    )
    .unwrap();
    deliver(&mut p.rng, p.now, &mut p.b, &mut p.a, IA);
    assert!(
        matches!(&events(&mut p.a)[..], [LinkEvent::Response { request_id, data, .. }]
        if *request_id == rid && *data == rmpv::Value::Binary(b"pong:x".to_vec()))
    );
    // An unanswered request times out.
    let rid =
        p.a.request(&mut p.rng, p.now, "/slow", &rmpv::Value::Nil, None)
            .unwrap();
    p.a.handle_timeout(&mut p.rng, p.now + Duration::from_secs(30));
    assert!(events(&mut p.a)
        .iter()
        .any(|e| matches!(e, LinkEvent::RequestTimeout { request_id, .. } if *request_id == rid)));
    assert_eq!(
        p.b.identify(&mut p.rng, p.now, &me),
        Err(LinkError::NotInitiator)
    );
}

#[test]
fn keepalives_stale_and_close() {
    let mut p = establish(500);
    events(&mut p.a);
    events(&mut p.b);
    assert_eq!(p.a.keepalive_interval(), Duration::from_secs(5));
    // After 5 s of silence the initiator sends 0xFF and the responder answers 0xFE.
    let t = p.now + Duration::from_secs(6);
    p.a.handle_timeout(&mut p.rng, t);
    let ka = p.a.poll_transmit().unwrap();
    let v = PacketView::new_checked(&ka[..]).unwrap();
    assert_eq!((v.context(), v.data()), (Context::KEEPALIVE, &[0xFF][..]));
    p.b.handle_packet(
        &mut p.rng,
        t,
        PacketType::Data,
        Context::KEEPALIVE,
        &[0xFF],
        &v.hash(),
        IB,
    );
    let back = p.b.poll_transmit().unwrap();
    assert_eq!(PacketView::new_checked(&back[..]).unwrap().data(), &[0xFE]);
    // With no traffic at all the responder goes stale after 10 s and closes ~5 s later.
    let mut t = p.now;
    for _ in 0..40 {
        t = t + Duration::from_secs(1);
        p.b.handle_timeout(&mut p.rng, t);
    }
    let ev = events(&mut p.b);
    assert!(
        matches!(
            ev.last(),
            Some(LinkEvent::Closed {
                reason: CloseReason::Timeout,
                ..
            })
        ),
        "{ev:?}"
    );
    assert_eq!(p.b.state(), LinkState::Closed);
    // An explicit close reaches the other side.
    let mut p = establish(500);
    p.a.close(&mut p.rng, p.now);
    deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB);
    assert!(events(&mut p.b).iter().any(|e| matches!(
        e,
        LinkEvent::Closed {
            reason: CloseReason::InitiatorClosed,
            ..
        }
    )));
    assert_eq!(p.b.state(), LinkState::Closed);
}

#[test]
fn tampered_packets_and_forged_proofs_are_dropped() {
    let mut p = establish(500);
    events(&mut p.b);
    p.a.send(&mut p.rng, p.now, b"x").unwrap();
    let raw = p.a.poll_transmit().unwrap();
    let mut bad = raw.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let v = PacketView::new_checked(&bad[..]).unwrap();
    p.b.handle_packet(
        &mut p.rng,
        p.now,
        PacketType::Data,
        Context::NONE,
        v.data(),
        &v.hash(),
        IB,
    );
    assert!(events(&mut p.b).is_empty());
    assert_eq!(p.b.stats().dropped, 1);
    // The right packet on the wrong interface is dropped too.
    let v = PacketView::new_checked(&raw[..]).unwrap();
    p.b.handle_packet(
        &mut p.rng,
        p.now,
        PacketType::Data,
        Context::NONE,
        v.data(),
        &v.hash(),
        IA,
    );
    assert_eq!(p.b.stats().dropped, 2);

    // A forged LRPROOF (signed by someone else) is rejected and the link stays pending.
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let server = Identity::generate(&mut rng);
    let mallory = Identity::generate(&mut rng);
    let dest = crate::destination::hash_from_name("grid.node", Some(&server.hash()));
    let now = Instant::from_secs(1_800_000_000);
    let (mut a, raw) = Link::initiate(
        &mut rng,
        now,
        dest,
        server.public().clone(),
        1,
        500,
        Duration::from_secs(6),
    );
    let v = PacketView::new_checked(&raw[..]).unwrap();
    let req = LinkRequest::parse(v.data()).unwrap();
    let mut fake = Link::accept(
        &mut rng,
        now,
        &mallory,
        dest,
        a.id(),
        &req,
        1,
        Some(500),
        IB,
        true,
    );
    let proof = fake.poll_transmit().unwrap();
    let pv = PacketView::new_checked(&proof[..]).unwrap();
    assert!(matches!(
        a.handle_lrproof(&mut rng, now, pv.data(), 1, IA),
        Err(LinkError::Wire(LinkWireError::BadSignature))
    ));
    assert_eq!(a.state(), LinkState::Pending);
    // ... and it times out.
    a.handle_timeout(&mut rng, now + Duration::from_secs(13));
    assert_eq!(a.state(), LinkState::Closed);
}

#[test]
fn responder_accepts_data_sent_before_the_rtt_packet() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let server = Identity::generate(&mut rng);
    let dest = crate::destination::hash_from_name("grid.node", Some(&server.hash()));
    let now = Instant::from_secs(1_800_000_000);
    let (mut a, raw) = Link::initiate(
        &mut rng,
        now,
        dest,
        server.public().clone(),
        1,
        500,
        Duration::from_secs(6),
    );
    let v = PacketView::new_checked(&raw[..]).unwrap();
    let req = LinkRequest::parse(v.data()).unwrap();
    let mut b = Link::accept(
        &mut rng,
        now,
        &server,
        dest,
        a.id(),
        &req,
        1,
        Some(500),
        IB,
        true,
    );
    deliver(&mut rng, now, &mut b, &mut a, IA);
    // The initiator is active and identifies; its identify overtakes the RTT packet.
    let rtt_packet = a.poll_transmit().unwrap();
    let me = Identity::generate(&mut rng);
    a.identify(&mut rng, now, &me).unwrap();
    deliver(&mut rng, now, &mut a, &mut b, IB);
    assert_eq!(b.state(), LinkState::Handshake);
    assert_eq!(b.remote_identity().map(|i| i.hash()), Some(me.hash()));
    let v = PacketView::new_checked(&rtt_packet[..]).unwrap();
    b.handle_packet(
        &mut rng,
        now,
        PacketType::Data,
        v.context(),
        v.data(),
        &v.hash(),
        IB,
    );
    assert_eq!(b.state(), LinkState::Active);
}

mod channel;
mod intake;

#[test]
fn link_packets_are_built_as_packets_are() {
    let id = AddressHash([7; 16]);
    for (ptype, ctx) in [
        (PacketType::Data, Context::RESOURCE),
        (PacketType::Data, Context::NONE),
        (PacketType::Proof, Context::RESOURCE_PRF),
    ] {
        let data: Vec<u8> = (0..=200u8).collect();
        let expected = Packet {
            flags: Flags::new(DestinationType::Link, ptype),
            hops: 0,
            transport_id: None,
            destination: id,
            context: ctx,
            data: data.clone(),
        }
        .to_bytes();
        assert_eq!(link_packet(&id, ptype, ctx, &data[..]), expected);
        assert_eq!(link_packet(&id, ptype, ctx, data), expected);
    }
}
