//! Forwarding cost: CPU time of a transport node per packet forwarded, `grid node`
//! against `rnsd`, under a windowed (batched) load.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{anyhow, bail, Result};
use grid_interfaces::hdlc;
use rand_core::{RngCore, SeedableRng};
use rns_core::announce;
use rns_core::destination::{destination_hash, name_hash};
use rns_core::packet::{Context as Ctx, Flags, Packet, PacketType, TransportType};
use rns_core::{destination::DestinationType, AddressHash, Identity};

use crate::harness::{
    cpu_of, free_port, rnsd_config, spawn_grid, spawn_rnsd, tmpdir, wait_listening,
};
use crate::Rng;

pub(crate) enum Transit<'a> {
    Grid(&'a Path),
    Rnsd(&'a Path),
    /// A bare relay (relay.rs): it passes the HEADER_2 packets on unchanged.
    Relay(crate::relay::Flavour),
}

/// Forward `n` packets through a transport node; returns (CPU s per packet, delivered).
///
/// With `paced`, the packets go one per TCP write at that many per second (the node
/// wakes up for each), instead of up to `WINDOW` in flight written together.
pub(crate) fn forward_bench(
    which: Transit<'_>,
    n: usize,
    paced: Option<f64>,
) -> Result<(f64, usize)> {
    let mut rng = Rng::seed_from_u64(7);
    let transit_id = Identity::generate(&mut rng);
    let sink_id = Identity::generate(&mut rng);
    let port = free_port();
    let (proc_, label) = match which {
        Transit::Grid(grid) => {
            let dir = tmpdir("fwd-grid");
            std::fs::write(dir.join("identity"), transit_id.to_private_bytes())?;
            std::fs::write(
                dir.join("config.toml"),
                format!("[node]\ntransport = true\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"),
            )?;
            (spawn_grid(grid, &dir)?, "grid")
        }
        Transit::Rnsd(python) => {
            let dir = tmpdir("fwd-rnsd");
            rnsd_config(&dir, port, true)?;
            std::fs::create_dir_all(dir.join("storage"))?;
            std::fs::write(
                dir.join("storage/transport_identity"),
                transit_id.to_private_bytes(),
            )?;
            (spawn_rnsd(python, &dir)?, "rnsd")
        }
        Transit::Relay(flavour) => (crate::relay::spawn(port, flavour)?, flavour.arg()),
    };
    wait_listening(port, 30)?;
    let pid = proc_.0.id();

    // The sink connects and announces; the transit node learns a 1-hop path to it.
    let nh = name_hash("bench.sink");
    let sink_dest = destination_hash(&nh, Some(&sink_id.hash()));
    let mut sink = TcpStream::connect(("127.0.0.1", port))?;
    let mut sender = TcpStream::connect(("127.0.0.1", port))?;
    sender.set_nodelay(true)?; // as RNS and Grid peers do: one segment per write
    std::thread::sleep(Duration::from_secs(1)); // let RNS finish setting up the connections
    let rh = announce::random_hash(&mut rng, 1_800_000_000);
    let ann = Packet {
        flags: Flags::new(DestinationType::Single, PacketType::Announce),
        hops: 0,
        transport_id: None,
        destination: sink_dest,
        context: Ctx::NONE,
        data: announce::build_payload(&sink_id, &nh, &sink_dest, &rh, None, b""),
    };
    sink.write_all(&hdlc::encode(&ann.to_bytes()))?;
    std::thread::sleep(Duration::from_secs(2));

    // The sink counts what arrives; the sender keeps at most WINDOW packets in flight,
    // so neither implementation is flooded into dropping (both get the same pacing;
    // RNS 1.5.7 queues up to 1024 inbound data packets before it drops).
    const WINDOW: usize = 512;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let got_c = got.clone();
    let counter = std::thread::spawn(move || {
        let mut d = hdlc::Deframer::new(20_000);
        let mut buf = vec![0u8; 65536];
        sink.set_read_timeout(Some(Duration::from_secs(5))).ok();
        loop {
            match sink.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => d.push(&buf[..k], |f| {
                    // A transport node delivers HEADER_1; a bare relay passes HEADER_2 on.
                    let at = if f.first().is_some_and(|b| b & 0x40 != 0) {
                        18
                    } else {
                        2
                    };
                    if f.len() > at + 17 && f[0] & 0x03 == 0 && f[at..at + 16] == sink_dest.0 {
                        got_c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }),
            }
            if got_c.load(std::sync::atomic::Ordering::Relaxed) >= n {
                return;
            }
        }
    });

    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        let mut data = vec![0u8; 64];
        rng.fill_bytes(&mut data);
        let mut flags = Flags::new(DestinationType::Single, PacketType::Data);
        flags.transport_type = TransportType::Transport;
        let p = Packet {
            flags,
            hops: 0,
            transport_id: Some(transit_id.hash()),
            destination: sink_dest,
            context: Ctx::NONE,
            data,
        };
        frames.push(hdlc::encode(&p.to_bytes()));
    }
    let c0 = cpu_of(pid);
    let t0 = StdInstant::now();
    let mut sent = 0usize;
    let mut last_progress = (0usize, StdInstant::now());
    while sent < n {
        let done = got.load(std::sync::atomic::Ordering::Relaxed);
        if done != last_progress.0 {
            last_progress = (done, StdInstant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(5) {
            break; // packets were lost; stop waiting for them
        }
        if let Some(rate) = paced {
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_duration_since(StdInstant::now()) {
                std::thread::sleep(wait);
            }
            sender.write_all(&frames[sent])?;
            sent += 1;
            continue;
        }
        let room = WINDOW.saturating_sub(sent - done.min(sent));
        if room == 0 {
            std::thread::yield_now();
            continue;
        }
        let upto = (sent + room).min(n);
        let batch: Vec<u8> = frames[sent..upto].concat();
        sender.write_all(&batch)?;
        sent = upto;
    }
    counter
        .join()
        .map_err(|_| anyhow!("counter thread panicked"))?;
    let got = got.load(std::sync::atomic::Ordering::Relaxed);
    let cpu = cpu_of(pid) - c0;
    let wall = t0.elapsed().as_secs_f64();
    eprintln!("   {label}: {got}/{n} delivered in {wall:.2} s, {cpu:.3} s CPU");
    if got == 0 {
        bail!("{label} forwarded nothing");
    }
    let _: AddressHash = sink_dest;
    Ok((cpu / got as f64, got))
}
