//! WAL ingest: decoded Postgres 15 WAL records in, key/value puts and
//! Postgres-level metadata changes out.
//!
//! [`Ingest`] is fed records in WAL order (from the walreceiver, or a
//! `WalDirReader` in tests and tools) and turns each into changes of a
//! [`DatadirModification`], all at the record's end LSN, so a read at an LSN
//! where a record ends sees that record. Batches of records are committed
//! atomically; `last_record_lsn` only ever lands on record boundaries.
//!
//! What each resource manager becomes:
//!
//! | rmgr | effect |
//! |---|---|
//! | page rmgrs (Heap, Heap2, Btree, Hash, Gin, Gist, Sequence, SPGist, BRIN, Generic) and XLOG FPI/FPI_FOR_HINT | per block reference: the restored page as an image if it carries an image to apply (page LSN set to the record's end, as redo does), else the raw record (`will_init` from BKPBLOCK_WILL_INIT or the heap INIT_PAGE bit); a block past the end extends the relation fork (zero pages in between), a missing fork is created |
//! | Heap/Heap2 with *_ALL_VISIBLE_CLEARED / ALL_FROZEN_CLEARED | `ClearVisibilityMapFlags` on the visibility-map page of the heap block(s) |
//! | Storage | CREATE: relation fork; TRUNCATE: sizes of main/FSM/VM forks (module `smgr`) |
//! | Database | CREATE_FILE_COPY: copy of the source database at this LSN; CREATE_WAL_LOG: empty database; DROP |
//! | RelMap | relmapper file |
//! | Transaction | CLOG status (`ClogSetStatus`) of xid and subtransactions, dropped relations, two-phase state files, replication origin progress (module `xact`) |
//! | CLOG, MultiXact | zeroed pages, `MultixactOffsetCreate`/`MultixactMembersCreate`, segment truncation (module `slru`) |
//! | XLOG checkpoints, NEXTOID, Standby RUNNING_XACTS, ... | the checkpoint key: counters advanced as recovery would ([`checkpoint`]) |
//! | XLOG PARAMETER_CHANGE | the control file's copy of those settings |
//! | ReplicationOrigin | origin progress keys |
//!
//! Records with no storage effect are acknowledged explicitly in
//! [`Ingest::dispatch`] with the reason. Unknown resource managers, unknown
//! record types, tablespaces other than `pg_default`/`pg_global`, and
//! malformed records stop ingest with an [`IngestError`] (counted in
//! [`metrics`]); after an error the `Ingest` refuses further records, since
//! its view of the timeline may be half-updated. Records ending at or below
//! the timeline's last LSN are skipped as already ingested (a restarted
//! stream replays from a segment or page boundary).

pub mod checkpoint;
pub mod metrics;
mod pages;
pub mod records;
mod slru;
mod smgr;
mod xact;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use pageserver_api::reltag::{RelTag, DEFAULTTABLESPACE_OID, GLOBALTABLESPACE_OID};
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::rmgr::{self, record_type_name, rmgr_name};
use postgres_ffi::v15::controlfile::CheckPoint;
use postgres_ffi::v15::info;
use postgres_ffi::wal::{ImageError, WalRecord};
use postgres_ffi::{Lsn, PgMajorVersion};

use self::checkpoint::CheckpointTracker;
use self::records::ParseError;
use crate::pgdatadir_mapping::{DatadirError, DatadirModification, DatadirView};
use crate::tenant::timeline::Timeline;

/// Why ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestErrorKind {
    #[error("unknown resource manager id {rmid}")]
    UnknownRmgr { rmid: u8 },
    #[error("unknown record type: info 0x{info:02X} of resource manager {rmgr}")]
    UnknownRecordType { rmgr: String, info: u8 },
    #[error("unsupported: {what}")]
    Unsupported { what: String },
    #[error("malformed record: {0}")]
    Malformed(#[from] ParseError),
    #[error("block reference {block_id}: {what}")]
    BadBlock { block_id: u8, what: String },
    #[error("full-page image of block reference {block_id}: {source}")]
    Image {
        block_id: u8,
        #[source]
        source: ImageError,
    },
    #[error("inconsistent with the stored state: {what}")]
    Inconsistent { what: String },
    /// Boxed: the storage errors are large, and this enum travels in the
    /// result of every record.
    #[error(transparent)]
    Datadir(Box<DatadirError>),
    #[error(
        "the record starts at {start} but the timeline has data up to {last}, which is inside it"
    )]
    NotAtRecordBoundary { start: Lsn, last: Lsn },
    #[error("ingest stopped after an error at {at}; start a new Ingest")]
    Stopped { at: Lsn },
}

