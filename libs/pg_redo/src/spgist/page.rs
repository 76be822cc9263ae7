//! SP-GiST page and tuple primitives the redo routines are built from: the
//! special space (`SpGistPageOpaqueData`), page initialisation, the tuple
//! headers redo reads or patches, dead tuples ("placeholder" / "redirect" /
//! "dead" stand-ins that keep offset numbers stable), and the compound page
//! edits of spgutils.c / spgdoinsert.c that replay uses.
//!
//! Byte layouts (little-endian, C bit-field order of gcc on x86-64/ARM):
//!
//! | structure | layout |
//! |---|---|
//! | special space (8 bytes at pd_special) | flags u16 @0, nRedirection u16 @2, nPlaceholder u16 @4, page id u16 @6 (0xFF82) |
//! | leaf tuple header (12) | word u32 @0 = tupstate (bits 0–1) \| size << 2; t_info u16 @4 (nextOffset = low 14 bits, bit 15 = has-nulls); heap TID @6 |
//! | dead tuple (16) | word u32 @0 = tupstate \| 16 << 2; t_info u16 @4 = 0; pointer TID @6 (block hi u16, block lo u16, offset u16); xid u32 @12 |
//! | inner tuple header (8) | word u32 @0 = tupstate (bits 0–1), allTheSame (bit 2), nNodes (bits 3–15), prefixSize (bits 16–31); size u16 @4; prefix then nodes from @8 |
//! | node tuple (an IndexTuple) | downlink TID @0 (6 bytes), t_info u16 @6 (size = low 13 bits) |
//!
//! Every line pointer on an SP-GiST page is LP_NORMAL: tuples are removed
//! only by compacting deletes or replaced by dead tuples, so a line pointer
//! that is not normal (or points outside the page) means a corrupt page and
//! gives an error, as does a tuple too short for the field being read.

use std::ops::Range;

use postgres_ffi::{BlockNumber, BLCKSZ};

use crate::dispatch::prepare_init;
use crate::error::RedoError;
use crate::pageops::{self, AddItemMode, Page};
use crate::record::Ctx;

/// `sizeof(SpGistPageOpaqueData)`.
pub const SPECIAL_SIZE: usize = 8;
/// `SPGIST_PAGE_ID`, the last two bytes of every SP-GiST page.
pub const SPGIST_PAGE_ID: u16 = 0xFF82;
/// Page flag: leaf page (otherwise inner).
pub const SPGIST_LEAF: u16 = 1 << 2;
/// Page flag: page belongs to the tree of NULL keys.
pub const SPGIST_NULLS: u16 = 1 << 3;

/// Tuple states (`tupstate`, the low two bits of every tuple's first word;
/// 0 is a live tuple).
pub const SPGIST_REDIRECT: u8 = 1;
pub const SPGIST_DEAD: u8 = 2;
pub const SPGIST_PLACEHOLDER: u8 = 3;

/// `SGDTSIZE`: a dead tuple's size (already MAXALIGNed).
pub const SGDTSIZE: usize = 16;
/// `sizeof(SpGistLeafTupleData)`.
pub const LEAF_HEADER_SIZE: usize = 12;
/// `SGITHDRSZ`.
pub const INNER_HEADER_SIZE: usize = 8;
/// `sizeof(IndexTupleData)`: a node's downlink and t_info.
const NODE_HEADER_SIZE: usize = 8;
/// `MaxIndexTuplesPerPage`: PostgreSQL sorts delete lists in an array this
/// long, so longer lists cannot come from it.
pub const MAX_INDEX_TUPLES_PER_PAGE: usize = 408;

/// Offsets of the counters inside the special space.
const OPAQUE_FLAGS: usize = 0;
const OPAQUE_N_REDIRECTION: usize = 2;
const OPAQUE_N_PLACEHOLDER: usize = 4;
const OPAQUE_PAGE_ID: usize = 6;

