//! Relation files: fork numbers, `RelFileNode`, segment numbering and the
//! paths of relation segment files inside a data directory.
//!
//! Path forms (`relpath.c`), with `_<fork>` for non-main forks and `.<segno>`
//! for segments after the first:
//!
//! - `global/<rel>` — tablespace `pg_global` (1664), database 0;
//! - `base/<db>/<rel>` — tablespace `pg_default` (1663);
//! - `pg_tblspc/<spc>/<version dir>/<db>/<rel>` — any other tablespace, where
//!   the version directory (e.g. `PG_15_202209061`) depends on the major version.
//!
//! Invariant: [`parse_relation_path`] accepts exactly the strings
//! [`relation_path`] produces (canonical decimal, no `.0`, no temp-relation
//! `t<backend>_` names), so parse ∘ format is the identity. Used by
//! basebackup (naming files), import (recognising them) and tests.

use std::fmt;

use crate::types::{BlockNumber, Oid};
use crate::{PgMajorVersion, RELSEG_SIZE};

/// Tablespace of shared catalogs (`global/`).
pub const GLOBALTABLESPACE_OID: Oid = 1664;
/// Default tablespace (`base/`).
pub const DEFAULTTABLESPACE_OID: Oid = 1663;

/// A relation fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ForkNumber {
    Main = 0,
    Fsm = 1,
    VisibilityMap = 2,
    Init = 3,
}

pub const MAIN_FORKNUM: u8 = ForkNumber::Main as u8;
pub const FSM_FORKNUM: u8 = ForkNumber::Fsm as u8;
pub const VISIBILITYMAP_FORKNUM: u8 = ForkNumber::VisibilityMap as u8;
pub const INIT_FORKNUM: u8 = ForkNumber::Init as u8;
/// Highest valid fork number.
pub const MAX_FORKNUM: u8 = INIT_FORKNUM;

impl ForkNumber {
    pub const ALL: [ForkNumber; 4] = [
        ForkNumber::Main,
        ForkNumber::Fsm,
        ForkNumber::VisibilityMap,
        ForkNumber::Init,
    ];

    /// The name PostgreSQL uses (`forkNames[]`): main, fsm, vm, init.
    pub fn name(self) -> &'static str {
        match self {
            ForkNumber::Main => "main",
            ForkNumber::Fsm => "fsm",
            ForkNumber::VisibilityMap => "vm",
            ForkNumber::Init => "init",
        }
    }

    pub fn from_name(name: &str) -> Option<ForkNumber> {
        ForkNumber::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl TryFrom<u8> for ForkNumber {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        ForkNumber::ALL.get(v as usize).copied().ok_or(v)
    }
}

impl fmt::Display for ForkNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The physical identity of a relation's files (PG15's `RelFileNode`; later
/// versions call it `RelFileLocator`, same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelFileNode {
    pub spcnode: Oid,
    pub dbnode: Oid,
    pub relnode: Oid,
}

/// Size of a `RelFileNode` in WAL and other structs.
pub const SIZE_OF_REL_FILE_NODE: usize = 12;

impl fmt::Display for RelFileNode {
    /// `spc/db/rel`, as in `pg_waldump` and server messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.spcnode, self.dbnode, self.relnode)
    }
}

/// One segment file of one fork of a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelSegmentFile {
    pub rnode: RelFileNode,
    pub fork: ForkNumber,
    pub segno: u32,
}

/// The segment that holds `blkno` and the block's position inside it.
pub fn block_to_segment(blkno: BlockNumber) -> (u32, u32) {
    (blkno / RELSEG_SIZE, blkno % RELSEG_SIZE)
}

/// The fork-wide block number of block `blk_in_seg` of segment `segno`
/// (what the page checksum mixes in). `None` if it overflows u32.
pub fn segment_block_to_block(segno: u32, blk_in_seg: u32) -> Option<BlockNumber> {
    segno
        .checked_mul(RELSEG_SIZE)
        .and_then(|b| b.checked_add(blk_in_seg))
}

