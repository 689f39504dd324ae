//! The index as a whole: inserts, removal, tombstones, search below and above the threshold.

use super::*;

/// Cheap graph tuning for debug-mode tests (the defaults are for release builds; their
/// recall is checked by `bench_clustered_release`).
pub(super) const FAST: HnswParams = HnswParams {
    max_nb_connection: 12,
    ef_construction: 40,
    ef_search: 64,
};

pub(super) fn key(i: usize, slot: u16) -> Key {
    Key {
        item: item_of(i),
        slot,
    }
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i] = 1.0;
    v
}

/// `a·e0 + b·e1` (normalised by the index).
fn mix(a: f32, b: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[0] = a;
    v[1] = b;
    v
}

#[test]
fn exact_ranks_hand_made_vectors() {
    let mut idx = VectorIndex::new("e");
    idx.insert(key(1, 0), &mix(1.0, 0.0)).unwrap();
    idx.insert(key(2, 0), &mix(0.8, 0.6)).unwrap();
    idx.insert(key(3, 0), &mix(0.0, 1.0)).unwrap();
    idx.insert(key(4, 0), &mix(-1.0, 0.0)).unwrap();
    let hits = idx.search(&axis(0), 10, -1.0);
    let keys: Vec<Key> = hits.iter().map(|h| h.key).collect();
    assert_eq!(keys, vec![key(1, 0), key(2, 0), key(3, 0), key(4, 0)]);
    let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
    for (s, want) in scores.iter().zip([1.0, 0.8, 0.0, -1.0]) {
        assert!((s - want).abs() < 1e-6, "{scores:?}");
    }
    // k limits; an unnormalised query gives the same cosines.
    let top2 = idx.search(&mix(7.0, 0.0), 2, -1.0);
    assert_eq!(top2.len(), 2);
    assert_eq!(top2[0].key, key(1, 0));
    assert!((top2[1].score - 0.8).abs() < 1e-6);
    assert!(idx.search(&axis(0), 0, -1.0).is_empty());
}

#[test]
fn min_score_filters() {
    let mut idx = VectorIndex::new("e");
    idx.insert(key(1, 0), &mix(1.0, 0.0)).unwrap();
    idx.insert(key(2, 0), &mix(0.8, 0.6)).unwrap();
    idx.insert(key(3, 0), &mix(0.0, 1.0)).unwrap();
    let hits = idx.search(&axis(0), 10, 0.5);
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h.score >= 0.5));
    assert!(idx.search(&axis(0), 10, 1.01).is_empty());
}

#[test]
fn search_items_groups_by_item_with_best_score() {
    let mut idx = VectorIndex::new("e");
    // Item 1: a weak and a strong vector; item 2: two medium ones; item 3: opposite.
    idx.insert(key(1, 0), &mix(0.0, 1.0)).unwrap();
    idx.insert(key(1, 1), &mix(0.95, 0.312)).unwrap();
    idx.insert(key(2, 0), &mix(0.8, 0.6)).unwrap();
    idx.insert(key(2, 1), &mix(0.6, 0.8)).unwrap();
    idx.insert(key(3, 0), &mix(-1.0, 0.0)).unwrap();
    let items = idx.search_items(&axis(0), 10, -1.0);
    let ids: Vec<[u8; 32]> = items.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, vec![item_of(1), item_of(2), item_of(3)]);
    assert!((items[0].1 - 0.95).abs() < 1e-3);
    assert!((items[1].1 - 0.8).abs() < 1e-6);
    assert_eq!(idx.search_items(&axis(0), 1, -1.0).len(), 1);
    assert_eq!(idx.search_items(&axis(0), 10, 0.5).len(), 2);
}

#[test]
fn insert_replaces_same_key() {
    let mut idx = VectorIndex::new("e");
    idx.insert(key(1, 0), &axis(0)).unwrap();
    idx.insert(key(1, 0), &axis(1)).unwrap();
    assert_eq!(idx.len(), 1);
    let hits = idx.search(&axis(1), 10, -1.0);
    assert_eq!(hits.len(), 1);
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    assert!(idx.search(&axis(0), 10, 0.5).is_empty());
}

#[test]
fn remove_item_removes_all_its_vectors() {
    let mut idx = VectorIndex::new("e");
    for slot in 0..3 {
        idx.insert(key(1, slot), &axis(slot as usize)).unwrap();
    }
    idx.insert(key(2, 0), &axis(5)).unwrap();
    assert_eq!(idx.remove_item(&item_of(1)), 3);
    assert_eq!(idx.remove_item(&item_of(1)), 0);
    assert_eq!(idx.len(), 1);
    let hits = idx.search(&axis(0), 10, -1.0);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].key, key(2, 0));
    assert_eq!(idx.remove_item(&item_of(2)), 1);
    assert!(idx.is_empty());
    assert!(idx.search(&axis(0), 10, -1.0).is_empty());
}

