//! The local control socket: how the `grid` CLI talks to a running node.
//!
//! [`server`] accepts connections within [`Limits`] and passes each request to the node;
//! [`client`] is the other end, for the CLI and tests. What travels is the typed
//! vocabulary of [`request`]: one [`Request`] line in; one JSON object line out,
//! `{"ok": true, …}` or a refusal `{"ok": false, "code": …, "error": …}` that the
//! client turns back into a typed [`crate::Error`] ([`ControlError::Refused`]).
//!
//! A Unix stream socket in the node's state directory. Each connection carries JSON
//! lines: the client writes one request object, the node writes one response object.
//! Request lines are capped at [`MAX_LINE`] bytes (anything larger closes the
//! connection); responses, which come from the node the client trusts and may carry a
//! command's 16 MiB result, at [`MAX_RESPONSE`].
//!
//! The socket holds at most [`MAX_CONNECTIONS`] connections and drops one that sends no
//! complete request line for [`IDLE_TIMEOUT`] (see [`Limits`]); each CLI command opens a
//! connection of its own, so even `grid listen`, which polls for minutes, never idles.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

pub mod client;
pub mod request;
pub mod response;
pub mod server;

pub use client::{ask, call};
pub use request::{Payload, Request};
pub use server::{bind, serve, Limits, IDLE_TIMEOUT, MAX_CONNECTIONS};

/// Longest request line.
pub const MAX_LINE: usize = 1 << 20;
/// Longest response line a client reads.
pub const MAX_RESPONSE: usize = 64 << 20;

/// A request from a client, with the way to answer it.
#[derive(Debug)]
pub struct ControlRequest {
    /// The request.
    pub request: Request,
    /// Where the node puts its response.
    pub reply: oneshot::Sender<Value>,
}

/// Why the control socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No node is listening at the path.
    #[error("no node is running for this state directory ({path}): {source}")]
    NotRunning {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Another node already owns the socket.
    #[error("a node is already running for this state directory (socket {0})")]
    AlreadyRunning(PathBuf),
    /// IO failed mid-conversation.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    /// The node closed the connection or sent something that is not JSON.
    #[error("bad response from node: {0}")]
    BadResponse(String),
    /// The node did not answer in time.
    #[error("the node did not answer within {0:?}")]
    Timeout(Duration),
    /// The node answered with a refusal.
    #[error("{0}")]
    Refused(crate::Error),
}
