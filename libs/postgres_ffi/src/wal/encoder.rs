//! Building WAL: records ([`RecordBuilder`]) and their layout in pages and
//! segments ([`WalWriter`]).
//!
//! The page server writes WAL only in special cases (e.g. a basebackup needs
//! a segment holding the checkpoint record pg_control points at), and tests
//! need WAL with exact shapes (records spanning pages and segments, switch
//! records, corrupt bytes). Both follow what `XLogRecordAssemble` and
//! `CopyXLogRecordToWAL` produce: same fragment order, SAME_REL for a block
//! on the same relation as the previous one, main-data header omitted when
//! there is no main data, images with the hole of a standard page left out,
//! pages with continuation headers, records MAXALIGNed.

use bytes::{BufMut, Bytes, BytesMut};

use crate::page::{PageHeaderData, SIZE_OF_PAGE_HEADER_DATA};
use crate::relfile::RelFileNode;
use crate::types::{BlockNumber, RepOriginId, TimeLineId, TransactionId};
use crate::{maxalign, pglz, Lsn, BLCKSZ, XLOG_BLCKSZ};

use super::page_header::{LongHeaderFields, XLogPageHeader};
use super::record::{compute_record_crc, is_xlog_switch, ImageCompression, XLogRecordHeader};
use super::segment::WalSegmentSize;
use super::*;

/// A block image ready to be put in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Stored bytes (compressed if `compression` says so).
    pub data: Bytes,
    pub hole_offset: u16,
    pub hole_length: u16,
    pub apply: bool,
    pub compression: ImageCompression,
}

impl ImageSpec {
    /// Makes an image of `page`. For a `standard` page with sane
    /// pd_lower/pd_upper the free space between them is left out as the hole.
    /// With a compression method, the image is compressed unless that would
    /// not make it smaller (PostgreSQL's rule), in which case it is stored
    /// plain.
    pub fn from_page(
        page: &[u8; BLCKSZ],
        standard: bool,
        apply: bool,
        compression: ImageCompression,
    ) -> ImageSpec {
        let (hole_offset, hole_length) = if standard {
            let hdr = PageHeaderData::read(page).unwrap_or_default();
            let (lower, upper) = (hdr.pd_lower as usize, hdr.pd_upper as usize);
            if lower >= SIZE_OF_PAGE_HEADER_DATA && upper > lower && upper <= BLCKSZ {
                (lower, upper - lower)
            } else {
                (0, 0)
            }
        } else {
            (0, 0)
        };
        let mut content = Vec::with_capacity(BLCKSZ - hole_length);
        content.extend_from_slice(&page[..hole_offset]);
        content.extend_from_slice(&page[hole_offset + hole_length..]);
        let compressed = match compression {
            ImageCompression::None => None,
            ImageCompression::Pglz => Some(pglz::compress(&content)),
            ImageCompression::Lz4 => Some(lz4_flex::block::compress(&content)),
            // Level 3 is zstd's default, which PostgreSQL uses; any level
            // decodes the same.
            ImageCompression::Zstd => zstd::bulk::compress(&content, 3).ok(),
        };
        // PostgreSQL keeps a compressed image only if it saves space even
        // after the extra hole-length field.
        let extra = if hole_length > 0 { 2 } else { 0 };
        match compressed {
            Some(c) if c.len() + extra < content.len() => ImageSpec {
                data: Bytes::from(c),
                hole_offset: hole_offset as u16,
                hole_length: hole_length as u16,
                apply,
                compression,
            },
            _ => ImageSpec {
                data: Bytes::from(content),
                hole_offset: hole_offset as u16,
                hole_length: hole_length as u16,
                apply,
                compression: ImageCompression::None,
            },
        }
    }
}

/// One block reference to put in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    pub block_id: u8,
    pub rnode: RelFileNode,
    pub forknum: u8,
    pub blkno: BlockNumber,
    pub will_init: bool,
    pub data: Bytes,
    pub image: Option<ImageSpec>,
}

