//! The semantic search evaluation: 37 adapters with realistic descriptions and 87
//! questions phrased the way teachers, students, parents and volunteers ask
//! (`genome/eval/`, checked by `genome/eval/check.py` to share no content words with the
//! adapter they should find). Every adapter is published into a fresh registry with the
//! real embedder; each question must find its adapter among the first five results for
//! at least 90% of the questions.
//!
//! Needs the model files: `python3 tools/models_fetch.py .cache/models` and
//! `GRID_MODELS=.cache/models` (scripts/test.sh does both). Without them the test fails
//! and says so; it never skips.
#![cfg(feature = "embed")]

use std::sync::Arc;

use grid_genome::embed::{Embedder, MiniLm};
use grid_genome::registry::Registry;
use grid_test_support::TempDir;
use serde::Deserialize;

#[derive(Deserialize)]
struct EvalAdapter {
    name: String,
    version: String,
    description: String,
    tags: Vec<String>,
    examples: Vec<String>,
}

#[derive(Deserialize)]
struct Query {
    query: String,
    expected: String,
}

/// Top-1 accuracy and recall@5 of the registry's search over the evaluation set.
pub fn evaluate(
    embedder: Arc<dyn Embedder>,
    keyword_weights: &[f32],
) -> Vec<(f32, f64, f64, Vec<String>)> {
    let adapters: Vec<EvalAdapter> =
        serde_json::from_str(include_str!("../eval/adapters.json")).unwrap();
    let queries: Vec<Query> = serde_json::from_str(include_str!("../eval/queries.json")).unwrap();
    let tmp = TempDir::new("genome-eval");
    let tmp = tmp.path();
    let mut reg = Registry::open(&tmp.join("genome"), Some(embedder)).unwrap();
    let identity = rns_core::identity::Identity::generate(&mut rand_core::OsRng);
    for a in &adapters {
        let dir = tmp.join("src").join(&a.name);
        let examples: Vec<&str> = a.examples.iter().map(String::as_str).collect();
        grid_genome::package::write_test_package(
            &dir,
            &a.name,
            &a.version,
            &a.description,
            &examples,
            4,
            16,
            1,
        )
        .unwrap();
        let toml_path = dir.join("adapter.toml");
        let mut toml = std::fs::read_to_string(&toml_path).unwrap();
        toml.push_str(&format!("tags = {:?}\n", a.tags));
        std::fs::write(&toml_path, toml).unwrap();
        reg.publish(&dir, &identity, 1).unwrap();
    }
    let mut out = Vec::new();
    for &w in keyword_weights {
        let (mut top1, mut top5, mut misses) = (0usize, 0usize, Vec::new());
        for q in &queries {
            let found = reg.search_hybrid(&q.query, 5, 0.0, w).unwrap();
            let names: Vec<&str> = found
                .iter()
                .map(|f| f.entry.manifest.manifest.name.as_str())
                .collect();
            if names.first() == Some(&q.expected.as_str()) {
                top1 += 1;
            }
            if names.contains(&q.expected.as_str()) {
                top5 += 1;
            } else {
                misses.push(format!("{:?} → {names:?} (wanted {})", q.query, q.expected));
            }
        }
        let n = queries.len() as f64;
        out.push((w, top1 as f64 / n, top5 as f64 / n, misses));
    }
    out
}

#[test]
fn semantic_search_finds_the_adapter_a_question_needs() {
    let dir = std::env::var_os("GRID_MODELS").map(std::path::PathBuf::from).unwrap_or_else(|| {
        panic!("GRID_MODELS is not set: run `python3 tools/models_fetch.py .cache/models` and set GRID_MODELS=.cache/models (scripts/test.sh does this)")
    });
    let embedder = MiniLm::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let results = evaluate(Arc::new(embedder), &[0.0, 0.15, 0.3]);
    for (w, top1, recall5, _) in &results {
        eprintln!(
            "evaluation, keyword weight {w}: top-1 accuracy {top1:.3}, recall@5 {recall5:.3}"
        );
    }
    let (_, _, recall5, misses) = &results[0];
    for m in misses {
        eprintln!("  miss: {m}");
    }
    assert!(
        *recall5 >= 0.9,
        "recall@5 {recall5:.3} < 0.9 (semantic scoring, the default)"
    );
}
