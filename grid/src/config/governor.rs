//! `[governor]`: how much of this machine grid work may use (docs/compute.md).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGovernor {
    ram_budget_mb: Option<u64>,
    vram_budget_mb: Option<u64>,
    system_root: Option<String>,
}

/// Budgets for grid work (`[governor]`); unset, the governor's defaults for this machine
/// (`grid_governor::budget`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GovernorConfig {
    /// RAM grid work may use, bytes (`ram_budget_mb`).
    pub ram_budget: Option<u64>,
    /// GPU memory grid work may use, bytes (`vram_budget_mb`).
    pub vram_budget: Option<u64>,
    /// Where the machine's `proc` and `sys` are read (`system_root`, default `/`): for
    /// containers with the host's mounted elsewhere, and for tests that inject readings.
    pub system_root: Option<PathBuf>,
}

/// Check `[governor]`; a bad key comes back with why.
pub(super) fn parse(raw: RawGovernor) -> Result<GovernorConfig, (String, String)> {
    let mb = |key: &str, v: Option<u64>| -> Result<Option<u64>, (String, String)> {
        v.map(|mb| {
            mb.checked_mul(1 << 20)
                .filter(|_| mb > 0)
                .ok_or_else(|| (key.to_string(), format!("{mb} MiB is not a usable budget")))
        })
        .transpose()
    };
    Ok(GovernorConfig {
        ram_budget: mb("governor.ram_budget_mb", raw.ram_budget_mb)?,
        vram_budget: mb("governor.vram_budget_mb", raw.vram_budget_mb)?,
        system_root: raw.system_root.map(PathBuf::from),
    })
}
