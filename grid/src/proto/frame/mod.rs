//! `GridFrame`: the envelope commands, results and events travel in between nodes.
//!
//! On the wire a frame is a fixed 9-byte prefix — the format version and the correlation
//! id — followed by the postcard encoding of the rest. The prefix never changes, so a
//! node that receives a frame from a newer version still knows which request to answer
//! with [`ErrorCode::UnsupportedVersion`] instead of staying silent. Params, results and
//! payloads are JSON (people and scripts speak JSON), carried as bytes; everything else
//! is binary. Decoding checks sizes, names and JSON, and never panics.

pub mod names;

use serde::{Deserialize, Serialize};

/// The frame format this node speaks.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the postcard body: version, correlation id.
pub const PREFIX_LEN: usize = 9;
/// The channel message type frames pushed on a link (events for a subscriber) travel in;
/// below RNS's reserved range (0xF000 and up).
pub const CHANNEL_MSGTYPE: u16 = 0x4746;
/// How far apart two nodes' wall clocks may be before frames between them count as
/// expired early (see [`GridFrame::expired_on_arrival`]).
pub const CLOCK_SKEW_MS: u64 = 2 * 3600 * 1000;
/// The largest encoded frame accepted (bigger payloads belong in files or streams).
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// A frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridFrame {
    /// Chosen by the requester, echoed by the responder; progress and results of a
    /// long-running command carry the request's id.
    #[serde(skip)]
    pub correlation: u64,
    /// The sending node's identity hash.
    pub source: [u8; 16],
    /// The receiving node's identity hash.
    pub target: [u8; 16],
    /// When it was made, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// How long it stays worth delivering, ms from `timestamp_ms` (0: no expiry).
    pub ttl_ms: u64,
    /// What it carries.
    pub body: Body,
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// Run `command` (`domain/action`) with JSON `params`.
    Request {
        /// The command.
        command: String,
        /// JSON params.
        params: Vec<u8>,
    },
    /// The outcome of the request with the same correlation id.
    Response(Outcome),
    /// An event (`domain:collection:operation`) with a JSON payload.
    Event {
        /// The event name.
        event: String,
        /// JSON payload.
        payload: Vec<u8>,
    },
    /// Forward events matching `pattern` to the sender.
    Subscribe {
        /// The pattern (see [`names::matches`]).
        pattern: String,
    },
    /// Stop forwarding `pattern`.
    Unsubscribe {
        /// The pattern.
        pattern: String,
    },
    /// Progress of a long-running request.
    Progress {
        /// Done so far, 0–1, if known.
        fraction: Option<f32>,
        /// JSON detail.
        payload: Vec<u8>,
    },
}

/// A command's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// It ran; JSON result.
    Ok(Vec<u8>),
    /// It did not run or failed.
    Err {
        /// What kind of failure.
        code: ErrorCode,
        /// For people.
        message: String,
    },
}

/// Why a command did not produce a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// No handler for the command on the target.
    UnknownCommand,
    /// The caller's trust level or the ACL does not allow it.
    Denied,
    /// The params are not what the command takes.
    BadParams,
    /// The handler ran and failed.
    Failed,
    /// No result in time.
    Timeout,
    /// The frame's format version is newer than the receiver's.
    UnsupportedVersion,
    /// The frame did not decode.
    Malformed,
    /// The frame is larger than the receiver accepts.
    TooLarge,
    /// The frame was seen before (same sender and correlation id).
    Replayed,
    /// The target could not be reached before the deadline.
    Unreachable,
    /// The request cannot be served the way it came (a subscription in a bundle).
    Unsupported,
    /// The node will not take the job now: its governor refused it (over budget, memory
    /// pressure, too little free memory, too many jobs). Another node may take it.
    Busy,
}

impl ErrorCode {
    /// A stable lower-case name for JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::Denied => "denied",
            ErrorCode::BadParams => "bad_params",
            ErrorCode::Failed => "failed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Malformed => "malformed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Replayed => "replayed",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Busy => "busy",
        }
    }

    /// The code named by [`ErrorCode::as_str`]. Codes are tried in declaration order,
    /// by their postcard encoding (the variant index), so a new code needs no list here.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        (0u8..=u8::MAX)
            .map_while(|i| postcard::from_bytes::<ErrorCode>(&[i]).ok())
            .find(|c| c.as_str() == name)
    }
}

