//! Ratchets on a program's destinations: enabled with the keys from the program's ratchet
//! file (RNS's format, signature checked), and the file rewritten off the event loop
//! whenever an announce makes a new key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rns_core::ratchets::Ratchets;
use rns_core::AddressHash;

use super::Node;
use crate::api::RatchetSetting;
use crate::Error;

/// Numbers ratchet file snapshots in the order the event loop takes them.
static SNAPSHOTS: AtomicU64 = AtomicU64::new(1);
/// The newest snapshot written to each path. Held while a file is written, so writes
/// never overlap (two rotations in quick succession on a slow disk would otherwise share
/// `path.tmp`).
static WRITTEN: Mutex<BTreeMap<PathBuf, u64>> = Mutex::new(BTreeMap::new());

/// A ratchet file's bytes as the node had them at one moment, to be written off the
/// event loop.
#[derive(Debug)]
pub(crate) struct RatchetSnapshot {
    path: PathBuf,
    bytes: Vec<u8>,
    number: u64,
}

impl RatchetSnapshot {
    /// Take the snapshot now (on the event loop, so numbers follow the keys' order).
    pub(crate) fn new(path: PathBuf, bytes: Vec<u8>) -> RatchetSnapshot {
        let number = SNAPSHOTS.fetch_add(1, Ordering::Relaxed);
        RatchetSnapshot {
            path,
            bytes,
            number,
        }
    }

    /// Write it as RNS does: to `path.tmp`, then renamed over `path`, so a crash leaves
    /// the old file or the new one, never half of one. A snapshot older than one already
    /// written is skipped: the file never goes back to fewer keys.
    pub(crate) fn write(self) -> std::io::Result<()> {
        let mut written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
        if written.get(&self.path).is_some_and(|n| *n >= self.number) {
            return Ok(());
        }
        let mut temp = self.path.as_os_str().to_owned();
        temp.push(".tmp");
        std::fs::write(&temp, &self.bytes)?;
        std::fs::rename(&temp, &self.path)?;
        written.insert(self.path, self.number);
        Ok(())
    }
}

impl Node {
    /// Enable ratchets on a destination the program registered, from its ratchet file's
    /// bytes (`None`: no file yet). Answers the file to write now.
    pub(super) fn enable_ratchets(
        &mut self,
        destination: AddressHash,
        path: PathBuf,
        file: Option<Vec<u8>>,
    ) -> Result<RatchetSnapshot, Error> {
        if !self.links.app_destinations.contains(&destination) {
            return Err(Error::BadRequest(format!(
                "{destination} is not a SINGLE destination this program registered"
            )));
        }
        let identity = self
            .transport
            .recall_identity(&destination)
            .ok_or_else(|| Error::BadRequest(format!("{destination} has no identity")))?;
        let keys = match file {
            Some(bytes) => Ratchets::from_file(&identity, &bytes).map_err(|e| {
                Error::BadRequest(format!(
                    "{}: {e} (remove it to start new ratchets, then announce soon)",
                    path.display()
                ))
            })?,
            None => Vec::new(),
        };
        self.transport
            .enable_ratchets(&destination, keys)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        self.links.ratchet_files.insert(destination, path.clone());
        self.transport
            .ratchet_file(&destination)
            .map(|bytes| RatchetSnapshot::new(path, bytes))
            .ok_or_else(|| Error::Failed("ratchets were not enabled".into()))
    }

    /// Change how a destination's ratchets behave.
    pub(super) fn ratchet_setting(
        &mut self,
        destination: AddressHash,
        setting: RatchetSetting,
    ) -> Result<(), Error> {
        let r = self
            .transport
            .ratchets_mut(&destination)
            .filter(|_| self.links.app_destinations.contains(&destination))
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "{destination}: enable ratchets on it first (enable_ratchets)"
                ))
            })?;
        match setting {
            RatchetSetting::Enforce(on) => r.set_enforced(on),
            RatchetSetting::Interval(d) => r.set_interval(d.as_secs()),
            RatchetSetting::Retained(n) => r.set_retained(n),
        }
        Ok(())
    }

    /// An announce made a new ratchet key: store the file, off the event loop.
    pub(super) fn on_ratchets_rotated(&mut self, destination: AddressHash) {
        let (Some(path), Some(bytes)) = (
            self.links.ratchet_files.get(&destination).cloned(),
            self.transport.ratchet_file(&destination),
        ) else {
            return;
        };
        let snapshot = RatchetSnapshot::new(path.clone(), bytes);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = snapshot.write() {
                // Packets encrypted to the new key open until a restart; after one, only
                // those to the keys that were stored.
                tracing::error!(path = %path.display(), error = %e, "cannot store ratchets");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::RatchetSnapshot;

    #[test]
    fn a_ratchet_file_never_goes_back_to_an_older_snapshot() {
        let dir = grid_test_support::TempDir::new("ratchet-order");
        let path = dir.path().join("echo.ratchets");
        let older = RatchetSnapshot::new(path.clone(), b"two keys".to_vec());
        let newer = RatchetSnapshot::new(path.clone(), b"three keys".to_vec());
        // The blocking threads ran them out of order: the newer one stays.
        newer.write().unwrap();
        older.write().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three keys");
        RatchetSnapshot::new(path.clone(), b"four keys".to_vec())
            .write()
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"four keys");
        // Writes of many snapshots at once never leave a torn or older file.
        let snapshots: Vec<RatchetSnapshot> = (0..32)
            .map(|i| RatchetSnapshot::new(path.clone(), format!("{i:04} keys").into_bytes()))
            .collect();
        std::thread::scope(|s| {
            for snap in snapshots {
                s.spawn(move || snap.write().unwrap());
            }
        });
        assert_eq!(std::fs::read(&path).unwrap(), b"0031 keys");
    }
}
