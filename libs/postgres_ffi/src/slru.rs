//! SLRU areas: where a transaction's (or multixact's) entry lives.
//!
//! Every SLRU is a sequence of 8 KiB pages grouped in segment files of
//! [`SLRU_PAGES_PER_SEGMENT`] pages, named by segment number in upper-case hex
//! with at least four digits (`pg_xact/0000`, `pg_multixact/members/14078`).
//! The per-area submodules turn an id into (page, byte offset, bit shift) and
//! read/write entries on a page buffer:
//!
//! - [`clog`] (`pg_xact`): 2 status bits per xid, 4 xids per byte.
//! - [`multixact_offsets`]: a u32 member offset per multixact id.
//! - [`multixact_members`]: groups of 4 members = 4 flag bytes + 4 xids.
//! - [`subtrans`]: parent xid per xid (not WAL-logged; not in backups).
//! - [`commit_ts`]: 10-byte (timestamp, origin) entries.
//!
//! The arithmetic follows the C macros (`clog.c`, `multixact.c`,
//! `subtrans.c`, `commit_ts.c`) and depends only on BLCKSZ; page numbers are
//! u32 and wrap with the ids as in PostgreSQL 15. Page accessors take
//! `&[u8; BLCKSZ]` so the offsets computed here are always in range.

use crate::types::{MultiXactId, MultiXactOffset, TransactionId};
use crate::BLCKSZ;

/// Pages per SLRU segment file.
pub const SLRU_PAGES_PER_SEGMENT: u32 = 32;

/// The SLRU areas PostgreSQL keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlruKind {
    Clog,
    MultiXactOffsets,
    MultiXactMembers,
    Subtrans,
    CommitTs,
}

impl SlruKind {
    pub const ALL: [SlruKind; 5] = [
        SlruKind::Clog,
        SlruKind::MultiXactOffsets,
        SlruKind::MultiXactMembers,
        SlruKind::Subtrans,
        SlruKind::CommitTs,
    ];

    /// Directory relative to the data directory.
    pub fn dir(self) -> &'static str {
        match self {
            SlruKind::Clog => "pg_xact",
            SlruKind::MultiXactOffsets => "pg_multixact/offsets",
            SlruKind::MultiXactMembers => "pg_multixact/members",
            SlruKind::Subtrans => "pg_subtrans",
            SlruKind::CommitTs => "pg_commit_ts",
        }
    }
}

/// Segment number and page-within-segment of an SLRU page number.
pub fn page_to_segment(pageno: u32) -> (u32, u32) {
    (
        pageno / SLRU_PAGES_PER_SEGMENT,
        pageno % SLRU_PAGES_PER_SEGMENT,
    )
}

/// Segment file name (`SlruFileName`): `%04X`.
pub fn segment_file_name(segno: u32) -> String {
    format!("{segno:04X}")
}

/// Path of a segment file relative to the data directory.
pub fn segment_path(kind: SlruKind, segno: u32) -> String {
    format!("{}/{}", kind.dir(), segment_file_name(segno))
}

/// A file name that is not an SLRU segment name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an SLRU segment file name (4 to 6 upper-case hex digits)")]
pub struct BadSegmentName(pub String);

/// Parses a segment file name the way PostgreSQL's directory scan accepts
/// them: 4, 5 or 6 upper-case hex digits.
pub fn parse_segment_file_name(name: &str) -> Result<u32, BadSegmentName> {
    let ok = (4..=6).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    if !ok {
        return Err(BadSegmentName(name.to_owned()));
    }
    u32::from_str_radix(name, 16).map_err(|_| BadSegmentName(name.to_owned()))
}

/// `pg_xact`: transaction status, 2 bits per xid.
pub mod clog {
    use super::*;

    pub const CLOG_BITS_PER_XACT: u32 = 2;
    pub const CLOG_XACTS_PER_BYTE: u32 = 4;
    pub const CLOG_XACTS_PER_PAGE: u32 = BLCKSZ as u32 * CLOG_XACTS_PER_BYTE;
    const CLOG_XACT_BITMASK: u8 = (1 << CLOG_BITS_PER_XACT) - 1;

