//! Pure functions that apply one effect to an 8 KiB page, in the layouts
//! Postgres 15 uses for its SLRUs and the visibility map:
//!
//! - CLOG (`pg_xact`): 2 status bits per xid, 4 xids per byte
//!   (`clog.c` `TransactionIdSetStatusBit`).
//! - multixact offsets: one u32 member offset per multixact;
//!   members: groups of 4 flag bytes + 4 xids (`multixact.c`
//!   `RecordNewMultiXact`).
//! - visibility map: after the 24-byte page header, 2 bits (all-visible,
//!   all-frozen) per heap block, 4 heap blocks per byte, 32672 heap blocks
//!   per map page (`visibilitymap.c` `visibilitymap_clear`,
//!   `visibilitymap_prepare_truncate`, `vm_readbuf`).
//!
//! The functions check that the entry they write belongs to the page they
//! are given (the caller passes the page number the key names) and return
//! [`PageError`] otherwise, so a misrouted record fails loudly instead of
//! writing another page's bytes. Used by [`super::native::NativeRedo`] and by
//! ingest when it materializes a page itself (a multixact offsets page
//! created implicitly).

use postgres_ffi::page::{page_init, PageHeaderData};
use postgres_ffi::slru::clog::{self, XidStatus};
use postgres_ffi::slru::{multixact_members, multixact_offsets};
use postgres_ffi::{BLCKSZ, MAXIMUM_ALIGNOF};

/// `VISIBILITYMAP_ALL_VISIBLE | VISIBILITYMAP_ALL_FROZEN`.
pub const VISIBILITYMAP_VALID_BITS: u8 = 0x03;
/// Start of the map bytes on a VM page (`MAXALIGN(SizeOfPageHeaderData)`).
const VM_MAP_OFFSET: usize = 24;
/// `MAPSIZE`: map bytes per VM page.
pub const VM_MAPSIZE: usize = BLCKSZ - VM_MAP_OFFSET;
const VM_BITS_PER_HEAPBLOCK: u32 = 2;
const VM_HEAPBLOCKS_PER_BYTE: u32 = 4;
/// Heap blocks covered by one VM page.
pub const VM_HEAPBLOCKS_PER_PAGE: u32 = VM_MAPSIZE as u32 * VM_HEAPBLOCKS_PER_BYTE;

const _: () = assert!(VM_MAP_OFFSET.is_multiple_of(MAXIMUM_ALIGNOF));

/// A record does not fit the page it was applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("{what} belongs on page {expected}, not page {page}")]
    WrongPage {
        what: String,
        expected: u32,
        page: u32,
    },
    #[error("invalid {what}: {value}")]
    BadValue { what: &'static str, value: u32 },
}

fn check_page(what: impl FnOnce() -> String, expected: u32, page: u32) -> Result<(), PageError> {
    if expected == page {
        Ok(())
    } else {
        Err(PageError::WrongPage {
            what: what(),
            expected,
            page,
        })
    }
}

/// Sets the CLOG status of `xids` on CLOG page `pageno`.
pub fn clog_set_status(
    page: &mut [u8; BLCKSZ],
    pageno: u32,
    xids: &[u32],
    status: u8,
) -> Result<(), PageError> {
    if status > XidStatus::SubCommitted as u8 {
        return Err(PageError::BadValue {
            what: "CLOG status",
            value: status as u32,
        });
    }
    let status = XidStatus::from_bits(status);
    for &xid in xids {
        check_page(
            || format!("CLOG status of xid {xid}"),
            clog::xid_to_page(xid),
            pageno,
        )?;
    }
    for &xid in xids {
        clog::set_status(page, xid, status);
    }
    Ok(())
}

/// Sets the member offset of multixact `mid` on offsets page `pageno`.
pub fn multixact_set_offset(
    page: &mut [u8; BLCKSZ],
    pageno: u32,
    mid: u32,
    moff: u32,
) -> Result<(), PageError> {
    check_page(
        || format!("offset of multixact {mid}"),
        multixact_offsets::multi_to_page(mid),
        pageno,
    )?;
    multixact_offsets::set_offset(page, mid, moff);
    Ok(())
}

/// Stores `members` from member offset `moff` on members page `pageno`;
/// every member must fall on that page (ingest splits a multixact's members
/// per page). Offsets wrap around at 2^32 as in Postgres.
pub fn multixact_set_members(
    page: &mut [u8; BLCKSZ],
    pageno: u32,
    moff: u32,
    members: &[(u32, u8)],
) -> Result<(), PageError> {
    for i in 0..members.len() {
        let offset = moff.wrapping_add(i as u32);
        check_page(
            || format!("multixact member at offset {offset}"),
            multixact_members::offset_to_page(offset),
            pageno,
        )?;
    }
    for (i, &(xid, status)) in members.iter().enumerate() {
        multixact_members::set_member(page, moff.wrapping_add(i as u32), xid, status);
    }
    Ok(())
}

/// VM page holding the bits of `heap_blk`.
pub fn vm_page_of(heap_blk: u32) -> u32 {
    heap_blk / VM_HEAPBLOCKS_PER_PAGE
}

/// `PageInit`s a VM page that was never initialised, as `vm_readbuf` does
/// before Postgres touches the map.
pub fn vm_init_if_new(page: &mut [u8; BLCKSZ]) {
    let is_new = PageHeaderData::read(page).map_or(true, |h| h.is_new());
    if is_new {
        // Special size 0 always fits a page.
        let _ = page_init(page, 0);
    }
}

