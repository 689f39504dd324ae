//! Test harness: real `grid` processes, real Python RNS 1.5.7 peers, loopback only.
//!
//! Python comes from `$GRID_PYTHON` or `<workspace>/.venv/bin/python` (created by
//! `scripts/test.sh`). If neither has `rns==1.5.7`, tests fail loudly with instructions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod hostile;

// The shared test helpers; not every test binary uses every one.
#[allow(unused_imports)]
pub use grid_test_support::{free_port, noise, wait_for, TempDir};

pub const RNS_VERSION: &str = "1.5.7";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python interpreter with RNS installed; panics with instructions if missing.
pub fn python() -> PathBuf {
    let p = std::env::var_os("GRID_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let out = Command::new(&p)
        .args([
            "-c",
            "import RNS, importlib.metadata as m; print(m.version('rns'))",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == RNS_VERSION => p,
        Ok(o) => panic!(
            "{} does not have rns=={RNS_VERSION} (got {:?}, {}). Run ./scripts/test.sh, which creates .venv.",
            p.display(),
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "interop tests need Python with rns=={RNS_VERSION} at {} ({e}). Run ./scripts/test.sh, which creates .venv.",
            p.display()
        ),
    }
}

/// A bin script (rnsd, rnprobe) from the same venv as [`python`].
pub fn venv_bin(name: &str) -> PathBuf {
    python().parent().unwrap().join(name)
}

/// Tests that run several real processes take one of these slots, so a 2-core machine
/// is not oversubscribed by the test harness running everything at once.
pub struct Slot;

static SLOTS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static SLOT_FREED: std::sync::Condvar = std::sync::Condvar::new();
const MAX_SLOTS: usize = 2;

/// Wait for a slot; it is released when the returned guard drops.
pub fn slot() -> Slot {
    let mut n = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    while *n >= MAX_SLOTS {
        n = SLOT_FREED.wait(n).unwrap_or_else(|e| e.into_inner());
    }
    *n += 1;
    Slot
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut n = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        SLOT_FREED.notify_one();
    }
}

/// A command, run inside network namespace `netns` if given (`ip netns exec`).
pub fn command_in(netns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Resident memory (KiB) from a `/proc/<pid>/status` file.
pub fn rss_of(status: &Path) -> Option<u64> {
    std::fs::read_to_string(status)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A running `grid node`.
pub struct Grid {
    pub dir: TempDir,
    child: Child,
    netns: Option<String>,
    /// The open-file limit it runs with (`ulimit -n`), if the test set one.
    nofile: Option<u64>,
}

/// A test node's config that says nothing of the status page serves it on a port of its
/// own, so the nodes of a test do not all try the default port (4280) and log that it is
/// taken. A config without a file (the node writes its default) is left alone.
fn own_status_page_port(dir: &TempDir) {
    let path = dir.0.join("config.toml");
    if let Ok(config) = std::fs::read_to_string(&path) {
        if !config.contains("[web]") {
            std::fs::write(path, format!("{config}\n[web]\nlisten = \"127.0.0.1:0\"\n")).unwrap();
        }
    }
}

impl Grid {
    pub fn start(config: &str) -> Grid {
        let dir = TempDir::new("grid");
        std::fs::write(dir.0.join("config.toml"), config).unwrap();
        Self::start_in(dir)
    }

    pub fn start_in(dir: TempDir) -> Grid {
        Self::spawn(dir, None, None)
    }

    /// Start a node that may hold at most `nofile` open files (`ulimit -n`), as on a
    /// small device or a host with a low default.
    pub fn start_with_nofile(config: &str, nofile: u64) -> Grid {
        let dir = TempDir::new("grid");
        std::fs::write(dir.0.join("config.toml"), config).unwrap();
        Self::spawn(dir, None, Some(nofile))
    }

    /// Start a node with extra environment variables (such as an `LD_PRELOAD`).
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Grid {
        let dir = TempDir::new("grid");
        std::fs::write(dir.0.join("config.toml"), config).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn_env(dir, None, None, &env)
    }

    /// Start a node inside a network namespace (its control socket is still reachable).
    pub fn start_in_netns(netns: &str, config: &str) -> Grid {
        let dir = TempDir::new("grid");
        std::fs::write(dir.0.join("config.toml"), config).unwrap();
        Self::spawn(dir, Some(netns.to_string()), None)
    }

    fn spawn(dir: TempDir, netns: Option<String>, nofile: Option<u64>) -> Grid {
        Self::spawn_env(dir, netns, nofile, &[])
    }

    fn spawn_env(
        dir: TempDir,
        netns: Option<String>,
        nofile: Option<u64>,
        env: &[(String, String)],
    ) -> Grid {
        own_status_page_port(&dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.0.join("node.log"))
            .unwrap();
        let mut cmd = match nofile {
            // The shell sets the limit and becomes the node (same pid).
            Some(n) => {
                let mut c = command_in(netns.as_deref(), "sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_grid"));
                c
            }
            None => command_in(netns.as_deref(), env!("CARGO_BIN_EXE_grid")),
        };
        let child = cmd
            .arg("--config")
            .arg(&dir.0)
            .args(["node", "-v"])
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn grid node");
        let g = Grid {
            dir,
            child,
            netns,
            nofile,
        };
        wait_for(Duration::from_secs(10), "grid node control socket", || {
            g.cli(&["status", "--json"]).0.then_some(())
        });
        g
    }

    /// Kill the node with SIGKILL and start it again on the same state directory.
    pub fn restart(&mut self) {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, TempDir(PathBuf::new()));
        let fresh = Self::spawn(dir, self.netns.clone(), self.nofile);
        *self = fresh;
    }

    /// The node's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_of(&self.proc_status_path()).unwrap_or(0)
    }

    /// `/proc/<pid>/status` of the node process.
    pub fn proc_status_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/status", self.child.id()))
    }

    /// How many files and sockets the node holds open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the node process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Run the CLI against this node: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_grid"))
            .arg("--config")
            .arg(&self.dir.0)
            .args(args)
            .output()
            .expect("run grid");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run a CLI command with `--json` and parse the output; panics on failure.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let (ok, out, err) = self.cli(&a);
        assert!(ok, "grid {args:?} failed: {err}\nnode log:\n{}", self.log());
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("grid {args:?}: bad JSON {out:?}: {e}"))
    }

    pub fn id(&self) -> Value {
        self.json(&["id"])
    }

    pub fn destination(&self) -> String {
        self.id()["destination"].as_str().unwrap().to_string()
    }

    pub fn probe_destination(&self) -> String {
        self.id()["destinations"]["rnstransport.probe"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn status(&self) -> Value {
        self.json(&["status"])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("node.log")).unwrap_or_default()
    }

    /// Kill the node with SIGKILL and keep its state directory for a later
    /// [`Grid::start_in`].
    pub fn stop(mut self) -> TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, TempDir(PathBuf::new()))
    }

    /// Stop the node with SIGTERM (a clean shutdown), wait for it to exit, and keep its
    /// state directory.
    pub fn terminate(mut self) -> TempDir {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let end = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < end {
            if !self.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!self.alive(), "grid node did not stop on SIGTERM");
        self.kill();
        std::mem::replace(&mut self.dir, TempDir(PathBuf::new()))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Grid {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- grid node log ({}) ----\n{}",
                self.dir.0.display(),
                self.log()
            );
        }
        self.kill();
    }
}

