//! `ai/generate` on a compute node: text from the node's model, with an adapter from
//! the registry applied for this request only; tokens stream to the caller as progress.
//!
//! Params: `prompt` (required), `max_tokens` (default 256), `temperature` (default 0.7;
//! 0 is greedy), `seed` (default: from the request's correlation id), `adapter` (a
//! content hash, or a name or name@version held here), `adapter_from` (nodes that hold
//! it: an adapter given by hash that is not here is fetched from them, verified, first).
//!
//! The result: `text`, `prompt_tokens`, `completion_tokens`, `finish_reason`, `adapter`
//! (name, version, content hash), `model`, `first_token_ms`, `total_ms`,
//! `decode_tokens_per_s`. Progress reports carry `{"text": <new text>, "tokens": n}`,
//! gathered for [`STREAM_EVERY`] so a fast model does not send a frame per token.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grid::commands::{CommandCall, CommandError, Progress};
use serde_json::{json, Value};

use super::{param_str, parse_hash, Genome};
use crate::generate::protocol::{AdapterRef, GenerateRequest};
use crate::generate::supervisor::Generator;
use crate::registry::Entry;

/// How long streamed text gathers before it is sent as one progress report.
pub const STREAM_EVERY: Duration = Duration::from_millis(100);

/// Where `ai/generate` runs: the `grid` program's `worker generate` with a GGUF model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    /// The `grid` binary (built with the `llm` feature).
    pub program: PathBuf,
    /// The GGUF model file.
    pub model: PathBuf,
}

impl Inference {
    /// The worker for this model, asking `governor` before it loads.
    pub fn generator(&self, governor: &grid::governor::GovernorHandle) -> Generator {
        use crate::generate::supervisor::{planned_ram, weights_for};
        let size = std::fs::metadata(&self.model).map_or(0, |m| m.len());
        let weights = weights_for(size);
        Generator::new(
            self.program.clone(),
            vec![
                "worker".into(),
                "generate".into(),
                "--model".into(),
                self.model.display().to_string(),
                "--weights".into(),
                weights.arg().into(),
            ],
            planned_ram(size, weights),
        )
        .with_governor(governor.clone())
    }
}

/// Text waiting to be streamed, and how many tokens came.
struct Stream {
    pending: String,
    tokens: u32,
    last: Instant,
}

impl Genome {
    pub(super) async fn generate(
        self: Arc<Self>,
        call: CommandCall,
    ) -> Result<Value, CommandError> {
        let Some(generator) = self.generator.clone() else {
            return Err(CommandError::failed("this node runs no model"));
        };
        let prompt = param_str(&call, "prompt")?.to_string();
        let p = &call.params;
        let max_tokens = match p.get("max_tokens") {
            None | Some(Value::Null) => 256,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| CommandError::bad_params("max_tokens must be a whole number"))?,
        };
        let temperature = match p.get("temperature") {
            None | Some(Value::Null) => 0.7,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| CommandError::bad_params("temperature must be a number"))?
                as f32,
        };
        let seed = match p.get("seed") {
            None | Some(Value::Null) => call.correlation,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| CommandError::bad_params("seed must be a whole number"))?,
        };
        let adapter = match p.get("adapter") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(self.clone().adapter_here(s, &call).await?),
            Some(_) => {
                return Err(CommandError::bad_params(
                    "adapter must be a content hash or a name",
                ))
            }
        };
        let request = GenerateRequest {
            prompt,
            max_tokens,
            temperature,
            seed,
            adapter: adapter.as_ref().map(|e| AdapterRef {
                hash: e.hash_hex(),
                dir: e.dir.clone(),
            }),
            context_limit: None,
        };
        let stream = Arc::new(Mutex::new(Stream {
            pending: String::new(),
            tokens: 0,
            last: Instant::now(),
        }));
        let (s, progress) = (stream.clone(), call.progress.clone());
        let on_token = move |piece: &str| {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            s.pending.push_str(piece);
            s.tokens += 1;
            if s.last.elapsed() >= STREAM_EVERY {
                flush(&mut s, &progress, max_tokens);
            }
        };
        let finished = generator.generate(request, on_token).await;
        flush(
            &mut stream.lock().unwrap_or_else(|p| p.into_inner()),
            &call.progress,
            max_tokens,
        );
        let f = finished?;
        Ok(json!({
            "text": f.text,
            "prompt_tokens": f.prompt_tokens,
            "completion_tokens": f.completion_tokens,
            "finish_reason": f.finish_reason,
            "adapter": adapter.map(|e| json!({
                "name": e.manifest.manifest.name,
                "version": e.manifest.manifest.version,
                "content_hash": e.hash_hex(),
            })),
            "model": generator.model().map(|m| m.name),
            "seed": seed,
            "first_token_ms": f.first_token_ms,
            "total_ms": f.total_ms,
            "decode_tokens_per_s": f.decode_tokens_per_s,
        }))
    }

    /// The adapter `selector` names, from the registry; one given by content hash that
    /// is not here is fetched first from the nodes in `adapter_from` (or wherever the
    /// mesh says it is), verified on import.
    async fn adapter_here(
        self: Arc<Self>,
        selector: &str,
        call: &CommandCall,
    ) -> Result<Entry, CommandError> {
        let sel = selector.to_string();
        let found = self
            .blocking(move |r| r.find(&sel).first().map(|e| (*e).clone()))
            .await?;
        if let Some(e) = found {
            return Ok(e);
        }
        let Ok(hash) = parse_hash(selector) else {
            return Err(CommandError::bad_params(format!(
                "no adapter \"{selector}\" on this node (give its content hash to fetch it)"
            )));
        };
        call.progress.report(
            None,
            json!({"step": "fetch adapter", "content_hash": selector}),
        );
        let from = call
            .params
            .get("adapter_from")
            .cloned()
            .unwrap_or(json!([]));
        self.clone()
            .fetch(CommandCall {
                command: "genome/fetch".into(),
                params: json!({"content_hash": selector, "from": from}),
                caller: call.caller,
                correlation: call.correlation,
                progress: Progress::none(),
            })
            .await
            .map_err(|e| CommandError {
                code: e.code,
                message: format!("cannot get the adapter {selector}: {}", e.message),
            })?;
        self.blocking(move |r| r.get(&hash).cloned())
            .await?
            .ok_or_else(|| CommandError::failed("the fetched adapter is not in the registry"))
    }
}

/// Send the gathered text as one progress report.
fn flush(s: &mut Stream, progress: &Progress, max_tokens: u32) {
    if s.pending.is_empty() {
        return;
    }
    let text = std::mem::take(&mut s.pending);
    progress.report(
        Some(s.tokens as f32 / max_tokens.max(1) as f32),
        json!({"text": text, "tokens": s.tokens}),
    );
    s.last = Instant::now();
}
