//! Redo for the BRIN resource manager (rmgr 17, `brin_redo`) and its mask
//! (`brin_mask`).
//!
//! A BRIN index has three page kinds, told apart by the last u16 of the
//! 8-byte special space (`pd_special + 6`; the u16 before it holds flags):
//! the metapage (block 0, 0xF091), revmap pages (0xF092: an array of
//! 6-byte heap TIDs straight after the page header, one per block range,
//! `pd_lower` left at 24) and regular pages (0xF093: summary tuples under
//! line pointers).
//!
//! The op code is `info & 0x70`; the top bit (0x80, INIT_PAGE) on INSERT
//! and UPDATE means block 0 is a fresh regular page. Main data (C struct
//! offsets, little-endian):
//!
//! | record | main data | blocks |
//! |---|---|---|
//! | CREATE_INDEX (0x00) | pagesPerRange u32 @0, version u16 @4 | 0 metapage (init) |
//! | INSERT (0x10) | heapBlk u32 @0, pagesPerRange u32 @4, offnum u16 @8 | 0 regular page, data = tuple; 1 revmap page |
//! | UPDATE (0x20) | oldOffnum u16 @0, then the INSERT fields @4 | 0 new page, data = tuple; 1 revmap; 2 old page |
//! | SAMEPAGE_UPDATE (0x30) | offnum u16 @0 | 0 page, data = replacement tuple |
//! | REVMAP_EXTEND (0x40) | targetBlk u32 @0 | 0 metapage; 1 new revmap page (init) |
//! | DESUMMARIZE (0x50) | pagesPerRange u32 @0, heapBlk u32 @4, regOffset u16 @8 | 0 revmap page; 1 regular page |
//!
//! Revmap slot of a range: `(heapBlk / pagesPerRange) % REVMAP_PAGE_MAXITEMS`
//! on the revmap page the record names; the TID stored there is (block 0's
//! block number, offnum), or the invalid TID (0xFFFFFFFF, 0) when offnum is 0
//! or the range is desummarized. Tuples removed from regular pages leave an
//! unused line pointer behind (no compaction of the array), so offsets of
//! the other tuples, which the revmap points at, stay valid.
//!
//! The free-space map is not WAL-logged by BRIN and not touched here.

use postgres_ffi::v15::info::brin;
use postgres_ffi::{BlockNumber, BLCKSZ};

use crate::dispatch::{prepare_existing, prepare_init};
use crate::error::RedoError;
use crate::htup::encode_tid;
use crate::mask;
use crate::pageops::{self, AddItemMode, Page, SIZE_OF_PAGE_HEADER};
use crate::record::Ctx;

/// `sizeof(BrinSpecialSpace)`: four u16, the last two used.
pub const BRIN_SPECIAL_SIZE: usize = 8;
pub const BRIN_PAGETYPE_META: u16 = 0xF091;
pub const BRIN_PAGETYPE_REVMAP: u16 = 0xF092;
pub const BRIN_PAGETYPE_REGULAR: u16 = 0xF093;
/// Special-space flag set while tuples are being moved off a page; never
/// WAL-logged.
pub const BRIN_EVACUATE_PAGE: u16 = 0x0001;
pub const BRIN_META_MAGIC: u32 = 0xA810_9CFA;
/// Revmap entries per page: (8192 − 24 − 8) / 6.
pub const REVMAP_PAGE_MAXITEMS: u32 =
    ((BLCKSZ - SIZE_OF_PAGE_HEADER - BRIN_SPECIAL_SIZE) / TID_SIZE) as u32;
const TID_SIZE: usize = 6;
/// Metapage fields after the page header: magic, version, pagesPerRange,
/// lastRevmapPage (u32 each); pd_lower points past them.
const META_LAST_REVMAP: usize = SIZE_OF_PAGE_HEADER + 12;
const META_END: usize = SIZE_OF_PAGE_HEADER + 16;

/// Whether the record type `info` (rmgr bits of xl_info) has native redo:
/// every op code up to DESUMMARIZE. Like `brin_redo`, the op code alone
/// selects the routine; INIT_PAGE matters to INSERT and UPDATE only.
pub fn supports(info: u8) -> bool {
    info & brin::OPMASK <= brin::DESUMMARIZE
}

