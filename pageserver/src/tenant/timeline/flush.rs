//! Flushing frozen in-memory layers to L0 delta layers.
//!
//! Oldest frozen layer first: write its values to a new delta file covering
//! the whole key space and the layer's LSN range (written under a temporary
//! name, fsynced, renamed), swap the frozen layer for the delta in the layer
//! manager, then persist the index with the new `disk_consistent_lsn`. Only
//! after the index is durable does `disk_consistent_lsn` advance in memory,
//! so what is reported durable always is.
//!
//! The flush loop runs per timeline, woken by rolls; [`Timeline::freeze_and_flush`]
//! flushes inline (checkpoint API, shutdown, branching).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pageserver_api::key::Key;
use utils::lsn::Lsn;

use super::index::{IndexError, IndexLayer};
use super::Timeline;
use crate::tenant::storage_layer::delta_layer::DeltaLayerWriter;
use crate::tenant::storage_layer::inmemory_layer::FlushEntry;
use crate::tenant::storage_layer::{LayerReadError, LayerWriteError};

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Read(#[from] LayerReadError),
    #[error(transparent)]
    Write(#[from] LayerWriteError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("flush cancelled")]
    Cancelled,
    #[error("failpoint {0} is armed")]
    Failpoint(&'static str),
}

/// Hit after a flushed layer file is durable, before the index names it:
/// tests crash the process here to check the file is discarded at restart.
pub const FAILPOINT_AFTER_LAYER_WRITE: &str = "flush-after-layer-write";

/// Bytes of values a flush holds in memory at once (one larger value is
/// read alone).
const FLUSH_WINDOW_BYTES: usize = 16 << 20;

/// `order` cut into consecutive runs of at most `max_bytes` of values (a
/// larger value is a run of its own).
fn flush_windows(order: &[FlushEntry], max_bytes: usize) -> impl Iterator<Item = &[FlushEntry]> {
    let mut rest = order;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let n = rest
            .iter()
            .position(|e| {
                bytes += e.len;
                bytes > max_bytes
            })
            .unwrap_or(rest.len())
            .max(1);
        let (window, later) = rest.split_at(n);
        rest = later;
        Some(window)
    })
}

impl Timeline {
    /// Flushes every frozen layer, oldest first.
    pub(crate) async fn flush_frozen_layers(&self) -> Result<(), FlushError> {
        let _flushing = self.flush_lock.lock().await;
        loop {
            let Some(frozen) = self.layers.read().await.frozen.front().cloned() else {
                return Ok(());
            };
            let Some(end_lsn) = frozen.end_lsn() else {
                return Ok(());
            };
            let new_layer = if frozen.size() > 0 {
                let mut writer = DeltaLayerWriter::new(
                    self.dir(),
                    self.generation(),
                    Key::MIN,
                    frozen.start_lsn()..end_lsn,
                )
                .await?;
                // A window at a time: memory for the values is bounded by
                // the window, not by the layer's size.
                let order = frozen.flush_order().await;
                let mut data = Vec::new();
                for window in flush_windows(&order, FLUSH_WINDOW_BYTES) {
                    let ranges = frozen.read_window(window, &mut data).await?;
                    for (e, range) in window.iter().zip(ranges) {
                        writer
                            .put_value_bytes(e.key, e.lsn, e.will_init, &data[range])
                            .await?;
                    }
                }
                Some(Arc::new(writer.finish(Key::MAX).await?))
            } else {
                None
            };
            if utils::failpoint::hit(FAILPOINT_AFTER_LAYER_WRITE).await {
                return Err(FlushError::Failpoint(FAILPOINT_AFTER_LAYER_WRITE));
            }
            {
                let mut mgr = self.layers.write().await;
                mgr.apply(new_layer.into_iter().collect(), &[]);
                mgr.frozen.pop_front();
            }
            self.resources.ephemeral_sub(frozen.size());
            self.persist_index(Some(Lsn(end_lsn.0 - 1))).await?;
        }
    }

