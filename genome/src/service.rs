//! The genome on a running node: the registry behind the `genome/*` commands, the
//! `genome/package` path other nodes fetch packages from, mesh search and fetch.
//!
//! | command | who may call (default rule) | does |
//! |---|---|---|
//! | `genome/search` | provisional | search here; for the node's own user, with `patience` quick or thorough, also ask the peers that announce adapters, in parallel, and merge |
//! | `genome/list` | provisional | the adapters here (optionally those a `selector` names) |
//! | `genome/get` | provisional | one adapter's signed manifest |
//! | `genome/publish` | this node only | check, sign, store and index a package directory |
//! | `genome/remove` | this node only | remove adapters |
//! | `genome/fetch` | this node only | download a package from its providers, verify, store |
//!
//! Events: `genome:adapter:published`, `genome:adapter:removed`, `genome:adapter:fetched`.
//!
//! Against hostile peers:
//! - Only the node's own user fans a search out to peers ([`fans_out`]); a peer's search,
//!   identified or not, is answered from this node alone, so no one makes this node
//!   query its peers under its identity.
//! - `genome/search` from peers and package pulls are rate limited ([`SEARCH_LIMITS`],
//!   [`PACKAGE_LIMITS`]; see [`crate::limits`]): per caller identity, one shared bucket
//!   for unidentified callers, and node-wide. A refused search fails with
//!   [`grid::frame::ErrorCode::Failed`] and "rate limited: …, try again in N ms".
//! - A few searches compute at once ([`SEARCHES_AT_ONCE`]); the query is embedded
//!   without holding the registry's lock.
//! - Packages are served off the node's event loop, at most [`PACKAGES_AT_ONCE`] read at
//!   once, to identified callers only: an unidentified link is told to identify, and a
//!   caller the node has blocked gets no answer at all (as blocked callers get for
//!   commands). The ACL decides pulls under [`PACKAGE_COMMAND`] (provisional by default;
//!   `"genome/package" = "trusted"` in `[acl]` narrows it).
//! - Results from peers are ranked by this node's own scoring, not theirs (see
//!   [`crate::rank`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grid::api::{NodeHandle, Request};
use grid::commands::{CommandCall, CommandError};
use grid::state::StateDir;
use grid::trust::TrustLevel;
use rns_core::identity::Identity;
use rns_core::{rmpv, AddressHash};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::archive::{Archive, PACKAGE_PATH};
use crate::embed::Embedder;
use crate::manifest::SignedManifest;
use crate::rank::Scorer;
use crate::registry::{Entry, Registry};
use grid::proto::rate_limit::{Limiter, Limits, Rate, RateLimited};

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

/// Rate limits on `genome/search` from peers (the node's own user is not limited): ten
/// at once then two a second per caller, four then one a second for all unidentified
/// callers together, thirty then ten a second for the node.
pub const SEARCH_LIMITS: Limits = Limits {
    caller: Rate::new(10, Duration::from_millis(500)),
    anonymous: Rate::new(4, Duration::from_secs(1)),
    node: Rate::new(30, Duration::from_millis(100)),
};
/// Rate limits on package pulls: four at once then one every 15 s per caller, eight
/// then one every 5 s for the node (unidentified callers get none).
pub const PACKAGE_LIMITS: Limits = Limits {
    caller: Rate::new(4, Duration::from_secs(15)),
    anonymous: Rate::new(0, Duration::from_secs(1)),
    node: Rate::new(8, Duration::from_secs(5)),
};
/// Searches embedding or scanning at once (others wait their turn).
pub const SEARCHES_AT_ONCE: usize = 2;
/// Packages read from disk for peers at once (others are refused as busy).
pub const PACKAGES_AT_ONCE: usize = 2;
/// The name the ACL decides package pulls under (not a command one can run).
pub const PACKAGE_COMMAND: &str = "genome/package";
/// How a package refusal asking the caller to identify begins.
const IDENTIFY_FIRST: &str = "identify on the link first";

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

