//! Packages between nodes: serving `genome/package` to identified, authorized callers
//! (rate limited, a few read at once, off the node's loop), and `genome/fetch`, which finds
//! providers, downloads, verifies and imports.

use std::sync::Arc;
use std::time::Duration;

use grid::api::Request;
use grid::commands::{CommandCall, CommandError};
use grid::governor::{Job, JobKind, Priority};
use grid::proto::rate_limit::{Limits, Rate, RateLimited};
use rns_core::{rmpv, AddressHash};
use serde_json::{json, Value};

use super::{failed, param_str, parse_hash, Genome};
use crate::archive::{Archive, PACKAGE_PATH};
use crate::manifest::SignedManifest;
use crate::registry::Entry;

/// How long fetching one package from one provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// The memory one fetch is planned at: the archive as received and its files decoded
/// from it, each at most [`crate::archive::MAX_ARCHIVE`].
pub const FETCH_RAM: u64 = 2 * crate::archive::MAX_ARCHIVE as u64;

/// Rate limits on package pulls: four at once then one every 15 s per caller, eight
/// then one every 5 s for the node (unidentified callers get none).
pub const PACKAGE_LIMITS: Limits = Limits {
    caller: Rate::new(4, Duration::from_secs(15)),
    anonymous: Rate::new(0, Duration::from_secs(1)),
    node: Rate::new(8, Duration::from_secs(5)),
};
/// Packages read from disk for peers at once (others are refused as busy).
pub const PACKAGES_AT_ONCE: usize = 2;
/// The name the ACL decides package pulls under (not a command one can run).
pub const PACKAGE_COMMAND: &str = "genome/package";
/// How a package refusal asking the caller to identify begins.
const IDENTIFY_FIRST: &str = "identify on the link first";
/// Providers whose links are opened at once before a fetch: a provider that stopped
/// answering then costs nothing while another is up (one tried alone would cost its
/// whole link timeout first).
const OPEN_AT_ONCE: usize = 4;
/// How long a fetch waits for a preferred provider's link once a later one is up.
const PATIENCE: Duration = Duration::from_secs(2);
/// How long opening a link to a provider may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(20);

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

