//! The Postgres-level view of a timeline: what a data directory holds at an
//! LSN (databases, relations and their sizes, SLRU segments, prepared
//! transactions, relmapper files, `pg_control`, the latest checkpoint), on
//! top of the key/value storage engine.
//!
//! Every item has a key (`pageserver_api::key`); pages are stored as images
//! or WAL records, metadata as small images in the formats of [`format`].
//! The directories are the source of truth for existence: a relation exists
//! at an LSN iff its `(relnode, fork)` is in its database's relation
//! directory, and its database is in the database directory. Keys of dropped
//! relations (blocks, size) may still hold old values — the storage engine
//! has no deletion yet — but nothing reads them: sizes and pages are only
//! looked up for relations the directory lists, and blocks at or past a
//! relation's size are refused.
//!
//! - [`DatadirView`]: read-only view at one LSN (page service, basebackup,
//!   tests).
//! - [`DatadirModification`]: the single writer's view; accumulates the
//!   values of a batch of WAL records (reads see them), and commits them
//!   atomically with `put_batch` (module [`modification`]).
//! - [`format`]: binary forms of sizes and directories.

pub mod format;
pub mod modification;

use std::collections::BTreeSet;
use std::ops::Range;

use bytes::Bytes;
use pageserver_api::key::{
    rel_block_to_key, rel_dir_to_key, rel_size_to_key, relmap_file_key, slru_block_to_key,
    slru_dir_to_key, slru_segment_size_to_key, twophase_file_key, Key, CHECKPOINT_KEY,
    CONTROLFILE_KEY, DBDIR_KEY, TWOPHASEDIR_KEY,
};
use pageserver_api::keyspace::KeySpace;
use pageserver_api::reltag::{BlockNumber, Oid, RelTag, SlruKind};
use postgres_ffi::v15::controlfile::{CheckPoint, ControlFileData, ControlFileError};
use postgres_ffi::BLCKSZ;
use utils::lsn::Lsn;

use crate::tenant::timeline::read::{GetError, GetVectoredError, PageReconstructError};
use crate::tenant::timeline::write::WriteError;
use crate::tenant::timeline::Timeline;
use crate::walredo::ClusterSettings;

pub use format::{
    DbDirectory, MetadataFormatError, RelDirectory, SlruSegmentDirectory, TwoPhaseDirectory,
};
pub use modification::DatadirModification;

/// The settings redo takes from a cluster's control file.
pub fn cluster_settings_of(cf: &ControlFileData) -> ClusterSettings {
    ClusterSettings {
        data_checksums: cf.data_checksum_version != 0,
        wal_log_hints: cf.wal_log_hints,
    }
}

/// Sets `tl`'s redo settings from its control file at the last record LSN
/// (left alone when the timeline holds no cluster yet).
pub async fn refresh_cluster_settings(tl: &Timeline) -> Result<(), DatadirError> {
    if let Some(s) = DatadirView::new(tl, tl.get_last_record_lsn())
        .cluster_settings()
        .await?
    {
        tl.set_cluster_settings(s);
    }
    Ok(())
}

/// An all-zero page: what Postgres extends relations with.
pub static ZERO_PAGE: Bytes = Bytes::from_static(&[0u8; BLCKSZ]);

