//! AutoInterface: zero-configuration LAN peering over IPv6 link-local multicast,
//! compatible with RNS's AutoInterface (rns-wire.md §9.3).
//!
//! Every NIC with an IPv6 link-local address is adopted (and NICs that appear later, or
//! whose address changes, are picked up by a rescan every few seconds). On each NIC the
//! node multicasts its discovery token every 1.6 s, listens for other nodes' tokens, and
//! answers known peers by unicast every 5.2 s. Each peer becomes its own interface (as
//! RNS's AutoInterfacePeer does) that carries raw packets, one per UDP datagram, to the
//! peer's data port. Peers silent for 22 s are dropped.

pub mod peers;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rns_core::transport::{InterfaceConfig, InterfaceId};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use peers::{AddressType, Scope};
use peers::{Discovery, Peers, TOKEN_LEN};

use crate::{max_frame, Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

/// RNS's fixed AutoInterface hardware MTU.
pub const HW_MTU: usize = 1196;
/// Default discovery (multicast) port; unicast discovery uses the next one.
pub const DEFAULT_DISCOVERY_PORT: u16 = 29716;
/// Default data port.
pub const DEFAULT_DATA_PORT: u16 = 42671;
/// How often NICs are rescanned for new or changed link-local addresses.
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);
/// NIC names never used (as RNS skips them).
const IGNORED_NICS: &[&str] = &["lo0"];

/// What an AutoInterface does, beyond the common interface settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoConfig {
    /// The group: only nodes with the same group id peer. Default `reticulum`.
    pub group_id: String,
    /// Multicast scope (default link).
    pub discovery_scope: Scope,
    /// Multicast address type (default temporary).
    pub address_type: AddressType,
    /// Discovery port (unicast discovery is the next port).
    pub discovery_port: u16,
    /// Data port.
    pub data_port: u16,
    /// Only these NICs, when not empty.
    pub devices: Vec<String>,
    /// Never these NICs.
    pub ignored_devices: Vec<String>,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig {
            group_id: "reticulum".into(),
            discovery_scope: Scope::Link,
            address_type: AddressType::Temporary,
            discovery_port: DEFAULT_DISCOVERY_PORT,
            data_port: DEFAULT_DATA_PORT,
            devices: Vec::new(),
            ignored_devices: Vec::new(),
        }
    }
}

/// A NIC with a link-local IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Its name (`eth0`, `wlan0`).
    pub name: String,
    /// Its interface index (the scope id of its link-local addresses).
    pub index: u32,
    /// Its link-local address.
    pub addr: Ipv6Addr,
}

/// The NICs this configuration may use, right now.
pub fn scan(cfg: &AutoConfig) -> io::Result<Vec<Nic>> {
    let mut out: Vec<Nic> = Vec::new();
    for i in if_addrs::get_if_addrs()? {
        let if_addrs::IfAddr::V6(v6) = &i.addr else {
            continue;
        };
        let Some(index) = i.index else { continue };
        let ip = v6.ip;
        let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
        let allowed = if cfg.devices.is_empty() {
            !IGNORED_NICS.contains(&i.name.as_str())
        } else {
            cfg.devices.contains(&i.name)
        };
        if !link_local || !allowed || cfg.ignored_devices.contains(&i.name) || i.is_loopback() {
            continue;
        }
        if !out.iter().any(|n| n.index == index) {
            out.push(Nic {
                name: i.name.clone(),
                index,
                addr: ip,
            });
        }
    }
    Ok(out)
}

/// A UDP socket bound to `addr`, optionally shared with other processes.
fn udp6(addr: SocketAddrV6, reuse: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    if reuse {
        s.set_reuse_address(true)?;
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V6(addr).into())?;
    UdpSocket::from_std(s.into())
}

/// The sockets of one adopted NIC.
struct NicSockets {
    nic: Nic,
    /// Sends our multicast and reverse tokens; receives reverse tokens.
    unicast: Arc<UdpSocket>,
    /// Carries packets to and from peers.
    data: Arc<UdpSocket>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for NicSockets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Something a NIC's sockets received.
enum NicEvent {
    Discovery {
        nic: u32,
        src: Ipv6Addr,
        token: Vec<u8>,
    },
    Data {
        src: Ipv6Addr,
        data: Vec<u8>,
    },
}

/// Forward datagrams from `socket` as events until the driver goes away.
fn receive(
    socket: Arc<UdpSocket>,
    nic: u32,
    data: bool,
    max: usize,
    events: mpsc::Sender<NicEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; max.max(TOKEN_LEN) + 1];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(nic, error = %e, "auto interface receive error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let SocketAddr::V6(from) = from else { continue };
            let ev = if data {
                if n > max {
                    continue;
                }
                NicEvent::Data {
                    src: *from.ip(),
                    data: buf[..n].to_vec(),
                }
            } else {
                NicEvent::Discovery {
                    nic,
                    src: *from.ip(),
                    token: buf[..n.min(TOKEN_LEN)].to_vec(),
                }
            };
            if events.send(ev).await.is_err() {
                return;
            }
        }
    })
}

