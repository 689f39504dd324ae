//! The governor: how much of this machine grid work may use, and whether a job may start now.
//!
//! The rule it serves: if it does not run on a school laptop with 8 GB of RAM, it does not
//! ship. Every job (an inference, an embedding batch, the fetch of a large adapter) states
//! what it needs before it starts, and is refused at once with a typed [`Refusal`] when it
//! would exceed the budget, when the machine is under pressure, or when too little memory is
//! free — never by an out-of-memory kill later.
//!
//! Where it decides, the governor is sans-IO: [`Reading`]s go in (parsed from `/proc` text by
//! the functions in [`profile`] and [`psi`]), decisions come out ([`Decision`],
//! [`Admission`]); time is handed in as a [`Duration`](std::time::Duration) since any fixed
//! start. [`read`] is the one module that touches the system (files under `/proc` and
//! `/sys`, `nvidia-smi`); a driver calls it off its event loop.
//!
//! Pieces: [`profile`] (cores, CPU features, RAM, swap, GPUs), [`psi`] (Linux pressure stall
//! information), [`pressure`] (levels with hysteresis and adaptive polling), [`budget`]
//! (RAM/VRAM budgets and their defaults), [`eviction`] (loaded models and adapters, idle ones
//! first), [`admission`] (the [`Governor`] that ties them together).
#![forbid(unsafe_code)]

pub mod admission;
pub mod budget;
pub mod eviction;
pub mod pressure;
pub mod profile;
pub mod psi;
pub mod read;

pub use admission::{Admission, Decision, Governor, GrantId, Job, JobKind, Refusal, Status};
pub use budget::{Budget, BudgetError};
pub use eviction::{EvictionRegistry, RegistryError};
pub use pressure::{Level, PressureWatcher, Reading, Resource};
pub use profile::{GpuInfo, MemInfo, ParseError, SystemProfile};
pub use psi::Psi;

/// How urgent a job or a loaded model is: the gate on pressure it passes and the order in
/// which loaded things are evicted. From the origin design's priority-gated allocation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Batch work (training, conversion): refused above 0.50 pressure, evicted first.
    Batch,
    /// Background work (adapter preload, catalog embedding): refused above 0.60.
    Background,
    /// What a person or agent waits on (inference, a search's embedding, a fetch asked for):
    /// refused above 0.80; never evicted while loaded.
    Interactive,
    /// Work that must not stall (audio, rendering): refused above 0.95; never evicted.
    Realtime,
}

impl Priority {
    /// The pressure above which a job of this priority is refused (origin design §6:
    /// 0.95 / 0.80 / 0.60 / 0.50).
    #[must_use]
    pub fn gate(self) -> f32 {
        match self {
            Priority::Realtime => 0.95,
            Priority::Interactive => 0.80,
            Priority::Background => 0.60,
            Priority::Batch => 0.50,
        }
    }

    /// Whether a loaded model of this priority may be evicted at all.
    #[must_use]
    pub fn evictable(self) -> bool {
        matches!(self, Priority::Batch | Priority::Background)
    }

    /// The lower-case name used in config, JSON and messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Priority::Realtime => "realtime",
            Priority::Interactive => "interactive",
            Priority::Background => "background",
            Priority::Batch => "batch",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes in a mebibyte and a gibibyte, for budgets and messages.
pub const MIB: u64 = 1 << 20;
/// Bytes in a gibibyte.
pub const GIB: u64 = 1 << 30;

/// `bytes` for a person: "512 MiB", "3.5 GiB".
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(MIB))
    }
}
