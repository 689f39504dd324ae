//! Reading the system: the one module of this crate that does IO (files under `/proc` and
//! `/sys`, and `nvidia-smi` when it is installed). A driver calls it off its event loop;
//! each call reads a few small files.
//!
//! [`System`] reads below a root directory, `/` normally; tests (and containers whose
//! host `/proc` is mounted elsewhere) point it at a directory holding `proc/meminfo`,
//! `proc/pressure/memory` and the rest, and so inject any reading into a whole node.

use crate::pressure::Reading;
use crate::profile::{
    parse_cgroup_bytes, parse_cpuinfo, parse_meminfo, parse_nvidia_smi, GpuInfo, MemInfo,
    ParseError, SystemProfile, MAX_GPUS,
};
use crate::psi::parse_psi;
use std::path::{Path, PathBuf};

/// The system could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A file every Linux system has could not be read.
    #[error("reading {path}: {source} (the governor needs Linux's /proc; on other systems set [governor] ram_budget)")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It was read but not understood.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

fn read(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The memory cgroup this process is in, from `/proc/self/cgroup`'s text: the cgroup v2
/// path (`0::/…`) and the v1 memory controller's path (`N:memory:/…`). Paths that climb
/// (`..`) are dropped.
#[must_use]
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines().take(64) {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if path.split('/').any(|c| c == "..") {
            continue;
        }
        if controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_owned());
        }
    }
    (v2, v1)
}

/// The system below a root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    root: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System {
            root: PathBuf::from("/"),
        }
    }
}

impl System {
    /// The system whose `proc` and `sys` directories are below `root`.
    #[must_use]
    pub fn at(root: impl Into<PathBuf>) -> System {
        System { root: root.into() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p)
    }

    fn text(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }

    /// Memory now, narrowed to this process's cgroup limit.
    pub fn memory(&self) -> Result<MemInfo, ReadError> {
        let mem = parse_meminfo(&read(&self.path("proc/meminfo"))?)?;
        Ok(match self.cgroup_memory() {
            Some((limit, usage)) => mem.within_cgroup(limit, usage),
            None => mem,
        })
    }

    /// The memory limit and usage of this process's cgroup, if it has a limit.
    fn cgroup_memory(&self) -> Option<(u64, u64)> {
        let text = self.text("proc/self/cgroup")?;
        let (v2, v1) = parse_proc_cgroup(&text);
        let number = |p: PathBuf| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| parse_cgroup_bytes(&t).ok())
        };
        let mut dirs = Vec::new();
        if let Some(p) = v2 {
            let base = self.path("sys/fs/cgroup");
            dirs.push((
                base.join(p.trim_start_matches('/')),
                "memory.max",
                "memory.current",
            ));
            dirs.push((base, "memory.max", "memory.current"));
        }
        if let Some(p) = v1 {
            let base = self.path("sys/fs/cgroup/memory");
            let (limit, usage) = ("memory.limit_in_bytes", "memory.usage_in_bytes");
            dirs.push((base.join(p.trim_start_matches('/')), limit, usage));
            dirs.push((base, limit, usage));
        }
        for (dir, limit, usage) in dirs {
            match number(dir.join(limit)) {
                Some(Some(limit)) => {
                    return Some((limit, number(dir.join(usage)).flatten().unwrap_or(0)))
                }
                Some(None) => return None,
                None => continue,
            }
        }
        None
    }

    /// GPUs: NVIDIA through `nvidia-smi` (only when the root is `/`), others through the
    /// DRM driver's VRAM counters in sysfs (AMD). None found is normal.
    #[must_use]
    pub fn gpus(&self) -> Vec<GpuInfo> {
        if self.root == Path::new("/") {
            if let Some(gpus) = nvidia_smi() {
                return gpus;
            }
        }
        let Ok(cards) = std::fs::read_dir(self.path("sys/class/drm")) else {
            return Vec::new();
        };
        let mut gpus = Vec::new();
        for card in cards.flatten().take(64) {
            let dev = card.path().join("device");
            let bytes = |f: &str| {
                std::fs::read_to_string(dev.join(f))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
            };
            if let Some(total) = bytes("mem_info_vram_total") {
                let name = std::fs::read_to_string(dev.join("product_name"))
                    .map(|n| n.trim().chars().take(120).collect())
                    .unwrap_or_else(|_| card.file_name().to_string_lossy().into_owned());
                gpus.push(GpuInfo {
                    name,
                    vram_total: total,
                    vram_used: bytes("mem_info_vram_used").unwrap_or(0),
                });
            }
            if gpus.len() >= MAX_GPUS {
                break;
            }
        }
        gpus
    }

    /// The machine's profile (runs `nvidia-smi` once when it is installed).
    pub fn profile(&self) -> Result<SystemProfile, ReadError> {
        Ok(SystemProfile {
            cpu: self
                .text("proc/cpuinfo")
                .map(|t| parse_cpuinfo(&t))
                .unwrap_or_default(),
            cores: cores(),
            mem: self.memory()?,
            gpus: self.gpus(),
        })
    }

    /// A reading now. PSI and the load average are optional (old kernels, other
    /// systems); memory is not. Video memory is left 0: reading it may mean running
    /// `nvidia-smi`, which [`System::reading_with_gpus`] does.
    pub fn reading(&self) -> Result<Reading, ReadError> {
        let psi = |file: &'static str| self.text(file).and_then(|t| parse_psi(file, &t).ok());
        let load1 = self.text("proc/loadavg").and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f32>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        });
        Ok(Reading {
            mem: self.memory()?,
            mem_psi: psi("proc/pressure/memory"),
            cpu_psi: psi("proc/pressure/cpu"),
            load1,
            cores: cores(),
            vram_used: 0,
            vram_total: 0,
        })
    }
}

