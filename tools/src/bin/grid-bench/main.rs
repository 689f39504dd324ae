//! `grid-bench`: Grid and Python RNS 1.5.7 measured side by side, in the same run, on the
//! same inputs. Writes a Markdown report (see docs/benchmarks.md).
//!
//! Usage: `grid-bench [--quick] [--python PATH] [--write FILE]`
//! Python comes from `--python`, `$GRID_PYTHON` or `.venv/bin/python` (see scripts/test.sh).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{anyhow, bail, Context, Result};
use grid_interfaces::hdlc;
use rand_core::{RngCore, SeedableRng};
use rns_core::announce;
use rns_core::destination::{destination_hash, name_hash};
use rns_core::packet::{Context as Ctx, Flags, Packet, PacketType, TransportType};
use rns_core::transport::{InterfaceConfig, InterfaceId, Transport, TransportConfig};
use rns_core::{destination::DestinationType, AddressHash, Identity, Instant};
use serde_json::Value;

mod bundles;
mod commands;
mod genome;
mod lan;
mod rns_resources;

type Rng = rand_chacha::ChaCha20Rng;

struct Opts {
    quick: bool,
    python: PathBuf,
    write: Option<PathBuf>,
}

fn main() {
    if let Err(e) = real_main() {
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
            "commands-only" => {
                let n: usize = args.next().context("count")?.parse()?;
                for transit in [false, true] {
                    let g = commands::grid(&grid_binary()?, transit, n)?;
                    println!(
                        "{}: p50 {:.3} ms, p99 {:.3} ms, {:.0} commands/s",
                        if transit {
                            "through a transport node"
                        } else {
                            "direct"
                        },
                        commands::percentile(g.rtt.clone(), 50.0) * 1e3,
                        commands::percentile(g.rtt, 99.0) * 1e3,
                        g.per_second
                    );
                }
                return Ok(());
            }
            "resources-only" => {
                for r in rns_resources::rows(&opts.python, &grid_binary()?, opts.quick)? {
                    println!(
                        "{}\n  Grid: {}\n  RNS:  {}\n  ratio {:.2} (goal {}, met: {})",
                        r.what, r.grid, r.python, r.ratio, r.goal, r.met
                    );
                }
                return Ok(());
            }
            "genome-only" => {
                for r in genome::run(opts.quick, &grid_binary()?)? {
                    println!("{}: {} (goal {}, met: {})", r.what, r.grid, r.goal, r.met);
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
                let g = forward_bench(Transit::Grid(&grid_binary()?), n)?;
                println!("{:.3} µs per packet ({} delivered)", g.0 * 1e6, g.1);
                return Ok(());
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
                println!("grid-bench [--quick] [--python PATH] [--write FILE]\n\nMeasures Grid against Python RNS 1.5.7 in the same run and prints a Markdown report.\n\n  grid-bench forward-only N   Grid forwarding cost alone (for profiling)\n  grid-bench ingest-only N    Grid announce ingestion and memory alone\n  grid-bench commands-only N  Grid command round trips alone\n  grid-bench bundles-only N   bundle store rates, Grid and the Python file reference");
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
    let g = forward_bench(Transit::Grid(&grid), n_fwd)?;
    let p = forward_bench(Transit::Rnsd(&opts.python), n_fwd)?;
    rows.push(Row::new(
        "CPU time per forwarded packet (transport node)",
        format!("{:.2} µs ({} of {n_fwd})", g.0 * 1e6, g.1),
        format!("{:.2} µs ({} of {n_fwd})", p.0 * 1e6, p.1),
        p.0 / g.0,
        "≤ 1/30 of Python",
        p.0 / g.0 >= 30.0,
        "lower is better; ratio = Python / Grid",
    ));

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
        let g = commands::grid(&grid, transit, n_cmd)?;
        let p = commands::python(&opts.python, transit, n_cmd)?;
        let (g50, g99) = (
            commands::percentile(g.rtt.clone(), 50.0),
            commands::percentile(g.rtt.clone(), 99.0),
        );
        let (p50, p99) = (
            commands::percentile(p.rtt.clone(), 50.0),
            commands::percentile(p.rtt.clone(), 99.0),
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
        std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Ingest the same `n` announces into Grid and Python (each in a fresh process).
fn ingest_both(opts: &Opts, tag: &str, n: usize, seed: u64) -> Result<(Value, Value)> {
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

struct Row {
    what: String,
    grid: String,
    python: String,
    ratio: f64,
    goal: &'static str,
    met: bool,
    note: &'static str,
}

impl Row {
    fn new(
        what: &str,
        grid: String,
        python: String,
        ratio: f64,
        goal: &'static str,
        met: bool,
        note: &'static str,
    ) -> Row {
        Row {
            what: what.to_string(),
            grid,
            python,
            ratio,
            goal,
            met,
            note,
        }
    }
}

fn render(
    rows: &[Row],
    genome_rows: &[genome::GenomeRow],
    rns_version: &str,
    quick: bool,
) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let date = String::from_utf8(
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let mut s = String::new();
    s.push_str(&format!(
        "- Command: `cargo build --release --bins && target/release/grid-bench{} --write docs/benchmarks.md`\n",
        if quick { " --quick" } else { "" }
    ));
    s.push_str(&format!("- Date: {}\n", date.trim()));
    s.push_str(&format!(
        "- Machine: {cpu}, {cores} cores, {:.0} GiB RAM, {}\n",
        mem as f64 / 1048576.0,
        std::env::consts::ARCH
    ));
    s.push_str(&format!(
        "- Reference: Python RNS {rns_version}, measured in the same run on the same inputs\n\n"
    ));
    s.push_str(
        "| measurement | Grid | Python RNS | ratio | goal | met |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1}× ({}) | {} | {} |\n",
            r.what,
            r.grid,
            r.python,
            r.ratio,
            r.note,
            r.goal,
            if r.met { "yes" } else { "**no**" }
        ));
    }
    s.push_str(
        "\n### Genome (skill search; Python RNS has no counterpart)\n\n| measurement | Grid | goal | met |\n|---|---|---|---|\n",
    );
    for r in genome_rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what,
            r.grid,
            r.goal,
            if r.met { "yes" } else { "**no**" }
        ));
    }
    let header =
        std::fs::read_to_string(workspace().join("docs/benchmarks.head.md")).unwrap_or_default();
    format!("{header}{s}")
}

/// The `p`th percentile of seconds, in milliseconds.
fn percentile_ms(v: Vec<f64>, p: f64) -> f64 {
    commands::percentile(v, p) * 1e3
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bench_script(name: &str) -> PathBuf {
    workspace().join("tools/bench").join(name)
}

fn grid_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let g = me.with_file_name("grid");
    if !g.exists() {
        bail!(
            "{} not found; build it with cargo build --release --bin grid",
            g.display()
        );
    }
    Ok(g)
}

/// Bundle sizes the store is measured at: a typical command, a large result.
const BUNDLE_SIZES: [usize; 2] = [1024, 65536];

fn tmpdir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("grid-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn run_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON from {cmd:?}: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `n` announces from `n` fresh identities, as length-prefixed logical packets.
fn write_announces(path: &Path, n: usize, seed: u64) -> Result<()> {
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

fn split_announces(data: &[u8]) -> Result<Vec<&[u8]>> {
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

fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        * 1024.0
}

/// CPU time of a process (all threads), in seconds, nanosecond resolution.
fn cpu_of(pid: u32) -> f64 {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total as f64 / 1e9
}

/// Child process: ingest announces into an in-process Transport; print JSON.
///
/// The packets stay in the one buffer they were read into, and nothing large is freed
/// before measuring: freeing a multi-megabyte buffer raises glibc's dynamic mmap
/// threshold, after which growing hash tables come from the heap and leave holes that
/// RSS keeps — an artefact of the harness, not of the tables being measured.
fn internal_ingest(file: &Path) -> Result<()> {
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

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, secs: u64) -> Result<()> {
    let end = StdInstant::now() + Duration::from_secs(secs);
    while StdInstant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listening on port {port}")
}

fn spawn_grid(grid: &Path, dir: &Path) -> Result<Proc> {
    Ok(Proc(
        Command::new(grid)
            .arg("--config")
            .arg(dir)
            .args(["node", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ))
}

fn spawn_rnsd(python: &Path, dir: &Path) -> Result<Proc> {
    Ok(Proc(
        Command::new(python.with_file_name("rnsd"))
            .arg("--config")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ))
}

fn rnsd_config(dir: &Path, port: u16, transport: bool) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("config"),
        format!("[reticulum]\n  enable_transport = {}\n  share_instance = No\n\n[logging]\n  loglevel = 1\n\n[interfaces]\n  [[tcp]]\n    type = TCPServerInterface\n    enabled = yes\n    listen_ip = 127.0.0.1\n    listen_port = {port}\n", if transport { "Yes" } else { "No" }),
    )?;
    Ok(())
}

fn idle_rss_grid(grid: &Path) -> Result<f64> {
    let dir = tmpdir("idle-grid");
    let port = free_port();
    std::fs::write(
        dir.join("config.toml"),
        format!("[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"),
    )?;
    let p = spawn_grid(grid, &dir)?;
    wait_listening(port, 10)?;
    std::thread::sleep(Duration::from_secs(3));
    Ok(rss_of(p.0.id()))
}

fn idle_rss_rnsd(python: &Path) -> Result<f64> {
    let dir = tmpdir("idle-rnsd");
    let port = free_port();
    rnsd_config(&dir, port, false)?;
    let p = spawn_rnsd(python, &dir)?;
    wait_listening(port, 30)?;
    std::thread::sleep(Duration::from_secs(3));
    Ok(rss_of(p.0.id()))
}

/// Wait for the first datagram on `sock` that parses as an announce.
fn first_announce(sock: &UdpSocket, timeout: Duration) -> Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let end = StdInstant::now() + timeout;
    let mut buf = [0u8; 2048];
    while StdInstant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Ok(p) = Packet::parse(&buf[..n]) {
                if p.flags.packet_type == PacketType::Announce {
                    return Ok(());
                }
            }
        }
    }
    bail!("no announce within {timeout:?}")
}

