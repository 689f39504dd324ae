//! Files between `grid cp` / a Grid node and `rncp` from RNS 1.5.7, both directions,
//! at link MTU 16384 (TCP) and 500 (UDP), and through transport nodes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rns_core::destination::hash_from_name;
use rns_core::Identity;

const T: Duration = Duration::from_secs(30);

fn sha256(path: &Path) -> String {
    hex::encode(rns_core::hash::full_hash(&std::fs::read(path).unwrap()))
}

/// A file of `len` pseudo-random (incompressible) bytes.
fn random_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let mut data = Vec::with_capacity(len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// An identity file for rncp (`-i`), and the identity.
fn identity_file(dir: &Path) -> (PathBuf, Identity) {
    let id = Identity::generate(&mut rand_core::OsRng);
    let p = dir.join("rncp_identity");
    std::fs::write(&p, id.to_private_bytes()).unwrap();
    (p, id)
}

/// Interfaces for one side of a test network.
#[derive(Clone, Copy)]
enum Net {
    /// Grid is a TCP server on this port; RNS connects (link MTU 16384).
    Tcp(u16),
    /// UDP both ways on these ports: (grid listens, rns listens) (link MTU 500).
    Udp(u16, u16),
}

fn grid_config(net: Net, extra: &str) -> String {
    let iface = match net {
        Net::Tcp(p) => format!("[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{p}\"\n"),
        Net::Udp(g, r) => format!("[[interface]]\ntype = \"udp\"\nlisten = \"127.0.0.1:{g}\"\nforward = \"127.0.0.1:{r}\"\n"),
    };
    format!("[node]\nannounce_interval = \"1h\"\n{extra}\n{iface}")
}

fn rns_config(dir: &Path, net: Net) {
    let iface = match net {
        Net::Tcp(p) => format!("  [[c]]\n    type = TCPClientInterface\n    enabled = yes\n    target_host = 127.0.0.1\n    target_port = {p}\n"),
        Net::Udp(g, r) => format!("  [[u]]\n    type = UDPInterface\n    enabled = yes\n    listen_ip = 127.0.0.1\n    listen_port = {r}\n    forward_ip = 127.0.0.1\n    forward_port = {g}\n"),
    };
    std::fs::write(
        dir.join("config"),
        format!("[reticulum]\n  enable_transport = No\n  share_instance = No\n\n[logging]\n  loglevel = 4\n\n[interfaces]\n{iface}"),
    )
    .unwrap();
}

/// `rncp -l` in the background.
struct RncpListener {
    child: Child,
    dir: TempDir,
    save: PathBuf,
    destination: String,
}

impl RncpListener {
    fn start(net: Net, allowed: &str) -> RncpListener {
        let dir = TempDir::new("rncp-l");
        rns_config(&dir.0, net);
        let (idf, id) = identity_file(&dir.0);
        let save = dir.0.join("saved");
        std::fs::create_dir_all(&save).unwrap();
        let child = Command::new(venv_bin("rncp"))
            .arg("--config")
            .arg(&dir.0)
            .args(["-l", "-b", "0", "-a", allowed, "-i"])
            .arg(&idf)
            .arg("-s")
            .arg(&save)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.0.join("out.log")).unwrap())
            .stderr(std::fs::File::create(dir.0.join("err.log")).unwrap())
            .spawn()
            .unwrap();
        let destination = hash_from_name("rncp.receive", Some(&id.hash())).to_string();
        RncpListener {
            child,
            dir,
            save,
            destination,
        }
    }
}

