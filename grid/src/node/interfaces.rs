//! The node's interfaces: where each one's frames go, which are up but not yet ready for
//! traffic (see [`Readiness`]), the latest radio figures, and frames dropped because an
//! interface's queue was full. Interfaces come and go as [`InterfaceEvent`]s.

use std::collections::HashMap;

use grid_interfaces::rnode::RadioStats;
use grid_interfaces::{InterfaceEvent, Readiness};
use rns_core::transport::{InterfaceConfig, InterfaceId, Transmit};
use rns_core::Instant;
use tokio::sync::mpsc;

use super::announcing::{jitter, SLOW_LINK_ANNOUNCE_JITTER, SLOW_LINK_BPS};
use super::Node;
use crate::control::response;

/// The interfaces' bookkeeping on the node.
#[derive(Debug, Default)]
pub(super) struct Interfaces {
    /// Where each interface's frames go (its task's queue).
    outbound: HashMap<InterfaceId, mpsc::Sender<Vec<u8>>>,
    /// Interfaces that are up but not yet ready, with the latest time they become ready.
    pending: HashMap<InterfaceId, (InterfaceConfig, Instant)>,
    /// The latest signal and channel figures of each radio interface.
    pub(super) radio: HashMap<InterfaceId, RadioStats>,
    /// Frames dropped because an interface's queue was full.
    pub(super) dropped: u64,
    /// Interfaces slower than [`SLOW_LINK_BPS`] (radios), where chatty work stays off.
    pub(super) slow: std::collections::HashSet<InterfaceId>,
    /// The interfaces as configured (for `status`: listeners show with no clients).
    pub(super) configured: Vec<response::ConfiguredInterface>,
}

/// What a configured interface is, before it starts (connections are counted later).
pub(super) fn describe(spec: &crate::config::InterfaceSpec) -> response::ConfiguredInterface {
    use crate::config::InterfaceKind as K;
    let (kind, address) = match &spec.kind {
        K::TcpServer { listen, .. } => ("tcp_server", listen.clone()),
        K::TcpClient { target } => ("tcp_client", target.clone()),
        K::Udp { listen, forward } => ("udp", format!("{listen} → {forward}")),
        K::Auto(a) => ("auto", format!("group {}", a.group_id)),
        K::Serial(s) => ("serial", s.port.clone()),
        K::Kiss(k) => ("kiss", k.serial.port.clone()),
        K::Rnode(r) => ("rnode", r.port.clone()),
        K::Local { instance } => ("local", format!("instance {instance}")),
    };
    response::ConfiguredInterface {
        name: spec.rns.name.clone(),
        kind: kind.into(),
        address,
        mode: mode_name(spec.rns.mode).into(),
        bitrate: spec.rns.bitrate,
        connections: 0,
    }
}

/// A mode as config.toml spells it.
fn mode_name(m: rns_core::transport::InterfaceMode) -> &'static str {
    use rns_core::transport::InterfaceMode as M;
    match m {
        M::Full => "full",
        M::PointToPoint => "point_to_point",
        M::AccessPoint => "access_point",
        M::Roaming => "roaming",
        M::Boundary => "boundary",
        M::Gateway => "gateway",
        M::Internal => "internal",
    }
}

/// `configured` with each one's connections counted among the interfaces up now (a
/// listener's clients are named `<listener> <peer>`).
pub(super) fn with_connections(
    configured: &[response::ConfiguredInterface],
    up: &[(&str, bool)],
) -> Vec<response::ConfiguredInterface> {
    configured
        .iter()
        .map(|c| {
            let prefix = format!("{} <", c.name);
            let connections = up
                .iter()
                .filter(|(name, online)| *online && (*name == c.name || name.starts_with(&prefix)))
                .count();
            response::ConfiguredInterface {
                connections,
                ..c.clone()
            }
        })
        .collect()
}

impl Interfaces {
    /// An interface came up; it is ready at `until` (or when its peer speaks).
    fn up(
        &mut self,
        id: InterfaceId,
        outbound: mpsc::Sender<Vec<u8>>,
        config: InterfaceConfig,
        until: Instant,
    ) {
        self.outbound.insert(id, outbound);
        self.pending.insert(id, (config, until));
    }

