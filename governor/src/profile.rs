//! What the machine is: CPU cores and features, RAM and swap, GPUs with their VRAM.
//!
//! Parsers over the text of `/proc/meminfo`, `/proc/cpuinfo`, cgroup memory files and
//! `nvidia-smi`'s CSV; [`crate::read`] fetches the text. Every parser bounds what it keeps
//! and returns a typed [`ParseError`] on text it cannot trust, never a panic.

use serde::Serialize;

/// Text from the system that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A field every version of the file has is absent.
    #[error("{file}: no `{field}` line")]
    Missing {
        /// The file (or command) read.
        file: &'static str,
        /// The field looked for.
        field: &'static str,
    },
    /// A field's value is not a number in range.
    #[error("{file}: `{field}` has a value that is not a number in range: {value:?}")]
    BadValue {
        /// The file (or command) read.
        file: &'static str,
        /// The field.
        field: &'static str,
        /// The value as read (cut to 40 characters).
        value: String,
    },
}

impl ParseError {
    fn bad(file: &'static str, field: &'static str, value: &str) -> Self {
        ParseError::BadValue {
            file,
            field,
            value: value.chars().take(40).collect(),
        }
    }
}

/// Memory as the kernel reports it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MemInfo {
    /// Physical RAM (or the cgroup's limit, when lower).
    pub total: u64,
    /// What can be allocated without swapping (`MemAvailable`).
    pub available: u64,
    /// Swap space.
    pub swap_total: u64,
    /// Swap space unused.
    pub swap_free: u64,
}

impl MemInfo {
    /// The share of memory in use, 0 to 1 (1 when nothing is known).
    #[must_use]
    pub fn used_fraction(&self) -> f32 {
        if self.total == 0 {
            return 1.0;
        }
        let used = self.total.saturating_sub(self.available.min(self.total));
        (used as f64 / self.total as f64) as f32
    }

    /// Narrow to a cgroup's memory `limit` with `usage` charged to it: a node in a
    /// container must plan with the container's memory, not the host's. A limit at or above
    /// the host's total (cgroup v1 writes "unlimited" as a huge number) changes nothing.
    #[must_use]
    pub fn within_cgroup(self, limit: u64, usage: u64) -> MemInfo {
        if limit == 0 || limit >= self.total {
            return self;
        }
        MemInfo {
            total: limit,
            available: self.available.min(limit.saturating_sub(usage)),
            ..self
        }
    }
}

/// Parse `/proc/meminfo` (values in kB). Kernels before 3.14 have no `MemAvailable`; there
/// it is estimated as `MemFree + Buffers + Cached`.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    const FILE: &str = "/proc/meminfo";
    let field = |name: &'static str| -> Result<Option<u64>, ParseError> {
        let Some(line) = text.lines().find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(':'))
        }) else {
            return Ok(None);
        };
        let value = line[name.len() + 1..].trim();
        let number = value.strip_suffix("kB").unwrap_or(value).trim();
        number
            .parse::<u64>()
            .ok()
            .and_then(|kb| kb.checked_mul(1024))
            .map(Some)
            .ok_or_else(|| ParseError::bad(FILE, name, value))
    };
    let total = field("MemTotal")?.ok_or(ParseError::Missing {
        file: FILE,
        field: "MemTotal",
    })?;
    let available = match field("MemAvailable")? {
        Some(a) => a,
        None => {
            let free = field("MemFree")?.ok_or(ParseError::Missing {
                file: FILE,
                field: "MemAvailable",
            })?;
            free.saturating_add(field("Buffers")?.unwrap_or(0))
                .saturating_add(field("Cached")?.unwrap_or(0))
        }
    };
    Ok(MemInfo {
        total,
        available: available.min(total),
        swap_total: field("SwapTotal")?.unwrap_or(0),
        swap_free: field("SwapFree")?.unwrap_or(0),
    })
}

/// Parse a cgroup memory file holding one number or `max` (cgroup v2's "no limit"):
/// `Some(bytes)`, or `None` for no limit.
pub fn parse_cgroup_bytes(text: &str) -> Result<Option<u64>, ParseError> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse::<u64>()
        .map(Some)
        .map_err(|_| ParseError::bad("cgroup memory", "limit", t))
}

/// The CPU features that matter for running models (vector units), as `/proc/cpuinfo`
/// names them on x86 (`flags`) and ARM (`Features`).
pub const INFERENCE_FEATURES: &[&str] = &[
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "neon",
    "asimd",
    "asimddp",
    "asimdhp",
    "sve",
    "i8mm",
    "bf16",
];

/// What `/proc/cpuinfo` says about the processor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CpuInfo {
    /// The model name of the first processor (empty when the file has none).
    pub model: String,
    /// Logical processors listed.
    pub logical: usize,
    /// The [`INFERENCE_FEATURES`] present, in that list's order.
    pub features: Vec<String>,
}

/// Parse `/proc/cpuinfo`.
#[must_use]
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let value = |l: &str| l.split_once(':').map(|(_, v)| v.trim().to_owned());
    let logical = text
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    let model = text
        .lines()
        .find(|l| {
            let k = l.split(':').next().unwrap_or("").trim();
            k == "model name" || k == "Model" || k == "Hardware"
        })
        .and_then(value)
        .map(|m| m.chars().take(120).collect())
        .unwrap_or_default();
    let flags = text
        .lines()
        .find(|l| {
            let k = l.split(':').next().unwrap_or("").trim();
            k == "flags" || k == "Features"
        })
        .and_then(value)
        .unwrap_or_default();
    let present: Vec<&str> = flags.split_whitespace().collect();
    let features = INFERENCE_FEATURES
        .iter()
        .filter(|f| present.contains(f))
        .map(|f| (*f).to_owned())
        .collect();
    CpuInfo {
        model,
        logical,
        features,
    }
}

/// One GPU and its memory, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    /// What the driver calls it.
    pub name: String,
    /// Its memory.
    pub vram_total: u64,
    /// Its memory in use (by anything).
    pub vram_used: u64,
}

/// At most this many GPUs are kept from any listing.
pub const MAX_GPUS: usize = 16;

/// Parse `nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader,nounits`
/// (one GPU a line, MiB).
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<GpuInfo>, ParseError> {
    const FILE: &str = "nvidia-smi";
    let mut gpus = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(MAX_GPUS) {
        let mut parts = line.rsplitn(3, ',');
        let (Some(used), Some(total), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::bad(FILE, "line", line));
        };
        let mib = |field: &'static str, v: &str| {
            v.trim()
                .parse::<u64>()
                .ok()
                .and_then(|m| m.checked_mul(crate::MIB))
                .ok_or_else(|| ParseError::bad(FILE, field, v))
        };
        gpus.push(GpuInfo {
            name: name.trim().chars().take(120).collect(),
            vram_total: mib("memory.total", total)?,
            vram_used: mib("memory.used", used)?,
        });
    }
    Ok(gpus)
}

/// The machine, as far as the governor needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SystemProfile {
    /// The processor.
    pub cpu: CpuInfo,
    /// CPUs this process may run on (affinity and cgroup quotas counted).
    pub cores: usize,
    /// Memory when the profile was taken.
    pub mem: MemInfo,
    /// GPUs found (none is normal).
    pub gpus: Vec<GpuInfo>,
}

impl SystemProfile {
    /// All GPUs' memory together.
    #[must_use]
    pub fn vram_total(&self) -> u64 {
        self.gpus.iter().map(|g| g.vram_total).sum()
    }
}

#[cfg(test)]
mod tests;
