//! WAL records: the `XLogRecord` header, the record CRC, and decoding a
//! complete record (as reassembled from pages) into its parts.
//!
//! Record layout (`xlogrecord.h`): a 24-byte header (tot_len u32, xid u32,
//! prev u64, info u8, rmid u8, 2 pad, crc u32), then fragment headers in
//! order — block references (id 0..=32, strictly increasing), optionally an
//! origin (253, u16) and a top-level xid (252, u32), and last a main-data
//! header (255 + u8 length, or 254 + u32 length) — then the payloads in the
//! same order: per block its image bytes then its data, then the main data.
//!
//! Block reference header: id u8, fork_flags u8, data_length u16; if
//! HAS_IMAGE: bimg_len u16, hole_offset u16, bimg_info u8 and, for compressed
//! images with a hole, hole_length u16; then a 12-byte RelFileNode unless
//! SAME_REL; then the block number u32.
//!
//! [`decode_record`] mirrors `DecodeXLogRecord`, including its consistency
//! checks, and adds the ones PostgreSQL leaves to memory safety (a hole that
//! would run past the page). Payloads (block data, images, main data) are
//! ranges of the record's bytes, which the record owns in a buffer a reader
//! reuses from record to record. Used by the streaming decoder; ingest and
//! redo consume [`WalRecord`].

use crate::bytes_le::{put, u32_at, u64_at, Cursor, Short};
use crate::relfile::{ForkNumber, RelFileNode};
use crate::types::{BlockNumber, RepOriginId, TransactionId};
use crate::{Lsn, PgMajorVersion, BLCKSZ};

use super::error::{RecordFormatError, WalDecodeError};
use super::image::{restore_image, ImageError};
use super::*;

/// Offset of `xl_crc` in the header: the CRC covers the payload, then the
/// header bytes before this offset.
pub const XLOG_RECORD_CRC_OFFSET: usize = 20;

/// The fixed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XLogRecordHeader {
    /// Total length of the record including this header.
    pub tot_len: u32,
    /// Transaction id, or 0.
    pub xid: TransactionId,
    /// Start of the previous record.
    pub prev: Lsn,
    pub info: u8,
    pub rmid: u8,
    pub crc: u32,
}

impl XLogRecordHeader {
    /// Decodes the header from the first 24 bytes; `None` if shorter.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        Some(XLogRecordHeader {
            tot_len: u32_at(buf, 0).ok()?,
            xid: u32_at(buf, 4).ok()?,
            prev: Lsn(u64_at(buf, 8).ok()?),
            info: *buf.get(16)?,
            rmid: *buf.get(17)?,
            crc: u32_at(buf, 20).ok()?,
        })
    }

    pub fn encode(&self) -> [u8; SIZE_OF_XLOG_RECORD] {
        let mut b = [0u8; SIZE_OF_XLOG_RECORD];
        put(&mut b, 0, &self.tot_len.to_le_bytes());
        put(&mut b, 4, &self.xid.to_le_bytes());
        put(&mut b, 8, &self.prev.0.to_le_bytes());
        b[16] = self.info;
        b[17] = self.rmid;
        put(&mut b, 20, &self.crc.to_le_bytes());
        b
    }

    /// The rmgr-owned part of `info`.
    pub fn rmgr_info(&self) -> u8 {
        self.info & XLR_RMGR_INFO_MASK
    }
}

/// CRC-32C of a complete record as PostgreSQL computes it: the bytes after
/// the header first, then the header up to (not including) `xl_crc`.
/// Returns `None` if `record` is shorter than a header.
pub fn compute_record_crc(record: &[u8]) -> Option<u32> {
    let head = record.get(..XLOG_RECORD_CRC_OFFSET)?;
    let body = record.get(SIZE_OF_XLOG_RECORD..)?;
    Some(super::crc::crc32c_append(
        super::crc::crc32c_append(0, body),
        head,
    ))
}

/// How a block image is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageCompression {
    None,
    Pglz,
    Lz4,
    Zstd,
}

