//! The simulator as users run it: `grid-netsim run <scenario> --json`, reproducible byte
//! for byte, with the DHT's goals met on the churn scenarios the test suite runs (nodes
//! leaving, joining, and coming back with and without their state) and the
//! flood search's on a 200-node graph, catalog gossip on a 30-node one, and gossip over
//! the LoRa link model on a 30-node mesh, catalog gossip healing a partition, and gossip
//! on the whole stack (a real transport per node) on 30, with nodes unplugged too.

use std::path::Path;
use std::process::Command;

fn run(scenario: &str, seed: u64) -> (String, serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(scenario);
    let out = Command::new(env!("CARGO_BIN_EXE_grid-netsim"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--seed",
            &seed.to_string(),
            "--json",
        ])
        .output()
        .expect("grid-netsim runs");
    assert!(
        out.status.success(),
        "grid-netsim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v = serde_json::from_str(&text).expect("the output is JSON");
    (text, v)
}

#[test]
fn the_same_scenario_and_seed_give_the_same_output() {
    let (a, _) = run("dht-1k-churn.toml", 7);
    let (b, _) = run("dht-1k-churn.toml", 7);
    assert_eq!(a, b);
    let (c, _) = run("dht-1k-churn.toml", 8);
    assert_ne!(a, c, "another seed, another run");
}

#[test]
fn dht_lookups_succeed_through_churn_in_few_hops() {
    let (_, v) = run("dht-1k-churn.toml", 1);
    let f = &v["figures"];
    assert_eq!(f["nodes_left"], 200);
    assert_eq!(f["nodes_joined"], 100);
    assert!(f["lookups"].as_u64().unwrap() >= 290, "{f}");
    assert!(
        f["messages_lost"].as_u64().unwrap() > 0,
        "the network loses messages"
    );
    for g in v["goals"].as_array().unwrap() {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}

#[test]
fn dht_nodes_that_come_back_with_and_without_their_state_find_providers() {
    let (a, v) = run("dht-1k-returns.toml", 1);
    let (b, _) = run("dht-1k-returns.toml", 1);
    assert_eq!(a, b, "same seed, same bytes");
    let f = &v["figures"];
    assert_eq!(f["nodes_left"], 300);
    // About a third of those that left came back each way, 60 s later.
    for kind in ["with_state", "without_state"] {
        let back = f[format!("nodes_returned_{kind}")].as_u64().unwrap();
        assert!((70..=130).contains(&back), "{kind}: {f}");
        // Lookups started by those nodes after they came back found a live provider.
        let from = &f[format!("from_returned_{kind}")];
        assert!(from["lookups"].as_u64().unwrap() >= 10, "{kind}: {from}");
        assert!(
            from["success_rate"].as_f64().unwrap() >= 0.95,
            "{kind}: {from}"
        );
    }
    for g in v["goals"].as_array().unwrap() {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}

#[test]
fn flood_runs_are_reproducible_and_meet_their_goals_on_200_nodes() {
    let (a, v) = run("flood-200.toml", 3);
    let (b, _) = run("flood-200.toml", 3);
    assert_eq!(a, b, "same seed, same bytes");
    let (c, _) = run("flood-200.toml", 4);
    assert_ne!(a, c, "another seed, another run");
    let f = &v["figures"];
    assert_eq!(f["graph"]["topology"], "random-regular");
    assert_eq!(f["graph"]["mean_degree"], 6.0);
    assert!(
        f["graph"]["diameter_estimate"].as_u64().unwrap() >= 3,
        "{f}"
    );
    let levels = &f["by_patience"];
    for p in ["instant", "quick", "thorough", "exhaustive"] {
        let l = &levels[p];
        assert_eq!(l["searches"], 50, "{p}: {l}");
        // The budget carried in the query bounds its query messages.
        assert!(
            l["query_messages_p50"].as_u64().unwrap() <= l["message_budget"].as_u64().unwrap(),
            "{p}: {l}"
        );
    }
    // More patience, more found.
    let rate = |p: &str| levels[p]["success_rate"].as_f64().unwrap();
    assert!(rate("instant") < rate("quick") && rate("quick") < rate("thorough"));
    assert!(
        levels["instant"]["hops_to_first_answer_p99"]
            .as_u64()
            .unwrap()
            <= 1
    );
    assert!(
        f["messages_lost"].as_u64().unwrap() > 0,
        "the network loses messages"
    );
    let goals = v["goals"].as_array().unwrap();
    assert_eq!(goals.len(), 2);
    for g in goals {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}

#[test]
fn a_bad_scenario_is_refused_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("netsim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "name = \"x\"\n[network]\nnodes = 1\n[dht]\nkeys = 1\nlookups = 1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_grid-netsim"))
        .args(["run", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("network.nodes"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gossip_runs_are_reproducible_and_reconciliation_costs_a_fraction_of_the_origin_scheme() {
    let (a, v) = run("gossip-30.toml", 5);
    let (b, _) = run("gossip-30.toml", 5);
    assert_eq!(a, b, "same seed, same bytes");
    let (c, _) = run("gossip-30.toml", 6);
    assert_ne!(a, c, "another seed, another run");
    let f = &v["figures"];
    assert_eq!(f["entries_at_start"], 150);
    let (r, o) = (&f["reconciliation"], &f["origin_scheme"]);
    for scheme in [r, o] {
        assert_eq!(scheme["converged"], true, "{f}");
        assert_eq!(scheme["entries_everywhere"], 10, "{f}");
    }
    assert!(
        f["reconciliation"]["messages_lost"].as_u64().unwrap() > 0,
        "the network loses messages"
    );
    // With nothing new, keeping in sync costs next to nothing.
    let steady = |s: &serde_json::Value| s["steady_bytes_per_node_per_hour"].as_u64().unwrap();
    assert!(steady(r) * 100 < steady(o), "{f}");
    let goals = v["goals"].as_array().unwrap();
    assert_eq!(goals.len(), 2);
    for g in goals {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}

#[test]
fn gossip_heals_a_partition_what_each_side_published_reaches_the_other() {
    // Halves split from 30 s to 330 s; 10 entries published between 60 s and 120 s.
    let (a, v) = run("gossip-30-partition.toml", 1);
    let (b, _) = run("gossip-30-partition.toml", 1);
    assert_eq!(a, b, "same seed, same bytes");
    let f = &v["figures"];
    let r = &f["reconciliation"];
    assert_eq!(r["converged"], true, "{f}");
    assert_eq!(r["entries_everywhere"], 10, "{f}");
    assert!(r["messages_partitioned"].as_u64().unwrap() > 0, "{r}");
    // Nothing crossed the split: an entry reached every node only after it healed, at
    // least 330 - 120 = 210 s after it was published (spreading takes about a minute
    // on the whole graph).
    let s = |k: &str| r[k].as_f64().unwrap();
    assert!(s("spread_s_p50") >= 210.0, "{r}");
    // Once it healed, a few rounds of reconciliation carried the rest: everything was
    // everywhere within five 30-s intervals of the heal (the last publication was at
    // 120 s at the latest, so at most 210 + 150 s after it).
    assert!(s("converge_s_after_last_publish") <= 360.0, "{r}");
}

#[test]
fn lora_runs_are_reproducible_and_keep_the_duty_cycle() {
    let (a, v) = run("lora-30.toml", 1);
    let (b, _) = run("lora-30.toml", 1);
    assert_eq!(a, b, "same seed, same bytes");
    let (c, _) = run("lora-30.toml", 2);
    assert_ne!(a, c, "another seed, another run");
    let f = &v["figures"];
    assert_eq!(f["far_edge_holds_it"], true, "{f}");
    assert!(
        f["hops_publisher_to_far_edge"].as_u64().unwrap() >= 3,
        "{f}"
    );
    let worst = f["duty_cycle_max"].as_f64().unwrap();
    assert!(worst > 0.0 && worst <= 0.01, "{f}");
    assert!(f["packets"]["sent"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(f["flood_search"]["started"], true, "{f}");
    let goals = v["goals"].as_array().unwrap();
    assert_eq!(goals.len(), 2);
    for g in goals {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}

#[test]
fn gossip_on_the_whole_stack_survives_nodes_unplugged_and_back() {
    let (a, v) = run("stack-30-churn.toml", 1);
    let (b, _) = run("stack-30-churn.toml", 1);
    assert_eq!(a, b, "same seed, same bytes");
    let f = &v["figures"];
    let c = &f["churn"];
    assert_eq!(c["left"], 6, "{c}");
    let back = c["returned"].as_u64().unwrap();
    assert!(
        (1..6).contains(&back),
        "some came back, some stayed away: {c}"
    );
    assert_eq!(c["away_at_end"].as_u64().unwrap(), 6 - back, "{c}");
    // Every node plugged in at the end holds every new entry, those that came back too
    // (their links had timed out while they were away).
    assert_eq!(f["converged"], true, "{f}");
    assert_eq!(f["held_fraction"], 1.0, "{f}");
    assert_eq!(c["returned_caught_up"], c["returned"], "{c}");
    assert!(c["caught_up_s_max"].as_f64().unwrap() <= 120.0, "{c}");
    for g in v["goals"].as_array().unwrap() {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}

#[test]
fn gossip_on_the_whole_stack_converges_and_counts_what_reticulum_adds() {
    let (a, v) = run("stack-30.toml", 1);
    let (b, _) = run("stack-30.toml", 1);
    assert_eq!(a, b, "same seed, same bytes");
    let (c, _) = run("stack-30.toml", 2);
    assert_ne!(a, c, "another seed, another run");
    let f = &v["figures"];
    assert_eq!(f["converged"], true, "{f}");
    assert_eq!(f["held_fraction"], 1.0, "{f}");
    assert!(
        f["warmup_converged_s"].is_number(),
        "the starting catalogs converged: {f}"
    );
    assert_eq!(f["transport_nodes"], 6, "{f}");
    // Real links carried it: link requests and proofs on the wires, and the wires carried
    // more than the gossip itself (headers, encryption, proofs, keep-alives).
    let kinds = &f["steady_wire_bytes_by_kind"];
    for k in ["announce", "data", "link_request", "proof"] {
        assert!(kinds[k].as_u64().unwrap() > 0, "{k}: {f}");
    }
    assert!(f["links_opened"].as_u64().unwrap() >= 60, "{f}");
    let ratio = f["wire_bytes_per_gossip_byte"].as_f64().unwrap();
    assert!(ratio > 1.0, "{f}");
    assert!(
        f["steady_wire_bytes_per_node_hour"].as_f64().unwrap()
            > f["steady_gossip_bytes_per_node_hour"].as_f64().unwrap(),
        "{f}"
    );
    // Flood searches over the same links find what three nodes in thirty hold.
    let flood = &f["flood"];
    assert_eq!(flood["searches"], 100, "{f}");
    assert!(flood["success"].as_f64().unwrap() >= 0.99, "{f}");
    let messages = flood["messages_per_search"].as_f64().unwrap();
    assert!(
        messages > 1.0 && messages <= 250.0,
        "within thorough's budget: {f}"
    );
    assert!(
        flood["wire_bytes_per_search"].as_f64().unwrap()
            > flood["flood_bytes_per_search"].as_f64().unwrap(),
        "{f}"
    );
    for g in v["goals"].as_array().unwrap() {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}

#[test]
fn dht_lookups_on_the_whole_stack_find_their_providers() {
    let (a, v) = run("stack-dht-30.toml", 1);
    let (b, _) = run("stack-dht-30.toml", 1);
    assert_eq!(a, b, "same seed, same bytes");
    let f = &v["figures"];
    let dht = &f["dht"];
    assert_eq!(dht["lookups"], 200, "{f}");
    assert!(dht["success"].as_f64().unwrap() >= 0.99, "{f}");
    assert!(
        dht["messages_per_lookup"].as_f64().unwrap() > 0.0,
        "lookups crossed links: {f}"
    );
    assert!(dht["wire_bytes_per_lookup"].as_f64().unwrap() > 0.0, "{f}");
    let goals = v["goals"].as_array().unwrap();
    assert_eq!(goals.len(), 3, "{goals:?}");
    for g in goals {
        assert_eq!(g["met"], true, "goal not met: {g} in {f}");
    }
}