impl From<DatadirError> for IngestErrorKind {
    fn from(e: DatadirError) -> Self {
        IngestErrorKind::Datadir(Box::new(e))
    }
}

impl IngestErrorKind {
    /// Label for `pageserver_wal_ingest_errors_total`.
    pub fn label(&self) -> &'static str {
        match self {
            IngestErrorKind::UnknownRmgr { .. } => "unknown_rmgr",
            IngestErrorKind::UnknownRecordType { .. } => "unknown_record_type",
            IngestErrorKind::Unsupported { .. } => "unsupported",
            IngestErrorKind::Malformed(_) => "malformed",
            IngestErrorKind::BadBlock { .. } => "bad_block",
            IngestErrorKind::Image { .. } => "image",
            IngestErrorKind::Inconsistent { .. } => "inconsistent",
            IngestErrorKind::Datadir(_) => "storage",
            IngestErrorKind::NotAtRecordBoundary { .. } => "not_at_record_boundary",
            IngestErrorKind::Stopped { .. } => "stopped",
        }
    }

    /// Whether the record is one this server does not handle (as opposed to
    /// a broken record or a storage failure).
    pub fn is_unsupported_record(&self) -> bool {
        matches!(
            self,
            IngestErrorKind::UnknownRmgr { .. }
                | IngestErrorKind::UnknownRecordType { .. }
                | IngestErrorKind::Unsupported { .. }
        )
    }
}

/// An ingest failure, located at a WAL record (or at the commit of the
/// records up to `lsn`).
#[derive(Debug, thiserror::Error)]
#[error("{context} at {lsn}: {kind}")]
pub struct IngestError {
    /// Start LSN of the record, or the end of the batch for a commit.
    pub lsn: Lsn,
    /// `WAL record Rmgr/TYPE` or `commit of WAL`.
    pub context: String,
    #[source]
    pub kind: IngestErrorKind,
}

/// Records and bytes of one resource manager.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub records: u64,
    pub bytes: u64,
}

/// What an [`Ingest`] has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestCounters {
    /// Records ingested (applied).
    pub records: u64,
    /// Their total length (`xl_tot_len`).
    pub bytes: u64,
    /// Per resource manager id, up to the last commit.
    pub by_rmgr: BTreeMap<u8, RecordCounts>,
    /// Records skipped because they end at or below the timeline's LSN.
    pub skipped_already_ingested: u64,
    /// Batches written.
    pub commits: u64,
}

/// When to commit without being asked: whichever comes first.
///
/// The batch buffer is reused from one commit to the next, so a batch that
/// fits in the CPU's cache is written warm every time: 1 MiB batches ingest
/// pgbench WAL ~6 % faster than 16 MiB ones, which also page-fault while
/// they first grow (docs/performance.md, sixth round).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_values: usize,
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_values: 4 * 1024,
            max_bytes: 1024 * 1024,
        }
    }
}

/// The page rmgrs: their block references are the whole story.
fn is_page_rmgr(rmid: u8) -> bool {
    matches!(
        rmid,
        rmgr::RM_HEAP2_ID
            | rmgr::RM_HEAP_ID
            | rmgr::RM_BTREE_ID
            | rmgr::RM_HASH_ID
            | rmgr::RM_GIN_ID
            | rmgr::RM_GIST_ID
            | rmgr::RM_SEQ_ID
            | rmgr::RM_SPGIST_ID
            | rmgr::RM_BRIN_ID
            | rmgr::RM_GENERIC_ID
    )
}

/// Whether [`Ingest::ingest_record_now`] finished the record.
#[must_use]
pub enum IngestStep {
    Done,
    /// Finish it with [`Ingest::ingest_record_rest`].
    Continue(Rest),
}

