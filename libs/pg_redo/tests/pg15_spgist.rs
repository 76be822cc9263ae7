//! Conformance of the native SP-GiST redo against a real PostgreSQL 15.
//!
//! Each test runs the SP-GiST workload (`test_runner/redo_workloads/spgist.sql`)
//! through psql on a cluster with `wal_consistency_checking = 'all'` (see
//! [`pgcluster`]) and verifies its WAL: every SPGist block must match
//! PostgreSQL's own image after masking, every SPGist record type must have
//! been matched, and a feature scan checks that the rarer variants (root
//! splits, new pages, DEAD chain heads replaced, moved inner tuples, …)
//! occurred. Run with data checksums and lz4 WAL compression, and without
//! either.

mod pgcluster;

use std::path::Path;

use pgcluster::{assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Features};
use postgres_ffi::rmgr::RM_SPGIST_ID;
use postgres_ffi::v15::info::spgist;
use postgres_ffi::Lsn;

const SPGIST_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/spgist.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const OTHER_AMS: &[&str] = &[];

const MUST_MATCH: &[&str] = &[
    "SPGist/ADD_LEAF",
    "SPGist/MOVE_LEAFS",
    "SPGist/ADD_NODE",
    "SPGist/SPLIT_TUPLE",
    "SPGist/PICKSPLIT",
    "SPGist/VACUUM_LEAF",
    "SPGist/VACUUM_ROOT",
    "SPGist/VACUUM_REDIRECT",
];

const WANTED_FEATURES: &[&str] = &[
    "add_leaf new page",
    "add_leaf nulls",
    "add_leaf into chain",
    "add_leaf replaces dead",
    "add_leaf parent",
    "move_leafs new page",
    "move_leafs existing page",
    "add_node in place",
    "add_node moved",
    "add_node moved, parent elsewhere",
    "split_tuple same page",
    "split_tuple other page",
    "picksplit root",
    "picksplit init dest",
    "picksplit init inner",
    "picksplit inner is parent",
    "picksplit parent block",
    "picksplit nulls",
    "picksplit dest existing",
    "vacuum_leaf dead",
    "vacuum_leaf placeholder",
    "vacuum_leaf move",
    "vacuum_leaf chain",
    "vacuum_redirect to placeholder",
    "vacuum_redirect trailing",
];

fn u16_at(md: &[u8], at: usize) -> u16 {
    md.get(at..at + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

fn flag(md: &[u8], at: usize) -> bool {
    md.get(at).is_some_and(|&b| b != 0)
}

/// Counts the record variants the workload is meant to produce.
fn spgist_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        if rec.rmid() != RM_SPGIST_ID {
            return;
        }
        let md = rec.main_data();
        let mut hit = |k: &'static str| *f.entry(k).or_insert(0) += 1;
        match rec.info() & 0xF0 {
            spgist::ADD_LEAF => {
                let (leaf, head) = (u16_at(md, 2), u16_at(md, 4));
                if flag(md, 0) {
                    hit("add_leaf new page");
                }
                if flag(md, 1) {
                    hit("add_leaf nulls");
                }
                if head != 0 && head != leaf {
                    hit("add_leaf into chain");
                }
                if head != 0 && head == leaf {
                    hit("add_leaf replaces dead");
                }
                if u16_at(md, 6) != 0 {
                    hit("add_leaf parent");
                }
            }
            spgist::MOVE_LEAFS => {
                hit(if flag(md, 2) {
                    "move_leafs new page"
                } else {
                    "move_leafs existing page"
                });
                if flag(md, 3) {
                    hit("move_leafs replace dead");
                }
            }
            spgist::ADD_NODE => {
                if rec.block(1).is_none() {
                    hit("add_node in place");
                } else {
                    hit("add_node moved");
                    match md.get(5).map(|&b| b as i8) {
                        Some(0) => hit("add_node moved, parent on old page"),
                        Some(1) => hit("add_node moved, parent on new page"),
                        Some(2) => hit("add_node moved, parent elsewhere"),
                        _ => {}
                    }
                    if flag(md, 4) {
                        hit("add_node new page");
                    }
                }
            }
            spgist::SPLIT_TUPLE => {
                if flag(md, 5) {
                    hit("split_tuple same page");
                } else {
                    hit("split_tuple other page");
                    if flag(md, 4) {
                        hit("split_tuple new page");
                    }
                }
            }
            spgist::PICKSPLIT => {
                if flag(md, 0) {
                    hit("picksplit root");
                }
                if flag(md, 6) {
                    hit("picksplit init src");
                }
                if flag(md, 7) {
                    hit("picksplit init dest");
                } else if rec.block(1).is_some() {
                    hit("picksplit dest existing");
                }
                if flag(md, 10) {
                    hit("picksplit init inner");
                }
                if flag(md, 11) {
                    hit("picksplit nulls");
                }
                if flag(md, 12) {
                    hit("picksplit inner is parent");
                }
                if rec.block(3).is_some() {
                    hit("picksplit parent block");
                }
            }
            spgist::VACUUM_LEAF => {
                if u16_at(md, 0) > 0 {
                    hit("vacuum_leaf dead");
                }
                if u16_at(md, 2) > 0 {
                    hit("vacuum_leaf placeholder");
                }
                if u16_at(md, 4) > 0 {
                    hit("vacuum_leaf move");
                }
                if u16_at(md, 6) > 0 {
                    hit("vacuum_leaf chain");
                }
            }
            spgist::VACUUM_REDIRECT => {
                if u16_at(md, 0) > 0 {
                    hit("vacuum_redirect to placeholder");
                }
                if u16_at(md, 2) != 0 {
                    hit("vacuum_redirect trailing");
                }
            }
            _ => {}
        }
    });
    f
}

fn spgist_workload(c: &pgcluster::Cluster) {
    c.script(SPGIST_WORKLOAD, &[]);
}

#[test]
fn spgist_workload_checksums_lz4() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(
        true,
        "wal_level = replica\nwal_compression = lz4",
        spgist_workload,
        spgist_features,
    );
    assert_features(&features, WANTED_FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}

#[test]
fn spgist_workload_no_checksums() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(
        false,
        "wal_level = replica",
        spgist_workload,
        spgist_features,
    );
    assert_features(&features, WANTED_FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}
