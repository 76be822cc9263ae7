//! Sets of keys as sorted lists of key ranges.
//!
//! Owns [`KeySpace`] and the set operations the storage engine needs (union,
//! intersection, difference, membership, size, partitioning), plus two
//! builders: [`KeySpaceAccum`] for ranges arriving in ascending order and
//! [`KeySpaceRandomAccum`] for ranges in any order.
//!
//! Invariant of a normalized `KeySpace`: ranges are non-empty, sorted, and
//! neither overlap nor touch (`ranges[i].end < ranges[i + 1].start`), so each
//! set of keys has exactly one representation and derived `PartialEq` is set
//! equality. `ranges` is public so callers can build a keyspace literally;
//! such callers must respect the invariant (or go through
//! [`KeySpace::from_ranges`]). Operations never panic on non-normalized
//! input, but their results are then unspecified.
//!
//! # Sizes
//!
//! Key counts use the compact i128 form ([`Key::to_i128`]): the size of
//! `a..b` is `b.to_i128() - a.to_i128()`, saturated to `u64`. This is exact
//! for ranges whose keys all satisfy [`Key::is_exact_i128`] (every key the
//! write path stores, except for the `field2` sentinels). A range that
//! reaches keys with `field2 > 0xFFFF` or `field1 >= 0x80` is measured by
//! the projection of its ends, which drops those high bits: the count then
//! only approximates the number of storable keys, and is at least 1 for any
//! non-empty range. `Key::MAX` projects to `i128::MAX`, so
//! `Key::MIN..Key::MAX` measures `u64::MAX`.
//!
//! Callers: the read path (which keys remain to be found), layers (what
//! they cover), compaction (`partition`) and GC.

use std::ops::Range;

use crate::key::Key;

/// A set of keys; see the module docs for the invariant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySpace {
    pub ranges: Vec<Range<Key>>,
}

/// Number of keys in `range` (compact i128 distance, see module docs):
/// 0 for an empty range, at least 1 otherwise, saturating at `u64::MAX`.
pub fn key_range_size(range: &Range<Key>) -> u64 {
    if range.start >= range.end {
        return 0;
    }
    // Both projections lie in 0..=i128::MAX, so the difference cannot
    // overflow.
    let distance = range.end.to_i128() - range.start.to_i128();
    u64::try_from(distance.max(1)).unwrap_or(u64::MAX)
}

/// The range holding only `key`. Empty for `Key::MAX`, whose successor
/// wraps to `Key::MIN`; `Key::MAX` is only ever used as a range end.
pub fn singleton_range(key: Key) -> Range<Key> {
    key..key.next()
}

/// The key `n` keys after `start`, when it can be computed exactly and lies
/// strictly inside `start..end`.
fn split_point(start: Key, end: Key, n: u64) -> Option<Key> {
    if !start.is_exact_i128() {
        return None;
    }
    let at = start.to_i128().checked_add(i128::from(n))?;
    let key = Key::from_i128(at);
    (start < key && key < end).then_some(key)
}

impl KeySpace {
    pub fn new() -> KeySpace {
        KeySpace::default()
    }

    /// The keyspace of one range (empty if the range is).
    pub fn single(range: Range<Key>) -> KeySpace {
        KeySpace::from_ranges([range])
    }

    /// Normalizes any ranges: drops empty ones, sorts, merges overlapping
    /// and touching ones.
    pub fn from_ranges(ranges: impl IntoIterator<Item = Range<Key>>) -> KeySpace {
        let mut ranges: Vec<Range<Key>> = ranges.into_iter().filter(|r| r.start < r.end).collect();
        ranges.sort_unstable_by_key(|r| r.start);
        let mut merged: Vec<Range<Key>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        KeySpace { ranges: merged }
    }

