//! `InMemoryLayer`: the layer that receives a timeline's newest writes.
//!
//! Values are serialized into an [`EphemeralFile`]; an in-memory index
//! ([`index::VersionIndex`]) maps each key to its versions `(lsn, packed
//! location)`. A packed location is one `u64`: file offset (36 bits), length
//! (27 bits) and whether the value initializes the page (1 bit). The index
//! costs a 24-byte node per value plus a 32-byte hash-map entry per key:
//! ingest inserts a version per block it stores, and a hash insert costs a
//! fraction of an ordered-tree insert with 18-byte keys. Reads of a key range
//! look the range's keys up one by one when it is small (vectored reads are
//! at most `max_get_vectored_keys` long) and scan and sort otherwise; the
//! flush sorts once.
//!
//! Lifecycle: *open* (accepting puts, `end_lsn` unset) → *frozen* (`end_lsn`
//! set by [`InMemoryLayer::freeze`], read-only) → flushed to an L0 delta
//! layer and dropped. The layer covers `[start_lsn, end_lsn)` and the whole
//! key space. Only the timeline's single writer calls `put_*`; readers may run
//! at any time and see only LSNs the timeline has published, so a batch is
//! never observed half-written.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use camino::Utf8Path;
use pageserver_api::key::Key;
use pageserver_api::keyspace::KeySpace;
use pageserver_api::value::Value;
use utils::lsn::Lsn;

mod heads;
mod index;

use self::index::VersionIndex;
use super::batch::{SerializedBatch, ValueTooLarge};
use super::reconstruct::ValuesReconstructState;
use super::LayerReadError;
use crate::tenant::ephemeral_file::EphemeralFile;

/// How many values ahead of its put a key's index slot is prefetched: far
/// enough to hide a miss to memory behind the puts in between.
const PREFETCH_AHEAD: usize = 8;

const OFFSET_BITS: u32 = 36;
const LEN_BITS: u32 = 27;
/// Largest serialized value the layer accepts.
pub const MAX_VALUE_LEN: usize = (1 << LEN_BITS) - 1;
const MAX_OFFSET: u64 = (1 << OFFSET_BITS) - 1;

/// Location of one value in the ephemeral file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed(u64);

impl Packed {
    fn new(offset: u64, len: usize, will_init: bool) -> Packed {
        Packed(offset << (LEN_BITS + 1) | (len as u64) << 1 | will_init as u64)
    }
    fn offset(self) -> u64 {
        self.0 >> (LEN_BITS + 1)
    }
    fn len(self) -> usize {
        ((self.0 >> 1) & ((1 << LEN_BITS) - 1)) as usize
    }
    fn will_init(self) -> bool {
        self.0 & 1 == 1
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error(transparent)]
    ValueTooLarge(#[from] ValueTooLarge),
    #[error("in-memory layer file {path} is full")]
    LayerFull { path: String },
    #[error("put at {lsn} into in-memory layer starting at {start}")]
    LsnBelowStart { lsn: Lsn, start: Lsn },
    #[error("put into frozen in-memory layer {start}..{end}")]
    Frozen { start: Lsn, end: Lsn },
    #[error("writing ephemeral file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

struct Inner {
    file: EphemeralFile,
    index: VersionIndex,
}

pub struct InMemoryLayer {
    start_lsn: Lsn,
    end_lsn: OnceLock<Lsn>,
    opened_at: Instant,
    /// Bytes appended so far, readable without the lock (memory budget).
    size: AtomicU64,
    inner: tokio::sync::RwLock<Inner>,
}

impl std::fmt::Debug for InMemoryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InMemoryLayer({}..{:?})",
            self.start_lsn,
            self.end_lsn.get()
        )
    }
}

/// Every value of a layer in (key, LSN) order: the values' bytes and
/// `(key, lsn, will_init, byte range)` entries into them (tests' view of a
/// whole layer; the flush reads it a window at a time).
#[cfg(test)]
pub struct SortedValues {
    pub data: Vec<u8>,
    pub entries: Vec<(Key, Lsn, bool, Range<usize>)>,
}

