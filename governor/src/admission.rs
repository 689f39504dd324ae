//! The [`Governor`]: budgets, pressure and the eviction registry together; every job asks
//! it before it starts.
//!
//! A job states its kind, priority and the RAM (and VRAM) it needs. It is refused at once,
//! with a typed [`Refusal`] that says what to do instead, when:
//! - [`MAX_GRANTS`] jobs run already;
//! - memory pressure is above its priority's gate (0.95 / 0.80 / 0.60 / 0.50 for realtime /
//!   interactive / background / batch), or CPU pressure is, for background and batch work
//!   (CPU contention slows what a person waits on but cannot kill it, so interactive work is
//!   not refused for it);
//! - it would take grid work over its budget even after evicting every idle evictable model;
//! - it needs more than free memory less a [`FREE_MARGIN`] (llama.cpp's `--fit` keeps 1 GiB;
//!   half that is enough for an embedding model or a small adapter and still fits 8 GB).
//!
//! An admitted job may need idle models unloaded first: [`Admission::evict`] lists them (and
//! they leave the registry). Under memory pressure [`Governor::observe`] evicts too: at high,
//! what has been idle a minute; at critical, everything idle and evictable.

use crate::budget::Budget;
use crate::eviction::EvictionRegistry;
use crate::pressure::{Level, LevelChange, PressureWatcher, Reading, Resource};
use crate::{human_bytes, Priority, MIB};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// At most this many jobs hold a grant at once.
pub const MAX_GRANTS: usize = 64;
/// Memory that must stay free beyond what a job needs.
pub const FREE_MARGIN: u64 = 512 * MIB;
/// At high memory pressure, models idle this long are evicted.
pub const IDLE_AT_HIGH: Duration = Duration::from_secs(60);
/// A job's label is cut to this many characters.
pub const MAX_LABEL: usize = 128;

/// What a job is, for status and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum JobKind {
    /// Text generation.
    Inference,
    /// Sentence embeddings (skill search).
    Embedding,
    /// Fetching a package (an adapter) from peers.
    Fetch,
    /// Loading a model or adapter into memory.
    Load,
    /// Training or conversion.
    Training,
}

/// A job asking to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// What it is.
    pub kind: JobKind,
    /// What it is, for a person ("embedding worker", "fetch 3f2a…").
    pub label: String,
    /// How urgent.
    pub priority: Priority,
    /// RAM it needs at most, bytes.
    pub ram: u64,
    /// VRAM it needs at most, bytes.
    pub vram: u64,
}

impl Job {
    /// A job needing `ram` bytes of RAM and no VRAM.
    #[must_use]
    pub fn new(kind: JobKind, label: &str, priority: Priority, ram: u64) -> Job {
        Job {
            kind,
            label: label.chars().take(MAX_LABEL).collect(),
            priority,
            ram,
            vram: 0,
        }
    }
}

/// The handle of an admitted job; give it back with [`Governor::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GrantId(pub u64);

/// A job may start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an admitted job must unload what `evict` lists and release its grant"]
pub struct Admission {
    /// Its grant.
    pub grant: GrantId,
    /// Loaded models to unload before it starts, in order (already out of the registry).
    pub evict: Vec<String>,
}

/// The memory a budget is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Memory {
    /// System RAM.
    Ram,
    /// GPU memory.
    Vram,
}

impl Memory {
    fn name(self) -> &'static str {
        match self {
            Memory::Ram => "RAM",
            Memory::Vram => "VRAM",
        }
    }
    fn setting(self) -> &'static str {
        match self {
            Memory::Ram => "ram_budget",
            Memory::Vram => "vram_budget",
        }
    }
}

/// Why a job may not start. Each says what would let it.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// It would take grid work over its budget.
    #[error("needs {} of {} but grid work may use {} and {} is in use; raise [governor] {} or run it on a peer", human_bytes(*need), memory.name(), human_bytes(*budget), human_bytes(*in_use), memory.setting())]
    OverBudget {
        /// RAM or VRAM.
        memory: Memory,
        /// Bytes the job needs.
        need: u64,
        /// The budget, bytes.
        budget: u64,
        /// Bytes grid work uses now and could not free.
        in_use: u64,
    },
    /// The machine is under pressure above the job's gate.
    #[error("{} pressure is {level} ({pressure:.2}, above {gate:.2}, the gate for {priority} work); try again later or run it on a peer", resource.name())]
    Pressure {
        /// Which resource.
        resource: Resource,
        /// Its level.
        level: Level,
        /// Its pressure.
        pressure: f32,
        /// The job's priority.
        priority: Priority,
        /// That priority's gate.
        gate: f32,
    },
    /// Too little memory is free on the machine (whatever the budget says).
    #[error("needs {} of RAM plus a {} margin but only {} is free on this machine; close programs or run it on a peer", human_bytes(*need), human_bytes(*margin), human_bytes(*available))]
    NotEnoughFree {
        /// Bytes the job needs.
        need: u64,
        /// Bytes free (counting idle models that could be unloaded).
        available: u64,
        /// The margin kept free.
        margin: u64,
    },
    /// Too many jobs run already.
    #[error("{limit} jobs are running already; wait for one to finish")]
    TooManyJobs {
        /// The limit.
        limit: usize,
    },
}

