//! The standard PostgreSQL page layout: `PageHeaderData`, line pointers
//! (`ItemIdData`), page initialisation and verification, plus the data
//! checksum in [`checksum`].
//!
//! Layout (little-endian, 24-byte header):
//!
//! | off | field | |
//! |---|---|---|
//! | 0 | pd_lsn | two u32: high half (`xlogid`) first, then low half |
//! | 8 | pd_checksum | u16 |
//! | 10 | pd_flags | u16 |
//! | 12 | pd_lower | u16, end of the line pointer array |
//! | 14 | pd_upper | u16, start of tuple space; 0 means "new page" |
//! | 16 | pd_special | u16, start of the special space |
//! | 18 | pd_pagesize_version | u16, page size \| layout version (4) |
//! | 20 | pd_prune_xid | u32 |
//! | 24 | line pointers | u32 each, offset numbers start at 1 |
//!
//! The layout has not changed since PostgreSQL 8.3, so it is version
//! independent. Functions take byte slices so callers can work on buffers
//! they own; short slices give [`PageError`], never a panic. Used by redo
//! (page LSN, init, line pointers), basebackup (checksums) and tests.

pub mod checksum;

use crate::bytes_le::{put, u16_at, u32_at};
use crate::types::TransactionId;
use crate::{maxalign, Lsn, BLCKSZ};

pub use checksum::pg_checksum_page;

/// Size of the page header, up to the line pointer array.
pub const SIZE_OF_PAGE_HEADER_DATA: usize = 24;
/// Size of one line pointer.
pub const SIZE_OF_ITEM_ID: usize = 4;
/// The only page layout version PostgreSQL 8.3+ writes.
pub const PG_PAGE_LAYOUT_VERSION: u8 = 4;

/// `pd_flags`: there are unused line pointers before pd_lower.
pub const PD_HAS_FREE_LINES: u16 = 0x0001;
/// `pd_flags`: not enough free space for a new tuple.
pub const PD_PAGE_FULL: u16 = 0x0002;
/// `pd_flags`: all tuples visible to everyone.
pub const PD_ALL_VISIBLE: u16 = 0x0004;
/// All `pd_flags` bits PostgreSQL defines.
pub const PD_VALID_FLAG_BITS: u16 = 0x0007;

/// Problems with a page buffer or an item pointer on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("page buffer is {len} bytes, need at least {needed}")]
    TooShort { len: usize, needed: usize },
    #[error("line pointer {offnum} is outside the page's {count} line pointers")]
    NoSuchItem { offnum: u16, count: usize },
    #[error("special space of {size} bytes does not fit in a page")]
    SpecialTooLarge { size: usize },
}

/// Why [`verify_page`] rejected a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageVerifyError {
    #[error(
        "block {blkno}: insane page header (flags {flags:#x}, lower {lower}, upper {upper}, special {special})"
    )]
    BadHeader {
        blkno: u32,
        flags: u16,
        lower: u16,
        upper: u16,
        special: u16,
    },
    #[error("block {blkno}: page checksum {stored} does not match calculated {computed}")]
    BadChecksum {
        blkno: u32,
        stored: u16,
        computed: u16,
    },
    #[error("block {blkno}: new page (pd_upper 0) is not all zeroes")]
    DirtyNewPage { blkno: u32 },
}

/// The page header fields, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageHeaderData {
    pub pd_lsn: Lsn,
    pub pd_checksum: u16,
    pub pd_flags: u16,
    pub pd_lower: u16,
    pub pd_upper: u16,
    pub pd_special: u16,
    pub pd_pagesize_version: u16,
    pub pd_prune_xid: TransactionId,
}

fn need(page: &[u8], needed: usize) -> Result<(), PageError> {
    if page.len() < needed {
        Err(PageError::TooShort {
            len: page.len(),
            needed,
        })
    } else {
        Ok(())
    }
}

