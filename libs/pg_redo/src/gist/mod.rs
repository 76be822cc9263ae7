//! Redo for the GiST resource manager (rmgr 14, `gist_redo`), its mask
//! (`gist_mask`) and the extra masking the conformance check needs.
//!
//! Every GiST page (there is no metapage; the root is block 0) ends with a
//! 16-byte `GISTPageOpaqueData` at `pd_special`:
//!
//! | field | offset | notes |
//! |---|---|---|
//! | nsn | 0 | u32 high half, u32 low half (like pd_lsn): LSN of the split that created the right sibling |
//! | rightlink | 8 | u32, 0xFFFFFFFF = none |
//! | flags | 12 | u16: LEAF 1, DELETED 2, TUPLES_DELETED 4, FOLLOW_RIGHT 8, HAS_GARBAGE 16 |
//! | gist_page_id | 14 | u16 0xFF81 |
//!
//! Index tuples are `IndexTupleData` (6-byte heap TID or downlink, u16
//! t_info whose low 13 bits are the tuple size) plus key data; records carry
//! them back to back, each `t_info & 0x1FFF` bytes long.
//!
//! Main data (C struct offsets, little-endian) and block data:
//!
//! | record | main data | blocks |
//! |---|---|---|
//! | PAGE_UPDATE (0x00) | ntodelete u16 @0, ntoinsert u16 @2 | 0 page: ntodelete offsets (u16), then the new tuples; 1 (optional) left child of a split whose downlink this inserts |
//! | DELETE (0x10) | latestRemovedXid u32 @0, ntodelete u16 @4, offsets u16 @6… | 0 leaf page |
//! | PAGE_REUSE (0x20) | RelFileNode @0, block u32 @12, latestRemovedFullXid u64 @16 | none: a hot-standby conflict point only |
//! | PAGE_SPLIT (0x30) | origrlink u32 @0, orignsn u64 @8, origleaf u8 @16, npage u16 @18, markfollowright u8 @20 | 0 (optional) left child; 1..=npage the split pages (WILL_INIT), data = tuple count i32 + tuples |
//! | PAGE_DELETE (0x60) | deleteXid u64 @0, downlinkOffset u16 @8 | 0 emptied leaf; 1 its parent |
//! | ASSIGN_LSN (0x70) | an int 0 | none: only consumes an LSN |
//!
//! The "left child" block of PAGE_UPDATE and PAGE_SPLIT gets its
//! FOLLOW_RIGHT flag cleared and its NSN set to the record's end LSN; this
//! happens even when that block was restored from a full-page image,
//! because the primary makes the change only after logging (see
//! [`after_restore`]). The primary also never logs LP_DEAD hints,
//! FOLLOW_RIGHT or NSN changes at the time they happen, which is what
//! [`mask`] hides.

use postgres_ffi::v15::info::gist;
use postgres_ffi::{BlockNumber, Lsn, BLCKSZ};

use crate::dispatch::{prepare_existing, prepare_init};
use crate::error::RedoError;
use crate::mask;
use crate::pageops::{self, AddItemMode, Page, SIZE_OF_PAGE_HEADER};
use crate::record::{Ctx, Reader};

/// `sizeof(GISTPageOpaqueData)`.
pub const GIST_OPAQUE_SIZE: usize = 16;
pub const GIST_PAGE_ID: u16 = 0xFF81;
pub const GIST_ROOT_BLKNO: BlockNumber = 0;
pub const F_LEAF: u16 = 1 << 0;
pub const F_DELETED: u16 = 1 << 1;
pub const F_TUPLES_DELETED: u16 = 1 << 2;
pub const F_FOLLOW_RIGHT: u16 = 1 << 3;
pub const F_HAS_GARBAGE: u16 = 1 << 4;
const INVALID_BLOCK: BlockNumber = u32::MAX;
/// `sizeof(IndexTupleData)`: TID + t_info.
const INDEX_TUPLE_HEADER: usize = 8;
const INDEX_SIZE_MASK: u16 = 0x1FFF;
/// `SizeOfGistxlogDelete`: the offsets follow at this main-data offset.
const SIZE_OF_GIST_DELETE: usize = 6;

/// Whether the record type `info` (rmgr bits of xl_info) has native redo.
pub fn supports(info: u8) -> bool {
    matches!(
        info,
        gist::PAGE_UPDATE
            | gist::DELETE
            | gist::PAGE_REUSE
            | gist::PAGE_SPLIT
            | gist::PAGE_DELETE
            | gist::ASSIGN_LSN
    )
}

