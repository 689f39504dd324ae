//! The courier: a task beside the node's loop that moves bundles. Every second (and
//! whenever a bundle is queued) it expires old bundles, delivers waiting bundles to
//! destinations that have a path, hands bundles this node made to a reachable custody
//! node when the destination has none, and pulls bundles addressed to this node from
//! custody nodes (at once when one becomes reachable, then every [`PULL_EVERY`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rns_core::identity::PublicIdentity;
use rns_core::{rmpv, AddressHash};
use tokio::sync::Notify;

use super::envelope::node_destination;
use super::store::{BundleStore, StoreError};
use super::wire::{Exchange, ExchangeReply, BATCH_BYTES, BATCH_COUNT, BUNDLE_PATH};
use crate::api::NodeHandle;

/// How often bundles are pulled from a reachable custody node.
pub(crate) const PULL_EVERY: Duration = Duration::from_secs(15);
/// How long opening a link for an exchange may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one exchange may take, plus a second per [`EXCHANGE_RATE`] bytes it carries.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bytes per second an exchange is expected to move at least.
const EXCHANGE_RATE: usize = 20_000;

/// How long direct delivery to a destination rests after it failed (its path may be
/// stale); custodians carry its bundles meanwhile.
const DIRECT_BACKOFF: Duration = Duration::from_secs(30);

/// Destinations whose direct delivery failed, and when (node clock, ms).
type Backoff = Arc<Mutex<HashMap<[u8; 16], u64>>>;

/// Destinations (and custodians) with an exchange under way.
type InFlight = Arc<Mutex<HashSet<[u8; 16]>>>;

/// Marks a key busy while alive.
struct Busy(InFlight, [u8; 16]);

impl Busy {
    fn claim(set: &InFlight, key: [u8; 16]) -> Option<Busy> {
        let mut s = set.lock().ok()?;
        s.insert(key).then(|| Busy(set.clone(), key))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&self.1);
        }
    }
}

/// Run `f` on the store on a blocking thread: its writes fsync, and the node's loop
/// shares this thread.
async fn blocking<T: Send + 'static>(
    store: &Arc<BundleStore>,
    f: impl FnOnce(&BundleStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .unwrap_or_else(|e| Err(StoreError::Db(format!("store task failed: {e}"))))
}

/// Run until the node stops.
pub(crate) async fn run(handle: NodeHandle, store: Arc<BundleStore>, wake: Arc<Notify>) {
    let in_flight: InFlight = Arc::default();
    let backoff: Backoff = Arc::default();
    let mut last_pull: HashMap<AddressHash, tokio::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now_ms = crate::clock::now().as_millis();
        let wall = crate::clock::wall_ms();
        match blocking(&store, move |s| s.expire(wall)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(bundles = n, "dropped expired bundles"),
            Err(e) => tracing::warn!(error = %e, "cannot expire bundles"),
        }
        let dests: Vec<[u8; 16]> = match blocking(&store, |s| s.destinations()).await {
            Ok(d) => d.into_iter().map(|(d, _)| d).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the bundle store");
                continue;
            }
        };
        let Ok(routes) = handle.bundle_routes(dests.clone()).await else {
            return; // the node stopped
        };
        if let Ok(mut b) = backoff.lock() {
            // A destination rests after a failure, unless it announced since: then its
            // path is fresh and it is tried again at once.
            let rest = DIRECT_BACKOFF.as_millis() as u64;
            b.retain(|_, failed| now_ms.saturating_sub(*failed) < rest);
            for (dest, heard) in dests.iter().zip(&routes.heard_ms) {
                if let (Some(heard), Some(failed)) = (heard, b.get(dest)) {
                    if heard > failed {
                        b.remove(dest);
                    }
                }
            }
        }
        for (dest, reachable) in dests.iter().zip(&routes.reachable) {
            let resting = backoff.lock().is_ok_and(|b| b.contains_key(dest));
            let target = if *reachable && !resting {
                AddressHash(*dest)
            } else if let Some(c) = routes.custodians.first() {
                *c
            } else {
                continue;
            };
            let Some(busy) = Busy::claim(&in_flight, *dest) else {
                continue;
            };
            let (handle, store, dest) = (handle.clone(), store.clone(), *dest);
            let backoff = backoff.clone();
            tokio::spawn(async move {
                if let Err(e) = push(&handle, &store, target, dest).await {
                    tracing::debug!(target = %target, error = %e, "bundle delivery failed; will retry");
                    if target.0 == dest {
                        if let Ok(mut b) = backoff.lock() {
                            b.insert(dest, crate::clock::now().as_millis());
                        }
                    }
                }
                drop(busy);
            });
        }
        last_pull.retain(|c, _| routes.custodians.contains(c));
        for c in &routes.custodians {
            let due = last_pull.get(c).is_none_or(|t| t.elapsed() >= PULL_EVERY);
            if !due {
                continue;
            }
            let Some(busy) = Busy::claim(&in_flight, c.0) else {
                continue;
            };
            last_pull.insert(*c, tokio::time::Instant::now());
            let (handle, c) = (handle.clone(), *c);
            tokio::spawn(async move {
                if let Err(e) = pull(&handle, c).await {
                    tracing::debug!(custodian = %c, error = %e, "pulling bundles failed");
                }
                drop(busy);
            });
        }
    }
}

