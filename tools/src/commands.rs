//! The subcommands: `node` runs the node; the others ask it over the control socket.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use grid::control;
use grid::state::{node_destinations, StateDir};
use rns_core::AddressHash;
use serde_json::{json, Value};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `grid node`
pub(crate) fn node(state: StateDir, verbose: u8, quiet: bool) -> Result<()> {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .init();
    runtime()?.block_on(async {
        let genome_state = state.clone();
        grid::run_with_services(state, shutdown_signal(), move |handle| {
            grid_genome::service::run(handle, genome_state)
        })
        .await
        .map_err(|e| anyhow!(e))
    })
}

/// `grid radio-sim`
pub(crate) fn radio_sim(config: grid_tools::radio_sim::sim::SimConfig) -> Result<()> {
    runtime()?.block_on(async { grid_tools::radio_sim::sim::run(config, shutdown_signal()).await })
}

/// `grid id`
pub(crate) fn id(state: &StateDir, json_out: bool) -> Result<()> {
    let identity = state.load_or_create_identity().map_err(|e| anyhow!(e))?;
    let dests = node_destinations(&identity);
    let grid_node = dests[0].1;
    if json_out {
        let map: serde_json::Map<String, Value> = dests
            .iter()
            .map(|(n, h)| ((*n).to_string(), Value::String(h.to_string())))
            .collect();
        println!(
            "{}",
            json!({"identity": identity.hash().to_string(), "destination": grid_node.to_string(), "destinations": map})
        );
    } else {
        println!("identity     {}", identity.hash());
        for (n, h) in dests {
            println!("{n:<20} {h}");
        }
    }
    Ok(())
}

pub(crate) fn ask(state: &StateDir, req: Value, wait: Duration) -> Result<Value> {
    let path = state.socket_path();
    let v = runtime()?
        .block_on(control::call(&path, &req, wait))
        .map_err(|e| match e {
            control::ControlError::NotRunning { .. } => anyhow!(
                "no node is running for {} (start one with: grid --config {} node)",
                state.root().display(),
                state.root().display()
            ),
            other => anyhow!(other),
        })?;
    if v.get("ok") == Some(&Value::Bool(true)) {
        Ok(v)
    } else {
        bail!(
            "{}",
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("the node refused the request")
        )
    }
}

fn parse_hash(s: &str) -> Result<AddressHash> {
    s.parse::<AddressHash>()
        .map_err(|e| anyhow!("invalid destination hash \"{s}\": {e}"))
}

fn timeout_ms(secs: f64) -> Result<u64> {
    if !(secs.is_finite() && secs > 0.0) {
        bail!("timeout must be a positive number of seconds");
    }
    Ok((secs * 1000.0) as u64)
}

