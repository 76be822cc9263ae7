//! The per-record redo routines of the Hash rmgr (`hash_xlog.c`), one
//! block reference at a time. Layouts are in the [`super`] module docs.

use postgres_ffi::maxalign;
use postgres_ffi::v15::info::hash as info;

use super::page as hp;
use crate::dispatch::{prepare_existing, prepare_init};
use crate::error::RedoError;
use crate::pageops::{self, AddItemMode, Page};
use crate::record::{Ctx, Reader};

/// `INDEX_SIZE_MASK`: the size bits of an index tuple's t_info.
const INDEX_SIZE_MASK: u16 = 0x1FFF;
/// Offset of t_info in `IndexTupleData` (after the 6-byte heap TID).
const T_INFO: usize = 6;

const XLH_SPLIT_META_UPDATE_MASKS: u8 = 1 << 0;
const XLH_SPLIT_META_UPDATE_SPLITPOINT: u8 = 1 << 1;

pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let id = ctx.blk.block_id;
    match ctx.info() {
        info::INIT_META_PAGE if id == 0 => init_meta_page(ctx, page),
        info::INIT_BITMAP_PAGE => match id {
            0 => init_bitmap_page(ctx, page),
            1 => bitmap_added_to_meta(ctx, page),
            _ => unexpected_block(ctx),
        },
        info::INSERT => match id {
            0 => insert(ctx, page),
            1 => meta_count_insert(ctx, page),
            _ => unexpected_block(ctx),
        },
        info::ADD_OVFL_PAGE => add_ovfl_page(ctx, page),
        info::SPLIT_ALLOCATE_PAGE => match id {
            0 => {
                if prepare_existing(ctx, page)? {
                    split_allocate_old(ctx, page)?;
                }
                Ok(())
            }
            1 => split_allocate_new(ctx, page),
            2 => split_allocate_meta(ctx, page),
            _ => unexpected_block(ctx),
        },
        // The page is always logged as a full image (REGBUF_FORCE_IMAGE),
        // which the dispatcher restores; reaching here means it was not.
        info::SPLIT_PAGE if id == 0 => {
            Err(ctx.malformed("Hash split record did not contain a full-page image to restore"))
        }
        info::SPLIT_COMPLETE if id <= 1 => {
            if prepare_existing(ctx, page)? {
                split_complete(ctx, page)?;
            }
            Ok(())
        }
        info::MOVE_PAGE_CONTENTS => move_page_contents(ctx, page),
        info::SQUEEZE_PAGE => squeeze_page(ctx, page),
        info::DELETE => delete(ctx, page),
        info::SPLIT_CLEANUP if id == 0 => split_cleanup(ctx, page),
        info::UPDATE_META_PAGE if id == 0 => update_meta_page(ctx, page),
        info::VACUUM_ONE_PAGE => match id {
            0 => vacuum_one_page(ctx, page),
            1 => vacuum_one_page_meta(ctx, page),
            _ => unexpected_block(ctx),
        },
        _ => unexpected_block(ctx),
    }
}

/// PostgreSQL's redo for a block it restored from an image: see
/// [`super::after_restore`].
pub fn after_restore(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let id = ctx.blk.block_id;
    match (ctx.info(), id) {
        // Pages PostgreSQL (re)initialises whatever the buffer held.
        (info::INIT_META_PAGE, 0)
        | (info::INIT_BITMAP_PAGE, 0)
        | (info::ADD_OVFL_PAGE, 0)
        | (info::ADD_OVFL_PAGE, 3)
        | (info::SPLIT_ALLOCATE_PAGE, 1) => redo(ctx, page),
        // Bucket flags set on top of the restored image.
        (info::SPLIT_ALLOCATE_PAGE, 0) => {
            expect_not_will_init(ctx)?;
            split_allocate_old(ctx, page)
        }
        (info::SPLIT_COMPLETE, 0 | 1) => {
            expect_not_will_init(ctx)?;
            split_complete(ctx, page)
        }
        _ => Ok(()),
    }
}

