//! The shared instance, against RNS 1.5.7 in both roles: Python programs attached to a
//! `grid node`, and a Grid node attached to a Python shared instance.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// An instance name no other test (or a real node on this machine) uses.
fn instance_name(port: u16) -> String {
    format!("gridtest-{}-{port}", std::process::id())
}

/// Open a link from `from` to `to`'s echo destination and check a packet and a request.
fn py_link(from: &mut Py, to: &mut Py) {
    from.cmd(json!({"cmd": "link_open", "destination": to.destination(), "name": "rnsinterop.echo", "timeout": 15}));
    let v = from.expect(T, "link established at the initiator", |v| {
        v["event"] == "link_established" && v["initiator"] == true
    });
    let link = v["link"].as_str().unwrap().to_string();
    let l = link.clone();
    to.expect(T, "link established at the receiver", move |v| {
        v["event"] == "link_established" && v["link"] == l.as_str()
    });
    from.cmd(json!({"cmd": "link_request", "link": link, "path": "/ping", "data": "z"}));
    let r = from.expect(T, "response", |v| {
        v["event"] == "response" || v["event"] == "response_failed"
    });
    assert_eq!(r["data"], hex("pong:z"), "{r}");
    from.cmd(json!({"cmd": "link_close", "link": link}));
}

/// A packet to `to`'s echo destination, proven, and seen by `to`.
fn py_packet(from: &mut Py, to: &mut Py, text: &str) {
    from.send_and_prove(&to.destination(), "rnsinterop.echo", text);
    let want = hex(text);
    to.expect(T, "the packet", move |v| {
        v["event"] == "packet" && v["data"] == want.as_str()
    });
}

#[test]
fn python_programs_attach_to_a_grid_node() {
    let _slot = slot();
    let port = free_port();
    let name = instance_name(port);
    let g = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\ninstance_name = \"{name}\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    assert_eq!(g.status()["shared_instance"], name.as_str());
    let mut remote = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
    ]));
    // No interfaces of its own: it can only reach the network through Grid.
    let mut local = Py::start(&args(&["--instance", &name]));
    assert_eq!(local.ready["attached"], true, "{}", local.stderr());
    wait_for(T, "Grid counts the attached program", || {
        (g.status()["local_clients"] == 1).then_some(())
    });
    // Grid introduces itself to the remote peer. RNS holds announces for unknown
    // destinations when two arrive close together on a young interface (ingress
    // control), so let the introduction settle before the program announces.
    remote.announce_event(&g.destination(), T);
    std::thread::sleep(std::time::Duration::from_millis(1500));

    // Announces both ways. The program sits where the instance is, so the network sees
    // it one hop away, as with rnsd.
    local.announce("local");
    let a = remote.announce_event(&local.destination(), T);
    assert_eq!(a["hops"], 1, "{a}");
    remote.announce("remote");
    local.announce_event(&remote.destination(), T);

    // Packets with proofs, and links with requests, both ways.
    py_packet(&mut local, &mut remote, "from the local program");
    py_packet(&mut remote, &mut local, "to the local program");
    py_link(&mut local, &mut remote);
    py_link(&mut remote, &mut local);

    // The node itself and the program reach each other too.
    let v = local.wait_path(&g.destination(), 15);
    assert_eq!(v["event"], "path", "{v}");
    let v = g.json(&["link", "open", &local.destination()]);
    let link = v["link"].as_str().expect("link opened").to_string();
    let v = g.json(&["link", "request", &link, "/ping", "n"]);
    assert_eq!(v["response"], "pong:n", "{v}");

    // A program that leaves is no longer counted.
    drop(local);
    wait_for(T, "Grid notices the program left", || {
        (g.status()["local_clients"] == 0).then_some(())
    });
}

#[test]
fn a_grid_node_attaches_to_an_rns_shared_instance() {
    let _slot = slot();
    let port = free_port();
    let name = instance_name(port);
    // The first RNS program with share_instance = Yes becomes the shared instance.
    let mut instance = Py::start(&args(&[
        "--instance",
        &name,
        "--interface",
        &format!("tcp_server=127.0.0.1:{port}"),
    ]));
    assert_eq!(instance.ready["attached"], false);
    let mut remote = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
    ]));
    let g = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"local\"\ninstance_name = \"{name}\"\n"
    ));
    assert_eq!(g.status()["shared_instance"], Value::Null);

    // Grid's announce goes out through the RNS instance.
    let a = remote.announce_event(&g.destination(), T);
    assert_eq!(a["hops"], 1, "{a}");
    instance.announce_event(&g.destination(), T);
    remote.announce("remote");
    let (ok, out, err) = g.cli(&["path", &remote.destination(), "--timeout", "15", "--json"]);
    assert!(ok, "{out}{err}");

    // Packets and links both ways, through the instance.
    remote.send_and_prove(&g.destination(), "grid.node", "to grid");
    remote.pinged_by(&g, "g");
    remote.link_ping(&g.destination(), "grid.node", "r", T);
}

