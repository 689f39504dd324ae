//! What the transport knows about each attached interface.

use core::fmt;
use std::time::Duration;

use super::admission::TokenBucket;
use super::announce_cap::AnnounceCap;
use super::ingress::IngressControl;
use crate::ifac::Ifac;
use crate::time::Instant;

/// Identifies an interface inside one transport instance (assigned by the driver).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct InterfaceId(pub u32);

impl fmt::Display for InterfaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "if{}", self.0)
    }
}

/// RNS interface modes; they change announce propagation and path discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InterfaceMode {
    /// Full (default).
    #[default]
    Full,
    /// Point-to-point.
    PointToPoint,
    /// Access point: no broadcast announces out; paths learned here expire after a day.
    AccessPoint,
    /// Roaming: paths expire after 6 h; announces between roaming interfaces are suppressed.
    Roaming,
    /// Boundary: joins network segments; limits what crosses.
    Boundary,
    /// Gateway: discovers unknown paths for requesters.
    Gateway,
    /// Internal.
    Internal,
}

impl InterfaceMode {
    /// The RNS numeric value (1..=7).
    pub const fn as_u8(self) -> u8 {
        match self {
            InterfaceMode::Full => 1,
            InterfaceMode::PointToPoint => 2,
            InterfaceMode::AccessPoint => 3,
            InterfaceMode::Roaming => 4,
            InterfaceMode::Boundary => 5,
            InterfaceMode::Gateway => 6,
            InterfaceMode::Internal => 7,
        }
    }

    /// Modes on which a transport node searches for paths it does not know.
    pub(crate) const fn discovers_paths(self) -> bool {
        matches!(
            self,
            InterfaceMode::AccessPoint
                | InterfaceMode::Gateway
                | InterfaceMode::Roaming
                | InterfaceMode::Internal
        )
    }

    /// Path lifetime for announces learned on an interface of this mode.
    pub(crate) const fn path_lifetime(self) -> Duration {
        match self {
            InterfaceMode::AccessPoint => Duration::from_secs(24 * 60 * 60),
            InterfaceMode::Roaming => Duration::from_secs(6 * 60 * 60),
            _ => Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// Per-destination announce rate limiting on an interface (transport nodes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnounceRate {
    /// Minimum interval between announces for one destination.
    pub target: Duration,
    /// Violations tolerated before blocking.
    pub grace: u32,
    /// Extra blocking time.
    pub penalty: Duration,
}

impl AnnounceRate {
    /// RNS defaults for transport nodes: 3600 s, grace 5, penalty 0.
    pub const TRANSPORT_DEFAULT: AnnounceRate = AnnounceRate {
        target: Duration::from_secs(3600),
        grace: 5,
        penalty: Duration::ZERO,
    };
}

/// Whether an interface reaches the network or a program on this host (a shared instance
/// and its local clients, RNS `LocalInterface`). The local hop does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalRole {
    /// A network interface.
    #[default]
    Network,
    /// The other end is a local client of ours: we are its shared instance and route for
    /// it, even when not a transport node.
    Client,
    /// The other end is our shared instance: we are its client.
    Instance,
}

/// Static description of an interface, given when it is attached.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    /// Human-readable name for status output.
    pub name: String,
    /// Mode.
    pub mode: InterfaceMode,
    /// Bits per second (estimated for TCP: 10 Mbit/s).
    pub bitrate: u64,
    /// Largest frame the interface carries (`HW_MTU`); `None` if unknown.
    pub hw_mtu: Option<usize>,
    /// Whether the MTU is auto-configured or fixed (allows link MTU upgrades).
    pub mtu_negotiable: bool,
    /// Interface access code, if configured.
    pub ifac: Option<Ifac>,
    /// Announce cap as a fraction of bitrate (default 0.02).
    pub announce_cap: f64,
    /// Whether packets may be sent on it.
    pub outbound: bool,
    /// Ingress control for announce and path request bursts.
    pub ingress_control: bool,
    /// Per-destination announce rate limiting; `None` = off (default on transport nodes).
    pub announce_rate: Option<AnnounceRate>,
    /// Network, or one end of a shared-instance connection.
    pub local: LocalRole,
}