/// A Postgres-level read or write failed; every variant names the item and
/// the LSN.
#[derive(Debug, thiserror::Error)]
pub enum DatadirError {
    #[error("reading {what} (key {key}) at {lsn}: {source}")]
    Read {
        what: String,
        key: Key,
        lsn: Lsn,
        #[source]
        source: Box<GetError>,
    },
    #[error("decoding {what} (key {key}) at {lsn}: {source}")]
    Format {
        what: String,
        key: Key,
        lsn: Lsn,
        #[source]
        source: MetadataFormatError,
    },
    #[error("decoding {what} at {lsn}: {source}")]
    ControlFile {
        what: &'static str,
        lsn: Lsn,
        #[source]
        source: ControlFileError,
    },
    #[error("{what} is missing at {lsn}")]
    Missing { what: String, lsn: Lsn },
    #[error("relation {rel} does not exist at {lsn}")]
    RelationNotFound { rel: RelTag, lsn: Lsn },
    #[error("block {blkno} of relation {rel} is at or past its end ({nblocks} blocks) at {lsn}")]
    BlockBeyondEnd {
        rel: RelTag,
        blkno: BlockNumber,
        nblocks: BlockNumber,
        lsn: Lsn,
    },
    #[error("SLRU segment {kind}/{segno:04X} does not exist at {lsn}")]
    SlruSegmentNotFound {
        kind: SlruKind,
        segno: u32,
        lsn: Lsn,
    },
    #[error("{what} cannot be stored: {reason}")]
    Unstorable { what: String, reason: String },
    #[error("two values for key {key} in the record ending at {lsn}")]
    DuplicatePut { key: Key, lsn: Lsn },
    #[error("LSN {lsn} does not advance past {current}")]
    LsnNotAdvancing { lsn: Lsn, current: Lsn },
    #[error("{what} needs committed data, but the batch ending at {lsn} has uncommitted page values; commit first")]
    UncommittedPages { what: String, lsn: Lsn },
    #[error("committing the batch ending at {lsn}: {source}")]
    Commit {
        lsn: Lsn,
        #[source]
        source: WriteError,
    },
    #[error("timeline {timeline} moved from {expected} to {found} under this writer; its cached state is stale")]
    ConcurrentWriter {
        timeline: String,
        expected: Lsn,
        found: Lsn,
    },
    #[error("this modification was abandoned after an earlier error; start a new one")]
    Poisoned,
}

/// The read LSN in a read error, for callers that report positions.
impl DatadirError {
    pub fn lsn(&self) -> Option<Lsn> {
        use DatadirError::*;
        match self {
            Read { lsn, .. }
            | Format { lsn, .. }
            | ControlFile { lsn, .. }
            | Missing { lsn, .. }
            | RelationNotFound { lsn, .. }
            | BlockBeyondEnd { lsn, .. }
            | SlruSegmentNotFound { lsn, .. }
            | DuplicatePut { lsn, .. }
            | LsnNotAdvancing { lsn, .. }
            | UncommittedPages { lsn, .. }
            | Commit { lsn, .. } => Some(*lsn),
            Unstorable { .. } | ConcurrentWriter { .. } | Poisoned => None,
        }
    }
}

/// Whether a read error only says the key has no value at that LSN.
fn is_missing(e: &GetError) -> bool {
    matches!(
        e,
        GetError::Reconstruct(PageReconstructError::MissingKey { .. })
    )
}

/// Read-only Postgres-level view of a timeline at one LSN (inclusive: the
/// values of a record ending at `lsn` are visible). Reads wait for ingest
/// to reach `lsn`, like every timeline read.
#[derive(Clone, Copy)]
pub struct DatadirView<'a> {
    tl: &'a Timeline,
    lsn: Lsn,
}

