//! `grid exec`: run a command on a node, at once, detached, or delay-tolerant; and
//! `grid exec --result` for a detached one.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::{ask, json_arg};

/// How `grid exec` waits.
pub(crate) struct ExecWait {
    /// Seconds to wait for a reachable node's result.
    pub(crate) timeout: f64,
    /// Delay tolerance: bundle the command if the node has no path, wait this long.
    pub(crate) ttl: Option<Duration>,
    /// Return a handle at once.
    pub(crate) detach: bool,
}

/// `grid exec`
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
    let mut wait_for = timeout;
    if let Some(ttl) = ttl {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(30 * 86_400) {
            bail!("--ttl must be between 1s and 30 days");
        }
        wait_for = ttl.max(timeout) + Duration::from_secs(20);
    }
    let req = Request::Exec {
        destination: hash.to_string(),
        command: command.to_string(),
        params,
        timeout_ms: Some(timeout.as_millis() as u64),
        ttl_ms: ttl.map(|t| t.as_millis() as u64),
        detach,
    };
    let v = ask(state, &req, wait_for + Duration::from_secs(5))?;
    if detach {
        if json_out {
            println!("{v}");
        } else {
            println!("{}", r::parse::<r::Started>(v)?.handle);
        }
        return Ok(());
    }
    if json_out {
        println!("{v}");
    } else {
        let done: r::Executed = r::parse(v)?;
        println!("{}", serde_json::to_string_pretty(&done.result)?);
    }
    Ok(())
}

/// `grid exec --result`
pub(crate) fn exec_result(state: &StateDir, handle: &str, json_out: bool) -> Result<()> {
    let v = ask(
        state,
        &Request::ExecResult {
            handle: handle.to_string(),
        },
        Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    match r::parse::<r::JobResult>(v)?.outcome() {
        Some(Ok(result)) => println!("{}", serde_json::to_string_pretty(&result)?),
        Some(Err(e)) => bail!("{e}"),
        None => println!("pending"),
    }
    Ok(())
}
