//! The bundle store: sealed bundles waiting for delivery, kept in one embedded `redb`
//! database file so that nothing accepted is lost to a crash (DESIGN decision 6).
//!
//! Every mutating call is a single write transaction, committed (fsynced) before it
//! returns, so a `kill -9` right after a call returns loses nothing and a crash in the
//! middle of one leaves the store as it was before the call.
//!
//! # Tables
//!
//! * `bundles`: id → the postcard-encoded [`StoredBundle`] (the primary data);
//! * `bundles_by_destination`: destination ‖ created_ms (big-endian) ‖ id → (), so
//!   [`BundleStore::for_destination`] is an ordered range scan;
//! * `bundles_by_expiry`: expires_ms (big-endian) ‖ id → (), so [`BundleStore::expire`]
//!   reads only what it drops;
//! * `destination_counts`: destination → bundles waiting for it;
//! * `seen`: id → expires_ms, plus `seen_by_expiry` (expires_ms ‖ id → ()) to expire and
//!   bound it cheaply;
//! * `jobs`: correlation → (insertion sequence, record), plus `job_order`
//!   (sequence → correlation) to list them and drop the oldest;
//! * `meta`: the running total of sealed bytes and the job sequence counter.
//!
//! The index tables, the counts and the byte total are derived from `bundles` and are
//! updated in the same transaction as it; if they are ever found inconsistent (checked on
//! open) or a bundle record cannot be decoded, they are rebuilt from `bundles` and the
//! undecodable records are deleted. Nothing read from disk is trusted enough to panic on.
//!
//! Calls block on disk I/O (a commit is an fsync): from async code run them on a blocking
//! thread (`tokio::task::spawn_blocking`). The store is `Send + Sync` and can be shared in
//! an `Arc`; redb serialises write transactions and lets reads run alongside them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use redb::{
    Database, ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize, Serializer};

/// The largest sealed frame a bundle may carry, bytes; bigger ones are refused so one
/// bundle cannot take the whole store (or a whole transaction's memory).
pub const MAX_SEALED_BYTES: usize = 32 * 1024 * 1024;
/// The most seen-marks kept; past this the ones expiring soonest are dropped, so the
/// dedupe set cannot grow without bound.
pub const MAX_SEEN: u64 = 100_000;
/// The most job records kept; past this the oldest-written are dropped.
pub const MAX_JOBS: u64 = 10_000;
/// The largest job record accepted, bytes (jobs are meant to be small).
pub const MAX_JOB_RECORD_BYTES: usize = 1024 * 1024;

type Id = [u8; 16];

const BUNDLES: TableDefinition<&Id, &[u8]> = TableDefinition::new("bundles");
const BY_DEST: TableDefinition<&[u8; 40], ()> = TableDefinition::new("bundles_by_destination");
const BY_EXPIRY: TableDefinition<&[u8; 24], ()> = TableDefinition::new("bundles_by_expiry");
const DEST_COUNTS: TableDefinition<&Id, u64> = TableDefinition::new("destination_counts");
const SEEN: TableDefinition<&Id, u64> = TableDefinition::new("seen");
const SEEN_BY_EXPIRY: TableDefinition<&[u8; 24], ()> = TableDefinition::new("seen_by_expiry");
const JOBS: TableDefinition<u64, (u64, &[u8])> = TableDefinition::new("jobs");
const JOB_ORDER: TableDefinition<u64, u64> = TableDefinition::new("job_order");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `meta` key: the sum of the sealed sizes of all stored bundles.
const META_BYTES: &str = "sealed_bytes";
/// `meta` key: the last job insertion sequence number handed out.
const META_JOB_SEQ: &str = "job_seq";

/// Why a bundle store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database (or the file system under it) failed; the text says what was being done.
    #[error("bundle store: {0}")]
    Db(String),
    /// Storing the bundle would take the sealed bytes past the quota.
    #[error("bundle store quota exceeded: {used} of {quota} bytes used, bundle needs {size}")]
    QuotaExceeded {
        /// Sealed bytes stored now.
        used: u64,
        /// The store's quota.
        quota: u64,
        /// The refused bundle's sealed size.
        size: u64,
    },
    /// A bundle's sealed frame (or a job record) is bigger than the store accepts.
    #[error("bundle store: record of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The refused record's size.
        size: u64,
        /// The limit it passed.
        max: u64,
    },
    /// A stored record could not be decoded; it has been (or will be) removed.
    #[error("bundle store: corrupt record: {0}")]
    Corrupt(String),
}

/// Attaches what was being done to a redb (or I/O) error.
trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError>;
}

impl<T, E: fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db(format!("{what}: {e}")))
    }
}

/// A bundle as stored: opaque sealed bytes plus what routing needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBundle {
    /// Unique bundle id (the dedupe key).
    pub id: [u8; 16],
    /// The `grid.node` destination hash it is for.
    pub destination: [u8; 16],
    /// When it was created, unix ms (delivery order is oldest first).
    pub created_ms: u64,
    /// When it stops being worth delivering, unix ms; dropped after this.
    pub expires_ms: u64,
    /// Held for another node (we are a custodian), not originated here.
    pub custody: bool,
    /// The end-to-end encrypted frame.
    pub sealed: Vec<u8>,
}

/// What [`BundleStore::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The bundle was stored.
    New,
    /// The bundle was already stored, or was already delivered/handled here (seen); nothing
    /// changed.
    Duplicate,
}

/// Totals over the store, for status displays and quota decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bundles stored.
    pub bundles: u64,
    /// Sum of their sealed sizes (what the quota bounds).
    pub bytes: u64,
    /// Distinct destinations with bundles waiting.
    pub destinations: u64,
}

/// The on-disk form of a bundle. Same postcard encoding as [`StoredBundle`] (postcard
/// writes a `Vec<u8>` sequence and a byte string identically), but it borrows `sealed`, so
/// encoding is one copy and index work decodes the header without copying the frame.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    id: Id,
    destination: Id,
    created_ms: u64,
    expires_ms: u64,
    custody: bool,
    #[serde(borrow, serialize_with = "as_bytes")]
    sealed: &'a [u8],
}

fn as_bytes<S: Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

impl<'a> Record<'a> {
    fn of(b: &'a StoredBundle) -> Record<'a> {
        Record {
            id: b.id,
            destination: b.destination,
            created_ms: b.created_ms,
            expires_ms: b.expires_ms,
            custody: b.custody,
            sealed: &b.sealed,
        }
    }

    fn to_bundle(&self) -> StoredBundle {
        StoredBundle {
            id: self.id,
            destination: self.destination,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            custody: self.custody,
            sealed: self.sealed.to_vec(),
        }
    }

    fn info(&self) -> Info {
        Info {
            id: self.id,
            destination: self.destination,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            size: self.sealed.len() as u64,
        }
    }
}

/// Decodes a stored bundle record; `None` if it is not a whole, valid record for `id`.
fn decode<'a>(id: &Id, raw: &'a [u8]) -> Option<Record<'a>> {
    match postcard::take_from_bytes::<Record<'a>>(raw) {
        Ok((r, rest)) if rest.is_empty() && r.id == *id => Some(r),
        _ => None,
    }
}

