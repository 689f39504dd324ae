//! Text generation (`ai/generate`) on a compute node, in a worker process.
//!
//! The model runs in `grid worker generate` (built with the `grid-tools` feature `llm`),
//! never in the node (DESIGN decision 6). This module holds what both sides share and
//! the node's side:
//! - [`protocol`]: the frames on the worker's pipes (requests, streamed tokens, results).

pub mod protocol;
