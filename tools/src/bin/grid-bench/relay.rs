//! The floor for forwarding: a bare relay, measured where a transport node is measured.
//!
//! `grid-bench internal-relay PORT tokio|threads` listens on loopback TCP and copies
//! every read from one connection to every other connection, as a hub: one `recv` and
//! one `send` per packet when a peer writes one frame per segment and one other peer is
//! connected, and nothing else (no deframing, no parsing, no routing, no hashing). RNS
//! endpoints work through it as on a shared medium (announces, path requests and link
//! packets reach everyone). Two variants:
//!
//! - `tokio`: a current-thread tokio runtime (as `grid node` runs), one task per
//!   connection reading when readable and writing with `try_write` (waiting for
//!   writability only when a socket buffer is full);
//! - `threads`: one blocking thread per connection, blocking `read`, `write_all` to the
//!   others (no event loop at all).
//!
//! Whatever a transport node costs per packet above this is its own; below it no design
//! that makes one read and one write per packet, on this kernel and machine, can go.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};

/// How the relay waits for data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Current-thread tokio runtime, one task per connection.
    Tokio,
    /// One blocking thread per connection.
    Threads,
}

impl Flavour {
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Flavour::Tokio => "tokio",
            Flavour::Threads => "threads",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Flavour::Tokio => "bare relay (tokio, one task per connection)",
            Flavour::Threads => "bare relay (blocking thread per connection)",
        }
    }

    fn parse(s: &str) -> Result<Flavour> {
        match s {
            "tokio" => Ok(Flavour::Tokio),
            "threads" => Ok(Flavour::Threads),
            other => bail!("relay flavour {other}: tokio or threads"),
        }
    }
}

/// Spawn the relay as its own process (so its CPU is read as a node's is).
pub(crate) fn spawn(port: u16, flavour: Flavour) -> Result<crate::harness::Proc> {
    Ok(crate::harness::Proc(
        std::process::Command::new(std::env::current_exe()?)
            .args(["internal-relay", &port.to_string(), flavour.arg()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()?,
    ))
}

/// `grid-bench internal-relay PORT FLAVOUR`: run until killed.
pub(crate) fn main(port: &str, flavour: &str) -> Result<()> {
    let port: u16 = port.parse()?;
    match Flavour::parse(flavour)? {
        Flavour::Threads => threads(port),
        Flavour::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?
            .block_on(tokio_relay(port)),
    }
}

/// Connections of the threaded relay, by id.
type Peers = Arc<Mutex<Vec<(u64, Arc<TcpStream>)>>>;
/// Connections of the tokio relay (one thread), by id.
type LocalPeers = std::rc::Rc<std::cell::RefCell<Vec<(u64, std::rc::Rc<tokio::net::TcpStream>)>>>;

/// Largest read at once (several frames, when they queue up).
const BUF: usize = 64 * 1024;

fn threads(port: u16) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let peers: Peers = Arc::default();
    for (id, conn) in (0u64..).zip(listener.incoming()) {
        let Ok(conn) = conn else { continue };
        conn.set_nodelay(true)?;
        let conn = Arc::new(conn);
        peers
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push((id, conn.clone()));
        let peers = peers.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; BUF];
            loop {
                let n = match (&*conn).read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let Ok(list) = peers.lock() else { break };
                for (other, s) in list.iter() {
                    if *other != id {
                        let _ = (&**s).write_all(&buf[..n]);
                    }
                }
            }
            if let Ok(mut list) = peers.lock() {
                list.retain(|(other, _)| *other != id);
            }
        });
    }
    Ok(())
}

async fn tokio_relay(port: u16) -> Result<()> {
    use std::rc::Rc;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let peers: LocalPeers = Rc::default();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            for id in 0u64.. {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                conn.set_nodelay(true)?;
                let conn = Rc::new(conn);
                peers.borrow_mut().push((id, conn.clone()));
                let peers = peers.clone();
                tokio::task::spawn_local(async move {
                    let mut buf = vec![0u8; BUF];
                    loop {
                        if conn.readable().await.is_err() {
                            break;
                        }
                        let n = match conn.try_read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(_) => break,
                        };
                        let others: Vec<Rc<tokio::net::TcpStream>> = peers
                            .borrow()
                            .iter()
                            .filter(|(other, _)| *other != id)
                            .map(|(_, s)| s.clone())
                            .collect();
                        for s in others {
                            write_all(&s, &buf[..n]).await;
                        }
                    }
                    peers.borrow_mut().retain(|(other, _)| *other != id);
                });
            }
            Ok(())
        })
        .await
}

/// Write everything: at once if the socket has room (the usual case), else as it drains.
async fn write_all(s: &tokio::net::TcpStream, mut data: &[u8]) {
    while !data.is_empty() {
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if s.writable().await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
