//! What a link is and says: its state, why it closed, why an operation failed, the events
//! it reports to the application, and its counters.

use std::time::Duration;

use super::stream;
use super::wire::LinkWireError;
use super::{LinkId, ResourceFailure};
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::identity::PublicIdentity;
use crate::resource::SegmentInfo;

/// Where a link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Initiator: request sent, waiting for the proof.
    Pending,
    /// Responder: proof sent, waiting for the RTT packet.
    Handshake,
    /// Usable.
    Active,
    /// Nothing heard for the stale time; closing soon unless traffic arrives.
    Stale,
    /// Closed.
    Closed,
}

/// Why a link closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Establishment or keepalive timeout.
    Timeout,
    /// The initiator closed it.
    InitiatorClosed,
    /// The destination closed it.
    DestinationClosed,
    /// A channel message went unproven after every retry.
    Undeliverable,
}

/// Why a link operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No such link.
    #[error("no such link {0}")]
    Unknown(LinkId),
    /// The link is not active.
    #[error("link {0} is not active")]
    NotActive(LinkId),
    /// The payload does not fit one link packet.
    #[error("payload of {size} bytes exceeds the link MDU of {mdu}")]
    TooLarge {
        /// Bytes offered.
        size: usize,
        /// Bytes that fit.
        mdu: usize,
    },
    /// Only the initiator may identify itself.
    #[error("only the link initiator can identify")]
    NotInitiator,
    /// Too many requests or receipts outstanding.
    #[error("too many outstanding requests on link {0}")]
    Busy(LinkId),
    /// The channel's send window is full; wait for a [`LinkEvent::ChannelDelivered`].
    #[error("the channel window on link {0} is full")]
    ChannelFull(LinkId),
    /// Channel message types from `0xF000` up are reserved for the system.
    #[error("channel message type {0:#06x} is reserved")]
    ReservedMessageType(u16),
    /// No outgoing resource with that hash on this link.
    #[error("no such outgoing resource")]
    UnknownResource,
    /// A bad stream write.
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    /// A wire-level problem.
    #[error(transparent)]
    Wire(#[from] LinkWireError),
    /// The destination's identity is unknown.
    #[error("destination {0} is unknown; no announce has been heard")]
    UnknownDestination(AddressHash),
}

/// What a link reports to the application.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The link is established.
    Established {
        /// The link.
        link: LinkId,
        /// The SINGLE destination it leads to (ours when we are the responder).
        destination: AddressHash,
        /// Whether we initiated it.
        initiator: bool,
        /// Round-trip time measured during establishment.
        rtt: Duration,
        /// The link MTU.
        mtu: usize,
    },
    /// The link closed.
    Closed {
        /// The link.
        link: LinkId,
        /// Why.
        reason: CloseReason,
    },
    /// A data packet arrived.
    Packet {
        /// The link.
        link: LinkId,
        /// Plaintext.
        data: Vec<u8>,
        /// Full packet hash.
        packet_hash: [u8; FULL_HASH_LEN],
    },
    /// A packet we sent on the link was proven by the peer.
    Proof {
        /// The link.
        link: LinkId,
        /// The proven packet.
        packet_hash: [u8; FULL_HASH_LEN],
        /// Time from sending to proof.
        rtt: Duration,
    },
    /// A packet we sent was not proven in time.
    ProofTimeout {
        /// The link.
        link: LinkId,
        /// The packet.
        packet_hash: [u8; FULL_HASH_LEN],
    },
    /// A channel message arrived, in sequence order.
    ChannelMessage {
        /// The link.
        link: LinkId,
        /// The sender's message type.
        msgtype: u16,
        /// Its channel sequence number.
        sequence: u16,
        /// The packed message.
        data: Vec<u8>,
    },
    /// A channel message we sent was proven; the window has room again.
    ChannelDelivered {
        /// The link.
        link: LinkId,
        /// The delivered message's sequence number.
        sequence: u16,
    },
    /// Stream (Buffer) data arrived, in order.
    StreamData {
        /// The link.
        link: LinkId,
        /// The stream id.
        stream_id: u16,
        /// The bytes.
        data: Vec<u8>,
        /// The sender closed the stream.
        eof: bool,
    },
    /// The initiator identified itself (responder side).
    Identified {
        /// The link.
        link: LinkId,
        /// Who.
        identity: Box<PublicIdentity>,
    },
    /// A request arrived.
    Request {
        /// The link.
        link: LinkId,
        /// Request id (truncated packet hash).
        request_id: AddressHash,
        /// `trunc16(path)`.
        path_hash: AddressHash,
        /// The request data.
        data: rmpv::Value,
        /// The identified initiator, if it identified.
        remote_identity: Option<Box<PublicIdentity>>,
    },
    /// A response to one of our requests arrived.
    Response {
        /// The link.
        link: LinkId,
        /// The request it answers.
        request_id: AddressHash,
        /// The response.
        data: rmpv::Value,
    },
    /// A request of ours got no response in time.
    RequestTimeout {
        /// The link.
        link: LinkId,
        /// The request.
        request_id: AddressHash,
    },
    /// The peer offers a resource (policy [`ResourcePolicy::App`]): accept or reject it.
    ResourceOffered {
        /// The link.
        link: LinkId,
        /// The segment offered.
        segment: SegmentInfo,
        /// The identified initiator, if any.
        remote_identity: Option<AddressHash>,
    },
    /// A transfer progressed.
    ResourceProgress {
        /// The link.
        link: LinkId,
        /// Resource hash.
        hash: [u8; FULL_HASH_LEN],
        /// Whether we are sending it.
        sending: bool,
        /// Parts sent or received.
        parts_done: usize,
        /// Parts in all.
        parts_total: usize,
    },
    /// Every part of a segment is here: run `job` (off the event loop) and return what
    /// it gives with `Transport::link_resource_assembled`. Only on links set to defer
    /// assembly ([`super::Link::set_defer_assembly`]); the proof, and the segment,
    /// request or response event, follow the result.
    ResourceAssemble {
        /// The link.
        link: LinkId,
        /// The work.
        job: super::AssemblyJob,
    },
    /// A segment arrived complete and verified (its proof has been sent).
    ResourceSegment {
        /// The link.
        link: LinkId,
        /// The segment.
        segment: SegmentInfo,
        /// The segment's data (metadata prefix included).
        data: Vec<u8>,
    },
    /// A segment we sent was proven by the receiver.
    ResourceSent {
        /// The link.
        link: LinkId,
        /// The segment.
        segment: SegmentInfo,
    },
    /// A transfer failed.
    ResourceFailed {
        /// The link.
        link: LinkId,
        /// Resource hash.
        hash: [u8; FULL_HASH_LEN],
        /// Whether we were sending it.
        sending: bool,
        /// Why.
        reason: ResourceFailure,
    },
}

/// Counters of one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets received.
    pub rx: u64,
    /// Packets sent.
    pub tx: u64,
    /// Packets dropped: undecryptable, malformed or on the wrong interface.
    pub dropped: u64,
}
