//! The adapter registry of one node: packages in content-addressed directories, their
//! signed manifests, and the vector index that makes them searchable.
//!
//! Layout under the node's state directory:
//!
//! ```text
//! genome/packages/<content hash>/   adapter.toml, adapter_config.json,
//!                                   adapter_model.safetensors, manifest.json (signed)
//! genome/index/                     the vector index (embedder id inside)
//! ```
//!
//! The package directories are the truth; the index is derived from them and rebuilt
//! (re-embedded) when it is missing, corrupt, out of step, or from another embedder. A
//! package enters by being written to a temporary directory beside the others, synced,
//! and renamed into place, so a crash never leaves half a package under its hash;
//! temporary directories left by a crash are removed when the registry opens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rns_core::identity::Identity;

use crate::embed::Embedder;
use crate::index::{Key, VectorIndex};
use crate::manifest::{ManifestError, SignedManifest};
use crate::package::{AdapterPackage, PackageError, ADAPTER_CONFIG, ADAPTER_TOML, ADAPTER_WEIGHTS};

/// The signed manifest's file name inside a package directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Prefix of directories being written (never a content hash).
const TMP_PREFIX: &str = ".tmp-";
/// An embedder id used when no embedder is available (keyword search only).
const NO_EMBEDDER: &str = "none";

/// Why the registry refused something.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The package is not valid.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The manifest does not verify.
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// A package with this name and version is here already.
    #[error("{name} {version} is already published here (content hash {hash}); bump the version")]
    Exists {
        /// Name.
        name: String,
        /// Version.
        version: String,
        /// The existing package's content hash.
        hash: String,
    },
    /// Nothing matches the selector.
    #[error("no adapter here matches \"{0}\"")]
    NotFound(String),
    /// More than one adapter matches a selector that must name one.
    #[error("\"{0}\" matches several adapters; give the content hash or name@version")]
    Ambiguous(String),
    /// Filesystem trouble.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// Embedding failed.
    #[error("embedding: {0}")]
    Embed(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |e| RegistryError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One adapter in the registry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its content hash.
    pub hash: [u8; 32],
    /// The signed manifest.
    pub manifest: SignedManifest,
    /// Where its files are.
    pub dir: PathBuf,
}

impl Entry {
    /// The content hash in hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// The texts embedded for it, slot by slot: the description (with its name and
    /// tags), then each example question.
    pub fn texts(&self) -> Vec<String> {
        let m = &self.manifest.manifest;
        let mut t = vec![format!(
            "{}. {} {}",
            m.name.replace('-', " "),
            m.description,
            m.tags.join(", ")
        )];
        t.extend(m.examples.iter().cloned());
        t
    }

    /// A summary for listings and search results.
    pub fn to_json(&self) -> serde_json::Value {
        let m = &self.manifest.manifest;
        serde_json::json!({
            "name": m.name, "version": m.version, "description": m.description,
            "tags": m.tags, "license": m.license, "base_model": m.base_model,
            "rank": m.rank, "size": m.weights_size, "content_hash": self.hash_hex(),
            "publisher": m.publisher, "published_ms": m.published_ms,
        })
    }
}

/// An adapter found by a search, with its score (0–1; cosine similarity, or keyword
/// overlap when no embedder is available).
#[derive(Debug, Clone)]
pub struct Found {
    /// The adapter.
    pub entry: Entry,
    /// How well it matches.
    pub score: f32,
}

