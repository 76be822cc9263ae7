//! The write path: one writer per timeline puts batches of values and
//! publishes their LSN; in-memory layers are frozen ("rolled") at batch
//! boundaries.
//!
//! Atomicity: values of a batch are all indexed before `last_record_lsn`
//! moves to the batch's LSN, and every value's LSN is above the previous
//! `last_record_lsn`; a read waits for `last_record_lsn` to reach its LSN and
//! ignores newer values, so it sees a batch entirely or not at all.
//!
//! Rolling: the open layer is frozen when it reaches `checkpoint_distance`
//! (checked after each batch), when it is older than `checkpoint_timeout`, or
//! when the node's ephemeral bytes exceed the budget and this layer is larger
//! than the mean open layer ([`Timeline::maybe_roll`], called from the
//! background loop so idle timelines flush too).

use std::sync::Arc;

use pageserver_api::key::Key;
use pageserver_api::value::Value;
use utils::lsn::Lsn;

use super::layer_manager::LayerManager;
use super::{lock, Timeline};
use crate::tenant::storage_layer::batch::SerializedBatch;
use crate::tenant::storage_layer::inmemory_layer::{InMemoryLayer, PutError};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("value for key {key} at {lsn} is not above last_record_lsn {last}")]
    LsnNotAdvancing { key: Key, lsn: Lsn, last: Lsn },
    #[error("value for key {key} at {lsn} is above the batch LSN {commit}")]
    LsnAboveCommit { key: Key, lsn: Lsn, commit: Lsn },
    #[error("batch LSN {commit} is below last_record_lsn {last}")]
    CommitBehind { commit: Lsn, last: Lsn },
    #[error("creating in-memory layer: {0}")]
    CreateLayer(std::io::Error),
    #[error(transparent)]
    Put(#[from] PutError),
    #[error("timeline is shutting down")]
    Cancelled,
}

/// Exclusive write access to a timeline.
pub struct TimelineWriter<'a> {
    tl: &'a Timeline,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Timeline {
    pub async fn writer(&self) -> TimelineWriter<'_> {
        TimelineWriter {
            tl: self,
            _guard: self.write_lock.lock().await,
        }
    }

    /// Freezes the open layer at the current `last_record_lsn`. Caller holds
    /// the write lock, so this is a batch boundary.
    fn freeze_open_layer(&self, mgr: &mut LayerManager) -> bool {
        let Some(open) = mgr.open.take() else {
            return false;
        };
        open.freeze(Lsn(self.get_last_record_lsn().0 + 1));
        mgr.frozen.push_back(open);
        self.resources.open_layer_closed();
        true
    }

    /// Rolls the open layer if it is too big, too old, or above the mean
    /// while the node is over its ephemeral budget; wakes the flush loop.
    pub async fn maybe_roll(&self) {
        let _writer = self.write_lock.lock().await;
        let conf = self.conf();
        let mut mgr = self.layers.write().await;
        let Some(open) = mgr.open.as_ref() else {
            return;
        };
        let size = open.size();
        let too_big = size >= conf.checkpoint_distance;
        let too_old = size > 0 && open.opened_at().elapsed() >= conf.checkpoint_timeout;
        let over_budget = self
            .resources
            .roll_threshold()
            .is_some_and(|mean| size > 0 && size >= mean);
        if (too_big || too_old || over_budget) && self.freeze_open_layer(&mut mgr) {
            tracing::debug!(timeline_id = %self.timeline_id, size, too_big, too_old, over_budget, "rolled open layer");
            drop(mgr);
            self.flush_requested.notify_one();
        }
    }

    /// Freezes whatever is in memory and writes it to layer files; returns
    /// when `disk_consistent_lsn` has reached the `last_record_lsn` of the
    /// moment of the call.
    pub async fn freeze_and_flush(&self) -> Result<(), super::flush::FlushError> {
        {
            let _writer = self.write_lock.lock().await;
            let mut mgr = self.layers.write().await;
            self.freeze_open_layer(&mut mgr);
        }
        self.flush_frozen_layers().await?;
        // Records that produced no values still advance durability.
        let _writer = self.write_lock.lock().await;
        let nothing_in_memory = {
            let mgr = self.layers.read().await;
            mgr.open.is_none() && mgr.frozen.is_empty()
        };
        let last = self.get_last_record_lsn();
        if nothing_in_memory && last > self.get_disk_consistent_lsn() {
            self.persist_index(Some(last)).await?;
        }
        Ok(())
    }
}

