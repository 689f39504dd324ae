//! `grid/examples/echo.rs` against its Python twin (`tools/tests/py/echo.py`, RNS's
//! `Examples/Echo.py` flow with rns 1.5.7), both ways over TCP: a Grid echo server
//! answers a Python client's requests with proofs, and a Grid client gets proofs from
//! a Python echo server. The example binary is built by `cargo test --workspace`
//! (or `cargo build -p grid --examples`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// `target/<profile>/examples/echo`, next to this test's own binary.
fn echo_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/echo");
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

fn rns_config(dir: &std::path::Path, interface: &str) {
    std::fs::write(
        dir.join("config"),
        format!(
            "[reticulum]\n  share_instance = No\n  enable_transport = No\n[logging]\n  loglevel = 2\n[interfaces]\n  [[Grid]]\n    enabled = Yes\n{interface}\n"
        ),
    )
    .unwrap();
}

fn grid_config(dir: &std::path::Path, interface: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!("[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[web]\nenabled = false\n[[interface]]\n{interface}\n"),
    )
    .unwrap();
}

#[test]
fn grid_echo_server_proves_a_python_clients_requests() {
    let _slot = slot();
    let port = free_port();
    let g = TempDir::new("echo-grid-server");
    grid_config(
        &g.0,
        &format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""),
    );
    let mut cmd = Command::new(echo_example());
    cmd.arg("--config").arg(&g.0).arg("--server");
    let (_server, hash) = first_line(cmd);
    assert_eq!(hash.len(), 32, "{hash}");

    let py = TempDir::new("echo-py-client");
    rns_config(
        &py.0,
        &format!(
            "    type = TCPClientInterface\n    target_host = 127.0.0.1\n    target_port = {port}"
        ),
    );
    let mut client = Command::new(python());
    client.arg(workspace().join("tools/tests/py/echo.py"));
    three_proved(client, &py.0, &hash);
}

#[test]
fn grid_echo_client_gets_proofs_from_a_python_server() {
    let _slot = slot();
    let port = free_port();
    let py = TempDir::new("echo-py-server");
    rns_config(
        &py.0,
        &format!(
            "    type = TCPServerInterface\n    listen_ip = 127.0.0.1\n    listen_port = {port}"
        ),
    );
    let mut cmd = Command::new(python());
    cmd.arg(workspace().join("tools/tests/py/echo.py"))
        .arg("--config")
        .arg(&py.0)
        .arg("--server");
    let (_server, hash) = first_line(cmd);
    assert_eq!(hash.len(), 32, "{hash}");

    let g = TempDir::new("echo-grid-client");
    grid_config(
        &g.0,
        &format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\""),
    );
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
