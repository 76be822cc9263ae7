//! The keyspace map: which key holds which piece of a Postgres cluster.
//!
//! Owns the constructors, key ranges and predicates for every kind of key
//! (`neon-interfaces.md` §2.2), so that no other code spells out field values:
//!
//! | f1   | contents |
//! |------|----------|
//! | 0x00 | database directory, relmapper files, relation directories, relation blocks and sizes |
//! | 0x01 | SLRU directories, blocks and segment sizes |
//! | 0x02 | two-phase directory and state files |
//! | 0x03 | control file, checkpoint, legacy aux-files blob |
//! | 0x61 | relation sizes in the sparse keyspace (reserved) |
//! | 0x62 | aux files v2 (see [`super::aux`]) |
//! | 0x63 | replication origins |
//! | 0x64 | sparse database directory (reserved) |
//! | 0x65 | relation directory v2 (one key per relation fork) |
//!
//! Invariants the predicates rely on: relation blocks have `field4 != 0`
//! (relnode 0 is never a relation) and blocks never use `0xFFFFFFFF`, which
//! marks the size key of a relation fork or SLRU segment.
//!
//! Called by WAL ingest and the timeline's metadata accessors to build keys,
//! by the read path to classify them, and by sharding ([`crate::shard`]) and
//! branching ([`Key::is_inherited_key`]) to decide where keys live.

use std::ops::Range;

use super::{prefix_start, Key, METADATA_KEY_BEGIN_PREFIX, METADATA_KEY_END_PREFIX};
use crate::reltag::{BlockNumber, Oid, RelTag, SlruKind, UnknownSlruKind};

/// `field1` of relation sizes in the sparse keyspace (reserved, unused).
pub const RELATION_SIZE_PREFIX: u8 = 0x61;
/// `field1` of aux file v2 keys.
pub const AUX_KEY_PREFIX: u8 = 0x62;
/// `field1` of replication origin keys.
pub const REPL_ORIGIN_KEY_PREFIX: u8 = 0x63;
/// `field1` of the sparse database directory (reserved, unused).
pub const DB_DIR_KEY_PREFIX: u8 = 0x64;
/// `field1` of relation directory v2 keys.
pub const REL_DIR_KEY_PREFIX: u8 = 0x65;

/// `field6` of the size key of a relation fork or SLRU segment.
const SIZE_FIELD6: u32 = u32::MAX;

const fn key(field1: u8, field2: u32, field3: u32, field4: u32, field5: u8, field6: u32) -> Key {
    Key {
        field1,
        field2,
        field3,
        field4,
        field5,
        field6,
    }
}

// ---- 0x00: databases and relations ----

/// The list of databases (`DbDirectory`).
pub const DBDIR_KEY: Key = key(0x00, 0, 0, 0, 0, 0);

/// The relmapper file (`pg_filenode.map`) of a database.
pub fn relmap_file_key(spcnode: Oid, dbnode: Oid) -> Key {
    key(0x00, spcnode, dbnode, 0, 0, 0)
}

/// The list of relations of a database (`RelDirectory`, v1).
pub fn rel_dir_to_key(spcnode: Oid, dbnode: Oid) -> Key {
    key(0x00, spcnode, dbnode, 0, 0, 1)
}

/// A block of a relation fork.
pub fn rel_block_to_key(rel: RelTag, blkno: BlockNumber) -> Key {
    key(
        0x00,
        rel.spcnode,
        rel.dbnode,
        rel.relnode,
        rel.forknum,
        blkno,
    )
}

/// The size (number of blocks, u32 little-endian) of a relation fork.
pub fn rel_size_to_key(rel: RelTag) -> Key {
    rel_block_to_key(rel, SIZE_FIELD6)
}

/// Every block of one relation fork plus its size key.
pub fn rel_key_range(rel: RelTag) -> Range<Key> {
    // The key after the size key is block 0 of the next fork (carrying into
    // relnode for fork 255).
    rel_block_to_key(rel, 0)..rel_size_to_key(rel).next()
}

/// Every fork of one relation (blocks and sizes).
pub fn rel_tag_range(spcnode: Oid, dbnode: Oid, relnode: Oid) -> Range<Key> {
    let first = key(0x00, spcnode, dbnode, relnode, 0, 0);
    let last = key(0x00, spcnode, dbnode, relnode, u8::MAX, u32::MAX);
    first..last.next()
}

/// Everything of one database in the dense keyspace: relmapper file,
/// relation directory, relation blocks and sizes.
pub fn db_key_range(spcnode: Oid, dbnode: Oid) -> Range<Key> {
    let last = key(0x00, spcnode, dbnode, u32::MAX, u8::MAX, u32::MAX);
    relmap_file_key(spcnode, dbnode)..last.next()
}

