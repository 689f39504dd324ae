//! The shared-instance socket (RNS `LocalInterface`): HDLC frames between the node that
//! serves a host and the programs attached to it.
//!
//! On Linux the socket is the abstract Unix socket `\0rns/<instance name>` (so Python RNS
//! programs with `share_instance = Yes` attach to a Grid node, and a Grid program can
//! attach to `rnsd`); elsewhere it is TCP on `127.0.0.1:37428`, as RNS does.

use std::io;
use std::time::Duration;

use rns_core::transport::InterfaceConfig;
use tokio::sync::mpsc;

use crate::tcp::{pump, Ended, RECONNECT_INTERVAL};
use crate::{max_frame, report_up, Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

/// RNS's shared instance port where there are no abstract Unix sockets.
pub const SHARED_INSTANCE_PORT: u16 = 37428;
/// A local client may start sending at once; give a just-accepted Python client a
/// moment to finish setting up its side first.
const ACCEPT_SETTLE: Duration = Duration::from_millis(200);

/// The abstract socket name for an instance (`rns/<name>`).
pub fn socket_name(instance: &str) -> String {
    format!("rns/{instance}")
}

/// A bound shared-instance socket.
#[derive(Debug)]
pub enum Listener {
    /// The abstract Unix socket (Linux).
    #[cfg(target_os = "linux")]
    Unix(tokio::net::UnixListener),
    /// TCP on loopback (elsewhere).
    Tcp(tokio::net::TcpListener),
}

/// Become the shared instance for `instance`. Fails with `AddrInUse` when another node
/// (Grid or `rnsd`) already serves it.
pub fn bind(instance: &str) -> io::Result<Listener> {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(socket_name(instance))?;
        let l = std::os::unix::net::UnixListener::bind_addr(&addr)?;
        l.set_nonblocking(true)?;
        Ok(Listener::Unix(tokio::net::UnixListener::from_std(l)?))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = instance;
        let l = std::net::TcpListener::bind(("127.0.0.1", SHARED_INSTANCE_PORT))?;
        l.set_nonblocking(true)?;
        Ok(Listener::Tcp(tokio::net::TcpListener::from_std(l)?))
    }
}

/// Serve local clients: each becomes its own interface built from `config` (whose
/// [`rns_core::transport::LocalRole`] should be `Client`).
pub async fn run_server(hub: Hub, listener: Listener, config: InterfaceConfig) {
    let mut n = 0u64;
    loop {
        let accepted = match &listener {
            #[cfg(target_os = "linux")]
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "local socket accept failed");
                tokio::time::sleep(crate::admission::accept_backoff(&e)).await;
                continue;
            }
        };
        if hub.is_closed() {
            return;
        }
        n += 1;
        let hub = hub.clone();
        let mut cfg = config.clone();
        cfg.name = format!("{} client {n}", config.name);
        tokio::spawn(async move {
            let id = hub.allocate();
            let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
            let max = max_frame(&cfg);
            tracing::info!(interface = %id, "local client attached");
            let up = InterfaceEvent::Up {
                id,
                config: Box::new(cfg),
                outbound: tx,
                ready: Readiness::After(ACCEPT_SETTLE),
            };
            if !hub.send(up).await {
                return;
            }
            conn.pump(&hub, id, &mut rx, max).await;
            tracing::info!(interface = %id, "local client left");
            hub.send(InterfaceEvent::Down { id, remove: true }).await;
        });
    }
}

/// Attach to the shared instance `instance` (reconnecting every 5 s); `config`'s role
/// should be `Instance`.
pub async fn run_client(hub: Hub, instance: String, config: InterfaceConfig) {
    let id = hub.allocate();
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    let max = max_frame(&config);
    loop {
        match connect(&instance).await {
            Ok(conn) => {
                tracing::info!(interface = %id, instance = %instance, "attached to the shared instance");
                if !report_up(&hub, id, &config, (&tx, &mut rx), Readiness::Now).await {
                    return;
                }
                if let Ended::Node = conn.pump(&hub, id, &mut rx, max).await {
                    return;
                }
                tracing::warn!(interface = %id, "the shared instance went away; reconnecting");
                if !hub.send(InterfaceEvent::Down { id, remove: false }).await {
                    return;
                }
            }
            Err(e) => tracing::debug!(instance = %instance, error = %e, "no shared instance yet"),
        }
        if hub.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT_INTERVAL).await;
    }
}

/// Whether a shared instance serves `instance` right now.
pub async fn is_served(instance: &str) -> bool {
    connect(instance).await.is_ok()
}

async fn connect(instance: &str) -> io::Result<Conn> {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(socket_name(instance))?;
        let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
        s.set_nonblocking(true)?;
        Ok(Conn::Unix(tokio::net::UnixStream::from_std(s)?))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = instance;
        let s = tokio::net::TcpStream::connect(("127.0.0.1", SHARED_INSTANCE_PORT)).await?;
        let _ = s.set_nodelay(true);
        Ok(Conn::Tcp(s))
    }
}

/// One connection on the shared-instance socket.
enum Conn {
    #[cfg(target_os = "linux")]
    Unix(tokio::net::UnixStream),
    // Only built where there are no abstract sockets.
    #[allow(dead_code)]
    Tcp(tokio::net::TcpStream),
}

impl Conn {
    async fn pump(
        self,
        hub: &Hub,
        id: rns_core::transport::InterfaceId,
        rx: &mut mpsc::Receiver<Vec<u8>>,
        max: usize,
    ) -> Ended {
        match self {
            #[cfg(target_os = "linux")]
            Conn::Unix(s) => pump(hub, id, s, rx, max).await,
            Conn::Tcp(s) => pump(hub, id, s, rx, max).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rns_core::transport::LocalRole;

    #[tokio::test]
    async fn a_client_attaches_and_frames_flow_both_ways() {
        let name = format!("grid-test-{}", std::process::id());
        let (hub, mut events) = Hub::new(64);
        let l = bind(&name).unwrap();
        assert_eq!(
            bind(&name).unwrap_err().kind(),
            io::ErrorKind::AddrInUse,
            "one instance per name"
        );
        tokio::spawn(run_server(
            hub.clone(),
            l,
            InterfaceConfig::local("shared", LocalRole::Client),
        ));
        tokio::spawn(run_client(
            hub.clone(),
            name.clone(),
            InterfaceConfig::local("instance", LocalRole::Instance),
        ));
        let (mut client_side, mut instance_side) = (None, None);
        while client_side.is_none() || instance_side.is_none() {
            if let Some(InterfaceEvent::Up {
                id,
                outbound,
                config,
                ..
            }) = events.recv().await
            {
                match config.local {
                    LocalRole::Instance => instance_side = Some((id, outbound)),
                    _ => client_side = Some((id, outbound)),
                }
            }
        }
        let (client_side, instance_side) = (client_side.unwrap(), instance_side.unwrap());
        let packet: Vec<u8> = (0..60).collect();
        client_side.1.send(packet.clone()).await.unwrap();
        loop {
            if let Some(InterfaceEvent::Frame { id, data }) = events.recv().await {
                assert_eq!((id, &data), (instance_side.0, &packet));
                break;
            }
        }
        assert!(is_served(&name).await);
        assert!(!is_served(&format!("{name}-nobody")).await);
    }
}
