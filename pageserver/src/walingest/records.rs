//! Parsers for the main data of the Postgres 15 records ingest acts on
//! (non-page resource managers, and the heap flags that imply visibility
//! map changes). Layouts are the C structs of the PG15 headers
//! (`xact.h`, `storage_xlog.h`, `dbcommands_xlog.h`, `clog.h`,
//! `multixact.h`, `relmapper.h`, `heapam_xlog.h`, `standbydefs.h`,
//! `origin.h`, `xlog_internal.h`), little-endian, with C alignment.
//!
//! Every parser takes untrusted bytes and returns [`ParseError`] naming the
//! structure and what was short or invalid; nothing here panics.

use bytes::Bytes;
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::{Lsn, Oid, TransactionId};

/// Main data that does not have the layout its record type promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ParseError {
    pub what: &'static str,
    pub detail: String,
}

/// Bounds-checked little-endian reads.
struct Reader<'a> {
    what: &'static str,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, data: &'a [u8]) -> Self {
        Reader { what, data, pos: 0 }
    }

    fn err(&self, detail: String) -> ParseError {
        ParseError {
            what: self.what,
            detail,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(format!(
                "needs {n} bytes at offset {}, main data is {} bytes",
                self.pos,
                self.data.len()
            ))),
        }
    }

    /// Checks that `n` more bytes are present without consuming them, so a
    /// count read from the record can be trusted before allocating for it.
    fn need(&self, n: usize) -> Result<(), ParseError> {
        if self.data.len() - self.pos >= n {
            Ok(())
        } else {
            Err(self.err(format!(
                "needs {n} bytes at offset {}, main data is {} bytes",
                self.pos,
                self.data.len()
            )))
        }
    }

    fn skip(&mut self, n: usize) -> Result<(), ParseError> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ParseError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A C `int` element count that must be non-negative.
    fn count(&mut self, what: &str) -> Result<usize, ParseError> {
        let n = self.u32()? as i32;
        usize::try_from(n).map_err(|_| self.err(format!("negative {what} count {n}")))
    }

    fn rnode(&mut self) -> Result<RelFileNode, ParseError> {
        Ok(RelFileNode {
            spcnode: self.u32()?,
            dbnode: self.u32()?,
            relnode: self.u32()?,
        })
    }

    /// Skips to the next multiple of `align` (C struct padding).
    fn align(&mut self, align: usize) -> Result<(), ParseError> {
        let pad = (align - self.pos % align) % align;
        self.skip(pad)
    }

    fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
}

// ---- Transaction ----

pub const XACT_XINFO_HAS_DBINFO: u32 = 1 << 0;
pub const XACT_XINFO_HAS_SUBXACTS: u32 = 1 << 1;
pub const XACT_XINFO_HAS_RELFILENODES: u32 = 1 << 2;
pub const XACT_XINFO_HAS_INVALS: u32 = 1 << 3;
pub const XACT_XINFO_HAS_TWOPHASE: u32 = 1 << 4;
pub const XACT_XINFO_HAS_ORIGIN: u32 = 1 << 5;
pub const XACT_XINFO_HAS_GID: u32 = 1 << 7;
pub const XACT_XINFO_HAS_DROPPED_STATS: u32 = 1 << 8;

/// Size of a `SharedInvalidationMessage`.
const SIZEOF_INVAL_MESSAGE: usize = 16;
/// Size of an `xl_xact_stats_item` (kind, dboid, objoid).
const SIZEOF_STATS_ITEM: usize = 12;
/// Size of a `RelFileNode`.
const SIZEOF_RELFILENODE: usize = 12;

/// A commit or abort record (`ParseCommitRecord` / `ParseAbortRecord`),
/// with the parts ingest needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XactFinish {
    pub xact_time: i64,
    pub xinfo: u32,
    pub subxacts: Vec<TransactionId>,
    /// Relations to drop: on commit those the transaction deleted, on abort
    /// those it created.
    pub rels: Vec<RelFileNode>,
    /// For COMMIT_PREPARED / ABORT_PREPARED: the prepared transaction.
    pub twophase_xid: Option<TransactionId>,
    pub origin_lsn: Option<Lsn>,
    pub origin_timestamp: Option<i64>,
}