/// Why a package was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageRefusal {
    /// The caller did not identify on the link.
    #[error("{IDENTIFY_FIRST}: packages are served to identified callers only")]
    Anonymous,
    /// The node blocked the caller (it gets no answer at all).
    #[error("blocked")]
    Blocked,
    /// The ACL does not let the caller pull packages.
    #[error("{0}")]
    Denied(String),
    /// Too many pulls.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// Enough packages are being read already.
    #[error(
        "busy: {PACKAGES_AT_ONCE} packages are being read already, try again in a few seconds"
    )]
    Busy,
    /// The request is not a content hash.
    #[error("a package request is a 32-byte content hash")]
    Malformed,
    /// No such package here.
    #[error("no adapter {0} here")]
    NotHere(String),
    /// The node could not read or check it.
    #[error("cannot serve it: {0}")]
    Failed(String),
}

/// The genome service of a node.
pub struct Genome {
    registry: Arc<Mutex<Registry>>,
    /// The registry's embedder, used outside the registry's lock.
    embedder: Option<Arc<dyn Embedder>>,
    identity: Identity,
    handle: NodeHandle,
    incoming: PathBuf,
    searches: Mutex<Limiter>,
    pulls: Mutex<Limiter>,
    searching: Arc<Semaphore>,
    reading: Arc<Semaphore>,
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
        Ok(g) => {
            let adapters = g.blocking(|r| r.len()).await.unwrap_or(0);
            tracing::info!(adapters, "genome ready")
        }
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
        let e = embedder.clone();
        let registry = tokio::task::spawn_blocking(move || Registry::open(&r, e))
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
        let now = grid::clock::now();
        let g = Arc::new(Genome {
            registry: Arc::new(Mutex::new(registry)),
            embedder,
            identity,
            handle: handle.clone(),
            incoming: root.join("incoming"),
            searches: Mutex::new(Limiter::new("genome/search", SEARCH_LIMITS, now)),
            pulls: Mutex::new(Limiter::new("genome/package", PACKAGE_LIMITS, now)),
            searching: Arc::new(Semaphore::new(SEARCHES_AT_ONCE)),
            reading: Arc::new(Semaphore::new(PACKAGES_AT_ONCE)),
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
        for c in [
            "genome/search",
            "genome/list",
            "genome/get",
            PACKAGE_COMMAND,
        ] {
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
        let g = self.clone();
        h.register_async_handler(PACKAGE_PATH, move |req| {
            let g = g.clone();
            async move { g.serve_package(req).await }
        })
        .await?;
        Ok(())
    }

    /// Answer a package request (on its own task, off the node's loop): the archive, a
    /// refusal in words, or nothing for a blocked caller.
    async fn serve_package(&self, req: Request) -> Option<rmpv::Value> {
        let caller = req.remote_identity;
        match self.package(req).await {
            Ok(bytes) => Some(rmpv::Value::Binary(bytes)),
            Err(PackageRefusal::Blocked) => None,
            Err(e) => {
                tracing::debug!(caller = ?caller, "package not served: {e}");
                Some(rmpv::Value::String(e.to_string().into()))
            }
        }
    }

    async fn package(&self, req: Request) -> Result<Vec<u8>, PackageRefusal> {
        let caller = req.remote_identity.ok_or(PackageRefusal::Anonymous)?;
        if caller != self.handle.identity() {
            match self.handle.authorize(caller, PACKAGE_COMMAND).await {
                Ok(Ok(_)) => {}
                Ok(Err(grid::acl::Denied::Blocked { .. })) => return Err(PackageRefusal::Blocked),
                Ok(Err(d)) => return Err(PackageRefusal::Denied(d.to_string())),
                Err(e) => return Err(PackageRefusal::Failed(e.to_string())),
            }
            self.pulls
                .lock()
                .map_err(|_| PackageRefusal::Failed("limiter lock poisoned".into()))?
                .admit(Some(caller), grid::clock::now())?;
        }
        let rmpv::Value::Binary(b) = &req.data else {
            return Err(PackageRefusal::Malformed);
        };
        let hash: [u8; 32] = b
            .as_slice()
            .try_into()
            .map_err(|_| PackageRefusal::Malformed)?;
        let permit = self
            .reading
            .clone()
            .try_acquire_owned()
            .map_err(|_| PackageRefusal::Busy)?;
        let reg = self.registry.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let entry = reg
                .lock()
                .map_err(|_| PackageRefusal::Failed("registry lock poisoned".into()))?
                .get(&hash)
                .cloned()
                .ok_or_else(|| PackageRefusal::NotHere(hex::encode(hash)))?;
            match Archive::read(&entry) {
                Ok(a) => Ok(a.encode()),
                Err(e) => {
                    tracing::warn!(hash = %entry.hash_hex(), error = %e, "cannot serve a package");
                    Err(PackageRefusal::Failed(e.to_string()))
                }
            }
        })
        .await
        .map_err(|e| PackageRefusal::Failed(e.to_string()))?
    }

