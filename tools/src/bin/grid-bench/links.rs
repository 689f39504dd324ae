//! Link establishment, link packet round trips and resource throughput, Grid and
//! Python, directly and through one transport node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::harness::{
    control, cpu_of, free_port, grid_node_dir, py_link, read_json_line, spawn_grid, tmpdir,
    wait_control, PyResponder,
};

pub(crate) struct LinkBench {
    /// Establishment times (s).
    pub(crate) establish: Vec<f64>,
    /// Packet round trips (s).
    pub(crate) rtt: Vec<f64>,
    /// Per file: (seconds, sender CPU s, receiver CPU s).
    pub(crate) resources: Vec<(f64, f64, f64)>,
}

pub(crate) fn link_bench_grid(
    grid: &Path,
    transit: bool,
    n: usize,
    files: &[PathBuf],
) -> Result<LinkBench> {
    let port = free_port();
    let server = |extra: &str| {
        format!("[node]\nannounce_interval = \"1h\"\n{extra}\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n")
    };
    let client = |extra: &str| {
        format!("[node]\nannounce_interval = \"1h\"\n{extra}\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n")
    };
    let mut procs = Vec::new();
    let (rdir, idir) = if transit {
        let t = grid_node_dir("lt", &server("transport = true"))?;
        procs.push(spawn_grid(grid, &t)?);
        wait_control(&t)?;
        (
            grid_node_dir("lr", &client("[cp]\nallow_all = true"))?,
            grid_node_dir("li", &client(""))?,
        )
    } else {
        (
            grid_node_dir("lr", &server("[cp]\nallow_all = true"))?,
            grid_node_dir("li", &client(""))?,
        )
    };
    let r = spawn_grid(grid, &rdir)?;
    wait_control(&rdir)?;
    let i = spawn_grid(grid, &idir)?;
    wait_control(&idir)?;
    let id = |d: &Path| -> Result<Value> {
        let out = Command::new(grid)
            .arg("--config")
            .arg(d)
            .args(["id", "--json"])
            .output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let rid = id(&rdir)?;
    let dest = rid["destination"].as_str().unwrap().to_string();
    let cp_dest = rid["destinations"]["rncp.receive"]
        .as_str()
        .unwrap()
        .to_string();
    let end = StdInstant::now() + Duration::from_secs(30);
    while control(
        &idir,
        serde_json::json!({"cmd": "path", "destination": dest, "timeout_ms": 2000}),
    )
    .is_err()
    {
        if StdInstant::now() > end {
            bail!("no path to the Grid responder");
        }
    }
    let mut establish = Vec::new();
    for _ in 0..n {
        // The node's own measure, request to established (as the Python side measures
        // inside its process), without the control-socket round trip.
        let v = control(
            &idir,
            serde_json::json!({"cmd": "link_open", "destination": dest}),
        )?;
        establish.push(v["rtt_ms"].as_f64().unwrap_or(f64::NAN) / 1e3);
        control(
            &idir,
            serde_json::json!({"cmd": "link_close", "link": v["link"]}),
        )?;
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rtt = Vec::new();
    if !transit {
        let v = control(
            &idir,
            serde_json::json!({"cmd": "link_open", "destination": dest}),
        )?;
        for _ in 0..n {
            // The link's own send-to-proof time, as Python measures it in-process.
            let p = control(
                &idir,
                serde_json::json!({"cmd": "link_send", "link": v["link"], "data": "xxxxxxxxxxxxxxxx"}),
            )?;
            rtt.push(p["rtt_ms"].as_f64().unwrap_or(f64::NAN) / 1e3);
        }
        control(
            &idir,
            serde_json::json!({"cmd": "link_close", "link": v["link"]}),
        )?;
    }
    let mut resources = Vec::new();
    for f in files {
        let (cs, cr) = (cpu_of(i.0.id()), cpu_of(r.0.id()));
        let v = control(
            &idir,
            serde_json::json!({"cmd": "cp", "path": f.display().to_string(), "destination": cp_dest}),
        )?;
        let status = loop {
            let s = control(
                &idir,
                serde_json::json!({"cmd": "cp_status", "id": v["id"]}),
            )?;
            match s["state"].as_str() {
                Some("complete") => break s,
                Some("failed") => bail!("grid cp failed: {s}"),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        // The receiver finishes writing after the last proof; let it settle before sampling.
        std::thread::sleep(Duration::from_millis(200));
        // Link up to last proof, as Python's figure (resource start to completion).
        resources.push((
            status["transfer_seconds"].as_f64().unwrap_or(0.0),
            cpu_of(i.0.id()) - cs,
            cpu_of(r.0.id()) - cr,
        ));
    }
    drop((i, r, procs));
    Ok(LinkBench {
        establish,
        rtt,
        resources,
    })
}

pub(crate) fn link_bench_python(
    python: &Path,
    transit: bool,
    n: usize,
    files: &[PathBuf],
) -> Result<LinkBench> {
    let PyResponder {
        _rnsd,
        process: resp,
        client,
        destination: dest,
    } = PyResponder::start(python, transit, "py")?;
    let run = |role: &str, extra: &str| -> Result<Value> {
        let idir = tmpdir(&format!("py-{role}"));
        let (_p, mut out) = py_link(
            python,
            &[role, idir.to_str().unwrap(), &client, &dest, extra],
        )?;
        read_json_line(&mut out)
    };
    let list = |v: &Value| {
        v["seconds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let establish = list(&run("establish", &n.to_string())?);
    let rtt = if transit {
        Vec::new()
    } else {
        list(&run("rtt", &n.to_string())?)
    };
    let mut resources = Vec::new();
    for f in files {
        let cr = cpu_of(resp.0.id());
        let v = run("send", f.to_str().unwrap())?;
        if v["ok"] != true {
            bail!("Python resource transfer failed: {v}");
        }
        resources.push((
            v["seconds"].as_f64().unwrap_or(0.0),
            v["cpu"].as_f64().unwrap_or(0.0),
            cpu_of(resp.0.id()) - cr,
        ));
    }
    if establish.is_empty() {
        bail!("no Python link measurements");
    }
    Ok(LinkBench {
        establish,
        rtt,
        resources,
    })
}
