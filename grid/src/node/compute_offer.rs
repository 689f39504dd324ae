//! The node's compute offer (`[compute] enabled = true`): a task reads the machine every
//! [`CHECK`] (free RAM from `/proc/meminfo`, load from `/proc/loadavg`, off the loop on a
//! blocking thread) and publishes a signed catalog entry when
//! [`crate::proto::compute_offer::Schedule`] says it is news. Catalog gossip carries it
//! to the nodes around; the compute placement reads it there.

use std::time::Duration;

use crate::api::NodeHandle;
use crate::capabilities::Capabilities;
use crate::proto::compute_offer::{record, Reading, Schedule};

/// How often the machine is read.
pub(crate) const CHECK: Duration = Duration::from_secs(60);

/// Read the machine now through the governor's reader (`None` where `/proc` is not
/// there to read).
fn read(caps: &Capabilities, system: &crate::governor::System) -> Option<Reading> {
    let r = system.reading().ok()?;
    Some(Reading {
        ram_free_mb: (r.mem.available >> 20).min(u64::from(u32::MAX)) as u32,
        gpu_free_mb: caps.gpu.as_ref().map_or(0, |g| g.vram_mb),
        load_pct: Reading::load_from_average(r.load1?, caps.cpu_cores),
    })
}

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
    loop {
        let c = caps.clone();
        let system = handle.governor().system().clone();
        let reading = tokio::task::spawn_blocking(move || read(&c, &system))
            .await
            .ok()
            .flatten();
        match reading {
            Some(r) => {
                let now_ms = crate::clock::wall_ms();
                if schedule.due(&r, now_ms) {
                    match handle.catalog_publish(record(&r, &about, now_ms)).await {
                        Ok(_) => schedule.published(r, now_ms),
                        Err(crate::Error::Stopped) => return,
                        Err(e) => {
                            tracing::debug!(error = %e, "could not publish the compute offer")
                        }
                    }
                }
            }
            None => {
                tracing::warn!("cannot read /proc/meminfo or /proc/loadavg; no compute offer");
                return;
            }
        }
        tokio::time::sleep(CHECK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_read_through_the_governor() {
        let caps = Capabilities::of_this_machine(0);
        let r = read(&caps, &crate::governor::System::default()).expect("this is Linux");
        assert!(r.ram_free_mb > 0);
        assert!(read(&caps, &crate::governor::System::at("/nonexistent")).is_none());
    }
}