fn unexpected_block(ctx: &Ctx<'_>) -> Result<(), RedoError> {
    Err(ctx.malformed(format!("unexpected block reference {}", ctx.blk.block_id)))
}

fn expect_not_will_init(ctx: &Ctx<'_>) -> Result<(), RedoError> {
    if ctx.blk.will_init() {
        return Err(ctx.malformed(format!(
            "block {} has WILL_INIT but the record does not initialise it",
            ctx.blk.block_id
        )));
    }
    Ok(())
}

fn page_op<T>(ctx: &Ctx<'_>, r: Result<T, crate::PageOpError>) -> Result<T, RedoError> {
    r.map_err(|e| ctx.page_err(e))
}

fn set_lsn(ctx: &Ctx<'_>, page: &mut Page) {
    pageops::set_lsn(page, ctx.end_lsn());
}

/// The main data, which must be at least `size` bytes (the C struct).
fn main_data<'a>(ctx: &Ctx<'a>, size: usize, what: &str) -> Result<Reader<'a>, RedoError> {
    if ctx.rec.main_data().len() < size {
        return Err(ctx.malformed(format!("main data shorter than {what}")));
    }
    Ok(ctx.main())
}

fn f64_of(r: &mut Reader<'_>) -> f64 {
    f64::from_bits(r.u64().unwrap_or(0))
}

/// Block data that is exactly one u32.
fn block_u32(ctx: &Ctx<'_>, what: &str) -> Result<u32, RedoError> {
    let d = &ctx.data();
    if d.len() != 4 {
        return Err(ctx.malformed(format!(
            "block {} data is {} bytes, expected {what} (4 bytes)",
            ctx.blk.block_id,
            d.len()
        )));
    }
    Ok(u32::from_le_bytes([d[0], d[1], d[2], d[3]]))
}

/// Bytes as an array of u16 offset numbers.
fn offsets(ctx: &Ctx<'_>, bytes: &[u8]) -> Result<Vec<u16>, RedoError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(ctx.malformed("offset array has odd length"));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect())
}

fn multi_delete(ctx: &Ctx<'_>, page: &mut Page, offs: &[u16]) -> Result<(), RedoError> {
    page_op(ctx, pageops::page_index_multi_delete(page, offs))
}

fn clear_flag(ctx: &Ctx<'_>, page: &mut Page, bits: u16) -> Result<(), RedoError> {
    let f = page_op(ctx, hp::flag(page))?;
    page_op(ctx, hp::set_flag(page, f & !bits))
}

/// The block number of another block reference of the record.
fn blkno_of(ctx: &Ctx<'_>, block_id: u8) -> Result<u32, RedoError> {
    ctx.other_block(block_id)
        .map(|b| b.blkno)
        .ok_or_else(|| ctx.malformed(format!("record has no block reference {block_id}")))
}

fn meta_splitpoint(ctx: &Ctx<'_>, i: u32) -> Result<usize, RedoError> {
    hp::spares_offset(i as usize)
        .ok_or_else(|| ctx.malformed(format!("splitpoint {i} out of range")))
}

/// Appends `blkno` to the metapage's list of bitmap pages.
fn meta_add_bitmap(ctx: &Ctx<'_>, page: &mut Page, blkno: u32) -> Result<(), RedoError> {
    let nmaps = hp::get_u32(page, hp::META_NMAPS);
    let off = hp::mapp_offset(nmaps as usize)
        .ok_or_else(|| ctx.malformed(format!("metapage already has {nmaps} bitmap pages")))?;
    hp::put_u32(page, off, blkno);
    hp::put_u32(page, hp::META_NMAPS, nmaps + 1);
    Ok(())
}

// ---- INIT_META_PAGE, INIT_BITMAP_PAGE ----

fn init_meta_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = main_data(ctx, 14, "xl_hash_init_meta_page")?;
    let num_tuples = f64_of(&mut md);
    let procid = md.u32().unwrap_or(0);
    let ffactor = md.u16().unwrap_or(0);
    let num_buckets = hp::initial_buckets(num_tuples, ffactor).ok_or_else(|| {
        ctx.malformed(format!(
            "no bucket count for {num_tuples} tuples at fill factor {ffactor}"
        ))
    })?;
    prepare_init(ctx, page, hp::SPECIAL_SIZE)?;
    page_op(ctx, hp::init_meta_page(page, num_buckets, procid, ffactor))?;
    set_lsn(ctx, page);
    Ok(())
}