/// What is left of a record (opaque).
pub struct Rest(RestKind);

enum RestKind {
    /// Applying it, then committing if the batch is full.
    Apply(Applied),
    /// It is applied; the batch is full and must be committed.
    Commit,
}

/// How far [`Ingest::apply_cached`] got with a record.
enum Applied {
    Done,
    /// The record's LSN is set; its effects need [`Ingest::dispatch`].
    NeedsDispatch,
    /// Nothing was done: the batch must be committed first.
    NeedsCommitFirst,
}

/// See the module documentation.
pub struct Ingest {
    m: DatadirModification,
    checkpoint: CheckpointTracker,
    version: PgMajorVersion,
    /// End of the last record applied (or the timeline's LSN at start).
    last_lsn: Lsn,
    /// Offsets page zeroed implicitly by a CREATE_ID record (WAL of an
    /// older 15.x minor); its ZERO_OFF_PAGE record must then not zero it
    /// again (see `RecordNewMultiXact`).
    pre_initialized_offsets_page: Option<u32>,
    counters: IngestCounters,
    rmgr_metrics: BTreeMap<u8, metrics::RmgrCounters>,
    /// Per-rmgr counts since the last commit, indexed by rmgr id.
    unpublished: Box<[RecordCounts; 256]>,
    limits: BatchLimits,
    stopped_at: Option<Lsn>,
    warned_commit_ts: bool,
    /// The cluster's `data_checksums` (fixed at initdb; read once rather
    /// than per record from the timeline's shared settings).
    checksums: bool,
}

type Result<T, E = IngestErrorKind> = std::result::Result<T, E>;

impl Ingest {
    /// Starts ingesting into `tl` after its `last_record_lsn`. The timeline
    /// must hold a cluster (bootstrap import or basebackup import): its
    /// checkpoint key seeds the counters.
    pub async fn new(tl: Arc<Timeline>) -> Result<Ingest, IngestError> {
        let version = PgMajorVersion::from_number(tl.pg_version).map_err(|e| IngestError {
            lsn: tl.get_last_record_lsn(),
            context: "starting ingest".to_owned(),
            kind: IngestErrorKind::Unsupported {
                what: e.to_string(),
            },
        })?;
        let m = DatadirModification::new(Arc::clone(&tl));
        let lsn = m.committed_lsn();
        crate::pgdatadir_mapping::refresh_cluster_settings(&tl)
            .await
            .map_err(|e| IngestError {
                lsn,
                context: "starting ingest (reading the control file)".to_owned(),
                kind: e.into(),
            })?;
        let cp = DatadirView::new(&tl, lsn)
            .checkpoint()
            .await
            .map_err(|e| IngestError {
                lsn,
                context: "starting ingest (reading the checkpoint)".to_owned(),
                kind: e.into(),
            })?;
        Ok(Ingest {
            m,
            checkpoint: CheckpointTracker::new(cp),
            version,
            last_lsn: lsn,
            pre_initialized_offsets_page: None,
            counters: IngestCounters::default(),
            rmgr_metrics: BTreeMap::new(),
            unpublished: Box::new([RecordCounts::default(); 256]),
            limits: BatchLimits::default(),
            stopped_at: None,
            warned_commit_ts: false,
            checksums: tl.cluster_settings().data_checksums,
        })
    }

    pub fn with_batch_limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn counters(&self) -> &IngestCounters {
        &self.counters
    }

    /// End LSN of the last record ingested (committed or not).
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    /// LSN up to which everything is committed (readable).
    pub fn committed_lsn(&self) -> Lsn {
        self.m.committed_lsn()
    }

    /// The checkpoint as it will be stored with the next record.
    pub fn checkpoint(&self) -> &CheckPoint {
        &self.checkpoint.cp
    }

