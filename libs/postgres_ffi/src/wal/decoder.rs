//! [`WalStreamDecoder`]: WAL bytes in, validated records out.
//!
//! The caller feeds the WAL byte stream in chunks of any size (as it arrives
//! from a replication connection or is read from segment files), starting at
//! either
//!
//! - a page boundary: the page header is validated, and if the page begins
//!   with the tail of a record that started earlier (XLP_FIRST_IS_CONTRECORD)
//!   that tail is skipped, possibly across several pages; or
//! - the start of a record inside a page (a position PostgreSQL reported,
//!   e.g. a checkpoint's redo pointer): decoding begins there.
//!
//! and then polls [`WalStreamDecoder::next_record`] for complete records.
//! The decoder follows `XLogDecodeNextRecord`: page headers are checked
//! (magic, info bits, long header with segment and block size at segment
//! starts, pageaddr, non-decreasing timeline, optional system id);
//! continuation pages must carry the contrecord flag with the right remaining
//! length; a record header is checked as soon as it is complete (length,
//! rmgr id, prev-link) and the whole record's CRC before it is decoded; after
//! XLOG SWITCH the rest of the segment is skipped; a page flagged
//! XLP_FIRST_IS_OVERWRITE_CONTRECORD while a record is being continued means
//! that record was abandoned by crash recovery, so it is dropped (see
//! [`WalStreamDecoder::aborted_record`]) and decoding resumes on that page.
//!
//! Invariants: `pos` is the LSN of the first unconsumed byte; records are
//! returned in LSN order, each exactly once; after an error the decoder is
//! poisoned and returns the same error forever (a stream with a bad record
//! cannot be resynchronised without knowing where the next record starts).
//! Missing input is never an error by itself: `next_record` returns `None`
//! and [`WalStreamDecoder::check_end_of_input`] reports a truncated record.
//! Used by the walreceiver / ingest and by tools reading `pg_wal`.

use crate::bytes_le::u32_at;
use crate::types::TimeLineId;
use crate::{maxalign, Lsn, PgMajorVersion, XLOG_BLCKSZ};

use super::error::WalDecodeError;
use super::page_header::{XLogPageHeader, SIZE_OF_XLOG_LONG_PHD, SIZE_OF_XLOG_SHORT_PHD};
use super::record::{decode_in_place, is_xlog_switch, WalRecord, XLogRecordHeader};
use super::segment::WalSegmentSize;
use super::*;

/// What the decoder needs to know about the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalDecoderConfig {
    pub format: WalFormat,
    pub segment_size: WalSegmentSize,
    /// If set, long page headers must carry this system identifier.
    pub system_identifier: Option<u64>,
}

impl WalDecoderConfig {
    pub fn new(version: PgMajorVersion, segment_size: WalSegmentSize) -> Self {
        WalDecoderConfig {
            format: *version.wal_format(),
            segment_size,
            system_identifier: None,
        }
    }

    pub fn with_system_identifier(mut self, sysid: u64) -> Self {
        self.system_identifier = Some(sysid);
        self
    }
}

/// A record being assembled from pieces (one that spans pages, or whose
/// page was not all fed yet).
#[derive(Debug)]
struct Partial {
    start: Lsn,
    tot_len: u32,
    data: Vec<u8>,
    header_checked: bool,
}

#[derive(Debug)]
enum State {
    /// Started at a page boundary: the first page header decides whether a
    /// continuation must be skipped.
    FirstPage,
    /// A record (or, at a page boundary, a page header) comes next.
    RecordStart,
    /// Skipping the tail of a record that began before our start point.
    SkipContrecord {
        remaining: u32,
        since: Lsn,
    },
    InRecord(Partial),
}

/// Streaming WAL decoder; see the module documentation.
pub struct WalStreamDecoder {
    cfg: WalDecoderConfig,
    /// LSN of `buf[0]`.
    pos: Lsn,
    buf: Input,
    state: State,
    /// Bytes up to this LSN are skipped without interpretation (record
    /// alignment padding, or the rest of a segment after XLOG SWITCH).
    skip_to: Option<Lsn>,
    /// Start of the last record returned, for the prev-link check.
    prev_record: Option<Lsn>,
    /// Last page header seen: (page LSN, timeline).
    last_page: Option<(Lsn, TimeLineId)>,
    aborted_record: Option<Lsn>,
    error: Option<WalDecodeError>,
    /// An allocation for the next record assembled from pieces: the one a
    /// caller's slot handed back for the last such record.
    spare: Vec<u8>,
}

