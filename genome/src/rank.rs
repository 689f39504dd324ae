//! Search results as they travel, and merging the answers of peers by this node's own
//! measure.
//!
//! A peer's answer to `genome/search` is a list of adapter summaries, each with the score
//! that peer gave it. A hostile peer can claim any score, so a node never ranks by it:
//! each adapter only peers offered is scored here, from the texts its summary carries
//! (name, description and tags, then up to [`RESULT_EXAMPLES`] example questions), the
//! way the registry scores its own adapters — the best cosine similarity over those
//! texts under the local embedder, blended with keyword overlap as `keyword_weight`
//! says; keyword overlap alone when no model is loaded. The peer's number is kept as
//! `peer_score`, for information only. Adapters this node holds keep their local score.
//!
//! What a summary says is not signed (only a fetched package is verified against its
//! content hash), so a peer can still describe an adapter falsely; but the score shown
//! is the one this node computed from the words shown, and the number of adapters from
//! peers scored per search is bounded ([`MAX_REMOTE_ITEMS`]), as is each text.

use std::collections::{BTreeMap, HashSet};

use rns_core::AddressHash;
use serde_json::{json, Value};

use crate::embed::{cosine, EmbedError, Embedder};
use crate::registry::Found;

/// Example questions a search result carries, at most.
pub const RESULT_EXAMPLES: usize = 4;
/// Adapters offered only by peers that one search scores, at most (the rest are left
/// out; each peer's list is taken in turn, so no peer crowds out the others).
pub const MAX_REMOTE_ITEMS: usize = 100;
/// The longest text of a peer's summary that is scored (characters).
pub const MAX_TEXT_CHARS: usize = 2000;

/// The summary fields taken from a peer's result (anything else it sends is dropped).
const SUMMARY_FIELDS: [&str; 12] = [
    "name",
    "version",
    "description",
    "tags",
    "license",
    "base_model",
    "rank",
    "size",
    "content_hash",
    "publisher",
    "published_ms",
    "examples",
];

/// One local search result as it is answered: the adapter's summary, a few examples (so
/// the asking node can score it the same way), its score and providers.
pub fn result_json(found: &Found, me: &str) -> Value {
    let mut v = found.entry.to_json();
    let examples: Vec<&String> = found
        .entry
        .manifest
        .manifest
        .examples
        .iter()
        .take(RESULT_EXAMPLES)
        .collect();
    v["examples"] = json!(examples);
    v["score"] = json!(found.score);
    v["providers"] = json!([me]);
    v
}

/// The texts a summary is scored on, slot by slot as [`crate::registry::Entry::texts`]
/// makes them: name, description and tags first, then the examples it carries.
pub fn summary_texts(item: &Value) -> Vec<String> {
    let s = |k: &str| item[k].as_str().unwrap_or_default();
    let tags: Vec<&str> = item["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .take(crate::package::MAX_TAGS)
        .collect();
    let head = format!(
        "{}. {} {}",
        s("name").replace('-', " "),
        s("description"),
        tags.join(", ")
    );
    let mut texts = vec![clip(&head)];
    texts.extend(
        item["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .take(RESULT_EXAMPLES)
            .map(clip),
    );
    texts
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_TEXT_CHARS).collect()
}

/// Scores texts against one query as the registry scores its adapters.
pub struct Scorer<'a> {
    query: &'a str,
    /// The query's vector and the embedder that made it; none: keywords only.
    semantic: Option<(&'a [f32], &'a dyn Embedder)>,
    keyword_weight: f32,
}

impl<'a> Scorer<'a> {
    /// A scorer for `query`; `semantic` is the query's vector and the embedder that made
    /// it (none when no model is loaded: keyword overlap alone).
    pub fn new(
        query: &'a str,
        semantic: Option<(&'a [f32], &'a dyn Embedder)>,
        keyword_weight: f32,
    ) -> Scorer<'a> {
        Scorer {
            query,
            semantic,
            keyword_weight: keyword_weight.clamp(0.0, 1.0),
        }
    }

    /// The score of each item (its texts, slot by slot), in order, embedding them all
    /// in one batch.
    pub fn score_all(&self, items: &[Vec<String>]) -> Result<Vec<f32>, EmbedError> {
        let keywords: Vec<f32> = items
            .iter()
            .map(|t| crate::keywords::overlap(self.query, &t.join(" ")))
            .collect();
        let Some((q, embedder)) = self.semantic else {
            return Ok(keywords);
        };
        let flat: Vec<&str> = items.iter().flatten().map(String::as_str).collect();
        let vectors = embedder.embed(&flat)?;
        if vectors.len() != flat.len() {
            return Err(EmbedError::Runtime(format!(
                "{} vectors for {} texts",
                vectors.len(),
                flat.len()
            )));
        }
        let w = self.keyword_weight;
        let mut next = vectors.iter();
        Ok(items
            .iter()
            .zip(keywords)
            .map(|(texts, kw)| {
                let best = next
                    .by_ref()
                    .take(texts.len())
                    .map(|v| cosine(q, v))
                    .fold(f32::NEG_INFINITY, f32::max);
                let best = if best.is_finite() { best } else { 0.0 };
                (1.0 - w) * best + w * kw
            })
            .collect())
    }
}

