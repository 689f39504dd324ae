//! The node's compute offer (`[compute] enabled = true`): a task asks the governor every
//! [`CHECK`] what this node can give a job (RAM within its budget and free memory, GPU
//! memory within its VRAM budget, load; the governor's task reads the machine) and
//! publishes a signed catalog entry when [`crate::proto::compute_offer::Schedule`] says
//! it is news. Catalog gossip carries it to the nodes around; the `least-loaded` route
//! reads it there.

use std::time::Duration;

use crate::api::NodeHandle;
use crate::capabilities::Capabilities;
use crate::proto::compute_offer::{record, Schedule};

/// How often the machine is read.
pub(crate) const CHECK: Duration = Duration::from_secs(60);

/// How long to wait for the governor's first reading before giving up the offer.
const FIRST_READING: Duration = Duration::from_secs(30);

/// What the offer's summary says about the machine.
fn summary(caps: &Capabilities) -> String {
    let gpu = caps
        .gpu
        .as_ref()
        .map_or(String::new(), |g| format!(", GPU {} MB", g.vram_mb));
    format!("{} cores, {} MB RAM{gpu}", caps.cpu_cores, caps.ram_mb)
}

/// Publish the offer while the node runs (a task of the node's; it ends with it).
pub(crate) async fn run(handle: NodeHandle, caps: Capabilities) {
    let mut schedule = Schedule::default();
    let about = summary(&caps);
    let mut waited = Duration::ZERO;
    loop {
        let Some(r) = handle.governor().offer() else {
            if waited >= FIRST_READING {
                tracing::warn!("the governor has no reading of this machine; no compute offer");
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            waited += Duration::from_secs(1);
            continue;
        };
        let now_ms = crate::clock::wall_ms();
        if schedule.due(&r, now_ms) {
            match handle.catalog_publish(record(&r, &about, now_ms)).await {
                Ok(_) => schedule.published(r, now_ms),
                Err(crate::Error::Stopped) => return,
                Err(e) => tracing::debug!(error = %e, "could not publish the compute offer"),
            }
        }
        tokio::time::sleep(CHECK).await;
    }
}
