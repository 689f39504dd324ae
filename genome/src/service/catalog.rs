//! Adapters in the catalog: every package this node holds is published as a signed
//! catalog entry (its name, a line of its description, its content hash and the sign-bit
//! sketch of its embedding), so catalog gossip carries it to the nodes around; a removed
//! package is withdrawn with a tombstone. Packages are also offered to flood searches
//! from other nodes ([`flood_item`]). Searches read the catalog ([`candidates`]) as
//! one more source, scored here like a peer's answer, never on the publisher's word.
//!
//! Entries live at most 7 days; they are published again every [`REPUBLISH`] while the
//! node runs, with a higher sequence number, so they never lapse.

use std::sync::Arc;
use std::time::Duration;

use grid::proto::flood::sketch::{Item, Sketch, MAX_TOPIC};
use grid::proto::gossip::entry::{Body, Entry as CatalogEntry, Record, MAX_NAME, MAX_SUMMARY};
use sha2::{Digest as _, Sha256};

use super::Genome;
use crate::registry::Entry;

/// How long a published entry is valid.
pub const ENTRY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often every held package is published again.
pub const REPUBLISH: Duration = Duration::from_secs(24 * 3600);
/// Catalog entries a search scores at most (the closest by sketch, or by keywords).
pub const MAX_CANDIDATES: usize = 32;

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The catalog record of `e` (`vector`: its name-and-description embedding, if any).
pub fn record_of(e: &Entry, vector: Option<&[f32]>, now_ms: u64, tombstone: bool) -> Record {
    let m = &e.manifest.manifest;
    let (sketch, vector_hash) = match vector {
        Some(v) => {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let mut h = [0u8; 16];
            h.copy_from_slice(&Sha256::digest(&bytes)[..16]);
            (Sketch::from_embedding(v), h)
        }
        None => (Sketch([0; 48]), [0; 16]),
    };
    Record {
        seq: now_ms,
        expires_ms: now_ms + ENTRY_LIFETIME.as_millis() as u64,
        tombstone,
        name: cut(&format!("{}@{}", m.name, m.version), MAX_NAME),
        summary: cut(&m.description, MAX_SUMMARY),
        body: Body::Adapter {
            content_hash: e.hash,
            sketch,
            vector_hash,
        },
    }
}

/// This node's (`own`) live adapter entries in `entries` for packages not in `held`.
pub fn stale<'a>(
    entries: &'a [CatalogEntry],
    own: &[u8; 64],
    held: &[[u8; 32]],
) -> Vec<&'a CatalogEntry> {
    entries
        .iter()
        .filter(|e| e.publisher() == own && !e.is_tombstone())
        .filter(|e| match e.record().body {
            Body::Adapter { content_hash, .. } => !held.contains(&content_hash),
            _ => false,
        })
        .collect()
}

/// The tombstone that withdraws `record` (same kind and name, a higher `seq`).
pub fn tombstone_of(record: &Record, now_ms: u64) -> Record {
    Record {
        seq: now_ms.max(record.seq + 1),
        expires_ms: now_ms + ENTRY_LIFETIME.as_millis() as u64,
        tombstone: true,
        ..record.clone()
    }
}

/// The id a package is offered to flood searches under: the first 16 bytes of its
/// content hash.
pub fn flood_item_id(hash: &[u8; 32]) -> [u8; 16] {
    let mut id = [0; 16];
    id.copy_from_slice(&hash[..16]);
    id
}

/// What flood searches match `e` against: the sketch of its embedding `vector`, and its
/// first tag as its topic (packages without a model-made vector are not offered: a
/// sketch of nothing would match at random).
pub fn flood_item(e: &Entry, vector: &[f32]) -> Item {
    let topic = e
        .manifest
        .manifest
        .tags
        .first()
        .filter(|t| t.len() <= MAX_TOPIC)
        .cloned();
    Item {
        id: flood_item_id(&e.hash),
        sketch: Sketch::from_embedding(vector),
        topic,
    }
}

/// The adapter entries of `entries` most worth scoring for a query: by sketch agreement
/// with `query` when there is one, else by words of `text` in their name and summary;
/// at most [`MAX_CANDIDATES`], those from `own` (this node's, searched locally) left out.
pub fn candidates<'a>(
    entries: &'a [CatalogEntry],
    query: Option<&[f32]>,
    text: &str,
    own: &[u8; 64],
) -> Vec<&'a CatalogEntry> {
    let sketch = query.map(Sketch::from_embedding);
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect();
    let mut scored: Vec<(u32, &CatalogEntry)> = entries
        .iter()
        .filter(|e| e.publisher() != own && !e.is_tombstone())
        .filter_map(|e| {
            let Body::Adapter { sketch: s, .. } = e.record().body else {
                return None;
            };
            let score = match &sketch {
                Some(q) => u32::from(q.agreement(&s)),
                None => {
                    let r = e.record();
                    let hay = format!("{} {}", r.name, r.summary).to_lowercase();
                    words.iter().filter(|w| hay.contains(w.as_str())).count() as u32
                }
            };
            (sketch.is_some() || score > 0).then_some((score, e))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.digest().cmp(b.1.digest())));
    scored
        .into_iter()
        .take(MAX_CANDIDATES)
        .map(|(_, e)| e)
        .collect()
}

