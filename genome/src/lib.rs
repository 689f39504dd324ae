//! Genome: adapter (LoRA) packages and the skills they give.
//!
//! - [`package`]: a PEFT adapter directory plus `adapter.toml`, validated strictly.
//! - [`manifest`]: the signed, content-addressed description of a package.
//! - [`index`]: the vector index (exact scan, HNSW above a size), persisted.
//! - [`keywords`]: keyword overlap, when no embedder is loaded.
//! - `lazy`: the model loaded on first use and unloaded when idle (feature `embed`).
//! - [`registry`]: this node's adapters, content-addressed on disk, searchable.
//! - [`archive`]: a package as it travels between nodes.
//! - [`rank`]: search results as they travel, and peers' answers ranked by this node.
//! - [`service`]: the `genome/*` commands on a running node, mesh search and fetch.
//! - [`worker`]: the embedding model in a worker process, started on demand.
//! - [`generate`]: text generation (`ai/generate`) in a worker process.
//! - [`pipe`]: the frames on a worker's pipes.
//!
//! The evaluation set for semantic search is in `genome/eval/` (see `tests/eval.rs`).
//! - [`embed`]: sentence embeddings (all-MiniLM-L6-v2, 384-dim) for semantic skill search.
//! - [`index`]: the vector index for semantic skill search (exact scan below 20k vectors, HNSW above).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod embed;
pub mod generate;
pub mod index;
pub mod keywords;
#[cfg(feature = "embed")]
pub mod lazy;
pub mod manifest;
pub mod package;
pub mod pipe;
mod process;
pub mod rank;
pub mod registry;
pub mod service;
pub mod worker;
