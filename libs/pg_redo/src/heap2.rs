//! Redo for the Heap2 resource manager (rmgr 9): PRUNE, VACUUM, FREEZE_PAGE,
//! VISIBLE (heap page and VM page), MULTI_INSERT, LOCK_UPDATED, and the
//! page no-ops NEW_CID and REWRITE — PostgreSQL 15's `heap_xlog_*` routines.
//!
//! Layouts (little-endian, C struct offsets):
//!
//! | record | main data | block data |
//! |---|---|---|
//! | PRUNE | latestRemovedXid u32 @0, nredirected u16 @4, ndead u16 @6 | block 0: u16 offsets — redirect pairs, dead, then unused (count = rest) |
//! | VACUUM | nunused u16 | block 0: nunused u16 offsets |
//! | FREEZE_PAGE | cutoff_xid u32 @0, ntuples u16 @4 | block 0: ntuples × 12-byte plans (xmax u32, offset u16, infomask2 u16, infomask u16, frzflags u8, pad) |
//! | VISIBLE | cutoff_xid u32 @0, flags u8 @4 | block 0 = VM page, block 1 = heap page |
//! | MULTI_INSERT | flags u8 @0, ntuples u16 @2, offsets (ntuples × u16) @4 (absent with INIT_PAGE) | block 0: per tuple, 2-aligned: datalen u16, infomask2 u16, infomask u16, t_hoff u8, then datalen bytes |
//! | LOCK_UPDATED | xmax u32 @0, offnum u16 @4, infobits u8 @6, flags u8 @7 | – |
//!
//! PRUNE ends with PageRepairFragmentation, whose byte layout we reproduce
//! exactly (see [`crate::pageops`]).

use postgres_ffi::page::{ItemId, LpFlags};
use postgres_ffi::types::FROZEN_TRANSACTION_ID;
use postgres_ffi::v15::info::{heap, heap2};

use crate::dispatch::{heap_op, prepare_existing, prepare_init};
use crate::error::RedoError;
use crate::heap::{add_tuple, check_new_offnum, expect_block0, tuple_at, NewTuple};
use crate::htup;
use crate::pageops::{self, Page};
use crate::record::Ctx;
use crate::vm;

const XLH_INSERT_ALL_VISIBLE_CLEARED: u8 = 0x01;
const XLH_INSERT_ALL_FROZEN_SET: u8 = 0x20;
const XLH_FREEZE_XVAC: u8 = 0x02;
const XLH_INVALID_XVAC: u8 = 0x04;
/// sizeof(xl_heap_freeze_tuple), padding included.
const FREEZE_PLAN_SIZE: usize = 12;

pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let info = ctx.info();
    match heap_op(info) {
        heap2::PRUNE => prune(ctx, page),
        heap2::VACUUM => vacuum(ctx, page),
        heap2::FREEZE_PAGE => freeze_page(ctx, page),
        heap2::VISIBLE => visible(ctx, page),
        heap2::MULTI_INSERT => multi_insert(ctx, page, info & heap::INIT_PAGE != 0),
        heap2::LOCK_UPDATED => lock_updated(ctx, page),
        // NEW_CID (logical decoding) and REWRITE (logical mapping files)
        // change no page.
        _ => Ok(()),
    }
}

/// The block's data as an array of u16 offset numbers.
fn offsets(ctx: &Ctx<'_>) -> Result<Vec<u16>, RedoError> {
    let data = &ctx.data();
    if !data.len().is_multiple_of(2) {
        return Err(ctx.malformed("offset array has odd length"));
    }
    Ok(data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect())
}

fn set_lp(ctx: &Ctx<'_>, page: &mut Page, offnum: u16, lp: ItemId) -> Result<(), RedoError> {
    pageops::set_item_id(page, offnum, lp).map_err(|e| ctx.page_err(e))
}

