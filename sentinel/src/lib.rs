//! Sentinel pipelines: a Grid job as JSON data whose steps run commands, call a model,
//! emit and watch events — on whichever node fits (`docs/sentinel.md`).
//!
//! This crate holds the parts that decide without IO: the [`format`] (what a pipeline
//! file says, parsed with errors that name the bad field's path), its [`validate`]ion
//! (ids, references, caps), [`interpolate`] (`{{steps.<id>.output…}}`,
//! `{{input.<name>}}`, `{{env.<VAR>}}`, `{{loop.<id>.index}}`) and [`condition`]s
//! (`== != > < >= <=` and truthiness). The engine that runs steps on a node is built on
//! these.
#![forbid(unsafe_code)]

pub mod condition;
pub mod engine;
pub mod format;
pub mod interpolate;
pub mod service;
pub mod validate;

pub use format::{parse, Pipeline, Step, StepKind};
pub use validate::{validate, Invalid};