impl BlockSpec {
    pub fn new(block_id: u8, rnode: RelFileNode, forknum: u8, blkno: BlockNumber) -> Self {
        BlockSpec {
            block_id,
            rnode,
            forknum,
            blkno,
            will_init: false,
            data: Bytes::new(),
            image: None,
        }
    }

    pub fn will_init(mut self) -> Self {
        self.will_init = true;
        self
    }

    pub fn with_data(mut self, data: Bytes) -> Self {
        self.data = data;
        self
    }

    pub fn with_image(mut self, image: ImageSpec) -> Self {
        self.image = Some(image);
        self
    }
}

/// A record to encode. Block ids must be increasing and block data shorter
/// than 64 KiB; [`RecordBuilder::encode`] does not re-check what the caller
/// controls (tests rely on being able to build odd records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBuilder {
    pub rmid: u8,
    pub info: u8,
    pub xid: TransactionId,
    pub blocks: Vec<BlockSpec>,
    pub origin: Option<RepOriginId>,
    pub toplevel_xid: Option<TransactionId>,
    pub main_data: Bytes,
}

impl RecordBuilder {
    pub fn new(rmid: u8, info: u8) -> Self {
        RecordBuilder {
            rmid,
            info,
            xid: 0,
            blocks: Vec::new(),
            origin: None,
            toplevel_xid: None,
            main_data: Bytes::new(),
        }
    }

    pub fn xid(mut self, xid: TransactionId) -> Self {
        self.xid = xid;
        self
    }

    pub fn block(mut self, block: BlockSpec) -> Self {
        self.blocks.push(block);
        self
    }

    pub fn origin(mut self, origin: RepOriginId) -> Self {
        self.origin = Some(origin);
        self
    }

    pub fn toplevel_xid(mut self, xid: TransactionId) -> Self {
        self.toplevel_xid = Some(xid);
        self
    }

    pub fn main_data(mut self, data: Bytes) -> Self {
        self.main_data = data;
        self
    }

    /// The complete record (header with tot_len and CRC filled in), using
    /// the PostgreSQL 15 block-image flag bits.
    pub fn encode(&self, prev: Lsn) -> Bytes {
        self.encode_with(prev, &crate::v15::WAL_FORMAT)
    }

    /// As [`Self::encode`] for a given version's format.
    pub fn encode_with(&self, prev: Lsn, format: &WalFormat) -> Bytes {
        let flags = &format.bkpimage;
        let mut headers = BytesMut::new();
        let mut payload = BytesMut::new();
        let mut prev_rnode: Option<RelFileNode> = None;
        for b in &self.blocks {
            let mut fork_flags = b.forknum & BKPBLOCK_FORK_MASK;
            if b.image.is_some() {
                fork_flags |= BKPBLOCK_HAS_IMAGE;
            }
            if !b.data.is_empty() {
                fork_flags |= BKPBLOCK_HAS_DATA;
            }
            if b.will_init {
                fork_flags |= BKPBLOCK_WILL_INIT;
            }
            let same_rel = prev_rnode == Some(b.rnode);
            if same_rel {
                fork_flags |= BKPBLOCK_SAME_REL;
            }
            headers.put_u8(b.block_id);
            headers.put_u8(fork_flags);
            headers.put_u16_le(b.data.len() as u16);
            if let Some(img) = &b.image {
                let mut info = 0u8;
                if img.hole_length > 0 {
                    info |= flags.has_hole;
                }
                if img.apply {
                    info |= flags.apply;
                }
                info |= match img.compression {
                    ImageCompression::None => 0,
                    ImageCompression::Pglz => flags.compress_pglz,
                    ImageCompression::Lz4 => flags.compress_lz4,
                    ImageCompression::Zstd => flags.compress_zstd,
                };
                headers.put_u16_le(img.data.len() as u16);
                headers.put_u16_le(img.hole_offset);
                headers.put_u8(info);
                if img.compression != ImageCompression::None && img.hole_length > 0 {
                    headers.put_u16_le(img.hole_length);
                }
                payload.put_slice(&img.data);
            }
            if !same_rel {
                headers.put_u32_le(b.rnode.spcnode);
                headers.put_u32_le(b.rnode.dbnode);
                headers.put_u32_le(b.rnode.relnode);
            }
            headers.put_u32_le(b.blkno);
            payload.put_slice(&b.data);
            prev_rnode = Some(b.rnode);
        }
        if let Some(origin) = self.origin {
            headers.put_u8(XLR_BLOCK_ID_ORIGIN);
            headers.put_u16_le(origin);
        }
        if let Some(xid) = self.toplevel_xid {
            headers.put_u8(XLR_BLOCK_ID_TOPLEVEL_XID);
            headers.put_u32_le(xid);
        }
        if !self.main_data.is_empty() {
            if self.main_data.len() > 255 {
                headers.put_u8(XLR_BLOCK_ID_DATA_LONG);
                headers.put_u32_le(self.main_data.len() as u32);
            } else {
                headers.put_u8(XLR_BLOCK_ID_DATA_SHORT);
                headers.put_u8(self.main_data.len() as u8);
            }
            payload.put_slice(&self.main_data);
        }
        let tot_len = SIZE_OF_XLOG_RECORD + headers.len() + payload.len();
        let mut header = XLogRecordHeader {
            tot_len: tot_len as u32,
            xid: self.xid,
            prev,
            info: self.info,
            rmid: self.rmid,
            crc: 0,
        };
        let mut out = BytesMut::with_capacity(tot_len);
        out.put_slice(&header.encode());
        out.put_slice(&headers);
        out.put_slice(&payload);
        header.crc = compute_record_crc(&out).unwrap_or(0);
        out[..SIZE_OF_XLOG_RECORD].copy_from_slice(&header.encode());
        out.freeze()
    }
}