    /// The status values stored in the bit pairs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum XidStatus {
        InProgress = 0,
        Committed = 1,
        Aborted = 2,
        SubCommitted = 3,
    }

    impl XidStatus {
        pub fn from_bits(bits: u8) -> XidStatus {
            match bits & CLOG_XACT_BITMASK {
                0 => XidStatus::InProgress,
                1 => XidStatus::Committed,
                2 => XidStatus::Aborted,
                _ => XidStatus::SubCommitted,
            }
        }
    }

    pub fn xid_to_page(xid: TransactionId) -> u32 {
        xid / CLOG_XACTS_PER_PAGE
    }

    /// Byte within the page.
    pub fn xid_to_byte(xid: TransactionId) -> usize {
        ((xid % CLOG_XACTS_PER_PAGE) / CLOG_XACTS_PER_BYTE) as usize
    }

    /// Shift of the xid's bit pair within its byte.
    pub fn xid_to_bit_shift(xid: TransactionId) -> u32 {
        (xid % CLOG_XACTS_PER_BYTE) * CLOG_BITS_PER_XACT
    }

    /// The first xid stored on `pageno`.
    pub fn page_first_xid(pageno: u32) -> TransactionId {
        pageno.wrapping_mul(CLOG_XACTS_PER_PAGE)
    }

    /// Status of `xid` on its page (the caller picked the page with
    /// [`xid_to_page`]).
    pub fn get_status(page: &[u8; BLCKSZ], xid: TransactionId) -> XidStatus {
        let byte = page[xid_to_byte(xid)];
        XidStatus::from_bits(byte >> xid_to_bit_shift(xid))
    }

    pub fn set_status(page: &mut [u8; BLCKSZ], xid: TransactionId, status: XidStatus) {
        let idx = xid_to_byte(xid);
        let shift = xid_to_bit_shift(xid);
        page[idx] = (page[idx] & !(CLOG_XACT_BITMASK << shift)) | ((status as u8) << shift);
    }
}

/// `pg_multixact/offsets`: member offset of each multixact.
pub mod multixact_offsets {
    use super::*;

    pub const MULTIXACT_OFFSETS_PER_PAGE: u32 = BLCKSZ as u32 / 4;

    pub fn multi_to_page(multi: MultiXactId) -> u32 {
        multi / MULTIXACT_OFFSETS_PER_PAGE
    }

    /// Entry index within the page.
    pub fn multi_to_entry(multi: MultiXactId) -> usize {
        (multi % MULTIXACT_OFFSETS_PER_PAGE) as usize
    }

    pub fn get_offset(page: &[u8; BLCKSZ], multi: MultiXactId) -> MultiXactOffset {
        let at = multi_to_entry(multi) * 4;
        u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
    }

    pub fn set_offset(page: &mut [u8; BLCKSZ], multi: MultiXactId, offset: MultiXactOffset) {
        let at = multi_to_entry(multi) * 4;
        page[at..at + 4].copy_from_slice(&offset.to_le_bytes());
    }
}

/// `pg_multixact/members`: member xids with an 8-bit status each, stored in
/// groups of four members: four flag bytes, then four xids.
pub mod multixact_members {
    use super::*;

    pub const MXACT_MEMBER_BITS_PER_XACT: u32 = 8;
    pub const MULTIXACT_FLAGBYTES_PER_GROUP: u32 = 4;
    pub const MULTIXACT_MEMBERS_PER_MEMBERGROUP: u32 = 4;
    /// 4 flag bytes + 4 xids of 4 bytes.
    pub const MULTIXACT_MEMBERGROUP_SIZE: u32 =
        4 * MULTIXACT_MEMBERS_PER_MEMBERGROUP + MULTIXACT_FLAGBYTES_PER_GROUP;
    /// 409 groups fit on a page (the last 12 bytes are unused).
    pub const MULTIXACT_MEMBERGROUPS_PER_PAGE: u32 = BLCKSZ as u32 / MULTIXACT_MEMBERGROUP_SIZE;
    pub const MULTIXACT_MEMBERS_PER_PAGE: u32 =
        MULTIXACT_MEMBERGROUPS_PER_PAGE * MULTIXACT_MEMBERS_PER_MEMBERGROUP;

