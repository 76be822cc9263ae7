//! The bounded table of open file descriptors shared by all `VirtualFile`s.
//!
//! Owns: `capacity` slots, each holding at most one open [`File`] (behind an
//! `Arc`) and a generation number, plus the clock hand used for eviction.
//!
//! Invariants:
//! - The table never holds more than `capacity` fds. A `VirtualFile`
//!   remembers a [`SlotHandle`] (slot index + generation); the handle is valid
//!   only while the slot still carries that generation, so after an eviction
//!   the owner sees a miss and reopens its file.
//! - An fd is never closed under an in-flight operation: operations clone the
//!   `Arc<File>` out of the slot and keep the clone until the kernel is done.
//!   Evicting only drops the table's reference; the fd closes when the last
//!   operation using it finishes. The clock skips slots whose fd is in use
//!   while it can, so the process exceeds `capacity` open fds only when every
//!   slot is busy, and then by at most the number of in-flight operations on
//!   evicted fds (counted in `evictions_in_use`).
//! - Eviction is clock / second chance: a hit sets the slot's `recently_used`
//!   bit; the hand clears set bits as it passes and evicts the first slot
//!   found with the bit clear.
//! - Only one slot mutex is held at a time, never across IO or `open(2)`;
//!   closing an evicted fd happens after the mutex is released.
//!
//! Callers: `file.rs` (`VirtualFile` looks its fd up before every operation,
//! inserts after a (re)open, and removes its slot when dropped).

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::metrics::{bump, COUNTERS};

/// Where a file's fd sits in the table, valid while the generation matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotHandle {
    index: usize,
    generation: u64,
}

struct SlotInner {
    generation: u64,
    file: Option<Arc<File>>,
}

