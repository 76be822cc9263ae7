//! Redo for the Btree resource manager (rmgr 11) — PostgreSQL 15's
//! `nbtxlog.c`, one block reference at a time — and `btree_mask`.
//!
//! Main data and block data (little-endian, C struct offsets):
//!
//! | record | main data | blocks |
//! |---|---|---|
//! | INSERT_LEAF 0x00, INSERT_UPPER 0x10, INSERT_META 0x20, INSERT_POST 0x50 | offnum u16 | 0 target: the new tuple (INSERT_POST: posting offset u16 first); 1 child whose split this completes (UPPER/META); 2 metapage (META, WILL_INIT): `xl_btree_metadata` |
//! | SPLIT_L 0x30, SPLIT_R 0x40 | level u32 @0, firstrightoff u16 @4, newitemoff u16 @6, postingoff u16 @8 | 0 left (original) page: [new item if it went left or split a posting list] + left high key; 1 right page (WILL_INIT): its tuples in reverse offset order; 2 right sibling (optional); 3 child (non-leaf) |
//! | DEDUP 0x60 | nintervals u16 | 0 leaf: intervals (baseoff u16, nitems u16) |
//! | DELETE 0x70 | latestRemovedXid u32 @0, ndeleted u16 @4, nupdated u16 @6 | 0 leaf: deleted offsets, updated offsets, then per update ndeletedtids u16 + that many posting positions u16 |
//! | VACUUM 0xC0 | ndeleted u16 @0, nupdated u16 @2 | 0 leaf: as DELETE |
//! | MARK_PAGE_HALFDEAD 0xB0 | poffset u16 @0, leafblk u32 @4, leftblk @8, rightblk @12, topparent @16 | 0 leaf (WILL_INIT); 1 subtree parent |
//! | UNLINK_PAGE 0x80, UNLINK_PAGE_META 0x90 | leftsib u32 @0, rightsib @4, level @8, safexid u64 @16, leafleftsib u32 @24, leafrightsib @28, leaftopparent @32 | 0 target (WILL_INIT); 1 left sibling (if any); 2 right sibling; 3 leaf (WILL_INIT, if the target is internal); 4 metapage (META) |
//! | NEWROOT 0xA0 | rootblk u32 @0, level u32 @4 | 0 new root (WILL_INIT): its tuples (level > 0); 1 left child (level > 0); 2 metapage |
//! | REUSE_PAGE 0xD0 | – | none (hot-standby conflict only) |
//! | META_CLEANUP 0xE0 | – | 0 metapage (WILL_INIT): `xl_btree_metadata` |
//!
//! `xl_btree_metadata` (28 bytes): version u32 @0, root @4, level @8,
//! fastroot @12, fastlevel @16, last_cleanup_num_delpages @20,
//! allequalimage bool @24.
//!
//! Page layout: standard page, 16 bytes of special space
//! (`BTPageOpaqueData`: prev u32, next u32, level u32, flags u16, cycle id
//! u16). Rebuilt pages (the left half of a split, a deduplicated leaf) are
//! assembled on a temporary page in item order, as the primary does, so the
//! byte layout matches. Posting-list work is in [`tuple`].
//!
//! Where PostgreSQL's redo would PANIC or ERROR (an item that does not fit,
//! a bad posting offset) or only asserts (data lengths), we return a typed
//! error naming the record.

pub mod tuple;

use postgres_ffi::v15::info::btree as info;
use postgres_ffi::{maxalign, BlockNumber, BLCKSZ};

use crate::dispatch::{prepare_existing, prepare_init};
use crate::error::RedoError;
use crate::mask;
use crate::pageops::{self, AddItemMode, Page, SIZE_OF_PAGE_HEADER};
use crate::record::{Ctx, Reader};