/// Redo of one block reference (not restored from an image).
pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let info = ctx.info();
    let init = info & brin::INIT_PAGE != 0;
    match (info & brin::OPMASK, ctx.blk.block_id) {
        (brin::CREATE_INDEX, 0) => create_index(ctx, page),
        (brin::INSERT, 0) => insert_tuple(ctx, page, &insert_fields(ctx, 0)?, init),
        (brin::INSERT, 1) => revmap_insert(ctx, page, &insert_fields(ctx, 0)?),
        (brin::UPDATE, 0) => insert_tuple(ctx, page, &insert_fields(ctx, 4)?, init),
        (brin::UPDATE, 1) => revmap_insert(ctx, page, &insert_fields(ctx, 4)?),
        (brin::UPDATE, 2) => {
            let old = ctx
                .main()
                .u16()
                .ok_or_else(|| ctx.malformed("main data shorter than xl_brin_update"))?;
            remove_tuple(ctx, page, old)
        }
        (brin::SAMEPAGE_UPDATE, 0) => samepage_update(ctx, page),
        (brin::REVMAP_EXTEND, 0) => revmap_extend_meta(ctx, page),
        (brin::REVMAP_EXTEND, 1) => {
            prepare_init(ctx, page, BRIN_SPECIAL_SIZE)?;
            set_page_type(page, BRIN_PAGETYPE_REVMAP);
            pageops::set_lsn(page, ctx.end_lsn());
            Ok(())
        }
        (brin::DESUMMARIZE, b @ (0 | 1)) => {
            let mut md = ctx.main();
            let bad = || ctx.malformed("main data shorter than xl_brin_desummarize");
            let pages_per_range = md.u32().ok_or_else(bad)?;
            let heap_blk = md.u32().ok_or_else(bad)?;
            let reg_offset = md.u16().ok_or_else(bad)?;
            if b == 0 {
                if prepare_existing(ctx, page)? {
                    set_revmap_entry(ctx, page, pages_per_range, heap_blk, None)?;
                    pageops::set_lsn(page, ctx.end_lsn());
                }
                Ok(())
            } else {
                remove_tuple(ctx, page, reg_offset)
            }
        }
        (_, b) => Err(ctx.malformed(format!("unexpected block reference {b}"))),
    }
}

/// `xl_brin_insert`, found at `at` in the main data (0 for INSERT, 4 for
/// the copy inside `xl_brin_update`).
struct InsertFields {
    heap_blk: BlockNumber,
    pages_per_range: BlockNumber,
    offnum: u16,
}

fn insert_fields(ctx: &Ctx<'_>, at: usize) -> Result<InsertFields, RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_brin_insert");
    md.seek(at).ok_or_else(bad)?;
    Ok(InsertFields {
        heap_blk: md.u32().ok_or_else(bad)?,
        pages_per_range: md.u32().ok_or_else(bad)?,
        offnum: md.u16().ok_or_else(bad)?,
    })
}

/// Writes the page type into the special space of a page just initialised
/// with [`BRIN_SPECIAL_SIZE`] bytes of it.
fn set_page_type(page: &mut Page, ty: u16) {
    let at = pageops::special(page) as usize + 6;
    pageops::write_at(page, at, &ty.to_le_bytes());
}

/// Offset of the special space's (flags, type) pair, if it lies in the page.
fn special_words(page: &Page) -> Option<usize> {
    let at = (pageops::special(page) as usize).checked_add(4)?;
    (at + 4 <= BLCKSZ).then_some(at)
}

