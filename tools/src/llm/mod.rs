//! Text generation in a worker process: `grid worker generate --model FILE.gguf`
//! (cargo feature `llm`).
//!
//! Like `grid worker embed`, the worker loads its model once, says
//! [`WorkerFrame::Ready`](grid_genome::generate::protocol::WorkerFrame::Ready), then
//! answers requests on stdin with frames on stdout until stdin closes; the frames are
//! `grid_genome::generate::protocol`'s, over `grid_genome::pipe`.
//!
//! The model runs in our own llama forward pass on candle's quantized CPU kernels, from
//! a local GGUF file only (no network, no Hugging Face files): the weights
//! ([`model`]), the forward pass ([`forward`]), the tokenizer and ChatML template from
//! the GGUF metadata ([`tokenizer`]), the sampler ([`sample`]). PEFT LoRA adapters
//! ([`lora`]) are applied per request beside the unchanged base weights, kept loaded in
//! a small cache ([`adapter_cache`]); the query/key row order of llama.cpp's converter
//! is handled in [`permute`]. [`serve`] is the protocol loop.

pub mod adapter_cache;
pub mod config;
pub mod forward;
pub mod gguf_check;
pub mod lora;
pub mod model;
pub mod native;
pub mod permute;
pub mod sample;
pub mod serve;
pub mod tokenizer;

use std::io;
use std::path::Path;

/// `grid worker generate --model FILE [--weights auto|native|f16|f32|quantized]`: load
/// the model, then serve requests from stdin on stdout until stdin ends.
pub fn run(model_path: &Path, weights: &str) -> anyhow::Result<()> {
    let format = match weights {
        "auto" => model::WeightFormat::auto(model_path)?,
        other => other.parse().map_err(|e: String| anyhow::anyhow!(e))?,
    };
    let mut worker = serve::Worker::load(model_path, format)?;
    worker.serve(io::stdin().lock(), io::stdout().lock())
}
