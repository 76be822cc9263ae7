//! Redo for the Heap resource manager (rmgr 10): INSERT, DELETE, UPDATE,
//! HOT_UPDATE, LOCK, INPLACE, CONFIRM, TRUNCATE — PostgreSQL 15's
//! `heap_xlog_*` routines, one block at a time.
//!
//! Main-data layouts (little-endian, C struct offsets):
//!
//! | record | fields |
//! |---|---|
//! | xl_heap_insert (3) | offnum u16 @0, flags u8 @2; block 0 data = xl_heap_header (infomask2 u16, infomask u16, t_hoff u8) + tuple bytes after the fixed header |
//! | xl_heap_delete (8) | xmax u32 @0, offnum u16 @4, infobits u8 @6, flags u8 @7 |
//! | xl_heap_update (14) | old_xmax u32 @0, old_offnum u16 @4, old_infobits u8 @6, flags u8 @7, new_xmax u32 @8, new_offnum u16 @12; block 0 (new page) data = [prefix u16][suffix u16] + xl_heap_header + bytes; block 1 = old page if different |
//! | xl_heap_lock (8) | locking_xid u32 @0, offnum u16 @4, infobits u8 @6, flags u8 @7 |
//! | xl_heap_confirm / xl_heap_inplace (2) | offnum u16; INPLACE block 0 data = new tuple data after t_hoff |
//!
//! Tuple fields not in the record come from elsewhere: xmin := the record's
//! xid, cmin/cmax := FirstCommandId, ctid := own TID. The visibility map bits
//! these records clear live on another page: see [`crate::vm`]. TRUNCATE
//! changes no page (the SMGR records do that work).

use postgres_ffi::v15::info::heap;
use postgres_ffi::BlockNumber;

use crate::dispatch::{heap_op, prepare_existing, prepare_init};
use crate::error::RedoError;
use crate::htup::{self, TupleMut, MAX_HEAP_TUPLE_SIZE, SIZEOF_HEAP_TUPLE_HEADER};
use crate::pageops::{self, AddItemMode, Page};
use crate::record::{Ctx, Reader};

const XLH_INSERT_ALL_VISIBLE_CLEARED: u8 = 0x01;
const XLH_DELETE_ALL_VISIBLE_CLEARED: u8 = 0x01;
const XLH_DELETE_IS_SUPER: u8 = 0x08;
const XLH_DELETE_IS_PARTITION_MOVE: u8 = 0x10;
const XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED: u8 = 0x01;
const XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED: u8 = 0x02;
const XLH_UPDATE_PREFIX_FROM_OLD: u8 = 0x20;
const XLH_UPDATE_SUFFIX_FROM_OLD: u8 = 0x40;

/// `SizeOfHeapHeader`: the part of a tuple header WAL carries.
pub const SIZE_OF_HEAP_HEADER: usize = 5;

/// Heap tuples are placed with overwrite semantics and the heap item limit.
pub const HEAP_ADD: AddItemMode = AddItemMode {
    overwrite: true,
    is_heap: true,
};

pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let info = ctx.info();
    let init = info & heap::INIT_PAGE != 0;
    match heap_op(info) {
        heap::INSERT => insert(ctx, page, init),
        heap::DELETE => delete(ctx, page),
        heap::UPDATE => update(ctx, page, init, false),
        heap::HOT_UPDATE => update(ctx, page, init, true),
        heap::CONFIRM => confirm(ctx, page),
        heap::LOCK => lock(ctx, page),
        heap::INPLACE => inplace(ctx, page),
        // TRUNCATE: logical decoding only; no page changes.
        _ => Ok(()),
    }
}

/// Only block 0 exists in single-block heap records.
pub(crate) fn expect_block0(ctx: &Ctx<'_>) -> Result<(), RedoError> {
    if ctx.blk.block_id != 0 {
        return Err(ctx.malformed(format!("unexpected block reference {}", ctx.blk.block_id)));
    }
    Ok(())
}

/// `xl_heap_header` plus tuple bytes → a complete tuple with the fields redo
/// fills in: xmin, cid, ctid.
pub(crate) struct NewTuple {
    pub infomask2: u16,
    pub infomask: u16,
    pub hoff: u8,
    pub xmin: u32,
    pub xmax: u32,
    pub ctid: (BlockNumber, u16),
}

