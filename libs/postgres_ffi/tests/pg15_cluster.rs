//! Conformance against a real PostgreSQL 15 cluster.
//!
//! Each test runs `initdb` into a temporary directory, starts the server on a
//! private Unix socket, runs a workload that exercises many record types
//! (pgbench, index AMs, FPIs with pglz/lz4/zstd compression, a record
//! spanning segments, XLOG SWITCH, 2PC, multixacts, VACUUM FULL of a mapped
//! catalog, CREATE DATABASE), stops it cleanly, and then checks this crate
//! against PostgreSQL's own tools and files:
//!
//! - every record our decoder yields from `pg_wal` matches `pg_waldump -b`
//!   (start LSN, prev, xid, rmgr and record type names, rec/tot lengths,
//!   block references with rel/fork/blk and image details), in the same
//!   order, and the WAL ends at the same place;
//! - every full-page image restores to a sane page;
//! - `pg_control` decodes to what `pg_controldata` prints and re-encodes
//!   byte for byte; its checkpoint equals the last checkpoint record's;
//! - every relation file path parses and re-formats, and every page on disk
//!   passes the checksum (clusters are initialised with data checksums);
//! - relmapper files parse and re-serialise byte for byte;
//! - CLOG, multixact and two-phase files agree with the WAL.
//!
//! PostgreSQL 15 binaries are expected in /usr/lib/postgresql/15/bin (the
//! Debian package `postgresql-15`). Without them the tests fail; set
//! SKIP_PG_TESTS=1 to skip them deliberately. When run as root, the server runs as the
//! `postgres` user (initdb refuses root).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use postgres_ffi::page::verify_page;
use postgres_ffi::relfile::parse_relation_path;
use postgres_ffi::relmap::RelMapFile;
use postgres_ffi::rmgr::{record_type_name, rmgr_name, RM_MULTIXACT_ID, RM_XACT_ID, RM_XLOG_ID};
use postgres_ffi::slru::{clog, multixact_members, multixact_offsets, SlruKind};
use postgres_ffi::twophase;
use postgres_ffi::v15::controlfile::{wal_level_name, CheckPoint, ControlFileData};
use postgres_ffi::v15::info;
use postgres_ffi::wal::{
    ImageCompression, WalDecodeError, WalDecoderConfig, WalDirError, WalDirReader, WalRecord,
    WalSegmentSize, WalStreamDecoder,
};
use postgres_ffi::{Lsn, PgMajorVersion, BLCKSZ, RELSEG_SIZE};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const V: PgMajorVersion = PgMajorVersion::V15;

/// None = skip (SKIP_PG_TESTS=1); panics with instructions if the binaries
/// are missing otherwise.
fn pg_available() -> Option<()> {
    if std::env::var("SKIP_PG_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIP_PG_TESTS=1: skipping the PostgreSQL 15 conformance test");
        return None;
    }
    if Path::new(PG_BIN).join("postgres").exists() {
        return Some(());
    }
    panic!(
        "PostgreSQL 15 binaries not found in {PG_BIN}. Install them with \
         `apt-get install -y postgresql-15`, or set SKIP_PG_TESTS=1 to skip these tests."
    );
}

