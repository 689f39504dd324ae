//! Row storage and the exact scan.
//!
//! Rows are append-only: row `r` holds `keys[r]` and the vector `data[r*DIM..(r+1)*DIM]`.
//! Replacing or removing a key only marks its row dead (a tombstone), so row numbers stay valid
//! as HNSW node ids; [`Store::compact`] drops the dead rows once they pass 20 %.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::Range;

use super::{Key, DIM};

/// Rows at or above which the exact scan is split over two rayon tasks (the machine has two
/// cores; more tasks would only add overhead for a memory-bound scan).
const PARALLEL_MIN_ROWS: usize = 8192;

/// Dot product of two equal-length slices, written with 16 independent accumulators so the
/// compiler vectorises it (floating-point addition is not reassociated otherwise).
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    // Pairwise sum of the lanes.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0] + tail
}

/// The vectors, their keys and tombstones.
#[derive(Default)]
pub(super) struct Store {
    /// Row → key (also for dead rows, whose key may live again in a later row).
    pub keys: Vec<Key>,
    /// Row → still the current vector of its key.
    pub live: Vec<bool>,
    /// Rows × DIM, contiguous.
    pub data: Vec<f32>,
    /// Key → its live row. Ordered by (item, slot), so an item's rows are one range.
    pub pos: BTreeMap<Key, u32>,
    /// Dead rows.
    pub dead: usize,
}

impl Store {
    /// Rows stored, dead ones included.
    pub fn rows(&self) -> usize {
        self.keys.len()
    }

    /// Live rows.
    pub fn live_len(&self) -> usize {
        self.pos.len()
    }

    pub fn row(&self, r: u32) -> &[f32] {
        let r = r as usize;
        &self.data[r * DIM..(r + 1) * DIM]
    }

    pub fn key(&self, r: u32) -> Key {
        self.keys[r as usize]
    }

    pub fn is_live(&self, r: u32) -> bool {
        self.live.get(r as usize).copied().unwrap_or(false)
    }

    /// Appends `v` (unit length, DIM long) as the vector of `key`, killing its previous row.
    pub fn push(&mut self, key: Key, v: &[f32]) {
        debug_assert_eq!(v.len(), DIM);
        let row = u32::try_from(self.keys.len()).expect("fewer than 2^32 vector rows");
        if let Some(old) = self.pos.insert(key, row) {
            self.live[old as usize] = false;
            self.dead += 1;
        }
        self.keys.push(key);
        self.live.push(true);
        self.data.extend_from_slice(v);
    }

    /// Kills every row of `item`; returns how many.
    pub fn remove_item(&mut self, item: &[u8; 32]) -> usize {
        let lo = Key {
            item: *item,
            slot: 0,
        };
        let hi = Key {
            item: *item,
            slot: u16::MAX,
        };
        let gone: Vec<Key> = self.pos.range(lo..=hi).map(|(k, _)| *k).collect();
        for k in &gone {
            if let Some(r) = self.pos.remove(k) {
                self.live[r as usize] = false;
                self.dead += 1;
            }
        }
        gone.len()
    }

    /// Tombstones above 20 % of the rows.
    pub fn needs_compaction(&self) -> bool {
        self.dead > 0 && self.dead * 5 > self.rows()
    }

    /// Drops the dead rows (renumbers the live ones).
    pub fn compact(&mut self) {
        let mut out = Store {
            keys: Vec::with_capacity(self.live_len()),
            live: Vec::with_capacity(self.live_len()),
            data: Vec::with_capacity(self.live_len() * DIM),
            pos: BTreeMap::new(),
            dead: 0,
        };
        for r in 0..self.rows() as u32 {
            if self.is_live(r) {
                out.push(self.key(r), self.row(r));
            }
        }
        *self = out;
    }

