//! The node's governor, shared by everything on the node that starts jobs (the embedding
//! worker, adapter fetches, inference): one [`grid_governor::Governor`] behind a lock,
//! with the clock and the announcements of evictions that the pure governor leaves to its
//! driver. The task that reads the machine and emits `governor:pressure:<level>` events is
//! [`crate::node`]'s (`node/governor_task.rs`).
//!
//! Decisions are quick (no IO under the lock), so the lock is a plain mutex usable from
//! async tasks and blocking threads alike.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use grid_governor::read::System;
pub use grid_governor::{
    Admission, Budget, BudgetError, Decision, Job, JobKind, Level, MemInfo, Priority, Reading,
    Refusal, Resource, SystemProfile,
};
use grid_governor::{Governor, GrantId};
use tokio::sync::broadcast;

use crate::config::GovernorConfig;

/// The event a pressure level change is announced as: `governor:pressure:<level>`
/// (payload: `resource`, `from`, `to`, `pressure`).
#[must_use]
pub fn pressure_event(level: Level) -> String {
    format!("governor:pressure:{level}")
}

/// The event an eviction is announced as (payload: `model`, `bytes`, `level`).
pub const EVICTED_EVENT: &str = "governor:evicted";

/// Keys of evicted models waiting for their owners to unload them.
const EVICTION_BUFFER: usize = 64;

struct Shared {
    governor: Mutex<Governor>,
    profile: SystemProfile,
    system: grid_governor::read::System,
    start: Instant,
    evictions: broadcast::Sender<String>,
}

/// The node's governor (cheap to clone).
#[derive(Clone)]
pub struct GovernorHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GovernorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernorHandle")
            .field("budget", &self.lock().budget())
            .finish_non_exhaustive()
    }
}

/// An admitted job's hold on the budget: released when dropped.
#[derive(Debug)]
#[must_use = "the job's memory is released when the grant is dropped"]
pub struct Grant {
    governor: GovernorHandle,
    id: GrantId,
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.governor.lock().release(self.id);
    }
}

impl GovernorHandle {
    /// A governor for a machine already profiled.
    #[must_use]
    pub fn new(
        budget: Budget,
        profile: SystemProfile,
        system: grid_governor::read::System,
    ) -> Self {
        let (evictions, _) = broadcast::channel(EVICTION_BUFFER);
        GovernorHandle {
            shared: Arc::new(Shared {
                governor: Mutex::new(Governor::new(budget)),
                profile,
                system,
                start: Instant::now(),
                evictions,
            }),
        }
    }