/// Path of the database directory holding a tablespace's relations, relative
/// to the data directory (`GetDatabasePath`).
pub fn database_path(version: PgMajorVersion, spcnode: Oid, dbnode: Oid) -> String {
    match spcnode {
        GLOBALTABLESPACE_OID => "global".to_owned(),
        DEFAULTTABLESPACE_OID => format!("base/{dbnode}"),
        _ => format!(
            "pg_tblspc/{spcnode}/{}/{dbnode}",
            version.tablespace_version_directory()
        ),
    }
}

/// Path of a relation segment file relative to the data directory.
pub fn relation_path(
    version: PgMajorVersion,
    rnode: RelFileNode,
    fork: ForkNumber,
    segno: u32,
) -> String {
    let mut p = format!(
        "{}/{}",
        database_path(version, rnode.spcnode, rnode.dbnode),
        rnode.relnode
    );
    if fork != ForkNumber::Main {
        p.push('_');
        p.push_str(fork.name());
    }
    if segno != 0 {
        p.push('.');
        p.push_str(&segno.to_string());
    }
    p
}

impl RelSegmentFile {
    pub fn path(&self, version: PgMajorVersion) -> String {
        relation_path(version, self.rnode, self.fork, self.segno)
    }
}

/// Why a path is not the path of a relation segment file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelPathError {
    #[error("{path:?} is not under global/, base/<db>/ or pg_tblspc/<spc>/{version_dir}/<db>/")]
    NotRelationDirectory { path: String, version_dir: String },
    #[error("{path:?}: file name {name:?} is not <relfilenode>[_fork][.segment]")]
    BadFileName { path: String, name: String },
    #[error("{path:?}: {what} {text:?} is not a canonical decimal OID")]
    BadNumber {
        path: String,
        what: &'static str,
        text: String,
    },
}

/// Canonical decimal u32 (no sign, no leading zeros except "0" itself).
fn parse_canonical_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Parses `<rel>[_fork][.seg]`.
fn parse_file_name(path: &str, name: &str) -> Result<(Oid, ForkNumber, u32), RelPathError> {
    let bad = || RelPathError::BadFileName {
        path: path.to_owned(),
        name: name.to_owned(),
    };
    let (stem, segno) = match name.split_once('.') {
        Some((stem, seg)) => {
            let segno = parse_canonical_u32(seg)
                .filter(|&s| s != 0)
                .ok_or_else(bad)?;
            (stem, segno)
        }
        None => (name, 0),
    };
    let (rel, fork) = match stem.split_once('_') {
        Some((rel, fork)) => {
            let fork = ForkNumber::from_name(fork)
                .filter(|f| *f != ForkNumber::Main)
                .ok_or_else(bad)?;
            (rel, fork)
        }
        None => (stem, ForkNumber::Main),
    };
    let relnode = parse_canonical_u32(rel)
        .filter(|&r| r != 0)
        .ok_or_else(bad)?;
    Ok((relnode, fork, segno))
}

fn parse_oid(path: &str, what: &'static str, text: &str) -> Result<Oid, RelPathError> {
    parse_canonical_u32(text).ok_or_else(|| RelPathError::BadNumber {
        path: path.to_owned(),
        what,
        text: text.to_owned(),
    })
}

