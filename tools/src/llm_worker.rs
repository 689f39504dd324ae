//! Text generation in a worker process: `grid worker generate --model FILE.gguf`
//! (cargo feature `llm`).
//!
//! Like `grid worker embed` (see `grid_genome::worker`), the worker loads its model once,
//! then answers frames on stdin with frames on stdout until stdin closes. A frame is a
//! 4-byte big-endian length and a postcard body: a [`GenerateRequest`] one way, and for
//! each request a run of [`GenerateFrame::Token`] frames ended by one
//! [`GenerateFrame::Done`] (or [`GenerateFrame::Failed`]) the other way.
//!
//! The model is run by the `mistralrs` crate (0.8.1) on the CPU, from a local GGUF file
//! only. `GgufModelBuilder` is given the file's directory as its "model id": when that
//! path exists on disk, mistralrs 0.8.1 lists and reads files there and never builds a
//! Hugging Face request (`pipeline::hf::{list_repo_files, get_file}`); the tokenizer and
//! chat template come from the GGUF metadata. No Hugging Face token is read
//! ([`TokenSource::None`]).
//!
//! Sampling: mistralrs 0.8.1 has no per-request seed (its engine seeds one RNG with 0
//! when it starts and shares it among requests). So the worker asks mistralrs for greedy
//! decoding and does the sampling itself in a logits processor ([`SeededSampler`]): the
//! draw for each step comes from a ChaCha8 stream keyed by the request's seed and the
//! length of the context, which makes the text a function of (prompt, seed,
//! temperature, max_tokens) alone. Temperature 0 means greedy decoding.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use mistralrs::{
    CustomLogitsProcessor, GgufModelBuilder, Model, RequestBuilder, Response, TextMessageRole,
    TokenSource,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The longest request frame, bytes.
pub const MAX_REQUEST: usize = 1 << 20;
/// The longest answer frame, bytes.
pub const MAX_RESPONSE: usize = 4 << 20;
/// The most tokens one request may ask for.
pub const MAX_TOKENS: u32 = 4096;

/// What the node asks the worker: generate a reply to `prompt` (sent as one user turn
/// through the model's chat template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The user's text.
    pub prompt: String,
    /// At most this many new tokens (1..=[`MAX_TOKENS`]).
    pub max_tokens: u32,
    /// Sampling temperature; 0 (or less) is greedy decoding.
    pub temperature: f32,
    /// The seed of the sampler: the same request with the same seed gives the same text.
    pub seed: u64,
}

/// What the worker answers, several frames per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GenerateFrame {
    /// The text of the next token(s), as soon as the model produced it.
    Token(String),
    /// The request is finished.
    Done(Finished),
    /// The request failed (the worker goes on with the next one).
    Failed(String),
}

/// The final frame of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// The whole generated text (the `Token` frames concatenated).
    pub text: String,
    /// Tokens in the prompt after the chat template (as mistralrs counted them).
    pub prompt_tokens: u32,
    /// Tokens generated (as mistralrs counted them).
    pub completion_tokens: u32,
    /// `Token` frames sent.
    pub token_frames: u32,
    /// Why generation stopped: "stop" (end of turn), "length" (max_tokens), ...
    pub finish_reason: String,
    /// From sending the request to the first token, milliseconds.
    pub first_token_ms: f64,
    /// From sending the request to the end, milliseconds.
    pub total_ms: f64,
    /// Tokens after the first per second of time after the first (decode speed).
    pub decode_tokens_per_s: f64,
}

/// Write one frame: a 4-byte big-endian length, then the postcard body of `value`.
pub fn write_frame<T: Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    let body = postcard::to_stdvec(value).map_err(invalid)?;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&body)?;
    out.flush()
}

/// Read one frame of at most `max` bytes and decode it; `None` at a clean end of input.
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
    max: usize,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (at most {max})"),
        ));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    postcard::from_bytes(&body).map(Some).map_err(invalid)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Temperature sampling with a per-request seed, as a mistralrs logits processor.
///
/// mistralrs runs it on the logits of each step (after its own penalties, none here)
/// and then, with the greedy sampler the worker asks for, takes the argmax. This
/// processor draws the token itself from softmax(logits / temperature) and returns
/// logits that are 0 for that token and -inf for every other, so the argmax is the
/// drawn token. The draw uses a ChaCha8 stream chosen by `seed` and the context length,
/// so it does not depend on what else the engine ran before.
pub struct SeededSampler {
    /// The request's seed.
    pub seed: u64,
    /// The request's temperature (> 0).
    pub temperature: f32,
}

