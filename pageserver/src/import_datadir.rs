//! Bootstrap: a stopped Postgres cluster's data directory (typically fresh
//! from `initdb`) imported into an empty timeline, and the `initdb` run
//! that produces one.
//!
//! [`import_datadir`] stores, as images at the LSN of the control file's
//! checkpoint record (so WAL decoded from that record on applies on top):
//!
//! | files | stored as |
//! |---|---|
//! | `global/<rel>*`, `base/<db>/<rel>*` (all forks, all 1 GiB segments) | every page, the fork's size, relation and database directories |
//! | `pg_filenode.map` (global and per database) | relmapper files |
//! | `pg_xact/*`, `pg_multixact/{offsets,members}/*` | SLRU pages, segment sizes and directories |
//! | `pg_twophase/*` | two-phase state files and their directory |
//! | `global/pg_control` | the control file, and its checkpoint as the checkpoint key |
//!
//! Not imported, on purpose: `PG_VERSION` (implied by the timeline's
//! version), `pg_internal.init` (a relcache cache Postgres rebuilds),
//! temporary relations and `pgsql_tmp`, `pg_wal`, `pg_subtrans` and
//! statistics (not persistent state), `pg_commit_ts`, `pg_logical`,
//! `pg_replslot` and configuration files (not kept by this server).
//! Tablespaces under `pg_tblspc` are refused.
//!
//! The cluster must have been shut down cleanly (its checkpoint is its redo
//! point): a crashed cluster would need WAL replay to be consistent. The
//! whole import is one batch, so readers see the cluster entirely or not
//! at all; that bounds it to clusters that fit in memory (initdb output is
//! about 25 MB).
//!
//! [`run_initdb`] runs `initdb` from a `pg_distrib_dir`, accepting both
//! `<dir>/v15/bin` and Debian's `<dir>/15/bin` layouts (so
//! `/usr/lib/postgresql` works as a distrib dir), as the `postgres` user
//! when this process is root, since initdb refuses to run as root.

use std::collections::BTreeMap;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use pageserver_api::reltag::{RelTag, SlruKind, GLOBALTABLESPACE_OID};
use postgres_ffi::relfile::parse_relation_path;
use postgres_ffi::relmap::{RelMapFile, RELMAPPER_FILENAME};
use postgres_ffi::slru::{parse_segment_file_name, SLRU_PAGES_PER_SEGMENT};
use postgres_ffi::v15::controlfile::{ControlFileData, ControlFileError, DbState};
use postgres_ffi::{twophase, Lsn, PgMajorVersion, BLCKSZ, RELSEG_SIZE};
use utils::id::TimelineId;

use crate::pgdatadir_mapping::{DatadirError, DatadirModification, DatadirView};
use crate::tenant::storage::{StorageError, TenantStorage};
use crate::tenant::timeline::Timeline;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    ControlFile {
        path: PathBuf,
        #[source]
        source: ControlFileError,
    },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("{path}: {what} is not supported")]
    Unsupported { path: PathBuf, what: String },
    #[error("the cluster in {pgdata} was not shut down cleanly (state {state}, checkpoint at {checkpoint}, redo at {redo}); start and stop it first")]
    NotShutDown {
        pgdata: PathBuf,
        state: &'static str,
        checkpoint: Lsn,
        redo: Lsn,
    },
    #[error("the cluster is PostgreSQL {found}, the timeline is for PostgreSQL {expected}")]
    VersionMismatch { found: String, expected: u32 },
    #[error(
        "timeline {timeline} is not empty: it has data up to {last}, the import would be at {lsn}"
    )]
    TimelineNotEmpty {
        timeline: TimelineId,
        last: Lsn,
        lsn: Lsn,
    },
    #[error(transparent)]
    Datadir(#[from] DatadirError),
    #[error(transparent)]
    Initdb(#[from] InitdbError),
    #[error("creating the timeline: {0}")]
    Storage(#[from] StorageError),
    #[error("the source Postgres: {0}")]
    Source(String),
}

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// The LSN everything is stored at (the checkpoint record's start).
    pub lsn: Lsn,
    pub databases: usize,
    pub relation_forks: usize,
    pub relation_pages: u64,
    pub slru_segments: usize,
    pub twophase_files: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The files of a data directory, classified (read on a blocking thread).
#[derive(Default)]
struct Scan {
    control: Vec<u8>,
    /// (spcnode, dbnode) → has a relmapper file (its bytes).
    dbs: BTreeMap<(u32, u32), Option<Bytes>>,
    /// Relation fork → segment number → file.
    rels: BTreeMap<RelTag, BTreeMap<u32, PathBuf>>,
    slru: Vec<(SlruKind, u32, PathBuf)>,
    twophase: Vec<(u32, PathBuf)>,
}

fn read_dir_names(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, ImportError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let is_dir = entry.file_type().map_err(io_err(&path))?.is_dir();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| ImportError::BadFile {
                path: path.clone(),
                reason: format!("file name {n:?} is not UTF-8"),
            })?;
        out.push((name, path, is_dir));
    }
    out.sort();
    Ok(out)
}