/// Lays records out in WAL pages, as PostgreSQL writes them.
///
/// Starts at a page boundary; the bytes produced start there too. Page
/// headers are long at segment starts; a page whose start falls inside a
/// record gets XLP_FIRST_IS_CONTRECORD and the remaining length.
pub struct WalWriter {
    format: WalFormat,
    seg_size: WalSegmentSize,
    tli: TimeLineId,
    sysid: u64,
    start: Lsn,
    out: BytesMut,
    prev_record: Lsn,
}

impl WalWriter {
    /// `start` must be a page boundary (else it is rounded down to one).
    /// `prev_record` is the xl_prev of the first record appended.
    pub fn new(
        format: WalFormat,
        seg_size: WalSegmentSize,
        tli: TimeLineId,
        sysid: u64,
        start: Lsn,
        prev_record: Lsn,
    ) -> Self {
        let start = Lsn(start.0 - start.0 % XLOG_BLCKSZ as u64);
        WalWriter {
            format,
            seg_size,
            tli,
            sysid,
            start,
            out: BytesMut::new(),
            prev_record,
        }
    }

    /// Like [`Self::new`], but the first record goes at `at` inside its
    /// page: output starts at that page's boundary with a header whose
    /// XLP_FIRST_IS_CONTRECORD remaining length covers the bytes before
    /// `at`, so readers starting at the page skip them as the tail of an
    /// earlier record (which is how a basebackup's bootstrap segment starts
    /// mid-page). `at` must be MAXALIGNed and not inside the page header
    /// ([`Self::record_position`] gives such a position).
    pub fn new_at(
        format: WalFormat,
        seg_size: WalSegmentSize,
        tli: TimeLineId,
        sysid: u64,
        at: Lsn,
        prev_record: Lsn,
    ) -> Self {
        let mut w = Self::new(format, seg_size, tli, sysid, at, prev_record);
        let header_end = w.start.0 + w.header_len(w.start) as u64;
        if at.0 > header_end {
            w.page_header((at.0 - header_end) as u32);
            w.out.put_bytes(0, (at.0 - header_end) as usize);
        }
        w
    }

