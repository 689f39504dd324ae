//! Searching past the heard peers: nodes found by flood search (their packages' sketches
//! near the query's, through the neighbours, as far as the patience allows) and, at
//! `exhaustive` patience, by DHT topic keys (the query's words that name a tag). These
//! only say which nodes to ask: each is then asked `genome/search` like a heard peer,
//! and what it answers is scored here.

use std::collections::BTreeMap;

use grid::proto::bundle::envelope::node_destination_of;
use grid::proto::dht::key::Key;
use grid::proto::flood::sketch::{threshold_bits, Query, Sketch};
use grid::proto::flood::Patience as FloodPatience;
use rns_core::AddressHash;

use super::Genome;

/// How much of the query's sketch a package's must agree with for a flood to report it:
/// 60 % of the bits, about a cosine of 0.3 (related texts score well above; unrelated
/// ones near 0.5 of the bits).
pub const FLOOD_AGREEMENT: f32 = 0.6;
/// Nodes past the heard peers one search asks, at most.
pub const MAX_BEYOND: usize = 16;
/// Query words looked up as DHT topics, at most (each is a DHT lookup).
pub const MAX_TOPIC_WORDS: usize = 3;
/// Providers asked for per topic.
const PROVIDERS_PER_TOPIC: usize = 8;

/// How a search found a result, nearest first (the order ranks them for `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Found {
    /// This node holds it.
    Local,
    /// A heard peer (one that announces adapters) answered with it.
    Heard,
    /// A flood search hit it, `hops` away.
    Flood(u8),
    /// A node the DHT named as a provider of a topic answered with it.
    Dht,
    /// Catalog gossip brought its entry.
    Catalog,
}

impl Found {
    /// The `source` a result gets.
    pub fn source(self) -> &'static str {
        match self {
            Found::Local => "local",
            Found::Heard => "peers",
            Found::Flood(_) => "flood",
            Found::Dht => "dht",
            Found::Catalog => "catalog",
        }
    }

    /// Hops to the node, when known.
    pub fn hops(self) -> Option<u8> {
        match self {
            Found::Local => Some(0),
            Found::Flood(h) => Some(h),
            Found::Heard | Found::Dht | Found::Catalog => None,
        }
    }
}

/// The query's words that could name a topic (a tag): lower-case, three letters or more,
/// distinct, at most [`MAX_TOPIC_WORDS`], longest first (the most specific).
pub fn topic_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect();
    words.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    words.dedup();
    words.truncate(MAX_TOPIC_WORDS);
    words
}

impl Genome {
    /// Nodes past the heard peers worth asking for `query` (its embedding `vector`, if
    /// the model is loaded), as far as `patience` reaches: flood hits (with a vector),
    /// and at `exhaustive` the DHT's providers of topics the query's words name, each
    /// with every way it was found. This node left out.
    pub(super) async fn beyond_heard(
        &self,
        vector: Option<&[f32]>,
        query: &str,
        patience: FloodPatience,
    ) -> BTreeMap<AddressHash, Vec<Found>> {
        let flood = async {
            let Some(v) = vector else {
                return Vec::new();
            };
            let q = Query {
                sketch: Some(Sketch::from_embedding(v)),
                topic: None,
                threshold: threshold_bits(FLOOD_AGREEMENT),
            };
            match self
                .handle
                .flood_search(q, patience, MAX_BEYOND as u8)
                .await
            {
                Ok(o) => o
                    .found
                    .iter()
                    .map(|f| (f.hit.holder, Found::Flood(f.hops)))
                    .collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "flood search failed");
                    Vec::new()
                }
            }
        };
        let topics = async {
            if patience != FloodPatience::Exhaustive {
                return Vec::new();
            }
            let mut lookups = tokio::task::JoinSet::new();
            for word in topic_words(query) {
                let handle = self.handle.clone();
                lookups.spawn(async move {
                    handle
                        .dht_find_providers(Key::of_topic(&word), PROVIDERS_PER_TOPIC)
                        .await
                        .map(|o| o.providers)
                        .unwrap_or_default()
                });
            }
            let mut found = Vec::new();
            while let Some(done) = lookups.join_next().await {
                found.extend(
                    done.unwrap_or_default()
                        .into_iter()
                        .map(|c| (c.id.0, Found::Dht)),
                );
            }
            found
        };
        let (flood, topics): (Vec<_>, Vec<_>) = tokio::join!(flood, topics);
        let me = self.handle.destination();
        let mut found: BTreeMap<AddressHash, Vec<Found>> = BTreeMap::new();
        for (identity, how) in flood.into_iter().chain(topics) {
            let node = AddressHash(node_destination_of(&AddressHash(identity)));
            if node != me && (found.len() < MAX_BEYOND || found.contains_key(&node)) {
                found.entry(node).or_default().push(how);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_words_are_the_longest_distinct_words_lower_cased() {
        assert_eq!(
            topic_words("Beekeeping for a school: bee-keeping, BEEKEEPING and hives"),
            vec!["bee-keeping", "beekeeping", "school"]
        );
        assert!(topic_words("a of to").is_empty());
    }

    #[test]
    fn found_ranks_nearest_first_and_names_its_source() {
        let mut ways = [
            Found::Catalog,
            Found::Dht,
            Found::Flood(3),
            Found::Heard,
            Found::Flood(2),
        ];
        ways.sort();
        assert_eq!(ways[0], Found::Heard);
        assert_eq!(ways[1], Found::Flood(2));
        assert_eq!(ways.last(), Some(&Found::Catalog));
        assert_eq!(Found::Flood(2).source(), "flood");
        assert_eq!(Found::Flood(2).hops(), Some(2));
        assert_eq!(Found::Dht.hops(), None);
    }
}