    /// Lock/update strength of a member (`MultiXactStatus`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum MultiXactStatus {
        ForKeyShare = 0,
        ForShare = 1,
        ForNoKeyUpdate = 2,
        ForUpdate = 3,
        NoKeyUpdate = 4,
        Update = 5,
    }

    impl TryFrom<u32> for MultiXactStatus {
        type Error = u32;
        fn try_from(v: u32) -> Result<Self, u32> {
            Ok(match v {
                0 => MultiXactStatus::ForKeyShare,
                1 => MultiXactStatus::ForShare,
                2 => MultiXactStatus::ForNoKeyUpdate,
                3 => MultiXactStatus::ForUpdate,
                4 => MultiXactStatus::NoKeyUpdate,
                5 => MultiXactStatus::Update,
                other => return Err(other),
            })
        }
    }

    pub fn offset_to_page(offset: MultiXactOffset) -> u32 {
        offset / MULTIXACT_MEMBERS_PER_PAGE
    }

    /// Byte offset of the member's group flag word within its page.
    pub fn offset_to_flags_offset(offset: MultiXactOffset) -> usize {
        let group = (offset / MULTIXACT_MEMBERS_PER_MEMBERGROUP) % MULTIXACT_MEMBERGROUPS_PER_PAGE;
        (group * MULTIXACT_MEMBERGROUP_SIZE) as usize
    }

    /// Shift of the member's status byte within the flag word.
    pub fn offset_to_flags_bit_shift(offset: MultiXactOffset) -> u32 {
        (offset % MULTIXACT_MEMBERS_PER_MEMBERGROUP) * MXACT_MEMBER_BITS_PER_XACT
    }

    /// Byte offset of the member's xid within its page.
    pub fn offset_to_member_offset(offset: MultiXactOffset) -> usize {
        offset_to_flags_offset(offset)
            + MULTIXACT_FLAGBYTES_PER_GROUP as usize
            + (offset % MULTIXACT_MEMBERS_PER_MEMBERGROUP) as usize * 4
    }

    /// (xid, raw status byte) of member `offset` on its page.
    pub fn get_member(page: &[u8; BLCKSZ], offset: MultiXactOffset) -> (TransactionId, u8) {
        let at = offset_to_member_offset(offset);
        let xid = u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]]);
        let flag_byte =
            offset_to_flags_offset(offset) + (offset % MULTIXACT_MEMBERS_PER_MEMBERGROUP) as usize;
        (xid, page[flag_byte])
    }

    pub fn set_member(
        page: &mut [u8; BLCKSZ],
        offset: MultiXactOffset,
        xid: TransactionId,
        status: u8,
    ) {
        let at = offset_to_member_offset(offset);
        page[at..at + 4].copy_from_slice(&xid.to_le_bytes());
        // The flag word is a little-endian u32, so the member's byte is the
        // (shift / 8)-th byte of the word.
        let flag_byte =
            offset_to_flags_offset(offset) + (offset % MULTIXACT_MEMBERS_PER_MEMBERGROUP) as usize;
        page[flag_byte] = status;
    }
}

/// `pg_subtrans`: parent xid of each (sub)transaction.
pub mod subtrans {
    use super::*;

    pub const SUBTRANS_XACTS_PER_PAGE: u32 = BLCKSZ as u32 / 4;

    pub fn xid_to_page(xid: TransactionId) -> u32 {
        xid / SUBTRANS_XACTS_PER_PAGE
    }

    pub fn xid_to_entry(xid: TransactionId) -> usize {
        (xid % SUBTRANS_XACTS_PER_PAGE) as usize
    }
}

/// `pg_commit_ts`: commit timestamp and origin of each xid.
pub mod commit_ts {
    use super::*;

    /// 8-byte timestamp + 2-byte origin id, packed.
    pub const SIZE_OF_COMMIT_TIMESTAMP_ENTRY: u32 = 10;
    pub const COMMIT_TS_XACTS_PER_PAGE: u32 = BLCKSZ as u32 / SIZE_OF_COMMIT_TIMESTAMP_ENTRY;

    pub fn xid_to_page(xid: TransactionId) -> u32 {
        xid / COMMIT_TS_XACTS_PER_PAGE
    }

    pub fn xid_to_entry(xid: TransactionId) -> usize {
        (xid % COMMIT_TS_XACTS_PER_PAGE) as usize
    }

