//! TCP client and server interfaces with HDLC framing (RNS `TCPClientInterface` /
//! `TCPServerInterface`). No handshake: after connecting, each side just sends frames.
//!
//! A server holds at most [`ServerLimits`] connections (in all, and from one address),
//! and closes a connection whose peer sends no complete frame in time; both sides use TCP
//! keepalive, so a peer that vanishes does not pin its connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rns_core::transport::{InterfaceConfig, InterfaceId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::admission::{accept_backoff, earliest, sleep_until_std, Tally};
use crate::hdlc::{self, Deframer};
use crate::{max_frame, Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

/// Delay between reconnection attempts, and the connect timeout.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(5);

/// Pause before sending on a connection we opened (see [`Readiness`]).
pub const CONNECT_SETTLE: Duration = Duration::from_millis(500);

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The peer closed or the socket failed.
    Peer,
    /// The node has gone away.
    Node,
}

/// Move HDLC frames between a byte stream (TCP, a local socket) and the node until
/// either side ends.
pub(crate) async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    hub: &Hub,
    id: InterfaceId,
    stream: S,
    outbound: &mut mpsc::Receiver<Vec<u8>>,
    max: usize,
) -> Ended {
    pump_from(hub, id, stream, outbound, Deframer::new(max)).await
}

/// The frames of one read as one event (none if there are none).
fn frames_event(id: InterfaceId, frames: &mut Vec<Vec<u8>>) -> Option<InterfaceEvent> {
    match frames.len() {
        0 => None,
        1 => frames.pop().map(|data| InterfaceEvent::Frame { id, data }),
        _ => Some(InterfaceEvent::Frames {
            id,
            frames: std::mem::take(frames),
        }),
    }
}

/// [`pump`], with a deframer that may already hold the start of a frame.
async fn pump_from<S: AsyncRead + AsyncWrite + Unpin>(
    hub: &Hub,
    id: InterfaceId,
    stream: S,
    outbound: &mut mpsc::Receiver<Vec<u8>>,
    mut deframer: Deframer,
) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = Vec::new();
    // The write buffer is kept between writes (allocated once per connection, not once
    // per write), and shrunk back after a large burst.
    let mut out = Vec::new();
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => return Ended::Peer,
                    Ok(n) => n,
                };
                deframer.push(&buf[..n], |f| frames.push(f.to_vec()));
                let Some(event) = frames_event(id, &mut frames) else { continue };
                if !hub.send(event).await {
                    return Ended::Node;
                }
            }
            f = outbound.recv() => {
                let Some(frame) = f else { return Ended::Node };
                out.clear();
                hdlc::encode_into(&frame, &mut out);
                // Coalesce whatever else is queued into one write.
                while let Ok(more) = outbound.try_recv() {
                    hdlc::encode_into(&more, &mut out);
                    if out.len() > 256 * 1024 { break; }
                }
                if wr.write_all(&out).await.is_err() {
                    return Ended::Peer;
                }
                out.shrink_to(64 * 1024);
            }
        }
    }
}

/// Run a TCP client interface: connect to `target`, reconnect every 5 s when it drops.
///
/// The interface keeps one id for its whole life; it goes down and up with the connection.
pub async fn run_client(hub: Hub, target: String, config: InterfaceConfig) {
    let id = hub.allocate();
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    let max = max_frame(&config);
    loop {
        match tokio::time::timeout(RECONNECT_INTERVAL, TcpStream::connect(&target)).await {
            Ok(Ok(stream)) => {
                tracing::info!(interface = %id, %target, "TCP client connected");
                while rx.try_recv().is_ok() {}
                let up = InterfaceEvent::Up {
                    id,
                    config: Box::new(config.clone()),
                    outbound: tx.clone(),
                    ready: Readiness::After(CONNECT_SETTLE),
                };
                if !hub.send(up).await {
                    return;
                }
                tune(&stream);
                if let Ended::Node = pump(&hub, id, stream, &mut rx, max).await {
                    return;
                }
                tracing::info!(interface = %id, %target, "TCP client disconnected");
                if !hub.send(InterfaceEvent::Down { id, remove: false }).await {
                    return;
                }
            }
            Ok(Err(e)) => tracing::debug!(%target, error = %e, "TCP connect failed"),
            Err(_) => tracing::debug!(%target, "TCP connect timed out"),
        }
        if hub.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT_INTERVAL).await;
    }
}

