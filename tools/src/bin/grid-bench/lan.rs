//! LAN convergence: N hosts (network namespaces on one bridge) with only the auto
//! interface; the time from starting every node to every node knowing a path to every
//! other. Needs root (namespaces); the caller skips the rows otherwise.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use grid_tools::netns::Lan;
use serde_json::Value;

use crate::harness::{bench_script, control, grid_node_dir, tmpdir, Proc};

const AUTO_ONLY: &str = "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"auto\"\n";
/// Give up on convergence after this long.
const LIMIT: Duration = Duration::from_secs(90);

/// `n` hosts on one switch.
fn lan(n: usize) -> Result<(Lan, Vec<String>)> {
    let mut lan = Lan::try_new().map_err(anyhow::Error::msg)?;
    let sw = lan.switch("sw");
    let hosts: Vec<String> = (0..n)
        .map(|i| {
            let h = lan.host(&format!("h{i}"));
            lan.plug(&h, "eth0", &sw);
            h
        })
        .collect();
    Ok((lan, hosts))
}

/// Seconds until `n` Grid nodes all know paths to each other.
pub(crate) fn grid(grid_bin: &Path, n: usize) -> Result<f64> {
    let (_lan, hosts) = lan(n)?;
    let dirs: Vec<_> = (0..n)
        .map(|i| grid_node_dir(&format!("lan-g{i}"), AUTO_ONLY))
        .collect::<Result<_>>()?;
    let t0 = Instant::now();
    let _procs: Vec<Proc> = hosts
        .iter()
        .zip(&dirs)
        .map(|(h, d)| {
            Ok(Proc(
                Command::new("ip")
                    .args(["netns", "exec", h])
                    .arg(grid_bin)
                    .arg("--config")
                    .arg(d)
                    .args(["node", "--quiet"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut dests: Vec<Option<String>> = vec![None; n];
    loop {
        if t0.elapsed() > LIMIT {
            bail!("{n} Grid nodes did not converge within {LIMIT:?}");
        }
        let mut done = true;
        for (i, d) in dirs.iter().enumerate() {
            let Ok(s) = control(d, serde_json::json!({"cmd": "status"})) else {
                done = false;
                continue;
            };
            dests[i] = s["destination"].as_str().map(String::from);
            let known: Vec<&str> = s["paths"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["destination"].as_str()).collect())
                .unwrap_or_default();
            let all = dests
                .iter()
                .enumerate()
                .all(|(j, o)| j == i || o.as_deref().is_some_and(|o| known.contains(&o)));
            done &= all && dests.iter().all(Option::is_some);
        }
        if done {
            return Ok(t0.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Seconds until `n` Python RNS nodes all know paths to each other.
pub(crate) fn python(python: &Path, n: usize) -> Result<f64> {
    let (_lan, hosts) = lan(n)?;
    let start = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let t0 = Instant::now();
    let mut procs = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let dir = tmpdir(&format!("lan-p{i}"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", h])
            .arg(python)
            .arg(bench_script("py_lan.py"))
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.with_extension("stderr"))?)
            .spawn()?;
        let out = BufReader::new(child.stdout.take().context("stdout")?);
        let input = child.stdin.take().context("stdin")?;
        procs.push((Proc(child), out, input));
    }
    let mut dests = Vec::new();
    for (_, out, _) in &mut procs {
        dests.push(read_json(out)?["destination"].clone());
    }
    let list = Value::Array(dests).to_string();
    for (_, _, input) in &mut procs {
        writeln!(input, "{list}")?;
    }
    let mut last: f64 = 0.0;
    for (_, out, _) in &mut procs {
        if t0.elapsed() > LIMIT {
            bail!("{n} Python nodes did not converge within {LIMIT:?}");
        }
        last = last.max(read_json(out)?["done"].as_f64().context("done time")?);
    }
    Ok(last - start)
}

fn read_json(r: &mut BufReader<std::process::ChildStdout>) -> Result<Value> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("the Python LAN helper exited (its stderr is kept in the bench's temp dir)");
        }
        if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
            return Ok(v);
        }
    }
}
