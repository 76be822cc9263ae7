//! [`NativeRedo`]: the page server's redo, in Rust, without a Postgres
//! process.
//!
//! Dispatch per record (records arrive oldest first, after the base image):
//!
//! | record | applied by |
//! |---|---|
//! | `ClogSetStatus` | [`pages::clog_set_status`] on the CLOG page the key names |
//! | `MultixactOffsetCreate` | [`pages::multixact_set_offset`] |
//! | `MultixactMembersCreate` | [`pages::multixact_set_members`] |
//! | `ClearVisibilityMapFlags` | [`pages::vm_clear`] for each heap block on the key's VM page |
//! | `Postgres` Storage/TRUNCATE on a VM page | [`pages::vm_truncate_tail`] (ingest stores the raw record there) |
//! | other `Postgres` records | [`NativeRedo::apply_postgres`]: `pg_redo`'s native redo of the record's block reference that is this page |
//! | `Test` | append, as [`super::TestRedo`] |
//!
//! A synthetic record must land on the page it was meant for (the key's
//! SLRU page or VM page); anything else, a missing base page, or a page that
//! is not 8 KiB is [`RedoError::Failed`], naming the key and record LSN; a
//! record type `pg_redo` does not implement is [`RedoError::Unsupported`].
//!
//! With data checksums on, a reconstructed relation page gets its checksum
//! once, after the last record (SLRU pages have none).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pageserver_api::key::Key;
use pageserver_api::reltag::{SlruKind, VISIBILITYMAP_FORKNUM};
use pageserver_api::value::WalRecord;
use postgres_ffi::rmgr::RM_SMGR_ID;
use postgres_ffi::slru::SLRU_PAGES_PER_SEGMENT;
use postgres_ffi::v15::info;
use postgres_ffi::wal::record::decode_record;
use postgres_ffi::wal::WalRecord as DecodedRecord;
use postgres_ffi::{PgMajorVersion, BLCKSZ};
use utils::lsn::Lsn;

use pg_redo::{RedoRecord, RedoTarget};
use postgres_ffi::relfile::RelFileNode;

use super::pages::{self, PageError};
use super::{apply_test_record, describe, ClusterSettings, Redo, RedoError};

/// `SMGR_TRUNCATE_VM` in `xl_smgr_truncate.flags`.
pub const SMGR_TRUNCATE_VM: u32 = 0x0002;

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct NativeRedo;

impl NativeRedo {
    pub fn new() -> Self {
        NativeRedo
    }

    /// Redo of a raw Postgres record's block reference `block_id`, which
    /// is the page of `key`, by `pg_redo`. `record.end_lsn` is the LSN the
    /// record was stored at (its end, stamped on the page); `record.lsn` is
    /// the same value, since stored values do not keep the start. Checksums
    /// are left to [`Redo::reconstruct`], which stamps them once.
    pub fn apply_postgres(
        &self,
        key: Key,
        lsn: Lsn,
        page: &mut BytesMut,
        record: DecodedRecord,
        block_id: u8,
        settings: ClusterSettings,
    ) -> Result<(), RedoError> {
        let target = RedoTarget {
            rel: RelFileNode {
                spcnode: key.field2,
                dbnode: key.field3,
                relnode: key.field4,
            },
            forknum: key.field5,
            blkno: key.field6,
            settings: ClusterSettings {
                data_checksums: false,
                ..settings
            },
        };
        let record_lsn = record.end_lsn;
        let p = as_page(page, key, lsn)?;
        pg_redo::apply_in_place(
            &target,
            p,
            &[RedoRecord::decoded(Arc::new(record), block_id)],
        )
        .map_err(|e| match e {
            pg_redo::RedoError::Unsupported { name, .. } => RedoError::Unsupported {
                key,
                lsn,
                record_lsn,
                what: format!("Postgres record {name} has no native redo"),
            },
            other => RedoError::Failed {
                key,
                lsn,
                reason: format!("record at {record_lsn}: {other}"),
            },
        })
    }
}

