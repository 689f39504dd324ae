//! Typed answers to control requests. The node builds these and the socket carries them
//! as one JSON object with `"ok": true` added ([`ok`]); a client knows which request it
//! sent and reads the answer back into the matching type ([`parse`]). Refusals are
//! [`crate::Error`]s instead (see [`crate::Error::to_json`]).
//!
//! The link operations, `exec`, `emit`, `events`, `announce`, `trust`, `pair_join` and
//! `cp` answer this way; the others (`status`, `path`, `probe`, `links`, `trust_list`,
//! `pair_offer`/`pair_status`, `exec_result`, `cp_status`, `received`) still answer with
//! JSON built in place, in the same envelope.

use rns_core::link::LinkId;
use rns_core::AddressHash;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::hash;
use crate::trust::TrustLevel;
use crate::Error;

/// The answer to `link_open`: the link is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkUp {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// Round-trip time measured while establishing, in milliseconds.
    pub rtt_ms: f64,
    /// The link MTU.
    pub mtu: usize,
}

/// The answer to `link_send`: the peer proved the packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proven {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// Send to proof, in milliseconds.
    pub rtt_ms: f64,
}

/// The answer to `link_request`: the peer's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// The response as JSON (bytes that are UTF-8 as text, others as hex).
    pub response: Value,
}

/// The answer to `link_channel`: the message was proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// The message's channel sequence number.
    pub sequence: u16,
}

/// The answer to `link_stream`: every byte written (and the EOF, if asked) was proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDelivered {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// The stream.
    pub stream_id: u16,
    /// Bytes delivered.
    pub bytes: usize,
    /// Whether the stream is closed.
    pub eof: bool,
}

/// The answer to `link_identify`: this node revealed its identity on the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identified {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// This node's identity hash.
    #[serde(with = "hash")]
    pub identity: AddressHash,
}

/// The answer to `link_close` (and to a resource sent): which link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
}

/// The answer to `link_recv`: what arrived on the link since the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbox {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// Packets, as JSON (text, or hex for bytes that are not UTF-8).
    pub packets: Vec<Value>,
    /// Channel messages: `{"msgtype", "data"}`.
    pub messages: Vec<Value>,
    /// Stream data: `{"stream_id", "data", "eof"}`.
    pub streams: Vec<Value>,
}

/// The answer to `exec`: the command's result, and the node that ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    /// The node that ran it (this node's own destination when it ran here).
    #[serde(with = "hash")]
    pub node: AddressHash,
    /// The command's JSON result.
    pub result: Value,
}

/// The answer to `exec` with `detach`: the job's handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The node that runs it.
    #[serde(with = "hash")]
    pub node: AddressHash,
    /// The handle (16 hex digits) for `exec_result` and the job's events.
    pub handle: String,
}

/// The answer to `trust` and `pair_join`: an identity's trust level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustOf {
    /// The identity.
    #[serde(with = "hash")]
    pub identity: AddressHash,
    /// Its level.
    pub level: TrustLevel,
}

/// The answer to `emit` here: how many remote subscriptions it went to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emitted {
    /// Remote subscriptions sent to.
    pub subscribers: usize,
}

/// The answer to `emit` to another node: queued as a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// Always true.
    pub queued: bool,
}

/// The answer to `events`: events after the cursor, and the cursor to ask from next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// `{"node", "event", "payload", …}`, oldest first.
    pub events: Vec<Value>,
    /// Where this answer leaves off.
    pub cursor: u64,
}

/// The answer to `announce`: the destination announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    /// This node's `grid.node` destination.
    #[serde(with = "hash")]
    pub destination: AddressHash,
}

/// A node found through the DHT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtNode {
    /// Its identity hash.
    #[serde(with = "hash")]
    pub identity: AddressHash,
    /// Its `grid.node` destination.
    #[serde(with = "hash")]
    pub node: AddressHash,
}

/// The answer to `dht_provide` and `dht_find`: how the lookup ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtLookup {
    /// The key looked up (32 hex characters).
    pub key: String,
    /// Providers found (`dht_find`).
    pub providers: Vec<DhtNode>,
    /// The nearest nodes that answered (for `dht_provide`: the nodes told).
    pub nodes: Vec<DhtNode>,
    /// The round the providers were found in (or the deepest round of `nodes`).
    pub hops: u32,
    /// Requests sent.
    pub requests: u32,
    /// Requests unanswered or refused.
    pub failures: u32,
    /// How long it took, ms.
    pub elapsed_ms: u64,
    /// Whether it ran out of time.
    pub timed_out: bool,
}

/// The answer to `cp`: the transfer's id, for `cp_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpStarted {
    /// The transfer.
    pub id: String,
}

/// An answer as the socket carries it: its fields and `"ok": true`.
pub fn ok(answer: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(answer).expect("answers serialize");
    if let Value::Object(m) = &mut v {
        m.insert("ok".into(), Value::Bool(true));
    }
    v
}

/// Read an answer back into the type the request expects; a refusal is its error, an
/// answer of another shape is [`Error::BadResponse`].
pub fn parse<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    if let Some(e) = Error::from_json(&v) {
        return Err(e);
    }
    serde_json::from_value(v).map_err(|e| Error::BadResponse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_keep_the_json_the_cli_printed_and_read_back() {
        let link = AddressHash([9; 16]);
        let v = ok(&LinkUp {
            link,
            rtt_ms: 1.5,
            mtu: 500,
        });
        assert_eq!(
            v,
            json!({"ok": true, "link": link.to_string(), "rtt_ms": 1.5, "mtu": 500})
        );
        assert_eq!(
            parse::<LinkUp>(v),
            Ok(LinkUp {
                link,
                rtt_ms: 1.5,
                mtu: 500
            })
        );
        let refused = Error::LinkClosed("gone".into()).to_json();
        assert_eq!(
            parse::<Done>(refused),
            Err(Error::LinkClosed("gone".into()))
        );
        assert!(matches!(
            parse::<Delivered>(json!({"ok": true, "link": "xyz"})),
            Err(Error::BadResponse(_))
        ));
    }
}
