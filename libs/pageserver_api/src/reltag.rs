//! Names of Postgres relation forks and SLRU areas.
//!
//! Owns [`RelTag`] (tablespace, database, relation, fork), the fork number
//! constants, the data-directory path of a relation segment file, and
//! [`SlruKind`] with its numeric code and directory name.
//!
//! Invariants:
//! - `RelTag` orders by `(spcnode, dbnode, relnode, forknum)`, which is the
//!   same order as the keys built from it (`crate::key::rel_block_to_key`), so
//!   a sorted list of tags maps to ascending key ranges.
//! - `SlruKind::code` is the value stored in `field2` of SLRU keys; it must
//!   never change for an existing kind.
//!
//! Used by the key constructors in [`crate::key`], by WAL ingest (to name the
//! relation a record touches) and by basebackup (to name files).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Postgres object id.
pub type Oid = u32;

/// A block number within a relation fork or SLRU segment.
pub type BlockNumber = u32;

/// The main data fork of a relation.
pub const MAIN_FORKNUM: u8 = 0;
/// The free-space map fork.
pub const FSM_FORKNUM: u8 = 1;
/// The visibility map fork.
pub const VISIBILITYMAP_FORKNUM: u8 = 2;
/// The init fork of an unlogged relation.
pub const INIT_FORKNUM: u8 = 3;

/// Tablespace of shared catalogs; its files live under `global/`.
pub const GLOBALTABLESPACE_OID: Oid = 1664;
/// Default tablespace; its files live under `base/<db>/`.
pub const DEFAULTTABLESPACE_OID: Oid = 1663;

/// The file-name suffix of a fork (`fsm`, `vm`, `init`); `None` for the main
/// fork and for fork numbers Postgres does not define.
pub fn fork_name(forknum: u8) -> Option<&'static str> {
    match forknum {
        FSM_FORKNUM => Some("fsm"),
        VISIBILITYMAP_FORKNUM => Some("vm"),
        INIT_FORKNUM => Some("init"),
        _ => None,
    }
}

/// The fork number of a suffix accepted by [`fork_name`], plus `main`.
pub fn fork_number(name: &str) -> Option<u8> {
    match name {
        "main" => Some(MAIN_FORKNUM),
        "fsm" => Some(FSM_FORKNUM),
        "vm" => Some(VISIBILITYMAP_FORKNUM),
        "init" => Some(INIT_FORKNUM),
        _ => None,
    }
}

/// One fork of one relation.
///
/// Text form (`Display`/`FromStr`): `<spcnode>/<dbnode>/<relnode>` for the
/// main fork, with `_fsm`, `_vm` or `_init` appended for the other forks
/// (e.g. `1663/5/16384_fsm`), and `_<n>` for an undefined fork number `n`.
/// This resembles the `rel %u/%u/%u` notation of Postgres log messages.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct RelTag {
    // Field order matters: the derived `Ord` must match key order.
    pub spcnode: Oid,
    pub dbnode: Oid,
    pub relnode: Oid,
    pub forknum: u8,
}

impl RelTag {
    pub fn new(spcnode: Oid, dbnode: Oid, relnode: Oid, forknum: u8) -> RelTag {
        RelTag {
            spcnode,
            dbnode,
            relnode,
            forknum,
        }
    }

    /// The same relation with another fork.
    pub fn with_forknum(&self, forknum: u8) -> RelTag {
        RelTag { forknum, ..*self }
    }

    /// Path of segment `segno` of this fork, relative to the data directory:
    /// `global/<rel>` in the global tablespace, else `base/<db>/<rel>`, then
    /// the fork suffix (`_fsm`, `_vm`, `_init`), then `.<segno>` when
    /// `segno > 0`. Undefined fork numbers get no suffix, as in Postgres'
    /// `relpath`, which only knows the four forks.
    pub fn to_segfile_name(&self, segno: u32) -> String {
        let mut path = if self.spcnode == GLOBALTABLESPACE_OID {
            format!("global/{}", self.relnode)
        } else {
            format!("base/{}/{}", self.dbnode, self.relnode)
        };
        if let Some(suffix) = fork_name(self.forknum) {
            path.push('_');
            path.push_str(suffix);
        }
        if segno > 0 {
            path.push('.');
            path.push_str(&segno.to_string());
        }
        path
    }
}

impl fmt::Display for RelTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.spcnode, self.dbnode, self.relnode)?;
        match (self.forknum, fork_name(self.forknum)) {
            (MAIN_FORKNUM, _) => Ok(()),
            (_, Some(name)) => write!(f, "_{name}"),
            (n, None) => write!(f, "_{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid relation tag {input:?}: expected <spc>/<db>/<rel>[_fork]")]
pub struct ParseRelTagError {
    pub input: String,
}

