//! Redo for the SP-GiST resource manager (rmgr 16): all eight record types
//! of PostgreSQL 15's `spgxlog.c`, and `spg_mask`.
//!
//! Submodules: `records` decodes the main data, `page` holds the page
//! and tuple primitives (special space, dead tuples, the placeholder-aware
//! add, node downlinks, `spgPageIndexMultiDelete`), `redo` the per-record
//! routines.
//!
//! Every record keeps its whole payload in the main data; block references
//! carry no data (C struct offsets, little-endian; tuples are unaligned and
//! sized by their own headers; "state" is `spgxlogState` = myXid u32 @+0,
//! isBuild u8 @+4):
//!
//! | info | record | main data | blocks |
//! |---|---|---|---|
//! | 0x10 | ADD_LEAF | newPage @0, storesNulls @1, offnumLeaf u16 @2, offnumHeadLeaf u16 @4, offnumParent u16 @6, nodeI u16 @8; leaf tuple @10 | 0 leaf (WILL_INIT if newPage), 1 parent (iff offnumParent ≠ 0) |
//! | 0x20 | MOVE_LEAFS | nMoves u16 @0, newPage @2, replaceDead @3, storesNulls @4, offnumParent u16 @6, nodeI u16 @8, state @12; @20: nMoves deleted offsets, nMoves+1 (1 if replaceDead) inserted offsets, as many leaf tuples | 0 source, 1 destination (WILL_INIT if newPage), 2 parent |
//! | 0x30 | ADD_NODE | offnum u16 @0, offnumNew u16 @2, newPage @4, parentBlk i8 @5, offnumParent u16 @6, nodeI u16 @8, state @12; inner tuple @20 | 0 original page, 1 new home of the tuple (absent = in place), 2 parent (iff parentBlk = 2) |
//! | 0x40 | SPLIT_TUPLE | offnumPrefix u16 @0, offnumPostfix u16 @2, newPage @4, postfixBlkSame @5; prefix tuple @6, then postfix tuple | 0 prefix page, 1 postfix page (unless same) |
//! | 0x50 | PICKSPLIT | isRootSplit @0, nDelete u16 @2, nInsert u16 @4, initSrc @6, initDest @7, offnumInner u16 @8, initInner @10, storesNulls @11, innerIsParent @12, offnumParent u16 @14, nodeI u16 @16, state @20; @28: nDelete + nInsert offsets, nInsert selector bytes, inner tuple, nInsert leaf tuples | 0 source leaf (not for a root split), 1 destination leaf, 2 inner page, 3 parent (if not the inner page) |
//! | 0x60 | VACUUM_LEAF | nDead, nPlaceholder, nMove, nChain u16 @0..8, state @8; @16: dead, placeholder, move-from, move-to, chain-from, chain-to offsets | 0 |
//! | 0x70 | VACUUM_ROOT | nDelete u16 @0, state @4; @12: offsets | 0 |
//! | 0x80 | VACUUM_REDIRECT | nToPlaceholder u16 @0, firstPlaceholder u16 @2, newestRedirectXid u32 @4; @8: offsets | 0 |
//!
//! The "fake state" matters for the dead tuples redo creates: a redirect
//! carries the inserting transaction's xid (myXid) and VACUUM_REDIRECT later
//! removes it only once that xid is older than every snapshot; during an
//! index build (isBuild) placeholders replace redirects. PostgreSQL 15
//! builds indexes without these records (it logs the finished pages), so
//! isBuild is always false in real WAL; the unit tests cover both.
//!
//! Invariants: a page is only changed when PostgreSQL's redo would change
//! it (BLK_NEEDS_REDO), and then gets the record's end LSN. Offsets,
//! counts and tuple sizes from the record are validated against the record
//! and the page before use; inconsistencies are [`RedoError`]s.

mod page;
mod records;
mod redo;

use postgres_ffi::v15::info::spgist;
use postgres_ffi::BlockNumber;

use crate::dispatch::unsupported;
use crate::error::RedoError;
use crate::mask;
use crate::pageops::{self, Page, SIZE_OF_PAGE_HEADER};
use crate::record::Ctx;

/// Whether the record type `info` (rmgr bits of xl_info) has native redo.
pub fn supports(info: u8) -> bool {
    matches!(
        info,
        spgist::ADD_LEAF
            | spgist::MOVE_LEAFS
            | spgist::ADD_NODE
            | spgist::SPLIT_TUPLE
            | spgist::PICKSPLIT
            | spgist::VACUUM_LEAF
            | spgist::VACUUM_ROOT
            | spgist::VACUUM_REDIRECT
    )
}

/// Redo of one block reference (not restored from an image).
pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    match ctx.info() {
        spgist::ADD_LEAF => redo::add_leaf(ctx, page),
        spgist::MOVE_LEAFS => redo::move_leafs(ctx, page),
        spgist::ADD_NODE => redo::add_node(ctx, page),
        spgist::SPLIT_TUPLE => redo::split_tuple(ctx, page),
        spgist::PICKSPLIT => redo::pick_split(ctx, page),
        spgist::VACUUM_LEAF => redo::vacuum_leaf(ctx, page),
        spgist::VACUUM_ROOT => redo::vacuum_root(ctx, page),
        spgist::VACUUM_REDIRECT => redo::vacuum_redirect(ctx, page),
        _ => Err(unsupported(ctx.rec)),
    }
}

/// `spg_mask`: LSN, checksum and page hint bits, and the free space only
/// when pd_lower looks set (at least the header size); a page with a
/// smaller pd_lower keeps everything past its header.
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    mask::mask_hint_bits(page);
    if pageops::lower(page) as usize >= SIZE_OF_PAGE_HEADER {
        mask::mask_unused_space(page);
    }
}

#[cfg(test)]
mod tests;