impl InterfaceConfig {
    /// Defaults for a stream interface (TCP): 10 Mbit/s, HW MTU 16384 auto-configured.
    pub fn tcp(name: impl Into<String>) -> Self {
        InterfaceConfig {
            name: name.into(),
            mode: InterfaceMode::Full,
            bitrate: 10_000_000,
            hw_mtu: Some(16384),
            mtu_negotiable: true,
            ifac: None,
            announce_cap: 0.02,
            outbound: true,
            ingress_control: true,
            announce_rate: None,
            local: LocalRole::Network,
        }
    }

    /// A connection between a shared instance and a local client (RNS `LocalInterface`):
    /// 1 Gbit/s, HW MTU 262144 auto-configured, no ingress control. `role` says which end
    /// the other side is.
    pub fn local(name: impl Into<String>, role: LocalRole) -> Self {
        InterfaceConfig {
            bitrate: 1_000_000_000,
            hw_mtu: Some(262_144),
            ingress_control: false,
            local: role,
            ..Self::tcp(name)
        }
    }

    /// A LoRa radio (RNS `RNodeInterface`): `bitrate` from the modulation, HW MTU 508
    /// fixed (two 255-byte LoRa frames), so links across it run at MTU 500.
    pub fn radio(name: impl Into<String>, bitrate: u64) -> Self {
        InterfaceConfig {
            bitrate,
            hw_mtu: Some(508),
            mtu_negotiable: false,
            ..Self::tcp(name)
        }
    }

    /// A serial line or KISS TNC (RNS `SerialInterface`, `KISSInterface`): HW MTU 564
    /// fixed, `bitrate` as configured or guessed.
    pub fn serial(name: impl Into<String>, bitrate: u64) -> Self {
        InterfaceConfig {
            bitrate,
            hw_mtu: Some(564),
            mtu_negotiable: false,
            ..Self::tcp(name)
        }
    }

    /// Defaults for a UDP interface: 10 Mbit/s, HW MTU 1064, not negotiable.
    pub fn udp(name: impl Into<String>) -> Self {
        InterfaceConfig {
            hw_mtu: Some(1064),
            mtu_negotiable: false,
            ..Self::tcp(name)
        }
    }
}

/// Traffic and error counters of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InterfaceStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Announces received.
    pub rx_announces: u64,
    /// Announces sent.
    pub tx_announces: u64,
    /// Frames dropped for a missing, unexpected or wrong access code.
    pub ifac_violations: u64,
    /// Malformed or protocol-violating frames dropped.
    pub protocol_violations: u64,
    /// Duplicates and packets for other transport nodes.
    pub filtered: u64,
    /// Announces held by ingress control right now.
    pub held_announces: u64,
    /// Announces waiting for the announce cap right now.
    pub queued_announces: u64,
}

/// Runtime state of an attached interface.
#[derive(Debug)]
pub(crate) struct InterfaceState {
    pub(crate) config: InterfaceConfig,
    pub(crate) created: Instant,
    pub(crate) online: bool,
    pub(crate) stats: InterfaceStats,
    pub(crate) cap: AnnounceCap,
    pub(crate) ingress: IngressControl,
    /// Link requests this interface may still have answered.
    pub(crate) link_requests: TokenBucket,
}

impl InterfaceState {
    pub(crate) fn new(config: InterfaceConfig, now: Instant) -> Self {
        InterfaceState {
            config,
            created: now,
            online: true,
            stats: InterfaceStats::default(),
            cap: AnnounceCap::default(),
            ingress: IngressControl::default(),
            link_requests: TokenBucket::default(),
        }
    }

    pub(crate) fn age(&self, now: Instant) -> Duration {
        now.saturating_since(self.created)
    }

    /// Largest inbound frame accepted (HW MTU plus IFAC).
    pub(crate) fn max_frame(&self) -> usize {
        self.config.hw_mtu.unwrap_or(crate::packet::MTU)
            + self.config.ifac.as_ref().map_or(0, |i| i.size())
    }
}