fn is_root() -> bool {
    // Effective uid of this process, from /proc (no libc dependency needed).
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A command for a PostgreSQL binary, run as `postgres` when we are root.
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

/// A running (then stopped) cluster in a temporary directory.
struct Cluster {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    sock: PathBuf,
    running: bool,
}

impl Cluster {
    fn init(wal_segsize_mb: u32, extra_conf: &str) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("pgffi")
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
            .args(["-U", "postgres", "--data-checksums", "-A", "trust"])
            .arg(format!("--wal-segsize={wal_segsize_mb}"));
        run(c, "initdb");
        let conf = format!(
            "listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             wal_level = logical\n\
             max_prepared_transactions = 5\n\
             track_commit_timestamp = on\n\
             wal_keep_size = '4GB'\n\
             max_wal_size = '4GB'\n\
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
            _tmp: tmp,
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

    /// Runs SQL through psql (stdin script), returns its stdout.
    fn sql(&self, script: &str) -> String {
        let mut c = pg_cmd("psql");
        c.arg("-h")
            .arg(&self.sock)
            .args(["-U", "postgres", "-d", "postgres", "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", script]);
        String::from_utf8(run(c, &format!("psql {script:?}")).stdout).unwrap()
    }

    /// Value printed as `KEY=value` by the script.
    fn sql_value(&self, script: &str, key: &str) -> String {
        let out = self.sql(script);
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in output of {script:?}: {out:?}"))
            .trim()
            .to_owned()
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

// ---------------------------------------------------------------------------
// pg_waldump output

#[derive(Debug, Default, Clone)]
struct DumpBlock {
    id: u8,
    rel: String,
    fork: String,
    blk: u32,
    /// None: no image; Some(apply).
    fpw: Option<bool>,
    hole_offset: u16,
    hole_length: u16,
    method: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct DumpRecord {
    rmgr: String,
    rec_len: u32,
    tot_len: u32,
    xid: u32,
    lsn: Lsn,
    prev: Lsn,
    type_name: String,
    blocks: Vec<DumpBlock>,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    line[at + key.len()..].trim_start()
}

fn upto(s: &str, stop: char) -> &str {
    s.split(stop).next().unwrap_or_default()
}

fn parse_dump(stdout: &str) -> Vec<DumpRecord> {
    let mut out: Vec<DumpRecord> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("rmgr: ") {
            let rmgr = upto(rest, ' ').to_owned();
            let lens = upto(field(line, "len (rec/tot):"), ',');
            let (rec, tot) = lens.split_once('/').unwrap();
            let desc = field(line, "desc:");
            let type_name = if desc.starts_with("UNKNOWN") {
                upto(desc, ')').to_owned() + ")"
            } else {
                upto(desc, ' ').to_owned()
            };
            out.push(DumpRecord {
                rmgr,
                rec_len: rec.trim().parse().unwrap(),
                tot_len: tot.trim().parse().unwrap(),
                xid: upto(field(line, "tx:"), ',').trim().parse().unwrap(),
                lsn: upto(field(line, "lsn:"), ',').parse().unwrap(),
                prev: upto(field(line, "prev "), ',').parse().unwrap(),
                type_name,
                blocks: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("\tblkref #") {
            // blkref #0: rel 1663/5/16384 fork main blk 0 (FPW); hole: offset: 28, length: 308, compression saved: 1, method: lz4
            let id: u8 = upto(rest, ':').parse().unwrap();
            let mut b = DumpBlock {
                id,
                rel: upto(field(rest, "rel "), ' ').to_owned(),
                fork: upto(field(rest, "fork "), ' ').to_owned(),
                blk: upto(field(rest, "blk "), ' ').trim().parse().unwrap(),
                ..Default::default()
            };
            if rest.contains("(FPW") {
                b.fpw = Some(!rest.contains("for WAL verification"));
                b.hole_offset = upto(field(rest, "offset: "), ',').parse().unwrap();
                b.hole_length = upto(field(rest, "length: "), ',').trim().parse().unwrap();
                if rest.contains("method: ") {
                    b.method = Some(field(rest, "method: ").trim().to_owned());
                }
            }
            out.last_mut()
                .expect("blkref line before any record")
                .blocks
                .push(b);
        }
    }
    out
}

fn waldump(cluster: &Cluster, segments: &[String]) -> (Vec<DumpRecord>, String) {
    let mut c = pg_cmd("pg_waldump");
    // With only a start segment pg_waldump stops at its end; give the last.
    c.arg("-b")
        .arg("-p")
        .arg(cluster.data.join("pg_wal"))
        .arg(&segments[0])
        .arg(&segments[segments.len() - 1]);
    let out = c.output().expect("run pg_waldump");
    // pg_waldump exits non-zero at the end of valid WAL; its stderr says where.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (parse_dump(&stdout), stderr)
}

// ---------------------------------------------------------------------------
// our side

/// Decodes all of pg_wal from the first segment on; returns the records and
/// the error that ended decoding.
fn decode_pg_wal(
    data: &Path,
    seg: WalSegmentSize,
    sysid: u64,
) -> (Vec<String>, Vec<WalRecord>, WalDecodeError) {
    let mut names: Vec<String> = fs::read_dir(data.join("pg_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| postgres_ffi::wal::segment::is_wal_file_name(n))
        .collect();
    names.sort();
    let (tli, first_segno) = seg.parse_file_name(&names[0]).unwrap();
    assert_eq!(tli, 1);
    let cfg = WalDecoderConfig::new(V, seg).with_system_identifier(sysid);
    let mut dec = WalStreamDecoder::new(seg.segment_start(first_segno), cfg).unwrap();
    let mut records = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (_, segno) = seg.parse_file_name(name).unwrap();
        assert_eq!(
            segno,
            first_segno + i as u64,
            "pg_wal has a gap before {name}"
        );
        let bytes = fs::read(data.join("pg_wal").join(name)).unwrap();
        assert_eq!(bytes.len(), seg.bytes() as usize, "{name}");
        // Feed in uneven pieces, as a network stream would arrive.
        for piece in bytes.chunks(50_000) {
            dec.feed(piece);
            loop {
                match dec.next_record() {
                    Ok(Some(r)) => records.push(r),
                    Ok(None) => break,
                    Err(e) => return (names, records, e),
                }
            }
        }
    }
    panic!(
        "pg_wal has no end of valid WAL (decoded {} records)",
        records.len()
    );
}

/// [`WalDirReader`] over the same directory yields the same records and end.
fn check_dir_reader(
    data: &Path,
    seg: WalSegmentSize,
    first: &str,
    expected: &[WalRecord],
    expected_end: &WalDecodeError,
) {
    let (tli, segno) = seg.parse_file_name(first).unwrap();
    let cfg = WalDecoderConfig::new(V, seg);
    let mut r =
        WalDirReader::new(&data.join("pg_wal"), tli, seg.segment_start(segno), cfg).unwrap();
    let mut n = 0;
    loop {
        match r.next_record() {
            Ok(Some(rec)) => {
                assert_eq!(rec, expected[n]);
                n += 1;
            }
            Ok(None) => panic!("WalDirReader found no end of valid WAL"),
            Err(WalDirError::Decode(e)) => {
                assert_eq!(&e, expected_end);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(n, expected.len());
}

fn compression_name(c: ImageCompression) -> Option<&'static str> {
    match c {
        ImageCompression::None => None,
        other => Some(other.name()),
    }
}

/// Compares our records with pg_waldump's, one by one.
fn compare_with_waldump(ours: &[WalRecord], dump: &[DumpRecord]) {
    assert!(
        dump.len() > 100,
        "pg_waldump printed only {} records",
        dump.len()
    );
    for (i, (r, d)) in ours.iter().zip(dump).enumerate() {
        let ctx = format!("record #{i} at {} ({d:?})", r.lsn);
        assert_eq!(r.lsn, d.lsn, "{ctx}");
        assert_eq!(r.header.prev, d.prev, "{ctx}");
        assert_eq!(r.xid(), d.xid, "{ctx}");
        assert_eq!(rmgr_name(r.rmid()).unwrap(), d.rmgr, "{ctx}");
        let our_type = record_type_name(V, r.rmid(), r.info())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "UNKNOWN ({:x})",
                    r.info() & !postgres_ffi::wal::XLR_INFO_MASK
                )
            });
        assert_eq!(our_type, d.type_name, "{ctx}");
        assert_eq!(r.tot_len(), d.tot_len, "{ctx}");
        assert_eq!(r.tot_len() - r.fpi_len(), d.rec_len, "{ctx}");
        assert_eq!(r.blocks.len(), d.blocks.len(), "{ctx}");
        for (b, db) in r.blocks.iter().zip(&d.blocks) {
            assert_eq!(b.block_id, db.id, "{ctx}");
            assert_eq!(b.rnode.to_string(), db.rel, "{ctx}");
            assert_eq!(b.fork().unwrap().name(), db.fork, "{ctx}");
            assert_eq!(b.blkno, db.blk, "{ctx}");
            assert_eq!(b.image.as_ref().map(|i| i.apply), db.fpw, "{ctx}");
            if let Some(img) = &b.image {
                assert_eq!(img.hole_offset, db.hole_offset, "{ctx}");
                assert_eq!(img.hole_length, db.hole_length, "{ctx}");
                assert_eq!(
                    compression_name(img.compression),
                    db.method.as_deref(),
                    "{ctx}"
                );
            }
        }
    }
    assert_eq!(
        ours.len(),
        dump.len(),
        "record counts differ; last ours {:?}, last pg_waldump {:?}",
        ours.last().map(|r| r.lsn),
        dump.last().map(|d| d.lsn)
    );
}

/// "invalid record length at X/Y" in pg_waldump's final error, if present.
fn waldump_end(stderr: &str) -> Option<Lsn> {
    let at = stderr.find("invalid record length at ")?;
    let rest = &stderr[at + "invalid record length at ".len()..];
    upto(rest, ':').parse().ok()
}

/// Restores every image and checks it looks like a page written before the
/// record (sane header, LSN not after the record).
fn check_images(records: &[WalRecord]) -> BTreeMap<&'static str, usize> {
    let mut by_method = BTreeMap::new();
    for r in records {
        for b in &r.blocks {
            let Some(img) = &b.image else { continue };
            let page = r
                .restore_image(b.block_id)
                .unwrap_or_else(|e| panic!("{e}"));
            let hdr = postgres_ffi::page::PageHeaderData::read(&page[..]).unwrap();
            if !hdr.is_new() {
                assert!(
                    hdr.is_sane(),
                    "image at {} block {}: {hdr:?}",
                    r.lsn,
                    b.block_id
                );
                assert!(
                    hdr.pd_lsn <= r.lsn,
                    "image at {} has LSN {}",
                    r.lsn,
                    hdr.pd_lsn
                );
            }
            *by_method.entry(img.compression.name()).or_insert(0) += 1;
        }
    }
    by_method
}

// ---------------------------------------------------------------------------
// pg_controldata

fn controldata(data: &Path) -> BTreeMap<String, String> {
    let mut c = pg_cmd("pg_controldata");
    c.arg("-D").arg(data);
    let out = String::from_utf8(run(c, "pg_controldata").stdout).unwrap();
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn check_control_file(data: &Path) -> ControlFileData {
    let bytes = fs::read(data.join("global/pg_control")).unwrap();
    let cd = ControlFileData::decode(&bytes).expect("decode pg_control");
    assert_eq!(
        cd.encode_file(),
        bytes,
        "pg_control does not re-encode byte for byte"
    );

    let m = controldata(data);
    let get = |k: &str| {
        m.get(k)
            .unwrap_or_else(|| panic!("pg_controldata has no {k:?}"))
            .as_str()
    };
    let cp = &cd.check_point_copy;
    let checks: Vec<(&str, String)> = vec![
        (
            "pg_control version number",
            cd.pg_control_version.to_string(),
        ),
        ("Catalog version number", cd.catalog_version_no.to_string()),
        (
            "Database system identifier",
            cd.system_identifier.to_string(),
        ),
        ("Database cluster state", cd.state.description().to_owned()),
        ("Latest checkpoint location", cd.check_point.to_string()),
        ("Latest checkpoint's REDO location", cp.redo.to_string()),
        (
            "Latest checkpoint's TimeLineID",
            cp.this_timeline_id.to_string(),
        ),
        (
            "Latest checkpoint's PrevTimeLineID",
            cp.prev_timeline_id.to_string(),
        ),
        (
            "Latest checkpoint's full_page_writes",
            if cp.full_page_writes { "on" } else { "off" }.to_owned(),
        ),
        ("Latest checkpoint's NextXID", cp.next_xid.to_string()),
        ("Latest checkpoint's NextOID", cp.next_oid.to_string()),
        (
            "Latest checkpoint's NextMultiXactId",
            cp.next_multi.to_string(),
        ),
        (
            "Latest checkpoint's NextMultiOffset",
            cp.next_multi_offset.to_string(),
        ),
        ("Latest checkpoint's oldestXID", cp.oldest_xid.to_string()),
        (
            "Latest checkpoint's oldestXID's DB",
            cp.oldest_xid_db.to_string(),
        ),
        (
            "Latest checkpoint's oldestActiveXID",
            cp.oldest_active_xid.to_string(),
        ),
        (
            "Latest checkpoint's oldestMultiXid",
            cp.oldest_multi.to_string(),
        ),
        (
            "Latest checkpoint's oldestMulti's DB",
            cp.oldest_multi_db.to_string(),
        ),
        (
            "Latest checkpoint's oldestCommitTsXid",
            cp.oldest_commit_ts_xid.to_string(),
        ),
        (
            "Latest checkpoint's newestCommitTsXid",
            cp.newest_commit_ts_xid.to_string(),
        ),
        (
            "Fake LSN counter for unlogged rels",
            cd.unlogged_lsn.to_string(),
        ),
        (
            "Minimum recovery ending location",
            cd.min_recovery_point.to_string(),
        ),
        (
            "Min recovery ending loc's timeline",
            cd.min_recovery_point_tli.to_string(),
        ),
        ("Backup start location", cd.backup_start_point.to_string()),
        ("Backup end location", cd.backup_end_point.to_string()),
        (
            "End-of-backup record required",
            if cd.backup_end_required { "yes" } else { "no" }.to_owned(),
        ),
        ("wal_level setting", wal_level_name(cd.wal_level).to_owned()),
        (
            "wal_log_hints setting",
            if cd.wal_log_hints { "on" } else { "off" }.to_owned(),
        ),
        ("max_connections setting", cd.max_connections.to_string()),
        (
            "max_worker_processes setting",
            cd.max_worker_processes.to_string(),
        ),
        ("max_wal_senders setting", cd.max_wal_senders.to_string()),
        (
            "max_prepared_xacts setting",
            cd.max_prepared_xacts.to_string(),
        ),
        (
            "max_locks_per_xact setting",
            cd.max_locks_per_xact.to_string(),
        ),
        (
            "track_commit_timestamp setting",
            if cd.track_commit_timestamp {
                "on"
            } else {
                "off"
            }
            .to_owned(),
        ),
        ("Maximum data alignment", cd.max_align.to_string()),
        ("Database block size", cd.blcksz.to_string()),
        (
            "Blocks per segment of large relation",
            cd.relseg_size.to_string(),
        ),
        ("WAL block size", cd.xlog_blcksz.to_string()),
        ("Bytes per WAL segment", cd.xlog_seg_size.to_string()),
        (
            "Maximum length of identifiers",
            cd.name_data_len.to_string(),
        ),
        ("Maximum columns in an index", cd.index_max_keys.to_string()),
        (
            "Maximum size of a TOAST chunk",
            cd.toast_max_chunk_size.to_string(),
        ),
        ("Size of a large-object chunk", cd.loblksize.to_string()),
        (
            "Float8 argument passing",
            if cd.float8_by_val {
                "by value"
            } else {
                "by reference"
            }
            .to_owned(),
        ),
        (
            "Data page checksum version",
            cd.data_checksum_version.to_string(),
        ),
        (
            "Mock authentication nonce",
            cd.mock_authentication_nonce
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ),
    ];
    for (key, ours) in checks {
        // pg_controldata pads LSNs to 8 hex digits after the slash.
        let theirs = get(key);
        let normalized = theirs
            .parse::<Lsn>()
            .map(|l| l.to_string())
            .unwrap_or_else(|_| theirs.to_owned());
        assert_eq!(ours, normalized, "pg_controldata {key:?}");
    }
    assert_eq!(cd.float_format, 1234567.0);
    assert!(cd.data_checksums_enabled());
    cd
}

// ---------------------------------------------------------------------------
// data directory files

/// Every relation file parses and round-trips its path, and every page on
/// it passes verification with checksums. Returns the number of pages.
fn check_relation_files(data: &Path) -> usize {
    let mut files = Vec::new();
    for top in ["global", "base"] {
        let mut stack = vec![data.join(top)];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    files.push(e.path());
                }
            }
        }
    }
    let mut pages = 0;
    let mut relation_files = 0;
    for path in files {
        let rel_path = path
            .strip_prefix(data)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let name = path.file_name().unwrap().to_str().unwrap();
        let parsed = match parse_relation_path(V, &rel_path) {
            Ok(p) => p,
            Err(e) => {
                assert!(
                    [
                        "pg_filenode.map",
                        "PG_VERSION",
                        "pg_internal.init",
                        "pg_control"
                    ]
                    .contains(&name)
                        || name.starts_with("pg_internal.init"),
                    "unexpected non-relation file {rel_path}: {e}"
                );
                continue;
            }
        };
        relation_files += 1;
        assert_eq!(parsed.path(V), rel_path);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() % BLCKSZ, 0, "{rel_path}");
        for (i, chunk) in bytes.chunks_exact(BLCKSZ).enumerate() {
            let page: &[u8; BLCKSZ] = chunk.try_into().unwrap();
            let blkno = parsed.segno * RELSEG_SIZE + i as u32;
            verify_page(page, blkno, true).unwrap_or_else(|e| panic!("{rel_path}: {e}"));
            pages += 1;
        }
    }
    assert!(relation_files > 100, "only {relation_files} relation files");
    pages
}

fn check_relmaps(data: &Path) {
    let mut maps = vec![data.join("global/pg_filenode.map")];
    for e in fs::read_dir(data.join("base")).unwrap() {
        let e = e.unwrap();
        // Database directories only (not pgsql_tmp).
        if e.file_name().to_str().unwrap().parse::<u32>().is_ok() {
            maps.push(e.path().join("pg_filenode.map"));
        }
    }
    for p in maps {
        let bytes = fs::read(&p).unwrap();
        let map = RelMapFile::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(&map.serialize().unwrap()[..], &bytes[..], "{}", p.display());
        if p.starts_with(data.join("base")) {
            // pg_class is a mapped catalog in every database.
            assert!(map.lookup(1259).is_some(), "{}", p.display());
        } else {
            // pg_database is a mapped shared catalog.
            assert!(map.lookup(1262).is_some());
        }
    }
}

fn read_slru_page(data: &Path, kind: SlruKind, pageno: u32) -> [u8; BLCKSZ] {
    let (segno, in_seg) = postgres_ffi::slru::page_to_segment(pageno);
    let path = data.join(postgres_ffi::slru::segment_path(kind, segno));
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = in_seg as usize * BLCKSZ;
    bytes[at..at + BLCKSZ].try_into().unwrap()
}

fn check_clog(data: &Path, xid: u32, expected: clog::XidStatus) {
    let page = read_slru_page(data, SlruKind::Clog, clog::xid_to_page(xid));
    assert_eq!(clog::get_status(&page, xid), expected, "xid {xid}");
}

/// Every MultiXact CREATE_ID record agrees with pg_multixact. Returns how
/// many multixacts were checked.
fn check_multixacts(data: &Path, records: &[WalRecord]) -> usize {
    let mut n = 0;
    for r in records {
        if r.rmid() != RM_MULTIXACT_ID || r.info() & 0xF0 != info::multixact::CREATE_ID {
            continue;
        }
        let d = &r.main_data();
        let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
        let (mid, moff, nmembers) = (u32_at(0), u32_at(4), u32_at(8));
        let page = read_slru_page(
            data,
            SlruKind::MultiXactOffsets,
            multixact_offsets::multi_to_page(mid),
        );
        assert_eq!(
            multixact_offsets::get_offset(&page, mid),
            moff,
            "multixact {mid}"
        );
        for i in 0..nmembers {
            let (xid, status) = (u32_at(12 + 8 * i as usize), u32_at(16 + 8 * i as usize));
            let off = moff + i;
            let page = read_slru_page(
                data,
                SlruKind::MultiXactMembers,
                multixact_members::offset_to_page(off),
            );
            assert_eq!(
                multixact_members::get_member(&page, off),
                (xid, status as u8),
                "multixact {mid} member {i}"
            );
        }
        n += 1;
    }
    n
}

/// The two-phase state file of `xid` is the PREPARE record's body + CRC.
fn check_twophase(data: &Path, records: &[WalRecord], xid: u32) {
    let name = twophase::file_name(V, xid);
    assert_eq!(twophase::parse_file_name(V, &name).unwrap(), xid);
    let file = fs::read(data.join(twophase::file_path(V, xid))).unwrap();
    let body = twophase::verify_state_file(&file).unwrap();
    let prepare = records
        .iter()
        .find(|r| {
            r.rmid() == RM_XACT_ID
                && r.info() & info::xact::OPMASK == info::xact::PREPARE
                && r.xid() == xid
        })
        .expect("PREPARE record");
    assert_eq!(prepare.main_data(), body);
    assert_eq!(twophase::state_file_from_prepare_record(body), file);
}

// ---------------------------------------------------------------------------
// the workload and the tests

struct Xids {
    committed: u32,
    aborted: u32,
    prepared: u32,
}

fn workload(c: &Cluster) -> Xids {
    c.sql("CHECKPOINT");
    c.pgbench_init();
    c.sql("ALTER SYSTEM SET wal_compression = 'lz4'");
    c.sql("SELECT pg_reload_conf()");
    c.sql("CHECKPOINT");
    c.sql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 40 = 0");
    c.sql("ALTER SYSTEM SET wal_compression = 'zstd'");
    c.sql("SELECT pg_reload_conf()");
    c.sql("CHECKPOINT");
    c.sql("UPDATE pgbench_branches SET bbalance = bbalance + 1");
    c.sql("DELETE FROM pgbench_history");
    c.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text, p point, a int[]);
         INSERT INTO t SELECT g, md5(g::text), point(g, g), ARRAY[g, g + 1]
           FROM generate_series(1, 3000) g;
         CREATE INDEX t_hash ON t USING hash (id);
         CREATE INDEX t_gist ON t USING gist (p);
         CREATE INDEX t_gin ON t USING gin (a);
         CREATE INDEX t_brin ON t USING brin (id);
         CREATE INDEX t_spg ON t USING spgist (v);
         CREATE SEQUENCE s; SELECT nextval('s');
         CREATE UNLOGGED TABLE u (id int); INSERT INTO u VALUES (1);",
    );
    c.sql("UPDATE t SET v = v || 'x' WHERE id % 10 = 0");
    c.sql("DELETE FROM t WHERE id % 7 = 0");
    // A record spanning several (1 MiB) segments.
    c.sql("SELECT pg_logical_emit_message(true, 'pgffi', repeat('x', 2500000))");
    c.sql("SELECT pg_switch_wal()");
    c.sql("ALTER SYSTEM SET wal_compression = 'pglz'");
    c.sql("SELECT pg_reload_conf()");
    c.sql("CHECKPOINT");
    c.sql("UPDATE t SET v = 'y' WHERE id % 3 = 0");
    let committed = c
        .sql_value(
            "BEGIN; INSERT INTO t VALUES (100001, 'c'); SELECT 'XID=' || txid_current(); COMMIT;",
            "XID",
        )
        .parse()
        .unwrap();
    let aborted = c
        .sql_value(
            "BEGIN; INSERT INTO t VALUES (100002, 'a'); SELECT 'XID=' || txid_current(); ROLLBACK;",
            "XID",
        )
        .parse()
        .unwrap();
    // A multixact: the row is share-locked by the transaction and then
    // locked for update by a subtransaction.
    c.sql(
        "BEGIN; SELECT id FROM t WHERE id = 1 FOR SHARE; SAVEPOINT s1;
         SELECT id FROM t WHERE id = 1 FOR UPDATE; COMMIT;",
    );
    c.sql("BEGIN; INSERT INTO t VALUES (100003, 'p'); PREPARE TRANSACTION 'p1';");
    c.sql("COMMIT PREPARED 'p1'");
    let prepared = c
        .sql_value(
            "BEGIN; INSERT INTO t VALUES (100004, 'k'); SELECT 'XID=' || txid_current(); PREPARE TRANSACTION 'keep';",
            "XID",
        )
        .parse()
        .unwrap();
    // New relfilenode for a mapped catalog: RelMap UPDATE.
    c.sql("VACUUM FULL pg_class");
    c.sql("CREATE DATABASE db2");
    c.sql("VACUUM (FREEZE) t");
    c.sql("CHECKPOINT");
    Xids {
        committed,
        aborted,
        prepared,
    }
}

fn check_cluster(mut c: Cluster, xids: Option<Xids>) {
    c.stop();
    let cd = check_control_file(&c.data);
    let seg = WalSegmentSize::new(cd.xlog_seg_size).unwrap();

    let (segments, records, end) = decode_pg_wal(&c.data, seg, cd.system_identifier);
    assert!(end.is_end_of_wal(), "decoding stopped on {end}");
    check_dir_reader(&c.data, seg, &segments[0], &records, &end);
    let (dump, stderr) = waldump(&c, &segments);
    compare_with_waldump(&records, &dump);
    if let Some(lsn) = waldump_end(&stderr) {
        assert_eq!(
            end.lsn(),
            lsn,
            "end of WAL differs; pg_waldump said {stderr}"
        );
    }

    // The control file points at the last checkpoint record.
    let ckpt = records
        .iter()
        .find(|r| r.lsn == cd.check_point)
        .expect("checkpoint record");
    assert_eq!(ckpt.rmid(), RM_XLOG_ID);
    assert_eq!(ckpt.info() & 0xF0, info::xlog::CHECKPOINT_SHUTDOWN);
    let cp = CheckPoint::decode(ckpt.main_data()).unwrap();
    assert_eq!(cp, cd.check_point_copy);
    assert_eq!(&cp.encode()[..], ckpt.main_data());

    let images = check_images(&records);
    let pages = check_relation_files(&c.data);
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *names.entry(r.name(V)).or_insert(0) += 1;
    }
    eprintln!(
        "{} records ({} record types) match pg_waldump; images by compression: {images:?}; \
         {pages} pages verified",
        records.len(),
        names.len()
    );
    eprintln!("record types: {names:?}");
    assert!(pages > 1000, "only {pages} pages checked");
    check_relmaps(&c.data);

    if let Some(x) = xids {
        // Segment crossings, switch and compressed images all happened.
        assert!(records.iter().any(|r| r.is_xlog_switch()));
        assert!(
            records
                .iter()
                .any(|r| seg.segno(r.lsn) != seg.segno(Lsn(r.lsn.0 + r.tot_len() as u64))),
            "no record spans a segment boundary"
        );
        for m in ["pglz", "lz4", "zstd", "none"] {
            assert!(
                images.get(m).copied().unwrap_or(0) > 0,
                "no {m} images: {images:?}"
            );
        }
        check_clog(&c.data, x.committed, clog::XidStatus::Committed);
        check_clog(&c.data, x.aborted, clog::XidStatus::Aborted);
        check_clog(&c.data, x.prepared, clog::XidStatus::InProgress);
        assert!(
            check_multixacts(&c.data, &records) > 0,
            "no multixact was created"
        );
        check_twophase(&c.data, &records, x.prepared);
        assert!(records.iter().any(|r| r.name(V) == "RelMap/UPDATE"));
    }
}

