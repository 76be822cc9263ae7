//! [`DatadirModification`]: the single writer's Postgres-level view of a
//! timeline, used by WAL ingest and import.
//!
//! A modification lives as long as its writer. It keeps
//!
//! - a cache of the metadata it has read or changed (database and relation
//!   directories, relation sizes, SLRU directories and segment sizes, the
//!   two-phase directory), decoded, always reflecting the latest state
//!   including uncommitted changes, so that reads inside a batch see the
//!   batch's own changes and ingest does not decode a directory per block;
//! - the pending batch: every value added since the last commit, each at the
//!   end LSN of the record that produced it.
//!
//! Protocol: [`DatadirModification::set_lsn`] to the end LSN of the next
//! record, then puts for that record, and so on; [`DatadirModification::commit`]
//! writes the pending batch with one `put_batch` at the last record's end
//! LSN, so readers see all of it or none. Metadata changed by a record is
//! serialized once, when the record is finished (at the next `set_lsn` or at
//! commit), so a record that extends a relation five times writes one size.
//!
//! Invariants: the cache equals the timeline at `committed_lsn` plus the
//! pending batch. It is valid only while this modification is the timeline's
//! only writer (checked at commit), and it is untrustworthy after a failed
//! operation (a multi-step change may be half applied), so any error poisons
//! the modification: the owner must start a new one, which re-reads the
//! committed state. A key gets at most one value per record; a second one
//! is an error rather than a silent overwrite (the storage engine keeps only
//! the last value written at an LSN).

// Keys and tags are not attacker-chosen here (they come from the WAL we
// follow); a fast hash keeps per-block bookkeeping cheap.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use bytes::Bytes;
use pageserver_api::key::{
    rel_block_to_key, rel_dir_to_key, rel_size_to_key, relmap_file_key, repl_origin_key,
    slru_block_to_key, slru_dir_to_key, slru_segment_size_to_key, twophase_file_key, Key,
    CHECKPOINT_KEY, CONTROLFILE_KEY, DBDIR_KEY, TWOPHASEDIR_KEY,
};
use pageserver_api::reltag::{BlockNumber, Oid, RelTag, SlruKind};
use pageserver_api::value::{Value, WalRecord};
use postgres_ffi::slru::SLRU_PAGES_PER_SEGMENT;
use utils::lsn::Lsn;

use super::format::{self, DbDirectory, RelDirectory, SlruSegmentDirectory, TwoPhaseDirectory};
use super::{DatadirError, DatadirView, ZERO_PAGE};
use crate::tenant::storage_layer::batch::{SerializedBatch, ValueTooLarge};
use crate::tenant::timeline::Timeline;

/// Outcome of a failed push into the pending batch: the caller's writer
/// failed, or the value came out too large.
enum Pushed<E> {
    Write(E),
    TooLarge(ValueTooLarge),
}

impl<E> From<ValueTooLarge> for Pushed<E> {
    fn from(e: ValueTooLarge) -> Self {
        Pushed::TooLarge(e)
    }
}

/// Rough per-value overhead on top of the payload, for batch sizing.
const VALUE_OVERHEAD: usize = 48;

/// Highest block number a relation fork can have: `0xFFFFFFFF` is
/// `InvalidBlockNumber` in Postgres, and the size key here.
pub const MAX_BLOCKNUMBER: BlockNumber = u32::MAX - 1;

/// A metadata item of the cache, in the order its keys are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum MetaItem {
    DbDir,
    RelDir(Oid, Oid),
    RelSize(RelTag),
    SlruDir(SlruKind),
    SlruSize(SlruKind, u32),
    TwoPhaseDir,
}

/// The keys the current record has put, to refuse a second value for one.
/// Most records put one to three keys: those are checked by a scan of a
/// short inline list; a record that puts many (a relation extended by a
/// run of zero pages) moves them into a hash set.
#[derive(Default)]
struct RecordKeys {
    few: [Key; RecordKeys::SCAN_LIMIT],
    len: usize,
    many: HashSet<Key>,
}

impl RecordKeys {
    const SCAN_LIMIT: usize = 8;

    /// False if `key` was already put by this record.
    fn insert(&mut self, key: Key) -> bool {
        if self.len < Self::SCAN_LIMIT {
            if self.few[..self.len].contains(&key) {
                return false;
            }
            self.few[self.len] = key;
            self.len += 1;
            return true;
        }
        if self.many.is_empty() {
            self.many.extend(self.few.iter().copied());
        }
        self.many.insert(key)
    }

    fn clear(&mut self) {
        if self.len == Self::SCAN_LIMIT && !self.many.is_empty() {
            self.many.clear();
        }
        self.len = 0;
    }
}

/// Metadata items the current record changed. A record changes a handful
/// at most, so a list with linear membership keeps its allocation from
/// record to record (an ordered set would allocate a node per record);
/// [`DirtyItems::take_sorted`] yields them in key order.
#[derive(Default)]
struct DirtyItems(Vec<MetaItem>);