/// A running Python RNS peer (tests/interop/rns_peer.py).
pub struct Py {
    pub dir: TempDir,
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    pub seen: Vec<Value>,
    pub ready: Value,
}

impl Py {
    pub fn start(args: &[String]) -> Py {
        Self::start_in_netns(None, args)
    }

    /// Start the peer inside a network namespace.
    pub fn start_in_netns(netns: Option<&str>, args: &[String]) -> Py {
        let dir = TempDir::new("rns");
        let mut child = command_in(netns, python())
            .arg(workspace().join("tests/interop/rns_peer.py"))
            .arg("--dir")
            .arg(&dir.0)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
            .spawn()
            .expect("spawn python peer");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, rx) = channel();
        let log_path = dir.0.join("rns.log");
        std::thread::spawn(move || {
            // Anything on stdout that is not an event: keep it for failure reports.
            let mut log = std::fs::File::create(log_path).ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        if let Some(f) = log.as_mut() {
                            let _ = writeln!(f, "{line}");
                        }
                    }
                }
            }
        });
        let mut p = Py {
            dir,
            child,
            stdin,
            rx,
            seen: Vec::new(),
            ready: Value::Null,
        };
        p.ready = p.expect(Duration::from_secs(20), "ready", |v| v["event"] == "ready");
        p
    }

    pub fn destination(&self) -> String {
        self.ready["destination"].as_str().unwrap().to_string()
    }

    pub fn probe_destination(&self) -> String {
        self.ready["probe"]
            .as_str()
            .expect("peer started with --probes")
            .to_string()
    }

    pub fn cmd(&mut self, v: Value) {
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Wait for an event matching `pred` (also among events already seen).
    pub fn expect(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(v) => self.seen.push(v),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "RNS peer: timed out after {timeout:?} waiting for {what}; seen {:?}\nstderr:\n{}",
                    self.seen,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("RNS peer exited while waiting for {what}\nstderr:\n{}", self.stderr())
                }
            }
        }
    }

    /// Assert no event matching `pred` arrives within `d`.
    pub fn expect_none(&mut self, d: Duration, what: &str, pred: impl Fn(&Value) -> bool) {
        assert!(
            !self.seen.iter().any(&pred),
            "unexpected {what}: {:?}",
            self.seen
        );
        let end = Instant::now() + d;
        while let Ok(v) = self
            .rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            assert!(!pred(&v), "unexpected {what}: {v}");
            self.seen.push(v);
        }
    }

    /// RNS's log (its `logfile`), stray stdout lines and the process's stderr.
    pub fn stderr(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.0.join(f)).unwrap_or_default();
        format!(
            "{}{}{}",
            read("logfile"),
            read("rns.log"),
            read("stderr.log")
        )
    }

    pub fn announce(&mut self, app_data: &str) {
        self.cmd(json!({"cmd": "announce", "app_data": app_data}));
    }

    pub fn announce_event(&mut self, dest: &str, timeout: Duration) -> Value {
        let d = dest.to_string();
        self.expect(timeout, &format!("announce for {dest}"), move |v| {
            v["event"] == "announce" && v["destination"] == d.as_str()
        })
    }

    /// Send a SINGLE packet and wait for its proof.
    pub fn send_and_prove(&mut self, dest: &str, name: &str, data: &str) -> Value {
        self.cmd(
            json!({"cmd": "send", "destination": dest, "name": name, "data": data, "timeout": 15}),
        );
        let d = dest.to_string();
        let v = self.expect(
            Duration::from_secs(25),
            &format!("proof from {dest}"),
            move |v| {
                (v["event"] == "proof" || v["event"] == "proof_timeout")
                    && v["destination"] == d.as_str()
            },
        );
        assert_eq!(v["event"], "proof", "no proof for packet to {dest}: {v}");
        v
    }

    /// Open a link to `dest` (a SINGLE destination named `name`), send a `/ping` request
    /// with `data` and check the `pong:` answer; returns the link id.
    pub fn link_ping(&mut self, dest: &str, name: &str, data: &str, timeout: Duration) -> String {
        let secs = timeout.as_secs();
        self.cmd(json!({"cmd": "link_open", "destination": dest, "name": name, "timeout": secs}));
        let v = self.expect(timeout, "link established", |v| {
            v["event"] == "link_established" && v["initiator"] == true
        });
        let link = v["link"].as_str().unwrap().to_string();
        self.cmd(json!({"cmd": "link_request", "link": link, "path": "/ping", "data": data}));
        let r = self.expect(timeout, "response", |v| {
            v["event"] == "response" || v["event"] == "response_failed"
        });
        assert_eq!(r["data"], hex(&format!("pong:{data}")), "{r}");
        link
    }

    /// Grid opens a link to this peer's echo destination and checks a `/ping` request.
    pub fn pinged_by(&self, g: &Grid, data: &str) -> Value {
        let v = g.json(&["link", "open", &self.destination()]);
        let link = v["link"].as_str().expect("link opened").to_string();
        let r = g.json(&["link", "request", &link, "/ping", data]);
        assert_eq!(r["response"], format!("pong:{data}"), "{r}");
        v
    }

    pub fn wait_path(&mut self, dest: &str, timeout_s: u64) -> Value {
        self.cmd(json!({"cmd": "wait_path", "destination": dest, "timeout": timeout_s}));
        let d = dest.to_string();
        self.expect(
            Duration::from_secs(timeout_s + 10),
            "path result",
            move |v| {
                (v["event"] == "path" || v["event"] == "no_path") && v["destination"] == d.as_str()
            },
        )
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `rnsd` (Python transport node) with one TCP server interface.
pub struct Rnsd {
    pub dir: TempDir,
    child: Child,
}

impl Rnsd {
    pub fn start(port: u16, transport: bool, extra: &str) -> Rnsd {
        let dir = TempDir::new("rnsd");
        let cfg = format!(
            "[reticulum]\n  enable_transport = {}\n  share_instance = No\n  respond_to_probes = Yes\n  panic_on_interface_error = No\n\n[logging]\n  loglevel = 4\n\n[interfaces]\n  [[TCP Server]]\n    type = TCPServerInterface\n    enabled = yes\n    listen_ip = 127.0.0.1\n    listen_port = {port}\n{extra}",
            if transport { "Yes" } else { "No" }
        );
        std::fs::write(dir.0.join("config"), cfg).unwrap();
        let child = Command::new(venv_bin("rnsd"))
            .arg("--config")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.0.join("rnsd.log")).unwrap())
            .stderr(std::fs::File::create(dir.0.join("rnsd.err")).unwrap())
            .spawn()
            .expect("spawn rnsd");
        wait_for(Duration::from_secs(20), "rnsd listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        Rnsd { dir, child }
    }
}