/// Parses a path relative to the data directory into the relation segment
/// file it names. Non-relation files (`pg_filenode.map`, `PG_VERSION`,
/// temporary relations `t3_16384`, ...) are errors.
pub fn parse_relation_path(
    version: PgMajorVersion,
    path: &str,
) -> Result<RelSegmentFile, RelPathError> {
    let parts: Vec<&str> = path.split('/').collect();
    let version_dir = version.tablespace_version_directory();
    let (spcnode, dbnode, name) = match parts.as_slice() {
        ["global", name] => (GLOBALTABLESPACE_OID, 0, *name),
        ["base", db, name] => (
            DEFAULTTABLESPACE_OID,
            parse_oid(path, "database", db)?,
            *name,
        ),
        ["pg_tblspc", spc, vdir, db, name] if *vdir == version_dir => {
            let spcnode = parse_oid(path, "tablespace", spc)?;
            if spcnode == GLOBALTABLESPACE_OID || spcnode == DEFAULTTABLESPACE_OID {
                // Those tablespaces never live under pg_tblspc; accepting them
                // would break the parse/format round trip.
                return Err(RelPathError::BadNumber {
                    path: path.to_owned(),
                    what: "tablespace",
                    text: spc.to_string(),
                });
            }
            (spcnode, parse_oid(path, "database", db)?, *name)
        }
        _ => {
            return Err(RelPathError::NotRelationDirectory {
                path: path.to_owned(),
                version_dir: version_dir.to_owned(),
            })
        }
    };
    let (relnode, fork, segno) = parse_file_name(path, name)?;
    Ok(RelSegmentFile {
        rnode: RelFileNode {
            spcnode,
            dbnode,
            relnode,
        },
        fork,
        segno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: PgMajorVersion = PgMajorVersion::V15;

    fn rn(spc: u32, db: u32, rel: u32) -> RelFileNode {
        RelFileNode {
            spcnode: spc,
            dbnode: db,
            relnode: rel,
        }
    }

    #[test]
    fn formats() {
        assert_eq!(
            relation_path(V, rn(1663, 5, 16384), ForkNumber::Main, 0),
            "base/5/16384"
        );
        assert_eq!(
            relation_path(V, rn(1663, 5, 16384), ForkNumber::Fsm, 2),
            "base/5/16384_fsm.2"
        );
        assert_eq!(
            relation_path(V, rn(1664, 0, 1262), ForkNumber::VisibilityMap, 0),
            "global/1262_vm"
        );
        assert_eq!(
            relation_path(V, rn(16400, 5, 16401), ForkNumber::Init, 0),
            "pg_tblspc/16400/PG_15_202209061/5/16401_init"
        );
        assert_eq!(block_to_segment(131073), (1, 1));
        assert_eq!(segment_block_to_block(1, 1), Some(131073));
        assert_eq!(segment_block_to_block(u32::MAX, 1), None);
    }

    #[test]
    fn parse_round_trips() {
        for p in [
            "base/5/16384",
            "base/1/1259_fsm",
            "base/5/16384_vm.3",
            "global/1262",
            "global/1262_init.1",
            "pg_tblspc/16400/PG_15_202209061/5/16401",
        ] {
            let f = parse_relation_path(V, p).unwrap();
            assert_eq!(f.path(V), p);
        }
        let f = parse_relation_path(V, "base/5/16384_fsm.2").unwrap();
        assert_eq!(f.rnode, rn(1663, 5, 16384));
        assert_eq!(f.fork, ForkNumber::Fsm);
        assert_eq!(f.segno, 2);
    }

    #[test]
    fn parse_rejects() {
        for p in [
            "base/5/pg_filenode.map",
            "base/5/PG_VERSION",
            "base/5/t3_16384",
            "base/5/16384.0",
            "base/5/016384",
            "base/5/16384_main",
            "base/5/16384_foo",
            "base/5/0",
            "base/x/16384",
            "base/5",
            "global/pg_control",
            "pg_tblspc/16400/PG_16_202307071/5/16401",
            "pg_tblspc/1663/PG_15_202209061/5/16401",
            "pg_wal/000000010000000000000001",
            "",
            "base//16384",
        ] {
            assert!(parse_relation_path(V, p).is_err(), "{p}");
        }
    }

    #[test]
    fn fork_numbers() {
        for f in ForkNumber::ALL {
            assert_eq!(ForkNumber::try_from(f as u8), Ok(f));
            assert_eq!(ForkNumber::from_name(f.name()), Some(f));
        }
        assert_eq!(ForkNumber::try_from(4), Err(4));
        assert_eq!(rn(1, 2, 3).to_string(), "1/2/3");
    }
}