impl Genome {
    /// Answer a package request (on its own task, off the node's loop): the archive, a
    /// refusal in words, or nothing for a blocked caller.
    pub(super) async fn serve_package(&self, req: Request) -> Option<rmpv::Value> {
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

    pub(super) async fn package(&self, req: Request) -> Result<Vec<u8>, PackageRefusal> {
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

    pub(super) async fn fetch(self: Arc<Self>, call: CommandCall) -> Result<Value, CommandError> {
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
        let via = Via::from_param(call.params.get("via"))?;
        // A fetch holds the archive and its decoded files in memory: ask first.
        let _grant = self.handle.governor().admit(Job::new(
            JobKind::Fetch,
            &format!("fetch {}", hex::encode(&hash[..8])),
            Priority::Interactive,
            FETCH_RAM,
        ))?;
        let (providers, found_by) = if !providers.is_empty() {
            (providers, "given")
        } else {
            self.find_providers(hash, via, &call).await?
        };
        let (providers, mut errors) = self.by_readiness(&providers, &call).await;
        for (i, p) in providers.iter().enumerate() {
            call.progress.report(
                Some(0.0),
                json!({"provider": p.to_string(), "attempt": i + 1, "of": providers.len()}),
            );
            match self.fetch_from(*p, hash, &call).await {
                Ok(e) => {
                    let mut v = e.to_json();
                    v["provider"] = json!(p.to_string());
                    v["found_by"] = json!(found_by);
                    let _ = self.handle.emit("genome:adapter:fetched", v.clone()).await;
                    self.announce_count().await;
                    self.provide(hash);
                    self.list_in_catalog(hash).await;
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

    /// `providers` reordered by whether they answer: the links to the first
    /// [`OPEN_AT_ONCE`] are opened together; the given order is kept among those that
    /// came up, and a provider still silent [`PATIENCE`] after a later one came up goes
    /// behind it (a dead provider then costs that, not its whole link timeout). The rest
    /// follow in the given order. Those whose link failed are left out, with why.
    async fn by_readiness(
        &self,
        providers: &[AddressHash],
        call: &CommandCall,
    ) -> (Vec<AddressHash>, Vec<String>) {
        let split = providers.len().min(OPEN_AT_ONCE);
        let (first, rest) = providers.split_at(split);
        if first.len() > 1 {
            call.progress.report(
                None,
                json!({"stage": "opening links", "providers": first.len()}),
            );
        }
        let mut opening = tokio::task::JoinSet::new();
        for p in first {
            let (handle, p) = (self.handle.clone(), *p);
            opening.spawn(async move { (p, handle.live_link_to(p, LINK_TIMEOUT).await) });
        }
        let (mut up, mut failed, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let mut patience: Option<tokio::time::Instant> = None;
        loop {
            match first.iter().find(|p| !failed.contains(*p)) {
                Some(best) if up.contains(best) => break,
                None => break,
                Some(_) => {}
            }
            let deadline = patience.unwrap_or_else(|| tokio::time::Instant::now() + LINK_TIMEOUT);
            let done = tokio::select! {
                d = opening.join_next() => d,
                () = tokio::time::sleep_until(deadline) => break,
            };
            match done {
                None => break,
                Some(Ok((p, Ok(_)))) => {
                    up.push(p);
                    patience.get_or_insert(tokio::time::Instant::now() + PATIENCE);
                }
                Some(Ok((p, Err(e)))) => {
                    tracing::warn!(provider = %p, error = %e, "no link to a provider");
                    errors.push(format!("{p}: {e}"));
                    failed.push(p);
                }
                Some(Err(e)) => errors.push(format!("a link attempt failed: {e}")),
            }
        }
        let mut order: Vec<AddressHash> =
            first.iter().filter(|p| up.contains(*p)).copied().collect();
        order.extend(
            first
                .iter()
                .chain(rest)
                .filter(|p| !up.contains(*p) && !failed.contains(*p)),
        );
        (order, errors)
    }

    /// Who offers `hash` when no provider was given: the heard peers that answer
    /// `genome/get` for it, else (or with `via` dht only) the providers the DHT names;
    /// with how they were found. Fails naming the places searched when none is found.
    async fn find_providers(
        &self,
        hash: [u8; 32],
        via: Via,
        call: &CommandCall,
    ) -> Result<(Vec<AddressHash>, &'static str), CommandError> {
        let mut searched = Vec::new();
        if via != Via::Dht {
            call.progress
                .report(None, json!({"stage": "asking heard peers"}));
            let params = json!({"content_hash": hex::encode(hash)});
            let peers: Vec<AddressHash> = self
                .ask_peers("genome/get", &params, Duration::from_secs(5))
                .await
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            if !peers.is_empty() {
                return Ok((peers, "peers"));
            }
            searched.push("no heard peer has it".to_string());
        }
        if via != Via::Peers {
            call.progress
                .report(None, json!({"stage": "looking up in the DHT"}));
            match self.dht_providers(hash).await {
                Ok(p) if !p.is_empty() => return Ok((p, "dht")),
                Ok(_) => searched.push("the DHT names no provider".to_string()),
                Err(e) => searched.push(format!("the DHT lookup failed ({e})")),
            }
        }
        Err(failed(format!(
            "no reachable node offers {}: {} (try --from <node>)",
            hex::encode(hash),
            searched.join(", ")
        )))
    }

    /// Download from one provider into a scratch directory, verify, import; the scratch
    /// directory is gone afterwards whatever happened.
    pub(super) async fn fetch_from(
        &self,
        p: AddressHash,
        hash: [u8; 32],
        call: &CommandCall,
    ) -> Result<Entry, String> {
        let link = self
            .handle
            .link_to(p, LINK_TIMEOUT)
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

/// Where a fetch without given providers looks for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Heard peers, then the DHT.
    Both,
    /// Heard peers only.
    Peers,
    /// The DHT only.
    Dht,
}

impl Via {
    /// The `via` param: absent (or null), `"peers"` or `"dht"`.
    fn from_param(v: Option<&Value>) -> Result<Via, CommandError> {
        match v {
            None | Some(Value::Null) => Ok(Via::Both),
            Some(v) => match v.as_str() {
                Some("peers") => Ok(Via::Peers),
                Some("dht") => Ok(Via::Dht),
                _ => Err(CommandError::bad_params(format!(
                    "\"via\": {v} is not \"peers\" or \"dht\""
                ))),
            },
        }
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
    use grid::proto::rate_limit::Limiter;

    #[test]
    fn via_is_peers_dht_or_both() {
        assert_eq!(Via::from_param(None).unwrap(), Via::Both);
        assert_eq!(Via::from_param(Some(&Value::Null)).unwrap(), Via::Both);
        assert_eq!(Via::from_param(Some(&json!("peers"))).unwrap(), Via::Peers);
        assert_eq!(Via::from_param(Some(&json!("dht"))).unwrap(), Via::Dht);
        for bad in [json!("flood"), json!(1), json!(["dht"])] {
            let e = Via::from_param(Some(&bad)).unwrap_err();
            assert!(e.to_string().contains("\"via\""), "{e}");
        }
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