impl Refusal {
    /// A short stable name for the reason, for wire errors and logs.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OverBudget { .. } => "over_budget",
            Refusal::Pressure { .. } => "pressure",
            Refusal::NotEnoughFree { .. } => "not_enough_free",
            Refusal::TooManyJobs { .. } => "too_many_jobs",
        }
    }
}

/// What the governor decided on a reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// A resource changed level: announce `governor:pressure:<level>`.
    Level(LevelChange),
    /// Unload this model (it has left the registry).
    Evict {
        /// Its key.
        key: String,
        /// Its size.
        bytes: u64,
        /// The memory level that evicted it.
        level: Level,
    },
}

/// Pressure on one resource, for status.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PressureStatus {
    /// Level.
    pub level: Level,
    /// Pressure, 0 to 1.
    pub pressure: f32,
}

/// A running job, for status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStatus {
    /// Its grant.
    pub grant: GrantId,
    /// The job.
    #[serde(flatten)]
    pub job: Job,
}

/// A loaded model, for status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadedStatus {
    /// Its key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// Its priority.
    pub priority: Priority,
    /// Seconds since last use.
    pub idle_secs: u64,
    /// Jobs using it.
    pub in_use: u32,
}

/// Everything the governor knows, for `grid status` and the status page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The budgets.
    pub budget: Budget,
    /// RAM a new job could have now ([`Governor::headroom`]).
    pub headroom: u64,
    /// RAM grid work holds (jobs and loaded models).
    pub ram_in_use: u64,
    /// VRAM jobs hold.
    pub vram_in_use: u64,
    /// Memory free on the machine at the last reading.
    pub mem_available: u64,
    /// Memory pressure.
    pub memory: PressureStatus,
    /// CPU pressure.
    pub cpu: PressureStatus,
    /// GPU memory pressure (normal without a GPU).
    pub vram: PressureStatus,
    /// Running jobs.
    pub jobs: Vec<JobStatus>,
    /// Loaded models and adapters.
    pub loaded: Vec<LoadedStatus>,
}

/// Budgets, pressure and the loaded models of one node.
#[derive(Debug, Clone)]
pub struct Governor {
    budget: Budget,
    reading: Option<Reading>,
    memory: PressureWatcher,
    cpu: PressureWatcher,
    vram: PressureWatcher,
    grants: BTreeMap<GrantId, Job>,
    next_grant: u64,
    registry: EvictionRegistry,
}

impl Governor {
    /// A governor with `budget` and no reading yet (free memory is not checked until the
    /// first [`Self::observe`]).
    #[must_use]
    pub fn new(budget: Budget) -> Self {
        Governor {
            budget,
            reading: None,
            memory: PressureWatcher::new(Resource::Memory),
            cpu: PressureWatcher::new(Resource::Cpu),
            vram: PressureWatcher::new(Resource::Vram),
            grants: BTreeMap::new(),
            next_grant: 0,
            registry: EvictionRegistry::new(),
        }
    }

    /// The budgets.
    #[must_use]
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The loaded models and adapters.
    #[must_use]
    pub fn registry(&self) -> &EvictionRegistry {
        &self.registry
    }

    /// The loaded models and adapters, to register loads and uses.
    pub fn registry_mut(&mut self) -> &mut EvictionRegistry {
        &mut self.registry
    }

    /// The last reading taken, if any.
    #[must_use]
    pub fn reading(&self) -> Option<Reading> {
        self.reading
    }

    /// RAM a new job could have now: the budget left, and no more than free memory less
    /// [`FREE_MARGIN`] (what a compute offer tells other nodes).
    #[must_use]
    pub fn headroom(&self) -> u64 {
        let in_use = self.grants_ram().saturating_add(self.registry.resident());
        let left = self.budget.ram.saturating_sub(in_use);
        self.reading.map_or(left, |r| {
            left.min(r.mem.available.saturating_sub(FREE_MARGIN))
        })
    }

    /// The level of `resource`.
    #[must_use]
    pub fn level(&self, resource: Resource) -> Level {
        self.watcher(resource).level()
    }

    fn watcher(&self, resource: Resource) -> &PressureWatcher {
        match resource {
            Resource::Memory => &self.memory,
            Resource::Cpu => &self.cpu,
            Resource::Vram => &self.vram,
        }
    }

    /// When to take the next reading.
    #[must_use]
    pub fn poll_interval(&self) -> Duration {
        self.memory
            .poll_interval()
            .min(self.cpu.poll_interval())
            .min(self.vram.poll_interval())
    }

