//! Record type codes (`xl_info & XLR_RMGR_INFO_MASK`) of every PostgreSQL 15
//! resource manager, one submodule per rmgr, named as in the C headers minus
//! their common prefix (`XLOG_HEAP_INSERT` → [`heap::INSERT`]).
//!
//! Heap, Heap2, BRIN and Transaction use the top bit as a flag on a 3-bit
//! operation (their `OPMASK` is 0x70); the others use the whole high nibble.
//! Used by [`super::rmgr_names`] and, later, by ingest and redo dispatch.

/// RM_XLOG_ID (pg_control.h).
pub mod xlog {
    pub const CHECKPOINT_SHUTDOWN: u8 = 0x00;
    pub const CHECKPOINT_ONLINE: u8 = 0x10;
    pub const NOOP: u8 = 0x20;
    pub const NEXTOID: u8 = 0x30;
    pub const SWITCH: u8 = 0x40;
    pub const BACKUP_END: u8 = 0x50;
    pub const PARAMETER_CHANGE: u8 = 0x60;
    pub const RESTORE_POINT: u8 = 0x70;
    pub const FPW_CHANGE: u8 = 0x80;
    pub const END_OF_RECOVERY: u8 = 0x90;
    pub const FPI_FOR_HINT: u8 = 0xA0;
    pub const FPI: u8 = 0xB0;
    pub const OVERWRITE_CONTRECORD: u8 = 0xD0;
}

/// RM_XACT_ID (xact.h).
pub mod xact {
    pub const COMMIT: u8 = 0x00;
    pub const PREPARE: u8 = 0x10;
    pub const ABORT: u8 = 0x20;
    pub const COMMIT_PREPARED: u8 = 0x30;
    pub const ABORT_PREPARED: u8 = 0x40;
    pub const ASSIGNMENT: u8 = 0x50;
    pub const INVALIDATIONS: u8 = 0x60;
    /// Mask selecting the operation.
    pub const OPMASK: u8 = 0x70;
    /// An `xinfo` word follows the timestamp in the main data.
    pub const HAS_INFO: u8 = 0x80;
}

/// RM_SMGR_ID (storage_xlog.h).
pub mod smgr {
    pub const CREATE: u8 = 0x10;
    pub const TRUNCATE: u8 = 0x20;
}

/// RM_CLOG_ID (clog.h).
pub mod clog {
    pub const ZEROPAGE: u8 = 0x00;
    pub const TRUNCATE: u8 = 0x10;
}

/// RM_DBASE_ID (dbcommands_xlog.h).
pub mod dbase {
    pub const CREATE_FILE_COPY: u8 = 0x00;
    pub const CREATE_WAL_LOG: u8 = 0x10;
    pub const DROP: u8 = 0x20;
}

/// RM_TBLSPC_ID (tablespace.h).
pub mod tblspc {
    pub const CREATE: u8 = 0x00;
    pub const DROP: u8 = 0x10;
}

/// RM_MULTIXACT_ID (multixact.h).
pub mod multixact {
    pub const ZERO_OFF_PAGE: u8 = 0x00;
    pub const ZERO_MEM_PAGE: u8 = 0x10;
    pub const CREATE_ID: u8 = 0x20;
    pub const TRUNCATE_ID: u8 = 0x30;
}

/// RM_RELMAP_ID (relmapper.h).
pub mod relmap {
    pub const UPDATE: u8 = 0x00;
}

/// RM_STANDBY_ID (standbydefs.h).
pub mod standby {
    pub const LOCK: u8 = 0x00;
    pub const RUNNING_XACTS: u8 = 0x10;
    pub const INVALIDATIONS: u8 = 0x20;
}

/// RM_HEAP_ID (heapam_xlog.h).
pub mod heap {
    pub const INSERT: u8 = 0x00;
    pub const DELETE: u8 = 0x10;
    pub const UPDATE: u8 = 0x20;
    pub const TRUNCATE: u8 = 0x30;
    pub const HOT_UPDATE: u8 = 0x40;
    pub const CONFIRM: u8 = 0x50;
    pub const LOCK: u8 = 0x60;
    pub const INPLACE: u8 = 0x70;
    /// Mask selecting the operation.
    pub const OPMASK: u8 = 0x70;
    /// The record re-initialises the page (also used by Heap2 MULTI_INSERT).
    pub const INIT_PAGE: u8 = 0x80;
}

/// RM_HEAP2_ID (heapam_xlog.h).
pub mod heap2 {
    pub const REWRITE: u8 = 0x00;
    pub const PRUNE: u8 = 0x10;
    pub const VACUUM: u8 = 0x20;
    pub const FREEZE_PAGE: u8 = 0x30;
    pub const VISIBLE: u8 = 0x40;
    pub const MULTI_INSERT: u8 = 0x50;
    pub const LOCK_UPDATED: u8 = 0x60;
    pub const NEW_CID: u8 = 0x70;
}