/// Parses COMMIT (`is_commit`) or ABORT main data; `has_info` is
/// `XLOG_XACT_HAS_INFO` of the record's info byte.
pub fn parse_xact_finish(
    data: &[u8],
    has_info: bool,
    is_commit: bool,
) -> Result<XactFinish, ParseError> {
    let mut r = Reader::new(
        if is_commit {
            "xl_xact_commit"
        } else {
            "xl_xact_abort"
        },
        data,
    );
    let mut out = XactFinish {
        xact_time: r.u64()? as i64,
        ..Default::default()
    };
    if has_info {
        out.xinfo = r.u32()?;
    }
    let x = out.xinfo;
    if x & XACT_XINFO_HAS_DBINFO != 0 {
        r.skip(8)?; // dbId, tsId
    }
    if x & XACT_XINFO_HAS_SUBXACTS != 0 {
        let n = r.count("subtransaction")?;
        // Bound by the data actually present before allocating.
        r.need(n.saturating_mul(4))?;
        out.subxacts = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
    }
    if x & XACT_XINFO_HAS_RELFILENODES != 0 {
        let n = r.count("relfilenode")?;
        r.need(n.saturating_mul(SIZEOF_RELFILENODE))?;
        out.rels = (0..n).map(|_| r.rnode()).collect::<Result<_, _>>()?;
    }
    if x & XACT_XINFO_HAS_DROPPED_STATS != 0 {
        let n = r.count("dropped stats")?;
        r.skip(n.saturating_mul(SIZEOF_STATS_ITEM))?;
    }
    if is_commit && x & XACT_XINFO_HAS_INVALS != 0 {
        let n = r.count("invalidation message")?;
        r.skip(n.saturating_mul(SIZEOF_INVAL_MESSAGE))?;
    }
    if x & XACT_XINFO_HAS_TWOPHASE != 0 {
        out.twophase_xid = Some(r.u32()?);
        if x & XACT_XINFO_HAS_GID != 0 {
            let rest = r.rest();
            let len = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| r.err("unterminated GID".to_owned()))?;
            r.skip(len + 1)?;
        }
    }
    if x & XACT_XINFO_HAS_ORIGIN != 0 {
        // Unaligned after a GID, hence read byte-wise.
        out.origin_lsn = Some(Lsn(r.u64()?));
        out.origin_timestamp = Some(r.u64()? as i64);
    }
    Ok(out)
}

/// The xid of a PREPARE record's state (`xl_xact_prepare.xid`), checked
/// against the state file magic.
pub fn parse_xact_prepare_xid(data: &[u8]) -> Result<TransactionId, ParseError> {
    let mut r = Reader::new("xl_xact_prepare", data);
    let magic = r.u32()?;
    if magic != postgres_ffi::twophase::TWOPHASE_MAGIC {
        return Err(r.err(format!("bad magic {magic:#x}")));
    }
    let _total_len = r.u32()?;
    r.u32()
}

// ---- Storage ----

/// `xl_smgr_create`.
pub fn parse_smgr_create(data: &[u8]) -> Result<(RelFileNode, u32), ParseError> {
    let mut r = Reader::new("xl_smgr_create", data);
    Ok((r.rnode()?, r.u32()?))
}

pub use crate::walredo::native::{parse_smgr_truncate, SmgrTruncate};

/// `SMGR_TRUNCATE_*` flags.
pub const SMGR_TRUNCATE_HEAP: u32 = 0x0001;
pub const SMGR_TRUNCATE_VM: u32 = 0x0002;
pub const SMGR_TRUNCATE_FSM: u32 = 0x0004;

// ---- Database ----

/// `xl_dbase_create_file_copy_rec`: (db, tablespace, src db, src tablespace).
pub fn parse_dbase_create_file_copy(data: &[u8]) -> Result<(Oid, Oid, Oid, Oid), ParseError> {
    let mut r = Reader::new("xl_dbase_create_file_copy_rec", data);
    Ok((r.u32()?, r.u32()?, r.u32()?, r.u32()?))
}

/// `xl_dbase_create_wal_log_rec`: (db, tablespace).
pub fn parse_dbase_create_wal_log(data: &[u8]) -> Result<(Oid, Oid), ParseError> {
    let mut r = Reader::new("xl_dbase_create_wal_log_rec", data);
    Ok((r.u32()?, r.u32()?))
}

/// `xl_dbase_drop_rec`: (db, tablespaces).
pub fn parse_dbase_drop(data: &[u8]) -> Result<(Oid, Vec<Oid>), ParseError> {
    let mut r = Reader::new("xl_dbase_drop_rec", data);
    let db = r.u32()?;
    let n = r.count("tablespace")?;
    r.need(n.saturating_mul(4))?;
    let spcs = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
    Ok((db, spcs))
}

// ---- RelMap ----

/// `xl_relmap_update`: (db, tablespace, map bytes).
pub fn parse_relmap_update(data: &[u8]) -> Result<(Oid, Oid, Bytes), ParseError> {
    let mut r = Reader::new("xl_relmap_update", data);
    let db = r.u32()?;
    let spc = r.u32()?;
    let n = r.count("map byte")?;
    let map = Bytes::copy_from_slice(r.take(n)?);
    Ok((db, spc, map))
}

