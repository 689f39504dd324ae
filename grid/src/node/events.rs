//! Events across nodes (`Events.emit`): local emission, remote subscriptions, and
//! delivery of matching events to subscribers as GridFrames on channel messages.
//!
//! A peer subscribes with a `Subscribe` frame on a link it opened to this node; from then
//! on, every event this node emits that matches the pattern goes back on that link's
//! channel. Subscriptions end with the link or an `Unsubscribe`.

use std::collections::VecDeque;

use rns_core::link::LinkId;
use rns_core::Instant;
use serde_json::{json, Value};

use super::Node;
use crate::api::NodeEvent;
use crate::frame::{Body, GridFrame};

pub(super) use crate::frame::CHANNEL_MSGTYPE as GRID_FRAME_MSGTYPE;
/// Recent events kept for `grid listen` (local and from remote subscriptions).
pub(super) const RECENT_EVENTS: usize = 1024;

/// Events emitted here or received from subscriptions, numbered for `grid listen`.
#[derive(Debug, Default)]
pub(super) struct RecentEvents {
    next: u64,
    events: VecDeque<(u64, Value)>,
}

impl RecentEvents {
    fn push(&mut self, v: Value) {
        if self.events.len() >= RECENT_EVENTS {
            self.events.pop_front();
        }
        self.next += 1;
        self.events.push_back((self.next, v));
    }

    /// The newest kept event with this name.
    pub(super) fn find(&self, event: &str) -> Option<Value> {
        self.events
            .iter()
            .rev()
            .find(|(_, e)| e["event"] == event)
            .map(|(_, e)| e.clone())
    }

    /// Events after `cursor`, and the cursor to ask with next.
    pub(super) fn since(&self, cursor: u64) -> (Vec<Value>, u64) {
        let v = self
            .events
            .iter()
            .filter(|(n, _)| *n > cursor)
            .map(|(_, e)| e.clone())
            .collect();
        (v, self.next)
    }
}

fn payload_json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap_or(Value::Null)
}

impl Node {
    /// Emit an event: to local listeners and to every remote subscription it matches.
    pub(super) fn emit_event(&mut self, now: Instant, event: &str, payload: &Value) -> usize {
        let node = self.grid_destination;
        self.record_event(node.to_string(), event, payload.clone());
        let matching = self.grid.inbound.subscriptions.matching(event);
        let mut sent = 0;
        for link in matching {
            let frame = GridFrame {
                correlation: 0,
                source: node.0,
                target: [0; 16],
                timestamp_ms: crate::clock::wall_ms(),
                ttl_ms: 0,
                body: Body::Event {
                    event: event.to_string(),
                    payload: payload.to_string().into_bytes(),
                },
            };
            match self
                .transport
                .link_channel_send(now, &link, GRID_FRAME_MSGTYPE, &frame.encode())
            {
                Ok(_) => sent += 1,
                Err(e) => tracing::debug!(%link, error = %e, "could not forward an event"),
            }
        }
        sent
    }

    /// Record an event for this node's listeners (recent events, API subscribers) only.
    pub(super) fn record_event(&mut self, node: String, event: &str, payload: Value) {
        let v = json!({"node": node, "event": event, "payload": payload});
        self.grid.recent_events.push(v);
        let event = event.to_string();
        self.emit(|| NodeEvent::GridEvent {
            node: node.clone(),
            event: event.clone(),
            payload: payload.clone(),
        });
    }

    /// A channel message carrying a GridFrame: an event from a subscription, or progress
    /// of a command this node sent. Taken only on a link this node opened, and only when
    /// it names the node at the other end as its source (the link's handshake proved who
    /// that is); progress only for a command sent on that link. Anything else is forged
    /// or stray and is dropped.
    pub(super) fn on_frame_message(&mut self, link: LinkId, data: &[u8]) {
        let frame = match GridFrame::decode(data) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(%link, error = %e, "ignored a bad frame on the channel");
                return;
            }
        };
        let Some(peer) = self
            .transport
            .link(&link)
            .filter(|l| l.initiator)
            .map(|l| l.destination)
        else {
            tracing::debug!(%link, "ignored a frame pushed on a link this node did not open");
            return;
        };
        if frame.source != peer.0 {
            tracing::info!(%link, %peer, claimed = %rns_core::AddressHash(frame.source), "dropped a frame naming another node as its source");
            return;
        }
        let node = peer.to_string();
        match frame.body {
            Body::Event { event, payload } => {
                self.record_event(node, &event, payload_json(&payload));
            }
            Body::Progress { fraction, payload } => {
                if !self.grid.progress.expected(link, frame.correlation) {
                    tracing::debug!(%link, correlation = frame.correlation, "ignored progress for a command not sent on this link");
                    return;
                }
                let payload = json!({"fraction": fraction, "detail": payload_json(&payload)});
                let event = crate::commands::job_event(frame.correlation, "progress");
                self.record_event(node, &event, payload);
            }
            _ => tracing::debug!(%link, "ignored a non-event frame on the channel"),
        }
    }

    /// A command frame (`bytes`) is being sent on `link`: its progress may come back on it.
    pub(super) fn expect_progress(&mut self, link: LinkId, bytes: &[u8]) {
        let Some(prefix) = bytes.get(1..crate::frame::PREFIX_LEN) else {
            return;
        };
        let Ok(prefix) = <[u8; 8]>::try_from(prefix) else {
            return;
        };
        self.grid.progress.expect(link, u64::from_be_bytes(prefix));
    }
}
