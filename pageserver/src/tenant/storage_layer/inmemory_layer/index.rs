//! The in-memory layer's index: for every key, its versions `(lsn, packed
//! location)`.
//!
//! Versions live in one append-only node array, in put order; each node
//! links to the next older version of its key. A key table
//! ([`super::heads::KeyTable`]) holds, per key, the newest node and its
//! LSN. Ingest appends a version per block it stores, so a put is one table
//! probe (prefetched a few puts ahead) plus a write at the end of the array:
//! no per-key array to grow and copy (per-key arrays cost 7 % of ingest CPU
//! in their reallocations, and their first touches of fresh memory), and
//! the table entry is 32 bytes, half a cache line.
//!
//! Reads walk a key's chain newest first, which is the order reconstruction
//! wants (down to the first version that initializes the page). The flush
//! and compaction want ascending order and reverse a chain's walk.
//!
//! Invariants: every chain is in strictly descending LSN order (a put at an
//! LSN already present replaces that version's location; a put older than
//! the newest is linked in at its place, which the single writer never does
//! in practice); node indexes fit `u32` (a layer holds far fewer values than
//! that: its file is at most 64 GiB and a value is at least a few bytes, and
//! [`VersionIndex::put`] refuses more).

use std::ops::Range;

use pageserver_api::key::Key;
use utils::lsn::Lsn;

use super::heads::{KeyTable, SlotValue};
use super::Packed;

/// No older version.
const NONE: u32 = u32::MAX;

/// Nodes per chunk of the node array: chunks are never reallocated, so a
/// growing index does not copy what it has.
const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Most nodes an index holds.
pub(super) const MAX_VERSIONS: u64 = NONE as u64;

#[derive(Debug, Clone, Copy)]
struct Node {
    lsn: Lsn,
    packed: Packed,
    older: u32,
}

/// A key's newest version. The LSN is kept as two halves so that the map
/// entry (key and head) packs into 32 bytes at 4-byte alignment.
#[derive(Debug, Clone, Copy)]
struct Head {
    newest: u32,
    lsn_lo: u32,
    lsn_hi: u32,
}

impl SlotValue for Head {
    const EMPTY: Head = Head {
        newest: NONE,
        lsn_lo: 0,
        lsn_hi: 0,
    };

    fn is_empty(&self) -> bool {
        self.newest == NONE
    }
}

impl Head {
    fn lsn(self) -> Lsn {
        Lsn(self.lsn_lo as u64 | (self.lsn_hi as u64) << 32)
    }

    fn new(newest: u32, lsn: Lsn) -> Head {
        Head {
            newest,
            lsn_lo: lsn.0 as u32,
            lsn_hi: (lsn.0 >> 32) as u32,
        }
    }
}

/// Spans up to this many keys are read by point lookups.
const POINT_LOOKUP_SPAN: i128 = 1024;

/// See the module documentation.
#[derive(Default)]
pub(super) struct VersionIndex {
    heads: KeyTable<Head>,
    chunks: Vec<Vec<Node>>,
    len: u32,
}

/// The index is full ([`MAX_VERSIONS`]).
#[derive(Debug)]
pub(super) struct IndexFull;

impl VersionIndex {
    /// Versions held.
    pub(super) fn len(&self) -> u64 {
        self.len as u64
    }

