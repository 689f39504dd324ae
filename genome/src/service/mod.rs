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
//! | `genome/fetch` | this node only | download a package from its providers (given, else heard peers, else the DHT), verify, store |
//!
//! Every package held (published, fetched, or there at start) is provided in the DHT
//! under its content hash; a removed one is no longer republished (see `dht`).
//!
//! Events: `genome:adapter:published`, `genome:adapter:removed`, `genome:adapter:fetched`.
//!
//! Against hostile peers:
//! - Only the node's own user fans a search out to peers ([`fans_out`]); a peer's search,
//!   identified or not, is answered from this node alone, so no one makes this node
//!   query its peers under its identity.
//! - `genome/search` from peers and package pulls are rate limited ([`SEARCH_LIMITS`],
//!   [`PACKAGE_LIMITS`]; see [`grid::proto::rate_limit`]): per caller identity, one shared bucket
//!   for unidentified callers, and node-wide. A refused search fails with
//!   [`grid::frame::ErrorCode::Failed`] and "rate limited: …, try again in N ms".
//! - A few searches compute at once ([`SEARCHES_AT_ONCE`]); the query is embedded
//!   without holding the registry's lock.
//! - Packages are served off the node's event loop, at most [`PACKAGES_AT_ONCE`] read at
//!   once, to identified callers only: an unidentified link is told to identify, and a
//!   caller the node has blocked gets no answer at all (as blocked callers get for
//!   commands). The ACL decides pulls under [`PACKAGE_COMMAND`] (provisional by default;
//!   `"genome/package" = "trusted"` in `[acl]` narrows it).
//! - A fetch tries at most [`MAX_DHT_PROVIDERS`] providers the DHT names; what any
//!   provider sends is checked against the content hash on import, so a DHT record that
//!   lies costs a failed attempt, nothing more.
//! - Results from peers are ranked by this node's own scoring, not theirs (see
//!   [`crate::rank`]).
//!
//! The commands' parts live by concept: `search` (local and mesh search, rate limits on
//! peers' searches), `packages` (serving packages to peers and fetching them) and `dht`
//! (providing packages in the DHT and finding their providers there).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grid::api::NodeHandle;
use grid::commands::{CommandCall, CommandError};
use grid::proto::rate_limit::Limiter;
use grid::state::StateDir;
use grid::trust::TrustLevel;
use rns_core::identity::Identity;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::archive::PACKAGE_PATH;
use crate::embed::Embedder;
use crate::registry::{Entry, Registry};
use crate::worker::{IdleUnload, WorkerEmbedder, IDLE_UNLOAD};
use ask::GENERATE_COMMAND;

mod ask;
mod beyond;
mod catalog;
mod dht;
mod generate;
mod packages;
mod search;

pub use dht::{MAX_DHT_PROVIDERS, PROVIDE_RETRY, PROVIDE_RETRY_MAX};
pub use generate::{Inference, STREAM_EVERY};
pub use packages::{PackageRefusal, PACKAGES_AT_ONCE, PACKAGE_COMMAND, PACKAGE_LIMITS};
pub use search::{fans_out, rate_limited, Patience, SEARCHES_AT_ONCE, SEARCH_LIMITS};

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
    /// Packages being provided in the DHT at once.
    providing: Semaphore,
    /// The model worker behind `ai/generate`, on a compute node that runs one.
    generator: Option<Arc<crate::generate::supervisor::Generator>>,
    /// Where the embedding model is looked for (`genome/info` names it).
    models: PathBuf,
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

/// Give a model's memory back when it has not been used for `idle`, checked every
/// minute, or at once when the governor evicts `key` under memory pressure.
fn unload_when_idle(
    handle: &NodeHandle,
    key: &'static str,
    idle: Duration,
    unload: impl Fn(Duration) -> bool + Clone + Send + Sync + 'static,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut evictions = handle.governor().evictions();
    tokio::spawn(async move {
        loop {
            let after = tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => idle,
                k = evictions.recv() => match k {
                    Ok(k) if k == key => Duration::ZERO,
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
            };
            let u = unload.clone();
            let _ = tokio::task::spawn_blocking(move || u(after)).await;
        }
    });
}

/// Where the embedding model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelHost {
    /// In this process, loaded on first use (tests, programs embedding the library).
    InProcess,
    /// In a worker process: `program worker embed --models DIR`, started on first use
    /// ([`crate::worker`]). What `grid node` uses: a crash or an out-of-memory in model
    /// code then never takes the node down, and an idle node holds no model memory.
    Worker {
        /// The `grid` binary.
        program: std::path::PathBuf,
    },
}

/// The embedder for the state directory's models (started when first used), or why not.
/// A worker asks `governor` before it starts and is registered with it while it runs.
pub fn load_embedder(
    state: &StateDir,
    host: &ModelHost,
    governor: &grid::governor::GovernorHandle,
) -> Option<Arc<dyn IdleUnload>> {
    let dir = crate::embed::models_dir(state.root());
    match host {
        ModelHost::Worker { program } => match crate::embed::check_minilm(&dir) {
            Ok(_) => Some(Arc::new(
                WorkerEmbedder::new(
                    program.clone(),
                    vec![
                        "worker".into(),
                        "embed".into(),
                        "--models".into(),
                        dir.display().to_string(),
                    ],
                )
                .with_governor(governor.clone()),
            )),
            Err(e) => {
                tracing::warn!("semantic skill search is off (keyword matching only): {e}");
                None
            }
        },
        ModelHost::InProcess => in_process(&dir),
    }
}

