//! `genome/search`: this node's registry, and for the node's own user the catalog gossip
//! brought and, within the caller's patience, its peers in parallel, merged by this
//! node's own scoring, each result saying where it was found (`source`, `hops`).
//! Searches from peers are rate limited and answered from this node alone.

use std::sync::Arc;
use std::time::Duration;

use grid::commands::{CommandCall, CommandError};
use grid::proto::rate_limit::{Limits, Rate};
use rns_core::AddressHash;
use serde_json::{json, Value};

use std::collections::{BTreeMap, HashMap, HashSet};

use grid::proto::bundle::envelope::node_destination;
use grid::proto::gossip::entry::Body;
use rns_core::identity::PublicIdentity;

use super::beyond::Found;
use super::{catalog, failed, param_str, Genome};
use crate::rank::Scorer;
use grid::proto::flood::Patience as FloodPatience;

/// How long a mesh search waits for peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// This node only.
    Immediate,
    /// Peers get 2 s.
    Quick,
    /// Peers get 8 s; a flood reaches 10 hops (250 messages).
    Thorough,
    /// Peers get 30 s; a flood reaches a thousand nodes, and the DHT is asked for the
    /// topics the query's words name.
    Exhaustive,
}

impl Patience {
    fn parse(s: &str) -> Result<Patience, CommandError> {
        Ok(match s {
            "immediate" => Patience::Immediate,
            "quick" | "" => Patience::Quick,
            "thorough" => Patience::Thorough,
            "exhaustive" => Patience::Exhaustive,
            other => {
                return Err(CommandError::bad_params(format!(
                    "patience \"{other}\": immediate, quick, thorough or exhaustive"
                )))
            }
        })
    }

    fn budget(self) -> Option<Duration> {
        match self {
            Patience::Immediate => None,
            Patience::Quick => Some(Duration::from_secs(2)),
            Patience::Thorough => Some(Duration::from_secs(8)),
            Patience::Exhaustive => Some(Duration::from_secs(30)),
        }
    }

    /// How far a flood search goes at this patience (none at `immediate`).
    fn flood(self) -> Option<FloodPatience> {
        match self {
            Patience::Immediate => None,
            Patience::Quick => Some(FloodPatience::Quick),
            Patience::Thorough => Some(FloodPatience::Thorough),
            Patience::Exhaustive => Some(FloodPatience::Exhaustive),
        }
    }
}

/// The content hashes an answer to `genome/search` names.
fn content_hashes(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["content_hash"].as_str().map(str::to_string))
        .collect()
}

/// Most peers one mesh search asks.
const MAX_PEERS_ASKED: usize = 16;

/// Rate limits on `genome/search` from peers (the node's own user is not limited): ten
/// at once then two a second per caller, four then one a second for all unidentified
/// callers together, thirty then ten a second for the node.
pub const SEARCH_LIMITS: Limits = Limits {
    caller: Rate::new(10, Duration::from_millis(500)),
    anonymous: Rate::new(4, Duration::from_secs(1)),
    node: Rate::new(30, Duration::from_millis(100)),
};
/// Searches embedding or scanning at once (others wait their turn).
pub const SEARCHES_AT_ONCE: usize = 2;

/// Whether a search by `caller` also asks this node's peers: only when the node's own
/// user (`own`, the node's identity) asks. `None` is a remote caller that did not
/// identify, never the node itself.
pub fn fans_out(caller: Option<AddressHash>, own: AddressHash) -> bool {
    caller == Some(own)
}

/// Whether requests from `caller` count against rate limits: everyone's but the node's
/// own user's.
pub fn rate_limited(caller: Option<AddressHash>, own: AddressHash) -> bool {
    caller != Some(own)
}

