//! A package as it travels between nodes: the signed manifest and the three package
//! files in one postcard blob, answered on the `genome/package` link request path.
//! Responses travel as RNS resource segments, which bounds a package to
//! [`MAX_ARCHIVE`] for now.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::package::{ADAPTER_CONFIG, ADAPTER_TOML, ADAPTER_WEIGHTS};
use crate::registry::{Entry, MANIFEST_FILE};

/// The link request path packages are fetched on.
pub const PACKAGE_PATH: &str = "genome/package";
/// The largest package that travels (16 resource segments of 1 MiB, less overhead).
pub const MAX_ARCHIVE: usize = 15 * 1024 * 1024;

/// A package in transit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archive {
    /// `manifest.json` (the signed manifest).
    pub manifest: Vec<u8>,
    /// `adapter.toml`.
    pub toml: Vec<u8>,
    /// `adapter_config.json`.
    pub config: Vec<u8>,
    /// `adapter_model.safetensors`.
    pub weights: Vec<u8>,
}

/// Why an archive could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// Bigger than [`MAX_ARCHIVE`].
    #[error("package of {0} bytes is larger than the {MAX_ARCHIVE} bytes that travel for now")]
    TooLarge(u64),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The bytes are not an archive.
    #[error("not a package archive: {0}")]
    Malformed(String),
}

impl Archive {
    /// Read a stored package.
    pub fn read(entry: &Entry) -> Result<Archive, ArchiveError> {
        let total: u64 = [MANIFEST_FILE, ADAPTER_TOML, ADAPTER_CONFIG, ADAPTER_WEIGHTS]
            .iter()
            .map(|f| std::fs::metadata(entry.dir.join(f)).map_or(0, |m| m.len()))
            .sum();
        if total > MAX_ARCHIVE as u64 {
            return Err(ArchiveError::TooLarge(total));
        }
        let read = |f: &str| {
            std::fs::read(entry.dir.join(f)).map_err(|e| ArchiveError::Io(format!("{f}: {e}")))
        };
        Ok(Archive {
            manifest: read(MANIFEST_FILE)?,
            toml: read(ADAPTER_TOML)?,
            config: read(ADAPTER_CONFIG)?,
            weights: read(ADAPTER_WEIGHTS)?,
        })
    }

    /// Encode for the wire.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decode; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Archive, ArchiveError> {
        if bytes.len() > MAX_ARCHIVE + 1024 {
            return Err(ArchiveError::TooLarge(bytes.len() as u64));
        }
        let (a, rest) = postcard::take_from_bytes::<Archive>(bytes)
            .map_err(|e| ArchiveError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ArchiveError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        Ok(a)
    }

    /// Write the package files (not the manifest) into `dir`.
    pub fn write_files(&self, dir: &Path) -> Result<(), ArchiveError> {
        std::fs::create_dir_all(dir).map_err(|e| ArchiveError::Io(e.to_string()))?;
        for (f, b) in [
            (ADAPTER_TOML, &self.toml),
            (ADAPTER_CONFIG, &self.config),
            (ADAPTER_WEIGHTS, &self.weights),
        ] {
            std::fs::write(dir.join(f), b).map_err(|e| ArchiveError::Io(format!("{f}: {e}")))?;
        }
        Ok(())
    }
}