    /// Commits everything ingested so far.
    pub async fn commit(&mut self) -> Result<(), IngestError> {
        if let Some(at) = self.stopped_at {
            return Err(self.error_at(at, "commit of WAL", IngestErrorKind::Stopped { at }));
        }
        let had = self.m.has_uncommitted();
        self.publish_counts();
        if let Err(e) = self.m.commit().await {
            let lsn = self.m.lsn();
            self.stopped_at = Some(lsn);
            return Err(self.error_at(lsn, "commit of WAL", e.into()));
        }
        if had {
            self.counters.commits += 1;
        }
        Ok(())
    }

    fn error_at(&self, lsn: Lsn, context: &str, kind: IngestErrorKind) -> IngestError {
        metrics::ERRORS.with_label_values(&[kind.label()]).inc();
        IngestError {
            lsn,
            context: context.to_owned(),
            kind,
        }
    }

    /// Ingests one record; commits when the batch is full. Records must
    /// come in WAL order.
    pub async fn ingest_record(&mut self, rec: &WalRecord) -> Result<(), IngestError> {
        match self.ingest_record_now(rec)? {
            IngestStep::Done => Ok(()),
            IngestStep::Continue(rest) => self.ingest_record_rest(rec, rest).await,
        }
    }

    /// [`Self::ingest_record`] as far as it goes without awaiting: all of
    /// it for the common records whose metadata is cached (no future is
    /// polled per record). When it returns [`IngestStep::Continue`], the
    /// caller must finish the record with [`Self::ingest_record_rest`]
    /// before the next one.
    pub fn ingest_record_now(&mut self, rec: &WalRecord) -> Result<IngestStep, IngestError> {
        if let Some(at) = self.stopped_at {
            let kind = IngestErrorKind::Stopped { at };
            return Err(self.error_at(rec.lsn, &self.record_context(rec), kind));
        }
        if rec.end_lsn <= self.last_lsn {
            self.counters.skipped_already_ingested += 1;
            return Ok(IngestStep::Done);
        }
        if rec.lsn < self.last_lsn {
            let kind = IngestErrorKind::NotAtRecordBoundary {
                start: rec.lsn,
                last: self.last_lsn,
            };
            return Err(self.error_at(rec.lsn, &self.record_context(rec), kind));
        }
        match self.apply_cached(rec) {
            Ok(Applied::Done) => {}
            Ok(stage) => return Ok(IngestStep::Continue(Rest(RestKind::Apply(stage)))),
            Err(kind) => return Err(self.record_failed(rec, kind)),
        }
        Ok(self.record_applied(rec))
    }

    /// Finishes a record [`Self::ingest_record_now`] left unfinished.
    pub async fn ingest_record_rest(
        &mut self,
        rec: &WalRecord,
        rest: Rest,
    ) -> Result<(), IngestError> {
        if let RestKind::Apply(stage) = rest.0 {
            if let Err(kind) = self.apply_rest(rec, stage).await {
                return Err(self.record_failed(rec, kind));
            }
            if let IngestStep::Done = self.record_applied(rec) {
                return Ok(());
            }
        }
        self.commit().await
    }

    /// Bookkeeping after a record is applied; whether the batch is full.
    fn record_applied(&mut self, rec: &WalRecord) -> IngestStep {
        self.last_lsn = rec.end_lsn;
        self.count(rec);
        if self.m.pending_values() >= self.limits.max_values
            || self.m.pending_bytes() >= self.limits.max_bytes
        {
            IngestStep::Continue(Rest(RestKind::Commit))
        } else {
            IngestStep::Done
        }
    }

    /// Stops ingest after `rec` failed to apply.
    fn record_failed(&mut self, rec: &WalRecord, kind: IngestErrorKind) -> IngestError {
        self.stopped_at = Some(rec.lsn);
        let name = rec.name(self.version);
        if kind.is_unsupported_record() {
            metrics::UNSUPPORTED.with_label_values(&[&name]).inc();
        }
        tracing::error!(lsn = %rec.lsn, record = %name, "WAL ingest stopped: {kind}");
        self.error_at(rec.lsn, &self.record_context(rec), kind)
    }

    /// `WAL record Rmgr/TYPE`, for errors (formatted only on error paths:
    /// it is an allocation).
    fn record_context(&self, rec: &WalRecord) -> String {
        format!("WAL record {}", rec.name(self.version))
    }

