//! Announcing this node: its destinations at start, every interval and on new
//! interfaces (spread out so RNS neighbours do not hold them), introductions on slow
//! interfaces, re-announces when the capability summary changes, and what other Grid
//! nodes' announces say they can do.

use std::time::Duration;

use rns_core::transport::InterfaceId;
use rns_core::{AddressHash, Instant};

use super::Node;

/// Gap between announces of a node's different destinations. RNS neighbours start
/// holding announces for unknown destinations above 3 announces a second on a new
/// interface, so a node never sends its own in a burst.
pub(super) const ANNOUNCE_STAGGER: Duration = Duration::from_secs(2);

/// Grid nodes whose capabilities are remembered.
const MAX_PEERS: usize = 10_000;

/// Interfaces slower than this (radios) share their channel with every neighbour.
pub(super) const SLOW_LINK_BPS: u64 = 1_000_000;
/// The window a node's introduction on a slow interface is spread over.
pub(super) const SLOW_LINK_ANNOUNCE_JITTER: Duration = Duration::from_secs(3);

/// Least time between announces made because the capability summary changed.
pub const CAPABILITY_ANNOUNCE_GAP: Duration = Duration::from_secs(10);

/// Announces carry their emission time in whole seconds, and receivers (RNS and Grid)
/// take a re-announce only when it is newer than the one they hold: a second announce
/// within the same second is dropped. A re-announce waits this long after the last.
pub(super) const EMISSION_RESOLUTION: Duration = Duration::from_millis(1100);

/// A random duration in `[0, max)`: keeps nodes that started together from announcing
/// in step.
pub(super) fn jitter(max: Duration) -> Duration {
    use rand_core::RngCore;
    let ms = max.as_millis().min(u128::from(u32::MAX)) as u32;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(u64::from(rand_core::OsRng.next_u32() % ms))
}

/// A schedule announcing `destinations` one after another from `start`.
pub(super) fn stagger(destinations: &[AddressHash], start: Instant) -> Vec<(AddressHash, Instant)> {
    destinations
        .iter()
        .enumerate()
        // The first goes at `start`: RNS peers hold announces that arrive in quick
        // succession on a young interface, so it must not drift towards the introduction
        // sent when an interface comes up. The others are spread a little.
        .map(|(i, d)| {
            let spread = if i == 0 {
                Duration::ZERO
            } else {
                jitter(ANNOUNCE_STAGGER / 2)
            };
            (*d, start + ANNOUNCE_STAGGER * i as u32 + spread)
        })
        .collect()
}

/// What this node announces, and when.
pub(super) struct Announcing {
    /// Destinations announced at start, every interval and on new interfaces: grid.node,
    /// `rnstransport.probe` on transport nodes (as RNS does), and `rncp.receive` when this
    /// node accepts files from anyone (as `rncp -l` does).
    pub(super) announced: Vec<AddressHash>,
    /// When each announced destination is next announced.
    pub(super) schedule: Vec<(AddressHash, Instant)>,
    /// Introductions (one announce of grid.node) due on slow interfaces that just came up.
    pub(super) on_interfaces: Vec<(InterfaceId, Instant)>,
    /// How often every destination is announced.
    pub(super) interval: Duration,
    /// When grid.node was last announced (on any interface).
    pub(super) node_announced: Option<Instant>,
}

