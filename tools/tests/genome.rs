//! Skills on the mesh between real `grid node` processes: an adapter published on C is
//! found from A through B by what it does, fetched to A with its signature and content
//! hash verified, and then found on A alone; a tampered copy is refused and the next
//! provider tried; malformed packages are refused with the problem named; an adapter no
//! heard peer offers is found through the DHT; the embedding model runs in a worker
//! process the node outlives.
//!
//! Needs the embedding model (`GRID_MODELS`, set up by scripts/test.sh); fails loudly
//! without it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(40);

fn models() -> String {
    std::env::var("GRID_MODELS").unwrap_or_else(|_| {
        panic!("GRID_MODELS is not set: run `python3 tools/models_fetch.py .cache/models` and set GRID_MODELS=.cache/models (scripts/test.sh does this)")
    })
}

fn node(port: u16, server: bool, transport: bool) -> Grid {
    let iface = if server {
        format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"")
    } else {
        format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"")
    };
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\ntransport = {transport}\n[[interface]]\n{iface}\n"
    ))
}

fn write_package(dir: &std::path::Path, name: &str, description: &str, examples: &[&str]) {
    grid_genome::package::write_test_package(dir, name, "1.0.0", description, examples, 4, 32, 2)
        .unwrap();
}

/// A test's start: its slot, the models checked, a port for the transport node.
fn begin() -> (Slot, u16) {
    let s = slot();
    let _ = models();
    (s, free_port())
}

/// Wait until `g`'s genome has loaded (its genome/list answers).
fn genome_ready(g: &Grid) {
    wait_for(T, "the genome service", || {
        g.cli(&["adapter", "list", "--json"]).0.then_some(())
    });
}

