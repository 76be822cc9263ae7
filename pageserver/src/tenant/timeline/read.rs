//! The read path: values of many keys at one LSN, newest layers first.
//!
//! [`Timeline::get_vectored`] walks a *fringe* of planned visits ordered by
//! the top of their LSN range, newest first. A visit is one layer, the keys
//! it should serve and the LSN range to read there. Planning a key range at a
//! continuation LSN asks the in-memory layers and then the layer map which
//! layer holds the newest data below it; a visit appends what the layer has
//! to the [`ValuesReconstructState`]; keys not yet complete are planned again
//! below the visited range. Visits planned for the same layer and LSN range
//! merge, so a layer is read once per request for all the keys it serves.
//! Keys no layer of this timeline covers continue in the ancestor timeline at
//! the branch point. Finally each key is reconstructed (image + records
//! through [`Redo`](crate::walredo::Redo)).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use pageserver_api::key::Key;
use pageserver_api::keyspace::KeySpace;
use utils::lsn::Lsn;

use super::{Timeline, WaitLsnError};
use crate::tenant::storage_layer::inmemory_layer::InMemoryLayer;
use crate::tenant::storage_layer::layer::Layer;
use crate::tenant::storage_layer::reconstruct::{KeyState, ValuesReconstructState};
use crate::tenant::storage_layer::LayerReadError;
use crate::walredo::RedoError;

/// A whole request failed.
#[derive(Debug, thiserror::Error)]
pub enum GetVectoredError {
    #[error("requested {requested} keys, more than the limit of {limit}")]
    Oversized { requested: u64, limit: u64 },
    #[error("LSN {lsn} is below the GC cutoff {cutoff} of timeline {timeline}")]
    BelowGcCutoff {
        lsn: Lsn,
        cutoff: Lsn,
        timeline: String,
    },
    #[error(transparent)]
    WaitLsn(#[from] WaitLsnError),
    #[error(transparent)]
    Layer(#[from] LayerReadError),
    #[error("read cancelled")]
    Cancelled,
}

/// One key could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageReconstructError {
    #[error("key {key} not found at {lsn}")]
    MissingKey { key: Key, lsn: Lsn },
    #[error("key {key} at {lsn}: records found but no base image or initializing record")]
    NoBase { key: Key, lsn: Lsn },
    #[error(transparent)]
    Redo(#[from] RedoError),
}

impl PageReconstructError {
    fn kind(&self) -> &'static str {
        match self {
            PageReconstructError::MissingKey { .. } => "missing_key",
            PageReconstructError::NoBase { .. } => "no_base",
            PageReconstructError::Redo(_) => "redo",
        }
    }
}

pub type VectoredResult = BTreeMap<Key, Result<Bytes, PageReconstructError>>;

#[derive(Clone)]
enum ReadableLayer {
    InMemory(Arc<InMemoryLayer>),
    Persistent(Arc<Layer>),
}

impl ReadableLayer {
    fn id(&self) -> usize {
        match self {
            ReadableLayer::InMemory(l) => Arc::as_ptr(l) as *const () as usize,
            ReadableLayer::Persistent(l) => Arc::as_ptr(l) as *const () as usize,
        }
    }
}

/// One planned visit.
struct Visit {
    layer: ReadableLayer,
    keys: Vec<Range<Key>>,
    lsn_range: Range<Lsn>,
}

impl PartialEq for Visit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Visit {}
impl PartialOrd for Visit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Visit {
    /// Max-heap order: the highest LSN range end first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.lsn_range
            .end
            .cmp(&other.lsn_range.end)
            .then(self.lsn_range.start.cmp(&other.lsn_range.start))
            .then(self.layer.id().cmp(&other.layer.id()))
    }
}

#[derive(Default)]
struct Fringe {
    heap: BinaryHeap<Visit>,
}

impl Fringe {
    fn push(&mut self, visit: Visit) {
        // Merge into a pending visit of the same layer and LSN range.
        let mut pending: Vec<Visit> = std::mem::take(&mut self.heap).into_vec();
        if let Some(same) = pending
            .iter_mut()
            .find(|v| v.layer.id() == visit.layer.id() && v.lsn_range == visit.lsn_range)
        {
            same.keys.extend(visit.keys);
        } else {
            pending.push(visit);
        }
        self.heap = pending.into();
    }