    /// Writes the index from the layer manager's current persistent layers;
    /// with `disk_consistent`, also advances `disk_consistent_lsn`.
    pub(crate) async fn persist_index(
        &self,
        disk_consistent: Option<Lsn>,
    ) -> Result<(), IndexError> {
        let layers: Vec<IndexLayer> = {
            let mgr = self.layers.read().await;
            let mut layers: Vec<IndexLayer> = mgr
                .persistent_layers()
                .map(|l| IndexLayer {
                    name: l.desc().name.to_string(),
                    file_size: l.desc().file_size,
                    generation: l.generation(),
                })
                .collect();
            layers.sort_by(|a, b| a.name.cmp(&b.name));
            layers
        };
        let prev = self.get_prev_record_lsn();
        let gc_cutoff = self.get_gc_cutoff_lsn();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        self.update_index(|idx| {
            idx.layers = layers;
            idx.gc_cutoff_lsn = gc_cutoff;
            if let Some(lsn) = disk_consistent {
                if lsn > idx.disk_consistent_lsn {
                    idx.disk_consistent_lsn = lsn;
                    idx.prev_record_lsn = prev;
                    idx.record_lsn_time(now, lsn);
                }
            }
        })
        .await?;
        if let Some(lsn) = disk_consistent {
            self.disk_consistent_lsn.send_if_modified(|cur| {
                let advance = lsn > *cur;
                if advance {
                    *cur = lsn;
                }
                advance
            });
        }
        Ok(())
    }

    /// Runs until cancelled: flushes whenever a layer is rolled. Holds the
    /// timeline's gate.
    pub fn spawn_flush_loop(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let guard = self.gate.enter().ok()?;
        let tl = Arc::clone(self);
        Some(tokio::spawn(async move {
            let _guard = guard;
            // Moved into the body so that it is dropped before the guard:
            // once shutdown sees the gate closed, this task holds no
            // reference to the timeline (and its layers) any more.
            let tl = tl;
            let mut backoff = Duration::from_millis(100);
            loop {
                tokio::select! {
                    _ = tl.cancel.cancelled() => return,
                    _ = tl.flush_requested.notified() => {}
                }
                loop {
                    match tl.flush_frozen_layers().await {
                        Ok(()) => {
                            backoff = Duration::from_millis(100);
                            break;
                        }
                        Err(e) => {
                            tracing::error!(timeline_id = %tl.timeline_id, "flush failed, will retry in {backoff:?}: {e}");
                            tokio::select! {
                                _ = tl.cancel.cancelled() => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::storage_layer::inmemory_layer::InMemoryLayer;
    use pageserver_api::value::Value;

    #[tokio::test]
    async fn windows_cover_every_value_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("eph");
        let layer = InMemoryLayer::create(&path, Lsn(1)).await.unwrap();
        // Keys written in an order unlike key order, values of mixed sizes
        // (some above the window), enough to spill the tail to the file.
        let mut batch = Vec::new();
        for i in 0..3000u32 {
            let key = Key::from_i128(((i * 7919) % 3001) as i128);
            let len = if i % 997 == 0 {
                5000
            } else {
                (i % 700) as usize + 1
            };
            let page = bytes::Bytes::from(vec![(i % 251) as u8; len]);
            batch.push((key, Lsn(10 + i as u64), Value::Image(page)));
        }
        layer.put_batch(&batch).await.unwrap();
        layer.freeze(Lsn(10_000));
        let order = layer.flush_order().await;
        let all = layer.sorted_values().await.unwrap();
        let mut seen = Vec::new();
        let mut data = Vec::new();
        for window in flush_windows(&order, 4096) {
            let window_bytes: usize = window.iter().map(|e| e.len).sum();
            assert!(window.len() == 1 || window_bytes <= 4096);
            let ranges = layer.read_window(window, &mut data).await.unwrap();
            for (e, r) in window.iter().zip(ranges) {
                seen.push((e.key, e.lsn, data[r].to_vec()));
            }
        }
        let expected: Vec<_> = all
            .entries
            .iter()
            .map(|(k, l, _, r)| (*k, *l, all.data[r.clone()].to_vec()))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(seen.len(), batch.len());
        assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        for (key, lsn, bytes) in &seen {
            let (_, _, value) = batch.iter().find(|(k, l, _)| k == key && l == lsn).unwrap();
            assert_eq!(&Value::des(bytes).unwrap(), value);
        }
    }
}
