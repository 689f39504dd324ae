//! The catalog kept across restarts: the node writes every entry its gossip holds (its
//! own and learned ones, tombstones included, so a withdrawn entry does not come back)
//! to `catalog` in the state directory, and at start feeds them back to the gossip
//! through the checks an entry from a neighbour meets ([`Gossip::restore_all`]).
//!
//! The file, version 1 (integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `GRIDCATL` |
//! | 8 | format version ([`FORMAT_VERSION`]) |
//! | 9..13 | entry count (u32), at most the catalog's bound |
//! | .. | each entry: length (u16, at most [`MAX_ENTRY`]) then its signed wire bytes |
//! | last 32 | SHA-256 of every byte before it |
//!
//! A file is at most [`max_file_len`] bytes (the catalog's bound × the largest entry);
//! a larger one is refused unread. Writes happen when the catalog changed, at most every
//! [`SAVE_INTERVAL`], and at a clean stop, on a blocking thread (temp file, fsync,
//! rename: [`crate::state::write_atomic`]); reads happen on one too, and so does checking
//! each entry's signature. A damaged file is reported and the node starts with an empty
//! catalog; one from a newer version is ignored (and replaced at the next write).
//!
//! [`Gossip::restore_all`]: crate::proto::gossip::Gossip::restore_all

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rns_core::hash::full_hash;
use rns_core::Instant;

use super::Node;
use crate::proto::gossip::entry::{Entry, MAX_ENTRY};
use crate::proto::wire::{Reader, Truncated};

/// The file format this node writes and reads.
pub(super) const FORMAT_VERSION: u8 = 1;
/// How often the catalog is written, at most.
pub(super) const SAVE_INTERVAL: Duration = Duration::from_secs(30);
/// How soon to try again when the previous write is still running.
const BUSY_RETRY: Duration = Duration::from_secs(1);
const MAGIC: &[u8; 8] = b"GRIDCATL";
const HEADER: usize = MAGIC.len() + 1 + 4;
const CHECKSUM: usize = 32;

/// The largest file a catalog of `max_entries` entries makes, bytes.
pub(super) fn max_file_len(max_entries: usize) -> u64 {
    (HEADER + CHECKSUM) as u64 + max_entries as u64 * (2 + MAX_ENTRY) as u64
}

/// Why the catalog file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum StoreError {
    /// Reading failed.
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    /// Writing failed.
    #[error("cannot write it: {0}")]
    Write(#[from] crate::state::StateError),
    /// Larger than any catalog file may be.
    #[error("{len} bytes, more than a catalog file may have ({max})")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The most allowed.
        max: u64,
    },
    /// It does not start with the magic.
    #[error("not a catalog file")]
    NotCatalog,
    /// Written by a newer version of the node.
    #[error("format version {0}, newer than this node's ({FORMAT_VERSION})")]
    Newer(u8),
    /// A version that never existed.
    #[error("unknown format version {0}")]
    Version(u8),
    /// Shorter than its fields say.
    #[error("truncated")]
    Truncated,
    /// The checksum does not match (cut short or damaged).
    #[error("the checksum does not match (cut short or damaged)")]
    Checksum,
    /// More entries than the catalog holds.
    #[error("{count} entries, more than the catalog holds ({max})")]
    TooMany {
        /// The count in the file.
        count: u32,
        /// The catalog's bound.
        max: usize,
    },
    /// An entry longer than any entry may be.
    #[error("an entry of {0} bytes, more than an entry may have ({MAX_ENTRY})")]
    EntryTooLong(usize),
    /// Bytes after the last entry.
    #[error("{0} bytes after the entries")]
    Trailing(usize),
}

impl From<Truncated> for StoreError {
    fn from(_: Truncated) -> StoreError {
        StoreError::Truncated
    }
}

/// The entries of a file whose signatures verified, and how many did not.
#[derive(Debug)]
pub(super) struct Stored {
    /// Checked entries, in file order.
    pub(super) entries: Vec<Entry>,
    /// Entries that are not (or no longer) valid entries: a bad signature, an entry
    /// version this node does not speak.
    pub(super) unreadable: usize,
}

