//! Answers about links and paths: the link operations, `links`, `path` and `probe`.

use rns_core::link::LinkId;
use rns_core::AddressHash;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::control::request::{hash, opt_hash};

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

/// A channel message received on a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// Its message type.
    pub msgtype: u16,
    /// Its data: text, or `{"hex": …}` for bytes that are not UTF-8.
    pub data: Value,
}

/// Data received on one stream of a link since it was last read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamChunk {
    /// The stream.
    pub stream_id: u16,
    /// Bytes in `data`.
    pub len: usize,
    /// SHA-256 of those bytes, hex (to check large transfers without printing them).
    pub sha256: String,
    /// Whether the sender closed the stream.
    pub eof: bool,
    /// Whether data was dropped because the buffer was full.
    pub overflowed: bool,
    /// The data: text, or `{"hex": …}` for bytes that are not UTF-8.
    pub data: Value,
}

/// The answer to `link_recv`: what arrived on the link since the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbox {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// Packets, as JSON (text, or hex for bytes that are not UTF-8).
    pub packets: Vec<Value>,
    /// Channel messages.
    pub messages: Vec<ChannelMessage>,
    /// Stream data, by stream.
    pub streams: Vec<StreamChunk>,
}

/// One link's summary, in `links` and `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSummary {
    /// The link.
    #[serde(with = "hash")]
    pub link: LinkId,
    /// The destination it goes to.
    #[serde(with = "hash")]
    pub destination: AddressHash,
    /// Whether this node opened it.
    pub initiator: bool,
    /// Its state, lowercase (`pending`, `active`, `closed`, …).
    pub state: String,
    /// The link MTU.
    pub mtu: usize,
    /// The measured round trip, in milliseconds, once known.
    pub rtt_ms: Option<f64>,
    /// The identity the peer revealed, if it did.
    #[serde(with = "opt_hash")]
    pub remote_identity: Option<AddressHash>,
    /// The channel's send window, once the channel is in use.
    pub channel_window: Option<u16>,
}

/// The answer to `links`: the node's links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// Every link, in no particular order.
    pub links: Vec<LinkSummary>,
}

/// The answer to `path`: where the path to a destination leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFound {
    /// The destination.
    #[serde(with = "hash")]
    pub destination: AddressHash,
    /// The identity that announced it, if known.
    #[serde(with = "opt_hash")]
    pub identity: Option<AddressHash>,
    /// Its announce's application data, hex, if any.
    pub app_data: Option<String>,
    /// Hops away.
    pub hops: u8,
    /// The next hop.
    #[serde(with = "hash")]
    pub next_hop: AddressHash,
    /// The interface the path goes out on.
    pub interface: String,
    /// Seconds until the path expires.
    pub expires_in_s: u64,
}

/// The answer to `probe`: the destination proved the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probed {
    /// The destination probed.
    #[serde(with = "hash")]
    pub destination: AddressHash,
    /// Send to proof, in milliseconds.
    pub rtt_ms: f64,
    /// Hops away, if the path is still known.
    pub hops: Option<u8>,
}