/// Adds the tuple described by `t` (header fields) and `body` (the bytes
/// after the 23-byte fixed header, in pieces) at `offnum`, with heap
/// PageAddItem semantics, writing it directly into the page.
pub(crate) fn add_tuple(
    ctx: &Ctx<'_>,
    page: &mut Page,
    t: &NewTuple,
    body: [&[u8]; 4],
    offnum: u16,
) -> Result<(), RedoError> {
    let body_len: usize = body.iter().map(|b| b.len()).sum();
    let len = SIZEOF_HEAP_TUPLE_HEADER + body_len;
    if len > MAX_HEAP_TUPLE_SIZE {
        return Err(ctx.malformed(format!("tuple of {len} bytes exceeds MaxHeapTupleSize")));
    }
    let mut hdr = [0u8; SIZEOF_HEAP_TUPLE_HEADER];
    hdr[htup::T_XMIN..htup::T_XMIN + 4].copy_from_slice(&t.xmin.to_le_bytes());
    hdr[htup::T_XMAX..htup::T_XMAX + 4].copy_from_slice(&t.xmax.to_le_bytes());
    // t_cid stays FirstCommandId (0); HEAP_COMBOCID is cleared.
    hdr[htup::T_CTID..htup::T_CTID + 6].copy_from_slice(&htup::encode_tid(t.ctid.0, t.ctid.1));
    hdr[htup::T_INFOMASK2..htup::T_INFOMASK2 + 2].copy_from_slice(&t.infomask2.to_le_bytes());
    let infomask = t.infomask & !htup::HEAP_COMBOCID;
    hdr[htup::T_INFOMASK..htup::T_INFOMASK + 2].copy_from_slice(&infomask.to_le_bytes());
    hdr[htup::T_HOFF] = t.hoff;
    let [a, b, c, d] = body;
    pageops::page_add_item_parts(page, &[&hdr, a, b, c, d], offnum, HEAP_ADD)
        .map_err(|e| ctx.page_err(e))?;
    Ok(())
}

/// Reads an `xl_heap_header`.
pub(crate) fn read_heap_header(r: &mut Reader<'_>) -> Option<(u16, u16, u8)> {
    Some((r.u16()?, r.u16()?, r.u8()?))
}

/// PostgreSQL refuses to place a tuple beyond the first free line pointer.
pub(crate) fn check_new_offnum(ctx: &Ctx<'_>, page: &Page, offnum: u16) -> Result<(), RedoError> {
    if pageops::max_offset(page) as u32 + 1 < offnum as u32 {
        return Err(ctx.malformed(format!(
            "invalid max offset number: tuple at {offnum}, page has {}",
            pageops::max_offset(page)
        )));
    }
    Ok(())
}

/// The tuple at `offnum`, which must be LP_NORMAL with its header in the page
/// (PostgreSQL PANICs with "invalid lp" otherwise).
pub(crate) fn tuple_at<'p>(
    ctx: &Ctx<'_>,
    page: &'p mut Page,
    offnum: u16,
) -> Result<(TupleMut<'p>, std::ops::Range<usize>), RedoError> {
    let range = pageops::normal_item_range(page, offnum).map_err(|e| ctx.page_err(e))?;
    let t = TupleMut::new(page, range.start)
        .ok_or_else(|| ctx.malformed(format!("tuple at {offnum} runs past the page")))?;
    Ok((t, range))
}

fn insert(ctx: &Ctx<'_>, page: &mut Page, init: bool) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_insert");
    let offnum = md.u16().ok_or_else(bad)?;
    let flags = md.u8().ok_or_else(bad)?;
    if init {
        prepare_init(ctx, page, 0)?;
    } else if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    check_new_offnum(ctx, page, offnum)?;
    let mut data = ctx.block_data();
    let (infomask2, infomask, hoff) = read_heap_header(&mut data)
        .ok_or_else(|| ctx.malformed("block data shorter than xl_heap_header"))?;
    let t = NewTuple {
        infomask2,
        infomask,
        hoff,
        xmin: ctx.rec.xid(),
        xmax: 0,
        ctid: (ctx.blk.blkno, offnum),
    };
    add_tuple(ctx, page, &t, [data.rest(), &[], &[], &[]], offnum)?;
    pageops::set_lsn(page, ctx.end_lsn());
    if flags & XLH_INSERT_ALL_VISIBLE_CLEARED != 0 {
        pageops::clear_all_visible(page);
    }
    Ok(())
}

