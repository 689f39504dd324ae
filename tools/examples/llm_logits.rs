//! Print the next-token logits of the worker's model for one prompt, without and with a
//! PEFT adapter, as JSON: `cargo run --release -p grid-tools --features llm --example
//! llm_logits -- MODEL.gguf PROMPT [ADAPTER_DIR [f16|f32|quantized]]` (f32 by default). `tools/llm_lora_check.py` compares
//! them with llama.cpp's.

use std::path::Path;

use anyhow::{anyhow, Result};
use grid_tools::llm::forward::Cache;
use grid_tools::llm::lora;
use grid_tools::llm::model::WeightFormat;
use grid_tools::llm::serve::Worker;

fn logits(w: &Worker, ids: &[u32], adapter: Option<&lora::Adapter>) -> Result<Vec<f32>> {
    let mut cache = Cache::new(&w.model, ids.len());
    Ok(w.model.forward(ids, &mut cache, adapter)?.to_vec1()?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, prompt) = match args.as_slice() {
        [m, p, ..] => (m, p),
        _ => {
            return Err(anyhow!(
                "usage: llm_logits MODEL.gguf PROMPT [ADAPTER_DIR [f16|f32|quantized]]"
            ))
        }
    };
    let format: WeightFormat = match args.get(3) {
        Some(f) => f.parse().map_err(|e: String| anyhow!(e))?,
        None => WeightFormat::F32,
    };
    let w = Worker::load(Path::new(model), format)?;
    let ids = w.tokenizer.encode_chat(prompt).map_err(|e| anyhow!(e))?;
    let base = logits(&w, &ids, None)?;
    let adapted = match args.get(2) {
        Some(dir) => {
            let a = lora::load(
                Path::new(dir),
                &w.model.config,
                w.model.adapter_form(),
                1 << 30,
            )?;
            Some(logits(&w, &ids, Some(&a))?)
        }
        None => None,
    };
    let out = serde_json::json!({ "ids": ids, "base": base, "adapter": adapted });
    println!("{out}");
    Ok(())
}