struct Slot {
    recently_used: AtomicBool,
    inner: Mutex<SlotInner>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotInner> {
        // The critical sections cannot panic halfway through an update, so a
        // poisoned slot is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct FdCache {
    slots: Box<[Slot]>,
    hand: AtomicUsize,
}

impl std::fmt::Debug for FdCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdCache")
            .field("capacity", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl FdCache {
    /// A table of `capacity` slots (at least one).
    pub(crate) fn new(capacity: usize) -> FdCache {
        let slots = (0..capacity.max(1))
            .map(|_| Slot {
                recently_used: AtomicBool::new(false),
                inner: Mutex::new(SlotInner {
                    generation: 0,
                    file: None,
                }),
            })
            .collect();
        FdCache {
            slots,
            hand: AtomicUsize::new(0),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The fd behind `handle`, if it was not evicted. Marks it recently used.
    pub(crate) fn get(&self, handle: SlotHandle) -> Option<Arc<File>> {
        let slot = self.slots.get(handle.index)?;
        let inner = slot.lock();
        if inner.generation != handle.generation {
            return None;
        }
        let file = Arc::clone(inner.file.as_ref()?);
        drop(inner);
        slot.recently_used.store(true, Ordering::Relaxed);
        Some(file)
    }

    /// Puts `file` into the table, evicting another fd if the table is full,
    /// and returns the handle to find it again.
    pub(crate) fn insert(&self, file: Arc<File>) -> SlotHandle {
        let n = self.slots.len();
        // First pass(es) may only clear `recently_used` bits and skip busy
        // fds; after `3 * n` looks, take whatever the hand points at.
        let patience = 3 * n;
        let mut looked = 0usize;
        loop {
            let index = self.hand.fetch_add(1, Ordering::Relaxed) % n;
            looked += 1;
            let desperate = looked > patience;
            let slot = &self.slots[index];
            let mut inner = slot.lock();
            let evicted = match &inner.file {
                None => None,
                Some(current) => {
                    let was_used = slot.recently_used.swap(false, Ordering::Relaxed);
                    // `> 1`: the table's own reference plus someone else's.
                    let in_use = Arc::strong_count(current) > 1;
                    if !desperate && (was_used || in_use) {
                        continue;
                    }
                    bump(&COUNTERS.evictions);
                    if in_use {
                        bump(&COUNTERS.evictions_in_use);
                    }
                    inner.file.take()
                }
            };
            inner.generation = inner.generation.wrapping_add(1);
            inner.file = Some(file);
            let handle = SlotHandle {
                index,
                generation: inner.generation,
            };
            drop(inner);
            slot.recently_used.store(true, Ordering::Relaxed);
            // Close the evicted fd (if no operation still holds it) outside
            // the slot mutex.
            drop(evicted);
            return handle;
        }
    }

    /// Drops the table's reference to the fd behind `handle`, if it is still
    /// there (the owning file is gone or holds a newer handle).
    pub(crate) fn remove(&self, handle: SlotHandle) {
        let Some(slot) = self.slots.get(handle.index) else {
            return;
        };
        let mut inner = slot.lock();
        if inner.generation != handle.generation {
            return;
        }
        let file = inner.file.take();
        drop(inner);
        slot.recently_used.store(false, Ordering::Relaxed);
        drop(file);
    }

    /// Number of slots holding an fd.
    pub(crate) fn occupied(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.lock().file.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_file(dir: &tempfile::TempDir, name: &str) -> Arc<File> {
        let path = dir.path().join(name);
        match File::create(&path) {
            Ok(f) => Arc::new(f),
            Err(e) => panic!("test setup: create {path:?}: {e}"),
        }
    }

    #[test]
    fn bounded_and_handles_go_stale_on_eviction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FdCache::new(3);
        let handles: Vec<SlotHandle> = (0..10)
            .map(|i| cache.insert(scratch_file(&dir, &format!("f{i}"))))
            .collect();
        assert_eq!(cache.occupied(), 3);
        let live = handles.iter().filter(|h| cache.get(**h).is_some()).count();
        assert_eq!(live, 3, "exactly the table's worth of handles is live");
        // The most recent insert is always still there.
        assert!(cache.get(handles[9]).is_some());
        assert!(cache.get(handles[0]).is_none());
    }

    #[test]
    fn second_chance_keeps_recently_used_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FdCache::new(3);
        let a = cache.insert(scratch_file(&dir, "a"));
        let b = cache.insert(scratch_file(&dir, "b"));
        let c = cache.insert(scratch_file(&dir, "c"));
        // All bits set: the hand clears all three, then takes `a`.
        let d = cache.insert(scratch_file(&dir, "d"));
        assert!(cache.get(a).is_none());
        // `b` and `c` now have clear bits; using `b` gives it a second chance,
        // so the next victim is `c` although the hand reaches `b` first.
        assert!(cache.get(b).is_some());
        let e = cache.insert(scratch_file(&dir, "e"));
        assert!(cache.get(c).is_none(), "unused c is the victim");
        for h in [b, d, e] {
            assert!(cache.get(h).is_some());
        }
    }

    #[test]
    fn in_use_fds_are_skipped_while_possible_and_never_closed_under_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FdCache::new(2);
        let busy = cache.insert(scratch_file(&dir, "busy"));
        let idle = cache.insert(scratch_file(&dir, "idle"));
        let held = cache.get(busy).expect("busy is cached");
        let new = cache.insert(scratch_file(&dir, "new"));
        assert!(
            cache.get(busy).is_some(),
            "busy fd must be preferred to keep"
        );
        assert!(cache.get(idle).is_none(), "idle fd is the victim");
        assert!(cache.get(new).is_some());
        // With every slot busy, the table still makes room, but the evicted
        // fd stays open for its holder.
        let held_new = cache.get(new).expect("new is cached");
        let before = crate::stats().evictions_in_use;
        let last = cache.insert(scratch_file(&dir, "last"));
        assert!(cache.get(last).is_some());
        assert!(crate::stats().evictions_in_use > before);
        for f in [&held, &held_new] {
            assert!(f.metadata().is_ok(), "held fd still usable after eviction");
        }
    }

    #[test]
    fn remove_only_removes_matching_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FdCache::new(1);
        let a = cache.insert(scratch_file(&dir, "a"));
        let b = cache.insert(scratch_file(&dir, "b"));
        cache.remove(a);
        assert!(cache.get(b).is_some(), "stale handle must not remove b");
        cache.remove(b);
        assert!(cache.get(b).is_none());
        assert_eq!(cache.occupied(), 0);
    }
}
