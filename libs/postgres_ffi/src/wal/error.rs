//! Error types of WAL decoding.
//!
//! [`WalDecodeError`] is what the streaming decoder and record decoding
//! return: every variant names the LSN of the page or record at fault, so a
//! caller can log it, stop ingest at that point, or (for a zero-length record
//! after the last one) recognise the end of valid WAL. [`RecordFormatError`]
//! details why a complete record's body could not be parsed.

use crate::types::TimeLineId;
use crate::Lsn;

use super::image::ImageError;

/// Why a record's body (block headers, payload lengths) is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFormatError {
    #[error("record header ends early: need {needed} more bytes at record offset {offset}")]
    ShortHeader { offset: usize, needed: usize },
    #[error("record length {tot_len} does not match the {actual} bytes assembled")]
    LengthMismatch { tot_len: u32, actual: usize },
    #[error("out-of-order block_id {block_id} (previous {previous})")]
    BlockIdOutOfOrder { block_id: u8, previous: u8 },
    #[error("invalid block_id {0}")]
    InvalidBlockId(u8),
    #[error("block {block_id}: BKPBLOCK_HAS_DATA set, but no data included")]
    DataFlagWithoutData { block_id: u8 },
    #[error("block {block_id}: BKPBLOCK_HAS_DATA not set, but data length is {len}")]
    DataWithoutDataFlag { block_id: u8, len: u16 },
    #[error("block {block_id}: BKPIMAGE_HAS_HOLE set, but hole offset {hole_offset} length {hole_length} image length {bimg_len}")]
    BadHole {
        block_id: u8,
        hole_offset: u16,
        hole_length: u16,
        bimg_len: u16,
    },
    #[error("block {block_id}: BKPIMAGE_HAS_HOLE not set, but hole offset {hole_offset} length {hole_length}")]
    UnexpectedHole {
        block_id: u8,
        hole_offset: u16,
        hole_length: u16,
    },
    #[error("block {block_id}: compressed image with length {bimg_len}")]
    BadCompressedLength { block_id: u8, bimg_len: u16 },
    #[error("block {block_id}: uncompressed image without hole has length {bimg_len}")]
    BadImageLength { block_id: u8, bimg_len: u16 },
    #[error("block {block_id}: hole at {hole_offset}+{hole_length} extends beyond the page")]
    HoleOutOfPage {
        block_id: u8,
        hole_offset: u16,
        hole_length: u16,
    },
    #[error("block {block_id}: BKPBLOCK_SAME_REL set but no previous rel")]
    SameRelWithoutPrevious { block_id: u8 },
    #[error("headers announce {announced} payload bytes but {remaining} remain")]
    PayloadMismatch { announced: u64, remaining: usize },
}