fn prune(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_prune");
    let _latest_removed_xid = md.u32().ok_or_else(bad)?;
    let nredirected = md.u16().ok_or_else(bad)? as usize;
    let ndead = md.u16().ok_or_else(bad)? as usize;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let offs = offsets(ctx)?;
    if offs.len() < 2 * nredirected + ndead {
        return Err(ctx.malformed(format!(
            "{} offsets for {nredirected} redirects and {ndead} dead items",
            offs.len()
        )));
    }
    let (redirects, rest) = offs.split_at(2 * nredirected);
    let (dead, unused) = rest.split_at(ndead);
    for pair in redirects.chunks_exact(2) {
        let redirect = ItemId {
            off: pair[1],
            flags: LpFlags::Redirect,
            len: 0,
        };
        set_lp(ctx, page, pair[0], redirect)?;
    }
    for &o in dead {
        let lp = ItemId {
            off: 0,
            flags: LpFlags::Dead,
            len: 0,
        };
        set_lp(ctx, page, o, lp)?;
    }
    for &o in unused {
        set_lp(ctx, page, o, pageops::lp_unused())?;
    }
    pageops::page_repair_fragmentation(page).map_err(|e| ctx.page_err(e))?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn vacuum(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let nunused = ctx
        .main()
        .u16()
        .ok_or_else(|| ctx.malformed("main data shorter than xl_heap_vacuum"))?
        as usize;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let offs = offsets(ctx)?;
    let list = offs
        .get(..nunused)
        .ok_or_else(|| ctx.malformed(format!("{} offsets for {nunused} unused", offs.len())))?;
    for &o in list {
        set_lp(ctx, page, o, pageops::lp_unused())?;
    }
    pageops::page_truncate_line_pointer_array(page);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn freeze_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_freeze_page");
    let _cutoff_xid = md.u32().ok_or_else(bad)?;
    let ntuples = md.u16().ok_or_else(bad)? as usize;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let mut data = ctx.block_data();
    for i in 0..ntuples {
        let plan = data
            .bytes(FREEZE_PLAN_SIZE)
            .ok_or_else(|| ctx.malformed(format!("freeze plan {i} of {ntuples} missing")))?;
        let mut p = crate::record::Reader::new(plan);
        let (xmax, offnum, infomask2, infomask, frzflags) = (
            p.u32().unwrap_or(0),
            p.u16().unwrap_or(0),
            p.u16().unwrap_or(0),
            p.u16().unwrap_or(0),
            p.u8().unwrap_or(0),
        );
        let (mut t, _) = tuple_at(ctx, page, offnum)?;
        t.set_xmax(xmax);
        if frzflags & XLH_FREEZE_XVAC != 0 {
            t.set_field3(FROZEN_TRANSACTION_ID);
        }
        if frzflags & XLH_INVALID_XVAC != 0 {
            t.set_field3(0);
        }
        t.set_infomask(infomask);
        t.set_infomask2(infomask2);
    }
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

fn visible(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_visible");
    let _cutoff_xid = md.u32().ok_or_else(bad)?;
    let flags = md.u8().ok_or_else(bad)?;
    if flags & !vm::VISIBILITYMAP_VALID_BITS != 0 {
        return Err(ctx.malformed(format!("invalid visibility map flags {flags:#x}")));
    }
    match ctx.blk.block_id {
        // The heap page.
        1 => {
            if prepare_existing(ctx, page)? {
                pageops::set_all_visible(page);
                // Without logged hint bits the heap page's LSN is not bumped
                // (its block was registered without an image).
                if ctx.settings.hint_bits_logged() {
                    pageops::set_lsn(page, ctx.end_lsn());
                }
            }
            Ok(())
        }
        // The VM page: read "zero on error", so a missing page is fine.
        0 => {
            if ctx.blk.will_init() {
                return Err(ctx.malformed("VM block marked WILL_INIT"));
            }
            let heap_blkno = ctx
                .other_block(1)
                .ok_or_else(|| ctx.malformed("HEAP2 VISIBLE without heap block"))?
                .blkno;
            if pageops::lsn(page) >= ctx.end_lsn() {
                return Ok(());
            }
            if pageops::is_new(page) {
                pageops::page_init(page, 0).map_err(|e| ctx.page_err(e))?;
            }
            if ctx.end_lsn() > pageops::lsn(page) && vm::set_vm_bits(page, heap_blkno, flags) {
                pageops::set_lsn(page, ctx.end_lsn());
            }
            Ok(())
        }
        id => Err(ctx.malformed(format!("unexpected block reference {id}"))),
    }
}

fn multi_insert(ctx: &Ctx<'_>, page: &mut Page, init: bool) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_multi_insert");
    let flags = md.u8().ok_or_else(bad)?;
    md.seek(2).ok_or_else(bad)?;
    let ntuples = md.u16().ok_or_else(bad)?;
    if init {
        prepare_init(ctx, page, 0)?;
    } else if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let mut data = ctx.block_data();
    for i in 0..ntuples {
        let offnum = if init {
            i.checked_add(1)
                .ok_or_else(|| ctx.malformed("too many tuples"))?
        } else {
            md.u16()
                .ok_or_else(|| ctx.malformed(format!("offset {i} of {ntuples} missing")))?
        };
        check_new_offnum(ctx, page, offnum)?;
        data.align2();
        let hdr_bad = || ctx.malformed(format!("tuple {i} of {ntuples} truncated"));
        let datalen = data.u16().ok_or_else(hdr_bad)? as usize;
        let infomask2 = data.u16().ok_or_else(hdr_bad)?;
        let infomask = data.u16().ok_or_else(hdr_bad)?;
        let hoff = data.u8().ok_or_else(hdr_bad)?;
        let body = data.bytes(datalen).ok_or_else(hdr_bad)?;
        let t = NewTuple {
            infomask2,
            infomask,
            hoff,
            xmin: ctx.rec.xid(),
            xmax: 0,
            ctid: (ctx.blk.blkno, offnum),
        };
        add_tuple(ctx, page, &t, [body, &[], &[], &[]], offnum)?;
    }
    if !data.at_end() {
        return Err(ctx.malformed("total tuple length mismatch"));
    }
    pageops::set_lsn(page, ctx.end_lsn());
    if flags & XLH_INSERT_ALL_VISIBLE_CLEARED != 0 {
        pageops::clear_all_visible(page);
    }
    if flags & XLH_INSERT_ALL_FROZEN_SET != 0 {
        pageops::set_all_visible(page);
    }
    Ok(())
}

fn lock_updated(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_heap_lock_updated");
    let xmax = md.u32().ok_or_else(bad)?;
    let offnum = md.u16().ok_or_else(bad)?;
    let infobits = md.u8().ok_or_else(bad)?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let (mut t, _) = tuple_at(ctx, page, offnum)?;
    let mut infomask = t.infomask() & !(htup::HEAP_XMAX_BITS | htup::HEAP_MOVED);
    let mut infomask2 = t.infomask2() & !htup::HEAP_KEYS_UPDATED;
    htup::apply_infobits(infobits, &mut infomask, &mut infomask2);
    t.set_infomask(infomask);
    t.set_infomask2(infomask2);
    t.set_xmax(xmax);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}