#[test]
fn bad_vectors_are_refused() {
    let mut idx = VectorIndex::new("e");
    assert!(matches!(
        idx.insert(key(1, 0), &[1.0; 10]),
        Err(IndexError::WrongDimension { got: 10 })
    ));
    let mut nan = axis(0);
    nan[3] = f32::NAN;
    assert!(matches!(
        idx.insert(key(1, 0), &nan),
        Err(IndexError::NonFinite)
    ));
    let mut inf = axis(0);
    inf[3] = f32::INFINITY;
    assert!(matches!(
        idx.insert(key(1, 0), &inf),
        Err(IndexError::NonFinite)
    ));
    assert!(matches!(
        idx.insert(key(1, 0), &vec![0.0; DIM]),
        Err(IndexError::ZeroVector)
    ));
    // Huge but finite components are fine (the norm is taken in f64).
    idx.insert(key(1, 0), &vec![f32::MAX; DIM]).unwrap();
    assert_eq!(idx.len(), 1);
    // Bad queries find nothing rather than panic.
    assert!(idx.search(&nan, 5, -1.0).is_empty());
    assert!(idx.search(&[1.0; 3], 5, -1.0).is_empty());
    assert!(idx.search_items(&inf, 5, -1.0).is_empty());
}

#[test]
fn exact_matches_brute_force_on_clustered_data() {
    // Enough rows for the two-task scan path.
    let data = clustered_vectors(9000, 40, 1.0, 7);
    let mut idx = VectorIndex::new("e");
    for (i, v) in data.iter().enumerate() {
        idx.insert(key(i, 0), v).unwrap();
    }
    let q = &data[123];
    let hits = idx.search(q, 5, -1.0);
    let mut brute: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    brute.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (h, (s, i)) in hits.iter().zip(&brute) {
        assert_eq!(h.key, key(*i, 0));
        assert!((h.score - s).abs() < 1e-5);
    }
}

#[test]
fn clustered_vectors_are_deterministic_unit_vectors() {
    let a = clustered_vectors(50, 5, 1.0, 3);
    assert_eq!(a, clustered_vectors(50, 5, 1.0, 3));
    assert_ne!(a, clustered_vectors(50, 5, 1.0, 4));
    for v in &a {
        let n: f32 = v.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }
}

/// The 100k measurement; run in release:
/// `cargo test --release -p grid-genome index::tests::bench_clustered_release -- --ignored --nocapture`
#[test]
#[ignore = "slow: release-mode benchmark"]
fn bench_clustered_release() {
    let sizes: Vec<usize> = std::env::var("GRID_INDEX_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    let params = HnswParams::default();
    for n in sizes {
        let r = benchmark_clustered(n, (n / 100).max(10), 1.0, 500, params, 42);
        println!("{params:?} {r:?}");
        assert!(r.reload_identical, "{r:?}");
        if n >= 100_000 {
            assert!(r.recall_at_10 >= 0.95, "{r:?}");
        }
    }
}

/// Parameter sweep used to pick [`HnswParams::default`]; run in release with
/// `GRID_INDEX_TUNE="n,clusters,spread,M,ef_construction"` (ef_search 32..256 is swept).
#[test]
#[ignore = "slow: release-mode parameter sweep"]
fn tune_release() {
    let Ok(spec) = std::env::var("GRID_INDEX_TUNE") else {
        return;
    };
    let f: Vec<f64> = spec
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    let (n, clusters, spread) = (f[0] as usize, f[1] as usize, f[2] as f32);
    let params = HnswParams {
        max_nb_connection: f[3] as usize,
        ef_construction: f[4] as usize,
        ef_search: 64,
    };
    let mut all = clustered_vectors(n + 300, clusters, spread, 42);
    let qs = all.split_off(n);
    let mut idx = VectorIndex::with_params("tune", 0, params);
    for (i, v) in all.iter().enumerate() {
        idx.insert(key(i / 4, (i % 4) as u16), v).unwrap();
    }
    let t = Instant::now();
    idx.build_graph();
    println!(
        "n={n} clusters={clusters} spread={spread} {params:?} build {:.1}s",
        t.elapsed().as_secs_f64()
    );
    for ef in [32, 48, 64, 96, 128, 192, 256] {
        idx.set_ef_search(ef);
        let mut ms: Vec<f64> = qs
            .iter()
            .map(|q| {
                let t = Instant::now();
                idx.search_approx(q, 10, f32::NEG_INFINITY);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let r = recall_at_k(&idx, &qs, 10);
        println!(
            "  ef_search {ef:4}: recall@10 {r:.4}  p50 {:.3} ms  p99 {:.3} ms",
            ms[ms.len() / 2],
            ms[ms.len() * 99 / 100]
        );
    }
}
