use super::*;
use proptest::prelude::*;

fn request() -> GridFrame {
    GridFrame {
        correlation: 0x0102_0304_0506_0708,
        source: [1; 16],
        target: [2; 16],
        timestamp_ms: 1_790_000_000_000,
        ttl_ms: 600_000,
        body: Body::Request {
            command: "grid/ping".into(),
            params: br#"{"n":1}"#.to_vec(),
        },
    }
}

#[test]
fn round_trips_every_body() {
    let bodies = [
        request().body,
        Body::Response(Outcome::Ok(b"[1,2]".to_vec())),
        Body::Response(Outcome::Err {
            code: ErrorCode::Denied,
            message: "provisional peers may not".into(),
        }),
        Body::Event {
            event: "gpu:pressure:high".into(),
            payload: b"{}".to_vec(),
        },
        Body::Subscribe {
            pattern: "gpu:*".into(),
        },
        Body::Unsubscribe {
            pattern: "*".into(),
        },
        Body::Progress {
            fraction: Some(0.5),
            payload: b"{\"epoch\":3}".to_vec(),
        },
    ];
    for body in bodies {
        let f = GridFrame { body, ..request() };
        let bytes = f.encode();
        assert_eq!(bytes[0], FRAME_VERSION);
        assert_eq!(&bytes[1..9], &f.correlation.to_be_bytes());
        assert_eq!(GridFrame::decode(&bytes).unwrap(), f);
    }
}

#[test]
fn a_small_request_fits_one_link_packet() {
    // A link MDU is 431 bytes: a typical command with small params must fit.
    assert!(
        request().encode().len() < 120,
        "{}",
        request().encode().len()
    );
}

#[test]
fn bad_frames_get_typed_errors_with_the_correlation_when_possible() {
    let good = request().encode();
    assert_eq!(GridFrame::decode(&good[..5]), Err(FrameError::Truncated(5)));
    let mut future = good.clone();
    future[0] = FRAME_VERSION + 1;
    let e = GridFrame::decode(&future).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedVersion);
    assert_eq!(e.correlation(), Some(request().correlation));
    let e = GridFrame::decode(&good[..good.len() - 3]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Malformed);
    assert_eq!(e.correlation(), Some(request().correlation));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        GridFrame::decode(&trailing),
        Err(FrameError::Malformed { .. })
    ));
    let not_json = GridFrame {
        body: Body::Request {
            command: "grid/ping".into(),
            params: b"{nope".to_vec(),
        },
        ..request()
    };
    assert!(matches!(
        GridFrame::decode(&not_json.encode()),
        Err(FrameError::Malformed { .. })
    ));
    let bad_name = GridFrame {
        body: Body::Request {
            command: "grid ping".into(),
            params: vec![],
        },
        ..request()
    };
    assert!(GridFrame::decode(&bad_name.encode()).is_err());
    let huge = vec![FRAME_VERSION; MAX_FRAME_LEN + 1];
    assert_eq!(
        GridFrame::decode(&huge).unwrap_err().code(),
        ErrorCode::TooLarge
    );
}

#[test]
fn responses_swap_ends_and_keep_the_correlation() {
    let r = request().respond(Outcome::Ok(b"1".to_vec()), 5);
    assert_eq!(
        (r.source, r.target, r.correlation),
        ([2; 16], [1; 16], request().correlation)
    );
    assert!(!request().expired(request().timestamp_ms + 600_000));
    assert!(request().expired(request().timestamp_ms + 600_001));
    // Arriving from another node, clocks may disagree by up to CLOCK_SKEW_MS.
    let r = request();
    assert!(!r.expired_on_arrival(r.timestamp_ms + 600_001));
    assert!(!r.expired_on_arrival(r.timestamp_ms + 600_000 + CLOCK_SKEW_MS));
    assert!(r.expired_on_arrival(r.timestamp_ms + 600_001 + CLOCK_SKEW_MS));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = GridFrame::decode(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(i in 0usize..100, b in any::<u8>()) {
        let mut bytes = request().encode();
        let i = i % bytes.len();
        bytes[i] = b;
        if let Ok(f) = GridFrame::decode(&bytes) {
            prop_assert!(f.validate().is_ok());
        }
    }
}
