//! The frames between a node and its text-generation worker (`grid worker generate`).
//!
//! One pipe each way, frames as in [`crate::pipe`] with postcard bodies. The worker
//! loads its model, says [`WorkerFrame::Ready`] once, then answers each
//! [`GenerateRequest`] with any number of [`WorkerFrame::Token`] frames ended by one
//! [`WorkerFrame::Done`] or [`WorkerFrame::Failed`]. It serves one request at a time and
//! ends when its input closes, so it also ends with its node.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The longest request frame, bytes (a prompt of up to 256 KiB plus its fields).
pub const MAX_REQUEST: usize = 1 << 20;
/// The longest frame from the worker, bytes.
pub const MAX_RESPONSE: usize = 4 << 20;
/// The most tokens one request may ask for.
pub const MAX_TOKENS: u32 = 4096;
/// The longest prompt, bytes.
pub const MAX_PROMPT: usize = 256 << 10;
/// Most memory the worker's kept LoRA adapters take together (also the largest one
/// adapter), bytes; the node plans the worker's memory with it.
pub const ADAPTER_CACHE_BYTES: u64 = 256 << 20;

/// What the node asks: a reply to `prompt`, sent as one user turn through the model's
/// chat template, with `adapter` applied if given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The user's text (at most [`MAX_PROMPT`] bytes).
    pub prompt: String,
    /// At most this many new tokens (1..=[`MAX_TOKENS`]).
    pub max_tokens: u32,
    /// Sampling temperature; 0 (or less) is greedy decoding.
    pub temperature: f32,
    /// The sampler's seed: the same request with the same seed gives the same text.
    pub seed: u64,
    /// A LoRA adapter to apply for this request only; the base model is not changed.
    pub adapter: Option<AdapterRef>,
    /// The most tokens of context (prompt after the chat template, plus reply) that the
    /// memory the node's governor granted this request covers; the worker refuses a
    /// request that would need more. `None`: only the model's context bounds it.
    pub context_limit: Option<u32>,
}

/// A PEFT LoRA adapter on this machine, as the genome registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterRef {
    /// Its content hash (hex): the worker keeps loaded adapters under it.
    pub hash: String,
    /// The package directory, holding `adapter_config.json` and
    /// `adapter_model.safetensors` (already verified against the hash by the registry).
    pub dir: PathBuf,
}

/// What the worker says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerFrame {
    /// The model is loaded; sent once, before any answer.
    Ready(ModelInfo),
    /// The text of the next token(s), as the model produced them.
    Token(String),
    /// The request is finished.
    Done(Finished),
    /// The request failed; the worker goes on with the next one.
    Failed(String),
}

/// The loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's name (from its file or metadata).
    pub name: String,
    /// Its architecture (`llama`).
    pub architecture: String,
    /// The longest context (prompt and reply), tokens.
    pub context_tokens: u32,
    /// Memory one token of context takes while a request runs (its KV cache entries and
    /// its share of the attention scratch), bytes: what the node plans a request at.
    pub bytes_per_context_token: u64,
    /// How long loading took, milliseconds.
    pub load_ms: f64,
}

/// The final frame of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// The whole generated text (the `Token` frames concatenated).
    pub text: String,
    /// Tokens in the prompt after the chat template.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// `Token` frames sent.
    pub token_frames: u32,
    /// Why generation stopped: `stop` (end of turn) or `length` (max_tokens).
    pub finish_reason: String,
    /// The adapter applied (its hash), if any.
    pub adapter: Option<String>,
    /// From receiving the request to the first token, milliseconds.
    pub first_token_ms: f64,
    /// From receiving the request to the end, milliseconds.
    pub total_ms: f64,
    /// Tokens after the first per second of time after the first (decode speed).
    pub decode_tokens_per_s: f64,
}
