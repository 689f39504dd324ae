//! Attack on the genome: a peer that never identifies sends 200 `genome/search` requests
//! with the most thorough patience, eight in flight, while an honest node pings the
//! victim every 100 ms. V must never query its peers on the attacker's behalf (a third
//! node P, which holds an adapter and which V's own user's searches do reach, records no
//! search from V during the attack), must keep answering H, and must stay bounded in
//! memory. Each search is either denied (unidentified callers get read-only built-ins
//! only) or answered from V alone, rate limited. Then the attacker, which V has blocked,
//! tries to pull V's package without identifying (told to identify) and identified
//! (no answer at all).
//!
//! Needs the embedding model (`GRID_MODELS`, set up by scripts/test.sh): V and P run the
//! genome as `grid node` does.

mod common;

use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;
use grid::commands::FRAME_PATH;
use grid::frame::{Body, ErrorCode, GridFrame, Outcome};
use grid_genome::archive::PACKAGE_PATH;
use rns_core::rmpv::Value as Mp;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(40);
/// Searches the attacker sends, and how many at once.
const SEARCHES: usize = 200;
const IN_FLIGHT: usize = 8;

fn models() {
    if std::env::var_os("GRID_MODELS").is_none() {
        panic!("GRID_MODELS is not set: run `python3 tools/models_fetch.py .cache/models` and set GRID_MODELS=.cache/models (scripts/test.sh does this)");
    }
}

/// Publish a small adapter on `g`; its content hash.
fn publish(g: &Grid, name: &str, description: &str) -> String {
    let pkgs = TempDir::new("hostile-pkg");
    let dir = pkgs.0.join(name);
    grid_genome::package::write_test_package(
        &dir,
        name,
        "1.0.0",
        description,
        &["my chain keeps slipping"],
        4,
        32,
        2,
    )
    .unwrap();
    wait_for(T, "the genome service", || {
        g.cli(&["adapter", "list", "--json"]).0.then_some(())
    });
    let v = g.json(&["adapter", "publish", dir.to_str().unwrap()]);
    v["content_hash"].as_str().unwrap().to_string()
}

/// Audit entries of `g` for `genome/search` in `direction` ("in" or "out").
fn searches_in_audit(g: &Grid, direction: &str) -> usize {
    std::fs::read_to_string(g.dir.0.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["command"] == "genome/search" && e["direction"] == direction)
        .count()
}

/// How the attacker's searches were answered.
#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    denied: usize,
    rate_limited: usize,
    other: Vec<String>,
    slowest: Duration,
}

/// The attacker: an embedded node on V's listener that never identifies on its search
/// link. Runs the search flood, then the package pulls; returns what it saw.
fn attack(
    port: u16,
    v_dest: &str,
    package: &str,
    blocked: &std::sync::mpsc::Sender<String>,
    go: &std::sync::mpsc::Receiver<()>,
) -> Tally {
    let dir = attacker_dir("attacker", port);
    let rt = runtime();
    let v: rns_core::AddressHash = v_dest.parse().unwrap();
    let hash = hex::decode(package).unwrap();
    rt.block_on(async move {
        let a = grid::api::spawn(grid::state::StateDir::resolve(Some(&dir.0)))
            .await
            .expect("the attacker starts");
        // V blocks the attacker's identity before anything is asked.
        blocked.send(a.identity().to_string()).unwrap();
        go.recv_timeout(T).expect("V blocked the attacker");
        let up = a.open_link(v, T).await.expect("a link to V");
        let frame = |correlation: u64| {
            let params = json!({"query": "how do I fix my bicycle chain", "patience": "thorough",
                                "limit": 100});
            GridFrame {
                correlation,
                source: a.destination().0,
                target: v.0,
                timestamp_ms: grid::clock::now().as_millis(),
                ttl_ms: 0,
                body: Body::Request {
                    command: "genome/search".into(),
                    params: params.to_string().into_bytes(),
                },
            }
            .encode()
        };
        let mut tally = Tally::default();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..SEARCHES {
            if set.len() >= IN_FLIGHT {
                record(&mut tally, set.join_next().await.unwrap().unwrap(), v_dest);
            }
            let (a, bytes) = (a.clone(), frame(i as u64 + 1));
            set.spawn(async move {
                let started = Instant::now();
                let r = a.request(up.link, FRAME_PATH, Mp::Binary(bytes), T).await;
                (r, started.elapsed())
            });
        }
        while let Some(r) = set.join_next().await {
            record(&mut tally, r.unwrap(), v_dest);
        }

        // The package: not without identifying, and not at all once identified (blocked).
        let pull = |link| {
            let (a, h) = (a.clone(), hash.clone());
            async move {
                a.request(link, PACKAGE_PATH, Mp::Binary(h), Duration::from_secs(5))
                    .await
            }
        };
        let anonymous = pull(up.link)
            .await
            .expect("an unidentified pull is answered");
        match &anonymous {
            Mp::String(s) => assert!(
                s.as_str()
                    .unwrap_or_default()
                    .starts_with("identify on the link first"),
                "{s}"
            ),
            Mp::Binary(b) => panic!(
                "a blocked peer pulled the package ({} bytes) by not identifying",
                b.len()
            ),
            other => panic!("unexpected answer {other}"),
        }
        let other = a.open_link(v, T).await.expect("a second link");
        a.identify(other.link).await.unwrap();
        let identified = pull(other.link).await;
        assert!(
            identified.is_err(),
            "a blocked peer gets no answer: {:?}",
            identified.map(|v| if let Mp::Binary(b) = v {
                format!("{} bytes", b.len())
            } else {
                v.to_string()
            })
        );
        a.shutdown();
        tally
    })
}