impl Drop for RncpListener {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- rncp -l log ----\n{}",
                std::fs::read_to_string(self.dir.0.join("out.log")).unwrap_or_default()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `rncp <file> <destination>` to completion; returns (success, output).
fn rncp_send(net: Net, file: &Path, destination: &str, idf: &Path) -> (bool, String) {
    let dir = TempDir::new("rncp-s");
    rns_config(&dir.0, net);
    let out = Command::new(venv_bin("rncp"))
        .arg("--config")
        .arg(&dir.0)
        .arg("-S")
        .arg("-i")
        .arg(idf)
        .args(["-w", "30"])
        .arg(file)
        .arg(destination)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn wait_for_file(path: &Path, len: u64) {
    wait_for(
        Duration::from_secs(120),
        &format!("{} ({len} bytes)", path.display()),
        || (std::fs::metadata(path).ok()?.len() == len).then_some(()),
    );
    // The listener moves the file into place when done; give it a moment to close it.
    std::thread::sleep(Duration::from_millis(200));
}

fn grid_to_rncp(net: Net, sizes: &[usize]) {
    let g = Grid::start(&grid_config(net, ""));
    let grid_identity = g.id()["identity"].as_str().unwrap().to_string();
    let rncp = RncpListener::start(net, &grid_identity);
    let files = TempDir::new("files");
    for (i, &size) in sizes.iter().enumerate() {
        let f = random_file(&files.0, &format!("to-rncp-{i}.bin"), size);
        let v = wait_for(T, "grid cp to rncp", || {
            let (ok, out, err) = g.cli(&[
                "cp",
                f.to_str().unwrap(),
                &rncp.destination,
                "--json",
                "--timeout",
                "20",
            ]);
            if !ok {
                eprintln!("grid cp: {err}");
            }
            ok.then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap())
        });
        assert_eq!(v["state"], "complete");
        let got = rncp.save.join(format!("to-rncp-{i}.bin"));
        wait_for_file(&got, size as u64);
        assert_eq!(sha256(&got), sha256(&f), "{size} bytes to rncp");
    }
}

fn rncp_to_grid(net: Net, sizes: &[usize]) {
    let keys = TempDir::new("keys");
    let (idf, id) = identity_file(&keys.0);
    let g = Grid::start(&grid_config(
        net,
        &format!("[cp]\nallow = [\"{}\"]\n", id.hash()),
    ));
    let dest = g.id()["destinations"]["rncp.receive"]
        .as_str()
        .unwrap()
        .to_string();
    let files = TempDir::new("files");
    for (i, &size) in sizes.iter().enumerate() {
        let f = random_file(&files.0, &format!("to-grid-{i}.bin"), size);
        let (ok, out) = rncp_send(net, &f, &dest, &idf);
        assert!(ok, "rncp failed: {out}");
        let got = g.dir.0.join("received").join(format!("to-grid-{i}.bin"));
        wait_for_file(&got, size as u64);
        assert_eq!(sha256(&got), sha256(&f), "{size} bytes to Grid");
    }
    // Nothing partial is left in the receive directory.
    let names: Vec<String> = std::fs::read_dir(g.dir.0.join("received"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

const SIZES: [usize; 3] = [1_000, 1_000_000, 20_000_000];

#[test]
fn grid_cp_to_rncp_over_tcp() {
    let _slot = slot();
    grid_to_rncp(Net::Tcp(free_port()), &SIZES);
}

#[test]
fn rncp_to_grid_over_tcp() {
    let _slot = slot();
    rncp_to_grid(Net::Tcp(free_port()), &SIZES);
}

#[test]
fn grid_cp_to_rncp_at_mtu_500() {
    let _slot = slot();
    grid_to_rncp(Net::Udp(free_port(), free_port()), &SIZES);
}

#[test]
fn rncp_to_grid_at_mtu_500() {
    let _slot = slot();
    rncp_to_grid(Net::Udp(free_port(), free_port()), &SIZES);
}

#[test]
fn files_from_identities_not_allowed_are_refused() {
    let _slot = slot();
    let net = Net::Tcp(free_port());
    let keys = TempDir::new("keys");
    let (idf, _) = identity_file(&keys.0);
    let g = Grid::start(&grid_config(net, "[cp]\nallow = []\n"));
    let dest = g.id()["destinations"]["rncp.receive"]
        .as_str()
        .unwrap()
        .to_string();
    let files = TempDir::new("files");
    let f = random_file(&files.0, "unwanted.bin", 5000);
    let (ok, out) = rncp_send(net, &f, &dest, &idf);
    assert!(!ok, "rncp should fail: {out}");
    let dir = g.dir.0.join("received");
    let count = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 0, "nothing may be written");
}

#[test]
fn rncp_between_two_rns_nodes_through_a_grid_transport_node() {
    let _slot = slot();
    let port = free_port();
    let g = Grid::start(&grid_config(Net::Tcp(port), "transport = true"));
    let keys = TempDir::new("keys");
    let (idf, id) = identity_file(&keys.0);
    let rncp = RncpListener::start(Net::Tcp(port), &id.hash().to_string());
    let files = TempDir::new("files");
    let f = random_file(&files.0, "via-grid.bin", 5_000_000);
    // The listener announces at start; the sender finds it through Grid.
    let (ok, out) = rncp_send(Net::Tcp(port), &f, &rncp.destination, &idf);
    assert!(ok, "rncp through Grid failed: {out}");
    let got = rncp.save.join("via-grid.bin");
    wait_for_file(&got, 5_000_000);
    assert_eq!(sha256(&got), sha256(&f));
    // Every part crossed Grid: 5 MB is about 306 parts of 16348 bytes.
    assert!(g.status()["stats"]["forwarded"].as_u64().unwrap() >= 306);
}

#[test]
fn grid_cp_between_two_grid_nodes_through_rnsd() {
    let _slot = slot();
    let port = free_port();
    let _rnsd = Rnsd::start(port, true, "");
    let client = |extra: &str| {
        Grid::start(&format!(
            "[node]\nannounce_interval = \"1h\"\n{extra}\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
        ))
    };
    let sender = client("");
    let sender_id = sender.id()["identity"].as_str().unwrap().to_string();
    let receiver = client(&format!("[cp]\nallow = [\"{sender_id}\"]\n"));
    let dest = receiver.id()["destinations"]["rncp.receive"]
        .as_str()
        .unwrap()
        .to_string();
    let files = TempDir::new("files");
    let f = random_file(&files.0, "via-rnsd.bin", 5_000_000);
    let v = wait_for(T, "grid cp through rnsd", || {
        let (ok, out, _) = sender.cli(&[
            "cp",
            f.to_str().unwrap(),
            &dest,
            "--json",
            "--timeout",
            "20",
        ]);
        ok.then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap())
    });
    assert_eq!(v["state"], "complete");
    let got = receiver.dir.0.join("received/via-rnsd.bin");
    wait_for_file(&got, 5_000_000);
    assert_eq!(sha256(&got), sha256(&f));
}
