//! Ratchets on a program's destinations: enabled with the keys from the program's ratchet
//! file (RNS's format, signature checked), and the file rewritten off the event loop
//! whenever an announce makes a new key.

use std::path::PathBuf;

use rns_core::ratchets::Ratchets;
use rns_core::AddressHash;

use super::Node;
use crate::api::RatchetSetting;
use crate::Error;

/// Write a ratchet file as RNS does: to `path.tmp`, then renamed over `path`, so a crash
/// leaves the old file or the new one, never half of one.
pub(crate) fn write_ratchet_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

impl Node {
    /// Enable ratchets on a destination the program registered, from its ratchet file's
    /// bytes (`None`: no file yet). Answers the file to write now.
    pub(super) fn enable_ratchets(
        &mut self,
        destination: AddressHash,
        path: PathBuf,
        file: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Error> {
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
        self.links.ratchet_files.insert(destination, path);
        self.transport
            .ratchet_file(&destination)
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
        tokio::task::spawn_blocking(move || {
            if let Err(e) = write_ratchet_file(&path, &bytes) {
                // Packets encrypted to the new key open until a restart; after one, only
                // those to the keys that were stored.
                tracing::error!(path = %path.display(), error = %e, "cannot store ratchets");
            }
        });
    }
}
