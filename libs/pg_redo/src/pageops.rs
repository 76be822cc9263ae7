//! The page toolkit: PostgreSQL's `bufpage.c` operations on standard 8 KiB
//! pages, byte-for-byte, for use by every redo routine.
//!
//! What it owns: header field access (`pd_lower`, `pd_upper`, `pd_special`,
//! flags, `pd_prune_xid`, LSN, checksum), page initialisation with special
//! space, line pointer access, and the item operations redo replays:
//! [`page_add_item`] (with and without overwrite, heap limit),
//! [`page_repair_fragmentation`], [`page_truncate_line_pointer_array`],
//! [`page_index_tuple_delete`], [`page_index_multi_delete`],
//! [`page_index_tuple_delete_no_compact`] and [`page_index_tuple_overwrite`].
//!
//! Invariants: a page is always a whole `[u8; BLCKSZ]`; every offset read from
//! the page is bounds-checked before use, so a corrupt page gives a
//! [`PageOpError`], never a panic or an out-of-page write. Where PostgreSQL
//! checks pointers (`corrupted page pointers`), we check the same things; where
//! it trusts them (and would scribble over memory), we refuse.
//!
//! Byte layout matters beyond the visible tuples: the consistency check
//! compares whole pages (minus masked areas), so compaction places tuples in
//! exactly the order PostgreSQL does (line-pointer order, from `pd_special`
//! downwards) and leaves stale bytes where PostgreSQL leaves them (only the
//! free space between `pd_lower` and `pd_upper`, which masks ignore).

use postgres_ffi::page::{ItemId, LpFlags, PD_ALL_VISIBLE, PD_HAS_FREE_LINES};
use postgres_ffi::{maxalign, Lsn, TransactionId, BLCKSZ};

use crate::error::PageOpError;

/// A standard PostgreSQL page.
pub type Page = [u8; BLCKSZ];

/// `SizeOfPageHeaderData`.
pub const SIZE_OF_PAGE_HEADER: usize = 24;
/// Size of one line pointer.
pub const SIZE_OF_ITEM_ID: usize = 4;
/// `MaxHeapTuplesPerPage` for 8 KiB pages: (8192 - 24) / (MAXALIGN(23) + 4).
pub const MAX_HEAP_TUPLES_PER_PAGE: u16 = 291;

const OFF_LOWER: usize = 12;
const OFF_UPPER: usize = 14;
const OFF_SPECIAL: usize = 16;
const OFF_FLAGS: usize = 10;
const OFF_PRUNE_XID: usize = 20;

#[inline]
fn u16_at(page: &Page, off: usize) -> u16 {
    // Callers pass constant header offsets (< 24) only.
    u16::from_le_bytes([page[off], page[off + 1]])
}

