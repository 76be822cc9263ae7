//! A throwaway PostgreSQL 15 cluster for the redo conformance tests, and the
//! verify-and-assert steps they share.
//!
//! [`Cluster::start`] initialises a cluster in a temporary directory with
//! `wal_consistency_checking = 'all'` and `full_page_writes = on`;
//! [`run_and_verify`] switches to a fresh segment, checkpoints (so every page
//! touched afterwards gets a full-page image first), runs a workload, stops
//! the server and runs [`pg_redo::verify::verify_wal_dir_with`] over its WAL;
//! [`assert_clean`] checks the report. [`wal_scan`] lets a test count the
//! record features its workload is meant to produce.
//!
//! PostgreSQL 15 binaries are expected in /usr/lib/postgresql/15/bin (Debian
//! package `postgresql-15`). Without them the tests fail with instructions;
//! SKIP_PG_TESTS=1 skips them. As root, the server runs as `postgres`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pg_redo::verify::{verify_wal_dir_with, Report, VerifyOptions};
use postgres_ffi::wal::{WalDecoderConfig, WalDirReader, WalRecord, WalSegmentSize};
use postgres_ffi::{Lsn, PgMajorVersion};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub fn pg_available() -> bool {
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

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub sock: PathBuf,
    running: bool,
}

impl Cluster {
    pub fn start(checksums: bool, extra_conf: &str) -> Cluster {
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

    pub fn psql(&self) -> Command {
        let mut c = pg_cmd("psql");
        c.arg("-h")
            .arg(&self.sock)
            .args(["-U", "postgres", "-d", "postgres", "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1"]);
        c
    }

    pub fn sql(&self, sql: &str) -> String {
        let mut c = self.psql();
        c.args(["-c", sql]);
        String::from_utf8(run(c, &format!("psql {sql:?}")).stdout).unwrap()
    }

    /// Runs a script fed on stdin, with psql variables.
    pub fn script(&self, script: &str, vars: &[(&str, String)]) {
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

    pub fn current_lsn(&self) -> Lsn {
        self.sql("SELECT pg_current_wal_insert_lsn()")
            .trim()
            .parse()
            .expect("LSN")
    }

    pub fn pgbench(&self, args: &[&str]) {
        let mut c = pg_cmd("pgbench");
        c.arg("-h")
            .arg(&self.sock)
            .args(["-U", "postgres"])
            .args(args)
            .arg("postgres");
        run(c, "pgbench");
    }

    pub fn stop(&mut self) {
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

/// Calls `f` for every record of the WAL in `pg_wal` from `start` on (the
/// cluster uses 4 MiB segments on timeline 1).
pub fn wal_scan(pg_wal: &Path, start: Lsn, mut f: impl FnMut(&WalRecord)) {
    let seg = WalSegmentSize::new(4 << 20).unwrap();
    let cfg = WalDecoderConfig::new(PgMajorVersion::V15, seg);
    let mut r = WalDirReader::new(pg_wal, 1, seg.segment_start(seg.segno(start)), cfg).unwrap();
    loop {
        match r.next_record() {
            Ok(Some(rec)) if rec.lsn >= start => f(&rec),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                eprintln!("WAL scan stopped: {e}");
                break;
            }
        }
    }
}

/// Feature name → count, as a workload's feature scan collects them.
pub type Features = BTreeMap<&'static str, usize>;

pub fn assert_features(f: &Features, wanted: &[&str]) {
    for w in wanted {
        assert!(
            f.get(w).copied().unwrap_or(0) > 0,
            "workload produced no {w:?}: {f:?}"
        );
    }
}

/// Starts a cluster, switches to a fresh segment and checkpoints (so every
/// page touched afterwards gets a full-page image first), runs `work`, stops
/// the server and verifies the WAL written since; `features` scans that WAL
/// for what the workload should have produced.
pub fn run_and_verify(
    checksums: bool,
    conf: &str,
    work: impl FnOnce(&Cluster),
    features: impl Fn(&Path, Lsn) -> Features,
) -> (Report, Features) {
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
    let features = features(&c.data.join("pg_wal"), start);
    eprintln!("WAL features: {features:?}");
    (report, features)
}

/// No WAL error, no mismatch, every record type of `must_match` matched at
/// least once, and nothing unsupported except record names starting with one
/// of `may_be_unsupported` (rmgrs whose redo is not written yet).
pub fn assert_clean(report: &Report, must_match: &[&str], may_be_unsupported: &[&str]) {
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
    for (name, c) in &report.by_record {
        if c.unsupported > 0 {
            assert!(
                may_be_unsupported.iter().any(|p| name.starts_with(p)),
                "{name} unsupported"
            );
        }
    }
}
