//! Bootstrap import and WAL ingest against a real PostgreSQL 15.
//!
//! - `bootstrap_import_matches_files`: `initdb` (through
//!   [`run_initdb`] with Debian's `/usr/lib/postgresql` as distrib dir),
//!   import, then every page of every relation file, every SLRU page, the
//!   directories, relmapper files, `pg_control` and the checkpoint read
//!   back through the timeline equal the files.
//! - `ingest_follows_primary`: the imported cluster is started, runs
//!   `pgbench -i` and a mixed workload after a CHECKPOINT (so first touches
//!   carry full-page images), and is stopped; its WAL from the import LSN is
//!   decoded and ingested. At the final LSN the relation and database
//!   directories, sizes, relmapper files, two-phase state, checkpoint, CLOG
//!   and multixact pages match the stopped primary, and every relation page
//!   whose history since its last image has no Postgres record (so it needs
//!   no Postgres-record redo) equals the primary's page, up to hint bits
//!   Postgres does not WAL-log.
//!
//! PostgreSQL 15 binaries are expected in /usr/lib/postgresql/15/bin (the
//! Debian package `postgresql-15`); without them the tests fail, unless
//! SKIP_PG_TESTS=1. As root, PostgreSQL runs as the `postgres` user.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bytes::Bytes;
use camino::Utf8Path;
use pageserver::import_datadir::{import_datadir, run_initdb, ImportError, InitdbOptions};
use pageserver::pgdatadir_mapping::DatadirView;
use pageserver::tenant::resources::{StorageResources, StorageSettings};
use pageserver::tenant::storage::TenantStorage;
use pageserver::tenant::timeline::read::PageReconstructError;
use pageserver::tenant::timeline::Timeline;
use pageserver::walingest::Ingest;
use pageserver::walredo::{NativeRedo, RedoError};
use pageserver_api::key::rel_block_to_key;
use pageserver_api::keyspace::KeySpace;
use pageserver_api::reltag::{RelTag, SlruKind};
use pageserver_api::tenant_config::TenantConfigToml;
use postgres_ffi::relfile::{parse_relation_path, ForkNumber};
use postgres_ffi::slru::clog::{self, XidStatus};
use postgres_ffi::slru::multixact_offsets;
use postgres_ffi::v15::controlfile::ControlFileData;
use postgres_ffi::wal::{WalDecoderConfig, WalDirError, WalDirReader, WalSegmentSize};
use postgres_ffi::{Lsn, PgMajorVersion, BLCKSZ};
use utils::generation::Generation;
use utils::id::{TenantId, TimelineId};
use utils::shard::TenantShardId;