/// Whether `s` is a content hash as summaries carry it (64 lower-case hex digits).
fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A peer's summary with only the known fields, its claimed score as `peer_score`.
fn sanitize(item: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in SUMMARY_FIELDS {
        if let Some(v) = item.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    if let Some(s) = item["score"].as_f64() {
        out.insert("peer_score".into(), json!(s));
    }
    Value::Object(out)
}

fn add_provider(item: &mut Value, peer: &str) {
    if !item["providers"].is_array() {
        item["providers"] = json!([]);
    }
    if let Some(p) = item["providers"].as_array_mut() {
        if !p.iter().any(|x| x == peer) {
            p.push(json!(peer));
        }
    }
}

/// Merge this node's results (`local`, as [`result_json`] made them) with the answers of
/// peers: adapters held here keep their score and gain the peers offering them as
/// providers; adapters only peers offer are scored by `scorer` (at most
/// [`MAX_REMOTE_ITEMS`], each peer's first `limit` taken in turn) and dropped under
/// `min_score`. Best first, at most `limit`.
pub fn merge(
    local: Vec<Value>,
    answers: &[(AddressHash, Value)],
    scorer: &Scorer<'_>,
    min_score: f32,
    limit: usize,
) -> Result<Vec<Value>, EmbedError> {
    let mut merged: BTreeMap<String, Value> = local
        .into_iter()
        .filter_map(|v| Some((v["content_hash"].as_str()?.to_string(), v)))
        .collect();
    let mut remote: BTreeMap<String, Value> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let lists: Vec<(String, Vec<&Value>)> = answers
        .iter()
        .map(|(peer, answer)| {
            let items = answer
                .as_array()
                .into_iter()
                .flatten()
                .take(limit)
                .collect();
            (peer.to_string(), items)
        })
        .collect();
    let mut seen: HashSet<(usize, String)> = HashSet::new();
    let longest = lists.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (n, (peer, items)) in lists.iter().enumerate() {
            let Some(item) = items.get(i) else { continue };
            let Some(hash) = item["content_hash"].as_str().filter(|h| is_hash(h)) else {
                continue;
            };
            if !seen.insert((n, hash.to_string())) {
                continue;
            }
            if let Some(here) = merged.get_mut(hash) {
                add_provider(here, peer);
            } else if let Some(there) = remote.get_mut(hash) {
                add_provider(there, peer);
            } else if remote.len() < MAX_REMOTE_ITEMS {
                let mut v = sanitize(item);
                add_provider(&mut v, peer);
                remote.insert(hash.to_string(), v);
                order.push(hash.to_string());
            }
        }
    }
    let texts: Vec<Vec<String>> = order.iter().map(|h| summary_texts(&remote[h])).collect();
    let scores = scorer.score_all(&texts)?;
    for (hash, score) in order.into_iter().zip(scores) {
        if score >= min_score {
            if let Some(mut v) = remote.remove(&hash) {
                v["score"] = json!(score);
                merged.insert(hash, v);
            }
        }
    }
    let mut out: Vec<Value> = merged.into_values().collect();
    out.sort_by(|a, b| {
        let s = |v: &Value| v["score"].as_f64().unwrap_or(0.0);
        s(b).total_cmp(&s(a))
            .then_with(|| a["content_hash"].as_str().cmp(&b["content_hash"].as_str()))
    });
    out.truncate(limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests::Words;

    fn peer(n: u8) -> AddressHash {
        AddressHash([n; 16])
    }

    fn summary(hash: char, name: &str, description: &str, score: f64) -> Value {
        json!({"name": name, "version": "1.0.0", "description": description, "tags": [],
               "content_hash": hash.to_string().repeat(64), "score": score})
    }

    fn local(hash: char, name: &str, score: f64) -> Value {
        json!({"name": name, "content_hash": hash.to_string().repeat(64), "score": score,
               "providers": ["me"]})
    }

    fn names(v: &[Value]) -> Vec<&str> {
        v.iter().map(|x| x["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn a_peers_claimed_score_does_not_rank_its_results() {
        let words = Words("words/v1");
        let query = "fix bicycle brakes";
        let q = words.embed_one(query).unwrap();
        for semantic in [None, Some((q.as_slice(), &words as &dyn Embedder))] {
            let scorer = Scorer::new(query, semantic, 0.0);
            let liar = (
                peer(1),
                json!([
                    summary('a', "knitting", "Knitting patterns for scarves", 1e9),
                    summary('b', "bike-repair", "Fix bicycle brakes and gears", 0.01)
                ]),
            );
            let out = merge(vec![], &[liar], &scorer, 0.0, 10).unwrap();
            assert_eq!(
                names(&out)[0],
                "bike-repair",
                "semantic: {}",
                semantic.is_some()
            );
            assert_eq!(out[0]["peer_score"], json!(0.01));
            assert!(out[0]["score"].as_f64().unwrap() > 0.5, "{}", out[0]);
            // The lie is kept for information, never as the score.
            let knit = out.iter().find(|v| v["name"] == "knitting");
            if let Some(k) = knit {
                assert_eq!(k["peer_score"], json!(1e9));
                assert!(k["score"].as_f64().unwrap() < 0.5, "{k}");
            }
        }
    }

    #[test]
    fn local_adapters_keep_their_score_and_gain_providers() {
        let scorer = Scorer::new("bicycle brakes", None, 0.0);
        let answers = [
            (
                peer(1),
                json!([summary('a', "bike-repair", "Fix bicycle brakes", 1e9)]),
            ),
            (
                peer(2),
                json!([
                    summary('a', "bike-repair", "Fix bicycle brakes", 1e9),
                    summary('a', "bike-repair", "Fix bicycle brakes", 1e9)
                ]),
            ),
        ];
        let out = merge(
            vec![local('a', "bike-repair", 0.25)],
            &answers,
            &scorer,
            0.0,
            10,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["score"], json!(0.25));
        assert_eq!(
            out[0]["providers"],
            json!(["me", peer(1).to_string(), peer(2).to_string()]),
            "each provider once"
        );
    }

    #[test]
    fn remote_results_are_bounded_sanitized_and_filtered() {
        let scorer = Scorer::new("bicycle brakes", None, 0.0);
        let flood: Vec<Value> = (0..500)
            .map(|i| {
                json!({"name": format!("bike-{i}"), "description": "bicycle brakes",
                       "content_hash": format!("{i:064x}"), "score": 1.0,
                       "junk": "x".repeat(1000)})
            })
            .collect();
        let honest = json!([summary('e', "brakes", "bicycle brakes", 0.5)]);
        let answers = [
            (peer(1), Value::Array(flood)),
            (peer(2), honest),
            (peer(3), json!("not a list")),
            (
                peer(4),
                json!([{"content_hash": "not hex", "name": "x"}, 7, null]),
            ),
        ];
        let out = merge(vec![], &answers, &scorer, 0.0, 100).unwrap();
        assert_eq!(out.len(), 100);
        // The flooding peer got its first 100 (the limit) in turn with the others, so the
        // honest peer's one result is in.
        assert!(out.iter().any(|v| v["name"] == "brakes"));
        assert!(out.iter().all(|v| v.get("junk").is_none()));
        // Under min_score: dropped.
        let out = merge(
            vec![],
            &answers,
            &Scorer::new("knitting", None, 0.0),
            0.1,
            10,
        )
        .unwrap();
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn summaries_are_scored_on_their_examples_too() {
        let words = Words("words/v1");
        let query = "my chain keeps slipping";
        let q = words.embed_one(query).unwrap();
        let scorer = Scorer::new(query, Some((&q, &words)), 0.0);
        let mut with = summary('a', "bike-repair", "Fix bicycle brakes", 0.0);
        with["examples"] = json!(["my chain keeps slipping"]);
        let without = summary('b', "bike-repair", "Fix bicycle brakes", 0.0);
        let s = scorer
            .score_all(&[summary_texts(&with), summary_texts(&without)])
            .unwrap();
        assert!(s[0] > 0.99 && s[1] < s[0], "{s:?}");
        // Keyword weight blends in overlap of all texts.
        let kw = Scorer::new(query, Some((&q, &words)), 1.0)
            .score_all(&[summary_texts(&with)])
            .unwrap();
        assert!((kw[0] - 1.0).abs() < 1e-6, "{kw:?}");
        // A huge text is clipped before it is scored.
        let huge = json!({"name": "x", "description": "y".repeat(100_000)});
        assert!(summary_texts(&huge)[0].chars().count() <= MAX_TEXT_CHARS);
    }
}