/// The registry.
pub struct Registry {
    root: PathBuf,
    entries: BTreeMap<[u8; 32], Entry>,
    index: VectorIndex,
    embedder: Option<Arc<dyn Embedder>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("root", &self.root)
            .field("adapters", &self.entries.len())
            .field("vectors", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Open (or create) the registry under `root` (`<state dir>/genome`). Packages that
    /// do not verify are skipped with a warning; the index is loaded, or rebuilt when it
    /// does not match the packages or the embedder.
    pub fn open(
        root: &Path,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Result<Registry, RegistryError> {
        let packages = root.join("packages");
        std::fs::create_dir_all(&packages).map_err(io(&packages))?;
        let mut entries = BTreeMap::new();
        for item in std::fs::read_dir(&packages).map_err(io(&packages))? {
            let item = item.map_err(io(&packages))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let path = item.path();
            if name.starts_with(TMP_PREFIX) {
                // Left by a crash while a package was being written.
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            match read_entry(&path) {
                Ok(e) if e.hash_hex() == name => {
                    entries.insert(e.hash, e);
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "package directory not named by its content hash; skipped")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "package does not verify; skipped")
                }
            }
        }
        let id = embedder
            .as_ref()
            .map_or(NO_EMBEDDER.to_string(), |e| e.id().to_string());
        let index_dir = root.join("index");
        let slots: usize = entries.values().map(|e: &Entry| e.texts().len()).sum();
        let index = match VectorIndex::load(&index_dir, &id) {
            Ok(i) if i.len() == slots => Some(i),
            Ok(_) => {
                tracing::info!("the vector index is out of step with the packages; re-embedding");
                None
            }
            Err(e) => {
                if index_dir.exists() {
                    tracing::info!(error = %e, "re-embedding the adapters");
                }
                None
            }
        };
        let rebuild = index.is_none();
        let mut reg = Registry {
            root: root.to_path_buf(),
            entries,
            index: index.unwrap_or_else(|| VectorIndex::new(&id)),
            embedder,
        };
        if rebuild && reg.embedder.is_some() {
            let all: Vec<Entry> = reg.entries.values().cloned().collect();
            for e in &all {
                reg.embed_entry(e)?;
            }
            reg.save_index();
        }
        Ok(reg)
    }

    /// Whether semantic search is available (an embedder is loaded).
    pub fn semantic(&self) -> bool {
        self.embedder.is_some()
    }

    /// The adapters here, by name then version.
    pub fn list(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.values().collect();
        v.sort_by(|a, b| {
            let (a, b) = (&a.manifest.manifest, &b.manifest.manifest);
            a.name.cmp(&b.name).then_with(|| {
                match (
                    semver::Version::parse(&a.version),
                    semver::Version::parse(&b.version),
                ) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.version.cmp(&b.version),
                }
            })
        });
        v
    }

    /// How many adapters are here.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The adapter with this content hash.
    pub fn get(&self, hash: &[u8; 32]) -> Option<&Entry> {
        self.entries.get(hash)
    }