    /// Tell peers how many adapters this node holds (they only ask nodes with some).
    async fn announce_count(&self) {
        let n = self.blocking(|r| r.len()).await.unwrap_or(0);
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
        let budget = match (fans_out(call.caller, own), patience.budget()) {
            (true, Some(budget)) => budget,
            _ => return Ok(Value::Array(local)),
        };
        let params = json!({"query": query, "limit": limit, "min_score": min_score,
                            "patience": "immediate", "keyword_weight": keyword_weight});
        let answers = self.ask_peers("genome/search", &params, budget).await;
        let embedder = self.embedder.clone();
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
        .map(Value::Array)
        .map_err(failed)
    }

    /// The query's vector, if a model is loaded; computed with no lock on the registry,
    /// [`SEARCHES_AT_ONCE`] at a time.
    async fn embed_query(&self, query: &str) -> Result<Option<Vec<f32>>, CommandError> {
        let Some(e) = self.embedder.clone() else {
            return Ok(None);
        };
        let _turn = self.searching.acquire().await.map_err(failed)?;
        let q = query.to_string();
        tokio::task::spawn_blocking(move || e.embed_one(&q))
            .await
            .map_err(failed)?
            .map(Some)
            .map_err(|e| failed(format!("embedding: {e}")))
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
        let ask = || {
            self.handle.request(
                link,
                PACKAGE_PATH,
                rmpv::Value::Binary(hash.to_vec()),
                FETCH_TIMEOUT,
            )
        };
        let mut answer = ask().await;
        if matches!(&answer, Ok(rmpv::Value::String(s)) if s.as_str().is_some_and(|s| s.starts_with(IDENTIFY_FIRST)))
        {
            // A link this node opened earlier without identifying: identify and ask again.
            if self.handle.identify(link).await.is_ok() {
                answer = ask().await;
            }
        }
        watch.abort();
        let bytes = match answer.map_err(|e| e.to_string())? {
            rmpv::Value::Binary(bytes) => bytes,
            rmpv::Value::String(refusal) => {
                let text: String = refusal
                    .as_str()
                    .unwrap_or("refused")
                    .chars()
                    .take(300)
                    .collect();
                return Err(format!("the provider refused: {text}"));
            }
            _ => return Err("the provider does not have it".into()),
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

    #[test]
    fn package_refusals_say_what_to_do() {
        assert!(PackageRefusal::Anonymous
            .to_string()
            .starts_with(IDENTIFY_FIRST));
        let t = grid::clock::now();
        let mut limited = Limiter::new("genome/package", PACKAGE_LIMITS, t);
        let caller = Some(AddressHash([3; 16]));
        for _ in 0..PACKAGE_LIMITS.caller.burst {
            limited.admit(caller, t).unwrap();
        }
        let e = PackageRefusal::from(limited.admit(caller, t).unwrap_err());
        let text = e.to_string();
        assert!(
            text.starts_with("rate limited: genome/package") && text.contains("try again in"),
            "{text}"
        );
        // Unidentified callers never get a package, whatever the limiter is asked.
        assert!(limited.admit(None, t + Duration::from_secs(3600)).is_err());
    }
}
