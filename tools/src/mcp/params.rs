//! The tools' arguments: their JSON schemas are what a model sees, so every field says
//! what it is for.

use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;
use serde_json::Value;

/// `search_skills`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct SearchParams {
    /// What the skill should do, in plain words.
    pub(crate) query: String,
    /// How many results at most (1-50, default 5).
    pub(crate) limit: Option<u32>,
    /// How far to look: immediate (this node), quick (default), thorough, exhaustive.
    pub(crate) patience: Option<String>,
}

/// `ask`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct AskParams {
    /// The skill needed, described in plain words (it is searched for by meaning).
    pub(crate) need: String,
    /// The text to send to the model.
    pub(crate) prompt: String,
    /// Most new tokens (default 256).
    pub(crate) max_tokens: Option<u32>,
    /// Only say which skill and node would be used.
    pub(crate) dry_run: Option<bool>,
}

/// `exec`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecParams {
    /// A node's 32-hex-digit hash, or a routing hint: local-only, least-loaded,
    /// prefer-gpu, max-compute.
    pub(crate) node: String,
    /// The command, domain/action (grid/ping, grid/status, ai/generate, ...).
    pub(crate) command: String,
    /// The command's parameters, a JSON object.
    pub(crate) params: Option<Value>,
    /// Seconds to wait for the answer (default 30, at most 600).
    pub(crate) timeout_s: Option<f64>,
}

/// `emit`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct EmitParams {
    /// The event's name, segments joined by ':' (demo:done).
    pub(crate) event: String,
    /// Its payload, any JSON.
    pub(crate) payload: Option<Value>,
}

/// `wait_events`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct WaitParams {
    /// The event names to wait for: * matches one segment, ** any number.
    pub(crate) pattern: String,
    /// Seconds to wait at most (default 10, at most 60).
    pub(crate) timeout_s: Option<f64>,
    /// Return after this many events (default 10, at most 100).
    pub(crate) max: Option<u32>,
    /// Count the recent events the node keeps too, not only new ones.
    pub(crate) recent: Option<bool>,
}

/// `fetch_adapter`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct FetchParams {
    /// The package's content hash, 64 hex digits.
    pub(crate) content_hash: String,
    /// Nodes to fetch from (32-hex-digit hashes); empty: ask peers and the DHT.
    pub(crate) from: Option<Vec<String>>,
}

/// `run_pipeline`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PipelineParams {
    /// The pipeline, a JSON object (or its text).
    pub(crate) pipeline: Value,
    /// Its inputs, a JSON object of name to value.
    pub(crate) inputs: Option<Value>,
    /// Return the handle at once instead of waiting for the end.
    pub(crate) detach: Option<bool>,
}

/// `pipeline_status`
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PipelineStatusParams {
    /// The run's handle.
    pub(crate) handle: String,
}