/// The 8 KiB page in `buf`, or an error if the base is not a page.
fn as_page(buf: &mut BytesMut, key: Key, lsn: Lsn) -> Result<&mut [u8; BLCKSZ], RedoError> {
    let len = buf.len();
    (&mut buf[..]).try_into().map_err(|_| RedoError::Failed {
        key,
        lsn,
        reason: format!("page is {len} bytes, expected {BLCKSZ}"),
    })
}

/// SLRU page number of an SLRU block key of `kind`.
fn slru_pageno(key: Key, kind: SlruKind) -> Result<u32, String> {
    match key.to_slru_block() {
        Ok((k, segno, blkno)) if k == kind && blkno < SLRU_PAGES_PER_SEGMENT => segno
            .checked_mul(SLRU_PAGES_PER_SEGMENT)
            .map(|p| p + blkno)
            .ok_or_else(|| format!("segment {segno} is out of range")),
        _ => Err(format!("key is not a {kind} page")),
    }
}

/// VM block number of a visibility-map block key.
fn vm_blkno(key: Key) -> Result<u32, String> {
    if key.is_rel_vm_block_key() {
        Ok(key.field6)
    } else {
        Err("key is not a visibility map page".to_owned())
    }
}

impl NativeRedo {
    fn apply_one(
        &self,
        key: Key,
        lsn: Lsn,
        record_lsn: Lsn,
        page: &mut Option<BytesMut>,
        record: &WalRecord,
        settings: ClusterSettings,
    ) -> Result<(), RedoError> {
        let failed = |reason: String| RedoError::Failed {
            key,
            lsn,
            reason: format!("record at {record_lsn}: {reason}"),
        };
        let from_page_error = |e: PageError| failed(e.to_string());
        if let WalRecord::Test {
            append,
            will_init,
            clear,
        } = record
        {
            let buf = page.get_or_insert_with(BytesMut::new);
            apply_test_record(buf, append, *will_init, *clear);
            return Ok(());
        }
        if let WalRecord::Postgres { will_init, rec } = record {
            if *will_init {
                *page = Some(BytesMut::zeroed(BLCKSZ));
            }
            let buf = page
                .as_mut()
                .ok_or_else(|| failed("no base page for a Postgres record".to_owned()))?;
            return self.apply_postgres_record(key, lsn, record_lsn, buf, rec, settings);
        }
        let buf = page
            .as_mut()
            .ok_or_else(|| failed(format!("no base page for {}", describe(record))))?;
        let p = as_page(buf, key, lsn)?;
        match record {
            WalRecord::ClogSetStatus { xids, status, .. } => {
                let pageno = slru_pageno(key, SlruKind::Clog).map_err(failed)?;
                pages::clog_set_status(p, pageno, xids, *status).map_err(from_page_error)
            }
            WalRecord::MultixactOffsetCreate { mid, moff } => {
                let pageno = slru_pageno(key, SlruKind::MultiXactOffsets).map_err(failed)?;
                pages::multixact_set_offset(p, pageno, *mid, *moff).map_err(from_page_error)
            }
            WalRecord::MultixactMembersCreate { moff, members } => {
                let pageno = slru_pageno(key, SlruKind::MultiXactMembers).map_err(failed)?;
                pages::multixact_set_members(p, pageno, *moff, members).map_err(from_page_error)
            }
            WalRecord::ClearVisibilityMapFlags {
                new_heap_blkno,
                old_heap_blkno,
                flags,
            } => {
                let vm_blk = vm_blkno(key).map_err(failed)?;
                let blocks: Vec<u32> = [*new_heap_blkno, *old_heap_blkno]
                    .into_iter()
                    .flatten()
                    .collect();
                if blocks.is_empty() {
                    return Err(failed("ClearVisibilityMapFlags names no heap block".into()));
                }
                for heap_blk in blocks {
                    pages::vm_clear(p, vm_blk, heap_blk, *flags).map_err(from_page_error)?;
                }
                Ok(())
            }
            WalRecord::Test { .. } | WalRecord::Postgres { .. } => Ok(()),
        }
    }