/// Offset of nextOffset/t_info in a leaf tuple.
const LEAF_T_INFO: usize = 4;
/// Offset of the redirection pointer in a dead tuple.
const DEAD_POINTER: usize = 6;
/// nextOffset bits of a leaf tuple's t_info.
const NEXT_OFFSET_MASK: u16 = 0x3FFF;
/// Size bits of an IndexTuple's t_info.
const INDEX_SIZE_MASK: u16 = 0x1FFF;

/// Encodes an `ItemPointerData`.
pub fn encode_tid(blkno: BlockNumber, offnum: u16) -> [u8; 6] {
    let mut t = [0u8; 6];
    t[0..2].copy_from_slice(&((blkno >> 16) as u16).to_le_bytes());
    t[2..4].copy_from_slice(&(blkno as u16).to_le_bytes());
    t[4..6].copy_from_slice(&offnum.to_le_bytes());
    t
}

/// `ItemPointerSetInvalid`: block InvalidBlockNumber, offset 0.
pub const INVALID_TID: [u8; 6] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0];

/// `SpGistInitBuffer` on a WILL_INIT block: an empty page with the special
/// space set up for `flags`.
pub fn init_page(ctx: &Ctx<'_>, page: &mut Page, flags: u16) -> Result<(), RedoError> {
    prepare_init(ctx, page, SPECIAL_SIZE)?;
    let sp = opaque_offset(ctx, page)?;
    pageops::write_at(page, sp + OPAQUE_FLAGS, &flags.to_le_bytes());
    pageops::write_at(page, sp + OPAQUE_PAGE_ID, &SPGIST_PAGE_ID.to_le_bytes());
    Ok(())
}

/// Where the special space starts; it must hold a whole opaque struct.
fn opaque_offset(ctx: &Ctx<'_>, page: &Page) -> Result<usize, RedoError> {
    let sp = pageops::special(page) as usize;
    if sp < pageops::SIZE_OF_PAGE_HEADER || sp + SPECIAL_SIZE > BLCKSZ {
        return Err(ctx.malformed(format!(
            "page has no room for the SP-GiST special space (pd_special {sp})"
        )));
    }
    Ok(sp)
}

/// The two tuple counters of the special space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Redirection,
    Placeholder,
}

/// Adds `delta` to a counter with C's uint16 wrap-around: PostgreSQL only
/// asserts the counts stay sane, so a production server wraps too.
pub fn bump(ctx: &Ctx<'_>, page: &mut Page, which: Counter, delta: i32) -> Result<(), RedoError> {
    let at = opaque_offset(ctx, page)?
        + match which {
            Counter::Redirection => OPAQUE_N_REDIRECTION,
            Counter::Placeholder => OPAQUE_N_PLACEHOLDER,
        };
    let cur = pageops::read_u16(page, at).unwrap_or(0);
    let new = (cur as i32).wrapping_add(delta) as u16;
    pageops::write_at(page, at, &new.to_le_bytes());
    Ok(())
}

/// The bytes of the tuple at `offnum`, which must be at least `min_len`
/// long (the header fields the caller touches).
pub fn tuple_range(
    ctx: &Ctx<'_>,
    page: &Page,
    offnum: u16,
    min_len: usize,
) -> Result<Range<usize>, RedoError> {
    let r = pageops::normal_item_range(page, offnum).map_err(|e| ctx.page_err(e))?;
    if r.len() < min_len {
        return Err(ctx.malformed(format!(
            "tuple at offset {offnum} is {} bytes, too short for its header",
            r.len()
        )));
    }
    Ok(r)
}

/// The tuple state of the tuple at `offnum`.
pub fn tupstate_at(ctx: &Ctx<'_>, page: &Page, offnum: u16) -> Result<u8, RedoError> {
    let r = tuple_range(ctx, page, offnum, 1)?;
    Ok(page[r.start] & 3)
}

/// The leaf tuple `size` field (30 bits after the tuple state).
pub fn leaf_size(word: u32) -> usize {
    (word >> 2) as usize
}

