//! Keyword overlap: the fallback score when no embedder is loaded, and the keyword part
//! of hybrid scoring.

use std::collections::BTreeSet;

/// Words that say nothing about a skill.
const STOP: &[&str] = &[
    "about", "also", "and", "are", "can", "for", "from", "have", "help", "how", "into", "its",
    "just", "like", "more", "need", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "what", "when", "where", "which", "while", "with", "would", "you", "your",
    "want", "does", "some", "get", "out", "our", "was", "who", "why", "will", "not", "all", "any",
];

/// The content words of a text: lower case, 3+ letters, stop words out, a plural or
/// -ing/-ed ending trimmed so "proofs" meets "proof".
pub fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

fn stem(w: &str) -> String {
    for suffix in ["ing", "ed", "s"] {
        if let Some(s) = w.strip_suffix(suffix) {
            if s.chars().count() >= 3 {
                return s.to_string();
            }
        }
    }
    w.to_string()
}

/// The share of the query's content words found in `text` (0–1).
pub fn overlap(query: &str, text: &str) -> f32 {
    let q = words(query);
    if q.is_empty() {
        return 0.0;
    }
    let t = words(text);
    q.iter().filter(|w| t.contains(*w)).count() as f32 / q.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_shared_content_words() {
        assert_eq!(
            overlap("triangle proofs", "Proves triangles congruent: proof steps"),
            1.0
        );
        assert_eq!(overlap("the and of", "anything"), 0.0);
        assert!(
            (overlap("chemistry homework help", "balancing chemistry equations") - 0.5).abs()
                < 1e-6
        );
    }
}