    /// Whether the invariant of the module docs holds.
    pub fn is_normalized(&self) -> bool {
        self.ranges.iter().all(|r| r.start < r.end)
            && self.ranges.windows(2).all(|w| w[0].end < w[1].start)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The smallest key in the set.
    pub fn start(&self) -> Option<Key> {
        self.ranges.first().map(|r| r.start)
    }

    /// The end (exclusive) of the largest range.
    pub fn end(&self) -> Option<Key> {
        self.ranges.last().map(|r| r.end)
    }

    /// Number of keys (saturating; see the module docs for ranges that are
    /// not exactly representable).
    pub fn total_size(&self) -> u64 {
        self.ranges
            .iter()
            .fold(0u64, |acc, r| acc.saturating_add(key_range_size(r)))
    }

    /// Index of the first range ending after `key`.
    fn first_ending_after(&self, key: &Key) -> usize {
        self.ranges.partition_point(|r| r.end <= *key)
    }

    pub fn contains(&self, key: &Key) -> bool {
        let i = self.first_ending_after(key);
        self.ranges.get(i).is_some_and(|r| r.start <= *key)
    }

    /// Whether every key of `range` is in the set (true for empty ranges).
    pub fn contains_range(&self, range: &Range<Key>) -> bool {
        if range.start >= range.end {
            return true;
        }
        let i = self.first_ending_after(&range.start);
        self.ranges
            .get(i)
            .is_some_and(|r| r.start <= range.start && range.end <= r.end)
    }

    /// Whether some key of `range` is in the set.
    pub fn overlaps(&self, range: &Range<Key>) -> bool {
        if range.start >= range.end {
            return false;
        }
        let i = self.first_ending_after(&range.start);
        self.ranges.get(i).is_some_and(|r| r.start < range.end)
    }

    /// Keys in either set.
    pub fn union(&self, other: &KeySpace) -> KeySpace {
        let mut out: Vec<Range<Key>> = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        let (mut a, mut b) = (
            self.ranges.iter().peekable(),
            other.ranges.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.start <= y.start => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, _) => b.next(),
            };
            let Some(range) = next else { break };
            match out.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => out.push(range.clone()),
            }
        }
        KeySpace { ranges: out }
    }

    /// Adds the keys of `other` to `self`.
    pub fn merge(&mut self, other: &KeySpace) {
        *self = self.union(other);
    }

    /// Keys in both sets.
    pub fn intersect(&self, other: &KeySpace) -> KeySpace {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while let (Some(a), Some(b)) = (self.ranges.get(i), other.ranges.get(j)) {
            let start = a.start.max(b.start);
            let end = a.end.min(b.end);
            if start < end {
                out.push(start..end);
            }
            if a.end < b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        KeySpace { ranges: out }
    }

    /// Keys in `self` but not in `other`.
    pub fn subtract(&self, other: &KeySpace) -> KeySpace {
        let mut out = Vec::new();
        let mut j = 0;
        for a in &self.ranges {
            let mut cur = a.start;
            while other.ranges.get(j).is_some_and(|b| b.end <= cur) {
                j += 1;
            }
            while let Some(b) = other.ranges.get(j) {
                if b.start >= a.end {
                    break;
                }
                if b.start > cur {
                    out.push(cur..b.start);
                }
                cur = cur.max(b.end);
                if b.end >= a.end {
                    // `b` may also cover the next range of `self`.
                    break;
                }
                j += 1;
            }
            if cur < a.end {
                out.push(cur..a.end);
            }
        }
        KeySpace { ranges: out }
    }

    /// Removes the keys of `other` from `self` and returns the removed keys
    /// (the intersection).
    pub fn remove_overlapping_with(&mut self, other: &KeySpace) -> KeySpace {
        let removed = self.intersect(other);
        if !removed.is_empty() {
            *self = self.subtract(other);
        }
        removed
    }

    /// Splits the set, in key order, into parts of at most
    /// `target_size_in_keys` keys each (a target of 0 counts as 1); every
    /// part but the last is full. Used by compaction to cut the keyspace
    /// into image layers of similar size.
    ///
    /// A range is cut inside only where the cut key can be computed exactly
    /// (its start satisfies [`Key::is_exact_i128`]); a range that cannot be
    /// cut goes whole into a part of its own when it exceeds the target. The
    /// parts are non-empty, normalized, ascending, and their union is `self`.
    pub fn partition(&self, target_size_in_keys: u64) -> Vec<KeySpace> {
        let target = target_size_in_keys.max(1);
        let mut parts = Vec::new();
        let mut current: Vec<Range<Key>> = Vec::new();
        let mut current_size = 0u64;
        for range in &self.ranges {
            let mut start = range.start;
            while start < range.end {
                if current_size >= target {
                    parts.push(KeySpace {
                        ranges: std::mem::take(&mut current),
                    });
                    current_size = 0;
                }
                let room = target - current_size;
                let size = key_range_size(&(start..range.end));
                if size <= room {
                    current.push(start..range.end);
                    current_size += size;
                    break;
                }
                match split_point(start, range.end, room) {
                    Some(cut) => {
                        current.push(start..cut);
                        current_size = target;
                        start = cut;
                    }
                    None if current_size > 0 => {
                        // Retry the uncuttable rest in a fresh part.
                        parts.push(KeySpace {
                            ranges: std::mem::take(&mut current),
                        });
                        current_size = 0;
                    }
                    None => {
                        current.push(start..range.end);
                        current_size = current_size.saturating_add(size);
                        break;
                    }
                }
            }
        }
        if !current.is_empty() {
            parts.push(KeySpace { ranges: current });
        }
        parts
    }
}

