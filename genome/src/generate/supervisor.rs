//! The node's side of the text-generation worker: started when a request first needs
//! it (with the governor's leave), asked one request at a time behind a short queue,
//! stopped when idle or evicted, and replaced when it dies.
//!
//! A worker that dies mid-request (killed, out of memory, a crash in model code) fails
//! that request with [`GenerateError::WorkerDied`]; the node is untouched and the next
//! request starts a fresh worker. One found dead before its request began (killed
//! while idle) is replaced at once and the request goes on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grid::commands::CommandError;
use grid::frame::ErrorCode;
use grid::governor::{GovernorHandle, Job, JobKind, Priority, Refusal};

use super::protocol::{
    Finished, GenerateRequest, ModelInfo, WorkerFrame, ADAPTER_CACHE_BYTES, MAX_PROMPT,
    MAX_REQUEST, MAX_RESPONSE, MAX_TOKENS,
};
use crate::pipe::{read_value, write_frame};
use crate::process::WorkerProcess;

/// The worker's name in the governor's registry of loaded models.
pub const GOVERNOR_KEY: &str = "language-model";
/// Requests that may wait behind the one being generated; more are refused as busy, so
/// the caller places them on another node.
pub const QUEUE: usize = 4;
/// How long an unused worker keeps its model loaded.
pub const IDLE_UNLOAD: Duration = Duration::from_secs(600);
/// Memory one request needs on top of the loaded model whatever its length (activations
/// of one prompt chunk, sampling, the text); its context comes on top:
/// [`request_plan`].
pub const REQUEST_BASE_RAM: u64 = 32 << 20;
/// Tokens the chat template adds around a prompt, at most (ChatML: about 10).
pub const TEMPLATE_TOKENS: u64 = 64;

/// How the worker holds a model's projection weights (`grid worker generate
/// --weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// The worker chooses from the file (`--weights auto`): its own kernels on the
    /// file's blocks when they are Q4_1/Q8_0 (the file's size in memory, and the
    /// fastest), else f16 up to [`F16_MAX_FILE`], else quantized.
    Auto,
    /// Dequantized to f16 at load: about 3× the speed of the quantized kernels on a CPU
    /// without them, and about 3× the memory of a 4-bit file.
    F16,
    /// As quantized in the file: least memory, slowest.
    Quantized,
}

impl Weights {
    /// The worker's `--weights` value.
    #[must_use]
    pub fn arg(self) -> &'static str {
        match self {
            Weights::Auto => "auto",
            Weights::F16 => "f16",
            Weights::Quantized => "quantized",
        }
    }
}

/// Model files up to this size are run with f16 weights (a 4-bit file grows about 3×:
/// under 1 GiB); larger ones stay quantized, so a big model never takes an 8 GB
/// laptop's memory for speed.
pub const F16_MAX_FILE: u64 = 320 << 20;

/// How a model file of `model_bytes` is run.
#[must_use]
pub fn weights_for(_model_bytes: u64) -> Weights {
    // The worker reads the file's block types, which the node does not: it picks, and
    // the plan covers what it may pick (`planned_ram`).
    Weights::Auto
}

/// What the worker with a model of `model_bytes` on disk is planned at. Measured for
/// SmolLM2-135M Q4_1 (98 MB; docs/llm.md): 320 MB peak with f16 weights, 245–275 MB
/// quantized, for short prompts (each request's context is planned on its own:
/// [`request_plan`]), plus the most its kept adapters may take
/// ([`ADAPTER_CACHE_BYTES`]).
#[must_use]
pub fn planned_ram(model_bytes: u64, weights: Weights) -> u64 {
    let weights_bytes = match weights {
        Weights::F16 => model_bytes.saturating_mul(3),
        Weights::Quantized => model_bytes.saturating_mul(2),
        // As much as the fallback it may take (native needs about the file's size).
        Weights::Auto if model_bytes <= F16_MAX_FILE => model_bytes.saturating_mul(3),
        Weights::Auto => model_bytes.saturating_mul(2),
    };
    weights_bytes
        .saturating_add(192 << 20)
        .saturating_add(ADAPTER_CACHE_BYTES)
}

