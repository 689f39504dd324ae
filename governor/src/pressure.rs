//! Pressure: one number from 0 to 1 per resource, its level, and a watcher that moves
//! between levels without flapping.
//!
//! Memory pressure is the larger of the share of memory in use (`1 − MemAvailable/total`)
//! and what PSI says (some tasks stalled 10 % of the last 10 s reads as 0.80, 20 % as 0.90,
//! 40 % as 0.95; any task-wide `full` stall of 10 % or more is at least 0.95). CPU pressure
//! comes from CPU PSI (50 % some-stall reads as 0.80, 75 % as 0.90, 90 % as 0.95), or where
//! PSI is missing (kernels before 4.20, or built without it) from the 1-minute load per core
//! (1.0 reads as 0.80, 1.5 as 0.90, 2.0 as 0.95). Where PSI is missing, memory uses the
//! share in use alone.
//!
//! Levels: normal below 0.80, warning from 0.80, high from 0.90, critical from 0.95. A
//! level rises at once; it falls only when pressure has stayed [`HYSTERESIS`] below the
//! level's threshold for [`HOLD`], so a reading that hovers on a threshold raises one
//! event, not one a poll. How often to read follows the level: 10 s, 5 s, 2 s, 1 s (the
//! origin design's CPU/memory watchers).

use crate::profile::MemInfo;
use crate::psi::Psi;
use serde::Serialize;
use std::time::Duration;

/// How far below a level's threshold pressure must fall before the level is left.
pub const HYSTERESIS: f32 = 0.05;
/// How long pressure must stay that low before the level is left.
pub const HOLD: Duration = Duration::from_secs(10);

/// A pressure level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Below 0.80.
    Normal,
    /// From 0.80.
    Warning,
    /// From 0.90.
    High,
    /// From 0.95.
    Critical,
}

impl Level {
    /// The level a pressure reads as, before hysteresis.
    #[must_use]
    pub fn of(pressure: f32) -> Level {
        if pressure >= 0.95 {
            Level::Critical
        } else if pressure >= 0.90 {
            Level::High
        } else if pressure >= 0.80 {
            Level::Warning
        } else {
            Level::Normal
        }
    }

    /// How often a watcher at this level reads the system.
    #[must_use]
    pub fn poll_interval(self) -> Duration {
        Duration::from_secs(match self {
            Level::Normal => 10,
            Level::Warning => 5,
            Level::High => 2,
            Level::Critical => 1,
        })
    }

    /// The lower-case name in events, JSON and messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Warning => "warning",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A resource with a pressure of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// System RAM.
    Memory,
    /// CPU time.
    Cpu,
    /// GPU memory (all GPUs together), where there is a GPU.
    Vram,
}

impl Resource {
    /// The lower-case name in events and messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Cpu => "cpu",
            Resource::Vram => "vram",
        }
    }
}

/// What the system said at one moment: the input of every pressure decision.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Reading {
    /// Memory (cgroup limit applied).
    pub mem: MemInfo,
    /// `/proc/pressure/memory`, when the kernel has it.
    pub mem_psi: Option<Psi>,
    /// `/proc/pressure/cpu`, when the kernel has it.
    pub cpu_psi: Option<Psi>,
    /// The 1-minute load average, for CPU pressure where PSI is missing.
    pub load1: Option<f32>,
    /// CPUs this process may use.
    pub cores: usize,
    /// GPU memory in use, all GPUs together.
    pub vram_used: u64,
    /// GPU memory, all GPUs together (0: no GPU, no VRAM pressure).
    pub vram_total: u64,
}

/// Linear interpolation over `(x, y)` points sorted by x, flat beyond the ends.
fn piecewise(points: &[(f32, f32)], x: f32) -> f32 {
    let mut prev = points[0];
    if x <= prev.0 {
        return prev.1;
    }
    for &p in &points[1..] {
        if x <= p.0 {
            return prev.1 + (p.1 - prev.1) * (x - prev.0) / (p.0 - prev.0);
        }
        prev = p;
    }
    prev.1
}