impl ImageCompression {
    /// The method name `pg_waldump` prints.
    pub fn name(self) -> &'static str {
        match self {
            ImageCompression::None => "none",
            ImageCompression::Pglz => "pglz",
            ImageCompression::Lz4 => "lz4",
            ImageCompression::Zstd => "zstd",
        }
    }
}

/// A full-page image attached to a block reference. Its stored bytes are
/// in the record ([`WalRecord::image_data`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockImage {
    /// Where the stored bytes (`bimg_len` of them, compressed or not) are.
    data: Span,
    pub hole_offset: u16,
    /// Length of the zero hole left out of the image (derived for
    /// uncompressed images, stored for compressed ones with a hole).
    pub hole_length: u16,
    /// Raw `bimg_info`.
    pub bimg_info: u8,
    /// BKPIMAGE_APPLY: redo restores it. Without it the image only exists
    /// for `wal_consistency_checking` and redo applies the delta instead.
    pub apply: bool,
    pub compression: ImageCompression,
}

impl BlockImage {
    /// An image whose stored bytes are `data.len()` bytes at `offset` of
    /// its record (for building records by hand).
    pub fn new(
        offset: usize,
        len: usize,
        hole_offset: u16,
        hole_length: u16,
        bimg_info: u8,
        apply: bool,
        compression: ImageCompression,
    ) -> BlockImage {
        BlockImage {
            data: Span {
                start: offset as u32,
                len: len as u32,
            },
            hole_offset,
            hole_length,
            bimg_info,
            apply,
            compression,
        }
    }

    /// Length of the stored (possibly compressed) bytes.
    pub fn stored_len(&self) -> usize {
        self.data.len as usize
    }
}

/// One block reference of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    pub block_id: u8,
    pub rnode: RelFileNode,
    /// Fork number as stored (low nibble of fork_flags); see [`Self::fork`].
    pub forknum: u8,
    pub blkno: BlockNumber,
    /// Raw fork_flags byte.
    pub flags: u8,
    pub image: Option<BlockImage>,
    /// Where the block's rmgr-specific data is in the record
    /// ([`WalRecord::block_data`]; empty when it has none).
    data: Span,
}

impl BlockRef {
    /// The fork, if the stored number is a valid fork.
    pub fn fork(&self) -> Option<ForkNumber> {
        ForkNumber::try_from(self.forknum).ok()
    }

    pub fn will_init(&self) -> bool {
        self.flags & BKPBLOCK_WILL_INIT != 0
    }

    pub fn has_data(&self) -> bool {
        self.flags & BKPBLOCK_HAS_DATA != 0
    }

    /// Has an image that redo must restore (rather than a verification one).
    pub fn apply_image(&self) -> bool {
        self.image.as_ref().is_some_and(|i| i.apply)
    }
}

/// A complete, CRC-checked, decoded WAL record. (The default value is an
/// empty slot for [`decode_record_into`] and the decoders' `_into` calls.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WalRecord {
    /// Where the record starts (`ReadRecPtr`).
    pub lsn: Lsn,
    /// Where the next record may start (`EndRecPtr`): the MAXALIGNed end of
    /// this record, or for XLOG SWITCH the start of the next segment. This is
    /// the LSN redo stamps on the pages the record changes.
    pub end_lsn: Lsn,
    pub header: XLogRecordHeader,
    /// Block references in increasing block id order.
    pub blocks: Vec<BlockRef>,
    pub origin: Option<RepOriginId>,
    pub toplevel_xid: Option<TransactionId>,
    /// Where the main data is in `raw` ([`Self::main_data`]).
    main_data: Span,
    /// The whole record, header included.
    pub raw: Vec<u8>,
}

/// A byte range of a record's `raw` bytes. Payloads are kept as ranges
/// rather than shared slices, so a record owns one plain buffer and costs
/// no reference counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The bytes of `raw` this span covers (empty if it does not fit, which
    /// only a span of another record could do).
    fn of(self, raw: &[u8]) -> &[u8] {
        let start = self.start as usize;
        raw.get(start..start + self.len as usize)
            .unwrap_or_default()
    }
}

