//! Answers keep the JSON the CLI printed, and every answer type reads back what it wrote.

use std::fmt::Debug;

use rns_core::AddressHash;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::*;
use crate::proto::capabilities::{CapabilitySummary, Gpu};
use crate::trust::TrustLevel;

#[test]
fn answers_keep_the_json_the_cli_printed_and_read_back() {
    let link = AddressHash([9; 16]);
    let v = ok(&LinkUp {
        link,
        rtt_ms: 1.5,
        mtu: 500,
    });
    assert_eq!(
        v,
        json!({"ok": true, "link": link.to_string(), "rtt_ms": 1.5, "mtu": 500})
    );
    assert_eq!(
        parse::<LinkUp>(v),
        Ok(LinkUp {
            link,
            rtt_ms: 1.5,
            mtu: 500
        })
    );
    let refused = Error::LinkClosed("gone".into()).to_json();
    assert_eq!(
        parse::<Done>(refused),
        Err(Error::LinkClosed("gone".into()))
    );
    assert!(matches!(
        parse::<Delivered>(json!({"ok": true, "link": "xyz"})),
        Err(Error::BadResponse(_))
    ));
}

#[test]
fn the_answers_that_were_json_keep_their_fields() {
    let id = AddressHash([1; 16]);
    assert_eq!(
        ok(&PairStatus::Paired {
            identity: id,
            level: TrustLevel::Trusted
        }),
        json!({"ok": true, "state": "paired", "identity": id.to_string(), "level": "trusted"})
    );
    assert_eq!(ok(&PairStatus::None), json!({"ok": true, "state": "none"}));
    assert_eq!(
        ok(&JobResult::Pending),
        json!({"ok": true, "state": "pending"})
    );
    assert_eq!(
        ok(&Received {
            files: vec![ReceivedFile {
                path: "/r/a".into(),
                bytes: 3,
                from: None
            }]
        }),
        json!({"ok": true, "files": [{"path": "/r/a", "bytes": 3, "from": null}]})
    );
    assert_eq!(
        ok(&Bundles::Unreadable { error: "x".into() }),
        json!({"ok": true, "error": "x"})
    );
    let done = JobResult::Done {
        outcome: json!({"ok": false, "code": "failed", "error": "failed: no"}),
    };
    assert_eq!(
        done.outcome(),
        Some(Err(Error::Failed("failed: no".into())))
    );
    let done = JobResult::Done {
        outcome: json!({"ok": true, "result": 7}),
    };
    assert_eq!(done.outcome(), Some(Ok(json!(7))));
}

/// `answer` through the envelope and back.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(answer: T) {
    let v = ok(&answer);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(parse::<T>(v), Ok(answer));
}

