//! `pagectl ingest-bench`: decode + ingest throughput of real WAL, measured
//! the way the ingest benchmark (`scripts/bench-ingest.py`) compares it with
//! PostgreSQL's own redo of the same WAL.
//!
//! Takes a data directory (a base backup with its `backup_label`, or a
//! cleanly shut down cluster) and the `pg_wal` directory holding the WAL
//! written after it; imports the directory into a fresh timeline in
//! `--workdir` (a throwaway storage, no fsync), then decodes and ingests
//! every record from the backup's start LSN to the end of the WAL, commits,
//! and flushes. Prints one JSON object: records, bytes, full-page image
//! bytes, wall and CPU seconds of decode + ingest (and of the final flush),
//! records per second and per CPU-second, MB/s, and the process's peak RSS.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use camino::Utf8PathBuf;
use pageserver::import_datadir::{import_datadir_as, DatadirOrigin};
use pageserver::tenant::resources::{StorageResources, StorageSettings};
use pageserver::tenant::storage::TenantStorage;
use pageserver::walingest::{Ingest, IngestStep};
use pageserver::walredo::NativeRedo;
use pageserver_api::tenant_config::TenantConfigToml;
use postgres_ffi::v15::controlfile::ControlFileData;
use postgres_ffi::wal::{WalDecoderConfig, WalDirReader, WalSegmentSize};
use postgres_ffi::PgMajorVersion;
use utils::generation::Generation;
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

/// User + system CPU seconds and peak RSS (KiB) of this process.
fn rusage() -> (f64, i64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss)
}

/// `START WAL LOCATION: X/Y (file …)` of a backup label.
fn backup_start(pgdata: &Path) -> anyhow::Result<Option<Lsn>> {
    let path = pgdata.join("backup_label");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .with_context(|| format!("{}: no START WAL LOCATION", path.display()))?;
    let lsn = line.split_whitespace().next().unwrap_or_default();
    Ok(Some(lsn.parse().with_context(|| {
        format!("{}: bad LSN {lsn:?}", path.display())
    })?))
}

/// `perf record --control fifo:PATH -D -1` support: when
/// `PAGECTL_PERF_CTL` names perf's control FIFO, the profile covers only the
/// decode + ingest phase (not the import before it or the flush after it).
struct PerfControl(Option<std::fs::File>);

impl PerfControl {
    fn from_env() -> Self {
        let file = std::env::var_os("PAGECTL_PERF_CTL").and_then(|path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| eprintln!("PAGECTL_PERF_CTL {}: {e}", Path::new(&path).display()))
                .ok()
        });
        PerfControl(file)
    }

    fn send(&self, command: &str) {
        use std::io::Write;
        if let Some(mut f) = self.0.as_ref() {
            if let Err(e) = writeln!(f, "{command}") {
                eprintln!("PAGECTL_PERF_CTL: {e}");
            }
        }
    }
}

/// What to measure.
pub struct Options {
    /// Node-wide in-memory layer budget in MiB (0: none).
    pub budget_mb: u64,
    /// The std-fs IO engine instead of io-uring.
    pub std_fs: bool,
    /// Decode every record but ingest none.
    pub decode_only: bool,
}

