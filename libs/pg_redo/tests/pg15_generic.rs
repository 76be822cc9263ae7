//! Conformance of the native Generic redo (contrib bloom) against a real
//! PostgreSQL 15.
//!
//! Runs `test_runner/redo_workloads/bloom.sql` on a cluster with
//! `wal_consistency_checking = 'all'` (see [`pgcluster`]) and verifies its
//! WAL: every Generic block delta must reproduce the primary's page after
//! `generic_mask`. Once with data checksums and lz4-compressed images, once
//! without checksums. A feature scan makes sure the workload still produces
//! multi-page records, forced full images and plain deltas.

mod pgcluster;

use std::path::Path;

use pgcluster::{
    assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Cluster, Features,
};
use postgres_ffi::rmgr::RM_GENERIC_ID;
use postgres_ffi::Lsn;

const BLOOM_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/bloom.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const OTHER_AMS: &[&str] = &[];

fn generic_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        if rec.rmid() != RM_GENERIC_ID {
            return;
        }
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        if rec.blocks.len() > 1 {
            hit("multi-page record");
        }
        for b in &rec.blocks {
            match &b.image {
                Some(img) if img.apply => hit("forced full image"),
                _ if b.has_data() => hit("delta"),
                _ => {}
            }
        }
    });
    f
}

fn bloom_workload(c: &Cluster) {
    c.script(BLOOM_WORKLOAD, &[]);
}

fn check(checksums: bool, conf: &str) {
    let (report, features) = run_and_verify(checksums, conf, bloom_workload, generic_features);
    assert_features(
        &features,
        &["multi-page record", "forced full image", "delta"],
    );
    assert_clean(&report, &["Generic/Generic"], OTHER_AMS);
}

#[test]
fn bloom_workload_checksums_lz4() {
    if !pg_available() {
        return;
    }
    check(true, "wal_compression = lz4");
}

#[test]
fn bloom_workload_no_checksums() {
    if !pg_available() {
        return;
    }
    check(false, "");
}
