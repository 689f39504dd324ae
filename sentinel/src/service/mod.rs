//! Pipelines on a node: the `sentinel/*` commands that `grid pipeline` runs, for the
//! node's own user (no ACL rule opens them to peers).
//!
//! - `sentinel/run` `{pipeline, inputs, detach}`: check it, give it a handle, run it (at
//!   most [`AT_ONCE`] at a time; the others queue), and answer the outcome — or the handle
//!   at once with `detach`.
//! - `sentinel/status` `{handle}`, `sentinel/list`, `sentinel/cancel` `{handle}` (stops
//!   it before its next step), `sentinel/resume` `{handle, detach}` (runs it again,
//!   taking the steps its journal says completed instead of running them again).
//!
//! Each run lives in `<state>/sentinel/<handle>/`: `pipeline.json`, `inputs.json`,
//! `journal.jsonl` (completed steps) and `status.json` (written when it ends). Its steps
//! are announced as `sentinel:<handle>:step` events and its end as
//! `sentinel:<handle>:complete` or `sentinel:<handle>:error`.

mod journal;
mod mesh;
mod shell;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use grid::api::NodeHandle;
use grid::commands::{CommandCall, CommandError};
use grid::state::StateDir;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};

use crate::engine::{Outcome, Run, Status};
use crate::format::{parse, Pipeline, StepKind};
use journal::FileJournal;
use mesh::NodeMesh;

/// Pipelines running at once (the origin design's 4); the others wait their turn.
pub const AT_ONCE: usize = 4;
/// Runs remembered in memory (the rest are on disk).
const REMEMBERED: usize = 256;

/// A run the node knows of now.
struct Live {
    name: String,
    status: Mutex<&'static str>,
    cancel: Arc<AtomicBool>,
    done_steps: AtomicUsize,
    total_steps: usize,
}

impl Live {
    fn status(&self) -> &'static str {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queued or running.
    fn active(&self) -> bool {
        matches!(self.status(), "queued" | "running")
    }
}

/// The pipelines of one node.
pub struct Sentinel {
    handle: NodeHandle,
    root: PathBuf,
    live: Mutex<HashMap<String, Arc<Live>>>,
    slots: Arc<Semaphore>,
    /// `shell` steps are turned on (`[sentinel] shell = true`).
    shell: bool,
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::failed(e.to_string())
}

/// Steps in a pipeline, nested ones included (a loop's once), for progress.
fn count(steps: &[crate::format::Step]) -> usize {
    steps
        .iter()
        .map(|s| {
            1 + match &s.kind {
                StepKind::Condition(c) => count(&c.then).max(count(&c.otherwise)),
                StepKind::Loop(l) => count(&l.steps),
                StepKind::Parallel(p) => p.branches.iter().map(|b| count(b)).sum(),
                _ => 0,
            }
        })
        .sum()
}

fn handle_param(call: &CommandCall) -> Result<String, CommandError> {
    let h = call
        .params
        .get("handle")
        .and_then(Value::as_str)
        .ok_or_else(|| CommandError::bad_params("missing \"handle\""))?;
    if h.len() != 16 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CommandError::bad_params(format!(
            "\"{h}\" is not a pipeline handle (16 hex digits; `grid pipeline list` shows them)"
        )));
    }
    Ok(h.to_ascii_lowercase())
}

