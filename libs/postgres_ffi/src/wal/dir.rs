//! Reading records from a `pg_wal` directory (or any directory of WAL
//! segment files), for tools: import, verification against `pg_waldump`,
//! debugging.
//!
//! [`WalDirReader`] opens the segment files of one timeline in order,
//! starting at the segment that holds the start LSN, and feeds them to a
//! [`WalStreamDecoder`]. A missing next segment ends the input. Segment files
//! must have the configured size; anything else is an error naming the file.

use std::fs;
use std::io::{Seek, SeekFrom};
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
    /// The segment being read, its path and the offset of the next byte.
    current: Option<(fs::File, PathBuf, u64)>,
    next_segno: XLogSegNo,
    /// Where to start in the first segment (the start LSN's offset).
    first_offset: u64,
    /// No more segment files: the decoder has all the input there is.
    exhausted: bool,
}

/// Bytes read per call; a multiple of the WAL page size, and reads stay
/// aligned to it (after the first), so records within a page are never split
/// between two reads and can be handed out as slices of the buffer.
const READ_CHUNK: u64 = 128 << 10;

impl WalDirReader {
    /// A reader whose first record starts at `start` (a page boundary or a
    /// record start, as for [`WalStreamDecoder::new`]).
    pub fn new(
        dir: &Path,
        tli: TimeLineId,
        start: Lsn,
        cfg: WalDecoderConfig,
    ) -> Result<Self, WalDirError> {
        let decoder = WalStreamDecoder::new(start, cfg)?;
        let seg = cfg.segment_size;
        Ok(WalDirReader {
            dir: dir.to_owned(),
            tli,
            cfg,
            decoder,
            current: None,
            next_segno: seg.segno(start),
            first_offset: seg.offset(start) as u64,
            exhausted: false,
        })
    }

    /// Path of segment `segno` of this reader's timeline.
    pub fn segment_path(&self, segno: XLogSegNo) -> PathBuf {
        self.dir
            .join(self.cfg.segment_size.file_name(self.tli, segno))
    }

    /// Opens the next segment file; false if it does not exist.
    fn open_next_segment(&mut self) -> Result<bool, WalDirError> {
        let path = self.segment_path(self.next_segno);
        let io_err = |path: &Path, source| WalDirError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(io_err(&path, source)),
        };
        let expected = self.cfg.segment_size.bytes();
        let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
        if len != expected as u64 {
            return Err(WalDirError::WrongSize {
                path,
                len,
                expected,
            });
        }
        let offset = std::mem::take(&mut self.first_offset);
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| io_err(&path, e))?;
        }
        self.next_segno += 1;
        self.current = Some((file, path, offset));
        Ok(true)
    }

    /// Feeds the decoder the next chunk of WAL; false at the end of input.
    fn feed_chunk(&mut self) -> Result<bool, WalDirError> {
        if self.current.is_none() && !self.open_next_segment()? {
            return Ok(false);
        }
        let seg_len = self.cfg.segment_size.bytes() as u64;
        let Some((file, path, offset)) = self.current.as_mut() else {
            return Ok(false);
        };
        let want = (READ_CHUNK - *offset % READ_CHUNK).min(seg_len - *offset);
        let got = self
            .decoder
            .feed_from(file, want as usize)
            .map_err(|source| WalDirError::Io {
                path: path.clone(),
                source,
            })?;
        *offset += got as u64;
        if (got as u64) < want {
            // The file was the right size when opened and shrank since.
            return Err(WalDirError::WrongSize {
                path: path.clone(),
                len: *offset,
                expected: seg_len as u32,
            });
        }
        if *offset == seg_len {
            self.current = None;
        }
        Ok(true)
    }

    /// The next record; `Ok(None)` when the files end between records.
    /// The usual end of a `pg_wal` directory is an error for which
    /// [`WalDecodeError::is_end_of_wal`] is true (zeroed or recycled space).
    pub fn next_record(&mut self) -> Result<Option<WalRecord>, WalDirError> {
        let mut rec = WalRecord::default();
        Ok(self.next_record_into(&mut rec)?.then_some(rec))
    }

    /// [`Self::next_record`] into `out` (see
    /// [`WalStreamDecoder::next_record_into`]); Ok(false) at the end.
    pub fn next_record_into(&mut self, out: &mut WalRecord) -> Result<bool, WalDirError> {
        loop {
            if self.decoder.next_record_into(out)? {
                return Ok(true);
            }
            if self.exhausted {
                self.decoder.check_end_of_input()?;
                return Ok(false);
            }
            if !self.feed_chunk()? {
                self.exhausted = true;
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
