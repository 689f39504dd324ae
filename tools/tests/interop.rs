//! Interop with the reference implementation: real RNS 1.5.7 processes on loopback.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
/// How long a relayed announce may take to be reported by RNS: a new RNS interface that
/// hears more than 3 announces a second holds announces for unknown destinations for 15 s
/// and releases them on a 5 s job (RNS ingress control), so a busy first second costs ~20 s.
const RELAYED: Duration = Duration::from_secs(45);

fn grid_server(port: u16, extra_node: &str, iface_extra: &str) -> Grid {
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n{extra_node}\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n{iface_extra}\n"
    ))
}

fn grid_client(port: u16, iface_extra: &str) -> Grid {
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n{iface_extra}\n"
    ))
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Grid path lookup that retries until `pred` holds.
fn grid_path_until(g: &Grid, dest: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(T, what, || {
        let (ok, out, _) = g.cli(&["path", dest, "--timeout", "2", "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (ok && pred(&v)).then_some(v)
    })
}

/// The two-node checks of issue 2, run on an already connected pair.
fn two_node_checks(g: &Grid, py: &mut Py) {
    let grid_dest = g.destination();
    let grid_probe = g.probe_destination();
    let py_dest = py.destination();

    // RNS hears and validates Grid's announce (sent when the connection came up).
    let a = py.announce_event(&grid_dest, T);
    assert_eq!(a["hops"], 1);
    assert_eq!(a["identity"], g.id()["identity"]);

    // Path request RNS → Grid, for a destination Grid never announced.
    let p = py.wait_path(&grid_probe, 15);
    assert_eq!(
        p["event"], "path",
        "Grid did not answer a path request: {p}"
    );
    assert_eq!(p["hops"], 1);

    // Path request Grid → RNS, before RNS has announced anything.
    let v = g.json(&["path", &py_dest, "--timeout", "15"]);
    assert_eq!(v["hops"], 1);
    assert_eq!(v["identity"], py.ready["identity"]);

    // Grid hears and validates an announce with app data.
    py.announce("hello-grid");
    grid_path_until(g, &py_dest, "announce app_data at Grid", |v| {
        v["app_data"] == hex("hello-grid").as_str()
    });

    // SINGLE Grid → RNS, proof back.
    let v = g.json(&["probe", &py_dest, "--data", "from grid", "--timeout", "15"]);
    assert_eq!(v["ok"], true);
    let want = hex("from grid");
    py.expect(T, "packet from Grid", |v| {
        v["event"] == "packet" && v["data"] == want.as_str()
    });

    // SINGLE RNS → Grid, proof back.
    let before = g.status()["stats"]["delivered"].as_u64().unwrap();
    py.send_and_prove(&grid_dest, "grid.node", "from rns");
    let after = g.status()["stats"]["delivered"].as_u64().unwrap();
    assert!(after > before);
}

#[test]
fn grid_server_rns_client() {
    let _slot = slot();
    let port = free_port();
    let g = grid_server(port, "", "");
    let mut py = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
    ]));
    two_node_checks(&g, &mut py);
}

#[test]
fn rns_server_grid_client() {
    let _slot = slot();
    let port = free_port();
    let mut py = Py::start(&args(&[
        "--interface",
        &format!("tcp_server=127.0.0.1:{port}"),
    ]));
    let g = grid_client(port, "");
    two_node_checks(&g, &mut py);
}

#[test]
fn ifac_both_ends_and_wrong_passphrase_is_not_heard() {
    let _slot = slot();
    let ifac = "network_name = \"testnet\"\npassphrase = \"secret\"";
    let port = free_port();
    let g = grid_server(port, "", ifac);
    let mut py = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
        "--network-name",
        "testnet",
        "--passphrase",
        "secret",
    ]));
    two_node_checks(&g, &mut py);

    // A peer with the wrong passphrase hears nothing and is not heard.
    let mut bad = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
        "--network-name",
        "testnet",
        "--passphrase",
        "wrong",
    ]));
    let bad_dest = bad.destination();
    bad.announce("intruder");
    let grid_dest = g.destination();
    bad.expect_none(Duration::from_secs(4), "announce through wrong IFAC", |v| {
        v["event"] == "announce" && v["destination"] == grid_dest.as_str()
    });
    let (ok, _, err) = g.cli(&["path", &bad_dest, "--timeout", "3"]);
    assert!(!ok, "wrong-passphrase peer was heard");
    assert!(err.contains("no path"), "{err}");
    let violations: u64 = g.status()["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ifac_violations"].as_u64().unwrap())
        .sum();
    assert!(violations > 0, "IFAC violations were not counted");
}

const GRID_IFAC: &str = "network_name = \"testnet\"\npassphrase = \"secret\"";
const PY_IFAC: [&str; 4] = ["--network-name", "testnet", "--passphrase", "secret"];
const RNSD_IFAC: &str = "    network_name = testnet\n    passphrase = secret\n";

fn py_client(port: u16, ifac: bool) -> Py {
    let mut a = args(&["--interface", &format!("tcp_client=127.0.0.1:{port}")]);
    if ifac {
        a.extend(args(&PY_IFAC));
    }
    Py::start(&a)
}

