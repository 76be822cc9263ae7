//! Page masking for consistency checks: the effect of PostgreSQL's
//! `bufmask.c` helpers and the per-rmgr `rm_mask` functions we support
//! (`heap_mask` for Heap and Heap2, `seq_mask`, and the generic mask).
//!
//! Masking blanks whatever may legitimately differ between the primary's page
//! and a replayed one: LSN and checksum, hint bits and hint flags, the free
//! space between pd_lower and pd_upper, and per-rmgr fields (for heap: tuple
//! hint bits in t_infomask, t_cid, the speculative-insertion token in t_ctid,
//! padding after each item). Both pages are masked, then compared byte for
//! byte (see [`crate::verify`]).
//!
//! Where PostgreSQL would raise an error on an insane page header (in
//! `mask_unused_space`), we mask what we safely can and leave the rest, so
//! the comparison still reports a difference instead of failing.

use postgres_ffi::page::{LpFlags, PD_ALL_VISIBLE, PD_HAS_FREE_LINES, PD_PAGE_FULL};
use postgres_ffi::rmgr::{
    RM_BRIN_ID, RM_BTREE_ID, RM_GENERIC_ID, RM_GIN_ID, RM_GIST_ID, RM_HASH_ID, RM_HEAP2_ID,
    RM_HEAP_ID, RM_SEQ_ID, RM_SPGIST_ID,
};
use postgres_ffi::{maxalign, BlockNumber, BLCKSZ};

use crate::htup::{self, SIZEOF_HEAP_TUPLE_HEADER};
use crate::pageops::{self, read_u16, Page, SIZE_OF_ITEM_ID, SIZE_OF_PAGE_HEADER};

/// `MASK_MARKER`.
const MASK_MARKER: u8 = 0;

/// A per-rmgr mask function: `(page, blkno)`.
pub type MaskFn = fn(&mut Page, BlockNumber);

/// `mask_page_lsn_and_checksum`.
pub fn mask_lsn_and_checksum(page: &mut Page) {
    page[0..8].fill(MASK_MARKER);
    page[8..10].fill(MASK_MARKER);
}

/// `mask_page_hint_bits`: pd_prune_xid and the PD_PAGE_FULL,
/// PD_HAS_FREE_LINES and PD_ALL_VISIBLE flags.
pub fn mask_hint_bits(page: &mut Page) {
    pageops::set_prune_xid(page, 0);
    let f = pageops::flags(page);
    pageops::set_flags(
        page,
        f & !(PD_PAGE_FULL | PD_HAS_FREE_LINES | PD_ALL_VISIBLE),
    );
}

/// `mask_unused_space`: zero pd_lower..pd_upper. Returns `false` (nothing
/// masked) when the header is insane, where PostgreSQL would error.
pub fn mask_unused_space(page: &mut Page) -> bool {
    let (l, u, s) = (
        pageops::lower(page) as usize,
        pageops::upper(page) as usize,
        pageops::special(page) as usize,
    );
    if l > u || s < u || l < SIZE_OF_PAGE_HEADER || s > BLCKSZ {
        return false;
    }
    page[l..u].fill(MASK_MARKER);
    true
}

/// Line pointer positions that lie inside the page, with their offset numbers.
fn line_pointers(page: &Page) -> impl Iterator<Item = (u16, usize)> {
    let n = pageops::max_offset(page);
    (1..=n)
        .map(|o| (o, SIZE_OF_PAGE_HEADER + (o as usize - 1) * SIZE_OF_ITEM_ID))
        .take_while(|&(_, pos)| pos + SIZE_OF_ITEM_ID <= BLCKSZ)
}

/// `mask_lp_flags`: every used line pointer's flags become LP_UNUSED.
pub fn mask_lp_flags(page: &mut Page) {
    let lps: Vec<usize> = line_pointers(page).map(|(_, p)| p).collect();
    for pos in lps {
        let word = pageops::read_u32(page, pos).unwrap_or(0);
        if (word >> 15) & 3 != 0 {
            let masked = word & !(3 << 15);
            pageops::write_at(page, pos, &masked.to_le_bytes());
        }
    }
}