    /// Take a reading made at `now`: level changes and evictions come back.
    #[must_use]
    pub fn observe(&mut self, now: Duration, reading: Reading) -> Vec<Decision> {
        self.reading = Some(reading);
        let mut out = Vec::new();
        let watchers = [
            (Resource::Memory, &mut self.memory),
            (Resource::Cpu, &mut self.cpu),
            (Resource::Vram, &mut self.vram),
        ];
        for (resource, watcher) in watchers {
            if let Some(change) = watcher.observe(now, reading.pressure(resource)) {
                out.push(Decision::Level(change));
            }
        }
        let min_idle = match self.memory.level() {
            Level::Critical => Duration::ZERO,
            Level::High => IDLE_AT_HIGH,
            Level::Normal | Level::Warning => return out,
        };
        let keys: Vec<String> = self
            .registry
            .candidates(now, min_idle)
            .into_iter()
            .map(|(k, _)| k.to_owned())
            .collect();
        for key in keys {
            if let Some(e) = self.registry.remove(&key) {
                out.push(Decision::Evict {
                    key,
                    bytes: e.bytes,
                    level: self.memory.level(),
                });
            }
        }
        out
    }

    /// Bytes of loaded models that could be evicted now.
    fn evictable(&self, now: Duration) -> u64 {
        self.registry
            .candidates(now, Duration::ZERO)
            .iter()
            .map(|(_, e)| e.bytes)
            .sum()
    }

    fn grants_ram(&self) -> u64 {
        self.grants.values().map(|j| j.ram).sum()
    }

    fn grants_vram(&self) -> u64 {
        self.grants.values().map(|j| j.vram).sum()
    }

    /// May `job` start at `now`? On yes, it holds a grant until [`Self::release`].
    pub fn admit(&mut self, job: Job, now: Duration) -> Result<Admission, Refusal> {
        if self.grants.len() >= MAX_GRANTS {
            return Err(Refusal::TooManyJobs { limit: MAX_GRANTS });
        }
        let gates = [
            (Resource::Memory, true),
            (Resource::Cpu, job.priority <= Priority::Background),
            // GPU memory pressure holds back only jobs that want GPU memory.
            (Resource::Vram, job.vram > 0),
        ];
        for (resource, applies) in gates {
            let w = self.watcher(resource);
            let gate = job.priority.gate();
            if applies && w.pressure() > gate {
                return Err(Refusal::Pressure {
                    resource,
                    level: w.level(),
                    pressure: w.pressure(),
                    priority: job.priority,
                    gate,
                });
            }
        }
        let vram_in_use = self.grants_vram();
        if job.vram > 0 && vram_in_use.saturating_add(job.vram) > self.budget.vram {
            return Err(Refusal::OverBudget {
                memory: Memory::Vram,
                need: job.vram,
                budget: self.budget.vram,
                in_use: vram_in_use,
            });
        }
        let in_use = self.grants_ram().saturating_add(self.registry.resident());
        let over_budget = in_use
            .saturating_add(job.ram)
            .saturating_sub(self.budget.ram);
        let available = self.reading.map(|r| r.mem.available);
        let short_free =
            available.map_or(0, |a| job.ram.saturating_add(FREE_MARGIN).saturating_sub(a));
        let evict = match over_budget.max(short_free) {
            0 => Vec::new(),
            need => match self.registry.to_free(need, now, Duration::ZERO) {
                Some(keys) => keys,
                None if job.ram > self.budget.ram
                    || self
                        .registry
                        .to_free(over_budget, now, Duration::ZERO)
                        .is_none() =>
                {
                    return Err(Refusal::OverBudget {
                        memory: Memory::Ram,
                        need: job.ram,
                        budget: self.budget.ram,
                        in_use: in_use.saturating_sub(self.evictable(now)),
                    });
                }
                None => {
                    return Err(Refusal::NotEnoughFree {
                        need: job.ram,
                        available: available.unwrap_or(0).saturating_add(self.evictable(now)),
                        margin: FREE_MARGIN,
                    });
                }
            },
        };
        for key in &evict {
            self.registry.remove(key);
        }
        let grant = GrantId(self.next_grant);
        self.next_grant += 1;
        self.grants.insert(grant, job);
        Ok(Admission { grant, evict })
    }

    /// The job holding `grant` has ended (or never started); its memory is free again.
    pub fn release(&mut self, grant: GrantId) -> Option<Job> {
        self.grants.remove(&grant)
    }

    /// Everything the governor knows at `now`.
    #[must_use]
    pub fn status(&self, now: Duration) -> Status {
        let pressure = |w: &PressureWatcher| PressureStatus {
            level: w.level(),
            pressure: w.pressure(),
        };
        Status {
            budget: self.budget,
            headroom: self.headroom(),
            ram_in_use: self.grants_ram().saturating_add(self.registry.resident()),
            vram_in_use: self.grants_vram(),
            mem_available: self.reading.map_or(0, |r| r.mem.available),
            memory: pressure(&self.memory),
            cpu: pressure(&self.cpu),
            vram: pressure(&self.vram),
            jobs: self
                .grants
                .iter()
                .map(|(g, j)| JobStatus {
                    grant: *g,
                    job: j.clone(),
                })
                .collect(),
            loaded: self
                .registry
                .entries()
                .map(|(k, e)| LoadedStatus {
                    key: k.to_owned(),
                    bytes: e.bytes,
                    priority: e.priority,
                    idle_secs: now.saturating_sub(e.last_use).as_secs(),
                    in_use: e.in_use,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