impl WalRecord {
    /// The record's main data (empty when it has none).
    pub fn main_data(&self) -> &[u8] {
        self.main_data.of(&self.raw)
    }

    /// The rmgr-specific data of `blk`, one of this record's block
    /// references (empty when it has none).
    pub fn block_data(&self, blk: &BlockRef) -> &[u8] {
        blk.data.of(&self.raw)
    }

    /// The stored bytes of `img`, an image of this record's blocks.
    pub fn image_data(&self, img: &BlockImage) -> &[u8] {
        img.data.of(&self.raw)
    }

    /// The 8 KiB page `img` (an image of this record's blocks) encodes,
    /// hole zero-filled.
    pub fn restore_block_image(&self, img: &BlockImage) -> Result<Box<[u8; BLCKSZ]>, ImageError> {
        restore_image(img, self.image_data(img))
    }

    /// Appends the page `img` encodes to `out`; `out` is unchanged on error.
    pub fn restore_block_image_into(
        &self,
        img: &BlockImage,
        out: &mut Vec<u8>,
    ) -> Result<(), ImageError> {
        super::image::restore_image_into(img, self.image_data(img), out)
    }

    pub fn rmid(&self) -> u8 {
        self.header.rmid
    }

    pub fn info(&self) -> u8 {
        self.header.info
    }

    pub fn xid(&self) -> TransactionId {
        self.header.xid
    }

    pub fn tot_len(&self) -> u32 {
        self.header.tot_len
    }

    /// The block reference with this id.
    pub fn block(&self, block_id: u8) -> Option<&BlockRef> {
        self.blocks.iter().find(|b| b.block_id == block_id)
    }

    /// Sum of stored image lengths (`pg_waldump`'s "fpi" length); the record
    /// length `pg_waldump` prints as "rec" is `tot_len - fpi_len`.
    pub fn fpi_len(&self) -> u32 {
        self.blocks
            .iter()
            .filter_map(|b| b.image.as_ref())
            .map(|i| i.data.len)
            .sum()
    }

    pub fn is_xlog_switch(&self) -> bool {
        is_xlog_switch(&self.header)
    }

    /// `Rmgr/TYPE`, as `pg_waldump --stats=record` names it.
    pub fn name(&self, version: PgMajorVersion) -> String {
        crate::rmgr::record_name(version, self.header.rmid, self.header.info)
    }

    /// Restores the image of block `block_id`; errors name this record.
    pub fn restore_image(&self, block_id: u8) -> Result<Box<[u8; BLCKSZ]>, WalDecodeError> {
        let err = |source| WalDecodeError::Image {
            lsn: self.lsn,
            block_id,
            source,
        };
        let image = self
            .block(block_id)
            .ok_or(err(ImageError::NoSuchBlock))?
            .image
            .as_ref()
            .ok_or(err(ImageError::NoImage))?;
        self.restore_block_image(image).map_err(err)
    }
}

/// XLOG SWITCH: the rest of the segment is unused.
pub(crate) fn is_xlog_switch(h: &XLogRecordHeader) -> bool {
    h.rmid == crate::rmgr::RM_XLOG_ID && h.info & !XLR_INFO_MASK == crate::v15::info::xlog::SWITCH
}

fn short_header(s: Short) -> RecordFormatError {
    RecordFormatError::ShortHeader {
        offset: s.offset + SIZE_OF_XLOG_RECORD,
        needed: s.needed,
    }
}

/// Decodes a complete record whose bytes are `raw` (header included) and
/// which starts at `lsn`. Checks the CRC first: nothing in an unverified
/// record is trusted beyond its length.
pub fn decode_record(
    raw: impl AsRef<[u8]>,
    lsn: Lsn,
    end_lsn: Lsn,
    format: &WalFormat,
) -> Result<WalRecord, WalDecodeError> {
    let mut rec = WalRecord::default();
    decode_record_into(raw.as_ref(), lsn, end_lsn, format, &mut rec)?;
    Ok(rec)
}