/// `bmsize` of a new bitmap page, which must fit in the page.
fn checked_bmsize(ctx: &Ctx<'_>, bmsize: u16) -> Result<usize, RedoError> {
    let n = bmsize as usize;
    if n > hp::MAX_BITMAP_BYTES {
        return Err(ctx.malformed(format!("bitmap of {n} bytes does not fit in a page")));
    }
    Ok(n)
}

fn init_bitmap(ctx: &Ctx<'_>, page: &mut Page, bmsize: u16) -> Result<(), RedoError> {
    let n = checked_bmsize(ctx, bmsize)?;
    prepare_init(ctx, page, hp::SPECIAL_SIZE)?;
    page_op(ctx, hp::init_bitmap_page(page, n))?;
    set_lsn(ctx, page);
    Ok(())
}

fn init_bitmap_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let bmsize = main_data(ctx, 2, "xl_hash_init_bitmap_page")?
        .u16()
        .unwrap_or(0);
    init_bitmap(ctx, page, bmsize)
}

/// The first bitmap page sits right after the initial buckets.
fn bitmap_added_to_meta(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    main_data(ctx, 2, "xl_hash_init_bitmap_page")?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let num_buckets = hp::get_u32(page, hp::META_MAXBUCKET).wrapping_add(1);
    meta_add_bitmap(ctx, page, num_buckets.wrapping_add(1))?;
    set_lsn(ctx, page);
    Ok(())
}

// ---- INSERT ----

fn insert(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let offnum = main_data(ctx, 2, "xl_hash_insert")?.u16().unwrap_or(0);
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    page_op(
        ctx,
        pageops::page_add_item(page, ctx.data(), offnum, AddItemMode::default()),
    )?;
    set_lsn(ctx, page);
    Ok(())
}

fn meta_count_insert(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    main_data(ctx, 2, "xl_hash_insert")?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let n = hp::get_f64(page, hp::META_NTUPLES);
    hp::put_f64(page, hp::META_NTUPLES, n + 1.0);
    set_lsn(ctx, page);
    Ok(())
}

// ---- ADD_OVFL_PAGE ----

fn add_ovfl_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = main_data(ctx, 3, "xl_hash_add_ovfl_page")?;
    let bmsize = md.u16().unwrap_or(0);
    let bmpage_found = md.u8().unwrap_or(0) != 0;
    match ctx.blk.block_id {
        // The new overflow page, linked back to the page before it.
        0 => {
            let bucket = block_u32(ctx, "the bucket number")?;
            let leftblk = blkno_of(ctx, 1)?;
            prepare_init(ctx, page, hp::SPECIAL_SIZE)?;
            page_op(
                ctx,
                hp::init_bucket_page(page, leftblk, bucket, hp::LH_OVERFLOW_PAGE),
            )?;
            set_lsn(ctx, page);
            Ok(())
        }
        // The page before it now points to it.
        1 => {
            let rightblk = blkno_of(ctx, 0)?;
            if prepare_existing(ctx, page)? {
                page_op(ctx, hp::set_next(page, rightblk))?;
                set_lsn(ctx, page);
            }
            Ok(())
        }
        // The bitmap page: the page's bit becomes "in use".
        2 => {
            let bit = block_u32(ctx, "the bitmap bit")?;
            if prepare_existing(ctx, page)? {
                let (off, mask) = page_op(ctx, hp::bitmap_bit(page, bit))?
                    .ok_or_else(|| ctx.malformed(format!("bitmap bit {bit} is off the page")))?;
                hp::put_u32(page, off, hp::get_u32(page, off) | mask);
                set_lsn(ctx, page);
            }
            Ok(())
        }
        // A new bitmap page.
        3 => init_bitmap(ctx, page, bmsize),
        4 => {
            let firstfree = block_u32(ctx, "hashm_firstfree")?;
            let new_bitmap = ctx.other_block(3).map(|b| b.blkno);
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            hp::put_u32(page, hp::META_FIRSTFREE, firstfree);
            if !bmpage_found {
                // The page (and a new bitmap page) came from extending the
                // index: count them as spares of the current splitpoint.
                let point = hp::get_u32(page, hp::META_OVFLPOINT);
                let off = meta_splitpoint(ctx, point)?;
                let mut spares = hp::get_u32(page, off).wrapping_add(1);
                if let Some(blkno) = new_bitmap {
                    meta_add_bitmap(ctx, page, blkno)?;
                    spares = spares.wrapping_add(1);
                }
                hp::put_u32(page, off, spares);
            }
            set_lsn(ctx, page);
            Ok(())
        }
        _ => unexpected_block(ctx),
    }
}

