//! `grid-bench`: Grid and Python RNS 1.5.7 measured side by side, in the same run, on the
//! same inputs. Prints a Markdown report; `--write FILE` puts its generated parts into
//! FILE between their marker comments and keeps the rest of it (see [`page`] and
//! docs/benchmarks.md).
//!
//! Usage: `grid-bench [--quick] [--python PATH] [--write FILE]`
//! Python comes from `--python`, `$GRID_PYTHON` or `.venv/bin/python` (see scripts/test.sh).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;

use forward::{forward_bench, Transit};
use harness::{grid_binary, median, run_json, symbol_order_list, tmpdir, workspace};
use ingest::{ingest_both, internal_ingest, write_announces};
use links::{link_bench_grid, link_bench_python};
use report::{render, Row};
use startup::{idle_rss_grid, idle_rss_rnsd, report_symbol_order, startup_grid, startup_python};

mod bundles;
mod command_round_trips;
mod forward;
mod genome;
mod harness;
mod ingest;
mod lan;
mod links;
mod paced;
mod page;
mod relay;
mod report;
mod rns_resources;
mod startup;

pub(crate) type Rng = rand_chacha::ChaCha20Rng;

pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) python: PathBuf,
    pub(crate) write: Option<PathBuf>,
}

fn main() {
    let r = real_main();
    // Every process the run started has been stopped by now (they are dropped on return).
    harness::remove_tmpdirs(r.is_err());
    if let Err(e) = r {
        eprintln!("grid-bench: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut opts = Opts {
        quick: false,
        python: std::env::var_os("GRID_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join(".venv/bin/python")),
        write: None,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--python" => opts.python = args.next().context("--python needs a path")?.into(),
            "--write" => opts.write = Some(args.next().context("--write needs a file")?.into()),
            "idle-only" => {
                report_symbol_order(&grid_binary()?, &symbol_order_list());
                let g = idle_rss_grid(&grid_binary()?)?;
                let p = idle_rss_rnsd(&opts.python)?;
                println!(
                    "idle RSS: grid node {:.1} MB, rnsd {:.1} MB ({:.1}x)",
                    g / 1e6,
                    p / 1e6,
                    p / g
                );
                return Ok(());
            }
            "commands-only" => {
                let n: usize = args.next().context("count")?.parse()?;
                for transit in [false, true] {
                    let g = command_round_trips::grid(&grid_binary()?, transit, n)?;
                    println!(
                        "{}: p50 {:.3} ms, p99 {:.3} ms, {:.0} commands/s",
                        if transit {
                            "through a transport node"
                        } else {
                            "direct"
                        },
                        command_round_trips::percentile(g.rtt.clone(), 50.0) * 1e3,
                        command_round_trips::percentile(g.rtt, 99.0) * 1e3,
                        g.per_second
                    );
                }
                return Ok(());
            }
            "resources-only" => {
                print_rows(&rns_resources::rows(
                    &opts.python,
                    &grid_binary()?,
                    opts.quick,
                )?);
                return Ok(());
            }
            "genome-only" => {
                let rows = genome::run(opts.quick, &grid_binary()?)?;
                for r in &rows {
                    println!("{}: {} (goal {}, met: {})", r.what, r.grid, r.goal, r.met);
                }
                if let Some(path) = &opts.write {
                    let text = report::genome_table(&rows);
                    page::write(
                        path,
                        &[page::Block {
                            name: "genome",
                            text: &text,
                        }],
                    )?;
                }
                return Ok(());
            }
            "bundles-only" => {
                let n: usize = args.next().context("count")?.parse()?;
                for size in BUNDLE_SIZES {
                    let g = bundles::grid(n, size)?;
                    let p = bundles::python(&opts.python, n, size)?;
                    println!(
                        "{size} B: Grid {:.0} writes/s {:.0} reads/s; Python files {:.0} writes/s {:.0} reads/s",
                        g.writes, g.reads, p.writes, p.reads
                    );
                }
                return Ok(());
            }
            "forward-only" => {
                let n: usize = args.next().context("count")?.parse()?;
                let paced = args.next().map(|r| r.parse()).transpose()?;
                let g = forward_bench(Transit::Grid(&grid_binary()?), n, paced)?;
                println!("grid: {:.3} µs per packet ({} delivered)", g.0 * 1e6, g.1);
                for f in [relay::Flavour::Tokio, relay::Flavour::Threads] {
                    let r = forward_bench(Transit::Relay(f), n, paced)?;
                    println!(
                        "{}: {:.3} µs per packet ({} delivered); Grid / this floor {:.2}×",
                        f.label(),
                        r.0 * 1e6,
                        r.1,
                        g.0 / r.0
                    );
                }
                return Ok(());
            }
            "forward-paced" => {
                let n: usize = args.next().context("count")?.parse()?;
                let rate: f64 = args.next().map_or(Ok(PACED_RATE), |r| r.parse())?;
                let (g, floor, p) = paced_both(&opts.python, &grid_binary()?, n, rate)?;
                for r in [g, floor, p] {
                    println!("{} | {} | {} | {:.2}×", r.what, r.grid, r.python, r.ratio);
                }
                return Ok(());
            }
            "cp-only" => {
                print_rows(&rns_resources::cp_rows(
                    &opts.python,
                    &grid_binary()?,
                    opts.quick,
                )?);
                return Ok(());
            }
            "internal-relay" => {
                let port = args.next().context("port")?;
                let flavour = args.next().context("tokio or threads")?;
                return relay::main(&port, &flavour);
            }
            "ingest-only" => {
                let n: usize = args.next().context("count")?.parse()?;
                let file = tmpdir("ingest-only").join("announces.bin");
                write_announces(&file, n, 2)?;
                let g = run_json(
                    Command::new(std::env::current_exe()?)
                        .arg("internal-ingest")
                        .arg(&file),
                )?;
                let per = (g["rss_after"].as_f64().unwrap() - g["rss_before"].as_f64().unwrap())
                    / n as f64;
                println!(
                    "{:.0} announces/s, {per:.0} B per path",
                    n as f64 / g["wall_s"].as_f64().unwrap()
                );
                return Ok(());
            }
            "internal-ingest" => {
                let file = args.next().context("file")?;
                return internal_ingest(Path::new(&file));
            }
            "-h" | "--help" => {
                println!("grid-bench [--quick] [--python PATH] [--write FILE]\n\nMeasures Grid against Python RNS 1.5.7 in the same run and prints a Markdown report.\n\n  grid-bench forward-only N [RATE]  Grid forwarding cost alone (for profiling; RATE: one packet per write)\n  grid-bench forward-paced N [RATE]  paced forwarding and link set-up, Python endpoints, Grid vs rnsd\n  grid-bench ingest-only N    Grid announce ingestion and memory alone\n  grid-bench commands-only N  Grid command round trips alone\n  grid-bench bundles-only N   bundle store rates, Grid and the Python file reference");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let v = Command::new(&opts.python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('rns'))",
        ])
        .output()
        .with_context(|| format!("running {}", opts.python.display()))?;
    let rns_version = String::from_utf8_lossy(&v.stdout).trim().to_string();
    if !v.status.success() || rns_version.is_empty() {
        bail!(
            "{} has no rns package; run ./scripts/test.sh first",
            opts.python.display()
        );
    }
    let grid = grid_binary()?;
    let mut rows = Vec::new();

    let n_ingest = if opts.quick { 5_000 } else { 20_000 };
    eprintln!("== announce ingestion ({n_ingest} announces, in-process)");
    let (g, p) = ingest_both(&opts, "ann", n_ingest, 1)?;
    let rate = |v: &Value| v["announces"].as_f64().unwrap() / v["wall_s"].as_f64().unwrap();
    let cores = |v: &Value| v["cpu_s"].as_f64().unwrap() / v["wall_s"].as_f64().unwrap();
    rows.push(Row::new(
        "Announces validated and ingested per second (one core)",
        format!("{:.0}/s ({:.2} cores)", rate(&g), cores(&g)),
        format!("{:.0}/s ({:.2} cores)", rate(&p), cores(&p)),
        rate(&g) / rate(&p),
        "≥ 20,000/s",
        rate(&g) >= 20_000.0,
        "higher is better",
    ));

    let n_mem = if opts.quick { 10_000 } else { 50_000 };
    eprintln!("== memory per known path ({n_mem} paths, in-process)");
    let (g, p) = ingest_both(&opts, "mem", n_mem, 2)?;
    let per = |v: &Value| {
        (v["rss_after"].as_f64().unwrap() - v["rss_before"].as_f64().unwrap())
            / v["paths"].as_f64().unwrap()
    };
    rows.push(Row::new(
        "Memory per known path (RSS growth / paths)",
        format!("{:.0} B", per(&g)),
        format!("{:.0} B", per(&p)),
        per(&p) / per(&g),
        "≤ 300 B",
        per(&g) <= 300.0,
        "lower is better; ratio = Python / Grid",
    ));

    eprintln!("== idle RSS");
    report_symbol_order(&grid, &symbol_order_list());
    let (g, p) = (idle_rss_grid(&grid)?, idle_rss_rnsd(&opts.python)?);
    rows.push(Row::new(
        "Idle node RSS",
        format!("{:.1} MB", g / 1e6),
        format!("{:.1} MB", p / 1e6),
        p / g,
        "≤ 10 MB",
        g <= 10e6,
        "lower is better; ratio = Python / Grid",
    ));

    eprintln!("== start-up to first announce");
    let runs = if opts.quick { 3 } else { 7 };
    let g = median(startup_grid(&grid, runs)?);
    let p = median(startup_python(&opts.python, runs)?);
    rows.push(Row::new(
        "Start-up to first announce (median)",
        format!("{:.1} ms", g * 1e3),
        format!("{:.1} ms", p * 1e3),
        p / g,
        "≤ 20 ms",
        g <= 0.020,
        "lower is better; ratio = Python / Grid",
    ));

    let n_fwd = if opts.quick { 10_000 } else { 50_000 };
    eprintln!("== forwarding cost ({n_fwd} packets through a transport node)");
    let g = forward_bench(Transit::Grid(&grid), n_fwd, None)?;
    let p = forward_bench(Transit::Rnsd(&opts.python), n_fwd, None)?;
    rows.push(Row::new(
        "CPU time per forwarded packet (transport node)",
        format!("{:.2} µs ({} of {n_fwd})", g.0 * 1e6, g.1),
        format!("{:.2} µs ({} of {n_fwd})", p.0 * 1e6, p.1),
        p.0 / g.0,
        "≤ 1/30 of Python",
        p.0 / g.0 >= 30.0,
        "lower is better; ratio = Python / Grid",
    ));

    let n_paced = if opts.quick { 10_000 } else { 30_000 };
    eprintln!("== paced forwarding ({n_paced} link packets at {PACED_RATE}/s, Python endpoints)");
    let (fwd, floor, est) = paced_both(&opts.python, &grid, n_paced, PACED_RATE)?;
    rows.push(fwd);
    rows.push(floor);
    rows.push(est);

    eprintln!("== links and resources");
    let n_links = if opts.quick { 5 } else { 40 };
    let sizes: &[usize] = if opts.quick {
        &[5_000_000]
    } else {
        &[5_000_000, 50_000_000]
    };
    let files_dir = tmpdir("res-files");
    let files: Vec<PathBuf> = sizes
        .iter()
        .map(|&n| {
            let p = files_dir.join(format!("bench-{n}.bin"));
            let mut data = vec![0u8; n];
            Rng::seed_from_u64(n as u64).fill_bytes(&mut data);
            std::fs::write(&p, data).unwrap();
            p
        })
        .collect();
    for transit in [false, true] {
        let g = link_bench_grid(&grid, transit, n_links, if transit { &[] } else { &files })?;
        let p = link_bench_python(
            &opts.python,
            transit,
            n_links,
            if transit { &[] } else { &files },
        )?;
        let via = if transit {
            "through one transport node"
        } else {
            "direct"
        };
        let (ge, pe) = (median(g.establish.clone()), median(p.establish.clone()));
        rows.push(Row::new(
            if transit {
                "Link establishment, through one transport node (median)"
            } else {
                "Link establishment, direct (median)"
            },
            format!("{:.2} ms", ge * 1e3),
            format!("{:.2} ms", pe * 1e3),
            pe / ge,
            "≤ 1/5 of Python",
            pe / ge >= 5.0,
            "lower is better; ratio = Python / Grid",
        ));
        let _ = via;
        if !transit {
            let (gr, pr) = (median(g.rtt.clone()), median(p.rtt.clone()));
            rows.push(Row::new(
                "Link packet round trip (packet + proof, median)",
                format!("{:.3} ms", gr * 1e3),
                format!("{:.3} ms", pr * 1e3),
                pr / gr,
                "(no goal)",
                true,
                "lower is better; ratio = Python / Grid",
            ));
            for (i, &size) in sizes.iter().enumerate() {
                let (gt, pt) = (&g.resources[i], &p.resources[i]);
                let mb = size as f64 / 1e6;
                rows.push(Row::new(
                    if size < 10_000_000 {
                        "Resource throughput, 5 MB incompressible, loopback TCP"
                    } else {
                        "Resource throughput, 50 MB incompressible, loopback TCP"
                    },
                    format!(
                        "{:.1} MB/s (CPU {:.1} ms/MB send, {:.1} ms/MB receive)",
                        mb / gt.0,
                        gt.1 * 1e3 / mb,
                        gt.2 * 1e3 / mb
                    ),
                    format!(
                        "{:.1} MB/s (CPU {:.1} ms/MB send, {:.1} ms/MB receive)",
                        mb / pt.0,
                        pt.1 * 1e3 / mb,
                        pt.2 * 1e3 / mb
                    ),
                    pt.0 / gt.0,
                    "≥ 10× Python",
                    pt.0 / gt.0 >= 10.0,
                    "higher is better; ratio = Grid / Python",
                ));
            }
        }
    }

    rows.extend(rns_resources::rows(&opts.python, &grid, opts.quick)?);

    let n_cmd = if opts.quick { 100 } else { 500 };
    for transit in [false, true] {
        eprintln!(
            "== command round trips and rate ({n_cmd} grid/ping vs RNS /ping requests, {})",
            if transit {
                "through one transport node"
            } else {
                "direct"
            }
        );
        let g = command_round_trips::grid(&grid, transit, n_cmd)?;
        let p = command_round_trips::python(&opts.python, transit, n_cmd)?;
        let (g50, g99) = (
            command_round_trips::percentile(g.rtt.clone(), 50.0),
            command_round_trips::percentile(g.rtt.clone(), 99.0),
        );
        let (p50, p99) = (
            command_round_trips::percentile(p.rtt.clone(), 50.0),
            command_round_trips::percentile(p.rtt.clone(), 99.0),
        );
        rows.push(Row::new(
            if transit {
                "Command round trip through one transport node, p50 / p99 (grid/ping vs RNS request)"
            } else {
                "Command round trip over a loopback link, p50 / p99 (grid/ping vs RNS request)"
            },
            format!("{:.3} / {:.3} ms", g50 * 1e3, g99 * 1e3),
            format!("{:.3} / {:.3} ms", p50 * 1e3, p99 * 1e3),
            p50 / g50,
            "(no goal)",
            true,
            "lower is better; ratio = Python / Grid, at p50",
        ));
        if !transit {
            rows.push(Row::new(
                "Commands per second on one link (16 in flight)",
                format!("{:.0}/s", g.per_second),
                format!("{:.0}/s", p.per_second),
                g.per_second / p.per_second,
                "(no goal)",
                true,
                "higher is better; ratio = Grid / Python",
            ));
        }
    }

    let n_bundles = if opts.quick { 200 } else { 1000 };
    for size in BUNDLE_SIZES {
        eprintln!("== bundle store ({n_bundles} bundles of {size} B, durable writes)");
        let g = bundles::grid(n_bundles, size)?;
        let p = bundles::python(&opts.python, n_bundles, size)?;
        rows.push(Row::new(
            &format!("Bundle store writes, {size} B bundles, one durable transaction each (vs one fsynced file each, as LXMF stores messages)"),
            format!("{:.0}/s", g.writes),
            format!("{:.0}/s", p.writes),
            g.writes / p.writes,
            "(no goal)",
            true,
            "higher is better; ratio = Grid / Python",
        ));
        rows.push(Row::new(
            &format!("Bundle store reads by id, {size} B bundles (vs reading the file)"),
            format!("{:.0}/s", g.reads),
            format!("{:.0}/s", p.reads),
            g.reads / p.reads,
            "(no goal)",
            true,
            "higher is better; ratio = Grid / Python",
        ));
    }

    eprintln!("== LAN convergence (hosts in network namespaces, auto interface only)");
    for n in if opts.quick { vec![4] } else { vec![4, 8] } {
        match (lan::grid(&grid, n), lan::python(&opts.python, n)) {
            (Ok(g), Ok(p)) => rows.push(Row::new(
                if n == 4 {
                    "LAN of 4 hosts: start to full path knowledge"
                } else {
                    "LAN of 8 hosts: start to full path knowledge"
                },
                format!("{g:.2} s"),
                format!("{p:.2} s"),
                p / g,
                "(no goal)",
                true,
                "lower is better; ratio = Python / Grid",
            )),
            (g, p) => {
                let why = g
                    .err()
                    .or(p.err())
                    .map(|e| format!("{e:#}"))
                    .unwrap_or_default();
                eprintln!("   skipped: {why}");
            }
        }
    }

    let genome_rows = genome::run(opts.quick, &grid)?;

    let report = render(&rows, &genome_rows, &rns_version, opts.quick);
    println!("{report}");
    if let Some(path) = opts.write {
        page::write(&path, &report.blocks())?;
        eprintln!("wrote the generated parts of {}", path.display());
    }
    Ok(())
}

/// Rows of one part run on its own, as plain text.
fn print_rows(rows: &[Row]) {
    for r in rows {
        println!(
            "{}\n  Grid: {}\n  RNS:  {}\n  ratio {:.2} (goal {}, met: {})",
            r.what, r.grid, r.python, r.ratio, r.goal, r.met
        );
    }
}

/// Bundle sizes the store is measured at: a typical command, a large result.
pub(crate) const BUNDLE_SIZES: [usize; 2] = [1024, 65536];

/// Packets per second the paced forwarding benchmark sends, one per TCP write.
const PACED_RATE: f64 = 10_000.0;

/// Paced forwarding and link set-up through Grid, through rnsd and through a bare relay
/// (the floor), Python endpoints: (CPU per packet crossing, the floor, link establishment)
/// rows.
fn paced_both(python: &Path, grid: &Path, n: usize, rate: f64) -> Result<(Row, Row, Row)> {
    let links = 20;
    let g = paced::run(python, paced::Via::Grid(grid), n, rate, links)?;
    let p = paced::run(python, paced::Via::Rnsd, n, rate, links)?;
    let floors = [relay::Flavour::Tokio, relay::Flavour::Threads]
        .into_iter()
        .map(|f| paced::run(python, paced::Via::Relay(f), n, rate, links).map(|r| (f, r)))
        .collect::<Result<Vec<_>>>()?;
    let us = |r: &paced::Paced| {
        format!(
            "{:.2} µs ({} sent at {:.0}/s, {} delivered, {} proofs back)",
            r.cpu_per_crossing * 1e6,
            r.sent,
            r.rate,
            r.delivered,
            r.proofs
        )
    };
    let fwd = Row::new(
        "CPU time per packet crossing a transport node, paced one per TCP write (Python endpoints; link DATA + proof)",
        us(&g),
        us(&p),
        p.cpu_per_crossing / g.cpu_per_crossing,
        "≤ 4 µs",
        g.cpu_per_crossing <= 4e-6,
        "lower is better; ratio = Python / Grid",
    );
    let floor = floors
        .iter()
        .map(|(_, r)| r.cpu_per_crossing)
        .fold(f64::INFINITY, f64::min);
    let floor_row = Row::new(
        "The floor, same run: a bare relay (one recv + one send per packet, no transport) in the node's place; Grid column: Grid's figure over the lowest floor",
        format!(
            "{:.2} µs = {:.2}× the floor",
            g.cpu_per_crossing * 1e6,
            g.cpu_per_crossing / floor
        ),
        floors
            .iter()
            .map(|(f, r)| format!("{}: {}", f.label(), us(r)))
            .collect::<Vec<_>>()
            .join("; "),
        g.cpu_per_crossing / floor,
        "(floor; ≤ 4 µs is met only if the floor is below it)",
        floor <= 4e-6,
        "ratio = Grid / lowest floor; 1.0 would be a free transport",
    );
    let ms = |v: &[f64]| {
        format!(
            "{:.2} / {:.2} ms",
            harness::percentile_ms(v.to_vec(), 50.0),
            harness::percentile_ms(v.to_vec(), 90.0)
        )
    };
    let (gm, pm) = (median(g.establish.clone()), median(p.establish.clone()));
    let est = Row::new(
        "Link establishment through a transport node, Python endpoints, p50 / p90 (Grid node vs rnsd)",
        ms(&g.establish),
        ms(&p.establish),
        pm / gm,
        "(no goal)",
        true,
        "lower is better; ratio = rnsd / Grid, at p50",
    );
    Ok((fwd, floor_row, est))
}