/// What the derived tables need to know about a bundle.
struct Info {
    id: Id,
    destination: Id,
    created_ms: u64,
    expires_ms: u64,
    size: u64,
}

fn dest_key(destination: &Id, created_ms: u64, id: &Id) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..16].copy_from_slice(destination);
    k[16..24].copy_from_slice(&created_ms.to_be_bytes());
    k[24..].copy_from_slice(id);
    k
}

fn expiry_key(expires_ms: u64, id: &Id) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&expires_ms.to_be_bytes());
    k[8..].copy_from_slice(id);
    k
}

/// The id at the end of an index key.
fn tail_id(key: &[u8]) -> Id {
    let mut id = [0u8; 16];
    id.copy_from_slice(&key[key.len() - 16..]);
    id
}

/// All tables, opened in one write transaction, with the bookkeeping that keeps the
/// derived ones in step with `bundles`.
struct Tables<'t> {
    bundles: Table<'t, &'static Id, &'static [u8]>,
    by_dest: Table<'t, &'static [u8; 40], ()>,
    by_expiry: Table<'t, &'static [u8; 24], ()>,
    dest_counts: Table<'t, &'static Id, u64>,
    seen: Table<'t, &'static Id, u64>,
    seen_by_expiry: Table<'t, &'static [u8; 24], ()>,
    jobs: Table<'t, u64, (u64, &'static [u8])>,
    job_order: Table<'t, u64, u64>,
    meta: Table<'t, &'static str, u64>,
    /// An undecodable bundle was met: the derived tables must be rebuilt before commit.
    corrupt: bool,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            bundles: txn.open_table(BUNDLES).ctx("open bundles table")?,
            by_dest: txn.open_table(BY_DEST).ctx("open destination index")?,
            by_expiry: txn.open_table(BY_EXPIRY).ctx("open expiry index")?,
            dest_counts: txn.open_table(DEST_COUNTS).ctx("open destination counts")?,
            seen: txn.open_table(SEEN).ctx("open seen table")?,
            seen_by_expiry: txn.open_table(SEEN_BY_EXPIRY).ctx("open seen index")?,
            jobs: txn.open_table(JOBS).ctx("open jobs table")?,
            job_order: txn.open_table(JOB_ORDER).ctx("open job order")?,
            meta: txn.open_table(META).ctx("open meta table")?,
            corrupt: false,
        })
    }

    fn meta_get(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.meta.get(key).ctx("read meta")?.map(|g| g.value()))
    }

    fn meta_set(&mut self, key: &str, value: u64) -> Result<(), StoreError> {
        self.meta.insert(key, value).ctx("write meta")?;
        Ok(())
    }

    fn bytes(&self) -> Result<u64, StoreError> {
        Ok(self.meta_get(META_BYTES)?.unwrap_or(0))
    }

    /// Stores a bundle known not to be present, with its index entries and accounting.
    fn add(&mut self, r: &Record<'_>, raw: &[u8]) -> Result<(), StoreError> {
        self.bundles.insert(&r.id, raw).ctx("insert bundle")?;
        self.link(&r.info())?;
        let bytes = self.bytes()?.saturating_add(r.sealed.len() as u64);
        self.meta_set(META_BYTES, bytes)
    }

    /// Adds a bundle's index entries and destination count (not the byte total).
    fn link(&mut self, i: &Info) -> Result<(), StoreError> {
        self.by_dest
            .insert(&dest_key(&i.destination, i.created_ms, &i.id), ())
            .ctx("insert destination index")?;
        self.by_expiry
            .insert(&expiry_key(i.expires_ms, &i.id), ())
            .ctx("insert expiry index")?;
        let n = self
            .dest_counts
            .get(&i.destination)
            .ctx("read destination count")?
            .map(|g| g.value())
            .unwrap_or(0);
        self.dest_counts
            .insert(&i.destination, n.saturating_add(1))
            .ctx("write destination count")?;
        Ok(())
    }

    /// Removes bundle `id` and everything derived from it; true if it was there. An
    /// undecodable record is removed too and flags a rebuild of the derived tables.
    fn take(&mut self, id: &Id) -> Result<bool, StoreError> {
        let info = match self.bundles.remove(id).ctx("remove bundle")? {
            None => return Ok(false),
            Some(raw) => decode(id, raw.value()).map(|r| r.info()),
        };
        match info {
            Some(i) => {
                self.by_dest
                    .remove(&dest_key(&i.destination, i.created_ms, &i.id))
                    .ctx("remove destination index")?;
                self.by_expiry
                    .remove(&expiry_key(i.expires_ms, &i.id))
                    .ctx("remove expiry index")?;
                let n = self
                    .dest_counts
                    .get(&i.destination)
                    .ctx("read destination count")?
                    .map(|g| g.value())
                    .unwrap_or(0);
                if n <= 1 {
                    self.dest_counts
                        .remove(&i.destination)
                        .ctx("remove destination count")?;
                } else {
                    self.dest_counts
                        .insert(&i.destination, n - 1)
                        .ctx("write destination count")?;
                }
                let bytes = self.bytes()?.saturating_sub(i.size);
                self.meta_set(META_BYTES, bytes)?;
            }
            None => self.corrupt = true,
        }
        Ok(true)
    }

    /// Rebuilds the index tables, destination counts and byte total from `bundles`,
    /// deleting records that cannot be decoded. Returns how many were deleted.
    fn rebuild(&mut self) -> Result<usize, StoreError> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for entry in self.bundles.iter().ctx("scan bundles")? {
            let (k, v) = entry.ctx("scan bundles")?;
            let id = *k.value();
            match decode(&id, v.value()) {
                Some(r) => good.push(r.info()),
                None => bad.push(id),
            }
        }
        for id in &bad {
            self.bundles.remove(id).ctx("remove corrupt bundle")?;
        }
        self.by_dest
            .retain(|_, _| false)
            .ctx("clear destination index")?;
        self.by_expiry
            .retain(|_, _| false)
            .ctx("clear expiry index")?;
        self.dest_counts
            .retain(|_, _| false)
            .ctx("clear destination counts")?;
        let mut bytes = 0u64;
        for i in &good {
            self.link(i)?;
            bytes = bytes.saturating_add(i.size);
        }
        self.meta_set(META_BYTES, bytes)?;
        self.corrupt = false;
        if !bad.is_empty() {
            tracing::warn!(
                removed = bad.len(),
                kept = good.len(),
                "bundle store: removed undecodable bundle records and rebuilt the indexes"
            );
        }
        Ok(bad.len())
    }

    /// Rebuilds `seen_by_expiry` from `seen`.
    fn rebuild_seen(&mut self) -> Result<(), StoreError> {
        let mut marks = Vec::new();
        for entry in self.seen.iter().ctx("scan seen")? {
            let (k, v) = entry.ctx("scan seen")?;
            marks.push((*k.value(), v.value()));
        }
        self.seen_by_expiry
            .retain(|_, _| false)
            .ctx("clear seen index")?;
        for (id, exp) in marks {
            self.seen_by_expiry
                .insert(&expiry_key(exp, &id), ())
                .ctx("insert seen index")?;
        }
        Ok(())
    }

    /// Rebuilds `job_order` from `jobs` and makes sure the sequence counter is past them.
    fn rebuild_jobs(&mut self) -> Result<(), StoreError> {
        let mut order = BTreeMap::new();
        for entry in self.jobs.iter().ctx("scan jobs")? {
            let (k, v) = entry.ctx("scan jobs")?;
            order.insert(v.value().0, k.value());
        }
        self.job_order.retain(|_, _| false).ctx("clear job order")?;
        let mut last = self.meta_get(META_JOB_SEQ)?.unwrap_or(0);
        for (seq, corr) in order {
            self.job_order.insert(seq, corr).ctx("insert job order")?;
            last = last.max(seq);
        }
        self.meta_set(META_JOB_SEQ, last)
    }

    /// Cheap consistency checks (table lengths, the byte total's presence), repairing what
    /// fails. Returns true if anything was rebuilt.
    fn check(&mut self) -> Result<bool, StoreError> {
        let n = self.bundles.len().ctx("count bundles")?;
        let mut counted = 0u64;
        for entry in self.dest_counts.iter().ctx("scan destination counts")? {
            let (_, v) = entry.ctx("scan destination counts")?;
            counted = counted.saturating_add(v.value());
        }
        let mut fixed = false;
        if self.by_dest.len().ctx("count destination index")? != n
            || self.by_expiry.len().ctx("count expiry index")? != n
            || counted != n
            || self.meta_get(META_BYTES)?.is_none()
        {
            self.rebuild()?;
            fixed = true;
        }
        if self.seen.len().ctx("count seen")? != self.seen_by_expiry.len().ctx("count seen")? {
            self.rebuild_seen()?;
            fixed = true;
        }
        if self.jobs.len().ctx("count jobs")? != self.job_order.len().ctx("count jobs")? {
            self.rebuild_jobs()?;
            fixed = true;
        }
        Ok(fixed)
    }

    /// Marks `id` seen until `expires_ms` (keeping the later expiry if already marked).
    /// Returns (was not marked before, anything changed).
    fn mark_seen(&mut self, id: &Id, expires_ms: u64) -> Result<(bool, bool), StoreError> {
        let old = self.seen.get(id).ctx("read seen")?.map(|g| g.value());
        if let Some(old) = old {
            if old >= expires_ms {
                return Ok((false, false));
            }
            self.seen_by_expiry
                .remove(&expiry_key(old, id))
                .ctx("remove seen index")?;
        }
        self.seen.insert(id, expires_ms).ctx("insert seen")?;
        self.seen_by_expiry
            .insert(&expiry_key(expires_ms, id), ())
            .ctx("insert seen index")?;
        while self.seen.len().ctx("count seen")? > MAX_SEEN {
            let Some((k, _)) = self.seen_by_expiry.pop_first().ctx("evict seen")? else {
                break;
            };
            let victim = tail_id(k.value());
            drop(k);
            self.seen.remove(&victim).ctx("evict seen")?;
        }
        Ok((old.is_none(), true))
    }
}

