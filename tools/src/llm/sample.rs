//! Choosing the next token: greedy at temperature 0, else a seeded draw.
//!
//! The draw for each step comes from a ChaCha8 stream keyed by the request's seed and
//! the length of the context, so the text is a function of (prompt, adapter, seed,
//! temperature, max_tokens) alone, whatever ran before.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a request picks tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// The most likely token (the first on ties).
    Greedy,
    /// A draw from softmax(logits / temperature).
    Seeded {
        /// The request's seed.
        seed: u64,
        /// The temperature (> 0).
        temperature: f32,
    },
}

impl Sampler {
    /// The sampler of a request: greedy for a temperature of 0 or less.
    pub fn new(temperature: f32, seed: u64) -> Sampler {
        if temperature > 0.0 {
            Sampler::Seeded { seed, temperature }
        } else {
            Sampler::Greedy
        }
    }

    /// The token chosen from `logits` when the context holds `context_len` tokens.
    pub fn pick(&self, logits: &[f32], context_len: usize) -> usize {
        match *self {
            Sampler::Greedy => argmax(logits),
            Sampler::Seeded { seed, temperature } => {
                draw(logits, temperature, seed, context_len as u64)
            }
        }
    }
}

/// Index of the largest logit (the first on ties); NaN never wins.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

/// A draw from softmax(logits / temperature) with the ChaCha8 stream (seed, stream).
fn draw(logits: &[f32], temperature: f32, seed: u64, stream: u64) -> usize {
    let t = temperature.max(1e-6);
    let max = logits
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return argmax(logits);
    }
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| {
            if l.is_finite() {
                f64::from((l - max) / t).exp()
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    // 53 random bits: a uniform draw in [0, 1).
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut target = u * total;
    let mut last = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            last = i;
            if target < *w {
                return i;
            }
            target -= w;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum_and_ignores_nan() {
        assert_eq!(argmax(&[0.1, 3.0, f32::NAN, 3.0]), 1);
        assert_eq!(Sampler::new(0.0, 5).pick(&[1.0, 2.0], 9), 1);
        assert_eq!(Sampler::new(-1.0, 5), Sampler::Greedy);
    }

    #[test]
    fn seeded_draws_repeat_and_follow_the_distribution() {
        let logits = [0.0, 1.0, 2.0, f32::NEG_INFINITY];
        let s = Sampler::new(1.0, 42);
        let picks: Vec<usize> = (0..2000).map(|n| s.pick(&logits, n)).collect();
        let again: Vec<usize> = (0..2000).map(|n| s.pick(&logits, n)).collect();
        assert_eq!(picks, again);
        let count = |k| picks.iter().filter(|&&p| p == k).count() as f64 / 2000.0;
        // softmax(0, 1, 2) = 0.090, 0.245, 0.665; -inf is never drawn.
        assert!((count(0) - 0.090).abs() < 0.03, "{}", count(0));
        assert!((count(2) - 0.665).abs() < 0.04, "{}", count(2));
        assert_eq!(count(3), 0.0);
        let other: Vec<usize> = (0..2000)
            .map(|n| Sampler::new(1.0, 43).pick(&logits, n))
            .collect();
        assert_ne!(picks, other);
    }
}