impl Genome {
    /// Publish `hash`'s package (if still held) as this node's catalog entry.
    pub(super) async fn list_in_catalog(&self, hash: [u8; 32]) {
        let found = self
            .blocking(move |r| r.get(&hash).cloned().map(|e| (e, r.head_vector(&hash))))
            .await;
        let Ok(Some((entry, vector))) = found else {
            return;
        };
        if let Some(item) = vector.as_deref().map(|v| flood_item(&entry, v)) {
            if let Err(e) = self.handle.search_offer(item).await {
                tracing::debug!(hash = %entry.hash_hex(), error = %e, "could not offer to flood searches");
            }
        }
        let record = record_of(&entry, vector.as_deref(), grid::clock::wall_ms(), false);
        if let Err(e) = self.handle.catalog_publish(record).await {
            tracing::debug!(hash = %entry.hash_hex(), error = %e, "could not publish a catalog entry");
        }
    }

    /// Withdraw a removed package's catalog entry.
    pub(super) async fn withdraw_from_catalog(&self, e: &Entry) {
        let _ = self.handle.search_withdraw(flood_item_id(&e.hash)).await;
        let record = record_of(e, None, grid::clock::wall_ms(), true);
        if let Err(err) = self.handle.catalog_publish(record).await {
            tracing::debug!(hash = %e.hash_hex(), error = %err, "could not withdraw a catalog entry");
        }
    }

    /// Withdraw this node's adapter entries for packages it no longer holds (removed
    /// while the node was down: the catalog is kept across restarts).
    async fn withdraw_stale(&self, held: &[[u8; 32]]) {
        let own = *self.identity.public().as_bytes();
        let entries = self.handle.catalog().await.unwrap_or_default();
        for e in stale(&entries, &own, held) {
            let record = tombstone_of(e.record(), grid::clock::wall_ms());
            if let Err(err) = self.handle.catalog_publish(record).await {
                tracing::debug!(name = %e.record().name, error = %err, "could not withdraw a stale catalog entry");
            }
        }
    }

    /// Publish every held package now and again every [`REPUBLISH`]; withdraw, once at
    /// start, the entries of packages no longer held.
    pub(super) fn keep_listed(self: &Arc<Self>) {
        let g = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let hashes = g
                    .blocking(|r| r.list().iter().map(|e| e.hash).collect::<Vec<_>>())
                    .await
                    .unwrap_or_default();
                if std::mem::take(&mut first) {
                    g.withdraw_stale(&hashes).await;
                }
                for hash in hashes {
                    g.list_in_catalog(hash).await;
                }
                tokio::time::sleep(REPUBLISH).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_entries_for_packages_not_held_are_stale_and_withdrawn_by_a_newer_tombstone() {
        use grid::proto::gossip::entry::Entry as CatalogEntry;
        use rns_core::identity::Identity;
        let me = Identity::generate(&mut rand_core::OsRng);
        let other = Identity::generate(&mut rand_core::OsRng);
        let record = |hash: u8| Record {
            seq: 5,
            expires_ms: u64::MAX / 2,
            tombstone: false,
            name: format!("a{hash}@1.0.0"),
            summary: String::new(),
            body: Body::Adapter {
                content_hash: [hash; 32],
                sketch: Sketch([0; 48]),
                vector_hash: [0; 16],
            },
        };
        let entries = vec![
            CatalogEntry::sign(&me, record(1)).unwrap(),
            CatalogEntry::sign(&me, record(2)).unwrap(),
            CatalogEntry::sign(&other, record(3)).unwrap(),
        ];
        let own = *me.public().as_bytes();
        let stale: Vec<&str> = stale(&entries, &own, &[[1; 32]])
            .iter()
            .map(|e| e.record().name.as_str())
            .collect();
        assert_eq!(
            stale,
            vec!["a2@1.0.0"],
            "held (1) and others' (3) are not stale"
        );
        let t = tombstone_of(&record(2), 3);
        assert!(t.tombstone && t.seq > 5 && t.name == "a2@1.0.0", "{t:?}");
        assert!(CatalogEntry::sign(&me, t).is_ok());
    }

    #[test]
    fn names_and_summaries_are_cut_on_character_boundaries() {
        let s = "ééééé"; // two bytes each
        assert_eq!(cut(s, 5), "éé");
        assert_eq!(cut(s, 64), s);
        assert_eq!(cut("", 3), "");
    }
}
