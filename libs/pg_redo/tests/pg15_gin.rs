//! Conformance of the native GIN redo against a real PostgreSQL 15.
//!
//! Each test runs the GIN workload (`test_runner/redo_workloads/gin.sql`)
//! through psql on a cluster with `wal_consistency_checking = 'all'` (see
//! [`pgcluster`]) and verifies its WAL: every Gin block must match
//! PostgreSQL's own image after `gin_mask`, and every Gin record type that
//! can carry a verification image must have been matched. Variants: data
//! checksums with lz4-compressed images, and no checksums with plain images.
//!
//! Gin/VACUUM_PAGE never reaches the comparison: its only block is a
//! forced full-page image (restored, not checked). The same holds for the
//! left/right/root blocks of Gin/SPLIT; only the child block of a
//! non-leaf split is compared. The feature scan checks both occur.

mod pgcluster;

use std::path::Path;

use pgcluster::{
    assert_clean, assert_features, pg_available, run_and_verify, wal_scan, Cluster, Features,
};
use postgres_ffi::rmgr::RM_GIN_ID;
use postgres_ffi::v15::info::gin;
use postgres_ffi::wal::WalRecord;
use postgres_ffi::Lsn;

const GIN_WORKLOAD: &str = include_str!("../../../test_runner/redo_workloads/gin.sql");

/// Every rmgr has native redo: nothing may be unsupported.
const OTHER_AMS: &[&str] = &[];

const MUST_MATCH: &[&str] = &[
    "Gin/CREATE_PTREE",
    "Gin/INSERT",
    "Gin/SPLIT",
    "Gin/VACUUM_DATA_LEAF_PAGE",
    "Gin/DELETE_PAGE",
    "Gin/UPDATE_META_PAGE",
    "Gin/INSERT_LISTPAGE",
    "Gin/DELETE_LISTPAGE",
];

/// Recompress action names by action byte.
fn action_name(a: u8) -> Option<&'static str> {
    Some(match a {
        1 => "leaf action DELETE",
        2 => "leaf action INSERT",
        3 => "leaf action REPLACE",
        4 => "leaf action ADDITEMS",
        _ => return None,
    })
}

/// Walks recompress actions (nactions u16, then segno, action, payload)
/// and counts their kinds.
fn count_actions(data: &[u8], hit: &mut impl FnMut(&'static str)) {
    let u16_at = |p: usize| data.get(p..p + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let Some(n) = u16_at(0) else { return };
    let mut p = 2;
    for _ in 0..n {
        // segno at p, action byte at p + 1.
        let Some(&action) = data.get(p + 1) else {
            return;
        };
        p += 2;
        if let Some(name) = action_name(action) {
            hit(name);
        }
        match action {
            2 | 3 => match u16_at(p + 6) {
                Some(nbytes) => p += 8 + ((nbytes as usize + 1) & !1),
                None => return,
            },
            4 => match u16_at(p) {
                Some(nitems) => p += 2 + 6 * nitems as usize,
                None => return,
            },
            _ => {}
        }
    }
}

fn gin_record_features(rec: &WalRecord, hit: &mut impl FnMut(&'static str)) {
    let md = &rec.main_data();
    let u16_at = |p: usize| md.get(p..p + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |p: usize| {
        md.get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let blk0_data = rec.block(0).map(|b| rec.block_data(b)).unwrap_or_default();
    match rec.info() & 0xF0 {
        gin::CREATE_PTREE => hit("create posting tree"),
        gin::INSERT => {
            let flags = u16_at(0).unwrap_or(0);
            let (data, leaf) = (flags & 1 != 0, flags & 2 != 0);
            hit(match (data, leaf) {
                (false, true) => "insert entry leaf",
                (false, false) => "insert entry internal",
                (true, true) => "insert data leaf",
                (true, false) => "insert data internal",
            });
            if !data && leaf && blk0_data.get(2).is_some_and(|&d| d != 0) {
                hit("insert entry leaf replacing tuple");
            }
            if data && leaf {
                count_actions(blk0_data, hit);
            }
        }
        gin::SPLIT => {
            let flags = u16_at(24).unwrap_or(0);
            hit(if flags & 1 != 0 {
                "split data"
            } else {
                "split entry"
            });
            if flags & 4 != 0 {
                hit("split root");
            }
            if rec.block(3).is_some() {
                hit("split internal (child block)");
            }
        }
        gin::VACUUM_PAGE => hit("vacuum entry page"),
        gin::VACUUM_DATA_LEAF_PAGE => {
            hit("vacuum data leaf");
            count_actions(blk0_data, hit);
        }
        gin::DELETE_PAGE => hit("delete page"),
        gin::UPDATE_META_PAGE => {
            let ntuples = u32_at(80).unwrap_or(0) as i32;
            let prev_tail = u32_at(72).unwrap_or(u32::MAX);
            hit(if ntuples > 0 {
                "meta tail append"
            } else if prev_tail != u32::MAX {
                "meta new sublist"
            } else {
                "meta only"
            });
        }
        gin::INSERT_LISTPAGE => {
            hit(if u32_at(0) == Some(u32::MAX) {
                "list page ends row"
            } else {
                "list page continues"
            });
            if rec
                .block(0)
                .is_some_and(|b| b.will_init() && b.image.is_some())
            {
                hit("list page image");
            }
        }
        gin::DELETE_LISTPAGE => {
            hit("delete list pages");
            if rec.blocks.len() > 2 {
                hit("delete several list pages");
            }
        }
        _ => {}
    }
}

/// Counts the GIN record variants in the WAL from `start`.
fn gin_features(pg_wal: &Path, start: Lsn) -> Features {
    let mut f = Features::new();
    wal_scan(pg_wal, start, |rec| {
        if rec.rmid() == RM_GIN_ID {
            gin_record_features(rec, &mut |k| *f.entry(k).or_insert(0) += 1);
        }
    });
    f
}

fn gin_workload(c: &Cluster) {
    let copyfile = c.tmp.path().join("copy.data");
    c.script(
        GIN_WORKLOAD,
        &[("copyfile", copyfile.display().to_string())],
    );
}

const FEATURES: &[&str] = &[
    "create posting tree",
    "insert entry leaf",
    "insert entry leaf replacing tuple",
    "insert entry internal",
    "insert data leaf",
    "insert data internal",
    "leaf action ADDITEMS",
    "leaf action INSERT",
    "leaf action REPLACE",
    "leaf action DELETE",
    "split data",
    "split entry",
    "split root",
    "split internal (child block)",
    "vacuum entry page",
    "vacuum data leaf",
    "delete page",
    "meta tail append",
    "meta new sublist",
    "meta only",
    "list page ends row",
    "list page continues",
    "delete list pages",
    "delete several list pages",
];

#[test]
fn gin_workload_checksums_lz4() {
    if !pg_available() {
        return;
    }
    let (report, features) = run_and_verify(
        true,
        "wal_level = replica\nwal_compression = lz4",
        gin_workload,
        gin_features,
    );
    assert_features(&features, FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}

#[test]
fn gin_workload_no_checksums() {
    if !pg_available() {
        return;
    }
    let (report, features) =
        run_and_verify(false, "wal_level = replica", gin_workload, gin_features);
    assert_features(&features, FEATURES);
    assert_clean(&report, MUST_MATCH, OTHER_AMS);
}