/// `mask_page_content`: everything after the header, plus pd_lower/upper.
pub fn mask_page_content(page: &mut Page) {
    page[SIZE_OF_PAGE_HEADER..].fill(MASK_MARKER);
    page[12..16].fill(MASK_MARKER);
}

/// `heap_mask` (Heap and Heap2 records; also applied to the VM page of
/// HEAP2 VISIBLE, where it blanks the whole bitmap as free space).
pub fn heap_mask(page: &mut Page, blkno: BlockNumber) {
    mask_lsn_and_checksum(page);
    mask_hint_bits(page);
    mask_unused_space(page);
    let lps: Vec<(u16, usize)> = line_pointers(page).collect();
    for (offnum, pos) in lps {
        let lp = postgres_ffi::page::ItemId::from_word(pageops::read_u32(page, pos).unwrap_or(0));
        let start = lp.off as usize;
        if lp.flags == LpFlags::Normal && start + SIZEOF_HEAP_TUPLE_HEADER <= BLCKSZ {
            let im_at = start + htup::T_INFOMASK;
            let infomask = read_u16(page, im_at).unwrap_or(0);
            // Hint bits of a tuple whose xmin is not frozen can change without
            // WAL; for frozen ones only the xmax hints can.
            let masked = if infomask & htup::HEAP_XMIN_FROZEN != htup::HEAP_XMIN_FROZEN {
                infomask & !htup::HEAP_XACT_MASK
            } else {
                infomask & !(htup::HEAP_XMAX_INVALID | htup::HEAP_XMAX_COMMITTED)
            };
            pageops::write_at(page, im_at, &masked.to_le_bytes());
            // Redo stamps FirstCommandId; the primary had the real cid.
            pageops::write_at(page, start + htup::T_CID, &[MASK_MARKER; 4]);
            // A speculative insertion's ctid holds a token on the primary.
            let ctid_off = read_u16(page, start + htup::T_CTID + 4).unwrap_or(0);
            if ctid_off == htup::SPEC_TOKEN_OFFSET_NUMBER {
                pageops::write_at(page, start + htup::T_CTID, &htup::encode_tid(blkno, offnum));
            }
        }
        if lp.has_storage() {
            let len = lp.len as usize;
            let pad_start = (start + len).min(BLCKSZ);
            let pad_end = (start + maxalign(len)).min(BLCKSZ);
            page[pad_start..pad_end].fill(MASK_MARKER);
        }
    }
}

/// `seq_mask`.
pub fn seq_mask(page: &mut Page, _blkno: BlockNumber) {
    mask_lsn_and_checksum(page);
    mask_unused_space(page);
}

/// The mask PostgreSQL applies to pages changed by records of `rmid`;
/// `None` for rmgrs without one (they never carry verification images).
pub fn rmgr_mask(rmid: u8) -> Option<MaskFn> {
    match rmid {
        RM_HEAP_ID | RM_HEAP2_ID => Some(heap_mask),
        RM_SEQ_ID => Some(seq_mask),
        RM_BTREE_ID => Some(crate::btree::mask),
        RM_HASH_ID => Some(crate::hash::mask),
        RM_GIN_ID => Some(crate::gin::mask),
        RM_GIST_ID => Some(crate::gist::mask),
        RM_SPGIST_ID => Some(crate::spgist::mask),
        RM_BRIN_ID => Some(crate::brin::mask),
        RM_GENERIC_ID => Some(crate::generic::mask),
        _ => None,
    }
}

/// The mask the conformance check ([`crate::verify`]) applies to both our
/// page and the primary's image: the rmgr's mask, plus, for GiST, what
/// PostgreSQL's own check would trip over (see [`crate::gist::comparison_mask`]).
pub fn comparison_mask(rmid: u8) -> Option<MaskFn> {
    match rmid {
        RM_GIST_ID => Some(crate::gist::comparison_mask),
        _ => rmgr_mask(rmid),
    }
}

