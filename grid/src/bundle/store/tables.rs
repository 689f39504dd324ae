//! The store's tables inside one write transaction, and the bookkeeping that keeps the
//! derived tables (indexes, counts, byte totals) in step with `bundles`.

use std::collections::BTreeMap;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize, Serializer};

use super::*;

/// The on-disk form of a bundle. Same postcard encoding as [`StoredBundle`] (postcard
/// writes a `Vec<u8>` sequence and a byte string identically), but it borrows `sealed`, so
/// encoding is one copy and index work decodes the header without copying the frame.
#[derive(Serialize, Deserialize)]
pub(super) struct Record<'a> {
    pub(super) id: Id,
    pub(super) destination: Id,
    pub(super) created_ms: u64,
    pub(super) expires_ms: u64,
    pub(super) custody: bool,
    #[serde(borrow, serialize_with = "as_bytes")]
    pub(super) sealed: &'a [u8],
}

pub(super) fn as_bytes<S: Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

impl<'a> Record<'a> {
    pub(super) fn of(b: &'a StoredBundle) -> Record<'a> {
        Record {
            id: b.id,
            destination: b.destination,
            created_ms: b.created_ms,
            expires_ms: b.expires_ms,
            custody: b.custody,
            sealed: &b.sealed,
        }
    }

    pub(super) fn to_bundle(&self) -> StoredBundle {
        StoredBundle {
            id: self.id,
            destination: self.destination,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            custody: self.custody,
            sealed: self.sealed.to_vec(),
        }
    }

    pub(super) fn info(&self) -> Info {
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
pub(super) fn decode<'a>(id: &Id, raw: &'a [u8]) -> Option<Record<'a>> {
    match postcard::take_from_bytes::<Record<'a>>(raw) {
        Ok((r, rest)) if rest.is_empty() && r.id == *id => Some(r),
        _ => None,
    }
}

/// What the derived tables need to know about a bundle.
pub(super) struct Info {
    pub(super) id: Id,
    pub(super) destination: Id,
    pub(super) created_ms: u64,
    pub(super) expires_ms: u64,
    pub(super) size: u64,
}

pub(super) fn dest_key(destination: &Id, created_ms: u64, id: &Id) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..16].copy_from_slice(destination);
    k[16..24].copy_from_slice(&created_ms.to_be_bytes());
    k[24..].copy_from_slice(id);
    k
}

pub(super) fn expiry_key(expires_ms: u64, id: &Id) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&expires_ms.to_be_bytes());
    k[8..].copy_from_slice(id);
    k
}

/// The id at the end of an index key.
pub(super) fn tail_id(key: &[u8]) -> Id {
    let mut id = [0u8; 16];
    id.copy_from_slice(&key[key.len() - 16..]);
    id
}

