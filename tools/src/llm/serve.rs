//! The worker's protocol loop: [`WorkerFrame::Ready`] once after loading, then for each
//! [`GenerateRequest`] a stream of [`WorkerFrame::Token`] frames ended by one
//! [`WorkerFrame::Done`], or [`WorkerFrame::Failed`] for a request (or adapter) that
//! cannot be served, after which the worker goes on with the next request.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use grid_genome::generate::protocol::{
    Finished, GenerateRequest, ModelInfo, WorkerFrame, MAX_PROMPT, MAX_REQUEST, MAX_TOKENS,
};
use grid_genome::pipe::{read_frame, write_value};

use super::adapter_cache::AdapterCache;
use super::forward::Cache;
use super::model::{Model, WeightFormat};
use super::sample::Sampler;
use super::tokenizer::ChatTokenizer;

/// Prompt tokens run through the model at once: a long prompt goes in chunks, so the
/// attention scores of one step stay small (heads × chunk × context floats).
pub const PREFILL_CHUNK: usize = 256;

/// Attention temporaries alive at once per prompt chunk (scores, masked scores,
/// softmax), measured: docs/llm.md.
const SCRATCH_COPIES: u64 = 3;

/// Memory one token of context takes during a request: its f32 keys and values in every
/// layer, plus the attention scratch of a prompt chunk (heads × chunk floats per context
/// token, [`SCRATCH_COPIES`] of them). For SmolLM2-135M: 46 KB + 28 KB.
#[must_use]
pub fn bytes_per_context_token(c: &super::config::LlamaConfig) -> u64 {
    let kv = c.layers * c.kv_heads * c.head_dim * 2 * 4;
    let scratch = c.heads * PREFILL_CHUNK * 4;
    (kv as u64).saturating_add((scratch as u64).saturating_mul(SCRATCH_COPIES))
}

/// Why a request ended without `Done`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request (or its adapter) cannot be served: say so and go on.
    #[error("{0}")]
    Refused(String),
    /// Writing to the node failed: the worker ends.
    #[error("writing a frame: {0}")]
    Pipe(#[from] io::Error),
}

fn refused(e: impl std::fmt::Display) -> RequestError {
    RequestError::Refused(e.to_string())
}

/// A loaded model with its tokenizer and adapters.
pub struct Worker {
    /// The model.
    pub model: Model,
    /// Its tokenizer and chat template.
    pub tokenizer: ChatTokenizer,
    /// Adapters loaded for earlier requests.
    pub adapters: AdapterCache,
    /// What `Ready` says.
    pub info: ModelInfo,
}

impl Worker {
    /// Load the model at `path`, its projections held as `format` says.
    pub fn load(path: &Path, format: WeightFormat) -> Result<Worker> {
        let start = Instant::now();
        let model = Model::load(path, format)?;
        let tokenizer = ChatTokenizer::from_gguf(&model.metadata, model.vocab)
            .map_err(|e| anyhow::anyhow!("{}: tokenizer: {e}", path.display()))?;
        let name = if model.config.name.is_empty() {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            model.config.name.clone()
        };
        let info = ModelInfo {
            name,
            architecture: "llama".into(),
            context_tokens: u32::try_from(model.config.context).unwrap_or(u32::MAX),
            bytes_per_context_token: bytes_per_context_token(&model.config),
            load_ms: start.elapsed().as_secs_f64() * 1e3,
        };
        Ok(Worker {
            model,
            tokenizer,
            adapters: AdapterCache::default(),
            info,
        })
    }