impl Rnsd {
    /// The `rnstransport.probe` destination of this rnsd (from its transport identity).
    pub fn probe_destination(&self) -> String {
        let key = wait_for(Duration::from_secs(10), "rnsd transport identity", || {
            std::fs::read(self.dir.0.join("storage/transport_identity")).ok()
        });
        let id = rns_core::Identity::from_private_bytes(&key).expect("RNS identity file");
        rns_core::destination::hash_from_name("rnstransport.probe", Some(&id.hash())).to_string()
    }
}

impl Drop for Rnsd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- rnsd log ----\n{}",
                std::fs::read_to_string(self.dir.0.join("rnsd.log")).unwrap_or_default()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A running `grid radio-sim`, controlled through its stdin.
pub struct RadioSim {
    pub dir: TempDir,
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
}

impl RadioSim {
    /// Start `n` virtual radios; `topology` is `full` or `line`.
    pub fn start(n: usize, topology: &str) -> RadioSim {
        let dir = TempDir::new("radios");
        let mut child = Command::new(env!("CARGO_BIN_EXE_grid"))
            .args([
                "radio-sim",
                "--radios",
                &n.to_string(),
                "--topology",
                topology,
            ])
            .arg("--dir")
            .arg(&dir.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.0.join("sim.err")).unwrap())
            .spawn()
            .expect("spawn grid radio-sim");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let mut sim = RadioSim {
            dir,
            child,
            stdin,
            rx,
        };
        let ready = sim.next(Duration::from_secs(10));
        assert_eq!(ready["event"], "ready", "{ready}");
        sim
    }

    fn next(&mut self, timeout: Duration) -> Value {
        self.rx
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no answer from radio-sim: {e}"))
    }

    /// Send a control line and return the answer.
    pub fn cmd(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        self.next(Duration::from_secs(10))
    }

    /// The serial port path of radio `i`.
    pub fn port(&self, i: usize) -> String {
        self.dir.0.join(format!("rnode{i}")).display().to_string()
    }

    /// A Grid `[[interface]]` table for radio `i` (SF7, 125 kHz, 868.1 MHz).
    pub fn grid_interface(&self, i: usize) -> String {
        format!(
            "[[interface]]\ntype = \"rnode\"\nport = \"{}\"\nfrequency = 868100000\nbandwidth = 125000\nspreading_factor = 7\ncoding_rate = 5\n",
            self.port(i)
        )
    }
}

impl Drop for RadioSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker processes `grid worker embed` whose parent is `pid`.
pub fn workers_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // Fields after the command name: state, then the parent's pid.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if ppid == Some(pid) && cmdline.contains("worker embed") && !stat.contains(") Z ") {
            found.push(child);
        }
    }
    found
}

/// A small package (`tide-tables`) in a temporary directory: the directory's guard and
/// the package's path.
pub fn tide_package() -> (TempDir, std::path::PathBuf) {
    let pkgs = TempDir::new("pkgs");
    let dir = pkgs.0.join("tides");
    grid_genome::package::write_test_package(
        &dir,
        "tide-tables",
        "1.0.0",
        "Reads tide tables and explains spring and neap tides.",
        &["when is high tide"],
        4,
        32,
        2,
    )
    .unwrap();
    (pkgs, dir)
}
