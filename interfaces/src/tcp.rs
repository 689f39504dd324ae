//! TCP client and server interfaces with HDLC framing (RNS `TCPClientInterface` /
//! `TCPServerInterface`). No handshake: after connecting, each side just sends frames.

use std::net::SocketAddr;
use std::time::Duration;

use rns_core::transport::{InterfaceConfig, InterfaceId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::hdlc::{self, Deframer};
use crate::{max_frame, Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

/// Delay between reconnection attempts, and the connect timeout.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(5);

/// Pause before sending on a connection we opened (see [`Readiness`]).
pub const CONNECT_SETTLE: Duration = Duration::from_millis(500);
/// Longest wait for an accepted peer to speak before sending to it (see [`Readiness`]).
pub const ACCEPT_SETTLE: Duration = Duration::from_secs(5);

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
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut deframer = Deframer::new(max);
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = Vec::new();
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => return Ended::Peer,
                    Ok(n) => n,
                };
                deframer.push(&buf[..n], |f| frames.push(f.to_vec()));
                let event = match frames.len() {
                    0 => continue,
                    1 => InterfaceEvent::Frame { id, data: frames.pop().expect("one frame") },
                    _ => InterfaceEvent::Frames { id, frames: std::mem::take(&mut frames) },
                };
                if !hub.send(event).await {
                    return Ended::Node;
                }
            }
            f = outbound.recv() => {
                let Some(frame) = f else { return Ended::Node };
                let mut out = Vec::with_capacity(frame.len() + 8);
                hdlc::encode_into(&frame, &mut out);
                // Coalesce whatever else is queued into one write.
                while let Ok(more) = outbound.try_recv() {
                    hdlc::encode_into(&more, &mut out);
                    if out.len() > 256 * 1024 { break; }
                }
                if wr.write_all(&out).await.is_err() {
                    return Ended::Peer;
                }
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
                let _ = stream.set_nodelay(true);
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

/// Run a TCP server interface: every accepted connection becomes its own interface.
pub async fn run_server(hub: Hub, listener: TcpListener, config: InterfaceConfig) {
    let max = max_frame(&config);
    loop {
        let (stream, peer): (TcpStream, SocketAddr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if hub.is_closed() {
            return;
        }
        let hub = hub.clone();
        let mut cfg = config.clone();
        cfg.name = format!("{} <{}>", config.name, peer);
        tokio::spawn(async move {
            let id = hub.allocate();
            let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
            tracing::info!(interface = %id, %peer, "TCP client accepted");
            if !hub
                .send(InterfaceEvent::Up {
                    id,
                    config: Box::new(cfg),
                    outbound: tx,
                    ready: Readiness::WhenHeardOr(ACCEPT_SETTLE),
                })
                .await
            {
                return;
            }
            let _ = stream.set_nodelay(true);
            pump(&hub, id, stream, &mut rx, max).await;
            tracing::info!(interface = %id, %peer, "TCP client left");
            hub.send(InterfaceEvent::Down { id, remove: true }).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_and_server_exchange_frames_and_survive_garbage() {
        let (hub, mut events) = Hub::new(64);
        let listener = bind_server("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(run_server(
            hub.clone(),
            listener,
            InterfaceConfig::tcp("srv"),
        ));
        tokio::spawn(run_client(
            hub.clone(),
            addr.clone(),
            InterfaceConfig::tcp("cli"),
        ));

        let mut ups = Vec::new();
        while ups.len() < 2 {
            if let Some(InterfaceEvent::Up { id, outbound, .. }) = events.recv().await {
                ups.push((id, outbound));
            }
        }
        let packet: Vec<u8> = (0..40).chain([0x7E, 0x7D]).collect();
        ups[0].1.send(packet.clone()).await.unwrap();
        loop {
            match events.recv().await {
                Some(InterfaceEvent::Frame { id, data }) => {
                    assert_eq!(data, packet);
                    assert_eq!(id, ups[1].0);
                    break;
                }
                Some(InterfaceEvent::Frames { .. }) => panic!("one frame was sent"),
                _ => {}
            }
        }

        // A hostile peer: garbage, an oversized frame, half a frame, then hang up.
        let mut bad = TcpStream::connect(&addr).await.unwrap();
        bad.write_all(&[0x55; 1000]).await.unwrap();
        let mut huge = vec![0x7E];
        huge.extend(std::iter::repeat_n(0x41, 100_000));
        bad.write_all(&huge).await.unwrap();
        bad.write_all(&hdlc::encode(&[9; 30])[..10]).await.unwrap();
        drop(bad);
        // The good pair still works afterwards.
        ups[1].1.send(packet.clone()).await.unwrap();
        loop {
            match events.recv().await {
                Some(InterfaceEvent::Frame { id, data }) => {
                    assert_eq!(data, packet);
                    assert_eq!(id, ups[0].0);
                    break;
                }
                Some(_) => continue,
                None => panic!("hub closed"),
            }
        }
    }
}
