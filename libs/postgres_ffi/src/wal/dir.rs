//! Reading records from a `pg_wal` directory (or any directory of WAL
//! segment files), for tools: import, verification against `pg_waldump`,
//! debugging.
//!
//! [`WalDirReader`] opens the segment files of one timeline in order,
//! starting at the segment that holds the start LSN, and feeds them to a
//! [`WalStreamDecoder`]. A missing next segment ends the input. Segment files
//! must have the configured size; anything else is an error naming the file.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::types::TimeLineId;
use crate::Lsn;

use super::decoder::{WalDecoderConfig, WalStreamDecoder};
use super::error::WalDecodeError;
use super::record::WalRecord;
use super::segment::XLogSegNo;

/// Errors of [`WalDirReader`].
#[derive(Debug, thiserror::Error)]
pub enum WalDirError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {len} bytes, expected a {expected}-byte WAL segment")]
    WrongSize {
        path: PathBuf,
        len: u64,
        expected: u32,
    },
    #[error(transparent)]
    Decode(#[from] WalDecodeError),
}

/// Iterates over the records of the WAL segment files in a directory.
pub struct WalDirReader {
    dir: PathBuf,
    tli: TimeLineId,
    cfg: WalDecoderConfig,
    decoder: WalStreamDecoder,
    next_segno: XLogSegNo,
    /// No more segment files: the decoder has all the input there is.
    exhausted: bool,
}

impl WalDirReader {
    /// Reads timeline `tli` from `start` (a page boundary or record start).
    pub fn new(
        dir: &Path,
        tli: TimeLineId,
        start: Lsn,
        cfg: WalDecoderConfig,
    ) -> Result<Self, WalDirError> {
        let decoder = WalStreamDecoder::new(start, cfg)?;
        let seg = cfg.segment_size;
        let mut reader = WalDirReader {
            dir: dir.to_owned(),
            tli,
            cfg,
            decoder,
            next_segno: seg.segno(start),
            exhausted: false,
        };
        // The first segment is fed from the start position on.
        let Some(bytes) = reader.read_segment()? else {
            reader.exhausted = true;
            return Ok(reader);
        };
        let skip = seg.offset(start) as usize;
        let mut bytes = bytes;
        bytes.drain(..skip.min(bytes.len()));
        reader.decoder.feed_owned(bytes);
        Ok(reader)
    }

    /// Path of segment `segno` of this reader's timeline.
    pub fn segment_path(&self, segno: XLogSegNo) -> PathBuf {
        self.dir
            .join(self.cfg.segment_size.file_name(self.tli, segno))
    }

    fn read_segment(&mut self) -> Result<Option<Vec<u8>>, WalDirError> {
        let path = self.segment_path(self.next_segno);
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(WalDirError::Io { path, source }),
        };
        let expected = self.cfg.segment_size.bytes();
        let mut bytes = Vec::with_capacity(expected as usize);
        file.read_to_end(&mut bytes)
            .map_err(|source| WalDirError::Io {
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 != expected as u64 {
            return Err(WalDirError::WrongSize {
                path,
                len: bytes.len() as u64,
                expected,
            });
        }
        self.next_segno += 1;
        Ok(Some(bytes))
    }

    /// The next record; `Ok(None)` when the files end between records.
    /// The usual end of a `pg_wal` directory is an error for which
    /// [`WalDecodeError::is_end_of_wal`] is true (zeroed or recycled space).
    pub fn next_record(&mut self) -> Result<Option<WalRecord>, WalDirError> {
        loop {
            if let Some(r) = self.decoder.next_record()? {
                return Ok(Some(r));
            }
            if self.exhausted {
                self.decoder.check_end_of_input()?;
                return Ok(None);
            }
            match self.read_segment()? {
                Some(bytes) => self.decoder.feed_owned(bytes),
                None => self.exhausted = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v15::WAL_FORMAT;
    use crate::wal::encoder::{RecordBuilder, WalWriter};
    use crate::wal::WalSegmentSize;
    use crate::PgMajorVersion;
    use bytes::Bytes;

    #[test]
    fn reads_across_files_and_reports_truncation() {
        let seg = WalSegmentSize::new(1 << 20).unwrap();
        let start = Lsn(0x0100_0000);
        let mut w = WalWriter::new(WAL_FORMAT, seg, 1, 5, start, Lsn(0));
        let mut spans = Vec::new();
        for i in 0..8u8 {
            let rec = RecordBuilder::new(21, 0).main_data(Bytes::from(vec![i; 300_000]));
            spans.push(w.append(&rec));
        }
        w.pad_to_segment_end();
        let (_, bytes) = w.finish();
        let dir = tempfile::tempdir().unwrap();
        for (i, chunk) in bytes.chunks(seg.bytes() as usize).enumerate() {
            let name = seg.file_name(1, seg.segno(start) + i as u64);
            fs::write(dir.path().join(name), chunk).unwrap();
        }
        let cfg = WalDecoderConfig::new(PgMajorVersion::V15, seg);

        let mut r = WalDirReader::new(dir.path(), 1, start, cfg).unwrap();
        let mut got = Vec::new();
        // The zero padding after the last record ends the valid WAL.
        loop {
            match r.next_record() {
                Ok(Some(rec)) => got.push((rec.lsn, rec.end_lsn)),
                Err(WalDirError::Decode(e)) if e.is_end_of_wal() => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, spans);

        // Starting at a later record.
        let mut r = WalDirReader::new(dir.path(), 1, spans[5].0, cfg).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().lsn, spans[5].0);

        // Remove the last file: the record spanning into it is truncated.
        let last = seg.segno(spans[7].1);
        fs::remove_file(dir.path().join(seg.file_name(1, last))).unwrap();
        let mut r = WalDirReader::new(dir.path(), 1, start, cfg).unwrap();
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("expected truncation"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, WalDirError::Decode(WalDecodeError::Truncated { .. })),
            "{err}"
        );

        // A short file is an error naming it.
        fs::write(dir.path().join(seg.file_name(1, last)), b"short").unwrap();
        let mut r = WalDirReader::new(dir.path(), 1, spans[6].0, cfg).unwrap();
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("expected an error"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, WalDirError::WrongSize { .. }), "{err}");
    }
}