impl PageHeaderData {
    /// Decodes the header at the start of `page`.
    pub fn read(page: &[u8]) -> Result<Self, PageError> {
        need(page, SIZE_OF_PAGE_HEADER_DATA)?;
        // The length check above makes these reads infallible; map anyway
        // rather than unwrap so a future layout edit cannot introduce a panic.
        let short = |_| PageError::TooShort {
            len: page.len(),
            needed: SIZE_OF_PAGE_HEADER_DATA,
        };
        let hi = u32_at(page, 0).map_err(short)? as u64;
        let lo = u32_at(page, 4).map_err(short)? as u64;
        Ok(PageHeaderData {
            pd_lsn: Lsn((hi << 32) | lo),
            pd_checksum: u16_at(page, 8).map_err(short)?,
            pd_flags: u16_at(page, 10).map_err(short)?,
            pd_lower: u16_at(page, 12).map_err(short)?,
            pd_upper: u16_at(page, 14).map_err(short)?,
            pd_special: u16_at(page, 16).map_err(short)?,
            pd_pagesize_version: u16_at(page, 18).map_err(short)?,
            pd_prune_xid: u32_at(page, 20).map_err(short)?,
        })
    }

    /// Encodes the header into the first 24 bytes of `page`.
    pub fn write(&self, page: &mut [u8]) -> Result<(), PageError> {
        need(page, SIZE_OF_PAGE_HEADER_DATA)?;
        put(page, 0, &((self.pd_lsn.0 >> 32) as u32).to_le_bytes());
        put(page, 4, &(self.pd_lsn.0 as u32).to_le_bytes());
        put(page, 8, &self.pd_checksum.to_le_bytes());
        put(page, 10, &self.pd_flags.to_le_bytes());
        put(page, 12, &self.pd_lower.to_le_bytes());
        put(page, 14, &self.pd_upper.to_le_bytes());
        put(page, 16, &self.pd_special.to_le_bytes());
        put(page, 18, &self.pd_pagesize_version.to_le_bytes());
        put(page, 20, &self.pd_prune_xid.to_le_bytes());
        Ok(())
    }

    /// A page whose `pd_upper` is 0 has never been initialised.
    pub fn is_new(&self) -> bool {
        self.pd_upper == 0
    }

    pub fn page_size(&self) -> usize {
        (self.pd_pagesize_version & 0xFF00) as usize
    }

    pub fn layout_version(&self) -> u8 {
        (self.pd_pagesize_version & 0x00FF) as u8
    }

    /// PostgreSQL's sanity check for pages entering the buffer pool.
    pub fn is_sane(&self) -> bool {
        self.pd_flags & !PD_VALID_FLAG_BITS == 0
            && self.pd_lower <= self.pd_upper
            && self.pd_upper <= self.pd_special
            && self.pd_special as usize <= BLCKSZ
            && self.pd_special as usize == maxalign(self.pd_special as usize)
    }

    /// Number of line pointers (`PageGetMaxOffsetNumber`); 0 when pd_lower
    /// does not even cover the header.
    pub fn max_offset_number(&self) -> usize {
        (self.pd_lower as usize).saturating_sub(SIZE_OF_PAGE_HEADER_DATA) / SIZE_OF_ITEM_ID
    }
}

/// The page LSN (`PageGetLSN`).
pub fn page_get_lsn(page: &[u8]) -> Result<Lsn, PageError> {
    Ok(PageHeaderData::read(page)?.pd_lsn)
}

/// Sets the page LSN (`PageSetLSN`).
pub fn page_set_lsn(page: &mut [u8], lsn: Lsn) -> Result<(), PageError> {
    need(page, 8)?;
    put(page, 0, &((lsn.0 >> 32) as u32).to_le_bytes());
    put(page, 4, &(lsn.0 as u32).to_le_bytes());
    Ok(())
}

/// Stores `pg_checksum_page(page, blkno)` in `pd_checksum`.
pub fn page_set_checksum(page: &mut [u8; BLCKSZ], blkno: u32) {
    let sum = pg_checksum_page(page, blkno);
    page[8..10].copy_from_slice(&sum.to_le_bytes());
}

/// Zeroes `page` and initialises it as an empty page with `special_size`
/// bytes (rounded up to MAXALIGN) of special space (`PageInit`).
pub fn page_init(page: &mut [u8; BLCKSZ], special_size: usize) -> Result<(), PageError> {
    let special = maxalign(special_size);
    if special > BLCKSZ - SIZE_OF_PAGE_HEADER_DATA {
        return Err(PageError::SpecialTooLarge { size: special_size });
    }
    page.fill(0);
    let upper = (BLCKSZ - special) as u16;
    PageHeaderData {
        pd_lower: SIZE_OF_PAGE_HEADER_DATA as u16,
        pd_upper: upper,
        pd_special: upper,
        pd_pagesize_version: BLCKSZ as u16 | PG_PAGE_LAYOUT_VERSION as u16,
        ..Default::default()
    }
    .write(page)
}