    /// Raw Postgres records: the ones whose page effect is ours to apply
    /// (non-page rmgrs), else the Postgres-record redo.
    fn apply_postgres_record(
        &self,
        key: Key,
        lsn: Lsn,
        record_lsn: Lsn,
        buf: &mut BytesMut,
        raw: &Bytes,
        settings: ClusterSettings,
    ) -> Result<(), RedoError> {
        let failed = |reason: String| RedoError::Failed {
            key,
            lsn,
            reason: format!("record at {record_lsn}: {reason}"),
        };
        let format = PgMajorVersion::V15.wal_format();
        // The stored record was CRC-checked at ingest; decoding again checks
        // it once more, and gives block references and main data.
        let rec = decode_record(&raw[..], record_lsn, record_lsn, format)
            .map_err(|e| failed(format!("stored WAL record does not decode: {e}")))?;
        if rec.rmid() == RM_SMGR_ID && rec.header.rmgr_info() == info::smgr::TRUNCATE {
            let vm_blk = vm_blkno(key).map_err(failed)?;
            let t = parse_smgr_truncate(rec.main_data()).map_err(failed)?;
            let rel_matches = key.field2 == t.spcnode
                && key.field3 == t.dbnode
                && key.field4 == t.relnode
                && key.field5 == VISIBILITYMAP_FORKNUM;
            if !rel_matches || t.flags & SMGR_TRUNCATE_VM == 0 {
                return Err(failed(
                    "Storage/TRUNCATE record stored on a page it does not truncate".to_owned(),
                ));
            }
            let p = as_page(buf, key, lsn)?;
            if postgres_ffi::page::PageHeaderData::read(p).is_ok_and(|h| !h.is_new()) {
                pages::vm_truncate_tail(p, vm_blk, t.blkno).map_err(|e| failed(e.to_string()))?;
            }
            return Ok(());
        }
        // The block reference that is this page.
        let block_id = rec
            .blocks
            .iter()
            .find(|b| {
                (
                    b.rnode.spcnode,
                    b.rnode.dbnode,
                    b.rnode.relnode,
                    b.forknum,
                    b.blkno,
                ) == (key.field2, key.field3, key.field4, key.field5, key.field6)
                    && key.field1 == 0
            })
            .map(|b| b.block_id)
            .ok_or_else(|| {
                failed(format!(
                    "{} has no block reference to this page",
                    rec.name(format.version)
                ))
            })?;
        self.apply_postgres(key, lsn, buf, rec, block_id, settings)
    }
}

/// Sets the data checksum of a relation page, unless it is not a page (a
/// test value) or a new (all-zero) page, which Postgres never checksums.
pub fn stamp_checksum(page: &mut [u8], blkno: u32) {
    if let Ok(p) = <&mut [u8; BLCKSZ]>::try_from(page) {
        if !pg_redo::pageops::is_new(p) {
            pg_redo::pageops::set_checksum(p, blkno);
        }
    }
}

/// `xl_smgr_truncate`: blkno, RelFileNode, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmgrTruncate {
    pub blkno: u32,
    pub spcnode: u32,
    pub dbnode: u32,
    pub relnode: u32,
    pub flags: u32,
}

/// Parses the main data of a Storage/TRUNCATE record.
pub fn parse_smgr_truncate(data: &[u8]) -> Result<SmgrTruncate, String> {
    let word = |i: usize| -> Result<u32, String> {
        data.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| {
                format!(
                    "Storage/TRUNCATE main data is {} bytes, need 20",
                    data.len()
                )
            })
    };
    Ok(SmgrTruncate {
        blkno: word(0)?,
        spcnode: word(1)?,
        dbnode: word(2)?,
        relnode: word(3)?,
        flags: word(4)?,
    })
}