impl TimelineWriter<'_> {
    pub fn timeline(&self) -> &Timeline {
        self.tl
    }

    /// Puts `batch` and publishes `commit_lsn` as `last_record_lsn`. Every
    /// value's LSN must be above the current `last_record_lsn` and at most
    /// `commit_lsn`.
    pub async fn put_batch(
        &mut self,
        batch: &[(Key, Lsn, Value)],
        commit_lsn: Lsn,
    ) -> Result<(), WriteError> {
        let batch = SerializedBatch::from_values(batch).map_err(PutError::from)?;
        self.put_serialized(&batch, commit_lsn).await
    }

    /// [`Self::put_batch`] of values already serialized.
    pub async fn put_serialized(
        &mut self,
        batch: &SerializedBatch,
        commit_lsn: Lsn,
    ) -> Result<(), WriteError> {
        if self.tl.cancel.is_cancelled() {
            return Err(WriteError::Cancelled);
        }
        let last = self.tl.get_last_record_lsn();
        if commit_lsn < last {
            return Err(WriteError::CommitBehind {
                commit: commit_lsn,
                last,
            });
        }
        for e in batch.entries() {
            if e.lsn <= last {
                return Err(WriteError::LsnNotAdvancing {
                    key: e.key,
                    lsn: e.lsn,
                    last,
                });
            }
            if e.lsn > commit_lsn {
                return Err(WriteError::LsnAboveCommit {
                    key: e.key,
                    lsn: e.lsn,
                    commit: commit_lsn,
                });
            }
        }
        if !batch.is_empty() {
            let layer = self.open_layer().await?;
            let before = layer.size();
            layer.put_serialized(batch).await?;
            self.tl.resources.ephemeral_add(layer.size() - before);
        }
        self.finish_write(commit_lsn);
        let checkpoint_distance = self.tl.checkpoint_distance();
        let full = |mgr: &super::layer_manager::LayerManager| {
            mgr.open
                .as_ref()
                .is_some_and(|l| l.size() >= checkpoint_distance)
        };
        // Readers share the lock; take it exclusively only to roll.
        if full(&*self.tl.layers.read().await) {
            let mut mgr = self.tl.layers.write().await;
            if full(&mgr) && self.tl.freeze_open_layer(&mut mgr) {
                drop(mgr);
                self.tl.flush_requested.notify_one();
            }
        }
        Ok(())
    }

    /// Publishes `lsn` as `last_record_lsn` (e.g. after records that wrote
    /// no values).
    pub fn finish_write(&mut self, lsn: Lsn) {
        let prev = self.tl.get_last_record_lsn();
        if lsn > prev {
            *lock(&self.tl.prev_record_lsn) = Some(prev);
            self.tl.last_record_lsn.send_replace(lsn);
        }
    }

    async fn open_layer(&mut self) -> Result<Arc<InMemoryLayer>, WriteError> {
        if let Some(open) = self.tl.layers.read().await.open.clone() {
            return Ok(open);
        }
        let start = {
            let mgr = self.tl.layers.read().await;
            mgr.frozen
                .back()
                .and_then(|l| l.end_lsn())
                .unwrap_or(Lsn(self.tl.get_disk_consistent_lsn().0 + 1))
        };
        let layer = Arc::new(
            InMemoryLayer::create(&self.tl.next_ephemeral_path(), start)
                .await
                .map_err(WriteError::CreateLayer)?,
        );
        self.tl.layers.write().await.open = Some(Arc::clone(&layer));
        self.tl.resources.open_layer_opened();
        Ok(layer)
    }
}