const PAGE: u64 = XLOG_BLCKSZ as u64;

/// Bytes fed but not yet consumed: `data[start..end]`.
///
/// `data` is kept initialized to its full length and reused: consuming
/// moves `start`, feeding writes after `end`, and the unconsumed bytes (less
/// than a page as a rule) move to the front only when the room after `end`
/// runs out. So a reader feeding fixed-size chunks neither zeroes nor
/// faults in memory once the buffer has reached its size.
#[derive(Default)]
struct Input {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    fn advance(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// `n` writable bytes just after the unconsumed ones.
    fn room(&mut self, n: usize) -> &mut [u8] {
        if self.data.len() - self.end < n {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.end < n {
                self.data.resize(self.end + n, 0);
            }
        }
        &mut self.data[self.end..self.end + n]
    }

    /// Marks `n` bytes of [`Self::room`] as fed.
    fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }
}

impl std::ops::Deref for Input {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
}

/// Initial capacity cap for a record buffer: a corrupt length must not make
/// us allocate before the header is validated; the buffer grows as data
/// actually arrives.
const INITIAL_RECORD_CAPACITY: usize = 64 * 1024;

impl WalStreamDecoder {
    /// A decoder whose first input byte is at `start`: a page boundary or a
    /// record start inside a page (after the page header, MAXALIGNed).
    pub fn new(start: Lsn, cfg: WalDecoderConfig) -> Result<Self, WalDecodeError> {
        let in_page = start.0 % PAGE;
        let state = if in_page == 0 {
            State::FirstPage
        } else {
            let header = if cfg.segment_size.offset(start) < PAGE as u32 {
                SIZE_OF_XLOG_LONG_PHD
            } else {
                SIZE_OF_XLOG_SHORT_PHD
            };
            if !in_page.is_multiple_of(8) {
                return Err(WalDecodeError::BadStartLsn {
                    lsn: start,
                    reason: "a record start must be 8-byte aligned",
                });
            }
            if (in_page as usize) < header {
                return Err(WalDecodeError::BadStartLsn {
                    lsn: start,
                    reason: "the position is inside a page header",
                });
            }
            State::RecordStart
        };
        Ok(WalStreamDecoder {
            cfg,
            pos: start,
            buf: Input::default(),
            state,
            skip_to: None,
            prev_record: None,
            last_page: None,
            aborted_record: None,
            error: None,
            spare: Vec::new(),
        })
    }

