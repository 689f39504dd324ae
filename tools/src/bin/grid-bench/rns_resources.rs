//! Files from Python RNS to a Grid receiver, beside Python RNS to a Python receiver, in
//! the same run on the same files; and `grid cp` between two Grid nodes against the same
//! Python-to-Python figure.
//!
//! The sender is `py_link.py send_files` in both RNS cases: it sends as
//! `rncp --no-compress` does (identified link, rncp's metadata, no bz2: the files are
//! random, so bz2 could only cost the sender time and hide the receiver's pace), several
//! runs one after another on one link, each timed from creating the `RNS.Resource` to its
//! completion callback (the receiver's proof of the last segment). The receivers are a
//! `grid node` with `[cp] allow_all = true` and `py_link.py files` (an `rncp.receive`
//! destination accepting every resource), both on a loopback TCP server interface.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;

use crate::harness::{
    cpu_of, free_port, grid_node_dir, median, py_link, read_json_line, spawn_grid, tmpdir,
    wait_control, wait_listening, Proc,
};
use crate::links::link_bench_grid;
use crate::report::Row;
use crate::Rng;

/// File sizes measured: 5 MB, and 50 MB unless quick.
fn sizes(quick: bool) -> &'static [usize] {
    if quick {
        &[5_000_000]
    } else {
        &[5_000_000, 50_000_000]
    }
}

/// Runs of each size, one after another on one link.
fn runs_for(size: usize, quick: bool) -> usize {
    match (size < 10_000_000, quick) {
        (true, false) => 7,
        (true, true) => 3,
        (false, false) => 3,
        (false, true) => 1,
    }
}