/// Files of a database directory (`global` or `base/<db>`).
fn scan_db_dir(
    scan: &mut Scan,
    pgdata: &Path,
    rel_dir: &str,
    key: (u32, u32),
) -> Result<(), ImportError> {
    let dir = pgdata.join(rel_dir);
    let mut relmap = None;
    for (name, path, is_dir) in read_dir_names(&dir)? {
        match name.as_str() {
            RELMAPPER_FILENAME => {
                let bytes = std::fs::read(&path).map_err(io_err(&path))?;
                RelMapFile::parse(&bytes).map_err(|e| ImportError::BadFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                relmap = Some(Bytes::from(bytes));
                continue;
            }
            "pg_control" if key.0 == GLOBALTABLESPACE_OID => {
                scan.control = std::fs::read(&path).map_err(io_err(&path))?;
                continue;
            }
            // Implied by the timeline, or caches Postgres rebuilds.
            "PG_VERSION" | "pg_internal.init" | "pgsql_tmp" => continue,
            // Temporary relations (t<backend>_<relnode>) do not survive a
            // restart.
            n if n.starts_with('t') && n.contains('_') => continue,
            _ => {}
        }
        if is_dir {
            return Err(ImportError::BadFile {
                path,
                reason: "unexpected directory in a database directory".to_owned(),
            });
        }
        let rel_path = format!("{rel_dir}/{name}");
        let seg = parse_relation_path(PgMajorVersion::V15, &rel_path).map_err(|e| {
            ImportError::BadFile {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        let rel = RelTag::new(
            seg.rnode.spcnode,
            seg.rnode.dbnode,
            seg.rnode.relnode,
            seg.fork as u8,
        );
        scan.rels.entry(rel).or_default().insert(seg.segno, path);
    }
    scan.dbs.insert(key, relmap);
    Ok(())
}

fn scan_datadir(pgdata: &Path) -> Result<Scan, ImportError> {
    let mut scan = Scan::default();
    scan_db_dir(&mut scan, pgdata, "global", (GLOBALTABLESPACE_OID, 0))?;
    if scan.control.is_empty() {
        let path = pgdata.join("global/pg_control");
        return Err(ImportError::BadFile {
            path,
            reason: "missing".to_owned(),
        });
    }
    for (name, path, is_dir) in read_dir_names(&pgdata.join("base"))? {
        let db = name.parse::<u32>().ok().filter(|_| is_dir);
        match db {
            Some(db) => scan_db_dir(
                &mut scan,
                pgdata,
                &format!("base/{name}"),
                (pageserver_api::reltag::DEFAULTTABLESPACE_OID, db),
            )?,
            None if name == "pgsql_tmp" => {}
            None => {
                return Err(ImportError::BadFile {
                    path,
                    reason: "not a database directory".to_owned(),
                })
            }
        }
    }
    let tblspc = pgdata.join("pg_tblspc");
    if tblspc.exists() && !read_dir_names(&tblspc)?.is_empty() {
        return Err(ImportError::Unsupported {
            path: tblspc,
            what: "a tablespace other than pg_default and pg_global".to_owned(),
        });
    }
    for kind in SlruKind::ALL {
        let dir = pgdata.join(kind.dir_name());
        for (name, path, _) in read_dir_names(&dir)? {
            let segno = parse_segment_file_name(&name).map_err(|e| ImportError::BadFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            scan.slru.push((kind, segno, path));
        }
    }
    let dir = pgdata.join(twophase::TWOPHASE_DIR);
    if dir.exists() {
        for (name, path, _) in read_dir_names(&dir)? {
            let xid = twophase::parse_file_name(PgMajorVersion::V15, &name).map_err(|e| {
                ImportError::BadFile {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            scan.twophase.push((xid, path));
        }
    }
    Ok(scan)
}

/// Reads a file that must be whole 8 KiB pages (or, with
/// `whole_pages_only`, whose partial last page is dropped).
fn read_pages(path: &Path, whole_pages_only: bool) -> Result<Bytes, ImportError> {
    let mut bytes = std::fs::read(path).map_err(io_err(path))?;
    if whole_pages_only {
        bytes.truncate(bytes.len() - bytes.len() % BLCKSZ);
    }
    if bytes.len() % BLCKSZ != 0 {
        return Err(ImportError::BadFile {
            path: path.to_owned(),
            reason: format!("size {} is not a multiple of {BLCKSZ}", bytes.len()),
        });
    }
    Ok(Bytes::from(bytes))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImportError> + Send + 'static,
) -> Result<T, ImportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImportError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
}

/// Where a data directory comes from, which decides the LSN it is
/// imported at and what is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatadirOrigin {
    /// A cleanly shut down cluster: imported at its checkpoint.
    ShutDown,
    /// A base backup (a fuzzy copy of a running cluster): imported at the
    /// backup's start LSN (its checkpoint's redo point); WAL from there on
    /// makes every page consistent by the backup's end LSN. A relation file
    /// caught mid-extension keeps only its whole pages.
    Backup { start_lsn: Lsn },
}

/// Imports the stopped cluster in `pgdata` into `tl`, which must be empty
/// below the cluster's checkpoint LSN. See the module documentation.
pub async fn import_datadir(
    tl: &Arc<Timeline>,
    pgdata: &Path,
) -> Result<ImportSummary, ImportError> {
    import_datadir_as(tl, pgdata, DatadirOrigin::ShutDown).await
}

/// [`import_datadir`] for a data directory of the given origin.
pub async fn import_datadir_as(
    tl: &Arc<Timeline>,
    pgdata: &Path,
    origin: DatadirOrigin,
) -> Result<ImportSummary, ImportError> {
    let dir = pgdata.to_owned();
    let scan = blocking(move || scan_datadir(&dir)).await?;
    let whole_pages_only = matches!(origin, DatadirOrigin::Backup { .. });
    let control_path = pgdata.join("global/pg_control");
    let control =
        ControlFileData::decode(&scan.control).map_err(|source| ImportError::ControlFile {
            path: control_path.clone(),
            source,
        })?;
    if tl.pg_version != PgMajorVersion::V15.number() {
        return Err(ImportError::VersionMismatch {
            found: PgMajorVersion::V15.to_string(),
            expected: tl.pg_version,
        });
    }
    let lsn = match origin {
        DatadirOrigin::ShutDown => control.check_point,
        DatadirOrigin::Backup { start_lsn } => start_lsn,
    };
    let clean = matches!(
        control.state,
        DbState::Shutdowned | DbState::ShutdownedInRecovery
    ) && control.check_point_copy.redo == lsn;
    if !clean && origin == DatadirOrigin::ShutDown {
        return Err(ImportError::NotShutDown {
            pgdata: pgdata.to_owned(),
            state: control.state.description(),
            checkpoint: lsn,
            redo: control.check_point_copy.redo,
        });
    }
    let last = tl.get_last_record_lsn();
    let has_cluster = DatadirView::new(tl, last)
        .get_opt(pageserver_api::key::DBDIR_KEY, "database directory")
        .await?
        .is_some();
    if last >= lsn || has_cluster {
        return Err(ImportError::TimelineNotEmpty {
            timeline: tl.timeline_id,
            last,
            lsn,
        });
    }

    tl.set_cluster_settings(crate::pgdatadir_mapping::cluster_settings_of(&control));
    let mut m = DatadirModification::new(Arc::clone(tl));
    m.set_lsn(lsn)?;
    let mut summary = ImportSummary {
        lsn,
        ..Default::default()
    };

    for (&(spc, db), relmap) in &scan.dbs {
        m.put_db_creation(spc, db).await?;
        if let Some(map) = relmap {
            m.put_relmap_file(spc, db, map.clone()).await?;
        }
        summary.databases += 1;
    }

    for (rel, segments) in &scan.rels {
        let files: Vec<(u32, PathBuf)> = segments.iter().map(|(s, p)| (*s, p.clone())).collect();
        let contents = blocking(move || {
            let mut out = Vec::with_capacity(files.len());
            for (i, (segno, path)) in files.iter().enumerate() {
                if *segno != i as u32 {
                    return Err(ImportError::BadFile {
                        path: path.clone(),
                        reason: format!("segment {segno} without segment {i} before it"),
                    });
                }
                let bytes = read_pages(path, whole_pages_only)?;
                let full = RELSEG_SIZE as usize * BLCKSZ;
                if i + 1 < files.len() && bytes.len() != full {
                    return Err(ImportError::BadFile {
                        path: path.clone(),
                        reason: format!(
                            "{} bytes in a segment that is not the last (expected {full})",
                            bytes.len()
                        ),
                    });
                }
                out.push(bytes);
            }
            Ok(out)
        })
        .await?;
        let nblocks: usize = contents.iter().map(|b| b.len() / BLCKSZ).sum();
        let nblocks = u32::try_from(nblocks).map_err(|_| ImportError::BadFile {
            path: segments.values().next().cloned().unwrap_or_default(),
            reason: "relation larger than 2^32 blocks".to_owned(),
        })?;
        m.put_rel_creation(*rel, nblocks).await?;
        let mut blkno = 0u32;
        for seg in contents {
            for page in seg.chunks_exact(BLCKSZ) {
                m.put_rel_page_image(*rel, blkno, seg.slice_ref(page))?;
                blkno += 1;
            }
        }
        summary.relation_forks += 1;
        summary.relation_pages += nblocks as u64;
    }

    for (kind, segno, path) in &scan.slru {
        let p = path.clone();
        let bytes = blocking(move || read_pages(&p, whole_pages_only)).await?;
        let npages = (bytes.len() / BLCKSZ) as u32;
        if npages > SLRU_PAGES_PER_SEGMENT {
            return Err(ImportError::BadFile {
                path: path.clone(),
                reason: format!(
                    "{npages} pages, an SLRU segment has at most {SLRU_PAGES_PER_SEGMENT}"
                ),
            });
        }
        m.put_slru_segment_creation(*kind, *segno, npages).await?;
        for (blkno, page) in bytes.chunks_exact(BLCKSZ).enumerate() {
            m.put_slru_page_image(*kind, *segno, blkno as u32, bytes.slice_ref(page))
                .await?;
        }
        summary.slru_segments += 1;
    }

    for (xid, path) in &scan.twophase {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        twophase::verify_state_file(&bytes).map_err(|e| ImportError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        m.put_twophase_file(*xid as u64, Bytes::from(bytes)).await?;
        summary.twophase_files += 1;
    }

    m.put_control_file(Bytes::from(scan.control))?;
    m.put_checkpoint(Bytes::copy_from_slice(&control.check_point_copy.encode()))?;
    m.commit().await?;
    tracing::info!(timeline_id = %tl.timeline_id, %lsn, ?summary, "imported data directory");
    Ok(summary)
}

// ---- initdb ----

#[derive(Debug, thiserror::Error)]
pub enum InitdbError {
    #[error("no initdb for PostgreSQL {version} under {dir} (looked in {tried:?})")]
    NotFound {
        dir: PathBuf,
        version: u32,
        tried: Vec<PathBuf>,
    },
    #[error("running initdb as root needs a `postgres` user: {reason}")]
    NoPostgresUser { reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("initdb {pgdata} failed ({status}): {stderr}")]
    Failed {
        pgdata: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Options of [`run_initdb`].
#[derive(Debug, Clone)]
pub struct InitdbOptions {
    /// Name of the bootstrap superuser (`-U`).
    pub superuser: String,
    /// `--data-checksums`.
    pub data_checksums: bool,
    /// `--no-sync`: the directory is imported and thrown away, durability
    /// comes from the page server's own storage.
    pub no_sync: bool,
}

impl Default for InitdbOptions {
    fn default() -> Self {
        InitdbOptions {
            superuser: "postgres".to_owned(),
            data_checksums: false,
            no_sync: true,
        }
    }
}

/// The `bin` directory of PostgreSQL `version` under `pg_distrib_dir`:
/// `<dir>/v<version>/bin` (Neon's layout) or `<dir>/<version>/bin`
/// (Debian's, under `/usr/lib/postgresql`).
pub fn pg_bin_dir(pg_distrib_dir: &Path, version: u32) -> Result<PathBuf, InitdbError> {
    let tried: Vec<PathBuf> = [format!("v{version}"), version.to_string()]
        .iter()
        .map(|d| pg_distrib_dir.join(d).join("bin"))
        .collect();
    tried
        .iter()
        .find(|dir| dir.join("initdb").is_file())
        .cloned()
        .ok_or_else(|| InitdbError::NotFound {
            dir: pg_distrib_dir.to_owned(),
            version,
            tried,
        })
}

/// Whether this process runs with effective uid 0.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Result<(u32, u32), InitdbError> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| InitdbError::NoPostgresUser {
            reason: format!("reading /etc/passwd: {e}"),
        })?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| InitdbError::NoPostgresUser {
            reason: "no such user in /etc/passwd".to_owned(),
        })
}

/// Runs `initdb` for PostgreSQL `version` from `pg_distrib_dir` into
/// `pgdata` (which must not exist or be empty), with
/// `--no-instructions -E UTF8 --locale=C`. As root it creates `pgdata`
/// owned by `postgres` and runs initdb as that user; the parent directories
/// must then be searchable by `postgres`.
pub async fn run_initdb(
    pg_distrib_dir: &Path,
    version: u32,
    pgdata: &Path,
    opts: &InitdbOptions,
) -> Result<(), InitdbError> {
    let bin = pg_bin_dir(pg_distrib_dir, version)?;
    let pgdata = pgdata.to_owned();
    let opts = opts.clone();
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| InitdbError::Io { path, source }
    };
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(bin.join("initdb"));
        if is_root() {
            let (uid, gid) = postgres_user()?;
            std::fs::create_dir_all(&pgdata).map_err(io(&pgdata))?;
            std::fs::set_permissions(&pgdata, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&pgdata))?;
            chown(&pgdata, Some(uid), Some(gid)).map_err(io(&pgdata))?;
            cmd.uid(uid).gid(gid);
        }
        cmd.arg("-D")
            .arg(&pgdata)
            .arg("-U")
            .arg(&opts.superuser)
            .args(["--no-instructions", "-E", "UTF8", "--locale=C"]);
        if opts.data_checksums {
            cmd.arg("--data-checksums");
        }
        if opts.no_sync {
            cmd.arg("--no-sync");
        }
        let out = cmd.output().map_err(io(&bin.join("initdb")))?;
        if !out.status.success() {
            return Err(InitdbError::Failed {
                pgdata: pgdata.clone(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    })
    .await
    .map_err(|e| InitdbError::Io {
        path: PathBuf::from("initdb"),
        source: std::io::Error::other(e),
    })?
}

/// Bootstrap of a new root timeline: `initdb` into `scratch/<timeline id>`,
/// a timeline created at LSN 0, the data directory imported at its
/// checkpoint LSN, the scratch directory removed.
pub async fn bootstrap_timeline(
    storage: &TenantStorage,
    timeline_id: TimelineId,
    pg_distrib_dir: &Path,
    scratch: &Path,
    opts: &InitdbOptions,
) -> Result<(Arc<Timeline>, ImportSummary), ImportError> {
    let version = PgMajorVersion::V15.number();
    let pgdata = scratch.join(format!("initdb-{timeline_id}"));
    if pgdata.exists() {
        std::fs::remove_dir_all(&pgdata).map_err(io_err(&pgdata))?;
    }
    run_initdb(pg_distrib_dir, version, &pgdata, opts).await?;
    let result = async {
        let tl = storage
            .create_timeline(timeline_id, version, Lsn::INVALID)
            .await?;
        let summary = import_datadir(&tl, &pgdata).await?;
        Ok((tl, summary))
    }
    .await;
    if let Err(e) = std::fs::remove_dir_all(&pgdata) {
        tracing::warn!(path = %pgdata.display(), "removing the initdb directory: {e}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_bin_layouts() {
        let tmp = tempfile::tempdir().unwrap();
        let neon = tmp.path().join("neon");
        let debian = tmp.path().join("debian");
        for bin in [neon.join("v15/bin"), debian.join("15/bin")] {
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("initdb"), b"").unwrap();
        }
        assert_eq!(pg_bin_dir(&neon, 15).unwrap(), neon.join("v15/bin"));
        assert_eq!(pg_bin_dir(&debian, 15).unwrap(), debian.join("15/bin"));
        let err = pg_bin_dir(&debian, 16).unwrap_err();
        assert!(
            matches!(&err, InitdbError::NotFound { tried, .. } if tried.len() == 2),
            "{err}"
        );
        assert!(err.to_string().contains("16"), "{err}");
    }
}
