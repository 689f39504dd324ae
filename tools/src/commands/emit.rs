//! `grid emit`: emit an event here, or send it to another node.

use std::time::Duration;

use anyhow::{anyhow, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::{ask, json_arg};

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
        let to: rns_core::AddressHash = node
            .parse()
            .map_err(|e| anyhow!("invalid node hash \"{node}\": {e}"))?;
        let ttl = ttl.unwrap_or(Duration::from_secs(3600));
        let v = ask(
            state,
            &Request::Emit {
                event: event.to_string(),
                payload,
                to: Some(to),
                ttl_ms: Some(ttl.as_millis() as u64),
            },
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
        &Request::Emit {
            event: event.to_string(),
            payload,
            to: None,
            ttl_ms: None,
        },
        Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
    } else {
        let sent: r::Emitted = r::parse(v)?;
        println!(
            "Emitted {event} ({} remote subscriber(s))",
            sent.subscribers
        );
    }
    Ok(())
}
