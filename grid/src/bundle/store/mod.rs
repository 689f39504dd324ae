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

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

mod tables;
use tables::{decode, dest_key, expiry_key, tail_id, Record, Tables};

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
/// Bundles held for strangers: id → the identity hash of the node that handed it over.
const HOLDERS: TableDefinition<&Id, &Id> = TableDefinition::new("held_for");
/// What each stranger has this custodian hold: identity hash → (bundles, sealed bytes).
const HOLDER_USE: TableDefinition<&Id, (u64, u64)> = TableDefinition::new("held_use");

/// `meta` key: the sum of the sealed sizes of all stored bundles.
const META_BYTES: &str = "sealed_bytes";
/// `meta` key: the last job insertion sequence number handed out.
const META_JOB_SEQ: &str = "job_seq";
/// `meta` key: the sealed bytes held for strangers, all together.
const META_HELD_BYTES: &str = "held_bytes";

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
    /// A stranger (a node this custodian does not trust) would pass its share.
    #[error("bundle store: {what} held for strangers would pass {limit} (now {used})")]
    StrangerQuota {
        /// Which limit: "bundles of one stranger", "bytes of one stranger", "bytes of all
        /// strangers".
        what: &'static str,
        /// Used now.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// A stored record could not be decoded; it has been (or will be) removed.
    #[error("bundle store: corrupt record: {0}")]
    Corrupt(String),
}

/// What [`BundleStore::commit_exchange`] did, in the order it was given the bundles.
#[derive(Debug, Default)]
pub struct ExchangeCommit {
    /// For each `seen` id: whether this exchange marked it first (false: it was handled
    /// here before, by an earlier exchange or an earlier copy).
    pub first_seen: Vec<bool>,
    /// For each `held` bundle: stored, or why not.
    pub held: Vec<Result<Inserted, StoreError>>,
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

pub use crate::proto::custody::StrangerLimits;

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

/// A bundle's stored encoding, refusing one over [`MAX_SEALED_BYTES`].
fn encode_checked(b: &StoredBundle) -> Result<Vec<u8>, StoreError> {
    if b.sealed.len() > MAX_SEALED_BYTES {
        return Err(StoreError::TooLarge {
            size: b.sealed.len() as u64,
            max: MAX_SEALED_BYTES as u64,
        });
    }
    postcard::to_allocvec(&Record::of(b)).ctx("encode bundle")
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

/// Memory redb may hold for pages of the file (its default is 1 GiB). Bundles are
/// written once and read about once, and the kernel's page cache keeps the file anyway,
/// so a small cache costs reads little and keeps an idle node's memory small
/// (docs/security.md, docs/benchmarks.md).
pub const CACHE_BYTES: usize = 512 * 1024;

impl BundleStore {
    /// Open or create the database file (parent dir created). `quota_bytes` bounds the sum
    /// of sealed sizes. Inconsistent derived tables (e.g. from an older version) are
    /// rebuilt here.
    pub fn open(path: &Path, quota_bytes: u64) -> Result<BundleStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .ctx(&format!("create directory {}", parent.display()))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .ctx(&format!("open {}", path.display()))?;
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
        let raw = encode_checked(b)?;
        self.write("insert bundle", |t| {
            let r = t.insert(b, &raw, None, self.quota_bytes)?;
            Ok((r, r == Inserted::New))
        })
    }

    /// Store a bundle handed over by stranger `holder` (its identity hash) for another
    /// node, within `limits` as well as the store's quota; the stranger's share is freed
    /// as its bundles are delivered or expire.
    pub fn insert_held(
        &self,
        b: &StoredBundle,
        holder: &Id,
        limits: &StrangerLimits,
    ) -> Result<Inserted, StoreError> {
        let raw = encode_checked(b)?;
        self.write("insert held bundle", |t| {
            let r = t.insert(b, &raw, Some((holder, limits)), self.quota_bytes)?;
            Ok((r, r == Inserted::New))
        })
    }

    /// A whole bundle exchange in one write transaction (one fsync, however many bundles
    /// it carries): mark the `seen` ids (bundles opened here) and store the `held` ones,
    /// each for a trusted caller (`None`) or a stranger within `limits`. Whether each
    /// `seen` id was new is decided in the same transaction, so of two exchanges carrying
    /// the same bundle exactly one sees it first. A bundle that is refused (quota, size)
    /// gets its own error; only a database failure fails the whole batch, and then
    /// nothing of it was stored.
    pub fn commit_exchange(
        &self,
        seen: &[(Id, u64)],
        held: &[(StoredBundle, Option<Id>)],
        limits: &StrangerLimits,
    ) -> Result<ExchangeCommit, StoreError> {
        if seen.is_empty() && held.is_empty() {
            return Ok(ExchangeCommit::default());
        }
        let raws: Vec<Result<Vec<u8>, StoreError>> =
            held.iter().map(|(b, _)| encode_checked(b)).collect();
        self.write("commit exchange", |t| {
            let mut first_seen = Vec::with_capacity(seen.len());
            for (id, expires_ms) in seen {
                first_seen.push(t.mark_seen(id, *expires_ms)?.0);
            }
            let mut out = Vec::with_capacity(held.len());
            for ((b, holder), raw) in held.iter().zip(&raws) {
                let r = match raw {
                    Err(e) => Err(StoreError::TooLarge {
                        size: b.sealed.len() as u64,
                        max: match e {
                            StoreError::TooLarge { max, .. } => *max,
                            _ => MAX_SEALED_BYTES as u64,
                        },
                    }),
                    Ok(raw) => {
                        let stranger = holder.as_ref().map(|h| (h, limits));
                        match t.insert(b, raw, stranger, self.quota_bytes) {
                            Err(StoreError::Db(e)) => return Err(StoreError::Db(e)),
                            r => r,
                        }
                    }
                };
                out.push(r);
            }
            let commit = ExchangeCommit {
                first_seen,
                held: out,
            };
            Ok((commit, true))
        })
    }

    /// What stranger `holder` has this custodian hold: (bundles, sealed bytes).
    pub fn held_for(&self, holder: &Id) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_read().ctx("held for")?;
        let table = txn.open_table(HOLDER_USE).ctx("held for")?;
        Ok(table
            .get(holder)
            .ctx("held for")?
            .map_or((0, 0), |g| g.value()))
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

    /// Remove bundles that reached their destination and remember their ids as seen until
    /// they expire, so a copy handed over again (by a sender that crashed before it
    /// dropped its own) is not stored and carried a second time. Returns how many were
    /// stored.
    pub fn remove_delivered(&self, ids: &[[u8; 16]]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write("remove delivered bundles", |t| {
            let mut n = 0;
            for id in ids {
                let expires = t
                    .bundles
                    .get(id)
                    .ctx("look up bundle")?
                    .and_then(|raw| decode(id, raw.value()).map(|r| r.expires_ms));
                if let Some(expires) = expires {
                    t.take(id)?;
                    t.mark_seen(id, expires)?;
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
mod tests;