/// The file's header and `entries` (each an entry's wire bytes), without the checksum:
/// cheap enough to build on the loop; [`seal`] finishes it off the loop.
pub(super) fn encode_entries<'a>(entries: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0; 4]);
    let mut count: u32 = 0;
    for e in entries {
        // An Entry is at most MAX_ENTRY bytes, which fits a u16.
        let Ok(len) = u16::try_from(e.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
        count += 1;
    }
    out[MAGIC.len() + 1..HEADER].copy_from_slice(&count.to_be_bytes());
    out
}

/// Append the checksum to what [`encode_entries`] built: the file's bytes.
pub(super) fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let sum = full_hash(&body);
    body.extend_from_slice(&sum);
    body
}

/// The entries' wire bytes in a file's `bytes`, for a catalog of at most `max_entries`;
/// every length and the checksum checked (not the entries themselves).
pub(super) fn decode(bytes: &[u8], max_entries: usize) -> Result<Vec<&[u8]>, StoreError> {
    let max = max_file_len(max_entries);
    if bytes.len() as u64 > max {
        return Err(StoreError::TooLarge {
            len: bytes.len() as u64,
            max,
        });
    }
    let mut r = Reader::new(bytes);
    if r.take::<StoreError>(MAGIC.len())? != MAGIC {
        return Err(StoreError::NotCatalog);
    }
    match r.array::<1, StoreError>()?[0] {
        FORMAT_VERSION => {}
        v if v > FORMAT_VERSION => return Err(StoreError::Newer(v)),
        v => return Err(StoreError::Version(v)),
    }
    let Some(body_len) = bytes.len().checked_sub(CHECKSUM) else {
        return Err(StoreError::Truncated);
    };
    if body_len < HEADER {
        return Err(StoreError::Truncated);
    }
    if full_hash(&bytes[..body_len])[..] != bytes[body_len..] {
        return Err(StoreError::Checksum);
    }
    let count = u32::from_be_bytes(r.array::<4, StoreError>()?);
    if count as usize > max_entries {
        return Err(StoreError::TooMany {
            count,
            max: max_entries,
        });
    }
    let mut r = Reader::new(&bytes[HEADER..body_len]);
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = u16::from_be_bytes(r.array::<2, StoreError>()?) as usize;
        if len > MAX_ENTRY {
            return Err(StoreError::EntryTooLong(len));
        }
        entries.push(r.take::<StoreError>(len)?);
    }
    match r.remaining() {
        0 => Ok(entries),
        n => Err(StoreError::Trailing(n)),
    }
}

/// Read `path` (blocking): `None` if there is none; its entries checked one by one
/// (signatures verified) otherwise.
pub(super) fn load(path: &Path, max_entries: usize) -> Result<Option<Stored>, StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let max = max_file_len(max_entries);
    let len = file.metadata()?.len();
    if len > max {
        return Err(StoreError::TooLarge { len, max });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // One byte past the bound, so a file that grew meanwhile is still refused.
    file.take(max + 1).read_to_end(&mut bytes)?;
    let raw = decode(&bytes, max_entries)?;
    let mut stored = Stored {
        entries: Vec::with_capacity(raw.len()),
        unreadable: 0,
    };
    for r in raw {
        match Entry::decode(r) {
            Ok(e) => stored.entries.push(e),
            Err(_) => stored.unreadable += 1,
        }
    }
    Ok(Some(stored))
}

/// Write `body` (from [`encode_entries`]) to `path` atomically (blocking).
pub(super) fn save(path: &Path, body: Vec<u8>) -> Result<(), StoreError> {
    crate::state::write_atomic(path, &seal(body), 0o600)?;
    Ok(())
}

/// When to write: once the catalog changed, at most every [`SAVE_INTERVAL`].
#[derive(Debug)]
struct Schedule {
    changed: bool,
    /// The earliest next write.
    next: Instant,
}

impl Schedule {
    /// Nothing to write yet; the first write no sooner than an interval after `now`
    /// (a catalog just restored is what the file holds).
    fn new(now: Instant) -> Schedule {
        Schedule {
            changed: false,
            next: now + SAVE_INTERVAL,
        }
    }

    /// When a write is due, if anything changed.
    fn wake(&self) -> Option<Instant> {
        self.changed.then_some(self.next)
    }

