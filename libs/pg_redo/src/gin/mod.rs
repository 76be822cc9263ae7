//! Redo for the GIN resource manager (rmgr 13) — PostgreSQL 15's
//! `ginxlog.c` — and its consistency mask `gin_mask`.
//!
//! Submodules: [`tree`] (entry and posting trees: CREATE_PTREE, INSERT,
//! SPLIT, VACUUM_PAGE, VACUUM_DATA_LEAF_PAGE, DELETE_PAGE), [`pending`]
//! (metapage and fast-update pending list: UPDATE_META_PAGE,
//! INSERT_LISTPAGE, DELETE_LISTPAGE), [`recompress`] (posting-tree leaf
//! segment actions), [`postinglist`] (the compressed posting-list codec).
//!
//! Record layouts (little-endian, C struct offsets; "BlockId" is a block
//! number stored as two u16 halves, high half first):
//!
//! | record | main data | blocks |
//! |---|---|---|
//! | CREATE_PTREE 0x10 | size u32 @0, `size` bytes of posting-list segments @4 | 0: new posting-tree root (WILL_INIT) |
//! | INSERT 0x20 | flags u16 @0 (ISDATA 1, ISLEAF 2); non-leaf: left child BlockId @2, right child BlockId @6 | 0: target page, data below; 1: left child (non-leaf only) |
//! | SPLIT 0x30 | node 12 bytes, rrlink u32 @12, left/right child u32 @16/@20, flags u16 @24 (ROOT 4) | 0 left, 1 right, 2 root (root split): always full images; 3: left child (non-leaf) |
//! | VACUUM_PAGE 0x40 | – | 0: always a full image |
//! | DELETE_PAGE 0x50 | parentOffset u16 @0, rightLink u32 @4, deleteXid u32 @8 | 0 deleted page, 1 parent, 2 left sibling |
//! | UPDATE_META_PAGE 0x60 | node 12 bytes, metadata 56 bytes @16, prevTail u32 @72, newRightlink u32 @76, ntuples i32 @80 | 0: metapage (WILL_INIT); 1: tail page (tuples as block data) or previous tail |
//! | INSERT_LISTPAGE 0x70 | rightlink u32 @0, ntuples i32 @4 | 0: new list page (WILL_INIT), tuples as block data |
//! | DELETE_LISTPAGE 0x80 | metadata 56 bytes @0, ndeleted i32 @56 | 0: metapage, 1..=ndeleted: deleted list pages (all WILL_INIT) |
//! | VACUUM_DATA_LEAF_PAGE 0x90 | – | 0: posting-tree leaf, recompress actions as block data |
//!
//! INSERT block 0 data by page kind: entry page — offset u16 @0, isDelete
//! u8 @2, index tuple @4; data internal page — offset u16 @0, PostingItem
//! (child BlockId, key item pointer; 10 bytes) @2; data leaf — recompress
//! actions (see [`recompress`]).
//!
//! Page layout: standard page with 8 bytes of special space
//! (`GinPageOpaqueData`: rightlink u32, maxoff u16, flags u16). Posting-tree
//! pages keep an 8-byte right bound after the header and their data from
//! byte [`DATA_START`]; `pd_lower` marks its end (internal pages hold
//! `maxoff` 10-byte PostingItems). The metapage keeps its 56-byte
//! `GinMetaPageData` after the header with `pd_lower` just past it.
//!
//! Where PostgreSQL's redo would PANIC/ERROR, or would write through an
//! invalid offset, we return an error; where it only asserts, we check the
//! same condition and refuse the record, so no page is ever guessed.

mod pending;
pub mod postinglist;
mod recompress;
mod tree;

#[cfg(test)]
mod tests;

use postgres_ffi::v15::info::gin;
use postgres_ffi::{BlockNumber, BLCKSZ};

use crate::dispatch::{prepare_existing, prepare_init, unsupported};
use crate::error::{PageOpError, RedoError};
use crate::mask;
use crate::pageops::{self, Page, SIZE_OF_PAGE_HEADER};
use crate::record::Ctx;

pub const GIN_DATA: u16 = 1 << 0;
pub const GIN_LEAF: u16 = 1 << 1;
pub const GIN_DELETED: u16 = 1 << 2;
pub const GIN_META: u16 = 1 << 3;
pub const GIN_LIST: u16 = 1 << 4;
pub const GIN_LIST_FULLROW: u16 = 1 << 5;
pub const GIN_INCOMPLETE_SPLIT: u16 = 1 << 6;
pub const GIN_COMPRESSED: u16 = 1 << 7;

/// `sizeof(GinPageOpaqueData)`.
pub const OPAQUE_SIZE: usize = 8;
/// Start of a posting-tree page's data: header (24) + MAXALIGNed right
/// bound item pointer (8).
pub const DATA_START: usize = 32;
/// `InvalidBlockNumber`.
pub const INVALID_BLOCK: BlockNumber = u32::MAX;

/// Whether the record type `info` (rmgr bits of xl_info) has native redo:
/// all nine GIN record types.
pub fn supports(info: u8) -> bool {
    matches!(
        info,
        gin::CREATE_PTREE
            | gin::INSERT
            | gin::SPLIT
            | gin::VACUUM_PAGE
            | gin::VACUUM_DATA_LEAF_PAGE
            | gin::DELETE_PAGE
            | gin::UPDATE_META_PAGE
            | gin::INSERT_LISTPAGE
            | gin::DELETE_LISTPAGE
    )
}