impl SeededSampler {
    /// The index drawn from softmax(logits / temperature) for a context of `context_len`.
    pub fn pick(&self, logits: &[f32], context_len: usize) -> usize {
        let t = self.temperature.max(1e-6);
        let max = logits
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> = logits
            .iter()
            .map(|&l| {
                if l.is_finite() {
                    f64::from((l - max) / t).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(context_len as u64);
        // 53 random bits: a uniform draw in [0, 1).
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut target = u * total;
        let mut last = 0;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 {
                last = i;
                if target < *w {
                    return i;
                }
                target -= w;
            }
        }
        last
    }
}

impl CustomLogitsProcessor for SeededSampler {
    fn apply(
        &self,
        logits: &mistralrs::Tensor,
        context: &[u32],
    ) -> mistralrs::Result<mistralrs::Tensor> {
        let values: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let chosen = self.pick(&values, context.len());
        let mut out = vec![f32::NEG_INFINITY; values.len()];
        out[chosen] = 0.0;
        mistralrs::Tensor::from_vec(out, values.len(), logits.device())
    }
}

/// Load the GGUF at `path` with mistralrs on the CPU, from the local file only.
pub async fn load(path: &Path) -> Result<Model> {
    let path = path
        .canonicalize()
        .with_context(|| format!("model file {}", path.display()))?;
    if !path.is_file() {
        return Err(anyhow!("{} is not a file", path.display()));
    }
    let dir = path
        .parent()
        .and_then(Path::to_str)
        .ok_or_else(|| anyhow!("{}: no directory name in UTF-8", path.display()))?;
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| anyhow!("{}: no file name in UTF-8", path.display()))?;
    GgufModelBuilder::new(dir, vec![file])
        .with_force_cpu()
        .with_token_source(TokenSource::None)
        // One request at a time; no prefix cache, so repeated prompts are timed honestly.
        .with_max_num_seqs(1)
        .with_prefix_cache_n(None)
        .build()
        .await
        .with_context(|| format!("loading {} with mistralrs", path.display()))
}

/// Run one request on `model`, writing its frames to `out`.
pub async fn generate(model: &Model, req: &GenerateRequest, out: &mut impl Write) -> Result<()> {
    if req.max_tokens == 0 || req.max_tokens > MAX_TOKENS {
        write_frame(
            out,
            &GenerateFrame::Failed(format!("max_tokens {} (1..={MAX_TOKENS})", req.max_tokens)),
        )?;
        return Ok(());
    }
    let mut builder = RequestBuilder::new()
        .add_message(TextMessageRole::User, &req.prompt)
        .set_deterministic_sampler()
        .set_sampler_max_len(req.max_tokens as usize);
    if req.temperature > 0.0 {
        builder = builder.add_logits_processor(Arc::new(SeededSampler {
            seed: req.seed,
            temperature: req.temperature,
        }));
    }

    let start = Instant::now();
    let mut stream = match model.stream_chat_request(builder).await {
        Ok(s) => s,
        Err(e) => {
            write_frame(out, &GenerateFrame::Failed(format!("mistralrs: {e}")))?;
            return Ok(());
        }
    };
    let mut text = String::new();
    let mut first: Option<Instant> = None;
    let mut token_frames = 0u32;
    let mut finish_reason = None;
    let mut usage = None;
    while let Some(response) = stream.next().await {
        match response {
            Response::Chunk(chunk) => {
                if chunk.usage.is_some() {
                    usage = chunk.usage;
                }
                for choice in chunk.choices {
                    if let Some(piece) = choice.delta.content.filter(|p| !p.is_empty()) {
                        first.get_or_insert_with(Instant::now);
                        token_frames += 1;
                        text.push_str(&piece);
                        write_frame(out, &GenerateFrame::Token(piece))?;
                    }
                    if choice.finish_reason.is_some() {
                        finish_reason = choice.finish_reason;
                    }
                }
                if finish_reason.is_some() {
                    break;
                }
            }
            Response::Done(done) => {
                // Only for non-streaming requests; take its reason if it comes.
                if let Some(c) = done.choices.into_iter().next() {
                    finish_reason = Some(c.finish_reason);
                }
                usage = Some(done.usage);
                break;
            }
            Response::ModelError(e, _) => {
                write_frame(out, &GenerateFrame::Failed(format!("model error: {e}")))?;
                return Ok(());
            }
            Response::InternalError(e) | Response::ValidationError(e) => {
                write_frame(out, &GenerateFrame::Failed(format!("mistralrs: {e}")))?;
                return Ok(());
            }
            _ => {}
        }
    }
    let end = Instant::now();
    let (prompt_tokens, completion_tokens) = match &usage {
        Some(u) => (u.prompt_tokens as u32, u.completion_tokens as u32),
        None => (0, token_frames),
    };
    let first_token_ms = first.map_or(0.0, |f| (f - start).as_secs_f64() * 1e3);
    let decode_s = first.map_or(0.0, |f| (end - f).as_secs_f64());
    let decode_tokens_per_s = if decode_s > 0.0 && completion_tokens > 1 {
        f64::from(completion_tokens - 1) / decode_s
    } else {
        0.0
    };
    write_frame(
        out,
        &GenerateFrame::Done(Finished {
            text,
            prompt_tokens,
            completion_tokens,
            token_frames,
            finish_reason: finish_reason.unwrap_or_else(|| "ended".into()),
            first_token_ms,
            total_ms: (end - start).as_secs_f64() * 1e3,
            decode_tokens_per_s,
        }),
    )?;
    Ok(())
}

/// `grid worker generate --model FILE`: load the model, then answer requests from stdin
/// on stdout until stdin ends. A request that cannot be decoded ends the worker.
pub fn run(model_path: &Path) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let model = runtime.block_on(load(model_path))?;
    let (mut input, mut output) = (io::stdin().lock(), io::stdout().lock());
    while let Some(req) = read_frame::<GenerateRequest>(&mut input, MAX_REQUEST)? {
        runtime.block_on(generate(&model, &req, &mut output))?;
    }
    Ok(())
}
