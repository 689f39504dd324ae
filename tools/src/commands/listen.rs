//! `grid listen`: print matching events as they arrive.

use std::time::Duration;

use anyhow::{anyhow, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::ask;

/// The node's event cursor now: reading from it gives only events that come later.
pub(crate) fn events_now(state: &StateDir) -> Result<u64> {
    let v = ask(
        state,
        &Request::Events { cursor: u64::MAX },
        Duration::from_secs(5),
    )?;
    Ok(r::parse::<r::Events>(v)?.cursor)
}

/// The node's events after `cursor`, and where they leave off.
pub(crate) fn events_after(state: &StateDir, cursor: u64) -> Result<r::Events> {
    let v = ask(state, &Request::Events { cursor }, Duration::from_secs(5))?;
    Ok(r::parse(v)?)
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
        let destination: rns_core::AddressHash = node
            .parse()
            .map_err(|e| anyhow!("invalid node hash \"{node}\": {e}"))?;
        ask(
            state,
            &Request::Subscribe {
                destination,
                pattern: pattern.to_string(),
                timeout_ms: Some(30_000),
            },
            Duration::from_secs(35),
        )?;
        if !json_out {
            eprintln!("subscribed to {pattern} on {node}");
        }
    }
    let mut seen = 0u64;
    loop {
        let page = events_after(state, cursor)?;
        cursor = page.cursor;
        for e in &page.events {
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
