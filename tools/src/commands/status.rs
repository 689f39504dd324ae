//! `grid status`: interfaces, traffic, peers and paths of the running node.

use std::time::Duration;

use anyhow::Result;
use grid::control::Request;
use grid::state::StateDir;

use super::ask;

/// `grid status`
pub(crate) fn status(state: &StateDir, json_out: bool) -> Result<()> {
    let v = ask(state, &Request::Status, Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    println!("identity     {}", v["identity"].as_str().unwrap_or("?"));
    println!("grid.node    {}", v["destination"].as_str().unwrap_or("?"));
    println!(
        "transport    {}    uptime {}s",
        if v["transport"].as_bool() == Some(true) {
            "on"
        } else {
            "off"
        },
        v["uptime_s"]
    );
    match v["shared_instance"].as_str() {
        Some(name) => println!(
            "shared       instance \"{name}\", {} program(s) attached",
            v["local_clients"]
        ),
        None => println!("shared       not serving a shared instance"),
    }
    let b = &v["bundles"];
    if b.is_object() {
        println!(
            "bundles      {} queued ({} bytes) for {} destination(s){}{}",
            b["queued"],
            b["bytes"],
            b["destinations"],
            if b["custody"] == true {
                "; custody node"
            } else {
                ""
            },
            match b["waiting_callers"].as_u64() {
                Some(n) if n > 0 => format!("; {n} caller(s) waiting for answers"),
                _ => String::new(),
            }
        );
    }
    println!();
    println!("interfaces:");
    for i in v["interfaces"].as_array().into_iter().flatten() {
        println!(
            "  {:<36} {:<7} rx {:>8} pkts {:>10} B   tx {:>8} pkts {:>10} B{}",
            i["name"].as_str().unwrap_or("?"),
            if i["online"].as_bool() == Some(true) {
                "up"
            } else {
                "down"
            },
            i["rx_packets"],
            i["rx_bytes"],
            i["tx_packets"],
            i["tx_bytes"],
            {
                let bad = i["ifac_violations"].as_u64().unwrap_or(0)
                    + i["protocol_violations"].as_u64().unwrap_or(0);
                if bad > 0 {
                    format!("   dropped {bad}")
                } else {
                    String::new()
                }
            }
        );
        if let Some(r) = i["radio"].as_object() {
            println!("    {}", radio_line(r));
        }
    }
    println!();
    let peers = v["peers"].as_array().cloned().unwrap_or_default();
    if !peers.is_empty() {
        println!("grid nodes heard: {}", peers.len());
        for p in peers.iter().take(20) {
            let c = &p["capabilities"];
            println!(
                "  {}  {} hop(s)  {} cores  {} MB  {}",
                p["node"].as_str().unwrap_or("?"),
                p["hops"],
                c["cpu_cores"],
                c["ram_mb"],
                c["roles"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()
            );
        }
        println!();
    }
    println!(
        "paths: {}    known destinations: {}",
        v["path_count"], v["known_destinations"]
    );
    for p in v["paths"].as_array().into_iter().flatten().take(50) {
        println!(
            "  {}  {} hop(s) via {}",
            p["destination"].as_str().unwrap_or("?"),
            p["hops"],
            p["next_hop"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// One line of a radio's figures: airtime, channel load, signal.
fn radio_line(r: &serde_json::Map<String, serde_json::Value>) -> String {
    let f = |k: &str, unit: &str| {
        r.get(k)
            .and_then(|v| v.as_f64())
            .map_or_else(|| "?".to_string(), |v| format!("{v:.1}{unit}"))
    };
    let duty = match r.get("duty_used_pct").and_then(|v| v.as_f64()) {
        Some(d) => format!(
            "   duty cycle {d:.2} % used this hour, {} frame(s) waiting",
            r.get("duty_deferred").and_then(|v| v.as_u64()).unwrap_or(0)
        ),
        None => String::new(),
    };
    format!(
        "airtime {} (1 h {})   channel load {} (1 h {})   RSSI {}   SNR {}{duty}",
        f("airtime_short_pct", " %"),
        f("airtime_long_pct", " %"),
        f("channel_load_short_pct", " %"),
        f("channel_load_long_pct", " %"),
        f("rssi_dbm", " dBm"),
        f("snr_db", " dB"),
    )
}
