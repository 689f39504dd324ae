//! The HNSW graph (hnsw_rs) over the store's rows.
//!
//! Node ids (hnsw_rs "data ids") are row numbers of the [`Store`]. Rows `0..covered` have been
//! offered to the graph (the live ones at that time became nodes); later rows are *pending* and
//! searched exactly beside the graph. Dead rows stay in the graph as tombstones and are filtered
//! from its answers.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, PoisonError, TryLockError};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

use super::exact::{dot, Store, TopK};
use super::HnswParams;

/// hnsw_rs's cap on layers.
const MAX_LAYERS: usize = 16;

/// Distance `1 − dot` between unit vectors (= 1 − cosine), clamped at 0 because hnsw_rs asserts
/// distances are non-negative and rounding can make `dot` exceed 1 by an ulp. Ours rather than
/// anndists': its `DistCosine` re-normalises both vectors on every call (measured ~2× slower by
/// the team) and its `DistDot` is a scalar loop unless the `simdeez_f` feature is on, while
/// [`dot`] is vectorised by the compiler.
///
/// Its type name ends up in the graph dump (hnsw_rs checks it on reload), so keep the path
/// `grid_genome::index::hnsw::DistDot` stable or the saved graph is rebuilt once.
#[derive(Debug, Clone, Copy, Default)]
pub struct DistDot;

impl Distance<f32> for DistDot {
    #[inline]
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// The graph plus what it covers.
///
/// hnsw_rs inserts through `&self` (its nodes carry their own locks), so pending rows are added
/// while other threads keep searching: [`covered`](Self::covered) only moves forward once a batch
/// is fully in, and searches ignore graph answers at or beyond the `covered` they started with
/// (those rows are scanned exactly instead).
pub(super) struct Graph {
    pub hnsw: Hnsw<'static, f32, DistDot>,
    /// Rows `0..covered` were offered to the graph.
    covered: AtomicUsize,
    /// Nodes in the graph (live rows at insertion time).
    nodes: AtomicUsize,
    /// Held while inserting pending rows (and while dumping, so a dump is never half-extended).
    pub extending: Mutex<()>,
}

impl Graph {
    /// A graph over every live row, built with rayon on all cores.
    pub fn build(store: &Store, params: &HnswParams) -> Graph {
        let hnsw = Hnsw::new(
            params.max_nb_connection.clamp(2, 256),
            store.live_len().max(1),
            MAX_LAYERS,
            params.ef_construction.max(1),
            DistDot,
        );
        let g = Graph::from_parts(hnsw, 0, 0);
        g.extend(store);
        g
    }

    /// A graph reloaded from disk.
    pub fn from_parts(hnsw: Hnsw<'static, f32, DistDot>, covered: usize, nodes: usize) -> Graph {
        Graph {
            hnsw,
            covered: AtomicUsize::new(covered),
            nodes: AtomicUsize::new(nodes),
            extending: Mutex::new(()),
        }
    }

    /// Rows `0..covered()` have been offered to the graph.
    pub fn covered(&self) -> usize {
        self.covered.load(AtomicOrdering::Acquire)
    }

    /// Nodes in the graph.
    pub fn nodes(&self) -> usize {
        self.nodes.load(AtomicOrdering::Acquire)
    }

    /// Inserts the live pending rows, waiting for any extension already running.
    pub fn extend(&self, store: &Store) {
        let _guard = self
            .extending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.extend_locked(store);
    }

    /// Inserts the live pending rows unless another thread is already doing it.
    pub fn try_extend(&self, store: &Store) {
        let guard = match self.extending.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        self.extend_locked(store);
        drop(guard);
    }

    fn extend_locked(&self, store: &Store) {
        let from = self.covered();
        let batch: Vec<(&[f32], usize)> = (from..store.rows())
            .filter(|&r| store.is_live(r as u32))
            .map(|r| (store.row(r as u32), r))
            .collect();
        if batch.len() >= 64 {
            self.hnsw.parallel_insert_slice(&batch);
        } else {
            for item in &batch {
                self.hnsw.insert_slice(*item);
            }
        }
        self.nodes.fetch_add(batch.len(), AtomicOrdering::AcqRel);
        self.covered.store(store.rows(), AtomicOrdering::Release);
    }

    /// Best `k` live rows with score ≥ `min_score`, best first: graph search over the covered
    /// rows merged with an exact scan of the pending ones. Scores are recomputed exactly from the
    /// stored rows, so they equal what the exact scan gives.
    pub fn search(
        &self,
        store: &Store,
        q: &[f32],
        k: usize,
        min_score: f32,
        params: &HnswParams,
    ) -> Vec<(f32, u32)> {
        let covered = self.covered();
        let nodes = self.nodes();
        let mut top = TopK::new(k);
        if nodes > 0 {
            // Ask for a few more than k when tombstones may eat some; retry with more if they
            // did and the graph could still give more.
            let has_dead = store.dead > 0;
            let mut want = if has_dead { k + k / 4 + 2 } else { k };
            loop {
                let ef = params.ef_search.max(want);
                let found = self.hnsw.search(q, want, ef);
                let got = found.len();
                let mut live = 0usize;
                for n in &found {
                    let r = n.d_id;
                    if r < covered && store.is_live(r as u32) {
                        live += 1;
                        let s = dot(q, store.row(r as u32));
                        if s >= min_score {
                            top.push(s, r as u32);
                        }
                    }
                }
                if live >= k || got < want || want >= nodes {
                    break;
                }
                top = TopK::new(k);
                want = want.saturating_mul(2).min(nodes);
            }
        }
        for (s, r) in store.scan_top(q, k, min_score, covered..store.rows()) {
            top.push(s, r);
        }
        top.into_sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{key, FAST};
    use super::super::*;

    fn filled(n: usize, threshold: usize, seed: u64) -> (VectorIndex, Vec<Vec<f32>>) {
        let mut all = clustered_vectors(n + 50, (n / 50).max(4), 1.0, seed);
        let queries = all.split_off(n);
        let mut idx = VectorIndex::with_params("e", threshold, FAST);
        for (i, v) in all.iter().enumerate() {
            idx.insert(key(i / 3, (i % 3) as u16), v).unwrap();
        }
        (idx, queries)
    }

    #[test]
    fn index_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<VectorIndex>();
    }