/// [`decode_record`] into `out`, whose buffers are reused: a reader
/// decoding record after record into one slot allocates nothing per
/// record. After an error `out` holds no meaningful record.
pub fn decode_record_into(
    raw: &[u8],
    lsn: Lsn,
    end_lsn: Lsn,
    format: &WalFormat,
    out: &mut WalRecord,
) -> Result<(), WalDecodeError> {
    out.raw.clear();
    out.raw.extend_from_slice(raw);
    decode_in_place(lsn, end_lsn, format, out)
}

/// Decodes the record whose bytes are already in `out.raw`.
pub(crate) fn decode_in_place(
    lsn: Lsn,
    end_lsn: Lsn,
    format: &WalFormat,
    out: &mut WalRecord,
) -> Result<(), WalDecodeError> {
    let raw = &out.raw;
    let malformed = |source| WalDecodeError::Malformed { lsn, source };
    let header = XLogRecordHeader::decode(raw).ok_or(WalDecodeError::RecordTooShort {
        lsn,
        len: raw.len() as u32,
    })?;
    if header.tot_len as usize != raw.len() {
        return Err(malformed(RecordFormatError::LengthMismatch {
            tot_len: header.tot_len,
            actual: raw.len(),
        }));
    }
    let computed = compute_record_crc(raw).unwrap_or(0);
    if computed != header.crc {
        return Err(WalDecodeError::BadRecordCrc {
            lsn,
            stored: header.crc,
            computed,
        });
    }
    decode_body(header, lsn, end_lsn, format, out).map_err(malformed)
}