impl<'a> DatadirView<'a> {
    pub fn new(tl: &'a Timeline, lsn: Lsn) -> Self {
        DatadirView { tl, lsn }
    }

    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    pub fn timeline(&self) -> &'a Timeline {
        self.tl
    }

    /// The value of `key`, `None` when nothing was ever stored for it.
    pub async fn get_opt(&self, key: Key, what: &str) -> Result<Option<Bytes>, DatadirError> {
        match self.tl.get(key, self.lsn).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.read_error(key, what, e)),
        }
    }

    /// The value of `key`; a missing key is an error.
    pub async fn get_req(&self, key: Key, what: &str) -> Result<Bytes, DatadirError> {
        self.get_opt(key, what)
            .await?
            .ok_or_else(|| DatadirError::Missing {
                what: format!("{what} (key {key})"),
                lsn: self.lsn,
            })
    }

    fn read_error(&self, key: Key, what: &str, e: GetError) -> DatadirError {
        DatadirError::Read {
            what: what.to_owned(),
            key,
            lsn: self.lsn,
            source: Box::new(e),
        }
    }

    fn format_error(&self, key: Key, what: &str, source: MetadataFormatError) -> DatadirError {
        DatadirError::Format {
            what: what.to_owned(),
            key,
            lsn: self.lsn,
            source,
        }
    }

    /// Values of many keys, read in vectored requests no larger than the
    /// engine's limit. Results come in the order of `keys`.
    pub async fn get_many(
        &self,
        keys: &[Key],
        what: &str,
    ) -> Result<Vec<Result<Bytes, PageReconstructError>>, DatadirError> {
        let limit = self.tl.resources.settings.max_get_vectored_keys.max(1);
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(limit) {
            let keyspace = KeySpace::from_ranges(chunk.iter().map(|k| *k..k.next()));
            let mut got =
                self.tl
                    .get_vectored(keyspace, self.lsn)
                    .await
                    .map_err(|e: GetVectoredError| {
                        self.read_error(chunk[0], what, GetError::Vectored(e))
                    })?;
            for key in chunk {
                out.push(
                    got.remove(key)
                        .unwrap_or(Err(PageReconstructError::MissingKey {
                            key: *key,
                            lsn: self.lsn,
                        })),
                );
            }
        }
        Ok(out)
    }

    pub async fn db_directory(&self) -> Result<DbDirectory, DatadirError> {
        const WHAT: &str = "database directory";
        match self.get_opt(DBDIR_KEY, WHAT).await? {
            Some(v) => DbDirectory::decode(&v).map_err(|e| self.format_error(DBDIR_KEY, WHAT, e)),
            None => Ok(DbDirectory::default()),
        }
    }

    /// The relation forks of database `(spcnode, dbnode)`; empty when the
    /// database does not exist.
    pub async fn rel_directory(
        &self,
        spcnode: Oid,
        dbnode: Oid,
    ) -> Result<RelDirectory, DatadirError> {
        let key = rel_dir_to_key(spcnode, dbnode);
        let what = format!("relation directory of {spcnode}/{dbnode}");
        match self.get_opt(key, &what).await? {
            Some(v) => RelDirectory::decode(&v).map_err(|e| self.format_error(key, &what, e)),
            None => Ok(RelDirectory::default()),
        }
    }

    /// Every relation fork of a database.
    pub async fn list_rels(
        &self,
        spcnode: Oid,
        dbnode: Oid,
    ) -> Result<BTreeSet<RelTag>, DatadirError> {
        let dir = self.rel_directory(spcnode, dbnode).await?;
        Ok(dir
            .rels
            .iter()
            .map(|&(relnode, forknum)| RelTag::new(spcnode, dbnode, relnode, forknum))
            .collect())
    }

    pub async fn rel_exists(&self, rel: RelTag) -> Result<bool, DatadirError> {
        let dir = self.rel_directory(rel.spcnode, rel.dbnode).await?;
        Ok(dir.rels.contains(&(rel.relnode, rel.forknum)))
    }

    /// Size in blocks, `None` if the relation fork does not exist.
    pub async fn rel_size(&self, rel: RelTag) -> Result<Option<BlockNumber>, DatadirError> {
        if !self.rel_exists(rel).await? {
            return Ok(None);
        }
        self.rel_size_unchecked(rel).await.map(Some)
    }

    /// The size key of a relation known to exist.
    pub(crate) async fn rel_size_unchecked(
        &self,
        rel: RelTag,
    ) -> Result<BlockNumber, DatadirError> {
        let key = rel_size_to_key(rel);
        let what = format!("size of relation {rel}");
        let v = self.get_req(key, &what).await?;
        format::decode_size("relation size", &v).map_err(|e| self.format_error(key, &what, e))
    }

    /// Sizes of relations known to exist, in vectored reads.
    async fn rel_sizes(&self, rels: &[RelTag]) -> Result<Vec<BlockNumber>, DatadirError> {
        let keys: Vec<Key> = rels.iter().map(|r| rel_size_to_key(*r)).collect();
        let values = self.get_many(&keys, "relation sizes").await?;
        let mut out = Vec::with_capacity(rels.len());
        for ((rel, key), value) in rels.iter().zip(&keys).zip(values) {
            let what = format!("size of relation {rel}");
            let v = value.map_err(|e| self.read_error(*key, &what, GetError::Reconstruct(e)))?;
            out.push(
                format::decode_size("relation size", &v)
                    .map_err(|e| self.format_error(*key, &what, e))?,
            );
        }
        Ok(out)
    }

    /// One page of an existing relation fork, below its size.
    pub async fn rel_page(&self, rel: RelTag, blkno: BlockNumber) -> Result<Bytes, DatadirError> {
        let nblocks = self
            .rel_size(rel)
            .await?
            .ok_or(DatadirError::RelationNotFound { rel, lsn: self.lsn })?;
        if blkno >= nblocks {
            return Err(DatadirError::BlockBeyondEnd {
                rel,
                blkno,
                nblocks,
                lsn: self.lsn,
            });
        }
        self.get_req(
            rel_block_to_key(rel, blkno),
            &format!("block {blkno} of {rel}"),
        )
        .await
    }

    /// Pages `blocks` of a relation the caller knows to exist and to be at
    /// least `blocks.end` long (vectored).
    pub async fn rel_pages_unchecked(
        &self,
        rel: RelTag,
        blocks: Range<BlockNumber>,
    ) -> Result<Vec<Bytes>, DatadirError> {
        let keys: Vec<Key> = blocks.map(|b| rel_block_to_key(rel, b)).collect();
        let values = self.get_many(&keys, &format!("pages of {rel}")).await?;
        keys.iter()
            .zip(values)
            .map(|(key, v)| {
                v.map_err(|e| {
                    self.read_error(
                        *key,
                        &format!("block {} of {rel}", key.field6),
                        GetError::Reconstruct(e),
                    )
                })
            })
            .collect()
    }

    /// Bytes of relation data in one database (all forks).
    pub async fn db_size(&self, spcnode: Oid, dbnode: Oid) -> Result<u64, DatadirError> {
        let rels: Vec<RelTag> = self.list_rels(spcnode, dbnode).await?.into_iter().collect();
        let sizes = self.rel_sizes(&rels).await?;
        Ok(sizes.iter().map(|&n| n as u64 * BLCKSZ as u64).sum())
    }

    /// Bytes of relation data in the whole cluster (all databases, all
    /// forks): the timeline's logical size.
    pub async fn logical_size(&self) -> Result<u64, DatadirError> {
        let mut total = 0;
        for &(spcnode, dbnode) in self.db_directory().await?.dbs.keys() {
            total += self.db_size(spcnode, dbnode).await?;
        }
        Ok(total)
    }

    /// The `pg_filenode.map` of a database (`(1664, 0)` for the shared one),
    /// if it has one.
    pub async fn relmap_file(
        &self,
        spcnode: Oid,
        dbnode: Oid,
    ) -> Result<Option<Bytes>, DatadirError> {
        let has = self
            .db_directory()
            .await?
            .dbs
            .get(&(spcnode, dbnode))
            .copied()
            .unwrap_or(false);
        if !has {
            return Ok(None);
        }
        let what = format!("relmapper file of {spcnode}/{dbnode}");
        self.get_req(relmap_file_key(spcnode, dbnode), &what)
            .await
            .map(Some)
    }

    pub async fn slru_directory(
        &self,
        kind: SlruKind,
    ) -> Result<SlruSegmentDirectory, DatadirError> {
        let key = slru_dir_to_key(kind);
        let what = format!("{kind} segment directory");
        match self.get_opt(key, &what).await? {
            Some(v) => {
                SlruSegmentDirectory::decode(&v).map_err(|e| self.format_error(key, &what, e))
            }
            None => Ok(SlruSegmentDirectory::default()),
        }
    }

    /// Size in pages of an SLRU segment, `None` if it does not exist.
    pub async fn slru_segment_size(
        &self,
        kind: SlruKind,
        segno: u32,
    ) -> Result<Option<u32>, DatadirError> {
        if !self.slru_directory(kind).await?.segments.contains(&segno) {
            return Ok(None);
        }
        let key = slru_segment_size_to_key(kind, segno);
        let what = format!("size of {kind} segment {segno:04X}");
        let v = self.get_req(key, &what).await?;
        format::decode_size("SLRU segment size", &v)
            .map(Some)
            .map_err(|e| self.format_error(key, &what, e))
    }

    /// One page of an SLRU segment, below the segment's size.
    pub async fn slru_page(
        &self,
        kind: SlruKind,
        segno: u32,
        blkno: u32,
    ) -> Result<Bytes, DatadirError> {
        let size = self.slru_segment_size(kind, segno).await?.ok_or(
            DatadirError::SlruSegmentNotFound {
                kind,
                segno,
                lsn: self.lsn,
            },
        )?;
        if blkno >= size {
            return Err(DatadirError::Missing {
                what: format!("page {blkno} of {kind} segment {segno:04X} ({size} pages)"),
                lsn: self.lsn,
            });
        }
        self.get_req(
            slru_block_to_key(kind, segno, blkno),
            &format!("page {blkno} of {kind} segment {segno:04X}"),
        )
        .await
    }

    pub async fn twophase_directory(&self) -> Result<TwoPhaseDirectory, DatadirError> {
        const WHAT: &str = "two-phase directory";
        match self.get_opt(TWOPHASEDIR_KEY, WHAT).await? {
            Some(v) => TwoPhaseDirectory::decode(&v)
                .map_err(|e| self.format_error(TWOPHASEDIR_KEY, WHAT, e)),
            None => Ok(TwoPhaseDirectory::default()),
        }
    }

    /// The state file (`pg_twophase/<xid>` content) of a prepared
    /// transaction.
    pub async fn twophase_file(&self, xid: u64) -> Result<Bytes, DatadirError> {
        self.get_req(
            twophase_file_key(xid),
            &format!("two-phase state of xid {xid}"),
        )
        .await
    }

    /// The raw `pg_control` file imported with the cluster (and updated by
    /// XLOG PARAMETER_CHANGE records).
    pub async fn control_file_bytes(&self) -> Result<Bytes, DatadirError> {
        self.get_req(CONTROLFILE_KEY, "control file").await
    }

    /// The redo settings of the cluster's control file; `None` when the
    /// timeline holds no cluster (no control file).
    pub async fn cluster_settings(&self) -> Result<Option<ClusterSettings>, DatadirError> {
        if self
            .get_opt(CONTROLFILE_KEY, "control file")
            .await?
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some(cluster_settings_of(&self.control_file().await?)))
    }

    pub async fn control_file(&self) -> Result<ControlFileData, DatadirError> {
        let b = self.control_file_bytes().await?;
        ControlFileData::decode(&b).map_err(|source| DatadirError::ControlFile {
            what: "control file",
            lsn: self.lsn,
            source,
        })
    }

    /// The latest checkpoint, with the counters (nextXid, nextOid,
    /// nextMulti, oldest xids) advanced by the records after it.
    pub async fn checkpoint(&self) -> Result<CheckPoint, DatadirError> {
        let b = self.get_req(CHECKPOINT_KEY, "checkpoint").await?;
        CheckPoint::decode(&b).map_err(|source| DatadirError::ControlFile {
            what: "checkpoint",
            lsn: self.lsn,
            source,
        })
    }
}