// ---- CLOG and MultiXact ----

/// The `int pageno` of CLOG ZEROPAGE and MultiXact ZERO_*_PAGE records.
pub fn parse_pageno(what: &'static str, data: &[u8]) -> Result<u32, ParseError> {
    let mut r = Reader::new(what, data);
    let n = r.u32()? as i32;
    u32::try_from(n).map_err(|_| r.err(format!("negative page number {n}")))
}

/// `xl_clog_truncate`: (pageno, oldestXact, oldestXactDb).
pub fn parse_clog_truncate(data: &[u8]) -> Result<(u32, TransactionId, Oid), ParseError> {
    let pageno = parse_pageno("xl_clog_truncate", data)?;
    let mut r = Reader::new("xl_clog_truncate", data);
    r.skip(4)?;
    Ok((pageno, r.u32()?, r.u32()?))
}

/// `xl_multixact_create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiXactCreate {
    pub mid: u32,
    pub moff: u32,
    /// (xid, status) per member.
    pub members: Vec<(TransactionId, u8)>,
}

/// Highest `MultiXactStatus` value (`MultiXactStatusUpdate`).
const MULTIXACT_STATUS_MAX: u32 = 5;

pub fn parse_multixact_create(data: &[u8]) -> Result<MultiXactCreate, ParseError> {
    let mut r = Reader::new("xl_multixact_create", data);
    let mid = r.u32()?;
    let moff = r.u32()?;
    let n = r.count("member")?;
    r.need(n.saturating_mul(8))?;
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let xid = r.u32()?;
        let status = r.u32()?;
        if status > MULTIXACT_STATUS_MAX {
            return Err(r.err(format!("member {xid} has invalid status {status}")));
        }
        members.push((xid, status as u8));
    }
    Ok(MultiXactCreate { mid, moff, members })
}

/// `xl_multixact_truncate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiXactTruncate {
    pub oldest_multi_db: Oid,
    pub start_trunc_off: u32,
    pub end_trunc_off: u32,
    pub start_trunc_memb: u32,
    pub end_trunc_memb: u32,
}

pub fn parse_multixact_truncate(data: &[u8]) -> Result<MultiXactTruncate, ParseError> {
    let mut r = Reader::new("xl_multixact_truncate", data);
    Ok(MultiXactTruncate {
        oldest_multi_db: r.u32()?,
        start_trunc_off: r.u32()?,
        end_trunc_off: r.u32()?,
        start_trunc_memb: r.u32()?,
        end_trunc_memb: r.u32()?,
    })
}

// ---- Heap: visibility map effects ----

pub const XLH_INSERT_ALL_VISIBLE_CLEARED: u8 = 1 << 0;
pub const XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED: u8 = 1 << 0;
pub const XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED: u8 = 1 << 1;
pub const XLH_DELETE_ALL_VISIBLE_CLEARED: u8 = 1 << 0;
pub const XLH_LOCK_ALL_FROZEN_CLEARED: u8 = 1 << 0;

/// The `flags` byte of a heap record at `offset` in its main data.
pub fn heap_flags(what: &'static str, data: &[u8], offset: usize) -> Result<u8, ParseError> {
    let mut r = Reader::new(what, data);
    r.skip(offset)?;
    r.u8()
}

// ---- Standby, XLOG, origins ----

/// `xl_running_xacts`: (nextXid, oldestRunningXid).
pub fn parse_running_xacts(data: &[u8]) -> Result<(TransactionId, TransactionId), ParseError> {
    let mut r = Reader::new("xl_running_xacts", data);
    r.skip(8)?; // xcnt, subxcnt
    r.skip(1)?; // subxid_overflow
    r.align(4)?;
    Ok((r.u32()?, r.u32()?))
}

/// `xl_parameter_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterChange {
    pub max_connections: i32,
    pub max_worker_processes: i32,
    pub max_wal_senders: i32,
    pub max_prepared_xacts: i32,
    pub max_locks_per_xact: i32,
    pub wal_level: i32,
    pub wal_log_hints: bool,
    pub track_commit_timestamp: bool,
}

pub fn parse_parameter_change(data: &[u8]) -> Result<ParameterChange, ParseError> {
    let mut r = Reader::new("xl_parameter_change", data);
    Ok(ParameterChange {
        max_connections: r.u32()? as i32,
        max_worker_processes: r.u32()? as i32,
        max_wal_senders: r.u32()? as i32,
        max_prepared_xacts: r.u32()? as i32,
        max_locks_per_xact: r.u32()? as i32,
        wal_level: r.u32()? as i32,
        wal_log_hints: r.u8()? != 0,
        track_commit_timestamp: r.u8()? != 0,
    })
}

