//! Resource manager ids and names, and `pg_waldump`-style record names.
//!
//! The built-in rmgr ids 0..=21 and their names (`rmgrlist.h`) have been
//! stable across the supported major versions, so they live here; record
//! type names can change between versions and come from the per-version
//! module (`v15::rmgr_names`). Ids 128..=255 are custom rmgrs (extensions);
//! the rest are invalid. Used by the WAL decoder (rmgr id validation) and the
//! verification tools (naming records like `Heap/INSERT`).

use crate::PgMajorVersion;

pub const RM_XLOG_ID: u8 = 0;
pub const RM_XACT_ID: u8 = 1;
pub const RM_SMGR_ID: u8 = 2;
pub const RM_CLOG_ID: u8 = 3;
pub const RM_DBASE_ID: u8 = 4;
pub const RM_TBLSPC_ID: u8 = 5;
pub const RM_MULTIXACT_ID: u8 = 6;
pub const RM_RELMAP_ID: u8 = 7;
pub const RM_STANDBY_ID: u8 = 8;
pub const RM_HEAP2_ID: u8 = 9;
pub const RM_HEAP_ID: u8 = 10;
pub const RM_BTREE_ID: u8 = 11;
pub const RM_HASH_ID: u8 = 12;
pub const RM_GIN_ID: u8 = 13;
pub const RM_GIST_ID: u8 = 14;
pub const RM_SEQ_ID: u8 = 15;
pub const RM_SPGIST_ID: u8 = 16;
pub const RM_BRIN_ID: u8 = 17;
pub const RM_COMMIT_TS_ID: u8 = 18;
pub const RM_REPLORIGIN_ID: u8 = 19;
pub const RM_GENERIC_ID: u8 = 20;
pub const RM_LOGICALMSG_ID: u8 = 21;

/// First id reserved for custom (extension) resource managers.
pub const RM_MIN_CUSTOM_ID: u8 = 128;

/// Built-in rmgr names indexed by id, as `pg_waldump` prints them.
pub const RMGR_NAMES: [&str; 22] = [
    "XLOG",
    "Transaction",
    "Storage",
    "CLOG",
    "Database",
    "Tablespace",
    "MultiXact",
    "RelMap",
    "Standby",
    "Heap2",
    "Heap",
    "Btree",
    "Hash",
    "Gin",
    "Gist",
    "Sequence",
    "SPGist",
    "BRIN",
    "CommitTs",
    "ReplicationOrigin",
    "Generic",
    "LogicalMessage",
];

/// Whether a record with this `xl_rmid` may appear in `version`'s WAL
/// (a built-in id of that version, or a custom id).
pub fn rmgr_id_is_valid(version: PgMajorVersion, rmid: u8) -> bool {
    rmid <= version.wal_format().rm_max_builtin_id || rmid >= RM_MIN_CUSTOM_ID
}

/// The rmgr's name: the built-in name, `custom###` for custom ids (as
/// `pg_waldump` names rmgrs it has no plugin for), `None` for invalid ids.
pub fn rmgr_name(rmid: u8) -> Option<String> {
    if let Some(name) = RMGR_NAMES.get(rmid as usize) {
        Some((*name).to_owned())
    } else if rmid >= RM_MIN_CUSTOM_ID {
        Some(format!("custom{rmid:03}"))
    } else {
        None
    }
}

/// The record type name alone (`INSERT+INIT`), or `None` if `version`'s
/// `pg_waldump` would print `UNKNOWN`.
pub fn record_type_name(version: PgMajorVersion, rmid: u8, info: u8) -> Option<&'static str> {
    match version {
        PgMajorVersion::V15 => crate::v15::rmgr_names::identify(rmid, info),
    }
}

/// `Rmgr/TYPE` as in `pg_waldump --stats=record`, e.g. `Heap/INSERT`.
/// Unknown types read `Rmgr/UNKNOWN (xx)` with the masked info byte in hex
/// (as `pg_waldump` prints them); an invalid rmgr id reads `rmgr<id>/...`.
pub fn record_name(version: PgMajorVersion, rmid: u8, info: u8) -> String {
    let rmgr = rmgr_name(rmid).unwrap_or_else(|| format!("rmgr{rmid}"));
    match record_type_name(version, rmid, info) {
        Some(t) => format!("{rmgr}/{t}"),
        None => format!("{rmgr}/UNKNOWN ({:x})", info & !crate::wal::XLR_INFO_MASK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let v = PgMajorVersion::V15;
        assert_eq!(record_name(v, RM_HEAP_ID, 0x00), "Heap/INSERT");
        assert_eq!(record_name(v, RM_HEAP2_ID, 0xD0), "Heap2/MULTI_INSERT+INIT");
        assert_eq!(record_name(v, RM_XACT_ID, 0x60), "Transaction/INVALIDATION");
        assert_eq!(record_name(v, RM_XLOG_ID, 0xC0), "XLOG/UNKNOWN (c0)");
        assert_eq!(record_name(v, RM_GENERIC_ID, 0), "Generic/Generic");
        assert_eq!(rmgr_name(130).as_deref(), Some("custom130"));
        assert_eq!(rmgr_name(22), None);
        assert!(rmgr_id_is_valid(v, 21));
        assert!(!rmgr_id_is_valid(v, 22));
        assert!(!rmgr_id_is_valid(v, 127));
        assert!(rmgr_id_is_valid(v, 128));
    }
}
