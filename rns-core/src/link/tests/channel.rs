//! Channel and stream traffic between two directly connected links.

use super::*;

/// Deliver every packet from `from` to `to` except those `drop` picks (by position).
fn deliver_lossy(
    rng: &mut ChaCha20Rng,
    now: Instant,
    from: &mut Link,
    to: &mut Link,
    iface: InterfaceId,
    drop: impl Fn(usize) -> bool,
) {
    let mut i = 0;
    while let Some(raw) = from.poll_transmit() {
        if !drop(i) {
            let v = PacketView::new_checked(&raw[..]).unwrap();
            to.handle_packet(
                rng,
                now,
                v.flags().packet_type,
                v.context(),
                v.data(),
                &v.hash(),
                iface,
            );
        }
        i += 1;
    }
}

#[test]
fn channel_messages_arrive_in_order_and_are_acknowledged() {
    let mut p = establish(500);
    events(&mut p.a);
    events(&mut p.b);
    let mut received = Vec::new();
    let mut delivered = 0;
    let mut next = 0u32;
    while received.len() < 200 {
        while next < 200 && p.a.channel_ready() {
            p.a.channel_send(&mut p.rng, p.now, 0x0101, &next.to_be_bytes())
                .unwrap();
            next += 1;
        }
        deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB);
        deliver(&mut p.rng, p.now, &mut p.b, &mut p.a, IA);
        for e in events(&mut p.b) {
            if let LinkEvent::ChannelMessage {
                msgtype: 0x0101,
                data,
                ..
            } = e
            {
                received.push(u32::from_be_bytes(data[..].try_into().unwrap()));
            }
        }
        delivered += events(&mut p.a)
            .iter()
            .filter(|e| matches!(e, LinkEvent::ChannelDelivered { .. }))
            .count();
    }
    assert_eq!(received, (0..200).collect::<Vec<_>>());
    assert_eq!(delivered, 200);
    assert!(
        p.a.channel.as_ref().unwrap().window() > 5,
        "window opened on a fast link"
    );
}

#[test]
fn lost_channel_packets_are_retransmitted_and_reordered() {
    let mut p = establish(500);
    events(&mut p.a);
    events(&mut p.b);
    for n in 0..2u8 {
        p.a.channel_send(&mut p.rng, p.now, 7, &[n]).unwrap();
    }
    assert_eq!(
        p.a.channel_send(&mut p.rng, p.now, 7, b"x"),
        Err(LinkError::ChannelFull(p.a.id()))
    );
    // The first message is lost; the second arrives and waits for it.
    deliver_lossy(&mut p.rng, p.now, &mut p.a, &mut p.b, IB, |i| i == 0);
    assert!(events(&mut p.b).is_empty());
    deliver(&mut p.rng, p.now, &mut p.b, &mut p.a, IA);
    assert_eq!(events(&mut p.a).len(), 1, "only the second is proven");
    let due = p.a.poll_timeout().unwrap();
    p.a.handle_timeout(&mut p.rng, due);
    deliver(&mut p.rng, due, &mut p.a, &mut p.b, IB);
    let got: Vec<Vec<u8>> = events(&mut p.b)
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::ChannelMessage { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![vec![0], vec![1]]);
}

#[test]
fn unanswered_channel_tears_the_link_down() {
    let mut p = establish(500);
    events(&mut p.a);
    p.a.channel_send(&mut p.rng, p.now, 7, b"into the void")
        .unwrap();
    let mut now = p.now;
    for _ in 0..crate::link::channel::MAX_TRIES {
        while p.a.poll_transmit().is_some() {}
        now = p.a.poll_timeout().unwrap().max(now);
        p.a.handle_timeout(&mut p.rng, now);
    }
    assert_eq!(p.a.state(), LinkState::Closed);
    assert!(events(&mut p.a).iter().any(|e| matches!(
        e,
        LinkEvent::Closed {
            reason: CloseReason::Undeliverable,
            ..
        }
    )));
}

#[test]
fn streams_carry_bytes_with_eof_and_system_types_are_reserved() {
    let mut p = establish(500);
    events(&mut p.a);
    events(&mut p.b);
    assert_eq!(
        p.a.channel_send(&mut p.rng, p.now, 0xFF00, b""),
        Err(LinkError::ReservedMessageType(0xFF00))
    );
    let mut data = b"grid stream ".repeat(3000);
    data.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    let mut off = 0;
    let mut got = Vec::new();
    let mut eof = false;
    while !eof {
        while p.a.channel_ready() && (off < data.len() || off == 0) {
            off +=
                p.a.stream_send(&mut p.rng, p.now, 5, &data[off..], true)
                    .unwrap()
                    .0;
            if off == data.len() {
                break;
            }
        }
        deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB);
        deliver(&mut p.rng, p.now, &mut p.b, &mut p.a, IA);
        for e in events(&mut p.b) {
            if let LinkEvent::StreamData {
                stream_id: 5,
                data,
                eof: e,
                ..
            } = e
            {
                got.extend(data);
                eof = e;
            }
        }
    }
    assert_eq!(got, data);
}

#[test]
fn garbage_channel_payloads_are_counted_not_delivered() {
    let mut p = establish(500);
    events(&mut p.b);
    let before = p.b.stats().dropped;
    // A truncated envelope and a stream message that is not bz2, both validly encrypted.
    let bad_stream = crate::link::channel::Envelope {
        msgtype: stream::STREAM_MSGTYPE,
        sequence: 0,
        payload: &[0x40, 0x00, 1, 2, 3],
    }
    .to_bytes();
    for pt in [&[0u8, 1, 0][..], &bad_stream[..]] {
        let ct = p.a.encrypt(&mut p.rng, pt).unwrap();
        let raw = link_packet(&p.a.id(), PacketType::Data, Context::CHANNEL, ct);
        let v = PacketView::new_checked(&raw[..]).unwrap();
        p.b.handle_packet(
            &mut p.rng,
            p.now,
            PacketType::Data,
            Context::CHANNEL,
            v.data(),
            &v.hash(),
            IB,
        );
    }
    assert_eq!(p.b.stats().dropped, before + 2);
    assert!(events(&mut p.b).is_empty());
}