#[test]
fn an_adapter_published_on_one_node_is_found_and_fetched_across_the_mesh() {
    let (_slot, port) = begin();
    let b = node(port, true, true);
    let a = node(port, false, false);
    let c = node(port, false, false);
    let mut d = node(port, false, false);
    for g in [&a, &b, &c, &d] {
        genome_ready(g);
    }
    let pkgs = TempDir::new("pkgs");
    let geo = pkgs.0.join("geometry");
    write_package(
        &geo,
        "geometry-tutor",
        "Explains triangle congruence and similarity and walks students through two-column geometry proofs step by step.",
        &["prove two triangles congruent", "what is the SAS rule"],
    );
    let other = pkgs.0.join("bikes");
    write_package(
        &other,
        "bicycle-repair",
        "Guides you through fixing punctures, adjusting brakes and gears, and maintaining a bicycle chain.",
        &["my chain keeps slipping"],
    );
    let v = c.json(&["adapter", "publish", geo.to_str().unwrap()]);
    let hash = v["content_hash"].as_str().unwrap().to_string();
    c.json(&["adapter", "publish", other.to_str().unwrap()]);

    // A finds it by what it does, through B, once C's announce says it holds adapters.
    let c_dest = c.destination();
    let search = |patience: &str| {
        a.json(&[
            "skills",
            "search",
            "how do I show two shapes with three sides are the same size",
            "--limit",
            "3",
            "--patience",
            patience,
        ])
    };
    // (C's own answer, `source` peers: the catalog may bring the entry before A has
    // heard C announce.)
    let found: Value = wait_for(T, "A finds the adapter on C", || {
        let v = search("quick");
        let top = v.as_array()?.first()?.clone();
        (top["content_hash"] == hash.as_str()
            && top["source"] == "peers"
            && top["providers"]
                .as_array()?
                .iter()
                .any(|p| p == c_dest.as_str()))
        .then_some(top)
    });
    assert_eq!(found["name"], "geometry-tutor");
    assert!(found["score"].as_f64().unwrap() > 0.3, "{found}");

    // Catalog gossip carried C's entries to B and from B to A: a search that asks no one
    // (`immediate`) finds it there, scored here, and says so.
    let listed: Value = wait_for(T, "A finds it in its catalog", || {
        let v = search("immediate");
        let top = v.as_array()?.first()?.clone();
        (top["content_hash"] == hash.as_str()).then_some(top)
    });
    assert_eq!(listed["source"], "catalog", "{listed}");
    assert_eq!(
        listed["hops"], 2,
        "C, heard by now, is two hops from A: {listed}"
    );
    assert!(listed["providers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == c_dest.as_str()));
    assert!(listed["score"].as_f64().unwrap() > 0.3, "{listed}");
    let catalog = a.json(&["catalog"]);
    let names: Vec<&str> = catalog["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("geometry-tutor@")),
        "{catalog}"
    );

    // D fetches it first, then its copy is tampered with: A must refuse D's copy, and
    // take C's when both are named. (Alone first: with both named, A tries whichever link
    // comes up first, so D's copy is not always the one tried.)
    let v = d.json(&["adapter", "fetch", &hash, "--from", &c_dest]);
    assert_eq!(v["content_hash"], hash.as_str());
    assert_eq!(v["found_by"], "given");
    let weights = d
        .dir
        .0
        .join("genome/packages")
        .join(&hash)
        .join("adapter_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let d_dest = d.destination();
    refused_from(&a, &hash, &d_dest, "manifest says");
    assert!(
        a.log().contains("fetch failed"),
        "the failed attempt is logged"
    );
    let v = a.json(&[
        "adapter", "fetch", &hash, "--from", &d_dest, "--from", &c_dest,
    ]);
    assert_eq!(v["content_hash"], hash.as_str());
    assert_eq!(
        v["provider"],
        c_dest.as_str(),
        "the tampered copy was refused: {v}"
    );
    // Nothing half-written remains from the refused attempt.
    no_scratch_files(&a);

    // A forged signature is refused too: D's manifest now carries a signature by no one.
    let manifest_path = d
        .dir
        .0
        .join("genome/packages")
        .join(&hash)
        .join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let sig = m["signature"].as_str().unwrap().to_string();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    m["signature"] = Value::String(format!("{flipped}{}", &sig[1..]));
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    a.json(&["adapter", "remove", &hash]);
    refused_from(&a, &hash, &d_dest, "signature does not verify");
    let v = a.json(&[
        "adapter", "fetch", &hash, "--from", &d_dest, "--from", &c_dest,
    ]);
    assert_eq!(
        v["provider"],
        c_dest.as_str(),
        "the forged signature was refused: {v}"
    );

    // Now A finds it on its own.
    let v = a.json(&[
        "skills",
        "search",
        "geometry proofs with triangles",
        "--patience",
        "immediate",
    ]);
    let top = &v.as_array().unwrap()[0];
    assert_eq!(top["content_hash"], hash.as_str());
    // Held here now (the catalog adds the other nodes that hold it too).
    assert_eq!(top["providers"][0], a.destination().as_str(), "{top}");
    assert_eq!((&top["source"], &top["hops"]), (&json!("local"), &json!(0)));
    let (ok, out, _) = a.cli(&["adapter", "show", "geometry-tutor"]);
    assert!(ok && out.contains(&hash), "{out}");

    // A provider that stopped answering: D is killed (A still holds a path to it), and a
    // fetch naming D first moves on to C once D's link attempt times out.
    d.kill();
    a.json(&["adapter", "remove", &hash]);
    let started = std::time::Instant::now();
    let v = a.json(&[
        "adapter", "fetch", &hash, "--from", &d_dest, "--from", &c_dest,
    ]);
    assert_eq!(
        v["provider"],
        c_dest.as_str(),
        "past the dead provider: {v}"
    );
    eprintln!("fetch past a dead provider took {:?}", started.elapsed());
}

/// `a` fetching `hash` from `provider` alone fails, naming the provider and `why`, and
/// leaves nothing half-written behind.
fn refused_from(a: &Grid, hash: &str, provider: &str, why: &str) {
    let (ok, out, err) = a.cli(&["adapter", "fetch", hash, "--from", provider]);
    assert!(!ok, "a bad copy was taken: {out}");
    assert!(err.contains(provider) && err.contains(why), "{err}");
    no_scratch_files(a);
}

/// Nothing half-written is left in `a`'s incoming directory.
fn no_scratch_files(a: &Grid) {
    let incoming = a.dir.0.join("genome/incoming");
    assert!(
        std::fs::read_dir(&incoming).map_or(true, |mut d| d.next().is_none()),
        "scratch files left behind"
    );
}

#[test]
fn malformed_packages_are_refused_with_the_problem_named() {
    let (_slot, port) = begin();
    let g = node(port, true, false);
    genome_ready(&g);
    let pkgs = TempDir::new("bad");
    let good = pkgs.0.join("good");
    write_package(
        &good,
        "good-one",
        "Answers questions about the water cycle.",
        &[],
    );
    type Spoil = Box<dyn Fn(&std::path::Path)>;
    let cases: Vec<(&str, Spoil, &str)> = vec![
        (
            "no-toml",
            Box::new(|d| std::fs::remove_file(d.join("adapter.toml")).unwrap()),
            "adapter.toml",
        ),
        (
            "no-weights",
            Box::new(|d| std::fs::remove_file(d.join("adapter_model.safetensors")).unwrap()),
            "adapter_model.safetensors",
        ),
        (
            "bad-config",
            Box::new(|d| std::fs::write(d.join("adapter_config.json"), "{not json").unwrap()),
            "adapter_config.json",
        ),
        (
            "empty-description",
            Box::new(|d| {
                let t = std::fs::read_to_string(d.join("adapter.toml")).unwrap();
                let t: String = t
                    .lines()
                    .map(|l| {
                        if l.starts_with("description") {
                            "description = \"  \"\n".to_string()
                        } else {
                            format!("{l}\n")
                        }
                    })
                    .collect();
                std::fs::write(d.join("adapter.toml"), t).unwrap();
            }),
            "description",
        ),
        (
            "bad-header",
            Box::new(|d| {
                std::fs::write(
                    d.join("adapter_model.safetensors"),
                    b"\x10\0\0\0\0\0\0\0{not a header}",
                )
                .unwrap()
            }),
            "adapter_model.safetensors",
        ),
    ];
    for (name, spoil, needle) in cases {
        let dir = pkgs.0.join(name);
        write_package(&dir, name, "Answers questions about the water cycle.", &[]);
        spoil(&dir);
        let (ok, _, err) = g.cli(&["adapter", "publish", dir.to_str().unwrap()]);
        assert!(!ok, "{name} was accepted");
        assert!(err.contains(needle), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
    }
    let v = g.json(&["adapter", "list"]);
    assert_eq!(v, json!([]), "nothing half-written");
    let packages = g.dir.0.join("genome/packages");
    assert_eq!(std::fs::read_dir(&packages).unwrap().count(), 0);
    g.json(&["adapter", "publish", good.to_str().unwrap()]);
    let (ok, _, err) = g.cli(&["adapter", "publish", good.to_str().unwrap()]);
    assert!(!ok && err.contains("already published"), "{err}");
}

/// A node that joins after the provider announced (announces every hour) has heard only
/// the transport node, which holds no adapters: no heard peer offers the package, so the
/// fetch looks its hash up in the DHT, where the provider put it when it published, and
/// fetches it from the node named there.
#[test]
fn an_adapter_no_heard_peer_offers_is_found_through_the_dht() {
    let (_slot, port) = begin();
    let b = node(port, true, true);
    let c = node(port, false, false);
    genome_ready(&b);
    genome_ready(&c);
    let (_pkgs, dir) = tide_package();
    let hash = c.json(&["adapter", "publish", dir.to_str().unwrap()])["content_hash"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(T, "C provides the package in the DHT", || {
        c.log().contains("provided in the DHT").then_some(())
    });

    let mut f = node(port, false, false);
    genome_ready(&f);
    wait_for(T, "F hears the transport node", || {
        let peers = f.status()["peers"].as_array()?.clone();
        (!peers.is_empty()).then_some(())
    });
    let c_dest = c.destination();
    let peers = f.status()["peers"].clone();
    assert!(
        !peers.to_string().contains(&c_dest),
        "F heard C announce, so this would not test the DHT: {peers}"
    );

    let v = f.json(&["adapter", "fetch", &hash]);
    assert_eq!(v["content_hash"], hash.as_str());
    assert_eq!(v["found_by"], "dht", "{v}");
    assert_eq!(v["provider"], c_dest.as_str(), "{v}");
    let (ok, out, _) = f.cli(&["adapter", "show", "tide-tables"]);
    assert!(ok && out.contains(&hash), "{out}");
    // F now provides it too, and again when it starts holding it.
    let provided = |g: &Grid| {
        g.log()
            .lines()
            .filter(|l| l.contains("provided in the DHT") && l.contains(&hash))
            .count()
    };
    wait_for(T, "F provides the fetched package", || {
        (provided(&f) == 1).then_some(())
    });
    f.restart();
    genome_ready(&f);
    wait_for(T, "F provides the package it holds at start", || {
        (provided(&f) == 2).then_some(())
    });

    // A hash nobody has: the error names both places searched and the fix.
    let nobody = "ab".repeat(32);
    let (ok, _, err) = f.cli(&["adapter", "fetch", &nobody]);
    assert!(!ok);
    for needle in [
        "no heard peer has it",
        "the DHT names no provider",
        "--from",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // --via peers skips the DHT.
    let (ok, _, err) = f.cli(&["adapter", "fetch", &nobody, "--via", "peers"]);
    assert!(!ok && err.contains("no heard peer has it"), "{err}");
    assert!(!err.contains("DHT"), "{err}");
}

/// Models run outside the node (DESIGN decision 6): a search starts an embedding worker,
/// the node outlives it being killed (as the kernel's OOM killer would), and the next
/// search starts another and still finds by meaning.
#[test]
fn the_embedding_model_runs_in_a_worker_that_the_node_outlives() {
    let (_slot, port) = begin();
    let g = node(port, true, false);
    genome_ready(&g);
    assert!(
        workers_of(g.pid()).is_empty(),
        "no worker before anything needs the model"
    );
    let (_pkgs, dir) = tide_package();
    g.json(&["adapter", "publish", dir.to_str().unwrap()]);
    let search = || {
        g.json(&[
            "skills",
            "search",
            "ocean water level forecasts",
            "--patience",
            "immediate",
        ])
    };
    let v = search();
    assert_eq!(v[0]["name"], "tide-tables", "{v}");
    let first = workers_of(g.pid());
    assert_eq!(first.len(), 1, "one worker: {first:?}");
    let status = std::process::Command::new("kill")
        .args(["-9", &first[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let v = search();
    assert_eq!(v[0]["name"], "tide-tables", "found by meaning again: {v}");
    let second = workers_of(g.pid());
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "a new worker");
    assert!(g.status()["interfaces"].is_array(), "the node is up");
    assert!(
        g.log().contains("embedding worker stopped"),
        "the crash is logged"
    );
}

/// A node without the embedding model still finds skills by keywords, and `grid skills
/// search` says why it is not searching by meaning and how to fix it (it used to print
/// only "nothing found", the reason being in the node's log).
#[test]
fn search_without_the_model_says_so_and_names_the_fix() {
    let _slot = slot();
    let empty = TempDir::new("no-models");
    let g = Grid::start_with_env(
        &format!(
            "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        ),
        &[("GRID_MODELS", empty.0.to_str().unwrap())],
    );
    wait_for(Duration::from_secs(30), "the genome service", || {
        g.cli(&["adapter", "list", "--json"]).0.then_some(())
    });
    let info = g.json(&["exec", "local-only", "genome/info"]);
    assert_eq!(info["result"]["semantic_search"], false, "{info}");
    assert!(
        info["result"]["fix"]
            .as_str()
            .unwrap()
            .contains("grid models fetch"),
        "{info}"
    );
    let (ok, out, err) = g.cli(&["skills", "search", "grade essays"]);
    assert!(ok, "{err}");
    assert!(out.contains("nothing found"), "{out}");
    assert!(
        err.contains("searches by keywords only") && err.contains("grid models fetch"),
        "{err}"
    );
}