/// Bind a TCP server socket.
pub async fn bind_server(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Connections a TCP server interface holds at once, from all peers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// Connections a TCP server interface holds at once from one IPv4 address (or one IPv6
/// /64 network).
pub const DEFAULT_MAX_PER_IP: usize = 32;
/// How long a new connection may go without sending one complete frame.
pub const DEFAULT_FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// What a TCP server interface lets its peers hold.
///
/// A connection beyond either cap is accepted and closed at once. A connection becomes an
/// interface only when its peer has sent one complete frame (RNS and Grid clients send one
/// within a second of connecting: a tunnel synthesis packet, an announce); one that sends
/// none within `first_frame_timeout` is closed without ever having been one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections held at once from one IPv4 address or one IPv6 /64.
    pub max_per_ip: usize,
    /// How long a new connection may go without sending one complete frame.
    pub first_frame_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_ip: DEFAULT_MAX_PER_IP,
            first_frame_timeout: DEFAULT_FIRST_FRAME_TIMEOUT,
        }
    }
}

impl ServerLimits {
    /// Check the limits; an error names the config key at fault and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=65_535).contains(&self.max_connections) {
            return Err(("max_connections", "must be 1 to 65535".into()));
        }
        if !(1..=self.max_connections).contains(&self.max_per_ip) {
            return Err((
                "max_connections_per_ip",
                format!("must be 1 to max_connections ({})", self.max_connections),
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.first_frame_timeout)
        {
            return Err(("first_frame_timeout", "must be 1s to 1h".into()));
        }
        Ok(())
    }
}

/// TCP keepalive and timeouts for an established connection, as RNS sets them on its TCP
/// interfaces: probe after 5 s of silence, every 2 s, give up after 12 probes, and close
/// when sent data stays unacknowledged for 24 s. A peer that vanishes (power cut, NAT
/// mapping gone) is noticed instead of pinning its connection for ever.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(5));
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    let keepalive = keepalive
        .with_interval(Duration::from_secs(2))
        .with_retries(12);
    let _ = sock.set_tcp_keepalive(&keepalive);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = sock.set_tcp_user_timeout(Some(Duration::from_secs(24)));
}

/// The key the per-address cap counts under: the IPv4 address (also when it reaches a
/// dual-stack listener as `::ffff:a.b.c.d`), or the /64 an IPv6 address is in, since one
/// host usually holds a whole /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What a server holds, and its tallies of refused and dropped connections.
#[derive(Debug)]
struct Peers {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    full: Tally,
    ip_full: Tally,
    silent: Tally,
    accept_failed: Tally,
}

type Shared = Arc<Mutex<Peers>>;

impl Peers {
    fn new() -> Shared {
        Arc::new(Mutex::new(Peers {
            total: 0,
            per_ip: HashMap::new(),
            full: Tally::new("TCP connections refused: max_connections reached"),
            ip_full: Tally::new("TCP connections refused: max_connections_per_ip reached"),
            silent: Tally::new(
                "TCP connections closed: no complete frame within first_frame_timeout",
            ),
            accept_failed: Tally::new("TCP accept failed"),
        }))
    }

    /// Every tally, to flush.
    fn tallies(&mut self) -> [&mut Tally; 4] {
        [
            &mut self.full,
            &mut self.ip_full,
            &mut self.silent,
            &mut self.accept_failed,
        ]
    }
}

fn lock(peers: &Shared) -> MutexGuard<'_, Peers> {
    peers.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's place in the counts, given back when it drops.
#[derive(Debug)]
struct Held {
    peers: Shared,
    key: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut p = lock(&self.peers);
        p.total = p.total.saturating_sub(1);
        if let Some(n) = p.per_ip.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                p.per_ip.remove(&self.key);
            }
        }
    }
}

/// Count a new connection from `peer` in, or refuse it (logged, rate-limited) if either
/// cap is reached.
fn admit(peers: &Shared, limits: &ServerLimits, name: &str, peer: SocketAddr) -> Option<Held> {
    let key = ip_key(peer.ip());
    let mut p = lock(peers);
    let now = std::time::Instant::now();
    if p.total >= limits.max_connections {
        p.full.hit(name, Some(&peer), now);
        return None;
    }
    if p.per_ip.get(&key).copied().unwrap_or(0) >= limits.max_per_ip {
        p.ip_full.hit(name, Some(&peer), now);
        return None;
    }
    p.total += 1;
    *p.per_ip.entry(key).or_insert(0) += 1;
    Some(Held {
        peers: peers.clone(),
        key,
    })
}

/// Run a TCP server interface: every accepted connection whose peer sends a complete
/// frame becomes its own interface, within `limits`.
pub async fn run_server(
    hub: Hub,
    listener: TcpListener,
    config: InterfaceConfig,
    limits: ServerLimits,
) {
    serve(hub, listener, config, limits, Peers::new()).await
}