/// Builds a [`KeySpace`] from ranges added in ascending order of start,
/// merging each with the previous one when they overlap or touch.
///
/// Adding out of order is tolerated (the result is still correct) but falls
/// back to sorting in [`KeySpaceAccum::to_keyspace`], and makes
/// [`KeySpaceAccum::size`] recompute from scratch.
#[derive(Clone, Debug, Default)]
pub struct KeySpaceAccum {
    ranges: Vec<Range<Key>>,
    size: u64,
    in_order: bool,
}

impl KeySpaceAccum {
    pub fn new() -> KeySpaceAccum {
        KeySpaceAccum {
            ranges: Vec::new(),
            size: 0,
            in_order: true,
        }
    }

    /// Adds one key (`Key::MAX` is ignored, see [`singleton_range`]).
    pub fn add_key(&mut self, key: Key) {
        self.add_range(singleton_range(key));
    }

    pub fn add_range(&mut self, range: Range<Key>) {
        if range.start >= range.end {
            return;
        }
        match self.ranges.last_mut() {
            Some(last) if self.in_order && range.start < last.start => {
                self.in_order = false;
                self.ranges.push(range);
            }
            Some(last) if self.in_order && range.start <= last.end => {
                if range.end > last.end {
                    let old = key_range_size(last);
                    last.end = range.end;
                    self.size = (self.size - old).saturating_add(key_range_size(last));
                }
            }
            _ => {
                self.size = self.size.saturating_add(key_range_size(&range));
                self.ranges.push(range);
            }
        }
    }

    /// Number of keys added so far (as [`KeySpace::total_size`]).
    pub fn size(&self) -> u64 {
        if self.in_order {
            self.size
        } else {
            KeySpace::from_ranges(self.ranges.iter().cloned()).total_size()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn to_keyspace(self) -> KeySpace {
        if self.in_order {
            KeySpace {
                ranges: self.ranges,
            }
        } else {
            KeySpace::from_ranges(self.ranges)
        }
    }

    /// Returns the keyspace built so far and starts over.
    pub fn consume_keyspace(&mut self) -> KeySpace {
        std::mem::replace(self, KeySpaceAccum::new()).to_keyspace()
    }
}

/// Builds a [`KeySpace`] from ranges added in any order; normalizes once at
/// the end.
#[derive(Clone, Debug, Default)]
pub struct KeySpaceRandomAccum {
    ranges: Vec<Range<Key>>,
}

impl KeySpaceRandomAccum {
    pub fn new() -> KeySpaceRandomAccum {
        KeySpaceRandomAccum::default()
    }

    /// Adds one key (`Key::MAX` is ignored, see [`singleton_range`]).
    pub fn add_key(&mut self, key: Key) {
        self.add_range(singleton_range(key));
    }

    pub fn add_range(&mut self, range: Range<Key>) {
        if range.start < range.end {
            self.ranges.push(range);
        }
    }

    pub fn add_keyspace(&mut self, keyspace: KeySpace) {
        self.ranges.extend(keyspace.ranges);
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn to_keyspace(self) -> KeySpace {
        KeySpace::from_ranges(self.ranges)
    }

    /// Returns the keyspace built so far and starts over.
    pub fn consume_keyspace(&mut self) -> KeySpace {
        KeySpace::from_ranges(std::mem::take(&mut self.ranges))
    }
}

#[cfg(test)]
mod tests;
