//! The embedding model in a worker process (DESIGN decision 6: models do not live in the
//! node process). The node starts the worker when a text first needs embedding, talks
//! to it over a pipe, and stops it when it has been idle for a while; an out-of-memory
//! or a crash in model code ends the worker, never the node, and the next embedding
//! starts a fresh one.
//!
//! The worker is `grid worker embed --models DIR` (the same binary): it loads the model,
//! then answers frames on stdin with frames on stdout until stdin closes, so it also
//! ends when the node does. A pipe rather than a named socket: nothing on the
//! filesystem to clean up or guard, and only the node that started the worker can talk
//! to it.
//!
//! A frame is a 4-byte big-endian length and a postcard body: [`Request`] one way,
//! [`Response`] the other; requests are bounded by [`MAX_REQUEST`] bytes and
//! [`MAX_TEXTS`] texts, answers by [`MAX_RESPONSE`] bytes.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use grid::governor::{GovernorHandle, Job, JobKind, Priority};

use crate::embed::{EmbedError, Embedder, DIM, MINILM_ID};
use crate::pipe::{bad_data, read_frame, write_frame};
use crate::process::WorkerProcess;

/// The longest request frame, bytes.
pub const MAX_REQUEST: usize = 4 << 20;
/// The longest answer frame, bytes (1,024 vectors of 384 floats take 1.6 MB).
pub const MAX_RESPONSE: usize = 16 << 20;
/// Texts one request may carry.
pub const MAX_TEXTS: usize = 1024;
/// How long an unused model stays loaded (in the worker, or in process).
pub const IDLE_UNLOAD: Duration = Duration::from_secs(600);
/// The memory a worker with the embedding model is planned at (it measured 190–205 MB
/// resident: `docs/benchmarks.md`, genome table).
pub const WORKER_RAM: u64 = 256 << 20;
/// The worker's name in the governor's registry of loaded models.
pub const GOVERNOR_KEY: &str = "embedding-model";

/// An embedder that can give its model's memory back when it has not been used for a
/// while (the genome service asks every minute).
pub trait IdleUnload: Embedder {
    /// Let the model go if unused for `idle`; whether it was.
    fn unload_idle(&self, idle: Duration) -> bool;
}

/// What the node asks the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Embed these texts.
    Embed(Vec<String>),
}

/// What the worker answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// One vector per text, in order.
    Vectors(Vec<Vec<f32>>),
    /// The model failed on the request (the worker goes on).
    Failed(String),
}

/// The worker's side: answer requests from `input` on `output` with `embedder` until
/// `input` ends. A request that cannot be decoded ends the worker (its node is broken).
pub fn serve(
    embedder: &dyn Embedder,
    input: &mut impl Read,
    output: &mut impl Write,
) -> io::Result<()> {
    while let Some(frame) = read_frame(input, MAX_REQUEST)? {
        let Request::Embed(texts) = postcard::from_bytes(&frame).map_err(bad_data)?;
        let answer = if texts.len() > MAX_TEXTS {
            Response::Failed(format!(
                "{} texts in one request (at most {MAX_TEXTS})",
                texts.len()
            ))
        } else {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            match embedder.embed(&refs) {
                Ok(v) => Response::Vectors(v),
                Err(e) => Response::Failed(e.to_string()),
            }
        };
        write_frame(output, &postcard::to_stdvec(&answer).map_err(bad_data)?)?;
    }
    Ok(())
}

/// A running worker and when it was last asked.
struct Running {
    process: WorkerProcess,
    used: Instant,
}

/// The node's side: an [`Embedder`] whose model runs in a worker process, started on
/// first use and stopped by [`WorkerEmbedder::unload_idle`].
pub struct WorkerEmbedder {
    program: PathBuf,
    args: Vec<String>,
    running: Mutex<Option<Running>>,
    governor: Option<GovernorHandle>,
}

impl std::fmt::Debug for WorkerEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerEmbedder")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("running", &self.pid())
            .finish()
    }
}

impl WorkerEmbedder {
    /// Run `program args…` as the worker when a text first needs embedding.
    pub fn new(program: PathBuf, args: Vec<String>) -> WorkerEmbedder {
        WorkerEmbedder {
            program,
            args,
            running: Mutex::new(None),
            governor: None,
        }
    }

    /// Ask `governor` before starting a worker (a refusal fails the embedding with
    /// [`EmbedError::Refused`] and starts nothing), and keep the running worker in its
    /// registry of loaded models as [`GOVERNOR_KEY`] (idle, it may be evicted).
    #[must_use]
    pub fn with_governor(mut self, governor: GovernorHandle) -> WorkerEmbedder {
        self.governor = Some(governor);
        self
    }