    fn count(&mut self, rec: &WalRecord) {
        let len = rec.tot_len() as u64;
        self.counters.records += 1;
        self.counters.bytes += len;
        let c = &mut self.unpublished[rec.rmid() as usize];
        c.records += 1;
        c.bytes += len;
    }

    /// Moves the per-rmgr counts gathered since the last call into
    /// [`IngestCounters::by_rmgr`] and the Prometheus counters: per record
    /// that is two array adds instead of map lookups and atomics.
    fn publish_counts(&mut self) {
        for (rmid, c) in self.unpublished.iter_mut().enumerate() {
            if c.records == 0 {
                continue;
            }
            let rmid = rmid as u8;
            let total = self.counters.by_rmgr.entry(rmid).or_default();
            total.records += c.records;
            total.bytes += c.bytes;
            let m = self.rmgr_metrics.entry(rmid).or_insert_with(|| {
                let name = rmgr_name(rmid).unwrap_or_else(|| format!("rmgr{rmid}"));
                metrics::RmgrCounters::for_rmgr(&name)
            });
            m.records.inc_by(c.records);
            m.bytes.inc_by(c.bytes);
            *c = RecordCounts::default();
        }
    }

    /// Checks the record type, then applies the record as far as it can
    /// without awaiting: all of it for the common records whose metadata
    /// is cached, else up to where [`Self::apply_rest`] must continue.
    fn apply_cached(&mut self, rec: &WalRecord) -> Result<Applied> {
        let rmid = rec.rmid();
        // Names are only formatted on the error paths (this runs per record).
        if rmid >= rmgr::RM_MIN_CUSTOM_ID {
            let rmgr = rmgr_name(rmid).unwrap_or_default();
            return Err(IngestErrorKind::Unsupported {
                what: format!("custom resource manager {rmgr} (extension WAL)"),
            });
        }
        if record_type_name(self.version, rmid, rec.info()).is_none() {
            return Err(match rmgr_name(rmid) {
                None => IngestErrorKind::UnknownRmgr { rmid },
                Some(rmgr) => IngestErrorKind::UnknownRecordType {
                    rmgr,
                    info: rec.info(),
                },
            });
        }
        if rmid == rmgr::RM_DBASE_ID
            && rec.header.rmgr_info() == info::dbase::CREATE_FILE_COPY
            && self.m.has_uncommitted()
        {
            // The copy reads the source database's pages from the timeline,
            // which sees only committed values.
            return Ok(Applied::NeedsCommitFirst);
        }
        self.m.set_lsn(rec.end_lsn)?;
        self.checkpoint.advance_next_xid_past(rec.xid());
        if !self.try_apply_cached(rec)? {
            return Ok(Applied::NeedsDispatch);
        }
        self.store_checkpoint_if_changed()?;
        Ok(Applied::Done)
    }

    /// The rest of a record [`Self::apply_cached`] could not finish.
    async fn apply_rest(&mut self, rec: &WalRecord, stage: Applied) -> Result<()> {
        let stage = match stage {
            Applied::Done => return Ok(()),
            Applied::NeedsCommitFirst => {
                self.m.commit().await?;
                self.counters.commits += 1;
                self.apply_cached(rec)?
            }
            Applied::NeedsDispatch => Applied::NeedsDispatch,
        };
        match stage {
            Applied::Done => Ok(()),
            Applied::NeedsDispatch => {
                self.dispatch(rec).await?;
                self.store_checkpoint_if_changed()
            }
            Applied::NeedsCommitFirst => Err(IngestErrorKind::Inconsistent {
                what: "uncommitted values right after a commit".to_owned(),
            }),
        }
    }

    /// Stores the checkpoint if the record changed it.
    fn store_checkpoint_if_changed(&mut self) -> Result<()> {
        if self.checkpoint.dirty {
            let stored = self.checkpoint.encode_for_storage();
            self.m.put_checkpoint(Bytes::from(stored))?;
        }
        Ok(())
    }