    /// Appends the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.room(data.len()).copy_from_slice(data);
        self.buf.commit(data.len());
    }

    /// Reads up to `len` bytes of the stream from `src` straight into the
    /// decoder's buffer (until `len` or end of file); returns how many.
    /// Records are copied out of the buffer, so its memory is reused (see
    /// [`Input`]): a reader feeding fixed-size chunks touches the same
    /// memory over and over, neither zeroing it nor faulting in fresh pages.
    pub fn feed_from(
        &mut self,
        src: &mut impl std::io::Read,
        len: usize,
    ) -> std::io::Result<usize> {
        let room = self.buf.room(len);
        let mut got = 0;
        let res = loop {
            if got == len {
                break Ok(got);
            }
            match src.read(&mut room[got..]) {
                Ok(0) => break Ok(got),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.commit(got);
        res
    }

    /// LSN just past the last byte fed.
    pub fn available_lsn(&self) -> Lsn {
        Lsn(self.pos.0 + self.buf.len() as u64)
    }

    /// Where the next record will start, if the decoder is between records
    /// and knows it (None while inside a record or skipping a continuation).
    pub fn next_record_lsn(&self) -> Option<Lsn> {
        match self.state {
            State::RecordStart => Some(self.skip_to.unwrap_or(self.pos)),
            _ => None,
        }
    }

    /// Timeline of the last page header seen.
    pub fn last_page_tli(&self) -> Option<TimeLineId> {
        self.last_page.map(|(_, t)| t)
    }

    /// Start of the last record dropped because a later page said
    /// XLP_FIRST_IS_OVERWRITE_CONTRECORD.
    pub fn aborted_record(&self) -> Option<Lsn> {
        self.aborted_record
    }

    /// After [`Self::next_record`] returned `Ok(None)`: Ok if the input
    /// ended between records; otherwise the record that is cut short (for a
    /// stream that has really ended).
    pub fn check_end_of_input(&self) -> Result<(), WalDecodeError> {
        let end = self.available_lsn();
        match &self.state {
            State::InRecord(p) => Err(WalDecodeError::Truncated {
                lsn: p.start,
                have: p.data.len() as u64,
                need: p.tot_len as u64,
                end,
            }),
            State::SkipContrecord { remaining, since } => Err(WalDecodeError::Truncated {
                lsn: *since,
                have: 0,
                need: *remaining as u64,
                end,
            }),
            _ => Ok(()),
        }
    }

    /// The next complete record, `Ok(None)` if more input is needed.
    pub fn next_record(&mut self) -> Result<Option<WalRecord>, WalDecodeError> {
        let mut rec = WalRecord::default();
        Ok(self.next_record_into(&mut rec)?.then_some(rec))
    }

    /// [`Self::next_record`] into `out` (Ok(false): more input is needed,
    /// `out` unchanged). Reusing one slot for record after record saves
    /// the allocation of a block list and a move of the record per record.
    pub fn next_record_into(&mut self, out: &mut WalRecord) -> Result<bool, WalDecodeError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.step(out);
        if let Err(e) = &r {
            self.error = Some(e.clone());
        }
        r
    }

    fn advance(&mut self, n: usize) {
        self.buf.advance(n);
        self.pos = Lsn(self.pos.0 + n as u64);
    }

    fn step(&mut self, out: &mut WalRecord) -> Result<bool, WalDecodeError> {
        loop {
            if let Some(target) = self.skip_to {
                let n = (target.0.saturating_sub(self.pos.0)).min(self.buf.len() as u64) as usize;
                self.advance(n);
                if self.pos < target {
                    return Ok(false);
                }
                self.skip_to = None;
            }

            if self.pos.0.is_multiple_of(PAGE) {
                if !self.read_page_header()? {
                    return Ok(false);
                }
                continue;
            }

            let page_left = (PAGE - self.pos.0 % PAGE) as usize;
            match &mut self.state {
                State::FirstPage => {
                    // Only reachable at a page boundary, handled above.
                    self.state = State::RecordStart;
                }
                State::RecordStart => {
                    // xl_tot_len is always on this page: records are
                    // MAXALIGNed, so at least 8 bytes of the page remain.
                    let Ok(tot_len) = u32_at(&self.buf, 0) else {
                        return Ok(false);
                    };
                    let lsn = self.pos;
                    if (tot_len as usize) < SIZE_OF_XLOG_RECORD {
                        return Err(WalDecodeError::RecordTooShort { lsn, len: tot_len });
                    }
                    if tot_len > MAX_RECORD_LENGTH {
                        return Err(WalDecodeError::RecordTooLong { lsn, len: tot_len });
                    }
                    self.state = State::InRecord(Partial {
                        start: lsn,
                        tot_len,
                        // Allocated only if the record must be assembled
                        // from pieces (see InRecord).
                        data: Vec::new(),
                        header_checked: false,
                    });
                }
                State::SkipContrecord { remaining, .. } => {
                    let n = (*remaining as usize).min(page_left).min(self.buf.len());
                    if n == 0 {
                        return Ok(false);
                    }
                    *remaining -= n as u32;
                    let done = *remaining == 0;
                    self.advance(n);
                    if done {
                        self.state = State::RecordStart;
                        self.skip_to = Some(Lsn(maxalign(self.pos.0 as usize) as u64));
                    }
                }
                State::InRecord(p) => {
                    let missing = p.tot_len as usize - p.data.len();
                    let n = missing.min(page_left).min(self.buf.len());
                    if n == 0 {
                        return Ok(false);
                    }
                    if p.data.is_empty() && n == missing {
                        // The whole record is on this page and buffered:
                        // decoded from the buffer into the caller's slot.
                        let start = p.start;
                        self.state = State::RecordStart;
                        self.finish_whole_record(start, n, out)?;
                        return Ok(true);
                    }
                    if p.data.capacity() == 0 {
                        p.data = std::mem::take(&mut self.spare);
                        p.data.clear();
                        p.data
                            .reserve((p.tot_len as usize).min(INITIAL_RECORD_CAPACITY));
                    }
                    p.data.extend_from_slice(&self.buf[..n]);
                    self.advance(n);
                    if self.after_record_bytes(out)? {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Checks the header once complete; finishes the record once complete.
    fn after_record_bytes(&mut self, out: &mut WalRecord) -> Result<bool, WalDecodeError> {
        let State::InRecord(p) = &mut self.state else {
            return Ok(false);
        };
        if !p.header_checked && p.data.len() >= SIZE_OF_XLOG_RECORD {
            let h = XLogRecordHeader::decode(&p.data).unwrap_or_default();
            check_record_header(&h, p.start, self.prev_record, &self.cfg.format)?;
            p.header_checked = true;
        }
        if p.data.len() < p.tot_len as usize {
            return Ok(false);
        }
        let State::InRecord(p) = std::mem::replace(&mut self.state, State::RecordStart) else {
            return Ok(false);
        };
        // The assembled bytes become the slot's; the slot's old buffer is
        // kept for the next assembly.
        let mut data = p.data;
        std::mem::swap(&mut out.raw, &mut data);
        self.spare = data;
        self.finish_record(p.start, out)?;
        Ok(true)
    }

    /// A record lying whole in the buffer's first `len` bytes: header
    /// check, then copied into the slot and decoded.
    fn finish_whole_record(
        &mut self,
        start: Lsn,
        len: usize,
        out: &mut WalRecord,
    ) -> Result<(), WalDecodeError> {
        let bytes = &self.buf[..len];
        let h = XLogRecordHeader::decode(bytes).unwrap_or_default();
        check_record_header(&h, start, self.prev_record, &self.cfg.format)?;
        out.raw.clear();
        out.raw.extend_from_slice(bytes);
        self.advance(len);
        self.finish_record(start, out)
    }

    /// Decodes the record in `out.raw`, which started at `start` and ended
    /// just before `pos`, and sets up the skip to the next record.
    fn finish_record(&mut self, start: Lsn, out: &mut WalRecord) -> Result<(), WalDecodeError> {
        let header = XLogRecordHeader::decode(&out.raw).unwrap_or_default();
        let aligned_end = Lsn(maxalign(self.pos.0 as usize) as u64);
        let next = if is_xlog_switch(&header) {
            self.cfg.segment_size.align_up(aligned_end)
        } else {
            aligned_end
        };
        decode_in_place(start, next, &self.cfg.format, out)?;
        self.prev_record = Some(start);
        if next > self.pos {
            self.skip_to = Some(next);
        }
        Ok(())
    }

    /// Validates and consumes the page header at `pos` (a page boundary) and
    /// reconciles it with the current state. Ok(false) = need more bytes.
    fn read_page_header(&mut self) -> Result<bool, WalDecodeError> {
        let lsn = self.pos;
        let Some(size) = XLogPageHeader::size_from_prefix(&self.buf) else {
            return Ok(false);
        };
        if self.buf.len() < size.max(SIZE_OF_XLOG_SHORT_PHD) {
            return Ok(false);
        }
        let Some(hdr) = XLogPageHeader::decode(&self.buf) else {
            return Ok(false);
        };
        hdr.validate(
            lsn,
            &self.cfg.format,
            self.cfg.segment_size,
            self.cfg.system_identifier,
        )?;
        if let Some((_, prev_tli)) = self.last_page {
            if hdr.tli < prev_tli {
                return Err(WalDecodeError::TimelineWentBackwards {
                    lsn,
                    tli: hdr.tli,
                    prev_tli,
                });
            }
        }
        self.last_page = Some((lsn, hdr.tli));

        let contrecord = hdr.info & XLP_FIRST_IS_CONTRECORD != 0;
        let overwrite = hdr.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD != 0;
        match &mut self.state {
            State::FirstPage => {
                if contrecord && hdr.rem_len == 0 {
                    // A continuation of nothing; any non-zero length would do.
                    return Err(WalDecodeError::BadContrecordLength {
                        lsn,
                        record_lsn: lsn,
                        rem_len: 0,
                        expected: 1,
                    });
                }
                self.state = if contrecord {
                    State::SkipContrecord {
                        remaining: hdr.rem_len,
                        since: lsn,
                    }
                } else {
                    State::RecordStart
                };
            }
            State::RecordStart => {
                if contrecord {
                    return Err(WalDecodeError::UnexpectedContrecord { lsn });
                }
            }
            State::SkipContrecord { remaining, since } => {
                if overwrite {
                    self.state = State::RecordStart;
                } else if !contrecord {
                    return Err(WalDecodeError::MissingContrecord {
                        lsn,
                        record_lsn: *since,
                    });
                } else if hdr.rem_len != *remaining {
                    return Err(WalDecodeError::BadContrecordLength {
                        lsn,
                        record_lsn: *since,
                        rem_len: hdr.rem_len,
                        expected: *remaining,
                    });
                }
            }
            State::InRecord(p) => {
                let expected = p.tot_len - p.data.len() as u32;
                if overwrite {
                    // Crash recovery gave up on this record and wrote a new
                    // one here; the partial record never happened.
                    self.aborted_record = Some(p.start);
                    self.state = State::RecordStart;
                } else if !contrecord {
                    return Err(WalDecodeError::MissingContrecord {
                        lsn,
                        record_lsn: p.start,
                    });
                } else if hdr.rem_len == 0 || hdr.rem_len != expected {
                    return Err(WalDecodeError::BadContrecordLength {
                        lsn,
                        record_lsn: p.start,
                        rem_len: hdr.rem_len,
                        expected,
                    });
                }
            }
        }
        self.advance(hdr.size());
        Ok(true)
    }
}

/// `ValidXLogRecordHeader`: length, rmgr id and prev-link.
fn check_record_header(
    h: &XLogRecordHeader,
    lsn: Lsn,
    prev_record: Option<Lsn>,
    format: &WalFormat,
) -> Result<(), WalDecodeError> {
    if (h.tot_len as usize) < SIZE_OF_XLOG_RECORD {
        return Err(WalDecodeError::RecordTooShort {
            lsn,
            len: h.tot_len,
        });
    }
    if !(h.rmid <= format.rm_max_builtin_id || h.rmid >= crate::rmgr::RM_MIN_CUSTOM_ID) {
        return Err(WalDecodeError::BadRmgrId { lsn, rmid: h.rmid });
    }
    match prev_record {
        Some(expected) if h.prev != expected => Err(WalDecodeError::BadPrevLink {
            lsn,
            prev: h.prev,
            expected: Some(expected),
        }),
        // Without a previous record we can only check that the link points
        // backwards.
        None if h.prev >= lsn => Err(WalDecodeError::BadPrevLink {
            lsn,
            prev: h.prev,
            expected: None,
        }),
        _ => Ok(()),
    }
}

/// Decodes every record in `bytes` (which start at `start`). Returns the
/// records and, if decoding stopped early, the error; a stream that simply
/// ends (between or inside records) is not an error here — call
/// [`WalStreamDecoder::check_end_of_input`] on a decoder for that.
pub fn decode_all(
    cfg: WalDecoderConfig,
    start: Lsn,
    bytes: &[u8],
) -> (Vec<WalRecord>, Option<WalDecodeError>) {
    let mut dec = match WalStreamDecoder::new(start, cfg) {
        Ok(d) => d,
        Err(e) => return (Vec::new(), Some(e)),
    };
    dec.feed(bytes);
    let mut out = Vec::new();
    loop {
        match dec.next_record() {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
