//! Neighbours heard over radio: their own round, LoRa-sized messages, and a node heard
//! on a fast interface too stays a fast neighbour.

use super::*;

/// Two nodes that hear each other over radio (`radio`) or on a fast interface.
fn pair(radio: bool) -> (Gossip, Gossip) {
    let (a, b) = (identity(300), identity(301));
    let mut ga = Gossip::new(a.public(), Config::default(), NOW, 1);
    let mut gb = Gossip::new(b.public(), Config::default(), NOW, 2);
    let (pa, pb) = (*ga.own(), *gb.own());
    if radio {
        assert_eq!(ga.add_radio_neighbour(pb), Ok(true));
        assert_eq!(gb.add_radio_neighbour(pa), Ok(true));
    } else {
        assert_eq!(ga.add_neighbour(pb), Ok(true));
        assert_eq!(gb.add_neighbour(pa), Ok(true));
    }
    (ga, gb)
}

/// Hand everything `from` queued to `to` through the wire encoding; whether anything
/// was.
fn deliver(t: Instant, from: &mut Gossip, to: &mut Gossip, largest: &mut usize) -> bool {
    let mut moved = false;
    while let Some(m) = from.poll_transmit() {
        let bytes = m.message.encode();
        *largest = (*largest).max(bytes.len());
        to.handle(t, *from.own(), Message::decode(&bytes).unwrap());
        moved = true;
    }
    moved
}

/// Sessions from `b` until both hold the same entries; the largest message, and the
/// sessions it took.
fn converge(a: &mut Gossip, b: &mut Gossip) -> (usize, usize) {
    let (mut largest, mut sessions) = (0, 0);
    let mut t = NOW;
    while a
        .catalog()
        .entries()
        .keys()
        .ne(b.catalog().entries().keys())
    {
        sessions += 1;
        assert!(sessions <= 10, "not converged after 10 sessions");
        assert!(b.sync_with(*a.own()));
        t = t + Duration::from_secs(30);
        loop {
            t = t + Duration::from_millis(100);
            let moved = deliver(t, a, b, &mut largest) | deliver(t, b, a, &mut largest);
            if !moved {
                break;
            }
        }
    }
    (largest, sessions)
}

#[test]
fn radio_neighbours_get_lora_sized_messages_and_fast_ones_do_not() {
    let publishers: Vec<Identity> = (0..10).map(identity).collect();
    let fill = |g: &mut Gossip| {
        for i in 0..40 {
            let e = entry(&publishers[i % 10], &format!("skill-{i}"), 1);
            g.restore(NOW, e).unwrap();
        }
    };
    let (mut a, mut b) = pair(true);
    fill(&mut a);
    let (largest, sessions) = converge(&mut a, &mut b);
    assert!(largest <= LORA_BUDGET, "{largest} bytes over radio");
    assert!(sessions > 1, "40 entries do not fit one LoRa session");
    assert_eq!(b.catalog().len(), 40);
    assert_eq!(b.stats().radio_sessions_started, sessions as u64);

    let (mut a, mut b) = pair(false);
    fill(&mut a);
    let (largest, sessions) = converge(&mut a, &mut b);
    assert!(largest > LORA_BUDGET, "{largest} bytes on a fast interface");
    assert_eq!(sessions, 1);
    assert_eq!(b.stats().radio_sessions_started, 0);
}

#[test]
fn radio_neighbours_have_their_own_sparser_round() {
    let me = identity(310);
    let mut g = Gossip::new(me.public(), Config::default(), NOW, 3);
    let (fast, radio) = (
        *identity(311).hash().as_bytes(),
        *identity(312).hash().as_bytes(),
    );
    g.add_neighbour(fast).unwrap();
    g.add_radio_neighbour(radio).unwrap();
    let (mut to_fast, mut to_radio) = (0, 0);
    let mut now = NOW;
    let end = NOW + Duration::from_secs(3600);
    while let Some(t) = g.poll_timeout() {
        if t > end {
            break;
        }
        now = t.max(now);
        g.handle_timeout(now);
        while let Some(m) = g.poll_transmit() {
            if m.to == fast {
                to_fast += 1;
            } else {
                assert_eq!(m.to, radio);
                to_radio += 1;
            }
        }
    }
    // An hour: one session every 30 s on the fast interface, every 600 s over radio.
    assert!((119..=121).contains(&to_fast), "{to_fast} fast sessions");
    assert!((5..=7).contains(&to_radio), "{to_radio} radio sessions");
    assert_eq!(g.stats().radio_sessions_started, to_radio);
}

#[test]
fn a_node_also_heard_on_a_fast_interface_is_a_fast_neighbour() {
    let me = identity(320);
    let mut g = Gossip::new(me.public(), Config::default(), NOW, 4);
    let p = *identity(321).hash().as_bytes();
    assert_eq!(g.add_radio_neighbour(p), Ok(true));
    assert!(g.is_radio(&p));
    assert_eq!(g.add_neighbour(p), Ok(true));
    assert!(!g.is_radio(&p));
    assert_eq!(g.add_radio_neighbour(p), Ok(false), "stays fast");
    assert_eq!((g.neighbours().len(), g.radio_neighbours().len()), (1, 0));
    assert!(g.remove_neighbour(&p));
    assert_eq!(g.add_radio_neighbour(p), Ok(true));
    assert!(g.remove_neighbour(&p));
    assert!(!g.sync_with(p), "gone from both");
    // Radio neighbours' messages are handled, strangers' are not.
    let q = *identity(322).hash().as_bytes();
    g.add_radio_neighbour(q).unwrap();
    g.handle(NOW, q, Message::default());
    g.handle(NOW, p, Message::default());
    assert_eq!((g.stats().messages_received, g.stats().strangers), (1, 1));
}