    /// The common records, applied without awaiting anything when what
    /// they need is cached: page records ([`pages`]) and plain commits and
    /// aborts ([`xact`]). Ok(false): nothing was done, and
    /// [`Self::dispatch`] applies the record.
    fn try_apply_cached(&mut self, rec: &WalRecord) -> Result<bool> {
        let rmid = rec.rmid();
        if is_page_rmgr(rmid) {
            self.try_page_record_cached(rec)
        } else if rmid == rmgr::RM_XACT_ID && rec.blocks.is_empty() {
            self.try_xact_cached(rec)
        } else {
            Ok(false)
        }
    }

    /// One record's effects, by resource manager.
    async fn dispatch(&mut self, rec: &WalRecord) -> Result<()> {
        let rmid = rec.rmid();
        let op = rec.header.rmgr_info();
        if !rec.blocks.is_empty() && !is_page_rmgr(rmid) && rmid != rmgr::RM_XLOG_ID {
            return Err(IngestErrorKind::Unsupported {
                what: "block references in a record of a resource manager that has none".to_owned(),
            });
        }
        match rmid {
            rmgr::RM_XLOG_ID => self.ingest_xlog(rec, op).await,
            rmgr::RM_XACT_ID => self.ingest_xact(rec).await,
            rmgr::RM_SMGR_ID => self.ingest_smgr(rec, op).await,
            rmgr::RM_CLOG_ID => self.ingest_clog(rec, op).await,
            rmgr::RM_DBASE_ID => self.ingest_dbase(rec, op).await,
            rmgr::RM_TBLSPC_ID => Err(IngestErrorKind::Unsupported {
                what: "tablespaces other than pg_default and pg_global".to_owned(),
            }),
            rmgr::RM_MULTIXACT_ID => self.ingest_multixact(rec, op).await,
            rmgr::RM_RELMAP_ID => self.ingest_relmap(rec).await,
            rmgr::RM_STANDBY_ID => {
                if op == info::standby::RUNNING_XACTS {
                    let (next, oldest) = records::parse_running_xacts(rec.main_data())?;
                    self.checkpoint.running_xacts(next, oldest);
                }
                // LOCK and INVALIDATIONS only serve hot-standby queries.
                Ok(())
            }
            // Heap TRUNCATE and Heap2 NEW_CID are logical-decoding
            // information; Heap2 REWRITE writes logical rewrite mapping
            // files (pg_logical/mappings), which this server does not keep
            // (no logical decoding from a page server). None has blocks.
            rmgr::RM_HEAP_ID | rmgr::RM_HEAP2_ID => {
                self.ingest_blocks(rec).await?;
                self.ingest_heap_vm(rec).await
            }
            rmgr::RM_COMMIT_TS_ID => {
                // pg_commit_ts is not kept (no SLRU kind for it): commit
                // timestamps are not preserved across a basebackup.
                if !self.warned_commit_ts {
                    self.warned_commit_ts = true;
                    tracing::warn!(lsn = %rec.lsn, "track_commit_timestamp is on at the primary; commit timestamps are not kept by the page server");
                }
                Ok(())
            }
            rmgr::RM_REPLORIGIN_ID => {
                if op == info::replorigin::SET {
                    let (remote_lsn, node) = records::parse_replorigin_set(rec.main_data())?;
                    self.m.put_repl_origin(node, remote_lsn)?;
                } else {
                    let node = records::parse_replorigin_drop(rec.main_data())?;
                    self.m.drop_repl_origin(node)?;
                }
                Ok(())
            }
            // Logical decoding messages have no storage effect.
            rmgr::RM_LOGICALMSG_ID => Ok(()),
            _ if is_page_rmgr(rmid) => self.ingest_blocks(rec).await,
            _ => Err(IngestErrorKind::UnknownRmgr { rmid }),
        }
    }