/// Random files of the given sizes (bytes), in a fresh directory.
fn files(sizes: &[usize]) -> Result<Vec<PathBuf>> {
    let dir = tmpdir("rns-res-files");
    let mut out = Vec::new();
    for &size in sizes {
        let path = dir.join(format!("rns-{size}.bin"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut rng = Rng::seed_from_u64(size as u64 ^ 0x5eed);
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            rng.fill_bytes(&mut chunk[..n]);
            f.write_all(&chunk[..n])?;
            left -= n;
        }
        f.flush()?;
        out.push(path);
    }
    Ok(out)
}

/// One receiver's runs of one file.
struct Runs {
    /// Seconds of each run, in order.
    seconds: Vec<f64>,
    /// Receiver CPU over all runs (link setup included), seconds.
    receiver_cpu: f64,
}

impl Runs {
    fn min(&self) -> f64 {
        self.seconds.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.seconds.iter().copied().fold(0.0, f64::max)
    }
    fn median(&self) -> f64 {
        median(self.seconds.clone())
    }
    /// "median 0.21 s (23.8 MB/s), min 0.19, max 0.25; runs 0.21 0.19 …; receiver CPU …"
    fn describe(&self, size: usize) -> String {
        let mb = size as f64 / 1e6;
        let each: Vec<String> = self.seconds.iter().map(|s| format!("{s:.2}")).collect();
        format!(
            "median {:.2} s ({:.1} MB/s), min {:.2} s, max {:.2} s; runs {} s; receiver CPU {:.1} ms/MB",
            self.median(),
            mb / self.median(),
            self.min(),
            self.max(),
            each.join(" / "),
            self.receiver_cpu * 1e3 / (mb * self.seconds.len() as f64),
        )
    }
}

/// Send `file` `runs` times from Python RNS to the receiver process `receiver`, whose
/// `rncp.receive` destination is `dest` on loopback TCP `port`.
fn python_sends(
    python: &Path,
    port: u16,
    dest: &str,
    receiver: u32,
    file: &Path,
    runs: usize,
) -> Result<Runs> {
    let sdir = tmpdir("rns-res-sender");
    let c0 = cpu_of(receiver);
    let (_p, mut out) = py_link(
        python,
        &[
            "send_files",
            sdir.to_str().unwrap(),
            &format!("tcp_client=127.0.0.1:{port}"),
            dest,
            file.to_str().unwrap(),
            &runs.to_string(),
        ],
    )?;
    let v = read_json_line(&mut out)?;
    if v["ok"] != true {
        bail!("RNS file transfer failed: {v}");
    }
    let seconds: Vec<f64> = v["seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    if seconds.len() != runs {
        bail!("RNS sender reported {} of {runs} runs: {v}", seconds.len());
    }
    Ok(Runs {
        seconds,
        receiver_cpu: cpu_of(receiver) - c0,
    })
}

/// RNS → Grid: a `grid node` accepting files on a loopback TCP server.
fn to_grid(python: &Path, grid: &Path, file: &Path, runs: usize) -> Result<Runs> {
    let port = free_port();
    let dir = grid_node_dir(
        "rns-res-grid",
        &format!("[node]\nannounce_interval = \"1h\"\n[cp]\nallow_all = true\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"),
    )?;
    let node = spawn_grid(grid, &dir)?;
    wait_control(&dir)?;
    let out = std::process::Command::new(grid)
        .arg("--config")
        .arg(&dir)
        .args(["id", "--json"])
        .output()?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let dest = v["destinations"]["rncp.receive"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = python_sends(python, port, &dest, node.0.id(), file, runs);
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// RNS → RNS: `py_link.py files` on a loopback TCP server.
fn to_python(python: &Path, file: &Path, runs: usize) -> Result<Runs> {
    let port = free_port();
    let rdir = tmpdir("rns-res-py");
    let (receiver, mut out): (Proc, _) = py_link(
        python,
        &[
            "files",
            rdir.to_str().unwrap(),
            &format!("tcp_server=127.0.0.1:{port}"),
        ],
    )?;
    let dest = read_json_line(&mut out)?["destination"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_listening(port, 30)?;
    python_sends(python, port, &dest, receiver.0.id(), file, runs)
}

/// The rows: per size, RNS → Grid against RNS → RNS, and `grid cp` against RNS → RNS.
pub(super) fn rows(python: &Path, grid: &Path, quick: bool) -> Result<Vec<Row>> {
    let sizes = sizes(quick);
    let files = files(sizes)?;
    let cp = link_bench_grid(grid, false, 1, &files)?;
    let mut rows = Vec::new();
    for (i, (&size, file)) in sizes.iter().zip(&files).enumerate() {
        let runs = runs_for(size, quick);
        let label = if size < 10_000_000 { "5 MB" } else { "50 MB" };
        eprintln!("== RNS sender to Grid and to RNS receivers ({label}, {runs} runs each)");
        // Alternate, so that load from elsewhere on the machine falls on both alike.
        let p = to_python(python, file, runs)?;
        let g = to_grid(python, grid, file, runs)?;
        rows.push(Row::new(
            &format!("Resource {label} from an RNS sender (rncp --no-compress), loopback TCP: Grid receiver vs RNS receiver, {runs} runs"),
            g.describe(size),
            p.describe(size),
            p.median() / g.median(),
            "Grid receiver at least as fast in every run (median and slowest run)",
            g.median() <= p.median() && g.max() <= p.max(),
            "higher is better; ratio = RNS median / Grid median",
        ));
        let mb = size as f64 / 1e6;
        let (secs, cpu_s, cpu_r) = cp.resources[i];
        rows.push(Row::new(
            &format!("Resource {label}, Grid to Grid (`grid cp`) vs RNS to RNS (rncp --no-compress), loopback TCP"),
            format!(
                "{:.1} MB/s (CPU {:.1} ms/MB send, {:.1} ms/MB receive)",
                mb / secs,
                cpu_s * 1e3 / mb,
                cpu_r * 1e3 / mb
            ),
            format!("{:.1} MB/s (median of the runs above)", mb / p.median()),
            p.median() / secs,
            "≥ 10× RNS to RNS",
            p.median() / secs >= 10.0,
            "higher is better; ratio = Grid / RNS",
        ));
    }
    Ok(rows)
}

/// `grid-bench cp-only`: `grid cp` between two Grid nodes against Python RNS to Python
/// RNS (`rncp --no-compress`, as `python_sends` does), per size several runs of each,
/// alternating sizes and implementations so that load from elsewhere on the machine
/// falls on both alike. Each Grid run is timed as the links benchmark times it (link up
/// to the last proof, the node's own figure); each RNS run by the Python sender
/// (resource created to the completion callback).
pub(super) fn cp_rows(python: &Path, grid: &Path, quick: bool) -> Result<Vec<Row>> {
    let sizes = sizes(quick);
    let files = files(sizes)?;
    let mut rows = Vec::new();
    for (&size, file) in sizes.iter().zip(&files) {
        let runs = runs_for(size, quick);
        let label = if size < 10_000_000 { "5 MB" } else { "50 MB" };
        eprintln!("== grid cp and RNS to RNS ({label}, {runs} runs each)");
        let g = link_bench_grid(grid, false, 0, &vec![file.clone(); runs])?;
        let p = to_python(python, file, runs)?;
        let mb = size as f64 / 1e6;
        let secs: Vec<f64> = g.resources.iter().map(|r| r.0).collect();
        let gm = median(secs.clone());
        let each: Vec<String> = secs.iter().map(|s| format!("{s:.3}")).collect();
        let (cpu_s, cpu_r) = g
            .resources
            .iter()
            .fold((0.0, 0.0), |(a, b), r| (a + r.1, b + r.2));
        rows.push(Row::new(
            &format!("Resource {label}, Grid to Grid (`grid cp`) vs RNS to RNS (rncp --no-compress), loopback TCP, {runs} runs each"),
            format!(
                "median {gm:.3} s ({:.1} MB/s); runs {} s; CPU {:.1} ms/MB send, {:.1} ms/MB receive",
                mb / gm,
                each.join(" / "),
                cpu_s * 1e3 / (mb * runs as f64),
                cpu_r * 1e3 / (mb * runs as f64),
            ),
            p.describe(size),
            p.median() / gm,
            "≥ 10× RNS to RNS",
            p.median() / gm >= 10.0,
            "higher is better; ratio = RNS median / Grid median",
        ));
    }
    Ok(rows)
}
