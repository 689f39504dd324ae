//! Discovery on real processes (issue 14): thirty `grid node`s on loopback TCP — a chain
//! of five transport nodes, each of the other twenty-five attached to a random one of
//! them — where an adapter published at one edge is found by description from the far
//! edge within the `thorough` budget, and fetched by its hash through the DHT while some
//! nodes the lookup would ask have been killed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(90);
/// Transport nodes in the backbone chain.
const BACKBONE: usize = 5;
/// Nodes in all.
const NODES: usize = 30;

/// A small seeded generator, so the topology is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn config(transport: bool, listen: Option<u16>, targets: &[u16]) -> String {
    let mut c = format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\ntransport = {transport}\n"
    );
    if let Some(port) = listen {
        c.push_str(&format!(
            "[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
        ));
    }
    for port in targets {
        c.push_str(&format!(
            "[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
        ));
    }
    c
}

#[test]
fn an_adapter_at_one_edge_is_found_and_fetched_from_the_other_through_thirty_nodes() {
    let _slot = slot();
    std::env::var("GRID_MODELS").expect("GRID_MODELS is not set (scripts/test.sh sets it)");
    let ports: Vec<u16> = (0..BACKBONE).map(|_| free_port()).collect();
    // The backbone: transport node i listens on ports[i] and joins node i − 1.
    let mut nodes: Vec<Grid> = (0..BACKBONE)
        .map(|i| {
            let up: Vec<u16> = if i == 0 { vec![] } else { vec![ports[i - 1]] };
            Grid::start(&config(true, Some(ports[i]), &up))
        })
        .collect();
    // The others hang off a random backbone node each; the first at one end, the last at
    // the other, so the two are as far apart as the mesh allows (six hops).
    let mut rng = Lcg(14);
    let mut attached = Vec::new();
    for k in 0..NODES - BACKBONE {
        let at = match k {
            0 => 0,
            k if k == NODES - BACKBONE - 1 => BACKBONE - 1,
            _ => rng.below(BACKBONE),
        };
        attached.push(at);
        nodes.push(Grid::start(&config(false, None, &[ports[at]])));
    }
    let (publisher, seeker) = (BACKBONE, NODES - 1);
    for g in &nodes {
        wait_for(T, "every node's genome", || {
            g.cli(&["adapter", "list", "--json"]).0.then_some(())
        });
    }

    let pkgs = TempDir::new("mesh-pkgs");
    let dir = pkgs.0.join("soil");
    grid_genome::package::write_test_package(
        &dir,
        "soil-tester",
        "1.0.0",
        "Reads a soil test kit and recommends how much compost and lime a school garden bed needs.",
        &["how much lime for acidic soil"],
        4,
        32,
        2,
    )
    .unwrap();
    let v = nodes[publisher].json(&["adapter", "publish", dir.to_str().unwrap()]);
    let hash = v["content_hash"].as_str().unwrap().to_string();
    let publisher_dest = nodes[publisher].destination();

    // Found by what it does, from the far edge, within the thorough budget.
    let found: Value = wait_for(T, "the far edge finds the adapter", || {
        let v = nodes[seeker].json(&[
            "skills",
            "search",
            "what should I add to the garden soil in our school beds",
            "--limit",
            "3",
            "--patience",
            "thorough",
        ]);
        let top = v.as_array()?.first()?.clone();
        // The publisher's own answer (the catalog gossip may bring its entry first).
        (top["content_hash"] == hash.as_str() && top["source"] == "peers").then_some(top)
    });
    assert!(
        found["providers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == publisher_dest.as_str()),
        "{found}"
    );
    assert_eq!(
        found["hops"], 6,
        "edge to edge through the backbone: {found}"
    );
    // The flood found it too: along the backbone, past the leaves each transport node
    // has (leaves give back the budget they cannot use).
    assert!(
        found["found_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == "flood"),
        "{found}"
    );
    assert!(found["score"].as_f64().unwrap() > 0.3, "{found}");

    // Wait until the publisher has told the DHT, then kill four nodes the lookup may ask
    // (leaves that are neither end), and fetch by hash through the DHT alone.
    wait_for(T, "the publisher provides the package in the DHT", || {
        nodes[publisher]
            .log()
            .contains("provided in the DHT")
            .then_some(())
    });
    let mut killed = 0;
    for (_, g) in nodes
        .iter_mut()
        .enumerate()
        .take(NODES - 1)
        .skip(BACKBONE + 1)
        .filter(|(i, _)| i % 5 == 0)
        .take(4)
    {
        g.kill();
        killed += 1;
    }
    assert_eq!(killed, 4);
    let started = Instant::now();
    let (ok, out, err) = nodes[seeker].cli(&["adapter", "fetch", &hash, "--via", "dht", "--json"]);
    assert!(ok, "fetch through the DHT: {err}\n{}", nodes[seeker].log());
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["content_hash"], hash.as_str(), "{v}");
    assert_eq!(v["found_by"], "dht", "{v}");
    assert_eq!(v["provider"], publisher_dest.as_str(), "{v}");
    eprintln!(
        "fetched through the DHT in {:?} with {killed} nodes killed; backbone attachments {attached:?}",
        started.elapsed()
    );
}

/// The search's escalation past the heard peers, on three processes in a line (A — B —
/// C, B a transport node, so A's only neighbour is B): a `quick` search from A floods
/// through B to C, whose genome offered its package, and `found_by` says so with the
/// flood's two hops; an `exhaustive` search whose words name the package's tag also
/// finds C as a provider of that topic in the DHT.
#[test]
fn a_search_floods_past_its_neighbour_and_looks_up_topics_in_the_dht() {
    let _slot = slot();
    std::env::var("GRID_MODELS").expect("GRID_MODELS is not set (scripts/test.sh sets it)");
    let port = free_port();
    let b = Grid::start(&config(true, Some(port), &[]));
    let a = Grid::start(&config(false, None, &[port]));
    let c = Grid::start(&config(false, None, &[port]));
    for g in [&a, &b, &c] {
        wait_for(T, "every node's genome", || {
            g.cli(&["adapter", "list", "--json"]).0.then_some(())
        });
    }
    let pkgs = TempDir::new("flood-pkgs");
    let dir = pkgs.0.join("hives");
    grid_genome::package::write_test_package(
        &dir,
        "hive-keeper",
        "1.0.0",
        "Helps a school beekeeping club check a hive for varroa mites and decide when to treat.",
        &["are there too many mites in our hive"],
        4,
        32,
        2,
    )
    .unwrap();
    // A tag, so the package is provided under a DHT topic too.
    let toml = dir.join("adapter.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("tags = [\"beekeeping\"]\n");
    std::fs::write(&toml, text).unwrap();
    let v = c.json(&["adapter", "publish", dir.to_str().unwrap()]);
    let hash = v["content_hash"].as_str().unwrap().to_string();

    let ways = |v: &Value| -> Vec<String> {
        v["found_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect()
    };
    let found: Value = wait_for(T, "A's search floods to C", || {
        let v = a.json(&[
            "skills",
            "search",
            "our bees look sick, how do we check the hive",
            "--limit",
            "3",
            "--patience",
            "quick",
        ]);
        let top = v.as_array()?.first()?.clone();
        (top["content_hash"] == hash.as_str() && ways(&top).contains(&"flood".to_string()))
            .then_some(top)
    });
    assert!(found["score"].as_f64().unwrap() > 0.3, "{found}");
    assert!(
        found["providers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == c.destination().as_str()),
        "{found}"
    );
    // C heard directly through B is two RNS hops away; the flood went A → B → C.
    assert_eq!(found["hops"], 2, "{found}");

    wait_for(T, "C provides its package's topic in the DHT", || {
        c.log()
            .contains("provided a topic in the DHT")
            .then_some(())
    });
    let found: Value = wait_for(T, "an exhaustive search finds C by topic", || {
        let v = a.json(&[
            "skills",
            "search",
            "beekeeping",
            "--limit",
            "3",
            "--patience",
            "exhaustive",
        ]);
        v.as_array()?
            .iter()
            .find(|r| r["content_hash"] == hash.as_str() && ways(r).contains(&"dht".to_string()))
            .cloned()
    });
    assert_eq!(found["name"], "hive-keeper", "{found}");
}