/// [`run_server`], counting in `peers`.
async fn serve(
    hub: Hub,
    listener: TcpListener,
    config: InterfaceConfig,
    limits: ServerLimits,
    peers: Shared,
) {
    let max = max_frame(&config);
    let name = config.name.clone();
    loop {
        let flush_at = earliest(lock(&peers).tallies().map(|t| t.due()));
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = sleep_until_std(flush_at) => {
                let now = std::time::Instant::now();
                for t in lock(&peers).tallies() {
                    t.flush(&name, now);
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                let wait = accept_backoff(&e);
                lock(&peers)
                    .accept_failed
                    .hit(&name, Some(&e), std::time::Instant::now());
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        if hub.is_closed() {
            return;
        }
        let Some(held) = admit(&peers, &limits, &name, peer) else {
            drop(stream); // closed at once
            continue;
        };
        let hub = hub.clone();
        let timeout = limits.first_frame_timeout;
        tokio::spawn(serve_peer(
            hub,
            stream,
            peer,
            config.clone(),
            max,
            timeout,
            held,
        ));
    }
}

/// One accepted connection to the listener configured by `cfg`: wait for its first
/// complete frame, then make it an interface until it ends.
async fn serve_peer(
    hub: Hub,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut cfg: InterfaceConfig,
    max: usize,
    first_frame_timeout: Duration,
    held: Held,
) {
    tune(&stream);
    let mut deframer = Deframer::new(max);
    let mut frames = Vec::new();
    let first = tokio::time::timeout(first_frame_timeout, async {
        let mut buf = vec![0u8; 4096];
        while frames.is_empty() {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => deframer.push(&buf[..n], |f| frames.push(f.to_vec())),
            }
        }
        true
    })
    .await;
    match first {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(%peer, "TCP client left before sending a frame");
            return;
        }
        Err(_) => {
            let mut p = lock(&held.peers);
            p.silent
                .hit(&cfg.name, Some(&peer), std::time::Instant::now());
            return;
        }
    }
    let id = hub.allocate();
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    tracing::info!(interface = %id, %peer, "TCP client accepted");
    cfg.name = format!("{} <{peer}>", cfg.name);
    // The peer has spoken, so it is ready to hear from us.
    let up = InterfaceEvent::Up {
        id,
        config: Box::new(cfg),
        outbound: tx,
        ready: Readiness::Now,
    };
    if !hub.send(up).await {
        return;
    }
    if let Some(event) = frames_event(id, &mut frames) {
        if !hub.send(event).await {
            return;
        }
    }
    pump_from(&hub, id, stream, &mut rx, deframer).await;
    drop(held); // the slot is free before anyone hears the interface is gone
    tracing::info!(interface = %id, %peer, "TCP client left");
    hub.send(InterfaceEvent::Down { id, remove: true }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next `Up` event: (id, outbound).
    async fn next_up(
        events: &mut mpsc::Receiver<InterfaceEvent>,
    ) -> (InterfaceId, mpsc::Sender<Vec<u8>>) {
        loop {
            match events.recv().await {
                Some(InterfaceEvent::Up { id, outbound, .. }) => return (id, outbound),
                Some(_) => continue,
                None => panic!("hub closed"),
            }
        }
    }

    /// The next frame received, skipping other events: (interface, frame).
    async fn next_frame(events: &mut mpsc::Receiver<InterfaceEvent>) -> (InterfaceId, Vec<u8>) {
        loop {
            match events.recv().await {
                Some(InterfaceEvent::Frame { id, data }) => return (id, data),
                Some(InterfaceEvent::Frames { .. }) => panic!("one frame at a time was sent"),
                Some(_) => continue,
                None => panic!("hub closed"),
            }
        }
    }

    #[tokio::test]
    async fn client_and_server_exchange_frames_and_survive_garbage() {
        let (hub, mut events) = Hub::new(64);
        let listener = bind_server("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(run_server(
            hub.clone(),
            listener,
            InterfaceConfig::tcp("srv"),
            ServerLimits::default(),
        ));
        tokio::spawn(run_client(
            hub.clone(),
            addr.clone(),
            InterfaceConfig::tcp("cli"),
        ));

        // The client's side comes up when it connects; the server's side once the client
        // has spoken, and it delivers that first frame.
        let (cli, cli_tx) = next_up(&mut events).await;
        let packet: Vec<u8> = (0..40).chain([0x7E, 0x7D]).collect();
        cli_tx.send(packet.clone()).await.unwrap();
        let (srv, srv_tx) = next_up(&mut events).await;
        assert_ne!(srv, cli);
        assert_eq!(next_frame(&mut events).await, (srv, packet.clone()));

        // A hostile peer: garbage, an oversized frame, half a frame, then hang up.
        let mut bad = TcpStream::connect(&addr).await.unwrap();
        bad.write_all(&[0x55; 1000]).await.unwrap();
        let mut huge = vec![0x7E];
        huge.extend(std::iter::repeat_n(0x41, 100_000));
        bad.write_all(&huge).await.unwrap();
        bad.write_all(&hdlc::encode(&[9; 30])[..10]).await.unwrap();
        drop(bad);
        // The good pair still works afterwards.
        srv_tx.send(packet.clone()).await.unwrap();
        assert_eq!(next_frame(&mut events).await, (cli, packet));
    }

    /// A connection from `source` (a loopback address) to `addr`.
    async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        sock.connect(addr).await.unwrap()
    }

    /// Whether the server closed `s` (end of stream or a reset; false after 10 s).
    async fn closed(s: &mut TcpStream) -> bool {
        let mut b = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
        matches!(r, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test]
    async fn caps_refuse_extra_connections_and_silent_ones_are_closed() {
        let (hub, mut events) = Hub::new(64);
        let listener = bind_server("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ServerLimits {
            max_connections: 4,
            max_per_ip: 2,
            first_frame_timeout: Duration::from_millis(300),
        };
        let peers = Peers::new();
        let cfg = InterfaceConfig::tcp("srv");
        tokio::spawn(serve(hub.clone(), listener, cfg, limits, peers.clone()));
        let frame = |i: u8| hdlc::encode(&[i; 40]);

        // Two from one address become interfaces once they speak; a third is refused.
        // (The test keeps each interface's outbound queue, as the node does: the
        // connection ends when it is dropped.)
        let mut held = Vec::new();
        for i in 0..2 {
            let mut s = connect_from("127.0.0.1", addr).await;
            s.write_all(&frame(i)).await.unwrap();
            let (id, tx) = next_up(&mut events).await;
            assert_eq!(next_frame(&mut events).await, (id, vec![i; 40]));
            held.push((id, tx, s));
        }
        let mut third = connect_from("127.0.0.1", addr).await;
        assert!(closed(&mut third).await, "the per-address cap closes it");
        // Another address gets the two slots left; then the listener is full.
        for i in 2..4 {
            let mut s = connect_from("127.0.0.2", addr).await;
            s.write_all(&frame(i)).await.unwrap();
            let (id, tx) = next_up(&mut events).await;
            held.push((id, tx, s));
        }
        let mut fifth = connect_from("127.0.0.3", addr).await;
        assert!(closed(&mut fifth).await, "the total cap closes it");
        {
            let p = lock(&peers);
            assert_eq!((p.total, p.ip_full.total(), p.full.total()), (4, 1, 1));
        }

        // One leaves: its slot is free again.
        let (gone, _, s) = held.remove(0);
        drop(s);
        loop {
            match events.recv().await {
                Some(InterfaceEvent::Down { id, remove: true }) if id == gone => break,
                Some(_) => continue,
                None => panic!("hub closed"),
            }
        }
        assert_eq!(lock(&peers).total, 3);
        // A newcomer that never completes a frame takes it, and is closed without ever
        // becoming an interface.
        let mut silent = connect_from("127.0.0.3", addr).await;
        silent.write_all(&frame(9)[..20]).await.unwrap();
        assert!(
            closed(&mut silent).await,
            "the first-frame timeout closes it"
        );
        let p = lock(&peers);
        assert_eq!((p.silent.total(), p.full.total(), p.total), (1, 1, 3));
        drop(p);
        assert!(
            events.try_recv().is_err(),
            "no interface for the silent peer"
        );
        drop(held);
    }

    #[test]
    fn per_address_cap_counts_ipv4_and_ipv6_networks() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(ServerLimits::default().validate(), Ok(()));
        let bad = [
            (
                ServerLimits {
                    max_connections: 0,
                    ..Default::default()
                },
                "max_connections",
            ),
            (
                ServerLimits {
                    max_connections: 8,
                    max_per_ip: 9,
                    ..Default::default()
                },
                "max_connections_per_ip",
            ),
            (
                ServerLimits {
                    max_per_ip: 0,
                    ..Default::default()
                },
                "max_connections_per_ip",
            ),
            (
                ServerLimits {
                    first_frame_timeout: Duration::from_millis(10),
                    ..Default::default()
                },
                "first_frame_timeout",
            ),
        ];
        for (limits, key) in bad {
            assert_eq!(limits.validate().unwrap_err().0, key, "{limits:?}");
        }
    }
}