/// One AutoInterface: its NICs, peers and their interfaces.
struct Driver {
    hub: Hub,
    cfg: AutoConfig,
    template: InterfaceConfig,
    group: Ipv6Addr,
    peers: Peers,
    nics: HashMap<u32, NicSockets>,
    /// Peer → its interface id and the task that sends its frames.
    peer_ifaces: HashMap<Ipv6Addr, (InterfaceId, JoinHandle<()>)>,
    events: mpsc::Sender<NicEvent>,
    /// NICs we warned about (no multicast echo), to warn once per state change.
    silent: HashMap<u32, bool>,
    /// NICs whose data port was taken, warned about once.
    busy: std::collections::HashSet<u32>,
}

impl Driver {
    fn max_frame(&self) -> usize {
        max_frame(&self.template)
    }

    /// Adopt new NICs, drop vanished ones, follow address changes.
    async fn rescan(&mut self) {
        let found = match scan(&self.cfg) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list network interfaces");
                return;
            }
        };
        let stale: Vec<u32> = self
            .nics
            .values()
            .filter(|s| !found.contains(&s.nic))
            .map(|s| s.nic.index)
            .collect();
        for index in stale {
            if let Some(s) = self.nics.remove(&index) {
                tracing::info!(nic = %s.nic.name, "auto interface: NIC gone or readdressed");
            }
            for p in self.peers.drop_nic(index) {
                self.peer_down(p).await;
            }
        }
        for nic in found {
            if self.nics.contains_key(&nic.index) {
                continue;
            }
            match self.open(&nic) {
                Ok(s) => {
                    tracing::info!(nic = %nic.name, addr = %nic.addr, group = %self.group, "auto interface: listening");
                    self.peers.adopt(nic.index, nic.addr);
                    self.nics.insert(nic.index, s);
                    self.announce(nic.index).await;
                }
                // Often a tentative address (duplicate address detection still running):
                // the next rescan tries again.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    if self.busy.insert(nic.index) {
                        tracing::warn!(nic = %nic.name, port = self.cfg.data_port, "auto interface: data port in use on this NIC (another node on this host?); retrying");
                    }
                }
                Err(e) => {
                    tracing::debug!(nic = %nic.name, error = %e, "auto interface: NIC not usable yet")
                }
            }
        }
    }

    fn open(&self, nic: &Nic) -> io::Result<NicSockets> {
        let scope = nic.index;
        let group_bind = if cfg!(windows) {
            SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, self.cfg.discovery_port, 0, 0)
        } else {
            let sid = if self.cfg.discovery_scope == Scope::Link {
                scope
            } else {
                0
            };
            SocketAddrV6::new(self.group, self.cfg.discovery_port, 0, sid)
        };
        let mcast = udp6(group_bind, true)?;
        mcast.join_multicast_v6(&self.group, scope)?;
        let unicast = udp6(
            SocketAddrV6::new(nic.addr, self.cfg.discovery_port.wrapping_add(1), 0, scope),
            true,
        )?;
        let s = socket2::SockRef::from(&unicast);
        s.set_multicast_if_v6(scope)?;
        s.set_multicast_loop_v6(true)?;
        let data = udp6(
            SocketAddrV6::new(nic.addr, self.cfg.data_port, 0, scope),
            false,
        )?;
        let (mcast, unicast, data) = (Arc::new(mcast), Arc::new(unicast), Arc::new(data));
        let max = self.max_frame();
        let tasks = vec![
            receive(mcast, scope, false, max, self.events.clone()),
            receive(unicast.clone(), scope, false, max, self.events.clone()),
            receive(data.clone(), scope, true, max, self.events.clone()),
        ];
        Ok(NicSockets {
            nic: nic.clone(),
            unicast,
            data,
            tasks,
        })
    }

    /// Multicast our token on a NIC.
    async fn announce(&self, nic: u32) {
        let (Some(s), Some(token)) = (self.nics.get(&nic), self.peers.token(nic)) else {
            return;
        };
        let to = SocketAddrV6::new(self.group, self.cfg.discovery_port, 0, nic);
        if let Err(e) = s.unicast.send_to(&token, to).await {
            tracing::debug!(nic = %s.nic.name, error = %e, "auto interface: multicast failed");
        }
    }

    async fn on_event(&mut self, ev: NicEvent) {
        let now = Instant::now();
        match ev {
            NicEvent::Discovery { nic, src, token } => {
                if let Discovery::NewPeer(addr) = self.peers.on_discovery(now, nic, src, &token) {
                    // Tell the newcomer about us right away rather than at our next
                    // multicast, before the node sends it anything: it peers with us (and
                    // accepts our data) a tick sooner. RNS peers accept this too.
                    self.reverse(addr, nic).await;
                    self.peer_up(addr, nic).await;
                }
            }
            NicEvent::Data { src, data } => {
                if !self.peers.accept_data(now, &src, &data) {
                    return;
                }
                if let Some((id, _)) = self.peer_ifaces.get(&src) {
                    let _ = self.hub.send(InterfaceEvent::Frame { id: *id, data }).await;
                }
            }
        }
    }

    async fn peer_up(&mut self, addr: Ipv6Addr, nic: u32) {
        let Some(s) = self.nics.get(&nic) else { return };
        let id = self.hub.allocate();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUTBOUND_QUEUE);
        let mut config = self.template.clone();
        config.name = format!("{}/{}/{}", self.template.name, s.nic.name, addr);
        let socket = s.data.clone();
        let to = SocketAddrV6::new(addr, self.cfg.data_port, 0, nic);
        let sender = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if let Err(e) = socket.send_to(&frame, to).await {
                    tracing::debug!(peer = %to, error = %e, "auto interface: send failed");
                }
            }
        });
        tracing::info!(peer = %addr, nic = %s.nic.name, "auto interface: new peer");
        self.peer_ifaces.insert(addr, (id, sender));
        let _ = self
            .hub
            .send(InterfaceEvent::Up {
                id,
                config: Box::new(config),
                outbound: tx,
                ready: Readiness::Now,
            })
            .await;
    }

    async fn peer_down(&mut self, addr: Ipv6Addr) {
        if let Some((id, sender)) = self.peer_ifaces.remove(&addr) {
            sender.abort();
            tracing::info!(peer = %addr, "auto interface: peer timed out");
            let _ = self
                .hub
                .send(InterfaceEvent::Down { id, remove: true })
                .await;
        }
    }

    /// Send our token to one peer by unicast (reverse peering).
    async fn reverse(&self, peer: Ipv6Addr, nic: u32) {
        let (Some(s), Some(token)) = (self.nics.get(&nic), self.peers.token(nic)) else {
            return;
        };
        let to = SocketAddrV6::new(peer, self.cfg.discovery_port.wrapping_add(1), 0, nic);
        let _ = s.unicast.send_to(&token, to).await;
    }

    /// Timeouts, reverse peering, carrier checks.
    async fn peer_jobs(&mut self) {
        let now = Instant::now();
        for p in self.peers.expire(now) {
            self.peer_down(p).await;
        }
        for (peer, nic) in self.peers.due_reverse(now) {
            self.reverse(peer, nic).await;
        }
        for (index, s) in &self.nics {
            let quiet = !self.peers.carrier(now, *index);
            if self.silent.insert(*index, quiet) != Some(quiet) && quiet {
                tracing::warn!(
                    nic = %s.nic.name,
                    "auto interface: our own multicast does not come back; the network or a firewall may block multicast"
                );
            }
        }
    }
}

