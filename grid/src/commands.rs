//! Commands (`Commands.execute` across the mesh): handlers a program registers, the
//! built-in commands every node answers, and what a call looks like to a handler.
//!
//! A command arrives as a [`crate::frame::GridFrame`] request on a link to `grid.node`
//! (an RNS request on [`FRAME_PATH`], so large frames travel as resources and the reply
//! is correlated by RNS); built-ins answer on the node's loop, registered handlers run as
//! their own tasks and answer when done.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rns_core::AddressHash;
use serde_json::Value;

use crate::frame::ErrorCode;

/// The RNS request path GridFrames travel on.
pub const FRAME_PATH: &str = "grid/frame";

/// What a caller that did not identify on its link may run: read-only built-ins. Anything
/// else (registered commands, subscriptions, pairing) needs an identity, so that trust,
/// blocking, quotas and the audit log apply to a known peer.
pub const ANONYMOUS_COMMANDS: [&str; 3] = ["grid/ping", "grid/capabilities", "list"];

/// Built-in commands and what they do.
pub const BUILTINS: [(&str, &str); 5] = [
    (
        "grid/ping",
        "answer at once (reachability and round-trip time)",
    ),
    (
        "grid/status",
        "identity, uptime, interfaces, paths and links of this node",
    ),
    (
        "grid/capabilities",
        "CPU cores, memory and roles of this node",
    ),
    ("list", "the commands this node offers, with a line on each"),
    (
        JOIN_COMMAND,
        "present the pairing code this node shows (grid pair); on a match both trust each other",
    ),
];

/// The command that cancels one of the caller's own commands still running on a node
/// (params: `{"correlation": "<16 hex digits>"}`; answers `{"cancelled": bool}`).
pub const CANCEL_COMMAND: &str = "grid/cancel";

/// The command a node runs on another to complete pairing (`grid pair <node> <code>`).
pub const JOIN_COMMAND: &str = "grid/join";

/// Reports a long-running command's progress to its caller: each report travels back on
/// the caller's link as a `Progress` frame, and the caller sees the event
/// `grid:job:<correlation in hex>:progress`.
#[derive(Clone)]
pub struct Progress {
    pub(crate) send: Option<ProgressSink>,
}

/// Where progress reports go: fraction done (if known) and a JSON detail.
pub(crate) type ProgressSink = Arc<dyn Fn(Option<f32>, Value) + Send + Sync>;

impl Progress {
    /// A reporter that goes nowhere (local calls, tests).
    pub fn none() -> Progress {
        Progress { send: None }
    }

    /// Report how far along the command is (0–1, if known) with a JSON detail.
    pub fn report(&self, fraction: Option<f32>, detail: Value) {
        if let Some(send) = &self.send {
            send(fraction.map(|f| f.clamp(0.0, 1.0)), detail);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.send.is_some() {
            "Progress(link)"
        } else {
            "Progress(none)"
        })
    }
}

impl PartialEq for Progress {
    fn eq(&self, _: &Progress) -> bool {
        true
    }
}

/// The event name a job's progress or completion is reported under.
pub fn job_event(correlation: u64, what: &str) -> String {
    format!("grid:job:{correlation:016x}:{what}")
}

/// The handle in a [`job_event`] name, if `event` is that job event.
pub fn job_of_event(event: &str, what: &str) -> Option<u64> {
    let hex = event
        .strip_prefix("grid:job:")?
        .strip_suffix(what)?
        .strip_suffix(':')?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
}

/// A command call as a handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandCall {
    /// The command name.
    pub command: String,
    /// Its JSON params (`null` when none were given).
    pub params: Value,
    /// The caller's identity hash, when it identified itself on the link.
    pub caller: Option<AddressHash>,
    /// The request's correlation id.
    pub correlation: u64,
    /// Where to report progress, for commands that take a while.
    pub progress: Progress,
}

/// Why a command failed, as the caller will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct CommandError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl CommandError {
    /// A handler failure.
    pub fn failed(message: impl Into<String>) -> Self {
        CommandError {
            code: ErrorCode::Failed,
            message: message.into(),
        }
    }

    /// Params the command cannot use.
    pub fn bad_params(message: impl Into<String>) -> Self {
        CommandError {
            code: ErrorCode::BadParams,
            message: message.into(),
        }
    }
}

/// A job the governor refused: the caller hears `busy`, with the reason's code first
/// (`pressure: memory pressure is critical …`), and may try another node.
impl From<crate::governor::Refusal> for CommandError {
    fn from(r: crate::governor::Refusal) -> Self {
        CommandError {
            code: ErrorCode::Busy,
            message: format!("{}: {r}", r.code()),
        }
    }
}

/// What a handler returns.
pub type CommandFuture = Pin<Box<dyn Future<Output = Result<Value, CommandError>> + Send>>;

/// A registered command: called on its own task for every request.
pub type CommandHandler = Arc<dyn Fn(CommandCall) -> CommandFuture + Send + Sync>;

/// Number of CPU cores and total memory, for `grid/capabilities`.
pub(crate) fn machine() -> Value {
    let cores = grid_governor::read::cores();
    let mem_mb = grid_governor::read::System::default()
        .memory()
        .ok()
        .map(|m| m.total >> 20);
    serde_json::json!({"cpu_cores": cores, "ram_mb": mem_mb})
}

impl crate::capabilities::Capabilities {
    /// This machine: cores and memory from the OS, the given roles, no GPU known yet.
    pub fn of_this_machine(roles: u8) -> crate::capabilities::Capabilities {
        let m = machine();
        crate::capabilities::Capabilities {
            version: crate::capabilities::CAPABILITIES_VERSION,
            cpu_cores: m["cpu_cores"]
                .as_u64()
                .unwrap_or(1)
                .min(u64::from(u16::MAX)) as u16,
            ram_mb: m["ram_mb"].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32,
            gpu: None,
            roles,
            adapters: 0,
            models: 0,
        }
    }
}