fn delete(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_delete");
    let xmax = md.u32().ok_or_else(bad)?;
    let offnum = md.u16().ok_or_else(bad)?;
    let infobits = md.u8().ok_or_else(bad)?;
    let flags = md.u8().ok_or_else(bad)?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let (mut t, _) = tuple_at(ctx, page, offnum)?;
    let mut infomask = t.infomask() & !(htup::HEAP_XMAX_BITS | htup::HEAP_MOVED);
    let mut infomask2 = t.infomask2() & !(htup::HEAP_KEYS_UPDATED | htup::HEAP_HOT_UPDATED);
    htup::apply_infobits(infobits, &mut infomask, &mut infomask2);
    t.set_infomask(infomask);
    t.set_infomask2(infomask2);
    if flags & XLH_DELETE_IS_SUPER == 0 {
        t.set_xmax(xmax);
    } else {
        // Speculative insertion aborted: the tuple becomes invisible to all.
        t.set_xmin(0);
    }
    t.set_first_cid();
    if flags & XLH_DELETE_IS_PARTITION_MOVE != 0 {
        t.set_ctid(
            htup::MOVED_PARTITIONS_BLOCK_NUMBER,
            htup::MOVED_PARTITIONS_OFFSET_NUMBER,
        );
    } else {
        t.set_ctid(ctx.blk.blkno, offnum);
    }
    pageops::set_prunable(page, ctx.rec.xid());
    if flags & XLH_DELETE_ALL_VISIBLE_CLEARED != 0 {
        pageops::clear_all_visible(page);
    }
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

struct UpdateRec {
    old_xmax: u32,
    old_offnum: u16,
    old_infobits: u8,
    flags: u8,
    new_xmax: u32,
    new_offnum: u16,
}

fn update(ctx: &Ctx<'_>, page: &mut Page, init: bool, hot: bool) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_update");
    let u = UpdateRec {
        old_xmax: md.u32().ok_or_else(bad)?,
        old_offnum: md.u16().ok_or_else(bad)?,
        old_infobits: md.u8().ok_or_else(bad)?,
        flags: md.u8().ok_or_else(bad)?,
        new_xmax: md.u32().ok_or_else(bad)?,
        new_offnum: md.u16().ok_or_else(bad)?,
    };
    let new_block = ctx
        .other_block(0)
        .ok_or_else(|| ctx.malformed("update without block 0"))?;
    let old_blkno = ctx.other_block(1).map(|b| b.blkno);
    let same_page = old_blkno.is_none();
    let newtid = (new_block.blkno, u.new_offnum);

    match ctx.blk.block_id {
        // The old page, when different from the new one.
        1 => {
            if hot {
                return Err(ctx.malformed("HOT update across pages"));
            }
            if prepare_existing(ctx, page)? {
                update_old(ctx, page, &u, hot, newtid)?;
            }
            Ok(())
        }
        0 if same_page => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            let old = update_old(ctx, page, &u, hot, newtid)?;
            update_new(ctx, page, &u, Some(old))
        }
        0 => {
            if init {
                prepare_init(ctx, page, 0)?;
            } else if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            update_new(ctx, page, &u, None)
        }
        id => Err(ctx.malformed(format!("unexpected block reference {id}"))),
    }
}

/// Marks the old tuple version updated; returns its byte range (the new
/// version may copy a prefix/suffix from it).
fn update_old(
    ctx: &Ctx<'_>,
    page: &mut Page,
    u: &UpdateRec,
    hot: bool,
    newtid: (BlockNumber, u16),
) -> Result<std::ops::Range<usize>, RedoError> {
    let (mut t, range) = tuple_at(ctx, page, u.old_offnum)?;
    let mut infomask = t.infomask() & !(htup::HEAP_XMAX_BITS | htup::HEAP_MOVED);
    let mut infomask2 = t.infomask2() & !htup::HEAP_KEYS_UPDATED;
    if hot {
        infomask2 |= htup::HEAP_HOT_UPDATED;
    } else {
        infomask2 &= !htup::HEAP_HOT_UPDATED;
    }
    htup::apply_infobits(u.old_infobits, &mut infomask, &mut infomask2);
    t.set_infomask(infomask);
    t.set_infomask2(infomask2);
    t.set_xmax(u.old_xmax);
    t.set_first_cid();
    t.set_ctid(newtid.0, newtid.1);
    pageops::set_prunable(page, ctx.rec.xid());
    if u.flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED != 0 {
        pageops::clear_all_visible(page);
    }
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(range)
}