impl Reading {
    /// Memory pressure, 0 to 1.
    #[must_use]
    pub fn memory_pressure(&self) -> f32 {
        let used = self.mem.used_fraction();
        let psi = self.mem_psi.map_or(0.0, |p| {
            let some = piecewise(
                &[
                    (0.0, 0.0),
                    (10.0, 0.80),
                    (20.0, 0.90),
                    (40.0, 0.95),
                    (100.0, 1.0),
                ],
                p.some.avg10,
            );
            let full = p
                .full
                .map_or(0.0, |f| if f.avg10 >= 10.0 { 0.95 } else { 0.0 });
            some.max(full)
        });
        used.max(psi).clamp(0.0, 1.0)
    }

    /// CPU pressure, 0 to 1.
    #[must_use]
    pub fn cpu_pressure(&self) -> f32 {
        let p = match (self.cpu_psi, self.load1) {
            (Some(psi), _) => piecewise(
                &[
                    (0.0, 0.0),
                    (50.0, 0.80),
                    (75.0, 0.90),
                    (90.0, 0.95),
                    (100.0, 1.0),
                ],
                psi.some.avg10,
            ),
            (None, Some(load)) if self.cores > 0 && load.is_finite() => piecewise(
                &[
                    (0.0, 0.0),
                    (1.0, 0.80),
                    (1.5, 0.90),
                    (2.0, 0.95),
                    (4.0, 1.0),
                ],
                load / self.cores as f32,
            ),
            _ => 0.0,
        };
        p.clamp(0.0, 1.0)
    }

    /// GPU memory pressure, 0 to 1: the share in use (0 without a GPU).
    #[must_use]
    pub fn vram_pressure(&self) -> f32 {
        if self.vram_total == 0 {
            return 0.0;
        }
        (self.vram_used as f64 / self.vram_total as f64).clamp(0.0, 1.0) as f32
    }

    /// The pressure of `resource`.
    #[must_use]
    pub fn pressure(&self, resource: Resource) -> f32 {
        match resource {
            Resource::Memory => self.memory_pressure(),
            Resource::Cpu => self.cpu_pressure(),
            Resource::Vram => self.vram_pressure(),
        }
    }
}

/// A level change, to announce (`governor:pressure:<level>`) and act on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelChange {
    /// Which resource.
    pub resource: Resource,
    /// The level before.
    pub from: Level,
    /// The level now.
    pub to: Level,
    /// The pressure that moved it.
    pub pressure: f32,
}

/// One resource's level, moved by readings, with hysteresis and a hold time.
#[derive(Debug, Clone)]
pub struct PressureWatcher {
    resource: Resource,
    level: Level,
    pressure: f32,
    /// Since when pressure has been low enough to leave the level.
    calm_since: Option<Duration>,
}

impl PressureWatcher {
    /// A watcher at the normal level.
    #[must_use]
    pub fn new(resource: Resource) -> Self {
        PressureWatcher {
            resource,
            level: Level::Normal,
            pressure: 0.0,
            calm_since: None,
        }
    }

    /// The current level.
    #[must_use]
    pub fn level(&self) -> Level {
        self.level
    }

    /// The last pressure seen.
    #[must_use]
    pub fn pressure(&self) -> f32 {
        self.pressure
    }

    /// When to read again after a reading taken now.
    #[must_use]
    pub fn poll_interval(&self) -> Duration {
        self.level.poll_interval()
    }

    /// Take a pressure seen at `now`; a change of level comes back. A pressure that is not
    /// a number is ignored.
    #[must_use]
    pub fn observe(&mut self, now: Duration, pressure: f32) -> Option<LevelChange> {
        if !pressure.is_finite() {
            return None;
        }
        let pressure = pressure.clamp(0.0, 1.0);
        self.pressure = pressure;
        let raw = Level::of(pressure);
        let calm = Level::of((pressure + HYSTERESIS).min(1.0));
        let to = if raw > self.level {
            self.calm_since = None;
            raw
        } else if calm < self.level {
            let since = *self.calm_since.get_or_insert(now);
            if now.saturating_sub(since) < HOLD {
                return None;
            }
            self.calm_since = None;
            calm
        } else {
            self.calm_since = None;
            return None;
        };
        let from = std::mem::replace(&mut self.level, to);
        Some(LevelChange {
            resource: self.resource,
            from,
            to,
            pressure,
        })
    }
}

#[cfg(test)]
mod tests;
