//! Synthetic data, recall and the benchmark for the benchmark driver: clustered unit vectors
//! (real embeddings are clustered; uniform ones would make a useless recall test), recall@k of
//! the graph against the exact scan, and a timed build/search/save/load run.

use std::time::Instant;

use super::{normalised, HnswParams, Key, VectorIndex, DIM};

/// SplitMix64: a tiny seeded generator, enough for reproducible test data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn unit_vector(&mut self) -> Vec<f32> {
        loop {
            let v: Vec<f32> = (0..DIM).map(|_| self.normal()).collect();
            if let Ok(v) = normalised(&v) {
                return v;
            }
        }
    }
}

/// Clustered synthetic unit vectors for tests: `n` vectors around `clusters` random centres with
/// the given spread (seeded, deterministic).
///
/// Each vector is `centre + spread · g / √DIM` normalised, `g` standard normal, so its cosine to
/// its centre is about `1/√(1 + spread²)` (0.71 at spread 1). Vector `i` belongs to cluster
/// `i % clusters`, and the vectors are independent given the centres: generate `n + q` and
/// split off the last `q` as queries from the same distribution. Uniformly random vectors would
/// be a useless recall benchmark (no graph ANN does well there); real embeddings are clustered.
pub fn clustered_vectors(n: usize, clusters: usize, spread: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64(seed);
    let clusters = clusters.max(1);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.unit_vector()).collect();
    let scale = spread / (DIM as f32).sqrt();
    (0..n)
        .map(|i| {
            let c = &centres[i % clusters];
            loop {
                let v: Vec<f32> = c.iter().map(|&x| x + scale * rng.normal()).collect();
                if let Ok(v) = normalised(&v) {
                    break v;
                }
            }
        })
        .collect()
}

/// Recall@k of HNSW against exact over `queries`: the share of the exact top-`k` keys that the
/// graph search also returns (1.0 when there is nothing to find). Builds the graph if needed.
pub fn recall_at_k(index: &VectorIndex, queries: &[Vec<f32>], k: usize) -> f64 {
    let (mut found, mut wanted) = (0usize, 0usize);
    for q in queries {
        let exact = index.search_exact(q, k, f32::NEG_INFINITY);
        let approx: std::collections::HashSet<Key> = index
            .search_approx(q, k, f32::NEG_INFINITY)
            .into_iter()
            .map(|h| h.key)
            .collect();
        wanted += exact.len();
        found += exact.iter().filter(|h| approx.contains(&h.key)).count();
    }
    if wanted == 0 {
        1.0
    } else {
        found as f64 / wanted as f64
    }
}

/// Measurements of one [`benchmark_clustered`] run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Vectors in the index.
    pub n: usize,
    /// Queries timed.
    pub queries: usize,
    /// Seconds to build the HNSW graph over all `n` vectors.
    pub build_secs: f64,
    /// Median exact-scan query time, milliseconds.
    pub exact_p50_ms: f64,
    /// 99th-percentile exact-scan query time, milliseconds.
    pub exact_p99_ms: f64,
    /// Median HNSW query time, milliseconds.
    pub hnsw_p50_ms: f64,
    /// 99th-percentile HNSW query time, milliseconds.
    pub hnsw_p99_ms: f64,
    /// Recall@10 of HNSW against the exact scan.
    pub recall_at_10: f64,
    /// Seconds to [`VectorIndex::save`] (vectors + graph dump, hashed and fsynced).
    pub save_secs: f64,
    /// Seconds to [`VectorIndex::load`] it back (hash checks + graph reload).
    pub load_secs: f64,
    /// Bytes on disk after the save.
    pub saved_bytes: u64,
    /// Whether the reloaded index answered the queries exactly as before the save.
    pub reload_identical: bool,
}

/// Times exact and HNSW search (top 10) on `n` clustered vectors (`clusters` centres, `spread`
/// as in [`clustered_vectors`]) with `queries` queries from the same distribution. Run it in a
/// release build; the numbers are meaningless in debug.
pub fn benchmark_clustered(
    n: usize,
    clusters: usize,
    spread: f32,
    queries: usize,
    params: HnswParams,
    seed: u64,
) -> BenchReport {
    let mut all = clustered_vectors(n + queries, clusters, spread, seed);
    let qs = all.split_off(n);
    let mut index = VectorIndex::with_params("bench", 0, params);
    for (i, v) in all.iter().enumerate() {
        let key = Key {
            item: item_of(i / 4),
            slot: (i % 4) as u16,
        };
        // Cannot fail: the vectors are unit length and of the right size.
        let _ = index.insert(key, v);
    }
    let t = Instant::now();
    index.build_graph();
    let build_secs = t.elapsed().as_secs_f64();
    let time = |f: &dyn Fn(&[f32])| -> (f64, f64) {
        let mut ms: Vec<f64> = qs
            .iter()
            .map(|q| {
                let t = Instant::now();
                f(q);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        (at(0.5), at(0.99))
    };
    let (exact_p50_ms, exact_p99_ms) = time(&|q| {
        index.search_exact(q, 10, f32::NEG_INFINITY);
    });
    let (hnsw_p50_ms, hnsw_p99_ms) = time(&|q| {
        index.search_approx(q, 10, f32::NEG_INFINITY);
    });
    let recall_at_10 = recall_at_k(&index, &qs, 10);

    // Persistence round trip in a scratch directory.
    let dir = std::env::temp_dir().join(format!(
        "grid-index-bench-{}-{seed}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    let saved = index.save(&dir);
    let save_secs = t.elapsed().as_secs_f64();
    let saved_bytes = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let t = Instant::now();
    let loaded = saved.and_then(|()| VectorIndex::load(&dir, "bench"));
    let load_secs = t.elapsed().as_secs_f64();
    let reload_identical = match &loaded {
        Ok(back) => {
            back.has_graph()
                && qs.iter().all(|q| {
                    back.search_approx(q, 10, f32::NEG_INFINITY)
                        == index.search_approx(q, 10, f32::NEG_INFINITY)
                })
        }
        Err(e) => {
            tracing::warn!("benchmark: save/load failed: {e}");
            false
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    BenchReport {
        n,
        queries,
        build_secs,
        exact_p50_ms,
        exact_p99_ms,
        hnsw_p50_ms,
        hnsw_p99_ms,
        recall_at_10,
        save_secs,
        load_secs,
        saved_bytes,
        reload_identical,
    }
}

/// A distinct 32-byte item id for synthetic data.
pub(super) fn item_of(i: usize) -> [u8; 32] {
    let mut item = [0u8; 32];
    item[..8].copy_from_slice(&(i as u64).to_le_bytes());
    item
}