fn startup_grid(grid: &Path, runs: usize) -> Result<Vec<f64>> {
    let dir = tmpdir("start-grid");
    let mut v = Vec::new();
    for _ in 0..runs {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let fwd = sock.local_addr()?.port();
        let listen = free_port();
        std::fs::write(
            dir.join("config.toml"),
            format!("[[interface]]\ntype = \"udp\"\nlisten = \"127.0.0.1:{listen}\"\nforward = \"127.0.0.1:{fwd}\"\n"),
        )?;
        let t0 = StdInstant::now();
        let _p = spawn_grid(grid, &dir)?;
        first_announce(&sock, Duration::from_secs(10))?;
        v.push(t0.elapsed().as_secs_f64());
    }
    Ok(v)
}

fn startup_python(python: &Path, runs: usize) -> Result<Vec<f64>> {
    let dir = tmpdir("start-py");
    let mut v = Vec::new();
    for _ in 0..runs {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let fwd = sock.local_addr()?.port();
        let listen = free_port();
        let t0 = StdInstant::now();
        let _p = Proc(
            Command::new(python)
                .arg(bench_script("py_startup.py"))
                .arg(&dir)
                .arg(listen.to_string())
                .arg(fwd.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        first_announce(&sock, Duration::from_secs(30))?;
        v.push(t0.elapsed().as_secs_f64());
    }
    Ok(v)
}

/// Link and resource measurements of one implementation.
struct LinkBench {
    /// Establishment times (s).
    establish: Vec<f64>,
    /// Packet round trips (s).
    rtt: Vec<f64>,
    /// Per file: (seconds, sender CPU s, receiver CPU s).
    resources: Vec<(f64, f64, f64)>,
}

fn control(dir: &Path, req: Value) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let v = rt.block_on(grid_interfaces::control::call(
        &dir.join("grid.sock"),
        &req,
        Duration::from_secs(120),
    ))?;
    if v["ok"] != true {
        bail!("control {req}: {v}");
    }
    Ok(v)
}

fn wait_control(dir: &Path) -> Result<()> {
    let end = StdInstant::now() + Duration::from_secs(20);
    while StdInstant::now() < end {
        if control(dir, serde_json::json!({"cmd": "status"})).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("node at {} did not start", dir.display())
}

fn grid_node_dir(tag: &str, config: &str) -> Result<PathBuf> {
    let dir = tmpdir(tag);
    std::fs::write(dir.join("config.toml"), config)?;
    Ok(dir)
}

fn link_bench_grid(grid: &Path, transit: bool, n: usize, files: &[PathBuf]) -> Result<LinkBench> {
    let port = free_port();
    let server = |extra: &str| {
        format!("[node]\nannounce_interval = \"1h\"\n{extra}\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n")
    };
    let client = |extra: &str| {
        format!("[node]\nannounce_interval = \"1h\"\n{extra}\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n")
    };
    let mut procs = Vec::new();
    let (rdir, idir) = if transit {
        let t = grid_node_dir("lt", &server("transport = true"))?;
        procs.push(spawn_grid(grid, &t)?);
        wait_control(&t)?;
        (
            grid_node_dir("lr", &client("[cp]\nallow_all = true"))?,
            grid_node_dir("li", &client(""))?,
        )
    } else {
        (
            grid_node_dir("lr", &server("[cp]\nallow_all = true"))?,
            grid_node_dir("li", &client(""))?,
        )
    };
    let r = spawn_grid(grid, &rdir)?;
    wait_control(&rdir)?;
    let i = spawn_grid(grid, &idir)?;
    wait_control(&idir)?;
    let id = |d: &Path| -> Result<Value> {
        let out = Command::new(grid)
            .arg("--config")
            .arg(d)
            .args(["id", "--json"])
            .output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let rid = id(&rdir)?;
    let dest = rid["destination"].as_str().unwrap().to_string();
    let cp_dest = rid["destinations"]["rncp.receive"]
        .as_str()
        .unwrap()
        .to_string();
    let end = StdInstant::now() + Duration::from_secs(30);
    while control(
        &idir,
        serde_json::json!({"cmd": "path", "destination": dest, "timeout_ms": 2000}),
    )
    .is_err()
    {
        if StdInstant::now() > end {
            bail!("no path to the Grid responder");
        }
    }
    let mut establish = Vec::new();
    for _ in 0..n {
        // The node's own measure, request to established (as the Python side measures
        // inside its process), without the control-socket round trip.
        let v = control(
            &idir,
            serde_json::json!({"cmd": "link_open", "destination": dest}),
        )?;
        establish.push(v["rtt_ms"].as_f64().unwrap_or(f64::NAN) / 1e3);
        control(
            &idir,
            serde_json::json!({"cmd": "link_close", "link": v["link"]}),
        )?;
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rtt = Vec::new();
    if !transit {
        let v = control(
            &idir,
            serde_json::json!({"cmd": "link_open", "destination": dest}),
        )?;
        for _ in 0..n {
            // The link's own send-to-proof time, as Python measures it in-process.
            let p = control(
                &idir,
                serde_json::json!({"cmd": "link_send", "link": v["link"], "data": "xxxxxxxxxxxxxxxx"}),
            )?;
            rtt.push(p["rtt_ms"].as_f64().unwrap_or(f64::NAN) / 1e3);
        }
        control(
            &idir,
            serde_json::json!({"cmd": "link_close", "link": v["link"]}),
        )?;
    }
    let mut resources = Vec::new();
    for f in files {
        let (cs, cr) = (cpu_of(i.0.id()), cpu_of(r.0.id()));
        let v = control(
            &idir,
            serde_json::json!({"cmd": "cp", "path": f.display().to_string(), "destination": cp_dest}),
        )?;
        let status = loop {
            let s = control(
                &idir,
                serde_json::json!({"cmd": "cp_status", "id": v["id"]}),
            )?;
            match s["state"].as_str() {
                Some("complete") => break s,
                Some("failed") => bail!("grid cp failed: {s}"),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        // The receiver finishes writing after the last proof; let it settle before sampling.
        std::thread::sleep(Duration::from_millis(200));
        // Link up to last proof, as Python's figure (resource start to completion).
        resources.push((
            status["transfer_seconds"].as_f64().unwrap_or(0.0),
            cpu_of(i.0.id()) - cs,
            cpu_of(r.0.id()) - cr,
        ));
    }
    drop((i, r, procs));
    Ok(LinkBench {
        establish,
        rtt,
        resources,
    })
}

fn py_link(
    python: &Path,
    args: &[&str],
) -> Result<(Proc, std::io::BufReader<std::process::ChildStdout>)> {
    // Keep the helper's stderr next to its state directory, for when it fails.
    let log = std::fs::File::create(format!("{}.stderr", args.get(1).unwrap_or(&"py-link")))?;
    let mut child = Command::new(python)
        .arg(bench_script("py_link.py"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()?;
    let out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    Ok((Proc(child), out))
}

fn read_json_line(r: &mut std::io::BufReader<std::process::ChildStdout>) -> Result<Value> {
    use std::io::BufRead;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("python helper exited without output (its stderr is kept in the bench's temp dir as *.stderr)");
        }
        if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
            return Ok(v);
        }
    }
}

/// A Python `bench.sink` responder (tools/bench/py_link.py), reached over loopback TCP
/// directly or through an `rnsd` transport node.
struct PyResponder {
    _rnsd: Option<Proc>,
    process: Proc,
    /// The interface spec a Python initiator uses to reach it.
    client: String,
    /// Its destination hash.
    destination: String,
}

impl PyResponder {
    fn start(python: &Path, transit: bool, tag: &str) -> Result<PyResponder> {
        let port = free_port();
        let server = format!("tcp_server=127.0.0.1:{port}");
        let client = format!("tcp_client=127.0.0.1:{port}");
        let rnsd = if transit {
            let d = tmpdir(&format!("{tag}-rnsd"));
            rnsd_config(&d, port, true)?;
            let p = spawn_rnsd(python, &d)?;
            wait_listening(port, 30)?;
            Some(p)
        } else {
            None
        };
        let rdir = tmpdir(&format!("{tag}-resp"));
        let iface = if transit { &client } else { &server };
        let (process, mut out) = py_link(python, &["responder", rdir.to_str().unwrap(), iface])?;
        let destination = read_json_line(&mut out)?["destination"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !transit {
            wait_listening(port, 30)?;
        }
        Ok(PyResponder {
            _rnsd: rnsd,
            process,
            client,
            destination,
        })
    }
}

fn link_bench_python(
    python: &Path,
    transit: bool,
    n: usize,
    files: &[PathBuf],
) -> Result<LinkBench> {
    let PyResponder {
        _rnsd,
        process: resp,
        client,
        destination: dest,
    } = PyResponder::start(python, transit, "py")?;
    let run = |role: &str, extra: &str| -> Result<Value> {
        let idir = tmpdir(&format!("py-{role}"));
        let (_p, mut out) = py_link(
            python,
            &[role, idir.to_str().unwrap(), &client, &dest, extra],
        )?;
        read_json_line(&mut out)
    };
    let list = |v: &Value| {
        v["seconds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let establish = list(&run("establish", &n.to_string())?);
    let rtt = if transit {
        Vec::new()
    } else {
        list(&run("rtt", &n.to_string())?)
    };
    let mut resources = Vec::new();
    for f in files {
        let cr = cpu_of(resp.0.id());
        let v = run("send", f.to_str().unwrap())?;
        if v["ok"] != true {
            bail!("Python resource transfer failed: {v}");
        }
        resources.push((
            v["seconds"].as_f64().unwrap_or(0.0),
            v["cpu"].as_f64().unwrap_or(0.0),
            cpu_of(resp.0.id()) - cr,
        ));
    }
    if establish.is_empty() {
        bail!("no Python link measurements");
    }
    Ok(LinkBench {
        establish,
        rtt,
        resources,
    })
}

enum Transit<'a> {
    Grid(&'a Path),
    Rnsd(&'a Path),
}

/// Forward `n` packets through a transport node; returns (CPU s per packet, delivered).
fn forward_bench(which: Transit<'_>, n: usize) -> Result<(f64, usize)> {
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
    };
    wait_listening(port, 30)?;
    let pid = proc_.0.id();

    // The sink connects and announces; the transit node learns a 1-hop path to it.
    let nh = name_hash("bench.sink");
    let sink_dest = destination_hash(&nh, Some(&sink_id.hash()));
    let mut sink = TcpStream::connect(("127.0.0.1", port))?;
    let mut sender = TcpStream::connect(("127.0.0.1", port))?;
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
                    if f.len() > 19 && f[0] & 0x03 == 0 && f[2..18] == sink_dest.0 {
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