/// `sizeof(BTPageOpaqueData)`.
pub const SPECIAL_SIZE: usize = 16;
pub const BTP_LEAF: u16 = 1 << 0;
pub const BTP_ROOT: u16 = 1 << 1;
pub const BTP_DELETED: u16 = 1 << 2;
pub const BTP_META: u16 = 1 << 3;
pub const BTP_HALF_DEAD: u16 = 1 << 4;
pub const BTP_SPLIT_END: u16 = 1 << 5;
pub const BTP_HAS_GARBAGE: u16 = 1 << 6;
pub const BTP_INCOMPLETE_SPLIT: u16 = 1 << 7;
pub const BTP_HAS_FULLXID: u16 = 1 << 8;
/// `P_NONE`: no sibling.
const P_NONE: u32 = 0;
const P_HIKEY: u16 = 1;
const P_FIRSTKEY: u16 = 2;
const BTREE_MAGIC: u32 = 0x053162;
/// `sizeof(xl_btree_metadata)`.
const SIZE_OF_XL_METADATA: usize = 28;
/// `sizeof(BTMetaPageData)` (MAXALIGNed); it sits right after the header.
const SIZE_OF_META: usize = 48;
/// `BTMaxItemSize` of an 8 KiB page: the dedup posting size limit.
const BT_MAX_ITEM_SIZE: usize = 2704;

/// Index tuples are added without overwriting, shifting later ones up.
const INDEX_ADD: AddItemMode = AddItemMode {
    overwrite: false,
    is_heap: false,
};

/// Whether the record type `info` has native redo: all 15 do.
pub fn supports(i: u8) -> bool {
    matches!(
        i,
        info::INSERT_LEAF
            | info::INSERT_UPPER
            | info::INSERT_META
            | info::SPLIT_L
            | info::SPLIT_R
            | info::INSERT_POST
            | info::DEDUP
            | info::DELETE
            | info::UNLINK_PAGE
            | info::UNLINK_PAGE_META
            | info::NEWROOT
            | info::MARK_PAGE_HALFDEAD
            | info::VACUUM
            | info::REUSE_PAGE
            | info::META_CLEANUP
    )
}

/// Redo of one block reference (not restored from an image).
pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let id = ctx.blk.block_id;
    match (ctx.info(), id) {
        (info::INSERT_LEAF, 0) => insert(ctx, page, false),
        (info::INSERT_POST, 0) => insert(ctx, page, true),
        (info::INSERT_UPPER | info::INSERT_META, 0) => insert(ctx, page, false),
        (info::INSERT_UPPER | info::INSERT_META, 1) => clear_incomplete_split(ctx, page),
        (info::INSERT_META, 2) => restore_meta(ctx, page),
        (info::SPLIT_L | info::SPLIT_R, _) => split(ctx, page, ctx.info() == info::SPLIT_L),
        (info::DEDUP, 0) => dedup(ctx, page),
        (info::DELETE, 0) => delete_items(ctx, page, 4),
        (info::VACUUM, 0) => delete_items(ctx, page, 0),
        (info::MARK_PAGE_HALFDEAD, _) => mark_half_dead(ctx, page),
        (info::UNLINK_PAGE | info::UNLINK_PAGE_META, _) => unlink(ctx, page),
        (info::NEWROOT, _) => newroot(ctx, page),
        (info::META_CLEANUP, 0) => restore_meta(ctx, page),
        _ => Err(ctx.malformed(format!("unexpected block reference {id}"))),
    }
}

/// `btree_mask`.
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    mask::mask_hint_bits(page);
    mask::mask_unused_space(page);
    let Some(at) = special_at(page) else {
        return;
    };
    let mut o = Opaque::read(page, at);
    // LP_DEAD on leaves is set by index scans without WAL.
    if o.flags & BTP_LEAF != 0 {
        mask::mask_lp_flags(page);
    }
    // Unlogged hints, and what split redo leaves out.
    o.flags &= !(BTP_HAS_GARBAGE | BTP_SPLIT_END);
    o.cycleid = 0;
    o.write(page, at);
}

// ---- page pieces ----

/// `BTPageOpaqueData`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Opaque {
    prev: u32,
    next: u32,
    level: u32,
    flags: u16,
    cycleid: u16,
}

impl Opaque {
    fn read(page: &Page, at: usize) -> Opaque {
        let u32_at = |o| pageops::read_u32(page, at + o).unwrap_or(0);
        let u16_at = |o| pageops::read_u16(page, at + o).unwrap_or(0);
        Opaque {
            prev: u32_at(0),
            next: u32_at(4),
            level: u32_at(8),
            flags: u16_at(12),
            cycleid: u16_at(14),
        }
    }

