//! Conformance of the native Hash index redo against a real PostgreSQL 15.
//!
//! Each test runs the hash workload (`test_runner/redo_workloads/hash.sql`)
//! through psql on a cluster with `wal_consistency_checking = 'all'` (see
//! [`pgcluster`]) and verifies its WAL: every Hash block must match
//! PostgreSQL's own image after `hash_mask`, and every record type SQL can
//! produce must have been matched at least once. SPLIT_PAGE always carries
//! a full-page image to restore (never a verification-only one), so it is
//! checked through the feature scan instead. Variants: data checksums with
//! lz4 WAL compression, and no checksums.
//!
//! Counted but not required: SQUEEZE_PAGE with a next page (the freed page
//! is always the last of its chain unless an insert races the squeeze) and
//! SPLIT_COMPLETE on restored images (it follows SPLIT_ALLOCATE_PAGE within
//! the same checkpoint cycle unless a checkpoint races the split); the
//! module's unit tests build both by hand.

mod pgcluster;

use std::path::Path;

use pgcluster::{
    assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Cluster, Features,
};
use postgres_ffi::rmgr::RM_HASH_ID;
use postgres_ffi::v15::info::hash;
use postgres_ffi::Lsn;

const HASH_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/hash.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const OTHER_AMS: &[&str] = &[];

const MUST_MATCH: &[&str] = &[
    "Hash/INIT_META_PAGE",
    "Hash/INIT_BITMAP_PAGE",
    "Hash/INSERT",
    "Hash/ADD_OVFL_PAGE",
    "Hash/SPLIT_ALLOCATE_PAGE",
    "Hash/SPLIT_COMPLETE",
    "Hash/MOVE_PAGE_CONTENTS",
    "Hash/SQUEEZE_PAGE",
    "Hash/DELETE",
    "Hash/SPLIT_CLEANUP",
    "Hash/UPDATE_META_PAGE",
    "Hash/VACUUM_ONE_PAGE",
];

/// Record variants the workload is meant to produce.
const FEATURES: &[&str] = &[
    "split page",
    "split page restored",
    "split meta masks",
    "split meta splitpoint",
    "ovfl new page",
    "ovfl reused page",
    "init meta on init fork",
    "init meta multi-phase",
    "squeeze prev is write page",
    "squeeze prev is other page",
    "squeeze meta",
    "squeeze moves tuples",
    "move into primary bucket",
    "move into overflow page",
    "delete clears dead marking",
    "delete on overflow page",
    "split allocate old restored",
];

fn hash_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        if rec.rmid() != RM_HASH_ID {
            return;
        }
        let md = &rec.main_data();
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        let restored = |id: u8| rec.block(id).is_some_and(|b| b.apply_image());
        match rec.info() & 0xF0 {
            hash::SPLIT_PAGE => {
                hit("split page");
                if restored(0) {
                    hit("split page restored");
                }
            }
            hash::SPLIT_ALLOCATE_PAGE if md.len() >= 9 => {
                if md[8] & 1 != 0 {
                    hit("split meta masks");
                }
                if md[8] & 2 != 0 {
                    hit("split meta splitpoint");
                }
                if restored(0) {
                    hit("split allocate old restored");
                }
            }
            hash::SPLIT_COMPLETE if restored(0) || restored(1) => hit("split complete restored"),
            hash::ADD_OVFL_PAGE if md.len() >= 3 => {
                hit(if md[2] != 0 {
                    "ovfl reused page"
                } else {
                    "ovfl new page"
                });
            }
            hash::INIT_META_PAGE if md.len() >= 14 => {
                if rec.block(0).is_some_and(|b| b.forknum == 3) {
                    hit("init meta on init fork");
                }
                let tuples = f64::from_le_bytes(md[0..8].try_into().unwrap());
                let ffactor = u16::from_le_bytes([md[12], md[13]]);
                if tuples / ffactor as f64 > 512.0 {
                    hit("init meta multi-phase");
                }
            }
            hash::SQUEEZE_PAGE if md.len() >= 12 => {
                if md[11] != 0 {
                    hit("squeeze prev is write page");
                } else if rec.block(3).is_some() {
                    hit("squeeze prev is other page");
                }
                if rec.block(4).is_some() {
                    hit("squeeze next page");
                }
                if rec.block(6).is_some() {
                    hit("squeeze meta");
                }
                if md[8] != 0 || md[9] != 0 {
                    hit("squeeze moves tuples");
                }
            }
            hash::MOVE_PAGE_CONTENTS if md.len() >= 3 => hit(if md[2] != 0 {
                "move into primary bucket"
            } else {
                "move into overflow page"
            }),
            hash::DELETE if md.len() >= 2 => {
                if md[0] != 0 {
                    hit("delete clears dead marking");
                }
                if md[1] == 0 {
                    hit("delete on overflow page");
                }
            }
            _ => {}
        }
    });
    f
}

fn hash_workload(c: &Cluster) {
    c.script(HASH_WORKLOAD, &[]);
}

#[test]
fn hash_workload_checksums_lz4() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(
        true,
        "wal_level = replica\nwal_compression = lz4",
        hash_workload,
        hash_features,
    );
    assert_features(&features, FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}

#[test]
fn hash_workload_no_checksums() {
    if !pg_available() {
        return;
    }
    let (report, features) =
        run_and_verify(false, "wal_level = replica", hash_workload, hash_features);
    assert_features(&features, FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}
