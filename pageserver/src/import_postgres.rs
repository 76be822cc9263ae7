//! Import from a running Postgres: a timeline created from a base backup
//! taken over a replication connection, which then follows that server.
//!
//! 1. Connect (`replication=true`), `IDENTIFY_SYSTEM`; with a slot name,
//!    `CREATE_REPLICATION_SLOT s PHYSICAL RESERVE_WAL` (an existing slot is
//!    reused), so the server keeps the WAL from before the backup.
//! 2. `BASE_BACKUP (CHECKPOINT 'fast', WAL false, MANIFEST 'no')`: the base
//!    archive streams into a scratch directory (unpacked as it arrives);
//!    a tablespace archive is refused.
//! 3. The directory is imported at the backup's start LSN
//!    ([`DatadirOrigin::Backup`]) into a new timeline, flushed, and the
//!    scratch directory removed.
//!
//! The caller then points the timeline's walreceiver at the same server and
//! slot: WAL from the start LSN makes every page consistent by the backup's
//! end LSN (full-page images after the backup's checkpoint, as in Postgres
//! recovery), which becomes the timeline's minimum readable LSN.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use pageserver_api::models::WalSourceConfig;
use pq_client::{BackupChunk, ReplicationConnection};
use utils::id::TimelineId;
use utils::lsn::Lsn;

use crate::import_datadir::{import_datadir_as, DatadirOrigin, ImportError, ImportSummary};
use crate::tenant::storage::TenantStorage;
use crate::tenant::timeline::Timeline;

/// What an import from Postgres produced.
#[derive(Debug, Clone)]
pub struct PgImport {
    pub summary: ImportSummary,
    /// Where WAL must be streamed from (the backup's checkpoint redo point).
    pub start_lsn: Lsn,
    /// From here on the timeline is consistent.
    pub end_lsn: Lsn,
    pub system_id: u64,
}

fn source_err(what: &str) -> impl FnOnce(pq_client::ClientError) -> ImportError + '_ {
    move |e| ImportError::Source(format!("{what}: {e}"))
}

/// Feeds the tar bytes received on the async side to the blocking unpacker.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.current = b,
                // The sender is gone: end of the archive.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Takes a base backup of `source` into `dir` (which must not exist).
async fn receive_base_backup(
    source: &WalSourceConfig,
    dir: &Path,
) -> Result<(u64, Lsn, Lsn), ImportError> {
    let cfg = crate::walreceiver::validate_source(source).map_err(ImportError::Source)?;
    let mut conn = ReplicationConnection::connect(&cfg)
        .await
        .map_err(source_err("connecting"))?;
    let sys = conn
        .identify_system()
        .await
        .map_err(source_err("IDENTIFY_SYSTEM"))?;
    if let Some(slot) = &source.slot_name {
        let created = conn
            .create_physical_slot(slot)
            .await
            .map_err(source_err("creating the replication slot"))?;
        tracing::info!(slot, created, "replication slot for the import");
    }
    let mut backup = conn
        .base_backup("LABEL 'pageserver import', CHECKPOINT 'fast', WAL false, MANIFEST 'no'")
        .await
        .map_err(source_err("BASE_BACKUP"))?;
    let start_lsn = Lsn(backup.start_lsn);
    std::fs::create_dir_all(dir).map_err(|e| ImportError::Io {
        path: dir.to_owned(),
        source: e,
    })?;
    let (tx, rx) = mpsc::sync_channel::<Bytes>(32);
    let unpack_dir = dir.to_owned();
    let unpacker = tokio::task::spawn_blocking(move || {
        let mut archive = tar::Archive::new(ChannelReader {
            rx,
            current: Bytes::new(),
        });
        archive.set_preserve_permissions(false);
        archive.unpack(&unpack_dir).map_err(|e| ImportError::Io {
            path: unpack_dir.clone(),
            source: std::io::Error::other(format!("unpacking the base backup: {e}")),
        })
    });
    let mut tx = Some(tx);
    let mut archives = 0;
    let received = async {
        while let Some(chunk) = backup.next().await.map_err(source_err("base backup"))? {
            match chunk {
                BackupChunk::NewArchive { name, location } => {
                    archives += 1;
                    if archives > 1 || location.is_some() {
                        return Err(ImportError::Unsupported {
                            path: PathBuf::from(name),
                            what: "a tablespace other than pg_default and pg_global".to_owned(),
                        });
                    }
                }
                BackupChunk::Data(b) => {
                    let sender = tx.as_ref().ok_or_else(|| {
                        ImportError::Source("base backup data after the manifest".to_owned())
                    })?;
                    // The unpacker stopped early: its error is reported below.
                    if sender.send(b).is_err() {
                        break;
                    }
                }
                BackupChunk::Progress(_) => {}
                // We asked for no manifest; ignore one anyway.
                BackupChunk::Manifest => tx = None,
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let unpacked = unpacker.await.map_err(|e| ImportError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(e),
    })?;
    received?;
    unpacked?;
    let (end, _tli) = backup
        .finish()
        .await
        .map_err(source_err("end of BASE_BACKUP"))?;
    Ok((sys.system_id, start_lsn, Lsn(end)))
}

/// Creates `timeline_id` from a base backup of `source` (see the module
/// documentation). On failure nothing is left behind.
pub async fn import_from_postgres(
    storage: &TenantStorage,
    timeline_id: TimelineId,
    pg_version: u32,
    source: &WalSourceConfig,
    scratch: &Path,
) -> Result<(Arc<Timeline>, PgImport), ImportError> {
    let dir = scratch.join(format!("basebackup-{timeline_id}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| ImportError::Io {
            path: dir.clone(),
            source: e,
        })?;
    }
    let result = async {
        let (system_id, start_lsn, end_lsn) = receive_base_backup(source, &dir).await?;
        let tl = storage
            .create_timeline(timeline_id, pg_version, Lsn::INVALID)
            .await?;
        let summary = import_datadir_as(&tl, &dir, DatadirOrigin::Backup { start_lsn }).await?;
        let control_sysid = crate::pgdatadir_mapping::DatadirView::new(&tl, start_lsn)
            .control_file()
            .await?
            .system_identifier;
        if control_sysid != system_id {
            return Err(ImportError::Source(format!(
                "the backup's control file has system identifier {control_sysid}, the server reported {system_id}"
            )));
        }
        Ok((
            tl,
            PgImport {
                summary,
                start_lsn,
                end_lsn,
                system_id,
            },
        ))
    }
    .await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if dir.exists() {
            tracing::warn!(path = %dir.display(), "removing the base backup directory: {e}");
        }
    }
    result
}