fn record(tally: &mut Tally, (r, took): (Result<Mp, grid::Error>, Duration), v_dest: &str) {
    tally.slowest = tally.slowest.max(took);
    let bytes = match r {
        Ok(Mp::Binary(b)) => b,
        other => return tally.other.push(format!("{other:?}")),
    };
    let frame = match GridFrame::decode(&bytes) {
        Ok(f) => f,
        Err(e) => return tally.other.push(e.to_string()),
    };
    match frame.body {
        Body::Response(Outcome::Ok(json)) => {
            let v: Value = serde_json::from_slice(&json).unwrap_or(Value::Null);
            // Answered here alone: every result is V's own.
            for item in v.as_array().into_iter().flatten() {
                assert_eq!(
                    item["providers"],
                    json!([v_dest]),
                    "answered from V alone: {item}"
                );
            }
            tally.answered += 1;
        }
        Body::Response(Outcome::Err {
            code: ErrorCode::Denied,
            ..
        }) => tally.denied += 1,
        Body::Response(Outcome::Err {
            code: ErrorCode::Failed,
            message,
        }) if message.starts_with("rate limited: genome/search")
            && message.contains("try again in") =>
        {
            tally.rate_limited += 1
        }
        other => tally.other.push(format!("{other:?}")),
    }
}

#[test]
fn an_unidentified_flood_of_thorough_searches_never_fans_out() {
    let _slot = slot();
    models();
    let (mut v, port) = victim("");
    let v_dest = v.destination();
    let p = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    ));
    let p_dest = p.destination();
    publish(
        &p,
        "chain-doctor",
        "Fixes slipping bicycle chains and worn sprockets.",
    );
    let package = publish(
        &v,
        "bike-repair",
        "Fix bicycle brakes, gears and punctures.",
    );

    // Control: V's own user's search does reach P once P's announce is heard (P's
    // answer, not only the catalog gossip brought from P: `source` says which).
    wait_for(T, "V's own search reaches P", || {
        let found = v.json(&["skills", "search", "bicycle chain slipping", "--limit", "5"]);
        found
            .as_array()?
            .iter()
            .any(|i| {
                i["source"] == "peers"
                    && i["providers"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|x| x == p_dest.as_str()))
            })
            .then_some(())
    });
    let (p_searched, v_asked) = (searches_in_audit(&p, "in"), searches_in_audit(&v, "out"));
    assert!(p_searched > 0 && v_asked > 0, "the control search went out");

    let h = Honest::start(port, &v_dest);
    let (blocked_tx, blocked_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let attacker = {
        let (v_dest, package) = (v_dest.clone(), package.clone());
        std::thread::spawn(move || attack(port, &v_dest, &package, &blocked_tx, &go_rx))
    };
    let attacker_id = blocked_rx.recv_timeout(T).expect("the attacker's identity");
    let (ok, _, err) = v.cli(&["trust", &attacker_id, "blocked"]);
    assert!(ok, "grid trust: {err}");
    let before = before(&v);
    go_tx.send(()).unwrap();
    let started = Instant::now();
    let (tally, peak) = peak_rss_during(&v, || attacker.join().expect("the attacker"));
    eprintln!(
        "{SEARCHES} unidentified thorough searches in {:?}: {} answered from V alone, {} denied, {} rate limited, slowest {:?}; other: {:?}",
        started.elapsed(),
        tally.answered,
        tally.denied,
        tally.rate_limited,
        tally.slowest,
        tally.other
    );
    assert!(
        tally.other.is_empty(),
        "unexpected answers: {:?}",
        tally.other
    );
    assert_eq!(tally.answered + tally.denied + tally.rate_limited, SEARCHES);
    // Any search V answered was rate limited to a few: the shared bucket of
    // unidentified callers.
    assert!(tally.answered <= 40, "{} answered", tally.answered);
    // Thorough fan-out waits 8 s for peers: no answer took that long.
    assert!(
        tally.slowest < Duration::from_secs(8),
        "slowest {:?}",
        tally.slowest
    );
    // Nothing went to P on the attacker's behalf.
    let (p_after, v_after) = (searches_in_audit(&p, "in"), searches_in_audit(&v, "out"));
    eprintln!("P's genome/search audit entries: {p_searched} before, {p_after} after; V's outgoing: {v_asked} before, {v_after} after");
    assert_eq!(p_after, p_searched, "V searched P for the attacker");
    assert_eq!(v_after, v_asked, "V sent searches for the attacker");
    // The model is loaded (V published and searched): allow for it.
    assert_held(
        "200 unidentified thorough searches",
        &mut v,
        h,
        before,
        peak,
        320 * 1024,
    );
}
