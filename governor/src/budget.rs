//! How much RAM and VRAM grid work may use.
//!
//! The default leaves the machine's owner 4 GiB — a desktop, a browser with a few tabs and
//! an office suite fit in that on the school laptops this project is for — and never takes
//! more than half of RAM: `min(total − 4 GiB, total / 2)`, at least 512 MiB. An 8 GB laptop
//! gives grid 4 GiB less what is already running (admission checks free memory too); a
//! 16 GB machine 8 GiB; a 32 GB one 16 GiB. VRAM: all of it but a tenth (at least 512 MiB)
//! for the display. Config (`[governor] ram_budget`, `vram_budget`) overrides both.

use crate::profile::SystemProfile;
use crate::{human_bytes, GIB, MIB};
use serde::Serialize;

/// What the owner of the machine keeps for themselves by default.
pub const DESKTOP_RESERVE: u64 = 4 * GIB;
/// The smallest RAM budget: below this not even the embedder fits.
pub const MIN_RAM_BUDGET: u64 = 512 * MIB;
/// VRAM left to the display by default, at least.
pub const MIN_VRAM_RESERVE: u64 = 512 * MIB;

/// The budgets grid work runs within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// System RAM, bytes.
    pub ram: u64,
    /// GPU memory, bytes (0 without a GPU).
    pub vram: u64,
}

/// A budget in config that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// More RAM than the machine has.
    #[error("[governor] ram_budget = {asked} is more than this machine's {total} of RAM; set it lower or remove it for the default ({default})")]
    RamOverTotal {
        /// Asked for.
        asked: String,
        /// The machine's RAM.
        total: String,
        /// What the default would be.
        default: String,
    },
    /// A RAM budget too small to run anything.
    #[error(
        "[governor] ram_budget = {asked} is below the {min} minimum that any model needs; raise it"
    )]
    RamTooSmall {
        /// Asked for.
        asked: String,
        /// The minimum.
        min: String,
    },
    /// More VRAM than the GPUs have.
    #[error("[governor] vram_budget = {asked} is more than the {total} of GPU memory found; set it lower or remove it")]
    VramOverTotal {
        /// Asked for.
        asked: String,
        /// The GPUs' memory.
        total: String,
    },
}

impl Budget {
    /// The default budget for a machine (see the module docs for why).
    #[must_use]
    pub fn default_for(profile: &SystemProfile) -> Budget {
        let total = profile.mem.total;
        let ram = total
            .saturating_sub(DESKTOP_RESERVE)
            .min(total / 2)
            .max(MIN_RAM_BUDGET);
        let vram_total = profile.vram_total();
        let vram = vram_total.saturating_sub((vram_total / 10).max(MIN_VRAM_RESERVE));
        Budget { ram, vram }
    }

    /// The budget from config (`None`: the default), checked against the machine. A
    /// profile whose RAM is unknown (total 0) accepts any RAM budget from config.
    pub fn from_config(
        ram: Option<u64>,
        vram: Option<u64>,
        profile: &SystemProfile,
    ) -> Result<Budget, BudgetError> {
        let default = Budget::default_for(profile);
        let total = profile.mem.total;
        let ram = match ram {
            None => default.ram,
            Some(r) if r < MIN_RAM_BUDGET => {
                return Err(BudgetError::RamTooSmall {
                    asked: human_bytes(r),
                    min: human_bytes(MIN_RAM_BUDGET),
                })
            }
            Some(r) if total > 0 && r > total => {
                return Err(BudgetError::RamOverTotal {
                    asked: human_bytes(r),
                    total: human_bytes(total),
                    default: human_bytes(default.ram),
                })
            }
            Some(r) => r,
        };
        let vram = match vram {
            None => default.vram,
            Some(v) if v > profile.vram_total() => {
                return Err(BudgetError::VramOverTotal {
                    asked: human_bytes(v),
                    total: human_bytes(profile.vram_total()),
                })
            }
            Some(v) => v,
        };
        Ok(Budget { ram, vram })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{GpuInfo, MemInfo};

    fn machine(ram_gib: u64, vram_gib: u64) -> SystemProfile {
        SystemProfile {
            mem: MemInfo {
                total: ram_gib * GIB,
                available: ram_gib * GIB / 2,
                ..MemInfo::default()
            },
            gpus: if vram_gib > 0 {
                vec![GpuInfo {
                    name: "test".into(),
                    vram_total: vram_gib * GIB,
                    vram_used: 0,
                }]
            } else {
                Vec::new()
            },
            ..SystemProfile::default()
        }
    }

    #[test]
    fn defaults_leave_the_desktop_four_gib_and_never_take_more_than_half() {
        assert_eq!(Budget::default_for(&machine(8, 0)).ram, 4 * GIB);
        assert_eq!(Budget::default_for(&machine(16, 0)).ram, 8 * GIB);
        assert_eq!(Budget::default_for(&machine(6, 0)).ram, 2 * GIB);
        // A 4 GiB machine still runs the smallest jobs.
        assert_eq!(Budget::default_for(&machine(4, 0)).ram, MIN_RAM_BUDGET);
        assert_eq!(Budget::default_for(&machine(8, 0)).vram, 0);
        assert_eq!(
            Budget::default_for(&machine(8, 12)).vram,
            12 * GIB - 12 * GIB / 10
        );
        assert_eq!(
            Budget::default_for(&machine(8, 2)).vram,
            2 * GIB - MIN_VRAM_RESERVE
        );
    }

    #[test]
    fn config_overrides_within_the_machine_and_names_the_fix_otherwise() {
        let m = machine(8, 0);
        let b = Budget::from_config(Some(3 * GIB), None, &m).unwrap();
        assert_eq!(b.ram, 3 * GIB);
        let e = Budget::from_config(Some(9 * GIB), None, &m).unwrap_err();
        assert!(matches!(e, BudgetError::RamOverTotal { .. }));
        assert!(e.to_string().contains("set it lower"), "{e}");
        assert!(matches!(
            Budget::from_config(Some(100 * MIB), None, &m),
            Err(BudgetError::RamTooSmall { .. })
        ));
        assert!(matches!(
            Budget::from_config(None, Some(GIB), &m),
            Err(BudgetError::VramOverTotal { .. })
        ));
        // Unknown RAM (no /proc): config is taken as it is.
        let unknown = SystemProfile::default();
        assert_eq!(
            Budget::from_config(Some(64 * GIB), None, &unknown)
                .unwrap()
                .ram,
            64 * GIB
        );
    }
}