impl FromStr for RelTag {
    type Err = ParseRelTagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseRelTagError {
            input: s.to_owned(),
        };
        let (triplet, forknum) = match s.split_once('_') {
            Some((t, fork)) => {
                let n = fork_number(fork).or_else(|| fork.parse::<u8>().ok());
                (t, n.ok_or_else(err)?)
            }
            None => (s, MAIN_FORKNUM),
        };
        let mut parts = triplet.split('/').map(|p| p.parse::<Oid>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(spcnode)), Some(Ok(dbnode)), Some(Ok(relnode)), None) => {
                Ok(RelTag::new(spcnode, dbnode, relnode, forknum))
            }
            _ => Err(err()),
        }
    }
}

/// The SLRU areas the page server stores (the `pg_xact` and `pg_multixact`
/// files of Postgres).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SlruKind {
    Clog,
    MultiXactMembers,
    MultiXactOffsets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown SLRU kind code {0}")]
pub struct UnknownSlruKind(pub u32);

impl SlruKind {
    pub const ALL: [SlruKind; 3] = [
        SlruKind::Clog,
        SlruKind::MultiXactMembers,
        SlruKind::MultiXactOffsets,
    ];

    /// The number stored in `field2` of this kind's keys.
    pub fn code(self) -> u32 {
        match self {
            SlruKind::Clog => 0,
            SlruKind::MultiXactMembers => 1,
            SlruKind::MultiXactOffsets => 2,
        }
    }

    pub fn from_code(code: u32) -> Result<SlruKind, UnknownSlruKind> {
        match code {
            0 => Ok(SlruKind::Clog),
            1 => Ok(SlruKind::MultiXactMembers),
            2 => Ok(SlruKind::MultiXactOffsets),
            other => Err(UnknownSlruKind(other)),
        }
    }

    /// Directory of the segment files, relative to the data directory.
    pub fn dir_name(self) -> &'static str {
        match self {
            SlruKind::Clog => "pg_xact",
            SlruKind::MultiXactMembers => "pg_multixact/members",
            SlruKind::MultiXactOffsets => "pg_multixact/offsets",
        }
    }
}

impl fmt::Display for SlruKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_paths() {
        let rel = RelTag::new(DEFAULTTABLESPACE_OID, 5, 16384, MAIN_FORKNUM);
        assert_eq!(rel.to_segfile_name(0), "base/5/16384");
        assert_eq!(rel.to_segfile_name(3), "base/5/16384.3");
        let fsm = rel.with_forknum(FSM_FORKNUM);
        assert_eq!(fsm.to_segfile_name(0), "base/5/16384_fsm");
        assert_eq!(
            rel.with_forknum(VISIBILITYMAP_FORKNUM).to_segfile_name(1),
            "base/5/16384_vm.1"
        );
        assert_eq!(
            rel.with_forknum(INIT_FORKNUM).to_segfile_name(0),
            "base/5/16384_init"
        );
        let global = RelTag::new(GLOBALTABLESPACE_OID, 0, 1262, MAIN_FORKNUM);
        assert_eq!(global.to_segfile_name(0), "global/1262");
        assert_eq!(global.to_segfile_name(2), "global/1262.2");
    }

    #[test]
    fn text_form_roundtrips() {
        for forknum in [0u8, 1, 2, 3, 7] {
            let rel = RelTag::new(1663, 5, 16384, forknum);
            let text = rel.to_string();
            assert_eq!(text.parse::<RelTag>(), Ok(rel), "{text}");
        }
        assert_eq!(
            RelTag::new(1663, 5, 16384, 1).to_string(),
            "1663/5/16384_fsm"
        );
        assert_eq!(RelTag::new(1663, 5, 16384, 0).to_string(), "1663/5/16384");
        assert_eq!(
            "1663/5/16384_main".parse::<RelTag>().map(|r| r.forknum),
            Ok(0)
        );
        for bad in ["", "1/2", "1/2/3/4", "1/2/x", "1/2/3_bogus", "1/2/3_"] {
            assert!(bad.parse::<RelTag>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn order_matches_field_order() {
        let a = RelTag::new(1663, 5, 16384, 3);
        let b = RelTag::new(1663, 5, 16385, 0);
        assert!(a < b, "relnode outranks forknum");
        assert!(RelTag::new(1663, 6, 0, 0) > b);
    }

    #[test]
    fn slru_codes_and_dirs() {
        for kind in SlruKind::ALL {
            assert_eq!(SlruKind::from_code(kind.code()), Ok(kind));
        }
        assert_eq!(SlruKind::Clog.code(), 0);
        assert_eq!(SlruKind::MultiXactMembers.code(), 1);
        assert_eq!(SlruKind::MultiXactOffsets.code(), 2);
        assert_eq!(SlruKind::from_code(3), Err(UnknownSlruKind(3)));
        assert_eq!(SlruKind::Clog.dir_name(), "pg_xact");
        assert_eq!(
            SlruKind::MultiXactOffsets.to_string(),
            "pg_multixact/offsets"
        );
        assert_eq!(
            SlruKind::MultiXactMembers.dir_name(),
            "pg_multixact/members"
        );
    }
}
