//! The courier: a task beside the node's loop that moves bundles. Every second (and
//! whenever a bundle is queued) it expires old bundles, delivers waiting bundles to
//! destinations that have a path, hands bundles this node made to a reachable custody
//! node when the destination has none, and pulls bundles addressed to this node from
//! custody nodes (at once when one becomes reachable, then every fifteen seconds). What
//! goes where is decided by [`crate::proto::courier`]; this task does the exchanges.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rns_core::identity::PublicIdentity;
use rns_core::{rmpv, AddressHash};
use tokio::sync::Notify;

use super::envelope::node_destination;
use super::store::{BundleStore, StoreError};
use super::wire::{Exchange, ExchangeReply, BATCH_BYTES, BATCH_COUNT, BUNDLE_PATH};
use crate::api::NodeHandle;
use crate::proto::courier::{Courier, Job};

/// How long opening a link for an exchange may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one exchange may take, plus a second per [`EXCHANGE_RATE`] bytes it carries.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bytes per second an exchange is expected to move at least.
const EXCHANGE_RATE: usize = 20_000;

/// The planner, shared with the exchanges it started.
type Planner = Arc<Mutex<Courier>>;

/// A job under way: tells the planner how it ended when dropped (as failed, unless
/// marked done, so a task that panics frees its destination too).
struct Running {
    planner: Planner,
    job: Job,
    ok: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut p) = self.planner.lock() {
            p.done(crate::clock::now().as_millis(), &self.job, self.ok);
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

/// Run until the node stops: each round, expire old bundles, ask the node what it knows
/// of the destinations waiting, and run the jobs the planner ([`Courier`]) gives.
pub(crate) async fn run(handle: NodeHandle, store: Arc<BundleStore>, wake: Arc<Notify>) {
    let planner: Planner = Arc::default();
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
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
        let now_ms = crate::clock::now().as_millis();
        let jobs = match planner.lock() {
            Ok(mut p) => p.plan(now_ms, &dests, &routes),
            Err(_) => return,
        };
        for job in jobs {
            let running = Running {
                planner: planner.clone(),
                job,
                ok: false,
            };
            let (handle, store) = (handle.clone(), store.clone());
            tokio::spawn(async move {
                // Moved whole into the task, so it is dropped (and the planner told) when
                // the exchange ends, not here.
                let mut running = running;
                let result = match job {
                    Job::Push { to, destination } => push(&handle, &store, to, destination).await,
                    Job::Pull { custodian } => pull(&handle, custodian).await,
                };
                match result {
                    Ok(()) => running.ok = true,
                    Err(e) => {
                        tracing::debug!(?job, error = %e, "bundle exchange failed; will retry")
                    }
                }
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
