//! Attack: 32 links at once from a Python RNS peer, each sending four 16 MB requests of zeros
//! on `grid/frame` (accepted whatever the resource policy). RNS sends each as 16
//! bz2-compressed segments of a few hundred bytes that decompress to about 1 MiB each,
//! while an honest node pings the victim every 100 ms. The victim budgets what incoming
//! resources decompress to (per link and node-wide) and rejects advertisements beyond
//! it, so memory stays bounded and the honest node keeps being answered. (Without the
//! budget V answered all 128 requests and peaked at about 600 MiB.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

use common::hostile::*;
use common::*;
use serde_json::Value;

/// Links the attacker opens at once.
const LINKS: usize = 32;
/// Bytes of zeros each link sends as one request.
const SIZE: usize = 16_000_000;
/// Requests each link sends, one after another.
const ROUNDS: usize = 4;
/// How long the attacker waits for its requests. Python RNS registers an outgoing
/// resource only after sending its advertisement, so a rejection that comes back fast
/// is occasionally missed and that request never concludes; the attack then ends here.
const ATTACK_TIMEOUT_S: u64 = 30;
/// V's peak resident memory allowed (KiB).
const RSS_LIMIT_KIB: u64 = 200 * 1024;

#[test]
fn compressed_resources_do_not_exhaust_the_victim() {
    let _slot = slot();
    let (mut v, port) = victim("");
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let (summary, peak) = peak_rss_during(&v, || {
        let dir = TempDir::new("attacker");
        let mut child = Command::new(python())
            .arg(workspace().join("tests/hostile/resource_flood.py"))
            .args(["--dir", &dir.0.to_string_lossy()])
            .args(["--target", &format!("127.0.0.1:{port}")])
            .args(["--destination", &v_dest])
            .args(["--links", &LINKS.to_string(), "--size", &SIZE.to_string()])
            .args(["--rounds", &ROUNDS.to_string()])
            .args(["--timeout", &ATTACK_TIMEOUT_S.to_string()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
            .spawn()
            .expect("spawn the attacker");
        let (tx, rx) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let mut summary = Value::Null;
        let mut most_links = 0;
        while let Ok(e) = rx.recv_timeout(Duration::from_secs(ATTACK_TIMEOUT_S + 60)) {
            if e["event"] == "done" {
                summary = e;
                break;
            }
            if e["event"] == "link" {
                let links = v.status()["links"].as_array().map_or(0, |l| l.len());
                most_links = most_links.max(links);
            }
        }
        let _ = child.wait();
        let stderr = std::fs::read_to_string(dir.0.join("stderr.log")).unwrap_or_default();
        assert!(
            summary["event"] == "done" && summary["error"].is_null(),
            "the attacker did not finish: {summary}\n{stderr}"
        );
        let concluded =
            summary["answered"].as_u64().unwrap_or(0) + summary["failed"].as_u64().unwrap_or(0);
        eprintln!(
            "attacker: {summary} ({} of {} requests unconcluded); V held up to {most_links} links",
            (LINKS * ROUNDS) as u64 - concluded,
            LINKS * ROUNDS
        );
        summary
    });
    assert_held(
        "32 links × 4 × 16 MB compressed requests",
        &mut v,
        h,
        before,
        peak,
        RSS_LIMIT_KIB,
    );
    assert_eq!(
        summary["links"].as_u64(),
        Some(LINKS as u64),
        "every attacking link was established"
    );
    assert!(
        summary["failed"].as_u64().unwrap_or(0) > 0,
        "the budget refused some of the requests"
    );
}