/// A WAL decoding failure, located by LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalDecodeError {
    #[error("invalid start position {lsn}: {reason}")]
    BadStartLsn { lsn: Lsn, reason: &'static str },
    #[error("invalid magic number {magic:04X} in WAL page at {lsn}")]
    BadPageMagic { lsn: Lsn, magic: u16 },
    #[error("invalid info bits {info:04X} in WAL page at {lsn}")]
    BadPageInfo { lsn: Lsn, info: u16 },
    #[error("WAL page at {lsn} starts a segment but has no long header")]
    MissingLongHeader { lsn: Lsn },
    #[error("unexpected pageaddr {pageaddr} in WAL page at {lsn}")]
    BadPageAddr { lsn: Lsn, pageaddr: Lsn },
    #[error("out-of-sequence timeline ID {tli} (after {prev_tli}) in WAL page at {lsn}")]
    TimelineWentBackwards {
        lsn: Lsn,
        tli: TimeLineId,
        prev_tli: TimeLineId,
    },
    #[error("WAL page at {lsn} is from a different database system: system identifier {found}, expected {expected}")]
    SystemIdMismatch { lsn: Lsn, found: u64, expected: u64 },
    #[error("WAL page at {lsn} has segment size {found} in its header, expected {expected}")]
    SegmentSizeMismatch { lsn: Lsn, found: u32, expected: u32 },
    #[error("WAL page at {lsn} has XLOG_BLCKSZ {found} in its header, expected 8192")]
    BlockSizeMismatch { lsn: Lsn, found: u32 },
    #[error(
        "there is no contrecord flag in WAL page at {lsn} (continuing record at {record_lsn})"
    )]
    MissingContrecord { lsn: Lsn, record_lsn: Lsn },
    #[error("invalid contrecord length {rem_len} (expected {expected}) in WAL page at {lsn} (record at {record_lsn})")]
    BadContrecordLength {
        lsn: Lsn,
        record_lsn: Lsn,
        rem_len: u32,
        expected: u32,
    },
    #[error("contrecord flag set in WAL page at {lsn} where a new record should start")]
    UnexpectedContrecord { lsn: Lsn },
    #[error("invalid record length at {lsn}: wanted at least 24, got {len}")]
    RecordTooShort { lsn: Lsn, len: u32 },
    #[error("record length {len} at {lsn} is too long")]
    RecordTooLong { lsn: Lsn, len: u32 },
    #[error("invalid resource manager ID {rmid} at {lsn}")]
    BadRmgrId { lsn: Lsn, rmid: u8 },
    #[error("record with incorrect prev-link {prev} at {lsn}{}", expected.map(|e| format!(" (expected {e})")).unwrap_or_default())]
    BadPrevLink {
        lsn: Lsn,
        prev: Lsn,
        expected: Option<Lsn>,
    },
    #[error("incorrect resource manager data checksum in record at {lsn}: stored {stored:#010x}, computed {computed:#010x}")]
    BadRecordCrc {
        lsn: Lsn,
        stored: u32,
        computed: u32,
    },
    #[error("malformed record at {lsn}: {source}")]
    Malformed {
        lsn: Lsn,
        #[source]
        source: RecordFormatError,
    },
    #[error("could not restore image of block {block_id} of record at {lsn}: {source}")]
    Image {
        lsn: Lsn,
        block_id: u8,
        #[source]
        source: ImageError,
    },
    #[error("WAL ends inside the record at {lsn}: have {have} of its {need} bytes (input ends at {end})")]
    Truncated {
        lsn: Lsn,
        have: u64,
        need: u64,
        end: Lsn,
    },
}

impl WalDecodeError {
    /// The LSN the error is about.
    pub fn lsn(&self) -> Lsn {
        use WalDecodeError::*;
        match self {
            BadStartLsn { lsn, .. }
            | BadPageMagic { lsn, .. }
            | BadPageInfo { lsn, .. }
            | MissingLongHeader { lsn }
            | BadPageAddr { lsn, .. }
            | TimelineWentBackwards { lsn, .. }
            | SystemIdMismatch { lsn, .. }
            | SegmentSizeMismatch { lsn, .. }
            | BlockSizeMismatch { lsn, .. }
            | MissingContrecord { lsn, .. }
            | BadContrecordLength { lsn, .. }
            | UnexpectedContrecord { lsn }
            | RecordTooShort { lsn, .. }
            | RecordTooLong { lsn, .. }
            | BadRmgrId { lsn, .. }
            | BadPrevLink { lsn, .. }
            | BadRecordCrc { lsn, .. }
            | Malformed { lsn, .. }
            | Image { lsn, .. }
            | Truncated { lsn, .. } => *lsn,
        }
    }

    /// True for the usual end of valid WAL in a pre-allocated or recycled
    /// segment: a zero length where the next record should begin, or a page
    /// that is zeroed or left over from an earlier use of the file.
    pub fn is_end_of_wal(&self) -> bool {
        matches!(
            self,
            WalDecodeError::RecordTooShort { len: 0, .. }
                | WalDecodeError::BadPageMagic { magic: 0, .. }
                | WalDecodeError::BadPageAddr { .. }
        )
    }
}