/// Redo of one block reference (not restored from an image).
pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    match (ctx.info(), ctx.blk.block_id) {
        (gist::PAGE_UPDATE, 0) => page_update(ctx, page),
        (gist::PAGE_UPDATE, 1) | (gist::PAGE_SPLIT, 0) => {
            if prepare_existing(ctx, page)? {
                finish_left_child(ctx, page)?;
            }
            Ok(())
        }
        (gist::DELETE, 0) => delete(ctx, page),
        (gist::PAGE_SPLIT, b) => split_page(ctx, page, b),
        (gist::PAGE_DELETE, 0) => {
            let xid = ctx
                .main()
                .u64()
                .ok_or_else(|| ctx.malformed("main data shorter than gistxlogPageDelete"))?;
            if prepare_existing(ctx, page)? {
                mark_deleted(ctx, page, xid)?;
                pageops::set_lsn(page, ctx.end_lsn());
            }
            Ok(())
        }
        (gist::PAGE_DELETE, 1) => {
            let mut md = ctx.main();
            let downlink = md
                .seek(8)
                .and_then(|_| md.u16())
                .ok_or_else(|| ctx.malformed("main data shorter than gistxlogPageDelete"))?;
            if prepare_existing(ctx, page)? {
                pageops::page_index_tuple_delete(page, downlink).map_err(|e| ctx.page_err(e))?;
                pageops::set_lsn(page, ctx.end_lsn());
            }
            Ok(())
        }
        (gist::PAGE_REUSE | gist::ASSIGN_LSN, b) => Err(ctx.malformed(format!(
            "record changes no page but has block reference {b}"
        ))),
        (_, b) => Err(ctx.malformed(format!("unexpected block reference {b}"))),
    }
}

/// The part of redo PostgreSQL runs even when the block was restored from
/// a full-page image (`BLK_RESTORED`): the left child of a completed split
/// gets its NSN and loses FOLLOW_RIGHT, which the image does not show.
///
/// A split page (WILL_INIT, so PostgreSQL never logs an image for it) is
/// rebuilt from the record even then, as PostgreSQL's redo would: it
/// initialises the page whatever the restore left there.
pub fn after_restore(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    match (ctx.info(), ctx.blk.block_id) {
        (gist::PAGE_UPDATE, 1) | (gist::PAGE_SPLIT, 0) => finish_left_child(ctx, page),
        (gist::PAGE_SPLIT, b) => split_page(ctx, page, b),
        _ => Ok(()),
    }
}

/// Offset of the opaque area, if `pd_special` leaves room for it after the
/// header.
fn opaque_at(page: &Page) -> Option<usize> {
    let s = pageops::special(page) as usize;
    (s >= SIZE_OF_PAGE_HEADER && s + GIST_OPAQUE_SIZE <= BLCKSZ).then_some(s)
}

fn opaque(ctx: &Ctx<'_>, page: &Page) -> Result<usize, RedoError> {
    opaque_at(page).ok_or_else(|| {
        ctx.malformed(format!(
            "page has no room for GiST special space (pd_special {})",
            pageops::special(page)
        ))
    })
}

fn gist_flags(page: &Page, at: usize) -> u16 {
    pageops::read_u16(page, at + 12).unwrap_or(0)
}

fn set_gist_flags(page: &mut Page, at: usize, flags: u16) {
    pageops::write_at(page, at + 12, &flags.to_le_bytes());
}

fn set_nsn(page: &mut Page, at: usize, nsn: Lsn) {
    let mut b = [0u8; 8];
    b[0..4].copy_from_slice(&((nsn.0 >> 32) as u32).to_le_bytes());
    b[4..8].copy_from_slice(&(nsn.0 as u32).to_le_bytes());
    pageops::write_at(page, at, &b);
}

fn set_rightlink(page: &mut Page, at: usize, blk: BlockNumber) {
    pageops::write_at(page, at + 8, &blk.to_le_bytes());
}

