//! Running a pipeline: the steps in order, each where it fits, through a [`Mesh`] (on a
//! node: its API; in tests: a fake one). The engine decides, the mesh moves things.
//!
//! Where a command or `llm` step runs: its `target`, or the nodes its `placement` allows,
//! in the mesh's order. A node that is busy (its governor refused) or gone (no path, link
//! closed, no answer in time) is left for the next node — a lost peer is not the step's
//! failure. When the step itself fails, or no node could take it, it is tried again up to
//! its `retries`, after 1 s, 2 s, 4 s … (at most 60 s). A step that completed is kept in
//! the [`Journal`] under its key (its id, behind the ids and passes of the loops around
//! it: `each#2/grade`), so a resumed run takes its record instead of running it again.
//! Cancelling stops the run before its next step; the mesh stops the steps running on
//! peers (on a node: `grid/cancel` to each).

mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::condition::evaluate;
use crate::format::{
    CommandStep, ConditionStep, EmitStep, LlmStep, LoopStep, ParallelStep, Pipeline, Placement,
    SentinelStep, ShellStep, Step, StepKind, WatchStep, DEFAULT_WATCH, MAX_ITERATIONS,
};
use crate::interpolate::{as_text, interpolate, interpolate_str};
use state::{record, State, View};
pub use state::{Journal, MemoryJournal, NoJournal};

/// How long a command step waits for its answer when it gives no timeout.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest wait between retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why the mesh could not do what a step asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The node will not take the job now (its governor refused): try another.
    #[error("busy: {0}")]
    Busy(String),
    /// The node is gone or unreachable: place the step elsewhere.
    #[error("lost: {0}")]
    Lost(String),
    /// The node ran the step and it failed.
    #[error("{0}")]
    Failed(String),
}

/// Where a step should run.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    /// A node hash or routing hint.
    Target(String),
    /// Whatever node fits these needs.
    Placement(Placement),
    /// The runner's node.
    Here,
}

