//! What every benchmark shares: paths, temporary directories, processes (grid nodes,
//! rnsd, Python helpers), control calls, and per-process CPU and memory readings.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// The `p`th percentile of seconds, in milliseconds.
pub(crate) fn percentile_ms(v: Vec<f64>, p: f64) -> f64 {
    crate::command_round_trips::percentile(v, p) * 1e3
}

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub(crate) fn bench_script(name: &str) -> PathBuf {
    workspace().join("tools/bench").join(name)
}

/// The functions the release link of `grid` lays out first (tools/build.rs).
pub(crate) fn symbol_order_list() -> PathBuf {
    workspace().join("tools/link/grid-symbol-order.txt")
}

pub(crate) fn grid_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let g = me.with_file_name("grid");
    if !g.exists() {
        bail!(
            "{} not found; build it with cargo build --release --bin grid",
            g.display()
        );
    }
    Ok(g)
}

pub(crate) fn tmpdir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("grid-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Remove every temporary directory and helper log this process made (`tmpdir`, and
/// the `*.stderr` files beside them). After a failure, the helpers' logs are printed
/// first, since they are the only record of why a Python helper gave up.
pub(crate) fn remove_tmpdirs(failed: bool) {
    let prefix = format!("grid-bench-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        if failed && path.extension().is_some_and(|x| x == "stderr") {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            if !tail.is_empty() {
                eprintln!("--- {} (last lines)", path.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}

pub(crate) fn run_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON from {cmd:?}: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub(crate) fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        * 1024.0
}

/// CPU time of a process (all threads), in seconds, nanosecond resolution.
pub(crate) fn cpu_of(pid: u32) -> f64 {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total as f64 / 1e9
}

pub(crate) struct Proc(pub(crate) Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) use grid_test_support::free_port;

pub(crate) fn wait_listening(port: u16, secs: u64) -> Result<()> {
    let end = StdInstant::now() + Duration::from_secs(secs);
    while StdInstant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listening on port {port}")
}

pub(crate) fn spawn_grid(grid: &Path, dir: &Path) -> Result<Proc> {
    Ok(Proc(
        Command::new(grid)
            .arg("--config")
            .arg(dir)
            .args(["node", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ))
}

pub(crate) fn spawn_rnsd(python: &Path, dir: &Path) -> Result<Proc> {
    Ok(Proc(
        Command::new(python.with_file_name("rnsd"))
            .arg("--config")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ))
}

pub(crate) fn rnsd_config(dir: &Path, port: u16, transport: bool) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("config"),
        format!("[reticulum]\n  enable_transport = {}\n  share_instance = No\n\n[logging]\n  loglevel = 1\n\n[interfaces]\n  [[tcp]]\n    type = TCPServerInterface\n    enabled = yes\n    listen_ip = 127.0.0.1\n    listen_port = {port}\n", if transport { "Yes" } else { "No" }),
    )?;
    Ok(())
}

pub(crate) fn control(dir: &Path, req: Value) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let v = rt.block_on(grid::control::call(
        &dir.join("grid.sock"),
        &req,
        Duration::from_secs(120),
    ))?;
    if v["ok"] != true {
        bail!("control {req}: {v}");
    }
    Ok(v)
}

pub(crate) fn wait_control(dir: &Path) -> Result<()> {
    let end = StdInstant::now() + Duration::from_secs(20);
    while StdInstant::now() < end {
        if control(dir, serde_json::json!({"cmd": "status"})).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("node at {} did not start", dir.display())
}

pub(crate) fn grid_node_dir(tag: &str, config: &str) -> Result<PathBuf> {
    let dir = tmpdir(tag);
    std::fs::write(dir.join("config.toml"), config)?;
    Ok(dir)
}

pub(crate) fn py_link(
    python: &Path,
    args: &[&str],
) -> Result<(Proc, std::io::BufReader<std::process::ChildStdout>)> {
    // Keep the helper's stderr next to its state directory, for when it fails.
    let log = std::fs::File::create(format!("{}.stderr", args.get(1).unwrap_or(&"py-link")))?;
    let mut child = Command::new(python)
        .arg(bench_script("py_link.py"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()?;
    let out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    Ok((Proc(child), out))
}

pub(crate) fn read_json_line(
    r: &mut std::io::BufReader<std::process::ChildStdout>,
) -> Result<Value> {
    use std::io::BufRead;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("python helper exited without output (its stderr is kept in the bench's temp dir as *.stderr)");
        }
        if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
            return Ok(v);
        }
    }
}

/// A Python `bench.sink` responder (tools/bench/py_link.py), reached over loopback TCP
/// directly or through an `rnsd` transport node.
pub(crate) struct PyResponder {
    pub(crate) _rnsd: Option<Proc>,
    pub(crate) process: Proc,
    /// The interface spec a Python initiator uses to reach it.
    pub(crate) client: String,
    /// Its destination hash.
    pub(crate) destination: String,
}

impl PyResponder {
    pub(crate) fn start(python: &Path, transit: bool, tag: &str) -> Result<PyResponder> {
        let port = free_port();
        let server = format!("tcp_server=127.0.0.1:{port}");
        let client = format!("tcp_client=127.0.0.1:{port}");
        let rnsd = if transit {
            let d = tmpdir(&format!("{tag}-rnsd"));
            rnsd_config(&d, port, true)?;
            let p = spawn_rnsd(python, &d)?;
            wait_listening(port, 30)?;
            Some(p)
        } else {
            None
        };
        let rdir = tmpdir(&format!("{tag}-resp"));
        let iface = if transit { &client } else { &server };
        let (process, mut out) = py_link(python, &["responder", rdir.to_str().unwrap(), iface])?;
        let destination = read_json_line(&mut out)?["destination"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !transit {
            wait_listening(port, 30)?;
        }
        Ok(PyResponder {
            _rnsd: rnsd,
            process,
            client,
            destination,
        })
    }
}