/// The marker of a relation fork in the relation directory v2.
pub fn rel_tag_sparse_key(rel: RelTag) -> Key {
    key(
        REL_DIR_KEY_PREFIX,
        rel.spcnode,
        rel.dbnode,
        rel.relnode,
        rel.forknum,
        1,
    )
}

/// All relation directory v2 markers of one database.
pub fn rel_tag_sparse_key_range(spcnode: Oid, dbnode: Oid) -> Range<Key> {
    let last = key(
        REL_DIR_KEY_PREFIX,
        spcnode,
        dbnode,
        u32::MAX,
        u8::MAX,
        u32::MAX,
    );
    key(REL_DIR_KEY_PREFIX, spcnode, dbnode, 0, 0, 0)..last.next()
}

// ---- 0x01: SLRUs ----

/// The list of segments of an SLRU (`SlruSegmentDirectory`).
pub fn slru_dir_to_key(kind: SlruKind) -> Key {
    key(0x01, kind.code(), 0, 0, 0, 0)
}

/// A block of an SLRU segment.
pub fn slru_block_to_key(kind: SlruKind, segno: u32, blkno: BlockNumber) -> Key {
    key(0x01, kind.code(), 1, segno, 0, blkno)
}

/// The size (number of blocks, u32 little-endian) of an SLRU segment.
pub fn slru_segment_size_to_key(kind: SlruKind, segno: u32) -> Key {
    slru_block_to_key(kind, segno, SIZE_FIELD6)
}

/// Every block of one SLRU segment plus its size key.
pub fn slru_segment_key_range(kind: SlruKind, segno: u32) -> Range<Key> {
    slru_block_to_key(kind, segno, 0)..slru_segment_size_to_key(kind, segno).next()
}

/// Everything of one SLRU: directory, blocks and sizes.
pub fn slru_kind_key_range(kind: SlruKind) -> Range<Key> {
    let last = key(0x01, kind.code(), u32::MAX, u32::MAX, u8::MAX, u32::MAX);
    slru_dir_to_key(kind)..last.next()
}

// ---- 0x02: two-phase state ----

/// The list of prepared transactions (`TwoPhaseDirectory`).
pub const TWOPHASEDIR_KEY: Key = key(0x02, 0, 0, 0, 0, 0);

/// The state file of a prepared transaction; a 64-bit xid is spread over
/// `field4` (bits 63..40), `field5` (bits 39..32) and `field6` (bits 31..0).
pub fn twophase_file_key(xid: u64) -> Key {
    key(
        0x02,
        0,
        0,
        (xid >> 40) as u32,
        (xid >> 32) as u8,
        xid as u32,
    )
}

/// The xid of a two-phase file key, `None` for other keys.
pub fn twophase_key_xid(key: &Key) -> Option<u64> {
    let is_file =
        key.field1 == 0x02 && key.field2 == 0 && key.field3 == 0 && *key != TWOPHASEDIR_KEY;
    is_file.then(|| {
        (u64::from(key.field4) << 40) | (u64::from(key.field5) << 32) | u64::from(key.field6)
    })
}

/// All two-phase file keys (the directory key excluded).
pub fn twophase_key_range() -> Range<Key> {
    TWOPHASEDIR_KEY.next()..prefix_start(0x03)
}

// ---- 0x03: control file and checkpoint ----

/// The raw `pg_control` file.
pub const CONTROLFILE_KEY: Key = key(0x03, 0, 0, 0, 0, 0);
/// The serialized Postgres `CheckPoint` struct.
pub const CHECKPOINT_KEY: Key = key(0x03, 0, 0, 0, 0, 1);
/// Legacy (v1) aux-files blob; obsolete and never inherited by branches.
pub const AUX_FILES_KEY: Key = key(0x03, 0, 0, 0, 0, 2);

// ---- sparse keyspace ----

/// The last applied LSN (u64 big-endian) of a replication origin.
pub fn repl_origin_key(origin_id: u16) -> Key {
    key(REPL_ORIGIN_KEY_PREFIX, 0, 0, 0, 0, u32::from(origin_id))
}

/// All replication origin keys.
pub fn repl_origin_key_range() -> Range<Key> {
    repl_origin_key(0)..key(REPL_ORIGIN_KEY_PREFIX, 0, 0, 0, 0, 0x1_0000)
}

/// All aux file v2 keys.
pub fn aux_key_range() -> Range<Key> {
    prefix_start(AUX_KEY_PREFIX)..prefix_start(AUX_KEY_PREFIX + 1)
}

