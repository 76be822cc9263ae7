//! WAL segments: sizes, LSN ↔ (segment, offset) arithmetic and file names.
//!
//! A cluster's segment size is fixed at initdb (`--wal-segsize`, a power of
//! two from 1 MiB to 1 GiB, default 16 MiB) and recorded in pg_control and in
//! every segment's long page header; [`WalSegmentSize`] carries a validated
//! value. File names are `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the
//! segment number split into "xlogid" (segments per 4 GiB) and the rest, all
//! in upper-case hex (`XLogFileName`). Used by the decoder, basebackup and
//! tools that read `pg_wal`.

use std::fmt;

use crate::types::TimeLineId;
use crate::Lsn;

/// A WAL segment number (`XLogSegNo`): LSN / segment size.
pub type XLogSegNo = u64;

/// Smallest allowed segment size.
pub const WAL_SEG_MIN_SIZE: u32 = 1024 * 1024;
/// Largest allowed segment size.
pub const WAL_SEG_MAX_SIZE: u32 = 1024 * 1024 * 1024;
/// initdb's default.
pub const DEFAULT_WAL_SEG_SIZE: u32 = 16 * 1024 * 1024;

/// A segment size PostgreSQL accepts (`IsValidWalSegSize`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalSegmentSize(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid WAL segment size {0}: must be a power of two between 1 MiB and 1 GiB")]
pub struct BadSegmentSize(pub u32);

impl WalSegmentSize {
    pub const DEFAULT: WalSegmentSize = WalSegmentSize(DEFAULT_WAL_SEG_SIZE);

    pub fn new(bytes: u32) -> Result<Self, BadSegmentSize> {
        if bytes.is_power_of_two() && (WAL_SEG_MIN_SIZE..=WAL_SEG_MAX_SIZE).contains(&bytes) {
            Ok(WalSegmentSize(bytes))
        } else {
            Err(BadSegmentSize(bytes))
        }
    }

    pub fn bytes(self) -> u32 {
        self.0
    }

    /// Segment holding `lsn` (`XLByteToSeg`).
    pub fn segno(self, lsn: Lsn) -> XLogSegNo {
        lsn.0 / self.0 as u64
    }

    /// Offset of `lsn` within its segment (`XLogSegmentOffset`).
    pub fn offset(self, lsn: Lsn) -> u32 {
        (lsn.0 % self.0 as u64) as u32
    }

    /// First LSN of segment `segno` (`XLogSegNoOffsetToRecPtr` with offset 0).
    /// Saturates for segment numbers beyond the LSN space.
    pub fn segment_start(self, segno: XLogSegNo) -> Lsn {
        Lsn(segno.saturating_mul(self.0 as u64))
    }

    /// `lsn` rounded up to a segment boundary.
    pub fn align_up(self, lsn: Lsn) -> Lsn {
        let size = self.0 as u64;
        Lsn(lsn.0.div_ceil(size).saturating_mul(size))
    }

    /// Segments per "xlogid" (4 GiB of LSN space).
    pub fn segments_per_xlogid(self) -> u64 {
        0x1_0000_0000 / self.0 as u64
    }

    /// `XLogFileName`: the file holding segment `segno` on timeline `tli`.
    pub fn file_name(self, tli: TimeLineId, segno: XLogSegNo) -> String {
        let per = self.segments_per_xlogid();
        format!("{:08X}{:08X}{:08X}", tli, segno / per, segno % per)
    }

    /// Parses a WAL segment file name into (timeline, segment number). Partial
    /// (`.partial`) and other suffixed files are not segment names.
    pub fn parse_file_name(self, name: &str) -> Result<(TimeLineId, XLogSegNo), BadWalFileName> {
        let bad = || BadWalFileName(name.to_owned());
        if name.len() != 24
            || !name
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        {
            return Err(bad());
        }
        let field = |r: std::ops::Range<usize>| {
            name.get(r)
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .ok_or_else(bad)
        };
        let tli = field(0..8)?;
        let log = field(8..16)? as u64;
        let seg = field(16..24)? as u64;
        if seg >= self.segments_per_xlogid() {
            return Err(bad());
        }
        Ok((tli, log * self.segments_per_xlogid() + seg))
    }
}

impl fmt::Debug for WalSegmentSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalSegmentSize({})", self.0)
    }
}

impl Default for WalSegmentSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A name that is not a WAL segment file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a WAL segment file name")]
pub struct BadWalFileName(pub String);

/// Is this a WAL segment file name (24 upper-case hex digits)?
pub fn is_wal_file_name(name: &str) -> bool {
    name.len() == 24
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// Timeline history file name (`TLHistoryFileName`): `%08X.history`.
pub fn history_file_name(tli: TimeLineId) -> String {
    format!("{tli:08X}.history")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert!(WalSegmentSize::new(16 * 1024 * 1024).is_ok());
        assert!(WalSegmentSize::new(1024 * 1024).is_ok());
        assert!(WalSegmentSize::new(1 << 30).is_ok());
        for bad in [0, 512 * 1024, 3 * 1024 * 1024, 1 << 31] {
            assert_eq!(WalSegmentSize::new(bad), Err(BadSegmentSize(bad)));
        }
    }

    #[test]
    fn names_and_math() {
        let s = WalSegmentSize::DEFAULT;
        assert_eq!(s.file_name(1, 1), "000000010000000000000001");
        assert_eq!(s.file_name(2, 0x100), "000000020000000100000000");
        assert_eq!(
            s.parse_file_name("000000020000000100000000"),
            Ok((2, 0x100))
        );
        assert!(s.parse_file_name("000000020000000100000100").is_err());
        assert!(s.parse_file_name("00000002000000010000000").is_err());
        assert!(s.parse_file_name("00000002000000010000000a").is_err());
        assert!(s
            .parse_file_name("000000020000000100000000.partial")
            .is_err());
        assert_eq!(s.segno(Lsn(0x1_0100_0000)), 0x101);
        assert_eq!(s.offset(Lsn(0x0100_0028)), 0x28);
        assert_eq!(s.segment_start(2), Lsn(0x0200_0000));
        assert_eq!(s.align_up(Lsn(0x0100_0001)), Lsn(0x0200_0000));
        assert_eq!(s.align_up(Lsn(0x0200_0000)), Lsn(0x0200_0000));
        let small = WalSegmentSize::new(1 << 20).unwrap();
        assert_eq!(small.file_name(1, 4096 + 5), "000000010000000100000005");
        assert_eq!(history_file_name(3), "00000003.history");
        assert!(is_wal_file_name("000000010000000000000001"));
        assert!(!is_wal_file_name("00000001.history"));
    }
}
