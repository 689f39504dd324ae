//! LAN meshes on separate hosts: network namespaces joined by bridges, nodes with only
//! the auto interface (IPv6 link-local discovery), as ten laptops on one switch would be.
//!
//! These need root and iproute2; they create and remove their own namespaces.

mod common;

use std::time::{Duration, Instant};

use common::*;
use grid_tools::netns::Lan;
use serde_json::{json, Value};

const AUTO_ONLY: &str = "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"auto\"\n";
const AUTO_TRANSPORT: &str =
    "[node]\ntransport = true\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"auto\"\n";

/// Whether `from` has a path to `to` (asking the network if not).
fn has_path(from: &Grid, to: &str) -> Option<Value> {
    let (ok, out, _) = from.cli(&["path", to, "--timeout", "1", "--json"]);
    ok.then(|| serde_json::from_str(&out).unwrap())
}

/// A probe from `from` to `to` got its proof.
fn probe(from: &Grid, to: &str) -> bool {
    from.cli(&["probe", to, "--timeout", "3"]).0
}

/// Auto-interface peers a node has (interfaces named `auto…/nic/address`).
fn auto_peers(g: &Grid) -> Vec<String> {
    g.status()["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .filter(|n| n.starts_with("auto"))
        .map(String::from)
        .collect()
}

#[test]
fn four_hosts_on_one_switch_find_each_other() {
    let _slot = slot();
    let mut lan = Lan::new();
    let sw = lan.switch("sw");
    let mut nodes = Vec::new();
    for i in 0..4 {
        let h = lan.host(&format!("h{i}"));
        lan.plug(&h, "eth0", &sw);
        nodes.push(Grid::start_in_netns(&h, AUTO_ONLY));
    }
    let dests: Vec<String> = nodes.iter().map(Grid::destination).collect();
    let started = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "every node to know every other",
        || {
            for (i, n) in nodes.iter().enumerate() {
                for (j, d) in dests.iter().enumerate() {
                    if i != j && has_path(n, d).is_none() {
                        return None;
                    }
                }
            }
            Some(())
        },
    );
    eprintln!("full path knowledge after {:?}", started.elapsed());
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(
            auto_peers(n).len(),
            3,
            "node {i} peers: {:?}",
            auto_peers(n)
        );
        for (j, d) in dests.iter().enumerate() {
            if i != j {
                let p = has_path(n, d).unwrap();
                assert_eq!(p["hops"], 1, "{p}");
                assert!(probe(n, d), "probe {i} -> {j}");
            }
        }
    }
}

/// Two segments joined by one host with a NIC on each and `transport = true`.
struct Segments {
    lan: Lan,
    a: Vec<Grid>,
    b: Vec<Grid>,
    bridge: Grid,
    bridge_host: String,
}

fn two_segments() -> Segments {
    let mut lan = Lan::new();
    let (s1, s2) = (lan.switch("s1"), lan.switch("s2"));
    let t = lan.host("t");
    lan.plug(&t, "eth0", &s1);
    lan.plug(&t, "eth1", &s2);
    let bridge = Grid::start_in_netns(&t, AUTO_TRANSPORT);
    let mut seg = |sw: &str, tag: &str| -> Vec<Grid> {
        (0..2)
            .map(|i| {
                let h = lan.host(&format!("{tag}{i}"));
                lan.plug(&h, "eth0", sw);
                Grid::start_in_netns(&h, AUTO_ONLY)
            })
            .collect()
    };
    let a = seg(&s1, "a");
    let b = seg(&s2, "b");
    Segments {
        lan,
        a,
        b,
        bridge,
        bridge_host: t,
    }
}

fn across(s: &Segments, timeout: Duration) {
    for (from, to) in [(&s.a[0], &s.b[1]), (&s.b[0], &s.a[1]), (&s.a[1], &s.b[0])] {
        let d = to.destination();
        wait_for(
            timeout,
            "a path and a proven probe across the bridge",
            || {
                let p = has_path(from, &d)?;
                (p["hops"] == 2 && probe(from, &d)).then_some(())
            },
        );
    }
}

#[test]
fn segments_joined_by_a_transport_host_reach_each_other_and_survive_its_restart() {
    let _slot = slot();
    let mut s = two_segments();
    across(&s, Duration::from_secs(20));
    // Same segment: one hop, no help needed.
    let p = has_path(&s.a[0], &s.a[1].destination()).unwrap();
    assert_eq!(p["hops"], 1);

    // kill -9 the bridging host and start it again: paths come back, nobody crashes.
    s.bridge.restart();
    let t0 = Instant::now();
    across(&s, Duration::from_secs(30));
    eprintln!("paths back {:?} after the restart", t0.elapsed());
    for g in s.a.iter_mut().chain(s.b.iter_mut()) {
        assert!(g.alive(), "a node died:\n{}", g.log());
    }
    assert!(s.bridge.alive());
    let _ = (&s.lan, &s.bridge_host);
}

