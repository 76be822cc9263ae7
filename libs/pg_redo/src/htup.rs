//! Heap tuple header (`HeapTupleHeaderData`) layout and the field updates
//! heap redo performs on tuples in place.
//!
//! Layout of the 23-byte fixed header (then the null bitmap, padding to
//! `t_hoff`, and the attribute data):
//!
//! | off | field |
//! |---|---|
//! | 0 | t_xmin u32 |
//! | 4 | t_xmax u32 |
//! | 8 | t_cid / t_xvac u32 (one field, "t_field3") |
//! | 12 | t_ctid: block hi u16, block lo u16, offset u16 |
//! | 18 | t_infomask2 u16 |
//! | 20 | t_infomask u16 |
//! | 22 | t_hoff u8 |
//!
//! [`TupleMut`] is a view of one tuple on a page whose range was checked to
//! hold at least the fixed header; its setters cannot go out of bounds. Used
//! by the heap redo routines and by the heap mask.

use postgres_ffi::{BlockNumber, TransactionId};

use crate::pageops::Page;

/// `SizeofHeapTupleHeader`.
pub const SIZEOF_HEAP_TUPLE_HEADER: usize = 23;
/// `MaxHeapTupleSize` for 8 KiB pages: BLCKSZ - MAXALIGN(24 + 4).
pub const MAX_HEAP_TUPLE_SIZE: usize = 8160;

pub const T_XMIN: usize = 0;
pub const T_XMAX: usize = 4;
pub const T_CID: usize = 8;
pub const T_CTID: usize = 12;
pub const T_INFOMASK2: usize = 18;
pub const T_INFOMASK: usize = 20;
pub const T_HOFF: usize = 22;

// t_infomask bits.
pub const HEAP_XMAX_KEYSHR_LOCK: u16 = 0x0010;
pub const HEAP_COMBOCID: u16 = 0x0020;
pub const HEAP_XMAX_EXCL_LOCK: u16 = 0x0040;
pub const HEAP_XMAX_LOCK_ONLY: u16 = 0x0080;
pub const HEAP_XMAX_SHR_LOCK: u16 = HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK;
pub const HEAP_LOCK_MASK: u16 = HEAP_XMAX_SHR_LOCK | HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK;
pub const HEAP_XMIN_COMMITTED: u16 = 0x0100;
pub const HEAP_XMIN_INVALID: u16 = 0x0200;
pub const HEAP_XMIN_FROZEN: u16 = HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID;
pub const HEAP_XMAX_COMMITTED: u16 = 0x0400;
pub const HEAP_XMAX_INVALID: u16 = 0x0800;
pub const HEAP_XMAX_IS_MULTI: u16 = 0x1000;
pub const HEAP_MOVED_OFF: u16 = 0x4000;
pub const HEAP_MOVED_IN: u16 = 0x8000;
pub const HEAP_MOVED: u16 = HEAP_MOVED_OFF | HEAP_MOVED_IN;
/// Visibility-related infomask bits (hints, lock bits, ...).
pub const HEAP_XACT_MASK: u16 = 0xFFF0;
/// Bits cleared whenever xmax changes.
pub const HEAP_XMAX_BITS: u16 = HEAP_XMAX_COMMITTED
    | HEAP_XMAX_INVALID
    | HEAP_XMAX_IS_MULTI
    | HEAP_LOCK_MASK
    | HEAP_XMAX_LOCK_ONLY;

// t_infomask2 bits.
pub const HEAP_KEYS_UPDATED: u16 = 0x2000;
pub const HEAP_HOT_UPDATED: u16 = 0x4000;
pub const HEAP_ONLY_TUPLE: u16 = 0x8000;

/// `FirstCommandId`: redo stamps it as cmin/cmax.
pub const FIRST_COMMAND_ID: u32 = 0;
/// `SpecTokenOffsetNumber`: ctid offset marking a speculative insertion.
pub const SPEC_TOKEN_OFFSET_NUMBER: u16 = 0xFFFE;
/// `MovedPartitionsOffsetNumber` / block: ctid of a row moved to another
/// partition by an UPDATE.
pub const MOVED_PARTITIONS_OFFSET_NUMBER: u16 = 0xFFFD;
pub const MOVED_PARTITIONS_BLOCK_NUMBER: BlockNumber = 0xFFFF_FFFF;

/// `HEAP_XMAX_IS_LOCKED_ONLY`.
pub fn xmax_is_locked_only(infomask: u16) -> bool {
    infomask & HEAP_XMAX_LOCK_ONLY != 0
        || infomask & (HEAP_XMAX_IS_MULTI | HEAP_LOCK_MASK) == HEAP_XMAX_EXCL_LOCK
}

/// Encodes an `ItemPointerData` (block split in two u16 halves, high first).
pub fn encode_tid(blkno: BlockNumber, offnum: u16) -> [u8; 6] {
    let mut b = [0u8; 6];
    b[0..2].copy_from_slice(&((blkno >> 16) as u16).to_le_bytes());
    b[2..4].copy_from_slice(&(blkno as u16).to_le_bytes());
    b[4..6].copy_from_slice(&offnum.to_le_bytes());
    b
}