/// What kind of page a relation page is, judged from the page itself (its
/// special space), the way pageinspect-like tools tell access methods apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// All zeroes.
    New,
    Heap,
    Sequence,
    Btree,
    Hash,
    Gist,
    SpGist,
    Gin,
    Brin,
    /// contrib bloom (changed through Generic WAL).
    Bloom,
    /// Anything else (including pages with an insane header).
    Unknown,
}

/// Page ids in the last two bytes of the special space of some AMs.
const HASH_PAGE_ID: u16 = 0xFF80;
const GIST_PAGE_ID: u16 = 0xFF81;
const SPGIST_PAGE_ID: u16 = 0xFF82;
const BLOOM_PAGE_ID: u16 = 0xFF83;
/// BRIN page types (meta, revmap, regular).
const BRIN_PAGE_TYPES: std::ops::RangeInclusive<u16> = 0xF091..=0xF093;
/// Btree cycle ids stay below the ids other AMs use.
const MAX_BT_CYCLE_ID: u16 = 0xFF7F;

/// Classifies a main- or init-fork page.
pub fn page_kind(page: &Page) -> PageKind {
    if pageops::is_new(page) {
        return PageKind::New;
    }
    let special = pageops::special(page) as usize;
    if !(SIZE_OF_PAGE_HEADER..=BLCKSZ).contains(&special) {
        return PageKind::Unknown;
    }
    let size = BLCKSZ - special;
    let last = read_u16(page, BLCKSZ - 2).unwrap_or(0);
    match (size, last) {
        (0, _) => PageKind::Heap,
        // The 4-byte sequence magic, MAXALIGNed.
        (8, _) if pageops::read_u32(page, special) == Some(crate::seq::SEQ_MAGIC) => {
            PageKind::Sequence
        }
        (_, HASH_PAGE_ID) if size == 16 => PageKind::Hash,
        (_, GIST_PAGE_ID) if size == 16 => PageKind::Gist,
        (_, SPGIST_PAGE_ID) if size == 8 => PageKind::SpGist,
        (_, BLOOM_PAGE_ID) if size == 8 => PageKind::Bloom,
        (8, t) if BRIN_PAGE_TYPES.contains(&t) => PageKind::Brin,
        (8, _) => PageKind::Gin,
        (16, c) if c <= MAX_BT_CYCLE_ID => PageKind::Btree,
        _ => PageKind::Unknown,
    }
}

/// Masks a relation page for comparison with another copy of it (a
/// primary's file, a standby's, ours): the rm_mask of the access method
/// the page belongs to ([`page_kind`]). Visibility map pages only lose LSN
/// and checksum (their bitmap must match exactly); FSM pages, never
/// WAL-logged reliably, and unknown pages lose LSN, checksum and free space.
pub fn mask_relation_page(page: &mut Page, forknum: u8, blkno: BlockNumber) {
    use postgres_ffi::relfile::{FSM_FORKNUM, VISIBILITYMAP_FORKNUM};
    if forknum == VISIBILITYMAP_FORKNUM {
        mask_lsn_and_checksum(page);
        return;
    }
    if forknum == FSM_FORKNUM {
        mask_lsn_and_checksum(page);
        mask_unused_space(page);
        return;
    }
    match page_kind(page) {
        PageKind::New => {}
        PageKind::Heap => heap_mask(page, blkno),
        PageKind::Sequence => seq_mask(page, blkno),
        PageKind::Btree => crate::btree::mask(page, blkno),
        PageKind::Hash => crate::hash::mask(page, blkno),
        PageKind::Gist => crate::gist::comparison_mask(page, blkno),
        PageKind::SpGist => crate::spgist::mask(page, blkno),
        PageKind::Gin => crate::gin::mask(page, blkno),
        PageKind::Brin => crate::brin::mask(page, blkno),
        PageKind::Bloom => crate::generic::mask(page, blkno),
        PageKind::Unknown => {
            mask_lsn_and_checksum(page);
            mask_unused_space(page);
        }
    }
}

