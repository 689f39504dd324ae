//! Announce ingestion and memory per known path: the same announces fed to an
//! in-process transport, Grid's and Python's.

use std::path::Path;
use std::process::Command;
use std::time::Instant as StdInstant;

use anyhow::{bail, Context, Result};
use rand_core::SeedableRng;
use rns_core::announce;
use rns_core::destination::{destination_hash, name_hash};
use rns_core::packet::{Context as Ctx, Flags, Packet, PacketType};
use rns_core::transport::{InterfaceConfig, InterfaceId, Transport, TransportConfig};
use rns_core::{destination::DestinationType, Identity, Instant};
use serde_json::Value;

use crate::harness::{bench_script, cpu_of, rss_of, run_json, tmpdir};
use crate::{Opts, Rng};

/// Ingest the same `n` announces into Grid and Python (each in a fresh process).
pub(crate) fn ingest_both(opts: &Opts, tag: &str, n: usize, seed: u64) -> Result<(Value, Value)> {
    let file = tmpdir(tag).join("announces.bin");
    write_announces(&file, n, seed)?;
    let g = run_json(
        Command::new(std::env::current_exe()?)
            .arg("internal-ingest")
            .arg(&file),
    )?;
    let p = run_json(
        Command::new(&opts.python)
            .arg(bench_script("py_ingest.py"))
            .arg(&file),
    )?;
    for (who, v) in [("Grid", &g), ("Python", &p)] {
        if v["paths"] != v["announces"] {
            bail!(
                "{who} ingested only {} of {} announces: {v}",
                v["paths"],
                v["announces"]
            );
        }
    }
    Ok((g, p))
}

/// `n` announces from `n` fresh identities, as length-prefixed logical packets.
pub(crate) fn write_announces(path: &Path, n: usize, seed: u64) -> Result<()> {
    let mut rng = Rng::seed_from_u64(seed);
    let nh = name_hash("bench.node");
    let mut out = Vec::with_capacity(n * 200);
    for _ in 0..n {
        let id = Identity::generate(&mut rng);
        let d = destination_hash(&nh, Some(&id.hash()));
        let rh = announce::random_hash(&mut rng, 1_800_000_000);
        let data = announce::build_payload(&id, &nh, &d, &rh, None, b"");
        let p = Packet {
            flags: Flags::new(DestinationType::Single, PacketType::Announce),
            hops: 0,
            transport_id: None,
            destination: d,
            context: Ctx::NONE,
            data,
        };
        let raw = p.to_bytes();
        out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
        out.extend_from_slice(&raw);
    }
    std::fs::write(path, out)?;
    Ok(())
}

pub(crate) fn split_announces(data: &[u8]) -> Result<Vec<&[u8]>> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 4 <= data.len() {
        let n = u32::from_be_bytes(data[i..i + 4].try_into()?) as usize;
        v.push(
            data.get(i + 4..i + 4 + n)
                .context("truncated announce file")?,
        );
        i += 4 + n;
    }
    Ok(v)
}

/// Child process: ingest announces into an in-process Transport; print JSON.
///
/// The packets stay in the one buffer they were read into, and nothing large is freed
/// before measuring: freeing a multi-megabyte buffer raises glibc's dynamic mmap
/// threshold, after which growing hash tables come from the heap and leave holes that
/// RSS keeps — an artefact of the harness, not of the tables being measured.
pub(crate) fn internal_ingest(file: &Path) -> Result<()> {
    let data = std::fs::read(file)?;
    let packets = split_announces(&data)?;
    let id = Identity::generate(&mut Rng::seed_from_u64(99));
    let mut t = Transport::new(
        TransportConfig::default(),
        id,
        Box::new(Rng::seed_from_u64(5)),
    );
    let now = Instant::from_secs(1_800_000_000);
    t.add_interface(
        now,
        InterfaceId(1),
        InterfaceConfig {
            ingress_control: false,
            ..InterfaceConfig::tcp("bench")
        },
    );
    let me = std::process::id();
    let r0 = rss_of(me);
    let c0 = cpu_of(me);
    let t0 = StdInstant::now();
    for raw in &packets {
        t.handle_inbound(now, InterfaceId(1), raw);
        while t.poll_event().is_some() {}
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(me) - c0;
    let r1 = rss_of(me);
    println!(
        "{}",
        serde_json::json!({"announces": packets.len(), "paths": t.path_count(), "wall_s": wall, "cpu_s": cpu, "rss_before": r0, "rss_after": r1})
    );
    if t.path_count() != packets.len() {
        bail!(
            "only {} of {} announces became paths",
            t.path_count(),
            packets.len()
        );
    }
    Ok(())
}
