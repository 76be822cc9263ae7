//! Conformance of the native GiST redo against a real PostgreSQL 15.
//!
//! Runs `test_runner/redo_workloads/gist.sql` on a cluster with
//! `wal_consistency_checking = 'all'` (see [`pgcluster`]) and verifies its
//! WAL: every GiST block must match the primary's image after the GiST
//! comparison mask (`gist_mask`, plus F_TUPLES_DELETED on leaves, which
//! PostgreSQL 15's own check trips over after Gist/DELETE), and every GiST
//! record type that changes pages must have been matched. Once with data
//! checksums and lz4-compressed images, once without checksums. The feature
//! scan checks the paths a plain insert workload would miss: root splits,
//! the left child carried by PAGE_UPDATE and PAGE_SPLIT, VACUUM's delete-only
//! updates and PAGE_REUSE, which has no block to verify. A third, short run
//! at wal_level = minimal produces ASSIGN_LSN (no block either).

mod pgcluster;

use std::path::Path;

use pgcluster::{
    assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Cluster, Features,
};
use postgres_ffi::rmgr::RM_GIST_ID;
use postgres_ffi::v15::info::gist;
use postgres_ffi::Lsn;

const GIST_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/gist.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const OTHER_AMS: &[&str] = &[];

const MUST_MATCH: &[&str] = &[
    "Gist/PAGE_UPDATE",
    "Gist/DELETE",
    "Gist/PAGE_SPLIT",
    "Gist/PAGE_DELETE",
];

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn gist_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        if rec.rmid() != RM_GIST_ID {
            return;
        }
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        let md = &rec.main_data();
        match rec.info() & 0xF0 {
            gist::PAGE_UPDATE => {
                if rec.block(1).is_some() {
                    hit("update with left child");
                }
                if u16_at(md, 0).is_some_and(|d| d > 1) && u16_at(md, 2) == Some(0) {
                    hit("vacuum delete-only update");
                }
            }
            gist::PAGE_SPLIT => {
                if rec.block(1).is_some_and(|b| b.blkno == 0) {
                    hit("root split");
                }
                if rec.block(0).is_some() {
                    hit("split with left child");
                }
                if u16_at(md, 18).is_some_and(|n| n > 2) {
                    hit("split into 3+ pages");
                }
            }
            gist::PAGE_REUSE => hit("page reuse"),
            gist::ASSIGN_LSN => hit("assign lsn"),
            gist::DELETE => hit("delete"),
            _ => {}
        }
    });
    f
}

fn gist_workload(c: &Cluster) {
    c.script(GIST_WORKLOAD, &[]);
}

fn check(checksums: bool, conf: &str) {
    let (report, features) = run_and_verify(checksums, conf, gist_workload, gist_features);
    assert_features(
        &features,
        &[
            "update with left child",
            "vacuum delete-only update",
            "root split",
            "split with left child",
            "page reuse",
            "delete",
        ],
    );
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}

#[test]
fn gist_workload_checksums_lz4() {
    if !pg_available() {
        return;
    }
    check(true, "wal_compression = lz4");
}

#[test]
fn gist_workload_no_checksums() {
    if !pg_available() {
        return;
    }
    check(false, "");
}

/// ASSIGN_LSN exists only at wal_level = minimal, for a permanent index
/// whose changes are not WAL-logged yet; it references no page, so it is
/// only checked to occur and to be supported.
#[test]
fn gist_assign_lsn_wal_level_minimal() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(
        false,
        "wal_level = minimal\nmax_wal_senders = 0",
        |c| c.script(GIST_WORKLOAD, &[("assign_lsn_only", "1".to_string())]),
        gist_features,
    );
    assert_features(&features, &["assign lsn"]);
    assert!(pg_redo::is_supported(RM_GIST_ID, gist::ASSIGN_LSN));
    assert_clean(&report, &[], OTHER_AMS);
}
