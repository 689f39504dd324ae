//! The examples of `grid/examples/` against their Python twins (rns 1.5.7), both ways
//! over TCP: `echo` (`tools/tests/py/echo.py`, RNS's `Examples/Echo.py` flow: a Grid echo
//! server proves a Python client's requests, a Grid client gets proofs from a Python
//! server) and `filetransfer` (`tools/tests/py/filetransfer.py`, `Examples/Filetransfer.py`:
//! the file list, a file asked for by name, sent as a multi-part resource and saved
//! byte for byte). The example binaries are built by `cargo test --workspace` (or
//! `cargo build -p grid --examples`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// `target/<profile>/examples/echo`, next to this test's own binary.
fn echo_example() -> PathBuf {
    example("echo")
}

/// `target/<profile>/examples/<name>`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p grid --examples` (cargo test --workspace does)",
        p.display()
    );
    p
}

/// Kill on drop.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `cmd` and read its first stdout line (a destination hash).
fn first_line(mut cmd: Command) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep reading: a closed pipe would end the server at its next line.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server printed its hash");
    (Proc(child), line.trim().to_string())
}

/// An RNS config dir with one TCP interface to or from `port` (a server if `serve`).
fn py_config(tag: &str, port: u16, serve: bool) -> TempDir {
    let dir = TempDir::new(tag);
    let interface = if serve {
        format!(
            "    type = TCPServerInterface\n    listen_ip = 127.0.0.1\n    listen_port = {port}"
        )
    } else {
        format!(
            "    type = TCPClientInterface\n    target_host = 127.0.0.1\n    target_port = {port}"
        )
    };
    std::fs::write(
        dir.0.join("config"),
        format!(
            "[reticulum]\n  share_instance = No\n  enable_transport = No\n[logging]\n  loglevel = 2\n[interfaces]\n  [[Grid]]\n    enabled = Yes\n{interface}\n"
        ),
    )
    .unwrap();
    dir
}

/// A Grid state dir with one TCP interface on or to `port` (a server if `serve`).
fn grid_dir(tag: &str, port: u16, serve: bool) -> TempDir {
    let dir = TempDir::new(tag);
    let interface = if serve {
        format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"")
    } else {
        format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"")
    };
    std::fs::write(
        dir.0.join("config.toml"),
        format!("[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[web]\nenabled = false\n[[interface]]\n{interface}\n"),
    )
    .unwrap();
    dir
}

#[test]
fn grid_echo_server_proves_a_python_clients_requests() {
    let _slot = slot();
    let port = free_port();
    let g = grid_dir("echo-grid-server", port, true);
    let mut cmd = Command::new(echo_example());
    cmd.arg("--config").arg(&g.0).arg("--server");
    let (_server, hash) = first_line(cmd);
    assert_eq!(hash.len(), 32, "{hash}");

    let py = py_config("echo-py-client", port, false);
    let mut client = Command::new(python());
    client.arg(workspace().join("tools/tests/py/echo.py"));
    three_proved(client, &py.0, &hash);
}

#[test]
fn grid_echo_client_gets_proofs_from_a_python_server() {
    python_server_grid_client("echo-plain", false);
}

#[test]
fn ratchets_enforced_by_a_grid_server_are_used_by_a_python_client() {
    let _slot = slot();
    let port = free_port();
    let g = grid_dir("echo-ratchets-grid-server", port, true);
    let file = g.0.join("echo.ratchets");
    let mut cmd = Command::new(echo_example());
    cmd.arg("--config")
        .arg(&g.0)
        .arg("--server")
        .arg("--ratchets")
        .arg(&file);
    let (_server, hash) = first_line(cmd);
    // The server refuses packets not encrypted to its ratchet: every proof means the
    // Python client took the ratchet from the announce.
    let py = py_config("echo-ratchets-py-client", port, false);
    let mut client = Command::new(python());
    client.arg(workspace().join("tools/tests/py/echo.py"));
    three_proved(client, &py.0, &hash);
    // The ratchet file is RNS's: Python's own loader reads it back (its signature checks
    // against the destination identity, which only the server holds; the structure and
    // the one rotated key are what can be read from outside).
    let out = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, RNS.vendor.umsgpack as m\n\
             d = m.unpackb(open(sys.argv[1], 'rb').read())\n\
             keys = m.unpackb(d['ratchets'])\n\
             print(len(d['signature']), len(keys), len(keys[0]))",
        )
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        "64 1 32",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ratchets_enforced_by_a_python_server_are_used_by_a_grid_client() {
    python_server_grid_client("echo-ratchets", true);
}