    fn write(&self, page: &mut Page, at: usize) {
        let mut b = [0u8; SPECIAL_SIZE];
        b[0..4].copy_from_slice(&self.prev.to_le_bytes());
        b[4..8].copy_from_slice(&self.next.to_le_bytes());
        b[8..12].copy_from_slice(&self.level.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..16].copy_from_slice(&self.cycleid.to_le_bytes());
        pageops::write_at(page, at, &b);
    }
}

/// Where the special space starts, if the page has a B-tree-sized one.
fn special_at(page: &Page) -> Option<usize> {
    let s = pageops::special(page) as usize;
    (s >= SIZE_OF_PAGE_HEADER && s + SPECIAL_SIZE <= BLCKSZ).then_some(s)
}

fn opaque(ctx: &Ctx<'_>, page: &Page) -> Result<(Opaque, usize), RedoError> {
    let at = special_at(page).ok_or_else(|| {
        ctx.malformed(format!(
            "page has no B-tree special space (pd_special {})",
            pageops::special(page)
        ))
    })?;
    Ok((Opaque::read(page, at), at))
}

/// `_bt_pageinit` with the opaque fields set.
fn init_page(ctx: &Ctx<'_>, page: &mut Page, o: Opaque) -> Result<(), RedoError> {
    prepare_init(ctx, page, SPECIAL_SIZE)?;
    let at = special_at(page).ok_or_else(|| ctx.malformed("special space"))?;
    o.write(page, at);
    Ok(())
}

/// The bytes of item `offnum` (any state with storage: LP_DEAD items on
/// leaves are still tuples).
fn item<'p>(ctx: &Ctx<'_>, page: &'p Page, offnum: u16) -> Result<&'p [u8], RedoError> {
    let lp = pageops::item_id(page, offnum).map_err(|e| ctx.page_err(e))?;
    let (off, len) = (lp.off as usize, lp.len as usize);
    if !lp.has_storage() || off < SIZE_OF_PAGE_HEADER || off + len > BLCKSZ {
        return Err(ctx.malformed(format!(
            "item {offnum} has no tuple (offset {off}, length {len})"
        )));
    }
    Ok(&page[off..off + len])
}

fn add(ctx: &Ctx<'_>, page: &mut Page, t: &[u8], offnum: u16) -> Result<(), RedoError> {
    pageops::page_add_item(page, t, offnum, INDEX_ADD)
        .map(|_| ())
        .map_err(|e| ctx.page_err(e))
}

/// The next index tuple of a logged tuple sequence and its MAXALIGNed size.
fn next_tuple<'a>(ctx: &Ctx<'_>, data: &'a [u8]) -> Result<(&'a [u8], usize), RedoError> {
    let size = tuple::size(data)
        .filter(|&s| s >= tuple::SIZE_OF_INDEX_TUPLE)
        .ok_or_else(|| ctx.malformed("index tuple shorter than its header"))?;
    let aligned = maxalign(size);
    let t = data
        .get(..aligned)
        .ok_or_else(|| ctx.malformed("index tuple runs past the block data"))?;
    Ok((t, aligned))
}

/// `_bt_restore_page`: the logged tuples (item order, highest offset
/// first in the data) onto an initialised page.
fn restore_page(ctx: &Ctx<'_>, page: &mut Page, data: &[u8]) -> Result<(), RedoError> {
    let mut items = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (t, aligned) = next_tuple(ctx, rest)?;
        items.push(t);
        rest = &rest[aligned..];
    }
    let n = items.len();
    for (i, t) in items.iter().enumerate().rev() {
        add(ctx, page, t, (n - i) as u16)?;
    }
    Ok(())
}

/// A copy of `page` initialised empty with its special space kept
/// (`PageGetTempPageCopySpecial`).
fn temp_copy_special(ctx: &Ctx<'_>, page: &Page, at: usize) -> Result<Box<Page>, RedoError> {
    let mut temp: Box<Page> = Box::new([0u8; BLCKSZ]);
    pageops::page_init(&mut temp, BLCKSZ - at).map_err(|e| ctx.page_err(e))?;
    temp[at..].copy_from_slice(&page[at..]);
    Ok(temp)
}

