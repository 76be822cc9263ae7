//! PostgreSQL write-ahead log: formats, decoding and encoding.
//!
//! - [`segment`]: segment sizes, LSN ↔ segment arithmetic, WAL file names.
//! - [`page_header`]: `XLogPageHeaderData` (short, 24 bytes) and the long
//!   header (40 bytes) at the start of every segment.
//! - [`record`]: the 24-byte `XLogRecord` header, record CRC, and decoding a
//!   complete record into block references, full-page images and main data.
//! - [`crc`]: the record CRC-32C, with a fast path for short records.
//! - [`image`]: restoring a page from a full-page image (hole, pglz/lz4/zstd).
//! - [`decoder`]: [`WalStreamDecoder`], which turns a byte stream starting at
//!   any page boundary (or a known record start) into validated records.
//! - [`dir`]: [`dir::WalDirReader`], records from a directory of segment files.
//! - [`encoder`]: building records and laying them out in pages and segments
//!   (for synthetic WAL, e.g. a basebackup's checkpoint record, and tests).
//! - [`timeline`]: timeline history files.
//!
//! The record and page formats have been the same since PostgreSQL 15 except
//! for a few constants (page magic, block image flags); those come from
//! [`WalFormat`], which each version module provides. All parsing treats the
//! bytes as untrusted: errors carry the LSN where the problem is.

pub mod crc;
pub mod decoder;
pub mod dir;
pub mod encoder;
pub mod error;
pub mod image;
pub mod page_header;
pub mod record;
pub mod segment;
pub mod timeline;

pub use decoder::{decode_all, WalDecoderConfig, WalStreamDecoder};
pub use dir::{WalDirError, WalDirReader};
pub use error::{RecordFormatError, WalDecodeError};
pub use image::ImageError;
pub use page_header::XLogPageHeader;
pub use record::{BlockImage, BlockRef, ImageCompression, WalRecord, XLogRecordHeader};
pub use segment::{WalSegmentSize, XLogSegNo};

use crate::PgMajorVersion;

/// `xl_info` bits reserved for the WAL machinery (the rmgr gets the rest).
pub const XLR_INFO_MASK: u8 = 0x0F;
/// `xl_info` bits owned by the resource manager.
pub const XLR_RMGR_INFO_MASK: u8 = 0xF0;
/// The record changes relation files outside its block references.
pub const XLR_SPECIAL_REL_UPDATE: u8 = 0x01;
/// Every block reference carries a verification image (wal_consistency_checking).
pub const XLR_CHECK_CONSISTENCY: u8 = 0x02;

/// Size of the record header (`SizeOfXLogRecord`).
pub const SIZE_OF_XLOG_RECORD: usize = 24;
/// Highest block reference id.
pub const XLR_MAX_BLOCK_ID: u8 = 32;
/// Main data follows, 1-byte length.
pub const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
/// Main data follows, 4-byte length.
pub const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
/// Replication origin id (u16) follows.
pub const XLR_BLOCK_ID_ORIGIN: u8 = 253;
/// Top-level transaction id (u32) follows.
pub const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;

/// `fork_flags` of a block header: low nibble is the fork number.
pub const BKPBLOCK_FORK_MASK: u8 = 0x0F;
pub const BKPBLOCK_FLAG_MASK: u8 = 0xF0;
pub const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
pub const BKPBLOCK_HAS_DATA: u8 = 0x20;
/// Redo re-initialises the page; its old contents do not matter.
pub const BKPBLOCK_WILL_INIT: u8 = 0x40;
/// The RelFileNode is omitted: same as the previous block reference.
pub const BKPBLOCK_SAME_REL: u8 = 0x80;

/// `xlp_info`: the page starts with the continuation of a record.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `xlp_info`: this is a long header (first page of a segment).
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// `xlp_info`: backup blocks on this page are optional.
pub const XLP_BKP_REMOVABLE: u16 = 0x0004;
/// `xlp_info`: a missing continuation was replaced by a new record.
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
/// All defined `xlp_info` bits.
pub const XLP_ALL_FLAGS: u16 = 0x000F;

/// Largest record the decoder accepts. PostgreSQL cannot allocate more than
/// 1 GiB - 1 for a record, so anything longer is garbage, and refusing it
/// early avoids allocating a huge buffer because of a corrupt length.
pub const MAX_RECORD_LENGTH: u32 = 0x3FFF_FFFF;

/// `bimg_info` bit values of one major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BkpImageFlags {
    pub has_hole: u8,
    pub apply: u8,
    pub compress_pglz: u8,
    pub compress_lz4: u8,
    pub compress_zstd: u8,
}

impl BkpImageFlags {
    /// Any compression bit (`BKPIMAGE_COMPRESSED`).
    pub fn compressed_mask(&self) -> u8 {
        self.compress_pglz | self.compress_lz4 | self.compress_zstd
    }
}

/// The WAL constants that differ between major versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalFormat {
    pub version: PgMajorVersion,
    /// `XLOG_PAGE_MAGIC`.
    pub page_magic: u16,
    pub bkpimage: BkpImageFlags,
    /// Highest built-in rmgr id; ids above it and below 128 are invalid.
    pub rm_max_builtin_id: u8,
}