    /// Serve requests from `input` on `output` until `input` ends.
    pub fn serve(&mut self, mut input: impl Read, mut output: impl Write) -> Result<()> {
        write_value(&mut output, &WorkerFrame::Ready(self.info.clone()))
            .context("sending Ready")?;
        while let Some(body) = read_frame(&mut input, MAX_REQUEST).context("reading a request")? {
            let start = Instant::now();
            let result = match postcard::from_bytes::<GenerateRequest>(&body) {
                Ok(req) => self.generate(&req, start, &mut output),
                Err(e) => Err(refused(format!("bad request: {e}"))),
            };
            match result {
                Ok(()) => {}
                Err(RequestError::Refused(why)) => {
                    write_value(&mut output, &WorkerFrame::Failed(why)).context("sending Failed")?
                }
                Err(e @ RequestError::Pipe(_)) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Run one request, streaming its frames to `out`.
    pub fn generate(
        &mut self,
        req: &GenerateRequest,
        start: Instant,
        out: &mut impl Write,
    ) -> Result<(), RequestError> {
        if req.max_tokens == 0 || req.max_tokens > MAX_TOKENS {
            return Err(refused(format!(
                "max_tokens {} (1..={MAX_TOKENS})",
                req.max_tokens
            )));
        }
        if req.prompt.len() > MAX_PROMPT {
            return Err(refused(format!(
                "the prompt is {} bytes (at most {MAX_PROMPT})",
                req.prompt.len()
            )));
        }
        if !req.temperature.is_finite() {
            return Err(refused(format!("temperature {}", req.temperature)));
        }
        let adapter = match &req.adapter {
            None => None,
            Some(a) => Some(
                self.adapters
                    .get(
                        &a.hash,
                        &a.dir,
                        &self.model.config,
                        self.model.adapter_form(),
                    )
                    .map_err(|e| refused(format!("adapter {}: {e}", a.hash)))?
                    .0,
            ),
        };
        let ids = self.tokenizer.encode_chat(&req.prompt).map_err(refused)?;
        let context = self.model.config.context;
        if ids.len() >= context {
            return Err(refused(format!(
                "the prompt is {} tokens after the chat template; the context holds {context} \
                 (prompt and reply)",
                ids.len()
            )));
        }
        let budget = (req.max_tokens as usize).min(context - ids.len());
        if let Some(limit) = req.context_limit {
            if ids.len() + budget > limit as usize {
                return Err(refused(format!(
                    "the prompt is {} tokens after the chat template and max_tokens is {}: \
                     more than the {limit} tokens of context this request was granted \
                     memory for",
                    ids.len(),
                    req.max_tokens
                )));
            }
        }
        let sampler = Sampler::new(req.temperature, req.seed);
        let model = &self.model;
        let mut cache = Cache::new(model, ids.len() + budget);
        let mut decoder = self.tokenizer.tokenizer.decode_stream(false);

        let mut logits = None;
        for chunk in ids.chunks(PREFILL_CHUNK) {
            logits = Some(
                model
                    .forward(chunk, &mut cache, adapter.as_deref())
                    .map_err(|e| refused(format!("model: {e}")))?,
            );
        }
        let mut logits = logits.ok_or_else(|| refused("the prompt has no tokens"))?;
        let mut text = String::new();
        let mut first: Option<Instant> = None;
        let (mut completion, mut frames) = (0u32, 0u32);
        let finish_reason = loop {
            let values = logits
                .to_vec1::<f32>()
                .map_err(|e| refused(format!("model: {e}")))?;
            let next = sampler.pick(&values, cache.len()) as u32;
            first.get_or_insert_with(Instant::now);
            if self.tokenizer.is_stop(next) {
                break "stop";
            }
            completion += 1;
            if let Some(piece) = decoder
                .step(next)
                .map_err(|e| refused(format!("decoding: {e}")))?
            {
                if !piece.is_empty() {
                    text.push_str(&piece);
                    frames += 1;
                    write_value(out, &WorkerFrame::Token(piece))?;
                }
            }
            if completion as usize >= budget {
                break "length";
            }
            logits = model
                .forward(&[next], &mut cache, adapter.as_deref())
                .map_err(|e| refused(format!("model: {e}")))?;
        };
        let end = Instant::now();
        let decode_s = first.map_or(0.0, |f| (end - f).as_secs_f64());
        let decode_tokens_per_s = if decode_s > 0.0 && completion > 1 {
            f64::from(completion - 1) / decode_s
        } else {
            0.0
        };
        let done = Finished {
            text,
            prompt_tokens: ids.len() as u32,
            completion_tokens: completion,
            token_frames: frames,
            finish_reason: finish_reason.into(),
            adapter: req.adapter.as_ref().map(|a| a.hash.clone()),
            first_token_ms: first.map_or(0.0, |f| (f - start).as_secs_f64() * 1e3),
            total_ms: (end - start).as_secs_f64() * 1e3,
            decode_tokens_per_s,
        };
        write_value(out, &WorkerFrame::Done(done))?;
        Ok(())
    }
}