fn set_lsn(ctx: &Ctx<'_>, page: &mut Page) {
    pageops::set_lsn(page, ctx.end_lsn());
}

fn u16_array(
    ctx: &Ctx<'_>,
    r: &mut Reader<'_>,
    n: usize,
    what: &str,
) -> Result<Vec<u16>, RedoError> {
    (0..n)
        .map(|_| r.u16())
        .collect::<Option<Vec<u16>>>()
        .ok_or_else(|| ctx.malformed(format!("block data too short for {n} {what}")))
}

// ---- records ----

/// `_bt_clear_incomplete_split`.
fn clear_incomplete_split(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let (mut o, at) = opaque(ctx, page)?;
    o.flags &= !BTP_INCOMPLETE_SPLIT;
    o.write(page, at);
    set_lsn(ctx, page);
    Ok(())
}

/// `_bt_restore_meta`: the metapage rebuilt from `xl_btree_metadata`.
fn restore_meta(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut r = ctx.block_data();
    if r.remaining() != SIZE_OF_XL_METADATA {
        return Err(ctx.malformed(format!(
            "metapage data is {} bytes, expected {SIZE_OF_XL_METADATA}",
            r.remaining()
        )));
    }
    let mut f = [0u32; 6];
    for v in &mut f {
        *v = r.u32().ok_or_else(|| ctx.malformed("metadata"))?;
    }
    let allequalimage = r.u8().ok_or_else(|| ctx.malformed("metadata"))?;
    init_page(
        ctx,
        page,
        Opaque {
            flags: BTP_META,
            ..Opaque::default()
        },
    )?;
    let m = SIZE_OF_PAGE_HEADER;
    let mut meta = [0u8; SIZE_OF_META];
    meta[0..4].copy_from_slice(&BTREE_MAGIC.to_le_bytes());
    for (i, v) in f.iter().enumerate() {
        meta[4 + i * 4..8 + i * 4].copy_from_slice(&v.to_le_bytes());
    }
    // btm_last_cleanup_num_heap_tuples is deprecated: always -1.
    meta[32..40].copy_from_slice(&(-1.0f64).to_le_bytes());
    meta[40] = allequalimage;
    pageops::write_at(page, m, &meta);
    pageops::set_lower(page, (m + SIZE_OF_META) as u16);
    set_lsn(ctx, page);
    Ok(())
}

/// INSERT_LEAF / UPPER / META / POST, block 0.
fn insert(ctx: &Ctx<'_>, page: &mut Page, posting: bool) -> Result<(), RedoError> {
    let offnum = ctx
        .main()
        .u16()
        .ok_or_else(|| ctx.malformed("main data shorter than xl_btree_insert"))?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let data = ctx.data();
    if !posting {
        add(ctx, page, data, offnum)?;
    } else {
        let mut r = Reader::new(data);
        let postingoff = r
            .u16()
            .ok_or_else(|| ctx.malformed("INSERT_POST data lacks the posting offset"))?;
        let mut newitem = r.rest().to_vec();
        let prev = offnum
            .checked_sub(1)
            .filter(|&o| o >= 1)
            .ok_or_else(|| ctx.malformed(format!("posting split before offset {offnum}")))?;
        let range = {
            let oposting = item(ctx, page, prev)?;
            let nposting = tuple::swap_posting(&mut newitem, oposting, postingoff as usize)
                .ok_or_else(|| {
                    ctx.malformed(format!(
                        "posting list at {prev} cannot be split at offset {postingoff}"
                    ))
                })?;
            let lp = pageops::item_id(page, prev).map_err(|e| ctx.page_err(e))?;
            (lp.off as usize, nposting)
        };
        let (at, nposting) = range;
        // Same size as the tuple it replaces (posting tuples are
        // MAXALIGNed), so it overwrites in place.
        if !pageops::write_at(
            page,
            at,
            &nposting[..maxalign(nposting.len()).min(nposting.len())],
        ) {
            return Err(ctx.malformed("posting tuple runs past the page"));
        }
        if tuple::size(&newitem) != Some(newitem.len()) {
            return Err(ctx.malformed("posting split new item has the wrong size"));
        }
        add(ctx, page, &newitem, offnum)?;
    }
    set_lsn(ctx, page);
    Ok(())
}