pub fn run(pgdata: &Path, pg_wal: &Path, workdir: &Path, opts: Options) -> anyhow::Result<()> {
    // The server's IO engine (io-uring unless the kernel refuses it), or
    // std-fs (e.g. under valgrind, which does not know io_uring).
    virtual_file::init(virtual_file::Config {
        max_file_descriptors: 1000,
        io_engine: if opts.std_fs {
            virtual_file::IoEngineKind::StdFs
        } else {
            virtual_file::IoEngineKind::IoUring
        },
        io_mode: virtual_file::IoMode::Buffered,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(pgdata, pg_wal, workdir, opts))
}

async fn bench(pgdata: &Path, pg_wal: &Path, workdir: &Path, opts: Options) -> anyhow::Result<()> {
    let control_path = pgdata.join("global/pg_control");
    let control = ControlFileData::decode(
        &std::fs::read(&control_path).with_context(|| control_path.display().to_string())?,
    )
    .with_context(|| control_path.display().to_string())?;
    let (origin, start) = match backup_start(pgdata)? {
        Some(start_lsn) => (DatadirOrigin::Backup { start_lsn }, start_lsn),
        None => (DatadirOrigin::ShutDown, control.check_point),
    };
    if workdir.exists() && std::fs::read_dir(workdir)?.next().is_some() {
        bail!("{} is not empty", workdir.display());
    }
    std::fs::create_dir_all(workdir)?;
    let dir = Utf8PathBuf::from_path_buf(workdir.to_owned())
        .map_err(|p| anyhow::anyhow!("{} is not UTF-8", p.display()))?;
    let resources = StorageResources::new(StorageSettings {
        no_sync: true,
        ephemeral_budget_bytes: opts.budget_mb << 20,
        ..StorageSettings::default()
    });
    let storage = TenantStorage::new(
        TenantShardId::unsharded(TenantId::from_array([7; 16])),
        &dir,
        Generation(1),
        TenantConfigToml::default(),
        resources,
        Arc::new(NativeRedo::new()),
    );
    let tl = storage
        .create_timeline(TimelineId::from_array([7; 16]), 15, Lsn(0))
        .await?;
    let summary = import_datadir_as(&tl, pgdata, origin).await?;
    tl.freeze_and_flush().await?;

    let seg = WalSegmentSize::new(control.xlog_seg_size)?;
    let cfg = WalDecoderConfig::new(PgMajorVersion::V15, seg);
    let tli = control.check_point_copy.this_timeline_id;
    let mut reader = WalDirReader::new(pg_wal, tli, start, cfg)?;
    let mut ingest = Ingest::new(Arc::clone(&tl)).await?;
    eprintln!(
        "imported {} pages at {start}; ingesting",
        summary.relation_pages
    );
    let perf = PerfControl::from_env();
    perf.send("enable");
    let (cpu0, _) = rusage();
    let t0 = Instant::now();
    let (mut records, mut bytes, mut fpi_bytes) = (0u64, 0u64, 0u64);
    let mut end = start;
    let mut last_start = start;
    // The end of WAL shows as a record that does not decode (zeros after
    // the last record, as for PostgreSQL's recovery); it is reported.
    let mut stopped = None;
    // One record slot, as the walreceiver uses.
    let mut rec = postgres_ffi::wal::WalRecord::default();
    loop {
        match reader.next_record_into(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                stopped = Some(e.to_string());
                break;
            }
        }
        records += 1;
        bytes += rec.tot_len() as u64;
        fpi_bytes += rec
            .blocks
            .iter()
            .filter_map(|b| b.image.as_ref().map(|i| i.stored_len() as u64))
            .sum::<u64>();
        end = rec.end_lsn;
        last_start = rec.lsn;
        if !opts.decode_only {
            // The walreceiver's calls: the synchronous part first.
            if let IngestStep::Continue(rest) = ingest.ingest_record_now(&rec)? {
                ingest.ingest_record_rest(&rec, rest).await?;
            }
        }
    }
    ingest.commit().await?;
    let (cpu1, rss_ingest) = rusage();
    perf.send("disable");
    let wall = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    tl.freeze_and_flush().await?;
    let flush_wall = t1.elapsed().as_secs_f64();
    let (cpu2, rss) = rusage();
    storage.shutdown(false).await;
    let cpu = cpu1 - cpu0;
    let out = serde_json::json!({
        "start_lsn": start.to_string(),
        "end_lsn": end.to_string(),
        "last_record_lsn": last_start.to_string(),
        "stopped_at": stopped,
        "imported_pages": summary.relation_pages,
        "records": records,
        "bytes": bytes,
        "fpi_bytes": fpi_bytes,
        "ingest_wall_s": wall,
        "ingest_cpu_s": cpu,
        "records_per_s": records as f64 / wall,
        "records_per_cpu_s": records as f64 / cpu.max(1e-9),
        "mb_per_s": bytes as f64 / wall / 1e6,
        "flush_wall_s": flush_wall,
        "flush_cpu_s": cpu2 - cpu1,
        "max_rss_kib_after_ingest": rss_ingest,
        "max_rss_kib": rss,
        "io_engine": format!("{:?}", virtual_file::current().io_engine),
        "decode_only": opts.decode_only,
    });
    println!("{out}");
    Ok(())
}