    fn pop(&mut self) -> Option<Visit> {
        self.heap.pop()
    }
}

fn keyspace_of(mut ranges: Vec<Range<Key>>) -> KeySpace {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<Key>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.start >= r.end {
            continue;
        }
        match merged.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    KeySpace { ranges: merged }
}

/// `ranges` minus the keys `state` has completed.
fn unfinished(ranges: &[Range<Key>], state: &ValuesReconstructState) -> Vec<Range<Key>> {
    let mut out = Vec::new();
    for r in ranges {
        let mut start = r.start;
        for (key, st) in state.keys.range(r.clone()) {
            if st.complete {
                if start < *key {
                    out.push(start..*key);
                }
                start = key.next();
            }
        }
        if start < r.end {
            out.push(start..r.end);
        }
    }
    out
}

impl Timeline {
    /// The value of one key at `lsn`.
    pub async fn get(&self, key: Key, lsn: Lsn) -> Result<Bytes, GetError> {
        let keyspace = KeySpace {
            ranges: vec![key..key.next()],
        };
        let mut results = self.get_vectored(keyspace, lsn).await?;
        match results.remove(&key) {
            Some(res) => Ok(res?),
            None => Err(GetError::Reconstruct(PageReconstructError::MissingKey {
                key,
                lsn,
            })),
        }
    }

    /// Values of every key of `keyspace` as of `lsn` (inclusive). Waits for
    /// ingest to reach `lsn`. Each key gets its value or its own error.
    pub async fn get_vectored(
        &self,
        keyspace: KeySpace,
        lsn: Lsn,
    ) -> Result<VectoredResult, GetVectoredError> {
        let requested: u64 = keyspace
            .ranges
            .iter()
            .map(|r| (r.end.to_i128() - r.start.to_i128()).max(0) as u64)
            .sum();
        let limit = self.resources.settings.max_get_vectored_keys as u64;
        if requested > limit {
            return Err(GetVectoredError::Oversized { requested, limit });
        }
        let cutoff = self.get_gc_cutoff_lsn();
        // GC keeps what reads at a leased LSN need, so those stay allowed.
        if lsn < cutoff && !self.is_leased(lsn) {
            return Err(GetVectoredError::BelowGcCutoff {
                lsn,
                cutoff,
                timeline: self.timeline_id.to_string(),
            });
        }
        self.wait_lsn(lsn, self.resources.settings.wait_lsn_timeout)
            .await?;
        let mut state = ValuesReconstructState::default();
        self.collect_values(keyspace.ranges.clone(), lsn, &mut state)
            .await?;
        crate::metrics::READ_LAYERS_VISITED.observe(state.layers_visited as f64);
        Ok(self.reconstruct_all(&keyspace, lsn, state))
    }

    /// Walks this timeline and then its ancestors.
    async fn collect_values(
        &self,
        keys: Vec<Range<Key>>,
        lsn: Lsn,
        state: &mut ValuesReconstructState,
    ) -> Result<(), GetVectoredError> {
        let mut timeline: &Timeline = self;
        let mut keys = keys;
        let mut end_lsn = Lsn(lsn.0 + 1);
        loop {
            let rest = timeline.collect_in_timeline(keys, end_lsn, state).await?;
            if rest.is_empty() {
                return Ok(());
            }
            match &timeline.ancestor {
                Some(ancestor) => {
                    end_lsn = end_lsn.min(Lsn(timeline.ancestor_lsn.0 + 1));
                    keys = rest;
                    timeline = ancestor;
                }
                None => return Ok(()),
            }
        }
    }