/// Places the new tuple version, rebuilt from the record plus (same-page
/// updates only) a prefix and/or suffix of the old version's data.
fn update_new(
    ctx: &Ctx<'_>,
    page: &mut Page,
    u: &UpdateRec,
    old: Option<std::ops::Range<usize>>,
) -> Result<(), RedoError> {
    check_new_offnum(ctx, page, u.new_offnum)?;
    let mut data = ctx.block_data();
    let bad = || ctx.malformed("block 0 data shorter than its update header");
    let prefixlen = if u.flags & XLH_UPDATE_PREFIX_FROM_OLD != 0 {
        data.u16().ok_or_else(bad)? as usize
    } else {
        0
    };
    let suffixlen = if u.flags & XLH_UPDATE_SUFFIX_FROM_OLD != 0 {
        data.u16().ok_or_else(bad)? as usize
    } else {
        0
    };
    let (infomask2, infomask, hoff) = read_heap_header(&mut data).ok_or_else(bad)?;
    let rest = data.rest();

    // The old tuple's bytes, copied out: the new version is written into the
    // same page.
    let (prefix, suffix): (Vec<u8>, Vec<u8>) = if prefixlen > 0 || suffixlen > 0 {
        let old =
            old.ok_or_else(|| ctx.malformed("prefix/suffix from old tuple on another page"))?;
        let old_tuple = &page[old];
        let old_hoff = old_tuple
            .get(htup::T_HOFF)
            .copied()
            .ok_or_else(|| ctx.malformed("old tuple shorter than its header"))?
            as usize;
        let prefix = old_hoff
            .checked_add(prefixlen)
            .and_then(|end| old_tuple.get(old_hoff..end))
            .ok_or_else(|| ctx.malformed("prefix longer than the old tuple"))?;
        let suffix = old_tuple
            .len()
            .checked_sub(suffixlen)
            .and_then(|start| old_tuple.get(start..))
            .ok_or_else(|| ctx.malformed("suffix longer than the old tuple"))?;
        (prefix.to_vec(), suffix.to_vec())
    } else {
        (Vec::new(), Vec::new())
    };
    let header = NewTuple {
        infomask2,
        infomask,
        hoff,
        xmin: ctx.rec.xid(),
        xmax: u.new_xmax,
        ctid: (ctx.blk.blkno, u.new_offnum),
    };
    if prefixlen > 0 {
        // Null bitmap [+ padding] comes from the record, then the prefix,
        // then the rest of the logged bytes.
        let bitmap_len = (hoff as usize)
            .checked_sub(SIZEOF_HEAP_TUPLE_HEADER)
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| ctx.malformed(format!("bad t_hoff {hoff} for a prefix update")))?;
        let (bitmap, after) = rest.split_at(bitmap_len);
        add_tuple(
            ctx,
            page,
            &header,
            [bitmap, &prefix, after, &suffix],
            u.new_offnum,
        )?;
    } else {
        add_tuple(ctx, page, &header, [rest, &suffix, &[], &[]], u.new_offnum)?;
    }
    if u.flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED != 0 {
        pageops::clear_all_visible(page);
    }
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn confirm(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let offnum = ctx
        .main()
        .u16()
        .ok_or_else(|| ctx.malformed("main data shorter than xl_heap_confirm"))?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let (mut t, _) = tuple_at(ctx, page, offnum)?;
    t.set_ctid(ctx.blk.blkno, offnum);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn lock(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_lock");
    let locking_xid = md.u32().ok_or_else(bad)?;
    let offnum = md.u16().ok_or_else(bad)?;
    let infobits = md.u8().ok_or_else(bad)?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let (mut t, _) = tuple_at(ctx, page, offnum)?;
    let mut infomask = t.infomask() & !(htup::HEAP_XMAX_BITS | htup::HEAP_MOVED);
    let mut infomask2 = t.infomask2() & !htup::HEAP_KEYS_UPDATED;
    htup::apply_infobits(infobits, &mut infomask, &mut infomask2);
    if htup::xmax_is_locked_only(infomask) {
        // A pure lock leaves no update chain behind.
        infomask2 &= !htup::HEAP_HOT_UPDATED;
        t.set_ctid(ctx.blk.blkno, offnum);
    }
    t.set_infomask(infomask);
    t.set_infomask2(infomask2);
    t.set_xmax(locking_xid);
    t.set_first_cid();
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn inplace(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let offnum = ctx
        .main()
        .u16()
        .ok_or_else(|| ctx.malformed("main data shorter than xl_heap_inplace"))?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let newdata = ctx.data();
    let (t, range) = tuple_at(ctx, page, offnum)?;
    let hoff = t.hoff() as usize;
    let oldlen = range.len().checked_sub(hoff);
    if oldlen != Some(newdata.len()) {
        return Err(ctx.malformed(format!(
            "wrong tuple length: in-place data {} bytes, tuple holds {:?}",
            newdata.len(),
            oldlen
        )));
    }
    let start = range.start + hoff;
    page[start..start + newdata.len()].copy_from_slice(newdata);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}