impl Genome {
    pub(super) async fn search(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let own = self.handle.identity();
        if rate_limited(call.caller, own) {
            self.searches
                .lock()
                .map_err(|_| failed("limiter lock poisoned"))?
                .admit(call.caller, grid::clock::now())
                .map_err(failed)?;
        }
        let query = param_str(&call, "query")?.to_string();
        if query.trim().is_empty() || query.len() > 2000 {
            return Err(CommandError::bad_params(
                "query must be 1 to 2000 characters",
            ));
        }
        let limit = call
            .params
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 100) as usize;
        let min_score = call
            .params
            .get("min_score")
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as f32;
        let patience = Patience::parse(
            call.params
                .get("patience")
                .and_then(Value::as_str)
                .unwrap_or("quick"),
        )?;
        let keyword_weight = call
            .params
            .get("keyword_weight")
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as f32;
        let me = self.handle.destination().to_string();
        // One embedding of the query serves the local search and scoring peers' results.
        let vector = self.embed_query(&query).await?;
        let (q, v) = (query.clone(), vector.clone());
        let local: Vec<Value> = {
            let _turn = self.searching.acquire().await.map_err(failed)?;
            self.blocking(move |r| {
                r.search_embedded(&q, v.as_deref(), limit, min_score, keyword_weight)
                    .iter()
                    .map(|f| crate::rank::result_json(f, &me))
                    .collect()
            })
            .await?
        };
        if !fans_out(call.caller, own) {
            return Ok(Value::Array(local));
        }
        // Escalation: this node's registry, then the catalog gossip brought (no network),
        // then, as the patience allows, the heard peers.
        // Then, as the patience allows, the heard peers and, in parallel, the nodes a
        // flood search (and at `exhaustive` the DHT) finds past them; those are asked
        // next, like heard peers.
        let mut answers = self.catalog_answers(vector.as_deref(), &query).await;
        let mut origins: HashMap<String, Vec<Found>> = HashMap::new();
        for (_, answer) in &answers {
            for hash in content_hashes(answer) {
                origins.entry(hash).or_default().push(Found::Catalog);
            }
        }
        if let (Some(budget), Some(flood)) = (patience.budget(), patience.flood()) {
            let params = json!({"query": query, "limit": limit, "min_score": min_score,
                                "patience": "immediate", "keyword_weight": keyword_weight});
            let peers = self.heard_adapter_peers().await;
            let asked: HashSet<AddressHash> = peers.iter().copied().collect();
            let (heard, beyond) = tokio::join!(
                self.ask_nodes(peers, "genome/search", &params, budget),
                self.beyond_heard(vector.as_deref(), &query, flood)
            );
            // A node found past the heard peers is asked unless it was asked already;
            // either way its answer counts as found that way too.
            let nodes = beyond
                .keys()
                .filter(|n| !asked.contains(n))
                .copied()
                .collect();
            let far = self
                .ask_nodes(nodes, "genome/search", &params, budget)
                .await;
            let far = far.into_iter().map(|a| (a, None));
            for ((node, answer), heard) in
                far.chain(heard.into_iter().map(|a| (a, Some(Found::Heard))))
            {
                let ways: Vec<Found> = heard
                    .into_iter()
                    .chain(beyond.get(&node).into_iter().flatten().copied())
                    .collect();
                for hash in content_hashes(&answer) {
                    origins.entry(hash).or_default().extend(&ways);
                }
                answers.push((node, answer));
            }
        }
        let embedder = self.embedder.clone();
        let merged = {
            let _turn = self.searching.acquire().await.map_err(failed)?;
            tokio::task::spawn_blocking(move || {
                let semantic = match (&vector, &embedder) {
                    (Some(v), Some(e)) => Some((v.as_slice(), e.as_ref())),
                    _ => None,
                };
                let scorer = Scorer::new(&query, semantic, keyword_weight);
                crate::rank::merge(local, &answers, &scorer, min_score, limit)
            })
            .await
            .map_err(failed)?
            .map_err(failed)?
        };
        Ok(Value::Array(self.with_sources(merged, &origins).await))
    }

    /// The catalog's adapter entries worth scoring for this query, as answers from
    /// their publishers' nodes (name and summary only: scored here like a peer's).
    async fn catalog_answers(
        &self,
        vector: Option<&[f32]>,
        query: &str,
    ) -> Vec<(AddressHash, Value)> {
        let entries = self.handle.catalog().await.unwrap_or_default();
        let own = *self.identity.public().as_bytes();
        let mut by_node: BTreeMap<AddressHash, Vec<Value>> = BTreeMap::new();
        for e in catalog::candidates(&entries, vector, query, &own) {
            let (Ok(publisher), Body::Adapter { content_hash, .. }) =
                (PublicIdentity::from_bytes(e.publisher()), e.record().body)
            else {
                continue;
            };
            let r = e.record();
            let name = r.name.rsplit_once('@').map_or(r.name.as_str(), |(n, _)| n);
            by_node
                .entry(AddressHash(node_destination(&publisher)))
                .or_default()
                .push(
                    json!({"content_hash": hex::encode(content_hash), "name": name,
                             "description": r.summary, "tags": []}),
                );
        }
        by_node
            .into_iter()
            .map(|(node, items)| (node, Value::Array(items)))
            .collect()
    }

    /// Each result with where it came from: `source`, the nearest way (`local`; `peers`
    /// when a heard peer answered with it; `flood` or `dht` when a node found that way
    /// did; else `catalog`), `found_by`, every way that found it, and `hops`, how far
    /// its nearest provider is (when known).
    async fn with_sources(
        &self,
        mut results: Vec<Value>,
        origins: &HashMap<String, Vec<Found>>,
    ) -> Vec<Value> {
        let me = self.handle.destination().to_string();
        let hops: HashMap<String, u8> = self
            .handle
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.node.to_string(), p.hops))
            .collect();
        for v in &mut results {
            let providers: Vec<String> = v["providers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            let local = providers.contains(&me);
            let hash = v["content_hash"].as_str().unwrap_or_default();
            let mut ways: Vec<Found> = origins.get(hash).cloned().unwrap_or_default();
            if local {
                ways.push(Found::Local);
            }
            ways.sort();
            ways.dedup_by_key(|w| w.source());
            v["source"] = json!(ways.first().map_or("catalog", |w| w.source()));
            v["found_by"] = json!(ways.iter().map(|w| w.source()).collect::<Vec<_>>());
            let nearest = if local {
                Some(0)
            } else {
                let heard = providers.iter().filter_map(|p| hops.get(p)).min().copied();
                heard.or(ways.iter().find_map(|w| w.hops()))
            };
            v["hops"] = json!(nearest);
        }
        results
    }

    /// The query's vector, if a model is loaded; computed with no lock on the registry,
    /// [`SEARCHES_AT_ONCE`] at a time.
    pub(super) async fn embed_query(&self, query: &str) -> Result<Option<Vec<f32>>, CommandError> {
        let Some(e) = self.embedder.clone() else {
            return Ok(None);
        };
        let _turn = self.searching.acquire().await.map_err(failed)?;
        let q = query.to_string();
        match tokio::task::spawn_blocking(move || e.embed_one(&q))
            .await
            .map_err(failed)?
        {
            Ok(v) => Ok(Some(v)),
            // Under memory pressure the search still answers, by keywords.
            Err(crate::embed::EmbedError::Refused(r)) => {
                tracing::info!("skill search by keywords only: {r}");
                Ok(None)
            }
            Err(e) => Err(failed(format!("embedding: {e}"))),
        }
    }

    /// Ask the peers that announce adapters, in parallel, within `budget`; the answers
    /// that came.
    pub(super) async fn ask_peers(
        &self,
        command: &str,
        params: &Value,
        budget: Duration,
    ) -> Vec<(AddressHash, Value)> {
        let peers = self.heard_adapter_peers().await;
        self.ask_nodes(peers, command, params, budget).await
    }

    /// The peers a mesh search asks: heard announcing adapters, at most
    /// [`MAX_PEERS_ASKED`], never this node.
    async fn heard_adapter_peers(&self) -> Vec<AddressHash> {
        let me = self.handle.destination();
        self.handle
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.node != me && p.capabilities.adapters > 0)
            .take(MAX_PEERS_ASKED)
            .map(|p| p.node)
            .collect()
    }

    /// Ask `peers` `command`, in parallel, within `budget`; the answers that came.
    pub(super) async fn ask_nodes(
        &self,
        peers: Vec<AddressHash>,
        command: &str,
        params: &Value,
        budget: Duration,
    ) -> Vec<(AddressHash, Value)> {
        let mut set = tokio::task::JoinSet::new();
        for p in peers {
            let (h, c, params) = (self.handle.clone(), command.to_string(), params.clone());
            set.spawn(async move { (p, h.execute(p, &c, &params, budget).await) });
        }
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + budget + Duration::from_millis(200);
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            match r {
                Ok((p, Ok(v))) => out.push((p, v)),
                Ok((p, Err(e))) => {
                    tracing::debug!(peer = %p, error = %e, "peer did not answer {command}")
                }
                Err(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nodes_own_user_fans_out_and_goes_unlimited() {
        let own = AddressHash([1; 16]);
        let peer = AddressHash([2; 16]);
        assert!(fans_out(Some(own), own));
        assert!(
            !fans_out(None, own),
            "an unidentified caller is never the node"
        );
        assert!(!fans_out(Some(peer), own));
        assert!(!rate_limited(Some(own), own));
        assert!(rate_limited(None, own));
        assert!(rate_limited(Some(peer), own));
    }
}
