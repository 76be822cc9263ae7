//! What [`crate::apply`] consumes: the target page's identity, cluster
//! settings that change redo output, and the per-page records.
//!
//! A WAL record can touch several pages (an UPDATE moving a row touches two
//! heap pages; HEAP2 VISIBLE a heap page and a visibility map page), so the
//! page server stores, under each page's key, the whole record plus the id of
//! the block reference that *is* this page ([`RedoRecord::wal_bytes`]).
//! Redo re-decodes the record (CRC-checked) and applies only that block's
//! part. Some page changes are implied rather than referenced — heap records
//! clear visibility map bits of a VM page they do not reference — and are
//! stored as synthetic records ([`RedoRecord::ClearVmBits`],
//! [`RedoRecord::TruncateVm`]); [`crate::vm::implied_vm_clears`] computes
//! them at ingest.
//!
//! [`RedoRecord::encode`] / [`RedoRecord::decode`] give a compact, versioned
//! byte form for storing records as values.
//!
//! Also here: [`Ctx`], the per-(record, block) view redo routines work with,
//! and [`Reader`], a bounds-checked little-endian cursor over record payloads.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::wal::record::decode_record;
use postgres_ffi::wal::{BlockRef, WalRecord, XLR_RMGR_INFO_MASK};
use postgres_ffi::{BlockNumber, Lsn, PgMajorVersion};

use crate::error::{PageOpError, RedoError};

/// Cluster-wide settings that influence the bytes redo produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Data checksums are on: stamp `pd_checksum` on every output page.
    pub data_checksums: bool,
    /// `wal_log_hints = on`.
    pub wal_log_hints: bool,
}

impl ClusterSettings {
    /// `XLogHintBitIsNeeded()`: hint-bit changes are WAL-logged, so redo also
    /// bumps page LSNs it would otherwise leave alone (HEAP2 VISIBLE).
    pub fn hint_bits_logged(&self) -> bool {
        self.data_checksums || self.wal_log_hints
    }
}

/// The page being reconstructed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedoTarget {
    pub rel: RelFileNode,
    /// Fork number (0 main, 1 FSM, 2 VM, 3 init).
    pub forknum: u8,
    pub blkno: BlockNumber,
    pub settings: ClusterSettings,
}

/// A stored WAL record, either as bytes (what the page server keeps) or
/// already decoded (what a WAL reader has in hand).
#[derive(Debug, Clone)]
pub enum WalSource {
    Raw {
        /// Start of the record (only used in error messages).
        lsn: Lsn,
        /// End of the record (`EndRecPtr`): the LSN stamped on pages.
        end_lsn: Lsn,
        /// The complete record, header included.
        bytes: Bytes,
    },
    Decoded(Arc<WalRecord>),
}

/// One change to apply to the target page, in LSN order.
#[derive(Debug, Clone)]
pub enum RedoRecord {
    /// Block reference `block_id` of a PostgreSQL WAL record is this page.
    Wal { source: WalSource, block_id: u8 },
    /// Clear visibility map `flags` of heap block `heap_blkno` on this VM
    /// page (implied by a heap record on that heap block). Does not change
    /// the page LSN, as in PostgreSQL. A new page is initialised first.
    ClearVmBits { heap_blkno: BlockNumber, flags: u8 },
    /// The heap was truncated to `heap_blocks` blocks (Storage/TRUNCATE with
    /// the VM flag): clear the bits of heap blocks ≥ `heap_blocks` on this VM
    /// page, the last one kept. Store it only if that VM page exists.
    TruncateVm { heap_blocks: BlockNumber },
}

impl RedoRecord {
    /// A record as stored: its bytes, start and end LSN, and block id.
    pub fn wal_bytes(lsn: Lsn, end_lsn: Lsn, bytes: Bytes, block_id: u8) -> Self {
        RedoRecord::Wal {
            source: WalSource::Raw {
                lsn,
                end_lsn,
                bytes,
            },
            block_id,
        }
    }

    /// A decoded record; `block_id` selects the target block.
    pub fn decoded(record: Arc<WalRecord>, block_id: u8) -> Self {
        RedoRecord::Wal {
            source: WalSource::Decoded(record),
            block_id,
        }
    }

    /// The LSN this record stamps on the page, if it is a WAL record.
    pub fn end_lsn(&self) -> Option<Lsn> {
        match self {
            RedoRecord::Wal { source, .. } => Some(match source {
                WalSource::Raw { end_lsn, .. } => *end_lsn,
                WalSource::Decoded(r) => r.end_lsn,
            }),
            _ => None,
        }
    }

