//! The checkpoint key's content as WAL goes by: the latest checkpoint
//! record's `CheckPoint`, with the counters a restart (basebackup) needs
//! advanced by every record after it, the way Postgres recovery advances its
//! shared counters:
//!
//! - nextXid: past every xid a record names (`AdvanceNextFullTransactionIdPastXid`:
//!   header xid, subtransactions, multixact members, RUNNING_XACTS nextXid),
//!   the epoch carried when the 32-bit xid wraps;
//! - nextOid: from NEXTOID records and shutdown checkpoints (online
//!   checkpoints' nextOid is ignored, as in `xlog_redo`);
//! - nextMulti / nextMultiOffset: forward only (`MultiXactAdvanceNextMXact`);
//! - oldestXid / oldestMulti: forward only, from checkpoints and truncation
//!   records; oldestActiveXid from RUNNING_XACTS.
//!
//! A shutdown checkpoint replaces everything; an online one only moves
//! counters forward. Pure logic, unit-tested here; used by [`super::Ingest`].

use postgres_ffi::types::{FullTransactionId, FIRST_NORMAL_TRANSACTION_ID};
use postgres_ffi::v15::controlfile::CheckPoint;
use postgres_ffi::{MultiXactId, MultiXactOffset, Oid, TimeLineId, TransactionId};

/// `TransactionIdFollowsOrEquals`: circular comparison for normal xids,
/// plain comparison when either is special.
pub fn xid_follows_or_equals(a: TransactionId, b: TransactionId) -> bool {
    if a < FIRST_NORMAL_TRANSACTION_ID || b < FIRST_NORMAL_TRANSACTION_ID {
        return a >= b;
    }
    (a.wrapping_sub(b) as i32) >= 0
}

/// `TransactionIdPrecedes`.
pub fn xid_precedes(a: TransactionId, b: TransactionId) -> bool {
    !xid_follows_or_equals(a, b)
}

/// `MultiXactIdPrecedes` (also used for member offsets).
pub fn multi_precedes(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The stored checkpoint's nextXid is rounded up to a multiple of this, so
/// that the checkpoint key is rewritten once per this many transactions
/// rather than for every one (the same rule as Neon's page server). A
/// nextXid above every xid used is all a restart needs: the xids skipped
/// are never assigned. A multiple of 1024 never leaves the CLOG page of the
/// real nextXid (a page holds 32768 xids) except by landing on the next
/// page's first xid, for which PostgreSQL's startup reads no page.
pub const XID_CHECKPOINT_INTERVAL: u64 = 1024;

/// `next` rounded up to a multiple of [`XID_CHECKPOINT_INTERVAL`]; a value
/// that lands on a special xid (after the 32-bit wrap) moves to the first
/// normal one.
pub fn stored_next_xid(next: FullTransactionId) -> FullTransactionId {
    let aligned = next.0.div_ceil(XID_CHECKPOINT_INTERVAL) * XID_CHECKPOINT_INTERVAL;
    let aligned = FullTransactionId(aligned);
    if aligned.xid() < FIRST_NORMAL_TRANSACTION_ID {
        FullTransactionId::new(aligned.epoch(), FIRST_NORMAL_TRANSACTION_ID)
    } else {
        aligned
    }
}

/// The checkpoint being maintained; `dirty` = changed since last stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointTracker {
    pub cp: CheckPoint,
    pub dirty: bool,
    /// nextXid of the value last stored (or loaded): a nextXid that does
    /// not pass it needs no new store.
    stored_next: FullTransactionId,
    /// nextXid is a checkpoint record's own and has not moved since: it is
    /// stored as it is (so the value at a shutdown checkpoint is exactly
    /// the primary's), not rounded up.
    next_from_record: bool,
}

impl CheckpointTracker {
    pub fn new(cp: CheckPoint) -> Self {
        CheckpointTracker {
            stored_next: cp.next_xid,
            cp,
            dirty: false,
            next_from_record: false,
        }
    }

    /// The value to store under the checkpoint key: the checkpoint with
    /// nextXid rounded up ([`stored_next_xid`]) unless it is a checkpoint
    /// record's. Clears `dirty`.
    pub fn encode_for_storage(&mut self) -> Vec<u8> {
        let mut stored = self.cp;
        if !self.next_from_record {
            stored.next_xid = stored_next_xid(self.cp.next_xid);
        }
        self.stored_next = stored.next_xid;
        self.dirty = false;
        stored.encode().to_vec()
    }

