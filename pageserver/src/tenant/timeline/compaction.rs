//! Compaction: L0 → L1 and image layer creation.
//!
//! **L0 → L1.** Once `compaction_threshold` L0 deltas exist, the oldest ones
//! (at most `compaction_upper_limit`, contiguous in LSN) are merged by
//! (key, LSN) into L1 deltas of about `compaction_target_size` each, cut only
//! between keys, so all versions of a key in that LSN range sit in one file.
//! The L1s span exactly the LSN range of the L0s they replace, which keeps the
//! layer map's invariant that delta ranges of a key never partially overlap.
//!
//! **Images.** The keys of the timeline at `disk_consistent_lsn` are split
//! into partitions of about `compaction_target_size`; a partition whose
//! delta depth since its newest image reaches `image_creation_threshold`
//! gets a new image layer: every key reconstructed at that LSN. A key that
//! fails to reconstruct aborts that image (a wrong image is never written).
//!
//! Both replace layers the same way: new files first, then one layer
//! manager change, then the index, then deletion of replaced files.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::ops::Range;
use std::sync::Arc;

use pageserver_api::key::Key;
use pageserver_api::keyspace::KeySpace;
use utils::lsn::Lsn;

use super::read::{GetVectoredError, PageReconstructError};
use super::Timeline;
use crate::tenant::storage_layer::delta_layer::{DeltaLayerWriter, DeltaValueStream};
use crate::tenant::storage_layer::image_layer::ImageLayerWriter;
use crate::tenant::storage_layer::layer::Layer;
use crate::tenant::storage_layer::{LayerReadError, LayerWriteError};
use crate::tenant::timeline::index::IndexError;