struct SplitRec {
    level: u32,
    firstrightoff: u16,
    newitemoff: u16,
    postingoff: u16,
}

fn split_rec(ctx: &Ctx<'_>) -> Result<SplitRec, RedoError> {
    let mut r = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_btree_split");
    Ok(SplitRec {
        level: r.u32().ok_or_else(bad)?,
        firstrightoff: r.u16().ok_or_else(bad)?,
        newitemoff: r.u16().ok_or_else(bad)?,
        postingoff: r.u16().ok_or_else(bad)?,
    })
}

fn block_no(ctx: &Ctx<'_>, id: u8) -> Option<BlockNumber> {
    ctx.other_block(id).map(|b| b.blkno)
}

/// SPLIT_L / SPLIT_R, any block.
fn split(ctx: &Ctx<'_>, page: &mut Page, newitemonleft: bool) -> Result<(), RedoError> {
    let x = split_rec(ctx)?;
    let isleaf = x.level == 0;
    let left = block_no(ctx, 0).ok_or_else(|| ctx.malformed("split without block 0"))?;
    let right = block_no(ctx, 1).ok_or_else(|| ctx.malformed("split without block 1"))?;
    let sibling = block_no(ctx, 2).unwrap_or(P_NONE);
    match ctx.blk.block_id {
        3 if !isleaf => clear_incomplete_split(ctx, page),
        1 => {
            init_page(
                ctx,
                page,
                Opaque {
                    prev: left,
                    next: sibling,
                    level: x.level,
                    flags: if isleaf { BTP_LEAF } else { 0 },
                    cycleid: 0,
                },
            )?;
            restore_page(ctx, page, ctx.data())?;
            set_lsn(ctx, page);
            Ok(())
        }
        0 => split_left(ctx, page, &x, newitemonleft, right),
        2 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            let (mut o, at) = opaque(ctx, page)?;
            o.prev = right;
            o.write(page, at);
            set_lsn(ctx, page);
            Ok(())
        }
        id => Err(ctx.malformed(format!("unexpected block reference {id}"))),
    }
}

/// The left half of a split, rebuilt on a temporary page in item order.
fn split_left(
    ctx: &Ctx<'_>,
    page: &mut Page,
    x: &SplitRec,
    newitemonleft: bool,
    right: BlockNumber,
) -> Result<(), RedoError> {
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let (oopaque, at) = opaque(ctx, page)?;
    let mut data = ctx.data();
    let mut newitem: Option<Vec<u8>> = None;
    let mut nposting: Option<(u16, Vec<u8>)> = None;
    if newitemonleft || x.postingoff != 0 {
        let (t, aligned) = next_tuple(ctx, data)?;
        let mut item_copy = t.to_vec();
        data = &data[aligned..];
        if x.postingoff != 0 {
            let replace = x
                .newitemoff
                .checked_sub(1)
                .filter(|&o| o >= 1)
                .ok_or_else(|| ctx.malformed("posting split before the first item"))?;
            let oposting = item(ctx, page, replace)?;
            let np = tuple::swap_posting(&mut item_copy, oposting, x.postingoff as usize)
                .ok_or_else(|| {
                    ctx.malformed(format!(
                        "posting list at {replace} cannot be split at offset {}",
                        x.postingoff
                    ))
                })?;
            nposting = Some((replace, np));
        }
        newitem = Some(item_copy);
    }
    let (hikey, aligned) = next_tuple(ctx, data)?;
    if aligned != data.len() {
        return Err(ctx.malformed("bytes after the left high key"));
    }
    let mut left = temp_copy_special(ctx, page, at)?;
    add(ctx, &mut left, hikey, P_HIKEY)?;
    let mut leftoff = P_HIKEY + 1;
    let first = if oopaque.next == P_NONE {
        P_HIKEY
    } else {
        P_FIRSTKEY
    };
    let mut off = first;
    while off < x.firstrightoff {
        if let Some((replace, np)) = &nposting {
            if off == *replace {
                add(ctx, &mut left, np, leftoff)?;
                leftoff += 1;
                off += 1;
                continue;
            }
        }
        if newitemonleft && off == x.newitemoff {
            if let Some(n) = &newitem {
                add(ctx, &mut left, n, leftoff)?;
                leftoff += 1;
            }
        }
        let t = item(ctx, page, off)?;
        add(ctx, &mut left, t, leftoff)?;
        leftoff += 1;
        off += 1;
    }
    if newitemonleft && off == x.newitemoff {
        if let Some(n) = &newitem {
            add(ctx, &mut left, n, leftoff)?;
        }
    }
    *page = *left;
    let o = Opaque {
        flags: BTP_INCOMPLETE_SPLIT | if x.level == 0 { BTP_LEAF } else { 0 },
        next: right,
        cycleid: 0,
        ..oopaque
    };
    o.write(page, at);
    set_lsn(ctx, page);
    Ok(())
}