#[test]
fn a_host_that_leaves_is_timed_out_by_its_peers() {
    let _slot = slot();
    let mut lan = Lan::new();
    let sw = lan.switch("sw");
    let hosts: Vec<String> = (0..3).map(|i| lan.host(&format!("h{i}"))).collect();
    for h in &hosts {
        lan.plug(h, "eth0", &sw);
    }
    let nodes: Vec<Grid> = hosts
        .iter()
        .map(|h| Grid::start_in_netns(h, AUTO_ONLY))
        .collect();
    wait_for(Duration::from_secs(15), "all peered", || {
        nodes.iter().all(|n| auto_peers(n).len() == 2).then_some(())
    });
    lan.unplug(&hosts[2], "eth0");
    let t0 = Instant::now();
    // RNS times peers out 22 s after last hearing them, checked every 4 s.
    wait_for(
        Duration::from_secs(30),
        "the peers to drop the host that left",
        || {
            nodes[..2]
                .iter()
                .all(|n| auto_peers(n).len() == 1)
                .then_some(())
        },
    );
    let gone = t0.elapsed();
    assert!(
        gone >= Duration::from_secs(18),
        "dropped too early: {gone:?}"
    );
    eprintln!("dropped after {gone:?}");
    // The two that remain still talk.
    assert!(probe(&nodes[0], &nodes[1].destination()));
}

#[test]
fn grid_and_rns_auto_interfaces_peer_announce_and_link_both_ways() {
    let _slot = slot();
    let mut lan = Lan::new();
    let sw = lan.switch("sw");
    let hp = lan.host("py");
    lan.plug(&hp, "eth0", &sw);
    let hg = lan.host("grid");
    lan.plug(&hg, "eth0", &sw);
    let g = Grid::start_in_netns(&hg, AUTO_ONLY);
    let mut py = Py::start_in_netns(
        Some(&hp),
        &["--interface".to_string(), "auto=reticulum".to_string()],
    );
    // RNS announces; Grid hears it and has a one-hop path.
    let pd = py.destination();
    wait_for(
        Duration::from_secs(20),
        "Grid hears the RNS announce",
        || {
            py.announce("from rns");
            std::thread::sleep(Duration::from_millis(1500));
            has_path(&g, &pd).filter(|p| p["hops"] == 1)
        },
    );
    // Grid announces; RNS hears it.
    let gd = g.destination();
    g.cli(&["announce"]);
    let a = py.announce_event(&gd, Duration::from_secs(20));
    assert_eq!(a["hops"], 1, "{a}");
    // A link from Grid to RNS, at the auto interface's MTU.
    let v = g.json(&["link", "open", &pd, "--timeout", "20"]);
    assert_eq!(v["mtu"], 1196, "{v}");
    let link = v["link"].as_str().unwrap().to_string();
    let r = g.json(&["link", "request", &link, "/ping", "lan"]);
    assert_eq!(r["response"], "pong:lan");
    // And from RNS to Grid.
    py.cmd(json!({"cmd": "link_open", "destination": gd, "name": "grid.node", "timeout": 20}));
    let e = py.expect(Duration::from_secs(25), "RNS link to Grid", |v| {
        v["event"] == "link_established" && v["initiator"] == true
    });
    assert_eq!(e["mtu"], 1196, "{e}");
}

/// Sends, from inside a namespace, `rate` datagrams a second for `seconds`: random
/// 32-byte "tokens" to the discovery group and port, and junk to a data port.
const FLOOD: &str = r#"
import os, socket, sys, time
group, victim, nic, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
idx = socket.if_nametoindex(nic)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
end = time.time() + seconds
sent = 0
while time.time() < end:
    t0 = time.time()
    for _ in range(rate // 100):
        s.sendto(os.urandom(32), (group, 29716, 0, idx))
        s.sendto(os.urandom(40), (victim, 42671, 0, idx))
        sent += 2
    time.sleep(max(0, 0.01 - (time.time() - t0)))
print(sent)
"#;

#[test]
fn discovery_floods_and_strangers_are_ignored_with_bounded_memory() {
    let _slot = slot();
    let mut lan = Lan::new();
    let sw = lan.switch("sw");
    let (hv, hf, hp) = (lan.host("victim"), lan.host("flooder"), lan.host("peer"));
    for h in [&hv, &hf, &hp] {
        lan.plug(h, "eth0", &sw);
    }
    let victim = Grid::start_in_netns(&hv, AUTO_ONLY);
    let peer = Grid::start_in_netns(&hp, AUTO_ONLY);
    wait_for(Duration::from_secs(15), "victim and peer peered", || {
        (auto_peers(&victim).len() == 1).then_some(())
    });
    let before = victim.rss_kib();
    let vaddr = lan.link_local(&hv, "eth0");
    // 10,000 datagrams a second for 5 s: forged discovery tokens and data from a stranger.
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &hf, "python3", "-c", FLOOD])
        .args([
            "ff12:0:d70b:fb1c:16e4:5e39:485e:31e1",
            &vaddr,
            "eth0",
            "10000",
            "5",
        ])
        .output()
        .expect("run the flooder");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        sent > 20_000,
        "the flood was too thin to mean anything: {sent}"
    );
    let after = victim.rss_kib();
    eprintln!("victim RSS {before} KiB -> {after} KiB after {sent} datagrams");
    assert!(
        after < before + 8 * 1024,
        "memory grew from {before} to {after} KiB"
    );
    // No peer was made from the flood; the real peer still works.
    assert_eq!(auto_peers(&victim).len(), 1, "{:?}", auto_peers(&victim));
    assert!(probe(&victim, &peer.destination()));
    assert!(victim.status()["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["rx_packets"].as_u64().unwrap() < 1000));
}