impl DirtyItems {
    fn insert(&mut self, item: MetaItem) {
        if !self.0.contains(&item) {
            self.0.push(item);
        }
    }

    fn remove(&mut self, item: &MetaItem) {
        self.0.retain(|i| i != item);
    }

    /// The items in order, leaving the list empty; hand the vector back
    /// with [`DirtyItems::give_back`] to reuse its allocation.
    fn take_sorted(&mut self) -> Vec<MetaItem> {
        let mut items = std::mem::take(&mut self.0);
        items.sort_unstable();
        items
    }

    fn give_back(&mut self, mut items: Vec<MetaItem>) {
        if self.0.is_empty() {
            items.clear();
            self.0 = items;
        }
    }
}

/// Decoded metadata; `None`/absent = not loaded yet.
#[derive(Default)]
struct MetaCache {
    dbdir: Option<DbDirectory>,
    reldirs: HashMap<(Oid, Oid), RelDirectory>,
    /// Sizes of relation forks that exist (per their directory).
    rel_sizes: HashMap<RelTag, BlockNumber>,
    slru_dirs: HashMap<SlruKind, SlruSegmentDirectory>,
    /// Sizes of SLRU segments that exist.
    slru_sizes: HashMap<(SlruKind, u32), u32>,
    twophase: Option<TwoPhaseDirectory>,
}

/// See the module documentation.
pub struct DatadirModification {
    tl: Arc<Timeline>,
    cache: MetaCache,
    /// The timeline's `last_record_lsn` at the last commit (or creation);
    /// uncached metadata is read there.
    committed_lsn: Lsn,
    /// End LSN of the record being added.
    lsn: Lsn,
    /// Values of the records since the last commit, serialized as they
    /// were added.
    pending: SerializedBatch,
    pending_bytes: usize,
    /// Pending page values (relation or SLRU blocks): reads of pages must go
    /// through a commit first.
    pending_pages: usize,
    /// Raw (not cached) values put since the last commit, for reads.
    raw_overlay: HashMap<Key, Bytes>,
    /// Metadata changed by the current record, not yet serialized.
    dirty: DirtyItems,
    /// Keys that got a value from the current record.
    record_keys: RecordKeys,
    poisoned: bool,
}

impl DatadirModification {
    /// A writer's view of `tl` at its current `last_record_lsn`.
    pub fn new(tl: Arc<Timeline>) -> Self {
        let committed_lsn = tl.get_last_record_lsn();
        DatadirModification {
            tl,
            cache: MetaCache::default(),
            committed_lsn,
            lsn: committed_lsn,
            pending: SerializedBatch::new(),
            pending_bytes: 0,
            pending_pages: 0,
            raw_overlay: HashMap::default(),
            dirty: DirtyItems::default(),
            record_keys: RecordKeys::default(),
            poisoned: false,
        }
    }

    pub fn timeline(&self) -> &Arc<Timeline> {
        &self.tl
    }

    /// End LSN of the record being added (the last committed LSN before the
    /// first `set_lsn`).
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    pub fn committed_lsn(&self) -> Lsn {
        self.committed_lsn
    }

    /// Values waiting for the next commit.
    pub fn pending_values(&self) -> usize {
        self.pending.len()
    }

    /// Approximate bytes waiting for the next commit.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Whether commit would write anything or move the LSN.
    pub fn has_uncommitted(&self) -> bool {
        self.lsn > self.committed_lsn
    }

