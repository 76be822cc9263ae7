//! The visibility map (fork 2): bit layout, the bit changes redo makes, and
//! the VM changes heap records imply on pages they do not reference.
//!
//! Layout (`visibilitymap.c`): a standard page header (pd_lower 24, pd_upper
//! = pd_special = 8192, no line pointers), then `MAPSIZE` = 8168 bytes of
//! map at offset 24. Each heap block has two bits (ALL_VISIBLE 0x01,
//! ALL_FROZEN 0x02), four heap blocks per byte, least significant pair
//! first: heap block `h` lives on VM block `h / 32672`, byte
//! `24 + (h % 32672) / 4`, shift `2 * (h % 4)`.
//!
//! Who calls what: ingest calls [`implied_vm_clears`] on every heap record to
//! learn which VM pages to store a [`crate::RedoRecord::ClearVmBits`] under;
//! [`crate::apply`] executes those with [`clear_vm_bits`]; HEAP2 VISIBLE redo
//! (which does reference its VM page) uses [`set_vm_bits`]; Storage/TRUNCATE
//! maps to [`truncate_vm_page`]. Clearing does not touch the page LSN (as in
//! PostgreSQL, where the clear is protected by the heap record's own LSN).

use postgres_ffi::relfile::{RelFileNode, VISIBILITYMAP_FORKNUM};
use postgres_ffi::rmgr::{RM_HEAP2_ID, RM_HEAP_ID};
use postgres_ffi::v15::info::{heap, heap2};
use postgres_ffi::wal::{WalRecord, XLR_RMGR_INFO_MASK};
use postgres_ffi::{BlockNumber, BLCKSZ};

use crate::error::PageOpError;
use crate::pageops::{self, Page, SIZE_OF_PAGE_HEADER};
use crate::record::Reader;

pub const VISIBILITYMAP_ALL_VISIBLE: u8 = 0x01;
pub const VISIBILITYMAP_ALL_FROZEN: u8 = 0x02;
pub const VISIBILITYMAP_VALID_BITS: u8 = 0x03;

/// Bytes of map per page (`MAPSIZE`).
pub const MAPSIZE: usize = BLCKSZ - SIZE_OF_PAGE_HEADER;
/// Heap blocks covered by one VM page.
pub const HEAPBLOCKS_PER_PAGE: u32 = (MAPSIZE * 4) as u32;

/// The VM block that holds `heap_blkno`'s bits.
pub fn vm_block_for_heap(heap_blkno: BlockNumber) -> BlockNumber {
    heap_blkno / HEAPBLOCKS_PER_PAGE
}

/// (byte offset in the page, bit shift) of a heap block's bit pair.
fn map_position(heap_blkno: BlockNumber) -> (usize, u32) {
    let in_page = (heap_blkno % HEAPBLOCKS_PER_PAGE) as usize;
    (SIZE_OF_PAGE_HEADER + in_page / 4, 2 * (heap_blkno % 4))
}

/// The two VM bits of `heap_blkno` on its page.
pub fn vm_bits(page: &Page, heap_blkno: BlockNumber) -> u8 {
    let (byte, shift) = map_position(heap_blkno);
    (page[byte] >> shift) & VISIBILITYMAP_VALID_BITS
}

/// PostgreSQL initialises a VM page it finds all-zero before using it.
fn init_if_new(page: &mut Page) -> Result<(), PageOpError> {
    if pageops::is_new(page) {
        pageops::page_init(page, 0)?;
    }
    Ok(())
}

/// `visibilitymap_clear` for each heap block (all must map to this page):
/// clears `flags` (ALL_VISIBLE/ALL_FROZEN bits) without changing the LSN.
pub fn clear_vm_bits(
    page: &mut Page,
    heap_blocks: &[BlockNumber],
    flags: u8,
) -> Result<(), PageOpError> {
    init_if_new(page)?;
    let mask = flags & VISIBILITYMAP_VALID_BITS;
    for &h in heap_blocks {
        let (byte, shift) = map_position(h);
        page[byte] &= !(mask << shift);
    }
    Ok(())
}

/// `visibilitymap_set` as redo runs it: sets `flags` for `heap_blkno`;
/// returns whether the bits changed (only then does PostgreSQL stamp the
/// page LSN). The page must be initialised.
pub fn set_vm_bits(page: &mut Page, heap_blkno: BlockNumber, flags: u8) -> bool {
    let (byte, shift) = map_position(heap_blkno);
    let flags = flags & VISIBILITYMAP_VALID_BITS;
    if flags == (page[byte] >> shift) & VISIBILITYMAP_VALID_BITS {
        return false;
    }
    page[byte] |= flags << shift;
    true
}