    /// Adapters matching `selector`: a content hash (or a prefix of at least 8 hex
    /// digits), a name (every version), or `name@version`.
    pub fn find(&self, selector: &str) -> Vec<&Entry> {
        let s = selector.trim().to_ascii_lowercase();
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (s.clone(), None),
        };
        self.list()
            .into_iter()
            .filter(|e| {
                let m = &e.manifest.manifest;
                (s.len() >= 8
                    && s.chars().all(|c| c.is_ascii_hexdigit())
                    && e.hash_hex().starts_with(&s))
                    || (m.name == name && version.as_ref().is_none_or(|v| *v == m.version))
            })
            .collect()
    }

    /// Check, sign, store and index the package in `dir`.
    pub fn publish(
        &mut self,
        dir: &Path,
        identity: &Identity,
        now_ms: u64,
    ) -> Result<Entry, RegistryError> {
        let pkg = AdapterPackage::load(dir)?;
        if let Some(e) = self.entries.values().find(|e| {
            e.manifest.manifest.name == pkg.toml.name
                && e.manifest.manifest.version == pkg.toml.version
        }) {
            return Err(RegistryError::Exists {
                name: pkg.toml.name.clone(),
                version: pkg.toml.version.clone(),
                hash: e.hash_hex(),
            });
        }
        let manifest = crate::manifest::Manifest::from_package(&pkg, identity.public(), now_ms)?;
        let signed = SignedManifest::sign(manifest, identity);
        self.store(signed, dir)
    }

    /// Store a package fetched from another node: its manifest must verify and its files
    /// (in `dir`) match it. Already here: the existing entry.
    pub fn import(&mut self, manifest: SignedManifest, dir: &Path) -> Result<Entry, RegistryError> {
        let hash = manifest.verify()?;
        if let Some(e) = self.entries.get(&hash) {
            return Ok(e.clone());
        }
        manifest.verify_files(dir)?;
        AdapterPackage::load(dir)?;
        self.store(manifest, dir)
    }

    /// Copy a verified package into place atomically, then index it.
    fn store(&mut self, manifest: SignedManifest, from: &Path) -> Result<Entry, RegistryError> {
        let hash = manifest.verify()?;
        let packages = self.root.join("packages");
        let final_dir = packages.join(hex::encode(hash));
        let tmp = packages.join(format!("{TMP_PREFIX}{}", hex::encode(rand_bytes())));
        let result = (|| -> Result<(), RegistryError> {
            std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
            for f in [ADAPTER_TOML, ADAPTER_CONFIG, ADAPTER_WEIGHTS] {
                let (src, dst) = (from.join(f), tmp.join(f));
                std::fs::copy(&src, &dst).map_err(io(&src))?;
                sync(&dst)?;
            }
            let mpath = tmp.join(MANIFEST_FILE);
            std::fs::write(&mpath, manifest.to_json()).map_err(io(&mpath))?;
            sync(&mpath)?;
            // The copy must still be what was signed (the source could change under us).
            manifest.verify_files(&tmp)?;
            std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
            if let Ok(d) = std::fs::File::open(&packages) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let entry = Entry {
            hash,
            manifest,
            dir: final_dir,
        };
        self.entries.insert(hash, entry.clone());
        if self.embedder.is_some() {
            self.embed_entry(&entry)?;
            self.save_index();
        }
        Ok(entry)
    }

    /// Remove the adapter(s) `selector` names (all versions for a bare name).
    pub fn remove(&mut self, selector: &str) -> Result<Vec<Entry>, RegistryError> {
        let gone: Vec<Entry> = self.find(selector).into_iter().cloned().collect();
        if gone.is_empty() {
            return Err(RegistryError::NotFound(selector.to_string()));
        }
        for e in &gone {
            // Rename first so a crash mid-delete leaves a temp dir, cleaned at open.
            let trash = self
                .root
                .join("packages")
                .join(format!("{TMP_PREFIX}{}", hex::encode(rand_bytes())));
            std::fs::rename(&e.dir, &trash).map_err(io(&e.dir))?;
            let _ = std::fs::remove_dir_all(&trash);
            self.entries.remove(&e.hash);
            self.index.remove_item(&e.hash);
        }
        self.save_index();
        Ok(gone)
    }

    /// The best adapters for `text`, at most `limit`, scoring at least `min_score`
    /// (semantic similarity; see [`Registry::search_hybrid`] for a keyword boost).
    pub fn search(
        &self,
        text: &str,
        limit: usize,
        min_score: f32,
    ) -> Result<Vec<Found>, RegistryError> {
        self.search_hybrid(text, limit, min_score, 0.0)
    }

    /// Hybrid scoring: `(1 − keyword_weight) × cosine + keyword_weight × keyword overlap`
    /// (the share of the query's content words the adapter's texts contain), over the
    /// best semantic candidates. Without an embedder, keyword overlap alone.
    pub fn search_hybrid(
        &self,
        text: &str,
        limit: usize,
        min_score: f32,
        keyword_weight: f32,
    ) -> Result<Vec<Found>, RegistryError> {
        let q = match &self.embedder {
            Some(e) => Some(
                e.embed_one(text)
                    .map_err(|e| RegistryError::Embed(e.to_string()))?,
            ),
            None => None,
        };
        Ok(self.search_embedded(text, q.as_deref(), limit, min_score, keyword_weight))
    }

    /// [`Registry::search_hybrid`] with the query already embedded (by this registry's
    /// embedder, [`Registry::embedder`]), so a caller can embed without holding the
    /// registry. Without a query vector, or without an embedder, keyword overlap alone.
    pub fn search_embedded(
        &self,
        text: &str,
        query: Option<&[f32]>,
        limit: usize,
        min_score: f32,
        keyword_weight: f32,
    ) -> Vec<Found> {
        let w = keyword_weight.clamp(0.0, 1.0);
        let keywords = |e: &Entry| crate::keywords::overlap(text, &e.texts().join(" "));
        let mut scored: Vec<([u8; 32], f32)> = match (&self.embedder, query) {
            (Some(_), Some(q)) => {
                // Widen the candidate set when keywords may reorder it.
                let k = if w > 0.0 { (limit * 4).max(20) } else { limit };
                self.index
                    .search_items(q, k, if w > 0.0 { -1.0 } else { min_score })
                    .into_iter()
                    .map(|(h, s)| {
                        let kw = self.entries.get(&h).map_or(0.0, keywords);
                        (h, (1.0 - w) * s + w * kw)
                    })
                    .collect()
            }
            _ => self
                .entries
                .values()
                .map(|e| (e.hash, keywords(e)))
                .filter(|(_, s)| *s > 0.0)
                .collect(),
        };
        scored.retain(|(_, s)| *s >= min_score);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(limit);
        scored
            .into_iter()
            .filter_map(|(h, score)| {
                self.entries.get(&h).map(|e| Found {
                    entry: e.clone(),
                    score,
                })
            })
            .collect()
    }

    /// The vector of the adapter's first text (its name and description), if the index
    /// holds one.
    pub fn head_vector(&self, hash: &[u8; 32]) -> Option<Vec<f32>> {
        let key = crate::index::Key {
            item: *hash,
            slot: 0,
        };
        self.index.vector(&key).map(<[f32]>::to_vec)
    }

    /// The embedder whose vectors the index holds, if any.
    pub fn embedder(&self) -> Option<Arc<dyn Embedder>> {
        self.embedder.clone()
    }

    fn embed_entry(&mut self, e: &Entry) -> Result<(), RegistryError> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(());
        };
        let texts = e.texts();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder
            .embed(&refs)
            .map_err(|x| RegistryError::Embed(x.to_string()))?;
        self.index.remove_item(&e.hash);
        for (slot, v) in vectors.iter().enumerate() {
            self.index
                .insert(
                    Key {
                        item: e.hash,
                        slot: slot as u16,
                    },
                    v,
                )
                .map_err(|x| RegistryError::Embed(x.to_string()))?;
        }
        Ok(())
    }

    fn save_index(&self) {
        let dir = self.root.join("index");
        if let Err(e) = self.index.save(&dir) {
            tracing::warn!(error = %e, "cannot save the vector index; it will be rebuilt at the next start");
        }
    }
}

