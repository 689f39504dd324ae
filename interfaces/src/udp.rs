//! UDP interface: one raw packet per datagram, no framing, broadcast allowed.

use std::net::SocketAddr;

use rns_core::transport::InterfaceConfig;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::{max_frame, Hub, InterfaceEvent, OUTBOUND_QUEUE};

/// Bind the UDP socket (broadcast enabled).
pub async fn bind(listen: &str) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(listen).await?;
    s.set_broadcast(true)?;
    Ok(s)
}

/// Run a UDP interface: datagrams from anyone are frames; frames go to `forward`.
pub async fn run(hub: Hub, socket: UdpSocket, forward: SocketAddr, config: InterfaceConfig) {
    let id = hub.allocate();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUTBOUND_QUEUE);
    let max = max_frame(&config);
    if !hub
        .send(InterfaceEvent::Up {
            id,
            config: Box::new(config),
            outbound: tx,
            ready: crate::Readiness::Now,
        })
        .await
    {
        return;
    }
    let mut buf = vec![0u8; max.max(2048)];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                match r {
                    Ok((n, _)) if n <= max => {
                        if !hub.send(InterfaceEvent::Frame { id, data: buf[..n].to_vec() }).await {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "UDP receive error"),
                }
            }
            f = rx.recv() => {
                let Some(frame) = f else { return };
                if let Err(e) = socket.send_to(&frame, forward).await {
                    tracing::debug!(error = %e, "UDP send error");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_are_frames() {
        let (hub, mut events) = Hub::new(16);
        let a = bind("127.0.0.1:0").await.unwrap();
        let b = bind("127.0.0.1:0").await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        tokio::spawn(run(hub.clone(), a, ba, InterfaceConfig::udp("a")));
        tokio::spawn(run(hub.clone(), b, aa, InterfaceConfig::udp("b")));
        let mut outs = Vec::new();
        while outs.len() < 2 {
            if let Some(InterfaceEvent::Up { id, outbound, .. }) = events.recv().await {
                outs.push((id, outbound));
            }
        }
        outs[0].1.send(vec![7; 50]).await.unwrap();
        loop {
            if let Some(InterfaceEvent::Frame { id, data }) = events.recv().await {
                assert_eq!(data, vec![7; 50]);
                assert_eq!(id, outs[1].0);
                break;
            }
        }
    }
}
