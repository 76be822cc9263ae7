//! Conformance of the native BRIN redo against a real PostgreSQL 15.
//!
//! Runs `test_runner/redo_workloads/brin.sql` on a cluster with
//! `wal_consistency_checking = 'all'` (see [`pgcluster`]) and verifies its
//! WAL: every BRIN block must match the primary's image after `brin_mask`,
//! and every BRIN record type (with both INIT_PAGE variants) must have been
//! matched. Once with data checksums and lz4-compressed images, once
//! without checksums. A feature scan checks the rarer paths: a revmap page
//! beyond the first, cross-page updates, desummarisation of a range whose
//! tuple is not the last on its page.

mod pgcluster;

use std::path::Path;

use pgcluster::{
    assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Cluster, Features,
};
use postgres_ffi::rmgr::RM_BRIN_ID;
use postgres_ffi::v15::info::brin;
use postgres_ffi::Lsn;

const BRIN_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/brin.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const OTHER_AMS: &[&str] = &[];

const MUST_MATCH: &[&str] = &[
    "BRIN/CREATE_INDEX",
    "BRIN/INSERT",
    "BRIN/INSERT+INIT",
    "BRIN/UPDATE",
    "BRIN/UPDATE+INIT",
    "BRIN/SAMEPAGE_UPDATE",
    "BRIN/REVMAP_EXTEND",
    "BRIN/DESUMMARIZE",
];

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn brin_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        if rec.rmid() != RM_BRIN_ID {
            return;
        }
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        let md = &rec.main_data();
        match rec.info() & brin::OPMASK {
            brin::REVMAP_EXTEND if u32_at(md, 0).is_some_and(|t| t > 1) => {
                hit("second revmap page")
            }
            brin::UPDATE if rec.block(0).map(|b| b.blkno) != rec.block(2).map(|b| b.blkno) => {
                hit("cross-page update")
            }
            brin::INSERT if u32_at(md, 4).is_some_and(|ppr| ppr == 1) => {
                hit("insert, one-page ranges")
            }
            brin::DESUMMARIZE => hit("desummarize"),
            _ => {}
        }
    });
    f
}

fn brin_workload(c: &Cluster) {
    c.script(BRIN_WORKLOAD, &[]);
}

fn check(checksums: bool, conf: &str) {
    let (report, features) = run_and_verify(checksums, conf, brin_workload, brin_features);
    assert_features(
        &features,
        &[
            "second revmap page",
            "cross-page update",
            "insert, one-page ranges",
            "desummarize",
        ],
    );
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}

#[test]
fn brin_workload_checksums_lz4() {
    if !pg_available() {
        return;
    }
    check(true, "wal_compression = lz4");
}

#[test]
fn brin_workload_no_checksums() {
    if !pg_available() {
        return;
    }
    check(false, "");
}
