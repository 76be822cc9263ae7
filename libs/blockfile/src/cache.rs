//! Block cache: the [`BlockCache`] hook and a sharded LRU implementation.
//!
//! Block files read their index blocks, and on request their blob-area
//! (data) blocks or whole decoded blobs, through an optional cache shared by
//! all open files. Entries are keyed by ([`ContentKind`], file id, position):
//! the position is a block number for blocks and a blob's stream offset for
//! blobs. Every opened [`crate::BlockFile`] gets a fresh file id from
//! [`next_file_id`], so entries of a closed or replaced file are never served
//! for another file and simply age out.
//!
//! [`LruBlockCache`] splits its capacity over up to 16 shards, each a slab
//! of entries plus a hash map, behind its own mutex, evicting by CLOCK (an
//! approximation of LRU: a hit sets the entry's reference flag, eviction
//! takes the first entry after the clock hand whose flag is clear, clearing
//! the flags it passes): `get` and `insert` are O(1) (amortized over
//! evictions). Capacity is
//! counted in blocks: an entry is charged `⌈len / 8192⌉` blocks, at least 1,
//! so memory stays bounded by about `capacity × 8 KiB` whatever the entry
//! sizes. It keeps hit/miss/insert/eviction counters per content kind, which
//! the pageserver exports as metrics; the pageserver sizes it from
//! `page_cache_size` (in 8 KiB pages) and may store materialized pages in it
//! under [`ContentKind::MaterializedPage`] with ids of its own choosing
//! (taken from [`next_file_id`] to stay disjoint).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::block::{BlockNo, BLOCK_SIZE};

static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

/// Returns a process-wide unique id for cache keys.
pub fn next_file_id() -> u64 {
    NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed)
}

/// What a cached entry holds; counters are kept per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentKind {
    /// A verified index (B-tree) block of a block file.
    IndexBlock,
    /// A page reconstructed by the pageserver.
    MaterializedPage,
    /// A verified block of a block file's blob area (keyed by block number).
    DataBlock,
    /// A decoded (decompressed) blob, keyed by its stream offset.
    Blob,
}

impl ContentKind {
    pub const ALL: [ContentKind; 4] = [
        ContentKind::IndexBlock,
        ContentKind::MaterializedPage,
        ContentKind::DataBlock,
        ContentKind::Blob,
    ];

    fn idx(self) -> usize {
        match self {
            ContentKind::IndexBlock => 0,
            ContentKind::MaterializedPage => 1,
            ContentKind::DataBlock => 2,
            ContentKind::Blob => 3,
        }
    }

    /// Lower-case name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::IndexBlock => "index_block",
            ContentKind::MaterializedPage => "materialized_page",
            ContentKind::DataBlock => "data_block",
            ContentKind::Blob => "blob",
        }
    }
}

/// Cache of immutable blocks and blobs. Implementations must be cheap and
/// non-blocking (no IO); a miss is always allowed.
///
/// `get`/`insert` address an entry by block number; `get_at`/`insert_at` by
/// a 64-bit position (blob offsets). Both name the same entries for
/// positions that fit a block number. The default `*_at` methods cache
/// nothing above `u32::MAX`.
pub trait BlockCache: Send + Sync {
    fn get(&self, kind: ContentKind, file_id: u64, blkno: BlockNo) -> Option<Bytes>;
    fn insert(&self, kind: ContentKind, file_id: u64, blkno: BlockNo, block: Bytes);

    fn get_at(&self, kind: ContentKind, file_id: u64, pos: u64) -> Option<Bytes> {
        let blkno = BlockNo::try_from(pos).ok()?;
        self.get(kind, file_id, blkno)
    }

    fn insert_at(&self, kind: ContentKind, file_id: u64, pos: u64, value: Bytes) {
        if let Ok(blkno) = BlockNo::try_from(pos) {
            self.insert(kind, file_id, blkno, value)
        }
    }
}

/// Counter snapshot for one content kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey {
    kind: ContentKind,
    file_id: u64,
    pos: u64,
}

