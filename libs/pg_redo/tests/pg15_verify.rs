//! Conformance of the native redo against a real PostgreSQL 15.
//!
//! Each test initialises a cluster in a temporary directory with
//! `wal_consistency_checking = 'all'` and `full_page_writes = on`, runs the
//! heap workload (`test_runner/redo_workloads/heap.sql`) through psql, stops
//! the server, and runs [`pg_redo::verify::verify_wal_dir_with`] over its
//! `pg_wal`: every Heap/Heap2/Sequence block must match PostgreSQL's own
//! image after masking, and each main record type must have been matched.
//! Variants: data checksums with wal_level = replica (prefix/suffix-compressed
//! updates), and no checksums with wal_level = logical (old-tuple logging,
//! NEW_CID, Heap/TRUNCATE). `PG_REDO_FULL=1` adds a pgbench run.
//!
//! PostgreSQL 15 binaries are expected in /usr/lib/postgresql/15/bin (Debian
//! package `postgresql-15`). Without them the tests fail with instructions;
//! SKIP_PG_TESTS=1 skips them. As root, the server runs as `postgres`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::collections::BTreeMap;

use pg_redo::verify::{verify_wal_dir_with, Report, VerifyOptions};
use postgres_ffi::rmgr::{RM_HEAP2_ID, RM_HEAP_ID};
use postgres_ffi::v15::info::{heap, heap2};
use postgres_ffi::wal::{WalDecoderConfig, WalDirReader, WalSegmentSize};
use postgres_ffi::{Lsn, PgMajorVersion};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const HEAP_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/heap.sql");

fn pg_available() -> bool {
    if std::env::var("SKIP_PG_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIP_PG_TESTS=1: skipping the PostgreSQL 15 redo conformance test");
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

/// A PostgreSQL binary, run as `postgres` when we are root (initdb refuses root).
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

fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    check(out, what)
}

struct Cluster {
    tmp: tempfile::TempDir,
    data: PathBuf,
    sock: PathBuf,
    running: bool,
}

impl Cluster {
    fn start(checksums: bool, extra_conf: &str) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("pgredo")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let data = root.join("data");
        let sock = root.join("sock");
        fs::create_dir(&sock).unwrap();
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
        let mut c = pg_cmd("initdb");
        c.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--wal-segsize=4"]);
        if checksums {
            c.arg("--data-checksums");
        }
        run(c, "initdb");
        let conf = format!(
            "listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             wal_consistency_checking = 'all'\n\
             full_page_writes = on\n\
             wal_keep_size = '4GB'\n\
             max_wal_size = '4GB'\n\
             checkpoint_timeout = '1h'\n\
             autovacuum = off\n\
             fsync = off\n\
             {extra_conf}\n",
            sock.display()
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        fs::write(&conf_path, text).unwrap();
        let mut cluster = Cluster {
            tmp,
            data,
            sock,
            running: false,
        };
        let mut c = pg_cmd("pg_ctl");
        c.arg("-D")
            .arg(&cluster.data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-w", "start"]);
        run(c, "pg_ctl start");
        cluster.running = true;
        cluster
    }

    fn psql(&self) -> Command {
        let mut c = pg_cmd("psql");
        c.arg("-h")
            .arg(&self.sock)
            .args(["-U", "postgres", "-d", "postgres", "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1"]);
        c
    }

    fn sql(&self, sql: &str) -> String {
        let mut c = self.psql();
        c.args(["-c", sql]);
        String::from_utf8(run(c, &format!("psql {sql:?}")).stdout).unwrap()
    }

    /// Runs a script fed on stdin, with psql variables.
    fn script(&self, script: &str, vars: &[(&str, String)]) {
        let mut c = self.psql();
        for (k, v) in vars {
            c.arg("-v").arg(format!("{k}={v}"));
        }
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn psql");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write script");
        check(child.wait_with_output().expect("psql"), "workload script");
    }

    fn current_lsn(&self) -> Lsn {
        self.sql("SELECT pg_current_wal_insert_lsn()")
            .trim()
            .parse()
            .expect("LSN")
    }

