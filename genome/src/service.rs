//! The genome on a running node: the registry behind the `genome/*` commands, the
//! `genome/package` path other nodes fetch packages from, mesh search and fetch.
//!
//! | command | who may call (default rule) | does |
//! |---|---|---|
//! | `genome/search` | provisional | search here; with `patience` quick or thorough also ask the peers that announce adapters, in parallel, and merge |
//! | `genome/list` | provisional | the adapters here (optionally those a `selector` names) |
//! | `genome/get` | provisional | one adapter's signed manifest |
//! | `genome/publish` | this node only | check, sign, store and index a package directory |
//! | `genome/remove` | this node only | remove adapters |
//! | `genome/fetch` | this node only | download a package from its providers, verify, store |
//!
//! Events: `genome:adapter:published`, `genome:adapter:removed`, `genome:adapter:fetched`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grid::api::NodeHandle;
use grid::commands::{CommandCall, CommandError};
use grid::state::StateDir;
use grid::trust::TrustLevel;
use rns_core::identity::Identity;
use rns_core::{rmpv, AddressHash};
use serde_json::{json, Value};

use crate::archive::{Archive, PACKAGE_PATH};
use crate::embed::Embedder;
use crate::manifest::SignedManifest;
use crate::registry::{Entry, Registry};

/// How long a mesh search waits for peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// This node only.
    Immediate,
    /// Peers get 2 s.
    Quick,
    /// Peers get 8 s.
    Thorough,
}

impl Patience {
    fn parse(s: &str) -> Result<Patience, CommandError> {
        Ok(match s {
            "immediate" => Patience::Immediate,
            "quick" | "" => Patience::Quick,
            "thorough" => Patience::Thorough,
            other => {
                return Err(CommandError::bad_params(format!(
                    "patience \"{other}\": immediate, quick or thorough"
                )))
            }
        })
    }

    fn budget(self) -> Option<Duration> {
        match self {
            Patience::Immediate => None,
            Patience::Quick => Some(Duration::from_secs(2)),
            Patience::Thorough => Some(Duration::from_secs(8)),
        }
    }
}

/// Most peers one mesh search asks.
const MAX_PEERS_ASKED: usize = 16;
/// How long fetching one package from one provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// The genome service of a node.
pub struct Genome {
    registry: Arc<Mutex<Registry>>,
    identity: Identity,
    handle: NodeHandle,
    incoming: PathBuf,
}

impl std::fmt::Debug for Genome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Genome").finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::failed(e.to_string())
}

fn param_str<'a>(call: &'a CommandCall, key: &str) -> Result<&'a str, CommandError> {
    call.params
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| CommandError::bad_params(format!("missing \"{key}\"")))
}

fn parse_hash(s: &str) -> Result<[u8; 32], CommandError> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut h).map_err(|_| {
        CommandError::bad_params(format!("\"{s}\" is not a content hash (64 hex digits)"))
    })?;
    Ok(h)
}

/// The embedder for the state directory's models (loaded when first used), or why not.
#[cfg(feature = "embed")]
pub fn load_embedder(state: &StateDir) -> Option<Arc<crate::lazy::LazyMiniLm>> {
    {
        let dir = crate::embed::models_dir(state.root());
        match crate::lazy::LazyMiniLm::new(&dir) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::warn!("semantic skill search is off (keyword matching only): {e}");
                None
            }
        }
    }
}

/// Without the `embed` feature there is no model: keyword matching only.
#[cfg(not(feature = "embed"))]
pub fn load_embedder(_state: &StateDir) -> Option<Arc<dyn Embedder>> {
    tracing::warn!("built without the `embed` feature: skill search matches keywords only");
    None
}

