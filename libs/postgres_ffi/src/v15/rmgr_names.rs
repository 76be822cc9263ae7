//! Record type names of PostgreSQL 15, exactly as its `rm_identify` functions
//! (`src/backend/access/rmgrdesc/*desc.c`) return them — what `pg_waldump`
//! prints after `desc:` and in `--stats=record` as `Rmgr/NAME`.
//!
//! Each rmgr masks `xl_info` its own way before matching, and this module
//! mirrors that per rmgr (e.g. Transaction uses its 0x70 op mask; CommitTs and
//! ReplicationOrigin match the unmasked byte), so an unusual info byte gets
//! the same "unknown" verdict as in `pg_waldump`. Called by
//! [`crate::rmgr::record_type_name`].

use super::info::*;
use crate::rmgr::*;
use crate::wal::XLR_INFO_MASK;

/// The record type name for `(rmid, info)`, or `None` where PostgreSQL's
/// identify function returns NULL (unknown type or unknown rmgr).
pub fn identify(rmid: u8, info: u8) -> Option<&'static str> {
    let masked = info & !XLR_INFO_MASK;
    let name = match rmid {
        RM_XLOG_ID => match masked {
            xlog::CHECKPOINT_SHUTDOWN => "CHECKPOINT_SHUTDOWN",
            xlog::CHECKPOINT_ONLINE => "CHECKPOINT_ONLINE",
            xlog::NOOP => "NOOP",
            xlog::NEXTOID => "NEXTOID",
            xlog::SWITCH => "SWITCH",
            xlog::BACKUP_END => "BACKUP_END",
            xlog::PARAMETER_CHANGE => "PARAMETER_CHANGE",
            xlog::RESTORE_POINT => "RESTORE_POINT",
            xlog::FPW_CHANGE => "FPW_CHANGE",
            xlog::END_OF_RECOVERY => "END_OF_RECOVERY",
            xlog::OVERWRITE_CONTRECORD => "OVERWRITE_CONTRECORD",
            xlog::FPI => "FPI",
            xlog::FPI_FOR_HINT => "FPI_FOR_HINT",
            _ => return None,
        },
        RM_XACT_ID => match info & xact::OPMASK {
            xact::COMMIT => "COMMIT",
            xact::PREPARE => "PREPARE",
            xact::ABORT => "ABORT",
            xact::COMMIT_PREPARED => "COMMIT_PREPARED",
            xact::ABORT_PREPARED => "ABORT_PREPARED",
            xact::ASSIGNMENT => "ASSIGNMENT",
            // Singular in pg_waldump, unlike the C constant.
            xact::INVALIDATIONS => "INVALIDATION",
            _ => return None,
        },
        RM_SMGR_ID => match masked {
            smgr::CREATE => "CREATE",
            smgr::TRUNCATE => "TRUNCATE",
            _ => return None,
        },
        RM_CLOG_ID => match masked {
            clog::ZEROPAGE => "ZEROPAGE",
            clog::TRUNCATE => "TRUNCATE",
            _ => return None,
        },
        RM_DBASE_ID => match masked {
            dbase::CREATE_FILE_COPY => "CREATE_FILE_COPY",
            dbase::CREATE_WAL_LOG => "CREATE_WAL_LOG",
            dbase::DROP => "DROP",
            _ => return None,
        },
        RM_TBLSPC_ID => match masked {
            tblspc::CREATE => "CREATE",
            tblspc::DROP => "DROP",
            _ => return None,
        },
        RM_MULTIXACT_ID => match masked {
            multixact::ZERO_OFF_PAGE => "ZERO_OFF_PAGE",
            multixact::ZERO_MEM_PAGE => "ZERO_MEM_PAGE",
            multixact::CREATE_ID => "CREATE_ID",
            multixact::TRUNCATE_ID => "TRUNCATE_ID",
            _ => return None,
        },
        RM_RELMAP_ID => match masked {
            relmap::UPDATE => "UPDATE",
            _ => return None,
        },
        RM_STANDBY_ID => match masked {
            standby::LOCK => "LOCK",
            standby::RUNNING_XACTS => "RUNNING_XACTS",
            standby::INVALIDATIONS => "INVALIDATIONS",
            _ => return None,
        },
        RM_HEAP2_ID => match masked {
            heap2::PRUNE => "PRUNE",
            heap2::VACUUM => "VACUUM",
            heap2::FREEZE_PAGE => "FREEZE_PAGE",
            heap2::VISIBLE => "VISIBLE",
            heap2::MULTI_INSERT => "MULTI_INSERT",
            m if m == heap2::MULTI_INSERT | heap::INIT_PAGE => "MULTI_INSERT+INIT",
            heap2::LOCK_UPDATED => "LOCK_UPDATED",
            heap2::NEW_CID => "NEW_CID",
            heap2::REWRITE => "REWRITE",
            _ => return None,
        },
        RM_HEAP_ID => match masked {
            heap::INSERT => "INSERT",
            m if m == heap::INSERT | heap::INIT_PAGE => "INSERT+INIT",
            heap::DELETE => "DELETE",
            heap::UPDATE => "UPDATE",
            m if m == heap::UPDATE | heap::INIT_PAGE => "UPDATE+INIT",
            heap::HOT_UPDATE => "HOT_UPDATE",
            m if m == heap::HOT_UPDATE | heap::INIT_PAGE => "HOT_UPDATE+INIT",
            heap::TRUNCATE => "TRUNCATE",
            heap::CONFIRM => "HEAP_CONFIRM",
            heap::LOCK => "LOCK",
            heap::INPLACE => "INPLACE",
            _ => return None,
        },
        RM_BTREE_ID => match masked {
            btree::INSERT_LEAF => "INSERT_LEAF",
            btree::INSERT_UPPER => "INSERT_UPPER",
            btree::INSERT_META => "INSERT_META",
            btree::SPLIT_L => "SPLIT_L",
            btree::SPLIT_R => "SPLIT_R",
            btree::INSERT_POST => "INSERT_POST",
            btree::DEDUP => "DEDUP",
            btree::VACUUM => "VACUUM",
            btree::DELETE => "DELETE",
            btree::MARK_PAGE_HALFDEAD => "MARK_PAGE_HALFDEAD",
            btree::UNLINK_PAGE => "UNLINK_PAGE",
            btree::UNLINK_PAGE_META => "UNLINK_PAGE_META",
            btree::NEWROOT => "NEWROOT",
            btree::REUSE_PAGE => "REUSE_PAGE",
            btree::META_CLEANUP => "META_CLEANUP",
            _ => return None,
        },
        RM_HASH_ID => match masked {
            hash::INIT_META_PAGE => "INIT_META_PAGE",
            hash::INIT_BITMAP_PAGE => "INIT_BITMAP_PAGE",
            hash::INSERT => "INSERT",
            hash::ADD_OVFL_PAGE => "ADD_OVFL_PAGE",
            hash::SPLIT_ALLOCATE_PAGE => "SPLIT_ALLOCATE_PAGE",
            hash::SPLIT_PAGE => "SPLIT_PAGE",
            hash::SPLIT_COMPLETE => "SPLIT_COMPLETE",
            hash::MOVE_PAGE_CONTENTS => "MOVE_PAGE_CONTENTS",
            hash::SQUEEZE_PAGE => "SQUEEZE_PAGE",
            hash::DELETE => "DELETE",
            hash::SPLIT_CLEANUP => "SPLIT_CLEANUP",
            hash::UPDATE_META_PAGE => "UPDATE_META_PAGE",
            hash::VACUUM_ONE_PAGE => "VACUUM_ONE_PAGE",
            _ => return None,
        },
        RM_GIN_ID => match masked {
            gin::CREATE_PTREE => "CREATE_PTREE",
            gin::INSERT => "INSERT",
            gin::SPLIT => "SPLIT",
            gin::VACUUM_PAGE => "VACUUM_PAGE",
            gin::VACUUM_DATA_LEAF_PAGE => "VACUUM_DATA_LEAF_PAGE",
            gin::DELETE_PAGE => "DELETE_PAGE",
            gin::UPDATE_META_PAGE => "UPDATE_META_PAGE",
            gin::INSERT_LISTPAGE => "INSERT_LISTPAGE",
            gin::DELETE_LISTPAGE => "DELETE_LISTPAGE",
            _ => return None,
        },
        RM_GIST_ID => match masked {
            gist::PAGE_UPDATE => "PAGE_UPDATE",
            gist::DELETE => "DELETE",
            gist::PAGE_REUSE => "PAGE_REUSE",
            gist::PAGE_SPLIT => "PAGE_SPLIT",
            gist::PAGE_DELETE => "PAGE_DELETE",
            gist::ASSIGN_LSN => "ASSIGN_LSN",
            _ => return None,
        },
        RM_SEQ_ID => match masked {
            seq::LOG => "LOG",
            _ => return None,
        },
        RM_SPGIST_ID => match masked {
            spgist::ADD_LEAF => "ADD_LEAF",
            spgist::MOVE_LEAFS => "MOVE_LEAFS",
            spgist::ADD_NODE => "ADD_NODE",
            spgist::SPLIT_TUPLE => "SPLIT_TUPLE",
            spgist::PICKSPLIT => "PICKSPLIT",
            spgist::VACUUM_LEAF => "VACUUM_LEAF",
            spgist::VACUUM_ROOT => "VACUUM_ROOT",
            spgist::VACUUM_REDIRECT => "VACUUM_REDIRECT",
            _ => return None,
        },
        RM_BRIN_ID => match masked {
            brin::CREATE_INDEX => "CREATE_INDEX",
            brin::INSERT => "INSERT",
            m if m == brin::INSERT | brin::INIT_PAGE => "INSERT+INIT",
            brin::UPDATE => "UPDATE",
            m if m == brin::UPDATE | brin::INIT_PAGE => "UPDATE+INIT",
            brin::SAMEPAGE_UPDATE => "SAMEPAGE_UPDATE",
            brin::REVMAP_EXTEND => "REVMAP_EXTEND",
            brin::DESUMMARIZE => "DESUMMARIZE",
            _ => return None,
        },
        // These two match the whole info byte, low bits included.
        RM_COMMIT_TS_ID => match info {
            commit_ts::ZEROPAGE => "ZEROPAGE",
            commit_ts::TRUNCATE => "TRUNCATE",
            _ => return None,
        },
        RM_REPLORIGIN_ID => match info {
            replorigin::SET => "SET",
            replorigin::DROP => "DROP",
            _ => return None,
        },
        RM_GENERIC_ID => "Generic",
        RM_LOGICALMSG_ID => match masked {
            logicalmsg::MESSAGE => "MESSAGE",
            _ => return None,
        },
        _ => return None,
    };
    Some(name)
}