impl Redo for NativeRedo {
    fn reconstruct(
        &self,
        key: Key,
        lsn: Lsn,
        base: Option<Bytes>,
        records: &[(Lsn, WalRecord)],
        settings: ClusterSettings,
    ) -> Result<Bytes, RedoError> {
        let mut page: Option<BytesMut> = base.map(|b| BytesMut::from(b.as_ref()));
        for (record_lsn, record) in records {
            self.apply_one(key, lsn, *record_lsn, &mut page, record, settings)?;
        }
        let mut page = page.ok_or(RedoError::Failed {
            key,
            lsn,
            reason: "no base image and no records".to_owned(),
        })?;
        if settings.data_checksums && key.is_rel_block_key() {
            stamp_checksum(&mut page, key.field6);
        }
        Ok(page.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pageserver_api::key::{rel_block_to_key, slru_block_to_key};
    use pageserver_api::reltag::RelTag;
    use postgres_ffi::relfile::RelFileNode;
    use postgres_ffi::slru::clog::{get_status, XidStatus};
    use postgres_ffi::wal::encoder::{BlockSpec, RecordBuilder};

    const NO_CHECKSUMS: ClusterSettings = ClusterSettings {
        data_checksums: false,
        wal_log_hints: false,
    };

    fn page_with(f: impl FnOnce(&mut [u8; BLCKSZ])) -> Bytes {
        let mut p = [0u8; BLCKSZ];
        f(&mut p);
        Bytes::copy_from_slice(&p)
    }

    #[test]
    fn clog_through_redo() {
        let key = slru_block_to_key(SlruKind::Clog, 0, 1);
        let recs = vec![
            (
                Lsn(0x10),
                WalRecord::ClogSetStatus {
                    xids: vec![32768 + 3, 32768 + 9],
                    status: XidStatus::Committed as u8,
                    timestamp: Some(1),
                },
            ),
            (
                Lsn(0x20),
                WalRecord::ClogSetStatus {
                    xids: vec![32768 + 4],
                    status: XidStatus::Aborted as u8,
                    timestamp: None,
                },
            ),
        ];
        let out = NativeRedo
            .reconstruct(key, Lsn(0x20), Some(page_with(|_| {})), &recs, NO_CHECKSUMS)
            .unwrap();
        let p: &[u8; BLCKSZ] = out.as_ref().try_into().unwrap();
        assert_eq!(get_status(p, 32768 + 3), XidStatus::Committed);
        assert_eq!(get_status(p, 32768 + 4), XidStatus::Aborted);
        assert_eq!(get_status(p, 32768 + 9), XidStatus::Committed);
        assert_eq!(get_status(p, 32768 + 5), XidStatus::InProgress);

        // Misrouted: xid 3 lives on page 0.
        let bad = vec![(
            Lsn(0x10),
            WalRecord::ClogSetStatus {
                xids: vec![3],
                status: 1,
                timestamp: None,
            },
        )];
        let err = NativeRedo
            .reconstruct(key, Lsn(0x20), Some(page_with(|_| {})), &bad, NO_CHECKSUMS)
            .unwrap_err();
        assert!(matches!(err, RedoError::Failed { .. }), "{err}");
        // No base page.
        assert!(NativeRedo
            .reconstruct(key, Lsn(0x20), None, &recs, NO_CHECKSUMS)
            .is_err());
    }

    #[test]
    fn unsupported_postgres_records_and_native_smgr_truncate() {
        let rel = RelTag::new(1663, 5, 16384, VISIBILITYMAP_FORKNUM);
        let key = rel_block_to_key(rel, 0);
        let rnode = RelFileNode {
            spcnode: 1663,
            dbnode: 5,
            relnode: 16384,
        };
        // No rmgr has native redo for a block of XLOG/NOOP.
        let heap = RecordBuilder::new(0, info::xlog::NOOP)
            .block(
                BlockSpec::new(0, rnode, VISIBILITYMAP_FORKNUM, 0)
                    .with_data(Bytes::from_static(b"x")),
            )
            .main_data(Bytes::from_static(&[1, 0, 0]))
            .encode(Lsn(0));
        let err = NativeRedo
            .reconstruct(
                key,
                Lsn(0x30),
                Some(page_with(|_| {})),
                &[(
                    Lsn(0x30),
                    WalRecord::Postgres {
                        will_init: false,
                        rec: heap.clone(),
                    },
                )],
                NO_CHECKSUMS,
            )
            .unwrap_err();
        assert!(
            matches!(&err, RedoError::Unsupported { what, .. } if what.contains("XLOG/NOOP")),
            "{err}"
        );
        // A record stored on a page it does not reference is refused.
        let err = NativeRedo
            .reconstruct(
                rel_block_to_key(rel, 1),
                Lsn(0x30),
                Some(page_with(|_| {})),
                &[(
                    Lsn(0x30),
                    WalRecord::Postgres {
                        will_init: false,
                        rec: heap,
                    },
                )],
                NO_CHECKSUMS,
            )
            .unwrap_err();
        assert!(matches!(err, RedoError::Failed { .. }), "{err}");

        let mut main = Vec::new();
        main.extend_from_slice(&6u32.to_le_bytes());
        for v in [rnode.spcnode, rnode.dbnode, rnode.relnode, 7] {
            main.extend_from_slice(&v.to_le_bytes());
        }
        let trunc = RecordBuilder::new(RM_SMGR_ID, info::smgr::TRUNCATE)
            .main_data(Bytes::from(main))
            .encode(Lsn(0));
        let base = page_with(|p| {
            postgres_ffi::page::page_init(p, 0).unwrap();
            p[24..].fill(0xFF);
        });
        let out = NativeRedo
            .reconstruct(
                key,
                Lsn(0x40),
                Some(base),
                &[(
                    Lsn(0x40),
                    WalRecord::Postgres {
                        will_init: false,
                        rec: trunc.clone(),
                    },
                )],
                NO_CHECKSUMS,
            )
            .unwrap();
        assert_eq!(out[24], 0xFF);
        assert_eq!(out[25], 0x0F);
        assert!(out[26..].iter().all(|&b| b == 0));

        // The same record on another relation's VM page is refused.
        let other = rel_block_to_key(RelTag { relnode: 1, ..rel }, 0);
        assert!(NativeRedo
            .reconstruct(
                other,
                Lsn(0x40),
                Some(page_with(|_| {})),
                &[(
                    Lsn(0x40),
                    WalRecord::Postgres {
                        will_init: false,
                        rec: trunc,
                    },
                )],
                NO_CHECKSUMS,
            )
            .is_err());
    }

    #[test]
    fn vm_clear_and_multixact() {
        let rel = RelTag::new(1663, 5, 16384, VISIBILITYMAP_FORKNUM);
        let key = rel_block_to_key(rel, 1);
        let base = page_with(|p| {
            postgres_ffi::page::page_init(p, 0).unwrap();
            p[24..].fill(0xFF);
        });
        let out = NativeRedo
            .reconstruct(
                key,
                Lsn(1),
                Some(base),
                &[(
                    Lsn(1),
                    WalRecord::ClearVisibilityMapFlags {
                        new_heap_blkno: Some(32672),
                        old_heap_blkno: Some(5),
                        flags: 0x03,
                    },
                )],
                NO_CHECKSUMS,
            )
            .unwrap_err();
        // Heap block 5 is on VM page 0, not 1.
        assert!(matches!(out, RedoError::Failed { .. }));

        let key = slru_block_to_key(SlruKind::MultiXactOffsets, 0, 0);
        let out = NativeRedo
            .reconstruct(
                key,
                Lsn(1),
                Some(page_with(|_| {})),
                &[(Lsn(1), WalRecord::MultixactOffsetCreate { mid: 2, moff: 9 })],
                NO_CHECKSUMS,
            )
            .unwrap();
        assert_eq!(&out[8..12], &9u32.to_le_bytes());
    }
}