    fn node(&self, i: u32) -> &Node {
        &self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    fn push_node(&mut self, node: Node) -> Result<u32, IndexFull> {
        let i = self.len;
        if i == NONE {
            return Err(IndexFull);
        }
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(node),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(node);
                self.chunks.push(c);
            }
        }
        self.len += 1;
        Ok(i)
    }

    /// Adds a version of `key`; a version at an LSN already present gets
    /// the new location.
    pub(super) fn put(&mut self, key: Key, lsn: Lsn, packed: Packed) -> Result<(), IndexFull> {
        let Some(head) = self.heads.get_mut(&key) else {
            let i = self.len;
            if i == NONE {
                return Err(IndexFull);
            }
            self.heads.insert(key, Head::new(i, lsn));
            self.push_node(Node {
                lsn,
                packed,
                older: NONE,
            })?;
            return Ok(());
        };
        if head.lsn() < lsn {
            // The usual case: versions arrive in LSN order.
            let older = head.newest;
            let i = self.len;
            if i == NONE {
                return Err(IndexFull);
            }
            *head = Head::new(i, lsn);
            self.push_node(Node { lsn, packed, older })?;
            return Ok(());
        }
        let newest = head.newest;
        self.put_older(key, newest, lsn, packed)
    }

    /// A put at or below the key's newest LSN: replace, or link in.
    fn put_older(
        &mut self,
        key: Key,
        newest: u32,
        lsn: Lsn,
        packed: Packed,
    ) -> Result<(), IndexFull> {
        // `prev` is the node just newer than `cur`.
        let mut prev = NONE;
        let mut cur = newest;
        while cur != NONE && self.node(cur).lsn > lsn {
            prev = cur;
            cur = self.node(cur).older;
        }
        if cur != NONE && self.node(cur).lsn == lsn {
            self.node_mut(cur).packed = packed;
            return Ok(());
        }
        let i = self.push_node(Node {
            lsn,
            packed,
            older: cur,
        })?;
        if prev == NONE {
            // Unreachable for a key that has a newer version, but keeps the
            // head right whatever the walk found.
            self.heads.insert(key, Head::new(i, lsn));
        } else {
            self.node_mut(prev).older = i;
        }
        Ok(())
    }

    /// Prepares a put of `key` a few puts ahead: see [`KeyTable::prefetch`].
    #[inline]
    pub(super) fn prefetch(&self, key: &Key) {
        self.heads.prefetch(key);
    }

    /// `key`'s versions, newest first.
    pub(super) fn versions(&self, key: &Key) -> Versions<'_> {
        Versions {
            index: self,
            next: self.heads.get(key).map_or(NONE, |h| h.newest),
        }
    }

    /// The keys of `range` that have versions, in key order.
    pub(super) fn keys_in(&self, range: &Range<Key>) -> Vec<Key> {
        let small = range.start.is_exact_i128()
            && range.end.is_exact_i128()
            && range.end.to_i128() - range.start.to_i128() <= POINT_LOOKUP_SPAN;
        if small {
            let mut out = Vec::new();
            let mut key = range.start;
            while key < range.end {
                if self.heads.contains_key(&key) {
                    out.push(key);
                }
                key = key.next();
            }
            out
        } else {
            let mut out: Vec<Key> = self
                .heads
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| range.contains(k))
                .collect();
            out.sort_unstable();
            out
        }
    }

    /// Every key with its versions, keys in no particular order.
    pub(super) fn keys(&self) -> impl Iterator<Item = (&Key, Versions<'_>)> {
        self.heads.iter().map(|(k, h)| {
            (
                k,
                Versions {
                    index: self,
                    next: h.newest,
                },
            )
        })
    }
}

/// A key's versions, newest first.
pub(super) struct Versions<'a> {
    index: &'a VersionIndex,
    next: u32,
}

impl Iterator for Versions<'_> {
    type Item = (Lsn, Packed);

    fn next(&mut self) -> Option<(Lsn, Packed)> {
        if self.next == NONE {
            return None;
        }
        let n = self.index.node(self.next);
        self.next = n.older;
        Some((n.lsn, n.packed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u64) -> Packed {
        Packed::new(n, 1, false)
    }

    fn lsns(ix: &VersionIndex, key: &Key) -> Vec<u64> {
        ix.versions(key).map(|(l, _)| l.0).collect()
    }

    #[test]
    fn chains_stay_newest_first_and_compact() {
        assert_eq!(std::mem::size_of::<(Key, Head)>(), 32);
        let k = Key::MIN.add(3);
        let other = Key::MIN.add(4);
        let mut ix = VersionIndex::default();
        ix.put(k, Lsn(10), p(1)).unwrap();
        ix.put(k, Lsn(10), p(2)).unwrap(); // same LSN: replaced
        assert_eq!(ix.versions(&k).collect::<Vec<_>>(), [(Lsn(10), p(2))]);
        ix.put(other, Lsn(12), p(9)).unwrap();
        ix.put(k, Lsn(5), p(3)).unwrap(); // older: linked in at its place
        ix.put(k, Lsn(20), p(4)).unwrap();
        ix.put(k, Lsn(15), p(5)).unwrap();
        ix.put(k, Lsn(20), p(6)).unwrap();
        assert_eq!(lsns(&ix, &k), [20, 15, 10, 5]);
        assert_eq!(ix.versions(&k).next(), Some((Lsn(20), p(6))));
        for l in 21..(3 * CHUNK as u64) {
            ix.put(k, Lsn(l), p(l)).unwrap();
        }
        let all = lsns(&ix, &k);
        assert_eq!(all.len(), 3 * CHUNK - 21 + 4);
        assert!(all.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(lsns(&ix, &other), [12]);
        assert_eq!(ix.len(), all.len() as u64 + 1);
        assert!(ix.versions(&Key::MIN).next().is_none());
        assert_eq!(ix.keys_in(&(Key::MIN..Key::MAX)), [k, other]);
        assert_eq!(ix.keys_in(&(Key::MIN..Key::MIN.add(4))), [k]);
    }
}
