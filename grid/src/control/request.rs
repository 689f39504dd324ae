//! The control vocabulary: every operation a running node answers on its control socket,
//! as one typed [`Request`]. The CLI builds these, the socket carries them as one JSON
//! line each (`{"cmd": "link_open", "destination": "…", "timeout_ms": 15000}`), and the
//! node parses the line back into a `Request` before it acts; a line that is not one
//! gets a typed refusal ([`Error::BadRequest`]), never a panic.
//!
//! The embedded API ([`crate::api::NodeHandle`]) offers the same operations as methods;
//! the link operations of both end up as the same internal link operation.

use std::path::PathBuf;
use std::time::Duration;

use rns_core::link::LinkId;
use rns_core::AddressHash;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::trust::TrustLevel;

/// How long a request waits for the network unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// The channel message type `grid link channel` uses unless told otherwise.
pub const DEFAULT_MSGTYPE: u16 = 0x0101;

/// One operation on a running node, as the control socket carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Interfaces, traffic, peers, paths and links of the node.
    Status,
    /// Announce `grid.node` now.
    Announce,
    /// Find a path to a destination.
    Path {
        /// Where to.
        #[serde(with = "hash")]
        destination: AddressHash,
        /// How long to look, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Forget the path to a destination (as `rnpath -d`); the answer says whether one
    /// was known.
    DropPath {
        /// Where to.
        #[serde(with = "hash")]
        destination: AddressHash,
    },
    /// Send a probe and time its proof.
    Probe {
        /// Where to.
        #[serde(with = "hash")]
        destination: AddressHash,
        /// Random bytes to send (when no `data`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        /// Text to send instead of random bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        /// Bytes to send, hex (what `NodeHandle::send_packet` sends), instead of either.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_hex: Option<String>,
        /// How long to wait, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Run a command (`Commands.execute`) where a routing hint says.
    Exec {
        /// A node's `grid.node` hash or a routing hint ([`crate::routing::Route`]).
        destination: String,
        /// The command.
        command: String,
        /// Its JSON params.
        #[serde(default)]
        params: Value,
        /// How long to wait for a reachable node, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        /// Delay tolerance: bundle the command if there is no path, deliverable this long.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
        /// Answer with a handle at once.
        #[serde(default)]
        detach: bool,
    },
    /// The outcome of a detached command, by handle (16 hex digits).
    ExecResult {
        /// The handle `exec` with `detach` gave.
        handle: String,
    },
    /// Emit an event here, or send it to another node as a bundle (`to`).
    Emit {
        /// The event name.
        event: String,
        /// Its JSON payload.
        #[serde(default)]
        payload: Value,
        /// Another node to deliver it to.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hash")]
        to: Option<AddressHash>,
        /// How long a bundled event stays deliverable, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// Events recorded since a cursor.
    Events {
        /// Where the last answer left off (0: the oldest kept).
        #[serde(default)]
        cursor: u64,
    },
    /// Subscribe to another node's events.
    Subscribe {
        /// The node.
        #[serde(with = "hash")]
        destination: AddressHash,
        /// Event name pattern.
        pattern: String,
        /// How long to wait, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// An identity's trust level; sets it when `level` is given.
    Trust {
        /// The identity.
        #[serde(with = "hash")]
        identity: AddressHash,
        /// The level to give it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<TrustLevel>,
    },
    /// Every identity with a trust level, and the default.
    TrustList,
    /// Open a pairing offer and answer its code.
    PairOffer {
        /// The trust level the joiner gets.
        #[serde(default = "trusted")]
        level: TrustLevel,
        /// How long the offer stays open, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_s: Option<u64>,
    },
    /// Where the pairing offer stands.
    PairStatus,
    /// Present another node's pairing code.
    PairJoin {
        /// The offering node.
        #[serde(with = "hash")]
        destination: AddressHash,
        /// Its code.
        code: String,
        /// The trust level to give it.
        #[serde(default = "trusted")]
        level: TrustLevel,
        /// How long to wait, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Open a link (finding a path first if need be).
    LinkOpen {
        /// Where to.
        #[serde(with = "hash")]
        destination: AddressHash,
        /// How long to wait, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// The node's links.
    Links,
    /// Take what arrived on a link: packets, channel messages, stream bytes.
    LinkRecv {
        /// The link.
        #[serde(with = "hash")]
        link: LinkId,
    },
    /// Send one packet on a link.
    LinkSend {
        /// The link.
        #[serde(with = "hash")]
        link: LinkId,
        /// What to send.
        #[serde(flatten)]
        payload: Payload,
        /// How long to wait for the proof, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Send a request on a link.
    LinkRequest {
        /// The link.
        #[serde(with = "hash")]
        link: LinkId,
        /// The request path.
        #[serde(default = "root")]
        path: String,
        /// The request data.
        #[serde(flatten)]
        payload: Payload,
        /// How long to wait for the response, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Send a channel message on a link.
    LinkChannel {
        /// The link.
        #[serde(with = "hash")]
        link: LinkId,
        /// The message type.
        #[serde(default = "default_msgtype")]
        msgtype: u16,
        /// The message.
        #[serde(flatten)]
        payload: Payload,
        /// How long to wait for delivery, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Write to a stream on a link.
    LinkStream {
        /// The link.
        #[serde(with = "hash")]
        link: LinkId,
        /// The stream.
        #[serde(default)]
        stream_id: u16,
        /// The bytes.
        #[serde(flatten)]
        payload: Payload,
        /// Close the stream after them.
        #[serde(default)]
        eof: bool,
        /// How long to wait for delivery, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Reveal this node's identity on a link it opened.
    LinkIdentify {
        /// The link.
        #[serde(with = "hash")]
        link: LinkId,
    },
    /// Close a link.
    LinkClose {
        /// The link.
        #[serde(with = "hash")]
        link: LinkId,
    },
    /// Send a file as resources; answers a transfer id at once.
    Cp {
        /// The file (absolute).
        path: PathBuf,
        /// Where to.
        #[serde(with = "hash")]
        destination: AddressHash,
    },
    /// Where a `cp` transfer stands.
    CpStatus {
        /// Its id.
        id: String,
    },
    /// Files received.
    Received,
    /// Tell the DHT that this node provides a key.
    DhtProvide {
        /// The key: `topic:<name>`, a 64-hex content hash, or a 32-hex key.
        key: String,
    },
    /// Find providers of a key through the DHT.
    DhtFind {
        /// The key, as for `dht_provide`.
        key: String,
        /// Providers wanted (1 unless given).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        want: Option<u32>,
    },
    /// The catalog entries this node holds (its own and those gossip brought).
    Catalog,
}

/// The bytes a link request carries: `hex`, the contents of `file` (read by the node),
/// or UTF-8 `data`, in that order of precedence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Bytes as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// A file the node reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// Largest file a link payload reads (bigger transfers belong in resources: `grid cp`).
pub const PAYLOAD_FILE_MAX: u64 = 16 * 1024 * 1024;

impl Payload {
    /// UTF-8 text.
    pub fn text(text: impl Into<String>) -> Payload {
        Payload {
            data: Some(text.into()),
            ..Payload::default()
        }
    }

    /// The contents of a file (give an absolute path: the node reads it).
    pub fn file(path: impl Into<PathBuf>) -> Payload {
        Payload {
            file: Some(path.into()),
            ..Payload::default()
        }
    }

    /// The bytes (reads the file, if one is named).
    pub fn bytes(&self) -> Result<Vec<u8>, Error> {
        if let Some(h) = &self.hex {
            return hex::decode(h).map_err(|e| Error::BadRequest(format!("invalid hex: {e}")));
        }
        if let Some(p) = &self.file {
            let p = p.display();
            let meta = std::fs::metadata(self.file.as_ref().expect("file"))
                .map_err(|e| Error::BadRequest(format!("{p}: {e}")))?;
            if meta.len() > PAYLOAD_FILE_MAX {
                return Err(Error::BadRequest(format!(
                    "{p} is {} bytes; streams take at most {PAYLOAD_FILE_MAX} (use grid cp for files)",
                    meta.len()
                )));
            }
            return std::fs::read(self.file.as_ref().expect("file"))
                .map_err(|e| Error::BadRequest(format!("{p}: {e}")));
        }
        Ok(self.data.clone().unwrap_or_default().into_bytes())
    }
}

impl Request {
    /// Parse one request line; anything that is not a request is a [`Error::BadRequest`]
    /// saying why.
    pub fn parse(line: &str) -> Result<Request, Error> {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| Error::BadRequest(format!("invalid JSON request: {e}")))?;
        Request::from_value(value)
    }

    /// A request from its JSON form.
    pub fn from_value(value: Value) -> Result<Request, Error> {
        match value.get("cmd") {
            None => return Err(Error::BadRequest("missing \"cmd\"".into())),
            Some(Value::String(c)) if !NAMES.contains(&c.as_str()) => {
                return Err(Error::BadRequest(format!("unknown command \"{c}\"")))
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(Error::BadRequest("\"cmd\" must be a string".into())),
        }
        let cmd = value["cmd"].as_str().unwrap_or_default().to_string();
        serde_json::from_value(value).map_err(|e| Error::BadRequest(format!("{cmd}: {e}")))
    }

    /// The request's JSON form (one control-socket line, without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("requests serialize")
    }

    /// The operation's name on the wire (`"link_open"`).
    pub fn name(&self) -> &'static str {
        let v = serde_json::to_value(self).expect("requests serialize");
        let name = v["cmd"].as_str().unwrap_or_default();
        NAMES.iter().find(|n| **n == name).copied().unwrap_or("")
    }

    /// How long the request may wait for the network ([`DEFAULT_TIMEOUT`] unless it
    /// says, never over [`MAX_TIMEOUT`]).
    pub fn timeout(&self) -> Duration {
        let ms = match self {
            Request::Path { timeout_ms, .. }
            | Request::Probe { timeout_ms, .. }
            | Request::Exec { timeout_ms, .. }
            | Request::Subscribe { timeout_ms, .. }
            | Request::PairJoin { timeout_ms, .. }
            | Request::LinkOpen { timeout_ms, .. }
            | Request::LinkSend { timeout_ms, .. }
            | Request::LinkRequest { timeout_ms, .. }
            | Request::LinkChannel { timeout_ms, .. }
            | Request::LinkStream { timeout_ms, .. } => *timeout_ms,
            _ => None,
        };
        ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis)
            .min(MAX_TIMEOUT)
    }
}

/// Every operation's wire name.
pub const NAMES: [&str; 30] = [
    "status",
    "announce",
    "path",
    "drop_path",
    "probe",
    "exec",
    "exec_result",
    "emit",
    "events",
    "subscribe",
    "trust",
    "trust_list",
    "pair_offer",
    "pair_status",
    "pair_join",
    "link_open",
    "links",
    "link_recv",
    "link_send",
    "link_request",
    "link_channel",
    "link_stream",
    "link_identify",
    "link_close",
    "cp",
    "cp_status",
    "received",
    "dht_provide",
    "dht_find",
    "catalog",
];

fn trusted() -> TrustLevel {
    TrustLevel::Trusted
}

fn root() -> String {
    "/".into()
}

fn default_msgtype() -> u16 {
    DEFAULT_MSGTYPE
}

/// An [`AddressHash`] as its hex string.
pub(crate) mod hash {
    use rns_core::AddressHash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(h: &AddressHash, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(h)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AddressHash, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("invalid hash \"{s}\": {e}")))
    }
}

/// An optional [`AddressHash`] as its hex string.
pub(crate) mod opt_hash {
    use rns_core::AddressHash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        h: &Option<AddressHash>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.collect_str(h),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<AddressHash>, D::Error> {
        let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        s.map(|s| {
            s.parse()
                .map_err(|e| serde::de::Error::custom(format!("invalid hash \"{s}\": {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn hash(n: u8) -> AddressHash {
        AddressHash([n; 16])
    }

    /// One of every request.
    fn every_request() -> Vec<Request> {
        let link = hash(2);
        vec![
            Request::Status,
            Request::Announce,
            Request::Path {
                destination: hash(1),
                timeout_ms: Some(2000),
            },
            Request::DropPath {
                destination: hash(1),
            },
            Request::Probe {
                destination: hash(1),
                size: Some(32),
                data: None,
                data_hex: None,
                timeout_ms: None,
            },
            Request::Exec {
                destination: "auto".into(),
                command: "grid/ping".into(),
                params: json!({"a": 1}),
                timeout_ms: Some(5000),
                ttl_ms: Some(60_000),
                detach: true,
            },
            Request::ExecResult {
                handle: "00000000000000ff".into(),
            },
            Request::Emit {
                event: "a:b:c".into(),
                payload: json!([1]),
                to: Some(hash(3)),
                ttl_ms: None,
            },
            Request::Events { cursor: 7 },
            Request::Subscribe {
                destination: hash(3),
                pattern: "*".into(),
                timeout_ms: None,
            },
            Request::Trust {
                identity: hash(4),
                level: Some(TrustLevel::Blocked),
            },
            Request::TrustList,
            Request::PairOffer {
                level: TrustLevel::Trusted,
                window_s: Some(60),
            },
            Request::PairStatus,
            Request::PairJoin {
                destination: hash(5),
                code: "river-salt-owl-piano".into(),
                level: TrustLevel::Trusted,
                timeout_ms: Some(30_000),
            },
            Request::LinkOpen {
                destination: hash(1),
                timeout_ms: None,
            },
            Request::Links,
            Request::LinkRecv { link },
            Request::LinkSend {
                link,
                payload: Payload::text("hi"),
                timeout_ms: None,
            },
            Request::LinkRequest {
                link,
                path: "/echo".into(),
                payload: Payload::file("/tmp/x"),
                timeout_ms: Some(1),
            },
            Request::LinkChannel {
                link,
                msgtype: 7,
                payload: Payload {
                    hex: Some("00ff".into()),
                    ..Payload::default()
                },
                timeout_ms: None,
            },
            Request::LinkStream {
                link,
                stream_id: 3,
                payload: Payload::default(),
                eof: true,
                timeout_ms: None,
            },
            Request::LinkIdentify { link },
            Request::LinkClose { link },
            Request::Cp {
                path: "/tmp/f".into(),
                destination: hash(1),
            },
            Request::CpStatus { id: "1".into() },
            Request::Received,
            Request::DhtProvide {
                key: "topic:chat".into(),
            },
            Request::DhtFind {
                key: "topic:chat".into(),
                want: Some(3),
            },
            Request::Catalog,
        ]
    }

    #[test]
    fn every_request_survives_the_wire_and_has_a_name() {
        let all = every_request();
        assert_eq!(all.len(), NAMES.len(), "one example per operation");
        for r in all {
            let line = r.to_line();
            assert_eq!(Request::parse(&line), Ok(r.clone()), "{line}");
            assert!(NAMES.contains(&r.name()), "{line}");
            assert!(
                line.contains(&format!("\"cmd\":\"{}\"", r.name())),
                "{line}"
            );
        }
    }

    #[test]
    fn the_cli_spelling_of_today_still_parses() {
        let d = "0123456789abcdef0123456789abcdef";
        let r =
            Request::from_value(json!({"cmd": "link_open", "destination": d, "timeout_ms": 20000}))
                .unwrap();
        assert_eq!(r.timeout(), Duration::from_secs(20));
        let r = Request::from_value(json!({"cmd": "link_request", "link": d})).unwrap();
        let Request::LinkRequest { path, payload, .. } = &r else {
            panic!("{r:?}")
        };
        assert_eq!((path.as_str(), payload.bytes()), ("/", Ok(Vec::new())));
        assert_eq!(r.timeout(), DEFAULT_TIMEOUT);
        let r =
            Request::from_value(json!({"cmd": "path", "destination": d, "timeout_ms": u64::MAX}));
        assert_eq!(r.unwrap().timeout(), MAX_TIMEOUT);
        let r = Request::from_value(json!({"cmd": "pair_offer"})).unwrap();
        assert_eq!(
            r,
            Request::PairOffer {
                level: TrustLevel::Trusted,
                window_s: None
            }
        );
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        for (line, why) in [
            ("", "invalid JSON"),
            ("{", "invalid JSON"),
            ("[]", "missing \"cmd\""),
            ("{}", "missing \"cmd\""),
            ("{\"cmd\": 3}", "must be a string"),
            ("{\"cmd\": \"rm -rf\"}", "unknown command \"rm -rf\""),
            ("{\"cmd\": \"path\"}", "destination"),
            ("{\"cmd\": \"path\", \"destination\": \"xyz\"}", "invalid hash"),
            ("{\"cmd\": \"link_channel\", \"link\": \"0123456789abcdef0123456789abcdef\", \"msgtype\": 70000}", "link_channel"),
            ("{\"cmd\": \"trust\", \"identity\": \"0123456789abcdef0123456789abcdef\", \"level\": \"god\"}", "trust"),
        ] {
            match Request::parse(line) {
                Err(Error::BadRequest(m)) => assert!(m.contains(why), "{line}: {m}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let e = Payload {
            hex: Some("zz".into()),
            ..Payload::default()
        };
        assert!(matches!(e.bytes(), Err(Error::BadRequest(_))));
    }

    proptest! {
        /// Whatever a client writes, parsing answers a request or a refusal, never panics.
        #[test]
        fn any_line_parses_or_is_refused(line in ".{0,200}") {
            let _ = Request::parse(&line);
        }

        /// Requests with a known command and arbitrary fields are refused, not panicked on.
        #[test]
        fn known_commands_with_any_fields(
            cmd in proptest::sample::select(NAMES.to_vec()),
            key in "[a-z_]{1,12}",
            value in proptest::prop_oneof![
                Just(json!(null)), any::<i64>().prop_map(|n| json!(n)),
                ".{0,40}".prop_map(|s| json!(s)), Just(json!([1, "a"])), Just(json!({"x": 1})),
            ],
        ) {
            let mut v = json!({"cmd": cmd});
            v[key] = value;
            if let Ok(r) = Request::from_value(v) {
                prop_assert_eq!(Request::parse(&r.to_line()), Ok(r));
            }
        }
    }
}
