//! `genome/ask` (what `grid ask` runs on the node for its own user): find the skill a
//! need describes, choose where the job runs, and run it there.
//!
//! 1. Search skills by the need's meaning (this node, its catalog, then the mesh, as the
//!    patience allows) and take the best adapter.
//! 2. Place the job ([`grid::proto::placement`]): here if this node takes compute jobs
//!    and its governor has room, else the trusted compute peers, least loaded first.
//! 3. Run `ai/generate` on the first choice with the prompt and the adapter (its content
//!    hash, and the nodes that hold it, so the chosen node fetches it verified if it does
//!    not hold it). A node that is busy (its governor refused), has no such command, or
//!    cannot serve it (a `grid` built without inference) is skipped for the next.
//!
//! `dry_run` stops after step 2 and answers the plan: adapter, node, why, and the
//! alternatives.

use std::sync::Arc;
use std::time::Duration;

use grid::commands::{CommandCall, CommandError, Progress};
use serde_json::{json, Value};

use super::{param_str, Genome};

/// RAM a generation job is planned at: the small model's weights, its context and the
/// worker (SmolLM2-135M Q4_1 is 98 MB on disk).
pub const GENERATE_NEED_MB: u32 = 512;
/// The command that generates text on a compute node.
pub const GENERATE_COMMAND: &str = "ai/generate";
/// How long one node gets to generate.
const GENERATE_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest prompt.
const MAX_PROMPT: usize = 64 * 1024;

impl Genome {
    pub(super) async fn ask(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let need = param_str(&call, "need")?.trim().to_string();
        if need.is_empty() || need.len() > 2000 {
            return Err(CommandError::bad_params(
                "need must be 1 to 2000 characters",
            ));
        }
        let dry_run = call
            .params
            .get("dry_run")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let prompt = match call.params.get("prompt").and_then(Value::as_str) {
            Some(p) if p.len() <= MAX_PROMPT => p.to_string(),
            Some(_) => {
                return Err(CommandError::bad_params(format!(
                    "the prompt is longer than {MAX_PROMPT} bytes"
                )))
            }
            None if dry_run => String::new(),
            None => return Err(CommandError::bad_params("missing \"prompt\"")),
        };
        let patience = call
            .params
            .get("patience")
            .and_then(Value::as_str)
            .unwrap_or("quick")
            .to_string();
        call.progress
            .report(Some(0.0), json!({"step": "search", "need": need}));
        let found = self
            .clone()
            .search(CommandCall {
                command: "genome/search".into(),
                params: json!({"query": need, "limit": 5, "patience": patience}),
                caller: call.caller,
                correlation: call.correlation,
                progress: Progress::none(),
            })
            .await?;
        let Some(adapter) = found.as_array().and_then(|a| a.first()).cloned() else {
            return Err(CommandError::failed(format!(
                "no skill matches \"{need}\" (try other words, or --patience thorough)"
            )));
        };
        let holders: Vec<String> = adapter["providers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        call.progress.report(
            Some(0.2),
            json!({"step": "place", "adapter": adapter["name"]}),
        );
        let places = self
            .handle
            .place_compute(GENERATE_NEED_MB)
            .await
            .map_err(|e| CommandError::failed(e.to_string()))?;
        if places.is_empty() {
            return Err(CommandError::failed(
                "no node known takes compute jobs: set [compute] enabled = true on a node \
                 (a grid built with `--features llm`) and trust it (`grid trust`)",
            ));
        }
        let plan = |i: usize| {
            let (node, why) = &places[i];
            let node = node.to_string();
            let has_it = holders.contains(&node);
            json!({
                "node": node,
                "here": places[i].0 == self.handle.destination(),
                "why": why,
                "adapter_fetched_from": if has_it { json!(null) } else { json!(holders) },
            })
        };
        let adapter_summary = json!({
            "name": adapter["name"],
            "version": adapter["version"],
            "content_hash": adapter["content_hash"],
            "score": adapter["score"],
            "providers": holders,
        });
        if dry_run {
            return Ok(json!({
                "need": need,
                "adapter": adapter_summary,
                "plan": plan(0),
                "alternatives": (1..places.len()).map(plan).collect::<Vec<_>>(),
            }));
        }
        let params = json!({
            "prompt": prompt,
            "max_tokens": call.params.get("max_tokens").cloned().unwrap_or(json!(256)),
            "temperature": call.params.get("temperature").cloned().unwrap_or(json!(0.7)),
            "seed": call.params.get("seed").cloned().unwrap_or(Value::Null),
            "adapter": adapter["content_hash"],
            "adapter_from": holders,
        });
        let mut skipped = Vec::new();
        for (i, (node, _)) in places.iter().enumerate() {
            call.progress.report(
                Some(0.3),
                json!({"step": "generate", "node": node.to_string()}),
            );
            let options = grid::api::ExecOptions::timeout(GENERATE_TIMEOUT);
            // The chosen node's tokens stream on to this command's caller.
            let (progress, at) = (call.progress.clone(), node.to_string());
            let stream = move |fraction: Option<f32>, mut detail: Value| {
                detail["step"] = json!("generate");
                detail["node"] = json!(at);
                progress.report(fraction.map(|f| 0.3 + 0.7 * f), detail);
            };
            match self
                .handle
                .execute_with_progress(*node, GENERATE_COMMAND, &params, options, stream)
                .await
            {
                Ok(result) => {
                    return Ok(json!({
                        "need": need,
                        "adapter": adapter_summary,
                        "plan": plan(i),
                        "skipped": skipped,
                        "result": result,
                    }))
                }
                Err(e) if e.is_elsewhere() => {
                    skipped.push(json!({"node": node.to_string(), "why": e.to_string()}))
                }
                Err(e) => return Err(CommandError::failed(format!("{node} failed the job: {e}"))),
            }
        }
        Err(CommandError::failed(format!(
            "no node ran {GENERATE_COMMAND}: {}",
            skipped
                .iter()
                .map(|s| format!(
                    "{}: {}",
                    s["node"].as_str().unwrap_or("?"),
                    s["why"].as_str().unwrap_or("?")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}
