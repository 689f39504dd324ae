//! Events on the node (`Events.emit`): emitting them (the grid layer sends them to remote
//! subscriptions, see [`crate::proto::layer`]), and keeping them for this node's
//! listeners (`grid listen`, API subscribers).

use std::collections::VecDeque;

use rns_core::Instant;
use serde_json::{json, Value};

use super::Node;
use crate::api::NodeEvent;

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

impl Node {
    /// Emit an event: to local listeners and to every remote subscription it matches
    /// (see [`crate::proto::layer::GridLayer::emit`]).
    pub(super) fn emit_event(&mut self, now: Instant, event: &str, payload: &Value) -> usize {
        self.with_grid(now, |grid, at, transport, _| {
            grid.emit(at, transport, event, payload)
        })
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
}
