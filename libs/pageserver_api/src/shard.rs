//! Which shard of a tenant stores which key (`neon-interfaces.md` §2.4).
//!
//! Owns [`ShardStripeSize`] and [`ShardIdentity`] (this shard's number, the
//! tenant's shard count and the stripe size) and the key → shard function.
//!
//! Relation blocks are spread over shards in stripes: `stripe_size`
//! consecutive blocks of one relation land on the same shard, chosen by
//! hashing the relnode and the stripe index with Postgres' `murmurhash32`
//! and `hash_combine`. The function must stay bit-for-bit identical to the
//! compute's, which routes page requests with it. Everything that is not a
//! relation block, and blocks of init forks, belong to shard 0.
//!
//! Called by WAL ingest (which keys to store), the page service (whether a
//! request is for this shard) and compaction (which keys to drop after a
//! split).

use serde::{Deserialize, Serialize};
use utils::shard::{ShardCount, ShardIndex, ShardNumber};

use crate::key::Key;
use crate::reltag::INIT_FORKNUM;

/// Number of consecutive blocks of a relation stored on one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardStripeSize(pub u32);

/// The stripe size of new tenants: 2048 pages of 8 KiB = 16 MiB.
///
/// This is Neon's current default. Older Neon releases used 32768 pages
/// (256 MiB); a tenant keeps the stripe size it was created with, so the
/// default only matters for new tenants, and the compute is told the value.
pub const DEFAULT_STRIPE_SIZE: ShardStripeSize = ShardStripeSize(16 * 1024 * 1024 / 8192);