fn decode_body(
    header: XLogRecordHeader,
    lsn: Lsn,
    end_lsn: Lsn,
    format: &WalFormat,
    out: &mut WalRecord,
) -> Result<(), RecordFormatError> {
    let flags = &format.bkpimage;
    let raw = &out.raw;
    // Block references go straight into the slot's list, their payload
    // spans holding only lengths until the second pass below places them.
    let blocks = &mut out.blocks;
    blocks.clear();
    let mut cur = Cursor::new(raw.get(SIZE_OF_XLOG_RECORD..).unwrap_or_default());
    // Payload bytes announced by the headers so far; u64 so that a garbage
    // record cannot overflow it.
    let mut datatotal: u64 = 0;
    let mut main_data_len: u64 = 0;
    let mut origin = None;
    let mut toplevel_xid = None;
    let mut prev_rnode: Option<RelFileNode> = None;

    while cur.remaining() as u64 > datatotal {
        let block_id = cur.u8().map_err(short_header)?;
        match block_id {
            XLR_BLOCK_ID_DATA_SHORT => {
                main_data_len = cur.u8().map_err(short_header)? as u64;
                datatotal += main_data_len;
                break; // main data header is always last
            }
            XLR_BLOCK_ID_DATA_LONG => {
                main_data_len = cur.u32().map_err(short_header)? as u64;
                datatotal += main_data_len;
                break;
            }
            XLR_BLOCK_ID_ORIGIN => origin = Some(cur.u16().map_err(short_header)?),
            XLR_BLOCK_ID_TOPLEVEL_XID => toplevel_xid = Some(cur.u32().map_err(short_header)?),
            id if id <= XLR_MAX_BLOCK_ID => {
                if let Some(prev) = blocks.last() {
                    if id <= prev.block_id {
                        return Err(RecordFormatError::BlockIdOutOfOrder {
                            block_id: id,
                            previous: prev.block_id,
                        });
                    }
                }
                let fork_flags = cur.u8().map_err(short_header)?;
                let data_len = cur.u16().map_err(short_header)?;
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data && data_len == 0 {
                    return Err(RecordFormatError::DataFlagWithoutData { block_id: id });
                }
                if !has_data && data_len != 0 {
                    return Err(RecordFormatError::DataWithoutDataFlag {
                        block_id: id,
                        len: data_len,
                    });
                }
                datatotal += data_len as u64;
                let image = if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
                    let bimg_len = cur.u16().map_err(short_header)?;
                    let hole_offset = cur.u16().map_err(short_header)?;
                    let bimg_info = cur.u8().map_err(short_header)?;
                    let compressed = bimg_info & flags.compressed_mask() != 0;
                    let has_hole = bimg_info & flags.has_hole != 0;
                    let hole_length = if compressed {
                        if has_hole {
                            cur.u16().map_err(short_header)?
                        } else {
                            0
                        }
                    } else {
                        // Wraps for a bogus bimg_len > BLCKSZ; the checks
                        // below reject that case.
                        (BLCKSZ as u16).wrapping_sub(bimg_len)
                    };
                    datatotal += bimg_len as u64;
                    check_image_header(
                        id,
                        bimg_len,
                        hole_offset,
                        hole_length,
                        has_hole,
                        compressed,
                    )?;
                    let compression = if bimg_info & flags.compress_pglz != 0 {
                        ImageCompression::Pglz
                    } else if bimg_info & flags.compress_lz4 != 0 {
                        ImageCompression::Lz4
                    } else if bimg_info & flags.compress_zstd != 0 {
                        ImageCompression::Zstd
                    } else {
                        ImageCompression::None
                    };
                    Some(BlockImage {
                        data: Span {
                            start: 0,
                            len: bimg_len as u32,
                        },
                        hole_offset,
                        hole_length,
                        bimg_info,
                        apply: bimg_info & flags.apply != 0,
                        compression,
                    })
                } else {
                    None
                };
                let rnode = if fork_flags & BKPBLOCK_SAME_REL != 0 {
                    prev_rnode.ok_or(RecordFormatError::SameRelWithoutPrevious { block_id: id })?
                } else {
                    let r = RelFileNode {
                        spcnode: cur.u32().map_err(short_header)?,
                        dbnode: cur.u32().map_err(short_header)?,
                        relnode: cur.u32().map_err(short_header)?,
                    };
                    prev_rnode = Some(r);
                    r
                };
                let blkno = cur.u32().map_err(short_header)?;
                blocks.push(BlockRef {
                    block_id: id,
                    rnode,
                    forknum: fork_flags & BKPBLOCK_FORK_MASK,
                    blkno,
                    flags: fork_flags,
                    image,
                    data: Span {
                        start: 0,
                        len: data_len as u32,
                    },
                });
            }
            other => return Err(RecordFormatError::InvalidBlockId(other)),
        }
    }

    if cur.remaining() as u64 != datatotal {
        return Err(RecordFormatError::PayloadMismatch {
            announced: datatotal,
            remaining: cur.remaining(),
        });
    }

    // Payloads, in header order: per block its image then its data, then
    // the main data. The totals matched, so every span is in range, and
    // tot_len is a u32, so every position fits one.
    let mut pos = (SIZE_OF_XLOG_RECORD + cur.pos()) as u32;
    for b in blocks.iter_mut() {
        if let Some(img) = &mut b.image {
            img.data.start = pos;
            pos += img.data.len;
        }
        b.data.start = pos;
        pos += b.data.len;
    }
    out.main_data = Span {
        start: pos,
        len: main_data_len as u32,
    };
    out.lsn = lsn;
    out.end_lsn = end_lsn;
    out.header = header;
    out.origin = origin;
    out.toplevel_xid = toplevel_xid;
    Ok(())
}

