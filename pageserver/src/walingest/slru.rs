//! CLOG and MultiXact records: page zeroing, multixact creation and
//! segment truncation (`clog_redo`, `multixact_redo`, `SimpleLruTruncate`).
//!
//! Multixact creation in 15.18 (`RecordNewMultiXact`) writes the offset of
//! the new multixact and also the offset of the next one (where its members
//! will start). The next offset is stored as its own `MultixactOffsetCreate`
//! when it falls on another page; when it falls on the same page it cannot
//! be (one value per key and record, and the synthetic record carries one
//! entry), so that entry stays 0 until the next multixact's own record
//! writes it with the same value. Postgres never reads it in between: the
//! member count of the newest multixact comes from `nextOffset`
//! (`GetMultiXactIdMembers`).

use bytes::Bytes;
use pageserver_api::reltag::SlruKind;
use pageserver_api::value::WalRecord as StoredRecord;
use postgres_ffi::slru::multixact_members::{self, MULTIXACT_MEMBERS_PER_PAGE};
use postgres_ffi::slru::multixact_offsets::{self, MULTIXACT_OFFSETS_PER_PAGE};
use postgres_ffi::slru::{clog, SLRU_PAGES_PER_SEGMENT};
use postgres_ffi::v15::info;
use postgres_ffi::wal::WalRecord;
use postgres_ffi::BLCKSZ;

use super::checkpoint::{multi_precedes, xid_precedes};
use super::records;
use super::{Ingest, Result};
use crate::pgdatadir_mapping::ZERO_PAGE;

const FIRST_MULTIXACT_ID: u32 = 1;
const MAX_MULTIXACT_ID: u32 = u32::MAX;

/// `CLOGPagePrecedes`: whether every xid of page `a` precedes page `b`.
pub fn clog_page_precedes(a: u32, b: u32) -> bool {
    let per_page = clog::CLOG_XACTS_PER_PAGE;
    let xid1 = a.wrapping_mul(per_page).wrapping_add(3 + 1);
    let xid2 = b.wrapping_mul(per_page).wrapping_add(3 + 1);
    xid_precedes(xid1, xid2) && xid_precedes(xid1, xid2.wrapping_add(per_page - 1))
}

/// `MultiXactOffsetPagePrecedes`.
pub fn multixact_offset_page_precedes(a: u32, b: u32) -> bool {
    let per_page = MULTIXACT_OFFSETS_PER_PAGE;
    let m1 = a
        .wrapping_mul(per_page)
        .wrapping_add(FIRST_MULTIXACT_ID + 1);
    let m2 = b
        .wrapping_mul(per_page)
        .wrapping_add(FIRST_MULTIXACT_ID + 1);
    multi_precedes(m1, m2) && multi_precedes(m1, m2.wrapping_add(per_page - 1))
}

/// `SlruMayDeleteSegment`: every page of the segment precedes the cutoff.
fn may_delete_segment(precedes: fn(u32, u32) -> bool, segno: u32, cutoff_page: u32) -> bool {
    let first = segno.wrapping_mul(SLRU_PAGES_PER_SEGMENT);
    precedes(first, cutoff_page)
        && precedes(first.wrapping_add(SLRU_PAGES_PER_SEGMENT - 1), cutoff_page)
}

fn split_pageno(pageno: u32) -> (u32, u32) {
    (
        pageno / SLRU_PAGES_PER_SEGMENT,
        pageno % SLRU_PAGES_PER_SEGMENT,
    )
}