    /// Compact byte form for storage: a tag byte, then
    /// - 1 (WAL): start LSN u64, end LSN u64, block id u8, record bytes;
    /// - 2 (ClearVmBits): heap block u32, flags u8;
    /// - 3 (TruncateVm): heap blocks u32.
    ///
    /// Integers are little-endian.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RedoRecord::Wal { source, block_id } => {
                let (lsn, end, bytes): (_, _, &[u8]) = match source {
                    WalSource::Raw {
                        lsn,
                        end_lsn,
                        bytes,
                    } => (*lsn, *end_lsn, bytes),
                    WalSource::Decoded(r) => (r.lsn, r.end_lsn, &r.raw),
                };
                let mut v = Vec::with_capacity(18 + bytes.len());
                v.push(1);
                v.extend_from_slice(&lsn.0.to_le_bytes());
                v.extend_from_slice(&end.0.to_le_bytes());
                v.push(*block_id);
                v.extend_from_slice(bytes);
                v
            }
            RedoRecord::ClearVmBits { heap_blkno, flags } => {
                let mut v = vec![2];
                v.extend_from_slice(&heap_blkno.to_le_bytes());
                v.push(*flags);
                v
            }
            RedoRecord::TruncateVm { heap_blocks } => {
                let mut v = vec![3];
                v.extend_from_slice(&heap_blocks.to_le_bytes());
                v
            }
        }
    }

    /// Inverse of [`Self::encode`]; `None` for bytes it did not produce.
    pub fn decode(buf: Bytes) -> Option<RedoRecord> {
        let mut r = Reader::new(&buf);
        match r.u8()? {
            1 => {
                let lsn = Lsn(r.u64()?);
                let end_lsn = Lsn(r.u64()?);
                let block_id = r.u8()?;
                let rest = buf.slice(r.pos()..);
                Some(RedoRecord::wal_bytes(lsn, end_lsn, rest, block_id))
            }
            2 => {
                let heap_blkno = r.u32()?;
                let flags = r.u8()?;
                r.at_end()
                    .then_some(RedoRecord::ClearVmBits { heap_blkno, flags })
            }
            3 => {
                let heap_blocks = r.u32()?;
                r.at_end().then_some(RedoRecord::TruncateVm { heap_blocks })
            }
            _ => None,
        }
    }
}

impl WalSource {
    /// The decoded record (decoding stored bytes, CRC included).
    pub fn record(&self) -> Result<Cow<'_, WalRecord>, RedoError> {
        match self {
            WalSource::Decoded(r) => Ok(Cow::Borrowed(r.as_ref())),
            WalSource::Raw {
                lsn,
                end_lsn,
                bytes,
            } => Ok(Cow::Owned(decode_record(
                bytes.clone(),
                *lsn,
                *end_lsn,
                PgMajorVersion::V15.wal_format(),
            )?)),
        }
    }
}

/// `Rmgr/TYPE` of a record, for messages.
pub fn record_name(rec: &WalRecord) -> String {
    rec.name(PgMajorVersion::V15)
}

/// A record and the block reference being redone: what every rmgr routine
/// gets, with error constructors that name the record.
pub struct Ctx<'a> {
    pub rec: &'a WalRecord,
    pub blk: &'a BlockRef,
    pub settings: &'a ClusterSettings,
}

impl<'a> Ctx<'a> {
    /// The data of the block reference being redone.
    pub fn data(&self) -> &'a [u8] {
        self.rec.block_data(self.blk)
    }

    pub fn end_lsn(&self) -> Lsn {
        self.rec.end_lsn
    }

    /// The rmgr's part of xl_info.
    pub fn info(&self) -> u8 {
        self.rec.info() & XLR_RMGR_INFO_MASK
    }

    pub fn malformed(&self, what: impl Into<String>) -> RedoError {
        RedoError::Malformed {
            lsn: self.rec.lsn,
            name: record_name(self.rec),
            what: what.into(),
        }
    }

    pub fn page_err(&self, source: PageOpError) -> RedoError {
        RedoError::Page {
            lsn: self.rec.lsn,
            name: record_name(self.rec),
            source,
        }
    }

    pub fn missing_base(&self) -> RedoError {
        RedoError::MissingBase {
            lsn: self.rec.lsn,
            name: record_name(self.rec),
        }
    }

    /// A reader over the record's main data.
    pub fn main(&self) -> Reader<'a> {
        Reader::new(self.rec.main_data())
    }

    /// A reader over this block's data.
    pub fn block_data(&self) -> Reader<'a> {
        Reader::new(self.data())
    }

    /// Another block reference of the same record.
    pub fn other_block(&self, block_id: u8) -> Option<&'a BlockRef> {
        self.rec.block(block_id)
    }
}

/// Bounds-checked little-endian cursor; every read returns `None` past the
/// end instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn at_end(&self) -> bool {
        self.remaining() == 0
    }
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        s
    }
    /// Moves to the next even offset (SHORTALIGN relative to the buffer
    /// start, which PostgreSQL keeps MAXALIGNed).
    pub fn align2(&mut self) {
        self.pos += self.pos & 1;
    }
    /// Jumps to an absolute offset (must be within the buffer).
    pub fn seek(&mut self, pos: usize) -> Option<()> {
        (pos <= self.buf.len()).then(|| self.pos = pos)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        let b = self.bytes(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}
