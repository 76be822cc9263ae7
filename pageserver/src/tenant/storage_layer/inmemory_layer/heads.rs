//! The index's key table: for every key of an in-memory layer, a small
//! fixed-size value (its newest version), in an open-addressing table with
//! linear probing.
//!
//! Why not a std `HashMap`: ingest puts a batch of values whose keys are all
//! known before the first put, and on pgbench WAL the table probe was the
//! index's largest cost, a cache miss per value (the table is evicted by the
//! page images streaming through the cache between two batches). This table
//! exposes where a key's probe starts, so [`KeyTable::prefetch`] can pull
//! that line in a few values ahead of the put that needs it.
//!
//! Invariants: the slot count is a power of two and at least twice the
//! number of keys (so every probe ends at an empty slot, and probes stay
//! short); a slot is empty exactly when its value is `V::EMPTY`; keys are
//! never removed (a layer only grows until it is frozen), so no tombstones
//! exist. Callers: [`super::index::VersionIndex`].

use pageserver_api::key::Key;

/// A table value with one bit pattern that marks an empty slot.
pub(super) trait SlotValue: Copy {
    const EMPTY: Self;
    fn is_empty(&self) -> bool;
}

/// Slots of a new table; small, since most layers of an idle tenant hold
/// few keys.
const INITIAL_SLOTS: usize = 64;

/// See the module documentation.
pub(super) struct KeyTable<V: SlotValue> {
    slots: Vec<(Key, V)>,
    /// `64 - log2(slots.len())`: a hash's top bits pick the home slot.
    shift: u32,
    len: usize,
}

impl<V: SlotValue> Default for KeyTable<V> {
    fn default() -> Self {
        KeyTable::with_slots(INITIAL_SLOTS)
    }
}

/// Multiply-shift hashing of the key's three words: the multiplications
/// carry every input bit into the top bits, which choose the slot.
fn hash(key: &Key) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let (a, b, c) = key.words();
    ((a.wrapping_mul(K1) ^ b).wrapping_mul(K2) ^ c as u64).wrapping_mul(K1)
}

impl<V: SlotValue> KeyTable<V> {
    fn with_slots(n: usize) -> Self {
        debug_assert!(n.is_power_of_two());
        KeyTable {
            slots: vec![(Key::MIN, V::EMPTY); n],
            shift: 64 - n.trailing_zeros(),
            len: 0,
        }
    }

    /// Keys held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    fn home(&self, key: &Key) -> usize {
        (hash(key) >> self.shift) as usize
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn find(&self, key: &Key) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let (k, v) = &self.slots[i];
            if v.is_empty() || k == key {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// Asks the CPU to fetch the line where `key`'s probe starts.
    #[inline]
    pub(super) fn prefetch(&self, key: &Key) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.slots.as_ptr().wrapping_add(self.home(key));
            // SAFETY: a prefetch is only a hint: it never faults and
            // changes no memory, whatever the address.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p as *const i8,
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }

    pub(super) fn get(&self, key: &Key) -> Option<&V> {
        let (_, v) = &self.slots[self.find(key)];
        (!v.is_empty()).then_some(v)
    }

    pub(super) fn contains_key(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        let i = self.find(key);
        let (_, v) = &mut self.slots[i];
        (!v.is_empty()).then_some(v)
    }

    /// Sets `key`'s value. `value` must not be `V::EMPTY`, which would
    /// drop the key from every later probe: such a call is refused.
    pub(super) fn insert(&mut self, key: Key, value: V) {
        if value.is_empty() {
            debug_assert!(false, "empty value inserted for {key}");
            return;
        }
        // Keep the load at most one half, growing before the insert that
        // would pass it.
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.find(&key);
        if self.slots[i].1.is_empty() {
            self.len += 1;
        }
        self.slots[i] = (key, value);
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, KeyTable::with_slots(self.slots.len() * 2));
        for (k, v) in old.slots {
            if !v.is_empty() {
                let i = self.find(&k);
                self.slots[i] = (k, v);
                self.len += 1;
            }
        }
    }

    /// Every key with its value, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.slots
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    impl SlotValue for u32 {
        const EMPTY: u32 = u32::MAX;
        fn is_empty(&self) -> bool {
            *self == u32::MAX
        }
    }

    #[test]
    fn behaves_as_a_map_across_growth() {
        let mut table = KeyTable::<u32>::default();
        let mut model = HashMap::new();
        // Keys that differ only in the block number, only in the relation,
        // and in the high fields: the shapes of a layer's keys.
        let mut keys = Vec::new();
        for blk in 0..3000u32 {
            keys.push(Key {
                field6: blk,
                ..Key::MIN
            });
        }
        for rel in 0..500u32 {
            keys.push(Key {
                field1: 1,
                field4: rel,
                field5: (rel % 3) as u8,
                ..Key::MIN
            });
        }
        for (n, k) in keys.iter().enumerate() {
            table.insert(*k, n as u32);
            model.insert(*k, n as u32);
            if n % 7 == 0 {
                // Overwrite an earlier key, in place or by insert.
                let earlier = keys[n / 2];
                let v = n as u32 + 1_000_000;
                if n % 2 == 0 {
                    *table.get_mut(&earlier).unwrap() = v;
                } else {
                    table.insert(earlier, v);
                }
                model.insert(earlier, v);
            }
        }
        assert!(table
            .get_mut(&Key {
                field6: 1 << 21,
                ..Key::MIN
            })
            .is_none());
        assert_eq!(table.len(), model.len());
        for (k, v) in &model {
            assert_eq!(table.get(k), Some(v));
            table.prefetch(k);
        }
        let absent = Key {
            field6: 1 << 20,
            ..Key::MIN
        };
        assert!(!table.contains_key(&absent));
        let mut listed: Vec<(Key, u32)> = table.iter().map(|(k, v)| (*k, *v)).collect();
        let mut expected: Vec<(Key, u32)> = model.into_iter().collect();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        assert!(table.slots.len() >= 2 * table.len());
    }
}