/// All relation directory v2 keys.
pub fn rel_dir_sparse_key_range() -> Range<Key> {
    prefix_start(REL_DIR_KEY_PREFIX)..prefix_start(REL_DIR_KEY_PREFIX + 1)
}

/// A key is not a relation block although the caller expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("key {0} is not a relation block or size key")]
pub struct NotRelKey(pub Key);

/// A key is not an SLRU block although the caller expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotSlruBlockKey {
    #[error("key {0} is not an SLRU block key")]
    Kind(Key),
    #[error("key {key}: {source}")]
    UnknownKind { key: Key, source: UnknownSlruKind },
}

impl Key {
    /// A block of a relation fork (not its size, not a directory entry).
    pub fn is_rel_block_key(&self) -> bool {
        self.field1 == 0x00 && self.field4 != 0 && self.field6 != SIZE_FIELD6
    }

    /// A block of the free-space-map fork.
    pub fn is_rel_fsm_block_key(&self) -> bool {
        self.is_rel_block_key() && self.field5 == crate::reltag::FSM_FORKNUM
    }

    /// A block of the visibility-map fork.
    pub fn is_rel_vm_block_key(&self) -> bool {
        self.is_rel_block_key() && self.field5 == crate::reltag::VISIBILITYMAP_FORKNUM
    }

    /// The size key of a relation fork.
    pub fn is_rel_size_key(&self) -> bool {
        self.field1 == 0x00 && self.field4 != 0 && self.field6 == SIZE_FIELD6
    }

    /// The relation directory (v1) of a database.
    pub fn is_rel_dir_key(&self) -> bool {
        self.field1 == 0x00 && self.field4 == 0 && self.field5 == 0 && self.field6 == 1
    }

    /// The relmapper file of a database (not the database directory).
    pub fn is_relmap_key(&self) -> bool {
        self.field1 == 0x00
            && (self.field2, self.field3) != (0, 0)
            && self.field4 == 0
            && self.field5 == 0
            && self.field6 == 0
    }

    /// A block of an SLRU segment.
    pub fn is_slru_block_key(&self) -> bool {
        self.field1 == 0x01 && self.field3 == 1 && self.field6 != SIZE_FIELD6
    }

    /// The size key of an SLRU segment.
    pub fn is_slru_segment_size_key(&self) -> bool {
        self.field1 == 0x01
            && SlruKind::from_code(self.field2).is_ok()
            && self.field3 == 1
            && self.field5 == 0
            && self.field6 == SIZE_FIELD6
    }

    /// The segment directory of an SLRU (of any kind code, known or not).
    pub fn is_slru_dir_key(&self) -> bool {
        self.field1 == 0x01
            && self.field3 == 0
            && self.field4 == 0
            && self.field5 == 0
            && self.field6 == 0
    }

    /// An aux file v2 key.
    pub fn is_aux_file_key(&self) -> bool {
        self.field1 == AUX_KEY_PREFIX
    }

    /// A replication origin key.
    pub fn is_repl_origin_key(&self) -> bool {
        self.field1 == REPL_ORIGIN_KEY_PREFIX
    }

    /// Whether a branch reads this key through to its ancestor.
    ///
    /// Dense keys are inherited, except the legacy aux-files blob
    /// ([`AUX_FILES_KEY`]): logical replication state is not carried over to
    /// branches. Among sparse keys only the relation size prefix (0x61) is
    /// inherited; aux files, replication origins and relation directory v2
    /// keys are not looked up in ancestors by this rule.
    pub fn is_inherited_key(&self) -> bool {
        if self.is_metadata_key() {
            self.field1 == RELATION_SIZE_PREFIX
        } else {
            *self != AUX_FILES_KEY
        }
    }

    /// The relation fork and block number of a relation block or size key
    /// (a size key yields block `0xFFFFFFFF`).
    pub fn to_rel_block(&self) -> Result<(RelTag, BlockNumber), NotRelKey> {
        if self.field1 != 0x00 || self.field4 == 0 {
            return Err(NotRelKey(*self));
        }
        let rel = RelTag::new(self.field2, self.field3, self.field4, self.field5);
        Ok((rel, self.field6))
    }

    /// The SLRU kind, segment and block of an SLRU block key.
    pub fn to_slru_block(&self) -> Result<(SlruKind, u32, BlockNumber), NotSlruBlockKey> {
        if !self.is_slru_block_key() {
            return Err(NotSlruBlockKey::Kind(*self));
        }
        let kind = SlruKind::from_code(self.field2)
            .map_err(|source| NotSlruBlockKey::UnknownKind { key: *self, source })?;
        Ok((kind, self.field4, self.field6))
    }
}