/// What the governor is asked for one request, and the context it then covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPlan {
    /// Tokens of context (prompt after the template, plus reply) the memory covers.
    pub context_tokens: u32,
    /// Memory asked for, bytes.
    pub ram: u64,
}

/// Plan a request of `prompt_bytes` and `max_tokens` on `model`. A token holds at least
/// one byte of text with the byte-level tokenizers these models use, so the prompt
/// bytes plus [`TEMPLATE_TOKENS`] bound its tokens from above: the plan may be several
/// times the need for English text, never less (a 2 KB prompt with 256 new tokens on
/// SmolLM2-135M: about 200 MiB), and the worker refuses anything beyond it.
#[must_use]
pub fn request_plan(model: &ModelInfo, prompt_bytes: usize, max_tokens: u32) -> RequestPlan {
    let tokens = (prompt_bytes as u64)
        .saturating_add(TEMPLATE_TOKENS)
        .saturating_add(u64::from(max_tokens))
        .min(u64::from(model.context_tokens));
    RequestPlan {
        context_tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
        ram: REQUEST_BASE_RAM.saturating_add(tokens.saturating_mul(model.bytes_per_context_token)),
    }
}

/// Why a generation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The governor would not let the model load or the request run now.
    #[error("{code}: {0}", code = .0.code())]
    Refused(#[from] Refusal),
    /// Too many requests are already waiting for this node's model.
    #[error("{QUEUE} requests already wait for this node's model; another node may take it")]
    QueueFull,
    /// The request is malformed or out of bounds.
    #[error("{0}")]
    BadRequest(String),
    /// The worker could not be started or did not load its model.
    #[error("cannot start the generation worker: {0}")]
    Start(String),
    /// The model refused or failed the request (the worker goes on).
    #[error("the model failed: {0}")]
    Model(String),
    /// The caller went away (cancelled); the worker was stopped.
    #[error("cancelled; the generation was stopped")]
    Cancelled,
    /// The worker ended during the request.
    #[error("the generation worker stopped mid-request ({0}); this node is fine and the next request starts a new worker")]
    WorkerDied(String),
}

impl From<GenerateError> for CommandError {
    fn from(e: GenerateError) -> CommandError {
        match e {
            GenerateError::Refused(r) => r.into(),
            e @ GenerateError::QueueFull => CommandError {
                code: ErrorCode::Busy,
                message: e.to_string(),
            },
            GenerateError::BadRequest(m) => CommandError::bad_params(m),
            e => CommandError::failed(e.to_string()),
        }
    }
}

/// A running worker.
struct Running {
    process: WorkerProcess,
    info: ModelInfo,
    used: Instant,
}

/// How to start the worker.
#[derive(Debug, Clone)]
struct Spawn {
    program: PathBuf,
    args: Vec<String>,
    ram: u64,
    governor: Option<GovernorHandle>,
}

/// The generation worker of a node (one model, one request at a time).
pub struct Generator {
    spawn: Spawn,
    running: Arc<tokio::sync::Mutex<Option<Running>>>,
    waiting: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("spawn", &self.spawn)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Tells the blocking side to stop when the request's future is dropped (its caller
/// cancelled or went away).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Gives the queue place back however the waiting ends.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Generator {
    /// Run `program args…` as the worker, planned at `ram` bytes while loaded.
    #[must_use]
    pub fn new(program: PathBuf, args: Vec<String>, ram: u64) -> Generator {
        Generator {
            spawn: Spawn {
                program,
                args,
                ram,
                governor: None,
            },
            running: Arc::new(tokio::sync::Mutex::new(None)),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Ask `governor` before loading the model and before each request, and keep the
    /// loaded worker in its registry as [`GOVERNOR_KEY`] (idle, it may be evicted).
    #[must_use]
    pub fn with_governor(mut self, governor: GovernorHandle) -> Generator {
        self.spawn.governor = Some(governor);
        self
    }

    /// The worker's process id while one runs and is not busy (tests).
    pub fn pid(&self) -> Option<u32> {
        self.running
            .try_lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.process.child.id()))
    }

