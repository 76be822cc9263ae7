//! Block cache: the [`BlockCache`] hook and a sharded LRU implementation.
//!
//! Block files read their index blocks through an optional cache shared by
//! all open files. Entries are keyed by ([`ContentKind`], file id, block
//! number); every opened [`crate::BlockFile`] gets a fresh file id from
//! [`next_file_id`], so entries of a closed or replaced file are never served
//! for another file and simply age out.
//!
//! [`LruBlockCache`] splits its capacity over up to 16 shards, each an
//! intrusive doubly-linked LRU list over a slab plus a hash map, behind its own
//! mutex: `get` and `insert` are O(1). It keeps hit/miss/insert/eviction
//! counters per content kind, which the pageserver exports as metrics; the
//! pageserver sizes it from `page_cache_size` (in 8 KiB pages) and may store
//! materialized pages in it under [`ContentKind::MaterializedPage`] with ids
//! of its own choosing (taken from [`next_file_id`] to stay disjoint).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::block::BlockNo;

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
}

impl ContentKind {
    pub const ALL: [ContentKind; 2] = [ContentKind::IndexBlock, ContentKind::MaterializedPage];

    fn idx(self) -> usize {
        match self {
            ContentKind::IndexBlock => 0,
            ContentKind::MaterializedPage => 1,
        }
    }
}

/// Cache of immutable blocks. Implementations must be cheap and non-blocking
/// (no IO); a miss is always allowed.
pub trait BlockCache: Send + Sync {
    fn get(&self, kind: ContentKind, file_id: u64, blkno: BlockNo) -> Option<Bytes>;
    fn insert(&self, kind: ContentKind, file_id: u64, blkno: BlockNo, block: Bytes);
}

/// Counter snapshot for one content kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey {
    kind: ContentKind,
    file_id: u64,
    blkno: BlockNo,
}

const NIL: u32 = u32::MAX;

struct Slot {
    key: CacheKey,
    value: Bytes,
    prev: u32,
    next: u32,
}

/// One LRU list: `head` is the most recently used slot, `tail` the least.
struct Shard {
    capacity: usize,
    map: HashMap<CacheKey, u32>,
    slots: Vec<Slot>,
    head: u32,
    tail: u32,
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            capacity,
            map: HashMap::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old == NIL {
            self.tail = i;
        } else {
            self.slots[old as usize].prev = i;
        }
        self.head = i;
    }

    fn get(&mut self, key: &CacheKey) -> Option<Bytes> {
        let i = *self.map.get(key)?;
        self.unlink(i);
        self.push_front(i);
        Some(self.slots[i as usize].value.clone())
    }

    /// Inserts; returns the kind of the evicted entry, if one was evicted.
    fn insert(&mut self, key: CacheKey, value: Bytes) -> Option<ContentKind> {
        if let Some(&i) = self.map.get(&key) {
            self.slots[i as usize].value = value;
            self.unlink(i);
            self.push_front(i);
            return None;
        }
        if self.slots.len() < self.capacity {
            let i = self.slots.len() as u32;
            self.slots.push(Slot {
                key,
                value,
                prev: NIL,
                next: NIL,
            });
            self.map.insert(key, i);
            self.push_front(i);
            return None;
        }
        let victim = self.tail;
        self.unlink(victim);
        let old_key = self.slots[victim as usize].key;
        self.map.remove(&old_key);
        let s = &mut self.slots[victim as usize];
        s.key = key;
        s.value = value;
        self.map.insert(key, victim);
        self.push_front(victim);
        Some(old_key.kind)
    }
}

/// A sharded LRU block cache holding up to `capacity_blocks` entries.
pub struct LruBlockCache {
    shards: Vec<Mutex<Shard>>,
    capacity: usize,
    counters: [Counters; 2],
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
    /// A cache of `capacity_blocks` entries; 0 disables caching.
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
            counters: Default::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters for one kind of content.
    pub fn stats(&self, kind: ContentKind) -> CacheStats {
        let c = &self.counters[kind.idx()];
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            inserts: c.inserts.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
        }
    }

    fn shard(&self, key: &CacheKey) -> &Mutex<Shard> {
        let h = key
            .file_id
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(u64::from(key.blkno).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
            .wrapping_add(key.kind.idx() as u64);
        &self.shards[((h >> 32) as usize) % self.shards.len()]
    }
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave the list half-updated in a
    // way that matters more than losing the cache, so recover the guard.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BlockCache for LruBlockCache {
    fn get(&self, kind: ContentKind, file_id: u64, blkno: BlockNo) -> Option<Bytes> {
        let key = CacheKey {
            kind,
            file_id,
            blkno,
        };
        let found = if self.capacity == 0 {
            None
        } else {
            lock(self.shard(&key)).get(&key)
        };
        let c = &self.counters[kind.idx()];
        match found {
            Some(_) => c.hits.fetch_add(1, Ordering::Relaxed),
            None => c.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    fn insert(&self, kind: ContentKind, file_id: u64, blkno: BlockNo, block: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let key = CacheKey {
            kind,
            file_id,
            blkno,
        };
        let evicted = lock(self.shard(&key)).insert(key, block);
        self.counters[kind.idx()]
            .inserts
            .fetch_add(1, Ordering::Relaxed);
        if let Some(k) = evicted {
            self.counters[k.idx()]
                .evictions
                .fetch_add(1, Ordering::Relaxed);
        }
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
        assert_eq!(c.get(k, 1, 0), Some(b(0))); // 0 becomes most recent
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
