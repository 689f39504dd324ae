//! Attack: a flood of frames the victim refuses anyway (commands nobody may run), meant
//! to rotate the audit log's history away. Records of refused frames are rate limited
//! per peer and per node, so the log grows by a bounded amount and keeps its history.

mod common;

use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;
use grid::frame::{Body, ErrorCode, GridFrame, Outcome};
use rns_core::{rmpv, AddressHash};

const FRAMES: u64 = 2000;

fn audit_lines(v: &Grid) -> usize {
    std::fs::read_to_string(v.dir.0.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_flood_of_refused_frames_cannot_rotate_the_audit_log_away() {
    let _slot = slot();
    let (mut v, port) = victim("");
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let lines_before = audit_lines(&v);
    let v_hash: AddressHash = v_dest.parse().unwrap();
    let m_dir = attacker_dir("auditflood", port);
    let rt = runtime();
    let started = Instant::now();
    let (denied, peak) = peak_rss_during(&v, || {
        rt.block_on(async {
            let m = grid::api::spawn(grid::state::StateDir::resolve(Some(&m_dir.0)))
                .await
                .expect("the attacker node starts");
            let link = m.link_to(v_hash, Duration::from_secs(20)).await.unwrap();
            let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
            let mut set = tokio::task::JoinSet::new();
            for i in 0..FRAMES {
                let (m, gate) = (m.clone(), gate.clone());
                set.spawn(async move {
                    let _p = gate.acquire().await;
                    let f = GridFrame {
                        correlation: i + 1,
                        source: m.destination().0,
                        target: v_hash.0,
                        timestamp_ms: grid::clock::wall_ms(),
                        ttl_ms: 60_000,
                        body: Body::Request {
                            command: "test/nobody-may".into(),
                            params: Vec::new(),
                        },
                    };
                    let answer = m
                        .request(
                            link,
                            grid::commands::FRAME_PATH,
                            rmpv::Value::Binary(f.encode()),
                            Duration::from_secs(30),
                        )
                        .await;
                    matches!(answer, Ok(rmpv::Value::Binary(b))
                        if matches!(GridFrame::decode(&b).map(|f| f.body),
                            Ok(Body::Response(Outcome::Err { code: ErrorCode::Denied, .. }))))
                });
            }
            let mut denied = 0u64;
            while let Some(r) = set.join_next().await {
                denied += u64::from(r.unwrap());
            }
            m.shutdown();
            denied
        })
    });
    let elapsed = started.elapsed().as_secs_f64();
    let added = audit_lines(&v) - lines_before;
    // One peer: 20 at once, then 10 a second (H's pings are recorded too: 10 a second).
    let allowed = (20.0 + 10.0 * elapsed) + (10.0 * elapsed + 20.0);
    eprintln!(
        "{denied} of {FRAMES} frames denied in {elapsed:.1} s; the audit log grew by {added} records (at most {allowed:.0} allowed)"
    );
    assert_eq!(denied, FRAMES, "every frame is still answered Denied");
    assert!(
        (added as f64) <= allowed,
        "the audit log grew by {added} records"
    );
    assert_held("2,000 refused frames", &mut v, h, before, peak, 96 * 1024);
}