    /// The worker's process id, while one runs.
    pub fn pid(&self) -> Option<u32> {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        r.as_ref().map(|r| r.process.child.id())
    }

    /// Stop the worker if it has not been asked anything for `idle`; whether it was.
    pub fn unload_idle(&self, idle: Duration) -> bool {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if r.as_ref().is_some_and(|w| w.used.elapsed() >= idle) {
            *r = None;
            tracing::info!("embedding worker stopped after {} s idle", idle.as_secs());
            return true;
        }
        false
    }

    fn start(&self) -> Result<Running, EmbedError> {
        // The load's grant is held while the worker starts; then the registry of loaded
        // models accounts for its memory.
        let _grant = match &self.governor {
            Some(g) => Some(
                g.admit(Job::new(
                    JobKind::Load,
                    "embedding model (worker)",
                    Priority::Interactive,
                    WORKER_RAM,
                ))
                .map_err(EmbedError::Refused)?,
            ),
            None => None,
        };
        let mut process = WorkerProcess::spawn(&self.program, &self.args)
            .map_err(|e| EmbedError::Runtime(format!("cannot start the embedding worker: {e}")))?;
        tracing::info!(pid = process.child.id(), "embedding worker started");
        if let Some(g) = &self.governor {
            // Started for a request, which is under way (`embed` ends the use).
            process.register(g, GOVERNOR_KEY, WORKER_RAM);
            g.begin_use(GOVERNOR_KEY);
        }
        Ok(Running {
            process,
            used: Instant::now(),
        })
    }

    /// Ask the running worker (starting one if none runs). A worker that was already
    /// running and turns out dead (killed while idle, say by the kernel's OOM killer) is
    /// replaced and asked once more; one that dies on this very request is not.
    fn ask_retrying(
        &self,
        running: &mut Option<Running>,
        request: &[u8],
        texts: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        loop {
            let fresh = running.is_none();
            if fresh {
                *running = Some(self.start()?);
            }
            let Some(w) = running.as_mut() else {
                return Err(EmbedError::Runtime("no embedding worker".into()));
            };
            match Self::ask(w, request) {
                Ok(Response::Vectors(v))
                    if v.len() == texts && v.iter().all(|x| x.len() == DIM) =>
                {
                    return Ok(v)
                }
                Ok(Response::Vectors(v)) => {
                    *running = None;
                    return Err(EmbedError::Runtime(format!(
                        "the embedding worker answered {} vectors for {texts} texts",
                        v.len()
                    )));
                }
                Ok(Response::Failed(e)) => return Err(EmbedError::Runtime(e)),
                Err(e) => {
                    // Crashed, killed or out of memory: gone.
                    *running = None;
                    tracing::warn!("the embedding worker stopped: {e}");
                    if !fresh {
                        continue;
                    }
                    return Err(EmbedError::Runtime(format!(
                        "the embedding worker stopped ({e}); the next request starts a new one"
                    )));
                }
            }
        }
    }

    /// One request and its answer on `w`.
    fn ask(w: &mut Running, request: &[u8]) -> Result<Response, String> {
        w.used = Instant::now();
        let p = &mut w.process;
        write_frame(&mut p.stdin, request).map_err(|e| e.to_string())?;
        let frame = read_frame(&mut p.stdout, MAX_RESPONSE)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| p.ended("it closed its output"))?;
        postcard::from_bytes(&frame).map_err(|e| format!("undecodable answer: {e}"))
    }
}

impl IdleUnload for WorkerEmbedder {
    fn unload_idle(&self, idle: Duration) -> bool {
        WorkerEmbedder::unload_idle(self, idle)
    }
}

impl Embedder for WorkerEmbedder {
    fn id(&self) -> &str {
        MINILM_ID
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_TEXTS) {
            let owned: Vec<String> = chunk.iter().map(|t| (*t).to_string()).collect();
            let request = postcard::to_stdvec(&Request::Embed(owned))
                .map_err(|e| EmbedError::Runtime(e.to_string()))?;
            if request.len() > MAX_REQUEST {
                return Err(EmbedError::Runtime(format!(
                    "{} bytes of text in one request (at most {MAX_REQUEST})",
                    request.len()
                )));
            }
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(g) = &self.governor {
                g.begin_use(GOVERNOR_KEY);
            }
            let answer = self.ask_retrying(&mut running, &request, chunk.len());
            if let Some(g) = &self.governor {
                g.end_use(GOVERNOR_KEY);
            }
            out.extend(answer?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