/// Why bytes are not a frame this node accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the prefix.
    #[error("truncated frame ({0} bytes)")]
    Truncated(usize),
    /// Larger than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes is larger than {MAX_FRAME_LEN}")]
    TooLarge(usize),
    /// Made by a newer format version; `correlation` says which request to answer.
    #[error("frame version {version} is newer than {FRAME_VERSION}")]
    UnsupportedVersion {
        /// The version found.
        version: u8,
        /// The correlation id from the fixed prefix.
        correlation: u64,
    },
    /// The body did not decode, or a name or JSON field is invalid.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// The correlation id from the prefix.
        correlation: u64,
        /// What is wrong.
        reason: String,
    },
}

impl FrameError {
    /// The correlation id to answer, when the prefix was readable.
    pub fn correlation(&self) -> Option<u64> {
        match self {
            FrameError::UnsupportedVersion { correlation, .. }
            | FrameError::Malformed { correlation, .. } => Some(*correlation),
            _ => None,
        }
    }

    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            FrameError::TooLarge(_) => ErrorCode::TooLarge,
            _ => ErrorCode::Malformed,
        }
    }
}

fn json_ok(bytes: &[u8]) -> bool {
    bytes.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

impl GridFrame {
    /// Encode: prefix, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(FRAME_VERSION);
        out.extend_from_slice(&self.correlation.to_be_bytes());
        // Postcard cannot fail on these types (no maps with non-string keys, no
        // sequences of unknown length).
        let body = postcard::to_allocvec(self).unwrap_or_default();
        out.extend_from_slice(&body);
        out
    }

    /// Decode and validate.
    pub fn decode(bytes: &[u8]) -> Result<GridFrame, FrameError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        if bytes.len() < PREFIX_LEN {
            return Err(FrameError::Truncated(bytes.len()));
        }
        let correlation = u64::from_be_bytes(bytes[1..PREFIX_LEN].try_into().unwrap_or([0; 8]));
        if bytes[0] != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion {
                version: bytes[0],
                correlation,
            });
        }
        let bad = |reason: String| FrameError::Malformed {
            correlation,
            reason,
        };
        let (mut frame, rest): (GridFrame, _) =
            postcard::take_from_bytes(&bytes[PREFIX_LEN..]).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad(format!("{} trailing bytes", rest.len())));
        }
        frame.correlation = correlation;
        frame.validate().map_err(bad)?;
        Ok(frame)
    }

    /// Check names and JSON fields.
    pub fn validate(&self) -> Result<(), String> {
        let json = |what: &str, b: &[u8]| {
            if json_ok(b) {
                Ok(())
            } else {
                Err(format!("{what} is not JSON"))
            }
        };
        match &self.body {
            Body::Request { command, params } => {
                names::check_command(command).map_err(|e| format!("command {e}"))?;
                json("params", params)
            }
            Body::Response(Outcome::Ok(result)) => json("result", result),
            Body::Response(Outcome::Err { .. }) => Ok(()),
            Body::Event { event, payload } => {
                names::check_event(event).map_err(|e| format!("event {e}"))?;
                json("payload", payload)
            }
            Body::Subscribe { pattern } | Body::Unsubscribe { pattern } => {
                names::check_pattern(pattern).map_err(|e| format!("pattern {e}"))
            }
            Body::Progress { fraction, payload } => {
                if fraction.is_some_and(|f| !(0.0..=1.0).contains(&f)) {
                    return Err("progress fraction outside 0–1".into());
                }
                json("payload", payload)
            }
        }
    }

    /// Whether the frame's TTL has run out at `now_ms` (by the clock that stamped it).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.ttl_ms != 0 && now_ms > self.timestamp_ms.saturating_add(self.ttl_ms)
    }

    /// Whether a frame that arrived from another node has run out at `now_ms` by this
    /// node's clock, allowing [`CLOCK_SKEW_MS`] for clocks that disagree: nodes without a
    /// real-time clock drift and get stepped by NTP, and a frame must not be refused as
    /// expired because of that. (Replays are stopped by the request log and bundle ids,
    /// not by timestamps.)
    pub fn expired_on_arrival(&self, now_ms: u64) -> bool {
        self.ttl_ms != 0
            && now_ms
                > self
                    .timestamp_ms
                    .saturating_add(self.ttl_ms)
                    .saturating_add(CLOCK_SKEW_MS)
    }

    /// The response to this frame: source and target swapped, same correlation id.
    pub fn respond(&self, outcome: Outcome, now_ms: u64) -> GridFrame {
        GridFrame {
            correlation: self.correlation,
            source: self.target,
            target: self.source,
            timestamp_ms: now_ms,
            ttl_ms: self.ttl_ms,
            body: Body::Response(outcome),
        }
    }
}

#[cfg(test)]
mod tests;