/// The persistent bundle store: one redb database file. See the module docs.
pub struct BundleStore {
    db: Database,
    path: PathBuf,
    quota_bytes: u64,
    /// A reader met an undecodable record: the next write transaction rebuilds first.
    needs_repair: AtomicBool,
}

impl fmt::Debug for BundleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleStore")
            .field("path", &self.path)
            .field("quota_bytes", &self.quota_bytes)
            .finish_non_exhaustive()
    }
}

impl BundleStore {
    /// Open or create the database file (parent dir created). `quota_bytes` bounds the sum
    /// of sealed sizes. Inconsistent derived tables (e.g. from an older version) are
    /// rebuilt here.
    pub fn open(path: &Path, quota_bytes: u64) -> Result<BundleStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .ctx(&format!("create directory {}", parent.display()))?;
        }
        let db = Database::create(path).ctx(&format!("open {}", path.display()))?;
        let store = BundleStore {
            db,
            path: path.to_path_buf(),
            quota_bytes,
            needs_repair: AtomicBool::new(false),
        };
        // Always commit: the first open creates the tables that readers expect.
        store.write("open", |t| {
            t.check()?;
            Ok(((), true))
        })?;
        Ok(store)
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The quota on the sum of sealed sizes, bytes.
    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Runs `f` in one write transaction; commits if it reports a change (or a repair was
    /// done), aborts otherwise, and aborts on error.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Tables<'_>) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let repair = self.needs_repair.swap(false, Ordering::AcqRel);
        let result = (|| {
            let txn = self.db.begin_write().ctx(what)?;
            let (out, changed) = {
                let mut t = Tables::open(&txn)?;
                if repair {
                    t.rebuild()?;
                }
                let (out, changed) = f(&mut t)?;
                let rebuilt = t.corrupt;
                if rebuilt {
                    t.rebuild()?;
                }
                (out, changed || repair || rebuilt)
            };
            if changed {
                txn.commit().ctx(what)?;
            } else {
                txn.abort().ctx(what)?;
            }
            Ok(out)
        })();
        if repair && result.is_err() {
            self.needs_repair.store(true, Ordering::Release);
        }
        result
    }

    /// Cleans up after a reader found an undecodable record: rebuild now, in its own
    /// transaction. A failure is logged and retried by the next write.
    fn repair_now(&self) {
        self.needs_repair.store(true, Ordering::Release);
        if let Err(e) = self.write("repair", |_| Ok(((), false))) {
            tracing::warn!(error = %e, "bundle store: repair failed; will retry on next write");
        }
    }

    /// Store a bundle. `Duplicate` if its id is already stored or has been marked seen
    /// (delivered/handled here); refuses a sealed frame over [`MAX_SEALED_BYTES`] and one
    /// that would take the stored bytes past the quota.
    pub fn insert(&self, b: &StoredBundle) -> Result<Inserted, StoreError> {
        if b.sealed.len() > MAX_SEALED_BYTES {
            return Err(StoreError::TooLarge {
                size: b.sealed.len() as u64,
                max: MAX_SEALED_BYTES as u64,
            });
        }
        let record = Record::of(b);
        let raw = postcard::to_allocvec(&record).ctx("encode bundle")?;
        let size = b.sealed.len() as u64;
        self.write("insert bundle", |t| {
            if t.bundles.get(&b.id).ctx("look up bundle")?.is_some()
                || t.seen.get(&b.id).ctx("look up seen")?.is_some()
            {
                return Ok((Inserted::Duplicate, false));
            }
            let used = t.bytes()?;
            if used.saturating_add(size) > self.quota_bytes {
                return Err(StoreError::QuotaExceeded {
                    used,
                    quota: self.quota_bytes,
                    size,
                });
            }
            t.add(&record, &raw)?;
            Ok((Inserted::New, true))
        })
    }

    /// The bundle with this id, if stored. An undecodable record is removed and reported as
    /// [`StoreError::Corrupt`] (later calls then return `None`).
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<StoredBundle>, StoreError> {
        let found = {
            let txn = self.db.begin_read().ctx("get bundle")?;
            let table = txn.open_table(BUNDLES).ctx("get bundle")?;
            let raw = table.get(id).ctx("get bundle")?;
            raw.map(|raw| decode(id, raw.value()).map(|r| r.to_bundle()))
        };
        match found {
            None => Ok(None),
            Some(Some(b)) => Ok(Some(b)),
            Some(None) => {
                self.repair_now();
                Err(StoreError::Corrupt(format!(
                    "bundle {} could not be decoded and was removed",
                    hex::encode(id)
                )))
            }
        }
    }

    /// Remove these bundles (delivered, or given up on); returns how many were stored.
    pub fn remove(&self, ids: &[[u8; 16]]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write("remove bundles", |t| {
            let mut n = 0;
            for id in ids {
                if t.take(id)? {
                    n += 1;
                }
            }
            Ok((n, n > 0))
        })
    }

    /// Bundles for one destination, oldest first, stopping before the total sealed size
    /// passes `max_bytes` (but always at least one if any exist), at most `max_count`.
    /// Undecodable records are skipped (and removed).
    pub fn for_destination(
        &self,
        dest: &[u8; 16],
        max_bytes: usize,
        max_count: usize,
    ) -> Result<Vec<StoredBundle>, StoreError> {
        let mut out = Vec::new();
        if max_count == 0 {
            return Ok(out);
        }
        let mut corrupt = false;
        {
            let txn = self.db.begin_read().ctx("read destination")?;
            let index = txn.open_table(BY_DEST).ctx("read destination")?;
            let bundles = txn.open_table(BUNDLES).ctx("read destination")?;
            let lo = dest_key(dest, 0, &[0u8; 16]);
            let hi = dest_key(dest, u64::MAX, &[0xffu8; 16]);
            let mut total = 0u64;
            for entry in index
                .range::<&[u8; 40]>(&lo..=&hi)
                .ctx("scan destination index")?
            {
                let (k, _) = entry.ctx("scan destination index")?;
                let id = tail_id(k.value());
                let Some(raw) = bundles.get(&id).ctx("read bundle")? else {
                    corrupt = true; // dangling index entry
                    continue;
                };
                let Some(r) = decode(&id, raw.value()) else {
                    corrupt = true;
                    continue;
                };
                let size = r.sealed.len() as u64;
                if !out.is_empty() && total.saturating_add(size) > max_bytes as u64 {
                    break;
                }
                total = total.saturating_add(size);
                out.push(r.to_bundle());
                if out.len() >= max_count {
                    break;
                }
            }
        }
        if corrupt {
            self.repair_now();
        }
        Ok(out)
    }

    /// Destinations with waiting bundles and their counts, in destination-hash order.
    pub fn destinations(&self) -> Result<Vec<([u8; 16], u64)>, StoreError> {
        let txn = self.db.begin_read().ctx("list destinations")?;
        let counts = txn.open_table(DEST_COUNTS).ctx("list destinations")?;
        let mut out = Vec::new();
        for entry in counts.iter().ctx("list destinations")? {
            let (k, v) = entry.ctx("list destinations")?;
            out.push((*k.value(), v.value()));
        }
        Ok(out)
    }

    /// Drop bundles and seen-marks whose expiry is before `now_ms`; returns bundles
    /// dropped.
    pub fn expire(&self, now_ms: u64) -> Result<usize, StoreError> {
        let bound = expiry_key(now_ms, &[0u8; 16]);
        self.write("expire", |t| {
            let mut ids = Vec::new();
            for entry in t
                .by_expiry
                .range::<&[u8; 24]>(..&bound)
                .ctx("scan expiry index")?
            {
                let (k, _) = entry.ctx("scan expiry index")?;
                ids.push(tail_id(k.value()));
            }
            let mut dropped = 0;
            for id in &ids {
                if t.take(id)? {
                    dropped += 1;
                } else {
                    t.corrupt = true; // index entry without a bundle
                }
            }
            let mut marks = Vec::new();
            for entry in t
                .seen_by_expiry
                .range::<&[u8; 24]>(..&bound)
                .ctx("scan seen index")?
            {
                let (k, _) = entry.ctx("scan seen index")?;
                marks.push(*k.value());
            }
            for key in &marks {
                t.seen_by_expiry.remove(key).ctx("expire seen")?;
                t.seen.remove(&tail_id(key)).ctx("expire seen")?;
            }
            Ok((dropped, !ids.is_empty() || !marks.is_empty()))
        })
    }

    /// Totals over the store.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let txn = self.db.begin_read().ctx("stats")?;
        let bundles = txn.open_table(BUNDLES).ctx("stats")?.len().ctx("stats")?;
        let destinations = txn
            .open_table(DEST_COUNTS)
            .ctx("stats")?
            .len()
            .ctx("stats")?;
        let meta = txn.open_table(META).ctx("stats")?;
        let bytes = meta.get(META_BYTES).ctx("stats")?.map(|g| g.value());
        Ok(StoreStats {
            bundles,
            bytes: bytes.unwrap_or(0),
            destinations,
        })
    }

    /// Remember that bundle `id` was delivered/handled here until `expires_ms` (dedupe):
    /// [`insert`](Self::insert) then refuses it as a duplicate. Marking again keeps the
    /// later expiry. Returns true if it was not marked before. At most [`MAX_SEEN`] marks
    /// are kept; past that the ones expiring soonest are forgotten.
    pub fn mark_seen(&self, id: &[u8; 16], expires_ms: u64) -> Result<bool, StoreError> {
        self.write("mark seen", |t| t.mark_seen(id, expires_ms))
    }

    /// Whether bundle `id` is marked seen (until [`expire`](Self::expire) passes its mark).
    pub fn is_seen(&self, id: &[u8; 16]) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().ctx("is seen")?;
        let seen = txn.open_table(SEEN).ctx("is seen")?;
        Ok(seen.get(id).ctx("is seen")?.is_some())
    }

    /// Small records for jobs (detached command results) keyed by correlation id: put
    /// overwrites (and counts as the newest write). At most [`MAX_JOBS`] are kept, the
    /// oldest-written dropped first; a record over [`MAX_JOB_RECORD_BYTES`] is refused.
    pub fn put_job(&self, correlation: u64, record: &[u8]) -> Result<(), StoreError> {
        if record.len() > MAX_JOB_RECORD_BYTES {
            return Err(StoreError::TooLarge {
                size: record.len() as u64,
                max: MAX_JOB_RECORD_BYTES as u64,
            });
        }
        self.write("put job", |t| {
            let seq = t.meta_get(META_JOB_SEQ)?.unwrap_or(0).saturating_add(1);
            t.meta_set(META_JOB_SEQ, seq)?;
            let old = t
                .jobs
                .insert(correlation, (seq, record))
                .ctx("insert job")?
                .map(|g| g.value().0);
            if let Some(old) = old {
                t.job_order.remove(old).ctx("reorder job")?;
            }
            t.job_order.insert(seq, correlation).ctx("order job")?;
            while t.jobs.len().ctx("count jobs")? > MAX_JOBS {
                let Some((_, corr)) = t.job_order.pop_first().ctx("evict job")? else {
                    break;
                };
                let corr = corr.value();
                t.jobs.remove(corr).ctx("evict job")?;
            }
            Ok(((), true))
        })
    }

    /// The job record for this correlation id, if kept.
    pub fn get_job(&self, correlation: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().ctx("get job")?;
        let jobs = txn.open_table(JOBS).ctx("get job")?;
        let rec = jobs.get(correlation).ctx("get job")?;
        Ok(rec.map(|g| g.value().1.to_vec()))
    }

    /// All job records, oldest-written first, for a listing.
    pub fn jobs(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().ctx("list jobs")?;
        let order = txn.open_table(JOB_ORDER).ctx("list jobs")?;
        let jobs = txn.open_table(JOBS).ctx("list jobs")?;
        let mut out = Vec::new();
        for entry in order.iter().ctx("list jobs")? {
            let (_, corr) = entry.ctx("list jobs")?;
            let corr = corr.value();
            if let Some(rec) = jobs.get(corr).ctx("list jobs")? {
                out.push((corr, rec.value().1.to_vec()));
            }
        }
        Ok(out)
    }

    /// Forget the job record for this correlation id (no error if there is none).
    pub fn remove_job(&self, correlation: u64) -> Result<(), StoreError> {
        self.write("remove job", |t| {
            let old = t
                .jobs
                .remove(correlation)
                .ctx("remove job")?
                .map(|g| g.value().0);
            if let Some(seq) = old {
                t.job_order.remove(seq).ctx("remove job")?;
            }
            Ok(((), old.is_some()))
        })
    }
}

