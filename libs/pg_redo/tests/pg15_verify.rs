//! Conformance of the native heap redo against a real PostgreSQL 15.
//!
//! Each test runs the heap workload (`test_runner/redo_workloads/heap.sql`)
//! through psql on a cluster with `wal_consistency_checking = 'all'` (see
//! [`pgcluster`]) and verifies its WAL: every Heap/Heap2/Sequence block must
//! match PostgreSQL's own image after masking, and each main record type
//! must have been matched. Variants: data checksums with wal_level = replica
//! (prefix/suffix-compressed updates), and no checksums with wal_level =
//! logical (old-tuple logging, NEW_CID, Heap/TRUNCATE). `PG_REDO_FULL=1` adds
//! a pgbench run.

mod pgcluster;

use std::path::Path;

use pgcluster::{
    assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Cluster, Features,
};
use postgres_ffi::rmgr::{RM_HEAP2_ID, RM_HEAP_ID};
use postgres_ffi::v15::info::{heap, heap2};
use postgres_ffi::Lsn;

const HEAP_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/heap.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const INDEX_AMS: &[&str] = &[];

/// Counts record features in the WAL from `start` that the workload is meant
/// to produce, so the test notices when a code path stops being exercised.
fn heap_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        let md = &rec.main_data();
        let info = rec.info() & 0xF0;
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        if !pg_redo::implied_vm_clears(rec)
            .unwrap_or_default()
            .is_empty()
        {
            hit("vm clear implied");
        }
        if pg_redo::implied_vm_truncate(rec).is_some_and(|t| t.partial_page.is_some()) {
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
    });
    f
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
        heap_features,
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
    assert_clean(&report, &must, INDEX_AMS);
}

#[test]
fn heap_workload_logical_no_checksums() {
    if !pg_available() {
        return;
    }
    let (report, features) =
        run_and_verify(false, "wal_level = logical", heap_workload, heap_features);
    assert_features(
        &features,
        &[
            "update old tuple logged",
            "heap truncate",
            "new cid",
            "vm clear implied",
        ],
    );
    assert_clean(&report, MUST_MATCH, INDEX_AMS);
}

/// pgbench for a while; opt-in (PG_REDO_FULL=1) because it is slow.
#[test]
fn pgbench_full() {
    if std::env::var("PG_REDO_FULL").as_deref() != Ok("1") || !pg_available() {
        return;
    }
    let (report, _) = run_and_verify(
        true,
        "wal_level = replica",
        |c| {
            c.pgbench(&["-i", "-s", "5", "-q"]);
            c.pgbench(&["-c", "4", "-j", "2", "-T", "30"]);
            c.sql("VACUUM");
        },
        |_, _| Features::new(),
    );
    assert_clean(
        &report,
        &[
            "Heap/INSERT",
            "Heap/HOT_UPDATE",
            "Heap2/PRUNE",
            "Heap2/VISIBLE",
        ],
        INDEX_AMS,
    );
}