    #[test]
    fn hnsw_recall_on_clustered_data() {
        let (idx, queries) = filled(2000, 1000, 11);
        assert!(!idx.has_graph());
        let r = recall_at_k(&idx, &queries, 10);
        assert!(idx.has_graph());
        assert!(r >= 0.95, "recall@10 = {r}");
        // search() goes through the graph above the threshold and agrees with search_approx.
        let q = &queries[0];
        assert_eq!(idx.search(q, 10, -1.0), idx.search_approx(q, 10, -1.0));
    }

    #[test]
    fn graph_search_filters_tombstones_and_sees_pending() {
        let (mut idx, queries) = filled(1500, 500, 12);
        idx.build_graph();
        let q = &queries[0];
        let before = idx.search(q, 5, -1.0);
        // Remove the best item: its vectors must vanish from graph answers.
        let gone = before[0].key.item;
        assert!(idx.remove_item(&gone) > 0);
        assert!(idx.has_graph(), "under 20 % tombstones the graph stays");
        let after = idx.search(q, 5, -1.0);
        assert_eq!(after.len(), 5);
        assert!(after.iter().all(|h| h.key.item != gone));
        // A new vector equal to the query (pending: not in the graph) is found first.
        let new = key(99_999, 0);
        idx.insert(new, q).unwrap();
        let hits = idx.search(q, 3, -1.0);
        assert_eq!(hits[0].key, new);
        assert!((hits[0].score - 1.0).abs() < 1e-5);
        // Items through the graph: best vector per item, distinct items.
        let items = idx.search_items(q, 5, -1.0);
        assert_eq!(items.len(), 5);
        assert_eq!(items[0].0, new.item);
        let mut ids: Vec<_> = items.iter().map(|i| i.0).collect();
        ids.dedup();
        assert_eq!(ids.len(), 5);
        let exact_items = idx.store.scan_items(&normalised(q).unwrap(), 5, -1.0);
        assert_eq!(items[0], exact_items[0]);
    }

    #[test]
    fn searches_do_not_wait_for_a_build_or_an_extension() {
        let (mut idx, queries) = filled(600, 200, 14);
        let q = &queries[0];
        let exact = idx.search_exact(q, 10, -1.0);
        {
            // Another thread "is building": search answers exactly, without a graph.
            let _building = idx.build_lock.lock().unwrap();
            assert_eq!(idx.search(q, 10, -1.0), exact);
            assert_eq!(
                idx.search_items(q, 3, -1.0),
                idx.store.scan_items(&normalised(q).unwrap(), 3, -1.0)
            );
            assert!(!idx.has_graph());
        }
        idx.build_graph();
        idx.pending_max = 10;
        let extra = clustered_vectors(30, 3, 1.0, 15);
        for (i, v) in extra.iter().enumerate() {
            idx.insert(key(70_000 + i, 0), v).unwrap();
        }
        {
            // Another thread "is extending": pending rows are scanned exactly meanwhile.
            let guard = idx.graph.read().unwrap();
            let g = guard.as_ref().unwrap();
            let _extending = g.extending.lock().unwrap();
            let hits = idx.search(&extra[7], 1, -1.0);
            assert_eq!(hits[0].key, key(70_007, 0));
            assert!(idx.store.rows() - g.covered() > idx.pending_max);
        }
        idx.search(&extra[7], 1, -1.0);
        let guard = idx.graph.read().unwrap();
        assert_eq!(guard.as_ref().unwrap().covered(), idx.store.rows());
    }

    #[test]
    fn many_tombstones_drop_graph_and_many_pending_extend_it() {
        let (mut idx, queries) = filled(900, 300, 13);
        idx.build_graph();
        // Kill > 20 %: compaction drops the graph.
        for i in 0..80 {
            idx.remove_item(&key(i, 0).item);
        }
        assert!(!idx.has_graph());
        assert_eq!(idx.len(), 900 - 240);
        let r = recall_at_k(&idx, &queries[..20], 10);
        assert!(idx.has_graph() && r >= 0.9, "recall {r}");
        // More pending rows than PENDING_MAX get inserted into the graph by the next search.
        idx.pending_max = 40;
        let extra = clustered_vectors(50, 8, 1.0, 99);
        for (i, v) in extra.iter().enumerate() {
            idx.insert(key(50_000 + i, 0), v).unwrap();
        }
        let hits = idx.search(&extra[5], 1, -1.0);
        assert_eq!(hits[0].key, key(50_005, 0));
        let g = idx.graph.read().unwrap();
        assert_eq!(g.as_ref().unwrap().covered(), idx.store.rows());
    }
}
