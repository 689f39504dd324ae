//! The engine's [`Mesh`] on a node: commands through its API (placed by routing hints,
//! the compute placement or a named node), events emitted and watched on it.

use std::time::Duration;

use grid::api::{ExecOptions, NodeEvent, NodeHandle};
use grid::routing::Route;
use rns_core::AddressHash;
use serde_json::{json, Value};

use crate::engine::{Mesh, MeshError, Where};

/// How often a running step looks whether its run was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(100);
/// How long a remote subscription for a `watch` may take to set up.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A run's view of its node.
pub(crate) struct NodeMesh {
    pub(crate) handle: NodeHandle,
    /// The run's handle, for its `sentinel:<handle>:step` events.
    pub(crate) run: String,
    /// The run's progress.
    pub(crate) live: std::sync::Arc<super::Live>,
}

fn parse_node(s: &str) -> Result<AddressHash, String> {
    s.trim()
        .trim_start_matches("node:")
        .parse()
        .map_err(|_| format!("\"{s}\" is not a node hash"))
}

/// What a node's error means for the engine.
fn classify(e: grid::Error) -> MeshError {
    if e.is_elsewhere() {
        MeshError::Busy(e.to_string())
    } else if e.is_unreachable() {
        MeshError::Lost(e.to_string())
    } else {
        MeshError::Failed(e.to_string())
    }
}

impl Mesh for NodeMesh {
    async fn candidates(&self, place: &Where, command: &str) -> Result<Vec<String>, String> {
        let nodes: Vec<AddressHash> = match place {
            Where::Here => vec![self.handle.destination()],
            Where::Target(t) => match t.parse::<Route>() {
                Ok(route) => self
                    .handle
                    .resolve_routes(route, command)
                    .await
                    .map_err(|e| e.to_string())?,
                Err(_) => vec![parse_node(t)?],
            },
            Where::Placement(p) => {
                if let Some(mb) = p.ram_mb {
                    self.handle
                        .place_compute(mb)
                        .await
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .map(|(n, _)| n)
                        .collect()
                } else {
                    let route = if p.gpu {
                        Route::PreferGpu
                    } else {
                        Route::LeastLoaded
                    };
                    self.handle
                        .resolve_routes(route, command)
                        .await
                        .map_err(|e| e.to_string())?
                }
            }
        };
        Ok(nodes.iter().map(ToString::to_string).collect())
    }

    async fn execute(
        &self,
        node: &str,
        command: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, MeshError> {
        let node = parse_node(node).map_err(MeshError::Failed)?;
        // Cancelling the run cancels the step where it runs (`grid/cancel` to that node).
        let flag = self.live.cancel.clone();
        let cancelled = async move {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(CANCEL_POLL).await;
            }
        };
        let options = ExecOptions::timeout(timeout);
        self.handle
            .execute_cancellable(node, command, params, options, |_, _| {}, cancelled)
            .await
            .map_err(classify)
    }

    async fn emit(&self, event: &str, payload: &Value) -> Result<(), String> {
        self.handle
            .emit(event, payload.clone())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn watch(
        &self,
        pattern: &str,
        node: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, MeshError> {
        let mut events = self.handle.subscribe();
        if let Some(n) = node {
            let n = parse_node(n).map_err(MeshError::Failed)?;
            if n != self.handle.destination() {
                self.handle
                    .subscribe_remote(n, pattern, SUBSCRIBE_TIMEOUT)
                    .await
                    .map_err(classify)?;
            }
        }
        let wanted = node.map(|n| n.trim().trim_start_matches("node:").to_string());
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::GridEvent {
                        node: from,
                        event,
                        payload,
                    }) if grid::frame::names::matches(pattern, &event)
                        && wanted.as_ref().is_none_or(|w| *w == from) =>
                    {
                        return Ok(json!({"node": from, "event": event, "payload": payload}))
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(MeshError::Failed("the node stopped".into()))
                    }
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(MeshError::Failed(format!(
                    "no {pattern} event in {} s",
                    timeout.as_secs()
                )))
            })
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    async fn deadline(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }

    async fn shell(
        &self,
        cmd: &str,
        args: &[String],
        dir: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, MeshError> {
        super::shell::run(cmd, args, dir, timeout, &self.live.cancel).await
    }

    fn step_event(&self, key: &str, record: &Value) {
        if record["status"] == "completed" {
            self.live
                .done_steps
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let handle = self.handle.clone();
        let event = format!("sentinel:{}:step", self.run);
        let payload = json!({"step": key, "record": record});
        tokio::spawn(async move {
            let _ = handle.emit(&event, payload).await;
        });
    }

    fn log(&self, key: &str, message: &str) {
        tracing::info!(run = %self.run, step = key, "{message}");
        let handle = self.handle.clone();
        let event = format!("sentinel:{}:log", self.run);
        let payload = json!({"step": key, "message": message});
        tokio::spawn(async move {
            let _ = handle.emit(&event, payload).await;
        });
    }
}