    /// The committed state at the last commit; for reads of pages, which the
    /// cache does not hold (see [`Self::committed_view_for_pages`]).
    fn committed_view(&self) -> DatadirView<'_> {
        DatadirView::new(&self.tl, self.committed_lsn)
    }

    /// A view for reading pages as the current state: allowed only when no
    /// page value is pending, since those are not visible to timeline reads
    /// before commit.
    pub fn committed_view_for_pages(&self, what: &str) -> Result<DatadirView<'_>, DatadirError> {
        self.check()?;
        if self.pending_pages > 0 {
            return Err(DatadirError::UncommittedPages {
                what: what.to_owned(),
                lsn: self.lsn,
            });
        }
        Ok(self.committed_view())
    }

    fn check(&self) -> Result<(), DatadirError> {
        if self.poisoned {
            Err(DatadirError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn poison_on_err<T>(&mut self, r: Result<T, DatadirError>) -> Result<T, DatadirError> {
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Starts the next record, ending at `lsn`; finishes the current one.
    pub fn set_lsn(&mut self, lsn: Lsn) -> Result<(), DatadirError> {
        self.check()?;
        if lsn <= self.lsn {
            return Err(DatadirError::LsnNotAdvancing {
                lsn,
                current: self.lsn,
            });
        }
        let r = self.finish_record();
        self.poison_on_err(r)?;
        self.lsn = lsn;
        Ok(())
    }

    /// Serializes the metadata the current record changed, at its LSN.
    fn finish_record(&mut self) -> Result<(), DatadirError> {
        if self.dirty.0.is_empty() {
            // Most records change no metadata.
            self.record_keys.clear();
            return Ok(());
        }
        let dirty = self.dirty.take_sorted();
        for &item in &dirty {
            let (key, bytes) = match item {
                MetaItem::DbDir => match &self.cache.dbdir {
                    Some(d) => (DBDIR_KEY, d.encode()),
                    None => continue,
                },
                MetaItem::RelDir(spc, db) => match self.cache.reldirs.get(&(spc, db)) {
                    Some(d) => (rel_dir_to_key(spc, db), d.encode()),
                    None => continue,
                },
                MetaItem::RelSize(rel) => match self.cache.rel_sizes.get(&rel) {
                    Some(n) => (rel_size_to_key(rel), format::encode_size(*n)),
                    // Dropped later in the same record: the directory says so.
                    None => continue,
                },
                MetaItem::SlruDir(kind) => match self.cache.slru_dirs.get(&kind) {
                    Some(d) => (slru_dir_to_key(kind), d.encode()),
                    None => continue,
                },
                MetaItem::SlruSize(kind, segno) => {
                    match self.cache.slru_sizes.get(&(kind, segno)) {
                        Some(n) => (
                            slru_segment_size_to_key(kind, segno),
                            format::encode_size(*n),
                        ),
                        None => continue,
                    }
                }
                MetaItem::TwoPhaseDir => match &self.cache.twophase {
                    Some(d) => (TWOPHASEDIR_KEY, d.encode()),
                    None => continue,
                },
            };
            self.push(key, Value::Image(bytes), false)?;
        }
        self.dirty.give_back(dirty);
        self.record_keys.clear();
        Ok(())
    }

    /// Adds a value for `key` at the current record's LSN.
    fn push(&mut self, key: Key, value: Value, is_page: bool) -> Result<(), DatadirError> {
        self.push_with(key, value.will_init(), is_page, |out| {
            value.ser_into(out);
            Ok(())
        })
    }

    /// Adds a value for `key` at the current record's LSN that `write`
    /// serializes (as `Value::ser_into` would) into the pending batch.
    fn push_with<E: From<DatadirError>>(
        &mut self,
        key: Key,
        will_init: bool,
        is_page: bool,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.lsn <= self.committed_lsn {
            return Err(DatadirError::LsnNotAdvancing {
                lsn: self.lsn,
                current: self.committed_lsn,
            }
            .into());
        }
        if !key.is_valid_key_on_write_path() {
            return Err(DatadirError::Unstorable {
                what: format!("key {key}"),
                reason: "field2 (tablespace OID) does not fit 16 bits".to_owned(),
            }
            .into());
        }
        if !self.record_keys.insert(key) {
            return Err(DatadirError::DuplicatePut { key, lsn: self.lsn }.into());
        }
        let before = self.pending.data().len();
        self.pending
            .push_with(key, self.lsn, will_init, |out| {
                write(out).map_err(Pushed::Write)
            })
            .map_err(|e| match e {
                Pushed::Write(e) => e,
                Pushed::TooLarge(e) => DatadirError::Unstorable {
                    what: format!("value of key {} at {}", e.key, e.lsn),
                    reason: format!("{} bytes serialized, above the limit", e.len),
                }
                .into(),
            })?;
        self.pending_bytes += VALUE_OVERHEAD + (self.pending.data().len() - before);
        if is_page {
            self.pending_pages += 1;
        }
        Ok(())
    }

    fn push_raw(&mut self, key: Key, bytes: Bytes) -> Result<(), DatadirError> {
        self.push(key, Value::Image(bytes.clone()), false)?;
        self.raw_overlay.insert(key, bytes);
        Ok(())
    }

    /// Writes the pending batch and publishes the current record's end LSN
    /// as the timeline's `last_record_lsn`. A no-op when nothing happened
    /// since the last commit.
    pub async fn commit(&mut self) -> Result<(), DatadirError> {
        self.check()?;
        let r = self.commit_inner().await;
        self.poison_on_err(r)
    }

    async fn commit_inner(&mut self) -> Result<(), DatadirError> {
        if self.lsn <= self.committed_lsn {
            return Ok(());
        }
        self.finish_record()?;
        let mut writer = self.tl.writer().await;
        let last = self.tl.get_last_record_lsn();
        if last != self.committed_lsn {
            return Err(DatadirError::ConcurrentWriter {
                timeline: self.tl.timeline_id.to_string(),
                expected: self.committed_lsn,
                found: last,
            });
        }
        writer
            .put_serialized(&self.pending, self.lsn)
            .await
            .map_err(|source| DatadirError::Commit {
                lsn: self.lsn,
                source,
            })?;
        drop(writer);
        self.pending.clear();
        self.pending_bytes = 0;
        self.pending_pages = 0;
        self.raw_overlay.clear();
        self.committed_lsn = self.lsn;
        Ok(())
    }

    // ---- raw values ----

    /// A raw value as of the current record: this batch's, else committed.
    pub async fn get_raw(&self, key: Key, what: &str) -> Result<Option<Bytes>, DatadirError> {
        self.check()?;
        if let Some(v) = self.raw_overlay.get(&key) {
            return Ok(Some(v.clone()));
        }
        self.committed_view().get_opt(key, what).await
    }

    pub fn put_control_file(&mut self, bytes: Bytes) -> Result<(), DatadirError> {
        self.check()?;
        let r = self.push_raw(CONTROLFILE_KEY, bytes);
        self.poison_on_err(r)
    }

    /// The serialized `CheckPoint` struct.
    pub fn put_checkpoint(&mut self, bytes: Bytes) -> Result<(), DatadirError> {
        self.check()?;
        let r = self.push_raw(CHECKPOINT_KEY, bytes);
        self.poison_on_err(r)
    }

    /// Replication origin progress (u64 big-endian LSN).
    pub fn put_repl_origin(&mut self, origin_id: u16, remote_lsn: Lsn) -> Result<(), DatadirError> {
        self.check()?;
        let bytes = Bytes::copy_from_slice(&remote_lsn.0.to_be_bytes());
        let r = self.push_raw(repl_origin_key(origin_id), bytes);
        self.poison_on_err(r)
    }

    /// Removes a replication origin: an empty value, the sparse keyspace's
    /// tombstone.
    pub fn drop_repl_origin(&mut self, origin_id: u16) -> Result<(), DatadirError> {
        self.check()?;
        let r = self.push_raw(repl_origin_key(origin_id), Bytes::new());
        self.poison_on_err(r)
    }

    // ---- databases ----

    async fn dbdir(&mut self) -> Result<&mut DbDirectory, DatadirError> {
        if self.cache.dbdir.is_none() {
            let d = self.committed_view().db_directory().await?;
            self.cache.dbdir = Some(d);
        }
        Ok(self.cache.dbdir.get_or_insert_with(DbDirectory::default))
    }

    async fn reldir(&mut self, spc: Oid, db: Oid) -> Result<&mut RelDirectory, DatadirError> {
        if !self.cache.reldirs.contains_key(&(spc, db)) {
            let d = self.committed_view().rel_directory(spc, db).await?;
            self.cache.reldirs.insert((spc, db), d);
        }
        Ok(self.cache.reldirs.entry((spc, db)).or_default())
    }

    /// The database directory as of the current record.
    pub async fn db_directory(&mut self) -> Result<DbDirectory, DatadirError> {
        self.check()?;
        let r = self.dbdir().await.map(|d| d.clone());
        self.poison_on_err(r)
    }

    /// Registers database `(spc, db)` if it is not known yet (without a
    /// relmapper file), with an empty relation directory.
    pub async fn put_db_creation(&mut self, spc: Oid, db: Oid) -> Result<(), DatadirError> {
        self.check()?;
        let r = self.ensure_db(spc, db).await;
        self.poison_on_err(r)
    }

    async fn ensure_db(&mut self, spc: Oid, db: Oid) -> Result<(), DatadirError> {
        let dbdir = self.dbdir().await?;
        if dbdir.dbs.contains_key(&(spc, db)) {
            return Ok(());
        }
        dbdir.dbs.insert((spc, db), false);
        self.dirty.insert(MetaItem::DbDir);
        // A database that was dropped may have left an old directory value:
        // start from an empty one.
        self.cache
            .reldirs
            .insert((spc, db), RelDirectory::default());
        self.dirty.insert(MetaItem::RelDir(spc, db));
        Ok(())
    }

    /// Stores the relmapper file of `(spc, db)` (`(1664, 0)` = shared),
    /// registering the database if needed.
    pub async fn put_relmap_file(
        &mut self,
        spc: Oid,
        db: Oid,
        bytes: Bytes,
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = async {
            self.ensure_db(spc, db).await?;
            let dbdir = self.dbdir().await?;
            if dbdir.dbs.insert((spc, db), true) != Some(true) {
                self.dirty.insert(MetaItem::DbDir);
            }
            self.push_raw(relmap_file_key(spc, db), bytes)
        }
        .await;
        self.poison_on_err(r)
    }

    /// Drops a database: all its relation forks and its directory entry.
    /// Returns the number of relation forks dropped.
    pub async fn drop_db(&mut self, spc: Oid, db: Oid) -> Result<usize, DatadirError> {
        self.check()?;
        let r = async {
            let dir = std::mem::take(self.reldir(spc, db).await?);
            for &(relnode, forknum) in &dir.rels {
                let rel = RelTag::new(spc, db, relnode, forknum);
                self.cache.rel_sizes.remove(&rel);
                self.dirty.remove(&MetaItem::RelSize(rel));
            }
            self.dirty.insert(MetaItem::RelDir(spc, db));
            let dbdir = self.dbdir().await?;
            if dbdir.dbs.remove(&(spc, db)).is_some() {
                self.dirty.insert(MetaItem::DbDir);
            }
            Ok(dir.rels.len())
        }
        .await;
        self.poison_on_err(r)
    }

    // ---- relations ----

    /// Relation forks of a database as of the current record.
    pub async fn list_rels(&mut self, spc: Oid, db: Oid) -> Result<Vec<RelTag>, DatadirError> {
        self.check()?;
        let r = self.reldir(spc, db).await.map(|d| {
            d.rels
                .iter()
                .map(|&(relnode, fork)| RelTag::new(spc, db, relnode, fork))
                .collect()
        });
        self.poison_on_err(r)
    }

    /// Size of a relation fork as of the current record; `None` if it does
    /// not exist.
    pub async fn rel_size(&mut self, rel: RelTag) -> Result<Option<BlockNumber>, DatadirError> {
        self.check()?;
        let r = self.rel_size_inner(rel).await;
        self.poison_on_err(r)
    }

    async fn rel_size_inner(&mut self, rel: RelTag) -> Result<Option<BlockNumber>, DatadirError> {
        // Cached sizes are only ever held for forks that exist (the drops
        // remove them), so a hit needs no directory lookup: this runs for
        // every block reference ingest stores.
        if let Some(n) = self.cache.rel_sizes.get(&rel) {
            return Ok(Some(*n));
        }
        if !self
            .reldir(rel.spcnode, rel.dbnode)
            .await?
            .rels
            .contains(&(rel.relnode, rel.forknum))
        {
            return Ok(None);
        }
        let n = self.committed_view().rel_size_unchecked(rel).await?;
        self.cache.rel_sizes.insert(rel, n);
        Ok(Some(n))
    }

    fn set_rel_size(&mut self, rel: RelTag, nblocks: BlockNumber) {
        self.cache.rel_sizes.insert(rel, nblocks);
        self.dirty.insert(MetaItem::RelSize(rel));
    }

    /// Creates a relation fork with `nblocks` blocks, or resets an existing
    /// one to that size (its old blocks become unreachable past the size).
    /// Registers the database if needed.
    pub async fn put_rel_creation(
        &mut self,
        rel: RelTag,
        nblocks: BlockNumber,
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = self.create_rel(rel, nblocks).await;
        self.poison_on_err(r)
    }

    async fn create_rel(&mut self, rel: RelTag, nblocks: BlockNumber) -> Result<(), DatadirError> {
        if rel.relnode == 0 {
            return Err(DatadirError::Unstorable {
                what: format!("relation {rel}"),
                reason: "relfilenode 0 is not a relation".to_owned(),
            });
        }
        self.ensure_db(rel.spcnode, rel.dbnode).await?;
        let dir = self.reldir(rel.spcnode, rel.dbnode).await?;
        if dir.rels.insert((rel.relnode, rel.forknum)) {
            self.dirty.insert(MetaItem::RelDir(rel.spcnode, rel.dbnode));
        }
        self.set_rel_size(rel, nblocks);
        Ok(())
    }

    /// Creates a relation fork with 0 blocks unless it exists; returns its
    /// size (Postgres `smgrcreate(..., isRedo=true)`).
    pub async fn create_rel_if_missing(
        &mut self,
        rel: RelTag,
    ) -> Result<BlockNumber, DatadirError> {
        self.check()?;
        let r = async {
            match self.rel_size_inner(rel).await? {
                Some(n) => Ok(n),
                None => {
                    self.create_rel(rel, 0).await?;
                    Ok(0)
                }
            }
        }
        .await;
        self.poison_on_err(r)
    }

    /// Sets the size of an existing relation fork to `nblocks` (blocks at
    /// and past it become unreachable). Returns the old size.
    pub async fn put_rel_truncation(
        &mut self,
        rel: RelTag,
        nblocks: BlockNumber,
    ) -> Result<BlockNumber, DatadirError> {
        self.check()?;
        let r = async {
            let old = self
                .rel_size_inner(rel)
                .await?
                .ok_or(DatadirError::RelationNotFound { rel, lsn: self.lsn })?;
            if old != nblocks {
                self.set_rel_size(rel, nblocks);
            }
            Ok(old)
        }
        .await;
        self.poison_on_err(r)
    }

    /// Removes a relation fork; `false` if it did not exist.
    pub async fn put_rel_drop(&mut self, rel: RelTag) -> Result<bool, DatadirError> {
        self.check()?;
        let r = async {
            let dir = self.reldir(rel.spcnode, rel.dbnode).await?;
            if !dir.rels.remove(&(rel.relnode, rel.forknum)) {
                return Ok(false);
            }
            self.dirty.insert(MetaItem::RelDir(rel.spcnode, rel.dbnode));
            self.cache.rel_sizes.remove(&rel);
            self.dirty.remove(&MetaItem::RelSize(rel));
            Ok(true)
        }
        .await;
        self.poison_on_err(r)
    }

    /// Stores `value` for block `blkno` of `rel`, as WAL redo sees a block
    /// reference: a missing relation fork is created, and a block past the
    /// end extends the fork, the blocks in between becoming zero pages
    /// (Postgres recovery extends relations the same way).
    pub async fn put_rel_block(
        &mut self,
        rel: RelTag,
        blkno: BlockNumber,
        value: Value,
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = async {
            self.extend_rel_to(rel, blkno, &|_| ZERO_PAGE.clone())
                .await?;
            self.push(rel_block_to_key(rel, blkno), value, true)
        }
        .await;
        self.poison_on_err(r)
    }

    /// Makes sure the size of `rel` is cached, creating the fork (0 blocks)
    /// if it does not exist, so that [`Self::put_rel_block_with`] can run
    /// without IO. Cheap when the size is cached already (the rule on the
    /// ingest path: the first block of a relation in a batch loads it).
    pub async fn prepare_rel(&mut self, rel: RelTag) -> Result<(), DatadirError> {
        if self.cache.rel_sizes.contains_key(&rel) {
            return self.check();
        }
        self.create_rel_if_missing(rel).await.map(|_| ())
    }

    /// [`Self::put_rel_block`] of a value that `write` serializes straight
    /// into the pending batch, in the form of `Value::ser_into` (a page
    /// restored from a full-page image, a WAL record copied from the
    /// decoder's buffer): no intermediate `Value` is built, and nothing is
    /// awaited. The fork must have been prepared ([`Self::prepare_rel`]).
    pub fn put_rel_block_with<E: From<DatadirError>>(
        &mut self,
        rel: RelTag,
        blkno: BlockNumber,
        will_init: bool,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.check()?;
        let r = match self.cache.rel_sizes.get(&rel) {
            Some(&size) => self
                .extend_known(rel, size, blkno, &|_| ZERO_PAGE.clone())
                .map_err(E::from)
                .and_then(|()| {
                    self.push_with(rel_block_to_key(rel, blkno), will_init, true, write)
                }),
            None => Err(DatadirError::RelationNotFound { rel, lsn: self.lsn }.into()),
        };
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// The size of `rel` if it is cached: then [`Self::put_rel_block_with`]
    /// and [`Self::put_rel_block_cached`] need no IO for it.
    pub fn cached_rel_size(&self, rel: RelTag) -> Option<BlockNumber> {
        self.cache.rel_sizes.get(&rel).copied()
    }

    /// [`Self::put_rel_block`] without IO, for a fork whose size is cached
    /// ([`Self::cached_rel_size`]).
    pub fn put_rel_block_cached(
        &mut self,
        rel: RelTag,
        blkno: BlockNumber,
        value: Value,
    ) -> Result<(), DatadirError> {
        self.put_rel_block_with(rel, blkno, value.will_init(), |out| {
            value.ser_into(out);
            Ok::<(), DatadirError>(())
        })
    }

    /// Extends `rel`, whose size is `size`, to `blkno + 1` blocks if it is
    /// shorter, filling the blocks before `blkno` with `fill(block)`.
    fn extend_known(
        &mut self,
        rel: RelTag,
        size: BlockNumber,
        blkno: BlockNumber,
        fill: &(dyn Fn(BlockNumber) -> Bytes + Sync),
    ) -> Result<(), DatadirError> {
        if blkno > MAX_BLOCKNUMBER {
            return Err(DatadirError::Unstorable {
                what: format!("block {blkno} of {rel}"),
                reason: "block number 0xFFFFFFFF is InvalidBlockNumber".to_owned(),
            });
        }
        if blkno >= size {
            for gap in size..blkno {
                self.push(rel_block_to_key(rel, gap), Value::Image(fill(gap)), true)?;
            }
            self.set_rel_size(rel, blkno + 1);
        }
        Ok(())
    }

    /// Makes `rel` (created if missing) at least `blkno + 1` blocks long,
    /// filling new blocks before `blkno` with `fill(block)`; block `blkno`
    /// itself is left to the caller. Returns the size before.
    pub async fn extend_rel_to(
        &mut self,
        rel: RelTag,
        blkno: BlockNumber,
        fill: &(dyn Fn(BlockNumber) -> Bytes + Sync),
    ) -> Result<BlockNumber, DatadirError> {
        self.check()?;
        let r = async {
            let size = match self.rel_size_inner(rel).await? {
                Some(n) => n,
                None => {
                    self.create_rel(rel, 0).await?;
                    0
                }
            };
            self.extend_known(rel, size, blkno, fill)?;
            Ok(size)
        }
        .await;
        self.poison_on_err(r)
    }

    /// Stores a page of a relation whose size the caller manages (import,
    /// database copy). The block must be below the size set with
    /// [`Self::put_rel_creation`].
    pub fn put_rel_page_image(
        &mut self,
        rel: RelTag,
        blkno: BlockNumber,
        page: Bytes,
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = match self.cache.rel_sizes.get(&rel) {
            Some(&n) if blkno < n => {
                self.push(rel_block_to_key(rel, blkno), Value::Image(page), true)
            }
            Some(&n) => Err(DatadirError::BlockBeyondEnd {
                rel,
                blkno,
                nblocks: n,
                lsn: self.lsn,
            }),
            None => Err(DatadirError::RelationNotFound { rel, lsn: self.lsn }),
        };
        self.poison_on_err(r)
    }

    // ---- SLRUs ----

    async fn slru_dir(
        &mut self,
        kind: SlruKind,
    ) -> Result<&mut SlruSegmentDirectory, DatadirError> {
        if !self.cache.slru_dirs.contains_key(&kind) {
            let d = self.committed_view().slru_directory(kind).await?;
            self.cache.slru_dirs.insert(kind, d);
        }
        Ok(self.cache.slru_dirs.entry(kind).or_default())
    }

    /// Segments of an SLRU as of the current record.
    pub async fn slru_segments(&mut self, kind: SlruKind) -> Result<Vec<u32>, DatadirError> {
        self.check()?;
        let r = self
            .slru_dir(kind)
            .await
            .map(|d| d.segments.iter().copied().collect());
        self.poison_on_err(r)
    }

    /// Size in pages of an SLRU segment; `None` if it does not exist.
    pub async fn slru_segment_size(
        &mut self,
        kind: SlruKind,
        segno: u32,
    ) -> Result<Option<u32>, DatadirError> {
        self.check()?;
        let r = self.slru_segment_size_inner(kind, segno).await;
        self.poison_on_err(r)
    }

    async fn slru_segment_size_inner(
        &mut self,
        kind: SlruKind,
        segno: u32,
    ) -> Result<Option<u32>, DatadirError> {
        if !self.slru_dir(kind).await?.segments.contains(&segno) {
            return Ok(None);
        }
        if let Some(n) = self.cache.slru_sizes.get(&(kind, segno)) {
            return Ok(Some(*n));
        }
        let n = self
            .committed_view()
            .slru_segment_size(kind, segno)
            .await?
            .unwrap_or(0);
        self.cache.slru_sizes.insert((kind, segno), n);
        Ok(Some(n))
    }

    /// Whether page `blkno` of an SLRU segment exists, if the segment's
    /// directory and size are cached (None: unknown without IO).
    pub fn cached_slru_page_exists(&self, kind: SlruKind, segno: u32, blkno: u32) -> Option<bool> {
        if !self.cache.slru_dirs.get(&kind)?.segments.contains(&segno) {
            return Some(false);
        }
        let size = self.cache.slru_sizes.get(&(kind, segno))?;
        Some(blkno < *size)
    }

    /// [`Self::put_slru_record`] without IO, for a page that
    /// [`Self::cached_slru_page_exists`] says exists.
    pub fn put_slru_record_cached(
        &mut self,
        kind: SlruKind,
        segno: u32,
        blkno: u32,
        rec: WalRecord,
    ) -> Result<(), DatadirError> {
        let will_init = rec.will_init();
        self.put_slru_record_with(kind, segno, blkno, will_init, |out| {
            Value::WalRecord(rec).ser_into(out)
        })
    }

    /// [`Self::put_slru_record_cached`] of a value `write` serializes (as
    /// `Value::ser_into` would) straight into the pending batch.
    pub fn put_slru_record_with(
        &mut self,
        kind: SlruKind,
        segno: u32,
        blkno: u32,
        will_init: bool,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = match self.cached_slru_page_exists(kind, segno, blkno) {
            Some(true) => self.push_with(
                slru_block_to_key(kind, segno, blkno),
                will_init,
                true,
                |out| {
                    write(out);
                    Ok::<(), DatadirError>(())
                },
            ),
            _ => Err(DatadirError::Missing {
                what: format!("cached page {blkno} of {kind} segment {segno:04X}"),
                lsn: self.lsn,
            }),
        };
        self.poison_on_err(r)
    }

    /// Whether page `blkno` of an SLRU segment exists.
    pub async fn slru_page_exists(
        &mut self,
        kind: SlruKind,
        segno: u32,
        blkno: u32,
    ) -> Result<bool, DatadirError> {
        Ok(self
            .slru_segment_size(kind, segno)
            .await?
            .is_some_and(|n| blkno < n))
    }

    /// Stores a whole SLRU page (e.g. a zeroed one), creating the segment
    /// and extending it as needed; skipped pages become zero pages.
    pub async fn put_slru_page_image(
        &mut self,
        kind: SlruKind,
        segno: u32,
        blkno: u32,
        page: Bytes,
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = async {
            if blkno >= SLRU_PAGES_PER_SEGMENT {
                return Err(DatadirError::Unstorable {
                    what: format!("page {blkno} of {kind} segment {segno:04X}"),
                    reason: format!("a segment has {SLRU_PAGES_PER_SEGMENT} pages"),
                });
            }
            let size = match self.slru_segment_size_inner(kind, segno).await? {
                Some(n) => n,
                None => {
                    self.slru_dir(kind).await?.segments.insert(segno);
                    self.dirty.insert(MetaItem::SlruDir(kind));
                    0
                }
            };
            if blkno >= size {
                for gap in size..blkno {
                    self.push(
                        slru_block_to_key(kind, segno, gap),
                        Value::Image(ZERO_PAGE.clone()),
                        true,
                    )?;
                }
                self.cache.slru_sizes.insert((kind, segno), blkno + 1);
                self.dirty.insert(MetaItem::SlruSize(kind, segno));
            }
            self.push(
                slru_block_to_key(kind, segno, blkno),
                Value::Image(page),
                true,
            )
        }
        .await;
        self.poison_on_err(r)
    }

    /// Stores a record for an existing SLRU page.
    pub async fn put_slru_record(
        &mut self,
        kind: SlruKind,
        segno: u32,
        blkno: u32,
        rec: WalRecord,
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = async {
            let size = self.slru_segment_size_inner(kind, segno).await?;
            if size.is_none_or(|n| blkno >= n) {
                return Err(DatadirError::Missing {
                    what: format!("page {blkno} of {kind} segment {segno:04X}"),
                    lsn: self.lsn,
                });
            }
            self.push(
                slru_block_to_key(kind, segno, blkno),
                Value::WalRecord(rec),
                true,
            )
        }
        .await;
        self.poison_on_err(r)
    }

    /// Sets the size of an SLRU segment whose pages the caller stores with
    /// [`Self::put_slru_page_image`] (import).
    pub async fn put_slru_segment_creation(
        &mut self,
        kind: SlruKind,
        segno: u32,
        nblocks: u32,
    ) -> Result<(), DatadirError> {
        self.check()?;
        let r = async {
            if self.slru_dir(kind).await?.segments.insert(segno) {
                self.dirty.insert(MetaItem::SlruDir(kind));
            }
            self.cache.slru_sizes.insert((kind, segno), nblocks);
            self.dirty.insert(MetaItem::SlruSize(kind, segno));
            Ok(())
        }
        .await;
        self.poison_on_err(r)
    }

    /// Removes an SLRU segment file; `false` if it did not exist.
    pub async fn drop_slru_segment(
        &mut self,
        kind: SlruKind,
        segno: u32,
    ) -> Result<bool, DatadirError> {
        self.check()?;
        let r = async {
            if !self.slru_dir(kind).await?.segments.remove(&segno) {
                return Ok(false);
            }
            self.dirty.insert(MetaItem::SlruDir(kind));
            self.cache.slru_sizes.remove(&(kind, segno));
            self.dirty.remove(&MetaItem::SlruSize(kind, segno));
            Ok(true)
        }
        .await;
        self.poison_on_err(r)
    }

    // ---- two-phase state ----

    async fn twophase_dir(&mut self) -> Result<&mut TwoPhaseDirectory, DatadirError> {
        if self.cache.twophase.is_none() {
            let d = self.committed_view().twophase_directory().await?;
            self.cache.twophase = Some(d);
        }
        Ok(self
            .cache
            .twophase
            .get_or_insert_with(TwoPhaseDirectory::default))
    }

    /// Prepared transactions as of the current record.
    pub async fn twophase_xids(&mut self) -> Result<Vec<u64>, DatadirError> {
        self.check()?;
        let r = self
            .twophase_dir()
            .await
            .map(|d| d.xids.iter().copied().collect());
        self.poison_on_err(r)
    }

    /// Stores the state file of a prepared transaction.
    pub async fn put_twophase_file(&mut self, xid: u64, file: Bytes) -> Result<(), DatadirError> {
        self.check()?;
        let r = async {
            if self.twophase_dir().await?.xids.insert(xid) {
                self.dirty.insert(MetaItem::TwoPhaseDir);
            }
            self.push_raw(twophase_file_key(xid), file)
        }
        .await;
        self.poison_on_err(r)
    }

    /// Forgets a prepared transaction; `false` if it was not known.
    pub async fn drop_twophase_file(&mut self, xid: u64) -> Result<bool, DatadirError> {
        self.check()?;
        let r = async {
            let removed = self.twophase_dir().await?.xids.remove(&xid);
            if removed {
                self.dirty.insert(MetaItem::TwoPhaseDir);
            }
            Ok(removed)
        }
        .await;
        self.poison_on_err(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_refuse_a_second_put_before_and_after_spilling() {
        let mut keys = RecordKeys::default();
        for round in 0..2 {
            for n in 0..20 {
                assert!(keys.insert(Key::MIN.add(n)), "round {round} key {n}");
                // Every key put so far, inline or spilled, is refused.
                for m in 0..=n {
                    assert!(!keys.insert(Key::MIN.add(m)), "round {round} {m} after {n}");
                }
            }
            keys.clear();
        }
        assert!(keys.insert(Key::MIN));
        assert!(!keys.insert(Key::MIN));
    }
}
