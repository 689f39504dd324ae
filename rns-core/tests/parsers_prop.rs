//! Property tests: every parser takes arbitrary and mutated bytes without panicking,
//! answers with a typed error, and never accepts tampered authenticated data.

use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rns_core::announce::{self, Announce};
use rns_core::destination::{destination_hash, name_hash};
use rns_core::ifac::Ifac;
use rns_core::packet::{Packet, PacketView};
use rns_core::path_request::PathRequest;
use rns_core::transport::{InterfaceConfig, InterfaceId, Transport, TransportConfig};
use rns_core::{Identity, Instant};

fn valid_announce_payload() -> (Vec<u8>, rns_core::AddressHash) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let id = Identity::generate(&mut rng);
    let nh = name_hash("grid.node");
    let d = destination_hash(&nh, Some(&id.hash()));
    let rh = announce::random_hash(&mut rng, 1_800_000_000);
    (
        announce::build_payload(&id, &nh, &d, &rh, None, b"app data"),
        d,
    )
}

proptest! {
    #[test]
    fn packet_parse_round_trips_or_errors(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        match Packet::parse(&bytes) {
            Ok(p) => prop_assert_eq!(p.to_bytes(), bytes),
            Err(_) => prop_assert!(PacketView::new_checked(&bytes[..]).is_err()),
        }
    }

    #[test]
    fn announce_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), ratchet in any::<bool>()) {
        if let Ok(a) = Announce::parse(&bytes, ratchet) {
            let _ = a.validate(&rns_core::AddressHash([0; 16]));
        }
    }

    #[test]
    fn any_mutation_of_a_signed_announce_is_rejected(i in 0usize..1000, x in 1u8..=255) {
        let (mut payload, d) = valid_announce_payload();
        let i = i % payload.len();
        payload[i] ^= x;
        let ok = Announce::parse(&payload, false).map(|a| a.validate(&d).is_ok()).unwrap_or(false);
        prop_assert!(!ok, "mutated byte {} accepted", i);
    }

    #[test]
    fn ifac_rejects_garbage_and_tampering(bytes in proptest::collection::vec(any::<u8>(), 0..300), i in 0usize..300, x in 1u8..=255) {
        let ifac = Ifac::new(Some("net"), Some("pw"), 16).unwrap();
        let _ = ifac.verify(&bytes);
        let raw: Vec<u8> = (0..40u8).collect();
        let mut framed = ifac.apply(&raw);
        let i = i % framed.len();
        framed[i] ^= x;
        // The flag bit is forced on transmit; flipping only it is the one harmless change.
        if !(i == 0 && x == 0x80) {
            prop_assert!(ifac.verify(&framed).is_err());
        }
    }

    #[test]
    fn path_request_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(r) = PathRequest::parse(&bytes) {
            prop_assert!(!r.tag.is_empty() && r.tag.len() <= 16);
        }
    }

    #[test]
    fn transport_survives_mutated_traffic(mutations in proptest::collection::vec((0usize..200, any::<u8>()), 1..20)) {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let id = Identity::generate(&mut rng);
        let mut t = Transport::new(
            TransportConfig { transport_enabled: true, ..TransportConfig::default() },
            id,
            Box::new(rng),
        );
        let now = Instant::from_secs(1_800_000_000);
        t.add_interface(now, InterfaceId(1), InterfaceConfig::tcp("a"));
        t.add_interface(now, InterfaceId(2), InterfaceConfig::tcp("b"));
        let (payload, d) = valid_announce_payload();
        let mut raw = vec![0x01, 0x00];
        raw.extend_from_slice(d.as_bytes());
        raw.push(0);
        raw.extend_from_slice(&payload);
        t.handle_inbound(now, InterfaceId(1), &raw);
        for (i, b) in mutations {
            let mut m = raw.clone();
            let i = i % m.len();
            m[i] = b;
            t.handle_inbound(now, InterfaceId(2), &m);
        }
        t.handle_timeout(now + std::time::Duration::from_secs(10));
        while t.poll_transmit().is_some() {}
        while t.poll_event().is_some() {}
        prop_assert!(t.path_count() <= 2);
    }
}

mod links {
    use super::*;
    use rns_core::link::wire::{self, LinkProof, LinkRequest};

