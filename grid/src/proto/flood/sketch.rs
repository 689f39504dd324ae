//! What a flood search looks for: a 48-byte sign-bit sketch of a 384-dimension embedding
//! (one bit per dimension, set when the value is positive) compared by Hamming distance,
//! and/or a text topic; and the local catalog each node matches queries against.
//!
//! A sign-bit sketch is 32 times smaller than the embedding (48 bytes against 1,536), so
//! a query fits a LoRa-sized packet. Its similarity is the fraction of the 384 bits two
//! sketches agree on: 1 for the same sketch, about 0.5 for unrelated ones (the standard
//! deviation for random sketches is about 0.026, so 0.6 is already four of them away).
//! Cosine similarity and bit agreement rise together but are not the same number, so a
//! threshold on sketches is its own setting, not the origin design's cosine 0.6.

/// Dimensions of the embedding a sketch summarises (all-MiniLM-L6-v2's).
pub const DIMENSIONS: usize = 384;
/// Bytes in a sketch.
pub const SKETCH_LEN: usize = DIMENSIONS / 8;
/// Bytes in a topic, at most.
pub const MAX_TOPIC: usize = 64;

/// A sign-bit sketch of a 384-dimension embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sketch(pub [u8; SKETCH_LEN]);

impl Sketch {
    /// The sketch of `embedding`: bit i is set when dimension i is above zero. Missing
    /// dimensions (a shorter vector) count as zero, extra ones are ignored, and NaN
    /// counts as not positive.
    pub fn from_embedding(embedding: &[f32]) -> Sketch {
        let mut bits = [0u8; SKETCH_LEN];
        for (i, v) in embedding.iter().take(DIMENSIONS).enumerate() {
            if *v > 0.0 {
                bits[i / 8] |= 0x80 >> (i % 8);
            }
        }
        Sketch(bits)
    }

    /// Bits that differ from `other` (0 to 384).
    pub fn hamming(&self, other: &Sketch) -> u16 {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| (a ^ b).count_ones() as u16)
            .sum()
    }

    /// Bits that agree with `other` (0 to 384): the score on the wire.
    pub fn agreement(&self, other: &Sketch) -> u16 {
        DIMENSIONS as u16 - self.hamming(other)
    }

    /// The fraction of bits that agree with `other`, 0 to 1.
    pub fn similarity(&self, other: &Sketch) -> f32 {
        f32::from(self.agreement(other)) / DIMENSIONS as f32
    }
}

/// A similarity threshold as the bits that must agree (0 to 384), so the wire carries no
/// floats.
pub fn threshold_bits(similarity: f32) -> u16 {
    if similarity.is_nan() {
        return DIMENSIONS as u16;
    }
    (similarity.clamp(0.0, 1.0) * DIMENSIONS as f32).ceil() as u16
}

/// An item a node offers (an adapter, a skill): its id and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its id (the first 16 bytes of a content hash, say).
    pub id: [u8; 16],
    /// The sketch of its embedding.
    pub sketch: Sketch,
    /// Its topic (a skill category), if it has one; at most [`MAX_TOPIC`] bytes.
    pub topic: Option<String>,
}

/// What a query asks for: items near a sketch, items on a topic, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Items whose sketch agrees with this one on at least `threshold` bits.
    pub sketch: Option<Sketch>,
    /// Items with exactly this topic (at most [`MAX_TOPIC`] bytes).
    pub topic: Option<String>,
    /// Bits that must agree, 0 to 384 (see [`threshold_bits`]); ignored without a sketch.
    pub threshold: u16,
}

/// The best score, given to a topic-only match.
pub const FULL_SCORE: u16 = DIMENSIONS as u16;

impl Query {
    /// Whether the query asks for anything (a sketch or a topic).
    pub fn is_valid(&self) -> bool {
        (self.sketch.is_some() || self.topic.is_some())
            && self.threshold <= FULL_SCORE
            && self.topic.as_ref().is_none_or(|t| t.len() <= MAX_TOPIC)
    }

    /// `item`'s score if it matches (bits agreeing; [`FULL_SCORE`] for a topic-only
    /// match), else `None`.
    pub fn score(&self, item: &Item) -> Option<u16> {
        if !self.is_valid() {
            return None;
        }
        if let Some(t) = &self.topic {
            if item.topic.as_deref() != Some(t.as_str()) {
                return None;
            }
        }
        match &self.sketch {
            Some(s) => {
                let a = s.agreement(&item.sketch);
                (a >= self.threshold).then_some(a)
            }
            None => Some(FULL_SCORE),
        }
    }
}