/// Whether `field1` is one of the reserved or used sparse prefixes.
pub fn is_sparse_prefix(field1: u8) -> bool {
    (METADATA_KEY_BEGIN_PREFIX..METADATA_KEY_END_PREFIX).contains(&field1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reltag::{FSM_FORKNUM, INIT_FORKNUM, MAIN_FORKNUM, VISIBILITYMAP_FORKNUM};

    const REL: RelTag = RelTag {
        spcnode: 1663,
        dbnode: 5,
        relnode: 16384,
        forknum: MAIN_FORKNUM,
    };

    #[test]
    fn relation_keys_follow_the_table() {
        let b = rel_block_to_key(REL, 7);
        assert_eq!(b.to_string(), "000000067F00000005000040000000000007");
        assert!(b.is_rel_block_key());
        assert!(!b.is_rel_size_key());
        assert_eq!(b.to_rel_block(), Ok((REL, 7)));

        let s = rel_size_to_key(REL);
        assert_eq!(s.to_string(), "000000067F000000050000400000FFFFFFFF");
        assert!(s.is_rel_size_key());
        assert!(!s.is_rel_block_key());
        assert_eq!(s.to_rel_block(), Ok((REL, u32::MAX)));

        assert_eq!(relmap_file_key(1663, 5), key(0, 1663, 5, 0, 0, 0));
        assert!(relmap_file_key(1663, 5).is_relmap_key());
        assert!(!DBDIR_KEY.is_relmap_key());
        assert_eq!(rel_dir_to_key(1663, 5), key(0, 1663, 5, 0, 0, 1));
        assert!(rel_dir_to_key(1663, 5).is_rel_dir_key());
        assert!(!rel_dir_to_key(1663, 5).is_rel_block_key());
        assert!(!relmap_file_key(1663, 5).is_rel_block_key());
        assert_eq!(DBDIR_KEY, Key::MIN);
        assert!(DBDIR_KEY.to_rel_block().is_err());
        assert!(CHECKPOINT_KEY.to_rel_block().is_err());

        assert!(rel_block_to_key(REL.with_forknum(FSM_FORKNUM), 0).is_rel_fsm_block_key());
        assert!(rel_block_to_key(REL.with_forknum(VISIBILITYMAP_FORKNUM), 0).is_rel_vm_block_key());
        assert!(!b.is_rel_fsm_block_key());
    }

    #[test]
    fn relation_ranges_cover_exactly_one_fork() {
        let r = rel_key_range(REL);
        assert!(r.contains(&rel_block_to_key(REL, 0)));
        assert!(r.contains(&rel_block_to_key(REL, 123_456)));
        assert!(r.contains(&rel_size_to_key(REL)));
        assert!(!r.contains(&rel_block_to_key(REL.with_forknum(FSM_FORKNUM), 0)));
        assert_eq!(r.end, rel_block_to_key(REL.with_forknum(FSM_FORKNUM), 0));

        // Fork 255 carries into the next relnode instead of overflowing.
        let odd = REL.with_forknum(u8::MAX);
        let r = rel_key_range(odd);
        assert!(r.start < r.end);
        assert_eq!(r.end, key(0, 1663, 5, 16385, 0, 0));

        let all = rel_tag_range(1663, 5, 16384);
        for fork in [
            MAIN_FORKNUM,
            FSM_FORKNUM,
            VISIBILITYMAP_FORKNUM,
            INIT_FORKNUM,
        ] {
            assert!(all.contains(&rel_size_to_key(REL.with_forknum(fork))));
        }
        assert!(!all.contains(&rel_block_to_key(
            RelTag {
                relnode: 16385,
                ..REL
            },
            0
        )));

        let db = db_key_range(1663, 5);
        assert!(db.contains(&relmap_file_key(1663, 5)));
        assert!(db.contains(&rel_dir_to_key(1663, 5)));
        assert!(db.contains(&rel_size_to_key(RelTag {
            relnode: u32::MAX,
            ..REL
        })));
        assert!(!db.contains(&relmap_file_key(1663, 6)));
        assert_eq!(db.end, relmap_file_key(1663, 6));
    }

    #[test]
    fn slru_keys_follow_the_table() {
        for kind in SlruKind::ALL {
            let dir = slru_dir_to_key(kind);
            assert_eq!(dir, key(1, kind.code(), 0, 0, 0, 0));
            assert!(dir.is_slru_dir_key());
            assert!(!dir.is_slru_block_key());

            let blk = slru_block_to_key(kind, 3, 9);
            assert_eq!(blk, key(1, kind.code(), 1, 3, 0, 9));
            assert!(blk.is_slru_block_key());
            assert!(!blk.is_slru_segment_size_key());
            assert!(!blk.is_rel_block_key());
            assert_eq!(blk.to_slru_block(), Ok((kind, 3, 9)));

            let size = slru_segment_size_to_key(kind, 3);
            assert_eq!(size.field6, u32::MAX);
            assert!(size.is_slru_segment_size_key());
            assert!(!size.is_slru_block_key());
            assert!(size.to_slru_block().is_err());

            let seg = slru_segment_key_range(kind, 3);
            assert!(seg.contains(&blk) && seg.contains(&size));
            assert!(!seg.contains(&slru_block_to_key(kind, 4, 0)));

            let all = slru_kind_key_range(kind);
            assert!(all.contains(&dir) && all.contains(&size));
        }
        let bogus = key(1, 9, 1, 0, 0, 0);
        assert!(matches!(
            bogus.to_slru_block(),
            Err(NotSlruBlockKey::UnknownKind { .. })
        ));
        assert!(!slru_kind_key_range(SlruKind::Clog)
            .contains(&slru_dir_to_key(SlruKind::MultiXactMembers)));
    }

    #[test]
    fn twophase_and_misc_keys() {
        assert_eq!(TWOPHASEDIR_KEY, key(2, 0, 0, 0, 0, 0));
        let xid: u64 = 0x0123_4567_89AB_CDEF;
        let k = twophase_file_key(xid);
        assert_eq!(k, key(2, 0, 0, 0x01_2345, 0x67, 0x89AB_CDEF));
        assert_eq!(twophase_key_xid(&k), Some(xid));
        assert_eq!(
            twophase_key_xid(&twophase_file_key(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(twophase_key_xid(&TWOPHASEDIR_KEY), None);
        assert_eq!(twophase_key_xid(&CONTROLFILE_KEY), None);
        assert!(twophase_key_range().contains(&twophase_file_key(1)));
        assert!(twophase_key_range().contains(&twophase_file_key(u64::MAX)));
        assert!(!twophase_key_range().contains(&TWOPHASEDIR_KEY));

        assert_eq!(CONTROLFILE_KEY.to_string(), format!("03{}", "0".repeat(34)));
        assert_eq!(CHECKPOINT_KEY, key(3, 0, 0, 0, 0, 1));
        assert_eq!(AUX_FILES_KEY, key(3, 0, 0, 0, 0, 2));

        let origin = repl_origin_key(0xBEEF);
        assert_eq!(origin, key(0x63, 0, 0, 0, 0, 0xBEEF));
        assert!(origin.is_metadata_key() && origin.is_repl_origin_key());
        assert!(repl_origin_key_range().contains(&repl_origin_key(u16::MAX)));
        assert!(aux_key_range().contains(&key(0x62, 0xFFFF, 1, 2, 3, 4)));
        assert!(!aux_key_range().contains(&origin));

        let sparse = rel_tag_sparse_key(REL);
        assert_eq!(sparse, key(0x65, 1663, 5, 16384, 0, 1));
        assert!(rel_tag_sparse_key_range(1663, 5).contains(&sparse));
        assert!(rel_dir_sparse_key_range().contains(&sparse));
        assert!(!rel_tag_sparse_key_range(1663, 6).contains(&sparse));
        assert!(is_sparse_prefix(0x60) && is_sparse_prefix(0x7E));
        assert!(!is_sparse_prefix(0x7F) && !is_sparse_prefix(0x03));
    }

    #[test]
    fn inheritance_rule() {
        assert!(rel_block_to_key(REL, 0).is_inherited_key());
        assert!(rel_size_to_key(REL).is_inherited_key());
        assert!(DBDIR_KEY.is_inherited_key());
        assert!(CHECKPOINT_KEY.is_inherited_key());
        assert!(slru_block_to_key(SlruKind::Clog, 0, 0).is_inherited_key());
        assert!(!AUX_FILES_KEY.is_inherited_key());
        assert!(AUX_FILES_KEY.next().is_inherited_key());
        assert!(prefix_start(RELATION_SIZE_PREFIX).is_inherited_key());
        assert!(!prefix_start(AUX_KEY_PREFIX).is_inherited_key());
        assert!(!repl_origin_key(1).is_inherited_key());
        assert!(!rel_tag_sparse_key(REL).is_inherited_key());
        assert!(!prefix_start(DB_DIR_KEY_PREFIX).is_inherited_key());
        assert!(
            Key::MAX.is_inherited_key(),
            "0xFF is outside the sparse range"
        );
    }
}
