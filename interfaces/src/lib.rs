//! # grid-interfaces
//!
//! Tokio drivers that move RNS frames between sockets and the node. A driver owns its
//! socket, reports what happens as [`InterfaceEvent`]s through a [`Hub`], and takes frames
//! to send from a bounded channel it hands over in [`InterfaceEvent::Up`]. Framing codecs
//! ([`hdlc`]) are plain functions, testable without IO.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod admission;
pub mod auto;
pub mod hdlc;
pub mod kiss_tnc;
pub mod local;
pub mod rnode;
pub mod serial;
pub mod tcp;
pub mod udp;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rns_core::transport::{InterfaceConfig, InterfaceId};
use tokio::sync::mpsc;

/// Frames queued towards one interface before further frames are dropped.
pub const OUTBOUND_QUEUE: usize = 512;

/// What a driver reports to the node.
#[derive(Debug)]
pub enum InterfaceEvent {
    /// An interface came up (first time, or again after a reconnect with the same id).
    Up {
        /// Its id.
        id: InterfaceId,
        /// How the transport should treat it.
        config: Box<InterfaceConfig>,
        /// Where to put frames to send on it.
        outbound: mpsc::Sender<Vec<u8>>,
        /// When the node may start sending on it.
        ready: Readiness,
    },
    /// An interface went down; `remove` if it will not come back (a server's client left).
    Down {
        /// Its id.
        id: InterfaceId,
        /// Whether the id is finished for good.
        remove: bool,
    },
    /// A frame arrived.
    Frame {
        /// The interface.
        id: InterfaceId,
        /// The frame as received (IFAC still applied).
        data: Vec<u8>,
    },
    /// A radio's signal and channel figures changed (or their periodic refresh).
    Radio {
        /// The interface.
        id: InterfaceId,
        /// The latest figures.
        stats: Box<rnode::RadioStats>,
    },
    /// Several frames arrived together (one read from a stream).
    Frames {
        /// The interface.
        id: InterfaceId,
        /// The frames in order of arrival.
        frames: Vec<Vec<u8>>,
    },
}

/// When a new interface may carry traffic from the node.
///
/// RNS 1.5.7's TCP interfaces start reading before they finish setting themselves up,
/// and reset the connection if a frame arrives in that window (it can last hundreds of
/// milliseconds on a loaded machine). An RNS client signals that it is ready by sending
/// its first packet (tunnel synthesis), so an accepted TCP connection becomes an interface
/// only once its peer has spoken (and is then ready at once); outgoing connections wait a
/// short while; datagram interfaces need no wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Right away.
    Now,
    /// After this long, or as soon as a frame arrives from the peer.
    After(std::time::Duration),
}

/// The drivers' handle to the node: an event channel and an id allocator.
#[derive(Debug, Clone)]
pub struct Hub {
    events: mpsc::Sender<InterfaceEvent>,
    next_id: Arc<AtomicU32>,
}

impl Hub {
    /// A hub and the receiver the node reads events from.
    pub fn new(capacity: usize) -> (Hub, mpsc::Receiver<InterfaceEvent>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Hub {
                events: tx,
                next_id: Arc::new(AtomicU32::new(1)),
            },
            rx,
        )
    }

    /// Allocate a fresh interface id.
    pub fn allocate(&self) -> InterfaceId {
        InterfaceId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Report an event; returns false once the node has gone away.
    pub async fn send(&self, e: InterfaceEvent) -> bool {
        self.events.send(e).await.is_ok()
    }

    /// Whether the node still listens.
    pub fn is_closed(&self) -> bool {
        self.events.is_closed()
    }
}

/// Tell the node that a driver's (re)connected interface is up. Frames queued while it
/// was down are stale and dropped first. Returns false once the node has gone away.
pub(crate) async fn report_up(
    hub: &Hub,
    id: InterfaceId,
    config: &InterfaceConfig,
    (tx, rx): (&mpsc::Sender<Vec<u8>>, &mut mpsc::Receiver<Vec<u8>>),
    ready: Readiness,
) -> bool {
    while rx.try_recv().is_ok() {}
    hub.send(InterfaceEvent::Up {
        id,
        config: Box::new(config.clone()),
        outbound: tx.clone(),
        ready,
    })
    .await
}

/// Largest frame a driver accepts for an interface: its HW MTU plus IFAC, with slack.
pub(crate) fn max_frame(config: &InterfaceConfig) -> usize {
    config.hw_mtu.unwrap_or(rns_core::packet::MTU)
        + config.ifac.as_ref().map_or(0, |i| i.size())
        + 64
}
