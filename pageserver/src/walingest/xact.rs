//! Transaction records: commit and abort (plain and two-phase) set the CLOG
//! status of the transaction and its subtransactions, drop the relations
//! the record lists, advance replication-origin progress and forget the
//! two-phase state; PREPARE stores the future `pg_twophase` state file.
//!
//! CLOG changes are `ClogSetStatus` records, one per CLOG page touched, on
//! that page's key. Postgres writes SUB_COMMITTED first when a tree spans
//! pages; only the final status matters for the stored bytes, so it is
//! written directly.

use bytes::Bytes;
use pageserver_api::reltag::{RelTag, SlruKind, INIT_FORKNUM, MAIN_FORKNUM};
use pageserver_api::value::{Value, WalRecord as StoredRecord};
use postgres_ffi::slru::clog::{self, XidStatus};
use postgres_ffi::slru::SLRU_PAGES_PER_SEGMENT;
use postgres_ffi::v15::info::xact;
use postgres_ffi::wal::WalRecord;
use postgres_ffi::{twophase, TransactionId, BLCKSZ};

use super::records::{self, ParseError};
use super::{check_tablespace, Ingest, Result};
use crate::pgdatadir_mapping::DatadirModification;
use crate::walredo::pages;

impl Ingest {
    pub(super) async fn ingest_xact(&mut self, rec: &WalRecord) -> Result<()> {
        let op = rec.info() & xact::OPMASK;
        let has_info = rec.info() & xact::HAS_INFO != 0;
        match op {
            xact::COMMIT | xact::COMMIT_PREPARED | xact::ABORT | xact::ABORT_PREPARED => {
                let is_commit = op == xact::COMMIT || op == xact::COMMIT_PREPARED;
                let prepared = op == xact::COMMIT_PREPARED || op == xact::ABORT_PREPARED;
                let p = records::parse_xact_finish(rec.main_data(), has_info, is_commit)?;
                // A finished prepared transaction is named in the payload;
                // the header xid belongs to the session that finished it.
                let xid = if prepared {
                    p.twophase_xid.ok_or_else(|| ParseError {
                        what: "xl_xact_commit/abort",
                        detail: "a *_PREPARED record without a two-phase xid".to_owned(),
                    })?
                } else {
                    rec.xid()
                };
                self.checkpoint.advance_next_xid_past(xid);
                for &sub in &p.subxacts {
                    self.checkpoint.advance_next_xid_past(sub);
                }
                let (status, timestamp) = if is_commit {
                    (XidStatus::Committed, Some(p.xact_time))
                } else {
                    (XidStatus::Aborted, None)
                };
                // A commit without an xid (nothing to mark) has no CLOG effect.
                if xid != 0 {
                    self.set_clog_status(xid, &p.subxacts, status, timestamp)
                        .await?;
                }
                for rnode in &p.rels {
                    check_tablespace(rnode.spcnode)?;
                    for fork in MAIN_FORKNUM..=INIT_FORKNUM {
                        let rel = RelTag::new(rnode.spcnode, rnode.dbnode, rnode.relnode, fork);
                        self.m.put_rel_drop(rel).await?;
                    }
                }
                if let (Some(origin), Some(origin_lsn)) = (rec.origin, p.origin_lsn) {
                    if origin != 0 {
                        self.m.put_repl_origin(origin, origin_lsn)?;
                    }
                }
                if prepared {
                    // Postgres tolerates a missing state (it may never have
                    // been prepared on this timeline's history).
                    self.m.drop_twophase_file(xid as u64).await?;
                }
                Ok(())
            }
            xact::PREPARE => {
                let xid = rec.xid();
                let stated = records::parse_xact_prepare_xid(rec.main_data())?;
                if stated != xid {
                    return Err(ParseError {
                        what: "xl_xact_prepare",
                        detail: format!("state is for xid {stated}, the record for xid {xid}"),
                    }
                    .into());
                }
                let file = twophase::state_file_from_prepare_record(rec.main_data());
                self.m
                    .put_twophase_file(xid as u64, Bytes::from(file))
                    .await?;
                Ok(())
            }
            // ASSIGNMENT feeds hot-standby snapshots (pg_subtrans is not
            // persistent); INVALIDATIONS are for logical decoding.
            _ => Ok(()),
        }
    }

    /// `ClogSetStatus` for `xid` and `subxacts`, one per CLOG page.
    async fn set_clog_status(
        &mut self,
        xid: TransactionId,
        subxacts: &[TransactionId],
        status: XidStatus,
        timestamp: Option<i64>,
    ) -> Result<()> {
        for (pageno, rec) in clog_changes(xid, subxacts, status, timestamp) {
            self.put_slru_change(SlruKind::Clog, pageno, rec).await?;
        }
        Ok(())
    }