/// First byte offset at which two pages differ.
pub fn first_difference(a: &Page, b: &Page) -> Option<usize> {
    a.iter().zip(b.iter()).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pageops::{page_add_item, page_init, AddItemMode};

    fn heap_page_with(tuples: &[&[u8]]) -> Page {
        let mut p = [0u8; BLCKSZ];
        page_init(&mut p, 0).unwrap();
        for t in tuples {
            page_add_item(&mut p, t, 0, AddItemMode::default()).unwrap();
        }
        p
    }

    fn tuple(infomask: u16, cid: u32, ctid_off: u16, len: usize) -> Vec<u8> {
        let mut t = vec![0u8; len];
        t[8..12].copy_from_slice(&cid.to_le_bytes());
        t[16..18].copy_from_slice(&ctid_off.to_le_bytes());
        t[20..22].copy_from_slice(&infomask.to_le_bytes());
        t[22] = 24;
        t
    }

    #[test]
    fn heap_mask_hides_hints_cid_token_and_padding() {
        let mut a = heap_page_with(&[
            &tuple(0x0902, 7, 1, 27),
            &tuple(0x0B00 | 0x0300, 9, 0xFFFE, 30),
        ]);
        let mut b = heap_page_with(&[&tuple(0x0002, 0, 1, 27), &tuple(0x0300, 0, 0xFFFE, 30)]);
        // Different LSN, checksum, prune xid, flags, free-space garbage and padding.
        pageops::set_lsn(&mut a, postgres_ffi::Lsn(99));
        a[8] = 1;
        pageops::set_prune_xid(&mut a, 1234);
        pageops::set_all_visible(&mut a);
        a[100] = 0xAB;
        let lp1 = pageops::item_id(&a, 1).unwrap();
        a[lp1.off as usize + 27] = 0xCC; // padding after a 27-byte item
        assert!(first_difference(&a, &b).is_some());
        heap_mask(&mut a, 3);
        heap_mask(&mut b, 3);
        assert_eq!(first_difference(&a, &b), None);
        // The speculative token got replaced by (blk 3, off 2).
        let lp2 = pageops::item_id(&a, 2).unwrap();
        let ctid = &a[lp2.off as usize + 12..lp2.off as usize + 18];
        assert_eq!(ctid, &htup::encode_tid(3, 2));
    }

    #[test]
    fn heap_mask_keeps_data_and_frozen_xmin_bits() {
        let mut a = heap_page_with(&[&tuple(0x0300 | 0x0010, 0, 1, 24)]);
        let mut b = heap_page_with(&[&tuple(0x0300, 0, 1, 24)]);
        heap_mask(&mut a, 0);
        heap_mask(&mut b, 0);
        // Frozen xmin: lock bits are not hidden.
        assert!(first_difference(&a, &b).is_some());
        let mut c = heap_page_with(&[&tuple(0, 0, 1, 24)]);
        let mut d = c;
        let lp = pageops::item_id(&c, 1).unwrap();
        d[lp.off as usize + 23] = 5;
        heap_mask(&mut c, 0);
        heap_mask(&mut d, 0);
        assert_eq!(first_difference(&c, &d), Some(lp.off as usize + 23));
    }

    #[test]
    fn insane_pages_do_not_panic() {
        let mut p = [0xFFu8; BLCKSZ];
        heap_mask(&mut p, 0);
        let mut p = [0u8; BLCKSZ];
        p[12] = 0xF0;
        p[13] = 0x1F; // pd_lower 8176, pd_upper 0
        heap_mask(&mut p, 0);
        mask_lp_flags(&mut p);
        assert!(!mask_unused_space(&mut p));
        mask_page_content(&mut p);
        assert!(p[24..].iter().all(|&b| b == 0));
    }
}
