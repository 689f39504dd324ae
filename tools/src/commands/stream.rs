//! Running a command and handing on what it streams as it comes (its progress
//! reports: the tokens of `ai/generate`, the steps of `genome/ask`): `grid exec
//! --stream` and `grid ask`.
//!
//! The command starts detached; its reports and its outcome are the node's job events
//! `grid:job:<handle>:progress` and `…:complete`, read from the node's event log.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;
use serde_json::Value;

use super::listen::events_after;
use super::{ask, events_now};

/// How often the node's events are read while the command runs.
const POLL: Duration = Duration::from_millis(100);

/// What a streamed command ended with.
pub(crate) struct Streamed {
    /// The node that ran it.
    pub(crate) node: String,
    /// Its result.
    pub(crate) result: Value,
}

/// Run `command` on `destination` (a node hash or a route), calling `on_progress` with
/// each report's payload (`{"fraction", "detail"}`) in order, and return its result, or
/// its error in the node's words. Gives up after `timeout`.
pub(crate) fn exec_streaming(
    state: &StateDir,
    destination: &str,
    command: &str,
    params: Value,
    timeout: Duration,
    mut on_progress: impl FnMut(&Value),
) -> Result<Streamed> {
    let mut cursor = events_now(state)?;
    let v = ask(
        state,
        &Request::Exec {
            destination: destination.to_string(),
            command: command.to_string(),
            params,
            timeout_ms: Some(timeout.as_millis() as u64),
            ttl_ms: None,
            detach: true,
        },
        Duration::from_secs(40),
    )?;
    let started: r::Started = r::parse(v)?;
    let node = started.node.to_string();
    let progress = format!("grid:job:{}:progress", started.handle);
    let complete = format!("grid:job:{}:complete", started.handle);
    let end = Instant::now() + timeout + Duration::from_secs(5);
    loop {
        let page = events_after(state, cursor)?;
        cursor = page.cursor;
        for e in &page.events {
            let name = e["event"].as_str().unwrap_or("");
            if name == progress {
                on_progress(&e["payload"]);
            } else if name == complete {
                let p = &e["payload"];
                if p["ok"] == Value::Bool(true) {
                    return Ok(Streamed {
                        node,
                        result: p["result"].clone(),
                    });
                }
                bail!("{}", p["error"].as_str().unwrap_or("the command failed"));
            }
        }
        if Instant::now() >= end {
            return Err(anyhow!(
                "no result from {node} after {} s (handle {}; `grid exec --result {}` asks later)",
                timeout.as_secs(),
                started.handle,
                started.handle
            ));
        }
        if page.events.is_empty() {
            std::thread::sleep(POLL);
        }
    }
}
