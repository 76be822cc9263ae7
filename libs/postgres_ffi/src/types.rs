//! Scalar PostgreSQL types shared by every format in this crate.
//!
//! These are plain aliases (as in C) except [`FullTransactionId`], whose
//! epoch/xid split is worth a type. They are the same in every supported
//! major version.

use std::fmt;

/// Object identifier (tablespace, database, relation file node, ...).
pub type Oid = u32;
/// 32-bit transaction id; wraps around, compared modulo 2^32 by Postgres.
pub type TransactionId = u32;
/// Multixact id; wraps like transaction ids.
pub type MultiXactId = u32;
/// Offset into the multixact members SLRU.
pub type MultiXactOffset = u32;
/// WAL timeline id.
pub type TimeLineId = u32;
/// Block number within a relation fork (or SLRU segment, page within).
pub type BlockNumber = u32;
/// Replication origin id.
pub type RepOriginId = u16;

/// The invalid transaction id.
pub const INVALID_TRANSACTION_ID: TransactionId = 0;
/// Transaction id assigned to bootstrap-time rows.
pub const BOOTSTRAP_TRANSACTION_ID: TransactionId = 1;
/// Transaction id meaning "frozen": visible to everyone.
pub const FROZEN_TRANSACTION_ID: TransactionId = 2;
/// First normal (assignable) transaction id.
pub const FIRST_NORMAL_TRANSACTION_ID: TransactionId = 3;
/// The invalid block number, also "relation size unknown".
pub const INVALID_BLOCK_NUMBER: BlockNumber = 0xFFFF_FFFF;
/// The invalid OID.
pub const INVALID_OID: Oid = 0;

/// A 64-bit transaction id: epoch in the high half, the 32-bit xid in the low
/// half. Stored as a `uint64` in checkpoints and the control file.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullTransactionId(pub u64);

impl FullTransactionId {
    pub const fn new(epoch: u32, xid: TransactionId) -> Self {
        FullTransactionId(((epoch as u64) << 32) | xid as u64)
    }

    pub const fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub const fn xid(self) -> TransactionId {
        self.0 as u32
    }
}

/// `epoch:xid`, the form `pg_controldata` prints.
impl fmt::Display for FullTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch(), self.xid())
    }
}

impl fmt::Debug for FullTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `a` precedes `b` in PostgreSQL's circular xid order (normal xids are
/// compared modulo 2^32; the special xids 0..2 precede everything).
pub fn transaction_id_precedes(a: TransactionId, b: TransactionId) -> bool {
    if a < FIRST_NORMAL_TRANSACTION_ID || b < FIRST_NORMAL_TRANSACTION_ID {
        return a < b;
    }
    (a.wrapping_sub(b) as i32) < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_xid_parts() {
        let f = FullTransactionId::new(3, 0xDEAD);
        assert_eq!(f.epoch(), 3);
        assert_eq!(f.xid(), 0xDEAD);
        assert_eq!(f.to_string(), "3:57005");
    }

    #[test]
    fn xid_order_wraps() {
        assert!(transaction_id_precedes(100, 200));
        assert!(!transaction_id_precedes(200, 100));
        assert!(transaction_id_precedes(0xFFFF_FF00, 5));
        assert!(transaction_id_precedes(2, 3));
    }
}