    async fn ingest_xlog(&mut self, rec: &WalRecord, op: u8) -> Result<()> {
        use info::xlog;
        if !rec.blocks.is_empty() && op != xlog::FPI && op != xlog::FPI_FOR_HINT {
            return Err(IngestErrorKind::Unsupported {
                what: "block references in an XLOG record other than FPI".to_owned(),
            });
        }
        match op {
            xlog::CHECKPOINT_SHUTDOWN | xlog::CHECKPOINT_ONLINE => {
                let cp = CheckPoint::decode(rec.main_data()).map_err(|e| ParseError {
                    what: "CheckPoint",
                    detail: e.to_string(),
                })?;
                self.checkpoint
                    .checkpoint_record(&cp, op == xlog::CHECKPOINT_SHUTDOWN);
                Ok(())
            }
            xlog::NEXTOID => {
                self.checkpoint
                    .set_next_oid(records::parse_next_oid(rec.main_data())?);
                Ok(())
            }
            xlog::PARAMETER_CHANGE => self.ingest_parameter_change(rec).await,
            xlog::END_OF_RECOVERY => {
                let (this, prev) = records::parse_end_of_recovery(rec.main_data())?;
                self.checkpoint.end_of_recovery(this, prev);
                Ok(())
            }
            xlog::FPI | xlog::FPI_FOR_HINT => {
                for blk in &rec.blocks {
                    match &blk.image {
                        Some(img) if img.apply => {}
                        // FPI_FOR_HINT carries no image when full_page_writes
                        // was off: redo skips the block.
                        None if op == xlog::FPI_FOR_HINT => continue,
                        _ => {
                            return Err(IngestErrorKind::BadBlock {
                                block_id: blk.block_id,
                                what: "XLOG FPI block without an image to restore".to_owned(),
                            })
                        }
                    }
                }
                self.ingest_blocks(rec).await
            }
            // NOOP, SWITCH, BACKUP_END, RESTORE_POINT, FPW_CHANGE and
            // OVERWRITE_CONTRECORD change nothing stored: the decoder
            // handles SWITCH and OVERWRITE_CONTRECORD, the others concern
            // backups and recovery targets.
            _ => Ok(()),
        }
    }

    /// XLOG PARAMETER_CHANGE: the settings pg_control records.
    async fn ingest_parameter_change(&mut self, rec: &WalRecord) -> Result<()> {
        let p = records::parse_parameter_change(rec.main_data())?;
        let key = pageserver_api::key::CONTROLFILE_KEY;
        let bytes =
            self.m
                .get_raw(key, "control file")
                .await?
                .ok_or_else(|| DatadirError::Missing {
                    what: "control file".to_owned(),
                    lsn: self.m.committed_lsn(),
                })?;
        let mut cf =
            postgres_ffi::v15::controlfile::ControlFileData::decode(&bytes).map_err(|source| {
                DatadirError::ControlFile {
                    what: "control file",
                    lsn: self.m.committed_lsn(),
                    source,
                }
            })?;
        cf.max_connections = p.max_connections;
        cf.max_worker_processes = p.max_worker_processes;
        cf.max_wal_senders = p.max_wal_senders;
        cf.max_prepared_xacts = p.max_prepared_xacts;
        cf.max_locks_per_xact = p.max_locks_per_xact;
        cf.wal_level = p.wal_level;
        cf.wal_log_hints = p.wal_log_hints;
        cf.track_commit_timestamp = p.track_commit_timestamp;
        self.m.put_control_file(Bytes::from(cf.encode_file()))?;
        let settings = crate::pgdatadir_mapping::cluster_settings_of(&cf);
        self.checksums = settings.data_checksums;
        self.m.timeline().set_cluster_settings(settings);
        Ok(())
    }

    /// Whether the cluster has data checksums (pages we create or restore
    /// get theirs).
    fn checksums(&self) -> bool {
        self.checksums
    }
}

/// The relation tag of a block reference or record, refusing tablespaces
/// whose keys this server cannot store.
fn rel_tag(rnode: RelFileNode, forknum: u8) -> Result<RelTag> {
    check_tablespace(rnode.spcnode)?;
    Ok(RelTag::new(
        rnode.spcnode,
        rnode.dbnode,
        rnode.relnode,
        forknum,
    ))
}

fn check_tablespace(spcnode: u32) -> Result<()> {
    if spcnode == DEFAULTTABLESPACE_OID || spcnode == GLOBALTABLESPACE_OID {
        Ok(())
    } else {
        Err(IngestErrorKind::Unsupported {
            what: format!(
                "relation in tablespace {spcnode} (only pg_default and pg_global are supported)"
            ),
        })
    }
}
