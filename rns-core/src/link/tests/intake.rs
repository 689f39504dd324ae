//! The budget on bytes held by incoming resources, and split bodies bounded by their
//! advertised size.

use super::*;
use crate::resource::SegmentSpec;

/// Move packets both ways until quiet.
fn exchange(p: &mut Pair) {
    for _ in 0..10_000 {
        let n = deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB)
            + deliver(&mut p.rng, p.now, &mut p.b, &mut p.a, IA);
        if n == 0 {
            return;
        }
    }
    panic!("the links did not quiesce");
}

fn plain(size: u64) -> SegmentSpec {
    SegmentSpec::single(size)
}

/// A resets its events; B accepts every resource.
fn ready() -> Pair {
    let mut p = establish(16384);
    events(&mut p.a);
    events(&mut p.b);
    p.b.set_resource_policy(ResourcePolicy::All);
    p
}

/// Whether B received a segment, and whether A saw its resource rejected.
fn outcome(p: &mut Pair) -> (bool, bool) {
    let got = events(&mut p.b)
        .iter()
        .any(|e| matches!(e, LinkEvent::ResourceSegment { .. }));
    let rejected = events(&mut p.a).iter().any(|e| {
        matches!(
            e,
            LinkEvent::ResourceFailed {
                sending: true,
                reason: ResourceFailure::Rejected,
                ..
            }
        )
    });
    (got, rejected)
}

#[test]
fn resources_decompressing_past_the_budget_are_rejected() {
    // A megabyte of zeros is a few hundred bytes on the wire, but it is what it
    // decompresses to that counts.
    let zeros = vec![0u8; 1_000_000];
    let mut p = ready();
    p.b.set_resource_budget(1_100_000, u64::MAX);
    p.a.send_resource(&mut p.rng, p.now, &zeros, &plain(1_000_000))
        .unwrap();
    exchange(&mut p);
    assert_eq!(outcome(&mut p), (true, false), "fits the link's budget");
    assert_eq!(p.b.incoming_resource_bytes(), 0, "released once complete");

    p.b.set_resource_budget(900_000, u64::MAX);
    p.a.send_resource(&mut p.rng, p.now, &zeros, &plain(1_000_000))
        .unwrap();
    exchange(&mut p);
    assert_eq!(outcome(&mut p), (false, true), "over the link's budget");

    p.b.set_resource_budget(u64::MAX, 900_000);
    p.a.send_resource(&mut p.rng, p.now, &zeros, &plain(1_000_000))
        .unwrap();
    exchange(&mut p);
    assert_eq!(
        outcome(&mut p),
        (false, true),
        "over what the node has left"
    );
    assert_eq!(p.b.incoming_resource_bytes(), 0);
}

#[test]
fn an_accepted_offer_without_room_fails_for_the_application() {
    let mut p = ready();
    p.b.set_resource_policy(ResourcePolicy::App);
    p.b.set_resource_budget(1000, u64::MAX);
    p.a.send_resource(&mut p.rng, p.now, &[7u8; 5000], &plain(5000))
        .unwrap();
    exchange(&mut p);
    let hash = events(&mut p.b)
        .into_iter()
        .find_map(|e| match e {
            LinkEvent::ResourceOffered { segment, .. } => Some(segment.hash),
            _ => None,
        })
        .expect("offered");
    p.b.accept_resource(&mut p.rng, p.now, &hash);
    assert!(events(&mut p.b).iter().any(|e| matches!(
        e,
        LinkEvent::ResourceFailed {
            sending: false,
            reason: ResourceFailure::NoRoom,
            ..
        }
    )));
    exchange(&mut p);
    assert_eq!(outcome(&mut p), (false, true));
}

#[test]
fn a_split_request_is_reserved_whole_and_released_when_joined() {
    let body = rmpv::Value::Binary(vec![0u8; 2_500_000]);
    // The whole body is reserved at the first segment: 2.5 MB does not fit 2 MB.
    let mut p = ready();
    p.b.set_resource_budget(2_000_000, u64::MAX);
    p.a.request(&mut p.rng, p.now, "/big", &body, None).unwrap();
    exchange(&mut p);
    assert!(!events(&mut p.b)
        .iter()
        .any(|e| matches!(e, LinkEvent::Request { .. })));
    assert_eq!(p.b.incoming_resource_bytes(), 0);

    // With room it is joined, and nothing stays reserved. Once its first segment is
    // admitted, the rest are not refused even when the node has nothing left (Python RNS
    // would not notice a later segment's rejection).
    let mut p = ready();
    p.b.set_resource_budget(4_000_000, u64::MAX);
    p.a.request(&mut p.rng, p.now, "/big", &body, None).unwrap();
    deliver(&mut p.rng, p.now, &mut p.a, &mut p.b, IB);
    assert!(p.b.incoming_resource_bytes() > 2_500_000);
    p.b.set_resource_budget(4_000_000, 0);
    exchange(&mut p);
    assert!(events(&mut p.b)
        .iter()
        .any(|e| matches!(e, LinkEvent::Request { data, .. } if *data == body)));
    assert_eq!(p.b.incoming_resource_bytes(), 0);
}

#[test]
fn a_split_request_may_not_grow_past_its_advertised_size() {
    let mut p = ready();
    let rid = AddressHash([5; 16]);
    // Two 1000-byte segments claiming 1500 bytes in all.
    let mut spec = SegmentSpec {
        total_segments: 2,
        total_size: 1500,
        request_id: Some(rid),
        compress: false,
        ..plain(1500)
    };
    let first =
        p.a.send_resource(&mut p.rng, p.now, &[1u8; 1000], &spec)
            .unwrap();
    spec.original_hash = Some(first);
    spec.segment_index = 2;
    p.a.send_resource(&mut p.rng, p.now, &[2u8; 1000], &spec)
        .unwrap();
    exchange(&mut p);
    let ev = events(&mut p.b);
    assert!(!ev.iter().any(|e| matches!(e, LinkEvent::Request { .. })));
    assert!(ev.iter().any(|e| matches!(
        e,
        LinkEvent::ResourceFailed {
            reason: ResourceFailure::Corrupt,
            ..
        }
    )));
    assert_eq!(p.b.incoming_resource_bytes(), 0, "the assembly is dropped");
}

#[test]
fn a_split_segment_whose_size_claim_changes_is_refused() {
    let mut p = ready();
    let rid = AddressHash([6; 16]);
    let mut spec = SegmentSpec {
        total_segments: 2,
        total_size: 2000,
        request_id: Some(rid),
        compress: false,
        ..plain(2000)
    };
    let first =
        p.a.send_resource(&mut p.rng, p.now, &[1u8; 1000], &spec)
            .unwrap();
    spec.original_hash = Some(first);
    spec.segment_index = 2;
    spec.total_size = 1_000_000;
    p.a.send_resource(&mut p.rng, p.now, &[2u8; 1000], &spec)
        .unwrap();
    exchange(&mut p);
    assert!(!events(&mut p.b)
        .iter()
        .any(|e| matches!(e, LinkEvent::Request { .. })));
    assert!(events(&mut p.a).iter().any(|e| matches!(
        e,
        LinkEvent::ResourceFailed {
            sending: true,
            reason: ResourceFailure::Rejected,
            ..
        }
    )));
    // The half-joined request is held (and reserved) until it goes idle.
    assert!(p.b.incoming_resource_bytes() > 2000);
    p.b.handle_timeout(&mut p.rng, p.now + Duration::from_secs(121));
    assert_eq!(p.b.incoming_resource_bytes(), 0);
}
