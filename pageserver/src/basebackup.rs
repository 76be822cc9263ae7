//! Basebackups: a timeline's cluster at an LSN as a tar stream.
//!
//! Two forms, as in Neon:
//! - **full** (`fullbackup`): every relation file reconstructed page by
//!   page, so that a stock `postgres` 15 starts on the unpacked directory
//!   directly (no recovery, no `pg_resetwal`) with exactly the data the
//!   primary had at that LSN;
//! - **lazy** (`basebackup`): no relation data except the init forks of
//!   unlogged relations (also sent as their main fork, so they start out
//!   empty and well formed), for computes that fetch pages on demand; plus
//!   `neon.signal` / `zenith.signal` with `PREV LSN: …`.
//!
//! Both contain the data directory skeleton, `PG_VERSION` files, relmapper
//! files, the SLRU segments (`pg_xact`, `pg_multixact`), two-phase state
//! files of transactions prepared and not finished at the LSN, config files
//! (`pg_hba.conf` trusting local connections, empty `pg_ident.conf` and
//! `postgresql.auto.conf`; the full form also an empty `postgresql.conf`),
//! a WAL segment in `pg_wal/` holding a **shutdown checkpoint record** at
//! the first record position after the LSN, and — last, so that a torn
//! stream cannot start — `global/pg_control` pointing at that checkpoint
//! with state "shut down". The checkpoint's counters (next xid, oid,
//! multixact…) are those ingest tracked up to the LSN; in-progress
//! transactions at the LSN simply never commit, as after a crash.
//!
//! Relation pages come from vectored reads of bounded size, so memory stays
//! bounded whatever the cluster's size. Callers: the page service commands
//! and `pagectl`'s client.

use bytes::Bytes;
use pageserver_api::reltag::{RelTag, SlruKind};
use postgres_ffi::relfile::{
    relation_path, ForkNumber, RelFileNode, DEFAULTTABLESPACE_OID, GLOBALTABLESPACE_OID,
    INIT_FORKNUM, MAIN_FORKNUM,
};
use postgres_ffi::rmgr::RM_XLOG_ID;
use postgres_ffi::v15::controlfile::DbState;
use postgres_ffi::v15::info::xlog;
use postgres_ffi::wal::encoder::{RecordBuilder, WalWriter};
use postgres_ffi::wal::page_header::{LongHeaderFields, XLogPageHeader};
use postgres_ffi::wal::WalSegmentSize;
use postgres_ffi::{twophase, PgMajorVersion, BLCKSZ, RELSEG_SIZE, XLOG_BLCKSZ};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use utils::lsn::Lsn;

use crate::pgdatadir_mapping::{DatadirError, DatadirView};
use crate::tenant::timeline::Timeline;

/// The directories of a PostgreSQL 15 data directory (initdb's list).
const PGDATA_SUBDIRS: &[&str] = &[
    "global",
    "pg_wal",
    "pg_wal/archive_status",
    "pg_commit_ts",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
    "pg_twophase",
    "pg_multixact",
    "pg_multixact/members",
    "pg_multixact/offsets",
    "base",
    "pg_replslot",
    "pg_tblspc",
    "pg_stat",
    "pg_stat_tmp",
    "pg_xact",
    "pg_logical",
    "pg_logical/snapshots",
    "pg_logical/mappings",
];

/// Client authentication of the backup: local connections are trusted
/// (whoever can reach the socket or loopback owns the copy anyway); replace
/// it before exposing the server.
const PG_HBA: &str = "\
# pg_hba.conf written by the page server's basebackup.
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
";