/// A tuple on a page; `start + SIZEOF_HEAP_TUPLE_HEADER <= BLCKSZ` holds.
pub struct TupleMut<'a> {
    page: &'a mut Page,
    start: usize,
}

impl<'a> TupleMut<'a> {
    /// `None` if the fixed header at `start` would not fit in the page.
    pub fn new(page: &'a mut Page, start: usize) -> Option<Self> {
        if start.checked_add(SIZEOF_HEAP_TUPLE_HEADER)? <= page.len() {
            Some(TupleMut { page, start })
        } else {
            None
        }
    }

    fn u16(&self, off: usize) -> u16 {
        let p = self.start + off;
        u16::from_le_bytes([self.page[p], self.page[p + 1]])
    }
    fn set_u16(&mut self, off: usize, v: u16) {
        let p = self.start + off;
        self.page[p..p + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn u32(&self, off: usize) -> u32 {
        let p = self.start + off;
        u32::from_le_bytes([
            self.page[p],
            self.page[p + 1],
            self.page[p + 2],
            self.page[p + 3],
        ])
    }
    fn set_u32(&mut self, off: usize, v: u32) {
        let p = self.start + off;
        self.page[p..p + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn infomask(&self) -> u16 {
        self.u16(T_INFOMASK)
    }
    pub fn set_infomask(&mut self, v: u16) {
        self.set_u16(T_INFOMASK, v)
    }
    pub fn infomask2(&self) -> u16 {
        self.u16(T_INFOMASK2)
    }
    pub fn set_infomask2(&mut self, v: u16) {
        self.set_u16(T_INFOMASK2, v)
    }
    pub fn hoff(&self) -> u8 {
        self.page[self.start + T_HOFF]
    }
    pub fn xmin(&self) -> TransactionId {
        self.u32(T_XMIN)
    }
    pub fn set_xmin(&mut self, xid: TransactionId) {
        self.set_u32(T_XMIN, xid)
    }
    pub fn set_xmax(&mut self, xid: TransactionId) {
        self.set_u32(T_XMAX, xid)
    }
    /// Writes the t_cid/t_xvac field.
    pub fn set_field3(&mut self, v: u32) {
        self.set_u32(T_CID, v)
    }
    /// `HeapTupleHeaderSetCmax(tup, FirstCommandId, false)` (and SetCmin,
    /// which does the same to the bytes): cid field and no combo-cid bit.
    pub fn set_first_cid(&mut self) {
        self.set_field3(FIRST_COMMAND_ID);
        let m = self.infomask() & !HEAP_COMBOCID;
        self.set_infomask(m);
    }
    pub fn set_ctid(&mut self, blkno: BlockNumber, offnum: u16) {
        let p = self.start + T_CTID;
        self.page[p..p + 6].copy_from_slice(&encode_tid(blkno, offnum));
    }
    pub fn ctid_offnum(&self) -> u16 {
        self.u16(T_CTID + 4)
    }
}

/// `fix_infomask_from_infobits`: translate the compact `infobits_set` byte of
/// delete/update/lock records into infomask/infomask2 bits, after clearing
/// the bits it governs.
pub fn apply_infobits(infobits: u8, infomask: &mut u16, infomask2: &mut u16) {
    const XLHL_XMAX_IS_MULTI: u8 = 0x01;
    const XLHL_XMAX_LOCK_ONLY: u8 = 0x02;
    const XLHL_XMAX_EXCL_LOCK: u8 = 0x04;
    const XLHL_XMAX_KEYSHR_LOCK: u8 = 0x08;
    const XLHL_KEYS_UPDATED: u8 = 0x10;
    *infomask &=
        !(HEAP_XMAX_IS_MULTI | HEAP_XMAX_LOCK_ONLY | HEAP_XMAX_KEYSHR_LOCK | HEAP_XMAX_EXCL_LOCK);
    *infomask2 &= !HEAP_KEYS_UPDATED;
    if infobits & XLHL_XMAX_IS_MULTI != 0 {
        *infomask |= HEAP_XMAX_IS_MULTI;
    }
    if infobits & XLHL_XMAX_LOCK_ONLY != 0 {
        *infomask |= HEAP_XMAX_LOCK_ONLY;
    }
    if infobits & XLHL_XMAX_EXCL_LOCK != 0 {
        *infomask |= HEAP_XMAX_EXCL_LOCK;
    }
    // A shared lock is EXCL|KEYSHR; both bits arrive separately.
    if infobits & XLHL_XMAX_KEYSHR_LOCK != 0 {
        *infomask |= HEAP_XMAX_KEYSHR_LOCK;
    }
    if infobits & XLHL_KEYS_UPDATED != 0 {
        *infomask2 |= HEAP_KEYS_UPDATED;
    }
}