impl Default for ShardStripeSize {
    fn default() -> Self {
        DEFAULT_STRIPE_SIZE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShardConfigError {
    #[error("shard count must be at least 1 (use ShardIdentity::unsharded for count 0)")]
    InvalidCount,
    #[error("shard number {number} is not below shard count {count}")]
    InvalidNumber { number: u8, count: u8 },
    #[error("stripe size must be at least 1 page")]
    InvalidStripeSize,
}

/// This shard's place in its tenant. Fields are private so that the
/// invariants checked by [`ShardIdentity::new`] hold (`stripe_size > 0`,
/// `number < count` unless unsharded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawShardIdentity", into = "RawShardIdentity")]
pub struct ShardIdentity {
    number: ShardNumber,
    count: ShardCount,
    stripe_size: ShardStripeSize,
}

/// Serialized form; validated into [`ShardIdentity`] on the way in.
#[derive(Serialize, Deserialize)]
struct RawShardIdentity {
    number: ShardNumber,
    count: ShardCount,
    stripe_size: ShardStripeSize,
}

impl TryFrom<RawShardIdentity> for ShardIdentity {
    type Error = ShardConfigError;
    fn try_from(raw: RawShardIdentity) -> Result<Self, Self::Error> {
        if raw.count == ShardCount::UNSHARDED && raw.number == ShardNumber(0) {
            ShardIdentity::unsharded_with_stripe_size(raw.stripe_size)
        } else {
            ShardIdentity::new(raw.number, raw.count, raw.stripe_size)
        }
    }
}

impl From<ShardIdentity> for RawShardIdentity {
    fn from(id: ShardIdentity) -> Self {
        RawShardIdentity {
            number: id.number,
            count: id.count,
            stripe_size: id.stripe_size,
        }
    }
}

impl ShardIdentity {
    /// The legacy unsharded identity (number 0, count 0): no shard suffix in
    /// storage paths, every key local.
    pub const fn unsharded() -> Self {
        ShardIdentity {
            number: ShardNumber(0),
            count: ShardCount::UNSHARDED,
            stripe_size: DEFAULT_STRIPE_SIZE,
        }
    }

    /// The unsharded identity remembering a stripe size for a later split.
    pub fn unsharded_with_stripe_size(
        stripe_size: ShardStripeSize,
    ) -> Result<Self, ShardConfigError> {
        if stripe_size.0 == 0 {
            return Err(ShardConfigError::InvalidStripeSize);
        }
        Ok(ShardIdentity {
            stripe_size,
            ..Self::unsharded()
        })
    }

    /// A sharded identity; `count >= 1`, `number < count`, `stripe_size >= 1`.
    pub fn new(
        number: ShardNumber,
        count: ShardCount,
        stripe_size: ShardStripeSize,
    ) -> Result<Self, ShardConfigError> {
        if count.0 == 0 {
            return Err(ShardConfigError::InvalidCount);
        }
        if number.0 >= count.0 {
            return Err(ShardConfigError::InvalidNumber {
                number: number.0,
                count: count.0,
            });
        }
        if stripe_size.0 == 0 {
            return Err(ShardConfigError::InvalidStripeSize);
        }
        Ok(ShardIdentity {
            number,
            count,
            stripe_size,
        })
    }

    pub fn number(&self) -> ShardNumber {
        self.number
    }

    pub fn count(&self) -> ShardCount {
        self.count
    }

    pub fn stripe_size(&self) -> ShardStripeSize {
        self.stripe_size
    }

    pub fn shard_index(&self) -> ShardIndex {
        ShardIndex {
            shard_number: self.number,
            shard_count: self.count,
        }
    }

    pub fn is_unsharded(&self) -> bool {
        self.count == ShardCount::UNSHARDED
    }

    pub fn is_shard_zero(&self) -> bool {
        self.number == ShardNumber(0)
    }

    /// The shard that owns `key` (ignoring that global keys are also kept
    /// everywhere, see [`ShardIdentity::is_key_global`]).
    pub fn get_shard_number(&self, key: &Key) -> ShardNumber {
        key_to_shard_number(self.count, self.stripe_size, key)
    }

    /// Whether this shard owns `key`. Every shard must ingest at least the
    /// keys for which this is true.
    pub fn is_key_local(&self, key: &Key) -> bool {
        self.count.0 < 2 || self.get_shard_number(key) == self.number
    }

    /// Whether `key` is kept on every shard rather than only its owner:
    /// relation size keys and the other metadata, except SLRU directories,
    /// blocks and sizes and aux files, which only shard 0 keeps. Only shard 0
    /// is authoritative for relation sizes; other shards keep the highest
    /// block they ingested.
    pub fn is_key_global(&self, key: &Key) -> bool {
        let shard0_only = key.is_slru_block_key()
            || key.is_slru_segment_size_key()
            || key.is_slru_dir_key()
            || key.is_aux_file_key();
        !shard0_only && !key.is_rel_block_key()
    }

    /// Whether this shard may drop `key` (e.g. during compaction after a
    /// split): neither global nor local.
    pub fn is_key_disposable(&self, key: &Key) -> bool {
        self.count.0 >= 2 && !self.is_key_global(key) && !self.is_key_local(key)
    }
}

/// Keys that always live on shard 0: everything except relation blocks,
/// plus init-fork blocks (unlogged relations are needed by basebackup).
fn key_is_shard0(key: &Key) -> bool {
    !key.is_rel_block_key() || key.field5 == INIT_FORKNUM
}

/// Postgres' `murmurhash32` finaliser (`common/hashfn.h`).
pub fn murmurhash32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Postgres' `hash_combine` (`common/hashfn.h`).
pub fn hash_combine(a: u32, b: u32) -> u32 {
    let b = b
        .wrapping_add(0x9e37_79b9)
        .wrapping_add(a << 6)
        .wrapping_add(a >> 2);
    a ^ b
}

/// The shard owning `key` among `count` shards. Shard 0 for tenants with
/// fewer than two shards and for shard-0 keys; otherwise
/// `hash_combine(murmur(relnode), murmur(blkno / stripe)) % count`.
pub fn key_to_shard_number(
    count: ShardCount,
    stripe_size: ShardStripeSize,
    key: &Key,
) -> ShardNumber {
    if count.0 < 2 || key_is_shard0(key) {
        return ShardNumber(0);
    }
    // `max(1)` only matters for a hand-built zero stripe, which
    // `ShardIdentity` rejects; it avoids a division by zero.
    let stripe = key.field6 / stripe_size.0.max(1);
    let hash = hash_combine(murmurhash32(key.field4), murmurhash32(stripe));
    ShardNumber((hash % u32::from(count.0)) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{
        aux_file_key, rel_block_to_key, rel_size_to_key, slru_block_to_key, slru_dir_to_key,
        slru_segment_size_to_key, CHECKPOINT_KEY, DBDIR_KEY,
    };
    use crate::reltag::{RelTag, SlruKind, FSM_FORKNUM, MAIN_FORKNUM};

    fn block(relnode: u32, forknum: u8, blkno: u32) -> Key {
        rel_block_to_key(RelTag::new(1663, 5, relnode, forknum), blkno)
    }

    #[test]
    fn hash_primitives() {
        // Values computed by hand (Python model of the formulas in §2.4).
        assert_eq!(murmurhash32(0), 0);
        assert_eq!(murmurhash32(1), 0x514e_28b7);
        assert_eq!(murmurhash32(16384), 0x5308_5746);
        assert_eq!(hash_combine(0xb1ff_3b40, 0), 0xfb79_23c9);
    }

    #[test]
    fn known_shard_vectors() {
        // (relnode, blkno, stripe, count) -> shard, computed from the formula.
        let cases = [
            (16384, 0, 2048, 4, 0),
            (16384, 2047, 2048, 4, 0),
            (16384, 2048, 2048, 4, 3),
            (16384, 4096, 2048, 4, 2),
            (16385, 0, 2048, 8, 1),
            (1259, 100_000, 2048, 3, 1),
            (16384, 0, 32768, 2, 0),
            (16384, 40_000, 32768, 2, 1),
            (0x400c, 0x7d06, 32768, 10, 8),
        ];
        for (relnode, blkno, stripe, count, expected) in cases {
            let key = block(relnode, MAIN_FORKNUM, blkno);
            let got = key_to_shard_number(ShardCount(count), ShardStripeSize(stripe), &key);
            assert_eq!(
                got,
                ShardNumber(expected),
                "{relnode}/{blkno} stripe {stripe} count {count}"
            );
        }
        // Blocks of one stripe stay together; the FSM fork hashes like main.
        let s = |blk| {
            key_to_shard_number(
                ShardCount(4),
                ShardStripeSize(2048),
                &block(16384, FSM_FORKNUM, blk),
            )
        };
        assert_eq!(s(2048), s(4095));
        assert_eq!(s(2048), ShardNumber(3));
    }

    #[test]
    fn shard_zero_keys_and_locality() {
        let count = ShardCount(4);
        let ids: Vec<ShardIdentity> = (0..4)
            .map(|n| ShardIdentity::new(ShardNumber(n), count, DEFAULT_STRIPE_SIZE).unwrap())
            .collect();
        let init_block = block(16384, INIT_FORKNUM, 5000);
        let metadata = [
            DBDIR_KEY,
            CHECKPOINT_KEY,
            rel_size_to_key(RelTag::new(1663, 5, 16384, 0)),
            slru_block_to_key(SlruKind::Clog, 0, 3),
            aux_file_key("pg_replslot/s/state"),
            init_block,
        ];
        for key in metadata {
            for id in &ids {
                assert_eq!(id.get_shard_number(&key), ShardNumber(0), "{key}");
                assert_eq!(id.is_key_local(&key), id.is_shard_zero(), "{key}");
            }
        }
        // Each relation block is local to exactly one shard.
        for blk in [0, 2048, 4096, 6144, 100_000] {
            let key = block(16384, MAIN_FORKNUM, blk);
            assert_eq!(ids.iter().filter(|id| id.is_key_local(&key)).count(), 1);
            let owner = ids[0].get_shard_number(&key);
            assert!(ids[owner.0 as usize].is_key_local(&key));
            assert!(!ids.iter().any(|id| id.is_key_global(&key)));
        }
        // Unsharded and single-shard identities own everything.
        let key = block(16384, MAIN_FORKNUM, 2048);
        assert!(ShardIdentity::unsharded().is_key_local(&key));
        let one = ShardIdentity::new(ShardNumber(0), ShardCount(1), DEFAULT_STRIPE_SIZE).unwrap();
        assert!(one.is_key_local(&key) && !one.is_key_disposable(&key));
    }

    #[test]
    fn global_keys() {
        let id = ShardIdentity::new(ShardNumber(1), ShardCount(2), DEFAULT_STRIPE_SIZE).unwrap();
        assert!(id.is_key_global(&rel_size_to_key(RelTag::new(1663, 5, 16384, 0))));
        assert!(id.is_key_global(&DBDIR_KEY));
        assert!(id.is_key_global(&CHECKPOINT_KEY));
        assert!(!id.is_key_global(&slru_block_to_key(SlruKind::Clog, 0, 0)));
        assert!(!id.is_key_global(&slru_segment_size_to_key(SlruKind::Clog, 0)));
        assert!(!id.is_key_global(&slru_dir_to_key(SlruKind::MultiXactOffsets)));
        assert!(!id.is_key_global(&aux_file_key("pg_stat/pgstat.stat")));
        assert!(!id.is_key_global(&block(16384, MAIN_FORKNUM, 0)));
        // Shard 1 may drop SLRU blocks and blocks it does not own.
        assert!(id.is_key_disposable(&slru_block_to_key(SlruKind::Clog, 0, 0)));
        assert!(!id.is_key_disposable(&DBDIR_KEY));
        let theirs = block(16384, MAIN_FORKNUM, 0);
        assert_eq!(id.get_shard_number(&theirs), ShardNumber(0));
        assert!(id.is_key_disposable(&theirs));
    }

    #[test]
    fn identity_validation_and_serde() {
        assert_eq!(DEFAULT_STRIPE_SIZE, ShardStripeSize(2048));
        assert_eq!(
            ShardIdentity::new(ShardNumber(0), ShardCount(0), DEFAULT_STRIPE_SIZE),
            Err(ShardConfigError::InvalidCount)
        );
        assert_eq!(
            ShardIdentity::new(ShardNumber(4), ShardCount(4), DEFAULT_STRIPE_SIZE),
            Err(ShardConfigError::InvalidNumber {
                number: 4,
                count: 4
            })
        );
        assert_eq!(
            ShardIdentity::new(ShardNumber(0), ShardCount(4), ShardStripeSize(0)),
            Err(ShardConfigError::InvalidStripeSize)
        );
        let id = ShardIdentity::new(ShardNumber(2), ShardCount(4), ShardStripeSize(8)).unwrap();
        assert_eq!(id.shard_index().to_string(), "0204");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#"{"number":2,"count":4,"stripe_size":8}"#);
        assert_eq!(serde_json::from_str::<ShardIdentity>(&json).unwrap(), id);
        let bad = r#"{"number":5,"count":4,"stripe_size":8}"#;
        assert!(serde_json::from_str::<ShardIdentity>(bad).is_err());
        let legacy = r#"{"number":0,"count":0,"stripe_size":32768}"#;
        let legacy: ShardIdentity = serde_json::from_str(legacy).unwrap();
        assert!(legacy.is_unsharded());
        assert_eq!(legacy.stripe_size(), ShardStripeSize(32768));
    }
}