#[test]
fn every_answer_round_trips_through_its_type() {
    let (a, b) = (AddressHash([1; 16]), AddressHash([2; 16]));
    let link_summary = LinkSummary {
        link: a,
        destination: b,
        initiator: true,
        state: "active".into(),
        mtu: 500,
        rtt_ms: Some(12.25),
        remote_identity: None,
        channel_window: Some(4),
    };
    let caps = CapabilitySummary {
        cpu_cores: 8,
        ram_mb: 16_000,
        gpu: Some(Gpu {
            name: "g".into(),
            vram_mb: 8_192,
        }),
        roles: vec!["transport".into()],
        adapters: 1,
        models: 2,
    };
    // Links and paths.
    round_trip(LinkUp {
        link: a,
        rtt_ms: 3.5,
        mtu: 431,
    });
    round_trip(Proven {
        link: a,
        rtt_ms: 0.125,
    });
    round_trip(Answered {
        link: a,
        response: json!({"hex": "00ff"}),
    });
    round_trip(Delivered {
        link: a,
        sequence: 9,
    });
    round_trip(StreamDelivered {
        link: a,
        stream_id: 1,
        bytes: 10,
        eof: true,
    });
    round_trip(Identified {
        link: a,
        identity: b,
    });
    round_trip(Done { link: a });
    round_trip(Inbox {
        link: a,
        packets: vec![json!("hi")],
        messages: vec![ChannelMessage {
            msgtype: 0x0101,
            data: json!("m"),
        }],
        streams: vec![StreamChunk {
            stream_id: 2,
            len: 1,
            sha256: "ab".into(),
            eof: false,
            overflowed: false,
            data: json!("s"),
        }],
    });
    round_trip(Links {
        links: vec![link_summary.clone()],
    });
    round_trip(PathFound {
        destination: a,
        identity: Some(b),
        app_data: Some("00".into()),
        hops: 2,
        next_hop: b,
        interface: "tcp".into(),
        expires_in_s: 60,
    });
    round_trip(Probed {
        destination: a,
        rtt_ms: 40.5,
        hops: None,
    });
    // Commands and events.
    round_trip(Executed {
        node: a,
        result: json!({"x": [1, 2]}),
    });
    round_trip(Started {
        node: a,
        handle: "00000000000000ff".into(),
    });
    round_trip(JobResult::Pending);
    round_trip(JobResult::Done {
        outcome: json!({"ok": true, "result": 1}),
    });
    round_trip(Emitted { subscribers: 3 });
    round_trip(Queued { queued: true });
    round_trip(Events {
        events: vec![json!({"node": a.to_string(), "event": "e", "payload": null})],
        cursor: 5,
    });
    round_trip(Announced { destination: a });
    round_trip(Accepted {});
    // Trust and pairing.
    let entry = TrustOf {
        identity: a,
        level: TrustLevel::Trusted,
    };
    round_trip(entry.clone());
    round_trip(TrustList {
        entries: vec![entry],
        default: TrustLevel::Provisional,
    });
    round_trip(PairOffered {
        code: "river-salt-owl-piano".into(),
        node: a,
        level: TrustLevel::Trusted,
        expires_in_s: 300,
        tries: 3,
    });
    for s in [
        PairStatus::None,
        PairStatus::Waiting { expires_in_s: 10 },
        PairStatus::Paired {
            identity: b,
            level: TrustLevel::Trusted,
        },
        PairStatus::Closed {
            reason: "expired".into(),
        },
    ] {
        round_trip(s);
    }
    // File transfers.
    round_trip(CpStarted { id: "ab".into() });
    round_trip(CpStatus {
        id: "ab".into(),
        state: CpState::Failed,
        error: Some("the link closed".into()),
        file: "/f".into(),
        bytes: 10,
        done: 4,
        total: 20,
        seconds: 1.5,
        transfer_seconds: None,
        rate_bytes_per_s: 2.75,
    });
    round_trip(Received {
        files: vec![ReceivedFile {
            path: "/r/f".into(),
            bytes: 10,
            from: Some(b),
        }],
    });
    // Status, both ways the bundle store can read.
    let status = Status {
        identity: a,
        destination: b,
        transport: true,
        shared_instance: Some("default".into()),
        bundles: Bundles::Store(BundleStore {
            custody: true,
            queued: 2,
            bytes: 300,
            destinations: 1,
            waiting: vec![BundlesFor {
                destination: b,
                bundles: 2,
            }],
            waiting_callers: 0,
        }),
        capabilities: caps.clone(),
        peers: vec![Peer {
            node: b,
            hops: 1,
            seen_s_ago: 4,
            capabilities: caps,
        }],
        local_clients: 1,
        uptime_s: 100,
        configured: vec![ConfiguredInterface {
            name: "if1".into(),
            kind: "tcp_server".into(),
            address: "127.0.0.1:4242".into(),
            mode: "full".into(),
            bitrate: 10_000_000,
            connections: 0,
        }],
        interfaces: vec![InterfaceStatus {
            id: 1,
            name: "lora".into(),
            online: true,
            stats: rns_core::transport::InterfaceStats {
                rx_packets: 1,
                rx_bytes: 2,
                tx_packets: 3,
                tx_bytes: 4,
                rx_announces: 5,
                tx_announces: 6,
                filtered: 7,
                ..Default::default()
            },
            radio: Some(grid_interfaces::rnode::RadioStats {
                rssi_dbm: Some(-90),
                snr_db: Some(7.25),
                duty_used_pct: Some(0.5),
                ..Default::default()
            }),
        }],
        path_count: 1,
        paths: vec![PathSummary {
            destination: b,
            hops: 1,
            next_hop: b,
            interface: 1,
            expires_in_s: 3600,
        }],
        links: vec![link_summary],
        link_table: 0,
        known_destinations: 3,
        stats: TrafficStats {
            forwarded: 1,
            rebroadcasts: 2,
            delivered: 3,
            undecryptable: 0,
            protocol_violations: 0,
            ifac_violations: 0,
            unknown_link_packets: 0,
            dropped_link_requests: 0,
            evicted_half_open_links: 0,
            dropped_outbound: 0,
        },
        governor: Some(GovernorSummary {
            memory: "warning".into(),
            cpu: "normal".into(),
            ram_budget_mb: 4096,
            headroom_mb: 1200,
        }),
    };
    round_trip(status.clone());
    round_trip(Status {
        bundles: Bundles::Unreadable {
            error: "locked".into(),
        },
        ..status
    });
    // The DHT.
    round_trip(DhtLookup {
        key: "00".repeat(16),
        providers: vec![DhtNode {
            identity: a,
            node: b,
        }],
        nodes: vec![],
        hops: 1,
        requests: 2,
        failures: 0,
        elapsed_ms: 30,
        timed_out: false,
    });
    // The catalog.
    round_trip(Catalog {
        entries: vec![CatalogEntry {
            digest: "00".repeat(16),
            kind: "compute".into(),
            name: "gpu".into(),
            summary: "a GPU".into(),
            publisher: a,
            seq: 3,
            expires_ms: 1,
            content_hash: None,
            compute: Some((1024, 8192, 10)),
        }],
        neighbours: 2,
        radio_neighbours: 1,
        radio_skipped: 4,
    });
}