impl System {
    /// [`System::reading`] with the GPUs' video memory in use and in all (which may
    /// run `nvidia-smi`: call it only where the profile found a GPU).
    pub fn reading_with_gpus(&self) -> Result<Reading, ReadError> {
        let mut r = self.reading()?;
        for g in self.gpus() {
            r.vram_used = r.vram_used.saturating_add(g.vram_used);
            r.vram_total = r.vram_total.saturating_add(g.vram_total);
        }
        Ok(r)
    }
}

/// CPUs this process may run on.
#[must_use]
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// NVIDIA GPUs from `nvidia-smi`, when it is installed and finds any.
fn nvidia_smi() -> Option<Vec<GpuInfo>> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,memory.used",
            "--format=csv,noheader,nounits",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
        .ok()
        .filter(|g| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_of_both_versions() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/23ba\n1:cpu:/\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(v1),
            (Some("/".into()), Some("/process_api/23ba".into()))
        );
        let v2 = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            parse_proc_cgroup(v2),
            (
                Some("/user.slice/user-1000.slice/session-2.scope".into()),
                None
            )
        );
        assert_eq!(parse_proc_cgroup("0::/../../etc\n"), (None, None));
    }

    #[test]
    fn a_fake_root_injects_readings_and_cgroup_limits() {
        let root = std::env::temp_dir().join(format!("governor-root-{}", std::process::id()));
        let w = |p: &str, t: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        w(
            "proc/meminfo",
            "MemTotal: 8388608 kB\nMemAvailable: 409600 kB\n",
        );
        w(
            "proc/pressure/memory",
            "some avg10=30.00 avg60=1 avg300=1 total=5\n",
        );
        w("proc/loadavg", "0.50 0.40 0.30 1/100 42\n");
        let sys = System::at(&root);
        let r = sys.reading().unwrap();
        assert_eq!(r.mem.total, 8 * crate::GIB);
        assert!(r.mem_psi.is_some() && r.cpu_psi.is_none());
        assert_eq!(r.load1, Some(0.5));
        assert_eq!(
            crate::Level::of(r.memory_pressure()),
            crate::Level::Critical
        );
        // A cgroup v1 limit of 2 GiB with 1.5 GiB charged.
        w("proc/self/cgroup", "4:memory:/box\n");
        w(
            "sys/fs/cgroup/memory/box/memory.limit_in_bytes",
            "2147483648\n",
        );
        w(
            "sys/fs/cgroup/memory/box/memory.usage_in_bytes",
            "1610612736\n",
        );
        let m = sys.memory().unwrap();
        assert_eq!((m.total, m.available), (2 * crate::GIB, 400 * crate::MIB));
        // Without meminfo there is no reading, and the error says what to do.
        std::fs::remove_file(root.join("proc/meminfo")).unwrap();
        let e = sys.reading().unwrap_err();
        assert!(e.to_string().contains("ram_budget"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Runs against the real machine (CI is Linux): a profile and a reading must come back
    /// with plausible numbers.
    #[test]
    fn this_machine_can_be_read() {
        let sys = System::default();
        let p = sys.profile().expect("this Linux machine's /proc");
        assert!(p.mem.total > 256 * crate::MIB, "{p:?}");
        assert!(p.mem.available <= p.mem.total);
        assert!(p.cores >= 1);
        let r = sys.reading().unwrap();
        assert!(r.mem.total > 0 && r.memory_pressure() <= 1.0);
    }
}
