//! Command round trips: Grid's `grid/ping` over a link (an embedded node calling a
//! `grid node` process), against the nearest RNS equivalent — a link request answered by
//! a request handler, between two Python RNS processes.

use std::path::Path;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::harness::{
    free_port, grid_node_dir, py_link, read_json_line, spawn_grid, tmpdir, wait_control,
    PyResponder,
};

/// Round trips (s) and commands per second with `IN_FLIGHT` outstanding.
pub(super) struct CommandBench {
    pub(super) rtt: Vec<f64>,
    pub(super) per_second: f64,
}

/// Requests kept outstanding for the rate measurement.
pub(super) const IN_FLIGHT: usize = 16;
const RATE_SECONDS: f64 = 3.0;

/// Grid: a `grid node` answering, optionally behind a transport `grid node`; the caller
/// is a node embedded in this process.
pub(super) fn grid(grid: &Path, transit: bool, n: usize) -> Result<CommandBench> {
    let port = free_port();
    let node = |extra: &str, iface: &str| {
        format!("[node]\nannounce_interval = \"1h\"\nshare_instance = false\n{extra}\n[[interface]]\n{iface}\n")
    };
    let server = format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"");
    let client = format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"");
    let mut procs = Vec::new();
    if transit {
        let t = grid_node_dir("ct", &node("transport = true", &server))?;
        procs.push(spawn_grid(grid, &t)?);
        wait_control(&t)?;
    }
    let target = grid_node_dir("cr", &node("", if transit { &client } else { &server }))?;
    procs.push(spawn_grid(grid, &target)?);
    wait_control(&target)?;
    let out = std::process::Command::new(grid)
        .arg("--config")
        .arg(&target)
        .args(["id", "--json"])
        .output()?;
    let id: Value = serde_json::from_slice(&out.stdout)?;
    let dest: rns_core::AddressHash = id["destination"]
        .as_str()
        .context("grid id")?
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let caller = grid_node_dir("cc", &node("", &client))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let h = grid::api::spawn(grid::state::StateDir::resolve(Some(&caller))).await?;
        let null = Value::Null;
        let t = Duration::from_secs(20);
        // The first call finds the path and opens the link.
        let end = StdInstant::now() + Duration::from_secs(30);
        while h
            .execute(dest, "grid/ping", &null, Duration::from_secs(5))
            .await
            .is_err()
        {
            if StdInstant::now() > end {
                bail!("grid/ping never answered");
            }
        }
        for _ in 0..5 {
            h.execute(dest, "grid/ping", &null, t).await?;
        }
        let mut rtt = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = StdInstant::now();
            h.execute(dest, "grid/ping", &null, t).await?;
            rtt.push(t0.elapsed().as_secs_f64());
        }
        let end = StdInstant::now() + Duration::from_secs_f64(RATE_SECONDS);
        let t0 = StdInstant::now();
        let mut tasks = Vec::new();
        for _ in 0..IN_FLIGHT {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                while StdInstant::now() < end {
                    if h.execute(dest, "grid/ping", &Value::Null, t).await.is_ok() {
                        done += 1;
                    }
                }
                done
            }));
        }
        let mut done = 0;
        for task in tasks {
            done += task.await?;
        }
        let per_second = done as f64 / t0.elapsed().as_secs_f64();
        h.shutdown();
        drop(procs);
        Ok(CommandBench { rtt, per_second })
    })
}

/// Python RNS: a link request to a `/ping` request handler, directly or through `rnsd`.
pub(super) fn python(python: &Path, transit: bool, n: usize) -> Result<CommandBench> {
    let PyResponder {
        _rnsd,
        process: _responder,
        client,
        destination: dest,
    } = PyResponder::start(python, transit, "cpy")?;
    let run = |role: &str, extra: &[&str]| -> Result<Value> {
        let idir = tmpdir(&format!("cpy-{role}"));
        let mut args = vec![role, idir.to_str().unwrap(), &client, &dest];
        args.extend_from_slice(extra);
        let (_p, mut out) = py_link(python, &args)?;
        read_json_line(&mut out)
    };
    let v = run("request", &[&n.to_string()])?;
    let rtt: Vec<f64> = v["seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).skip(5).collect())
        .unwrap_or_default();
    if rtt.is_empty() {
        bail!("no Python request measurements: {v}");
    }
    let v = run(
        "request_rate",
        &[&RATE_SECONDS.to_string(), &IN_FLIGHT.to_string()],
    )?;
    let per_second = v["count"].as_f64().unwrap_or(0.0) / v["seconds"].as_f64().unwrap_or(1.0);
    Ok(CommandBench { rtt, per_second })
}

/// The p-th percentile (0–100) of `v`.
pub(super) fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}