#[derive(Debug, thiserror::Error)]
pub enum BasebackupError {
    #[error(transparent)]
    Datadir(#[from] DatadirError),
    #[error("writing the tar stream: {0}")]
    Write(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Which form to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    Full,
    Lazy,
}

/// Writes the tar stream of `tl` at `lsn` to `out`. `lsn` must be readable
/// (the caller waits for it and checks it against the GC cutoff and the
/// minimum readable LSN). `prev_lsn` is the start of the last record before
/// `lsn` when known (it becomes the checkpoint record's xl_prev).
pub async fn send_basebackup<W: AsyncWrite + Unpin + Send>(
    tl: &Timeline,
    lsn: Lsn,
    prev_lsn: Option<Lsn>,
    kind: BackupKind,
    out: W,
) -> Result<(), BasebackupError> {
    let view = DatadirView::new(tl, lsn);
    let mut tar = TarWriter::new(out);
    let version = PgMajorVersion::from_number(tl.pg_version)
        .map_err(|e| BasebackupError::Invalid(e.to_string()))?;
    // Build pg_control and the WAL first: they need only metadata, and a
    // failure there should come before any file is sent.
    let control = view.control_file().await?;
    let mut cp = view.checkpoint().await?;
    let seg_size = WalSegmentSize::new(control.xlog_seg_size)
        .map_err(|e| BasebackupError::Invalid(format!("control file: {e}")))?;
    let record_lsn = WalWriter::record_position(seg_size, lsn);
    let now = pq_client::replication::pg_now() / 1_000_000;
    cp.redo = record_lsn;
    cp.time = now;
    cp.oldest_active_xid = 0;
    cp.full_page_writes = true;
    let record = RecordBuilder::new(RM_XLOG_ID, xlog::CHECKPOINT_SHUTDOWN)
        .main_data(Bytes::copy_from_slice(&cp.encode()));
    let mut writer = WalWriter::new_at(
        *version.wal_format(),
        seg_size,
        cp.this_timeline_id,
        control.system_identifier,
        record_lsn,
        prev_lsn.unwrap_or(Lsn::INVALID),
    );
    writer.append(&record);
    let wal_files = segment_files(
        &writer,
        seg_size,
        cp.this_timeline_id,
        control.system_identifier,
    );
    let mut pg_control = control.clone();
    pg_control.check_point = record_lsn;
    pg_control.check_point_copy = cp;
    pg_control.state = DbState::Shutdowned;
    pg_control.time = now;
    pg_control.min_recovery_point = Lsn::INVALID;
    pg_control.min_recovery_point_tli = 0;
    pg_control.backup_start_point = Lsn::INVALID;
    pg_control.backup_end_point = Lsn::INVALID;
    pg_control.backup_end_required = false;
    let pg_control = pg_control.encode_file();

    for dir in PGDATA_SUBDIRS {
        tar.dir(dir).await?;
    }
    let pg_version = format!("{}\n", version.number());
    tar.file("PG_VERSION", pg_version.as_bytes()).await?;
    tar.file("pg_hba.conf", PG_HBA.as_bytes()).await?;
    tar.file("pg_ident.conf", b"").await?;
    tar.file("postgresql.auto.conf", b"").await?;
    if kind == BackupKind::Full {
        tar.file(
            "postgresql.conf",
            b"# written by the page server's fullbackup\n",
        )
        .await?;
    }

    for kind_ in SlruKind::ALL {
        add_slru(&view, kind_, &mut tar).await?;
    }

    for (&(spcnode, dbnode), &has_relmap) in &view.db_directory().await?.dbs {
        let dir = match spcnode {
            GLOBALTABLESPACE_OID => "global".to_owned(),
            DEFAULTTABLESPACE_OID => {
                let d = format!("base/{dbnode}");
                tar.dir(&d).await?;
                tar.file(&format!("{d}/PG_VERSION"), pg_version.as_bytes())
                    .await?;
                d
            }
            other => {
                return Err(BasebackupError::Invalid(format!(
                    "tablespace {other} is not supported"
                )))
            }
        };
        if has_relmap {
            if let Some(map) = view.relmap_file(spcnode, dbnode).await? {
                tar.file(&format!("{dir}/pg_filenode.map"), &map).await?;
            }
        }
        let rels = view.list_rels(spcnode, dbnode).await?;
        for rel in &rels {
            let unlogged_main =
                rel.forknum == MAIN_FORKNUM && rels.contains(&rel.with_forknum(INIT_FORKNUM));
            if rel.forknum == INIT_FORKNUM {
                // An unlogged relation starts from its init fork.
                add_rel(&view, *rel, *rel, &mut tar).await?;
                add_rel(&view, *rel, rel.with_forknum(MAIN_FORKNUM), &mut tar).await?;
            } else if kind == BackupKind::Full && !unlogged_main {
                add_rel(&view, *rel, *rel, &mut tar).await?;
            }
        }
    }

    for xid in &view.twophase_directory().await?.xids {
        let file = view.twophase_file(*xid).await?;
        let name = twophase::file_path(version, *xid as u32);
        tar.file(&name, &file).await?;
    }

    if kind == BackupKind::Lazy {
        let signal = match prev_lsn {
            Some(prev) if prev.is_valid() => format!("PREV LSN: {prev}"),
            _ if lsn == tl.ancestor_lsn => "PREV LSN: none".to_owned(),
            _ => "PREV LSN: invalid".to_owned(),
        };
        for name in ["neon.signal", "zenith.signal"] {
            tar.file(name, signal.as_bytes()).await?;
        }
    }
    for (name, bytes) in &wal_files {
        tar.file(&format!("pg_wal/{name}"), bytes).await?;
    }
    tar.file("global/pg_control", &pg_control).await?;
    tar.finish().await?;
    Ok(())
}

/// The WAL segment file(s) holding the writer's bytes: zeroed segments with
/// a long header on each first page and the writer's pages in place.
fn segment_files(
    writer: &WalWriter,
    seg_size: WalSegmentSize,
    tli: u32,
    sysid: u64,
) -> Vec<(String, Vec<u8>)> {
    let start = writer.start_lsn();
    let bytes = writer.bytes();
    let end = Lsn(start.0 + bytes.len() as u64);
    let mut files = Vec::new();
    let last_segno = seg_size.segno(Lsn(end.0.saturating_sub(1).max(start.0)));
    for segno in seg_size.segno(start)..=last_segno {
        let seg_start = seg_size.segment_start(segno);
        let mut seg = vec![0u8; seg_size.bytes() as usize];
        // Readers check the long header of a segment's first page.
        let long = XLogPageHeader {
            magic: PgMajorVersion::V15.wal_format().page_magic,
            info: 0,
            tli,
            pageaddr: seg_start,
            rem_len: 0,
            long: Some(LongHeaderFields {
                sysid,
                seg_size: seg_size.bytes(),
                xlog_blcksz: XLOG_BLCKSZ as u32,
            }),
        };
        let h = long.encode();
        seg[..h.len()].copy_from_slice(&h);
        let from = start.0.max(seg_start.0);
        let to = end.0.min(seg_start.0 + seg_size.bytes() as u64);
        if from < to {
            let src = &bytes[(from - start.0) as usize..(to - start.0) as usize];
            let off = (from - seg_start.0) as usize;
            seg[off..off + src.len()].copy_from_slice(src);
        }
        files.push((seg_size.file_name(tli, segno), seg));
    }
    files
}

async fn add_slru<W: AsyncWrite + Unpin + Send>(
    view: &DatadirView<'_>,
    kind: SlruKind,
    tar: &mut TarWriter<W>,
) -> Result<(), BasebackupError> {
    for segno in view.slru_directory(kind).await?.segments {
        let Some(n) = view.slru_segment_size(kind, segno).await? else {
            continue;
        };
        let mut data = Vec::with_capacity(n as usize * BLCKSZ);
        for blkno in 0..n {
            data.extend_from_slice(&view.slru_page(kind, segno, blkno).await?);
        }
        let name = format!(
            "{}/{}",
            kind.dir_name(),
            postgres_ffi::slru::segment_file_name(segno)
        );
        tar.file(&name, &data).await?;
    }
    Ok(())
}

/// Streams the pages of `src` as the file(s) of `dst` (1 GiB segments).
async fn add_rel<W: AsyncWrite + Unpin + Send>(
    view: &DatadirView<'_>,
    src: RelTag,
    dst: RelTag,
    tar: &mut TarWriter<W>,
) -> Result<(), BasebackupError> {
    let nblocks = view.rel_size(src).await?.unwrap_or(0);
    let fork = ForkNumber::ALL
        .get(dst.forknum as usize)
        .copied()
        .ok_or_else(|| BasebackupError::Invalid(format!("relation {dst}: bad fork")))?;
    let rnode = RelFileNode {
        spcnode: dst.spcnode,
        dbnode: dst.dbnode,
        relnode: dst.relnode,
    };
    let chunk = view
        .timeline()
        .resources
        .settings
        .max_get_vectored_keys
        .clamp(1, 1024) as u32;
    let mut segno = 0u32;
    loop {
        let first = segno.saturating_mul(RELSEG_SIZE);
        let last = nblocks.min(first.saturating_add(RELSEG_SIZE));
        // An empty relation still has its (empty) first segment file.
        if first >= nblocks && segno > 0 {
            break;
        }
        let path = relation_path(PgMajorVersion::V15, rnode, fork, segno);
        let size = (last.saturating_sub(first)) as u64 * BLCKSZ as u64;
        tar.begin_file(&path, size).await?;
        let mut blk = first;
        while blk < last {
            let end = last.min(blk.saturating_add(chunk));
            for page in view.rel_pages_unchecked(src, blk..end).await? {
                tar.write(&page).await?;
            }
            blk = end;
        }
        tar.end_file(size).await?;
        if last >= nblocks {
            break;
        }
        segno += 1;
    }
    Ok(())
}

/// Minimal tar output: ustar headers from the `tar` crate, our own stream.
struct TarWriter<W> {
    out: W,
    buf: Vec<u8>,
}

/// Bytes buffered before a write to the output.
const TAR_BUFFER: usize = 256 * 1024;

impl<W: AsyncWrite + Unpin + Send> TarWriter<W> {
    fn new(out: W) -> Self {
        TarWriter {
            out,
            buf: Vec::with_capacity(TAR_BUFFER),
        }
    }

    async fn header(&mut self, path: &str, size: u64, dir: bool) -> Result<(), BasebackupError> {
        let mut h = tar::Header::new_gnu();
        if dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o700);
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
        }
        h.set_size(size);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        let name = if dir {
            format!("{path}/")
        } else {
            path.to_owned()
        };
        h.set_path(&name)
            .map_err(|e| BasebackupError::Invalid(format!("tar path {name}: {e}")))?;
        h.set_cksum();
        self.write(h.as_bytes()).await
    }

    async fn dir(&mut self, path: &str) -> Result<(), BasebackupError> {
        self.header(path, 0, true).await
    }

    async fn file(&mut self, path: &str, data: &[u8]) -> Result<(), BasebackupError> {
        self.begin_file(path, data.len() as u64).await?;
        self.write(data).await?;
        self.end_file(data.len() as u64).await
    }

    async fn begin_file(&mut self, path: &str, size: u64) -> Result<(), BasebackupError> {
        self.header(path, size, false).await
    }

    /// Pads the file's data to the 512-byte block.
    async fn end_file(&mut self, size: u64) -> Result<(), BasebackupError> {
        let pad = (512 - size % 512) % 512;
        self.write(&[0u8; 512][..pad as usize]).await
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), BasebackupError> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= TAR_BUFFER {
            self.out.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(), BasebackupError> {
        self.write(&[0u8; 1024]).await?;
        self.out.write_all(&self.buf).await?;
        self.out.flush().await?;
        Ok(())
    }
}