    /// Profile this machine (off the event loop) and set the budget from `config`. Where
    /// the machine cannot be read (not Linux) the budget comes from config, or is the
    /// smallest one, and is said so in the log.
    pub async fn for_this_machine(config: &GovernorConfig) -> Result<Self, BudgetError> {
        let system = config
            .system_root
            .as_ref()
            .map_or_else(grid_governor::read::System::default, |r| {
                grid_governor::read::System::at(r)
            });
        let sys = system.clone();
        let profile = tokio::task::spawn_blocking(move || sys.profile())
            .await
            .unwrap_or_else(|e| {
                Err(grid_governor::read::ReadError::Io {
                    path: "/proc".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        let profile = match profile {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("governor: {e}");
                SystemProfile::default()
            }
        };
        let budget = Budget::from_config(config.ram_budget, config.vram_budget, &profile)?;
        tracing::info!(
            ram_budget_mb = budget.ram >> 20,
            vram_budget_mb = budget.vram >> 20,
            "governor budget"
        );
        Ok(Self::new(budget, profile, system))
    }

    fn lock(&self) -> MutexGuard<'_, Governor> {
        self.shared
            .governor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        self.shared.start.elapsed()
    }

    fn announce_evictions(&self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            tracing::info!(model = %key, "governor: evicting");
            let _ = self.shared.evictions.send(key);
        }
    }

    /// May `job` start now? The grant holds its memory until dropped. Idle models the
    /// governor evicts to make room are announced to [`Self::evictions`].
    pub fn admit(&self, job: Job) -> Result<Grant, Refusal> {
        let now = self.now();
        let label = job.label.clone();
        let admission = self.lock().admit(job, now);
        match admission {
            Ok(Admission { grant, evict }) => {
                self.announce_evictions(evict);
                Ok(Grant {
                    governor: self.clone(),
                    id: grant,
                })
            }
            Err(refusal) => {
                tracing::info!(job = %label, reason = refusal.code(), "governor refused: {refusal}");
                Err(refusal)
            }
        }
    }

    /// Take a reading: level changes come back (to announce), evictions go to
    /// [`Self::evictions`].
    #[must_use]
    pub fn observe(&self, reading: Reading) -> Vec<Decision> {
        let now = self.now();
        let decisions = self.lock().observe(now, reading);
        self.announce_evictions(decisions.iter().filter_map(|d| match d {
            Decision::Evict { key, .. } => Some(key.clone()),
            Decision::Level(_) => None,
        }));
        decisions
    }

    /// Keys of models the governor evicted: their owners unload them.
    #[must_use]
    pub fn evictions(&self) -> broadcast::Receiver<String> {
        self.shared.evictions.subscribe()
    }

    /// `key` is loaded, `bytes` big (a model that may be evicted when idle unless its
    /// priority is interactive or realtime). A full registry is logged, not fatal: the
    /// model then simply is not evicted by pressure.
    pub fn loaded(&self, key: &str, bytes: u64, priority: Priority) {
        let now = self.now();
        if let Err(e) = self
            .lock()
            .registry_mut()
            .register(key, bytes, priority, now)
        {
            tracing::warn!(model = key, "governor: {e}");
        }
    }

    /// `key` was unloaded.
    pub fn unloaded(&self, key: &str) {
        self.lock().registry_mut().remove(key);
    }

    /// A use of `key` begins (it is not evicted until [`Self::end_use`]).
    pub fn begin_use(&self, key: &str) {
        let now = self.now();
        self.lock().registry_mut().begin_use(key, now);
    }

    /// A use of `key` ended.
    pub fn end_use(&self, key: &str) {
        let now = self.now();
        self.lock().registry_mut().end_use(key, now);
    }

    /// When the machine should be read next.
    #[must_use]
    pub fn poll_interval(&self) -> Duration {
        self.lock().poll_interval()
    }

    /// Where the machine is read.
    #[must_use]
    pub fn system(&self) -> &grid_governor::read::System {
        &self.shared.system
    }

    /// The machine as profiled at start.
    #[must_use]
    pub fn profile(&self) -> &SystemProfile {
        &self.shared.profile
    }

    /// The level of `resource` now.
    #[must_use]
    pub fn level(&self, resource: Resource) -> Level {
        self.lock().level(resource)
    }

    /// What this node can give a job now, as its compute offer says it: RAM within the
    /// budget and free memory ([`grid_governor::Governor::headroom`]), GPU memory within
    /// the VRAM budget, load in percent of the cores. `None` before the first reading.
    #[must_use]
    pub fn offer(&self) -> Option<crate::proto::compute_offer::Reading> {
        let g = self.lock();
        let r = g.reading()?;
        let status = g.status(self.now());
        let mb = |b: u64| (b >> 20).min(u64::from(u32::MAX)) as u32;
        Some(crate::proto::compute_offer::Reading {
            ram_free_mb: mb(g.headroom()),
            gpu_free_mb: mb(status.budget.vram.saturating_sub(status.vram_in_use)),
            load_pct: crate::proto::compute_offer::Reading::load_from_average(
                r.load1.unwrap_or(0.0),
                u16::try_from(r.cores).unwrap_or(u16::MAX),
            ),
        })
    }

    /// The governor in a line, for `grid status`.
    #[must_use]
    pub fn summary(&self) -> crate::control::response::GovernorSummary {
        let g = self.lock();
        crate::control::response::GovernorSummary {
            memory: g.level(Resource::Memory).name().to_string(),
            cpu: g.level(Resource::Cpu).name().to_string(),
            ram_budget_mb: g.budget().ram >> 20,
            headroom_mb: g.headroom() >> 20,
        }
    }

    /// Everything the governor knows, as `governor/status` answers it.
    #[must_use]
    pub fn status_json(&self) -> serde_json::Value {
        let status = self.lock().status(self.now());
        serde_json::json!({
            "profile": self.shared.profile,
            "status": status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_governor::{MemInfo, GIB};

    fn reading(free_mib: u64, load1: f32) -> Reading {
        Reading {
            mem: MemInfo {
                total: 8 * GIB,
                available: free_mib << 20,
                ..MemInfo::default()
            },
            load1: Some(load1),
            cores: 2,
            ..Reading::default()
        }
    }

    fn handle() -> GovernorHandle {
        GovernorHandle::new(
            Budget {
                ram: 2 * GIB,
                vram: 0,
            },
            SystemProfile::default(),
            System::at("/nonexistent"),
        )
    }

    #[test]
    fn the_offer_says_what_admission_would_grant() {
        let g = handle();
        assert_eq!(g.offer(), None, "no reading yet");
        let _ = g.observe(reading(6000, 1.0));
        let o = g.offer().unwrap();
        assert_eq!(
            (o.ram_free_mb, o.load_pct),
            (2048, 50),
            "the budget bounds it"
        );
        let grant = g
            .admit(Job::new(
                JobKind::Inference,
                "t",
                Priority::Interactive,
                GIB,
            ))
            .unwrap();
        assert_eq!(g.offer().unwrap().ram_free_mb, 1024);
        drop(grant);
        assert_eq!(
            g.offer().unwrap().ram_free_mb,
            2048,
            "a dropped grant frees"
        );
        // Little free memory bounds it below the budget.
        let _ = g.observe(reading(1024, 0.0));
        assert_eq!(g.offer().unwrap().ram_free_mb, 512);
    }

    #[test]
    fn evictions_reach_the_models_owner() {
        let g = handle();
        let mut evicted = g.evictions();
        g.loaded("idle-model", 512 << 20, Priority::Background);
        g.loaded("chat", 512 << 20, Priority::Interactive);
        // Critical (100 MiB free of 8 GiB): everything idle and evictable goes.
        let decisions = g.observe(reading(100, 0.0));
        assert!(decisions
            .iter()
            .any(|d| matches!(d, Decision::Evict { key, .. } if key == "idle-model")));
        assert_eq!(evicted.try_recv().unwrap(), "idle-model");
        assert!(evicted.try_recv().is_err(), "the interactive model stays");
        assert_eq!(g.level(Resource::Memory), Level::Critical);
    }
}
