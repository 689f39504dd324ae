//! Paced forwarding and link set-up through a transport node, with Python RNS 1.5.7
//! endpoints on both sides: the transport node is `grid node` (`transport = true`) or
//! `rnsd` (`enable_transport = Yes`), measured in the same run.
//!
//! A Python responder (`bench.sink`, proving every packet) and a Python sender connect
//! to the transport node over loopback TCP. The sender opens one link and writes
//! pre-built 64-byte link DATA packets straight to its TCP socket, one HDLC frame per
//! write (TCP_NODELAY) at a fixed rate, so the transport node gets them one per read as
//! from a real, not batching, peer. Each packet that arrives is proved, and the proof
//! crosses the transport node back. Figure: the transport process's CPU time (all its
//! threads) from the first write until the last proof arrived, divided by the packets
//! that crossed it: data packets the responder received plus proofs the sender received.
//! Before that, the Python initiator opens links one after another (50 ms apart) through
//! the same transport node, timed in-process as in the links benchmark.
//!
//! The same run through a bare relay (relay.rs: a hub copying every read to the other
//! connections, one recv and one send per packet) gives the floor a transport node
//! cannot go below with one read and one write per packet on this machine.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::harness::{
    cpu_of, free_port, py_link, read_json_line, rnsd_config, spawn_grid, spawn_rnsd, tmpdir,
    wait_listening,
};

/// Which transport node carries the traffic.
#[derive(Clone, Copy)]
pub(crate) enum Via<'a> {
    /// `grid node` with `transport = true` (the path of the `grid` binary).
    Grid(&'a Path),
    /// `rnsd` with `enable_transport = Yes`.
    Rnsd,
    /// A bare relay (no transport at all; the floor, see relay.rs).
    Relay(crate::relay::Flavour),
}

/// What one paced run measured.
pub(crate) struct Paced {
    /// Transport CPU seconds per packet crossing it (data + proof).
    pub(crate) cpu_per_crossing: f64,
    /// Data packets written by the sender.
    pub(crate) sent: usize,
    /// Data packets the responder received.
    pub(crate) delivered: usize,
    /// Proofs that came back.
    pub(crate) proofs: usize,
    /// Rate the sender achieved (packets/s).
    pub(crate) rate: f64,
    /// Link establishment times through the node (s).
    pub(crate) establish: Vec<f64>,
}

/// Run `links` link set-ups, then `n` packets at `rate`/s, through `via`.
pub(crate) fn run(python: &Path, via: Via<'_>, n: usize, rate: f64, links: usize) -> Result<Paced> {
    let port = free_port();
    let tag = match via {
        Via::Grid(_) => "paced-grid",
        Via::Rnsd => "paced-rnsd",
        Via::Relay(crate::relay::Flavour::Tokio) => "paced-relay-tokio",
        Via::Relay(crate::relay::Flavour::Threads) => "paced-relay-threads",
    };
    let dir = tmpdir(tag);
    let transport = match via {
        Via::Grid(grid) => {
            std::fs::write(
                dir.join("config.toml"),
                format!("[node]\ntransport = true\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"),
            )?;
            spawn_grid(grid, &dir)?
        }
        Via::Rnsd => {
            rnsd_config(&dir, port, true)?;
            spawn_rnsd(python, &dir)?
        }
        Via::Relay(flavour) => crate::relay::spawn(port, flavour)?,
    };
    wait_listening(port, 30)?;
    let pid = transport.0.id();
    let client = format!("tcp_client=127.0.0.1:{port}");
    let rdir = tmpdir(&format!("{tag}-resp"));
    let (_responder, mut rout) = py_link(
        python,
        &["responder", rdir.to_str().unwrap(), &client, "count"],
    )?;
    let dest = read_json_line(&mut rout)?["destination"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let idir = tmpdir(&format!("{tag}-establish"));
    let (_p, mut out) = py_link(
        python,
        &[
            "establish",
            idir.to_str().unwrap(),
            &client,
            &dest,
            &links.to_string(),
        ],
    )?;
    let establish: Vec<f64> = read_json_line(&mut out)?["seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    drop(_p);

    let sdir = tmpdir(&format!("{tag}-sender"));
    let (_s, mut out) = py_link(
        python,
        &[
            "paced",
            sdir.to_str().unwrap(),
            &client,
            &dest,
            &n.to_string(),
            &rate.to_string(),
        ],
    )?;
    let start = read_json_line(&mut out)?;
    if start["phase"] != "start" {
        bail!("paced sender: unexpected {start}");
    }
    let (c0, t0, r0) = (cpu_of(pid), user_system(pid), received(&rdir));
    let done = read_json_line(&mut out)?;
    let (cpu, t1) = (cpu_of(pid) - c0, user_system(pid));
    std::thread::sleep(std::time::Duration::from_millis(300)); // the count is written every 100 ms
    let delivered = received(&rdir).saturating_sub(r0);
    let proofs = done["proofs"].as_u64().unwrap_or(0) as usize;
    let send_s = done["send_seconds"].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "   {tag}: {delivered} delivered and {proofs} proofs for {n} packets, sent at {:.0}/s, {cpu:.3} s transport CPU ({:.2} s user, {:.2} s system)",
        n as f64 / send_s,
        t1.0 - t0.0,
        t1.1 - t0.1,
    );
    if proofs == 0 || delivered == 0 {
        bail!("{tag}: nothing crossed ({delivered} delivered, {proofs} proofs)");
    }
    Ok(Paced {
        cpu_per_crossing: cpu / (delivered + proofs) as f64,
        sent: n,
        delivered,
        proofs,
        rate: n as f64 / send_s,
        establish,
    })
}

/// User and system CPU seconds of a process (from /proc/PID/stat, clock-tick resolution).
fn user_system(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0; // USER_HZ on Linux
    (
        f.get(11).copied().unwrap_or(0.0) / tick,
        f.get(12).copied().unwrap_or(0.0) / tick,
    )
}

/// Link DATA packets the responder has counted so far (it writes DIR/received).
fn received(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("received"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