/// DEDUP: re-runs the deduplication pass over the logged intervals.
fn dedup(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let nintervals = ctx
        .main()
        .u16()
        .ok_or_else(|| ctx.malformed("main data shorter than xl_btree_dedup"))?
        as usize;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let mut r = ctx.block_data();
    let mut intervals = Vec::with_capacity(nintervals);
    for _ in 0..nintervals {
        let (b, n) = r.u16().zip(r.u16()).ok_or_else(|| {
            ctx.malformed(format!("block data too short for {nintervals} intervals"))
        })?;
        intervals.push((b, n));
    }
    let (o, at) = opaque(ctx, page)?;
    let mut newpage = temp_copy_special(ctx, page, at)?;
    if o.next != P_NONE {
        let hk = item(ctx, page, P_HIKEY)?;
        add(ctx, &mut newpage, hk, P_HIKEY)?;
    }
    let minoff = if o.next == P_NONE {
        P_HIKEY
    } else {
        P_FIRSTKEY
    };
    let maxoff = pageops::max_offset(page);

    // The pending posting list: its base tuple, offset, TIDs and size of
    // the merged tuples' key part.
    struct Pending<'p> {
        base: &'p [u8],
        baseoff: u16,
        htids: Vec<tuple::Tid>,
        basetupsize: usize,
        nitems: usize,
    }
    let mut done = 0usize;
    let mut pending: Option<Pending<'_>> = None;
    let finish = |ctx: &Ctx<'_>,
                  newpage: &mut Page,
                  p: Pending<'_>,
                  done: &mut usize|
     -> Result<(), RedoError> {
        let tupoff = pageops::max_offset(newpage) + 1;
        if p.nitems == 1 {
            let size = tuple::size(p.base)
                .unwrap_or(p.base.len())
                .min(p.base.len());
            add(ctx, newpage, &p.base[..size], tupoff)
        } else {
            let t = tuple::form_posting(p.base, &p.htids)
                .ok_or_else(|| ctx.malformed("deduplicated tuple cannot be formed"))?;
            if t.len() > BT_MAX_ITEM_SIZE {
                return Err(ctx.malformed("deduplicated tuple exceeds the maximum item size"));
            }
            add(ctx, newpage, &t, tupoff)?;
            *done += 1;
            Ok(())
        }
    };
    let mut off = minoff;
    while off <= maxoff && off != 0 {
        let t = item(ctx, page, off)?;
        let tids = tuple::heap_tids(t)
            .ok_or_else(|| ctx.malformed(format!("item {off} has a broken posting list")))?;
        let keysize = tuple::key_size(t).unwrap_or(0);
        let merge = match &pending {
            Some(p) if off != minoff => {
                done < intervals.len()
                    && p.baseoff == intervals[done].0
                    && p.nitems < intervals[done].1 as usize
            }
            _ => false,
        };
        if merge {
            let p = pending
                .as_mut()
                .ok_or_else(|| ctx.malformed("dedup state"))?;
            let merged =
                maxalign(p.basetupsize + (p.htids.len() + tids.len()) * tuple::SIZE_OF_TID);
            if merged > BT_MAX_ITEM_SIZE {
                return Err(
                    ctx.malformed("deduplication failed to add heap tid to pending posting list")
                );
            }
            p.htids.extend(tids);
            p.nitems += 1;
        } else {
            if let Some(p) = pending.take() {
                finish(ctx, &mut newpage, p, &mut done)?;
            }
            pending = Some(Pending {
                base: t,
                baseoff: off,
                htids: tids,
                basetupsize: keysize,
                nitems: 1,
            });
        }
        off = off.wrapping_add(1);
    }
    if let Some(p) = pending.take() {
        finish(ctx, &mut newpage, p, &mut done)?;
    }
    if done != intervals.len() {
        return Err(ctx.malformed(format!(
            "deduplication made {done} posting lists, the record has {} intervals",
            intervals.len()
        )));
    }
    let mut no = Opaque::read(&newpage, at);
    if no.flags & BTP_HAS_GARBAGE != 0 {
        no.flags &= !BTP_HAS_GARBAGE;
        no.write(&mut newpage, at);
    }
    *page = *newpage;
    set_lsn(ctx, page);
    Ok(())
}

