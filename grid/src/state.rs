//! The state directory: `config.toml`, the identity file and the control socket.

use std::io::Write;
use std::path::{Path, PathBuf};

use rns_core::destination::{hash_from_name, well_known};
use rns_core::{AddressHash, Identity};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG};

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Filesystem trouble.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The identity file is not a 64-byte RNS identity.
    #[error(
        "{0}: not an RNS identity file (expected 64 bytes: X25519 private key then Ed25519 seed)"
    )]
    BadIdentity(PathBuf),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A node's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Use `dir`, or `$GRID_HOME`, or `~/.grid`.
    pub fn resolve(dir: Option<&Path>) -> StateDir {
        let root = dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("GRID_HOME").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".grid")))
            .unwrap_or_else(|| PathBuf::from(".grid"));
        StateDir { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The identity file.
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity")
    }

    /// Trust levels given to other identities.
    pub fn trust_path(&self) -> PathBuf {
        self.root.join(crate::trust::TRUST_FILE)
    }

    /// The bundle store: queued bundles, delivered-bundle marks, job results.
    pub fn bundles_path(&self) -> PathBuf {
        self.root.join("bundles.redb")
    }

    /// The audit log of remote commands.
    pub fn audit_path(&self) -> PathBuf {
        self.root.join(crate::audit::AUDIT_FILE)
    }

    /// The catalog gossip brought, kept across restarts.
    pub fn catalog_path(&self) -> PathBuf {
        self.root.join("catalog")
    }

    /// The control socket.
    pub fn socket_path(&self) -> PathBuf {
        self.root.join("grid.sock")
    }

    /// Create the directory (mode 0700 on Unix).
    pub fn ensure(&self) -> Result<(), StateError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }

    /// Load `config.toml`, writing the default first if there is none.
    pub fn load_or_create_config(&self) -> Result<Config, StateError> {
        self.ensure()?;
        let path = self.config_path();
        if !path.exists() {
            write_atomic(&path, DEFAULT_CONFIG.as_bytes(), 0o644)?;
            tracing::info!(path = %path.display(), "wrote default configuration");
        }
        Ok(Config::load(&path)?)
    }

    /// Load the identity, creating and saving a new one if there is none.
    pub fn load_or_create_identity(&self) -> Result<Identity, StateError> {
        self.ensure()?;
        let path = self.identity_path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                Identity::from_private_bytes(&bytes).map_err(|_| StateError::BadIdentity(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Identity::generate(&mut rand_core::OsRng);
                write_atomic(&path, &id.to_private_bytes(), 0o600)?;
                tracing::info!(identity = %id.hash(), "created a new identity");
                Ok(id)
            }
            Err(e) => Err(io(&path)(e)),
        }
    }
}

/// Write a file atomically (temp file, fsync, rename, fsync of the directory), so a crash
/// never leaves half a file and a completed write survives power loss.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(data).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    // The rename is durable only once the directory entry is.
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// The destination files are sent to (`rncp`-compatible).
pub const CP_DESTINATION: &str = "rncp.receive";

/// The destinations a Grid node hosts, by full name.
pub fn node_destinations(identity: &Identity) -> Vec<(&'static str, AddressHash)> {
    [well_known::GRID_NODE, well_known::PROBE, CP_DESTINATION]
        .into_iter()
        .map(|n| (n, hash_from_name(n, Some(&identity.hash()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("grid-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = StateDir::resolve(Some(&dir));
        let a = s.load_or_create_identity().unwrap();
        let b = s.load_or_create_identity().unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(std::fs::read(s.identity_path()).unwrap().len(), 64);
        s.load_or_create_config().unwrap();
        assert!(s.config_path().exists());
        std::fs::write(s.identity_path(), b"short").unwrap();
        assert!(matches!(
            s.load_or_create_identity(),
            Err(StateError::BadIdentity(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
