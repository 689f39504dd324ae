//! Answers about file transfers: `cp`, `cp_status`, `received`.

use rns_core::AddressHash;
use serde::{Deserialize, Serialize};

use crate::control::request::opt_hash;

/// The answer to `cp`: the transfer's id, for `cp_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpStarted {
    /// The transfer.
    pub id: String,
}

/// Where a file transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpState {
    /// Waiting for a path and a link.
    Connecting,
    /// Sending.
    Sending,
    /// Every segment was proven.
    Complete,
    /// It failed (see [`CpStatus::error`]).
    Failed,
}

/// The answer to `cp_status`: a transfer's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpStatus {
    /// The transfer.
    pub id: String,
    /// Where it stands.
    pub state: CpState,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The file sent.
    pub file: String,
    /// The file's size.
    pub bytes: u64,
    /// Bytes (with the `rncp` metadata) confirmed so far.
    pub done: u64,
    /// Bytes to send, with the metadata.
    pub total: u64,
    /// Seconds since the transfer started (until it finished).
    pub seconds: f64,
    /// Seconds from the link coming up to the last proof: the transfer alone.
    pub transfer_seconds: Option<f64>,
    /// `done` over `seconds`.
    pub rate_bytes_per_s: f64,
}

/// A file this node received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedFile {
    /// Where it was written.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// The sender's identity, if it identified.
    #[serde(with = "opt_hash")]
    pub from: Option<AddressHash>,
}

/// The answer to `received`: files received lately, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The files.
    pub files: Vec<ReceivedFile>,
}
