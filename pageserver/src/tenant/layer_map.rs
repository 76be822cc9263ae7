//! The layer map: which persistent layers hold data for which keys and LSNs.
//!
//! The hot question is "for key K read at LSN L, which layer holds the newest
//! data below L?" ([`LayerMap::search`]), answered in O(log n) for n layers.
//!
//! How: layers are inserted in order of their start LSN into a *coverage*
//! (a persistent ordered map from key-segment starts to the newest delta and
//! newest image covering that segment). After each distinct start LSN the
//! coverage is snapshotted; snapshots share structure (`rpds`), so keeping one
//! per start LSN costs O(log n) memory per layer. A search binary-searches the
//! snapshot of layers starting below L, then looks K up in it.
//!
//! Invariants relied upon (kept by flush and compaction): for one key, delta
//! layers' LSN ranges do not partially overlap (they are disjoint or equal);
//! an image at LSN X holds the state including every record with LSN <= X and
//! covers the LSN range `[X, X+1)`.
//!
//! Appending layers whose start LSN is >= every existing one (flushes) is
//! incremental; any other change rebuilds the snapshots in O(n log n).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use pageserver_api::key::Key;
use rpds::RedBlackTreeMapSync;
use utils::lsn::Lsn;

use super::storage_layer::layer_desc::{LayerName, PersistentLayerDesc};

type Desc = Arc<PersistentLayerDesc>;

/// The newest delta and image covering one key segment.
#[derive(Clone, Default, Debug)]
struct Slot {
    delta: Option<Desc>,
    image: Option<Desc>,
}

impl Slot {
    fn with(&self, layer: &Desc) -> Slot {
        let newer = |existing: &Option<Desc>| match existing {
            Some(e) => layer.lsn_range().end >= e.lsn_range().end,
            None => true,
        };
        let mut slot = self.clone();
        if layer.is_delta() {
            if newer(&slot.delta) {
                slot.delta = Some(Arc::clone(layer));
            }
        } else if newer(&slot.image) {
            slot.image = Some(Arc::clone(layer));
        }
        slot
    }

    /// The layer to read next for a read below `end_lsn`, with the LSN below
    /// which that layer's values are not needed (they are older than an image).
    fn choose(&self, end_lsn: Lsn) -> Option<SearchResult> {
        match (&self.delta, &self.image) {
            (None, None) => None,
            (Some(d), None) => Some(SearchResult {
                layer: Arc::clone(d),
                lsn_floor: d.lsn_range().start,
            }),
            (None, Some(i)) => Some(SearchResult {
                layer: Arc::clone(i),
                lsn_floor: i.lsn_range().start,
            }),
            (Some(d), Some(i)) => {
                let delta_end = d.lsn_range().end.min(end_lsn);
                if i.lsn_range().end >= delta_end {
                    Some(SearchResult {
                        layer: Arc::clone(i),
                        lsn_floor: i.lsn_range().start,
                    })
                } else {
                    Some(SearchResult {
                        layer: Arc::clone(d),
                        lsn_floor: d.lsn_range().start.max(i.lsn_range().end),
                    })
                }
            }
        }
    }
}

/// Segments: `start key -> slot` valid up to the next start.
#[derive(Clone, Default)]
struct Coverage {
    segments: RedBlackTreeMapSync<Key, Slot>,
}

impl Coverage {
    fn slot_at(&self, key: Key) -> Slot {
        self.segments
            .range(..=key)
            .next_back()
            .map(|(_, slot)| slot.clone())
            .unwrap_or_default()
    }

    fn insert(&mut self, layer: &Desc) {
        let Range { start, end } = layer.key_range().clone();
        let at_start = self.slot_at(start);
        let at_end = self.slot_at(end);
        if !self.segments.contains_key(&start) {
            self.segments.insert_mut(start, at_start);
        }
        if !self.segments.contains_key(&end) {
            self.segments.insert_mut(end, at_end);
        }
        let touched: Vec<(Key, Slot)> = self
            .segments
            .range(start..end)
            .map(|(k, slot)| (*k, slot.with(layer)))
            .collect();
        for (k, slot) in touched {
            self.segments.insert_mut(k, slot);
        }
    }
}

/// Where to read next for some keys.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub layer: Arc<PersistentLayerDesc>,
    /// Values of `layer` below this LSN are shadowed by a newer image.
    pub lsn_floor: Lsn,
}

#[derive(Default)]
pub struct LayerMap {
    layers: BTreeMap<LayerName, Desc>,
    /// `(start lsn, coverage of every layer starting at or below it)`,
    /// ascending by LSN.
    versions: Vec<(Lsn, Coverage)>,
}