/// Number of distinct names per rmgr, as counted in the redo checklist (plus
/// the `+INIT` variants); used by tests to make sure no arm went missing.
#[cfg(test)]
pub(crate) fn all_names(rmid: u8) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = (0..=255u8).filter_map(|i| identify(rmid, i)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_checklist() {
        // (rmid, record types, +INIT variants)
        let expected: &[(u8, usize)] = &[
            (RM_XLOG_ID, 13),
            (RM_XACT_ID, 7),
            (RM_SMGR_ID, 2),
            (RM_CLOG_ID, 2),
            (RM_DBASE_ID, 3),
            (RM_TBLSPC_ID, 2),
            (RM_MULTIXACT_ID, 4),
            (RM_RELMAP_ID, 1),
            (RM_STANDBY_ID, 3),
            (RM_HEAP2_ID, 8 + 1),
            (RM_HEAP_ID, 8 + 3),
            (RM_BTREE_ID, 15),
            (RM_HASH_ID, 13),
            (RM_GIN_ID, 9),
            (RM_GIST_ID, 6),
            (RM_SEQ_ID, 1),
            (RM_SPGIST_ID, 8),
            (RM_BRIN_ID, 6 + 2),
            (RM_COMMIT_TS_ID, 2),
            (RM_REPLORIGIN_ID, 2),
            (RM_GENERIC_ID, 1),
            (RM_LOGICALMSG_ID, 1),
        ];
        for &(rmid, n) in expected {
            assert_eq!(all_names(rmid).len(), n, "rmgr {rmid}");
        }
        assert!(identify(22, 0).is_none());
        assert!(identify(200, 0).is_none());
    }

    #[test]
    fn masking_follows_postgres() {
        // Low info bits (e.g. XLR_CHECK_CONSISTENCY) are ignored by most rmgrs.
        assert_eq!(identify(RM_HEAP_ID, 0x02), Some("INSERT"));
        assert_eq!(identify(RM_HEAP_ID, 0x80), Some("INSERT+INIT"));
        assert_eq!(identify(RM_HEAP_ID, 0x90), None);
        // Transaction ignores its HAS_INFO bit.
        assert_eq!(identify(RM_XACT_ID, 0x80), Some("COMMIT"));
        // CommitTs matches the unmasked byte.
        assert_eq!(identify(RM_COMMIT_TS_ID, 0x01), None);
        assert_eq!(identify(RM_XLOG_ID, 0xC0), None);
    }
}