    /// An interface went down; `remove` when it will not come back.
    fn down(&mut self, id: InterfaceId, remove: bool) {
        self.pending.remove(&id);
        if remove {
            self.radio.remove(&id);
            self.outbound.remove(&id);
        }
    }

    /// Hand a frame to its interface's task; counted as dropped when the queue is full.
    pub(super) fn send(&mut self, t: Transmit) {
        if let Some(tx) = self.outbound.get(&t.interface) {
            if tx.try_send(t.frame).is_err() {
                self.dropped += 1;
            }
        }
    }

    /// Whether any interface is up.
    pub(super) fn any_up(&self) -> bool {
        !self.outbound.is_empty()
    }

    fn is_pending(&self, id: InterfaceId) -> bool {
        self.pending.contains_key(&id)
    }

    /// Stop waiting for `id`: its config, if it was waiting.
    fn take_pending(&mut self, id: InterfaceId) -> Option<InterfaceConfig> {
        self.pending.remove(&id).map(|(c, _)| c)
    }

    /// Interfaces whose wait is over at `now`.
    fn due(&self, now: Instant) -> Vec<InterfaceId> {
        self.pending
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(i, _)| *i)
            .collect()
    }

    /// When the next waiting interface becomes ready.
    pub(super) fn next_ready(&self) -> Option<Instant> {
        self.pending.values().map(|(_, t)| *t).min()
    }
}

impl Node {
    /// Activate pending interfaces whose wait is over.
    pub(super) fn activate_due(&mut self, now: Instant) {
        for id in self.interfaces.due(now) {
            self.activate(now, id);
        }
    }

    /// Let the transport use an interface, and introduce ourselves on it.
    fn activate(&mut self, now: Instant, id: InterfaceId) {
        let Some(config) = self.interfaces.take_pending(id) else {
            return;
        };
        let slow = config.bitrate < SLOW_LINK_BPS;
        if slow {
            self.interfaces.slow.insert(id);
        }
        if self.transport.interfaces().any(|(i, ..)| i == id) {
            self.transport.set_interface_online(id, true);
        } else {
            self.transport.add_interface(now, id, config);
        }
        // One announce only: RNS neighbours hold announces for unknown destinations when a
        // new interface sees more than 3 a second, so the others follow on their schedule.
        // On a shared radio channel, nodes that power up together would all announce at
        // once and collide where hidden from each other, so wait a random moment there.
        if slow {
            self.announcing
                .on_interfaces
                .push((id, now + jitter(SLOW_LINK_ANNOUNCE_JITTER)));
        } else {
            let d = self.grid_destination;
            let r = self.transport.announce_on(now, &d, id);
            self.announcing.node_announced = Some(now);
            tracing::debug!(interface = %id, announce = ?r, "interface ready");
        }
        // Ask the new neighbour for the paths that control requests are waiting on.
        for dest in self.destinations_awaiting_paths() {
            self.transport.request_path(now, &dest, Some(id));
        }
    }

    pub(super) fn on_interface(&mut self, now: Instant, ev: InterfaceEvent) {
        match ev {
            InterfaceEvent::Up {
                id,
                config,
                outbound,
                ready,
            } => {
                // Until it is ready, the transport must not send on it.
                self.transport.set_interface_online(id, false);
                let until = match ready {
                    Readiness::Now => now,
                    Readiness::After(d) => now + d,
                };
                self.interfaces.up(id, outbound, *config, until);
                if ready == Readiness::Now {
                    self.activate(now, id);
                }
            }
            InterfaceEvent::Down { id, remove } => {
                self.interfaces.down(id, remove);
                if remove {
                    self.transport.remove_interface(id);
                } else {
                    self.transport.set_interface_online(id, false);
                }
            }
            InterfaceEvent::Frame { id, data } => {
                if self.interfaces.is_pending(id) {
                    self.activate(now, id); // the peer spoke: it is ready
                }
                self.transport.handle_inbound_vec(now, id, data)
            }
            InterfaceEvent::Radio { id, stats } => {
                self.interfaces.radio.insert(id, *stats);
            }
            InterfaceEvent::Frames { id, frames } => {
                if self.interfaces.is_pending(id) {
                    self.activate(now, id);
                }
                for data in frames {
                    self.transport.handle_inbound_vec(now, id, data);
                }
            }
        }
    }
}
