//! Garbage collection: removing layers no read can need any more.
//!
//! The cutoff is the lower of `last_record_lsn - gc_horizon` and the LSN the
//! timeline had reached `pitr_interval` ago (from the flush-time LSN history;
//! without a sample that old, nothing is old enough). It only moves forward,
//! and is persisted before any file goes, so reads below it are refused from
//! then on. Reads must stay possible at the cutoff and above, and at every
//! *retained* LSN below it: child branch points and unexpired leases.
//!
//! A layer covering `[start, end)` × keys `K` is removed when `end <= cutoff`
//! and, for the cutoff and every retained LSN `r >= start`, image layers with
//! LSNs in `[end - 1, r]` (for an image layer: `(its lsn, r]`) cover all of
//! `K` — those images hold everything the layer could contribute to a read
//! at `r`. A retained LSN inside the layer's range keeps it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use utils::lsn::Lsn;

use super::index::IndexError;
use super::Timeline;
use crate::tenant::layer_map::LayerMap;
use crate::tenant::storage_layer::layer_desc::{LayerName, PersistentLayerDesc};

/// What one GC pass did. A kept layer counts once, under the first reason
/// that applies: the cutoff (reads at or above it need the layer), then a
/// child's branch point, then a lease.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcOutcome {
    pub cutoff: Lsn,
    pub layers_removed: usize,
    pub layers_kept: usize,
    pub kept_for_branches: usize,
    pub kept_for_leases: usize,
}

/// Whether `layer` is needed for reads at `r`.
fn needed_at(map: &LayerMap, layer: &PersistentLayerDesc, r: Lsn) -> bool {
    let range = layer.lsn_range();
    if r < range.start {
        return false;
    }
    let newer_from = if layer.is_delta() {
        Lsn(range.end.0 - 1)
    } else {
        range.end
    };
    if newer_from > r {
        return true;
    }
    !map.image_coverage(layer.key_range(), &(newer_from..Lsn(r.0 + 1)))
}

/// Layers of `map` that may go, given the cutoff and retained LSNs.
pub fn removable_layers(map: &LayerMap, cutoff: Lsn, retain: &[Lsn]) -> Vec<LayerName> {
    map.iter()
        .filter(|l| l.lsn_range().end <= cutoff)
        .filter(|l| !needed_at(map, l, cutoff))
        .filter(|l| {
            retain
                .iter()
                .filter(|r| **r < cutoff)
                .all(|r| !needed_at(map, l, *r))
        })
        .map(|l| l.name.clone())
        .collect()
}

impl Timeline {
    /// The cutoff GC would use now (not below the applied one), with the
    /// tenant's `gc_horizon` unless `horizon` overrides it.
    pub async fn gc_cutoff_candidate(&self, now: SystemTime, horizon: Option<u64>) -> Lsn {
        let conf = self.conf();
        let last = self.get_last_record_lsn();
        let horizon = Lsn(last.0.saturating_sub(horizon.unwrap_or(conf.gc_horizon)));
        let pitr = if conf.pitr_interval.is_zero() {
            horizon
        } else {
            let then = now
                .checked_sub(conf.pitr_interval)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .unwrap_or(Duration::ZERO)
                .as_secs();
            self.index_snapshot()
                .await
                .lsn_at_time(then)
                .unwrap_or(Lsn::INVALID)
        };
        // Never past what is on disk: in-memory data is not GC's business.
        let disk = self.get_disk_consistent_lsn();
        horizon.min(pitr).min(disk).max(self.get_gc_cutoff_lsn())
    }

    /// One GC pass. `branch_points` are the `ancestor_lsn`s of this
    /// timeline's children; `horizon` overrides the tenant's `gc_horizon`.
    pub async fn gc(
        &self,
        branch_points: &[Lsn],
        now: SystemTime,
        horizon: Option<u64>,
    ) -> Result<GcOutcome, IndexError> {
        let cutoff = self.gc_cutoff_candidate(now, horizon).await;
        self.gc_with_cutoff(cutoff, branch_points, now).await
    }

    /// GC with an explicit cutoff, clamped to be monotonic and not above
    /// `disk_consistent_lsn` (HTTP `do_gc` and tests).
    pub async fn gc_with_cutoff(
        &self,
        cutoff: Lsn,
        branch_points: &[Lsn],
        now: SystemTime,
    ) -> Result<GcOutcome, IndexError> {
        let _maintenance = self.maintenance_lock.lock().await;
        let cutoff = cutoff
            .min(self.get_disk_consistent_lsn())
            .max(self.get_gc_cutoff_lsn());
        if cutoff > self.get_gc_cutoff_lsn() {
            self.set_gc_cutoff_lsn(cutoff);
            self.persist_index(None).await?;
        }
        let mut retain: Vec<Lsn> = branch_points.to_vec();
        retain.extend(self.active_leases(now));
        let (removes, total, without_retain, without_leases) = {
            let mgr = self.layers.read().await;
            let map = mgr.map();
            (
                removable_layers(map, cutoff, &retain),
                map.len(),
                removable_layers(map, cutoff, &[]).len(),
                removable_layers(map, cutoff, branch_points).len(),
            )
        };
        if !removes.is_empty() {
            self.replace_layers(Vec::new(), &removes).await?;
            tracing::info!(timeline_id = %self.timeline_id, %cutoff, removed = removes.len(), "gc removed layers");
        }
        Ok(GcOutcome {
            cutoff,
            layers_removed: removes.len(),
            layers_kept: total - removes.len(),
            kept_for_branches: without_retain.saturating_sub(without_leases),
            kept_for_leases: without_leases.saturating_sub(removes.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pageserver_api::key::Key;
    use std::ops::Range;

    fn delta(lsns: Range<u64>) -> PersistentLayerDesc {
        PersistentLayerDesc {
            name: LayerName::Delta {
                key_range: Key::MIN..Key::MAX,
                lsn_range: Lsn(lsns.start)..Lsn(lsns.end),
            },
            file_size: 1,
        }
    }

    fn image(lsn: u64) -> PersistentLayerDesc {
        PersistentLayerDesc {
            name: LayerName::Image {
                key_range: Key::MIN..Key::MAX,
                lsn: Lsn(lsn),
            },
            file_size: 1,
        }
    }

    #[test]
    fn removal_rules() {
        let mut map = LayerMap::default();
        let d1 = delta(10..20);
        let i1 = image(19);
        let d2 = delta(20..30);
        let i2 = image(40);
        let d3 = delta(30..50);
        map.apply(
            vec![d1.clone(), i1.clone(), d2.clone(), i2.clone(), d3.clone()],
            &[],
        );

        // Cutoff 45: images at or below 45 are 19 and 40. d1 is shadowed by
        // i1 and i2; i1 by i2; d2 by i2; d3 ends above the cutoff.
        let mut got = removable_layers(&map, Lsn(45), &[]);
        got.sort();
        let mut want = vec![d1.name.clone(), i1.name.clone(), d2.name.clone()];
        want.sort();
        assert_eq!(got, want);

        // A branch at 25 needs d2 (25 is inside it) and the image at 19 under
        // it, but not d1.
        let got = removable_layers(&map, Lsn(45), &[Lsn(25)]);
        assert_eq!(got, vec![d1.name.clone()]);

        // Cutoff 35: only the image at 19 is at or below it; d2 ends at 30
        // but nothing covers it at 29..=35.
        let got = removable_layers(&map, Lsn(35), &[]);
        assert_eq!(got, vec![d1.name.clone()]);

        // Nothing goes when the cutoff is below every layer end.
        assert!(removable_layers(&map, Lsn(15), &[]).is_empty());
    }
}