/// `SpGistDeadTupleData` as `spgFormDeadTuple` builds it: a redirect points
/// at `target` and carries the inserting transaction's xid; placeholders
/// and dead tuples have an invalid pointer and no xid.
pub fn dead_tuple(tupstate: u8, target: (BlockNumber, u16), my_xid: u32) -> [u8; SGDTSIZE] {
    let mut t = [0u8; SGDTSIZE];
    let word = (tupstate as u32 & 3) | ((SGDTSIZE as u32) << 2);
    t[0..4].copy_from_slice(&word.to_le_bytes());
    // t_info: nextOffset invalid, and the flag bits are never set on the
    // zero-initialised workspace PostgreSQL builds these in.
    if tupstate == SPGIST_REDIRECT {
        t[DEAD_POINTER..DEAD_POINTER + 6].copy_from_slice(&encode_tid(target.0, target.1));
        t[12..16].copy_from_slice(&my_xid.to_le_bytes());
    } else {
        t[DEAD_POINTER..DEAD_POINTER + 6].copy_from_slice(&INVALID_TID);
    }
    t
}

/// `PageAddItem(page, tuple, offnum, overwrite = false)` that must land at
/// `offnum` (later line pointers shift up).
fn add_at(ctx: &Ctx<'_>, page: &mut Page, tuple: &[u8], offnum: u16) -> Result<(), RedoError> {
    let got = pageops::page_add_item(page, tuple, offnum, AddItemMode::default())
        .map_err(|e| ctx.page_err(e))?;
    if got != offnum {
        return Err(ctx.malformed(format!(
            "item of {} bytes went to offset {got} instead of {offnum}",
            tuple.len()
        )));
    }
    Ok(())
}

/// Replaces the tuple at `offnum` by `tuple` (delete, then add at the same
/// offset), whatever the old tuple was.
pub fn replace_at(
    ctx: &Ctx<'_>,
    page: &mut Page,
    tuple: &[u8],
    offnum: u16,
) -> Result<(), RedoError> {
    pageops::page_index_tuple_delete(page, offnum).map_err(|e| ctx.page_err(e))?;
    add_at(ctx, page, tuple, offnum)
}

/// Replays `SpGistPageAddNewItem`: the tuple goes to `offnum`, which is
/// either one past the last line pointer (a plain append, or a shuffle-in)
/// or an existing placeholder that it replaces (the placeholder count drops).
pub fn add_or_replace(
    ctx: &Ctx<'_>,
    page: &mut Page,
    tuple: &[u8],
    offnum: u16,
) -> Result<(), RedoError> {
    if offnum == 0 {
        return Err(ctx.malformed("tuple to add has offset 0"));
    }
    if offnum <= pageops::max_offset(page) {
        let state = tupstate_at(ctx, page, offnum)?;
        if state != SPGIST_PLACEHOLDER {
            return Err(ctx.malformed(format!(
                "tuple to be replaced at offset {offnum} is not a placeholder (state {state})"
            )));
        }
        bump(ctx, page, Counter::Placeholder, -1)?;
        pageops::page_index_tuple_delete(page, offnum).map_err(|e| ctx.page_err(e))?;
    }
    add_at(ctx, page, tuple, offnum)
}

/// Sets the nextOffset chain link of the leaf tuple at `offnum`, keeping
/// t_info's flag bits.
pub fn set_next_offset(
    ctx: &Ctx<'_>,
    page: &mut Page,
    offnum: u16,
    next: u16,
) -> Result<(), RedoError> {
    let r = tuple_range(ctx, page, offnum, LEAF_T_INFO + 2)?;
    let at = r.start + LEAF_T_INFO;
    let t_info = pageops::read_u16(page, at).unwrap_or(0);
    let new = (t_info & !NEXT_OFFSET_MASK) | (next & NEXT_OFFSET_MASK);
    pageops::write_at(page, at, &new.to_le_bytes());
    Ok(())
}