// ---- SPLIT_ALLOCATE_PAGE, SPLIT_COMPLETE, SPLIT_CLEANUP ----

struct SplitAllocate {
    new_bucket: u32,
    old_flag: u16,
    new_flag: u16,
    flags: u8,
}

fn split_allocate_rec(ctx: &Ctx<'_>) -> Result<SplitAllocate, RedoError> {
    let mut md = main_data(ctx, 9, "xl_hash_split_allocate_page")?;
    Ok(SplitAllocate {
        new_bucket: md.u32().unwrap_or(0),
        old_flag: md.u16().unwrap_or(0),
        new_flag: md.u16().unwrap_or(0),
        flags: md.u8().unwrap_or(0),
    })
}

/// The old bucket's primary page: new flags, and prevblkno records the
/// maxbucket as of this split. Also applied to a restored image.
pub(super) fn split_allocate_old(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = split_allocate_rec(ctx)?;
    page_op(ctx, hp::set_flag(page, x.old_flag))?;
    page_op(ctx, hp::set_prev(page, x.new_bucket))?;
    set_lsn(ctx, page);
    Ok(())
}

/// The new bucket's primary page, created empty.
fn split_allocate_new(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = split_allocate_rec(ctx)?;
    prepare_init(ctx, page, hp::SPECIAL_SIZE)?;
    page_op(
        ctx,
        hp::init_bucket_page(page, x.new_bucket, x.new_bucket, x.new_flag),
    )?;
    set_lsn(ctx, page);
    Ok(())
}

fn split_allocate_meta(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = split_allocate_rec(ctx)?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let mut data = ctx.block_data();
    let short = || ctx.malformed("metapage data shorter than its flags promise");
    let masks = if x.flags & XLH_SPLIT_META_UPDATE_MASKS != 0 {
        Some((data.u32().ok_or_else(short)?, data.u32().ok_or_else(short)?))
    } else {
        None
    };
    let splitpoint = if x.flags & XLH_SPLIT_META_UPDATE_SPLITPOINT != 0 {
        let point = data.u32().ok_or_else(short)?;
        let pages = data.u32().ok_or_else(short)?;
        Some((meta_splitpoint(ctx, point)?, point, pages))
    } else {
        None
    };
    hp::put_u32(page, hp::META_MAXBUCKET, x.new_bucket);
    if let Some((low, high)) = masks {
        hp::put_u32(page, hp::META_LOWMASK, low);
        hp::put_u32(page, hp::META_HIGHMASK, high);
    }
    if let Some((off, point, pages)) = splitpoint {
        hp::put_u32(page, off, pages);
        hp::put_u32(page, hp::META_OVFLPOINT, point);
    }
    set_lsn(ctx, page);
    Ok(())
}

/// Old (block 0) or new (block 1) bucket page: the flags after the split.
/// Also applied to a restored image.
pub(super) fn split_complete(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = main_data(ctx, 4, "xl_hash_split_complete")?;
    let old_flag = md.u16().unwrap_or(0);
    let new_flag = md.u16().unwrap_or(0);
    let f = if ctx.blk.block_id == 0 {
        old_flag
    } else {
        new_flag
    };
    page_op(ctx, hp::set_flag(page, f))?;
    set_lsn(ctx, page);
    Ok(())
}