/// True if every byte of the page is zero.
pub fn page_is_all_zero(page: &[u8]) -> bool {
    page.iter().all(|&b| b == 0)
}

/// What `PageIsVerifiedExtended` checks when a page is read from disk: a new
/// page must be all zeroes; otherwise the header must be sane and, when the
/// cluster has data checksums, the checksum must match for `blkno`.
pub fn verify_page(
    page: &[u8; BLCKSZ],
    blkno: u32,
    checksums_enabled: bool,
) -> Result<(), PageVerifyError> {
    // read() cannot fail on a full page.
    let hdr = PageHeaderData::read(page).unwrap_or_default();
    if hdr.is_new() {
        return if page_is_all_zero(page) {
            Ok(())
        } else {
            Err(PageVerifyError::DirtyNewPage { blkno })
        };
    }
    if !hdr.is_sane() {
        return Err(PageVerifyError::BadHeader {
            blkno,
            flags: hdr.pd_flags,
            lower: hdr.pd_lower,
            upper: hdr.pd_upper,
            special: hdr.pd_special,
        });
    }
    if checksums_enabled {
        let computed = pg_checksum_page(page, blkno);
        if computed != hdr.pd_checksum {
            return Err(PageVerifyError::BadChecksum {
                blkno,
                stored: hdr.pd_checksum,
                computed,
            });
        }
    }
    Ok(())
}

/// Line pointer state (`lp_flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LpFlags {
    Unused = 0,
    Normal = 1,
    Redirect = 2,
    Dead = 3,
}

impl LpFlags {
    fn from_bits(bits: u32) -> LpFlags {
        match bits & 3 {
            0 => LpFlags::Unused,
            1 => LpFlags::Normal,
            2 => LpFlags::Redirect,
            _ => LpFlags::Dead,
        }
    }
}

/// One line pointer: a 32-bit word of bit fields `lp_off:15`, `lp_flags:2`,
/// `lp_len:15`, least significant first (GCC's layout on little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemId {
    /// Offset of the item from the page start.
    pub off: u16,
    pub flags: LpFlags,
    /// Length of the item in bytes (or, for redirects, unused).
    pub len: u16,
}

impl ItemId {
    pub fn from_word(word: u32) -> Self {
        ItemId {
            off: (word & 0x7FFF) as u16,
            flags: LpFlags::from_bits(word >> 15),
            len: ((word >> 17) & 0x7FFF) as u16,
        }
    }

    /// Packs the fields; offsets and lengths are 15-bit, higher bits dropped.
    pub fn to_word(self) -> u32 {
        (self.off as u32 & 0x7FFF)
            | ((self.flags as u32) << 15)
            | ((self.len as u32 & 0x7FFF) << 17)
    }

    /// For a redirect, `off` holds the offset number it points to.
    pub fn is_used(self) -> bool {
        self.flags != LpFlags::Unused
    }

    pub fn has_storage(self) -> bool {
        self.len != 0
    }
}

fn item_id_position(page: &[u8], offnum: u16) -> Result<usize, PageError> {
    let hdr = PageHeaderData::read(page)?;
    let count = hdr.max_offset_number();
    if offnum == 0 || offnum as usize > count {
        return Err(PageError::NoSuchItem { offnum, count });
    }
    let pos = SIZE_OF_PAGE_HEADER_DATA + (offnum as usize - 1) * SIZE_OF_ITEM_ID;
    need(page, pos + SIZE_OF_ITEM_ID)?;
    Ok(pos)
}

/// Reads line pointer `offnum` (1-based, must be ≤ the page's item count).
pub fn read_item_id(page: &[u8], offnum: u16) -> Result<ItemId, PageError> {
    let pos = item_id_position(page, offnum)?;
    let word = u32_at(page, pos).map_err(|_| PageError::TooShort {
        len: page.len(),
        needed: pos + SIZE_OF_ITEM_ID,
    })?;
    Ok(ItemId::from_word(word))
}