/// Read and verify a package directory's manifest.
fn read_entry(dir: &Path) -> Result<Entry, RegistryError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let manifest = SignedManifest::from_json(&bytes)?;
    let hash = manifest.verify()?;
    Ok(Entry {
        hash,
        manifest,
        dir: dir.to_path_buf(),
    })
}

fn sync(path: &Path) -> Result<(), RegistryError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

fn rand_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::embed::{EmbedError, DIM};
    use crate::package::write_test_package;
    use grid_test_support::TempDir;

    /// Words hashed into dimensions: enough to tell texts apart without the model.
    pub(crate) struct Words(pub(crate) &'static str);

    impl Embedder for Words {
        fn id(&self) -> &str {
            self.0
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0f32; DIM];
                    for w in crate::keywords::words(t) {
                        let h = w
                            .bytes()
                            .fold(7usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
                        v[h % DIM] += 1.0;
                    }
                    v[DIM - 1] += 0.01;
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter().map(|x| x / n).collect()
                })
                .collect())
        }
    }

    fn tmp(tag: &str) -> TempDir {
        TempDir::new(&format!("registry-{tag}"))
    }

    fn pkg(root: &Path, name: &str, version: &str, description: &str) -> PathBuf {
        let d = root.join("src").join(format!("{name}-{version}"));
        write_test_package(&d, name, version, description, &["an example"], 4, 16, 1).unwrap();
        d
    }

    #[test]
    fn publish_find_search_remove_and_reopen() {
        let t = tmp("basic");
        let id = Identity::generate(&mut rand_core::OsRng);
        let emb: Arc<dyn Embedder> = Arc::new(Words("words/v1"));
        let mut r = Registry::open(&t.0.join("genome"), Some(emb.clone())).unwrap();
        let geo = r
            .publish(
                &pkg(
                    &t.0,
                    "geometry-tutor",
                    "1.0.0",
                    "triangle proofs and congruence",
                ),
                &id,
                1,
            )
            .unwrap();
        r.publish(
            &pkg(
                &t.0,
                "geometry-tutor",
                "1.1.0",
                "triangle proofs, now with circles",
            ),
            &id,
            2,
        )
        .unwrap();
        r.publish(
            &pkg(
                &t.0,
                "bike-repair",
                "1.0.0",
                "fix bicycle brakes and chains",
            ),
            &id,
            3,
        )
        .unwrap();
        assert!(matches!(
            r.publish(&pkg(&t.0, "bike-repair", "1.0.0", "other"), &id, 4),
            Err(RegistryError::Exists { .. })
        ));
        assert_eq!(r.len(), 3);
        assert_eq!(r.find("geometry-tutor").len(), 2, "versions coexist");
        assert_eq!(r.find("geometry-tutor@1.1.0").len(), 1);
        assert_eq!(r.find(&geo.hash_hex()[..10]).len(), 1);
        let found = r.search("bicycle chains", 2, 0.0).unwrap();
        assert_eq!(found[0].entry.manifest.manifest.name, "bike-repair");
        // Reopening keeps everything (index loaded, not rebuilt).
        drop(r);
        let mut r = Registry::open(&t.0.join("genome"), Some(emb)).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r.search("bicycle chains", 1, 0.0).unwrap()[0]
                .entry
                .manifest
                .manifest
                .name,
            "bike-repair"
        );
        let gone = r.remove("geometry-tutor").unwrap();
        assert_eq!(gone.len(), 2);
        assert!(matches!(
            r.remove("geometry-tutor"),
            Err(RegistryError::NotFound(_))
        ));
        assert_eq!(
            std::fs::read_dir(t.0.join("genome/packages"))
                .unwrap()
                .count(),
            1
        );
        // Another embedder: re-embedded, still searchable; no embedder: keywords.
        let r = Registry::open(&t.0.join("genome"), Some(Arc::new(Words("words/v2")))).unwrap();
        assert_eq!(r.search("bicycle", 1, 0.0).unwrap().len(), 1);
        let r = Registry::open(&t.0.join("genome"), None).unwrap();
        assert!(!r.semantic());
        assert_eq!(
            r.search("bicycle brakes", 5, 0.0).unwrap()[0]
                .entry
                .manifest
                .manifest
                .name,
            "bike-repair"
        );
    }

    #[test]
    fn imports_verify_signature_and_files_and_leave_nothing_behind() {
        let t = tmp("import");
        let (a, b) = (
            Identity::generate(&mut rand_core::OsRng),
            Identity::generate(&mut rand_core::OsRng),
        );
        let mut src = Registry::open(&t.0.join("src-genome"), None).unwrap();
        let e = src
            .publish(
                &pkg(&t.0, "water-cycle", "1.0.0", "rain and evaporation"),
                &a,
                1,
            )
            .unwrap();
        let mut dst = Registry::open(&t.0.join("dst-genome"), None).unwrap();
        // A forged signature: the manifest re-signed by someone else but still naming A.
        let mut forged = SignedManifest::sign(e.manifest.manifest.clone(), &b);
        forged.manifest.publisher = e.manifest.manifest.publisher.clone();
        assert!(dst.import(forged, &e.dir).is_err());
        // Changed weights.
        let bad = t.0.join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        for f in [ADAPTER_TOML, ADAPTER_CONFIG, ADAPTER_WEIGHTS] {
            std::fs::copy(e.dir.join(f), bad.join(f)).unwrap();
        }
        let mut w = std::fs::read(bad.join(ADAPTER_WEIGHTS)).unwrap();
        let n = w.len() - 1;
        w[n] ^= 1;
        std::fs::write(bad.join(ADAPTER_WEIGHTS), w).unwrap();
        assert!(matches!(
            dst.import(e.manifest.clone(), &bad),
            Err(RegistryError::Manifest(_))
        ));
        assert_eq!(dst.len(), 0);
        assert_eq!(
            std::fs::read_dir(t.0.join("dst-genome/packages"))
                .unwrap()
                .count(),
            0
        );
        // The real thing is taken, under its hash.
        let got = dst.import(e.manifest.clone(), &e.dir).unwrap();
        assert_eq!(got.hash, e.hash);
        assert!(t
            .0
            .join("dst-genome/packages")
            .join(e.hash_hex())
            .join(MANIFEST_FILE)
            .is_file());
        // A crash mid-write leaves a temp dir: removed at the next open.
        std::fs::create_dir_all(t.0.join("dst-genome/packages/.tmp-dead")).unwrap();
        let dst = Registry::open(&t.0.join("dst-genome"), None).unwrap();
        assert_eq!(dst.len(), 1);
        assert!(!t.0.join("dst-genome/packages/.tmp-dead").exists());
    }
}
