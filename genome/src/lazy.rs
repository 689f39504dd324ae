//! An embedder that loads the model when it is first needed and lets it go when it has
//! not been used for a while. A node on an 8 GB laptop should not hold ~180 MB for a
//! model it rarely uses: with no adapters or searches, `grid node` stays small; a search
//! or publish pays the model load (a few hundred ms) once, and [`LazyMiniLm::unload_idle`]
//! (the genome service calls it every minute) gives the memory back after
//! [`IDLE_UNLOAD`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::embed::{check_minilm, EmbedError, Embedder, MiniLm, MINILM_ID};

pub use crate::worker::IDLE_UNLOAD;

/// The loaded model and when it was last used.
type Slot = Option<(Arc<MiniLm>, Instant)>;

/// all-MiniLM-L6-v2, loaded on first use.
pub struct LazyMiniLm {
    dir: PathBuf,
    slot: Mutex<Slot>,
}

impl std::fmt::Debug for LazyMiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyMiniLm")
            .field("dir", &self.dir)
            .field("loaded", &self.loaded())
            .finish()
    }
}

impl LazyMiniLm {
    /// Check that the model files are in `dir` (cheap: nothing is loaded yet).
    pub fn new(dir: &Path) -> Result<LazyMiniLm, EmbedError> {
        check_minilm(dir)?;
        Ok(LazyMiniLm {
            dir: dir.to_path_buf(),
            slot: Mutex::new(None),
        })
    }

    /// Whether the model is in memory now.
    pub fn loaded(&self) -> bool {
        self.slot.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    /// Drop the model if unused for `idle`; true if it was dropped.
    pub fn unload_idle(&self, idle: Duration) -> bool {
        let mut s = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if s.as_ref().is_some_and(|(_, t)| t.elapsed() >= idle) {
            *s = None;
            tracing::info!(
                "embedding model unloaded after {} idle",
                humantime_secs(idle)
            );
            return true;
        }
        false
    }

    fn model(&self) -> Result<Arc<MiniLm>, EmbedError> {
        let mut s = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((m, t)) = s.as_mut() {
            *t = Instant::now();
            return Ok(m.clone());
        }
        let m = Arc::new(MiniLm::load(&self.dir)?);
        tracing::info!("embedding model loaded");
        *s = Some((m.clone(), Instant::now()));
        Ok(m)
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

impl crate::worker::IdleUnload for LazyMiniLm {
    fn unload_idle(&self, idle: Duration) -> bool {
        LazyMiniLm::unload_idle(self, idle)
    }
}

impl Embedder for LazyMiniLm {
    fn id(&self) -> &str {
        MINILM_ID
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.model()?.embed(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_on_first_use_and_unloads_when_idle() {
        let Some(dir) = std::env::var_os(crate::embed::MODELS_ENV) else {
            panic!("GRID_MODELS is not set: run `python3 tools/models_fetch.py .cache/models` and set GRID_MODELS=.cache/models");
        };
        let e = LazyMiniLm::new(Path::new(&dir)).unwrap();
        assert!(!e.loaded());
        assert_eq!(e.embed(&[]).unwrap().len(), 0);
        assert!(!e.loaded(), "nothing to embed, nothing loaded");
        let v = e.embed(&["hello"]).unwrap();
        assert_eq!(v[0].len(), crate::embed::DIM);
        assert!(e.loaded());
        assert!(!e.unload_idle(Duration::from_secs(3600)));
        assert!(e.unload_idle(Duration::ZERO));
        assert!(!e.loaded());
        assert_eq!(e.embed(&["hello"]).unwrap(), v, "reloads the same model");
        assert!(LazyMiniLm::new(Path::new("/nonexistent")).is_err());
    }
}