#[cfg(feature = "embed")]
fn in_process(dir: &std::path::Path) -> Option<Arc<dyn IdleUnload>> {
    match crate::lazy::LazyMiniLm::new(dir) {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            tracing::warn!("semantic skill search is off (keyword matching only): {e}");
            None
        }
    }
}

/// Without the `embed` feature there is no model in this process: keyword matching only.
#[cfg(not(feature = "embed"))]
fn in_process(_dir: &std::path::Path) -> Option<Arc<dyn IdleUnload>> {
    tracing::warn!("built without the `embed` feature: skill search matches keywords only");
    None
}

/// Start the genome on a node: open the registry (embedding what needs it), register the
/// commands and the package path (and `ai/generate` when `inference` says how to run a
/// model), and announce how many adapters the node holds. Logs and gives up if the
/// registry cannot be opened.
pub async fn run(
    handle: NodeHandle,
    state: StateDir,
    host: ModelHost,
    inference: Option<Inference>,
) {
    match Genome::start_full(handle, &state, host, inference).await {
        Ok(g) => {
            let adapters = g.blocking(|r| r.len()).await.unwrap_or(0);
            tracing::info!(adapters, "genome ready")
        }
        Err(e) => tracing::error!("genome: {e}"),
    }
}

impl Genome {
    /// Open the registry and register everything on the node, with the model in this
    /// process.
    pub async fn start(handle: NodeHandle, state: &StateDir) -> Result<Arc<Genome>, String> {
        Self::start_with(handle, state, ModelHost::InProcess).await
    }

    /// Open the registry and register everything on the node, with the model where
    /// `host` says.
    pub async fn start_with(
        handle: NodeHandle,
        state: &StateDir,
        host: ModelHost,
    ) -> Result<Arc<Genome>, String> {
        Self::start_full(handle, state, host, None).await
    }

    /// [`Genome::start_with`], and `ai/generate` run by `inference`'s worker if given.
    pub async fn start_full(
        handle: NodeHandle,
        state: &StateDir,
        host: ModelHost,
        inference: Option<Inference>,
    ) -> Result<Arc<Genome>, String> {
        let identity = state.load_or_create_identity().map_err(|e| e.to_string())?;
        let st = state.clone();
        let root = state.root().join("genome");
        let r = root.clone();
        let lazy = load_embedder(&st, &host, handle.governor());
        let embedder = lazy.clone().map(|e| e as Arc<dyn Embedder>);
        let e = embedder.clone();
        let registry = tokio::task::spawn_blocking(move || Registry::open(&r, e))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if let Some(model) = lazy {
            let unload = move |idle| model.unload_idle(idle);
            unload_when_idle(&handle, crate::worker::GOVERNOR_KEY, IDLE_UNLOAD, unload);
        }
        let generator = inference.map(|i| Arc::new(i.generator(handle.governor())));
        if let Some(g) = &generator {
            let g = g.clone();
            let unload = move |idle| g.unload_idle(idle);
            let key = crate::generate::supervisor::GOVERNOR_KEY;
            unload_when_idle(
                &handle,
                key,
                crate::generate::supervisor::IDLE_UNLOAD,
                unload,
            );
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
            providing: Semaphore::new(dht::PROVIDES_AT_ONCE),
            generator,
            models: crate::embed::models_dir(st.root()),
        });
        let _ = std::fs::remove_dir_all(&g.incoming);
        g.register().await.map_err(|e| e.to_string())?;
        g.announce_count().await;
        g.provide_all().await;
        g.keep_listed();
        Ok(g)
    }

    /// The registry (for tests and tools in the same process).
    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        self.registry.clone()
    }

    async fn register(self: &Arc<Self>) -> Result<(), grid::Error> {
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
            "genome/info",
            "whether skill search here is by meaning or by keywords, and why",
            info
        );
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
        command!(
            "genome/ask",
            "find the skill a need describes, place the job on a capable node, run it",
            ask
        );
        if self.generator.is_some() {
            h.default_rule(GENERATE_COMMAND, TrustLevel::Trusted)
                .await?;
            command!(
                GENERATE_COMMAND,
                "generate text with this node's model, an adapter applied if asked; tokens stream as progress",
                generate
            );
        }
        let g = self.clone();
        h.register_async_handler(PACKAGE_PATH, move |req| {
            let g = g.clone();
            async move { g.serve_package(req).await }
        })
        .await?;
        Ok(())
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

    /// All adapters, or those `selector` names (content hash or prefix, name, name@version).
    /// `genome/info`: how this node searches skills and, when by keywords only, why and
    /// how to fix it.
    async fn info(self: Arc<Self>, _call: CommandCall) -> Result<Value, CommandError> {
        let models = self.models.display().to_string();
        Ok(
            match (&self.embedder, crate::embed::check_minilm(&self.models)) {
                (Some(_), _) => json!({"semantic_search": true, "models": models}),
                (None, Err(e)) => json!({"semantic_search": false, "models": models,
                                     "why": e.to_string(),
                                     "fix": format!("grid models fetch (or python3 tools/models_fetch.py {models}), then restart the node")}),
                (None, Ok(_)) => json!({"semantic_search": false, "models": models,
                                    "why": "the model is there but this build or node does not load it",
                                    "fix": "restart the node with a default build of grid"}),
            },
        )
    }

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
        self.provide(entry.hash);
        self.list_in_catalog(entry.hash).await;
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
        for e in &gone {
            self.unprovide(e).await;
            self.withdraw_from_catalog(e).await;
        }
        let list: Vec<Value> = gone.iter().map(Entry::to_json).collect();
        for v in &list {
            let _ = self.handle.emit("genome:adapter:removed", v.clone()).await;
        }
        self.announce_count().await;
        Ok(Value::Array(list))
    }
}