impl LayerMap {
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    pub fn get(&self, name: &LayerName) -> Option<&Arc<PersistentLayerDesc>> {
        self.layers.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<PersistentLayerDesc>> {
        self.layers.values()
    }

    /// L0 deltas (whole key space), oldest first.
    pub fn level0_deltas(&self) -> Vec<Arc<PersistentLayerDesc>> {
        let mut l0: Vec<_> = self
            .layers
            .values()
            .filter(|l| l.is_l0())
            .cloned()
            .collect();
        l0.sort_by_key(|l| l.lsn_range().start);
        l0
    }

    /// Inserts and removes layers as one change: readers of the map (behind
    /// the caller's lock) see either none or all of it.
    pub fn apply(&mut self, inserts: Vec<impl Into<Desc>>, removes: &[LayerName]) {
        let tail = self.versions.last().map(|(lsn, _)| *lsn);
        let mut removed_any = false;
        for name in removes {
            removed_any |= self.layers.remove(name).is_some();
        }
        let mut inserts: Vec<Desc> = inserts.into_iter().map(Into::into).collect();
        inserts.sort_by_key(|l| l.lsn_range().start);
        let append_only = !removed_any
            && inserts.iter().all(|l| {
                tail.is_none_or(|t| l.lsn_range().start >= t) && !self.layers.contains_key(&l.name)
            });
        for layer in &inserts {
            self.layers.insert(layer.name.clone(), Arc::clone(layer));
        }
        if append_only {
            for layer in &inserts {
                self.index_append(layer);
            }
        } else {
            self.rebuild();
        }
    }

    fn index_append(&mut self, layer: &Desc) {
        let start = layer.lsn_range().start;
        match self.versions.last_mut() {
            Some((lsn, coverage)) if *lsn == start => coverage.insert(layer),
            last => {
                let mut coverage = last.map(|(_, c)| c.clone()).unwrap_or_default();
                coverage.insert(layer);
                self.versions.push((start, coverage));
            }
        }
    }

    fn rebuild(&mut self) {
        self.versions.clear();
        let mut all: Vec<Desc> = self.layers.values().cloned().collect();
        all.sort_by_key(|l| l.lsn_range().start);
        for layer in &all {
            self.index_append(layer);
        }
    }

    /// The coverage of all layers that start below `end_lsn`.
    fn version_below(&self, end_lsn: Lsn) -> Option<&Coverage> {
        let idx = self.versions.partition_point(|(lsn, _)| *lsn < end_lsn);
        idx.checked_sub(1).map(|i| &self.versions[i].1)
    }

    /// The layer holding the newest data for `key` below `end_lsn`.
    pub fn search(&self, key: Key, end_lsn: Lsn) -> Option<SearchResult> {
        self.version_below(end_lsn)?.slot_at(key).choose(end_lsn)
    }

    /// [`search`](Self::search) for every key of `keys` at once: consecutive
    /// keys answered by the same layer come back as one range. Keys no layer
    /// covers are omitted.
    pub fn range_search(&self, keys: Range<Key>, end_lsn: Lsn) -> Vec<(Range<Key>, SearchResult)> {
        let Some(coverage) = self.version_below(end_lsn) else {
            return Vec::new();
        };
        let mut out: Vec<(Range<Key>, SearchResult)> = Vec::new();
        let mut push = |range: Range<Key>, slot: &Slot| {
            if range.start >= range.end {
                return;
            }
            let Some(found) = slot.choose(end_lsn) else {
                return;
            };
            if let Some((last_range, last)) = out.last_mut() {
                if last_range.end == range.start
                    && last.layer.name == found.layer.name
                    && last.lsn_floor == found.lsn_floor
                {
                    last_range.end = range.end;
                    return;
                }
            }
            out.push((range, found));
        };
        let mut current_start = keys.start;
        let mut current = coverage.slot_at(keys.start);
        for (seg_start, slot) in coverage.segments.range(keys.start..keys.end) {
            if *seg_start == keys.start {
                continue;
            }
            push(current_start..*seg_start, &current);
            current_start = *seg_start;
            current = slot.clone();
        }
        push(current_start..keys.end, &current);
        out
    }

    /// Number of delta layers overlapping `keys` within `lsns`: the "depth"
    /// that decides image layer creation.
    pub fn count_deltas(&self, keys: &Range<Key>, lsns: &Range<Lsn>) -> usize {
        self.layers
            .values()
            .filter(|l| l.is_delta())
            .filter(|l| l.key_range().start < keys.end && keys.start < l.key_range().end)
            .filter(|l| l.lsn_range().start < lsns.end && lsns.start < l.lsn_range().end)
            .count()
    }
}

impl LayerMap {
    /// Whether image layers with an LSN in `lsns` together cover all of
    /// `keys` (GC: older layers under such images are not needed).
    pub fn image_coverage(&self, keys: &Range<Key>, lsns: &Range<Lsn>) -> bool {
        if lsns.start >= lsns.end {
            return false;
        }
        let mut images: Vec<&Range<Key>> = self
            .layers
            .values()
            .filter(|l| !l.is_delta())
            .filter(|l| lsns.contains(&l.lsn_range().start))
            .map(|l| l.key_range())
            .filter(|r| r.start < keys.end && keys.start < r.end)
            .collect();
        images.sort_by_key(|r| r.start);
        let mut covered = keys.start;
        for r in images {
            if r.start > covered {
                return false;
            }
            covered = covered.max(r.end);
            if covered >= keys.end {
                return true;
            }
        }
        covered >= keys.end
    }

    /// The newest image layer LSN at or below `lsn` overlapping `keys`.
    pub fn latest_image_lsn(&self, keys: &Range<Key>, lsn: Lsn) -> Option<Lsn> {
        self.layers
            .values()
            .filter(|l| !l.is_delta())
            .filter(|l| l.key_range().start < keys.end && keys.start < l.key_range().end)
            .map(|l| l.lsn_range().start)
            .filter(|l| *l <= lsn)
            .max()
    }
}

#[cfg(test)]
mod tests;
