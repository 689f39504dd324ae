//! `grid exec`: run a command on a node, at once, detached, or delay-tolerant; and
//! `grid exec --result` for a detached one.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::stream::exec_streaming;
use super::{ask, json_arg};

/// How `grid exec` waits.
pub(crate) struct ExecWait {
    /// Seconds to wait for a reachable node's result.
    pub(crate) timeout: f64,
    /// Delay tolerance: bundle the command if the node has no path, wait this long.
    pub(crate) ttl: Option<Duration>,
    /// Return a handle at once.
    pub(crate) detach: bool,
    /// Print progress as it comes.
    pub(crate) stream: bool,
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
        stream,
    } = wait;
    let timeout = Duration::from_secs_f64(timeout.clamp(0.1, 600.0));
    if stream {
        return exec_stream(state, hash, command, params, timeout, json_out);
    }
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

/// `grid exec --stream`: text in the reports goes to stdout as it comes, other reports
/// to stderr; with `--json`, one JSON line per report and one for the result.
fn exec_stream(
    state: &StateDir,
    hash: &str,
    command: &str,
    params: serde_json::Value,
    timeout: Duration,
    json_out: bool,
) -> Result<()> {
    use std::io::Write;
    let mut streamed_text = false;
    let done = exec_streaming(state, hash, command, params, timeout, |p| {
        if json_out {
            println!("{}", serde_json::json!({"progress": p}));
        } else if let Some(text) = p["detail"]["text"].as_str() {
            print!("{text}");
            streamed_text = true;
        } else {
            eprintln!("{}", p["detail"]);
        }
        let _ = std::io::stdout().flush();
    })?;
    if json_out {
        println!(
            "{}",
            serde_json::json!({"ok": true, "node": done.node, "result": done.result})
        );
    } else {
        if streamed_text {
            println!();
        }
        println!("{}", serde_json::to_string_pretty(&done.result)?);
    }
    Ok(())
}