/// `visibilitymap_prepare_truncate` on the last kept VM page: clears the
/// bits of every heap block ≥ `heap_blocks`. Returns `false` (page
/// untouched) when `heap_blocks` falls on a page boundary, in which case
/// PostgreSQL removes the whole page instead of editing it.
pub fn truncate_vm_page(page: &mut Page, heap_blocks: BlockNumber) -> Result<bool, PageOpError> {
    let in_page = (heap_blocks % HEAPBLOCKS_PER_PAGE) as usize;
    if in_page == 0 {
        return Ok(false);
    }
    init_if_new(page)?;
    let (byte, shift) = map_position(heap_blocks);
    page[byte + 1..].fill(0);
    page[byte] &= ((1u16 << shift) - 1) as u8;
    Ok(true)
}

/// A visibility map change a heap record implies on a page it does not
/// reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmClear {
    /// The heap relation (the VM page is its fork 2).
    pub rel: RelFileNode,
    pub vm_blkno: BlockNumber,
    pub heap_blkno: BlockNumber,
    pub flags: u8,
}

impl VmClear {
    pub const FORKNUM: u8 = VISIBILITYMAP_FORKNUM;
}

/// What a Storage/TRUNCATE record does to a relation's visibility map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmTruncate {
    pub rel: RelFileNode,
    /// New heap size in blocks.
    pub heap_blocks: BlockNumber,
    /// VM pages that remain (the fork is cut to this many blocks, if longer).
    pub vm_blocks: BlockNumber,
    /// The last remaining VM page, if it must be edited: store a
    /// [`crate::RedoRecord::TruncateVm`] for it (when it exists).
    pub partial_page: Option<BlockNumber>,
}

/// `SMGR_TRUNCATE_VM` in `xl_smgr_truncate.flags`.
const SMGR_TRUNCATE_VM: u32 = 0x0002;

/// The visibility map effect of a Storage/TRUNCATE record
/// (`visibilitymap_prepare_truncate`), or `None` if the record is not one
/// or does not truncate the VM. Layout: blkno u32, RelFileNode, flags i32.
pub fn implied_vm_truncate(rec: &WalRecord) -> Option<VmTruncate> {
    if rec.rmid() != postgres_ffi::rmgr::RM_SMGR_ID
        || rec.info() & XLR_RMGR_INFO_MASK != postgres_ffi::v15::info::smgr::TRUNCATE
    {
        return None;
    }
    let mut md = Reader::new(rec.main_data());
    let heap_blocks = md.u32()?;
    let rel = RelFileNode {
        spcnode: md.u32()?,
        dbnode: md.u32()?,
        relnode: md.u32()?,
    };
    let flags = md.u32()?;
    if flags & SMGR_TRUNCATE_VM == 0 {
        return None;
    }
    let last = vm_block_for_heap(heap_blocks);
    let partial = !heap_blocks.is_multiple_of(HEAPBLOCKS_PER_PAGE);
    Some(VmTruncate {
        rel,
        heap_blocks,
        vm_blocks: if partial { last + 1 } else { last },
        partial_page: partial.then_some(last),
    })
}

// Record flag bits that announce a VM clear (heapam_xlog.h).
const XLH_INSERT_ALL_VISIBLE_CLEARED: u8 = 0x01;
const XLH_DELETE_ALL_VISIBLE_CLEARED: u8 = 0x01;
const XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED: u8 = 0x01;
const XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED: u8 = 0x02;
const XLH_LOCK_ALL_FROZEN_CLEARED: u8 = 0x01;

