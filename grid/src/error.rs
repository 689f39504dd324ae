//! Why an operation on a node failed, typed so that callers can act on it (the
//! delay-tolerant fallback of [`crate::api::NodeHandle::execute_with`] bundles a command
//! on [`Error::NoPath`], [`Error::LinkClosed`] and [`Error::Timeout`], and gives up on the
//! rest), and with a stable code for the control socket's JSON answers.

use rns_core::link::LinkError;
use rns_core::AddressHash;
use serde_json::{json, Value};

use crate::frame::ErrorCode;

/// Why an operation on a node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node task has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// No path to a destination appeared in time.
    #[error("{message}")]
    NoPath {
        /// The destination.
        destination: AddressHash,
        /// For people.
        message: String,
    },
    /// The link is closed, unknown or not (yet, or any longer) active.
    #[error("{0}")]
    LinkClosed(String),
    /// Nothing came back in time (no proof, no response, no link).
    #[error("{0}")]
    Timeout(String),
    /// Trust or the ACL does not allow it.
    #[error("{0}")]
    Denied(String),
    /// Too much is pending already (requests, stream writes, waiting callers).
    #[error("{0}")]
    Busy(String),
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// No node can run the command under the routing hint given.
    #[error("{0}")]
    NoRoute(String),
    /// The other node's answer was not a valid response.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The other node answered with an error.
    #[error("{}: {message}", code.as_str())]
    Remote {
        /// What kind of error.
        code: ErrorCode,
        /// The other node's message.
        message: String,
    },
    /// The caller cancelled the call (the other node was told to stop it).
    #[error("cancelled")]
    Cancelled,
    /// Something else went wrong (storage, files, an unexpected answer).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// No path to `destination` was found.
    pub fn no_path(destination: AddressHash) -> Error {
        Error::NoPath {
            destination,
            message: format!("no path to {destination} found"),
        }
    }

    /// The stable machine-readable code of this error on the control socket.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Stopped => "stopped",
            Error::NoPath { .. } => "no_path",
            Error::LinkClosed(_) => "link_closed",
            Error::Timeout(_) => "timeout",
            Error::Denied(_) => "denied",
            Error::Busy(_) => "busy",
            Error::BadRequest(_) => "bad_request",
            Error::NoRoute(_) => "no_route",
            Error::BadResponse(_) => "bad_response",
            Error::Remote { code, .. } => code.as_str(),
            Error::Cancelled => "cancelled",
            Error::Failed(_) => "failed",
        }
    }

    /// Whether another node may take what this one would not: it is busy (its governor
    /// refused the job), has no such command, or cannot serve it in this build. Routing
    /// plans, `grid ask` and pipeline steps move on to their next node on these.
    pub fn is_elsewhere(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                code: ErrorCode::Busy | ErrorCode::UnknownCommand | ErrorCode::Unsupported,
                ..
            }
        )
    }

    /// Whether waiting and trying another way (a bundle) could succeed: no path, a
    /// link that went away, or no answer in time.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::NoPath { .. } | Error::LinkClosed(_) | Error::Timeout(_)
        )
    }

    /// The control socket's answer for this error:
    /// `{"ok": false, "code": "<code>", "error": "<message>"}`, plus `"remote": true` for
    /// an error the other node answered with and `"destination"` for [`Error::NoPath`].
    pub fn to_json(&self) -> Value {
        let mut v = json!({"ok": false, "code": self.code(), "error": self.to_string()});
        match self {
            Error::Remote { .. } => v["remote"] = Value::Bool(true),
            Error::NoPath { destination, .. } => v["destination"] = json!(destination.to_string()),
            _ => {}
        }
        v
    }

    /// The error a control-socket answer carries, if it is a refusal (`"ok": false`).
    pub fn from_json(v: &Value) -> Option<Error> {
        if v.get("ok") != Some(&Value::Bool(false)) {
            return None;
        }
        let message = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the node refused the request")
            .to_string();
        let code = v.get("code").and_then(Value::as_str).unwrap_or("failed");
        if v.get("remote") == Some(&Value::Bool(true)) {
            let code = ErrorCode::from_name(code).unwrap_or(ErrorCode::Failed);
            let prefix = format!("{}: ", code.as_str());
            let message = message
                .strip_prefix(&prefix)
                .map_or(message.clone(), str::to_string);
            return Some(Error::Remote { code, message });
        }
        Some(match code {
            "stopped" => Error::Stopped,
            "cancelled" => Error::Cancelled,
            "no_path" => Error::NoPath {
                destination: v
                    .get("destination")
                    .and_then(Value::as_str)
                    .and_then(|d| d.parse().ok())
                    .unwrap_or_default(),
                message,
            },
            "link_closed" => Error::LinkClosed(message),
            "timeout" => Error::Timeout(message),
            "denied" => Error::Denied(message),
            "busy" => Error::Busy(message),
            "bad_request" => Error::BadRequest(message),
            "no_route" => Error::NoRoute(message),
            "bad_response" => Error::BadResponse(
                message
                    .strip_prefix("bad response: ")
                    .map_or(message.clone(), str::to_string),
            ),
            _ => Error::Failed(message),
        })
    }
}