/// Redo of one block reference (not restored from an image).
pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    match ctx.info() {
        gin::CREATE_PTREE => tree::create_ptree(ctx, page),
        gin::INSERT => tree::insert(ctx, page),
        gin::SPLIT => tree::split(ctx, page),
        gin::VACUUM_PAGE => tree::vacuum_page(ctx),
        gin::VACUUM_DATA_LEAF_PAGE => tree::vacuum_data_leaf(ctx, page),
        gin::DELETE_PAGE => tree::delete_page(ctx, page),
        gin::UPDATE_META_PAGE => pending::update_meta(ctx, page),
        gin::INSERT_LISTPAGE => pending::insert_list_page(ctx, page),
        gin::DELETE_LISTPAGE => pending::delete_list_pages(ctx, page),
        _ => Err(unsupported(ctx.rec)),
    }
}

/// `gin_mask`: LSN, checksum and hint bits; a deleted page's whole content
/// (it was re-initialised empty, so nothing on it is meaningful); otherwise
/// the free space, but only when `pd_lower` is past the header — pre-9.4
/// posting-tree pages did not maintain pd_lower, so PostgreSQL does not
/// trust a pd_lower at the header end. A special pointer outside the page
/// (PostgreSQL would read garbage) counts as "not deleted".
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    let flags = Opaque::of(page).map_or(0, |o| o.flags(page));
    mask::mask_hint_bits(page);
    if flags & GIN_DELETED != 0 {
        mask::mask_page_content(page);
    } else if pageops::lower(page) as usize > SIZE_OF_PAGE_HEADER {
        mask::mask_unused_space(page);
    }
}

/// The special space of a GIN page, at a position checked to hold all of
/// `GinPageOpaqueData` inside the page.
#[derive(Debug, Clone, Copy)]
pub struct Opaque {
    pos: usize,
}

impl Opaque {
    /// `None` when pd_special does not leave room for the opaque data.
    pub fn of(page: &Page) -> Option<Opaque> {
        let pos = pageops::special(page) as usize;
        (pos >= SIZE_OF_PAGE_HEADER && pos + OPAQUE_SIZE <= BLCKSZ).then_some(Opaque { pos })
    }

    /// Like [`Opaque::of`], as a page error.
    pub fn get(ctx: &Ctx<'_>, page: &Page) -> Result<Opaque, RedoError> {
        Opaque::of(page).ok_or_else(|| {
            ctx.page_err(PageOpError::CorruptPointers {
                lower: pageops::lower(page),
                upper: pageops::upper(page),
                special: pageops::special(page),
            })
        })
    }

    /// Byte offset of the special space (where page data must end).
    pub fn pos(self) -> usize {
        self.pos
    }
    fn u16_at(self, page: &Page, off: usize) -> u16 {
        pageops::read_u16(page, self.pos + off).unwrap_or(0)
    }
    fn put_u16(self, page: &mut Page, off: usize, v: u16) {
        pageops::write_at(page, self.pos + off, &v.to_le_bytes());
    }
    pub fn rightlink(self, page: &Page) -> BlockNumber {
        pageops::read_u32(page, self.pos).unwrap_or(0)
    }
    pub fn set_rightlink(self, page: &mut Page, blk: BlockNumber) {
        pageops::write_at(page, self.pos, &blk.to_le_bytes());
    }
    pub fn maxoff(self, page: &Page) -> u16 {
        self.u16_at(page, 4)
    }
    pub fn set_maxoff(self, page: &mut Page, v: u16) {
        self.put_u16(page, 4, v)
    }
    pub fn flags(self, page: &Page) -> u16 {
        self.u16_at(page, 6)
    }
    pub fn set_flags(self, page: &mut Page, v: u16) {
        self.put_u16(page, 6, v)
    }
}

/// Fails unless the block being redone is one of `ids`.
fn expect_block(ctx: &Ctx<'_>, ids: &[u8]) -> Result<(), RedoError> {
    if ids.contains(&ctx.blk.block_id) {
        Ok(())
    } else {
        Err(ctx.malformed(format!("unexpected block reference {}", ctx.blk.block_id)))
    }
}

/// `XLogInitBufferForRedo` + `GinInitPage`: an empty page with GIN special
/// space, the given flags and no right sibling.
fn init_page(ctx: &Ctx<'_>, page: &mut Page, flags: u16) -> Result<Opaque, RedoError> {
    prepare_init(ctx, page, OPAQUE_SIZE)?;
    let o = Opaque::get(ctx, page)?;
    o.set_flags(page, flags);
    o.set_rightlink(page, INVALID_BLOCK);
    Ok(o)
}

/// The left child of a split this record completes: its
/// GIN_INCOMPLETE_SPLIT flag is cleared.
fn clear_incomplete_split(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let o = Opaque::get(ctx, page)?;
    o.set_flags(page, o.flags(page) & !GIN_INCOMPLETE_SPLIT);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// `pd_lower` of a posting-tree page holding `size` bytes of data.
fn set_data_size(ctx: &Ctx<'_>, page: &mut Page, o: Opaque, size: usize) -> Result<(), RedoError> {
    let end = DATA_START + size;
    if end > o.pos() {
        return Err(ctx.malformed(format!(
            "{size} bytes of posting data do not fit before the special space at {}",
            o.pos()
        )));
    }
    pageops::set_lower(page, end as u16);
    Ok(())
}
