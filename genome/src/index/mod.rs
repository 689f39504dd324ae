//! Vector index for semantic skill search.
//!
//! Every adapter contributes several sentence embeddings (its description and each example
//! question: 384-dim, L2-normalised all-MiniLM-L6-v2 vectors), keyed by [`Key`]. A query is
//! embedded the same way and scored against them by dot product (= cosine on unit vectors).
//!
//! - Below [`HNSW_THRESHOLD`] live vectors, [`VectorIndex::search`] is an exact scan over one
//!   contiguous `Vec<f32>` (the dot product is written so the compiler vectorises it; above a few
//!   thousand rows the scan is split over two rayon tasks). Exact, simple, and fast enough there.
//! - At or above it, an HNSW graph ([`hnsw_rs`] 0.3.5 with a dot-product distance `1 − dot`)
//!   answers. The graph is built **lazily** by the first search that needs it (or ahead of time
//!   by [`VectorIndex::build_graph`]), because building it is slow: measured here ≈ 3 s at 10k
//!   and ≈ 2 min at 100k vectors on two cores. Searches on other threads meanwhile scan exactly
//!   rather than wait. Vectors inserted after the build are *pending*: up to [`PENDING_MAX`] of
//!   them are scanned exactly next to the graph search; beyond that a search inserts them into
//!   the graph (concurrent searches go on meanwhile).
//! - hnsw_rs cannot delete. Removed or replaced vectors become tombstones that searches filter
//!   out; once tombstones exceed 20 % of the stored rows the rows are compacted and the graph is
//!   dropped, to be rebuilt from scratch by the next search above the threshold.
//! - [`VectorIndex::save`]/[`VectorIndex::load`] persist the vectors *and* the graph (hnsw_rs's
//!   own dump/reload, behind our own length + SHA-256 checks), so a restart neither re-embeds nor
//!   rebuilds the graph: at 100k vectors the load takes ≈ 2 s against ≈ 2 min for a rebuild.
//!   [`VectorIndex::save`] documents the file layout, atomicity and corruption handling.
//!
//! Memory and disk: above the threshold each vector is held twice (the contiguous scan copy and
//! hnsw_rs's own copy inside the graph) and hnsw_rs keeps each link as its own small
//! allocation, so with the default tuning expect ≈ 6 KB of RAM per vector (≈ 600 MB at 100k)
//! and ≈ 4 KB on disk (393 MB measured at 100k). Below the threshold: ≈ 1.6 KB per vector.

mod exact;
mod hnsw;
mod persist;
mod synthetic;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, RwLock, TryLockError};
use std::time::Instant;

use exact::Store;
use hnsw::Graph;
#[cfg(test)]
use synthetic::item_of;
pub use synthetic::{benchmark_clustered, clustered_vectors, recall_at_k, BenchReport};

/// Dimension of the vectors (all-MiniLM-L6-v2 sentence embeddings).
pub const DIM: usize = 384;

/// Below this many live vectors search is an exact scan; at or above, an HNSW graph (hnsw_rs)
/// answers. A flat scan at 20k vectors costs ~1–2 ms and is exact, so the graph (and its build
/// time and memory) is only worth it above that.
pub const HNSW_THRESHOLD: usize = 20_000;

/// How many vectors inserted after the graph was built are scanned exactly next to the graph
/// search before the next search inserts them into the graph (a scan of 2048 rows is ~0.1 ms;
/// inserting one vector into the graph costs a few ms of CPU, so batching them pays).
pub const PENDING_MAX: usize = 2048;

/// Identifies one vector: the adapter it belongs to and which of its texts it embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Content hash of the adapter package.
    pub item: [u8; 32],
    /// Which of the adapter's texts (0 = description, 1.. = example questions, by convention of
    /// the caller).
    pub slot: u16,
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The vector that matched.
    pub key: Key,
    /// Cosine similarity between the (normalised) query and the vector, in [−1, 1].
    pub score: f32,
}