/// `grid status`
/// `grid announce`
pub(crate) fn announce(state: &StateDir, json_out: bool) -> Result<()> {
    let v = ask(state, json!({"cmd": "announce"}), Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
    } else {
        println!("Announced {}", v["destination"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// `grid exec`
/// How `grid exec` waits.
pub(crate) struct ExecWait {
    /// Seconds to wait for a reachable node's result.
    pub(crate) timeout: f64,
    /// Delay tolerance: bundle the command if the node has no path, wait this long.
    pub(crate) ttl: Option<Duration>,
    /// Return a handle at once.
    pub(crate) detach: bool,
}

pub(crate) fn exec(
    state: &StateDir,
    hash: &str,
    command: &str,
    params: Option<&str>,
    wait: ExecWait,
    json_out: bool,
) -> Result<()> {
    let _: grid::routing::Route = hash.parse().map_err(|e| anyhow!("{e}"))?;
    let params = json_arg(params, "params")?;
    let ExecWait {
        timeout,
        ttl,
        detach,
    } = wait;
    let timeout = Duration::from_secs_f64(timeout.clamp(0.1, 600.0));
    let mut req = json!({
        "cmd": "exec", "destination": hash, "command": command, "params": params,
        "timeout_ms": timeout.as_millis() as u64, "detach": detach,
    });
    let mut wait_for = timeout;
    if let Some(ttl) = ttl {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(30 * 86_400) {
            bail!("--ttl must be between 1s and 30 days");
        }
        req["ttl_ms"] = json!(ttl.as_millis() as u64);
        wait_for = ttl.max(timeout) + Duration::from_secs(20);
    }
    let v = ask(state, req, wait_for + Duration::from_secs(5))?;
    if detach {
        if json_out {
            println!("{v}");
        } else {
            println!("{}", v["handle"].as_str().unwrap_or("?"));
        }
        return Ok(());
    }
    if json_out {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v["result"])?);
    }
    Ok(())
}

fn json_arg(text: Option<&str>, what: &str) -> Result<Value> {
    match text {
        Some(p) => serde_json::from_str(p).map_err(|e| anyhow!("{what} is not JSON: {e}")),
        None => Ok(Value::Null),
    }
}

/// `grid pair` on the offering side: show a code, wait for the other node.
pub(crate) fn pair_offer(
    state: &StateDir,
    level: &str,
    window: Duration,
    no_wait: bool,
    json_out: bool,
) -> Result<()> {
    let v = ask(
        state,
        json!({"cmd": "pair_offer", "level": level, "window_s": window.as_secs().max(10)}),
        Duration::from_secs(5),
    )?;
    let code = v["code"].as_str().unwrap_or("?");
    let node = v["node"].as_str().unwrap_or("?");
    if json_out && no_wait {
        println!("{v}");
        return Ok(());
    }
    if !json_out {
        println!("Pairing code: {code}");
        println!("On the other node run:\n  grid pair {node} {code}");
    }
    if no_wait {
        return Ok(());
    }
    if !json_out {
        eprintln!(
            "waiting up to {} for it ({} tries)…",
            humantime::format_duration(window),
            v["tries"]
        );
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let s = ask(state, json!({"cmd": "pair_status"}), Duration::from_secs(5))?;
        match s["state"].as_str() {
            Some("paired") => {
                if json_out {
                    println!("{s}");
                } else {
                    println!(
                        "Paired with {} ({})",
                        s["identity"].as_str().unwrap_or("?"),
                        s["level"].as_str().unwrap_or("?")
                    );
                }
                return Ok(());
            }
            Some("waiting") => {}
            _ => bail!(
                "pairing ended: {}",
                s["reason"].as_str().unwrap_or("no offer")
            ),
        }
    }
}

/// `grid pair <node> <code>`: present another node's code.
pub(crate) fn pair_join(
    state: &StateDir,
    node: &str,
    code: &str,
    level: &str,
    json_out: bool,
) -> Result<()> {
    let _: rns_core::AddressHash = node
        .parse()
        .map_err(|e| anyhow!("invalid node hash \"{node}\": {e}"))?;
    if grid::trust::parse_pairing_code(code).is_none() {
        bail!("\"{code}\" is not a pairing code (four words, like river-salt-owl-piano)");
    }
    let v = ask(
        state,
        json!({"cmd": "pair_join", "destination": node, "code": code, "level": level, "timeout_ms": 30_000}),
        Duration::from_secs(35),
    )?;
    if json_out {
        println!("{v}");
    } else {
        println!(
            "Paired with {} ({})",
            v["identity"].as_str().unwrap_or("?"),
            v["level"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `grid trust`
pub(crate) fn trust(
    state: &StateDir,
    identity: Option<&str>,
    level: Option<&str>,
    json_out: bool,
) -> Result<()> {
    let Some(identity) = identity else {
        let v = ask(state, json!({"cmd": "trust_list"}), Duration::from_secs(5))?;
        if json_out {
            println!("{v}");
        } else {
            println!(
                "unlisted identities: {}",
                v["default"].as_str().unwrap_or("?")
            );
            for e in v["entries"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}",
                    e["identity"].as_str().unwrap_or("?"),
                    e["level"].as_str().unwrap_or("?")
                );
            }
        }
        return Ok(());
    };
    let mut req = json!({"cmd": "trust", "identity": identity});
    if let Some(l) = level {
        req["level"] = json!(l);
    }
    let v = ask(state, req, Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
    } else {
        println!("{identity} is {}", v["level"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// `grid audit`
pub(crate) fn audit(state: &StateDir, limit: usize, json_out: bool) -> Result<()> {
    let entries = grid::audit::read_last(&state.audit_path(), limit)
        .map_err(|e| anyhow!("cannot read the audit log: {e}"))?;
    for e in entries {
        if json_out {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            println!(
                "{}  {:<3} {}  {}  {:016x}  {:?}  {} ms",
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_millis(e.time_ms)
                ),
                format!("{:?}", e.direction).to_lowercase(),
                e.peer,
                e.command,
                e.correlation,
                e.outcome,
                e.duration_ms
            );
        }
    }
    Ok(())
}

/// `grid emit`
pub(crate) fn emit(
    state: &StateDir,
    event: &str,
    payload: Option<&str>,
    to: Option<&str>,
    ttl: Option<Duration>,
    json_out: bool,
) -> Result<()> {
    grid::frame::names::check_event(event).map_err(|e| anyhow!("event name {e}"))?;
    let payload = json_arg(payload, "the payload")?;
    if let Some(node) = to {
        let _: rns_core::AddressHash = node
            .parse()
            .map_err(|e| anyhow!("invalid node hash \"{node}\": {e}"))?;
        let ttl = ttl.unwrap_or(Duration::from_secs(3600));
        let v = ask(
            state,
            json!({"cmd": "emit", "event": event, "payload": payload, "to": node, "ttl_ms": ttl.as_millis() as u64}),
            Duration::from_secs(40),
        )?;
        if json_out {
            println!("{v}");
        } else {
            println!(
                "Queued {event} for {node} (deliverable for {})",
                humantime::format_duration(ttl)
            );
        }
        return Ok(());
    }
    let v = ask(
        state,
        json!({"cmd": "emit", "event": event, "payload": payload}),
        Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
    } else {
        println!(
            "Emitted {event} ({} remote subscriber(s))",
            v["subscribers"]
        );
    }
    Ok(())
}

/// The node's event cursor now: reading from it gives only events that come later.
pub(crate) fn events_now(state: &StateDir) -> Result<u64> {
    Ok(ask(
        state,
        json!({"cmd": "events", "cursor": u64::MAX}),
        Duration::from_secs(5),
    )?["cursor"]
        .as_u64()
        .unwrap_or(0))
}

/// When `grid listen` stops, and where it starts.
pub(crate) struct ListenLimits {
    /// Stop after this many events.
    pub(crate) count: Option<u64>,
    /// Stop after this many seconds.
    pub(crate) timeout: Option<f64>,
    /// Start with the recent events the node keeps, not only new ones.
    pub(crate) recent: bool,
}

/// `grid listen`
pub(crate) fn listen(
    state: &StateDir,
    pattern: &str,
    nodes: &[String],
    limits: ListenLimits,
    json_out: bool,
) -> Result<()> {
    let ListenLimits {
        count,
        timeout,
        recent,
    } = limits;
    grid::frame::names::check_pattern(pattern).map_err(|e| anyhow!("pattern {e}"))?;
    let end =
        timeout.map(|t| std::time::Instant::now() + Duration::from_secs_f64(t.clamp(0.0, 1e7)));
    // Start from now (only events after this point are printed), or from the oldest
    // event the node keeps.
    let mut cursor = if recent { 0 } else { events_now(state)? };
    for node in nodes {
        let _: rns_core::AddressHash = node
            .parse()
            .map_err(|e| anyhow!("invalid node hash \"{node}\": {e}"))?;
        ask(
            state,
            json!({"cmd": "subscribe", "destination": node, "pattern": pattern, "timeout_ms": 30_000}),
            Duration::from_secs(35),
        )?;
        if !json_out {
            eprintln!("subscribed to {pattern} on {node}");
        }
    }
    let mut seen = 0u64;
    loop {
        let v = ask(
            state,
            json!({"cmd": "events", "cursor": cursor}),
            Duration::from_secs(5),
        )?;
        cursor = v["cursor"].as_u64().unwrap_or(cursor);
        for e in v["events"].as_array().into_iter().flatten() {
            let name = e["event"].as_str().unwrap_or("");
            if !grid::frame::names::matches(pattern, name) {
                continue;
            }
            if json_out {
                println!("{e}");
            } else {
                println!(
                    "{} {name} {}",
                    e["node"].as_str().unwrap_or("?"),
                    e["payload"]
                );
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
            seen += 1;
            if count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
        if end.is_some_and(|t| std::time::Instant::now() >= t) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `grid exec --result`
pub(crate) fn exec_result(state: &StateDir, handle: &str, json_out: bool) -> Result<()> {
    let v = ask(
        state,
        json!({"cmd": "exec_result", "handle": handle}),
        Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    match v["state"].as_str() {
        Some("done") if v["outcome"]["ok"] == true => {
            println!("{}", serde_json::to_string_pretty(&v["outcome"]["result"])?)
        }
        Some("done") => bail!("{}", v["outcome"]["error"].as_str().unwrap_or("failed")),
        _ => println!("pending"),
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

pub(crate) fn status(state: &StateDir, json_out: bool) -> Result<()> {
    let v = ask(state, json!({"cmd": "status"}), Duration::from_secs(5))?;
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

/// `grid path`
pub(crate) fn path(state: &StateDir, hash: &str, timeout: f64, json_out: bool) -> Result<()> {
    let d = parse_hash(hash)?;
    let ms = timeout_ms(timeout)?;
    let v = ask(
        state,
        json!({"cmd": "path", "destination": d.to_string(), "timeout_ms": ms}),
        Duration::from_millis(ms) + Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
    } else {
        println!(
            "Path found, destination {} is {} hop(s) away via {} on {}",
            d,
            v["hops"],
            v["next_hop"].as_str().unwrap_or("?"),
            v["interface"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `grid probe`
pub(crate) fn probe(
    state: &StateDir,
    hash: &str,
    size: usize,
    data: Option<&str>,
    timeout: f64,
    json_out: bool,
) -> Result<()> {
    let d = parse_hash(hash)?;
    let len = data.map_or(size, str::len);
    if len == 0 || len > rns_core::packet::ENCRYPTED_MDU {
        bail!(
            "probe payload must be between 1 and {} bytes",
            rns_core::packet::ENCRYPTED_MDU
        );
    }
    let ms = timeout_ms(timeout)?;
    let mut req =
        json!({"cmd": "probe", "destination": d.to_string(), "timeout_ms": ms, "size": size});
    if let Some(text) = data {
        req["data"] = json!(text);
    }
    let v = ask(
        state,
        req,
        Duration::from_millis(ms) + Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
    } else {
        let rtt = v["rtt_ms"].as_f64().unwrap_or(0.0);
        println!(
            "Valid reply from {} in {:.3} ms over {} hop(s)",
            d,
            rtt,
            v["hops"]
                .as_u64()
                .map_or("?".to_string(), |h| h.to_string())
        );
    }
    Ok(())
}

/// `grid link ...`
pub(crate) fn link(state: &StateDir, action: crate::LinkAction) -> Result<()> {
    use crate::LinkAction as A;
    let quick = Duration::from_secs(5);
    let (req, wait, json_out) = match &action {
        A::Open {
            hash,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            let d = parse_hash(hash)?;
            (
                json!({"cmd": "link_open", "destination": d.to_string(), "timeout_ms": ms}),
                Duration::from_millis(ms) + quick,
                *json,
            )
        }
        A::List { json } => (json!({"cmd": "links"}), quick, *json),
        A::Send {
            link,
            text,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            (
                json!({"cmd": "link_send", "link": parse_hash(link)?.to_string(), "data": text, "timeout_ms": ms}),
                Duration::from_millis(ms) + quick,
                *json,
            )
        }
        A::Request {
            link,
            path,
            data,
            file,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            let mut body = json!({"cmd": "link_request", "link": parse_hash(link)?.to_string(), "path": path, "data": data.clone().unwrap_or_default(), "timeout_ms": ms});
            if let Some(f) = file {
                let abs =
                    std::path::absolute(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                body["file"] = json!(abs);
            }
            (body, Duration::from_millis(ms) + quick, *json)
        }
        A::Channel {
            link,
            text,
            msgtype,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            (
                json!({"cmd": "link_channel", "link": parse_hash(link)?.to_string(), "data": text, "msgtype": msgtype, "timeout_ms": ms}),
                Duration::from_millis(ms) + quick,
                *json,
            )
        }
        A::Stream {
            link,
            file,
            text,
            stream_id,
            eof,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            let mut req = json!({"cmd": "link_stream", "link": parse_hash(link)?.to_string(), "stream_id": stream_id, "eof": eof, "timeout_ms": ms});
            if let Some(f) = file {
                let abs = std::path::absolute(f).with_context(|| format!("{}", f.display()))?;
                req["file"] = json!(abs.to_string_lossy());
            } else {
                req["data"] = json!(text.clone().unwrap_or_default());
            }
            (req, Duration::from_millis(ms) + quick, *json)
        }
        A::Recv { link, json } => (
            json!({"cmd": "link_recv", "link": parse_hash(link)?.to_string()}),
            quick,
            *json,
        ),
        A::Identify { link, json } => (
            json!({"cmd": "link_identify", "link": parse_hash(link)?.to_string()}),
            quick,
            *json,
        ),
        A::Close { link, json } => (
            json!({"cmd": "link_close", "link": parse_hash(link)?.to_string()}),
            quick,
            *json,
        ),
    };
    let v = ask(state, req, wait)?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    match action {
        A::Open { .. } => println!(
            "Link {} established, RTT {:.3} ms, MTU {}",
            s("link"),
            v["rtt_ms"].as_f64().unwrap_or(0.0),
            v["mtu"]
        ),
        A::List { .. } => {
            for l in v["links"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<9} {} {}  mtu {}  rtt {}",
                    l["link"].as_str().unwrap_or("?"),
                    l["state"].as_str().unwrap_or("?"),
                    if l["initiator"].as_bool() == Some(true) {
                        "to"
                    } else {
                        "from"
                    },
                    l["destination"].as_str().unwrap_or("?"),
                    l["mtu"],
                    l["rtt_ms"]
                        .as_f64()
                        .map_or("-".into(), |r| format!("{r:.3} ms")),
                );
            }
        }
        A::Send { .. } => println!(
            "Delivered on {}, proof after {:.3} ms",
            s("link"),
            v["rtt_ms"].as_f64().unwrap_or(0.0)
        ),
        A::Request { .. } => match &v["response"] {
            Value::String(t) => println!("{t}"),
            other => println!("{other}"),
        },
        A::Channel { .. } => println!("Delivered message {} on {}", v["sequence"], s("link")),
        A::Stream { .. } => println!(
            "Delivered {} bytes on stream {} of {}",
            v["bytes"],
            v["stream_id"],
            s("link")
        ),
        A::Recv { .. } => {
            let text = |p: &Value| match p {
                Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            for p in v["packets"].as_array().into_iter().flatten() {
                println!("{}", text(p));
            }
            for m in v["messages"].as_array().into_iter().flatten() {
                println!(
                    "[message {:#06x}] {}",
                    m["msgtype"].as_u64().unwrap_or(0),
                    text(&m["data"])
                );
            }
            for st in v["streams"].as_array().into_iter().flatten() {
                println!(
                    "[stream {}{}] {}",
                    st["stream_id"],
                    if st["eof"].as_bool() == Some(true) {
                        ", closed"
                    } else {
                        ""
                    },
                    text(&st["data"])
                );
            }
        }
        A::Identify { .. } => println!("Identified as {} on {}", s("identity"), s("link")),
        A::Close { .. } => println!("Closed {}", s("link")),
    }
    Ok(())
}

/// `grid cp`
pub(crate) fn cp(
    state: &StateDir,
    file: &std::path::Path,
    hash: &str,
    timeout: f64,
    quiet: bool,
    json_out: bool,
) -> Result<()> {
    let d = parse_hash(hash)?;
    let limit = Duration::from_millis(timeout_ms(timeout)?);
    let path = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let v = ask(
        state,
        json!({"cmd": "cp", "path": path.display().to_string(), "destination": d.to_string()}),
        Duration::from_secs(10),
    )?;
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let bar = (!quiet).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(format!(
            "{} → {}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            d
        ));
        b
    });
    let started = std::time::Instant::now();
    let last = loop {
        std::thread::sleep(Duration::from_millis(100));
        let s = ask(
            state,
            json!({"cmd": "cp_status", "id": id}),
            Duration::from_secs(5),
        )?;
        if let Some(b) = &bar {
            b.set_length(s["total"].as_u64().unwrap_or(0));
            b.set_position(s["done"].as_u64().unwrap_or(0));
        }
        match s["state"].as_str() {
            Some("complete") | Some("failed") => break s,
            Some("connecting") if started.elapsed() > limit => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                bail!("could not reach {d} within {timeout} s");
            }
            _ => {}
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if last["state"] == "failed" {
        bail!(
            "{}",
            last["error"].as_str().unwrap_or("the transfer failed")
        );
    }
    if json_out {
        println!("{last}");
    } else {
        let bytes = last["bytes"].as_u64().unwrap_or(0);
        let secs = last["seconds"].as_f64().unwrap_or(0.0);
        println!(
            "Sent {} ({} bytes) to {} in {:.2} s, {:.2} MB/s",
            path.display(),
            bytes,
            d,
            secs,
            if secs > 0.0 {
                bytes as f64 / secs / 1e6
            } else {
                0.0
            }
        );
    }
    Ok(())
}