/// Clears `flags` (masked to the two valid bits) of `heap_blk` on VM page
/// `pageno`. Does not touch the page LSN, like `visibilitymap_clear`.
pub fn vm_clear(
    page: &mut [u8; BLCKSZ],
    pageno: u32,
    heap_blk: u32,
    flags: u8,
) -> Result<(), PageError> {
    check_page(
        || format!("visibility map bits of heap block {heap_blk}"),
        vm_page_of(heap_blk),
        pageno,
    )?;
    vm_init_if_new(page);
    let in_page = heap_blk % VM_HEAPBLOCKS_PER_PAGE;
    let byte = VM_MAP_OFFSET + (in_page / VM_HEAPBLOCKS_PER_BYTE) as usize;
    let shift = (in_page % VM_HEAPBLOCKS_PER_BYTE) * VM_BITS_PER_HEAPBLOCK;
    page[byte] &= !((flags & VISIBILITYMAP_VALID_BITS) << shift);
    Ok(())
}

/// Clears the bits of heap blocks `nheapblocks..` on the VM page that holds
/// heap block `nheapblocks` (`visibilitymap_prepare_truncate`). A page that
/// was never initialised is left alone (nothing to clear).
pub fn vm_truncate_tail(
    page: &mut [u8; BLCKSZ],
    pageno: u32,
    nheapblocks: u32,
) -> Result<(), PageError> {
    check_page(
        || format!("visibility map truncation to {nheapblocks} heap blocks"),
        vm_page_of(nheapblocks),
        pageno,
    )?;
    let in_page = nheapblocks % VM_HEAPBLOCKS_PER_PAGE;
    let trunc_byte = (in_page / VM_HEAPBLOCKS_PER_BYTE) as usize;
    let trunc_shift = (in_page % VM_HEAPBLOCKS_PER_BYTE) * VM_BITS_PER_HEAPBLOCK;
    let map = &mut page[VM_MAP_OFFSET..];
    map[trunc_byte + 1..].fill(0);
    map[trunc_byte] &= ((1u16 << trunc_shift) - 1) as u8;
    Ok(())
}

/// Whether truncating the heap to `nheapblocks` leaves part of a VM page
/// (so its tail must be cleared) rather than ending on a page boundary.
pub fn vm_truncation_is_partial(nheapblocks: u32) -> bool {
    !nheapblocks.is_multiple_of(VM_HEAPBLOCKS_PER_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_geometry() {
        assert_eq!(VM_HEAPBLOCKS_PER_PAGE, 32672);
        assert_eq!(vm_page_of(32671), 0);
        assert_eq!(vm_page_of(32672), 1);
    }

    #[test]
    fn vm_clear_bits() {
        let mut page = [0u8; BLCKSZ];
        vm_clear(&mut page, 0, 5, 0x03).unwrap();
        // The page was new: it is initialised first.
        let h = PageHeaderData::read(&page).unwrap();
        assert_eq!((h.pd_lower, h.pd_upper, h.pd_special), (24, 8192, 8192));
        // Heap block 5 = byte 1, shift 2.
        page[24 + 1] = 0xFF;
        vm_clear(&mut page, 0, 5, 0x02).unwrap();
        assert_eq!(page[25], 0b1111_0111);
        vm_clear(&mut page, 0, 5, 0x03).unwrap();
        assert_eq!(page[25], 0b1111_0011);
        // Invalid flag bits are ignored.
        vm_clear(&mut page, 0, 4, 0xFC).unwrap();
        assert_eq!(page[25], 0b1111_0011);
        assert!(matches!(
            vm_clear(&mut page, 1, 5, 3),
            Err(PageError::WrongPage {
                expected: 0,
                page: 1,
                ..
            })
        ));
        // Block on page 1.
        let mut p1 = [0u8; BLCKSZ];
        page_init(&mut p1, 0).unwrap();
        p1[24] = 0xFF;
        vm_clear(&mut p1, 1, 32672 + 1, 0x01).unwrap();
        assert_eq!(p1[24], 0b1111_1011);
    }

    #[test]
    fn vm_truncate() {
        let mut page = [0u8; BLCKSZ];
        page_init(&mut page, 0).unwrap();
        page[24..].fill(0xFF);
        // Keep heap blocks 0..6: bytes 0 fully, byte 1 low 2 pairs (4 bits).
        vm_truncate_tail(&mut page, 0, 6).unwrap();
        assert_eq!(page[24], 0xFF);
        assert_eq!(page[25], 0x0F);
        assert!(page[26..].iter().all(|&b| b == 0));
        assert!(vm_truncation_is_partial(6));
        assert!(!vm_truncation_is_partial(32672));
        assert!(vm_truncate_tail(&mut page, 1, 6).is_err());
    }

    #[test]
    fn clog_and_multixact() {
        let mut page = [0u8; BLCKSZ];
        clog_set_status(&mut page, 1, &[32768, 32770], 1).unwrap();
        assert_eq!(page[0], 0b0001_0001);
        assert!(clog_set_status(&mut page, 1, &[5], 1).is_err());
        assert!(clog_set_status(&mut page, 1, &[32768], 4).is_err());

        let mut off = [0u8; BLCKSZ];
        multixact_set_offset(&mut off, 0, 7, 123).unwrap();
        assert_eq!(multixact_offsets::get_offset(&off, 7), 123);
        assert!(multixact_set_offset(&mut off, 1, 7, 1).is_err());

        let mut mem = [0u8; BLCKSZ];
        multixact_set_members(&mut mem, 0, 3, &[(100, 1), (101, 5)]).unwrap();
        assert_eq!(multixact_members::get_member(&mem, 3), (100, 1));
        assert_eq!(multixact_members::get_member(&mem, 4), (101, 5));
        // The second member would be on the next page.
        assert!(multixact_set_members(&mut mem, 0, 1635, &[(1, 1), (2, 1)]).is_err());
    }
}