impl CacheKey {
    /// Well-mixed hash; picks the shard (high bits) and the bucket.
    fn hash(&self) -> u64 {
        let h = self
            .file_id
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(self.pos.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
            .wrapping_add(self.kind.idx() as u64);
        (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }
}

/// Hasher for [`CacheKey`]s: takes the key's own hash (SipHash would cost
/// more than the rest of a lookup).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached if a key is hashed through another path; stay correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Map key: the [`CacheKey`], hashed by its precomputed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MapKey(CacheKey);

impl std::hash::Hash for MapKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash());
    }
}

struct Slot {
    key: CacheKey,
    value: Bytes,
    weight: u32,
    /// Set by a hit, cleared when the clock hand passes: a second chance.
    referenced: bool,
    /// False for a slot on the free list.
    live: bool,
}

/// Blocks an entry of `len` bytes is charged.
fn weight(len: usize) -> usize {
    len.div_ceil(BLOCK_SIZE).max(1)
}

/// Per-kind counters of one shard (updated under its lock).
#[derive(Default, Clone, Copy)]
struct ShardCounters {
    hits: u64,
    misses: u64,
    inserts: u64,
    evictions: u64,
}

/// One shard: a slab of entries, a hash map from key to slot, and a clock
/// hand for eviction (CLOCK, the second-chance approximation of LRU).
///
/// Why not an exact LRU list: with a working set of hundreds of thousands
/// of pages every hit moved its slot to the front, touching two or three
/// other slots (cache misses each); a hit here only sets a flag in the slot
/// it reads anyway. The counters live here too, under the lock already
/// held, instead of in atomics every core writes.
struct Shard {
    /// In blocks.
    capacity: usize,
    used: usize,
    map: HashMap<MapKey, u32, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    /// Slots emptied by evictions, for reuse.
    free: Vec<u32>,
    hand: usize,
    counters: [ShardCounters; ContentKind::ALL.len()],
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            capacity,
            used: 0,
            map: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            hand: 0,
            counters: Default::default(),
        }
    }

    fn get(&mut self, key: &CacheKey) -> Option<Bytes> {
        let found = self.map.get(&MapKey(*key)).map(|&i| {
            let s = &mut self.slots[i as usize];
            s.referenced = true;
            s.value.clone()
        });
        let c = &mut self.counters[key.kind.idx()];
        match found {
            Some(_) => c.hits += 1,
            None => c.misses += 1,
        }
        found
    }

    fn remove_slot(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        self.used -= s.weight as usize;
        s.value = Bytes::new();
        s.live = false;
        let key = s.key;
        self.map.remove(&MapKey(key));
        self.free.push(i);
    }

    /// Evicts one entry other than `keep`: the first unreferenced one after
    /// the hand, clearing the flags it passes. Returns false if there is
    /// none to evict.
    fn evict_one(&mut self, keep: Option<u32>) -> bool {
        let n = self.slots.len();
        // Two full turns clear every flag and then find a victim.
        for _ in 0..2 * n + 1 {
            let i = self.hand;
            self.hand = (self.hand + 1) % n.max(1);
            let Some(s) = self.slots.get_mut(i) else {
                return false;
            };
            if !s.live || keep == Some(i as u32) {
                continue;
            }
            if s.referenced {
                s.referenced = false;
                continue;
            }
            let kind = s.key.kind;
            self.remove_slot(i as u32);
            self.counters[kind.idx()].evictions += 1;
            return true;
        }
        false
    }

    /// Inserts (or replaces), evicting entries as needed. An entry heavier
    /// than the whole shard is not kept.
    fn insert(&mut self, key: CacheKey, value: Bytes) {
        self.counters[key.kind.idx()].inserts += 1;
        let w = weight(value.len());
        if w > self.capacity {
            if let Some(&i) = self.map.get(&MapKey(key)) {
                self.remove_slot(i);
            }
            return;
        }
        if let Some(&i) = self.map.get(&MapKey(key)) {
            let s = &mut self.slots[i as usize];
            self.used = self.used - s.weight as usize + w;
            s.weight = w as u32;
            s.value = value;
            s.referenced = true;
            while self.used > self.capacity && self.evict_one(Some(i)) {}
            return;
        }
        while self.used + w > self.capacity && self.evict_one(None) {}
        let slot = Slot {
            key,
            value,
            weight: w as u32,
            referenced: false,
            live: true,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.used += w;
        self.map.insert(MapKey(key), i);
    }
}