impl InMemoryLayer {
    pub async fn create(path: &Utf8Path, start_lsn: Lsn) -> std::io::Result<InMemoryLayer> {
        Ok(InMemoryLayer {
            start_lsn,
            end_lsn: OnceLock::new(),
            opened_at: Instant::now(),
            size: AtomicU64::new(0),
            inner: tokio::sync::RwLock::new(Inner {
                file: EphemeralFile::create(path).await?,
                index: VersionIndex::default(),
            }),
        })
    }

    pub fn start_lsn(&self) -> Lsn {
        self.start_lsn
    }

    /// End of the LSN range (exclusive) once frozen.
    pub fn end_lsn(&self) -> Option<Lsn> {
        self.end_lsn.get().copied()
    }

    pub fn lsn_range(&self) -> Range<Lsn> {
        self.start_lsn..self.end_lsn().unwrap_or(Lsn::MAX)
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// Stops the layer accepting puts; it covers `[start_lsn, end_lsn)`.
    pub fn freeze(&self, end_lsn: Lsn) {
        let _ = self.end_lsn.set(end_lsn.max(Lsn(self.start_lsn.0 + 1)));
    }

    /// Appends values; all of the batch is indexed under one lock hold.
    pub async fn put_batch(&self, batch: &[(Key, Lsn, Value)]) -> Result<(), PutError> {
        self.put_serialized(&SerializedBatch::from_values(batch)?)
            .await
    }

    /// Appends a serialized batch: its bytes go to the file in one append,
    /// then all its values are indexed under one lock hold.
    pub async fn put_serialized(&self, batch: &SerializedBatch) -> Result<(), PutError> {
        if let Some(end) = self.end_lsn() {
            return Err(PutError::Frozen {
                start: self.start_lsn,
                end,
            });
        }
        if let Some(e) = batch.entries().iter().find(|e| e.lsn < self.start_lsn) {
            return Err(PutError::LsnBelowStart {
                lsn: e.lsn,
                start: self.start_lsn,
            });
        }
        let mut inner = self.inner.write().await;
        let base = inner.file.len();
        if base + batch.data().len() as u64 > MAX_OFFSET {
            return Err(PutError::LayerFull {
                path: inner.file.path().to_string(),
            });
        }
        let appended = inner.file.append_bytes(batch.data()).await;
        appended.map_err(|source| PutError::Io {
            path: inner.file.path().to_string(),
            source,
        })?;
        let inner = &mut *inner;
        let full = || PutError::LayerFull {
            path: inner.file.path().to_string(),
        };
        if inner.index.len() + batch.len() as u64 > index::MAX_VERSIONS {
            return Err(full());
        }
        let entries = batch.entries();
        for (n, e) in entries.iter().enumerate() {
            if let Some(ahead) = entries.get(n + PREFETCH_AHEAD) {
                inner.index.prefetch(&ahead.key);
            }
            let packed = Packed::new(base + e.start as u64, e.len, e.will_init);
            inner
                .index
                .put(e.key, e.lsn, packed)
                .map_err(|index::IndexFull| full())?;
        }
        self.size.store(inner.file.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Number of values put.
    pub async fn value_count(&self) -> u64 {
        self.inner.read().await.index.len()
    }

    /// Collects, for every key of `keyspace`, the versions in
    /// `[start_lsn, end_lsn)` newest first, down to the first that
    /// initializes the page.
    pub async fn get_values_reconstruct_data(
        &self,
        keyspace: &KeySpace,
        end_lsn: Lsn,
        state: &mut ValuesReconstructState,
    ) -> Result<(), LayerReadError> {
        let mut wanted: Vec<(Key, Lsn, Packed)> = Vec::new();
        let plans = {
            let inner = self.inner.read().await;
            for range in &keyspace.ranges {
                for key in inner.index.keys_in(range) {
                    let versions = inner.index.versions(&key);
                    for (lsn, packed) in versions.skip_while(|(l, _)| *l >= end_lsn) {
                        wanted.push((key, lsn, packed));
                        if packed.will_init() {
                            break;
                        }
                    }
                }
            }
            let mut plans = Vec::with_capacity(wanted.len());
            for (_, _, packed) in &wanted {
                plans.push(
                    inner
                        .file
                        .plan_read(packed.offset(), packed.len())
                        .map_err(|e| LayerReadError::io(inner.file.path(), e))?,
                );
            }
            plans
        };
        for ((key, lsn, _), plan) in wanted.into_iter().zip(plans) {
            let path = plan.file.path().to_owned();
            let bytes = plan
                .execute()
                .await
                .map_err(|e| LayerReadError::io(&path, e))?;
            let value = Value::des(&bytes).map_err(|e| LayerReadError::Corrupt {
                path: path.to_string(),
                reason: format!("value of key {key} at {lsn}: {e}"),
            })?;
            state.add_value(key, lsn, value);
        }
        Ok(())
    }

    /// Keys with a version at or below `lsn`, in order.
    pub async fn keys_upto(&self, lsn: Lsn) -> Vec<Key> {
        let inner = self.inner.read().await;
        let mut keys: Vec<Key> = inner
            .index
            .keys()
            .filter_map(|(k, versions)| {
                versions.last().is_some_and(|(l, _)| l <= lsn).then_some(*k)
            })
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Every value in (key, LSN) order, read in one window (for tests; the
    /// flush reads windows of [`Self::flush_order`]).
    #[cfg(test)]
    pub async fn sorted_values(&self) -> Result<SortedValues, LayerReadError> {
        let order = self.flush_order().await;
        let mut data = Vec::new();
        let ranges = self.read_window(&order, &mut data).await?;
        let entries = order
            .iter()
            .zip(ranges)
            .map(|(e, r)| (e.key, e.lsn, e.will_init, r))
            .collect();
        Ok(SortedValues { data, entries })
    }

    /// Every value's location in (key, LSN) order, for a flush that reads
    /// the values a window at a time ([`Self::read_window`]): the layer's
    /// data never has to be in memory at once.
    pub async fn flush_order(&self) -> Vec<FlushEntry> {
        let inner = self.inner.read().await;
        let mut keys: Vec<(&Key, index::Versions)> = inner.index.keys().collect();
        keys.sort_unstable_by_key(|(k, _)| **k);
        let mut order = Vec::with_capacity(inner.index.len() as usize);
        for (key, versions) in keys {
            let first = order.len();
            order.extend(versions.map(|(lsn, packed)| FlushEntry {
                key: *key,
                lsn,
                will_init: packed.will_init(),
                offset: packed.offset(),
                len: packed.len(),
            }));
            // Chains are newest first; the flush writes ascending LSNs.
            order[first..].reverse();
        }
        order
    }

    /// Reads the values of `entries` into `out` (replacing its content),
    /// back to back in the order given; returns each one's range in `out`.
    /// The file is read in offset order, nearby values in one read.
    pub async fn read_window(
        &self,
        entries: &[FlushEntry],
        out: &mut Vec<u8>,
    ) -> Result<Vec<Range<usize>>, LayerReadError> {
        /// Values closer than this in the file are read together.
        const MAX_GAP: u64 = 16 * 1024;
        /// Longest read of several values.
        const MAX_READ: u64 = 1024 * 1024;
        let inner = self.inner.read().await;
        let io_err = |e| LayerReadError::io(inner.file.path(), e);
        let mut dest = Vec::with_capacity(entries.len());
        let mut total = 0;
        for e in entries {
            dest.push(total..total + e.len);
            total += e.len;
        }
        out.clear();
        out.resize(total, 0);
        let mut by_offset: Vec<usize> = (0..entries.len()).collect();
        by_offset.sort_unstable_by_key(|&i| entries[i].offset);
        let mut scratch = Vec::new();
        let mut i = 0;
        while i < by_offset.len() {
            let start = entries[by_offset[i]].offset;
            let mut end = start + entries[by_offset[i]].len as u64;
            let mut j = i + 1;
            while let Some(e) = by_offset.get(j).map(|&k| &entries[k]) {
                let e_end = e.offset + e.len as u64;
                if e.offset > end + MAX_GAP || e_end.max(end) - start > MAX_READ {
                    break;
                }
                end = end.max(e_end);
                j += 1;
            }
            scratch.clear();
            scratch.resize((end - start) as usize, 0);
            inner
                .file
                .read_into(start, &mut scratch)
                .await
                .map_err(io_err)?;
            for &k in &by_offset[i..j] {
                let at = (entries[k].offset - start) as usize;
                out[dest[k].clone()].copy_from_slice(&scratch[at..at + entries[k].len]);
            }
            i = j;
        }
        Ok(dest)
    }
}

/// Where one value of a layer is, in flush order.
#[derive(Debug, Clone, Copy)]
pub struct FlushEntry {
    pub key: Key,
    pub lsn: Lsn,
    pub will_init: bool,
    offset: u64,
    pub len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pageserver_api::value::WalRecord;

    #[test]
    fn packing_roundtrips() {
        for (off, len, wi) in [
            (0, 0, false),
            (MAX_OFFSET, MAX_VALUE_LEN, true),
            (12345, 8192, true),
        ] {
            let p = Packed::new(off, len, wi);
            assert_eq!((p.offset(), p.len(), p.will_init()), (off, len, wi));
        }
    }

    fn rec(b: &[u8], will_init: bool) -> Value {
        Value::WalRecord(WalRecord::Test {
            append: Bytes::copy_from_slice(b),
            will_init,
            clear: false,
        })
    }

    #[tokio::test]
    async fn collects_versions_newest_first_to_init() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().join("l");
        let layer = InMemoryLayer::create(&path, Lsn(10)).await.unwrap();
        let k = Key::MIN.add(5);
        layer
            .put_batch(&[(k, Lsn(10), rec(b"a", true))])
            .await
            .unwrap();
        layer
            .put_batch(&[(k, Lsn(20), rec(b"b", false))])
            .await
            .unwrap();
        layer
            .put_batch(&[(k, Lsn(30), rec(b"c", true))])
            .await
            .unwrap();
        layer
            .put_batch(&[(k, Lsn(40), rec(b"d", false))])
            .await
            .unwrap();

        let ks = KeySpace {
            ranges: vec![Key::MIN..Key::MAX],
        };
        let mut st = ValuesReconstructState::default();
        layer
            .get_values_reconstruct_data(&ks, Lsn(41), &mut st)
            .await
            .unwrap();
        let lsns: Vec<Lsn> = st.keys[&k].records.iter().map(|(l, _)| *l).collect();
        assert_eq!(lsns, vec![Lsn(40), Lsn(30)]);
        assert!(st.keys[&k].complete);

        let mut st = ValuesReconstructState::default();
        layer
            .get_values_reconstruct_data(&ks, Lsn(30), &mut st)
            .await
            .unwrap();
        let lsns: Vec<Lsn> = st.keys[&k].records.iter().map(|(l, _)| *l).collect();
        assert_eq!(lsns, vec![Lsn(20), Lsn(10)]);

        layer.freeze(Lsn(41));
        assert!(layer
            .put_batch(&[(k, Lsn(50), rec(b"e", false))])
            .await
            .is_err());
        let sorted = layer.sorted_values().await.unwrap();
        let seen: Vec<(Key, Lsn, bool)> = sorted.entries.iter().map(|e| (e.0, e.1, e.2)).collect();
        assert_eq!(seen.len(), 4);
        assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    }
}
