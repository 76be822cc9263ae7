//! Redo for the Hash index resource manager (rmgr 12): all 13 record types
//! of PostgreSQL 15's `hash_xlog.c`, one block reference at a time, plus
//! `hash_mask`.
//!
//! Submodules: [`page`] (special space, metapage and bitmap layouts, the
//! page-initialisation steps of `hashpage.c` / `hashovfl.c`) and `redo`
//! (the record routines).
//!
//! Main data and block data (little-endian, C struct offsets; bools are one
//! byte, non-zero = true):
//!
//! | record | main data | blocks |
//! |---|---|---|
//! | INIT_META_PAGE 0x00 | num_tuples f64 @0, procid u32 @8, ffactor u16 @12 | 0 meta (WILL_INIT) |
//! | INIT_BITMAP_PAGE 0x10 | bmsize u16 | 0 bitmap (WILL_INIT); 1 meta: mapp[nmaps++] = maxbucket + 2 |
//! | INSERT 0x20 | offnum u16 | 0 page, data = the index tuple; 1 meta: ntuples += 1 |
//! | ADD_OVFL_PAGE 0x30 | bmsize u16 @0, bmpage_found u8 @2 | 0 new overflow page (WILL_INIT), data = bucket u32; 1 previous page (nextblkno := block 0); 2 bitmap (optional), data = bit u32 to set; 3 new bitmap page (optional, WILL_INIT); 4 meta, data = firstfree u32 |
//! | SPLIT_ALLOCATE_PAGE 0x40 | new_bucket u32 @0, old_bucket_flag u16 @4, new_bucket_flag u16 @6, flags u8 @8 | 0 old bucket (flag, prevblkno := new_bucket); 1 new bucket (WILL_INIT); 2 meta, data = [lowmask u32, highmask u32] if flags & 1, [ovflpoint u32, spares u32] if flags & 2 |
//! | SPLIT_PAGE 0x50 | – | 0 page, always a full image |
//! | SPLIT_COMPLETE 0x60 | old_bucket_flag u16 @0, new_bucket_flag u16 @2 | 0 old bucket, 1 new bucket |
//! | MOVE_PAGE_CONTENTS 0x70 | ntups u16 @0, is_prim_bucket_same_wrt u8 @2 | 0 primary bucket (lock only, absent if it is the write page); 1 write page, data = ntups offsets u16 then the tuples (MAXALIGNed); 2 read page, data = offsets u16 to delete |
//! | SQUEEZE_PAGE 0x80 | prevblkno u32 @0, nextblkno u32 @4, ntups u16 @8, is_prim_bucket_same_wrt u8 @10, is_prev_bucket_same_wrt u8 @11 | 0 primary bucket (lock only); 1 write page (as MOVE; nextblkno too if it is the previous page); 2 freed page (becomes LH_UNUSED_PAGE); 3 previous page; 4 next page; 5 bitmap, data = bit u32 to clear; 6 meta (optional), data = firstfree u32 |
//! | DELETE 0x90 | clear_dead_marking u8 @0, is_primary_bucket_page u8 @1 | 0 primary bucket (lock only); 1 page, data = offsets u16 to delete |
//! | SPLIT_CLEANUP 0xA0 | – | 0 primary bucket: clear NEEDS_SPLIT_CLEANUP |
//! | UPDATE_META_PAGE 0xB0 | ntuples f64 | 0 meta |
//! | VACUUM_ONE_PAGE 0xC0 | latestRemovedXid u32 @0, ntuples i32 @4, then ntuples offsets u16 | 0 page: delete, clear HAS_DEAD_TUPLES; 1 meta: ntuples -= n |
//!
//! Invariants: every routine checks the main data against the C struct
//! size, block data against what it reads, and array indexes (splitpoints,
//! bitmap numbers, bitmap bits) against their arrays, returning typed errors
//! where PostgreSQL would write out of bounds. Pages get the record's end
//! LSN exactly where PostgreSQL's redo sets it; lock-only block references
//! leave their page untouched.
//!
//! Full-page images: PostgreSQL keeps editing some blocks after restoring
//! their image ([`after_restore`]): the bucket flags of SPLIT_ALLOCATE_PAGE
//! block 0 and SPLIT_COMPLETE blocks 0 and 1, and every page it initialises
//! unconditionally (INIT_META_PAGE / INIT_BITMAP_PAGE block 0,
//! ADD_OVFL_PAGE blocks 0 and 3, SPLIT_ALLOCATE_PAGE block 1), which
//! overwrites the image. SPLIT_PAGE without an image to restore is an error,
//! as in PostgreSQL.

pub mod page;
mod redo;

#[cfg(test)]
mod tests;

use postgres_ffi::v15::info::hash as info;
use postgres_ffi::{BlockNumber, BLCKSZ};

use crate::error::RedoError;
use crate::mask;
use crate::pageops::{self, Page};
use crate::record::Ctx;

/// Whether the record type `info` (rmgr bits of xl_info) has native redo:
/// all 13 Hash record types do.
pub fn supports(i: u8) -> bool {
    matches!(
        i,
        info::INIT_META_PAGE
            | info::INIT_BITMAP_PAGE
            | info::INSERT
            | info::ADD_OVFL_PAGE
            | info::SPLIT_ALLOCATE_PAGE
            | info::SPLIT_PAGE
            | info::SPLIT_COMPLETE
            | info::MOVE_PAGE_CONTENTS
            | info::SQUEEZE_PAGE
            | info::DELETE
            | info::SPLIT_CLEANUP
            | info::UPDATE_META_PAGE
            | info::VACUUM_ONE_PAGE
    )
}

/// Redo of one block reference (not restored from an image).
pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    redo::redo(ctx, page)
}

/// The part of redo PostgreSQL runs even when the block was restored from
/// a full-page image (`BLK_RESTORED`), see the module docs; nothing for
/// every other block.
pub fn after_restore(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    redo::after_restore(ctx, page)
}

/// `hash_mask`: the common masks; then by page type (from the special
/// space): everything of an unused page, line pointer flags of bucket and
/// overflow pages (index scans set LP_DEAD without WAL); and the
/// LH_PAGE_HAS_DEAD_TUPLES hint on every page.
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    mask::mask_hint_bits(page);
    mask::mask_unused_space(page);
    // PostgreSQL reads the special space wherever pd_special points; one
    // that would lie beyond the page is left alone.
    let flag_at = pageops::special(page) as usize + 12;
    if flag_at + 4 > BLCKSZ {
        return;
    }
    let flag = pageops::read_u16(page, flag_at).unwrap_or(0);
    match flag & page::LH_PAGE_TYPE {
        page::LH_UNUSED_PAGE => mask::mask_page_content(page),
        page::LH_BUCKET_PAGE | page::LH_OVERFLOW_PAGE => mask::mask_lp_flags(page),
        _ => {}
    }
    let flag = pageops::read_u16(page, flag_at).unwrap_or(0);
    pageops::write_at(
        page,
        flag_at,
        &(flag & !page::LH_PAGE_HAS_DEAD_TUPLES).to_le_bytes(),
    );
}
