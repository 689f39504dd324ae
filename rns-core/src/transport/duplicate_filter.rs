//! Bounded "seen before?" sets, rotated in two generations like RNS's packet hashlist.
//!
//! When the current generation reaches its cap it becomes the previous one and a new
//! empty set starts; lookups consult both. Memory is bounded by twice the cap.

use std::hash::Hash;

use super::HashSet;

/// A two-generation set with a fixed cap per generation.
#[derive(Debug)]
pub(crate) struct RotatingSet<K: Hash + Eq> {
    current: HashSet<K>,
    previous: HashSet<K>,
    cap: usize,
}

impl<K: Hash + Eq> RotatingSet<K> {
    pub(crate) fn new(cap: usize, state: super::HashState) -> Self {
        RotatingSet {
            current: HashSet::with_hasher(state.clone()),
            previous: HashSet::with_hasher(state),
            cap: cap.max(1),
        }
    }

    pub(crate) fn contains(&self, k: &K) -> bool {
        self.current.contains(k) || self.previous.contains(k)
    }

    /// Insert; returns true if the key was not present in either generation.
    pub(crate) fn insert(&mut self, k: K) -> bool {
        if self.previous.contains(&k) {
            return false;
        }
        if self.current.len() >= self.cap {
            if self.current.contains(&k) {
                return false;
            }
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(k)
    }

    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_stays_bounded() {
        let mut s = RotatingSet::new(3, Default::default());
        for i in 0..3 {
            assert!(s.insert(i));
        }
        assert!(!s.insert(1));
        assert!(s.insert(3)); // rotates: previous = {0,1,2}, current = {3}
        assert!(s.contains(&0));
        for i in 4..7 {
            s.insert(i);
        }
        // Two rotations later the first generation is gone.
        assert!(!s.contains(&0));
        assert!(s.len() <= 6);
    }
}