    /// Makes nextXid follow `xid` (ignores the invalid xid 0).
    pub fn advance_next_xid_past(&mut self, xid: TransactionId) {
        if xid == 0 {
            return;
        }
        let next = self.cp.next_xid;
        if !xid_follows_or_equals(xid, next.xid()) {
            return;
        }
        // TransactionIdAdvance: skip the special xids after a wrap.
        let mut new_xid = xid.wrapping_add(1);
        if new_xid < FIRST_NORMAL_TRANSACTION_ID {
            new_xid = FIRST_NORMAL_TRANSACTION_ID;
        }
        let mut epoch = next.epoch();
        if new_xid < next.xid() {
            epoch = epoch.wrapping_add(1);
        }
        self.cp.next_xid = FullTransactionId::new(epoch, new_xid);
        self.next_from_record = false;
        if self.cp.next_xid > self.stored_next {
            self.dirty = true;
        }
    }

    /// RUNNING_XACTS: nextXid is the next xid to assign (so every xid
    /// before it has been seen), oldestRunningXid the oldest active one.
    pub fn running_xacts(&mut self, next_xid: TransactionId, oldest_running: TransactionId) {
        // TransactionIdRetreat: step back over the special xids.
        let mut last = next_xid.wrapping_sub(1);
        while last < FIRST_NORMAL_TRANSACTION_ID {
            last = last.wrapping_sub(1);
        }
        self.advance_next_xid_past(last);
        if self.cp.oldest_active_xid != oldest_running {
            self.cp.oldest_active_xid = oldest_running;
            self.dirty = true;
        }
    }

    pub fn set_next_oid(&mut self, oid: Oid) {
        if self.cp.next_oid != oid {
            self.cp.next_oid = oid;
            self.dirty = true;
        }
    }

    /// `MultiXactAdvanceNextMXact`.
    pub fn advance_next_multi(&mut self, multi: MultiXactId, offset: MultiXactOffset) {
        if multi_precedes(self.cp.next_multi, multi) {
            self.cp.next_multi = multi;
            self.dirty = true;
        }
        if multi_precedes(self.cp.next_multi_offset, offset) {
            self.cp.next_multi_offset = offset;
            self.dirty = true;
        }
    }

    /// Moves oldestXid forward (CLOG truncation, checkpoints).
    pub fn advance_oldest_xid(&mut self, xid: TransactionId, db: Oid) {
        if xid_precedes(self.cp.oldest_xid, xid) {
            self.cp.oldest_xid = xid;
            self.cp.oldest_xid_db = db;
            self.dirty = true;
        }
    }

    /// `MultiXactAdvanceOldest`.
    pub fn advance_oldest_multi(&mut self, multi: MultiXactId, db: Oid) {
        if multi_precedes(self.cp.oldest_multi, multi) {
            self.cp.oldest_multi = multi;
            self.cp.oldest_multi_db = db;
            self.dirty = true;
        }
    }

    /// An END_OF_RECOVERY record: the WAL continues on a new timeline.
    pub fn end_of_recovery(&mut self, this: TimeLineId, prev: TimeLineId) {
        self.cp.this_timeline_id = this;
        self.cp.prev_timeline_id = prev;
        self.dirty = true;
    }