    /// Where a record written after `lsn` starts: MAXALIGNed, and past the
    /// page header when that would land inside it.
    pub fn record_position(seg_size: WalSegmentSize, lsn: Lsn) -> Lsn {
        let at = Lsn(maxalign(lsn.0 as usize) as u64);
        let page = at.0 - at.0 % XLOG_BLCKSZ as u64;
        let header = if seg_size.offset(Lsn(page)) == 0 {
            super::page_header::SIZE_OF_XLOG_LONG_PHD
        } else {
            super::page_header::SIZE_OF_XLOG_SHORT_PHD
        };
        Lsn(at.0.max(page + header as u64))
    }

    fn header_len(&self, page: Lsn) -> usize {
        if self.seg_size.offset(page) == 0 {
            super::page_header::SIZE_OF_XLOG_LONG_PHD
        } else {
            super::page_header::SIZE_OF_XLOG_SHORT_PHD
        }
    }

    /// LSN just after the bytes produced so far.
    pub fn end_lsn(&self) -> Lsn {
        Lsn(self.start.0 + self.out.len() as u64)
    }

    /// LSN of the first byte produced.
    pub fn start_lsn(&self) -> Lsn {
        self.start
    }

    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Consumes the writer, returning (start LSN, bytes).
    pub fn finish(self) -> (Lsn, Bytes) {
        (self.start, self.out.freeze())
    }

    fn page_header(&mut self, rem_len: u32) {
        let pos = self.end_lsn();
        let long = (self.seg_size.offset(pos) == 0).then_some(LongHeaderFields {
            sysid: self.sysid,
            seg_size: self.seg_size.bytes(),
            xlog_blcksz: XLOG_BLCKSZ as u32,
        });
        let hdr = XLogPageHeader {
            magic: self.format.page_magic,
            info: if rem_len > 0 {
                XLP_FIRST_IS_CONTRECORD
            } else {
                0
            },
            tli: self.tli,
            pageaddr: pos,
            rem_len,
            long,
        };
        self.out.put_slice(&hdr.encode());
    }

    /// Appends raw record bytes (already encoded, with a valid or deliberately
    /// invalid header) at the next record position; returns (start, end)
    /// where end is the MAXALIGNed end.
    pub fn append_raw(&mut self, record: &[u8]) -> (Lsn, Lsn) {
        if self.end_lsn().0.is_multiple_of(XLOG_BLCKSZ as u64) {
            self.page_header(0);
        }
        let start = self.end_lsn();
        let mut written = 0;
        while written < record.len() {
            if self.end_lsn().0.is_multiple_of(XLOG_BLCKSZ as u64) {
                self.page_header((record.len() - written) as u32);
            }
            let page_left = XLOG_BLCKSZ - (self.end_lsn().0 % XLOG_BLCKSZ as u64) as usize;
            let n = page_left.min(record.len() - written);
            self.out.put_slice(&record[written..written + n]);
            written += n;
        }
        // Padding never crosses a page boundary: pages are multiples of 8.
        let pad = maxalign(self.out.len()) - self.out.len();
        self.out.put_bytes(0, pad);
        self.prev_record = start;
        (start, self.end_lsn())
    }

    /// Encodes and appends a record, chaining xl_prev; an XLOG SWITCH record
    /// is followed by empty pages up to the end of its segment. Returns
    /// (start, end) where end is the next record position.
    pub fn append(&mut self, rec: &RecordBuilder) -> (Lsn, Lsn) {
        let bytes = rec.encode_with(self.prev_record, &self.format);
        let (start, end) = self.append_raw(&bytes);
        let switch = XLogRecordHeader::decode(&bytes).is_some_and(|h| is_xlog_switch(&h));
        if switch {
            self.pad_to_segment_end();
        }
        (start, self.end_lsn().max(end))
    }

    /// Fills the rest of the current page with zeros.
    pub fn pad_to_page_end(&mut self) {
        let off = (self.end_lsn().0 % XLOG_BLCKSZ as u64) as usize;
        if off != 0 {
            self.out.put_bytes(0, XLOG_BLCKSZ - off);
        }
    }