#[test]
fn small_segments_checksums_and_compression() {
    if pg_available().is_none() {
        return;
    }
    let c = Cluster::init(1, "");
    let xids = workload(&c);
    check_cluster(c, Some(xids));
}

#[test]
fn default_segment_size() {
    if pg_available().is_none() {
        return;
    }
    let c = Cluster::init(16, "wal_compression = 'lz4'");
    c.sql("CHECKPOINT");
    c.pgbench_init();
    c.sql("UPDATE pgbench_accounts SET abalance = 1 WHERE aid < 500");
    check_cluster(c, None);
}

/// Promotion creates timeline 2: its history file parses, and the new
/// timeline's segments decode (pages switch from timeline 1 to 2) exactly as
/// `pg_waldump -t 2` reads them.
#[test]
fn timeline_switch() {
    if pg_available().is_none() {
        return;
    }
    let mut c = Cluster::init(1, "");
    c.sql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000)");
    c.stop();
    // Restart as a standby with nothing to replay, then promote.
    fs::write(c.data.join("standby.signal"), b"").unwrap();
    let log = c.data.parent().unwrap().join("server2.log");
    let mut cmd = pg_cmd("pg_ctl");
    cmd.arg("-D")
        .arg(&c.data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "start"]);
    run(cmd, "pg_ctl start (standby)");
    c.running = true;
    let mut cmd = pg_cmd("pg_ctl");
    cmd.arg("-D").arg(&c.data).args(["-w", "promote"]);
    run(cmd, "pg_ctl promote");
    c.sql("INSERT INTO t SELECT generate_series(1, 1000); CHECKPOINT");
    c.stop();

    let cd = check_control_file(&c.data);
    assert_eq!(cd.check_point_copy.this_timeline_id, 2);
    let seg = WalSegmentSize::new(cd.xlog_seg_size).unwrap();
    let history = postgres_ffi::wal::timeline::TimelineHistory::parse_bytes(
        &fs::read(
            c.data
                .join("pg_wal")
                .join(postgres_ffi::wal::segment::history_file_name(2)),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(history.entries.len(), 1);
    let switch = history.entries[0].switchpoint;
    assert_eq!(history.entries[0].tli, 1);
    assert_eq!(history.timeline_of(2, Lsn(switch.0 - 1)), 1);
    assert_eq!(history.timeline_of(2, switch), 2);

    // Timeline 2's segments, from the one holding the switch point.
    let mut names: Vec<String> = fs::read_dir(c.data.join("pg_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| postgres_ffi::wal::segment::is_wal_file_name(n) && n.starts_with("00000002"))
        .collect();
    names.sort();
    assert_eq!(names[0], seg.file_name(2, seg.segno(switch)));
    let cfg = WalDecoderConfig::new(V, seg).with_system_identifier(cd.system_identifier);
    let mut r = WalDirReader::new(
        &c.data.join("pg_wal"),
        2,
        seg.segment_start(seg.segno(switch)),
        cfg,
    )
    .unwrap();
    let mut records = Vec::new();
    let end = loop {
        match r.next_record() {
            Ok(Some(rec)) => records.push(rec),
            Ok(None) => panic!("no end of valid WAL on timeline 2"),
            Err(WalDirError::Decode(e)) => break e,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(end.is_end_of_wal(), "{end}");
    let eor = records
        .iter()
        .find(|r| r.name(V) == "XLOG/END_OF_RECOVERY")
        .expect("END_OF_RECOVERY record");
    assert!(eor.lsn >= switch);

    let mut cmd = pg_cmd("pg_waldump");
    cmd.args(["-b", "-t", "2", "-p"])
        .arg(c.data.join("pg_wal"))
        .arg(&names[0])
        .arg(&names[names.len() - 1]);
    let out = cmd.output().expect("run pg_waldump");
    let dump = parse_dump(&String::from_utf8(out.stdout).unwrap());
    compare_with_waldump(&records, &dump);
}