/// Keys per read while materializing an image partition.
const IMAGE_READ_BATCH: usize = 32;
/// Page size assumed when sizing partitions in keys.
const PAGE_SIZE: u64 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Read(#[from] LayerReadError),
    #[error(transparent)]
    Write(#[from] LayerWriteError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("reading key {key} for an image at {lsn}: {source}")]
    ImageRead {
        key: Key,
        lsn: Lsn,
        #[source]
        source: PageReconstructError,
    },
    #[error(transparent)]
    GetVectored(#[from] GetVectoredError),
    #[error("compaction cancelled")]
    Cancelled,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionOutcome {
    pub l0_compacted: usize,
    pub l1_created: usize,
    pub images_created: usize,
    /// Partitions whose image could not be built (a key failed to reconstruct).
    pub images_failed: usize,
}

impl Timeline {
    /// One compaction pass: L0 → L1, then image layers.
    pub async fn compact(&self) -> Result<CompactionOutcome, CompactionError> {
        let _maintenance = self.maintenance_lock.lock().await;
        let mut outcome = CompactionOutcome::default();
        self.compact_level0(&mut outcome, false).await?;
        self.create_image_layers(&mut outcome, false).await?;
        Ok(outcome)
    }

    /// Like [`compact`](Self::compact) but ignoring thresholds (HTTP
    /// `compact?force` and tests).
    pub async fn compact_forced(&self) -> Result<CompactionOutcome, CompactionError> {
        let _maintenance = self.maintenance_lock.lock().await;
        let mut outcome = CompactionOutcome::default();
        self.compact_level0(&mut outcome, true).await?;
        self.create_image_layers(&mut outcome, true).await?;
        Ok(outcome)
    }

    async fn compact_level0(
        &self,
        outcome: &mut CompactionOutcome,
        force: bool,
    ) -> Result<(), CompactionError> {
        let conf = self.conf();
        let (inputs, handles): (Vec<_>, Vec<Arc<Layer>>) = {
            let mgr = self.layers.read().await;
            let l0 = mgr.map().level0_deltas();
            let threshold = if force {
                1
            } else {
                conf.compaction_threshold.max(1)
            };
            if l0.len() < threshold || (force && l0.is_empty()) {
                return Ok(());
            }
            let take = l0.len().min(conf.compaction_upper_limit.max(threshold));
            let chosen: Vec<_> = l0.into_iter().take(take).collect();
            let handles = chosen
                .iter()
                .filter_map(|d| mgr.get(&d.name).cloned())
                .collect();
            (chosen, handles)
        };
        if handles.len() != inputs.len() {
            return Ok(());
        }
        // A single L0 covering everything is already as compact as it gets.
        if handles.len() == 1 && !force {
            return Ok(());
        }
        let lsn_range = inputs[0].lsn_range().start
            ..inputs
                .iter()
                .map(|d| d.lsn_range().end)
                .max()
                .unwrap_or(inputs[0].lsn_range().end);

        let mut streams = Vec::with_capacity(handles.len());
        for layer in &handles {
            streams.push(DeltaValueStream::open(layer).await?);
        }
        // Merge by (key, lsn): the heap holds each stream's head position,
        // `heads` its value.
        let mut heap = BinaryHeap::new();
        let mut heads = Vec::with_capacity(streams.len());
        for (i, s) in streams.iter_mut().enumerate() {
            let head = s.next().await?;
            if let Some(v) = &head {
                heap.push(Reverse((v.key, v.lsn, i)));
            }
            heads.push(head);
        }
        let target = conf.compaction_target_size.max(PAGE_SIZE);
        let mut outputs: Vec<Arc<Layer>> = Vec::new();
        let mut writer: Option<(DeltaLayerWriter, Key)> = None;
        let mut last_key: Option<Key> = None;
        while let Some(Reverse((key, lsn, i))) = heap.pop() {
            let Some(value) = heads[i].take() else {
                continue;
            };
            if self.cancel.is_cancelled() {
                return Err(CompactionError::Cancelled);
            }
            let key_changed = last_key != Some(key);
            if key_changed {
                if let Some((w, _)) = writer.as_ref() {
                    if w.size() >= target {
                        if let (Some((w, _)), Some(prev)) = (writer.take(), last_key) {
                            outputs.push(Arc::new(w.finish(prev.next()).await?));
                        }
                    }
                }
            }
            if writer.is_none() {
                let w =
                    DeltaLayerWriter::new(self.dir(), self.generation(), key, lsn_range.clone())
                        .await?;
                writer = Some((w, key));
            }
            if let Some((w, _)) = writer.as_mut() {
                w.put_value_bytes(key, lsn, value.will_init, &value.bytes)
                    .await?;
            }
            last_key = Some(key);
            heads[i] = streams[i].next().await?;
            if let Some(v) = &heads[i] {
                heap.push(Reverse((v.key, v.lsn, i)));
            }
        }
        if let (Some((w, _)), Some(prev)) = (writer.take(), last_key) {
            outputs.push(Arc::new(w.finish(prev.next()).await?));
        }
        let removes: Vec<_> = inputs.iter().map(|d| d.name.clone()).collect();
        outcome.l0_compacted += removes.len();
        outcome.l1_created += outputs.len();
        self.replace_layers(outputs, &removes).await?;
        Ok(())
    }

    /// Swaps layers in the manager, persists the index, then lets the
    /// replaced files be deleted (once no reader holds them).
    pub(crate) async fn replace_layers(
        &self,
        inserts: Vec<Arc<Layer>>,
        removes: &[crate::tenant::storage_layer::layer_desc::LayerName],
    ) -> Result<(), IndexError> {
        let removed = self.layers.write().await.apply(inserts, removes);
        self.persist_index(None).await?;
        for layer in removed {
            layer.delete_when_unused();
        }
        Ok(())
    }

    /// Every key that has a value at or below `lsn` on this timeline or,
    /// below the branch point, on its ancestors. Found by scanning layer
    /// indexes; WAL ingest supplies a cheaper metadata-driven keyspace.
    pub async fn collect_keyspace(&self, lsn: Lsn) -> Result<KeySpace, LayerReadError> {
        let mut keys = BTreeSet::new();
        let mut timeline: &Timeline = self;
        let mut lsn = lsn;
        loop {
            let (mem, persistent) = {
                let mgr = timeline.layers.read().await;
                let mem: Vec<_> = mgr.open.iter().chain(mgr.frozen.iter()).cloned().collect();
                let persistent: Vec<_> = mgr.persistent_layers().cloned().collect();
                (mem, persistent)
            };
            for layer in mem {
                if layer.start_lsn() <= lsn {
                    keys.extend(layer.keys_upto(lsn).await);
                }
            }
            for layer in persistent {
                if layer.desc().lsn_range().start <= lsn {
                    layer.collect_keys(lsn, &mut keys).await?;
                }
            }
            match &timeline.ancestor {
                Some(a) => {
                    lsn = lsn.min(timeline.ancestor_lsn);
                    timeline = a;
                }
                None => break,
            }
        }
        let mut ranges: Vec<Range<Key>> = Vec::new();
        for key in keys {
            match ranges.last_mut() {
                Some(r) if r.end == key => r.end = key.next(),
                _ => ranges.push(key..key.next()),
            }
        }
        Ok(KeySpace { ranges })
    }

    async fn create_image_layers(
        &self,
        outcome: &mut CompactionOutcome,
        force: bool,
    ) -> Result<(), CompactionError> {
        let conf = self.conf();
        let lsn = self.get_disk_consistent_lsn();
        if !lsn.is_valid() {
            return Ok(());
        }
        let keyspace = self.collect_keyspace(lsn).await?;
        if keyspace.ranges.is_empty() {
            return Ok(());
        }
        let target_keys = (conf.compaction_target_size / PAGE_SIZE).max(1);
        for partition in keyspace.partition(target_keys) {
            let (Some(first), Some(last)) = (partition.ranges.first(), partition.ranges.last())
            else {
                continue;
            };
            let key_range = first.start..last.end;
            let wanted = {
                let mgr = self.layers.read().await;
                let since = mgr
                    .map()
                    .latest_image_lsn(&key_range, lsn)
                    .map(|l| Lsn(l.0 + 1))
                    .unwrap_or(Lsn(0));
                if since > lsn {
                    false
                } else {
                    let depth = mgr.map().count_deltas(&key_range, &(since..Lsn(lsn.0 + 1)));
                    depth > 0 && (force || depth >= conf.image_creation_threshold.max(1))
                }
            };
            if !wanted {
                continue;
            }
            let layer = match self
                .write_image_layer(&partition, key_range.clone(), lsn)
                .await
            {
                Ok(layer) => layer,
                // One unreadable key spoils only its partition's image; the
                // deltas stay, reads of that key keep reporting the error.
                Err(e @ CompactionError::ImageRead { .. }) => {
                    tracing::error!(timeline_id = %self.timeline_id, "skipping image layer for {key_range:?}: {e}");
                    crate::metrics::RECONSTRUCT_ERRORS
                        .with_label_values(&["image_creation"])
                        .inc();
                    outcome.images_failed += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            outcome.images_created += 1;
            self.replace_layers(vec![Arc::new(layer)], &[]).await?;
        }
        Ok(())
    }

    async fn write_image_layer(
        &self,
        partition: &KeySpace,
        key_range: Range<Key>,
        lsn: Lsn,
    ) -> Result<Layer, CompactionError> {
        let compress = self.resources.settings.image_compression;
        let batch = IMAGE_READ_BATCH.min(self.resources.settings.max_get_vectored_keys.max(1));
        let mut writer =
            ImageLayerWriter::new(self.dir(), self.generation(), key_range, lsn, compress).await?;
        for range in &partition.ranges {
            let mut start = range.start;
            while start < range.end {
                if self.cancel.is_cancelled() {
                    return Err(CompactionError::Cancelled);
                }
                let mut end = start.add(batch as u32);
                if end > range.end || end < start {
                    end = range.end;
                }
                let results = self
                    .get_vectored(
                        KeySpace {
                            ranges: vec![start..end],
                        },
                        lsn,
                    )
                    .await?;
                for (key, res) in results {
                    match res {
                        Ok(img) => writer.put_image(key, &img).await?,
                        Err(PageReconstructError::MissingKey { .. }) => {}
                        Err(source) => return Err(CompactionError::ImageRead { key, lsn, source }),
                    }
                }
                start = end;
            }
        }
        Ok(writer.finish().await?)
    }
}