    /// Fills the rest of the segment with zeroed pages that carry headers.
    pub fn pad_to_segment_end(&mut self) {
        self.pad_to_page_end();
        while self.seg_size.offset(self.end_lsn()) != 0 {
            self.page_header(0);
            self.pad_to_page_end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v15::WAL_FORMAT;
    use crate::wal::page_header::SIZE_OF_XLOG_LONG_PHD;

    #[test]
    fn layout_of_a_spanning_record() {
        let seg = WalSegmentSize::new(1 << 20).unwrap();
        let mut w = WalWriter::new(WAL_FORMAT, seg, 1, 99, Lsn(0x10_0000), Lsn(0));
        let small = RecordBuilder::new(0, 0x30).main_data(Bytes::from_static(&[1, 2, 3, 4]));
        let (s1, e1) = w.append(&small);
        assert_eq!(s1, Lsn(0x10_0000 + SIZE_OF_XLOG_LONG_PHD as u64));
        assert_eq!(e1.0 % 8, 0);
        let big = RecordBuilder::new(21, 0).main_data(Bytes::from(vec![9u8; 20000]));
        let (s2, e2) = w.append(&big);
        assert_eq!(s2, e1);
        // 20000 bytes of data span three pages.
        assert!(e2.0 > 0x10_0000 + 2 * 8192);
        let bytes = w.bytes();
        let p1 = XLogPageHeader::decode(&bytes[8192..]).unwrap();
        assert_eq!(p1.info, XLP_FIRST_IS_CONTRECORD);
        assert_eq!(p1.pageaddr, Lsn(0x10_2000));
        assert!(p1.rem_len > 8192);
        let p2 = XLogPageHeader::decode(&bytes[16384..]).unwrap();
        assert_eq!(p2.rem_len, p1.rem_len - (8192 - 24));
    }

    #[test]
    fn first_record_mid_page() {
        let seg = WalSegmentSize::new(1 << 20).unwrap();
        assert_eq!(
            WalWriter::record_position(seg, Lsn(0x10_2001)),
            Lsn(0x10_2018)
        );
        let at = WalWriter::record_position(seg, Lsn(0x10_2101));
        assert_eq!(at, Lsn(0x10_2108));
        assert_eq!(
            WalWriter::record_position(seg, Lsn(0x10_2000)),
            Lsn(0x10_2000 + 24)
        );
        assert_eq!(
            WalWriter::record_position(seg, Lsn(0x10_0000)),
            Lsn(0x10_0000 + SIZE_OF_XLOG_LONG_PHD as u64)
        );
        let mut w = WalWriter::new_at(WAL_FORMAT, seg, 1, 99, at, Lsn(0));
        let rec = RecordBuilder::new(0, 0x30).main_data(Bytes::from_static(&[1, 2, 3, 4]));
        let (start, _) = w.append(&rec);
        assert_eq!(start, at);
        assert_eq!(w.start_lsn(), Lsn(0x10_2000));
        let hdr = XLogPageHeader::decode(w.bytes()).unwrap();
        assert_eq!(hdr.info, XLP_FIRST_IS_CONTRECORD);
        assert_eq!(hdr.rem_len, 0x108 - 24);
        // A reader starting at the page skips to the record.
        let cfg = crate::wal::WalDecoderConfig::new(crate::PgMajorVersion::V15, seg);
        let mut d = crate::wal::WalStreamDecoder::new(Lsn(0x10_2000), cfg).unwrap();
        d.feed(w.bytes());
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(r.lsn, at);
        assert_eq!(r.main_data(), &[1, 2, 3, 4]);
    }

    #[test]
    fn switch_pads_to_segment_end() {
        let seg = WalSegmentSize::new(1 << 20).unwrap();
        let mut w = WalWriter::new(WAL_FORMAT, seg, 1, 99, Lsn(0x10_0000), Lsn(0));
        let (_, end) = w.append(&RecordBuilder::new(0, 0x40));
        assert_eq!(end, Lsn(0x20_0000));
        assert_eq!(w.end_lsn(), Lsn(0x20_0000));
    }
}