/// DELETE (`skip` = 4: the latestRemovedXid before the counts) and VACUUM.
fn delete_items(ctx: &Ctx<'_>, page: &mut Page, skip: usize) -> Result<(), RedoError> {
    let mut m = ctx.main();
    m.bytes(skip)
        .ok_or_else(|| ctx.malformed("main data too short"))?;
    let (ndeleted, nupdated) = m
        .u16()
        .zip(m.u16())
        .ok_or_else(|| ctx.malformed("main data too short"))?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let mut r = ctx.block_data();
    let deleted = u16_array(ctx, &mut r, ndeleted as usize, "deleted offsets")?;
    let updated = u16_array(ctx, &mut r, nupdated as usize, "updated offsets")?;
    for &off in &updated {
        let n = r
            .u16()
            .ok_or_else(|| ctx.malformed("block data too short for xl_btree_update"))?;
        let positions = u16_array(ctx, &mut r, n as usize, "deleted posting positions")?;
        let newtup = {
            let orig = item(ctx, page, off)?;
            tuple::update_posting(orig, &positions).ok_or_else(|| {
                ctx.malformed(format!("cannot remove TIDs {positions:?} from item {off}"))
            })?
        };
        if !pageops::page_index_tuple_overwrite(page, off, &newtup).map_err(|e| ctx.page_err(e))? {
            return Err(ctx.malformed(format!("failed to update partially dead item {off}")));
        }
    }
    if !deleted.is_empty() {
        pageops::page_index_multi_delete(page, &deleted).map_err(|e| ctx.page_err(e))?;
    }
    let (mut o, at) = opaque(ctx, page)?;
    o.flags &= !BTP_HAS_GARBAGE;
    o.write(page, at);
    set_lsn(ctx, page);
    Ok(())
}

/// MARK_PAGE_HALFDEAD: the parent loses the downlink, the leaf becomes an
/// empty half-dead page pointing at the subtree's top parent.
fn mark_half_dead(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut m = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_btree_mark_page_halfdead");
    let poffset = m.u16().ok_or_else(bad)?;
    m.u16().ok_or_else(bad)?;
    let _leafblk = m.u32().ok_or_else(bad)?;
    let leftblk = m.u32().ok_or_else(bad)?;
    let rightblk = m.u32().ok_or_else(bad)?;
    let topparent = m.u32().ok_or_else(bad)?;
    match ctx.blk.block_id {
        1 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            let next = poffset
                .checked_add(1)
                .ok_or_else(|| ctx.malformed("parent offset overflows"))?;
            let rightsib = tuple::tid_block(item(ctx, page, next)?)
                .ok_or_else(|| ctx.malformed("downlink"))?;
            let lp = pageops::item_id(page, poffset).map_err(|e| ctx.page_err(e))?;
            item(ctx, page, poffset)?;
            let mut t =
                page[lp.off as usize..lp.off as usize + tuple::SIZE_OF_INDEX_TUPLE].to_vec();
            tuple::set_tid_block(&mut t, rightsib);
            pageops::write_at(page, lp.off as usize, &t[..4]);
            pageops::page_index_tuple_delete(page, next).map_err(|e| ctx.page_err(e))?;
            set_lsn(ctx, page);
            Ok(())
        }
        0 => {
            init_page(
                ctx,
                page,
                Opaque {
                    prev: leftblk,
                    next: rightblk,
                    level: 0,
                    flags: BTP_HALF_DEAD | BTP_LEAF,
                    cycleid: 0,
                },
            )?;
            add(ctx, page, &tuple::dummy_high_key(topparent), P_HIKEY)?;
            set_lsn(ctx, page);
            Ok(())
        }
        id => Err(ctx.malformed(format!("unexpected block reference {id}"))),
    }
}