#[test]
fn rns_grid_transport_rns() {
    let _slot = slot();
    rns_grid_transport_rns_with(false);
}

#[test]
fn rns_grid_transport_rns_with_ifac() {
    let _slot = slot();
    rns_grid_transport_rns_with(true);
}

fn rns_grid_transport_rns_with(ifac: bool) {
    let port = free_port();
    let g = grid_server(port, "transport = true", if ifac { GRID_IFAC } else { "" });
    let mut p1 = py_client(port, ifac);
    let mut p2 = py_client(port, ifac);
    let (d1, d2) = (p1.destination(), p2.destination());

    p1.announce("p1");
    let a = p2.announce_event(&d1, RELAYED);
    assert_eq!(a["hops"], 2, "announce must come through Grid: {a}");
    p2.announce("p2");
    let a = p1.announce_event(&d2, RELAYED);
    assert_eq!(a["hops"], 2);

    // SINGLE packet through Grid, proof routed back through Grid's reverse table.
    p2.send_and_prove(&d1, "rnsinterop.echo", "via grid");
    let want = hex("via grid");
    p1.expect(T, "packet via Grid", |v| {
        v["event"] == "packet" && v["data"] == want.as_str()
    });
    assert!(g.status()["stats"]["forwarded"].as_u64().unwrap() >= 2);

    // A late joiner asks Grid for a path; Grid answers from its table.
    let mut p3 = py_client(port, ifac);
    let p = p3.wait_path(&d1, 15);
    assert_eq!(p["event"], "path", "{p}");
    assert_eq!(p["hops"], 2);
    p3.send_and_prove(&d1, "rnsinterop.echo", "late");
}

#[test]
fn grid_rnsd_grid() {
    let _slot = slot();
    grid_rnsd_grid_with(false);
}

#[test]
fn grid_rnsd_grid_with_ifac() {
    let _slot = slot();
    grid_rnsd_grid_with(true);
}

fn grid_rnsd_grid_with(ifac: bool) {
    let port = free_port();
    let rnsd = Rnsd::start(port, true, if ifac { RNSD_IFAC } else { "" });
    let g1 = grid_client(port, if ifac { GRID_IFAC } else { "" });
    let g2 = grid_client(port, if ifac { GRID_IFAC } else { "" });
    let d1 = g1.destination();
    let v = grid_path_until(&g2, &d1, "path to g1 through rnsd", |v| v["ok"] == true);
    assert_eq!(v["hops"], 2, "{v}");
    let v = g2.json(&["probe", &d1, "--timeout", "15"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["hops"], 2);
    // And the other way round, found by path request answered from rnsd's table.
    let d2 = g2.destination();
    let v = g1.json(&["path", &d2, "--timeout", "15"]);
    assert_eq!(v["hops"], 2);
    let v = g1.json(&["probe", &d2, "--timeout", "15"]);
    assert_eq!(v["hops"], 2);
    // rnsd itself answers a path request for its probe destination and proves the probe.
    let v = g1.json(&["probe", &rnsd.probe_destination(), "--timeout", "15"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["hops"], 1);
}

#[test]
fn rnprobe_against_grid_and_grid_probe_against_rns() {
    let _slot = slot();
    // rnprobe (Python) → Grid
    let port = free_port();
    let g = grid_server(port, "", "");
    let dir = TempDir::new("rnprobe");
    std::fs::write(
        dir.0.join("config"),
        format!("[reticulum]\n  enable_transport = No\n  share_instance = No\n\n[logging]\n  loglevel = 2\n\n[interfaces]\n  [[c]]\n    type = TCPClientInterface\n    enabled = yes\n    target_host = 127.0.0.1\n    target_port = {port}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(venv_bin("rnprobe"))
        .arg("--config")
        .arg(&dir.0)
        .args(["-t", "15", "rnstransport.probe", &g.probe_destination()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rnprobe failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Valid reply"), "{stdout}");

    // grid probe → Python node with respond_to_probes
    let port = free_port();
    let py = Py::start(&args(&[
        "--interface",
        &format!("tcp_server=127.0.0.1:{port}"),
        "--probes",
    ]));
    let g = grid_client(port, "");
    // A path request is best-effort (RNS re-requests too): retry until it is answered.
    let out = wait_for(Duration::from_secs(45), "grid probe against RNS", || {
        let (ok, out, _) = g.cli(&["probe", &py.probe_destination(), "--timeout", "10"]);
        ok.then_some(out)
    });
    assert!(out.contains("Valid reply"), "{out}");
}

#[test]
fn identity_files_are_shared_with_rns() {
    let _slot = slot();
    // Grid writes the identity; RNS loads it and derives the same hashes.
    let dir = TempDir::new("idfile");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grid"))
        .arg("--config")
        .arg(&dir.0)
        .args(["id", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let script = format!(
        "import RNS\ni = RNS.Identity.from_file({:?})\nd = RNS.Destination.hash_from_name_and_identity('grid.node', i)\nprint(i.hash.hex(), d.hex())",
        dir.0.join("identity").display().to_string()
    );
    let out = std::process::Command::new(python())
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    assert_eq!(
        parts.next(),
        v["identity"].as_str(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(parts.next(), v["destination"].as_str());
}
