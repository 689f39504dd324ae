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
use crate::frame::{names, Body, GridFrame};

pub(super) use crate::frame::CHANNEL_MSGTYPE as GRID_FRAME_MSGTYPE;
/// The ACL name subscriptions are checked under.
pub(super) const SUBSCRIBE_COMMAND: &str = "grid/subscribe";
/// Subscriptions one link may hold.
pub(super) const SUBSCRIPTIONS_PER_LINK: usize = 32;
/// Subscriptions the node holds in all.
pub(super) const MAX_SUBSCRIPTIONS: usize = 4096;
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
        let matching: Vec<LinkId> = self
            .subscriptions
            .iter()
            .filter(|(_, p)| names::matches(p, event))
            .map(|(l, _)| *l)
            .collect();
        let mut sent = 0;
        for link in matching {
            let frame = GridFrame {
                correlation: 0,
                source: node.0,
                target: [0; 16],
                timestamp_ms: now.as_millis(),
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
        self.recent_events.push(v);
        let event = event.to_string();
        self.emit(|| NodeEvent::GridEvent {
            node: node.clone(),
            event: event.clone(),
            payload: payload.clone(),
        });
    }

    /// A channel message carrying a GridFrame (an event from a subscription).
    pub(super) fn on_frame_message(&mut self, link: LinkId, data: &[u8]) {
        match GridFrame::decode(data) {
            Ok(GridFrame {
                source,
                body: Body::Event { event, payload },
                ..
            }) => {
                let node = rns_core::AddressHash(source).to_string();
                self.record_event(node, &event, payload_json(&payload));
            }
            Ok(GridFrame {
                source,
                correlation,
                body: Body::Progress { fraction, payload },
                ..
            }) => {
                let node = rns_core::AddressHash(source).to_string();
                let payload = json!({"fraction": fraction, "detail": payload_json(&payload)});
                let event = crate::commands::job_event(correlation, "progress");
                self.record_event(node, &event, payload);
            }
            Ok(_) => tracing::debug!(%link, "ignored a non-event frame on the channel"),
            Err(e) => tracing::debug!(%link, error = %e, "ignored a bad frame on the channel"),
        }
    }

    /// Record a peer's subscription on `link`; false if it holds too many.
    pub(super) fn subscribe_link(&mut self, link: LinkId, pattern: &str) -> bool {
        if self
            .subscriptions
            .iter()
            .any(|(l, p)| *l == link && p == pattern)
        {
            return true;
        }
        let on_link = self
            .subscriptions
            .iter()
            .filter(|(l, _)| *l == link)
            .count();
        if on_link >= SUBSCRIPTIONS_PER_LINK || self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return false;
        }
        self.subscriptions.push((link, pattern.to_string()));
        true
    }

    /// Drop a subscription (or all of a link's, when it closes).
    pub(super) fn unsubscribe_link(&mut self, link: LinkId, pattern: Option<&str>) {
        self.subscriptions
            .retain(|(l, p)| !(*l == link && pattern.is_none_or(|x| x == p)));
    }
}