/// A sharded LRU cache holding up to `capacity_blocks` blocks' worth of
/// entries.
pub struct LruBlockCache {
    shards: Vec<Mutex<Shard>>,
    capacity: usize,
}

impl std::fmt::Debug for LruBlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LruBlockCache")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish()
    }
}

const MAX_SHARDS: usize = 16;
/// Shards are only split off once each can hold at least this many entries,
/// so small caches keep (nearly) exact LRU order.
const MIN_SHARD_CAPACITY: usize = 64;

impl LruBlockCache {
    /// A cache of `capacity_blocks` blocks (8 KiB each); 0 disables caching.
    pub fn new(capacity_blocks: usize) -> LruBlockCache {
        let nshards = (capacity_blocks / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let shards = (0..nshards)
            .map(|i| {
                let cap = capacity_blocks / nshards + usize::from(i < capacity_blocks % nshards);
                Mutex::new(Shard::new(cap))
            })
            .collect();
        LruBlockCache {
            shards,
            capacity: capacity_blocks,
        }
    }

    /// Capacity in blocks.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Blocks charged for the entries currently held (at most the capacity).
    pub fn used_blocks(&self) -> usize {
        self.shards.iter().map(|s| lock(s).used).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters for one kind of content.
    pub fn stats(&self, kind: ContentKind) -> CacheStats {
        let mut out = CacheStats::default();
        for shard in &self.shards {
            let c = lock(shard).counters[kind.idx()];
            out.hits += c.hits;
            out.misses += c.misses;
            out.inserts += c.inserts;
            out.evictions += c.evictions;
        }
        out
    }

    fn shard(&self, key: &CacheKey) -> &Mutex<Shard> {
        &self.shards[((key.hash() >> 40) as usize) % self.shards.len()]
    }
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave the list half-updated in a
    // way that matters more than losing the cache, so recover the guard.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BlockCache for LruBlockCache {
    fn get(&self, kind: ContentKind, file_id: u64, blkno: BlockNo) -> Option<Bytes> {
        self.get_at(kind, file_id, u64::from(blkno))
    }

    fn insert(&self, kind: ContentKind, file_id: u64, blkno: BlockNo, block: Bytes) {
        self.insert_at(kind, file_id, u64::from(blkno), block)
    }

    fn get_at(&self, kind: ContentKind, file_id: u64, pos: u64) -> Option<Bytes> {
        let key = CacheKey { kind, file_id, pos };
        lock(self.shard(&key)).get(&key)
    }

    fn insert_at(&self, kind: ContentKind, file_id: u64, pos: u64, value: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let key = CacheKey { kind, file_id, pos };
        lock(self.shard(&key)).insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8) -> Bytes {
        Bytes::from(vec![n; 4])
    }

    #[test]
    fn lru_order_and_counters() {
        let c = LruBlockCache::new(3);
        let k = ContentKind::IndexBlock;
        c.insert(k, 1, 0, b(0));
        c.insert(k, 1, 1, b(1));
        c.insert(k, 1, 2, b(2));
        assert_eq!(c.get(k, 1, 0), Some(b(0))); // 0 gets its second chance
        c.insert(k, 1, 3, b(3)); // evicts 1
        assert_eq!(c.get(k, 1, 1), None);
        assert_eq!(c.get(k, 1, 2), Some(b(2)));
        assert_eq!(c.get(k, 1, 3), Some(b(3)));
        assert_eq!(c.get(k, 1, 0), Some(b(0)));
        // Same block number, other file or other kind: distinct entries.
        assert_eq!(c.get(k, 2, 0), None);
        assert_eq!(c.get(ContentKind::MaterializedPage, 1, 0), None);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.stats(k),
            CacheStats {
                hits: 4,
                misses: 2,
                inserts: 4,
                evictions: 1
            }
        );
        assert_eq!(c.stats(ContentKind::MaterializedPage).misses, 1);

        // Evictions are charged to the kind that was evicted.
        c.insert(ContentKind::MaterializedPage, 9, 9, b(9));
        assert_eq!(c.stats(k).evictions, 2);
        assert_eq!(c.stats(ContentKind::MaterializedPage).evictions, 0);
        // Re-inserting an existing key replaces it without eviction.
        c.insert(ContentKind::MaterializedPage, 9, 9, b(8));
        assert_eq!(c.get(ContentKind::MaterializedPage, 9, 9), Some(b(8)));
        assert_eq!(c.stats(k).evictions, 2);
    }

    #[test]
    fn an_entry_hit_between_scans_survives_them() {
        let c = LruBlockCache::new(8);
        let k = ContentKind::Blob;
        c.insert(k, 1, 0, b(0));
        for i in 1..1000u32 {
            c.insert(k, 2, i, b(1));
            assert_eq!(c.get(k, 1, 0), Some(b(0)), "hot entry evicted at {i}");
        }
        assert_eq!(c.len(), 8);
        assert_eq!(c.stats(k).evictions, 1000 - 8);
    }

    #[test]
    fn entries_are_charged_by_size() {
        let c = LruBlockCache::new(10);
        let k = ContentKind::Blob;
        let big = |blocks: usize| Bytes::from(vec![1u8; blocks * BLOCK_SIZE]);
        c.insert_at(k, 1, 1 << 40, big(4));
        c.insert_at(k, 1, 2, Bytes::from(vec![1u8; BLOCK_SIZE + 1])); // 2 blocks
        c.insert_at(k, 1, 3, b(3)); // 1 block
        assert_eq!(c.used_blocks(), 7);
        assert_eq!(
            c.get_at(k, 1, 1 << 40).map(|v| v.len()),
            Some(4 * BLOCK_SIZE)
        );
        // 4 more blocks: the first entry without a hit since (2 blocks) goes.
        c.insert_at(k, 1, 4, big(4));
        assert_eq!(c.get_at(k, 1, 2), None);
        assert_eq!(c.get_at(k, 1, 3), Some(b(3)));
        assert_eq!(c.used_blocks(), 9);
        assert_eq!(c.stats(k).evictions, 1);
        // Replacing an entry by a bigger one evicts others to make room.
        c.insert_at(k, 1, 4, big(7));
        assert_eq!(c.used_blocks(), 8);
        assert_eq!(c.get_at(k, 1, 1 << 40), None);
        assert_eq!(c.stats(k).evictions, 2);
        // An entry larger than the cache is not kept; the old value goes.
        c.insert_at(k, 1, 4, big(11));
        assert_eq!(c.get_at(k, 1, 4), None);
        assert_eq!(c.used_blocks(), 1);
        assert_eq!(c.len(), 1);
        // Block numbers and positions name the same entries.
        c.insert(ContentKind::DataBlock, 2, 9, b(9));
        assert_eq!(c.get_at(ContentKind::DataBlock, 2, 9), Some(b(9)));
    }

    #[test]
    fn zero_capacity_and_sharded_bound() {
        let c = LruBlockCache::new(0);
        c.insert(ContentKind::IndexBlock, 1, 1, b(1));
        assert_eq!(c.get(ContentKind::IndexBlock, 1, 1), None);
        assert!(c.is_empty());

        let c = LruBlockCache::new(1000);
        for i in 0..10_000u32 {
            c.insert(ContentKind::IndexBlock, u64::from(i % 7), i, b(i as u8));
        }
        assert_eq!(c.len(), 1000);
        let s = c.stats(ContentKind::IndexBlock);
        assert_eq!(s.inserts, 10_000);
        assert_eq!(s.evictions, 9_000);
        // The most recent entries survive.
        assert!(c
            .get(ContentKind::IndexBlock, u64::from(9_999u32 % 7), 9_999)
            .is_some());
    }
}