/// `gistRedoClearFollowRight` on a page already read (or restored).
fn finish_left_child(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let at = opaque(ctx, page)?;
    set_nsn(page, at, ctx.end_lsn());
    set_gist_flags(page, at, gist_flags(page, at) & !F_FOLLOW_RIGHT);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// Reads one index tuple (its size from t_info) off `r`.
fn next_tuple<'a>(ctx: &Ctx<'_>, r: &mut Reader<'a>) -> Result<&'a [u8], RedoError> {
    let at = r.pos();
    let size = r
        .bytes(INDEX_TUPLE_HEADER)
        .map(|h| u16::from_le_bytes([h[6], h[7]]) & INDEX_SIZE_MASK)
        .ok_or_else(|| ctx.malformed(format!("truncated index tuple header at data byte {at}")))?;
    r.seek(at)
        .ok_or_else(|| ctx.malformed("index tuple offset"))?;
    if (size as usize) < INDEX_TUPLE_HEADER {
        return Err(ctx.malformed(format!("index tuple at data byte {at} has size {size}")));
    }
    r.bytes(size as usize).ok_or_else(|| {
        ctx.malformed(format!(
            "index tuple at data byte {at} of {size} bytes runs past the data"
        ))
    })
}

/// Appends tuples from `r` to the page at consecutive offsets from the end
/// of the line pointer array (`gistfillbuffer`); returns how many.
fn append_tuples(ctx: &Ctx<'_>, page: &mut Page, r: &mut Reader<'_>) -> Result<usize, RedoError> {
    let mut off = pageops::max_offset(page).saturating_add(1);
    let mut n = 0usize;
    while !r.at_end() {
        let tuple = next_tuple(ctx, r)?;
        pageops::page_add_item(page, tuple, off, AddItemMode::default())
            .map_err(|e| ctx.page_err(e))?;
        off = off.saturating_add(1);
        n += 1;
    }
    Ok(n)
}

fn read_offsets(r: &mut Reader<'_>, n: usize) -> Option<Vec<u16>> {
    (0..n).map(|_| r.u16()).collect()
}

fn page_update(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than gistxlogPageUpdate");
    let ntodelete = md.u16().ok_or_else(bad)?;
    let ntoinsert = md.u16().ok_or_else(bad)?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let at = opaque(ctx, page)?;
    let mut data = ctx.block_data();
    let mut inserted = 0usize;
    if ntodelete == 1 && ntoinsert == 1 {
        // A one-for-one replacement is done in place, as on the primary, so
        // the other tuples keep their positions.
        let offnum = data
            .u16()
            .ok_or_else(|| ctx.malformed("block data has no offset to replace"))?;
        let tuple = next_tuple(ctx, &mut data)?;
        let fits = pageops::page_index_tuple_overwrite(page, offnum, tuple)
            .map_err(|e| ctx.page_err(e))?;
        if !fits {
            return Err(ctx.malformed(format!(
                "replacement tuple of {} bytes does not fit at offset {offnum}",
                tuple.len()
            )));
        }
        inserted = 1;
    } else if ntodelete > 0 {
        let todelete = read_offsets(&mut data, ntodelete as usize)
            .ok_or_else(|| ctx.malformed(format!("block data shorter than {ntodelete} offsets")))?;
        pageops::page_index_multi_delete(page, &todelete).map_err(|e| ctx.page_err(e))?;
        let flags = gist_flags(page, at);
        if flags & F_LEAF != 0 {
            set_gist_flags(page, at, flags | F_TUPLES_DELETED);
        }
    }
    inserted += append_tuples(ctx, page, &mut data)?;
    if inserted != ntoinsert as usize {
        return Err(ctx.malformed(format!(
            "record announces {ntoinsert} tuples, block data holds {inserted}"
        )));
    }
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn delete(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than gistxlogDelete");
    md.u32().ok_or_else(bad)?;
    let ntodelete = md.u16().ok_or_else(bad)?;
    // The offsets are optional in the layout: PostgreSQL deletes only when
    // main data goes on past the fixed part.
    let todelete =
        if ctx.rec.main_data().len() > SIZE_OF_GIST_DELETE {
            Some(read_offsets(&mut md, ntodelete as usize).ok_or_else(|| {
                ctx.malformed(format!("main data shorter than {ntodelete} offsets"))
            })?)
        } else {
            None
        };
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let at = opaque(ctx, page)?;
    if let Some(offs) = todelete {
        pageops::page_index_multi_delete(page, &offs).map_err(|e| ctx.page_err(e))?;
    }
    // Redo marks the page as having lost tuples although the primary (in
    // gistprunepage) does not; see `comparison_mask`.
    let flags = (gist_flags(page, at) & !F_HAS_GARBAGE) | F_TUPLES_DELETED;
    set_gist_flags(page, at, flags);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// `gistxlogPageSplit`.
struct Split {
    origrlink: BlockNumber,
    orignsn: Lsn,
    origleaf: bool,
    npage: u16,
    markfollowright: bool,
}

fn split_header(ctx: &Ctx<'_>) -> Result<Split, RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than gistxlogPageSplit");
    let origrlink = md.u32().ok_or_else(bad)?;
    md.seek(8).ok_or_else(bad)?;
    let orignsn = Lsn(md.u64().ok_or_else(bad)?);
    let origleaf = md.u8().ok_or_else(bad)? != 0;
    md.seek(18).ok_or_else(bad)?;
    let npage = md.u16().ok_or_else(bad)?;
    let markfollowright = md.u8().ok_or_else(bad)? != 0;
    Ok(Split {
        origrlink,
        orignsn,
        origleaf,
        npage,
        markfollowright,
    })
}

/// Rebuilds split page `block_id` (1..=npage) from scratch.
fn split_page(ctx: &Ctx<'_>, page: &mut Page, block_id: u8) -> Result<(), RedoError> {
    let s = split_header(ctx)?;
    let i = block_id as usize - 1;
    let npage = s.npage as usize;
    if i >= npage {
        return Err(ctx.malformed(format!(
            "block {block_id} is not one of the {npage} split pages"
        )));
    }
    let blkno_of = |b: usize| -> Result<BlockNumber, RedoError> {
        u8::try_from(b)
            .ok()
            .and_then(|b| ctx.other_block(b))
            .map(|r| r.blkno)
            .ok_or_else(|| ctx.malformed(format!("split page block {b} missing")))
    };
    let blkno = ctx.blk.blkno;
    // PostgreSQL notes a root split when it meets the root among the pages
    // processed so far (it is always the first one).
    let mut isrootsplit = false;
    for b in 1..=block_id as usize {
        isrootsplit |= blkno_of(b)? == GIST_ROOT_BLKNO;
    }
    let mut data = ctx.block_data();
    let num = data
        .u32()
        .ok_or_else(|| ctx.malformed("split page data has no tuple count"))? as i32;
    let num =
        usize::try_from(num).map_err(|_| ctx.malformed(format!("negative tuple count {num}")))?;
    let flags = if s.origleaf && blkno != GIST_ROOT_BLKNO {
        F_LEAF
    } else {
        0
    };
    let rightlink = if blkno == GIST_ROOT_BLKNO {
        INVALID_BLOCK
    } else if i + 1 < npage {
        blkno_of(i + 2)?
    } else {
        s.origrlink
    };
    let follow_right =
        blkno != GIST_ROOT_BLKNO && i + 1 < npage && !isrootsplit && s.markfollowright;

    init_page(ctx, page, flags)?;
    let added = append_tuples(ctx, page, &mut data)?;
    if added != num {
        return Err(ctx.malformed(format!(
            "split page announces {num} tuples, data holds {added}"
        )));
    }
    let at = opaque(ctx, page)?;
    set_rightlink(page, at, rightlink);
    set_nsn(page, at, s.orignsn);
    let f = gist_flags(page, at);
    set_gist_flags(
        page,
        at,
        if follow_right {
            f | F_FOLLOW_RIGHT
        } else {
            f & !F_FOLLOW_RIGHT
        },
    );
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// `gistinitpage` on a WILL_INIT block: empty page, no right sibling.
fn init_page(ctx: &Ctx<'_>, page: &mut Page, flags: u16) -> Result<(), RedoError> {
    prepare_init(ctx, page, GIST_OPAQUE_SIZE)?;
    let at = opaque(ctx, page)?;
    set_rightlink(page, at, INVALID_BLOCK);
    set_gist_flags(page, at, flags);
    pageops::write_at(page, at + 14, &GIST_PAGE_ID.to_le_bytes());
    Ok(())
}

/// `GistPageSetDeleted`: the (empty) page is flagged deleted and stores
/// the xid after which it may be recycled right after the header.
fn mark_deleted(ctx: &Ctx<'_>, page: &mut Page, delete_xid: u64) -> Result<(), RedoError> {
    let at = opaque(ctx, page)?;
    set_gist_flags(page, at, gist_flags(page, at) | F_DELETED);
    pageops::set_lower(page, (SIZE_OF_PAGE_HEADER + 8) as u16);
    pageops::write_at(page, SIZE_OF_PAGE_HEADER, &delete_xid.to_le_bytes());
    Ok(())
}

/// PostgreSQL's `gist_mask`: besides LSN, checksum, hint bits and free
/// space, the NSN (an LSN too), FOLLOW_RIGHT (forced on: the primary clears
/// it after logging), line pointer flags of leaves (LP_DEAD hints) and
/// HAS_GARBAGE (never set by redo).
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    mask::mask_hint_bits(page);
    mask::mask_unused_space(page);
    let Some(at) = opaque_at(page) else {
        return;
    };
    set_nsn(page, at, Lsn(0));
    let flags = gist_flags(page, at) | F_FOLLOW_RIGHT;
    if flags & F_LEAF != 0 {
        mask::mask_lp_flags(page);
    }
    set_gist_flags(page, at, flags & !F_HAS_GARBAGE);
}

/// [`mask`] plus F_TUPLES_DELETED on leaves, for comparing with the
/// primary's images: PostgreSQL 15's redo of Gist/DELETE sets that flag,
/// but the primary's `gistprunepage` does not, so PostgreSQL's own
/// consistency check fails there. Redo keeps PostgreSQL's behaviour; only
/// the comparison ignores the flag.
pub fn comparison_mask(page: &mut Page, blkno: BlockNumber) {
    mask(page, blkno);
    if let Some(at) = opaque_at(page) {
        let flags = gist_flags(page, at);
        if flags & F_LEAF != 0 {
            set_gist_flags(page, at, flags & !F_TUPLES_DELETED);
        }
    }
}

#[cfg(test)]
mod tests;
