//! The subcommands, one module per verb: `node` runs the node; the others ask it over the
//! control socket with a typed [`grid::control::Request`].

mod announce;
mod audit;
mod catalog;
mod cp;
mod dht;
mod emit;
mod exec;
mod governor;
mod id;
mod link;
mod listen;
mod node;
mod pair;
mod path;
mod probe;
mod status;
mod stream;
mod trust;

pub(crate) use announce::announce;
pub(crate) use audit::audit;
pub(crate) use catalog::catalog;
pub(crate) use cp::cp;
pub(crate) use dht::dht;
pub(crate) use emit::emit;
pub(crate) use exec::{exec, exec_result, ExecWait};
pub(crate) use governor::governor;
pub(crate) use id::id;
pub(crate) use link::{link, LinkAction};
pub(crate) use listen::{events_now, listen, ListenLimits};
pub(crate) use node::{embed_worker, node, radio_sim};
pub(crate) use pair::{pair_join, pair_offer};
pub(crate) use path::{drop_path, path};
pub(crate) use probe::probe;
pub(crate) use status::status;
pub(crate) use stream::exec_streaming;
pub(crate) use trust::trust;

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use grid::control::{self, Request};
use grid::state::StateDir;
use rns_core::AddressHash;
use serde_json::Value;

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

/// Send `request` to the node running for `state` and wait up to `wait` for its answer;
/// a refusal becomes the error, in the node's words.
pub(crate) fn ask(state: &StateDir, request: &Request, wait: Duration) -> Result<Value> {
    let path = state.socket_path();
    runtime()?
        .block_on(control::ask(&path, request, wait))
        .map_err(|e| match e {
            control::ControlError::NotRunning { .. } => anyhow!(
                "no node is running for {} (start one with: grid --config {} node)",
                state.root().display(),
                state.root().display()
            ),
            control::ControlError::Refused(e) if is_denial(&e) => anyhow!(
                "{e}; fix: the node that refused decides: its owner can trust this node \
                 (`grid trust <identity> trusted` there; `grid id` here shows the identity) or \
                 allow the command with an [acl] rule in its config.toml; `grid exec <node> \
                 list` shows the commands a node offers you"
            ),
            other => anyhow!(other),
        })
}

/// Whether a refusal came from trust or an ACL (here or on the other node).
fn is_denial(e: &grid::Error) -> bool {
    matches!(
        e,
        grid::Error::Denied(_)
            | grid::Error::Remote {
                code: grid::frame::ErrorCode::Denied,
                ..
            }
    )
}

/// Run `command` on the node itself (`local-only`) through its control socket, waiting
/// up to `wait`, and return its result.
pub(crate) fn local_exec(
    state: &StateDir,
    command: &str,
    params: Value,
    wait: Duration,
) -> Result<Value> {
    node_exec(state, "local-only", command, params, wait)
}

/// Run `command` on `destination` (a node hash or a routing hint) through this node,
/// waiting up to `wait`, and return its result.
pub(crate) fn node_exec(
    state: &StateDir,
    destination: &str,
    command: &str,
    params: Value,
    wait: Duration,
) -> Result<Value> {
    let v = ask(
        state,
        &Request::Exec {
            destination: destination.into(),
            command: command.to_string(),
            params,
            timeout_ms: Some(wait.as_millis() as u64),
            ttl_ms: None,
            detach: false,
        },
        wait + Duration::from_secs(5),
    )?;
    Ok(grid::control::response::parse::<grid::control::response::Executed>(v)?.result)
}

fn parse_hash(s: &str) -> Result<AddressHash> {
    s.parse::<AddressHash>()
        .map_err(|e| anyhow!("invalid destination hash \"{s}\": {e}"))
}

fn parse_level(s: &str) -> Result<grid::trust::TrustLevel> {
    s.parse().map_err(|e| anyhow!("{e}"))
}

fn timeout_ms(secs: f64) -> Result<u64> {
    if !(secs.is_finite() && secs > 0.0) {
        bail!("timeout must be a positive number of seconds");
    }
    Ok((secs * 1000.0) as u64)
}

fn json_arg(text: Option<&str>, what: &str) -> Result<Value> {
    match text {
        Some(p) => serde_json::from_str(p).map_err(|e| anyhow!("{what} is not JSON: {e}")),
        None => Ok(Value::Null),
    }
}