    /// A checkpoint record. Always stored again (so a checkpoint record
    /// leaves a trace at its LSN even when nothing else changed).
    pub fn checkpoint_record(&mut self, rec: &CheckPoint, shutdown: bool) {
        self.dirty = true;
        if shutdown {
            // After a shutdown checkpoint the record is the whole truth.
            self.cp = *rec;
            self.next_from_record = true;
            return;
        }
        let counters = (
            self.cp.next_xid,
            self.cp.next_oid,
            self.cp.next_multi,
            self.cp.next_multi_offset,
            self.cp.oldest_xid,
            self.cp.oldest_xid_db,
            self.cp.oldest_multi,
            self.cp.oldest_multi_db,
        );
        self.cp = *rec;
        (
            self.cp.next_xid,
            self.cp.next_oid,
            self.cp.next_multi,
            self.cp.next_multi_offset,
            self.cp.oldest_xid,
            self.cp.oldest_xid_db,
            self.cp.oldest_multi,
            self.cp.oldest_multi_db,
        ) = counters;
        if self.cp.next_xid <= rec.next_xid {
            self.cp.next_xid = rec.next_xid;
            self.next_from_record = true;
        }
        self.advance_next_multi(rec.next_multi, rec.next_multi_offset);
        self.advance_oldest_multi(rec.oldest_multi, rec.oldest_multi_db);
        self.advance_oldest_xid(rec.oldest_xid, rec.oldest_xid_db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(next_xid: FullTransactionId) -> CheckpointTracker {
        CheckpointTracker::new(CheckPoint {
            next_xid,
            next_oid: 100,
            next_multi: 5,
            next_multi_offset: 10,
            oldest_xid: 3,
            oldest_multi: 1,
            ..Default::default()
        })
    }

    #[test]
    fn next_xid_advances_and_wraps() {
        let mut t = cp(FullTransactionId::new(0, 1000));
        t.advance_next_xid_past(500);
        assert!(!t.dirty);
        t.advance_next_xid_past(1000);
        assert_eq!(t.cp.next_xid, FullTransactionId::new(0, 1001));
        assert!(t.dirty);

        let mut t = cp(FullTransactionId::new(2, u32::MAX - 1));
        t.advance_next_xid_past(u32::MAX);
        // The next xid after 0xFFFFFFFF is 3 of the next epoch.
        assert_eq!(t.cp.next_xid, FullTransactionId::new(3, 3));
        // A pre-wrap xid seen late does not move it back.
        t.advance_next_xid_past(u32::MAX - 5);
        assert_eq!(t.cp.next_xid, FullTransactionId::new(3, 3));
        t.advance_next_xid_past(0);
        assert_eq!(t.cp.next_xid, FullTransactionId::new(3, 3));
    }

    #[test]
    fn stored_next_xid_is_rewritten_once_per_interval() {
        let mut t = cp(FullTransactionId::new(0, 1000));
        t.advance_next_xid_past(1000);
        assert!(t.dirty);
        let stored = CheckPoint::decode(&t.encode_for_storage()).unwrap();
        assert_eq!(stored.next_xid, FullTransactionId::new(0, 1024));
        assert_eq!(t.cp.next_xid, FullTransactionId::new(0, 1001));
        assert!(!t.dirty);
        // Up to nextXid 1024 the stored value still covers every xid used.
        t.advance_next_xid_past(1023);
        assert!(!t.dirty);
        t.advance_next_xid_past(1024);
        assert!(t.dirty);
        assert_eq!(
            stored_next_xid(FullTransactionId::new(0, 1025)),
            FullTransactionId::new(0, 2048)
        );
        assert_eq!(
            stored_next_xid(FullTransactionId::new(0, 2048)),
            FullTransactionId::new(0, 2048)
        );
        // Past the 32-bit wrap: xid 0 of the next epoch is special.
        assert_eq!(
            stored_next_xid(FullTransactionId::new(4, u32::MAX - 7)),
            FullTransactionId::new(5, 3)
        );
    }

    #[test]
    fn running_xacts_and_multis() {
        let mut t = cp(FullTransactionId::new(0, 1000));
        t.running_xacts(1200, 1100);
        assert_eq!(t.cp.next_xid.xid(), 1200);
        assert_eq!(t.cp.oldest_active_xid, 1100);
        t.running_xacts(1100, 1100);
        assert_eq!(t.cp.next_xid.xid(), 1200);

        t.advance_next_multi(4, 20);
        assert_eq!((t.cp.next_multi, t.cp.next_multi_offset), (5, 20));
        t.advance_next_multi(9, 15);
        assert_eq!((t.cp.next_multi, t.cp.next_multi_offset), (9, 20));
    }

    #[test]
    fn checkpoints() {
        let mut t = cp(FullTransactionId::new(0, 1000));
        let rec = CheckPoint {
            next_xid: FullTransactionId::new(0, 900),
            next_oid: 7,
            next_multi: 3,
            next_multi_offset: 1,
            oldest_xid: 10,
            oldest_xid_db: 1,
            oldest_multi: 2,
            time: 42,
            ..Default::default()
        };
        t.checkpoint_record(&rec, false);
        // Online: counters only move forward, nextOid untouched.
        assert_eq!(t.cp.next_xid.xid(), 1000);
        assert_eq!(t.cp.next_oid, 100);
        assert_eq!((t.cp.next_multi, t.cp.next_multi_offset), (5, 10));
        assert_eq!((t.cp.oldest_xid, t.cp.oldest_xid_db), (10, 1));
        assert_eq!(t.cp.oldest_multi, 2);
        assert_eq!(t.cp.time, 42);
        t.checkpoint_record(&rec, true);
        assert_eq!(t.cp, rec);
        // A checkpoint record's nextXid is stored as it is, until it moves.
        assert_eq!(CheckPoint::decode(&t.encode_for_storage()).unwrap(), rec);
        t.advance_next_xid_past(900);
        let stored = CheckPoint::decode(&t.encode_for_storage()).unwrap();
        assert_eq!(stored.next_xid.xid(), 1024);
    }
}
