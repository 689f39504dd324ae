//! LoRa end to end: Grid nodes and RNS 1.5.7 on virtual RNodes (`grid radio-sim`), which
//! are real pseudo-terminal serial ports served by Grid's RNode modem core, on a
//! simulated channel where frames take their real airtime.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Airtime makes everything slower than on a wire: an announce takes ~0.3 s at SF7.
const T: Duration = Duration::from_secs(45);

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn radio_node(sim: &RadioSim, i: usize, extra_node: &str, extra: &str) -> Grid {
    let interval = if extra_node.contains("announce_interval") {
        ""
    } else {
        "announce_interval = \"1h\"\n"
    };
    Grid::start(&format!(
        "[node]\n{interval}share_instance = false\n{extra_node}\n{}{extra}",
        sim.grid_interface(i)
    ))
}

fn radio_up(g: &Grid) -> Value {
    wait_for(T, "the radio interface up", || {
        g.status()["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"].as_str().unwrap_or("").starts_with("rnode") && i["online"] == true)
            .cloned()
    })
}

fn path(g: &Grid, dest: &str) -> Value {
    wait_for(T, &format!("a path to {dest}"), || {
        let (ok, out, _) = g.cli(&["path", dest, "--timeout", "10", "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (ok && v["ok"] == true).then_some(v)
    })
}

fn request_ping(g: &Grid, dest: &str, text: &str) {
    // On a shared channel a link request, its proof, the request or its response can be
    // lost to a collision (two nodes that cannot hear each other transmitting at once).
    // RNS retries none of these; applications do. Three tries of link and request.
    let mut failures = Vec::new();
    let v = loop {
        let (ok, out, err) = g.cli(&["link", "open", dest, "--json"]);
        if ok {
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["mtu"], 500, "links over an RNode run at MTU 500: {v}");
            let link = v["link"].as_str().expect("link opened").to_string();
            let (ok, out, err) = g.cli(&["link", "request", &link, "/ping", text, "--json"]);
            if ok {
                break serde_json::from_str::<Value>(&out).unwrap();
            }
            failures.push(format!("request: {err}"));
        } else {
            failures.push(format!("link: {err}"));
        }
        assert!(
            failures.len() < 3,
            "ping over a link to {dest} failed {} times: {failures:?}\nnode log:\n{}",
            failures.len(),
            g.log()
        );
    };
    assert_eq!(v["response"], format!("pong:{text}"), "{v}");
    // (Left open: closing would put A on the air just as C starts talking, and A and C
    // cannot hear each other.)
}

#[test]
fn two_grid_nodes_on_virtual_rnodes() {
    let _slot = slot();
    let sim = RadioSim::start(2, "full");
    let a = radio_node(&sim, 0, "", "");
    let b = radio_node(&sim, 1, "", "[cp]\nallow_all = true\n");
    let iface = radio_up(&a);
    assert_eq!(iface["name"], "rnode#0");
    radio_up(&b);

    // Announce and path.
    let p = path(&a, &b.destination());
    assert_eq!(p["hops"], 1, "{p}");
    // Probe.
    let (ok, out, err) = a.cli(&["probe", &b.probe_destination(), "--json", "--timeout", "30"]);
    assert!(ok, "{out}{err}");
    // A link with a request.
    request_ping(&a, &b.destination(), "over the air");
    // A 2 KB resource: a file, sent in several 500-byte packets and checked on arrival.
    let files = TempDir::new("lorafiles");
    let f = files.0.join("two-kb.bin");
    let data: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&f, &data).unwrap();
    let dest = b.id()["destinations"]["rncp.receive"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, err) = a.cli(&[
        "cp",
        f.to_str().unwrap(),
        &dest,
        "--json",
        "--timeout",
        "60",
    ]);
    assert!(ok, "{out}{err}");
    let got = b.dir.0.join("received/two-kb.bin");
    wait_for(T, "the file at B", || {
        std::fs::read(&got).ok().filter(|g| *g == data)
    });

    // Both radios report signal and airtime figures.
    let radio = wait_for(T, "radio figures in status", || {
        let i = radio_up(&a);
        (!i["radio"]["rssi_dbm"].is_null()).then_some(i["radio"].clone())
    });
    assert!(radio["airtime_short_pct"].as_f64().is_some(), "{radio}");
    assert_eq!(radio["rssi_dbm"], -80, "{radio}");
}

/// Announce `from` until `to` holds a path to it (each try waits for the announce to
/// cross the relay).
fn learn_across(from: &Grid, to: &Grid) {
    let dest = from.destination();
    for _ in 0..5 {
        from.json(&["announce"]);
        let known = (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(250));
            to.status()["paths"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["destination"] == dest.as_str())
        });
        if known {
            return;
        }
    }
    panic!("{dest} never reached the other end of the line");
}