    /// Whether to write at `now`; `busy`: the last write is still running, so ask again
    /// a little later.
    fn take(&mut self, now: Instant, busy: bool) -> bool {
        if !self.changed || now < self.next {
            return false;
        }
        if busy {
            self.next = now + BUSY_RETRY;
            return false;
        }
        self.changed = false;
        self.next = now + SAVE_INTERVAL;
        true
    }
}

/// Where the node keeps its catalog, and the writes under way.
#[derive(Debug)]
pub(super) struct CatalogStore {
    path: PathBuf,
    schedule: Schedule,
    writing: Option<tokio::task::JoinHandle<()>>,
    /// Set by a write that failed: the catalog counts as changed again.
    failed: Arc<AtomicBool>,
}

impl CatalogStore {
    /// The catalog changed (an entry came, was replaced or went).
    pub(super) fn changed(&mut self) {
        self.schedule.changed = true;
    }

    /// When the next write is due, if one is.
    pub(super) fn wake(&self) -> Option<Instant> {
        self.schedule.wake()
    }

    fn retry_failed(&mut self) {
        if self.failed.swap(false, Ordering::Relaxed) {
            self.schedule.changed = true;
        }
    }

    /// Write `body` on a blocking thread.
    fn write(&self, body: Vec<u8>) -> tokio::task::JoinHandle<()> {
        let (path, failed) = (self.path.clone(), self.failed.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = save(&path, body) {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep the catalog");
                failed.store(true, Ordering::Relaxed);
            }
        })
    }
}

impl Node {
    /// Read the catalog kept at `path` (off the loop, signatures checked there), give its
    /// entries to the gossip, and keep writing it back from now on. `None`: nothing is
    /// kept (a program attached to a shared instance).
    pub(super) async fn open_catalog_store(&mut self, path: Option<PathBuf>) {
        let Some(path) = path else { return };
        let max = crate::proto::gossip::Config::default().catalog.max_entries;
        let reading = path.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&reading, max)).await;
        let shown = path.display();
        match loaded {
            Ok(Ok(Some(stored))) => {
                let entries = stored.entries.len();
                let counts = self
                    .gossip
                    .gossip
                    .restore_all(crate::clock::now(), stored.entries);
                tracing::info!(
                    path = %shown,
                    entries,
                    restored = counts.stored,
                    refused = counts.refused,
                    unreadable = stored.unreadable,
                    "catalog restored"
                );
            }
            Ok(Ok(None)) => {}
            Ok(Err(e @ StoreError::Newer(_))) => tracing::warn!(
                path = %shown,
                error = %e,
                "catalog file from a newer version ignored; the next write replaces it"
            ),
            Ok(Err(e)) => tracing::warn!(
                path = %shown,
                error = %e,
                "catalog file unreadable; starting with an empty catalog"
            ),
            Err(e) => tracing::warn!(
                path = %shown,
                error = %e,
                "reading the catalog file failed; starting with an empty catalog"
            ),
        }
        self.gossip.store = Some(CatalogStore {
            path,
            schedule: Schedule::new(crate::clock::now()),
            writing: None,
            failed: Arc::new(AtomicBool::new(false)),
        });
    }

    /// The catalog as the file's body (without its checksum).
    fn catalog_body(&self) -> Vec<u8> {
        let entries = self.gossip.gossip.catalog().entries().values();
        encode_entries(entries.map(Entry::bytes))
    }

    /// Write the catalog if it changed and the interval is up.
    pub(super) fn catalog_save_due(&mut self, now: Instant) {
        let Some(store) = self.gossip.store.as_mut() else {
            return;
        };
        store.retry_failed();
        let busy = store.writing.as_ref().is_some_and(|w| !w.is_finished());
        if !store.schedule.take(now, busy) {
            return;
        }
        let body = self.catalog_body();
        if let Some(store) = self.gossip.store.as_mut() {
            store.writing = Some(store.write(body));
        }
    }

    /// At a clean stop: wait for a write under way, then write what changed since.
    pub(super) async fn save_catalog_at_stop(&mut self) {
        let Some(store) = self.gossip.store.as_mut() else {
            return;
        };
        if let Some(w) = store.writing.take() {
            let _ = w.await;
        }
        store.retry_failed();
        if !store.schedule.changed {
            return;
        }
        let body = self.catalog_body();
        if let Some(store) = self.gossip.store.as_mut() {
            let _ = store.write(body).await;
        }
    }
}

#[cfg(test)]
mod tests;