/// `xl_end_of_recovery`: (this timeline, previous timeline).
pub fn parse_end_of_recovery(data: &[u8]) -> Result<(u32, u32), ParseError> {
    let mut r = Reader::new("xl_end_of_recovery", data);
    r.skip(8)?;
    Ok((r.u32()?, r.u32()?))
}

/// The `Oid` of an XLOG NEXTOID record.
pub fn parse_next_oid(data: &[u8]) -> Result<Oid, ParseError> {
    Reader::new("XLOG NEXTOID", data).u32()
}

/// `xl_replorigin_set`: (remote_lsn, node_id).
pub fn parse_replorigin_set(data: &[u8]) -> Result<(Lsn, u16), ParseError> {
    let mut r = Reader::new("xl_replorigin_set", data);
    Ok((Lsn(r.u64()?), r.u16()?))
}

/// `xl_replorigin_drop`: node_id.
pub fn parse_replorigin_drop(data: &[u8]) -> Result<u16, ParseError> {
    Reader::new("xl_replorigin_drop", data).u16()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn commit_with_everything() {
        let mut d = Vec::new();
        d.extend_from_slice(&123i64.to_le_bytes());
        let xinfo = XACT_XINFO_HAS_DBINFO
            | XACT_XINFO_HAS_SUBXACTS
            | XACT_XINFO_HAS_RELFILENODES
            | XACT_XINFO_HAS_DROPPED_STATS
            | XACT_XINFO_HAS_INVALS
            | XACT_XINFO_HAS_TWOPHASE
            | XACT_XINFO_HAS_GID
            | XACT_XINFO_HAS_ORIGIN;
        d.extend(le(&[xinfo, 5, 1663]));
        d.extend(le(&[2, 700, 701]));
        d.extend(le(&[1, 1663, 5, 16384]));
        d.extend(le(&[1, 0, 0, 0]));
        d.extend(le(&[1]));
        d.extend([0u8; 16]);
        d.extend(le(&[699]));
        d.extend(b"gid\0");
        d.extend(0x1234u64.to_le_bytes());
        d.extend(77i64.to_le_bytes());
        let p = parse_xact_finish(&d, true, true).unwrap();
        assert_eq!(p.xact_time, 123);
        assert_eq!(p.subxacts, vec![700, 701]);
        assert_eq!(
            p.rels,
            vec![RelFileNode {
                spcnode: 1663,
                dbnode: 5,
                relnode: 16384
            }]
        );
        assert_eq!(p.twophase_xid, Some(699));
        assert_eq!(p.origin_lsn, Some(Lsn(0x1234)));
        assert_eq!(p.origin_timestamp, Some(77));

        // An abort has no invalidations: the same bytes minus them.
        assert!(parse_xact_finish(&d[..20], true, true).is_err());
        let bare = parse_xact_finish(&d[..8], false, false).unwrap();
        assert_eq!(bare.xinfo, 0);
        // A huge subxact count fails cleanly.
        let mut huge = d[..12].to_vec();
        huge[8..12].copy_from_slice(&XACT_XINFO_HAS_SUBXACTS.to_le_bytes());
        huge.extend(le(&[0x7FFF_FFFF]));
        assert!(parse_xact_finish(&huge, true, true).is_err());
        huge.truncate(12);
        huge.extend(le(&[u32::MAX]));
        assert!(parse_xact_finish(&huge, true, true).is_err());
    }

    #[test]
    fn small_structs() {
        assert_eq!(
            parse_running_xacts(
                &[le(&[1, 0]), vec![0, 0xAA, 0xAA, 0xAA], le(&[900, 800, 899])].concat()
            ),
            Ok((900, 800))
        );
        assert_eq!(parse_pageno("x", &le(&[7])), Ok(7));
        assert!(parse_pageno("x", &le(&[u32::MAX])).is_err());
        let mc = parse_multixact_create(&le(&[3, 10, 2, 500, 1, 501, 5])).unwrap();
        assert_eq!(mc.members, vec![(500, 1), (501, 5)]);
        assert!(parse_multixact_create(&le(&[3, 10, 1, 500, 9])).is_err());
        assert!(parse_multixact_create(&le(&[3, 10, 2, 500, 1])).is_err());
        assert_eq!(parse_dbase_drop(&le(&[5, 1, 1663])), Ok((5, vec![1663])));
        let (db, spc, map) =
            parse_relmap_update(&[le(&[0, 1664, 3]), vec![1, 2, 3]].concat()).unwrap();
        assert_eq!((db, spc, &map[..]), (0, 1664, &[1u8, 2, 3][..]));
        assert!(heap_flags("h", &[0, 0], 2).is_err());
        assert_eq!(heap_flags("h", &[0, 0, 9], 2), Ok(9));
    }
}