    /// (timestamp in µs since 2000-01-01, origin id) of `xid` on its page.
    pub fn get_entry(page: &[u8; BLCKSZ], xid: TransactionId) -> (i64, u16) {
        let at = xid_to_entry(xid) * SIZE_OF_COMMIT_TIMESTAMP_ENTRY as usize;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&page[at..at + 8]);
        (
            i64::from_le_bytes(ts),
            u16::from_le_bytes([page[at + 8], page[at + 9]]),
        )
    }

    pub fn set_entry(page: &mut [u8; BLCKSZ], xid: TransactionId, ts: i64, origin: u16) {
        let at = xid_to_entry(xid) * SIZE_OF_COMMIT_TIMESTAMP_ENTRY as usize;
        page[at..at + 8].copy_from_slice(&ts.to_le_bytes());
        page[at + 8..at + 10].copy_from_slice(&origin.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_constants() {
        assert_eq!(clog::CLOG_XACTS_PER_PAGE, 32768);
        assert_eq!(multixact_offsets::MULTIXACT_OFFSETS_PER_PAGE, 2048);
        assert_eq!(multixact_members::MULTIXACT_MEMBERGROUPS_PER_PAGE, 409);
        assert_eq!(multixact_members::MULTIXACT_MEMBERS_PER_PAGE, 1636);
        assert_eq!(subtrans::SUBTRANS_XACTS_PER_PAGE, 2048);
        assert_eq!(commit_ts::COMMIT_TS_XACTS_PER_PAGE, 819);
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(0), "0000");
        assert_eq!(segment_file_name(0x14078), "14078");
        assert_eq!(segment_path(SlruKind::Clog, 0x1A), "pg_xact/001A");
        assert_eq!(parse_segment_file_name("001A"), Ok(0x1A));
        assert_eq!(parse_segment_file_name("14078"), Ok(0x14078));
        for bad in ["1A", "001a", "0000000", "00G0", ""] {
            assert!(parse_segment_file_name(bad).is_err(), "{bad}");
        }
        assert_eq!(page_to_segment(33), (1, 1));
    }

    #[test]
    fn clog_bits() {
        use clog::*;
        let mut page = [0u8; BLCKSZ];
        let xid = 32768 * 3 + 4 * 10 + 2;
        assert_eq!(xid_to_page(xid), 3);
        assert_eq!(xid_to_byte(xid), 10);
        assert_eq!(xid_to_bit_shift(xid), 4);
        set_status(&mut page, xid, XidStatus::Aborted);
        set_status(&mut page, xid + 1, XidStatus::Committed);
        assert_eq!(page[10], 0b0110_0000);
        assert_eq!(get_status(&page, xid), XidStatus::Aborted);
        assert_eq!(get_status(&page, xid - 1), XidStatus::InProgress);
        set_status(&mut page, xid, XidStatus::Committed);
        assert_eq!(get_status(&page, xid), XidStatus::Committed);
        assert_eq!(get_status(&page, xid + 1), XidStatus::Committed);
    }

    #[test]
    fn members_layout() {
        use multixact_members::*;
        // Member 5 is the second member of group 1 (bytes 20..40).
        assert_eq!(offset_to_flags_offset(5), 20);
        assert_eq!(offset_to_flags_bit_shift(5), 8);
        assert_eq!(offset_to_member_offset(5), 20 + 4 + 4);
        assert_eq!(offset_to_page(1636), 1);
        assert_eq!(offset_to_flags_offset(1636), 0);
        let mut page = [0u8; BLCKSZ];
        set_member(&mut page, 5, 777, MultiXactStatus::Update as u8);
        assert_eq!(get_member(&page, 5), (777, 5));
        assert_eq!(page[21], 5);
        // Last member on a page stays inside it.
        assert!(offset_to_member_offset(1635) + 4 <= BLCKSZ);
        assert_eq!(MultiXactStatus::try_from(6), Err(6));
    }

    #[test]
    fn offsets_and_commit_ts() {
        let mut page = [0u8; BLCKSZ];
        multixact_offsets::set_offset(&mut page, 2049, 99);
        assert_eq!(multixact_offsets::multi_to_page(2049), 1);
        assert_eq!(multixact_offsets::get_offset(&page, 2049), 99);
        commit_ts::set_entry(&mut page, 818, -5, 7);
        assert_eq!(commit_ts::get_entry(&page, 818), (-5, 7));
        assert_eq!(commit_ts::xid_to_page(819), 1);
    }
}