/// Overwrites line pointer `offnum` (1-based, must already exist: extend
/// `pd_lower` first to add one).
pub fn write_item_id(page: &mut [u8], offnum: u16, item: ItemId) -> Result<(), PageError> {
    let pos = item_id_position(page, offnum)?;
    put(page, pos, &item.to_word().to_le_bytes());
    Ok(())
}

/// All line pointers of the page, in offset-number order.
pub fn item_ids(page: &[u8]) -> Result<Vec<ItemId>, PageError> {
    let hdr = PageHeaderData::read(page)?;
    let count = hdr.max_offset_number();
    need(page, SIZE_OF_PAGE_HEADER_DATA + count * SIZE_OF_ITEM_ID)?;
    Ok(
        page[SIZE_OF_PAGE_HEADER_DATA..SIZE_OF_PAGE_HEADER_DATA + count * SIZE_OF_ITEM_ID]
            .chunks_exact(SIZE_OF_ITEM_ID)
            .map(|c| ItemId::from_word(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_lsn_halves() {
        let mut page = [0u8; BLCKSZ];
        let hdr = PageHeaderData {
            pd_lsn: Lsn(0x0000_0001_0200_0030),
            pd_checksum: 0x1234,
            pd_flags: PD_ALL_VISIBLE,
            pd_lower: 32,
            pd_upper: 8000,
            pd_special: 8192,
            pd_pagesize_version: 8196,
            pd_prune_xid: 77,
        };
        hdr.write(&mut page).unwrap();
        // xlogid (high half) is stored first.
        assert_eq!(&page[0..8], &[1, 0, 0, 0, 0x30, 0, 0, 2]);
        assert_eq!(PageHeaderData::read(&page).unwrap(), hdr);
        assert_eq!(hdr.page_size(), 8192);
        assert_eq!(hdr.layout_version(), 4);
        assert_eq!(hdr.max_offset_number(), 2);
        assert!(hdr.is_sane());
        assert_eq!(
            PageHeaderData::read(&page[..10]),
            Err(PageError::TooShort {
                len: 10,
                needed: 24
            })
        );
        page_set_lsn(&mut page, Lsn(5)).unwrap();
        assert_eq!(page_get_lsn(&page).unwrap(), Lsn(5));
    }

    #[test]
    fn init_and_items() {
        let mut page = [0xFFu8; BLCKSZ];
        page_init(&mut page, 16).unwrap();
        let hdr = PageHeaderData::read(&page).unwrap();
        assert_eq!(
            (hdr.pd_lower, hdr.pd_upper, hdr.pd_special),
            (24, 8176, 8176)
        );
        assert!(verify_page(&page, 3, false).is_ok());
        assert!(page_init(&mut page, BLCKSZ).is_err());

        // Add two line pointers.
        let mut hdr = hdr;
        hdr.pd_lower = 32;
        hdr.write(&mut page).unwrap();
        let it = ItemId {
            off: 8100,
            flags: LpFlags::Normal,
            len: 76,
        };
        write_item_id(&mut page, 2, it).unwrap();
        assert_eq!(read_item_id(&page, 2).unwrap(), it);
        assert_eq!(ItemId::from_word(it.to_word()), it);
        assert!(matches!(
            read_item_id(&page, 3),
            Err(PageError::NoSuchItem {
                offnum: 3,
                count: 2
            })
        ));
        assert!(read_item_id(&page, 0).is_err());
        let all = item_ids(&page).unwrap();
        assert_eq!(all.len(), 2);
        assert!(!all[0].is_used());
    }

    #[test]
    fn verification() {
        let mut page = [0u8; BLCKSZ];
        assert!(verify_page(&page, 0, true).is_ok());
        page[100] = 1;
        assert_eq!(
            verify_page(&page, 0, true),
            Err(PageVerifyError::DirtyNewPage { blkno: 0 })
        );
        page_init(&mut page, 0).unwrap();
        page_set_checksum(&mut page, 9);
        assert!(verify_page(&page, 9, true).is_ok());
        assert!(matches!(
            verify_page(&page, 10, true),
            Err(PageVerifyError::BadChecksum { blkno: 10, .. })
        ));
        page[12] = 0xFF;
        page[13] = 0xFF; // pd_lower beyond pd_upper
        assert!(matches!(
            verify_page(&page, 9, false),
            Err(PageVerifyError::BadHeader { .. })
        ));
    }
}
