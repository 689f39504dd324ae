//! Percentiles and goals for a run's figures.

use serde::Serialize;

/// The `p`th percentile of `values` (nearest rank; 0 for none).
pub fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A figure held to a goal.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Goal {
    /// The figure's name in `figures`.
    pub figure: &'static str,
    /// The goal, as text (`>= 0.99`).
    pub goal: String,
    /// Whether the run met it.
    pub met: bool,
}

impl Goal {
    /// `value` must be at least `bound`.
    pub fn at_least(figure: &'static str, value: f64, bound: f64) -> Goal {
        Goal {
            figure,
            goal: format!(">= {bound}"),
            met: value >= bound,
        }
    }

    /// `value` must be at most `bound`.
    pub fn at_most(figure: &'static str, value: f64, bound: f64) -> Goal {
        Goal {
            figure,
            goal: format!("<= {bound}"),
            met: value <= bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 1.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert!(Goal::at_least("x", 0.995, 0.99).met);
        assert!(!Goal::at_most("y", 6.0, 5.0).met);
    }
}