/// Run an AutoInterface until the node goes away. `template` supplies the per-peer
/// interface settings (name prefix, mode, IFAC); the MTU is RNS's fixed 1196, which links
/// may use in full (RNS `FIXED_MTU`).
pub async fn run(hub: Hub, cfg: AutoConfig, template: InterfaceConfig) {
    let mut template = template;
    template.hw_mtu = Some(HW_MTU);
    template.mtu_negotiable = true;
    let (events_tx, mut events) = mpsc::channel(1024);
    let group = peers::multicast_group(
        cfg.group_id.as_bytes(),
        cfg.address_type,
        cfg.discovery_scope,
    );
    let mut d = Driver {
        hub,
        peers: Peers::new(cfg.group_id.as_bytes()),
        cfg,
        template,
        group,
        nics: HashMap::new(),
        peer_ifaces: HashMap::new(),
        events: events_tx,
        silent: HashMap::new(),
        busy: std::collections::HashSet::new(),
    };
    d.rescan().await;
    if d.nics.is_empty() {
        tracing::warn!(
            "auto interface: no NIC with an IPv6 link-local address yet; will keep looking"
        );
    }
    let mut announce = tokio::time::interval(peers::ANNOUNCE_INTERVAL);
    let mut jobs = tokio::time::interval(peers::PEER_JOB_INTERVAL);
    let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
    for t in [&mut announce, &mut jobs, &mut rescan] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        if d.hub.is_closed() {
            return;
        }
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                d.on_event(ev).await;
            }
            _ = announce.tick() => {
                let nics: Vec<u32> = d.nics.keys().copied().collect();
                for n in nics {
                    d.announce(n).await;
                }
            }
            _ = jobs.tick() => d.peer_jobs().await,
            _ = rescan.tick() => d.rescan().await,
        }
    }
}
