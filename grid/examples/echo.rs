//! The counterpart of RNS's `Examples/Echo.py`: the same app name and aspects
//! (`example_utilities.echo.request`) and the same flow: a server that proves every
//! packet, a client that sends packets and times their proofs.
//!
//! ```sh
//! cargo run --release --example echo -- --config DIR --server [--ratchets FILE]
//! cargo run --release --example echo -- --config DIR <hash> [--count N]
//! ```
//! DIR holds a `config.toml`, as for `grid node` (docs/configuration.md). The server prints
//! its destination hash first. With `--ratchets FILE` (not in Echo.py) it keeps ratchets in
//! FILE and takes only packets encrypted to them (`enable_ratchets`, `enforce_ratchets`).

use std::time::Duration;

use grid::api::{NodeEvent, ProofStrategy};
use grid::state::StateDir;

const APP_NAME: &str = "example_utilities";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let config =
        value("--config").ok_or("usage: echo --config DIR (--server | <hash> [--count N])")?;
    let node = grid::api::spawn(StateDir::resolve(Some(config.as_ref()))).await?;
    if args.iter().any(|a| a == "--server") {
        server(node, value("--ratchets")).await
    } else {
        let hash = args
            .iter()
            .find(|a| a.len() == 32 && a.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or("give the server's destination hash (32 hex digits)")?
            .parse()?;
        let count = value("--count").map_or(Ok(3), |c| c.parse())?;
        client(node, hash, count).await
    }
}

/// Host the echo destination, prove every packet, and say so for each one.
async fn server(
    node: grid::api::NodeHandle,
    ratchets: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut events = node.subscribe();
    let echo = node
        .register_destination(APP_NAME, &["echo", "request"], ProofStrategy::All)
        .await?;
    if let Some(file) = ratchets {
        node.enable_ratchets(echo, file).await?;
        node.enforce_ratchets(echo).await?;
    }
    println!("{echo}");
    node.announce_destination(echo, &[]).await?;
    eprintln!("Echo server {echo} running, hit Ctrl-C to quit");
    loop {
        match events.recv().await {
            Ok(NodeEvent::DestinationPacket { destination, .. }) if destination == echo => {
                println!("Received packet from echo client, proof sent");
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Send `count` echo requests and report each proof's round trip.
async fn client(
    node: grid::api::NodeHandle,
    echo: rns_core::AddressHash,
    count: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = node.find_path(echo, Duration::from_secs(30)).await?;
    eprintln!("Path to {echo} found, {} hop(s) away", path.hops);
    let mut proved = 0;
    for i in 0..count {
        // Echo.py sends a random hash as the request.
        let request = format!("echo request {i} {:016x}", rand_seed(i));
        match node
            .send_packet(echo, request.as_bytes(), Duration::from_secs(15))
            .await
        {
            Ok(p) => {
                proved += 1;
                println!(
                    "Valid reply received from {echo}, round-trip time is {:.3} milliseconds over {} hop(s)",
                    p.rtt_ms,
                    p.hops.unwrap_or(path.hops)
                );
            }
            Err(e) => println!("Probe timed out or failed: {e}"),
        }
    }
    if proved == count {
        Ok(())
    } else {
        Err(format!("{proved} of {count} echo requests were proved").into())
    }
}

/// A different number per request (the request's content does not matter).
fn rand_seed(i: u32) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(i) << 32)
}