    /// The loaded model, while a worker runs and is not busy.
    pub fn model(&self) -> Option<ModelInfo> {
        self.running
            .try_lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.info.clone()))
    }

    /// Stop the worker if it has not been asked anything for `idle` (and is not busy);
    /// whether it was.
    pub fn unload_idle(&self, idle: Duration) -> bool {
        let Ok(mut r) = self.running.try_lock() else {
            return false;
        };
        if r.as_ref().is_some_and(|w| w.used.elapsed() >= idle) {
            *r = None;
            tracing::info!("generation worker stopped after {} s idle", idle.as_secs());
            return true;
        }
        false
    }

    /// Generate: wait for the model (at most [`QUEUE`] requests wait), start the worker
    /// if none runs, and call `on_token` with each piece of text as it comes.
    pub async fn generate(
        &self,
        request: GenerateRequest,
        on_token: impl FnMut(&str) + Send + 'static,
    ) -> Result<Finished, GenerateError> {
        check(&request)?;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= QUEUE {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(GenerateError::QueueFull);
        }
        let queued = Waiting(self.waiting.clone());
        let mut running = self.running.clone().lock_owned().await;
        drop(queued);
        let spawn = self.spawn.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(stop.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(g) = &spawn.governor {
                g.begin_use(GOVERNOR_KEY);
            }
            let r = spawn.ask_retrying(&mut running, request, on_token, &stop);
            if let Some(g) = &spawn.governor {
                g.end_use(GOVERNOR_KEY);
            }
            r
        })
        .await
        .map_err(|e| GenerateError::WorkerDied(format!("the request's task ended: {e}")))?
    }
}

/// Whether the request is within bounds.
fn check(r: &GenerateRequest) -> Result<(), GenerateError> {
    if r.prompt.is_empty() || r.prompt.len() > MAX_PROMPT {
        return Err(GenerateError::BadRequest(format!(
            "the prompt must be 1 to {MAX_PROMPT} bytes"
        )));
    }
    if r.max_tokens == 0 || r.max_tokens > MAX_TOKENS {
        return Err(GenerateError::BadRequest(format!(
            "max_tokens must be 1 to {MAX_TOKENS}"
        )));
    }
    if !r.temperature.is_finite() || !(0.0..=2.0).contains(&r.temperature) {
        return Err(GenerateError::BadRequest(
            "temperature must be between 0 and 2".into(),
        ));
    }
    encode(r).map(|_| ())
}

/// The request's frame, if it is within bounds.
fn encode(r: &GenerateRequest) -> Result<Vec<u8>, GenerateError> {
    let body = postcard::to_stdvec(r).map_err(|e| GenerateError::BadRequest(e.to_string()))?;
    if body.len() > MAX_REQUEST {
        return Err(GenerateError::BadRequest(format!(
            "the request is {} bytes (at most {MAX_REQUEST})",
            body.len()
        )));
    }
    Ok(body)
}

/// How a request on one worker went.
enum Outcome {
    Finished(Finished),
    /// The worker was gone before anything came back: a fresh one may try.
    GoneBefore(String),
}

impl Spawn {
    /// Start the worker and wait for its model (the load's grant is held meanwhile; then
    /// the registry of loaded models accounts for it).
    fn start(&self) -> Result<Running, GenerateError> {
        let _grant = match &self.governor {
            Some(g) => Some(g.admit(Job::new(
                JobKind::Load,
                "language model (worker)",
                Priority::Interactive,
                self.ram,
            ))?),
            None => None,
        };
        let started = Instant::now();
        let mut process =
            WorkerProcess::spawn(&self.program, &self.args).map_err(GenerateError::Start)?;
        let info = match read_value::<WorkerFrame>(&mut process.stdout, MAX_RESPONSE) {
            Ok(Some(WorkerFrame::Ready(info))) => info,
            Ok(Some(f)) => return Err(GenerateError::Start(format!("it said {f:?} before Ready"))),
            Ok(None) => {
                let _ = process.child.wait();
                let status = process.ended("it closed its output");
                return Err(GenerateError::Start(format!(
                    "{status} before its model was loaded; its error is in the node's log"
                )));
            }
            Err(e) => return Err(GenerateError::Start(e.to_string())),
        };
        tracing::info!(
            pid = process.child.id(),
            model = %info.name,
            load_ms = info.load_ms,
            start_ms = started.elapsed().as_millis() as u64,
            "generation worker ready"
        );
        if let Some(g) = &self.governor {
            process.register(g, GOVERNOR_KEY, self.ram);
        }
        Ok(Running {
            process,
            info,
            used: Instant::now(),
        })
    }

