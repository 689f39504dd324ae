//! The `grid` binary on its own: config handling, the CLI, hostile peers, multi-hop.

mod common;

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Run the grid binary with `--config dir` and `args`, to completion.
fn run_grid(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_grid"))
        .arg("--config")
        .arg(dir)
        .args(args)
        .output()
        .expect("run grid")
}

fn server_cfg(port: u16, extra: &str) -> String {
    format!("[node]\nannounce_interval = \"1h\"\n{extra}\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n")
}

fn client_cfg(port: u16) -> String {
    format!("[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n")
}

#[test]
fn bad_config_is_refused_with_file_key_and_reason() {
    let _slot = slot();
    let dir = TempDir::new("badcfg");
    std::fs::write(
        dir.0.join("config.toml"),
        "[node]\nannounce_interval = \"often\"\n",
    )
    .unwrap();
    let out = run_grid(&dir.0, &["node"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("node.announce_interval"), "{err}");
    assert!(err.contains("duration"), "{err}");

    std::fs::write(
        dir.0.join("config.toml"),
        "[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:99999\"\n",
    )
    .unwrap();
    let out = run_grid(&dir.0, &["node"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interface[0].listen"), "{err}");
}

#[test]
fn fresh_state_dir_gets_default_config_and_identity() {
    let _slot = slot();
    let dir = TempDir::new("fresh");
    let out = run_grid(&dir.0, &["id", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["identity"].as_str().unwrap().len(), 32);
    assert_eq!(v["destinations"]["grid.node"], v["destination"]);
    assert_eq!(std::fs::read(dir.0.join("identity")).unwrap().len(), 64);
    // The node writes the embedded default config on first start.
    let g = Grid::start_in(dir);
    assert!(g.dir.0.join("config.toml").exists());
    let text = std::fs::read_to_string(g.dir.0.join("config.toml")).unwrap();
    assert!(text.contains("tcp_server"));
    assert_eq!(g.destination(), v["destination"].as_str().unwrap());
}

#[test]
fn second_node_on_same_state_dir_refuses() {
    let _slot = slot();
    let g = Grid::start(&server_cfg(free_port(), ""));
    let out = run_grid(&g.dir.0, &["node"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    // The first one is unaffected.
    assert_eq!(g.status()["ok"], true);
}

/// `grid id | head -0`: a reader that is gone ends the CLI quietly (status 141, as by
/// SIGPIPE), not with a panic.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = TempDir::new("pipe");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_grid"))
        .arg("--config")
        .arg(&dir.0)
        .arg("id")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn cli_without_node_fails_with_one_line_reason() {
    let _slot = slot();
    let dir = TempDir::new("nonode");
    let out = run_grid(&dir.0, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no node is running"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_grid"))
        .args(["path", "xyz"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid destination hash"));
}

#[test]
fn hostile_tcp_peer_is_dropped_and_others_keep_working() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&server_cfg(port, ""));
    let b = Grid::start(&client_cfg(port));
    let da = a.destination();
    wait_for(Duration::from_secs(15), "b learns a", || {
        b.cli(&["path", &da, "--timeout", "2"]).0.then_some(())
    });
    // Garbage, an oversized frame, half a frame, random bytes.
    for payload in [
        vec![0x55u8; 5000],
        {
            let mut v = vec![0x7E];
            v.extend(std::iter::repeat_n(0x41, 300_000));
            v.push(0x7E);
            v
        },
        vec![0x7E, 0x01, 0x02, 0x03],
        (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(&payload);
        drop(s);
    }
    // A bogus but well-framed packet stream too.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in 0..200u32 {
        let mut p = vec![(i % 256) as u8 & 0x7f, 0];
        p.extend((0..60).map(|j| (i + j) as u8));
        let _ = s.write_all(&grid_interfaces::hdlc::encode(&p));
    }
    drop(s);
    let v = b.json(&["probe", &da, "--timeout", "10"]);
    assert_eq!(v["ok"], true);
    let st = a.status();
    assert!(
        st["stats"]["protocol_violations"].as_u64().unwrap() > 0,
        "{st}"
    );
}

#[test]
fn three_grid_nodes_through_a_grid_transport_node() {
    let _slot = slot();
    let port = free_port();
    let t = Grid::start(&server_cfg(port, "transport = true"));
    let a = Grid::start(&client_cfg(port));
    let b = Grid::start(&client_cfg(port));
    let da = a.destination();
    let v = wait_for(Duration::from_secs(20), "b learns a via t", || {
        let (ok, out, _) = b.cli(&["path", &da, "--timeout", "2", "--json"]);
        ok.then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap())
    });
    assert_eq!(v["hops"], 2);
    assert_eq!(v["next_hop"], t.id()["identity"]);
    let v = b.json(&["probe", &da, "--timeout", "10"]);
    assert_eq!(v["hops"], 2);
    let human = b.cli(&["probe", &da]).1;
    assert!(human.starts_with("Valid reply from"), "{human}");
    assert!(t.status()["stats"]["forwarded"].as_u64().unwrap() >= 2);
}

#[test]
fn node_announces_at_start_and_every_interval() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&format!(
        "[node]\nannounce_interval = \"1s\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let b = Grid::start(&client_cfg(port));
    let da = a.destination();
    wait_for(Duration::from_secs(10), "b hears a", || {
        b.cli(&["path", &da, "--timeout", "1"]).0.then_some(())
    });
    let count = |g: &Grid| -> u64 {
        g.status()["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["tx_announces"].as_u64().unwrap())
            .sum()
    };
    let first = count(&a);
    std::thread::sleep(Duration::from_millis(3500));
    let later = count(&a);
    assert!(later >= first + 3, "announces sent: {first} then {later}");
}

#[test]
fn a_sender_vanishing_mid_transfer_leaves_nothing_partial() {
    let _slot = slot();
    let port = free_port();
    let mut sender = Grid::start(&client_cfg(port));
    let sender_id = sender.id()["identity"].as_str().unwrap().to_string();
    let receiver = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[cp]\nallow = [\"{sender_id}\"]\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let dest = receiver.id()["destinations"]["rncp.receive"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = TempDir::new("big");
    let f = dir.0.join("big.bin");
    std::fs::write(
        &f,
        (0..40_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    // Start the transfer in the background, then kill the sending node mid-way.
    let grid = env!("CARGO_BIN_EXE_grid");
    let mut cp = Command::new(grid)
        .arg("--config")
        .arg(&sender.dir.0)
        .args(["cp", "--quiet", f.to_str().unwrap(), &dest])
        .spawn()
        .unwrap();
    let recv_dir = receiver.dir.0.join("received");
    wait_for(Duration::from_secs(30), "a partial file to appear", || {
        std::fs::read_dir(&recv_dir).ok()?.next().map(|_| ())
    });
    sender.kill();
    let _ = cp.wait();
    // The receiver notices (stale link → close) and removes the partial file.
    wait_for(
        Duration::from_secs(40),
        "the partial file to be removed",
        || (std::fs::read_dir(&recv_dir).unwrap().count() == 0).then_some(()),
    );
    assert_eq!(receiver.status()["ok"], true, "the receiver is healthy");
    assert!(receiver.json(&["link", "list"])["links"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn grid_exec_runs_commands_on_another_node() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&server_cfg(port, ""));
    let b = Grid::start(&client_cfg(port));
    let dest = b.destination();
    let v = wait_for(Duration::from_secs(20), "grid exec grid/ping", || {
        let (ok, out, _) = a.cli(&["exec", &dest, "grid/ping", "--json", "--timeout", "5"]);
        ok.then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap())
    });
    assert_eq!(v["result"]["pong"], true);
    assert_eq!(v["result"]["node"], dest.as_str());
    // A learned B's capabilities from its announce.
    let peer = wait_for(Duration::from_secs(10), "B among A's grid peers", || {
        a.status()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["node"] == dest.as_str())
            .cloned()
    });
    assert!(
        peer["capabilities"]["cpu_cores"].as_u64().unwrap() >= 1,
        "{peer}"
    );
    let caps = a.json(&["exec", &dest, "grid/capabilities"]);
    assert_eq!(caps["result"], peer["capabilities"]);
    // B, heard one hop away over TCP, is A's catalog gossip neighbour (nothing published).
    let catalog = a.json(&["catalog"]);
    assert_eq!(catalog["neighbours"], 1, "{catalog}");
    assert_eq!(catalog["entries"], serde_json::json!([]), "{catalog}");
    let list = a.json(&["exec", &dest, "list"]);
    assert!(list["result"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["command"] == "grid/capabilities"));
    // grid/status needs trust: refused until B trusts A, then answered (human output
    // is the result, pretty-printed); both sides keep an audit record.
    let (ok, _, err) = a.cli(&["exec", &dest, "grid/status"]);
    assert!(!ok && err.contains("denied"), "{err}");
    // The refusal names the fix.
    assert!(err.contains("fix:") && err.contains("grid trust"), "{err}");
    let a_identity = a.id()["identity"].as_str().unwrap().to_string();
    let v = b.json(&["trust", &a_identity, "trusted"]);
    assert_eq!(v["level"], "trusted");
    let (ok, out, err) = a.cli(&["exec", &dest, "grid/status"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"uptime_s\""), "{out}");
    let (ok, out, _) = b.cli(&["audit", "--json"]);
    assert!(ok);
    let outcomes: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["command"] == "grid/status")
        .collect();
    assert_eq!(outcomes.len(), 2, "{out}");
    assert_eq!(
        (
            outcomes[0]["outcome"].as_str(),
            outcomes[1]["outcome"].as_str()
        ),
        (Some("denied"), Some("success"))
    );
    let (ok, out, _) = b.cli(&["trust"]);
    assert!(ok && out.contains(&a_identity), "{out}");
    // Detached: a handle at once, the outcome later.
    let (ok, out, err) = a.cli(&["exec", &dest, "grid/ping", "--detach"]);
    assert!(ok, "{err}");
    let handle = out.trim().to_string();
    assert_eq!(handle.len(), 16, "{out}");
    let v = wait_for(Duration::from_secs(10), "the detached result", || {
        let v = a.json(&["exec", "--result", &handle]);
        (v["state"] == "done").then_some(v)
    });
    assert_eq!(v["outcome"]["result"]["pong"], true, "{v}");
    let (ok, out, _) = a.cli(&["exec", "--result", &handle]);
    assert!(ok && out.contains("\"pong\""), "{out}");
    let (ok, _, err) = a.cli(&["exec", "--result", "zz"]);
    assert!(!ok && err.contains("invalid handle"), "{err}");
    // A command no rule allows (here: one that does not exist) fails with its typed
    // code and the fix, on one line.
    let (ok, _, err) = a.cli(&["exec", &dest, "no/such", "{}"]);
    assert!(!ok);
    assert!(err.contains("denied"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (ok, _, err) = a.cli(&["exec", &dest, "grid/ping", "{not json"]);
    assert!(!ok && err.contains("params is not JSON"), "{err}");
    // Routing hints: local-only runs here; a bad hint is refused up front.
    let v = a.json(&["exec", "local-only", "grid/ping"]);
    assert_eq!(v["node"], a.destination().as_str(), "{v}");
    assert_eq!(v["result"]["node"], a.destination().as_str());
    let (ok, _, err) = a.cli(&["exec", "gpu-please", "grid/ping"]);
    assert!(!ok && err.contains("routing hint"), "{err}");
}

#[test]
fn grid_pair_makes_two_nodes_trust_each_other() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&server_cfg(port, ""));
    let b = Grid::start(&client_cfg(port));
    let a_dest = a.destination();
    wait_for(Duration::from_secs(20), "b has a path to a", || {
        b.cli(&["path", &a_dest, "--timeout", "2"]).0.then_some(())
    });
    // A shows a code and waits; B presents it.
    let mut offer = Command::new(env!("CARGO_BIN_EXE_grid"))
        .arg("--config")
        .arg(&a.dir.0)
        .args(["pair", "--window", "1m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(offer.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let code = first
        .strip_prefix("Pairing code: ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let (ok, _, err) = b.cli(&["pair", &a_dest, "not", "the", "right", "code"]);
    assert!(!ok && err.contains("not a pairing code"), "{err}");
    let words: Vec<&str> = code.split('-').collect();
    let v = b.json(&["pair", &a_dest, words[0], words[1], words[2], words[3]]);
    let a_identity = a.id()["identity"].as_str().unwrap().to_string();
    let b_identity = b.id()["identity"].as_str().unwrap().to_string();
    assert_eq!(v["identity"], a_identity.as_str(), "{v}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(offer.wait().unwrap().success());
    assert!(
        rest.iter()
            .any(|l| l.contains(&b_identity) && l.contains("trusted")),
        "{rest:?}"
    );
    assert_eq!(a.json(&["trust", &b_identity])["level"], "trusted");
    assert_eq!(b.json(&["trust", &a_identity])["level"], "trusted");
}

#[test]
fn grid_listen_prints_events_emitted_on_another_node() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&server_cfg(port, ""));
    let b = Grid::start(&client_cfg(port));
    let dest = a.destination();
    wait_for(Duration::from_secs(20), "b has a path to a", || {
        b.cli(&["path", &dest, "--timeout", "2"]).0.then_some(())
    });
    let listen = Command::new(env!("CARGO_BIN_EXE_grid"))
        .arg("--config")
        .arg(&b.dir.0)
        .args([
            "listen",
            "sensor:*",
            "--node",
            &dest,
            "--count",
            "1",
            "--timeout",
            "30",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Emit until the subscription is in place (earlier emits reach nobody), with a
    // non-matching event first each time.
    wait_for(Duration::from_secs(20), "a remote subscriber", || {
        a.json(&["emit", "other:thing"]);
        let v = a.json(&["emit", "sensor:temp:reading", "{\"c\": 21.5}"]);
        (v["subscribers"] == 1).then_some(())
    });
    let out = listen.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["event"], "sensor:temp:reading");
    assert_eq!(v["payload"]["c"], 21.5);
    assert_eq!(v["node"], dest.as_str());
    // Bad input is refused with a reason.
    let (ok, _, err) = a.cli(&["emit", "no spaces", "{}"]);
    assert!(!ok && err.contains("event name"), "{err}");
    let (ok, _, err) = a.cli(&["listen", "a:**x"]);
    assert!(!ok && err.contains("pattern"), "{err}");
}

#[test]
fn status_shows_listeners_with_no_clients_and_counts_them() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&server_cfg(port, ""));
    let s = a.status();
    let listener = &s["configured"][0];
    assert_eq!(listener["kind"], "tcp_server", "{s}");
    assert_eq!(listener["address"], format!("127.0.0.1:{port}"), "{s}");
    assert_eq!(listener["connections"], 0, "{s}");
    assert_eq!(listener["mode"], "full", "{s}");
    let (ok, human, _) = a.cli(&["status"]);
    assert!(
        ok && human.contains("listening, nobody connected"),
        "{human}"
    );

    let b = Grid::start(&client_cfg(port));
    wait_for(Duration::from_secs(15), "A counts B's connection", || {
        (a.status()["configured"][0]["connections"] == 1).then_some(())
    });
    let (_, human, _) = a.cli(&["status"]);
    assert!(human.contains("listening, 1 client(s)"), "{human}");
    let s = b.status();
    assert_eq!(s["configured"][0]["kind"], "tcp_client", "{s}");
    assert_eq!(s["configured"][0]["connections"], 1, "{s}");
}