#[test]
fn three_radios_in_a_line_relay_through_a_transport_node() {
    let _slot = slot();
    let sim = RadioSim::start(3, "line");
    let a = radio_node(&sim, 0, "", "");
    let b = radio_node(&sim, 1, "transport = true", "");
    let c = radio_node(&sim, 2, "", "");
    for g in [&a, &b, &c] {
        radio_up(g);
    }
    // A and C cannot hear each other, so frames they send at the same moment collide at
    // B (hidden terminals): the introductions at start may be lost. Announce in turn, as
    // a user would, until the far side knows the path.
    learn_across(&a, &c);
    learn_across(&c, &a);
    let p = path(&a, &c.destination());
    assert_eq!(p["hops"], 2, "A reaches C only through B: {p}");
    request_ping(&a, &c.destination(), "via b");
    let p = path(&c, &a.destination());
    assert_eq!(p["hops"], 2, "{p}");
    request_ping(&c, &a.destination(), "via b too");
    assert!(b.status()["stats"]["forwarded"].as_u64().unwrap() > 0);
}

#[test]
fn rns_rnode_interface_and_grid_share_the_air() {
    let _slot = slot();
    let sim = RadioSim::start(2, "full");
    // RNS's own RNodeInterface on radio 0: it must pass RNS's detect and config checks.
    let mut py = Py::start(&args(&["--interface", &format!("rnode={}", sim.port(0))]));
    let g = radio_node(&sim, 1, "", "");
    radio_up(&g);

    py.announce("rns over lora");
    let p = path(&g, &py.destination());
    assert_eq!(p["hops"], 1, "{p}");
    g.json(&["announce"]);
    let a = py.announce_event(&g.destination(), T);
    assert_eq!(a["hops"], 1, "{a}");

    // Grid → RNS link.
    let v = py.pinged_by(&g, "lora");
    assert_eq!(v["mtu"], 500, "{v}");
    // RNS → Grid link.
    py.link_ping(&g.destination(), "grid.node", "air", T);
}

#[test]
fn catalog_gossip_crosses_the_air_between_radio_neighbours() {
    let _slot = slot();
    let sim = RadioSim::start(2, "full");
    // A offers compute: it publishes a signed `compute` entry at start. B offers
    // nothing, so a compute entry in B's catalog came over the air from A.
    let a = radio_node(&sim, 0, "", "[compute]\nenabled = true\n");
    let b = radio_node(&sim, 1, "", "");
    radio_up(&a);
    radio_up(&b);
    // A's entries (its compute offer, and its `ai/generate` command entry) come over
    // the air one gossip round after another: wait until B holds all of them.
    let (catalog, own) = wait_for(T, "A's catalog in B's", || {
        let c = b.json(&["catalog"]);
        let own = a.json(&["catalog"]);
        let kinds: Vec<&Value> = c["entries"]
            .as_array()?
            .iter()
            .map(|e| &e["kind"])
            .collect();
        (kinds.contains(&&json!("compute"))
            && kinds.contains(&&json!("command"))
            && c["entries"] == own["entries"])
            .then_some((c, own))
    });
    // Gossip took A as a radio neighbour (no fast interface joins them).
    assert_eq!(catalog["radio_neighbours"], 1, "{catalog}");
    assert_eq!(catalog["neighbours"], 0, "{catalog}");
    assert_eq!(catalog["radio_skipped"], 0, "{catalog}");
    assert_eq!(own["radio_neighbours"], 1, "{own}");
}

#[test]
fn an_unplugged_radio_comes_back_by_itself() {
    let _slot = slot();
    let sim_port = free_port();
    let mut sim = RadioSim::start(2, "full");
    let a = radio_node(
        &sim,
        0,
        "",
        &format!("[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{sim_port}\"\n"),
    );
    let b = radio_node(&sim, 1, "", "");
    radio_up(&a);
    radio_up(&b);
    path(&a, &b.destination());

    assert_eq!(sim.cmd("unplug 0")["event"], "unplugged");
    wait_for(T, "the radio interface down", || {
        let s = a.status();
        let ifaces = s["interfaces"].as_array().unwrap().clone();
        let radio = ifaces.iter().find(|i| i["name"] == "rnode#0")?;
        (radio["online"] == false).then_some(())
    });
    // The node keeps serving its other interfaces meanwhile: a TCP peer connects and
    // speaks (a connection becomes an interface with its first frame).
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", sim_port)).unwrap();
    let hello = rns_core::packet::Packet {
        flags: rns_core::packet::Flags::new(
            rns_core::destination::DestinationType::Plain,
            rns_core::packet::PacketType::Data,
        ),
        hops: 0,
        transport_id: None,
        destination: rns_core::AddressHash([7; 16]),
        context: rns_core::packet::Context::NONE,
        data: b"hello".to_vec(),
    };
    std::io::Write::write_all(&mut tcp, &grid_interfaces::hdlc::encode(&hello.to_bytes())).unwrap();
    wait_for(T, "the TCP peer as an interface", || {
        a.status()["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| {
                i["name"].as_str().unwrap_or("").starts_with("tcp_server") && i["online"] == true
            })
            .then_some(())
    });
    drop(tcp);

    assert_eq!(sim.cmd("plug 0")["event"], "plugged");
    radio_up(&a);
    let (ok, out, err) = a.cli(&["probe", &b.probe_destination(), "--json", "--timeout", "30"]);
    assert!(ok, "the radio works again: {out}{err}");
}