/// A failure with nothing more specific to say than its message.
impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::Failed(message)
    }
}

/// A failure with nothing more specific to say than its message.
impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::Failed(message.to_string())
    }
}

impl From<rns_core::transport::SendError> for Error {
    fn from(e: rns_core::transport::SendError) -> Error {
        use rns_core::transport::SendError;
        let message = e.to_string();
        match e {
            SendError::UnknownDestination(destination) => Error::NoPath {
                destination,
                message,
            },
            SendError::TooLarge(_) | SendError::NotLocal(_) => Error::BadRequest(message),
            SendError::NoInterface => Error::Failed(message),
        }
    }
}

impl From<LinkError> for Error {
    fn from(e: LinkError) -> Error {
        let message = e.to_string();
        match e {
            LinkError::Unknown(_) | LinkError::NotActive(_) => Error::LinkClosed(message),
            LinkError::Busy(_) | LinkError::ChannelFull(_) => Error::Busy(message),
            LinkError::UnknownDestination(d) => Error::NoPath {
                destination: d,
                message,
            },
            LinkError::TooLarge { .. }
            | LinkError::NotInitiator
            | LinkError::ReservedMessageType(_)
            | LinkError::Stream(_) => Error::BadRequest(message),
            _ => Error::Failed(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_control_socket() {
        let d: AddressHash = "0123456789abcdef0123456789abcdef".parse().unwrap();
        for e in [
            Error::Stopped,
            Error::no_path(d),
            Error::LinkClosed("link x closed".into()),
            Error::Timeout("no response on link x".into()),
            Error::Denied("not allowed".into()),
            Error::Busy("too many".into()),
            Error::BadRequest("missing \"cmd\"".into()),
            Error::NoRoute("no node offers a GPU".into()),
            Error::BadResponse("not frame bytes".into()),
            Error::Remote {
                code: ErrorCode::Denied,
                message: "untrusted".into(),
            },
            Error::Remote {
                code: ErrorCode::BadParams,
                message: "no".into(),
            },
            Error::Remote {
                code: ErrorCode::Busy,
                message: "pressure: memory pressure is critical".into(),
            },
            Error::Failed("disk full".into()),
        ] {
            let v = e.to_json();
            assert_eq!(Error::from_json(&v), Some(e.clone()), "{v}");
        }
        assert_eq!(Error::from_json(&json!({"ok": true})), None);
        assert_eq!(
            Error::from_json(&json!({"ok": false})),
            Some(Error::Failed("the node refused the request".into()))
        );
    }

    #[test]
    fn every_frame_error_code_is_found_by_name() {
        let codes: Vec<ErrorCode> = (0u8..=u8::MAX)
            .map_while(|i| postcard::from_bytes::<ErrorCode>(&[i]).ok())
            .collect();
        assert_eq!(codes.len(), 12);
        for c in codes {
            assert_eq!(ErrorCode::from_name(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::from_name("no_such_code"), None);
    }

    #[test]
    fn busy_missing_and_unsupported_send_the_job_elsewhere() {
        let remote = |code| Error::Remote {
            code,
            message: String::new(),
        };
        assert!(remote(ErrorCode::Busy).is_elsewhere());
        assert!(remote(ErrorCode::UnknownCommand).is_elsewhere());
        assert!(remote(ErrorCode::Unsupported).is_elsewhere());
        assert!(!remote(ErrorCode::Failed).is_elsewhere());
        assert!(!remote(ErrorCode::Denied).is_elsewhere());
        assert!(!Error::Timeout(String::new()).is_elsewhere());
    }

    #[test]
    fn only_network_failures_are_worth_a_bundle() {
        let d = AddressHash::default();
        assert!(Error::no_path(d).is_unreachable());
        assert!(Error::LinkClosed(String::new()).is_unreachable());
        assert!(Error::Timeout(String::new()).is_unreachable());
        assert!(!Error::Stopped.is_unreachable());
        assert!(!Error::Denied(String::new()).is_unreachable());
        assert!(!Error::BadRequest(String::new()).is_unreachable());
    }
}
