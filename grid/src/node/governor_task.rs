//! The governor's driver on a node: reads the machine off the event loop as often as the
//! pressure level asks (10 s at normal down to 1 s at critical), feeds the governor, and
//! announces what it decides as grid events: `governor:pressure:<level>` when memory or
//! CPU pressure changes level, `governor:evicted` when an idle model is unloaded.

use serde_json::json;

use crate::api::NodeHandle;
use crate::governor::{pressure_event, Decision, GovernorHandle};

/// Announce one decision; false once the node has stopped.
async fn announce(handle: &NodeHandle, decision: Decision) -> bool {
    let (event, payload) = match decision {
        Decision::Level(c) => {
            if c.to > c.from {
                tracing::warn!(
                    resource = c.resource.name(),
                    pressure = c.pressure,
                    "{} pressure rose to {}",
                    c.resource.name(),
                    c.to
                );
            } else {
                tracing::info!(
                    resource = c.resource.name(),
                    pressure = c.pressure,
                    "{} pressure fell to {}",
                    c.resource.name(),
                    c.to
                );
            }
            (
                pressure_event(c.to),
                json!({"resource": c.resource, "from": c.from, "to": c.to, "pressure": c.pressure}),
            )
        }
        Decision::Evict { key, bytes, level } => (
            crate::governor::EVICTED_EVENT.to_string(),
            json!({"model": key, "bytes": bytes, "level": level}),
        ),
    };
    !matches!(
        handle.emit(&event, payload).await,
        Err(crate::Error::Stopped)
    )
}

/// The command that shows the governor (`grid governor`).
pub(crate) const STATUS_COMMAND: &str = "governor/status";

/// Watch the machine while the node runs (a task of the node's; it ends with it), and
/// answer `governor/status`.
pub(crate) async fn run(handle: NodeHandle, governor: GovernorHandle) {
    let g = governor.clone();
    let registered = async {
        handle
            .default_rule(STATUS_COMMAND, crate::trust::TrustLevel::Trusted)
            .await?;
        handle
            .register_command(
                STATUS_COMMAND,
                "budgets, memory and CPU pressure, running jobs and loaded models",
                move |_| {
                    let v = g.status_json();
                    async move { Ok(v) }
                },
            )
            .await
    };
    if let Err(e) = registered.await {
        tracing::warn!("governor: cannot offer {STATUS_COMMAND}: {e}");
    }
    let mut warned = false;
    loop {
        let system = governor.system().clone();
        // Video memory in use is read only where the profile found a GPU (it may mean
        // running nvidia-smi).
        let gpus = !governor.profile().gpus.is_empty();
        let read = move || match gpus {
            true => system.reading_with_gpus(),
            false => system.reading(),
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(Ok(reading)) => {
                for decision in governor.observe(reading) {
                    if !announce(&handle, decision).await {
                        return;
                    }
                }
            }
            Ok(Err(e)) if !warned => {
                tracing::warn!("governor: {e}; memory pressure is not watched");
                warned = true;
            }
            Ok(Err(_)) => {}
            Err(_) => return,
        }
        tokio::time::sleep(governor.poll_interval()).await;
    }
}