/// One exchange with `node`; a link that fails it is closed so the next try starts
/// afresh.
async fn exchange(
    handle: &NodeHandle,
    node: AddressHash,
    x: &Exchange,
) -> Result<ExchangeReply, String> {
    let link = handle
        .live_link_to(node, LINK_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = x.encode();
    let timeout = EXCHANGE_TIMEOUT + Duration::from_secs((bytes.len() / EXCHANGE_RATE) as u64);
    let answer = match handle
        .request(link, BUNDLE_PATH, rmpv::Value::Binary(bytes), timeout)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            let _ = handle.close_link(link).await;
            return Err(e.to_string());
        }
    };
    let rmpv::Value::Binary(bytes) = answer else {
        return Err("answer is not exchange bytes".into());
    };
    match ExchangeReply::decode(&bytes).map_err(|e| e.to_string())? {
        ExchangeReply::Refused(why) => Err(format!("refused: {why}")),
        r => Ok(r),
    }
}

/// Push the bundles waiting for `dest` to `target` (the destination itself, or a
/// custodian: then only bundles this node made, never ones it holds for others).
async fn push(
    handle: &NodeHandle,
    store: &Arc<BundleStore>,
    target: AddressHash,
    dest: [u8; 16],
) -> Result<(), String> {
    let direct = target.0 == dest;
    loop {
        let batch: Vec<_> = blocking(store, move |s| {
            s.for_destination(&dest, BATCH_BYTES, BATCH_COUNT)
        })
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|b| direct || !b.custody)
        .collect();
        if batch.is_empty() {
            return Ok(());
        }
        let full = batch.len() == BATCH_COUNT;
        let wire = batch.iter().map(|b| b.to_wire()).collect();
        let ExchangeReply::Pushed { accepted, refused } =
            exchange(handle, target, &Exchange::Push(wire)).await?
        else {
            return Err("unexpected answer to a push".into());
        };
        let mut done = accepted;
        for (id, why) in refused {
            if direct {
                // The destination itself refused it: it will never be taken.
                tracing::warn!(id = %hex::encode(id), reason = %why, "destination refused a bundle; dropped");
                done.push(id);
            }
        }
        if done.is_empty() {
            return Ok(());
        }
        let n = done.len();
        blocking(store, move |s| {
            if direct {
                s.remove_delivered(&done)
            } else {
                s.remove(&done)
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(to = %target, bundles = n, custodian = !direct, "handed over bundles");
        if !full {
            return Ok(());
        }
    }
}

/// Pull bundles for this node from custodian `c`, take them, and acknowledge.
async fn pull(handle: &NodeHandle, c: AddressHash) -> Result<(), String> {
    loop {
        let ExchangeReply::Pulled(list) = exchange(
            handle,
            c,
            &Exchange::Pull {
                max_bytes: BATCH_BYTES as u32,
            },
        )
        .await?
        else {
            return Err("unexpected answer to a pull".into());
        };
        if list.is_empty() {
            return Ok(());
        }
        let full = list.len() == BATCH_COUNT;
        let ids: Vec<[u8; 16]> = list.iter().map(|b| b.id).collect();
        tracing::info!(from = %c, bundles = ids.len(), "collected bundles from a custodian");
        // Taken or refused (unopenable), either way the custodian may drop them.
        handle.take_bundles(list).await.map_err(|e| e.to_string())?;
        exchange(handle, c, &Exchange::Ack(ids)).await?;
        if !full {
            return Ok(());
        }
    }
}

/// The identity behind `node`: from an announce this node heard, or from a reachable
/// custodian that heard one (checked: it must hash to `node`).
pub(crate) async fn lookup_identity(
    handle: &NodeHandle,
    node: AddressHash,
) -> Option<PublicIdentity> {
    if let Ok(Some(id)) = handle.recall_identity(node).await {
        return Some(id);
    }
    let routes = handle.bundle_routes(Vec::new()).await.ok()?;
    for c in routes.custodians {
        if let Ok(ExchangeReply::Identity(Some(bytes))) =
            exchange(handle, c, &Exchange::Identity(node.0)).await
        {
            if let Ok(id) = PublicIdentity::from_bytes(&bytes) {
                if node_destination(&id) == node.0 {
                    return Some(id);
                }
            }
        }
    }
    None
}