#[test]
fn a_second_node_with_another_state_dir_runs_beside_the_shared_instance() {
    let _slot = slot();
    let (p1, p2) = (free_port(), free_port());
    let name = instance_name(p1);
    let cfg = |port: u16| {
        format!(
            "[node]\nannounce_interval = \"1h\"\ninstance_name = \"{name}\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
        )
    };
    let first = Grid::start(&cfg(p1));
    let second = Grid::start(&cfg(p2));
    assert_eq!(first.status()["shared_instance"], name.as_str());
    assert_eq!(second.status()["shared_instance"], Value::Null);
    assert!(
        second
            .log()
            .contains("another node serves the shared instance"),
        "{}",
        second.log()
    );
    // When the first stops, the name is free again for a new node.
    drop(first);
    let third = Grid::start(&cfg(free_port()));
    assert_eq!(third.status()["shared_instance"], name.as_str());
}

/// RNS 1.5.7's own utilities against a Grid node's shared instance, through its RPC:
/// `rnstatus` lists the node's interfaces, `rnpath` finds a peer's path and shows the
/// path table, `rnprobe` gets a reply from the peer's probe responder. They use the
/// RNS config the node writes for them (`<state>/rns`, with its RPC key); a wrong key
/// is refused.
#[test]
fn rnstatus_rnpath_and_rnprobe_work_on_a_grid_node() {
    let _slot = slot();
    let port = free_port();
    let name = instance_name(port);
    let a = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\ninstance_name = \"{name}\"\n[web]\nenabled = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let b = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[web]\nenabled = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    ));
    let rns = a.dir.0.join("rns");
    wait_for(T, "the RNS config for the utilities", || {
        std::fs::read_to_string(rns.join("config"))
            .ok()
            .filter(|c| c.contains("rpc_key") && c.contains(&name))
    });
    let bin = python().parent().unwrap().to_path_buf();
    let util = |tool: &str, extra: &[&str]| {
        let out = std::process::Command::new(bin.join(tool))
            .arg("--config")
            .arg(&rns)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    wait_for(T, "A hears B", || {
        (a.status()["configured"][0]["connections"] == 1).then_some(())
    });

    let (ok, out, err) = util("rnstatus", &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("TCPServerInterface[tcp_server#0]"), "{out}");
    assert!(out.contains("Clients   : 1"), "{out}");
    assert!(
        out.contains(&format!("Shared Instance[rns/{name}]")),
        "{out}"
    );

    let bd = b.destination();
    let (ok, out, err) = util("rnpath", &[&bd, "-w", "15"]);
    assert!(
        ok && out.contains(&format!("<{bd}> is 1 hop")),
        "{out}\n{err}"
    );
    let (ok, out, err) = util("rnpath", &["-t"]);
    assert!(
        ok && out.contains(&bd) && out.contains("1 hop"),
        "{out}\n{err}"
    );

    // rnpath -d forgets the path on the Grid node; grid path --drop finds none left.
    let (ok, out, err) = util("rnpath", &["-d", &bd]);
    assert!(ok && out.contains("Dropped path"), "{out}\n{err}");
    let (ok, out, _) = a.cli(&["path", &bd, "--drop"]);
    assert!(ok && out.contains("No path"), "{out}");

    let probe = b.id()["destinations"]["rnstransport.probe"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, err) = util("rnprobe", &["rnstransport.probe", &probe, "-w", "15"]);
    assert!(ok && out.contains("Valid reply"), "{out}\n{err}");

    // A config with another key cannot use the RPC.
    let wrong = TempDir::new("rns-wrong-key");
    let config = std::fs::read_to_string(rns.join("config")).unwrap();
    let key_line = config.lines().find(|l| l.contains("rpc_key")).unwrap();
    std::fs::write(
        wrong.0.join("config"),
        config.replace(key_line, &format!("  rpc_key = {}", "ab".repeat(32))),
    )
    .unwrap();
    let out = std::process::Command::new(bin.join("rnstatus"))
        .arg("--config")
        .arg(&wrong.0)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("TCPServerInterface"), "{text}");
}
