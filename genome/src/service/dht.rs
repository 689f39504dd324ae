//! Adapter packages in the DHT: every package this node holds is provided under the key
//! of its content hash ([`grid::proto::dht::key::Key::of_content`]) and under the topic
//! key of each of its first [`MAX_TOPICS`] tags ([`grid::proto::dht::key::Key::of_topic`]);
//! `genome/fetch` looks a hash up there when no heard peer offers it, and an
//! `exhaustive` search looks up the topics its words name.
//!
//! The node's DHT republishes what it provides every 12 h (records live 48 h), so a key
//! is provided once per package; a provide that reached no node (the node had heard no
//! one yet) is tried again, backing off from [`PROVIDE_RETRY`] to [`PROVIDE_RETRY_MAX`].
//! A removed package is no longer republished; records other nodes hold for it run out
//! with their TTL, and a fetcher sent here meanwhile is told it is not here.

use std::sync::Arc;
use std::time::Duration;

use grid::proto::bundle::envelope::node_destination;
use grid::proto::dht::key::Key;
use rns_core::identity::PublicIdentity;
use rns_core::AddressHash;

use super::Genome;
use crate::registry::Entry;

/// Tags of a package provided as DHT topics, at most (each is a DHT record).
pub const MAX_TOPICS: usize = 4;
/// Providers a fetch asks the DHT for, and tries, at most.
pub const MAX_DHT_PROVIDERS: usize = 8;
/// Packages provided at once (each is a DHT lookup).
pub(super) const PROVIDES_AT_ONCE: usize = 4;
/// How long after a provide that reached no node it is tried again, at first.
pub const PROVIDE_RETRY: Duration = Duration::from_secs(5);
/// … and at most, backing off.
pub const PROVIDE_RETRY_MAX: Duration = Duration::from_secs(600);

impl Genome {
    /// Provide every package held now (at start).
    pub(super) async fn provide_all(self: &Arc<Self>) {
        let hashes = self
            .blocking(|r| r.list().iter().map(|e| e.hash).collect::<Vec<_>>())
            .await
            .unwrap_or_default();
        for hash in hashes {
            self.provide(hash);
        }
    }

    /// Provide `hash` in the DHT, on a task of its own, until a provide reaches some node
    /// (or the package is gone); the DHT republishes it from then on.
    pub(super) fn provide(self: &Arc<Self>, hash: [u8; 32]) {
        let g = self.clone();
        tokio::spawn(async move {
            let mut wait = PROVIDE_RETRY;
            loop {
                let held = g.blocking(move |r| r.get(&hash).is_some()).await;
                if !matches!(held, Ok(true)) {
                    return;
                }
                let told = {
                    let Ok(_turn) = g.providing.acquire().await else {
                        return;
                    };
                    g.handle.dht_provide(Key::of_content(&hash)).await
                };
                match told {
                    Ok(o) if !o.closest.is_empty() => {
                        tracing::info!(
                            hash = %hex::encode(hash),
                            nodes = o.closest.len(),
                            "provided in the DHT"
                        );
                        g.provide_topics(hash).await;
                        return;
                    }
                    Ok(_) => tracing::debug!(
                        hash = %hex::encode(hash),
                        "no DHT node to tell yet; providing again in {wait:?}"
                    ),
                    Err(grid::Error::Stopped) => return,
                    Err(e) => tracing::debug!(
                        hash = %hex::encode(hash),
                        error = %e,
                        "could not provide in the DHT; again in {wait:?}"
                    ),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(PROVIDE_RETRY_MAX);
            }
        });
    }

    /// Provide the topic key of each of `hash`'s tags (at most [`MAX_TOPICS`]), once:
    /// the DHT republishes them. A tag another held package has is provided already and
    /// the DHT takes it again as a refresh.
    async fn provide_topics(&self, hash: [u8; 32]) {
        let tags = self
            .blocking(move |r| r.get(&hash).map(|e| e.manifest.manifest.tags.clone()))
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        for tag in tags.iter().take(MAX_TOPICS) {
            let Ok(_turn) = self.providing.acquire().await else {
                return;
            };
            match self.handle.dht_provide(Key::of_topic(tag)).await {
                Ok(o) => {
                    tracing::info!(%tag, nodes = o.closest.len(), "provided a topic in the DHT")
                }
                Err(e) => tracing::debug!(%tag, error = %e, "could not provide a topic in the DHT"),
            }
        }
    }

    /// Stop providing the removed package `e` in the DHT: its content key, and the topic
    /// keys of its tags that no package still held has.
    pub(super) async fn unprovide(&self, e: &Entry) {
        let _ = self.handle.dht_unprovide(Key::of_content(&e.hash)).await;
        let tags = e.manifest.manifest.tags.clone();
        let held: Vec<String> = self
            .blocking(|r| {
                r.list()
                    .iter()
                    .flat_map(|e| e.manifest.manifest.tags.iter().take(MAX_TOPICS).cloned())
                    .collect()
            })
            .await
            .unwrap_or_default();
        for tag in tags.iter().take(MAX_TOPICS).filter(|t| !held.contains(t)) {
            let _ = self.handle.dht_unprovide(Key::of_topic(tag)).await;
        }
    }

    /// The `grid.node` destinations of the nodes the DHT says provide `hash` (at most
    /// [`MAX_DHT_PROVIDERS`], never this node), or why the lookup failed.
    pub(super) async fn dht_providers(&self, hash: [u8; 32]) -> Result<Vec<AddressHash>, String> {
        let me = self.handle.destination();
        let o = self
            .handle
            .dht_find_providers(Key::of_content(&hash), MAX_DHT_PROVIDERS)
            .await
            .map_err(|e| e.to_string())?;
        Ok(o.providers
            .iter()
            .filter_map(|c| PublicIdentity::from_bytes(&c.public).ok())
            .map(|id| AddressHash(node_destination(&id)))
            .filter(|p| *p != me)
            .take(MAX_DHT_PROVIDERS)
            .collect())
    }
}