impl Ingest {
    pub(super) async fn ingest_clog(&mut self, rec: &WalRecord, op: u8) -> Result<()> {
        if op == info::clog::ZEROPAGE {
            let pageno = records::parse_pageno("CLOG ZEROPAGE", rec.main_data())?;
            let (segno, blkno) = split_pageno(pageno);
            self.m
                .put_slru_page_image(SlruKind::Clog, segno, blkno, ZERO_PAGE.clone())
                .await?;
            return Ok(());
        }
        let (pageno, oldest_xact, oldest_xact_db) = records::parse_clog_truncate(rec.main_data())?;
        // On the primary the truncation follows SetTransactionIdLimit; the
        // next checkpoint would carry it, but a basebackup can be taken
        // before that.
        self.checkpoint
            .advance_oldest_xid(oldest_xact, oldest_xact_db);
        let latest_page = clog::xid_to_page(self.checkpoint.cp.next_xid.xid());
        self.truncate_slru(SlruKind::Clog, clog_page_precedes, latest_page, pageno)
            .await
    }

    /// `SimpleLruTruncate`: drops the segments wholly before `cutoff_page`,
    /// unless the newest page would be among them (wraparound).
    async fn truncate_slru(
        &mut self,
        kind: SlruKind,
        precedes: fn(u32, u32) -> bool,
        latest_page: u32,
        cutoff_page: u32,
    ) -> Result<()> {
        if precedes(latest_page, cutoff_page) {
            tracing::warn!(%kind, latest_page, cutoff_page, "could not truncate SLRU: apparent wraparound");
            return Ok(());
        }
        for segno in self.m.slru_segments(kind).await? {
            if may_delete_segment(precedes, segno, cutoff_page) {
                self.m.drop_slru_segment(kind, segno).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn ingest_multixact(&mut self, rec: &WalRecord, op: u8) -> Result<()> {
        use info::multixact as mx;
        match op {
            mx::ZERO_OFF_PAGE => {
                let pageno = records::parse_pageno("MultiXact ZERO_OFF_PAGE", rec.main_data())?;
                let skip = self.pre_initialized_offsets_page == Some(pageno);
                self.pre_initialized_offsets_page = None;
                if !skip {
                    let (segno, blkno) = split_pageno(pageno);
                    self.m
                        .put_slru_page_image(
                            SlruKind::MultiXactOffsets,
                            segno,
                            blkno,
                            ZERO_PAGE.clone(),
                        )
                        .await?;
                }
                Ok(())
            }
            mx::ZERO_MEM_PAGE => {
                let pageno = records::parse_pageno("MultiXact ZERO_MEM_PAGE", rec.main_data())?;
                let (segno, blkno) = split_pageno(pageno);
                self.m
                    .put_slru_page_image(
                        SlruKind::MultiXactMembers,
                        segno,
                        blkno,
                        ZERO_PAGE.clone(),
                    )
                    .await?;
                Ok(())
            }
            mx::CREATE_ID => self.multixact_create(rec).await,
            _ => self.multixact_truncate(rec).await,
        }
    }

    async fn multixact_create(&mut self, rec: &WalRecord) -> Result<()> {
        let c = records::parse_multixact_create(rec.main_data())?;
        let n = c.members.len() as u32;
        let page = multixact_offsets::multi_to_page(c.mid);
        self.put_slru_change(
            SlruKind::MultiXactOffsets,
            page,
            StoredRecord::MultixactOffsetCreate {
                mid: c.mid,
                moff: c.moff,
            },
        )
        .await?;

        // The next multixact's starting offset (multixact 0 and offset 0
        // are skipped, as in GetNewMultiXactId).
        let next = match c.mid.wrapping_add(1) {
            0 => FIRST_MULTIXACT_ID,
            m => m,
        };
        let next_offset = match c.moff.wrapping_add(n) {
            0 => 1,
            o => o,
        };
        let next_page = multixact_offsets::multi_to_page(next);
        if next_page != page {
            let (segno, blkno) = split_pageno(next_page);
            let exists = self
                .m
                .slru_page_exists(SlruKind::MultiXactOffsets, segno, blkno)
                .await?;
            if exists {
                self.m
                    .put_slru_record(
                        SlruKind::MultiXactOffsets,
                        segno,
                        blkno,
                        StoredRecord::MultixactOffsetCreate {
                            mid: next,
                            moff: next_offset,
                        },
                    )
                    .await?;
            } else {
                // WAL of an older 15.x minor: the next page is initialised
                // here, and its ZERO_OFF_PAGE record, which follows, must
                // not wipe the entry.
                let mut p = [0u8; BLCKSZ];
                multixact_offsets::set_offset(&mut p, next, next_offset);
                self.m
                    .put_slru_page_image(
                        SlruKind::MultiXactOffsets,
                        segno,
                        blkno,
                        Bytes::copy_from_slice(&p),
                    )
                    .await?;
                self.pre_initialized_offsets_page = Some(next_page);
            }
        }

        // Members, split by page; offsets wrap around at 2^32.
        let mut offset = c.moff;
        let mut rest = &c.members[..];
        while !rest.is_empty() {
            let room = MULTIXACT_MEMBERS_PER_PAGE - offset % MULTIXACT_MEMBERS_PER_PAGE;
            let take = rest.len().min(room as usize);
            let (chunk, tail) = rest.split_at(take);
            self.put_slru_change(
                SlruKind::MultiXactMembers,
                multixact_members::offset_to_page(offset),
                StoredRecord::MultixactMembersCreate {
                    moff: offset,
                    members: chunk.to_vec(),
                },
            )
            .await?;
            offset = offset.wrapping_add(take as u32);
            rest = tail;
        }

        self.checkpoint
            .advance_next_multi(c.mid.wrapping_add(1), c.moff.wrapping_add(n));
        for (xid, _) in &c.members {
            self.checkpoint.advance_next_xid_past(*xid);
        }
        Ok(())
    }

    async fn multixact_truncate(&mut self, rec: &WalRecord) -> Result<()> {
        let t = records::parse_multixact_truncate(rec.main_data())?;
        // SetMultiXactIdLimit(endTruncOff, oldestMultiDB).
        if self.checkpoint.cp.oldest_multi != t.end_trunc_off
            || self.checkpoint.cp.oldest_multi_db != t.oldest_multi_db
        {
            self.checkpoint.cp.oldest_multi = t.end_trunc_off;
            self.checkpoint.cp.oldest_multi_db = t.oldest_multi_db;
            self.checkpoint.dirty = true;
        }

        // PerformMembersTruncation: segments [start, end), wrapping.
        let seg_of = |off: u32| multixact_members::offset_to_page(off) / SLRU_PAGES_PER_SEGMENT;
        let max_segment = seg_of(u32::MAX);
        let end = seg_of(t.end_trunc_memb);
        let mut segment = seg_of(t.start_trunc_memb);
        let mut steps = 0u32;
        while segment != end && steps <= max_segment {
            self.m
                .drop_slru_segment(SlruKind::MultiXactMembers, segment)
                .await?;
            segment = if segment == max_segment {
                0
            } else {
                segment + 1
            };
            steps += 1;
        }

        // PerformOffsetsTruncation: everything before the page of the
        // multixact preceding the new oldest one.
        let prev = if t.end_trunc_off == FIRST_MULTIXACT_ID {
            MAX_MULTIXACT_ID
        } else {
            t.end_trunc_off.wrapping_sub(1)
        };
        let cutoff = multixact_offsets::multi_to_page(prev);
        let latest = multixact_offsets::multi_to_page(self.checkpoint.cp.next_multi);
        self.truncate_slru(
            SlruKind::MultiXactOffsets,
            multixact_offset_page_precedes,
            latest,
            cutoff,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_precedence() {
        assert!(clog_page_precedes(0, 1));
        assert!(!clog_page_precedes(1, 0));
        assert!(!clog_page_precedes(5, 5));
        // Around the wrap (131072 CLOG pages hold 2^32 xids) the order is
        // circular.
        assert!(clog_page_precedes(131071, 10));
        assert!(multixact_offset_page_precedes(0, 3));
        assert!(!multixact_offset_page_precedes(3, 0));
        assert!(may_delete_segment(clog_page_precedes, 0, 64));
        assert!(!may_delete_segment(clog_page_precedes, 1, 40));
    }
}