fn create_index(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_brin_createidx");
    let pages_per_range = md.u32().ok_or_else(bad)?;
    let version = md.u16().ok_or_else(bad)?;
    prepare_init(ctx, page, BRIN_SPECIAL_SIZE)?;
    set_page_type(page, BRIN_PAGETYPE_META);
    let mut meta = [0u8; 16];
    meta[0..4].copy_from_slice(&BRIN_META_MAGIC.to_le_bytes());
    meta[4..8].copy_from_slice(&(version as u32).to_le_bytes());
    meta[8..12].copy_from_slice(&pages_per_range.to_le_bytes());
    // lastRevmapPage starts at 0 (the metapage itself) so that the first
    // revmap extension creates block 1.
    pageops::write_at(page, SIZE_OF_PAGE_HEADER, &meta);
    pageops::set_lower(page, META_END as u16);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// Block 0 of INSERT/UPDATE: place the summary tuple at the logged offset.
fn insert_tuple(
    ctx: &Ctx<'_>,
    page: &mut Page,
    f: &InsertFields,
    init: bool,
) -> Result<(), RedoError> {
    if init {
        prepare_init(ctx, page, BRIN_SPECIAL_SIZE)?;
        set_page_type(page, BRIN_PAGETYPE_REGULAR);
    } else if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let tuple = ctx.data();
    // A summary tuple starts with the first heap block of its range.
    let bt_blkno = tuple
        .get(0..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bt_blkno != Some(f.heap_blk) {
        return Err(ctx.malformed(format!(
            "block data is not a summary tuple of the range at heap block {}",
            f.heap_blk
        )));
    }
    if pageops::max_offset(page) as u32 + 1 < f.offnum as u32 {
        return Err(ctx.malformed(format!(
            "invalid max offset number: tuple at {}, page has {}",
            f.offnum,
            pageops::max_offset(page)
        )));
    }
    // Overwrite mode: the slot may be an unused line pointer left behind by
    // an earlier removal, never a live one.
    let mode = AddItemMode {
        overwrite: true,
        is_heap: false,
    };
    pageops::page_add_item(page, tuple, f.offnum, mode).map_err(|e| ctx.page_err(e))?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// Block 1 of INSERT/UPDATE: point the range's revmap slot at the new tuple.
fn revmap_insert(ctx: &Ctx<'_>, page: &mut Page, f: &InsertFields) -> Result<(), RedoError> {
    let regpage = ctx
        .other_block(0)
        .ok_or_else(|| ctx.malformed("no block 0 (the page holding the tuple)"))?
        .blkno;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let tid = (f.offnum != 0).then_some((regpage, f.offnum));
    set_revmap_entry(ctx, page, f.pages_per_range, f.heap_blk, tid)?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// `brinSetHeapBlockItemptr`: store `tid` (or the invalid TID) in the slot
/// of the range containing `heap_blk`.
fn set_revmap_entry(
    ctx: &Ctx<'_>,
    page: &mut Page,
    pages_per_range: BlockNumber,
    heap_blk: BlockNumber,
    tid: Option<(BlockNumber, u16)>,
) -> Result<(), RedoError> {
    let range = heap_blk
        .checked_div(pages_per_range)
        .ok_or_else(|| ctx.malformed("pagesPerRange is 0"))?;
    let slot = (range % REVMAP_PAGE_MAXITEMS) as usize;
    let (blk, off) = tid.unwrap_or((u32::MAX, 0));
    // slot < REVMAP_PAGE_MAXITEMS keeps the entry before the special space.
    pageops::write_at(
        page,
        SIZE_OF_PAGE_HEADER + slot * TID_SIZE,
        &encode_tid(blk, off),
    );
    Ok(())
}

/// Removes a tuple from a regular page, keeping its line pointer (unused).
fn remove_tuple(ctx: &Ctx<'_>, page: &mut Page, offnum: u16) -> Result<(), RedoError> {
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    pageops::page_index_tuple_delete_no_compact(page, offnum).map_err(|e| ctx.page_err(e))?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn samepage_update(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let offnum = ctx
        .main()
        .u16()
        .ok_or_else(|| ctx.malformed("main data shorter than xl_brin_samepage_update"))?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let fits = pageops::page_index_tuple_overwrite(page, offnum, ctx.data())
        .map_err(|e| ctx.page_err(e))?;
    if !fits {
        return Err(ctx.malformed(format!(
            "replacement tuple of {} bytes does not fit at offset {offnum}",
            ctx.data().len()
        )));
    }
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// Block 0 of REVMAP_EXTEND: the metapage records the new last revmap page.
fn revmap_extend_meta(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let target = ctx
        .main()
        .u32()
        .ok_or_else(|| ctx.malformed("main data shorter than xl_brin_revmap_extend"))?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    pageops::write_at(page, META_LAST_REVMAP, &target.to_le_bytes());
    // Also repairs metapages written by servers that left pd_lower at 24.
    pageops::set_lower(page, META_END as u16);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// PostgreSQL's `brin_mask`: LSN, checksum, hint bits; the free space of
/// regular pages and of metapages whose pd_lower was set (revmap pages keep
/// their TID array in what looks like free space); BRIN_EVACUATE_PAGE.
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    mask::mask_hint_bits(page);
    let Some(at) = special_words(page) else {
        return;
    };
    let ty = pageops::read_u16(page, at + 2).unwrap_or(0);
    if ty == BRIN_PAGETYPE_REGULAR
        || (ty == BRIN_PAGETYPE_META && pageops::lower(page) as usize > SIZE_OF_PAGE_HEADER)
    {
        mask::mask_unused_space(page);
    }
    let flags = pageops::read_u16(page, at).unwrap_or(0) & !BRIN_EVACUATE_PAGE;
    pageops::write_at(page, at, &flags.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revmap_geometry() {
        assert_eq!(REVMAP_PAGE_MAXITEMS, 1360);
        assert!(SIZE_OF_PAGE_HEADER + REVMAP_PAGE_MAXITEMS as usize * TID_SIZE <= BLCKSZ - 8);
    }

    #[test]
    fn mask_handles_kinds_and_garbage() {
        let mut p = [0u8; BLCKSZ];
        pageops::page_init(&mut p, BRIN_SPECIAL_SIZE).unwrap();
        set_page_type(&mut p, BRIN_PAGETYPE_REVMAP);
        p[100] = 7; // a revmap entry: not free space
        p[BLCKSZ - 4] = 1; // BRIN_EVACUATE_PAGE
        mask(&mut p, 1);
        assert_eq!(p[100], 7);
        assert_eq!(p[BLCKSZ - 4], 0);
        set_page_type(&mut p, BRIN_PAGETYPE_REGULAR);
        mask(&mut p, 1);
        assert_eq!(p[100], 0);
        let mut g = [0xFFu8; BLCKSZ];
        mask(&mut g, 0);
    }
}
