//! WAL page headers (`XLogPageHeaderData`, `XLogLongPageHeaderData`).
//!
//! Every 8 KiB WAL page starts with a 24-byte header: magic u16, info u16,
//! timeline u32, pageaddr u64 (the page's own LSN), rem_len u32 (bytes of a
//! record continued from the previous page), 4 bytes of padding. The first
//! page of a segment has [`XLP_LONG_HEADER`] and 16 more bytes: system
//! identifier u64, segment size u32, XLOG_BLCKSZ u32 (40 bytes in all).
//!
//! [`XLogPageHeader::validate`] applies PostgreSQL's reader checks
//! (`XLogReaderValidatePageHeader`) except the timeline ordering, which needs
//! the previous page and is done by the decoder. Used by the decoder and the
//! encoder.

use crate::bytes_le::{put, u16_at, u32_at, u64_at};
use crate::types::TimeLineId;
use crate::{Lsn, XLOG_BLCKSZ};

use super::error::WalDecodeError;
use super::segment::WalSegmentSize;
use super::{WalFormat, XLP_ALL_FLAGS, XLP_LONG_HEADER};

/// `SizeOfXLogShortPHD`.
pub const SIZE_OF_XLOG_SHORT_PHD: usize = 24;
/// `SizeOfXLogLongPHD`.
pub const SIZE_OF_XLOG_LONG_PHD: usize = 40;

/// A decoded WAL page header; the long fields are `Some` for long headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XLogPageHeader {
    pub magic: u16,
    pub info: u16,
    pub tli: TimeLineId,
    pub pageaddr: Lsn,
    pub rem_len: u32,
    pub long: Option<LongHeaderFields>,
}

/// The extra fields of a long page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeaderFields {
    pub sysid: u64,
    pub seg_size: u32,
    pub xlog_blcksz: u32,
}

impl XLogPageHeader {
    /// Header length implied by the info bits of the first 4 bytes
    /// (`XLogPageHeaderSize`); `None` if fewer than 4 bytes are given.
    pub fn size_from_prefix(prefix: &[u8]) -> Option<usize> {
        let info = u16_at(prefix, 2).ok()?;
        Some(if info & XLP_LONG_HEADER != 0 {
            SIZE_OF_XLOG_LONG_PHD
        } else {
            SIZE_OF_XLOG_SHORT_PHD
        })
    }

    /// Decodes a header from `buf`; `None` if `buf` is shorter than the
    /// header its info bits announce.
    pub fn decode(buf: &[u8]) -> Option<XLogPageHeader> {
        let size = Self::size_from_prefix(buf)?;
        if buf.len() < size {
            return None;
        }
        let long = if size == SIZE_OF_XLOG_LONG_PHD {
            Some(LongHeaderFields {
                sysid: u64_at(buf, 24).ok()?,
                seg_size: u32_at(buf, 32).ok()?,
                xlog_blcksz: u32_at(buf, 36).ok()?,
            })
        } else {
            None
        };
        Some(XLogPageHeader {
            magic: u16_at(buf, 0).ok()?,
            info: u16_at(buf, 2).ok()?,
            tli: u32_at(buf, 4).ok()?,
            pageaddr: Lsn(u64_at(buf, 8).ok()?),
            rem_len: u32_at(buf, 16).ok()?,
            long,
        })
    }

    /// The header's encoded size (24 or 40).
    pub fn size(&self) -> usize {
        if self.long.is_some() {
            SIZE_OF_XLOG_LONG_PHD
        } else {
            SIZE_OF_XLOG_SHORT_PHD
        }
    }