impl Node {
    /// Apply a change to the capability summary; re-announce grid.node soon if it changed.
    pub(super) fn update_capabilities(
        &mut self,
        now: Instant,
        change: Box<dyn FnOnce(&mut crate::capabilities::Capabilities) + Send>,
    ) -> crate::capabilities::Capabilities {
        let before = self.grid.layer.capabilities.clone();
        change(&mut self.grid.layer.capabilities);
        if self.grid.layer.capabilities != before {
            let d = self.grid_destination;
            self.transport
                .set_app_data(&d, self.grid.layer.capabilities.encode());
            let at = self
                .grid
                .capability_announced
                .map_or(now, |t| (t + CAPABILITY_ANNOUNCE_GAP).max(now));
            // Not in the second of the last announce, or peers would drop it as stale.
            let at = self
                .announcing
                .node_announced
                .map_or(at, |t| at.max(t + EMISSION_RESOLUTION));
            self.grid.capability_announced = Some(at);
            if let Some(entry) = self.announcing.schedule.iter_mut().find(|(x, _)| *x == d) {
                entry.1 = entry.1.min(at);
            }
            tracing::info!(capabilities = %self.grid.layer.capabilities.to_json(), "capabilities changed; re-announcing");
        }
        self.grid.layer.capabilities.clone()
    }

    /// Announce every announced destination now (`grid announce`), keeping them apart.
    pub(super) fn announce(&mut self, now: Instant) {
        self.announcing.schedule = stagger(&self.announcing.announced, now);
        self.announce_due(now);
    }

    /// Send the announces that are due, and schedule each one's next round. While no
    /// interface is up they are postponed (keeping their stagger), not skipped.
    pub(super) fn announce_due(&mut self, now: Instant) {
        let interval = self.announcing.interval;
        let up = self.interfaces.any_up();
        for (i, (d, t)) in self.announcing.schedule.iter_mut().enumerate() {
            if *t > now {
                continue;
            }
            if !up {
                *t = now + ANNOUNCE_STAGGER * (i as u32 + 1);
                continue;
            }
            // A little randomness keeps nodes from announcing in step (colliding on a
            // shared radio channel) without bunching this node's own announces; short
            // intervals (tests, demos) stay exact.
            let spread = if interval >= Duration::from_secs(30) {
                jitter(ANNOUNCE_STAGGER / 2)
            } else {
                Duration::ZERO
            };
            *t = now + interval + spread;
            if *d == self.grid_destination {
                self.announcing.node_announced = Some(now);
            }
            if let Err(e) = self.transport.announce(now, d, None) {
                tracing::warn!(error = %e, "announce failed");
            }
        }
    }

    /// A Grid node announced: remember what it can do (bounded; the stalest go first).
    pub(super) fn on_grid_node_announce(
        &mut self,
        now: Instant,
        node: AddressHash,
        hops: u8,
        app_data: &[u8],
    ) {
        if let Some(id) = self.transport.recall_identity(&node) {
            self.dtn.known_nodes.learn(node, &id);
        }
        self.dht_heard(now, node);
        self.neighbour_heard(now, node, hops);
        let Some(caps) = crate::capabilities::Capabilities::decode(app_data) else {
            return;
        };
        if !self.grid.peers.contains_key(&node) && self.grid.peers.len() >= MAX_PEERS {
            if let Some(oldest) = self
                .grid
                .peers
                .iter()
                .min_by_key(|(_, (_, _, t))| *t)
                .map(|(k, _)| *k)
            {
                self.grid.peers.remove(&oldest);
            }
        }
        self.grid.peers.insert(node, (caps, hops, now));
        // Bundles waiting for this node (or for nodes behind this custodian) may move now.
        self.dtn.courier_wake.notify_one();
    }

    /// Introduce ourselves on slow interfaces whose random wait is over.
    pub(super) fn interface_announces_due(&mut self, now: Instant) {
        let d = self.grid_destination;
        let due: Vec<InterfaceId> = self
            .announcing
            .on_interfaces
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(i, _)| *i)
            .collect();
        self.announcing.on_interfaces.retain(|(_, t)| *t > now);
        for id in due {
            if self
                .transport
                .interfaces()
                .any(|(i, _, online, _)| i == id && online)
            {
                let r = self.transport.announce_on(now, &d, id);
                self.announcing.node_announced = Some(now);
                tracing::debug!(interface = %id, announce = ?r, "introduced on a slow interface");
            }
        }
    }
}