#[inline]
fn put_u16(page: &mut Page, off: usize, v: u16) {
    page[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Reads a little-endian u16 at a variable offset, `None` if out of the page.
#[inline]
pub fn read_u16(page: &Page, off: usize) -> Option<u16> {
    let b = page.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Reads a little-endian u32 at a variable offset, `None` if out of the page.
#[inline]
pub fn read_u32(page: &Page, off: usize) -> Option<u32> {
    let b = page.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Writes `bytes` at a variable offset; `false` (and nothing written) if it
/// would not fit in the page.
#[inline]
pub fn write_at(page: &mut Page, off: usize, bytes: &[u8]) -> bool {
    match off
        .checked_add(bytes.len())
        .and_then(|end| page.get_mut(off..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

pub fn lower(page: &Page) -> u16 {
    u16_at(page, OFF_LOWER)
}
pub fn upper(page: &Page) -> u16 {
    u16_at(page, OFF_UPPER)
}
pub fn special(page: &Page) -> u16 {
    u16_at(page, OFF_SPECIAL)
}
pub fn flags(page: &Page) -> u16 {
    u16_at(page, OFF_FLAGS)
}
pub fn set_lower(page: &mut Page, v: u16) {
    put_u16(page, OFF_LOWER, v)
}
pub fn set_upper(page: &mut Page, v: u16) {
    put_u16(page, OFF_UPPER, v)
}
pub fn set_flags(page: &mut Page, v: u16) {
    put_u16(page, OFF_FLAGS, v)
}
pub fn prune_xid(page: &Page) -> TransactionId {
    u32::from_le_bytes([page[20], page[21], page[22], page[23]])
}
pub fn set_prune_xid(page: &mut Page, xid: TransactionId) {
    page[OFF_PRUNE_XID..OFF_PRUNE_XID + 4].copy_from_slice(&xid.to_le_bytes());
}

/// `PageIsNew`: never initialised (pd_upper is 0).
pub fn is_new(page: &Page) -> bool {
    upper(page) == 0
}

/// `PageGetLSN`.
pub fn lsn(page: &Page) -> Lsn {
    let hi = u32::from_le_bytes([page[0], page[1], page[2], page[3]]) as u64;
    let lo = u32::from_le_bytes([page[4], page[5], page[6], page[7]]) as u64;
    Lsn((hi << 32) | lo)
}

/// `PageSetLSN`: high half (xlogid) first.
pub fn set_lsn(page: &mut Page, lsn: Lsn) {
    page[0..4].copy_from_slice(&((lsn.0 >> 32) as u32).to_le_bytes());
    page[4..8].copy_from_slice(&(lsn.0 as u32).to_le_bytes());
}

/// Stamps `pd_checksum` for block `blkno` (of its fork), unless the page is
/// new: PostgreSQL never checksums uninitialised pages.
pub fn set_checksum(page: &mut Page, blkno: u32) {
    if !is_new(page) {
        let sum = checksum(page, blkno);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
    }
}

/// PostgreSQL's page checksum (same result as
/// `postgres_ffi::page::pg_checksum_page`), written lane-parallel so the
/// compiler vectorises it: it runs on every page redo outputs, and the
/// straightforward word-at-a-time form costs more than the redo itself.
/// Uses AVX2 (32-bit vector multiplies) when the CPU has it.
pub fn checksum(page: &Page, blkno: u32) -> u16 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above; the function
            // is otherwise ordinary safe code.
            return unsafe { checksum_avx2(page, blkno) };
        }
    }
    checksum_portable(page, blkno)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn checksum_avx2(page: &Page, blkno: u32) -> u16 {
    checksum_portable(page, blkno)
}

/// The checksum without CPU-specific code generation.
#[inline(always)]
pub fn checksum_portable(page: &Page, blkno: u32) -> u16 {
    const LANES: usize = 32;
    const FNV_PRIME: u32 = 16777619;
    const BASE: [u32; LANES] = [
        0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2,
        0x83E13D2C, 0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C,
        0xF718902A, 0x0B1C9CDB, 0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979,
        0xCCA6C0B2, 0x304A0979, 0x85AA43D4, 0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E,
        0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
    ];
    #[inline(always)]
    fn mix(sums: &mut [u32; LANES], words: &[u32; LANES]) {
        for (s, w) in sums.iter_mut().zip(words) {
            let t = *s ^ *w;
            *s = t.wrapping_mul(FNV_PRIME) ^ (t >> 17);
        }
    }
    let mut sums = BASE;
    let mut words = [0u32; LANES];
    for (r, row) in page.chunks_exact(LANES * 4).enumerate() {
        for (w, b) in words.iter_mut().zip(row.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if r == 0 {
            // pd_checksum (bytes 8..10, low half of word 2) counts as zero.
            words[2] &= 0xFFFF_0000;
        }
        mix(&mut sums, &words);
    }
    let zeros = [0u32; LANES];
    mix(&mut sums, &zeros);
    mix(&mut sums, &zeros);
    let folded = sums.iter().fold(0u32, |acc, s| acc ^ s) ^ blkno;
    ((folded % 65535) + 1) as u16
}

/// `PageInit`: zero the page and set up an empty page with `special_size`
/// bytes (rounded up to MAXALIGN) of special space.
pub fn page_init(page: &mut Page, special_size: usize) -> Result<(), PageOpError> {
    postgres_ffi::page::page_init(page, special_size)
        .map_err(|_| PageOpError::SpecialTooLarge { size: special_size })
}

pub fn set_all_visible(page: &mut Page) {
    set_flags(page, flags(page) | PD_ALL_VISIBLE);
}
pub fn clear_all_visible(page: &mut Page) {
    set_flags(page, flags(page) & !PD_ALL_VISIBLE);
}
fn set_has_free_lines(page: &mut Page, on: bool) {
    let f = flags(page);
    set_flags(
        page,
        if on {
            f | PD_HAS_FREE_LINES
        } else {
            f & !PD_HAS_FREE_LINES
        },
    );
}

/// `TransactionIdPrecedes`: modulo-2^32 comparison for normal xids, plain
/// comparison when either is a special xid (< 3).
pub fn xid_precedes(a: TransactionId, b: TransactionId) -> bool {
    if a < 3 || b < 3 {
        a < b
    } else {
        (a.wrapping_sub(b) as i32) < 0
    }
}

/// `PageSetPrunable`: remember the oldest xid that may make tuples prunable.
pub fn set_prunable(page: &mut Page, xid: TransactionId) {
    let cur = prune_xid(page);
    if cur == 0 || xid_precedes(xid, cur) {
        set_prune_xid(page, xid);
    }
}

/// `PageGetMaxOffsetNumber`: the number of line pointers. Can exceed what fits
/// in the page when pd_lower is garbage; [`item_id`] checks positions.
pub fn max_offset(page: &Page) -> u16 {
    let l = lower(page) as usize;
    if l <= SIZE_OF_PAGE_HEADER {
        0
    } else {
        ((l - SIZE_OF_PAGE_HEADER) / SIZE_OF_ITEM_ID) as u16
    }
}

#[inline]
fn lp_pos(offnum: u16) -> usize {
    SIZE_OF_PAGE_HEADER + (offnum as usize).saturating_sub(1) * SIZE_OF_ITEM_ID
}

/// Line pointer `offnum` (1-based), which must be ≤ [`max_offset`] and lie
/// inside the page.
pub fn item_id(page: &Page, offnum: u16) -> Result<ItemId, PageOpError> {
    let max = max_offset(page);
    if offnum == 0 || offnum > max {
        return Err(PageOpError::NoSuchItem { offnum, max });
    }
    read_u32(page, lp_pos(offnum))
        .map(ItemId::from_word)
        .ok_or(PageOpError::NoSuchItem { offnum, max })
}

/// Overwrites line pointer `offnum`, which must exist (see [`item_id`]).
pub fn set_item_id(page: &mut Page, offnum: u16, item: ItemId) -> Result<(), PageOpError> {
    item_id(page, offnum)?;
    write_at(page, lp_pos(offnum), &item.to_word().to_le_bytes());
    Ok(())
}

/// Writes a line pointer by position without checking pd_lower (for callers
/// that have just computed a valid layout).
fn put_item_id_raw(page: &mut Page, offnum: u16, item: ItemId) {
    write_at(page, lp_pos(offnum), &item.to_word().to_le_bytes());
}

fn read_item_id_raw(page: &Page, offnum: u16) -> ItemId {
    ItemId::from_word(read_u32(page, lp_pos(offnum)).unwrap_or(0))
}

pub fn lp_unused() -> ItemId {
    ItemId {
        off: 0,
        flags: LpFlags::Unused,
        len: 0,
    }
}

/// Byte range of the item `offnum` points to, for a normal line pointer
/// whose storage lies entirely inside the page.
pub fn normal_item_range(page: &Page, offnum: u16) -> Result<std::ops::Range<usize>, PageOpError> {
    let lp = item_id(page, offnum)?;
    if lp.flags != LpFlags::Normal {
        return Err(PageOpError::WrongItemState {
            offnum,
            flags: lp_flags_name(lp.flags),
            wanted: "LP_NORMAL",
        });
    }
    let start = lp.off as usize;
    let end = start + lp.len as usize;
    if start < SIZE_OF_PAGE_HEADER || end > BLCKSZ {
        return Err(PageOpError::ItemOutOfPage {
            offnum,
            off: lp.off,
            len: lp.len,
        });
    }
    Ok(start..end)
}

pub fn lp_flags_name(f: LpFlags) -> &'static str {
    match f {
        LpFlags::Unused => "LP_UNUSED",
        LpFlags::Normal => "LP_NORMAL",
        LpFlags::Redirect => "LP_REDIRECT",
        LpFlags::Dead => "LP_DEAD",
    }
}

/// The checks PageAddItemExtended makes before touching a page.
fn check_pointers_loose(page: &Page) -> Result<(u16, u16, u16), PageOpError> {
    let (l, u, s) = (lower(page), upper(page), special(page));
    if (l as usize) < SIZE_OF_PAGE_HEADER || l > u || u > s || s as usize > BLCKSZ {
        return Err(PageOpError::CorruptPointers {
            lower: l,
            upper: u,
            special: s,
        });
    }
    Ok((l, u, s))
}

/// The stricter checks of the compacting operations (special MAXALIGNed too).
fn check_pointers_strict(page: &Page) -> Result<(u16, u16, u16), PageOpError> {
    let (l, u, s) = check_pointers_loose(page)?;
    if s as usize != maxalign(s as usize) {
        return Err(PageOpError::CorruptPointers {
            lower: l,
            upper: u,
            special: s,
        });
    }
    Ok((l, u, s))
}

/// How [`page_add_item`] may place the item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddItemMode {
    /// `PAI_OVERWRITE`: place at `offnum` only if that line pointer is unused,
    /// instead of shifting later line pointers up.
    pub overwrite: bool,
    /// `PAI_IS_HEAP`: refuse offsets beyond MaxHeapTuplesPerPage.
    pub is_heap: bool,
}

/// `PageAddItemExtended`. `offnum` 0 means "first free slot" (reusing an
/// unused line pointer when the page says it has some). Returns the offset
/// the item was placed at.
pub fn page_add_item(
    page: &mut Page,
    item: &[u8],
    offnum: u16,
    mode: AddItemMode,
) -> Result<u16, PageOpError> {
    page_add_item_parts(page, &[item], offnum, mode)
}

/// [`page_add_item`] for an item given as consecutive pieces, written
/// straight into the page (no temporary copy of the whole item).
pub fn page_add_item_parts(
    page: &mut Page,
    parts: &[&[u8]],
    offnum: u16,
    mode: AddItemMode,
) -> Result<u16, PageOpError> {
    let size: usize = parts.iter().map(|p| p.len()).sum();
    let (pd_lower, pd_upper, _) = check_pointers_loose(page)?;
    let limit = max_offset(page) + 1;
    let mut needshuffle = false;
    let offnum = if offnum != 0 {
        if mode.overwrite {
            if offnum < limit {
                let lp = read_item_id_raw(page, offnum);
                if lp.is_used() || lp.has_storage() {
                    return Err(PageOpError::WouldOverwrite { offnum });
                }
            }
        } else if offnum < limit {
            needshuffle = true;
        }
        offnum
    } else if flags(page) & PD_HAS_FREE_LINES != 0 {
        // Reuse the earliest unused line pointer, as PostgreSQL does, so
        // later truncation of the array can happen.
        let found = (1..limit).find(|&o| {
            let lp = read_item_id_raw(page, o);
            !lp.is_used() && !lp.has_storage()
        });
        match found {
            Some(o) => o,
            None => {
                // The hint was wrong: PostgreSQL resets it.
                set_has_free_lines(page, false);
                limit
            }
        }
    } else {
        limit
    };

    if offnum > limit {
        return Err(PageOpError::OffsetTooLarge { offnum, limit });
    }
    if mode.is_heap && offnum > MAX_HEAP_TUPLES_PER_PAGE {
        return Err(PageOpError::TooManyHeapItems {
            offnum,
            max: MAX_HEAP_TUPLES_PER_PAGE,
        });
    }
    if size > BLCKSZ {
        return Err(PageOpError::ItemTooLarge { size });
    }

    let new_lower = if offnum == limit || needshuffle {
        pd_lower as usize + SIZE_OF_ITEM_ID
    } else {
        pd_lower as usize
    };
    let aligned = maxalign(size);
    let new_upper = pd_upper as isize - aligned as isize;
    if new_lower as isize > new_upper {
        return Err(PageOpError::NoSpace {
            size,
            lower: pd_lower,
            upper: pd_upper,
        });
    }
    // new_upper >= new_lower >= 28, and new_upper + aligned = pd_upper <= BLCKSZ.
    let new_upper = new_upper as usize;

    if needshuffle {
        let from = lp_pos(offnum);
        let to_end = lp_pos(limit);
        page.copy_within(from..to_end, from + SIZE_OF_ITEM_ID);
    }
    put_item_id_raw(
        page,
        offnum,
        ItemId {
            off: new_upper as u16,
            flags: LpFlags::Normal,
            len: size as u16,
        },
    );
    // new_upper + size <= pd_upper <= BLCKSZ, so every piece fits.
    let mut at = new_upper;
    for p in parts {
        page[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    set_lower(page, new_lower as u16);
    set_upper(page, new_upper as u16);
    Ok(offnum)
}

/// One item to keep during compaction.
#[derive(Debug, Clone, Copy)]
struct CompactItem {
    /// Line pointer (1-based) whose lp_off is updated.
    offnum: u16,
    itemoff: usize,
    alignedlen: usize,
}

/// `compactify_tuples`: move the kept items to the end of the page (below
/// pd_special) in line-pointer order, each taking its MAXALIGNed length, and
/// point their line pointers at the new places. Copies from a snapshot, which
/// gives the same bytes as PostgreSQL's in-place memmove variants: only the
/// destination ranges are written; everything else keeps its old contents.
fn compactify(page: &mut Page, items: &[CompactItem], pd_special: usize) {
    let snapshot: Page = *page;
    let mut upper = pd_special;
    for it in items {
        upper -= it.alignedlen;
        page[upper..upper + it.alignedlen]
            .copy_from_slice(&snapshot[it.itemoff..it.itemoff + it.alignedlen]);
        let mut lp = read_item_id_raw(page, it.offnum);
        lp.off = upper as u16;
        put_item_id_raw(page, it.offnum, lp);
    }
    set_upper(page, upper as u16);
}

/// `PageRepairFragmentation` (heap pages): unused line pointers get zeroed,
/// tuples with storage are compacted, trailing unused line pointers are cut
/// off, and PD_HAS_FREE_LINES is set iff unused line pointers remain.
pub fn page_repair_fragmentation(page: &mut Page) -> Result<(), PageOpError> {
    let (pd_lower, pd_upper, pd_special) = check_pointers_strict(page)?;
    let nline = max_offset(page);
    let mut items = Vec::with_capacity(nline as usize);
    let mut nunused = 0usize;
    let mut totallen = 0usize;
    let mut finalused = 0u16;
    for i in 1..=nline {
        let lp = read_item_id_raw(page, i);
        if lp.is_used() {
            if lp.has_storage() {
                let itemoff = lp.off as usize;
                let alignedlen = maxalign(lp.len as usize);
                if itemoff < pd_upper as usize
                    || itemoff >= pd_special as usize
                    || itemoff + alignedlen > BLCKSZ
                {
                    return Err(PageOpError::CorruptLinePointer {
                        offnum: i,
                        off: lp.off,
                        len: lp.len,
                    });
                }
                totallen += alignedlen;
                items.push(CompactItem {
                    offnum: i,
                    itemoff,
                    alignedlen,
                });
            }
            finalused = i;
        } else {
            put_item_id_raw(page, i, lp_unused());
            nunused += 1;
        }
    }
    if items.is_empty() {
        set_upper(page, pd_special);
    } else {
        let available = (pd_special - pd_lower) as usize;
        if totallen > available {
            return Err(PageOpError::CorruptItemLengths {
                total: totallen,
                available,
            });
        }
        compactify(page, &items, pd_special as usize);
    }
    if finalused != nline {
        let unused_at_end = (nline - finalused) as usize;
        nunused -= unused_at_end;
        set_lower(page, pd_lower - (SIZE_OF_ITEM_ID * unused_at_end) as u16);
    }
    set_has_free_lines(page, nunused > 0);
    Ok(())
}

/// `PageTruncateLinePointerArray` (heap pages, VACUUM's second pass): drop
/// unused line pointers at the end of the array, but always keep the first
/// one; set PD_HAS_FREE_LINES iff an unused one remains.
pub fn page_truncate_line_pointer_array(page: &mut Page) {
    let nline = max_offset(page);
    let mut countdone = false;
    let mut sethint = false;
    let mut unused_at_end = 0u16;
    for i in (1..=nline).rev() {
        let lp = read_item_id_raw(page, i);
        if !countdone && i > 1 {
            if !lp.is_used() {
                unused_at_end += 1;
            } else {
                countdone = true;
            }
        } else if !lp.is_used() {
            sethint = true;
            break;
        }
    }
    if unused_at_end > 0 {
        let l = lower(page);
        set_lower(page, l - unused_at_end * SIZE_OF_ITEM_ID as u16);
    }
    set_has_free_lines(page, sethint);
}

/// Validates the line pointer an index-page delete/overwrite works on.
fn index_item(
    page: &Page,
    offnum: u16,
    pd_upper: u16,
    pd_special: u16,
) -> Result<(usize, usize), PageOpError> {
    let nline = max_offset(page);
    if offnum == 0 || offnum > nline {
        return Err(PageOpError::NoSuchItem { offnum, max: nline });
    }
    let lp = read_item_id_raw(page, offnum);
    let (offset, size) = (lp.off as usize, lp.len as usize);
    if offset < pd_upper as usize
        || offset + size > pd_special as usize
        || offset != maxalign(offset)
    {
        return Err(PageOpError::CorruptLinePointer {
            offnum,
            off: lp.off,
            len: lp.len,
        });
    }
    Ok((offset, size))
}

/// Adds `delta` to lp_off of every line pointer in 1..=nline whose offset is
/// at or before `offset` (tuple data before a removed/resized item moved up).
fn shift_item_offsets(
    page: &mut Page,
    nline: u16,
    offset: usize,
    delta: isize,
    storage_only: bool,
) {
    for i in 1..=nline {
        let mut lp = read_item_id_raw(page, i);
        if storage_only && !lp.has_storage() {
            continue;
        }
        if lp.off as usize <= offset {
            lp.off = (lp.off as isize + delta) as u16;
            put_item_id_raw(page, i, lp);
        }
    }
}

/// `PageIndexTupleDelete`: remove an index tuple and its line pointer,
/// closing both gaps.
pub fn page_index_tuple_delete(page: &mut Page, offnum: u16) -> Result<(), PageOpError> {
    let (pd_lower, pd_upper, pd_special) = check_pointers_strict(page)?;
    let nline = max_offset(page);
    let (offset, size) = index_item(page, offnum, pd_upper, pd_special)?;
    let size = maxalign(size);

    // Close the gap in the line pointer array.
    let next = lp_pos(offnum) + SIZE_OF_ITEM_ID;
    if (pd_lower as usize) > next {
        page.copy_within(next..pd_lower as usize, lp_pos(offnum));
    }
    // Move the tuple data before the deleted tuple up by its size.
    let up = pd_upper as usize;
    if offset > up {
        page.copy_within(up..offset, up + size);
    }
    set_upper(page, (up + size) as u16);
    set_lower(page, pd_lower - SIZE_OF_ITEM_ID as u16);

    if lower(page) as usize > SIZE_OF_PAGE_HEADER {
        shift_item_offsets(page, nline - 1, offset, size as isize, false);
    }
    Ok(())
}

/// `PageIndexMultiDelete`: remove several index tuples (offsets sorted
/// ascending) at once, compacting line pointers and tuple data.
pub fn page_index_multi_delete(page: &mut Page, itemnos: &[u16]) -> Result<(), PageOpError> {
    if itemnos.len() <= 2 {
        // PostgreSQL deletes one at a time, last first, for short lists; the
        // resulting layout differs from the bulk path, so mirror it.
        for &o in itemnos.iter().rev() {
            page_index_tuple_delete(page, o)?;
        }
        return Ok(());
    }
    let (pd_lower, pd_upper, pd_special) = check_pointers_strict(page)?;
    let nline = max_offset(page);
    let mut keep = Vec::with_capacity(nline as usize);
    let mut new_lps = Vec::with_capacity(nline as usize);
    let mut totallen = 0usize;
    let mut next = 0usize;
    for o in 1..=nline {
        let lp = read_item_id_raw(page, o);
        let (offset, size) = (lp.off as usize, lp.len as usize);
        if offset < pd_upper as usize
            || offset + size > pd_special as usize
            || offset != maxalign(offset)
        {
            return Err(PageOpError::CorruptLinePointer {
                offnum: o,
                off: lp.off,
                len: lp.len,
            });
        }
        if next < itemnos.len() && itemnos[next] == o {
            next += 1;
        } else {
            let alignedlen = maxalign(size);
            totallen += alignedlen;
            new_lps.push(lp);
            keep.push(CompactItem {
                offnum: new_lps.len() as u16,
                itemoff: offset,
                alignedlen,
            });
        }
    }
    if next != itemnos.len() {
        return Err(PageOpError::BadDeleteList);
    }
    let available = (pd_special - pd_lower) as usize;
    if totallen > available {
        return Err(PageOpError::CorruptItemLengths {
            total: totallen,
            available,
        });
    }
    for (i, lp) in new_lps.iter().enumerate() {
        put_item_id_raw(page, i as u16 + 1, *lp);
    }
    set_lower(
        page,
        (SIZE_OF_PAGE_HEADER + new_lps.len() * SIZE_OF_ITEM_ID) as u16,
    );
    if keep.is_empty() {
        set_upper(page, pd_special);
    } else {
        compactify(page, &keep, pd_special as usize);
    }
    Ok(())
}

/// `PageIndexTupleDeleteNoCompact`: remove an index tuple's data but leave
/// its line pointer as LP_UNUSED (unless it is the last one), so other items
/// keep their offset numbers.
pub fn page_index_tuple_delete_no_compact(page: &mut Page, offnum: u16) -> Result<(), PageOpError> {
    let (pd_lower, pd_upper, pd_special) = check_pointers_strict(page)?;
    let mut nline = max_offset(page);
    let (offset, size) = index_item(page, offnum, pd_upper, pd_special)?;
    let size = maxalign(size);
    if offnum < nline {
        put_item_id_raw(page, offnum, lp_unused());
    } else {
        set_lower(page, pd_lower - SIZE_OF_ITEM_ID as u16);
        nline -= 1;
    }
    let up = pd_upper as usize;
    if offset > up {
        page.copy_within(up..offset, up + size);
    }
    set_upper(page, (up + size) as u16);
    if lower(page) as usize > SIZE_OF_PAGE_HEADER {
        shift_item_offsets(page, nline, offset, size as isize, true);
    }
    Ok(())
}

/// `PageIndexTupleOverwrite`: replace an item in place, shifting the data
/// before it so the page stays compact; keeps the line pointer's flags.
/// Returns `Ok(false)` when the new item does not fit (as PostgreSQL does).
pub fn page_index_tuple_overwrite(
    page: &mut Page,
    offnum: u16,
    newtup: &[u8],
) -> Result<bool, PageOpError> {
    let (pd_lower, pd_upper, pd_special) = check_pointers_strict(page)?;
    let nline = max_offset(page);
    let (offset, oldsize) = index_item(page, offnum, pd_upper, pd_special)?;
    let oldsize = maxalign(oldsize);
    let newaligned = maxalign(newtup.len());
    if newaligned > oldsize + (pd_upper - pd_lower) as usize {
        return Ok(false);
    }
    let diff = oldsize as isize - newaligned as isize;
    if diff != 0 {
        let up = pd_upper as usize;
        let dst = (up as isize + diff) as usize;
        page.copy_within(up..offset, dst);
        set_upper(page, dst as u16);
        shift_item_offsets(page, nline, offset, diff, true);
    }
    let new_off = (offset as isize + diff) as usize;
    let mut lp = read_item_id_raw(page, offnum);
    lp.off = new_off as u16;
    lp.len = newtup.len() as u16;
    put_item_id_raw(page, offnum, lp);
    if !write_at(page, new_off, newtup) {
        return Err(PageOpError::ItemTooLarge { size: newtup.len() });
    }
    Ok(true)
}

#[cfg(test)]
#[path = "pageops_tests.rs"]
mod tests;