    /// Scores of `q` against rows `range` (dead rows included: cheaper than branching), in
    /// order; split over two rayon tasks when large.
    fn scores(&self, q: &[f32], range: Range<usize>) -> Vec<f32> {
        let mut out = vec![0.0f32; range.len()];
        let data = &self.data[range.start * DIM..range.end * DIM];
        fn fill(out: &mut [f32], data: &[f32], q: &[f32]) {
            for (o, row) in out.iter_mut().zip(data.chunks_exact(DIM)) {
                *o = dot(q, row);
            }
        }
        if out.len() >= PARALLEL_MIN_ROWS {
            let half = out.len() / 2;
            let (o1, o2) = out.split_at_mut(half);
            let (d1, d2) = data.split_at(half * DIM);
            rayon::join(|| fill(o1, d1, q), || fill(o2, d2, q));
        } else {
            fill(&mut out, data, q);
        }
        out
    }

    /// Best `k` live rows of `range` with score ≥ `min_score`, best first.
    pub fn scan_top(
        &self,
        q: &[f32],
        k: usize,
        min_score: f32,
        range: Range<usize>,
    ) -> Vec<(f32, u32)> {
        let start = range.start;
        let scores = self.scores(q, range);
        let mut top = TopK::new(k);
        for (i, &s) in scores.iter().enumerate() {
            let r = (start + i) as u32;
            if s >= min_score && self.live[r as usize] {
                top.push(s, r);
            }
        }
        top.into_sorted()
    }

    /// Best `k` items, each scored by its best live vector with score ≥ `min_score`.
    pub fn scan_items(&self, q: &[f32], k: usize, min_score: f32) -> Vec<([u8; 32], f32)> {
        let scores = self.scores(q, 0..self.rows());
        let mut best: HashMap<[u8; 32], f32> = HashMap::new();
        for (r, &s) in scores.iter().enumerate() {
            if s >= min_score && self.live[r] {
                let e = best.entry(self.keys[r].item).or_insert(s);
                if s > *e {
                    *e = s;
                }
            }
        }
        let mut items: Vec<([u8; 32], f32)> = best.into_iter().collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        items.truncate(k);
        items
    }
}

/// A candidate: higher score is better; on equal scores the lower row is better.
#[derive(Clone, Copy, Debug)]
struct Cand(f32, u32);

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// Keeps the best `k` of a stream of (score, row).
pub(super) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Cand>>,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    #[inline]
    pub fn push(&mut self, score: f32, row: u32) {
        let c = Cand(score, row);
        if self.heap.len() < self.k {
            self.heap.push(Reverse(c));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if c > worst.0 {
                *worst = Reverse(c);
            }
        }
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<(f32, u32)> {
        // Ascending order of Reverse = descending order of Cand.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(Cand(s, r))| (s, r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..DIM + 5).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..DIM + 5).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn topk_keeps_best_in_order() {
        let mut t = TopK::new(3);
        for (i, s) in [0.1, 0.9, 0.5, 0.9, -1.0, 0.7].iter().enumerate() {
            t.push(*s, i as u32);
        }
        assert_eq!(t.into_sorted(), vec![(0.9, 1), (0.9, 3), (0.7, 5)]);
        let mut none = TopK::new(0);
        none.push(1.0, 0);
        assert!(none.into_sorted().is_empty());
    }

    #[test]
    fn compaction_keeps_live_rows() {
        let mut s = Store::default();
        let k = |i: u8, slot| Key {
            item: [i; 32],
            slot,
        };
        let v = |x: f32| {
            let mut v = vec![0.0; DIM];
            v[0] = x;
            v
        };
        s.push(k(1, 0), &v(1.0));
        s.push(k(2, 0), &v(2.0));
        s.push(k(1, 0), &v(3.0));
        assert_eq!((s.rows(), s.live_len(), s.dead), (3, 2, 1));
        assert!(s.needs_compaction());
        s.compact();
        assert_eq!((s.rows(), s.live_len(), s.dead), (2, 2, 0));
        assert_eq!(s.row(s.pos[&k(1, 0)])[0], 3.0);
        assert_eq!(s.row(s.pos[&k(2, 0)])[0], 2.0);
    }
}