/// All tables, opened in one write transaction, with the bookkeeping that keeps the
/// derived ones in step with `bundles`.
pub(super) struct Tables<'t> {
    pub(super) bundles: Table<'t, &'static Id, &'static [u8]>,
    pub(super) by_dest: Table<'t, &'static [u8; 40], ()>,
    pub(super) by_expiry: Table<'t, &'static [u8; 24], ()>,
    pub(super) dest_counts: Table<'t, &'static Id, u64>,
    pub(super) seen: Table<'t, &'static Id, u64>,
    pub(super) seen_by_expiry: Table<'t, &'static [u8; 24], ()>,
    pub(super) jobs: Table<'t, u64, (u64, &'static [u8])>,
    pub(super) job_order: Table<'t, u64, u64>,
    pub(super) meta: Table<'t, &'static str, u64>,
    pub(super) holders: Table<'t, &'static Id, &'static Id>,
    pub(super) holder_use: Table<'t, &'static Id, (u64, u64)>,
    /// An undecodable bundle was met: the derived tables must be rebuilt before commit.
    pub(super) corrupt: bool,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
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
            holders: txn.open_table(HOLDERS).ctx("open holders table")?,
            holder_use: txn.open_table(HOLDER_USE).ctx("open holder use table")?,
            corrupt: false,
        })
    }

    pub(super) fn meta_get(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.meta.get(key).ctx("read meta")?.map(|g| g.value()))
    }

    pub(super) fn meta_set(&mut self, key: &str, value: u64) -> Result<(), StoreError> {
        self.meta.insert(key, value).ctx("write meta")?;
        Ok(())
    }

    pub(super) fn bytes(&self) -> Result<u64, StoreError> {
        Ok(self.meta_get(META_BYTES)?.unwrap_or(0))
    }

    /// Stores a bundle known not to be present, with its index entries and accounting.
    pub(super) fn add(&mut self, r: &Record<'_>, raw: &[u8]) -> Result<(), StoreError> {
        self.bundles.insert(&r.id, raw).ctx("insert bundle")?;
        self.link(&r.info())?;
        let bytes = self.bytes()?.saturating_add(r.sealed.len() as u64);
        self.meta_set(META_BYTES, bytes)
    }

    /// Adds a bundle's index entries and destination count (not the byte total).
    pub(super) fn link(&mut self, i: &Info) -> Result<(), StoreError> {
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
    pub(super) fn take(&mut self, id: &Id) -> Result<bool, StoreError> {
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
                self.release(id, i.size)?;
            }
            None => self.corrupt = true,
        }
        Ok(true)
    }

    /// Stores bundle `b` (encoded as `raw`) unless its id is stored or seen already; for
    /// a stranger (`Some((holder, limits))`) within its share; always within `quota`.
    pub(super) fn insert(
        &mut self,
        b: &StoredBundle,
        raw: &[u8],
        stranger: Option<(&Id, &StrangerLimits)>,
        quota: u64,
    ) -> Result<Inserted, StoreError> {
        if self.bundles.get(&b.id).ctx("look up bundle")?.is_some()
            || self.seen.get(&b.id).ctx("look up seen")?.is_some()
        {
            return Ok(Inserted::Duplicate);
        }
        let size = b.sealed.len() as u64;
        if let Some((holder, limits)) = stranger {
            let (count, bytes) = self.holder_use(holder)?;
            let all = self.meta_get(META_HELD_BYTES)?.unwrap_or(0);
            if let Err(crate::proto::custody::Refusal::StrangerShare { what, used, limit }) =
                crate::proto::custody::within_share(limits, (count, bytes), all, size)
            {
                return Err(StoreError::StrangerQuota { what, used, limit });
            }
        }
        let used = self.bytes()?;
        if used.saturating_add(size) > quota {
            return Err(StoreError::QuotaExceeded { used, quota, size });
        }
        let record = Record::of(b);
        self.add(&record, raw)?;
        if let Some((holder, _)) = stranger {
            self.hold(&b.id, holder, size)?;
        }
        Ok(Inserted::New)
    }

    /// What `holder` has held here: (bundles, sealed bytes).
    pub(super) fn holder_use(&self, holder: &Id) -> Result<(u64, u64), StoreError> {
        Ok(self
            .holder_use
            .get(holder)
            .ctx("read holder use")?
            .map_or((0, 0), |g| g.value()))
    }

    /// Records that bundle `id` (`size` sealed bytes) is held for stranger `holder`.
    pub(super) fn hold(&mut self, id: &Id, holder: &Id, size: u64) -> Result<(), StoreError> {
        self.holders.insert(id, holder).ctx("insert holder")?;
        let (count, bytes) = self.holder_use(holder)?;
        self.holder_use
            .insert(holder, (count + 1, bytes.saturating_add(size)))
            .ctx("write holder use")?;
        let all = self.meta_get(META_HELD_BYTES)?.unwrap_or(0);
        self.meta_set(META_HELD_BYTES, all.saturating_add(size))
    }

    /// Frees the stranger's share of bundle `id` (`size` sealed bytes), if it had one.
    fn release(&mut self, id: &Id, size: u64) -> Result<(), StoreError> {
        let Some(holder) = self
            .holders
            .remove(id)
            .ctx("remove holder")?
            .map(|g| *g.value())
        else {
            return Ok(());
        };
        let (count, bytes) = self.holder_use(&holder)?;
        if count <= 1 {
            self.holder_use.remove(&holder).ctx("remove holder use")?;
        } else {
            self.holder_use
                .insert(&holder, (count - 1, bytes.saturating_sub(size)))
                .ctx("write holder use")?;
        }
        let all = self.meta_get(META_HELD_BYTES)?.unwrap_or(0);
        self.meta_set(META_HELD_BYTES, all.saturating_sub(size))
    }

    /// Rebuilds the strangers' shares from `holders` and `bundles` (dropping holder
    /// entries whose bundle is gone).
    fn rebuild_holders(&mut self) -> Result<(), StoreError> {
        let mut held = Vec::new();
        for entry in self.holders.iter().ctx("scan holders")? {
            let (k, v) = entry.ctx("scan holders")?;
            held.push((*k.value(), *v.value()));
        }
        let mut usage: BTreeMap<Id, (u64, u64)> = BTreeMap::new();
        let mut all = 0u64;
        for (id, holder) in held {
            let size = match self.bundles.get(&id).ctx("read bundle")? {
                Some(raw) => decode(&id, raw.value()).map(|r| r.sealed.len() as u64),
                None => None,
            };
            match size {
                Some(size) => {
                    let u = usage.entry(holder).or_default();
                    u.0 += 1;
                    u.1 = u.1.saturating_add(size);
                    all = all.saturating_add(size);
                }
                None => {
                    self.holders.remove(&id).ctx("remove stale holder")?;
                }
            }
        }
        self.holder_use
            .retain(|_, _| false)
            .ctx("clear holder use")?;
        for (holder, u) in usage {
            self.holder_use.insert(&holder, u).ctx("write holder use")?;
        }
        self.meta_set(META_HELD_BYTES, all)
    }

    /// Rebuilds the index tables, destination counts and byte total from `bundles`,
    /// deleting records that cannot be decoded. Returns how many were deleted.
    pub(super) fn rebuild(&mut self) -> Result<usize, StoreError> {
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
        self.rebuild_holders()?;
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
    pub(super) fn rebuild_seen(&mut self) -> Result<(), StoreError> {
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
    pub(super) fn rebuild_jobs(&mut self) -> Result<(), StoreError> {
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
    pub(super) fn check(&mut self) -> Result<bool, StoreError> {
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
        let mut held = 0u64;
        for entry in self.holder_use.iter().ctx("scan holder use")? {
            let (_, v) = entry.ctx("scan holder use")?;
            held = held.saturating_add(v.value().0);
        }
        if self.holders.len().ctx("count holders")? != held
            || self.meta_get(META_HELD_BYTES)?.is_none()
        {
            self.rebuild_holders()?;
            fixed = true;
        }
        Ok(fixed)
    }

    /// Marks `id` seen until `expires_ms` (keeping the later expiry if already marked).
    /// Returns (was not marked before, anything changed).
    pub(super) fn mark_seen(
        &mut self,
        id: &Id,
        expires_ms: u64,
    ) -> Result<(bool, bool), StoreError> {
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