/// UNLINK_PAGE(_META): siblings re-linked, the target becomes a deleted
/// page, a leaf below an internal target becomes half-dead again.
fn unlink(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut m = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_btree_unlink_page");
    let leftsib = m.u32().ok_or_else(bad)?;
    let rightsib = m.u32().ok_or_else(bad)?;
    let level = m.u32().ok_or_else(bad)?;
    m.u32().ok_or_else(bad)?;
    let safexid = m.u64().ok_or_else(bad)?;
    let leafleftsib = m.u32().ok_or_else(bad)?;
    let leafrightsib = m.u32().ok_or_else(bad)?;
    let leaftopparent = m.u32().ok_or_else(bad)?;
    let relink = |ctx: &Ctx<'_>, page: &mut Page, next: Option<u32>, prev: Option<u32>| {
        if !prepare_existing(ctx, page)? {
            return Ok(());
        }
        let (mut o, at) = opaque(ctx, page)?;
        if let Some(n) = next {
            o.next = n;
        }
        if let Some(p) = prev {
            o.prev = p;
        }
        o.write(page, at);
        set_lsn(ctx, page);
        Ok(())
    };
    match ctx.blk.block_id {
        1 => relink(ctx, page, Some(rightsib), None),
        2 => relink(ctx, page, None, Some(leftsib)),
        0 => {
            init_page(
                ctx,
                page,
                Opaque {
                    prev: leftsib,
                    next: rightsib,
                    level,
                    flags: BTP_DELETED | BTP_HAS_FULLXID | if level == 0 { BTP_LEAF } else { 0 },
                    cycleid: 0,
                },
            )?;
            // BTPageSetDeleted: the safexid is the page's only content.
            pageops::write_at(page, SIZE_OF_PAGE_HEADER, &safexid.to_le_bytes());
            pageops::set_lower(page, (SIZE_OF_PAGE_HEADER + 8) as u16);
            let special = pageops::special(page);
            pageops::set_upper(page, special);
            set_lsn(ctx, page);
            Ok(())
        }
        3 => {
            init_page(
                ctx,
                page,
                Opaque {
                    prev: leafleftsib,
                    next: leafrightsib,
                    level: 0,
                    flags: BTP_HALF_DEAD | BTP_LEAF,
                    cycleid: 0,
                },
            )?;
            add(ctx, page, &tuple::dummy_high_key(leaftopparent), P_HIKEY)?;
            set_lsn(ctx, page);
            Ok(())
        }
        4 if ctx.info() == info::UNLINK_PAGE_META => restore_meta(ctx, page),
        id => Err(ctx.malformed(format!("unexpected block reference {id}"))),
    }
}

/// NEWROOT: a new root page over the two halves of the old one.
fn newroot(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut m = ctx.main();
    let bad = || ctx.malformed("main data shorter than xl_btree_newroot");
    let _rootblk = m.u32().ok_or_else(bad)?;
    let level = m.u32().ok_or_else(bad)?;
    match ctx.blk.block_id {
        0 => {
            init_page(
                ctx,
                page,
                Opaque {
                    prev: P_NONE,
                    next: P_NONE,
                    level,
                    flags: BTP_ROOT | if level == 0 { BTP_LEAF } else { 0 },
                    cycleid: 0,
                },
            )?;
            if level > 0 {
                restore_page(ctx, page, ctx.data())?;
            }
            set_lsn(ctx, page);
            Ok(())
        }
        1 if level > 0 => clear_incomplete_split(ctx, page),
        2 => restore_meta(ctx, page),
        id => Err(ctx.malformed(format!("unexpected block reference {id}"))),
    }
}

#[cfg(test)]
mod tests;
