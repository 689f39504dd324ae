//! Attack: forged event and progress frames. A node M pushes GridFrames on links' channels
//! that name another node (the honest H) as their source: on a link M opened to V, and on
//! a link V opened to M to subscribe to M's events. V takes events only on links it
//! opened, only from the node at the other end (proven by the link handshake), and
//! progress only for commands it sent on that link; M's genuine events still arrive.

mod common;

use std::time::Duration;

use common::hostile::*;
use common::*;
use grid::frame::{Body, GridFrame, CHANNEL_MSGTYPE};
use rns_core::AddressHash;
use serde_json::Value;

fn frame(source: AddressHash, target: AddressHash, correlation: u64, body: Body) -> Vec<u8> {
    GridFrame {
        correlation,
        source: source.0,
        target: target.0,
        timestamp_ms: 0,
        ttl_ms: 0,
        body,
    }
    .encode()
}

fn event(name: &str) -> Body {
    Body::Event {
        event: name.into(),
        payload: b"{\"forged\": true}".to_vec(),
    }
}

#[test]
fn forged_event_and_progress_frames_are_dropped() {
    let _slot = slot();
    let (mut v, port) = victim("");
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let h_dest: AddressHash = h.destination.parse().unwrap();
    let v_hash: AddressHash = v_dest.parse().unwrap();

    let m_dir = attacker_dir("forger", port);
    let rt = runtime();
    let m = attacker(&rt, &m_dir);
    let m_dest = m.destination();

    let (_, peak) = peak_rss_during(&v, || {
        rt.block_on(async {
            // 1. On a link M opened to V: events naming H, and progress.
            let up = m.open_link(v_hash, Duration::from_secs(20)).await.unwrap();
            m.identify(up.link).await.unwrap();
            for i in 0..50u64 {
                let e = frame(h_dest, v_hash, i, event("test:forged:inbound"));
                m.channel_send(up.link, CHANNEL_MSGTYPE, &e, Duration::from_secs(10))
                    .await
                    .unwrap();
                let p = frame(
                    h_dest,
                    v_hash,
                    i,
                    Body::Progress {
                        fraction: Some(0.5),
                        payload: b"{}".to_vec(),
                    },
                );
                m.channel_send(up.link, CHANNEL_MSGTYPE, &p, Duration::from_secs(10))
                    .await
                    .unwrap();
            }
        });
        // 2. V subscribes to M's events (V opens the link); M answers with genuine
        //    events and forged ones on that link.
        let listen = {
            let (config, m_dest) = (v.dir.0.clone(), m_dest.to_string());
            std::thread::spawn(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_grid"))
                    .arg("--config")
                    .arg(&config)
                    .args([
                        "listen",
                        "test:*",
                        "--node",
                        &m_dest,
                        "--timeout",
                        "8",
                        "--json",
                    ])
                    .output()
                    .unwrap()
            })
        };
        rt.block_on(async {
            // Wait for V's link to M (V is the initiator; M is the responder).
            let link = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    let links = m.links().await.unwrap();
                    if let Some(l) = links.iter().find(|l| {
                        !l.initiator
                            && l.remote_identity.is_some()
                            && l.destination == m_dest
                            && l.state == rns_core::link::LinkState::Active
                    }) {
                        // Give the Subscribe frame a moment to land.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        return l.id;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
            .expect("V links to M to subscribe");
            for i in 0..50u64 {
                let e = frame(h_dest, v_hash, i, event("test:forged:subscribed"));
                let _ = m
                    .channel_send(link, CHANNEL_MSGTYPE, &e, Duration::from_secs(10))
                    .await;
                let p = frame(
                    m_dest,
                    v_hash,
                    0xdead_0000 + i,
                    Body::Progress {
                        fraction: Some(0.5),
                        payload: b"{}".to_vec(),
                    },
                );
                let _ = m
                    .channel_send(link, CHANNEL_MSGTYPE, &p, Duration::from_secs(10))
                    .await;
            }
            m.emit("test:genuine:event", serde_json::json!({"from": "m"}))
                .await
                .unwrap();
        });
        let out = listen.join().unwrap();
        assert!(
            out.status.success(),
            "grid listen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });

    // Everything V recorded: the genuine event from M, nothing naming H, no progress.
    let (ok, out, err) = v.cli(&["listen", "*", "--recent", "--timeout", "1", "--json"]);
    assert!(ok, "grid listen --recent: {err}");
    let events: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "test:genuine:event" && e["node"] == m_dest.to_string().as_str()),
        "M's genuine event arrives: {events:?}"
    );
    let forged: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["node"] == h.destination.as_str()
                || e["event"]
                    .as_str()
                    .is_some_and(|n| n.contains("forged") || n.ends_with(":progress"))
        })
        .collect();
    assert!(forged.is_empty(), "forged frames were taken: {forged:?}");
    m.shutdown();
    assert_held("forged events", &mut v, h, before, peak, 96 * 1024);
}