fn split_cleanup(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    clear_flag(ctx, page, hp::LH_BUCKET_NEEDS_SPLIT_CLEANUP)?;
    set_lsn(ctx, page);
    Ok(())
}

// ---- MOVE_PAGE_CONTENTS, SQUEEZE_PAGE ----

/// The primary bucket page, registered only so that redo takes a cleanup
/// lock on it: its contents do not change. PostgreSQL reads it only when
/// the record says it is not also the page being changed (`is_other`).
fn lock_only(ctx: &Ctx<'_>, page: &Page, is_other: bool) -> Result<(), RedoError> {
    if is_other {
        prepare_existing(ctx, page)?;
    }
    Ok(())
}

/// Adds the tuples of the write page's block data: `ntups` target offsets,
/// then the tuples, each taking MAXALIGN(IndexTupleSize) bytes.
fn add_moved_tuples(ctx: &Ctx<'_>, page: &mut Page, ntups: u16) -> Result<(), RedoError> {
    if ntups == 0 {
        return Ok(());
    }
    let data: &[u8] = ctx.data();
    let head = 2 * ntups as usize;
    let towrite = offsets(
        ctx,
        data.get(..head)
            .ok_or_else(|| ctx.malformed(format!("block data too short for {ntups} offsets")))?,
    )?;
    let mut pos = head;
    let mut n = 0usize;
    while pos < data.len() {
        let t_info = data
            .get(pos + T_INFO..pos + T_INFO + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| ctx.malformed(format!("moved tuple {n} truncated")))?;
        let size = maxalign((t_info & INDEX_SIZE_MASK) as usize);
        if size == 0 {
            return Err(ctx.malformed(format!("moved tuple {n} has size 0")));
        }
        let item = data
            .get(pos..pos + size)
            .ok_or_else(|| ctx.malformed(format!("moved tuple {n} truncated")))?;
        let offnum = *towrite
            .get(n)
            .ok_or_else(|| ctx.malformed(format!("more than {ntups} moved tuples")))?;
        page_op(
            ctx,
            pageops::page_add_item(page, item, offnum, AddItemMode::default()),
        )?;
        pos += size;
        n += 1;
    }
    if n != ntups as usize {
        return Err(ctx.malformed(format!("{n} moved tuples, record says {ntups}")));
    }
    Ok(())
}

fn move_page_contents(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = main_data(ctx, 3, "xl_hash_move_page_contents")?;
    let ntups = md.u16().unwrap_or(0);
    let prim_bucket_is_write = md.u8().unwrap_or(0) != 0;
    match ctx.blk.block_id {
        0 => lock_only(ctx, page, !prim_bucket_is_write),
        1 => {
            if prepare_existing(ctx, page)? {
                add_moved_tuples(ctx, page, ntups)?;
                set_lsn(ctx, page);
            }
            Ok(())
        }
        2 => {
            if prepare_existing(ctx, page)? {
                let offs = offsets(ctx, ctx.data())?;
                multi_delete(ctx, page, &offs)?;
                set_lsn(ctx, page);
            }
            Ok(())
        }
        _ => unexpected_block(ctx),
    }
}