/// Tuning of the HNSW graph.
///
/// The defaults (M = 24, ef_construction = 100, ef_search = 128) were picked by measurement on
/// this project's 2-core machine (release build, `tune_release` and `bench_clustered_release`
/// in this module's tests): at 100k clustered vectors recall@10 against the exact scan is 1.0
/// (100 vectors per cluster, spread 1) and 0.96 on a much harder set (1000 per cluster, spread
/// 1.5), with p99 query latency under 5 ms. M = 24 rather than 16 bought far more recall on the
/// hard set than doubling ef_construction did (0.998 vs 0.96 at 20k), and ef_construction = 200
/// took 2–3× the build time for +0.002 recall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links kept per node and layer (`M`; layer 0 keeps twice as many). More: better recall,
    /// more memory and slower build. hnsw_rs caps it at 256.
    pub max_nb_connection: usize,
    /// Candidate list size while building (`ef_construction`).
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`); raised to `k` when `k` is larger.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_nb_connection: 24,
            ef_construction: 100,
            ef_search: 128,
        }
    }
}

/// Errors of the vector index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A vector of the wrong length was given.
    #[error("vector has {got} dimensions, the index holds {DIM}")]
    WrongDimension {
        /// Length of the vector given.
        got: usize,
    },
    /// A vector had a NaN or infinite component.
    #[error("vector has a NaN or infinite component")]
    NonFinite,
    /// A vector was all zeros, so it has no direction to compare.
    #[error("vector has zero length")]
    ZeroVector,
    /// The saved index was built from another embedding model: its vectors are not comparable
    /// with new queries, so the caller must re-embed.
    #[error("saved index holds vectors of embedder {stored:?}, wanted {wanted:?}: re-embed")]
    EmbedderChanged {
        /// Embedder id in the saved index.
        stored: String,
        /// Embedder id asked for.
        wanted: String,
    },
    /// No saved index in this directory.
    #[error("no saved vector index in {0}")]
    NotFound(PathBuf),
    /// A saved file is not what [`VectorIndex::save`] wrote (truncated, altered, garbage).
    #[error("corrupt vector index file {path}: {reason}")]
    Corrupt {
        /// The file at fault.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("vector index I/O on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// hnsw_rs failed to dump the graph.
    #[error("could not dump the HNSW graph: {0}")]
    GraphDump(String),
}

/// The vector index: exact below [`HNSW_THRESHOLD`] live vectors, HNSW at or above it.
///
/// Searches take `&self` and may run concurrently; the graph is behind a lock that a search
/// takes for writing only to build the graph or to insert pending vectors into it.
pub struct VectorIndex {
    embedder_id: String,
    threshold: usize,
    params: HnswParams,
    store: Store,
    graph: RwLock<Option<Graph>>,
    /// [`PENDING_MAX`], lowered by tests.
    pending_max: usize,
    /// Held by the one thread building the graph from scratch.
    build_lock: Mutex<()>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let graph = self.graph.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("VectorIndex")
            .field("embedder_id", &self.embedder_id)
            .field("threshold", &self.threshold)
            .field("params", &self.params)
            .field("live", &self.store.live_len())
            .field("rows", &self.store.rows())
            .field("graph_nodes", &graph.as_ref().map(|g| g.nodes()))
            .finish()
    }
}

/// Checks a vector and returns it scaled to unit length.
fn normalised(vector: &[f32]) -> Result<Vec<f32>, IndexError> {
    if vector.len() != DIM {
        return Err(IndexError::WrongDimension { got: vector.len() });
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(IndexError::NonFinite);
    }
    // f64 so that huge (but finite) components cannot overflow the norm.
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(IndexError::ZeroVector);
    }
    let out: Vec<f32> = vector
        .iter()
        .map(|&x| (f64::from(x) / norm) as f32)
        .collect();
    if out.iter().all(|&x| x == 0.0) {
        // Subnormal input that vanished when scaled.
        return Err(IndexError::ZeroVector);
    }
    Ok(out)
}

impl VectorIndex {
    /// An empty index for vectors from embedder `embedder_id` (stored, checked on load).
    pub fn new(embedder_id: &str) -> VectorIndex {
        VectorIndex::with_params(embedder_id, HNSW_THRESHOLD, HnswParams::default())
    }

    /// An empty index that switches to HNSW at `threshold` live vectors instead of
    /// [`HNSW_THRESHOLD`] (tests, benchmarks). The threshold is saved with the index.
    pub fn with_threshold(embedder_id: &str, threshold: usize) -> VectorIndex {
        VectorIndex::with_params(embedder_id, threshold, HnswParams::default())
    }

    /// An empty index with its own threshold and HNSW tuning (benchmarks).
    pub fn with_params(embedder_id: &str, threshold: usize, params: HnswParams) -> VectorIndex {
        VectorIndex {
            embedder_id: embedder_id.to_string(),
            threshold,
            params,
            store: Store::default(),
            graph: RwLock::new(None),
            pending_max: PENDING_MAX,
            build_lock: Mutex::new(()),
        }
    }

    /// The embedder the vectors come from.
    pub fn embedder_id(&self) -> &str {
        &self.embedder_id
    }

    /// Number of live vectors at or above which [`search`](Self::search) uses the graph.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The HNSW tuning in use.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Sets the search-time candidate list size (`ef`); higher is slower and more exact. Takes
    /// effect at once (the graph does not depend on it) and is saved with the index.
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.params.ef_search = ef_search.max(1);
    }

    /// Adds the vector for `key`, replacing any earlier vector of the same key. The vector is
    /// normalised here defensively; a wrong length, NaN/infinite components or an all-zero
    /// vector are refused.
    pub fn insert(&mut self, key: Key, vector: &[f32]) -> Result<(), IndexError> {
        let v = normalised(vector)?;
        self.store.push(key, &v);
        self.maybe_compact();
        Ok(())
    }

    /// The vector stored under `key`, if any (a scan of the rows: for occasional reads,
    /// such as publishing an adapter's sketch, not for search).
    pub fn vector(&self, key: &Key) -> Option<&[f32]> {
        (0..self.store.rows() as u32)
            .find(|&r| self.store.is_live(r) && self.store.key(r) == *key)
            .map(|r| self.store.row(r))
    }

    /// Removes every vector of `item`; returns how many.
    pub fn remove_item(&mut self, item: &[u8; 32]) -> usize {
        let removed = self.store.remove_item(item);
        if removed > 0 {
            self.maybe_compact();
        }
        removed
    }

    /// Number of live vectors.
    pub fn len(&self) -> usize {
        self.store.live_len()
    }

    /// Whether the index holds no vector.
    pub fn is_empty(&self) -> bool {
        self.store.live_len() == 0
    }

    /// Whether the HNSW graph currently exists (built or loaded).
    pub fn has_graph(&self) -> bool {
        self.graph
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Compacts the rows once tombstones pass 20 %: the scan stops wasting time on them and the
    /// graph (whose node ids are row numbers) is dropped, to be rebuilt lazily.
    fn maybe_compact(&mut self) {
        if self.store.needs_compaction() {
            self.store.compact();
            *self.graph.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Best `k` vectors with score ≥ `min_score`, best first (ties by key): an exact scan below
    /// the threshold, the HNSW graph at or above it. A query of the wrong length, with
    /// NaN/infinite components or all zeros gives no hits.
    ///
    /// The first search above the threshold without a graph builds it (seconds at 20k vectors,
    /// about two minutes at 100k on two cores; [`build_graph`](Self::build_graph) does it ahead
    /// of time); searches running meanwhile on other threads scan exactly instead of waiting.
    /// When more than [`PENDING_MAX`] vectors were added since, a search inserts them into the
    /// graph first (unless another thread already is).
    pub fn search(&self, query: &[f32], k: usize, min_score: f32) -> Vec<Hit> {
        if self.store.live_len() < self.threshold {
            return self.search_exact(query, k, min_score);
        }
        let Some(q) = self.query(query, k) else {
            return Vec::new();
        };
        let found = self
            .with_graph(false, |g| {
                g.search(&self.store, &q, k, min_score, &self.params)
            })
            .unwrap_or_else(|| self.store.scan_top(&q, k, min_score, 0..self.store.rows()));
        self.hits(found)
    }

    /// [`search`](Self::search) by exact scan whatever the size (tests, benchmarks, recall).
    pub fn search_exact(&self, query: &[f32], k: usize, min_score: f32) -> Vec<Hit> {
        let Some(q) = self.query(query, k) else {
            return Vec::new();
        };
        let found = self.store.scan_top(&q, k, min_score, 0..self.store.rows());
        self.hits(found)
    }

    /// [`search`](Self::search) through the HNSW graph whatever the size (benchmarks, recall);
    /// builds the graph first if there is none.
    pub fn search_approx(&self, query: &[f32], k: usize, min_score: f32) -> Vec<Hit> {
        let Some(q) = self.query(query, k) else {
            return Vec::new();
        };
        let found = self
            .with_graph(true, |g| {
                g.search(&self.store, &q, k, min_score, &self.params)
            })
            .unwrap_or_default();
        self.hits(found)
    }

    /// Best `k` items (adapters), each scored by its best vector, best first (ties by item).
    pub fn search_items(&self, query: &[f32], k: usize, min_score: f32) -> Vec<([u8; 32], f32)> {
        let Some(q) = self.query(query, k) else {
            return Vec::new();
        };
        if self.store.live_len() < self.threshold {
            return self.store.scan_items(&q, k, min_score);
        }
        // Ask the graph for more and more vectors until they cover k distinct items (or the
        // graph has nothing more to give).
        let mut want = (k * 8).max(32);
        loop {
            let Some(found) = self.with_graph(false, |g| {
                g.search(&self.store, &q, want, min_score, &self.params)
            }) else {
                // Another thread is building the graph: answer exactly meanwhile.
                return self.store.scan_items(&q, k, min_score);
            };
            let exhausted = found.len() < want || want >= self.store.live_len();
            let mut items: Vec<([u8; 32], f32)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (score, row) in found {
                let item = self.store.key(row).item;
                // `found` is best first, so the first vector of an item is its best.
                if seen.insert(item) {
                    items.push((item, score));
                }
            }
            if items.len() >= k || exhausted {
                items.truncate(k);
                return items;
            }
            want = want.saturating_mul(4);
        }
    }

    /// Builds the HNSW graph now (or inserts pending vectors into it) instead of at the first
    /// search that needs it; call it from a blocking task at startup to keep the first query
    /// fast. Does nothing useful below the threshold except build a graph that `search` ignores.
    pub fn build_graph(&self) {
        self.with_graph(true, |_| ());
    }

    /// Normalises a query; `None` when it is unusable or nothing can match.
    fn query(&self, query: &[f32], k: usize) -> Option<Vec<f32>> {
        if k == 0 || self.store.live_len() == 0 {
            return None;
        }
        match normalised(query) {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::debug!("vector index: query refused: {e}");
                None
            }
        }
    }

    /// Turns (score, row) pairs, best first, into hits ordered by score then key.
    fn hits(&self, found: Vec<(f32, u32)>) -> Vec<Hit> {
        let mut hits: Vec<Hit> = found
            .into_iter()
            .map(|(score, row)| Hit {
                key: self.store.key(row),
                score,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
        hits
    }

    /// Runs `f` on the graph, building it first if there is none and inserting pending rows
    /// when there are more than [`PENDING_MAX`]. With `wait` false, gives `None` instead of
    /// waiting for another thread's build, and leaves pending rows to a thread already
    /// inserting them. Searches share the read lock; the write lock is taken only for the moment
    /// a finished graph is installed (the rows cannot change meanwhile: that needs `&mut self`).
    fn with_graph<R>(&self, wait: bool, f: impl FnOnce(&Graph) -> R) -> Option<R> {
        {
            let guard = self.graph.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(g) = guard.as_ref() {
                if self.store.rows() - g.covered() > self.pending_max {
                    if wait {
                        g.extend(&self.store);
                    } else {
                        g.try_extend(&self.store);
                    }
                }
                return Some(f(g));
            }
        }
        let building = if wait {
            self.build_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        } else {
            match self.build_lock.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return None,
            }
        };
        let missing = self
            .graph
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none();
        if missing {
            let t = Instant::now();
            let g = Graph::build(&self.store, &self.params);
            tracing::info!(
                nodes = g.nodes(),
                secs = t.elapsed().as_secs_f64(),
                "vector index: HNSW graph built"
            );
            *self.graph.write().unwrap_or_else(PoisonError::into_inner) = Some(g);
        }
        drop(building);
        let guard = self.graph.read().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(f)
    }
}
