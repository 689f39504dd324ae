//! Bundle store rates: Grid's redb store (one durable transaction per bundle, as the
//! node writes them) against the way LXMF propagation nodes keep messages — one file per
//! message — done in Python with an fsync per file so both survive a crash alike. (RNS
//! itself keeps no store-and-forward queue; LXMF is the Reticulum stack's one.)

use std::path::Path;

use anyhow::{Context, Result};

use crate::harness::{run_json, tmpdir};

/// Writes and reads per second.
pub(super) struct StoreRates {
    pub(super) writes: f64,
    pub(super) reads: f64,
}

/// Grid's bundle store: `n` bundles of `size` bytes.
pub(super) fn grid(n: usize, size: usize) -> Result<StoreRates> {
    let dir = tmpdir("bundles");
    let (writes, reads) =
        grid::bundle::store::bench_rates(&dir, n, size).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(StoreRates { writes, reads })
}

const PY_FILES: &str = r#"
import json, os, sys, time
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
blobs = [os.urandom(size) for _ in range(n)]
names = [os.urandom(16).hex() for _ in range(n)]
t = time.perf_counter()
for name, b in zip(names, blobs):
    p = os.path.join(d, name)
    with open(p + ".tmp", "wb") as f:
        f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(p + ".tmp", p)
w = time.perf_counter() - t
t = time.perf_counter()
total = 0
for name in names:
    with open(os.path.join(d, name), "rb") as f:
        total += len(f.read())
r = time.perf_counter() - t
assert total == n * size
print(json.dumps({"writes": n / w, "reads": n / r}))
"#;

/// The Python reference: one fsynced file per bundle.
pub(super) fn python(python: &Path, n: usize, size: usize) -> Result<StoreRates> {
    let dir = tmpdir("bundles-py");
    let v = run_json(
        std::process::Command::new(python)
            .args(["-c", PY_FILES])
            .arg(&dir)
            .arg(n.to_string())
            .arg(size.to_string()),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(StoreRates {
        writes: v["writes"].as_f64().context("writes")?,
        reads: v["reads"].as_f64().context("reads")?,
    })
}