fn squeeze_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = main_data(ctx, 12, "xl_hash_squeeze_page")?;
    let prevblkno = md.u32().unwrap_or(0);
    let nextblkno = md.u32().unwrap_or(0);
    let ntups = md.u16().unwrap_or(0);
    let prim_bucket_is_write = md.u8().unwrap_or(0) != 0;
    let prev_is_write = md.u8().unwrap_or(0) != 0;
    match ctx.blk.block_id {
        0 => lock_only(ctx, page, !prim_bucket_is_write),
        // The write page; when it precedes the freed page, it also takes
        // over the freed page's forward link.
        1 => {
            if prepare_existing(ctx, page)? {
                add_moved_tuples(ctx, page, ntups)?;
                if prev_is_write {
                    page_op(ctx, hp::set_next(page, nextblkno))?;
                }
                set_lsn(ctx, page);
            }
            Ok(())
        }
        // The freed overflow page.
        2 => {
            if prepare_existing(ctx, page)? {
                page_op(ctx, hp::init_unused_page(page))?;
                set_lsn(ctx, page);
            }
            Ok(())
        }
        // The page before the freed one (redo ignores it when it is the
        // write page, which then got the link above).
        3 => {
            if !prev_is_write && prepare_existing(ctx, page)? {
                page_op(ctx, hp::set_next(page, nextblkno))?;
                set_lsn(ctx, page);
            }
            Ok(())
        }
        4 => {
            if prepare_existing(ctx, page)? {
                page_op(ctx, hp::set_prev(page, prevblkno))?;
                set_lsn(ctx, page);
            }
            Ok(())
        }
        // The bitmap page: the freed page's bit becomes "free".
        5 => {
            let bit = block_u32(ctx, "the bitmap bit")?;
            if prepare_existing(ctx, page)? {
                let (off, mask) = page_op(ctx, hp::bitmap_bit(page, bit))?
                    .ok_or_else(|| ctx.malformed(format!("bitmap bit {bit} is off the page")))?;
                hp::put_u32(page, off, hp::get_u32(page, off) & !mask);
                set_lsn(ctx, page);
            }
            Ok(())
        }
        6 => {
            let firstfree = block_u32(ctx, "hashm_firstfree")?;
            if prepare_existing(ctx, page)? {
                hp::put_u32(page, hp::META_FIRSTFREE, firstfree);
                set_lsn(ctx, page);
            }
            Ok(())
        }
        _ => unexpected_block(ctx),
    }
}

// ---- DELETE, UPDATE_META_PAGE, VACUUM_ONE_PAGE ----

fn delete(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = main_data(ctx, 2, "xl_hash_delete")?;
    let clear_dead = md.u8().unwrap_or(0) != 0;
    let is_primary_bucket_page = md.u8().unwrap_or(0) != 0;
    match ctx.blk.block_id {
        0 => lock_only(ctx, page, !is_primary_bucket_page),
        1 => {
            if prepare_existing(ctx, page)? {
                let offs = offsets(ctx, ctx.data())?;
                multi_delete(ctx, page, &offs)?;
                if clear_dead {
                    clear_flag(ctx, page, hp::LH_PAGE_HAS_DEAD_TUPLES)?;
                }
                set_lsn(ctx, page);
            }
            Ok(())
        }
        _ => unexpected_block(ctx),
    }
}

fn update_meta_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let ntuples = f64_of(&mut main_data(ctx, 8, "xl_hash_update_meta_page")?);
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    hp::put_f64(page, hp::META_NTUPLES, ntuples);
    set_lsn(ctx, page);
    Ok(())
}

/// `ntuples` of xl_hash_vacuum_one_page (a C int, never negative).
fn vacuum_ntuples(ctx: &Ctx<'_>) -> Result<usize, RedoError> {
    let mut md = main_data(ctx, 8, "xl_hash_vacuum_one_page")?;
    let _latest_removed_xid = md.u32();
    let n = md.u32().unwrap_or(0) as i32;
    usize::try_from(n).map_err(|_| ctx.malformed(format!("negative tuple count {n}")))
}

fn vacuum_one_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let n = vacuum_ntuples(ctx)?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    // The offsets follow the struct in the main data; without them nothing
    // is deleted, but the page is still marked free of dead tuples.
    let rest = ctx.rec.main_data().get(8..).unwrap_or_default();
    if !rest.is_empty() {
        let offs = offsets(ctx, rest.get(..2 * n).unwrap_or(rest))?;
        if offs.len() < n {
            return Err(ctx.malformed(format!("{} offsets for {n} tuples", offs.len())));
        }
        multi_delete(ctx, page, &offs)?;
    }
    clear_flag(ctx, page, hp::LH_PAGE_HAS_DEAD_TUPLES)?;
    set_lsn(ctx, page);
    Ok(())
}

fn vacuum_one_page_meta(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let n = vacuum_ntuples(ctx)?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let cur = hp::get_f64(page, hp::META_NTUPLES);
    hp::put_f64(page, hp::META_NTUPLES, cur - n as f64);
    set_lsn(ctx, page);
    Ok(())
}
