//! `TenantStorage`: the storage engine of one tenant shard — its timelines
//! (with their ancestry), branching, and the background loops that keep
//! them compact and bounded.
//!
//! Timelines live under `<tenant dir>/timelines/<timeline_id>/`. A branch is
//! created in O(1): a new empty timeline pointing at its ancestor and branch
//! LSN. The branch point is made durable first (the ancestor is flushed up to
//! it when needed) so that a restart can never lose history a child depends
//! on, and it is protected from the ancestor's GC from the moment it exists
//! (GC and branching serialize on the ancestor's maintenance lock).
//!
//! Background work: per tenant, a compaction loop (rolls idle or oversized
//! in-memory layers, L0 → L1, image layers) every `compaction_period`, and a
//! GC loop every `gc_period`; both take a permit of the node-wide semaphore
//! for each job. Every timeline also runs a flush loop. All loops hold gates
//! and stop on cancellation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use pageserver_api::tenant_config::TenantConfigToml;
use tokio_util::sync::CancellationToken;
use utils::gate::Gate;
use utils::generation::Generation;
use utils::id::TimelineId;
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

use super::resources::{BackgroundKind, StorageResources};
use super::throttle::Throttle;
use super::timeline::compaction::CompactionError;
use super::timeline::flush::FlushError;
use super::timeline::gc::GcOutcome;
use super::timeline::index::IndexError;
use super::timeline::{lock, Timeline, TimelineLoadError, TimelineParams, WaitLsnError};
use crate::walredo::Redo;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("timeline {0} already exists")]
    TimelineExists(TimelineId),
    #[error("timeline {0} not found")]
    TimelineNotFound(TimelineId),
    #[error("branch LSN {lsn} is below the ancestor's GC cutoff {cutoff}")]
    BranchBelowGcCutoff { lsn: Lsn, cutoff: Lsn },
    #[error("timeline {0} has child timelines")]
    HasChildren(TimelineId),
    #[error("waiting for the branch LSN: {0}")]
    WaitLsn(#[from] WaitLsnError),
    #[error(transparent)]
    Load(#[from] TimelineLoadError),
    #[error(transparent)]
    Flush(#[from] FlushError),
    #[error("removing timeline directory {path}: {source}")]
    Remove {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tenant is shutting down")]
    ShuttingDown,
}

/// How a timeline was created, as needed to load it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSpec {
    pub timeline_id: TimelineId,
    pub ancestor: Option<(TimelineId, Lsn)>,
    pub pg_version: u32,
}

pub struct TenantStorage {
    pub tenant_shard_id: TenantShardId,
    dir: Utf8PathBuf,
    generation: Generation,
    conf: Arc<RwLock<TenantConfigToml>>,
    resources: Arc<StorageResources>,
    redo: Arc<dyn Redo>,
    throttle: Arc<Throttle>,
    timelines: Mutex<BTreeMap<TimelineId, Arc<Timeline>>>,
    cancel: CancellationToken,
    gate: Gate,
}

impl TenantStorage {
    pub fn new(
        tenant_shard_id: TenantShardId,
        dir: &Utf8Path,
        generation: Generation,
        conf: TenantConfigToml,
        resources: Arc<StorageResources>,
        redo: Arc<dyn Redo>,
    ) -> Arc<TenantStorage> {
        Arc::new(TenantStorage {
            tenant_shard_id,
            dir: dir.to_owned(),
            generation,
            conf: Arc::new(RwLock::new(conf)),
            resources,
            redo,
            throttle: Arc::new(Throttle::default()),
            timelines: Mutex::new(BTreeMap::new()),
            cancel: CancellationToken::new(),
            gate: Gate::default(),
        })
    }

    pub fn timeline_dir(&self, id: TimelineId) -> Utf8PathBuf {
        self.dir.join("timelines").join(id.to_string())
    }

    /// Replaces the tenant's effective configuration.
    pub fn set_conf(&self, conf: TenantConfigToml) {
        match self.conf.write() {
            Ok(mut c) => *c = conf,
            Err(p) => *p.into_inner() = conf,
        }
    }

    pub fn get(&self, id: TimelineId) -> Option<Arc<Timeline>> {
        lock(&self.timelines).get(&id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Timeline>> {
        lock(&self.timelines).values().cloned().collect()
    }

    fn params(
        &self,
        id: TimelineId,
        ancestor: Option<(Arc<Timeline>, Lsn)>,
        pg_version: u32,
    ) -> TimelineParams {
        TimelineParams {
            tenant_shard_id: self.tenant_shard_id,
            timeline_id: id,
            dir: self.timeline_dir(id),
            ancestor,
            pg_version,
            generation: self.generation,
            tenant_conf: Arc::clone(&self.conf),
            resources: Arc::clone(&self.resources),
            redo: Arc::clone(&self.redo),
            throttle: Arc::clone(&self.throttle),
        }
    }

    fn register(&self, timeline: Arc<Timeline>) -> Result<Arc<Timeline>, StorageError> {
        let mut timelines = lock(&self.timelines);
        if timelines.contains_key(&timeline.timeline_id) {
            return Err(StorageError::TimelineExists(timeline.timeline_id));
        }
        timelines.insert(timeline.timeline_id, Arc::clone(&timeline));
        drop(timelines);
        timeline.spawn_flush_loop();
        Ok(timeline)
    }

    /// A new root timeline whose data starts above `start_lsn`.
    pub async fn create_timeline(
        &self,
        id: TimelineId,
        pg_version: u32,
        start_lsn: Lsn,
    ) -> Result<Arc<Timeline>, StorageError> {
        if self.get(id).is_some() {
            return Err(StorageError::TimelineExists(id));
        }
        let timeline = Timeline::create(self.params(id, None, pg_version), start_lsn)?;
        self.register(timeline)
    }

    /// A branch of `ancestor_id` at `lsn` (default: its last record LSN).
    pub async fn branch_timeline(
        &self,
        id: TimelineId,
        ancestor_id: TimelineId,
        lsn: Option<Lsn>,
    ) -> Result<Arc<Timeline>, StorageError> {
        if self.get(id).is_some() {
            return Err(StorageError::TimelineExists(id));
        }
        let ancestor = self
            .get(ancestor_id)
            .ok_or(StorageError::TimelineNotFound(ancestor_id))?;
        let lsn = lsn.unwrap_or_else(|| ancestor.get_last_record_lsn());
        ancestor
            .wait_lsn(lsn, self.resources.settings.wait_lsn_timeout)
            .await?;
        if lsn > ancestor.get_disk_consistent_lsn() {
            ancestor.freeze_and_flush().await?;
        }
        let _no_gc = ancestor.maintenance_lock.lock().await;
        let cutoff = ancestor.get_gc_cutoff_lsn();
        if lsn < cutoff {
            return Err(StorageError::BranchBelowGcCutoff { lsn, cutoff });
        }
        let pg_version = ancestor.pg_version;
        let timeline = Timeline::create(
            self.params(id, Some((Arc::clone(&ancestor), lsn)), pg_version),
            lsn,
        )?;
        self.register(timeline)
    }

    /// Loads timelines from disk, ancestors before their children.
    pub async fn load_timelines(&self, specs: &[TimelineSpec]) -> Result<(), StorageError> {
        let mut pending: Vec<TimelineSpec> = specs.to_vec();
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for spec in pending {
                let ancestor = match spec.ancestor {
                    None => None,
                    Some((aid, lsn)) => match self.get(aid) {
                        Some(a) => Some((a, lsn)),
                        None => {
                            rest.push(spec);
                            continue;
                        }
                    },
                };
                let tl = Timeline::load(self.params(spec.timeline_id, ancestor, spec.pg_version))?;
                let tl = self.register(tl)?;
                if let Err(e) = crate::pgdatadir_mapping::refresh_cluster_settings(&tl).await {
                    tracing::warn!(
                        timeline_id = %tl.timeline_id,
                        "cannot read the control file for redo settings, keeping the defaults: {e}"
                    );
                }
            }
            if rest.len() == before {
                let missing = rest[0]
                    .ancestor
                    .map(|(a, _)| a)
                    .unwrap_or(rest[0].timeline_id);
                return Err(StorageError::TimelineNotFound(missing));
            }
            pending = rest;
        }
        Ok(())
    }

    /// Deletes a timeline without children: stops it, removes its files.
    pub async fn delete_timeline(&self, id: TimelineId) -> Result<(), StorageError> {
        let timeline = self.get(id).ok_or(StorageError::TimelineNotFound(id))?;
        if !self.children_branch_points(id).is_empty() {
            return Err(StorageError::HasChildren(id));
        }
        lock(&self.timelines).remove(&id);
        timeline.shutdown(false).await;
        let dir = timeline.dir().to_owned();
        drop(timeline);
        tokio::task::spawn_blocking(move || {
            utils::crashsafe::remove_dir_durable(&dir).map_err(|source| StorageError::Remove {
                path: dir.clone(),
                source,
            })
        })
        .await
        .map_err(|_| StorageError::ShuttingDown)?
    }

    /// Branch points of `id`'s children.
    pub fn children_branch_points(&self, id: TimelineId) -> Vec<Lsn> {
        lock(&self.timelines)
            .values()
            .filter(|t| t.ancestor.as_ref().is_some_and(|a| a.timeline_id == id))
            .map(|t| t.ancestor_lsn)
            .collect()
    }

    /// One GC pass over every timeline.
    pub async fn gc_iteration(
        &self,
        now: SystemTime,
    ) -> Vec<(TimelineId, Result<GcOutcome, String>)> {
        let mut out = Vec::new();
        for tl in self.list() {
            let res = self
                .gc_timeline(&tl, now, None)
                .await
                .map_err(|e| e.to_string());
            out.push((tl.timeline_id, res));
        }
        out
    }

    /// One GC pass over `tl`, retaining its children's branch points, under
    /// a background permit (the loop and HTTP `do_gc`).
    pub async fn gc_timeline(
        &self,
        tl: &Timeline,
        now: SystemTime,
        horizon: Option<u64>,
    ) -> Result<GcOutcome, IndexError> {
        let branch_points = self.children_branch_points(tl.timeline_id);
        let _permit = self.resources.background_permit(BackgroundKind::Gc).await;
        let res = tl.gc(&branch_points, now, horizon).await;
        record_job(BackgroundKind::Gc, res.is_ok());
        res
    }

    /// One pass over every timeline: rolling checks, then (with `compact`)
    /// compaction.
    pub async fn compaction_iteration(&self, compact: bool) -> Result<(), CompactionError> {
        for tl in self.list() {
            if self.cancel.is_cancelled() {
                return Err(CompactionError::Cancelled);
            }
            tl.maybe_roll().await;
            if !compact {
                continue;
            }
            let _permit = self
                .resources
                .background_permit(BackgroundKind::Compaction)
                .await;
            let res = tl.compact().await;
            record_job(BackgroundKind::Compaction, res.is_ok());
            if let Err(e) = res {
                tracing::warn!(timeline_id = %tl.timeline_id, "compaction failed: {e}");
            }
        }
        Ok(())
    }

    fn conf(&self) -> TenantConfigToml {
        match self.conf.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Starts the compaction and GC loops; they stop at [`shutdown`](Self::shutdown).
    pub fn spawn_background_loops(self: &Arc<Self>) {
        for kind in [BackgroundKind::Compaction, BackgroundKind::Gc] {
            let Ok(guard) = self.gate.enter() else {
                return;
            };
            let tenant = Arc::clone(self);
            tokio::spawn(async move {
                let _guard = guard;
                // Dropped before the guard (see the flush loop).
                let tenant = tenant;
                loop {
                    let conf = tenant.conf();
                    let period = match kind {
                        BackgroundKind::Gc => conf.gc_period,
                        // The compaction loop also rolls idle layers, so it
                        // runs at least every few seconds.
                        _ if conf.compaction_period.is_zero() => Duration::from_secs(10),
                        _ => conf.compaction_period.min(Duration::from_secs(10)),
                    };
                    let period = period.max(Duration::from_millis(100));
                    tokio::select! {
                        _ = tenant.cancel.cancelled() => return,
                        _ = tokio::time::sleep(period) => {}
                    }
                    match kind {
                        BackgroundKind::Gc => {
                            if !conf.gc_period.is_zero() {
                                tenant.gc_iteration(SystemTime::now()).await;
                            }
                        }
                        // `compaction_period = 0` disables compaction,
                        // not the rolling of idle layers.
                        _ => {
                            let compact = !conf.compaction_period.is_zero();
                            let _ = tenant.compaction_iteration(compact).await;
                        }
                    }
                }
            });
        }
    }

    /// Stops background loops and timelines; with `flush`, in-memory data
    /// is written to layer files first.
    pub async fn shutdown(&self, flush: bool) {
        self.cancel.cancel();
        self.gate.close().await;
        // Children first: they read through to their ancestors.
        let mut timelines = self.list();
        timelines.sort_by_key(|t| std::cmp::Reverse(depth(t)));
        for tl in timelines {
            tl.shutdown(flush).await;
        }
    }
}

fn depth(t: &Timeline) -> usize {
    let mut d = 0;
    let mut cur = t.ancestor.as_deref();
    while let Some(a) = cur {
        d += 1;
        cur = a.ancestor.as_deref();
    }
    d
}

fn record_job(kind: BackgroundKind, ok: bool) {
    crate::metrics::BACKGROUND_JOBS
        .with_label_values(&[kind.as_str(), if ok { "ok" } else { "error" }])
        .inc();
}
