//! What is loaded (models, adapters), how big it is and when it was last used; which to
//! unload first.
//!
//! Order of eviction: batch before background, oldest last use first within each. Entries in
//! use and entries of interactive or realtime priority are never evicted (the work a person
//! waits on keeps its model). The registry is bounded ([`MAX_ENTRIES`], keys of at most
//! [`MAX_KEY_LEN`] bytes).

use crate::Priority;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// At most this many loaded things are tracked.
pub const MAX_ENTRIES: usize = 256;
/// The longest key (a model path or an adapter's content hash fits).
pub const MAX_KEY_LEN: usize = 256;

/// Why an entry could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry holds [`MAX_ENTRIES`] already.
    #[error(
        "the governor already tracks {MAX_ENTRIES} loaded models and adapters; unload some first"
    )]
    Full,
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("a loaded model's name may be at most {MAX_KEY_LEN} bytes")]
    KeyTooLong,
}

/// One loaded model or adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Its size in memory, bytes.
    pub bytes: u64,
    /// Its priority (interactive and realtime are never evicted).
    pub priority: Priority,
    /// When it was last used (time since the driver's start).
    #[serde(skip)]
    pub last_use: Duration,
    /// Jobs using it now.
    pub in_use: u32,
}

impl Entry {
    fn evictable(&self) -> bool {
        self.in_use == 0 && self.priority.evictable()
    }
}

/// The loaded models and adapters.
#[derive(Debug, Clone, Default)]
pub struct EvictionRegistry {
    entries: BTreeMap<String, Entry>,
}

impl EvictionRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `key` is loaded (again: its size and priority are replaced).
    pub fn register(
        &mut self,
        key: &str,
        bytes: u64,
        priority: Priority,
        now: Duration,
    ) -> Result<(), RegistryError> {
        if key.len() > MAX_KEY_LEN {
            return Err(RegistryError::KeyTooLong);
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.bytes = bytes;
            e.priority = priority;
            e.last_use = now;
            return Ok(());
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(RegistryError::Full);
        }
        self.entries.insert(
            key.to_owned(),
            Entry {
                bytes,
                priority,
                last_use: now,
                in_use: 0,
            },
        );
        Ok(())
    }

    /// Record a use of `key` that has begun (it cannot be evicted until [`Self::end_use`]).
    /// False when nothing of that name is loaded.
    pub fn begin_use(&mut self, key: &str, now: Duration) -> bool {
        self.entries.get_mut(key).is_some_and(|e| {
            e.in_use = e.in_use.saturating_add(1);
            e.last_use = now;
            true
        })
    }

    /// Record that a use of `key` ended.
    pub fn end_use(&mut self, key: &str, now: Duration) {
        if let Some(e) = self.entries.get_mut(key) {
            e.in_use = e.in_use.saturating_sub(1);
            e.last_use = now;
        }
    }

    /// Forget `key` (it was unloaded).
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        self.entries.remove(key)
    }

    /// The entry for `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Bytes loaded, all entries together.
    #[must_use]
    pub fn resident(&self) -> u64 {
        self.entries.values().map(|e| e.bytes).sum()
    }

    /// Every entry, by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// The entries that may be evicted and have been idle at least `min_idle` at `now`, in
    /// the order to evict them.
    #[must_use]
    pub fn candidates(&self, now: Duration, min_idle: Duration) -> Vec<(&str, &Entry)> {
        let mut c: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.evictable() && now.saturating_sub(e.last_use) >= min_idle)
            .map(|(k, e)| (k.as_str(), e))
            .collect();
        c.sort_by_key(|(k, e)| (e.priority, e.last_use, *k));
        c
    }

    /// The keys to evict, in order, so that at least `need` bytes are freed; `None` when
    /// even all candidates would not free that much.
    #[must_use]
    pub fn to_free(&self, need: u64, now: Duration, min_idle: Duration) -> Option<Vec<String>> {
        let mut freed = 0u64;
        let mut keys = Vec::new();
        for (k, e) in self.candidates(now, min_idle) {
            if freed >= need {
                break;
            }
            freed = freed.saturating_add(e.bytes);
            keys.push(k.to_owned());
        }
        (freed >= need).then_some(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MIB;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn idle_batch_work_goes_before_background_oldest_first_and_interactive_never() {
        let mut r = EvictionRegistry::new();
        r.register("bg-old", 100 * MIB, Priority::Background, s(1))
            .unwrap();
        r.register("bg-new", 100 * MIB, Priority::Background, s(5))
            .unwrap();
        r.register("batch", 100 * MIB, Priority::Batch, s(9))
            .unwrap();
        r.register("chat", 500 * MIB, Priority::Interactive, s(0))
            .unwrap();
        r.register("busy", 100 * MIB, Priority::Batch, s(0))
            .unwrap();
        assert!(r.begin_use("busy", s(0)));
        let order: Vec<_> = r
            .candidates(s(20), Duration::ZERO)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(order, ["batch", "bg-old", "bg-new"]);
        // Only entries idle long enough.
        let idle: Vec<_> = r
            .candidates(s(20), s(16))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(idle, ["bg-old"]);
        assert_eq!(
            r.to_free(150 * MIB, s(20), Duration::ZERO).unwrap(),
            ["batch", "bg-old"]
        );
        assert_eq!(r.to_free(400 * MIB, s(20), Duration::ZERO), None);
        r.end_use("busy", s(21));
        assert_eq!(
            r.to_free(400 * MIB, s(30), Duration::ZERO).unwrap().len(),
            4
        );
        assert_eq!(r.resident(), 900 * MIB);
    }

    #[test]
    fn the_registry_is_bounded() {
        let mut r = EvictionRegistry::new();
        for i in 0..MAX_ENTRIES {
            r.register(&format!("m{i}"), 1, Priority::Batch, s(0))
                .unwrap();
        }
        assert_eq!(
            r.register("one-more", 1, Priority::Batch, s(0)),
            Err(RegistryError::Full)
        );
        // Registering a known key again is an update, not a new entry.
        r.register("m0", 2, Priority::Background, s(1)).unwrap();
        assert_eq!(r.get("m0").unwrap().bytes, 2);
        assert_eq!(
            r.register(&"k".repeat(MAX_KEY_LEN + 1), 1, Priority::Batch, s(0)),
            Err(RegistryError::KeyTooLong)
        );
        assert!(!r.begin_use("absent", s(0)));
    }
}
