//! Helpers for the crate's unit tests.

use std::path::PathBuf;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// `grid-<tag>-<name>-<pid>-<thread>`, empty.
    pub(crate) fn new(tag: &str, name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "grid-{tag}-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