/// The VM bits a heap record clears besides its own block changes (in
/// PostgreSQL these happen even when the heap block is restored from an
/// image). Empty for records that imply none; `None` if the record is too
/// short to tell (redo of it will fail with a typed error anyway).
pub fn implied_vm_clears(rec: &WalRecord) -> Option<Vec<VmClear>> {
    let info = rec.info() & XLR_RMGR_INFO_MASK;
    let mut out = Vec::new();
    let mut md = Reader::new(rec.main_data());
    let mut push = |rel: RelFileNode, heap_blkno: BlockNumber, flags: u8| {
        out.push(VmClear {
            rel,
            vm_blkno: vm_block_for_heap(heap_blkno),
            heap_blkno,
            flags,
        })
    };
    match rec.rmid() {
        RM_HEAP_ID => {
            let op = info & heap::OPMASK;
            match op {
                heap::INSERT => {
                    md.seek(2)?;
                    let flags = md.u8()?;
                    if flags & XLH_INSERT_ALL_VISIBLE_CLEARED != 0 {
                        let b = rec.block(0)?;
                        push(b.rnode, b.blkno, VISIBILITYMAP_VALID_BITS);
                    }
                }
                heap::DELETE => {
                    md.seek(7)?;
                    let flags = md.u8()?;
                    if flags & XLH_DELETE_ALL_VISIBLE_CLEARED != 0 {
                        let b = rec.block(0)?;
                        push(b.rnode, b.blkno, VISIBILITYMAP_VALID_BITS);
                    }
                }
                heap::UPDATE | heap::HOT_UPDATE => {
                    md.seek(7)?;
                    let flags = md.u8()?;
                    let new = rec.block(0)?;
                    let old_blkno = rec.block(1).map(|b| b.blkno).unwrap_or(new.blkno);
                    // Both use block 0's relation, as PostgreSQL does.
                    if flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED != 0 {
                        push(new.rnode, old_blkno, VISIBILITYMAP_VALID_BITS);
                    }
                    if flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED != 0 {
                        push(new.rnode, new.blkno, VISIBILITYMAP_VALID_BITS);
                    }
                }
                heap::LOCK => {
                    md.seek(7)?;
                    let flags = md.u8()?;
                    if flags & XLH_LOCK_ALL_FROZEN_CLEARED != 0 {
                        let b = rec.block(0)?;
                        push(b.rnode, b.blkno, VISIBILITYMAP_ALL_FROZEN);
                    }
                }
                _ => {}
            }
        }
        RM_HEAP2_ID => match info & heap::OPMASK {
            heap2::MULTI_INSERT => {
                let flags = md.u8()?;
                if flags & XLH_INSERT_ALL_VISIBLE_CLEARED != 0 {
                    let b = rec.block(0)?;
                    push(b.rnode, b.blkno, VISIBILITYMAP_VALID_BITS);
                }
            }
            heap2::LOCK_UPDATED => {
                md.seek(7)?;
                let flags = md.u8()?;
                if flags & XLH_LOCK_ALL_FROZEN_CLEARED != 0 {
                    let b = rec.block(0)?;
                    push(b.rnode, b.blkno, VISIBILITYMAP_ALL_FROZEN);
                }
            }
            _ => {}
        },
        _ => {}
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_positions() {
        assert_eq!(HEAPBLOCKS_PER_PAGE, 32672);
        assert_eq!(vm_block_for_heap(32671), 0);
        assert_eq!(vm_block_for_heap(32672), 1);
        let mut page = [0u8; BLCKSZ];
        pageops::page_init(&mut page, 0).unwrap();
        assert!(set_vm_bits(&mut page, 5, VISIBILITYMAP_VALID_BITS));
        assert!(!set_vm_bits(&mut page, 5, VISIBILITYMAP_VALID_BITS));
        // heap block 5: byte 24 + 1, shift 2.
        assert_eq!(page[25], 0b1100);
        assert!(set_vm_bits(&mut page, 32672 + 6, VISIBILITYMAP_ALL_VISIBLE));
        assert_eq!(page[25], 0b01_1100);
        clear_vm_bits(&mut page, &[5], VISIBILITYMAP_ALL_FROZEN).unwrap();
        assert_eq!(vm_bits(&page, 5), VISIBILITYMAP_ALL_VISIBLE);
        assert_eq!(vm_bits(&page, 6), VISIBILITYMAP_ALL_VISIBLE);
        clear_vm_bits(&mut page, &[5, 6], VISIBILITYMAP_VALID_BITS).unwrap();
        assert_eq!(page[25], 0);
    }

    #[test]
    fn clear_initialises_new_page_without_lsn() {
        let mut page = [0u8; BLCKSZ];
        clear_vm_bits(&mut page, &[1], VISIBILITYMAP_VALID_BITS).unwrap();
        assert_eq!(pageops::lower(&page), 24);
        assert_eq!(pageops::upper(&page), 8192);
        assert_eq!(pageops::lsn(&page).0, 0);
    }

    #[test]
    fn truncate_clears_tail() {
        let mut page = [0u8; BLCKSZ];
        pageops::page_init(&mut page, 0).unwrap();
        for h in 0..40 {
            set_vm_bits(&mut page, h, VISIBILITYMAP_VALID_BITS);
        }
        set_vm_bits(&mut page, 32671, VISIBILITYMAP_VALID_BITS);
        assert!(truncate_vm_page(&mut page, 10).unwrap());
        for h in 0..10 {
            assert_eq!(vm_bits(&page, h), 3, "{h}");
        }
        for h in 10..40 {
            assert_eq!(vm_bits(&page, h), 0, "{h}");
        }
        assert_eq!(vm_bits(&page, 32671), 0);
        let before = page;
        assert!(!truncate_vm_page(&mut page, HEAPBLOCKS_PER_PAGE).unwrap());
        assert_eq!(page, before);
    }
}
