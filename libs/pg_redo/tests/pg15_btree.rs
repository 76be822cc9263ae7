//! Conformance of the native B-tree redo against a real PostgreSQL 15.
//!
//! Each test runs the btree workload (`test_runner/redo_workloads/btree.sql`)
//! through psql on a cluster with `wal_consistency_checking = 'all'` (see
//! [`pgcluster`]) and verifies its WAL: every Btree block must match
//! PostgreSQL's own image after `btree_mask`, and every record type that
//! changes a page must have been matched at least once. REUSE_PAGE has no
//! block reference (a hot-standby conflict only) and is checked through the
//! WAL scan. Variants: data checksums with lz4 WAL compression, and no
//! checksums.

mod pgcluster;

use std::path::Path;

use pgcluster::{
    assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Cluster, Features,
};
use postgres_ffi::rmgr::RM_BTREE_ID;
use postgres_ffi::v15::info::btree;
use postgres_ffi::Lsn;

const BTREE_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/btree.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const OTHER_AMS: &[&str] = &[];

const MUST_MATCH: &[&str] = &[
    "Btree/INSERT_LEAF",
    "Btree/INSERT_UPPER",
    "Btree/INSERT_META",
    "Btree/SPLIT_L",
    "Btree/SPLIT_R",
    "Btree/INSERT_POST",
    "Btree/DEDUP",
    "Btree/DELETE",
    "Btree/VACUUM",
    "Btree/MARK_PAGE_HALFDEAD",
    "Btree/UNLINK_PAGE",
    "Btree/UNLINK_PAGE_META",
    "Btree/NEWROOT",
    "Btree/META_CLEANUP",
];

const FEATURES: &[&str] = &[
    "reuse page",
    "vacuum with posting updates",
    "split of a posting list",
    "internal split",
];

fn btree_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        if rec.rmid() != RM_BTREE_ID {
            return;
        }
        let md = &rec.main_data();
        let u16_at = |at: usize| md.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        match rec.info() & 0xF0 {
            btree::REUSE_PAGE => hit("reuse page"),
            btree::VACUUM if u16_at(2).is_some_and(|n| n > 0) => hit("vacuum with posting updates"),
            btree::DELETE if u16_at(6).is_some_and(|n| n > 0) => hit("delete with posting updates"),
            btree::SPLIT_L | btree::SPLIT_R => {
                if u16_at(8).is_some_and(|p| p > 0) {
                    hit("split of a posting list");
                }
                if md.get(0..4).is_some_and(|l| l != [0, 0, 0, 0]) {
                    hit("internal split");
                }
            }
            _ => {}
        }
    });
    f
}

fn btree_workload(c: &Cluster) {
    c.script(BTREE_WORKLOAD, &[]);
}

#[test]
fn btree_workload_checksums_lz4() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(
        true,
        "wal_level = replica\nwal_compression = lz4",
        btree_workload,
        btree_features,
    );
    assert_features(&features, FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}

#[test]
fn btree_workload_no_checksums() {
    if !pg_available() {
        return;
    }
    let (report, features) =
        run_and_verify(false, "wal_level = replica", btree_workload, btree_features);
    assert_features(&features, FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}
