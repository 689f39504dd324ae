//! The genome service between two nodes embedded in one process: who gets packages, and
//! rate limits on `genome/search` from peers.
//!
//! Uses the embedding model when `GRID_MODELS` names it, keyword search otherwise (the
//! rules checked here do not depend on it).

use std::time::Duration;

use grid::api::{self, NodeHandle};
use grid::frame::ErrorCode;
use grid::state::StateDir;
use grid::trust::TrustLevel;
use grid::Error;
use grid_genome::archive::{Archive, PACKAGE_PATH};
use grid_genome::service::{Genome, PACKAGE_LIMITS, SEARCH_LIMITS};
use grid_test_support::{free_port, TempDir};
use rns_core::rmpv::Value;

const T: Duration = Duration::from_secs(20);

fn node_dir(tag: &str, iface: &str) -> TempDir {
    let d = TempDir::new(&format!("genome-serve-{tag}"));
    std::fs::write(
        d.0.join("config.toml"),
        format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\n{iface}\n"
        ),
    )
    .unwrap();
    d
}

/// V (with the genome and one adapter) and P (a plain node), connected over TCP.
async fn nodes(tag: &str) -> (NodeHandle, NodeHandle, String, Vec<TempDir>) {
    let port = free_port();
    let dv = node_dir(
        &format!("{tag}-v"),
        &format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""),
    );
    let dp = node_dir(
        &format!("{tag}-p"),
        &format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\""),
    );
    let state = StateDir::resolve(Some(&dv.0));
    let v = api::spawn(state.clone()).await.unwrap();
    let p = api::spawn(StateDir::resolve(Some(&dp.0))).await.unwrap();
    let g = Genome::start(v.clone(), &state).await.unwrap();
    let pkg = dv.0.join("pkg");
    grid_genome::package::write_test_package(
        &pkg,
        "bike-repair",
        "1.0.0",
        "Fix bicycle brakes, gears and punctures.",
        &["my chain keeps slipping"],
        4,
        16,
        1,
    )
    .unwrap();
    let identity = state.load_or_create_identity().unwrap();
    let hash = g
        .registry()
        .lock()
        .unwrap()
        .publish(&pkg, &identity, 1)
        .unwrap()
        .hash_hex();
    (v, p, hash, vec![dv, dp])
}

fn hash_value(hash: &str) -> Value {
    Value::Binary(hex::decode(hash).unwrap())
}

fn refusal(v: &Value) -> &str {
    match v {
        Value::String(s) => s.as_str().unwrap(),
        other => panic!("expected a refusal, got {}", kind(other)),
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Binary(b) => format!("{} bytes", b.len()),
        other => format!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_go_to_identified_callers_that_are_not_blocked() {
    let (v, p, hash, _dirs) = nodes("pkg").await;
    let up = p.open_link(v.destination(), T).await.unwrap();
    let ask = |link| {
        let p = p.clone();
        let h = hash_value(&hash);
        async move { p.request(link, PACKAGE_PATH, h, T).await }
    };

    // Unidentified: told to identify, nothing served.
    let answer = ask(up.link).await.unwrap();
    assert!(
        refusal(&answer).starts_with("identify on the link first"),
        "{}",
        kind(&answer)
    );
    // Identified: the package, intact.
    p.identify(up.link).await.unwrap();
    let Value::Binary(bytes) = ask(up.link).await.unwrap() else {
        panic!("no package")
    };
    let archive = Archive::decode(&bytes).unwrap();
    assert!(!archive.weights.is_empty());
    // A hash not held here: said so, at once.
    let other = p
        .request(up.link, PACKAGE_PATH, Value::Binary(vec![7; 32]), T)
        .await
        .unwrap();
    assert!(
        refusal(&other).starts_with("no adapter"),
        "{}",
        kind(&other)
    );
    let junk = p
        .request(up.link, PACKAGE_PATH, Value::from("junk"), T)
        .await
        .unwrap();
    assert!(refusal(&junk).contains("content hash"), "{}", kind(&junk));

    // Blocked: no answer at all, identified or not.
    v.set_trust(p.identity(), TrustLevel::Blocked)
        .await
        .unwrap();
    let short = Duration::from_secs(3);
    assert!(p
        .request(up.link, PACKAGE_PATH, hash_value(&hash), short)
        .await
        .is_err());
    let fresh = p.open_link(v.destination(), T).await.unwrap();
    let answer = ask(fresh.link).await.unwrap();
    assert!(
        refusal(&answer).starts_with("identify on the link first"),
        "a blocked peer that does not identify gets no package: {}",
        kind(&answer)
    );

    // Unblocked: pulls are rate limited per caller (two were taken above; blocked
    // attempts took none).
    v.set_trust(p.identity(), TrustLevel::Provisional)
        .await
        .unwrap();
    let mut served = 2;
    let mut limited = None;
    for _ in 0..PACKAGE_LIMITS.caller.burst + 2 {
        match ask(up.link).await.unwrap() {
            Value::Binary(_) => served += 1,
            other => {
                limited = Some(refusal(&other).to_string());
                break;
            }
        }
    }
    let limited = limited.expect("pulls are rate limited");
    assert!(
        limited.starts_with("rate limited: genome/package") && limited.contains("try again in"),
        "{limited}"
    );
    assert!(served <= PACKAGE_LIMITS.caller.burst + 1, "{served} served");
    v.shutdown();
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_from_a_peer_are_rate_limited_with_a_typed_error() {
    let (v, p, hash, _dirs) = nodes("search").await;
    let dest = v.destination();
    let params = serde_json::json!({"query": "bicycle brakes", "patience": "thorough"});
    let first = p.execute(dest, "genome/search", &params, T).await.unwrap();
    assert_eq!(first[0]["content_hash"], hash.as_str());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..3 * SEARCH_LIMITS.caller.burst {
        let (p, params) = (p.clone(), params.clone());
        set.spawn(async move { p.execute(dest, "genome/search", &params, T).await });
    }
    let (mut ok, mut limited) = (0, Vec::new());
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Remote { code, message }) => {
                assert_eq!(code, ErrorCode::Failed, "{message}");
                limited.push(message);
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("{ok} answered, {} rate limited", limited.len());
    assert!(!limited.is_empty(), "a burst of searches is rate limited");
    assert!(
        limited
            .iter()
            .all(|m| m.starts_with("rate limited: genome/search") && m.contains("try again in")),
        "{limited:?}"
    );
    // The node's own user is not limited.
    let mine = serde_json::json!({"query": "bicycle brakes", "patience": "immediate"});
    for _ in 0..3 * SEARCH_LIMITS.caller.burst {
        let r = v.execute(dest, "genome/search", &mine, T).await.unwrap();
        assert_eq!(r[0]["content_hash"], hash.as_str());
    }
    v.shutdown();
    p.shutdown();
}