/// Start the genome on a node: open the registry (embedding what needs it), register the
/// commands and the package path, and announce how many adapters the node holds. Logs
/// and gives up if the registry cannot be opened.
pub async fn run(handle: NodeHandle, state: StateDir) {
    match Genome::start(handle, &state).await {
        Ok(g) => tracing::info!(
            adapters = g.registry.lock().map(|r| r.len()).unwrap_or(0),
            "genome ready"
        ),
        Err(e) => tracing::error!("genome: {e}"),
    }
}

impl Genome {
    /// Open the registry and register everything on the node.
    pub async fn start(handle: NodeHandle, state: &StateDir) -> Result<Arc<Genome>, String> {
        let identity = state.load_or_create_identity().map_err(|e| e.to_string())?;
        let st = state.clone();
        let root = state.root().join("genome");
        let r = root.clone();
        let lazy = load_embedder(&st);
        let embedder = lazy.clone().map(|e| e as Arc<dyn Embedder>);
        let registry = tokio::task::spawn_blocking(move || Registry::open(&r, embedder))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        #[cfg(feature = "embed")]
        if let Some(model) = lazy {
            // Give the model's memory back when skill search is not in use.
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    let m = model.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        m.unload_idle(crate::lazy::IDLE_UNLOAD)
                    })
                    .await;
                }
            });
        }
        let g = Arc::new(Genome {
            registry: Arc::new(Mutex::new(registry)),
            identity,
            handle: handle.clone(),
            incoming: root.join("incoming"),
        });
        let _ = std::fs::remove_dir_all(&g.incoming);
        g.register().await.map_err(|e| e.to_string())?;
        g.announce_count().await;
        Ok(g)
    }

    /// The registry (for tests and tools in the same process).
    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        self.registry.clone()
    }

    async fn register(self: &Arc<Self>) -> Result<(), grid::api::ApiError> {
        let h = &self.handle;
        for c in ["genome/search", "genome/list", "genome/get"] {
            h.default_rule(c, TrustLevel::Provisional).await?;
        }
        macro_rules! command {
            ($name:expr, $desc:expr, $method:ident) => {{
                let g = self.clone();
                h.register_command($name, $desc, move |call| {
                    let g = g.clone();
                    async move { g.$method(call).await }
                })
                .await?;
            }};
        }
        command!(
            "genome/search",
            "find adapters (skills) by what they do, here and on peers",
            search
        );
        command!("genome/list", "the adapters this node holds", list);
        command!(
            "genome/get",
            "one adapter's signed manifest, by content hash",
            get
        );
        command!(
            "genome/publish",
            "check, sign and store an adapter package directory",
            publish
        );
        command!(
            "genome/remove",
            "remove adapters (content hash, name or name@version)",
            remove
        );
        command!(
            "genome/fetch",
            "download an adapter from the nodes that hold it, verified",
            fetch
        );
        let reg = self.registry.clone();
        h.register_handler(PACKAGE_PATH, move |req| {
            let rmpv::Value::Binary(b) = &req.data else {
                return None;
            };
            let hash: [u8; 32] = b.as_slice().try_into().ok()?;
            let entry = reg.lock().ok()?.get(&hash).cloned()?;
            match Archive::read(&entry) {
                Ok(a) => Some(rmpv::Value::Binary(a.encode())),
                Err(e) => {
                    tracing::warn!(hash = %entry.hash_hex(), error = %e, "cannot serve a package");
                    None
                }
            }
        })
        .await?;
        Ok(())
    }

    /// Tell peers how many adapters this node holds (they only ask nodes with some).
    async fn announce_count(&self) {
        let n = self.registry.lock().map(|r| r.len()).unwrap_or(0);
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        let _ = self
            .handle
            .update_capabilities(move |c| c.adapters = n)
            .await;
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Registry) -> T + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, CommandError>> {
        let reg = self.registry.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut r = reg.lock().map_err(|_| failed("registry lock poisoned"))?;
                Ok(f(&mut r))
            })
            .await
            .map_err(failed)?
        }
    }

    async fn search(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
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
        // Only the node's own user fans out; peers asking us get local answers.
        let mesh = call.caller.is_none_or(|c| c == self.handle.identity());
        let me = self.handle.destination().to_string();
        let keyword_weight = call
            .params
            .get("keyword_weight")
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as f32;
        let q = query.clone();
        let local = self
            .blocking(move |r| r.search_hybrid(&q, limit, min_score, keyword_weight))
            .await?
            .map_err(failed)?;
        let mut merged: BTreeMap<String, Value> = BTreeMap::new();
        for f in local {
            let mut v = f.entry.to_json();
            v["score"] = json!(f.score);
            v["providers"] = json!([me]);
            merged.insert(f.entry.hash_hex(), v);
        }
        if let (true, Some(budget)) = (mesh, patience.budget()) {
            let params = json!({"query": query, "limit": limit, "min_score": min_score,
                                "patience": "immediate", "keyword_weight": keyword_weight});
            for (peer, answer) in self.ask_peers("genome/search", &params, budget).await {
                for item in answer.as_array().into_iter().flatten() {
                    let Some(hash) = item["content_hash"].as_str() else {
                        continue;
                    };
                    let entry = merged.entry(hash.to_string()).or_insert_with(|| {
                        let mut v = item.clone();
                        v["providers"] = json!([]);
                        v
                    });
                    if item["score"].as_f64() > entry["score"].as_f64() {
                        entry["score"] = item["score"].clone();
                    }
                    if let Some(p) = entry["providers"].as_array_mut() {
                        p.push(json!(peer.to_string()));
                    }
                }
            }
        }
        let mut out: Vec<Value> = merged.into_values().collect();
        out.sort_by(|a, b| {
            b["score"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&a["score"].as_f64().unwrap_or(0.0))
        });
        out.truncate(limit);
        Ok(Value::Array(out))
    }

    /// Ask the peers that announce adapters, in parallel, within `budget`; the answers
    /// that came.
    async fn ask_peers(
        &self,
        command: &str,
        params: &Value,
        budget: Duration,
    ) -> Vec<(AddressHash, Value)> {
        let me = self.handle.destination();
        let peers: Vec<AddressHash> = self
            .handle
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.node != me && p.capabilities.adapters > 0)
            .take(MAX_PEERS_ASKED)
            .map(|p| p.node)
            .collect();
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

    /// All adapters, or those `selector` names (content hash or prefix, name, name@version).
    async fn list(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let selector = call
            .params
            .get("selector")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.blocking(move |r| {
            let found = match &selector {
                Some(s) => r.find(s),
                None => r.list(),
            };
            Value::Array(found.into_iter().map(Entry::to_json).collect())
        })
        .await
    }

    async fn get(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let hash = parse_hash(param_str(&call, "content_hash")?)?;
        let e = self.blocking(move |r| r.get(&hash).cloned()).await?;
        let e = e.ok_or_else(|| failed(format!("no adapter {} here", hex::encode(hash))))?;
        let manifest: Value = serde_json::from_slice(&e.manifest.to_json()).map_err(failed)?;
        Ok(json!({"adapter": e.to_json(), "manifest": manifest}))
    }

    async fn publish(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let dir = PathBuf::from(param_str(&call, "dir")?);
        let identity = self.identity.clone();
        let started = std::time::Instant::now();
        let entry = self
            .blocking(move |r| r.publish(&dir, &identity, grid::clock::wall_ms()))
            .await?
            .map_err(|e| CommandError::bad_params(e.to_string()))?;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        let v = entry.to_json();
        let _ = self
            .handle
            .emit("genome:adapter:published", v.clone())
            .await;
        self.announce_count().await;
        let mut out = v;
        out["took_ms"] = json!(took_ms);
        Ok(out)
    }

    async fn remove(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let selector = param_str(&call, "selector")?.to_string();
        let gone = self
            .blocking(move |r| r.remove(&selector))
            .await?
            .map_err(failed)?;
        let list: Vec<Value> = gone.iter().map(Entry::to_json).collect();
        for v in &list {
            let _ = self.handle.emit("genome:adapter:removed", v.clone()).await;
        }
        self.announce_count().await;
        Ok(Value::Array(list))
    }

    async fn fetch(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
        let hash = parse_hash(param_str(&call, "content_hash")?)?;
        if let Some(e) = self.blocking(move |r| r.get(&hash).cloned()).await? {
            let mut v = e.to_json();
            v["already_here"] = json!(true);
            return Ok(v);
        }
        let mut providers: Vec<AddressHash> = Vec::new();
        for p in call
            .params
            .get("from")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let p = p.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                CommandError::bad_params(format!("\"from\": {p} is not a node hash"))
            })?;
            providers.push(p);
        }
        if providers.is_empty() {
            let params = json!({"content_hash": hex::encode(hash)});
            providers = self
                .ask_peers("genome/get", &params, Duration::from_secs(5))
                .await
                .into_iter()
                .map(|(p, _)| p)
                .collect();
        }
        if providers.is_empty() {
            return Err(failed(format!(
                "no reachable node offers {} (try --from <node>)",
                hex::encode(hash)
            )));
        }
        let mut errors = Vec::new();
        for (i, p) in providers.iter().enumerate() {
            call.progress.report(
                Some(0.0),
                json!({"provider": p.to_string(), "attempt": i + 1, "of": providers.len()}),
            );
            match self.fetch_from(*p, hash, &call).await {
                Ok(e) => {
                    let mut v = e.to_json();
                    v["provider"] = json!(p.to_string());
                    let _ = self.handle.emit("genome:adapter:fetched", v.clone()).await;
                    self.announce_count().await;
                    return Ok(v);
                }
                Err(e) => {
                    tracing::warn!(provider = %p, error = %e, "fetch failed; trying the next provider");
                    errors.push(format!("{p}: {e}"));
                }
            }
        }
        Err(failed(format!(
            "every provider failed: {}",
            errors.join("; ")
        )))
    }

    /// Download from one provider into a scratch directory, verify, import; the scratch
    /// directory is gone afterwards whatever happened.
    async fn fetch_from(
        &self,
        p: AddressHash,
        hash: [u8; 32],
        call: &CommandCall,
    ) -> Result<Entry, String> {
        let link = self
            .handle
            .link_to(p, Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        let mut events = self.handle.subscribe();
        let progress = call.progress.clone();
        let watch = tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if let grid::api::NodeEvent::ResourceProgress {
                    link: l,
                    sending: false,
                    parts_done,
                    parts_total,
                } = ev
                {
                    if l == link && parts_total > 0 {
                        progress.report(
                            Some(parts_done as f32 / parts_total as f32),
                            json!({"parts": parts_done, "of": parts_total}),
                        );
                    }
                }
            }
        });
        let answer = self
            .handle
            .request(
                link,
                PACKAGE_PATH,
                rmpv::Value::Binary(hash.to_vec()),
                FETCH_TIMEOUT,
            )
            .await;
        watch.abort();
        let rmpv::Value::Binary(bytes) = answer.map_err(|e| e.to_string())? else {
            return Err("the provider does not have it".into());
        };
        let archive = Archive::decode(&bytes).map_err(|e| e.to_string())?;
        let manifest = SignedManifest::from_json(&archive.manifest).map_err(|e| e.to_string())?;
        let got = manifest.verify().map_err(|e| e.to_string())?;
        if got != hash {
            return Err(format!("sent {} instead", hex::encode(got)));
        }
        let scratch = self.incoming.join(hex::encode(rand_id()));
        let reg = self.registry.clone();
        let dir = scratch.clone();
        let result = tokio::task::spawn_blocking(move || {
            archive.write_files(&dir).map_err(|e| e.to_string())?;
            let mut r = reg
                .lock()
                .map_err(|_| "registry lock poisoned".to_string())?;
            r.import(manifest, &dir).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}

fn rand_id() -> [u8; 8] {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b
}