    /// A plain COMMIT or ABORT that drops no relation, when the CLOG pages
    /// it sets are cached as existing: applied without awaiting anything,
    /// exactly as [`Self::ingest_xact`] would. Ok(false): nothing was done.
    pub(super) fn try_xact_cached(&mut self, rec: &WalRecord) -> Result<bool> {
        let op = rec.info() & xact::OPMASK;
        if op != xact::COMMIT && op != xact::ABORT {
            return Ok(false);
        }
        let has_info = rec.info() & xact::HAS_INFO != 0;
        let is_commit = op == xact::COMMIT;
        let p = records::parse_xact_finish(rec.main_data(), has_info, is_commit)?;
        if !p.rels.is_empty() {
            return Ok(false);
        }
        let xid = rec.xid();
        let (status, timestamp) = if is_commit {
            (XidStatus::Committed, Some(p.xact_time))
        } else {
            (XidStatus::Aborted, None)
        };
        let page_of = |pageno: u32| {
            (
                pageno / SLRU_PAGES_PER_SEGMENT,
                pageno % SLRU_PAGES_PER_SEGMENT,
            )
        };
        let cached = |m: &DatadirModification, pageno: u32| {
            let (segno, blkno) = page_of(pageno);
            m.cached_slru_page_exists(SlruKind::Clog, segno, blkno) == Some(true)
        };
        if xid != 0 && p.subxacts.is_empty() {
            // The usual transaction: one xid, one CLOG page, serialized
            // straight into the batch.
            let pageno = clog::xid_to_page(xid);
            if !cached(&self.m, pageno) {
                return Ok(false);
            }
            self.checkpoint.advance_next_xid_past(xid);
            let (segno, blkno) = page_of(pageno);
            self.m
                .put_slru_record_with(SlruKind::Clog, segno, blkno, false, |out| {
                    Value::ser_clog_set_status(out, &[xid], status as u8, timestamp)
                })?;
        } else {
            let changes = if xid != 0 {
                clog_changes(xid, &p.subxacts, status, timestamp)
            } else {
                Vec::new()
            };
            if !changes.iter().all(|(pageno, _)| cached(&self.m, *pageno)) {
                return Ok(false);
            }
            self.checkpoint.advance_next_xid_past(xid);
            for &sub in &p.subxacts {
                self.checkpoint.advance_next_xid_past(sub);
            }
            for (pageno, change) in changes {
                let (segno, blkno) = page_of(pageno);
                self.m
                    .put_slru_record_cached(SlruKind::Clog, segno, blkno, change)?;
            }
        }
        if let (Some(origin), Some(origin_lsn)) = (rec.origin, p.origin_lsn) {
            if origin != 0 {
                self.m.put_repl_origin(origin, origin_lsn)?;
            }
        }
        Ok(true)
    }

    /// Stores `rec` for SLRU page `pageno`. If the page does not exist,
    /// Postgres recovery reads it as zeros and writes it back; the same is
    /// done here by storing the zero page with the change already applied
    /// (one value per key and record).
    pub(super) async fn put_slru_change(
        &mut self,
        kind: SlruKind,
        pageno: u32,
        rec: StoredRecord,
    ) -> Result<()> {
        let segno = pageno / SLRU_PAGES_PER_SEGMENT;
        let blkno = pageno % SLRU_PAGES_PER_SEGMENT;
        if self.m.slru_page_exists(kind, segno, blkno).await? {
            self.m.put_slru_record(kind, segno, blkno, rec).await?;
            return Ok(());
        }
        tracing::warn!(%kind, pageno, lsn = %self.m.lsn(), "WAL changes an SLRU page that does not exist; creating it zeroed");
        let mut page = [0u8; BLCKSZ];
        let applied = match &rec {
            StoredRecord::ClogSetStatus { xids, status, .. } => {
                pages::clog_set_status(&mut page, pageno, xids, *status)
            }
            StoredRecord::MultixactOffsetCreate { mid, moff } => {
                pages::multixact_set_offset(&mut page, pageno, *mid, *moff)
            }
            StoredRecord::MultixactMembersCreate { moff, members } => {
                pages::multixact_set_members(&mut page, pageno, *moff, members)
            }
            other => {
                return Err(super::IngestErrorKind::Unsupported {
                    what: format!("{other:?} on an SLRU page"),
                })
            }
        };
        applied.map_err(|e| super::IngestErrorKind::Inconsistent {
            what: e.to_string(),
        })?;
        self.m
            .put_slru_page_image(kind, segno, blkno, Bytes::copy_from_slice(&page))
            .await?;
        Ok(())
    }
}

/// The `ClogSetStatus` records that give `xid` and `subxacts` `status`, one
/// per CLOG page, in page order.
fn clog_changes(
    xid: TransactionId,
    subxacts: &[TransactionId],
    status: XidStatus,
    timestamp: Option<i64>,
) -> Vec<(u32, StoredRecord)> {
    let mut by_page: Vec<(u32, Vec<TransactionId>)> = Vec::new();
    for &x in std::iter::once(&xid).chain(subxacts) {
        let pageno = clog::xid_to_page(x);
        match by_page.iter_mut().find(|(p, _)| *p == pageno) {
            Some((_, xids)) => xids.push(x),
            None => by_page.push((pageno, vec![x])),
        }
    }
    by_page.sort_unstable_by_key(|(p, _)| *p);
    by_page
        .into_iter()
        .map(|(pageno, xids)| {
            let rec = StoredRecord::ClogSetStatus {
                xids,
                status: status as u8,
                timestamp,
            };
            (pageno, rec)
        })
        .collect()
}