    /// Visits this timeline's layers; returns the key ranges no layer here
    /// could complete (to continue in the ancestor).
    async fn collect_in_timeline(
        &self,
        keys: Vec<Range<Key>>,
        end_lsn: Lsn,
        state: &mut ValuesReconstructState,
    ) -> Result<Vec<Range<Key>>, GetVectoredError> {
        let mut fringe = Fringe::default();
        let mut to_ancestor: Vec<Range<Key>> = Vec::new();
        self.plan(keys, end_lsn, &mut fringe, &mut to_ancestor)
            .await;
        while let Some(visit) = fringe.pop() {
            if self.cancel.is_cancelled() {
                return Err(GetVectoredError::Cancelled);
            }
            let keyspace = keyspace_of(visit.keys);
            state.layers_visited += 1;
            match &visit.layer {
                ReadableLayer::InMemory(layer) => {
                    layer
                        .get_values_reconstruct_data(&keyspace, visit.lsn_range.end, state)
                        .await?
                }
                ReadableLayer::Persistent(layer) => {
                    layer
                        .get_values_reconstruct_data(
                            &keyspace,
                            visit.lsn_range.clone(),
                            state,
                            self.resources.settings.read_concurrency,
                        )
                        .await?
                }
            }
            let rest = unfinished(&keyspace.ranges, state);
            if !rest.is_empty() {
                self.plan(rest, visit.lsn_range.start, &mut fringe, &mut to_ancestor)
                    .await;
            }
        }
        Ok(to_ancestor)
    }

    /// Plans visits for `keys` below `end_lsn`.
    async fn plan(
        &self,
        keys: Vec<Range<Key>>,
        end_lsn: Lsn,
        fringe: &mut Fringe,
        to_ancestor: &mut Vec<Range<Key>>,
    ) {
        let mgr = self.layers.read().await;
        if let Some(mem) = mgr.in_memory_below(end_lsn) {
            let lsn_range = mem.start_lsn()..end_lsn.min(mem.lsn_range().end);
            fringe.push(Visit {
                layer: ReadableLayer::InMemory(mem),
                keys,
                lsn_range,
            });
            return;
        }
        for range in keys {
            let mut covered_to = range.start;
            for (sub, found) in mgr.map().range_search(range.clone(), end_lsn) {
                if covered_to < sub.start {
                    to_ancestor.push(covered_to..sub.start);
                }
                covered_to = sub.end;
                let Some(layer) = mgr.get(&found.layer.name) else {
                    // The map and the handles change together under the lock.
                    tracing::error!(layer = %found.layer.name, "layer map names a layer without a handle");
                    to_ancestor.push(sub);
                    continue;
                };
                let top = end_lsn.min(found.layer.lsn_range().end);
                fringe.push(Visit {
                    layer: ReadableLayer::Persistent(Arc::clone(layer)),
                    keys: vec![sub],
                    lsn_range: found.lsn_floor..top,
                });
            }
            if covered_to < range.end {
                to_ancestor.push(covered_to..range.end);
            }
        }
    }

    fn reconstruct_all(
        &self,
        keyspace: &KeySpace,
        lsn: Lsn,
        mut state: ValuesReconstructState,
    ) -> VectoredResult {
        let mut out = BTreeMap::new();
        for range in &keyspace.ranges {
            let mut key = range.start;
            while key < range.end {
                let found = state.keys.remove(&key);
                let res = self.reconstruct(key, lsn, found);
                if let Err(e) = &res {
                    crate::metrics::RECONSTRUCT_ERRORS
                        .with_label_values(&[e.kind()])
                        .inc();
                }
                out.insert(key, res);
                key = key.next();
            }
        }
        out
    }

    fn reconstruct(
        &self,
        key: Key,
        lsn: Lsn,
        found: Option<KeyState>,
    ) -> Result<Bytes, PageReconstructError> {
        let Some(mut st) = found.filter(|s| !s.is_empty()) else {
            return Err(PageReconstructError::MissingKey { key, lsn });
        };
        if st.records.is_empty() {
            if let Some((_, img)) = st.image {
                return Ok(img);
            }
        }
        let initialized =
            st.image.is_some() || st.records.last().is_some_and(|(_, r)| r.will_init());
        if !initialized {
            return Err(PageReconstructError::NoBase { key, lsn });
        }
        st.records.reverse();
        let base = st.image.map(|(_, img)| img);
        Ok(self
            .redo
            .reconstruct(key, lsn, base, &st.records, self.cluster_settings())?)
    }
}

/// Single-key read failure.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error(transparent)]
    Vectored(#[from] GetVectoredError),
    #[error(transparent)]
    Reconstruct(#[from] PageReconstructError),
}