fn check_image_header(
    block_id: u8,
    bimg_len: u16,
    hole_offset: u16,
    hole_length: u16,
    has_hole: bool,
    compressed: bool,
) -> Result<(), RecordFormatError> {
    if has_hole && (hole_offset == 0 || hole_length == 0 || bimg_len as usize == BLCKSZ) {
        return Err(RecordFormatError::BadHole {
            block_id,
            hole_offset,
            hole_length,
            bimg_len,
        });
    }
    if !has_hole && (hole_offset != 0 || hole_length != 0) {
        return Err(RecordFormatError::UnexpectedHole {
            block_id,
            hole_offset,
            hole_length,
        });
    }
    if compressed && bimg_len as usize == BLCKSZ {
        return Err(RecordFormatError::BadCompressedLength { block_id, bimg_len });
    }
    if !has_hole && !compressed && bimg_len as usize != BLCKSZ {
        return Err(RecordFormatError::BadImageLength { block_id, bimg_len });
    }
    // Not checked by PostgreSQL, whose restore would read out of bounds.
    if hole_offset as usize + hole_length as usize > BLCKSZ
        || (!compressed && bimg_len as usize > BLCKSZ)
    {
        return Err(RecordFormatError::HoleOutOfPage {
            block_id,
            hole_offset,
            hole_length,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v15::WAL_FORMAT;
    use crate::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
    use bytes::Bytes;

    fn rel(n: u32) -> RelFileNode {
        RelFileNode {
            spcnode: 1663,
            dbnode: 5,
            relnode: n,
        }
    }

    #[test]
    fn header_round_trip() {
        let h = XLogRecordHeader {
            tot_len: 100,
            xid: 7,
            prev: Lsn(0x0100_0028),
            info: 0x80,
            rmid: 10,
            crc: 0xDEAD_BEEF,
        };
        assert_eq!(XLogRecordHeader::decode(&h.encode()), Some(h));
        assert_eq!(XLogRecordHeader::decode(&[0u8; 23]), None);
        assert_eq!(h.rmgr_info(), 0x80);
    }

    #[test]
    fn decode_blocks_and_main_data() {
        let mut page = [0u8; BLCKSZ];
        crate::page::page_init(&mut page, 0).unwrap();
        let mut hdr = crate::page::PageHeaderData::read(&page).unwrap();
        hdr.pd_upper = 8000;
        hdr.write(&mut page).unwrap();
        page[8000] = 7;
        let rec = RecordBuilder::new(10, 0x00)
            .xid(900)
            .block(
                BlockSpec::new(0, rel(16384), 0, 3)
                    .with_data(Bytes::from_static(b"tuple-data"))
                    .with_image(ImageSpec::from_page(
                        &page,
                        true,
                        true,
                        ImageCompression::None,
                    )),
            )
            .block(BlockSpec::new(2, rel(16384), 2, 0).will_init())
            .block(BlockSpec::new(3, rel(16385), 1, 9))
            .origin(5)
            .main_data(Bytes::from(vec![1u8; 300]))
            .encode(Lsn(0x0100_0028));
        let r =
            decode_record(rec.clone(), Lsn(0x0100_0060), Lsn(0x0100_0200), &WAL_FORMAT).unwrap();
        assert_eq!(r.xid(), 900);
        assert_eq!(r.header.prev, Lsn(0x0100_0028));
        assert_eq!(r.blocks.len(), 3);
        let b0 = &r.blocks[0];
        assert_eq!(
            (b0.block_id, b0.rnode, b0.forknum, b0.blkno),
            (0, rel(16384), 0, 3)
        );
        assert_eq!(r.block_data(b0), b"tuple-data");
        let img = b0.image.as_ref().unwrap();
        assert!(img.apply);
        assert_eq!(img.hole_offset, 24);
        assert_eq!(img.hole_length, 8000 - 24);
        assert_eq!(&r.restore_image(0).unwrap()[..], &page[..]);
        // Second block used SAME_REL.
        assert_eq!(r.blocks[1].rnode, rel(16384));
        assert!(r.blocks[1].will_init());
        assert_eq!(r.blocks[1].fork(), Some(ForkNumber::VisibilityMap));
        assert_eq!(r.blocks[2].rnode, rel(16385));
        assert_eq!(r.origin, Some(5));
        assert_eq!(r.main_data().len(), 300);
        assert_eq!(r.fpi_len(), 24 + (BLCKSZ as u32 - 8000));
        assert_eq!(r.name(PgMajorVersion::V15), "Heap/INSERT");
        assert!(matches!(
            r.restore_image(2),
            Err(WalDecodeError::Image {
                source: ImageError::NoImage,
                ..
            })
        ));

        // Any flipped bit fails the CRC.
        let mut bad = rec.to_vec();
        bad[40] ^= 0x10;
        assert!(matches!(
            decode_record(Bytes::from(bad), Lsn(0), Lsn(0), &WAL_FORMAT),
            Err(WalDecodeError::BadRecordCrc { .. })
        ));
    }

    /// Builds a record with an arbitrary body and a correct CRC.
    fn with_body(body: &[u8]) -> Bytes {
        let mut h = XLogRecordHeader {
            tot_len: (SIZE_OF_XLOG_RECORD + body.len()) as u32,
            rmid: 0,
            ..Default::default()
        };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(body);
        h.crc = compute_record_crc(&v).unwrap();
        v[..SIZE_OF_XLOG_RECORD].copy_from_slice(&h.encode());
        Bytes::from(v)
    }

    fn malformed(body: &[u8]) -> RecordFormatError {
        match decode_record(with_body(body), Lsn(8), Lsn(16), &WAL_FORMAT) {
            Err(WalDecodeError::Malformed { lsn, source }) => {
                assert_eq!(lsn, Lsn(8));
                source
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn format_errors() {
        let rnode = [0x7Fu8, 6, 0, 0, 5, 0, 0, 0, 0, 0x40, 0, 0];
        let blk = |id: u8, flags: u8, len: u16| {
            let mut v = vec![id, flags];
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&rnode);
            v.extend_from_slice(&1u32.to_le_bytes());
            v
        };
        assert!(matches!(
            malformed(&[0xFB]),
            RecordFormatError::InvalidBlockId(0xFB)
        ));
        assert!(matches!(
            malformed(&blk(0, BKPBLOCK_HAS_DATA, 0)),
            RecordFormatError::DataFlagWithoutData { block_id: 0 }
        ));
        let mut two = blk(1, 0, 0);
        two.extend(blk(1, 0, 0));
        assert!(matches!(
            malformed(&two),
            RecordFormatError::BlockIdOutOfOrder { block_id: 1, .. }
        ));
        assert!(matches!(
            malformed(&[0, BKPBLOCK_SAME_REL, 0, 0, 1, 0, 0, 0]),
            RecordFormatError::SameRelWithoutPrevious { block_id: 0 }
        ));
        // Block header cut short.
        assert!(matches!(
            malformed(&blk(0, 0, 0)[..10]),
            RecordFormatError::ShortHeader { .. }
        ));
        // Main data announced but missing.
        assert!(matches!(
            malformed(&[XLR_BLOCK_ID_DATA_SHORT, 10, 1, 2]),
            RecordFormatError::PayloadMismatch {
                announced: 10,
                remaining: 2
            }
        ));
        // Image: no hole, uncompressed, but shorter than a page. The implied
        // hole length (8192 - 100) trips the no-hole check first, as in
        // PostgreSQL.
        let mut img = vec![0, BKPBLOCK_HAS_IMAGE, 0, 0];
        img.extend_from_slice(&100u16.to_le_bytes());
        img.extend_from_slice(&0u16.to_le_bytes());
        img.push(0);
        img.extend_from_slice(&rnode);
        img.extend_from_slice(&0u32.to_le_bytes());
        img.extend_from_slice(&[0u8; 100]);
        assert!(matches!(
            malformed(&img),
            RecordFormatError::UnexpectedHole {
                hole_length: 8092,
                ..
            }
        ));
        // Image: hole flag with hole beyond the page (uncompressed:
        // hole_length = 8192 - 100, offset 8000).
        img[6..8].copy_from_slice(&8000u16.to_le_bytes());
        img[8] = WAL_FORMAT.bkpimage.has_hole;
        assert!(matches!(
            malformed(&img),
            RecordFormatError::HoleOutOfPage { .. }
        ));
    }
}