const PG_DISTRIB: &str = "/usr/lib/postgresql";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// False = skip (SKIP_PG_TESTS=1); panics with instructions if the
/// binaries are missing otherwise.
fn pg_available() -> bool {
    if std::env::var("SKIP_PG_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIP_PG_TESTS=1: skipping the PostgreSQL 15 ingest test");
        return false;
    }
    assert!(
        Path::new(PG_BIN).join("postgres").exists(),
        "PostgreSQL 15 binaries not found in {PG_BIN}. Install them with \
         `apt-get install -y postgresql-15`, or set SKIP_PG_TESTS=1 to skip these tests."
    );
    true
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A PostgreSQL binary, run as `postgres` when we are root.
fn pg_cmd(bin: &str) -> Command {
    let path = format!("{PG_BIN}/{bin}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A cluster in a temporary directory.
struct Cluster {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    running: bool,
}

impl Cluster {
    async fn initdb(opts: &InitdbOptions) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("ingest-pg15")
            .tempdir()
            .unwrap();
        let root = tmp.path().to_path_buf();
        // The postgres user must reach the data and socket directories.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let data = root.join("data");
        let sock = root.join("sock");
        fs::create_dir(&sock).unwrap();
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
        run_initdb(Path::new(PG_DISTRIB), 15, &data, opts)
            .await
            .expect("initdb");
        Cluster {
            _tmp: tmp,
            root,
            data,
            sock,
            running: false,
        }
    }

    fn start(&mut self, extra_conf: &str) {
        let conf = format!(
            "listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             wal_level = replica\n\
             full_page_writes = on\n\
             max_prepared_transactions = 5\n\
             wal_keep_size = '1GB'\n\
             max_wal_size = '1GB'\n\
             checkpoint_timeout = '1h'\n\
             autovacuum = off\n\
             fsync = off\n\
             {extra_conf}\n",
            self.sock.display()
        );
        let path = self.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(&conf);
        fs::write(&path, text).unwrap();
        let mut c = pg_cmd("pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.root.join("server.log"))
            .args(["-w", "start"]);
        run(c, "pg_ctl start");
        self.running = true;
    }

    fn sql_in(&self, db: &str, script: &str) -> String {
        let mut c = pg_cmd("psql");
        c.arg("-h")
            .arg(&self.sock)
            .args(["-U", "postgres", "-d", db, "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", script]);
        String::from_utf8(run(c, &format!("psql {script:?}")).stdout).unwrap()
    }

    fn sql(&self, script: &str) -> String {
        self.sql_in("postgres", script)
    }

    fn sql_u32(&self, script: &str) -> u32 {
        let out = self.sql(script);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script:?} printed {out:?}"))
    }

    fn pgbench_init(&self) {
        let mut c = pg_cmd("pgbench");
        c.arg("-h")
            .arg(&self.sock)
            .args(["-U", "postgres", "-i", "-s", "1", "-q", "postgres"]);
        run(c, "pgbench -i");
    }

    fn stop(&mut self) {
        let mut c = pg_cmd("pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "fast", "stop"]);
        run(c, "pg_ctl stop");
        self.running = false;
    }

    fn control(&self) -> ControlFileData {
        ControlFileData::decode(&fs::read(self.data.join("global/pg_control")).unwrap()).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = pg_cmd("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}

struct Store {
    _tmp: tempfile::TempDir,
    storage: Arc<TenantStorage>,
    tl: Arc<Timeline>,
}

async fn store() -> Store {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(tmp.path()).unwrap().to_owned();
    let resources = StorageResources::new(StorageSettings {
        no_sync: true,
        ..StorageSettings::default()
    });
    let storage = TenantStorage::new(
        TenantShardId::unsharded(TenantId::from_array([5; 16])),
        &dir,
        Generation(1),
        TenantConfigToml::default(),
        resources,
        Arc::new(NativeRedo::new()),
    );
    let tl = storage
        .create_timeline(TimelineId::from_array([2; 16]), 15, Lsn(0))
        .await
        .unwrap();
    Store {
        _tmp: tmp,
        storage,
        tl,
    }
}

// ---------------------------------------------------------------------------
// the data directory on disk

/// Relation forks on disk: tag → all segments concatenated.
fn disk_relations(data: &Path) -> BTreeMap<RelTag, Vec<u8>> {
    let mut segs: BTreeMap<RelTag, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    let mut dirs = vec!["global".to_owned()];
    for e in fs::read_dir(data.join("base")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.parse::<u32>().is_ok() {
            dirs.push(format!("base/{name}"));
        }
    }
    for dir in dirs {
        for e in fs::read_dir(data.join(&dir)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let Ok(seg) = parse_relation_path(PgMajorVersion::V15, &format!("{dir}/{name}")) else {
                continue;
            };
            let tag = RelTag::new(
                seg.rnode.spcnode,
                seg.rnode.dbnode,
                seg.rnode.relnode,
                seg.fork as u8,
            );
            let bytes = fs::read(data.join(&dir).join(&name)).unwrap();
            segs.entry(tag).or_default().insert(seg.segno, bytes);
        }
    }
    segs.into_iter()
        .map(|(tag, s)| (tag, s.into_values().flatten().collect()))
        .collect()
}

fn disk_dbs(data: &Path) -> BTreeSet<(u32, u32)> {
    let mut out = BTreeSet::from([(1664, 0)]);
    for e in fs::read_dir(data.join("base")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Ok(db) = name.parse::<u32>() {
            out.insert((1663, db));
        }
    }
    out
}

fn db_dir(data: &Path, spc: u32, db: u32) -> PathBuf {
    if spc == 1664 {
        data.join("global")
    } else {
        data.join(format!("base/{db}"))
    }
}

/// SLRU segments on disk: segno → bytes.
fn disk_slru(data: &Path, kind: SlruKind) -> BTreeMap<u32, Vec<u8>> {
    fs::read_dir(data.join(kind.dir_name()))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let segno = postgres_ffi::slru::parse_segment_file_name(&name).unwrap();
            (segno, fs::read(e.path()).unwrap())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// reading the timeline

/// Pages `0..n` of `rel`, each as the timeline reconstructs it.
async fn read_pages(
    tl: &Timeline,
    lsn: Lsn,
    rel: RelTag,
    n: u32,
) -> Vec<Result<Bytes, PageReconstructError>> {
    let mut out = Vec::with_capacity(n as usize);
    let mut blk = 0;
    while blk < n {
        let end = n.min(blk + 32);
        let ks = KeySpace::single(rel_block_to_key(rel, blk)..rel_block_to_key(rel, end));
        let mut got = tl.get_vectored(ks, lsn).await.unwrap();
        for b in blk..end {
            out.push(got.remove(&rel_block_to_key(rel, b)).unwrap());
        }
        blk = end;
    }
    out
}

async fn slru_pages(view: &DatadirView<'_>, kind: SlruKind, segno: u32) -> Vec<u8> {
    let n = view.slru_segment_size(kind, segno).await.unwrap().unwrap();
    let mut out = Vec::new();
    for blk in 0..n {
        out.extend_from_slice(&view.slru_page(kind, segno, blk).await.unwrap());
    }
    out
}

/// Everything the import stores equals the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_import_matches_files() {
    if !pg_available() {
        return;
    }
    // With data checksums, to exercise that initdb option too.
    let c = Cluster::initdb(&InitdbOptions {
        data_checksums: true,
        ..InitdbOptions::default()
    })
    .await;
    let s = store().await;
    let summary = import_datadir(&s.tl, &c.data).await.unwrap();
    let cd = c.control();
    assert!(cd.data_checksums_enabled());
    assert_eq!(summary.lsn, cd.check_point);
    assert_eq!(s.tl.get_last_record_lsn(), cd.check_point);
    let view = DatadirView::new(&s.tl, cd.check_point);

    let rels = disk_relations(&c.data);
    assert_eq!(summary.relation_forks, rels.len());
    let mut pages = 0;
    for (rel, bytes) in &rels {
        let n = (bytes.len() / BLCKSZ) as u32;
        assert_eq!(view.rel_size(*rel).await.unwrap(), Some(n), "{rel}");
        for (blk, page) in read_pages(&s.tl, cd.check_point, *rel, n)
            .await
            .into_iter()
            .enumerate()
        {
            let page = page.unwrap_or_else(|e| panic!("{rel} block {blk}: {e}"));
            assert!(
                page[..] == bytes[blk * BLCKSZ..(blk + 1) * BLCKSZ],
                "{rel} block {blk} differs"
            );
            pages += 1;
        }
    }
    assert_eq!(summary.relation_pages, pages);

    let dbs = disk_dbs(&c.data);
    let ours = view.db_directory().await.unwrap();
    assert_eq!(ours.dbs.keys().copied().collect::<BTreeSet<_>>(), dbs);
    for &(spc, db) in &dbs {
        let on_disk: BTreeSet<RelTag> = rels
            .keys()
            .filter(|r| (r.spcnode, r.dbnode) == (spc, db))
            .copied()
            .collect();
        assert_eq!(view.list_rels(spc, db).await.unwrap(), on_disk);
        let map = fs::read(db_dir(&c.data, spc, db).join("pg_filenode.map")).unwrap();
        assert_eq!(
            &view.relmap_file(spc, db).await.unwrap().unwrap()[..],
            &map[..]
        );
    }
    let control = fs::read(c.data.join("global/pg_control")).unwrap();
    assert_eq!(&view.control_file_bytes().await.unwrap()[..], &control[..]);
    assert_eq!(view.checkpoint().await.unwrap(), cd.check_point_copy);
    for kind in SlruKind::ALL {
        let disk = disk_slru(&c.data, kind);
        let ours = view.slru_directory(kind).await.unwrap();
        assert_eq!(
            ours.segments,
            disk.keys().copied().collect::<BTreeSet<_>>(),
            "{kind}"
        );
        for (segno, bytes) in disk {
            assert_eq!(
                slru_pages(&view, kind, segno).await,
                bytes,
                "{kind} {segno}"
            );
        }
    }
    assert!(view.twophase_directory().await.unwrap().xids.is_empty());
    let total: u64 = rels.values().map(|b| b.len() as u64).sum();
    assert_eq!(view.logical_size().await.unwrap(), total);
    eprintln!("imported {summary:?}");

    // A second import into the same timeline is refused.
    let err = import_datadir(&s.tl, &c.data).await.unwrap_err();
    assert!(matches!(err, ImportError::TimelineNotEmpty { .. }), "{err}");
    // So is a cluster that crashed (it would need WAL replay).
    let mut c = c;
    c.start("");
    let mut kill = pg_cmd("pg_ctl");
    kill.arg("-D")
        .arg(&c.data)
        .args(["-w", "-m", "immediate", "stop"]);
    run(kill, "pg_ctl stop -m immediate");
    c.running = false;
    let fresh = store().await;
    let err = import_datadir(&fresh.tl, &c.data).await.unwrap_err();
    assert!(matches!(err, ImportError::NotShutDown { .. }), "{err}");
    fresh.storage.shutdown(false).await;
    s.storage.shutdown(false).await;
}

// ---------------------------------------------------------------------------
// ingest

/// Masks a page for comparison with the primary's file: the access
/// method's mask from the redo library (hint bits, LSN, checksum, free
/// space, LP_DEAD on index leaves, …).
fn mask_page(p: &mut [u8], forknum: u8, blkno: u32) {
    let page: &mut [u8; BLCKSZ] = p.try_into().expect("an 8 KiB page");
    pg_redo::mask::mask_relation_page(page, forknum, blkno);
}

/// What the workload did, to check afterwards.
struct Workload {
    committed: Vec<u32>,
    aborted: Vec<u32>,
    prepared: u32,
    postgres_db: u32,
    dropped_rels: Vec<u32>,
    dropped_db: u32,
    /// An LSN after db_drop got its table and before it was dropped.
    before_drop: Lsn,
    copied_db: u32,
    wal_log_db: u32,
}

fn workload(c: &Cluster) -> Workload {
    c.pgbench_init();
    // First touches after this carry full-page images.
    c.sql("CHECKPOINT");
    let postgres_db = c.sql_u32("SELECT oid FROM pg_database WHERE datname = 'postgres'");
    c.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g;
         CREATE UNLOGGED TABLE u (id int); INSERT INTO u VALUES (1);
         CREATE SEQUENCE s; SELECT nextval('s');",
    );
    c.sql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 500 = 0");
    c.sql("UPDATE pgbench_branches SET bbalance = 7");
    let mut dropped_rels = Vec::new();
    c.sql("CREATE TABLE t_drop AS SELECT g FROM generate_series(1, 1000) g");
    dropped_rels.push(c.sql_u32("SELECT pg_relation_filenode('t_drop')"));
    c.sql("DROP TABLE t_drop");
    c.sql("CREATE TABLE t_trunc AS SELECT g FROM generate_series(1, 1000) g");
    dropped_rels.push(c.sql_u32("SELECT pg_relation_filenode('t_trunc')"));
    c.sql("TRUNCATE t_trunc");
    c.sql("INSERT INTO t_trunc VALUES (1)");
    // Vacuum truncation: Storage TRUNCATE of main, FSM and VM.
    c.sql(
        "CREATE TABLE t_vac AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 5000) g",
    );
    c.sql("VACUUM t_vac");
    c.sql("DELETE FROM t_vac WHERE g > 300");
    c.sql("VACUUM t_vac");
    // Subtransactions: one rolled back, one released.
    let committed = c.sql_u32(
        "BEGIN; INSERT INTO t VALUES (100001, 'a'); SAVEPOINT s1;
         INSERT INTO t VALUES (100002, 'b'); ROLLBACK TO s1;
         SAVEPOINT s2; INSERT INTO t VALUES (100003, 'c'); RELEASE s2;
         SELECT txid_current(); COMMIT;",
    );
    let aborted =
        c.sql_u32("BEGIN; INSERT INTO t VALUES (100004, 'd'); SELECT txid_current(); ROLLBACK;");
    // A multixact: share lock by the transaction, then an update lock by
    // a subtransaction.
    c.sql(
        "BEGIN; SELECT id FROM t WHERE id = 1 FOR SHARE; SAVEPOINT s;
         SELECT id FROM t WHERE id = 1 FOR UPDATE; COMMIT;",
    );
    // Two-phase: committed, rolled back, and one left prepared.
    let committed_2pc = c.sql_u32(
        "BEGIN; INSERT INTO t VALUES (100005, 'p'); SELECT txid_current(); PREPARE TRANSACTION 'p1';",
    );
    c.sql("COMMIT PREPARED 'p1'");
    let aborted_2pc = c.sql_u32(
        "BEGIN; INSERT INTO t VALUES (100006, 'q'); SELECT txid_current(); PREPARE TRANSACTION 'p2';",
    );
    c.sql("ROLLBACK PREPARED 'p2'");
    // A mapped catalog gets a new relfilenode: RelMap UPDATE.
    c.sql("VACUUM FULL pg_class");
    c.sql("CREATE DATABASE db_wal");
    c.sql("CREATE DATABASE db_copy STRATEGY FILE_COPY");
    c.sql_in(
        "db_copy",
        "CREATE TABLE x AS SELECT g FROM generate_series(1, 500) g",
    );
    c.sql("CREATE DATABASE db_drop");
    c.sql_in("db_drop", "CREATE TABLE y (a int)");
    let dropped_db = c.sql_u32("SELECT oid FROM pg_database WHERE datname = 'db_drop'");
    let copied_db = c.sql_u32("SELECT oid FROM pg_database WHERE datname = 'db_copy'");
    let wal_log_db = c.sql_u32("SELECT oid FROM pg_database WHERE datname = 'db_wal'");
    let before_drop: Lsn = c
        .sql("SELECT pg_current_wal_insert_lsn()")
        .trim()
        .parse()
        .unwrap();
    c.sql("DROP DATABASE db_drop");
    let prepared = c.sql_u32(
        "BEGIN; INSERT INTO t VALUES (100007, 'k'); SELECT txid_current(); PREPARE TRANSACTION 'keep';",
    );
    Workload {
        committed: vec![committed, committed_2pc],
        aborted: vec![aborted, aborted_2pc],
        prepared,
        postgres_db,
        dropped_rels,
        dropped_db,
        before_drop,
        copied_db,
        wal_log_db,
    }
}

/// Ingests the WAL of `data` from `start` into `tl`; returns the end LSN
/// of the last record.
async fn ingest_wal(tl: &Arc<Timeline>, data: &Path, start: Lsn, cd: &ControlFileData) -> Lsn {
    let seg = WalSegmentSize::new(cd.xlog_seg_size).unwrap();
    let cfg = WalDecoderConfig::new(PgMajorVersion::V15, seg)
        .with_system_identifier(cd.system_identifier);
    let mut reader = WalDirReader::new(&data.join("pg_wal"), 1, start, cfg).unwrap();
    let mut ingest = Ingest::new(Arc::clone(tl)).await.unwrap();
    let started = std::time::Instant::now();
    let mut last = None;
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                ingest
                    .ingest_record(&rec)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                last = Some((rec.lsn, rec.end_lsn));
            }
            Err(WalDirError::Decode(e)) if e.is_end_of_wal() => break,
            other => panic!("reading WAL: {other:?}"),
        }
    }
    ingest.commit().await.unwrap();
    let (last_start, last_end) = last.expect("no WAL records");
    // The last record is the shutdown checkpoint pg_control points at.
    assert_eq!(last_start, cd.check_point);
    let counts = ingest.counters();
    eprintln!(
        "ingested {} records, {} bytes in {} commits, {:?} (test build); by rmgr: {:?}",
        counts.records,
        counts.bytes,
        counts.commits,
        started.elapsed(),
        counts.by_rmgr
    );
    assert!(counts.records > 1000);
    last_end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_follows_primary() {
    if !pg_available() {
        return;
    }
    let mut c = Cluster::initdb(&InitdbOptions::default()).await;
    let s = store().await;
    let start = import_datadir(&s.tl, &c.data).await.unwrap().lsn;
    c.start("");
    let w = workload(&c);
    c.stop();
    let cd = c.control();
    let lsn = ingest_wal(&s.tl, &c.data, start, &cd).await;
    assert_eq!(s.tl.get_last_record_lsn(), lsn);
    let view = DatadirView::new(&s.tl, lsn);

    // Databases: exactly the primary's.
    let dbs = disk_dbs(&c.data);
    let ours = view.db_directory().await.unwrap();
    assert_eq!(ours.dbs.keys().copied().collect::<BTreeSet<_>>(), dbs);
    assert!(!dbs.contains(&(1663, w.dropped_db)));
    assert!(dbs.contains(&(1663, w.copied_db)) && dbs.contains(&(1663, w.wal_log_db)));

    // Relations. Postgres writes some forks without WAL: FSM pages and
    // forks, visibility-map forks created by VACUUM's pin, the main fork of
    // unlogged tables. So main and init forks must match exactly, FSM and
    // VM forks we have must exist on the primary.
    let rels = disk_relations(&c.data);
    let unlogged: BTreeSet<(u32, u32, u32)> = rels
        .keys()
        .filter(|r| r.forknum == ForkNumber::Init as u8)
        .map(|r| (r.spcnode, r.dbnode, r.relnode))
        .collect();
    let exact = |r: &RelTag| {
        (r.forknum == ForkNumber::Main as u8
            && !unlogged.contains(&(r.spcnode, r.dbnode, r.relnode)))
            || r.forknum == ForkNumber::Init as u8
    };
    let mut ours_all = BTreeSet::new();
    for &(spc, db) in &dbs {
        let ours = view.list_rels(spc, db).await.unwrap();
        let disk: BTreeSet<RelTag> = rels
            .keys()
            .filter(|r| (r.spcnode, r.dbnode) == (spc, db))
            .copied()
            .collect();
        let ours_exact: BTreeSet<_> = ours.iter().filter(|r| exact(r)).copied().collect();
        let disk_exact: BTreeSet<_> = disk.iter().filter(|r| exact(r)).copied().collect();
        assert_eq!(
            ours_exact, disk_exact,
            "main/init forks of database {spc}/{db}"
        );
        let extra: Vec<_> = ours.difference(&disk).collect();
        assert!(
            extra.is_empty(),
            "forks we have that the primary lacks: {extra:?}"
        );
        // The primary may also have forks it wrote without WAL: FSM forks,
        // VM forks VACUUM created without setting a bit, and the main fork
        // of unlogged tables. Nothing else.
        for missing in disk.difference(&ours) {
            let is_unlogged =
                unlogged.contains(&(missing.spcnode, missing.dbnode, missing.relnode));
            assert!(
                missing.forknum == ForkNumber::Fsm as u8
                    || missing.forknum == ForkNumber::VisibilityMap as u8
                    || is_unlogged,
                "{missing} is on the primary but not here"
            );
        }
        ours_all.extend(ours);
    }
    for rel in &w.dropped_rels {
        assert!(
            !ours_all.iter().any(|r| r.relnode == *rel),
            "dropped relation {rel} still listed"
        );
        assert!(!rels.keys().any(|r| r.relnode == *rel));
    }

    // Sizes: ours never exceed the primary's, and whatever the primary has
    // beyond ours was never written through WAL (new, all-zero pages).
    let mut same_size = 0;
    for rel in &ours_all {
        let disk = &rels[rel];
        let n = view.rel_size(*rel).await.unwrap().unwrap() as usize;
        let disk_n = disk.len() / BLCKSZ;
        assert!(n <= disk_n, "{rel}: {n} blocks, primary has {disk_n}");
        if exact(rel) {
            assert!(
                disk[n * BLCKSZ..].iter().all(|&b| b == 0),
                "{rel}: {n} blocks, primary has {disk_n} with data past ours"
            );
        }
        same_size += usize::from(n == disk_n);
    }
    eprintln!(
        "{same_size} of {} forks have exactly the primary's size",
        ours_all.len()
    );

    // Pages that need no Postgres-record redo equal the primary's.
    let (mut compared, mut needs_pg_redo) = (0u64, 0u64);
    for rel in ours_all
        .iter()
        .filter(|r| r.forknum != ForkNumber::Fsm as u8)
    {
        let n = view.rel_size(*rel).await.unwrap().unwrap();
        let disk = &rels[rel];
        for (blk, page) in read_pages(&s.tl, lsn, *rel, n)
            .await
            .into_iter()
            .enumerate()
        {
            match page {
                // WAL carries a sequence's state 32 fetches ahead: redo (ours
                // and a standby's) has that, the primary's page the current
                // value.
                Ok(page)
                    if pg_redo::mask::page_kind(page[..].try_into().expect("8 KiB"))
                        == pg_redo::mask::PageKind::Sequence => {}
                Ok(page) => {
                    let mut ours = page.to_vec();
                    let mut theirs = disk[blk * BLCKSZ..(blk + 1) * BLCKSZ].to_vec();
                    mask_page(&mut ours, rel.forknum, blk as u32);
                    mask_page(&mut theirs, rel.forknum, blk as u32);
                    if rel.forknum == ForkNumber::VisibilityMap as u8 {
                        // CREATE DATABASE (WAL_LOG) logs VM pages as standard
                        // pages, so the bitmap (in the "hole" past pd_lower)
                        // is not in WAL: a standby, like us, has fewer bits
                        // than the primary there. A bit the primary lacks
                        // would be a bug.
                        for (o, t) in ours[24..].iter_mut().zip(&mut theirs[24..]) {
                            assert_eq!(*o & !*t, 0, "{rel} block {blk}: VM bits the primary lacks");
                            *t = *o;
                        }
                    }
                    if ours != theirs {
                        let diffs: Vec<(usize, u8, u8)> = (0..BLCKSZ)
                            .filter(|&i| ours[i] != theirs[i])
                            .map(|i| (i, ours[i], theirs[i]))
                            .take(16)
                            .collect();
                        panic!(
                            "{rel} block {blk} differs from the primary (offset, ours, primary): {diffs:?}; \
                             header ours {:?} primary {:?}",
                            &page[..24],
                            &disk[blk * BLCKSZ..blk * BLCKSZ + 24]
                        );
                    }
                    compared += 1;
                }
                Err(PageReconstructError::Redo(RedoError::Unsupported { .. })) => {
                    needs_pg_redo += 1
                }
                Err(e) => panic!("{rel} block {blk}: {e}"),
            }
        }
    }
    eprintln!(
        "{compared} pages equal the primary's; {needs_pg_redo} need the Postgres record redo"
    );
    assert!(compared > 1000, "only {compared} pages compared");

    // Relmapper files (pg_class of the postgres database was rewritten).
    for &(spc, db) in &dbs {
        let map = fs::read(db_dir(&c.data, spc, db).join("pg_filenode.map")).unwrap();
        let ours = view.relmap_file(spc, db).await.unwrap().expect("relmap");
        assert_eq!(&ours[..], &map[..], "relmap of {spc}/{db}");
    }
    assert!(dbs.contains(&(1663, w.postgres_db)));

    // CLOG pages equal pg_xact, and the statuses are the expected ones.
    let disk = disk_slru(&c.data, SlruKind::Clog);
    assert_eq!(
        view.slru_directory(SlruKind::Clog).await.unwrap().segments,
        disk.keys().copied().collect::<BTreeSet<_>>()
    );
    for (segno, bytes) in &disk {
        assert!(
            slru_pages(&view, SlruKind::Clog, *segno).await == *bytes,
            "pg_xact segment {segno}"
        );
    }
    // Statuses read from our pages (CLOG records applied by NativeRedo).
    let our_clog = slru_pages(&view, SlruKind::Clog, 0).await;
    let status = |xid: u32| {
        let page = &our_clog[clog::xid_to_page(xid) as usize * BLCKSZ..][..BLCKSZ];
        clog::get_status(page.try_into().unwrap(), xid)
    };
    for x in &w.committed {
        assert_eq!(status(*x), XidStatus::Committed, "xid {x}");
    }
    for x in &w.aborted {
        assert_eq!(status(*x), XidStatus::Aborted, "xid {x}");
    }
    assert_eq!(status(w.prepared), XidStatus::InProgress);

    // Multixacts: members pages equal; offsets pages equal except the entry
    // after the newest multixact (see walingest::slru).
    let cp = view.checkpoint().await.unwrap();
    assert!(cp.next_multi > 1, "the workload created no multixact");
    for kind in [SlruKind::MultiXactMembers, SlruKind::MultiXactOffsets] {
        for (segno, bytes) in disk_slru(&c.data, kind) {
            let mut ours = slru_pages(&view, kind, segno).await;
            let mut theirs = bytes;
            if kind == SlruKind::MultiXactOffsets {
                let page = multixact_offsets::multi_to_page(cp.next_multi) as usize;
                let at = (segno as usize * 32 + page) * BLCKSZ
                    + multixact_offsets::multi_to_entry(cp.next_multi) * 4;
                for v in [&mut ours, &mut theirs] {
                    if at + 4 <= v.len() {
                        v[at..at + 4].fill(0);
                    }
                }
            }
            assert!(ours == theirs, "{kind} segment {segno}");
        }
    }

    // Two-phase state: the transaction left prepared, as pg_twophase has it.
    let twophase = view.twophase_directory().await.unwrap();
    assert_eq!(twophase.xids, BTreeSet::from([w.prepared as u64]));
    let file = fs::read(c.data.join(format!("pg_twophase/{:08X}", w.prepared))).unwrap();
    assert_eq!(
        &view.twophase_file(w.prepared as u64).await.unwrap()[..],
        &file[..]
    );

    // The checkpoint is the shutdown checkpoint; the control file carries
    // the settings the primary ran with.
    assert_eq!(cp, cd.check_point_copy);
    let control = view.control_file().await.unwrap();
    assert_eq!(control.max_prepared_xacts, 5);
    assert_eq!(control.wal_level, cd.wal_level);

    let logical: u64 = {
        let mut total = 0;
        for rel in &ours_all {
            total += view.rel_size(*rel).await.unwrap().unwrap() as u64 * BLCKSZ as u64;
        }
        total
    };
    assert_eq!(view.logical_size().await.unwrap(), logical);
    // Time travel: before the drop, the database and its table existed.
    let before = DatadirView::new(&s.tl, w.before_drop);
    assert!(before
        .db_directory()
        .await
        .unwrap()
        .dbs
        .contains_key(&(1663, w.dropped_db)));
    assert!(before.list_rels(1663, w.dropped_db).await.unwrap().len() > 100);
    // The imported state is still readable at the import LSN.
    let at_start = DatadirView::new(&s.tl, start);
    assert!(at_start.twophase_directory().await.unwrap().xids.is_empty());
    assert!(!at_start
        .db_directory()
        .await
        .unwrap()
        .dbs
        .contains_key(&(1663, w.copied_db)));
    s.storage.shutdown(false).await;
}
