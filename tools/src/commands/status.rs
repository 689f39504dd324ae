//! `grid status`: interfaces, traffic, peers and paths of the running node.

use std::time::Duration;

use anyhow::Result;
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;
use grid_interfaces::rnode::RadioStats;

use super::ask;

/// `grid status`
pub(crate) fn status(state: &StateDir, json_out: bool) -> Result<()> {
    let v = ask(state, &Request::Status, Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let s: r::Status = r::parse(v)?;
    println!("identity     {}", s.identity);
    println!("grid.node    {}", s.destination);
    println!(
        "transport    {}    uptime {}s",
        if s.transport { "on" } else { "off" },
        s.uptime_s
    );
    match &s.shared_instance {
        Some(name) => println!(
            "shared       instance \"{name}\", {} program(s) attached",
            s.local_clients
        ),
        None => println!("shared       not serving a shared instance"),
    }
    match &s.bundles {
        r::Bundles::Store(b) => println!(
            "bundles      {} queued ({} bytes) for {} destination(s){}{}",
            b.queued,
            b.bytes,
            b.destinations,
            if b.custody { "; custody node" } else { "" },
            match b.waiting_callers {
                0 => String::new(),
                n => format!("; {n} caller(s) waiting for answers"),
            }
        ),
        r::Bundles::Unreadable { error } => println!("bundles      unreadable: {error}"),
    }
    if let Some(g) = &s.governor {
        println!(
            "governor     memory {}, cpu {}; {} of {} MB free for jobs (`grid governor`)",
            g.memory, g.cpu, g.headroom_mb, g.ram_budget_mb
        );
    }
    println!();
    println!("interfaces:");
    for c in &s.configured {
        let held = match c.kind.as_str() {
            "tcp_server" if c.connections == 0 => "listening, nobody connected".to_string(),
            "auto" if c.connections == 0 => "listening, no LAN peers yet".to_string(),
            "tcp_server" => format!("listening, {} client(s)", c.connections),
            "auto" => format!("{} LAN peer(s)", c.connections),
            _ if c.connections == 0 => "down".to_string(),
            _ => "up".to_string(),
        };
        println!(
            "  {:<12} {:<10} {:<28} {:<7} {:>9}  {held}",
            c.name,
            c.kind,
            c.address,
            c.mode,
            bitrate(c.bitrate),
        );
    }
    if !s.interfaces.is_empty() {
        println!("traffic:");
    }
    for i in &s.interfaces {
        let bad = i.stats.ifac_violations + i.stats.protocol_violations;
        println!(
            "  {:<36} {:<7} rx {:>8} pkts {:>10} B   tx {:>8} pkts {:>10} B{}",
            i.name,
            if i.online { "up" } else { "down" },
            i.stats.rx_packets,
            i.stats.rx_bytes,
            i.stats.tx_packets,
            i.stats.tx_bytes,
            if bad > 0 {
                format!("   dropped {bad}")
            } else {
                String::new()
            }
        );
        if let Some(radio) = &i.radio {
            println!("    {}", radio_line(radio));
        }
        let st = &i.stats;
        if st.queued_announces + st.held_announces > 0 {
            println!(
                "    announce queue {} waiting, {} held by ingress control (rx {} / tx {} announces)",
                st.queued_announces, st.held_announces, st.rx_announces, st.tx_announces
            );
        }
    }
    println!();
    if !s.peers.is_empty() {
        println!("grid nodes heard: {}", s.peers.len());
        for p in s.peers.iter().take(20) {
            let c = &p.capabilities;
            println!(
                "  {}  {} hop(s)  {} cores  {} MB  {}",
                p.node,
                p.hops,
                c.cpu_cores,
                c.ram_mb,
                c.roles.join(",")
            );
        }
        println!();
    }
    println!(
        "paths: {}    known destinations: {}",
        s.path_count, s.known_destinations
    );
    for p in s.paths.iter().take(50) {
        println!("  {}  {} hop(s) via {}", p.destination, p.hops, p.next_hop);
    }
    Ok(())
}

/// One line of a radio's figures: airtime, channel load, signal.
fn radio_line(r: &RadioStats) -> String {
    let f =
        |v: Option<f32>, unit: &str| v.map_or_else(|| "?".to_string(), |v| format!("{v:.1}{unit}"));
    let duty = match r.duty_used_pct {
        Some(d) => format!(
            "   duty cycle {d:.2} % used this hour, {} frame(s) waiting",
            r.duty_deferred
        ),
        None => String::new(),
    };
    format!(
        "airtime {} (1 h {})   channel load {} (1 h {})   RSSI {}   SNR {}{duty}",
        f(r.airtime_short_pct, " %"),
        f(r.airtime_long_pct, " %"),
        f(r.channel_load_short_pct, " %"),
        f(r.channel_load_long_pct, " %"),
        f(r.rssi_dbm.map(f32::from), " dBm"),
        f(r.snr_db, " dB"),
    )
}

/// A bitrate for people: `10 Mbps`, `5.47 kbps`.
fn bitrate(bps: u64) -> String {
    match bps {
        b if b >= 1_000_000 => format!("{} Mbps", b / 1_000_000),
        b if b >= 1_000 => format!("{:.2} kbps", b as f64 / 1e3),
        b => format!("{b} bps"),
    }
}