/// RM_BTREE_ID (nbtxlog.h).
pub mod btree {
    pub const INSERT_LEAF: u8 = 0x00;
    pub const INSERT_UPPER: u8 = 0x10;
    pub const INSERT_META: u8 = 0x20;
    pub const SPLIT_L: u8 = 0x30;
    pub const SPLIT_R: u8 = 0x40;
    pub const INSERT_POST: u8 = 0x50;
    pub const DEDUP: u8 = 0x60;
    pub const DELETE: u8 = 0x70;
    pub const UNLINK_PAGE: u8 = 0x80;
    pub const UNLINK_PAGE_META: u8 = 0x90;
    pub const NEWROOT: u8 = 0xA0;
    pub const MARK_PAGE_HALFDEAD: u8 = 0xB0;
    pub const VACUUM: u8 = 0xC0;
    pub const REUSE_PAGE: u8 = 0xD0;
    pub const META_CLEANUP: u8 = 0xE0;
}

/// RM_HASH_ID (hash_xlog.h).
pub mod hash {
    pub const INIT_META_PAGE: u8 = 0x00;
    pub const INIT_BITMAP_PAGE: u8 = 0x10;
    pub const INSERT: u8 = 0x20;
    pub const ADD_OVFL_PAGE: u8 = 0x30;
    pub const SPLIT_ALLOCATE_PAGE: u8 = 0x40;
    pub const SPLIT_PAGE: u8 = 0x50;
    pub const SPLIT_COMPLETE: u8 = 0x60;
    pub const MOVE_PAGE_CONTENTS: u8 = 0x70;
    pub const SQUEEZE_PAGE: u8 = 0x80;
    pub const DELETE: u8 = 0x90;
    pub const SPLIT_CLEANUP: u8 = 0xA0;
    pub const UPDATE_META_PAGE: u8 = 0xB0;
    pub const VACUUM_ONE_PAGE: u8 = 0xC0;
}

/// RM_GIN_ID (ginxlog.h).
pub mod gin {
    pub const CREATE_PTREE: u8 = 0x10;
    pub const INSERT: u8 = 0x20;
    pub const SPLIT: u8 = 0x30;
    pub const VACUUM_PAGE: u8 = 0x40;
    pub const DELETE_PAGE: u8 = 0x50;
    pub const UPDATE_META_PAGE: u8 = 0x60;
    pub const INSERT_LISTPAGE: u8 = 0x70;
    pub const DELETE_LISTPAGE: u8 = 0x80;
    pub const VACUUM_DATA_LEAF_PAGE: u8 = 0x90;
}

/// RM_GIST_ID (gistxlog.h).
pub mod gist {
    pub const PAGE_UPDATE: u8 = 0x00;
    pub const DELETE: u8 = 0x10;
    pub const PAGE_REUSE: u8 = 0x20;
    pub const PAGE_SPLIT: u8 = 0x30;
    pub const PAGE_DELETE: u8 = 0x60;
    pub const ASSIGN_LSN: u8 = 0x70;
}

/// RM_SEQ_ID (sequence.h).
pub mod seq {
    pub const LOG: u8 = 0x00;
}

/// RM_SPGIST_ID (spgxlog.h).
pub mod spgist {
    pub const ADD_LEAF: u8 = 0x10;
    pub const MOVE_LEAFS: u8 = 0x20;
    pub const ADD_NODE: u8 = 0x30;
    pub const SPLIT_TUPLE: u8 = 0x40;
    pub const PICKSPLIT: u8 = 0x50;
    pub const VACUUM_LEAF: u8 = 0x60;
    pub const VACUUM_ROOT: u8 = 0x70;
    pub const VACUUM_REDIRECT: u8 = 0x80;
}

/// RM_BRIN_ID (brin_xlog.h).
pub mod brin {
    pub const CREATE_INDEX: u8 = 0x00;
    pub const INSERT: u8 = 0x10;
    pub const UPDATE: u8 = 0x20;
    pub const SAMEPAGE_UPDATE: u8 = 0x30;
    pub const REVMAP_EXTEND: u8 = 0x40;
    pub const DESUMMARIZE: u8 = 0x50;
    /// Mask selecting the operation.
    pub const OPMASK: u8 = 0x70;
    /// The record re-initialises the page.
    pub const INIT_PAGE: u8 = 0x80;
}

/// RM_COMMIT_TS_ID (commit_ts.h).
pub mod commit_ts {
    pub const ZEROPAGE: u8 = 0x00;
    pub const TRUNCATE: u8 = 0x10;
}

/// RM_REPLORIGIN_ID (origin.h).
pub mod replorigin {
    pub const SET: u8 = 0x00;
    pub const DROP: u8 = 0x10;
}

/// RM_GENERIC_ID (generic_xlog.h): a single record type.
pub mod generic {
    pub const GENERIC: u8 = 0x00;
}

/// RM_LOGICALMSG_ID (message.h).
pub mod logicalmsg {
    pub const MESSAGE: u8 = 0x00;
}