    proptest! {
        #[test]
        fn link_wire_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = LinkRequest::parse(&bytes) {
                prop_assert_eq!(r.emit(), bytes.clone());
            }
            if let Ok(p) = LinkProof::parse(&bytes) {
                prop_assert_eq!(p.emit(), bytes.clone());
                let _ = p.verify(&rns_core::AddressHash([1; 16]), &[2; 32]);
            }
            let _ = wire::decode_request(&bytes);
            let _ = wire::decode_response(&bytes);
            let _ = wire::decode_rtt(&bytes);
            let _ = wire::decode_msgpack(&bytes);
        }

        #[test]
        fn any_mutation_of_an_lrproof_is_rejected(i in 0usize..99, x in 1u8..=255) {
            let mut rng = ChaCha20Rng::seed_from_u64(8);
            let server = Identity::generate(&mut rng);
            let id = rns_core::AddressHash([3; 16]);
            let eph = [4u8; 32];
            let sig = wire::signalling_bytes(500, 1);
            let signed = wire::proof_signed_data(&id, &eph, &server.public().ed25519_public(), Some(&sig));
            let proof = LinkProof { signature: server.sign(&signed), x25519: eph, signalling: Some(sig) };
            let mut bytes = proof.emit();
            bytes[i] ^= x;
            let ok = LinkProof::parse(&bytes)
                .map(|p| p.verify(&id, &server.public().ed25519_public()).is_ok())
                .unwrap_or(false);
            prop_assert!(!ok, "mutated byte {} accepted", i);
        }
    }
}

mod resources {
    use super::*;
    use rns_core::crypto::Token;
    use rns_core::resource::{Advertisement, IncomingResource, ReceiverStep};
    use std::time::Duration;

    proptest! {
        #[test]
        fn advertisement_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(a) = Advertisement::unpack(&bytes) {
                // Whatever it accepts is bounded and re-packs.
                prop_assert!(a.transfer_size <= 3 * 1024 * 1024);
                prop_assert!(a.hashmap.len() <= 74 * 4);
                prop_assert!(Advertisement::unpack(&a.pack()).is_ok());
            }
        }

        #[test]
        fn receiver_survives_hostile_packets(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..40),
                                             hmus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..10)) {
            let adv = Advertisement {
                transfer_size: 3 * 1024 * 1024 - 3,
                data_size: u64::MAX,
                parts: u64::MAX,
                hash: [1; 32],
                random_hash: [2; 4],
                original_hash: [1; 32],
                segment_index: 1,
                total_segments: 1,
                request_id: None,
                flags: 1,
                hashmap: vec![3; 8],
            };
            let adv = Advertisement::unpack(&adv.pack()).unwrap();
            let now = Instant::from_secs(1000);
            let (mut rx, _) = IncomingResource::accept(adv, 500, Duration::from_millis(10), None, now);
            for p in &parts {
                let _ = rx.handle_part(p, now);
            }
            for h in &hmus {
                let _ = rx.handle_hashmap_update(h, now);
            }
            for i in 0..40u64 {
                if rx.handle_timeout(now + Duration::from_secs(i * 60)) == ReceiverStep::Failed {
                    break;
                }
            }
            prop_assert!(rx.assemble(&Token::new(&[0; 64])).is_none());
        }
    }
}

mod channels {
    use super::*;
    use rns_core::link::channel::Envelope;
    use rns_core::link::stream::{self, MAX_CHUNK_LEN};

    proptest! {
        #[test]
        fn envelope_round_trips_or_errors(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(e) = Envelope::parse(&bytes) {
                let again = e.to_bytes();
                prop_assert_eq!(&again[..], &bytes[..again.len()]);
            }
        }

        #[test]
        fn stream_parser_is_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(d) = stream::parse(&bytes) {
                prop_assert!(d.data.len() <= MAX_CHUNK_LEN && d.stream_id <= stream::STREAM_ID_MAX);
            }
        }

    }

    proptest! {
        // Every message runs up to three bz2 attempts: fewer, smaller cases.
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn stream_messages_reassemble(data in proptest::collection::vec(0u8..4, 0..20_000), max_body in 50usize..500) {
            let mut off = 0;
            let mut got = Vec::new();
            loop {
                let (m, used) = stream::next_message(9, &data[off..], true, max_body).unwrap();
                prop_assert!(m.len() <= max_body + 2);
                off += used;
                let d = stream::parse(&m).unwrap();
                got.extend(d.data);
                if d.eof {
                    break;
                }
            }
            prop_assert_eq!(got, data);
        }
    }
}