/// What the engine needs from the world.
pub trait Mesh: Send + Sync {
    /// The nodes a step may run on, in the order to try.
    fn candidates(
        &self,
        place: &Where,
        command: &str,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// Run `command` on `node`.
    fn execute(
        &self,
        node: &str,
        command: &str,
        params: &Value,
        timeout: Duration,
    ) -> impl Future<Output = Result<Value, MeshError>> + Send;
    /// Emit an event from the runner's node.
    fn emit(&self, event: &str, payload: &Value)
        -> impl Future<Output = Result<(), String>> + Send;
    /// Wait for an event matching `pattern` (from `node` only, if given).
    fn watch(
        &self,
        pattern: &str,
        node: Option<&str>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Value, MeshError>> + Send;
    /// Wait (between retries).
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
    /// Resolve when `timeout` has passed (a pipeline's `timeout`, or a composite step's).
    fn deadline(&self, timeout: Duration) -> impl Future<Output = ()> + Send;
    /// Run a program on the runner's machine (a `shell` step its owner allowed):
    /// `{"code", "stdout", "stderr"}`, or why not (a non-zero exit is a failure).
    fn shell(
        &self,
        cmd: &str,
        args: &[String],
        dir: Option<&str>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Value, MeshError>> + Send;
    /// A step started or ended (for progress and `sentinel:<handle>:step` events).
    fn step_event(&self, key: &str, record: &Value);
    /// Something a person following the run wants to know about step `key` (a node
    /// passed over, a retry, a step taken from the journal): `sentinel:<handle>:log`.
    fn log(&self, key: &str, message: &str);
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every step completed.
    Completed,
    /// A step failed (after its retries).
    Failed,
    /// It was cancelled.
    Cancelled,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Why, when it did not complete.
    pub error: Option<String>,
    /// Each step's last record, by id.
    pub steps: BTreeMap<String, Value>,
}

/// A failure that ends the run (or the branch).
#[derive(Debug)]
enum Stop {
    /// Failed, with the step that failed named.
    Failed(String),
    /// Failed in the step at hand (its id is added by [`Run::step`]).
    Here(String),
    Cancelled,
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Result<(), Stop>> + Send + 'a>>;

/// One run of a pipeline.
pub struct Run<'m, M: Mesh> {
    mesh: &'m M,
    journal: &'m dyn Journal,
    state: Mutex<State>,
    cancelled: Arc<AtomicBool>,
    /// Shell steps may run (the node's owner turned them on).
    pub allow_shell: bool,
}

impl<'m, M: Mesh> Run<'m, M> {
    /// A run of a pipeline with `inputs` (defaults filled in by [`Self::start`]) and the
    /// environment `env` (what `{{env.…}}` may read).
    pub fn new(
        mesh: &'m M,
        journal: &'m dyn Journal,
        inputs: BTreeMap<String, Value>,
        env: std::collections::HashMap<String, String>,
        cancelled: Arc<AtomicBool>,
    ) -> Self {
        Run {
            mesh,
            journal,
            state: Mutex::new(State {
                inputs,
                env,
                ..State::default()
            }),
            cancelled,
            allow_shell: false,
        }
    }

    /// Run `pipeline` to its end.
    pub async fn start(&self, pipeline: &Pipeline) -> Outcome {
        let missing: Vec<&String> = {
            let mut st = self.lock();
            for (name, input) in &pipeline.inputs {
                if let (false, Some(d)) = (st.inputs.contains_key(name), &input.default) {
                    st.inputs.insert(name.clone(), d.clone());
                }
            }
            pipeline
                .inputs
                .keys()
                .filter(|n| !st.inputs.contains_key(*n))
                .collect()
        };
        let result = if missing.is_empty() {
            let steps = self.steps(&pipeline.steps, String::new());
            match pipeline.timeout {
                None => steps.await,
                Some(t) => {
                    // The deadline is polled first: a run past it stops at once; steps
                    // running on peers are no longer waited for.
                    let deadline = std::pin::pin!(self.mesh.deadline(t));
                    match futures_util::future::select(deadline, steps).await {
                        futures_util::future::Either::Left(_) => {
                            self.cancelled.store(true, Ordering::Relaxed);
                            Err(Stop::Failed(format!(
                                "the pipeline's timeout ({}) passed",
                                humantime::format_duration(t)
                            )))
                        }
                        futures_util::future::Either::Right((r, _)) => r,
                    }
                }
            }
        } else {
            Err(Stop::Failed(format!(
                "the input(s) {} are needed (give them as --input name=value)",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        };
        let steps = self
            .lock()
            .records
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (status, error) = match result {
            Ok(()) => (Status::Completed, None),
            Err(Stop::Cancelled) => (Status::Cancelled, Some("cancelled".into())),
            Err(Stop::Failed(e) | Stop::Here(e)) => (Status::Failed, Some(e)),
        };
        Outcome {
            status,
            error,
            steps,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn interpolate(&self, v: &Value) -> Result<Value, Stop> {
        interpolate(v, &View(&self.state)).map_err(|e| Stop::Here(e.to_string()))
    }

    fn text(&self, s: &str) -> Result<String, Stop> {
        interpolate_str(s, &View(&self.state))
            .map(|v| as_text(&v))
            .map_err(|e| Stop::Here(e.to_string()))
    }

    fn holds(&self, condition: &str) -> Result<bool, Stop> {
        evaluate(condition, &View(&self.state)).map_err(|e| Stop::Here(e.to_string()))
    }

    fn keep(&self, id: &str, key: &str, rec: Value, completed: bool) {
        if completed {
            self.journal.record(key, &rec);
        }
        self.mesh.step_event(key, &rec);
        self.lock().records.insert(id.to_string(), rec);
    }

    fn steps<'a>(&'a self, steps: &'a [Step], prefix: String) -> Boxed<'a> {
        Box::pin(async move {
            for step in steps {
                self.step(step, &prefix).await?;
            }
            Ok(())
        })
    }

    async fn step(&self, step: &Step, prefix: &str) -> Result<(), Stop> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        let key = format!("{prefix}{}", step.id);
        if let Some(done) = self.journal.completed(&key) {
            // Completed before a restart: its record, not a second run.
            self.mesh
                .log(&key, "completed before the restart: taken from the journal");
            self.lock().records.insert(step.id.clone(), done);
            return Ok(());
        }
        let work = async {
            match &step.kind {
                StepKind::Command(c) => self.command(step, &key, c).await,
                StepKind::Llm(l) => self.llm(step, &key, l).await,
                StepKind::Emit(e) => self.emit(step, &key, e).await,
                StepKind::Watch(w) => self.watch(step, &key, w).await,
                StepKind::Condition(c) => self.condition(step, &key, c, prefix).await,
                StepKind::Loop(l) => self.looping(step, &key, l, prefix).await,
                StepKind::Parallel(p) => self.parallel(step, &key, p, prefix).await,
                StepKind::Sentinel(s) => self.nested(step, &key, s).await,
                StepKind::Shell(s) => self.shell(step, &key, s).await,
            }
        };
        let composite = matches!(
            step.kind,
            StepKind::Condition(_)
                | StepKind::Loop(_)
                | StepKind::Parallel(_)
                | StepKind::Sentinel(_)
        );
        let result = match step.timeout {
            // A composite step's timeout covers all its inner steps: when it passes, the
            // step fails and what runs inside it is no longer waited for. (The other
            // steps apply theirs where they wait: on the peer's answer, the event.)
            Some(t) if composite => {
                let deadline = std::pin::pin!(self.mesh.deadline(t));
                let work = std::pin::pin!(work);
                match futures_util::future::select(deadline, work).await {
                    futures_util::future::Either::Left(_) => Err(Stop::Here(format!(
                        "the step's timeout ({}) passed",
                        humantime::format_duration(t)
                    ))),
                    futures_util::future::Either::Right((r, _)) => r,
                }
            }
            _ => work.await,
        };
        result.map_err(|e| match e {
            Stop::Here(why) => {
                let rec = json!({"status": "failed", "error": why, "attempts": 0});
                self.keep(&step.id, &key, rec, false);
                Stop::Failed(format!("step \"{}\": {why}", step.id))
            }
            other => other,
        })
    }

    /// Run `command` where `place` allows, with the step's retries.
    async fn remote(
        &self,
        step: &Step,
        key: &str,
        place: Where,
        command: &str,
        params: Value,
    ) -> Result<(), Stop> {
        let timeout = step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT);
        let mut attempts = 0;
        let mut backoff = Duration::from_secs(1);
        loop {
            attempts += 1;
            let mut why = Vec::new();
            let nodes = self
                .mesh
                .candidates(&place, command)
                .await
                .map_err(Stop::Here)?;
            for node in &nodes {
                if self.cancelled.load(Ordering::Relaxed) {
                    return Err(Stop::Cancelled);
                }
                match self.mesh.execute(node, command, &params, timeout).await {
                    Ok(output) => {
                        let rec = record("completed", output, Some(node), attempts);
                        self.keep(&step.id, key, rec, true);
                        return Ok(());
                    }
                    Err(e @ (MeshError::Busy(_) | MeshError::Lost(_))) => {
                        self.mesh
                            .log(key, &format!("{node} passed over ({e}); trying the next"));
                        why.push(format!("{node}: {e}"));
                    }
                    Err(MeshError::Failed(e)) => {
                        why.push(format!("{node}: {e}"));
                        break;
                    }
                }
            }
            if self.cancelled.load(Ordering::Relaxed) {
                return Err(Stop::Cancelled);
            }
            let error = if nodes.is_empty() {
                nowhere(&place, command)
            } else {
                why.join("; ")
            };
            if attempts > step.retries {
                let rec = json!({"status": "failed", "error": error, "attempts": attempts});
                self.keep(&step.id, key, rec, false);
                return Err(Stop::Failed(format!("step \"{}\": {error}", step.id)));
            }
            self.mesh.log(
                key,
                &format!(
                    "attempt {attempts} of {} failed ({error}); trying again in {}s",
                    step.retries + 1,
                    backoff.as_secs()
                ),
            );
            self.mesh.sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn command(&self, step: &Step, key: &str, c: &CommandStep) -> Result<(), Stop> {
        let params = self.interpolate(&c.params)?;
        let place = match (&c.target, &c.placement) {
            (Some(t), _) => Where::Target(self.text(t)?),
            (None, Some(p)) => Where::Placement(p.clone()),
            (None, None) => Where::Here,
        };
        self.remote(step, key, place, &c.command, params).await
    }

    async fn llm(&self, step: &Step, key: &str, l: &LlmStep) -> Result<(), Stop> {
        let mut params = json!({
            "prompt": self.text(&l.prompt)?,
            "max_tokens": l.max_tokens,
            "temperature": l.temperature,
            "seed": l.seed,
        });
        if let Some(a) = &l.adapter {
            params["adapter"] = json!(self.text(a)?);
        }
        if let Some(s) = &l.skill {
            // A skill by description: `genome/ask` finds and places it on the runner.
            params["need"] = json!(self.text(s)?);
            return self
                .remote(step, key, Where::Here, "genome/ask", params)
                .await;
        }
        let place = match (&l.target, &l.placement) {
            (Some(t), _) => Where::Target(self.text(t)?),
            (None, Some(p)) => Where::Placement(p.clone()),
            (None, None) => Where::Placement(Placement {
                least_loaded: true,
                ..Placement::default()
            }),
        };
        self.remote(step, key, place, "ai/generate", params).await
    }

    async fn emit(&self, step: &Step, key: &str, e: &EmitStep) -> Result<(), Stop> {
        let event = self.text(&e.event)?;
        let payload = self.interpolate(&e.payload)?;
        self.mesh
            .emit(&event, &payload)
            .await
            .map_err(Stop::Failed)?;
        let rec = record("completed", json!({"event": event}), None, 1);
        self.keep(&step.id, key, rec, true);
        Ok(())
    }

    async fn watch(&self, step: &Step, key: &str, w: &WatchStep) -> Result<(), Stop> {
        let node = w.node.as_deref().map(|n| self.text(n)).transpose()?;
        let timeout = step.timeout.unwrap_or(DEFAULT_WATCH);
        match self.mesh.watch(&w.event, node.as_deref(), timeout).await {
            Ok(event) => {
                self.keep(&step.id, key, record("completed", event, None, 1), true);
                Ok(())
            }
            Err(e) => {
                let rec = json!({"status": "failed", "error": e.to_string(), "attempts": 1});
                self.keep(&step.id, key, rec, false);
                Err(Stop::Failed(format!("step \"{}\": {e}", step.id)))
            }
        }
    }

    async fn condition(
        &self,
        step: &Step,
        key: &str,
        c: &ConditionStep,
        prefix: &str,
    ) -> Result<(), Stop> {
        let held = self.holds(&c.when)?;
        let branch = if held { &c.then } else { &c.otherwise };
        self.steps(branch, prefix.to_string()).await?;
        self.keep(
            &step.id,
            key,
            record("completed", json!({"held": held}), None, 1),
            true,
        );
        Ok(())
    }

    async fn looping(
        &self,
        step: &Step,
        key: &str,
        l: &LoopStep,
        prefix: &str,
    ) -> Result<(), Stop> {
        let cap = l
            .count
            .or(l.max_iterations)
            .unwrap_or(MAX_ITERATIONS)
            .min(MAX_ITERATIONS);
        let mut passes = 0;
        let mut met = false;
        while passes < cap {
            self.lock().loops.insert(step.id.clone(), passes);
            if let Some(c) = &l.while_ {
                if !self.holds(c)? {
                    met = true;
                    break;
                }
            }
            self.steps(&l.steps, format!("{prefix}{}#{passes}/", step.id))
                .await?;
            passes += 1;
            if let Some(c) = &l.until {
                if self.holds(c)? {
                    met = true;
                    break;
                }
            }
        }
        if l.until.is_some() && !met {
            let error = format!("its condition did not hold in {passes} passes");
            let rec = json!({"status": "failed", "error": error, "attempts": passes});
            self.keep(&step.id, key, rec, false);
            return Err(Stop::Failed(format!("loop \"{}\": {error}", step.id)));
        }
        self.keep(
            &step.id,
            key,
            record("completed", json!({"passes": passes}), None, 1),
            true,
        );
        Ok(())
    }

    async fn parallel(
        &self,
        step: &Step,
        key: &str,
        p: &ParallelStep,
        prefix: &str,
    ) -> Result<(), Stop> {
        let failed = AtomicBool::new(false);
        let branches = p.branches.iter().map(|b| {
            let failed = &failed;
            async move {
                let mut out = Ok(());
                for s in b {
                    if p.fail_fast && failed.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Err(e) = self.step(s, prefix).await {
                        failed.store(true, Ordering::Relaxed);
                        out = Err(e);
                        break;
                    }
                }
                out
            }
        });
        let results = futures_util::future::join_all(branches).await;
        let errors: Vec<String> = results
            .iter()
            .filter_map(|r| match r {
                Err(Stop::Failed(e)) => Some(e.clone()),
                _ => None,
            })
            .collect();
        if results.iter().any(|r| matches!(r, Err(Stop::Cancelled))) {
            return Err(Stop::Cancelled);
        }
        if !errors.is_empty() {
            let rec = json!({"status": "failed", "error": errors.join("; "), "attempts": 1});
            self.keep(&step.id, key, rec, false);
            return Err(Stop::Failed(errors.join("; ")));
        }
        let rec = record("completed", json!({"branches": p.branches.len()}), None, 1);
        self.keep(&step.id, key, rec, true);
        Ok(())
    }

    async fn nested(&self, step: &Step, key: &str, s: &SentinelStep) -> Result<(), Stop> {
        let mut inputs = BTreeMap::new();
        for (k, v) in &s.inputs {
            inputs.insert(k.clone(), self.interpolate(v)?);
        }
        let env = self.lock().env.clone();
        let inner = Run {
            mesh: self.mesh,
            journal: &PrefixJournal {
                inner: self.journal,
                prefix: format!("{key}>"),
            },
            state: Mutex::new(State {
                inputs,
                env,
                ..State::default()
            }),
            cancelled: self.cancelled.clone(),
            allow_shell: self.allow_shell,
        };
        let outcome = Box::pin(inner.start(&s.pipeline)).await;
        let output = json!({"status": outcome.status, "steps": outcome.steps});
        match outcome.status {
            Status::Completed => {
                self.keep(&step.id, key, record("completed", output, None, 1), true);
                Ok(())
            }
            Status::Cancelled => Err(Stop::Cancelled),
            Status::Failed => {
                let error = outcome.error.unwrap_or_default();
                let rec = json!({"status": "failed", "error": error, "output": output});
                self.keep(&step.id, key, rec, false);
                Err(Stop::Failed(format!(
                    "pipeline \"{}\": {error}",
                    s.pipeline.name
                )))
            }
        }
    }

    async fn shell(&self, step: &Step, key: &str, s: &ShellStep) -> Result<(), Stop> {
        if !self.allow_shell {
            let error = "shell steps are off here: they run only in pipelines the node's own \
                         user starts, once its config says [sentinel] shell = true";
            let rec = json!({"status": "failed", "error": error, "attempts": 0});
            self.keep(&step.id, key, rec, false);
            return Err(Stop::Failed(format!("step \"{}\": {error}", step.id)));
        }
        let cmd = self.text(&s.cmd)?;
        let args = s
            .args
            .iter()
            .map(|a| self.text(a))
            .collect::<Result<Vec<_>, _>>()?;
        let dir = s.working_dir.as_deref().map(|d| self.text(d)).transpose()?;
        let timeout = step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT);
        let mut attempts = 0;
        let mut backoff = Duration::from_secs(1);
        loop {
            attempts += 1;
            match self.mesh.shell(&cmd, &args, dir.as_deref(), timeout).await {
                Ok(out) => {
                    self.keep(
                        &step.id,
                        key,
                        record("completed", out, None, attempts),
                        true,
                    );
                    return Ok(());
                }
                Err(e) if attempts > step.retries => {
                    let rec =
                        json!({"status": "failed", "error": e.to_string(), "attempts": attempts});
                    self.keep(&step.id, key, rec, false);
                    return Err(Stop::Failed(format!("step \"{}\": {e}", step.id)));
                }
                Err(_) => {
                    self.mesh.sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// A nested pipeline's journal: the outer one, under the nesting step's key.
struct PrefixJournal<'a> {
    inner: &'a dyn Journal,
    prefix: String,
}

impl Journal for PrefixJournal<'_> {
    fn completed(&self, key: &str) -> Option<Value> {
        self.inner.completed(&format!("{}{key}", self.prefix))
    }
    fn record(&self, key: &str, record: &Value) {
        self.inner.record(&format!("{}{key}", self.prefix), record);
    }
}

/// Why no node was found for a step, naming the need nobody meets.
fn nowhere(place: &Where, command: &str) -> String {
    match place {
        Where::Placement(Placement {
            ram_mb: Some(mb), ..
        }) => format!(
            "placement.ram_mb: neither this node nor any compute offer heard can grant {mb} MB \
             now (see `grid governor` here and the offers in `grid catalog`)"
        ),
        Where::Placement(Placement { gpu: true, .. }) => {
            format!("placement.gpu: no node with a GPU that offers {command} is known")
        }
        _ => format!("no node can run {command} here"),
    }
}

#[cfg(test)]
mod tests;