    /// Encodes the header (padding zeroed). The long-header flag in `info`
    /// is set or cleared to agree with `long`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.size()];
        let info = if self.long.is_some() {
            self.info | XLP_LONG_HEADER
        } else {
            self.info & !XLP_LONG_HEADER
        };
        put(&mut b, 0, &self.magic.to_le_bytes());
        put(&mut b, 2, &info.to_le_bytes());
        put(&mut b, 4, &self.tli.to_le_bytes());
        put(&mut b, 8, &self.pageaddr.0.to_le_bytes());
        put(&mut b, 16, &self.rem_len.to_le_bytes());
        if let Some(l) = self.long {
            put(&mut b, 24, &l.sysid.to_le_bytes());
            put(&mut b, 32, &l.seg_size.to_le_bytes());
            put(&mut b, 36, &l.xlog_blcksz.to_le_bytes());
        }
        b
    }

    /// PostgreSQL's checks for the header of the page at `page_lsn`: magic,
    /// info bits, long header on a segment's first page (with matching
    /// segment size, block size and, if known, system identifier) and
    /// pageaddr. Timeline ordering is the caller's job.
    pub fn validate(
        &self,
        page_lsn: Lsn,
        format: &WalFormat,
        seg_size: WalSegmentSize,
        system_identifier: Option<u64>,
    ) -> Result<(), WalDecodeError> {
        let lsn = page_lsn;
        if self.magic != format.page_magic {
            return Err(WalDecodeError::BadPageMagic {
                lsn,
                magic: self.magic,
            });
        }
        if self.info & !XLP_ALL_FLAGS != 0 {
            return Err(WalDecodeError::BadPageInfo {
                lsn,
                info: self.info,
            });
        }
        match self.long {
            Some(l) => {
                if let Some(expected) = system_identifier {
                    if l.sysid != expected {
                        return Err(WalDecodeError::SystemIdMismatch {
                            lsn,
                            found: l.sysid,
                            expected,
                        });
                    }
                }
                if l.seg_size != seg_size.bytes() {
                    return Err(WalDecodeError::SegmentSizeMismatch {
                        lsn,
                        found: l.seg_size,
                        expected: seg_size.bytes(),
                    });
                }
                if l.xlog_blcksz as usize != XLOG_BLCKSZ {
                    return Err(WalDecodeError::BlockSizeMismatch {
                        lsn,
                        found: l.xlog_blcksz,
                    });
                }
            }
            None if seg_size.offset(page_lsn) == 0 => {
                return Err(WalDecodeError::MissingLongHeader { lsn });
            }
            None => {}
        }
        if self.pageaddr != page_lsn {
            return Err(WalDecodeError::BadPageAddr {
                lsn,
                pageaddr: self.pageaddr,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v15::WAL_FORMAT;
    use crate::wal::XLP_FIRST_IS_CONTRECORD;

    #[test]
    fn round_trip_and_validation() {
        let seg = WalSegmentSize::DEFAULT;
        let long = XLogPageHeader {
            magic: 0xD110,
            info: XLP_LONG_HEADER,
            tli: 1,
            pageaddr: Lsn(0x0100_0000),
            rem_len: 0,
            long: Some(LongHeaderFields {
                sysid: 42,
                seg_size: seg.bytes(),
                xlog_blcksz: 8192,
            }),
        };
        let bytes = long.encode();
        assert_eq!(bytes.len(), 40);
        assert_eq!(XLogPageHeader::decode(&bytes), Some(long));
        assert_eq!(XLogPageHeader::decode(&bytes[..39]), None);
        assert!(long
            .validate(Lsn(0x0100_0000), &WAL_FORMAT, seg, Some(42))
            .is_ok());
        assert!(matches!(
            long.validate(Lsn(0x0100_0000), &WAL_FORMAT, seg, Some(43)),
            Err(WalDecodeError::SystemIdMismatch { .. })
        ));
        assert!(matches!(
            long.validate(Lsn(0x0200_0000), &WAL_FORMAT, seg, None),
            Err(WalDecodeError::BadPageAddr { .. })
        ));
        let small = WalSegmentSize::new(1 << 20).unwrap();
        assert!(matches!(
            long.validate(Lsn(0x0100_0000), &WAL_FORMAT, small, None),
            Err(WalDecodeError::SegmentSizeMismatch { .. })
        ));

        let short = XLogPageHeader {
            info: XLP_FIRST_IS_CONTRECORD,
            pageaddr: Lsn(0x0100_2000),
            rem_len: 100,
            long: None,
            ..long
        };
        let bytes = short.encode();
        assert_eq!(bytes.len(), 24);
        assert_eq!(XLogPageHeader::decode(&bytes), Some(short));
        assert!(short
            .validate(Lsn(0x0100_2000), &WAL_FORMAT, seg, None)
            .is_ok());
        let at_seg_start = XLogPageHeader {
            pageaddr: Lsn(0x0200_0000),
            ..short
        };
        assert!(matches!(
            at_seg_start.validate(Lsn(0x0200_0000), &WAL_FORMAT, seg, None),
            Err(WalDecodeError::MissingLongHeader { .. })
        ));
        let bad_info = XLogPageHeader {
            info: 0x10,
            ..short
        };
        assert!(matches!(
            bad_info.validate(Lsn(0x0100_2000), &WAL_FORMAT, seg, None),
            Err(WalDecodeError::BadPageInfo { .. })
        ));
        let bad_magic = XLogPageHeader {
            magic: 0xD113,
            ..short
        };
        assert!(matches!(
            bad_magic.validate(Lsn(0x0100_2000), &WAL_FORMAT, seg, None),
            Err(WalDecodeError::BadPageMagic { magic: 0xD113, .. })
        ));
    }
}