/// Why an item cannot go in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The catalog holds its maximum.
    #[error("the catalog holds {0} items already")]
    Full(usize),
    /// The topic is longer than [`MAX_TOPIC`] bytes.
    #[error("topic of {0} bytes (at most {MAX_TOPIC})")]
    TopicTooLong(usize),
}

/// A node's local catalog, bounded.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    items: Vec<Item>,
    max: usize,
}

impl Catalog {
    /// An empty catalog of at most `max` items.
    pub fn new(max: usize) -> Catalog {
        Catalog {
            items: Vec::new(),
            max,
        }
    }

    /// Add `item`, or replace the item with its id.
    pub fn insert(&mut self, item: Item) -> Result<(), CatalogError> {
        if let Some(t) = &item.topic {
            if t.len() > MAX_TOPIC {
                return Err(CatalogError::TopicTooLong(t.len()));
            }
        }
        if let Some(old) = self.items.iter_mut().find(|i| i.id == item.id) {
            *old = item;
            return Ok(());
        }
        if self.items.len() >= self.max {
            return Err(CatalogError::Full(self.items.len()));
        }
        self.items.push(item);
        Ok(())
    }

    /// Remove the item with id `id`; whether there was one.
    pub fn remove(&mut self, id: &[u8; 16]) -> bool {
        let before = self.items.len();
        self.items.retain(|i| &i.id != id);
        before != self.items.len()
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The best `limit` matches for `query`, best first (ties by id), as (id, score).
    pub fn matches(&self, query: &Query, limit: usize) -> Vec<([u8; 16], u16)> {
        let mut found: Vec<([u8; 16], u16)> = self
            .items
            .iter()
            .filter_map(|i| query.score(i).map(|s| (i.id, s)))
            .collect();
        found.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(limit);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketches_keep_signs_and_compare_by_hamming() {
        let mut e = vec![-1.0f32; DIMENSIONS];
        e[0] = 0.5;
        e[383] = 2.0;
        let s = Sketch::from_embedding(&e);
        assert_eq!(s.0[0], 0x80);
        assert_eq!(s.0[47], 0x01);
        let zero = Sketch([0; SKETCH_LEN]);
        assert_eq!(s.hamming(&zero), 2);
        assert_eq!(s.agreement(&s), 384);
        assert_eq!(Sketch([0xff; SKETCH_LEN]).hamming(&zero), 384);
        assert!((s.similarity(&s) - 1.0).abs() < f32::EPSILON);
        // Short, long and NaN-filled vectors are fine.
        assert_eq!(Sketch::from_embedding(&[1.0]).0[0], 0x80);
        assert_eq!(Sketch::from_embedding(&vec![f32::NAN; 500]), zero);
        assert_eq!(threshold_bits(0.75), 288);
        assert_eq!(threshold_bits(2.0), 384);
        assert_eq!(threshold_bits(f32::NAN), 384);
    }

    #[test]
    fn queries_match_by_sketch_topic_or_both() {
        let a = Sketch([0; SKETCH_LEN]);
        let mut near = a;
        near.0[0] = 0xff; // 8 bits off: 376 agree
        let item = |n: u8, sketch, topic: Option<&str>| Item {
            id: [n; 16],
            sketch,
            topic: topic.map(String::from),
        };
        let mut c = Catalog::new(3);
        c.insert(item(1, a, Some("summarise"))).unwrap();
        c.insert(item(2, near, None)).unwrap();
        c.insert(item(3, Sketch([0xff; SKETCH_LEN]), Some("summarise")))
            .unwrap();
        assert_eq!(
            c.insert(item(4, a, None)),
            Err(CatalogError::Full(3)),
            "bounded"
        );
        let q = Query {
            sketch: Some(a),
            topic: None,
            threshold: 370,
        };
        assert_eq!(c.matches(&q, 10), vec![([1; 16], 384), ([2; 16], 376)]);
        assert_eq!(c.matches(&q, 1).len(), 1);
        let q = Query {
            sketch: None,
            topic: Some("summarise".into()),
            threshold: 0,
        };
        assert_eq!(c.matches(&q, 10), vec![([1; 16], 384), ([3; 16], 384)]);
        let both = Query {
            sketch: Some(a),
            topic: Some("summarise".into()),
            threshold: 370,
        };
        assert_eq!(c.matches(&both, 10), vec![([1; 16], 384)]);
        let nothing = Query {
            sketch: None,
            topic: None,
            threshold: 0,
        };
        assert!(c.matches(&nothing, 10).is_empty());
        assert!(c.remove(&[1; 16]));
        assert_eq!(c.len(), 2);
        let long = "x".repeat(MAX_TOPIC + 1);
        assert_eq!(
            c.insert(item(9, a, Some(&long))),
            Err(CatalogError::TopicTooLong(65))
        );
    }
}
