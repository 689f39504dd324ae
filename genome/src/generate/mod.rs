//! Text generation (`ai/generate`) on a compute node, in a worker process.
//!
//! The model runs in `grid worker generate` (built with the `grid-tools` feature `llm`),
//! never in the node (DESIGN decision 6). This module holds what both sides share and
//! the node's side:
//! - [`protocol`]: the frames on the worker's pipes (requests, streamed tokens, results).
//! - [`supervisor`]: the node's side: start, queue, stream, stop, survive the worker.

pub mod protocol;
pub mod supervisor;

use std::path::{Path, PathBuf};

/// Where the default model sits in the models directory: SmolLM2-135M-Instruct, Q4_1
/// (`python3 tools/models_fetch.py --llm <models dir>` puts it there).
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model `ai/generate` runs: `configured`, else [`DEFAULT_MODEL`] in the models
/// directory of the node whose state is at `state_root`; or why there is none.
pub fn model_file(state_root: &Path, configured: Option<&Path>) -> Result<PathBuf, String> {
    let dir = crate::embed::models_dir(state_root);
    let model = configured.map_or_else(|| dir.join(DEFAULT_MODEL), Path::to_path_buf);
    if model.is_file() {
        Ok(model)
    } else if configured.is_some() {
        Err(format!(
            "no model file at {} (the [compute] model setting)",
            model.display()
        ))
    } else {
        Err(format!(
            "no model at {}: fetch it with `python3 tools/models_fetch.py --llm {}`, \
             or set [compute] model to a GGUF file",
            model.display(),
            dir.display()
        ))
    }
}