    /// Run the request on the worker (starting one if none runs); a worker that was
    /// already running and is found dead before answering anything is replaced once.
    fn ask_retrying(
        &self,
        running: &mut Option<Running>,
        mut request: GenerateRequest,
        mut on_token: impl FnMut(&str),
        stop: &AtomicBool,
    ) -> Result<Finished, GenerateError> {
        loop {
            let fresh = running.is_none();
            if fresh {
                *running = Some(self.start()?);
            }
            let Some(w) = running.as_mut() else {
                return Err(GenerateError::Start("no worker".into()));
            };
            // The request's context is planned from the loaded model's figures, and the
            // worker holds it to what was granted.
            let plan = request_plan(&w.info, request.prompt.len(), request.max_tokens);
            let _grant = match &self.governor {
                Some(g) => Some(g.admit(Job::new(
                    JobKind::Inference,
                    "generate text",
                    Priority::Interactive,
                    plan.ram,
                ))?),
                None => None,
            };
            request.context_limit = Some(plan.context_tokens);
            let body = encode(&request)?;
            match ask(w, &body, &mut on_token, stop) {
                Ok(Outcome::Finished(f)) => return Ok(f),
                Ok(Outcome::GoneBefore(why)) if !fresh => {
                    tracing::warn!("the generation worker had stopped ({why}); starting another");
                    *running = None;
                }
                Ok(Outcome::GoneBefore(why)) => {
                    *running = None;
                    return Err(GenerateError::WorkerDied(why));
                }
                Err(e) => {
                    if matches!(e, GenerateError::WorkerDied(_) | GenerateError::Cancelled) {
                        *running = None;
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// One request and its frames on `w`.
fn ask(
    w: &mut Running,
    body: &[u8],
    on_token: &mut impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<Outcome, GenerateError> {
    w.used = Instant::now();
    let p = &mut w.process;
    if let Err(e) = write_frame(&mut p.stdin, body) {
        return Ok(Outcome::GoneBefore(p.ended(e.to_string())));
    }
    let mut answered = false;
    loop {
        let frame = match read_value::<WorkerFrame>(&mut p.stdout, MAX_RESPONSE) {
            Ok(Some(f)) => f,
            Ok(None) => {
                // Give the kernel a moment to reap it, for the status in the message.
                std::thread::sleep(Duration::from_millis(20));
                let why = p.ended("it closed its output");
                return match answered {
                    false => Ok(Outcome::GoneBefore(why)),
                    true => Err(GenerateError::WorkerDied(why)),
                };
            }
            Err(e) => return Err(GenerateError::WorkerDied(p.ended(e.to_string()))),
        };
        answered = true;
        w.used = Instant::now();
        if stop.load(Ordering::SeqCst) {
            // Nobody waits for the rest: stop the worker rather than let it finish.
            tracing::info!("generation cancelled; stopping its worker");
            return Err(GenerateError::Cancelled);
        }
        match frame {
            WorkerFrame::Token(t) => on_token(&t),
            WorkerFrame::Done(f) => return Ok(Outcome::Finished(f)),
            WorkerFrame::Failed(why) => return Err(GenerateError::Model(why)),
            WorkerFrame::Ready(_) => {
                return Err(GenerateError::WorkerDied(
                    "it said Ready again mid-request".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
