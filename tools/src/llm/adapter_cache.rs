//! Loaded adapters kept for the next requests, least recently used out.

use std::path::Path;
use std::sync::Arc;

use grid_genome::generate::protocol::ADAPTER_CACHE_BYTES;

use super::config::LlamaConfig;
use super::lora::{load, Adapter, AdapterError, AdapterForm};

/// Most adapters kept loaded.
pub const MAX_ADAPTERS: usize = 4;
/// Most memory the kept adapters take together, bytes (also the largest one adapter):
/// the protocol's [`ADAPTER_CACHE_BYTES`], which the node's memory plan includes.
pub const MAX_BYTES: usize = ADAPTER_CACHE_BYTES as usize;

/// Adapters by content hash, most recently used last.
pub struct AdapterCache {
    entries: Vec<(String, Arc<Adapter>)>,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for AdapterCache {
    fn default() -> Self {
        AdapterCache::new(MAX_ADAPTERS, MAX_BYTES)
    }
}

impl AdapterCache {
    /// A cache of at most `max_entries` adapters and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> AdapterCache {
        AdapterCache {
            entries: Vec::new(),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The adapter with content hash `hash`, loaded from `dir` in `form` unless kept;
    /// and whether it was kept. (A worker runs one pass, so every adapter it keeps has
    /// that pass's form.)
    pub fn get(
        &mut self,
        hash: &str,
        dir: &Path,
        model: &LlamaConfig,
        form: AdapterForm,
    ) -> Result<(Arc<Adapter>, bool), AdapterError> {
        let max = self.max_bytes;
        self.get_with(hash, || load(dir, model, form, max))
    }

    /// As [`AdapterCache::get`], with the loader given.
    pub fn get_with(
        &mut self,
        hash: &str,
        load: impl FnOnce() -> Result<Adapter, AdapterError>,
    ) -> Result<(Arc<Adapter>, bool), AdapterError> {
        if let Some(i) = self.entries.iter().position(|(h, _)| h == hash) {
            let entry = self.entries.remove(i);
            let adapter = entry.1.clone();
            self.entries.push(entry);
            return Ok((adapter, true));
        }
        let adapter = Arc::new(load()?);
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries
                || self.bytes() + adapter.bytes > self.max_bytes)
        {
            self.entries.remove(0);
        }
        self.entries.push((hash.to_string(), adapter.clone()));
        Ok((adapter, false))
    }

    /// Memory the kept adapters take, bytes.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, a)| a.bytes).sum()
    }

    /// Hashes kept, least recently used first.
    pub fn hashes(&self) -> Vec<&str> {
        self.entries.iter().map(|(h, _)| h.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first_by_count_and_by_bytes() {
        let mut c = AdapterCache::new(2, 100);
        let loads = std::cell::Cell::new(0);
        let get = |c: &mut AdapterCache, h: &str, bytes: usize| {
            c.get_with(h, || {
                loads.set(loads.get() + 1);
                Ok(Adapter::empty(bytes))
            })
            .map(|(_, kept)| kept)
            .unwrap()
        };
        assert!(!get(&mut c, "a", 10));
        assert!(!get(&mut c, "b", 10));
        assert!(get(&mut c, "a", 10));
        assert!(!get(&mut c, "c", 10)); // b goes: a was used after it
        assert_eq!(c.hashes(), ["a", "c"]);
        assert!(!get(&mut c, "d", 95)); // both go to make room
        assert_eq!(c.hashes(), ["d"]);
        assert_eq!(c.bytes(), 95);
        assert_eq!(loads.get(), 4);
        let e = c.get_with("e", || Err(AdapterError::TooLarge { bytes: 1, max: 0 }));
        assert!(e.is_err());
        assert_eq!(c.hashes(), ["d"], "a failed load changes nothing");
    }
}