/// Write then read `n` bundles of `size` bytes in a fresh store at `dir`; returns
/// (writes/s, reads/s). For `grid-bench`.
///
/// Writes are one [`BundleStore::insert`] (one durable transaction) per bundle, as the
/// node does; reads are [`BundleStore::get`] by id. The store file is deleted afterwards.
pub fn bench_rates(dir: &Path, n: usize, size: usize) -> Result<(f64, f64), StoreError> {
    let path = dir.join("bench-bundles.redb");
    let _ = std::fs::remove_file(&path);
    let result = (|| {
        let store = BundleStore::open(&path, u64::MAX)?;
        let mut b = StoredBundle {
            id: [0; 16],
            destination: [0; 16],
            created_ms: 0,
            expires_ms: u64::MAX,
            custody: false,
            sealed: vec![0xa5; size],
        };
        let ids: Vec<Id> = (0..n as u128).map(|i| (i + 1).to_be_bytes()).collect();
        let start = Instant::now();
        for (i, id) in ids.iter().enumerate() {
            b.id = *id;
            b.destination[0] = (i % 16) as u8;
            b.created_ms = i as u64;
            store.insert(&b)?;
        }
        let wrote = start.elapsed().as_secs_f64();
        let start = Instant::now();
        for id in &ids {
            if std::hint::black_box(store.get(id)?).is_none() {
                return Err(StoreError::Corrupt(format!(
                    "bench bundle {} missing after insert",
                    hex::encode(id)
                )));
            }
        }
        let read = start.elapsed().as_secs_f64();
        Ok((n as f64 / wrote.max(1e-9), n as f64 / read.max(1e-9)))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;
    use proptest::prelude::*;

    fn bundle(id: u8, dest: u8, created_ms: u64, size: usize) -> StoredBundle {
        StoredBundle {
            id: [id; 16],
            destination: [dest; 16],
            created_ms,
            expires_ms: created_ms + 1_000,
            custody: id.is_multiple_of(2),
            sealed: vec![id; size],
        }
    }

    fn open(dir: &TempDir, quota: u64) -> BundleStore {
        BundleStore::open(&dir.0.join("sub").join("bundles.redb"), quota).unwrap()
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<BundleStore>();
    }

    #[test]
    fn record_encoding_is_postcard_of_stored_bundle() {
        let b = bundle(7, 3, 1234, 300);
        let ours = postcard::to_allocvec(&Record::of(&b)).unwrap();
        assert_eq!(ours, postcard::to_allocvec(&b).unwrap());
        let back: StoredBundle = postcard::from_bytes(&ours).unwrap();
        assert_eq!(back, b);
        assert_eq!(decode(&b.id, &ours).unwrap().to_bundle(), b);
        assert!(decode(&[9; 16], &ours).is_none(), "id must match the key");
        assert!(decode(&b.id, &ours[..ours.len() - 1]).is_none());
        let mut long = ours.clone();
        long.push(0);
        assert!(decode(&b.id, &long).is_none(), "trailing bytes rejected");
    }

    #[test]
    fn insert_get_remove() {
        let dir = TempDir::new("bundles", "basic");
        let s = open(&dir, 1 << 20);
        let a = bundle(1, 9, 10, 100);
        let b = bundle(2, 9, 20, 50);
        assert_eq!(s.insert(&a).unwrap(), Inserted::New);
        assert_eq!(s.insert(&b).unwrap(), Inserted::New);
        assert_eq!(s.get(&a.id).unwrap(), Some(a.clone()));
        assert_eq!(s.get(&[3; 16]).unwrap(), None);
        assert_eq!(
            s.stats().unwrap(),
            StoreStats {
                bundles: 2,
                bytes: 150,
                destinations: 1
            }
        );
        assert_eq!(s.remove(&[a.id, [3; 16], a.id]).unwrap(), 1);
        assert_eq!(s.get(&a.id).unwrap(), None);
        assert_eq!(s.get(&b.id).unwrap(), Some(b.clone()));
        assert_eq!(s.stats().unwrap().bytes, 50);
        assert_eq!(s.remove(&[]).unwrap(), 0);
        assert_eq!(s.remove(&[b.id]).unwrap(), 1);
        assert_eq!(s.stats().unwrap(), StoreStats::default());
        assert!(s.destinations().unwrap().is_empty());
    }

    #[test]
    fn duplicates_and_seen() {
        let dir = TempDir::new("bundles", "dup");
        let s = open(&dir, 1 << 20);
        let a = bundle(1, 9, 10, 100);
        assert_eq!(s.insert(&a).unwrap(), Inserted::New);
        let mut changed = a.clone();
        changed.sealed = vec![0; 10];
        assert_eq!(s.insert(&changed).unwrap(), Inserted::Duplicate);
        assert_eq!(s.get(&a.id).unwrap(), Some(a.clone()), "first copy kept");
        assert_eq!(s.stats().unwrap().bytes, 100);

        let b = bundle(2, 9, 10, 100);
        assert!(!s.is_seen(&b.id).unwrap());
        assert!(s.mark_seen(&b.id, 5_000).unwrap());
        assert!(!s.mark_seen(&b.id, 4_000).unwrap());
        assert!(s.is_seen(&b.id).unwrap());
        assert_eq!(s.insert(&b).unwrap(), Inserted::Duplicate);
        assert_eq!(s.get(&b.id).unwrap(), None);
        // Marking extends but never shortens: at 4_500 the mark (5_000) is still there.
        s.expire(4_500).unwrap();
        assert!(s.is_seen(&b.id).unwrap());
        s.expire(5_001).unwrap();
        assert!(!s.is_seen(&b.id).unwrap());
        assert_eq!(s.insert(&b).unwrap(), Inserted::New);
    }

    #[test]
    fn too_large_refused() {
        let dir = TempDir::new("bundles", "large");
        let s = open(&dir, u64::MAX);
        let mut b = bundle(1, 1, 1, 0);
        b.sealed = vec![0; MAX_SEALED_BYTES + 1];
        assert!(matches!(
            s.insert(&b),
            Err(StoreError::TooLarge { size, .. }) if size == MAX_SEALED_BYTES as u64 + 1
        ));
        assert!(matches!(
            s.put_job(1, &vec![0; MAX_JOB_RECORD_BYTES + 1]),
            Err(StoreError::TooLarge { .. })
        ));
        assert_eq!(s.stats().unwrap(), StoreStats::default());
    }

    #[test]
    fn for_destination_order_and_limits() {
        let dir = TempDir::new("bundles", "dest");
        let s = open(&dir, 1 << 20);
        // Inserted out of order; two share a created time (then ordered by id).
        for (id, created, size) in [(5, 50, 10), (1, 10, 30), (3, 30, 20), (2, 30, 40)] {
            s.insert(&bundle(id, 7, created, size)).unwrap();
        }
        s.insert(&bundle(9, 8, 1, 10)).unwrap();
        let ids = |v: Vec<StoredBundle>| v.iter().map(|b| b.id[0]).collect::<Vec<_>>();
        assert_eq!(
            ids(s.for_destination(&[7; 16], usize::MAX, 100).unwrap()),
            [1, 2, 3, 5]
        );
        assert_eq!(
            ids(s.for_destination(&[7; 16], usize::MAX, 2).unwrap()),
            [1, 2]
        );
        assert_eq!(ids(s.for_destination(&[7; 16], 70, 100).unwrap()), [1, 2]);
        assert_eq!(ids(s.for_destination(&[7; 16], 69, 100).unwrap()), [1]);
        assert_eq!(
            ids(s.for_destination(&[7; 16], 90, 100).unwrap()),
            [1, 2, 3]
        );
        // At least one even when the first alone passes max_bytes.
        assert_eq!(ids(s.for_destination(&[7; 16], 0, 100).unwrap()), [1]);
        assert!(s
            .for_destination(&[7; 16], usize::MAX, 0)
            .unwrap()
            .is_empty());
        assert_eq!(ids(s.for_destination(&[8; 16], 0, 100).unwrap()), [9]);
        assert!(s.for_destination(&[6; 16], 100, 100).unwrap().is_empty());
        let full = s.for_destination(&[7; 16], usize::MAX, 1).unwrap();
        assert_eq!(full, vec![bundle(1, 7, 10, 30)]);
    }

    #[test]
    fn destinations_counts() {
        let dir = TempDir::new("bundles", "dests");
        let s = open(&dir, 1 << 20);
        s.insert(&bundle(1, 7, 1, 1)).unwrap();
        s.insert(&bundle(2, 7, 2, 1)).unwrap();
        s.insert(&bundle(3, 4, 3, 1)).unwrap();
        assert_eq!(s.destinations().unwrap(), vec![([4; 16], 1), ([7; 16], 2)]);
        assert_eq!(s.stats().unwrap().destinations, 2);
        s.remove(&[[3; 16]]).unwrap();
        assert_eq!(s.destinations().unwrap(), vec![([7; 16], 2)]);
        s.remove(&[[1; 16]]).unwrap();
        assert_eq!(s.destinations().unwrap(), vec![([7; 16], 1)]);
    }

    #[test]
    fn expire_drops_old_bundles_and_marks() {
        let dir = TempDir::new("bundles", "expire");
        let s = open(&dir, 1 << 20);
        // expires = created + 1000
        s.insert(&bundle(1, 7, 0, 10)).unwrap();
        s.insert(&bundle(2, 7, 500, 20)).unwrap();
        s.insert(&bundle(3, 8, 2_000, 30)).unwrap();
        s.mark_seen(&[10; 16], 1_200).unwrap();
        s.mark_seen(&[11; 16], 9_000).unwrap();
        assert_eq!(s.expire(1_000).unwrap(), 0, "expiry exactly now is kept");
        assert_eq!(s.expire(1_001).unwrap(), 1);
        assert_eq!(s.get(&[1; 16]).unwrap(), None);
        assert!(s.is_seen(&[10; 16]).unwrap());
        assert_eq!(s.expire(1_600).unwrap(), 1);
        assert!(!s.is_seen(&[10; 16]).unwrap());
        assert!(s.is_seen(&[11; 16]).unwrap());
        assert_eq!(
            s.stats().unwrap(),
            StoreStats {
                bundles: 1,
                bytes: 30,
                destinations: 1
            }
        );
        assert_eq!(s.destinations().unwrap(), vec![([8; 16], 1)]);
        assert_eq!(s.expire(1_600).unwrap(), 0);
    }

    #[test]
    fn quota_exceeded_and_freed() {
        let dir = TempDir::new("bundles", "quota");
        let s = open(&dir, 100);
        s.insert(&bundle(1, 7, 1, 60)).unwrap();
        s.insert(&bundle(2, 7, 2, 40)).unwrap(); // exactly at quota
        match s.insert(&bundle(3, 7, 3, 1)) {
            Err(StoreError::QuotaExceeded { used, quota, size }) => {
                assert_eq!((used, quota, size), (100, 100, 1))
            }
            other => panic!("expected QuotaExceeded, got {other:?}"),
        }
        assert_eq!(s.get(&[3; 16]).unwrap(), None);
        s.remove(&[[1; 16]]).unwrap();
        assert_eq!(s.insert(&bundle(3, 7, 3, 60)).unwrap(), Inserted::New);
        assert_eq!(s.stats().unwrap().bytes, 100);
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = TempDir::new("bundles", "reopen");
        {
            let s = open(&dir, 1 << 20);
            s.insert(&bundle(1, 7, 1, 10)).unwrap();
            s.insert(&bundle(2, 8, 2, 20)).unwrap();
            s.insert(&bundle(3, 8, 3, 30)).unwrap();
            s.remove(&[[3; 16]]).unwrap();
            s.mark_seen(&[9; 16], 5_000).unwrap();
            s.put_job(42, b"result").unwrap();
        }
        let s = open(&dir, 1 << 20);
        assert_eq!(
            s.stats().unwrap(),
            StoreStats {
                bundles: 2,
                bytes: 30,
                destinations: 2
            }
        );
        assert_eq!(s.get(&[2; 16]).unwrap(), Some(bundle(2, 8, 2, 20)));
        assert_eq!(s.destinations().unwrap(), vec![([7; 16], 1), ([8; 16], 1)]);
        assert!(s.is_seen(&[9; 16]).unwrap());
        assert_eq!(s.insert(&bundle(9, 1, 1, 1)).unwrap(), Inserted::Duplicate);
        assert_eq!(s.get_job(42).unwrap(), Some(b"result".to_vec()));
        // The reopened quota applies to the persisted total.
        drop(s);
        let s = open(&dir, 35);
        assert!(matches!(
            s.insert(&bundle(4, 7, 4, 6)),
            Err(StoreError::QuotaExceeded { used: 30, .. })
        ));
    }

    #[test]
    fn garbage_record_is_skipped_and_cleaned() {
        let dir = TempDir::new("bundles", "garbage");
        let path = dir.0.join("sub").join("bundles.redb");
        {
            let s = BundleStore::open(&path, 1 << 20).unwrap();
            for id in 1..=3 {
                s.insert(&bundle(id, 7, id as u64, 10)).unwrap();
            }
        }
        let write_garbage = |id: Id, raw: &[u8]| {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(BUNDLES).unwrap().insert(&id, raw).unwrap();
            txn.commit().unwrap();
        };
        write_garbage([2; 16], &[0xff; 7]);

        // A scan skips it (and cleans it up).
        let s = BundleStore::open(&path, 1 << 20).unwrap();
        let got = s.for_destination(&[7; 16], usize::MAX, 10).unwrap();
        assert_eq!(
            got.iter().map(|b| b.id[0]).collect::<Vec<_>>(),
            [1, 3],
            "garbage skipped"
        );
        assert_eq!(s.get(&[2; 16]).unwrap(), None, "garbage removed");
        assert_eq!(
            s.stats().unwrap(),
            StoreStats {
                bundles: 2,
                bytes: 20,
                destinations: 1
            }
        );
        assert_eq!(s.destinations().unwrap(), vec![([7; 16], 2)]);
        drop(s);

        // A direct get reports it as corrupt, once; a record under the wrong key counts too.
        write_garbage(
            [1; 16],
            &postcard::to_allocvec(&bundle(5, 7, 5, 10)).unwrap(),
        );
        let s = BundleStore::open(&path, 1 << 20).unwrap();
        assert!(matches!(s.get(&[1; 16]), Err(StoreError::Corrupt(_))));
        assert_eq!(s.get(&[1; 16]).unwrap(), None);
        assert_eq!(s.stats().unwrap().bytes, 10);
        drop(s);

        // A remove of a garbage record counts it and keeps the totals right.
        write_garbage([3; 16], b"");
        write_garbage([4; 16], b"not a bundle"); // no index entries at all: found on open
        let s = BundleStore::open(&path, 1 << 20).unwrap();
        assert_eq!(s.stats().unwrap(), StoreStats::default());
        assert_eq!(s.remove(&[[3; 16]]).unwrap(), 0);
        assert!(s.destinations().unwrap().is_empty());
        assert_eq!(s.insert(&bundle(3, 7, 3, 10)).unwrap(), Inserted::New);
        assert_eq!(s.stats().unwrap().bytes, 10);
    }

    #[test]
    fn garbage_found_by_remove_and_expire() {
        let dir = TempDir::new("bundles", "garbage-rm");
        let path = dir.0.join("bundles.redb");
        {
            let s = BundleStore::open(&path, 1 << 20).unwrap();
            for id in 1..=3 {
                s.insert(&bundle(id, 7, id as u64, 10)).unwrap();
            }
            let txn = s.db.begin_write().unwrap();
            txn.open_table(BUNDLES)
                .unwrap()
                .insert(&[1; 16], &b"junk"[..])
                .unwrap();
            txn.open_table(BUNDLES)
                .unwrap()
                .insert(&[2; 16], &b"junk"[..])
                .unwrap();
            txn.commit().unwrap();
            assert_eq!(s.remove(&[[1; 16]]).unwrap(), 1);
            assert_eq!(
                s.stats().unwrap(),
                StoreStats {
                    bundles: 1,
                    bytes: 10,
                    destinations: 1
                },
                "remove rebuilt the totals and dropped the other garbage too"
            );
            assert_eq!(s.expire(u64::MAX).unwrap(), 1);
            assert_eq!(s.stats().unwrap(), StoreStats::default());
        }
    }

    #[test]
    fn seen_is_bounded() {
        let dir = TempDir::new("bundles", "seen-bound");
        let s = open(&dir, 1 << 20);
        // Fill to the bound in one transaction (one per mark would be slow in a test).
        s.write("fill", |t| {
            for i in 0..MAX_SEEN {
                let id = (i as u128).to_be_bytes();
                t.mark_seen(&id, 1_000_000 + i)?;
            }
            Ok(((), true))
        })
        .unwrap();
        assert!(s.is_seen(&0u128.to_be_bytes()).unwrap());
        // One more, expiring late: the soonest-expiring mark (id 0) goes.
        assert!(s.mark_seen(&[0xee; 16], u64::MAX).unwrap());
        assert!(!s.is_seen(&0u128.to_be_bytes()).unwrap());
        assert!(s.is_seen(&1u128.to_be_bytes()).unwrap());
        assert!(s.is_seen(&[0xee; 16]).unwrap());
        let txn = s.db.begin_read().unwrap();
        assert_eq!(txn.open_table(SEEN).unwrap().len().unwrap(), MAX_SEEN);
        assert_eq!(
            txn.open_table(SEEN_BY_EXPIRY).unwrap().len().unwrap(),
            MAX_SEEN
        );
    }

    #[test]
    fn jobs_put_get_overwrite_remove() {
        let dir = TempDir::new("bundles", "jobs");
        let s = open(&dir, 1 << 20);
        assert_eq!(s.get_job(1).unwrap(), None);
        s.put_job(1, b"one").unwrap();
        s.put_job(2, b"two").unwrap();
        s.put_job(3, b"").unwrap();
        assert_eq!(s.get_job(1).unwrap(), Some(b"one".to_vec()));
        s.put_job(1, b"uno").unwrap();
        assert_eq!(s.get_job(1).unwrap(), Some(b"uno".to_vec()));
        assert_eq!(
            s.jobs().unwrap(),
            vec![(2, b"two".to_vec()), (3, Vec::new()), (1, b"uno".to_vec())],
            "oldest-written first; the overwrite moved job 1 last"
        );
        s.remove_job(2).unwrap();
        s.remove_job(99).unwrap();
        assert_eq!(s.get_job(2).unwrap(), None);
        assert_eq!(s.jobs().unwrap().len(), 2);
    }

    #[test]
    fn jobs_are_bounded() {
        let dir = TempDir::new("bundles", "jobs-bound");
        let s = open(&dir, 1 << 20);
        // Fill past nothing yet in one transaction, then go over the bound through the API.
        s.write("fill", |t| {
            for corr in 0..MAX_JOBS {
                let seq = corr + 1;
                t.jobs.insert(corr, (seq, &b"x"[..])).unwrap();
                t.job_order.insert(seq, corr).unwrap();
            }
            t.meta_set(META_JOB_SEQ, MAX_JOBS)?;
            Ok(((), true))
        })
        .unwrap();
        s.put_job(0, b"rewritten").unwrap(); // overwrite: no eviction, 0 becomes newest
        assert_eq!(s.jobs().unwrap().len() as u64, MAX_JOBS);
        s.put_job(MAX_JOBS + 5, b"new").unwrap();
        let jobs = s.jobs().unwrap();
        assert_eq!(jobs.len() as u64, MAX_JOBS);
        assert_eq!(s.get_job(1).unwrap(), None, "oldest-written evicted");
        assert_eq!(s.get_job(0).unwrap(), Some(b"rewritten".to_vec()));
        assert_eq!(jobs.last().unwrap().0, MAX_JOBS + 5);
        assert_eq!(jobs[jobs.len() - 2].0, 0);
    }

    #[test]
    fn inconsistent_indexes_rebuilt_on_open() {
        let dir = TempDir::new("bundles", "rebuild");
        let path = dir.0.join("bundles.redb");
        {
            let s = BundleStore::open(&path, 1 << 20).unwrap();
            s.insert(&bundle(1, 7, 1, 10)).unwrap();
            s.insert(&bundle(2, 8, 2, 20)).unwrap();
            s.mark_seen(&[5; 16], 100).unwrap();
            s.put_job(1, b"a").unwrap();
            let txn = s.db.begin_write().unwrap();
            txn.delete_table(BY_DEST).unwrap();
            txn.delete_table(SEEN_BY_EXPIRY).unwrap();
            txn.delete_table(JOB_ORDER).unwrap();
            txn.open_table(META).unwrap().remove(META_BYTES).unwrap();
            txn.commit().unwrap();
        }
        let s = BundleStore::open(&path, 1 << 20).unwrap();
        assert_eq!(
            s.stats().unwrap(),
            StoreStats {
                bundles: 2,
                bytes: 30,
                destinations: 2
            }
        );
        assert_eq!(s.for_destination(&[8; 16], 100, 10).unwrap().len(), 1);
        assert_eq!(s.expire(200).unwrap(), 0);
        assert!(!s.is_seen(&[5; 16]).unwrap());
        assert_eq!(s.jobs().unwrap(), vec![(1, b"a".to_vec())]);
        s.put_job(2, b"b").unwrap();
        assert_eq!(s.jobs().unwrap().len(), 2);
    }

    #[test]
    fn bench_rates_runs() {
        let dir = TempDir::new("bundles", "bench");
        let (w, r) = bench_rates(&dir.0, 20, 256).unwrap();
        assert!(w > 0.0 && r > 0.0);
        assert!(!dir.0.join("bench-bundles.redb").exists());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert {
            id: u8,
            dest: u8,
            created: u64,
            size: usize,
        },
        Remove(Vec<u8>),
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..24, 0u8..4, 0u64..2_000, 0usize..300).prop_map(|(id, dest, created, size)| {
                Op::Insert { id, dest, created, size }
            }),
            1 => proptest::collection::vec(0u8..24, 0..4).prop_map(Op::Remove),
            1 => (0u64..3_000).prop_map(Op::Expire),
        ]
    }

    static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn stats_track_stored_bundles(ops in proptest::collection::vec(op(), 1..24)) {
            let n = CASE.fetch_add(1, Ordering::Relaxed);
            let dir = TempDir::new("bundles-prop", &n.to_string());
            let quota = 2_000u64;
            let s = open(&dir, quota);
            let mut model: BTreeMap<u8, StoredBundle> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert { id, dest, created, size } => {
                        let b = StoredBundle { sealed: vec![id; size], ..bundle(id, dest, created, 0) };
                        let used: u64 = model.values().map(|b| b.sealed.len() as u64).sum();
                        let got = s.insert(&b);
                        match model.entry(id) {
                            std::collections::btree_map::Entry::Occupied(_) => {
                                prop_assert_eq!(got.unwrap(), Inserted::Duplicate);
                            }
                            std::collections::btree_map::Entry::Vacant(slot) => {
                                if used + size as u64 > quota {
                                    let hit = matches!(got, Err(StoreError::QuotaExceeded { .. }));
                                    prop_assert!(hit);
                                } else {
                                    prop_assert_eq!(got.unwrap(), Inserted::New);
                                    slot.insert(b);
                                }
                            }
                        }
                    }
                    Op::Remove(ids) => {
                        let ids: Vec<Id> = ids.iter().map(|i| [*i; 16]).collect();
                        let mut expect = 0;
                        for id in &ids {
                            if model.remove(&id[0]).is_some() {
                                expect += 1;
                            }
                        }
                        prop_assert_eq!(s.remove(&ids).unwrap(), expect);
                    }
                    Op::Expire(now) => {
                        let before = model.len();
                        model.retain(|_, b| b.expires_ms >= now);
                        prop_assert_eq!(s.expire(now).unwrap(), before - model.len());
                    }
                }
                let stats = s.stats().unwrap();
                let bytes: u64 = model.values().map(|b| b.sealed.len() as u64).sum();
                prop_assert_eq!(stats.bytes, bytes);
                prop_assert_eq!(stats.bundles, model.len() as u64);
            }
            // Everything stored is what the model holds, and per-destination views agree.
            for id in 0u8..24 {
                let got = s.get(&[id; 16]).unwrap();
                prop_assert_eq!(got.as_ref(), model.get(&id));
            }
            let mut dests: BTreeMap<Id, u64> = BTreeMap::new();
            for b in model.values() {
                *dests.entry(b.destination).or_default() += 1;
            }
            prop_assert_eq!(s.destinations().unwrap(), dests.into_iter().collect::<Vec<_>>());
            drop(s);
            let s = open(&dir, quota);
            let bytes: u64 = model.values().map(|b| b.sealed.len() as u64).sum();
            prop_assert_eq!(s.stats().unwrap().bytes, bytes);
        }
    }
}
