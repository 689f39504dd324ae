//! Genome measurements: the embedder, the vector index at 1k/10k/100k entries of real
//! embeddings (exact scan and HNSW, with HNSW's recall@10 against exact), publishing, the
//! search evaluation, and `grid skills search` across one hop. Python RNS has no
//! counterpart for any of these, so they get their own table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use anyhow::{anyhow, Context, Result};
use grid_genome::embed::{Embedder, MiniLm, DIM};
use grid_genome::index::{Key, VectorIndex};

use crate::harness::{percentile_ms, tmpdir, workspace};

/// One genome measurement.
pub(super) struct GenomeRow {
    pub(super) what: String,
    pub(super) grid: String,
    pub(super) goal: &'static str,
    pub(super) met: bool,
}

fn row(what: impl Into<String>, grid: String, goal: &'static str, met: bool) -> GenomeRow {
    GenomeRow {
        what: what.into(),
        grid,
        goal,
        met,
    }
}

fn models() -> Result<PathBuf> {
    let dir = std::env::var_os("GRID_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".cache/models"));
    grid_genome::embed::check_minilm(&dir)
        .map_err(|e| anyhow!("{e} (the genome benchmarks need the embedding model)"))?;
    Ok(dir)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Skill descriptions made from parts, varied enough that their embeddings spread like
/// real ones: subject × task × audience × setting.
fn description(i: usize) -> String {
    const SUBJECTS: [&str; 40] = [
        "fractions",
        "photosynthesis",
        "the water cycle",
        "quadratic equations",
        "the French revolution",
        "volcanoes",
        "Python loops",
        "persuasive essays",
        "the human heart",
        "electric circuits",
        "crop rotation",
        "budget spreadsheets",
        "first aid for burns",
        "Spanish verbs",
        "chess openings",
        "the solar system",
        "probability",
        "poetry metre",
        "bicycle brakes",
        "solar panels",
        "map reading",
        "climate change",
        "SQL joins",
        "musical scales",
        "world religions",
        "job interviews",
        "tenant rights",
        "healthy cooking",
        "sign language greetings",
        "citation styles",
        "plate tectonics",
        "Roman roads",
        "vaccines",
        "machine learning basics",
        "knitting patterns",
        "beekeeping",
        "public speaking",
        "grant writing",
        "time zones",
        "recycling",
    ];
    const TASKS: [&str; 16] = [
        "explains",
        "quizzes learners on",
        "gives step-by-step practice with",
        "answers questions about",
        "corrects common mistakes in",
        "tells stories that teach",
        "summarises",
        "compares approaches to",
        "plans lessons on",
        "drills vocabulary for",
        "debugs exercises on",
        "translates material about",
        "grades short answers on",
        "builds flashcards for",
        "gives real-world examples of",
        "coaches beginners in",
    ];
    const AUDIENCES: [&str; 12] = [
        "primary pupils",
        "secondary students",
        "adult learners",
        "teachers",
        "parents",
        "farmers",
        "volunteers",
        "nurses",
        "new migrants",
        "retirees",
        "apprentices",
        "university freshers",
    ];
    const SETTINGS: [&str; 10] = [
        "offline in a classroom",
        "with simple language",
        "using local examples",
        "in short sessions",
        "with worked solutions",
        "for exam revision",
        "with diagrams described in words",
        "at a slow pace",
        "with cultural context",
        "for self-study at home",
    ];
    let (s, t, a, g) = (i % 40, (i / 40) % 16, (i / 640) % 12, (i / 7680) % 10);
    format!(
        "{} {} for {} {} (variant {}).",
        TASKS[t],
        SUBJECTS[s],
        AUDIENCES[a],
        SETTINGS[g],
        i / 76800
    )
}

/// Queries phrased differently from the descriptions.
fn query(i: usize) -> String {
    const ASKS: [&str; 8] = [
        "I need help teaching",
        "can something explain",
        "my kid struggles with",
        "revision help on",
        "how do I practise",
        "looking for a tutor for",
        "simple explanation of",
        "exercises about",
    ];
    let d = description(i * 7919 % 100_000);
    let subject = d
        .split(" for ")
        .next()
        .unwrap_or(&d)
        .split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{} {}", ASKS[i % 8], subject)
}

/// Embeddings of `n` generated descriptions, cached in `.cache/` (embedding 100k takes
/// minutes; the cache makes a re-run quick).
fn corpus(embedder: &dyn Embedder, n: usize) -> Result<Vec<Vec<f32>>> {
    let cache = workspace().join(format!(".cache/bench-embeddings-{n}.f32"));
    if let Ok(bytes) = std::fs::read(&cache) {
        if bytes.len() == n * DIM * 4 {
            return Ok(bytes
                .chunks_exact(DIM * 4)
                .map(|c| {
                    c.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })
                .collect());
        }
    }
    eprintln!(
        "   embedding {n} generated descriptions (cached afterwards in {})",
        cache.display()
    );
    let mut out = Vec::with_capacity(n);
    let texts: Vec<String> = (0..n).map(description).collect();
    for chunk in texts.chunks(256) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.extend(embedder.embed(&refs).map_err(|e| anyhow!("{e}"))?);
    }
    let mut bytes = Vec::with_capacity(n * DIM * 4);
    for v in &out {
        for x in v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    if let Some(p) = cache.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    let _ = std::fs::write(&cache, bytes);
    Ok(out)
}

/// The embedding worker `grid node` runs (`grid worker embed`): from starting it to its
/// first answer, the time of one sentence after that (pipe and framing included), and
/// its resident memory.
fn worker_row(grid_bin: &Path, models: &Path, sentences: &[String]) -> Result<GenomeRow> {
    let w = grid_genome::worker::WorkerEmbedder::new(
        grid_bin.to_path_buf(),
        vec![
            "worker".into(),
            "embed".into(),
            "--models".into(),
            models.display().to_string(),
        ],
    );
    let t = StdInstant::now();
    w.embed(&[sentences[0].as_str()])
        .map_err(|e| anyhow!("{e}"))?;
    let start_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::new();
    for s in sentences {
        let t = StdInstant::now();
        w.embed(&[s.as_str()]).map_err(|e| anyhow!("{e}"))?;
        times.push(t.elapsed().as_secs_f64());
    }
    let rss_mb = w.pid().map_or(0.0, |pid| crate::harness::rss_of(pid) / 1e6);
    Ok(row(
        "Embedding worker (`grid worker embed`): start to first answer / one sentence after / resident memory",
        format!(
            "{start_ms:.0} ms / {:.1} ms / {rss_mb:.0} MB",
            percentile_ms(times, 50.0)
        ),
        "(no goal)",
        true,
    ))
}

/// Every genome row.
pub(super) fn run(quick: bool, grid_bin: &Path) -> Result<Vec<GenomeRow>> {
    let dir = models()?;
    let mut rows = Vec::new();
    let before = rss_kib();
    let t = StdInstant::now();
    let embedder = Arc::new(MiniLm::load(&dir).map_err(|e| anyhow!("{e}"))?);
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    eprintln!("== embedder");
    let sentences: Vec<String> = (0..64).map(|i| query(i + 1000)).collect();
    let _ = embedder.embed(&[sentences[0].as_str()]);
    let t = StdInstant::now();
    for s in &sentences {
        embedder.embed(&[s.as_str()]).map_err(|e| anyhow!("{e}"))?;
    }
    let single = sentences.len() as f64 / t.elapsed().as_secs_f64();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let t = StdInstant::now();
    for c in refs.chunks(32) {
        embedder.embed(c).map_err(|e| anyhow!("{e}"))?;
    }
    let batched = sentences.len() as f64 / t.elapsed().as_secs_f64();
    let rss = rss_kib().saturating_sub(before);
    rows.push(row(
        "Embeddings per second, one sentence at a time (all-MiniLM-L6-v2 int8)",
        format!("{single:.0}/s"),
        "(no goal)",
        true,
    ));
    rows.push(row(
        "Embeddings per second, batches of 32",
        format!("{batched:.0}/s"),
        "(no goal)",
        true,
    ));
    rows.push(row(
        "Embedder load time and resident memory",
        format!("{load_ms:.0} ms, {:.0} MB", rss as f64 / 1024.0),
        "(no goal)",
        true,
    ));

    eprintln!("== embedding worker");
    rows.push(worker_row(grid_bin, &dir, &sentences)?);

    eprintln!("== publish");
    let tmp = tmpdir("genome");
    let mut reg =
        grid_genome::registry::Registry::open(&tmp.join("genome"), Some(embedder.clone()))
            .map_err(|e| anyhow!("{e}"))?;
    let identity = rns_core::identity::Identity::generate(&mut rand_core::OsRng);
    let mut times = Vec::new();
    for i in 0..20 {
        let p = tmp.join(format!("pkg{i}"));
        grid_genome::package::write_test_package(
            &p,
            &format!("skill-{i}"),
            "1.0.0",
            &description(i * 31),
            &["what is it", "show me how"],
            8,
            576,
            30,
        )?;
        let t = StdInstant::now();
        reg.publish(&p, &identity, 1).map_err(|e| anyhow!("{e}"))?;
        times.push(t.elapsed().as_secs_f64());
    }
    let p50 = percentile_ms(times.clone(), 50.0);
    rows.push(row(
        "Publish one adapter (rank 8, 30 layers, 2.2 MB: validate, hash, sign, store, embed 3 texts, index), median",
        format!("{p50:.1} ms"),
        "< 50 ms",
        p50 < 50.0,
    ));

    eprintln!("== evaluation set");
    let (top1, recall5) = evaluate(embedder.clone(), &tmp.join("eval"))?;
    rows.push(row(
        "Search evaluation (37 adapters, 87 questions sharing no content words with their answer): top-1 accuracy / recall@5",
        format!("{top1:.2} / {recall5:.2}"),
        "recall@5 ≥ 0.9",
        recall5 >= 0.9,
    ));

    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let n_max = *sizes.last().unwrap_or(&1000);
    eprintln!("== vector index ({} entries of real embeddings)", n_max);
    let vectors = corpus(embedder.as_ref(), n_max)?;
    let queries: Vec<Vec<f32>> = {
        let q: Vec<String> = (0..200).map(query).collect();
        let refs: Vec<&str> = q.iter().map(String::as_str).collect();
        embedder.embed(&refs).map_err(|e| anyhow!("{e}"))?
    };
    for &n in sizes {
        let mut exact = VectorIndex::with_threshold("bench", usize::MAX);
        let mut hnsw = VectorIndex::with_threshold("bench", 0);
        let t = StdInstant::now();
        for (i, v) in vectors[..n].iter().enumerate() {
            let key = Key {
                item: item_of(i),
                slot: 0,
            };
            exact.insert(key, v).map_err(|e| anyhow!("{e}"))?;
            hnsw.insert(key, v).map_err(|e| anyhow!("{e}"))?;
        }
        let _ = hnsw.search(&queries[0], 10, -1.0); // builds the graph
        let build = t.elapsed().as_secs_f64();
        let time = |idx: &VectorIndex| {
            let mut t = Vec::new();
            for q in &queries {
                let s = StdInstant::now();
                std::hint::black_box(idx.search(q, 10, -1.0));
                t.push(s.elapsed().as_secs_f64());
            }
            (percentile_ms(t.clone(), 50.0), percentile_ms(t, 99.0))
        };
        let (e50, e99) = time(&exact);
        let (h50, h99) = time(&hnsw);
        let recall = grid_genome::index::recall_at_k(&hnsw, &queries, 10);
        rows.push(row(
            format!("Query, {n} entries, exact scan, p50 / p99"),
            format!("{e50:.2} / {e99:.2} ms"),
            "(no goal)",
            true,
        ));
        rows.push(row(
            format!("Query, {n} entries, HNSW, p50 / p99 (recall@10 vs exact; build {build:.1} s)"),
            format!("{h50:.2} / {h99:.2} ms (recall {recall:.3})"),
            if n >= 100_000 {
                "p99 < 5 ms, recall@10 ≥ 0.95"
            } else {
                "(no goal)"
            },
            n < 100_000 || (h99 < 5.0 && recall >= 0.95),
        ));
    }

    eprintln!("== grid skills search across one hop");
    rows.push(mesh_search(grid_bin, &dir)?);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(rows)
}

fn item_of(i: usize) -> [u8; 32] {
    let mut item = [0u8; 32];
    item[..8].copy_from_slice(&(i as u64).to_le_bytes());
    item
}

/// Top-1 accuracy and recall@5 over `genome/eval/`.
fn evaluate(embedder: Arc<MiniLm>, dir: &Path) -> Result<(f64, f64)> {
    let eval = workspace().join("genome/eval");
    let adapters: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eval.join("adapters.json"))?)?;
    let queries: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eval.join("queries.json"))?)?;
    let mut reg = grid_genome::registry::Registry::open(&dir.join("genome"), Some(embedder))
        .map_err(|e| anyhow!("{e}"))?;
    let identity = rns_core::identity::Identity::generate(&mut rand_core::OsRng);
    for a in adapters.as_array().context("adapters")? {
        let name = a["name"].as_str().context("name")?;
        let p = dir.join(name);
        let examples: Vec<&str> = a["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .collect();
        grid_genome::package::write_test_package(
            &p,
            name,
            "1.0.0",
            a["description"].as_str().unwrap_or(""),
            &examples,
            4,
            16,
            1,
        )?;
        let tags: Vec<&str> = a["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .collect();
        let mut t = std::fs::read_to_string(p.join("adapter.toml"))?;
        t.push_str(&format!("tags = {tags:?}\n"));
        std::fs::write(p.join("adapter.toml"), t)?;
        reg.publish(&p, &identity, 1).map_err(|e| anyhow!("{e}"))?;
    }
    let (mut top1, mut top5, mut n) = (0, 0, 0);
    for q in queries.as_array().context("queries")? {
        n += 1;
        let found = reg
            .search(q["query"].as_str().unwrap_or(""), 5, 0.0)
            .map_err(|e| anyhow!("{e}"))?;
        let names: Vec<&str> = found
            .iter()
            .map(|f| f.entry.manifest.manifest.name.as_str())
            .collect();
        let want = q["expected"].as_str().unwrap_or("");
        top1 += usize::from(names.first() == Some(&want));
        top5 += usize::from(names.contains(&want));
    }
    Ok((top1 as f64 / n as f64, top5 as f64 / n as f64))
}

/// `grid skills search` on A, answered by B one hop away (TCP), end to end (CLI process
/// included), median of several.
fn mesh_search(grid: &Path, models: &Path) -> Result<GenomeRow> {
    let port = crate::harness::free_port();
    let cfg = |iface: String| {
        format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\n{iface}\n"
        )
    };
    let b = crate::harness::grid_node_dir(
        "gb",
        &cfg(format!(
            "type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""
        )),
    )?;
    let a = crate::harness::grid_node_dir(
        "ga",
        &cfg(format!(
            "type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\""
        )),
    )?;
    let spawn = |d: &Path| -> Result<std::process::Child> {
        Ok(std::process::Command::new(grid)
            .arg("--config")
            .arg(d)
            .arg("node")
            .env("GRID_MODELS", models)
            .stderr(std::process::Stdio::null())
            .spawn()?)
    };
    let mut procs = vec![spawn(&b)?, spawn(&a)?];
    let result = (|| -> Result<GenomeRow> {
        let cli = |d: &Path, args: &[&str]| -> Result<serde_json::Value> {
            let out = std::process::Command::new(grid)
                .arg("--config")
                .arg(d)
                .args(args)
                .output()?;
            if !out.status.success() {
                anyhow::bail!("{}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(serde_json::from_slice(&out.stdout)?)
        };
        let wait = |d: &Path| {
            for _ in 0..200 {
                if cli(d, &["adapter", "list", "--json"]).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        };
        wait(&b);
        wait(&a);
        let pkg = tmpdir("mesh-pkg");
        grid_genome::package::write_test_package(
            &pkg,
            "geometry-tutor",
            "1.0.0",
            "Explains triangle congruence and walks students through two-column proofs.",
            &["prove two triangles congruent"],
            4,
            32,
            2,
        )?;
        cli(
            &b,
            &[
                "adapter",
                "publish",
                pkg.to_str().unwrap_or_default(),
                "--json",
            ],
        )?;
        let q = [
            "skills",
            "search",
            "help my students with triangle proofs",
            "--json",
        ];
        for _ in 0..100 {
            let v = cli(&a, &q)?;
            if v.as_array().is_some_and(|r| !r.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let mut times = Vec::new();
        for _ in 0..15 {
            let t = StdInstant::now();
            let v = cli(&a, &q)?;
            times.push(t.elapsed().as_secs_f64());
            if v.as_array().is_none_or(|r| r.is_empty()) {
                anyhow::bail!("the search across one hop found nothing");
            }
        }
        let (p50, p99) = (
            percentile_ms(times.clone(), 50.0),
            percentile_ms(times, 99.0),
        );
        Ok(row(
            "`grid skills search` across one hop (CLI to answer, B holding the adapter), p50 / p99",
            format!("{p50:.1} / {p99:.1} ms"),
            "(no goal)",
            true,
        ))
    })();
    for p in &mut procs {
        let _ = p.kill();
        let _ = p.wait();
    }
    result
}