/// A Python echo server (with enforced ratchets if `ratchets`) and the Grid echo client:
/// three requests, all proved.
fn python_server_grid_client(tag: &str, ratchets: bool) {
    let _slot = slot();
    let port = free_port();
    let py = py_config(&format!("{tag}-py-server"), port, true);
    let mut cmd = Command::new(python());
    cmd.arg(workspace().join("tools/tests/py/echo.py"))
        .arg("--config")
        .arg(&py.0)
        .arg("--server");
    if ratchets {
        cmd.arg("--ratchets").arg(py.0.join("echo.ratchets"));
    }
    let (_server, hash) = first_line(cmd);
    assert_eq!(hash.len(), 32, "{hash}");

    let g = grid_dir(&format!("{tag}-grid-client"), port, false);
    three_proved(Command::new(echo_example()), &g.0, &hash);
}

/// Run the echo client `cmd` with `config` against `hash`: three requests, all proved.
fn three_proved(mut cmd: Command, config: &std::path::Path, hash: &str) {
    let out = cmd
        .arg("--config")
        .arg(config)
        .arg(hash)
        .args(["--count", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("Valid reply received").count(), 3, "{text}");
}

/// Files to serve: a small one and one of three resource segments (RNS cuts resources
/// at 1 MiB).
fn files() -> (TempDir, Vec<u8>) {
    let dir = TempDir::new("ft-files");
    let big: Vec<u8> = (0..2_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.0.join("big.bin"), &big).unwrap();
    std::fs::write(dir.0.join("a.txt"), b"hello\n").unwrap();
    (dir, big)
}

fn fetched(mut cmd: Command, config: &std::path::Path, hash: &str, big: &[u8]) {
    let save = TempDir::new("ft-save");
    let out = cmd
        .arg("--config")
        .arg(config)
        .arg(hash)
        .arg("--save")
        .arg(&save.0)
        .args(["--file", "big.bin"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Files on the server: a.txt, big.bin"),
        "{text}"
    );
    assert_eq!(std::fs::read(save.0.join("big.bin")).unwrap(), big);
}

#[test]
fn grid_file_server_sends_a_python_client_the_file_it_asks_for() {
    let _slot = slot();
    let port = free_port();
    let (served, big) = files();
    let g = grid_dir("ft-grid-server", port, true);
    let mut cmd = Command::new(example("filetransfer"));
    cmd.arg("--config").arg(&g.0).arg("--serve").arg(&served.0);
    let (_server, hash) = first_line(cmd);
    let py = py_config("ft-py-client", port, false);
    let mut client = Command::new(python());
    client.arg(workspace().join("tools/tests/py/filetransfer.py"));
    fetched(client, &py.0, &hash, &big);
}

#[test]
fn grid_file_client_fetches_from_a_python_file_server() {
    let _slot = slot();
    let port = free_port();
    let (served, big) = files();
    let py = py_config("ft-py-server", port, true);
    let mut cmd = Command::new(python());
    cmd.arg(workspace().join("tools/tests/py/filetransfer.py"))
        .arg("--config")
        .arg(&py.0)
        .arg("--serve")
        .arg(&served.0);
    let (_server, hash) = first_line(cmd);
    let g = grid_dir("ft-grid-client", port, false);
    fetched(Command::new(example("filetransfer")), &g.0, &hash, &big);
}
