//! Answers about commands and events: `exec`, `exec_result`, `emit`, `events`, `announce`.

use rns_core::AddressHash;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::control::request::hash;
use crate::Error;

/// The answer to `exec`: the command's result, and the node that ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    /// The node that ran it (this node's own destination when it ran here).
    #[serde(with = "hash")]
    pub node: AddressHash,
    /// The command's JSON result.
    pub result: Value,
}

/// The answer to `exec` with `detach`: the job's handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The node that runs it.
    #[serde(with = "hash")]
    pub node: AddressHash,
    /// The handle (16 hex digits) for `exec_result` and the job's events.
    pub handle: String,
}

/// The answer to `exec_result`: whether a detached job has finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum JobResult {
    /// No outcome has arrived yet.
    Pending,
    /// The job finished.
    Done {
        /// The outcome as the running node sent it: `{"ok": true, "result": …}` or a
        /// refusal `{"ok": false, "code": …, "error": …}` (see [`JobResult::outcome`]).
        outcome: Value,
    },
}

impl JobResult {
    /// The job's result, or its error; `None` while it is pending.
    pub fn outcome(&self) -> Option<Result<Value, Error>> {
        match self {
            JobResult::Pending => None,
            JobResult::Done { outcome } => Some(match Error::from_json(outcome) {
                Some(e) => Err(e),
                None => Ok(outcome.get("result").cloned().unwrap_or(Value::Null)),
            }),
        }
    }
}

/// The answer to `emit` here: how many remote subscriptions it went to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emitted {
    /// Remote subscriptions sent to.
    pub subscribers: usize,
}

/// The answer to `emit` to another node: queued as a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// Always true.
    pub queued: bool,
}

/// The answer to `events`: events after the cursor, and the cursor to ask from next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// `{"node", "event", "payload", …}`, oldest first.
    pub events: Vec<Value>,
    /// Where this answer leaves off.
    pub cursor: u64,
}

/// The answer to `announce`: the destination announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    /// This node's `grid.node` destination.
    #[serde(with = "hash")]
    pub destination: AddressHash,
}

/// The answer to requests that only succeed or fail (`subscribe`): nothing but `"ok"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {}

/// The answer to `drop_path`: whether a path was known (and is now forgotten).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathDropped {
    /// A path was known and is gone.
    pub dropped: bool,
}