/// `spgUpdateNodeLink`: points node `node_i` of the inner tuple at `offnum`
/// to `(blkno, target)`. Nodes are walked by their own sizes and must lie
/// inside the tuple.
pub fn update_node_link(
    ctx: &Ctx<'_>,
    page: &mut Page,
    offnum: u16,
    node_i: u16,
    blkno: BlockNumber,
    target: u16,
) -> Result<(), RedoError> {
    let r = tuple_range(ctx, page, offnum, INNER_HEADER_SIZE)?;
    let word = pageops::read_u32(page, r.start).unwrap_or(0);
    let n_nodes = ((word >> 3) & 0x1FFF) as u16;
    let prefix_size = (word >> 16) as usize;
    let mut pos = r.start + INNER_HEADER_SIZE + prefix_size;
    for i in 0..n_nodes {
        if pos + NODE_HEADER_SIZE > r.end {
            break;
        }
        if i == node_i {
            pageops::write_at(page, pos, &encode_tid(blkno, target));
            return Ok(());
        }
        let t_info = pageops::read_u16(page, pos + 6).unwrap_or(0);
        pos += (t_info & INDEX_SIZE_MASK) as usize;
    }
    Err(ctx.malformed(format!(
        "inner tuple at offset {offnum} has no node {node_i} ({n_nodes} nodes)"
    )))
}

/// Marks the dead tuple at `offnum` a placeholder with an invalid pointer
/// (its xid stays, as in PostgreSQL).
pub fn redirect_to_placeholder(
    ctx: &Ctx<'_>,
    page: &mut Page,
    offnum: u16,
) -> Result<(), RedoError> {
    let r = tuple_range(ctx, page, offnum, DEAD_POINTER + 6)?;
    page[r.start] = (page[r.start] & !3) | SPGIST_PLACEHOLDER;
    pageops::write_at(page, r.start + DEAD_POINTER, &INVALID_TID);
    Ok(())
}

/// Swaps two line pointers (VACUUM_LEAF moves a live tuple into the slot
/// of a chain member by exchanging their line pointers).
pub fn swap_line_pointers(ctx: &Ctx<'_>, page: &mut Page, a: u16, b: u16) -> Result<(), RedoError> {
    let la = pageops::item_id(page, a).map_err(|e| ctx.page_err(e))?;
    let lb = pageops::item_id(page, b).map_err(|e| ctx.page_err(e))?;
    pageops::set_item_id(page, a, lb).map_err(|e| ctx.page_err(e))?;
    pageops::set_item_id(page, b, la).map_err(|e| ctx.page_err(e))?;
    Ok(())
}

/// How `spgPageIndexMultiDelete` fills the freed slots.
#[derive(Debug, Clone, Copy)]
pub struct DeadFill {
    /// State of the tuple replacing the first listed item.
    pub first: u8,
    /// State of the tuples replacing the others.
    pub rest: u8,
    /// Where redirects point.
    pub target: (BlockNumber, u16),
    /// The xid redirects carry.
    pub my_xid: u32,
}

/// `spgPageIndexMultiDelete`: removes the listed tuples and puts dead tuples
/// in their places so no other tuple's offset changes. The first item *as
/// listed* (not the lowest) gets `fill.first`; the placeholder/redirection
/// counts grow by the dead tuples of those kinds.
pub fn multi_delete_dead(
    ctx: &Ctx<'_>,
    page: &mut Page,
    items: &[u16],
    fill: DeadFill,
) -> Result<(), RedoError> {
    let Some(&first_item) = items.first() else {
        return Ok(());
    };
    if items.len() > MAX_INDEX_TUPLES_PER_PAGE {
        return Err(ctx.malformed(format!(
            "{} tuples to delete, more than a page holds",
            items.len()
        )));
    }
    let mut sorted = items.to_vec();
    sorted.sort_unstable();
    pageops::page_index_multi_delete(page, &sorted).map_err(|e| ctx.page_err(e))?;
    for &itemno in &sorted {
        let state = if itemno == first_item {
            fill.first
        } else {
            fill.rest
        };
        let dt = dead_tuple(state, fill.target, fill.my_xid);
        add_at(ctx, page, &dt, itemno)?;
        match state {
            SPGIST_REDIRECT => bump(ctx, page, Counter::Redirection, 1)?,
            SPGIST_PLACEHOLDER => bump(ctx, page, Counter::Placeholder, 1)?,
            _ => {}
        }
    }
    Ok(())
}