/// Read and check a pipeline given as JSON text or as a JSON object.
fn pipeline_of(v: Option<&Value>) -> Result<(Pipeline, String), CommandError> {
    let text = match v {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => return Err(CommandError::bad_params("missing \"pipeline\" (its JSON)")),
    };
    let p = parse(&text).map_err(|e| CommandError::bad_params(e.to_string()))?;
    crate::validate(&p).map_err(|problems| {
        CommandError::bad_params(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    Ok((p, text))
}

impl Sentinel {
    fn dir(&self, handle: &str) -> PathBuf {
        self.root.join(handle)
    }

    fn live_run(&self, handle: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(handle)
            .cloned()
    }

    fn status_of(&self, handle: &str, live: &Live) -> Value {
        let total = live.total_steps.max(1);
        let done = live.done_steps.load(Ordering::Relaxed).min(total);
        json!({"handle": handle, "name": live.name,
               "status": live.status(),
               "progress": done * 100 / total})
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, CommandError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(failed)?
            .map_err(failed)
    }

    /// Start (or resume) the run `handle` of `pipeline`; the receiver gets its outcome.
    fn launch(
        self: &Arc<Self>,
        handle: String,
        pipeline: Pipeline,
        inputs: BTreeMap<String, Value>,
        allow_shell: bool,
    ) -> Result<oneshot::Receiver<Value>, CommandError> {
        let live = Arc::new(Live {
            name: pipeline.name.clone(),
            status: Mutex::new("queued"),
            cancel: Arc::new(AtomicBool::new(false)),
            done_steps: AtomicUsize::new(0),
            total_steps: count(&pipeline.steps),
        });
        {
            let mut map = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(&handle).is_some_and(|l| l.active()) {
                return Err(failed(format!("pipeline {handle} is running already")));
            }
            if map.len() >= REMEMBERED {
                map.retain(|_, l| l.active());
            }
            map.insert(handle.clone(), live.clone());
        }
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        tokio::spawn(async move {
            let _slot = me.slots.clone().acquire_owned().await;
            *live.status.lock().unwrap_or_else(|p| p.into_inner()) = "running";
            let dir = me.dir(&handle);
            let path = dir.join("journal.jsonl");
            let journal = match tokio::task::spawn_blocking(move || FileJournal::open(&path)).await
            {
                Ok(Ok(j)) => j,
                Ok(Err(e)) => {
                    return me
                        .finish(&handle, &live, failed_outcome(e.to_string()), tx)
                        .await
                }
                Err(e) => {
                    return me
                        .finish(&handle, &live, failed_outcome(e.to_string()), tx)
                        .await
                }
            };
            let mesh = NodeMesh {
                handle: me.handle.clone(),
                run: handle.clone(),
                live: live.clone(),
            };
            let env = std::env::vars().collect::<HashMap<_, _>>();
            let mut run = Run::new(&mesh, &journal, inputs, env, live.cancel.clone());
            run.allow_shell = allow_shell;
            let outcome = run.start(&pipeline).await;
            let _ = tokio::task::spawn_blocking(move || journal.close()).await;
            me.finish(&handle, &live, outcome, tx).await;
        });
        Ok(rx)
    }

    /// Record how a run ended, announce it and answer whoever waits.
    async fn finish(&self, handle: &str, live: &Live, o: Outcome, tx: oneshot::Sender<Value>) {
        let status = match o.status {
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        };
        let v = json!({"handle": handle, "name": live.name, "status": status,
                       "error": o.error, "progress": if status == "completed" { 100 } else {
                           live.done_steps.load(Ordering::Relaxed) * 100 / live.total_steps.max(1) },
                       "steps": o.steps});
        let path = self.dir(handle).join("status.json");
        let text = v.to_string();
        let _ = tokio::task::spawn_blocking(move || std::fs::write(path, text)).await;
        // Only now is the run no longer live: `sentinel/status` answers from the live run
        // while it is active and from status.json after, so flipping first left a moment
        // when it answered "no finished pipeline" for a run that had just completed.
        *live.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
        let event = if status == "completed" {
            "complete"
        } else {
            "error"
        };
        let _ = self
            .handle
            .emit(
                &format!("sentinel:{handle}:{event}"),
                json!({"status": status, "error": v["error"]}),
            )
            .await;
        let _ = tx.send(v);
    }

    async fn run(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let (pipeline, text) = pipeline_of(call.params.get("pipeline"))?;
        let inputs: BTreeMap<String, Value> = match call.params.get("inputs") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m.clone().into_iter().collect(),
            Some(_) => return Err(CommandError::bad_params("\"inputs\" is an object")),
        };
        let mut id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let handle = hex::encode(id);
        let dir = self.dir(&handle);
        let inputs_text = Value::Object(inputs.clone().into_iter().collect()).to_string();
        Self::blocking(move || {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("pipeline.json"), text)?;
            std::fs::write(dir.join("inputs.json"), inputs_text)
        })
        .await?;
        self.answer(call, handle, pipeline, inputs).await
    }

    async fn answer(
        self: &Arc<Self>,
        call: CommandCall,
        handle: String,
        pipeline: Pipeline,
        inputs: BTreeMap<String, Value>,
    ) -> Result<Value, CommandError> {
        // Shell steps only where the owner turned them on, and only for the owner.
        let allow_shell = self.shell && call.caller == Some(self.handle.identity());
        let rx = self.launch(handle.clone(), pipeline, inputs, allow_shell)?;
        if call.params.get("detach").and_then(Value::as_bool) == Some(true) {
            return Ok(json!({"handle": handle, "status": "running"}));
        }
        rx.await
            .map_err(|_| failed("the run ended without an outcome"))
    }

    async fn resume(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let handle = handle_param(&call)?;
        let dir = self.dir(&handle);
        let (text, inputs) = Self::blocking(move || {
            Ok((
                std::fs::read_to_string(dir.join("pipeline.json"))?,
                std::fs::read_to_string(dir.join("inputs.json"))?,
            ))
        })
        .await
        .map_err(|e| failed(format!("no pipeline {handle} here: {}", e.message)))?;
        let (pipeline, _) = pipeline_of(Some(&Value::String(text)))?;
        let inputs: BTreeMap<String, Value> = serde_json::from_str(&inputs).map_err(failed)?;
        self.answer(call, handle, pipeline, inputs).await
    }

    async fn status(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let handle = handle_param(&call)?;
        if let Some(l) = self.live_run(&handle).filter(|l| l.active()) {
            return Ok(self.status_of(&handle, &l));
        }
        let path = self.dir(&handle).join("status.json");
        let text = Self::blocking(move || std::fs::read_to_string(path))
            .await
            .map_err(|_| failed(format!("no finished pipeline {handle} here")))?;
        serde_json::from_str(&text).map_err(failed)
    }

    async fn cancel(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let handle = handle_param(&call)?;
        let live = self
            .live_run(&handle)
            .filter(|l| l.active())
            .ok_or_else(|| failed(format!("pipeline {handle} is not running")))?;
        live.cancel.store(true, Ordering::Relaxed);
        Ok(json!({"handle": handle, "cancelled": true}))
    }

    async fn list(self: Arc<Self>, _call: CommandCall) -> Result<Value, CommandError> {
        let root = self.root.clone();
        let finished: Vec<(String, Value)> = Self::blocking(move || {
            let mut out = Vec::new();
            let Ok(dirs) = std::fs::read_dir(&root) else {
                return Ok(out);
            };
            for d in dirs.flatten().take(1000) {
                let name = d.file_name().to_string_lossy().into_owned();
                let status = std::fs::read_to_string(d.path().join("status.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok());
                let v = match status {
                    Some(s) => json!({"handle": name, "name": s["name"], "status": s["status"], "progress": s["progress"]}),
                    None => json!({"handle": name, "status": "interrupted"}),
                };
                out.push((name, v));
            }
            Ok(out)
        })
        .await?;
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: BTreeMap<String, Value> = finished.into_iter().collect();
        for (h, l) in live.iter() {
            if l.active() {
                all.insert(h.clone(), self.status_of(h, l));
            }
        }
        Ok(Value::Array(all.into_values().collect()))
    }
}

fn failed_outcome(error: String) -> Outcome {
    Outcome {
        status: Status::Failed,
        error: Some(error),
        steps: BTreeMap::new(),
    }
}

/// Offer the `sentinel/*` commands on a node; runs live under `<state>/sentinel`.
pub async fn run(handle: NodeHandle, state: StateDir) {
    let s = Arc::new(Sentinel {
        handle: handle.clone(),
        root: state.root().join("sentinel"),
        live: Mutex::new(HashMap::new()),
        slots: Arc::new(Semaphore::new(AT_ONCE)),
        shell: state
            .load_or_create_config()
            .is_ok_and(|c| c.sentinel.shell),
    });
    macro_rules! command {
        ($name:expr, $desc:expr, $method:ident) => {{
            let g = s.clone();
            handle
                .register_command($name, $desc, move |call| {
                    let g = g.clone();
                    async move { g.$method(call).await }
                })
                .await
        }};
    }
    let registered = async {
        command!(
            "sentinel/run",
            "run a pipeline (JSON) here, its steps where they fit",
            run
        )?;
        command!(
            "sentinel/status",
            "a pipeline run's status, progress and steps",
            status
        )?;
        command!(
            "sentinel/cancel",
            "stop a pipeline run before its next step",
            cancel
        )?;
        command!(
            "sentinel/resume",
            "run an interrupted pipeline again from its journal",
            resume
        )?;
        command!("sentinel/list", "the pipeline runs this node knows", list)
    };
    if let Err(e) = registered.await {
        tracing::warn!("cannot offer the sentinel commands: {e}");
    }
}
