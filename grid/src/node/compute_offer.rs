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

/// Free RAM in MB from the text of `/proc/meminfo` (`MemAvailable`).
fn available_mb(meminfo: &str) -> Option<u32> {
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((kb / 1024).min(u64::from(u32::MAX)) as u32)
}

/// The one-minute load average from the text of `/proc/loadavg`.
fn load_average(loadavg: &str) -> Option<f32> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// Read the machine now (`None` where `/proc` is not there to read).
fn read(caps: &Capabilities) -> Option<Reading> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(Reading {
        ram_free_mb: available_mb(&meminfo)?,
        gpu_free_mb: caps.gpu.as_ref().map_or(0, |g| g.vram_mb),
        load_pct: Reading::load_from_average(load_average(&loadavg)?, caps.cpu_cores),
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
        let reading = tokio::task::spawn_blocking(move || read(&c))
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
    fn proc_files_are_read_and_garbage_gives_none() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2097152 kB\n";
        assert_eq!(available_mb(meminfo), Some(2048));
        assert_eq!(available_mb("MemTotal: 5 kB\n"), None);
        assert_eq!(available_mb("MemAvailable: lots kB\n"), None);
        assert_eq!(load_average("0.52 0.40 0.30 1/200 1234\n"), Some(0.52));
        assert_eq!(load_average(""), None);
        assert!(
            read(&Capabilities::of_this_machine(0)).is_some(),
            "this is Linux"
        );
    }
}