    fn pgbench(&self, args: &[&str]) {
        let mut c = pg_cmd("pgbench");
        c.arg("-h")
            .arg(&self.sock)
            .args(["-U", "postgres"])
            .args(args)
            .arg("postgres");
        run(c, "pgbench");
    }

    fn stop(&mut self) {
        let mut c = pg_cmd("pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "fast", "stop"]);
        run(c, "pg_ctl stop");
        self.running = false;
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

/// Counts record features in the WAL from `start` that the workload is meant
/// to produce, so the test notices when a code path stops being exercised.
fn wal_features(pg_wal: &Path, start: Lsn) -> BTreeMap<&'static str, usize> {
    let seg = WalSegmentSize::new(4 << 20).unwrap();
    let cfg = WalDecoderConfig::new(PgMajorVersion::V15, seg);
    let mut r = WalDirReader::new(pg_wal, 1, seg.segment_start(seg.segno(start)), cfg).unwrap();
    let mut f = BTreeMap::new();
    loop {
        let rec = match r.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(e) => {
                eprintln!("WAL scan stopped: {e}");
                break;
            }
        };
        if rec.lsn < start {
            continue;
        }
        let md = &rec.main_data;
        let info = rec.info() & 0xF0;
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        if !pg_redo::implied_vm_clears(&rec)
            .unwrap_or_default()
            .is_empty()
        {
            hit("vm clear implied");
        }
        if pg_redo::implied_vm_truncate(&rec).is_some_and(|t| t.partial_page.is_some()) {
            hit("vm truncate");
        }
        match (rec.rmid(), info & heap::OPMASK) {
            (RM_HEAP_ID, heap::UPDATE | heap::HOT_UPDATE) if md.len() > 7 => {
                if md[7] & 0x60 != 0 {
                    hit("update prefix/suffix");
                }
                if md[7] & 0x0C != 0 {
                    hit("update old tuple logged");
                }
                if rec.block(1).is_some() {
                    hit("update across pages");
                }
            }
            (RM_HEAP_ID, heap::DELETE) if md.len() > 7 && md[7] & 0x10 != 0 => {
                hit("delete partition move")
            }
            (RM_HEAP_ID, heap::LOCK) if md.len() > 6 && md[6] & 0x01 != 0 => hit("lock multixact"),
            (RM_HEAP_ID, heap::INSERT) if md.len() > 2 && md[2] & 0x04 != 0 => {
                hit("speculative insert")
            }
            (RM_HEAP_ID, heap::TRUNCATE) => hit("heap truncate"),
            (RM_HEAP2_ID, heap2::NEW_CID) => hit("new cid"),
            (RM_HEAP2_ID, heap2::MULTI_INSERT) if !md.is_empty() && md[0] & 0x20 != 0 => {
                hit("copy freeze")
            }
            _ => {}
        }
    }
    f
}

fn assert_features(f: &BTreeMap<&'static str, usize>, wanted: &[&str]) {
    for w in wanted {
        assert!(
            f.get(w).copied().unwrap_or(0) > 0,
            "workload produced no {w:?}: {f:?}"
        );
    }
}

/// Starts a cluster, switches to a fresh segment and checkpoints (so every
/// page touched afterwards gets a full-page image first), runs `work`, stops
/// the server and verifies the WAL written since.
fn run_and_verify(
    checksums: bool,
    conf: &str,
    work: impl FnOnce(&Cluster),
) -> (Report, BTreeMap<&'static str, usize>) {
    let mut c = Cluster::start(checksums, conf);
    c.sql("SELECT pg_switch_wal()");
    c.sql("CHECKPOINT");
    let start = c.current_lsn();
    work(&c);
    c.stop();
    let opts = VerifyOptions {
        start: Some(start),
        max_listed: 50,
        ..Default::default()
    };
    let report = verify_wal_dir_with(&c.data.join("pg_wal"), &opts).expect("verify");
    for m in &report.mismatches {
        eprintln!("{m}");
    }
    eprintln!(
        "verified {}..{:?}: skipped (no base) {}, VM bitmap mismatches {}",
        start, report.last_lsn, report.skipped_no_base, report.vm_bitmap_mismatched
    );
    eprintln!("{}", report.to_json());
    let features = wal_features(&c.data.join("pg_wal"), start);
    eprintln!("WAL features: {features:?}");
    (report, features)
}

fn heap_workload(c: &Cluster) {
    let copyfile = c.tmp.path().join("copy.data");
    c.script(
        HEAP_WORKLOAD,
        &[
            ("sock", c.sock.display().to_string()),
            ("copyfile", copyfile.display().to_string()),
        ],
    );
}

fn assert_clean(report: &Report, must_match: &[&str]) {
    assert_eq!(report.wal_error, None, "WAL reading stopped on an error");
    assert_eq!(
        report.mismatched, 0,
        "{} mismatched blocks; first: {:#?}",
        report.mismatched, report.mismatches
    );
    assert_eq!(
        report.vm_bitmap_mismatched, 0,
        "VM bitmaps differ: {:#?}",
        report.mismatches
    );
    let missing: Vec<&str> = must_match
        .iter()
        .copied()
        .filter(|n| report.matched_of(n) == 0)
        .collect();
    assert!(
        missing.is_empty(),
        "never matched: {missing:?}; by record: {:#?}",
        report.by_record
    );
    // Only index AMs (later phases) may be unsupported.
    for (name, c) in &report.by_record {
        if c.unsupported > 0 {
            assert!(
                ["Btree/", "Hash/", "Gin/", "Gist/", "SPGist/", "BRIN/", "Generic/"]
                    .iter()
                    .any(|p| name.starts_with(p)),
                "{name} unsupported"
            );
        }
    }
}

const MUST_MATCH: &[&str] = &[
    "Heap/INSERT",
    "Heap/UPDATE",
    "Heap/HOT_UPDATE",
    "Heap/DELETE",
    "Heap/LOCK",
    "Heap2/PRUNE",
    "Heap2/VACUUM",
    "Heap2/FREEZE_PAGE",
    "Heap2/VISIBLE",
    "Heap2/MULTI_INSERT",
    "Sequence/LOG",
];

#[test]
fn heap_workload_checksums_replica() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(
        true,
        "wal_level = replica\nwal_compression = lz4",
        heap_workload,
    );
    assert_features(
        &features,
        &[
            "vm clear implied",
            "update prefix/suffix",
            "update across pages",
            "delete partition move",
            "lock multixact",
            "speculative insert",
            "copy freeze",
            "vm truncate",
        ],
    );
    let mut must = MUST_MATCH.to_vec();
    must.extend([
        "Heap/INSERT+INIT",
        "Heap2/MULTI_INSERT+INIT",
        "Heap/HEAP_CONFIRM",
        "Heap/INPLACE",
        "Heap2/LOCK_UPDATED",
    ]);
    assert_clean(&report, &must);
}

#[test]
fn heap_workload_logical_no_checksums() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(false, "wal_level = logical", heap_workload);
    assert_features(
        &features,
        &[
            "update old tuple logged",
            "heap truncate",
            "new cid",
            "vm clear implied",
        ],
    );
    assert_clean(&report, MUST_MATCH);
}

/// pgbench for a while; opt-in (PG_REDO_FULL=1) because it is slow.
#[test]
fn pgbench_full() {
    if std::env::var("PG_REDO_FULL").as_deref() != Ok("1") || !pg_available() {
        return;
    }
    let (report, _) = run_and_verify(true, "wal_level = replica", |c| {
        c.pgbench(&["-i", "-s", "5", "-q"]);
        c.pgbench(&["-c", "4", "-j", "2", "-T", "30"]);
        c.sql("VACUUM");
    });
    assert_clean(
        &report,
        &[
            "Heap/INSERT",
            "Heap/HOT_UPDATE",
            "Heap2/PRUNE",
            "Heap2/VISIBLE",
        ],
    );
}
