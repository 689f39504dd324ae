#![cfg(not(feature = "llm"))]
//! (With the `llm` feature the compute nodes here would run the model: `tests/llm.rs`.)
//! `grid ask` between real `grid node` processes: A (no compute) finds the adapter B
//! holds by what it does, places the job by the compute offers (C is idle, B busy; the
//! readings injected through `[governor] system_root`), and says so with `--dry-run`.
//! Without `--dry-run` every compute node answers that it cannot run models (this build
//! has no inference yet), and `grid ask` says which nodes it tried and why.
//!
//! Needs the embedding model (`GRID_MODELS`, set up by scripts/test.sh); fails loudly
//! without it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// A stand-in `/proc` with plenty of memory and a one-minute load of `load1`.
fn machine(tag: &str, load1: f32) -> TempDir {
    let d = TempDir::new(tag);
    std::fs::create_dir_all(d.0.join("proc")).unwrap();
    std::fs::write(
        d.0.join("proc/meminfo"),
        format!("MemTotal: {} kB\nMemAvailable: {} kB\n", 8 << 20, 6 << 20),
    )
    .unwrap();
    std::fs::write(d.0.join("proc/loadavg"), format!("{load1:.2} 0 0 1/1 1\n")).unwrap();
    d
}

fn node(iface: &str, compute: Option<&TempDir>) -> Grid {
    let compute = compute.map_or(String::new(), |root| {
        format!(
            "[compute]\nenabled = true\n[governor]\nsystem_root = \"{}\"\n",
            root.0.display()
        )
    });
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n{compute}[[interface]]\n{iface}\n"
    ))
}

fn identity(g: &Grid) -> String {
    g.id()["identity"].as_str().unwrap().to_string()
}

#[test]
fn grid_ask_finds_the_skill_places_the_job_and_says_why() {
    let _slot = slot();
    let _ = std::env::var("GRID_MODELS").unwrap_or_else(|_| {
        panic!("GRID_MODELS is not set: run `python3 tools/models_fetch.py .cache/models` (scripts/test.sh does this)")
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
    let (busy, idle) = (machine("ask-b", cores * 0.9), machine("ask-c", 0.0));
    let port = free_port();
    let a = node(
        &format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""),
        None,
    );
    let client = format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"");
    let b = node(&client, Some(&busy));
    let c = node(&client, Some(&idle));
    for g in [&a, &b, &c] {
        wait_for(T, "the genome service", || {
            g.cli(&["adapter", "list", "--json"]).0.then_some(())
        });
    }
    for peer in [&b, &c] {
        a.json(&["trust", &identity(peer), "trusted"]);
        peer.json(&["trust", &identity(&a), "trusted"]);
    }
    let (_pkgs, dir) = tide_package();
    let published = b.json(&["adapter", "publish", dir.to_str().unwrap()]);
    let hash = published["content_hash"].as_str().unwrap().to_string();

    let plan = wait_for(T, "a plan on C, the idle compute node", || {
        let (ok, out, _) = a.cli(&["ask", "ocean water level forecasts", "--dry-run", "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (ok && v["plan"]["node"] == c.destination() && v["alternatives"].as_array()?.len() == 1)
            .then_some(v)
    });
    assert_eq!(plan["adapter"]["name"], "tide-tables", "{plan}");
    assert_eq!(plan["adapter"]["content_hash"], hash.as_str());
    assert_eq!(plan["plan"]["here"], false);
    assert!(
        plan["plan"]["why"]
            .as_str()
            .unwrap()
            .starts_with("first of 2"),
        "{plan}"
    );
    assert_eq!(
        plan["plan"]["adapter_fetched_from"],
        serde_json::json!([b.destination()]),
        "C fetches the adapter from B"
    );
    let alt = &plan["alternatives"][0];
    assert_eq!(alt["node"], b.destination());
    assert_eq!(alt["adapter_fetched_from"], Value::Null, "B holds it");
    let human = a
        .cli(&["ask", "ocean water level forecasts", "--dry-run"])
        .1;
    assert!(
        human.contains("Would run on:") && human.contains("tide-tables"),
        "{human}"
    );

    // Running it: both compute nodes answer that this build cannot run models (the
    // default build has no inference), and the answer names the nodes tried and the fix.
    let (ok, out, err) = a.cli(&[
        "ask",
        "ocean water level forecasts",
        "--prompt",
        "When is the next high tide?",
    ]);
    assert!(!ok, "{out}");
    assert!(err.contains("no node ran ai/generate"), "{err}");
    assert!(
        err.contains(&c.destination()) && err.contains(&b.destination()),
        "{err}"
    );
    assert!(err.contains("built without inference"), "{err}");
    assert!(err.contains("--features llm"), "{err}");
    // A node without compute is never asked: the plan never names A.
    assert!(!err.contains(&a.destination()), "{err}");
}
