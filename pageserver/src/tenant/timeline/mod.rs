//! `Timeline`: one branch of a tenant's history and its storage.
//!
//! A timeline owns its layers ([`layer_manager`]), tracks the LSNs that say
//! what it holds — `last_record_lsn` (everything ingested, readable),
//! `disk_consistent_lsn` (everything at or below it is in local layer files)
//! and the applied GC cutoff (reads below it are refused) — and reads through
//! to its ancestor below its branch point.
//!
//! Responsibilities are split by file: reading ([`read`]), writing and
//! rolling in-memory layers ([`write`]), flushing frozen layers ([`flush`]),
//! compaction and image layers ([`compaction`]), GC ([`gc`]) and the durable
//! index ([`index`]).
//!
//! Lifecycle: [`Timeline::create`] or [`Timeline::load`] → background tasks
//! started by the tenant hold the timeline's [`Gate`] and watch its
//! `cancel` token → [`Timeline::shutdown`] (optionally flushing first) closes
//! the gate and waits for them.

pub mod compaction;
pub mod flush;
pub mod gc;
pub mod index;
pub mod layer_manager;
pub mod read;
pub mod write;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use pageserver_api::models::{HistoricLayerInfo, InMemoryLayerInfo, LayerMapInfo, WalSourceConfig};
use pageserver_api::tenant_config::TenantConfigToml;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use utils::crashsafe;
use utils::gate::Gate;
use utils::generation::Generation;
use utils::id::TimelineId;
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

use self::index::{IndexError, TimelineIndex};
use self::layer_manager::LayerManager;
use super::resources::StorageResources;
use super::storage_layer::layer::Layer;
use super::storage_layer::layer_desc::LayerName;
use super::throttle::Throttle;
use crate::walreceiver::{ReceiverState, WalReceiver};
use crate::walredo::{ClusterSettings, Redo};

/// Prefix of in-memory layers' scratch files in the timeline directory.
const EPHEMERAL_PREFIX: &str = "ephemeral-";

#[derive(Debug, thiserror::Error)]
pub enum TimelineLoadError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("timeline {dir}: {reason}")]
    Invalid { dir: Utf8PathBuf, reason: String },
    #[error("timeline {dir}: {source}")]
    Io {
        dir: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitLsnError {
    #[error("timed out after {timeout:?} waiting for LSN {wanted}; the timeline has ingested up to {reached}")]
    Timeout {
        wanted: Lsn,
        reached: Lsn,
        timeout: Duration,
    },
    #[error("timeline is shutting down")]
    Cancelled,
}

/// What a timeline is created or loaded with.
pub struct TimelineParams {
    pub tenant_shard_id: TenantShardId,
    pub timeline_id: TimelineId,
    pub dir: Utf8PathBuf,
    /// The parent timeline and the LSN this one branches off at.
    pub ancestor: Option<(Arc<Timeline>, Lsn)>,
    pub pg_version: u32,
    pub generation: Generation,
    pub tenant_conf: Arc<RwLock<TenantConfigToml>>,
    pub resources: Arc<StorageResources>,
    pub redo: Arc<dyn Redo>,
    /// The tenant's page read throttle.
    pub throttle: Arc<Throttle>,
}

pub struct Timeline {
    pub tenant_shard_id: TenantShardId,
    pub timeline_id: TimelineId,
    pub ancestor: Option<Arc<Timeline>>,
    /// The branch point; `Lsn::INVALID` without an ancestor.
    pub ancestor_lsn: Lsn,
    pub pg_version: u32,
    dir: Utf8PathBuf,
    generation: Generation,
    tenant_conf: Arc<RwLock<TenantConfigToml>>,
    pub(crate) resources: Arc<StorageResources>,
    redo: Arc<dyn Redo>,
    throttle: Arc<Throttle>,
    /// The cluster settings redo needs (data checksums, wal_log_hints), from
    /// the timeline's `pg_control`: set when a cluster is imported, when
    /// ingest changes the control file, and at load; a branch starts with
    /// its ancestor's.
    cluster_settings: Mutex<ClusterSettings>,
    /// Reads below this LSN are refused: the end of the base backup a
    /// timeline imported from a running Postgres was made from (before it,
    /// pages may be torn or from different moments).
    min_readable_lsn: Mutex<Lsn>,
    /// The walreceiver following this timeline's WAL source, if any.
    wal_receiver: Mutex<Option<WalReceiver>>,

    pub(crate) layers: tokio::sync::RwLock<LayerManager>,
    last_record_lsn: watch::Sender<Lsn>,
    prev_record_lsn: Mutex<Option<Lsn>>,
    disk_consistent_lsn: watch::Sender<Lsn>,
    gc_cutoff: RwLock<Lsn>,
    /// The durable index; its lock orders index writes.
    index: tokio::sync::Mutex<TimelineIndex>,
    /// One writer at a time; also taken to freeze at a batch boundary.
    write_lock: tokio::sync::Mutex<()>,
    /// One compaction or GC pass at a time.
    pub(crate) maintenance_lock: tokio::sync::Mutex<()>,
    /// One flush at a time (the loop and inline flushes).
    flush_lock: tokio::sync::Mutex<()>,
    flush_requested: Notify,
    ephemeral_seq: AtomicU64,
    leases: Mutex<BTreeMap<Lsn, SystemTime>>,
    pub cancel: CancellationToken,
    pub gate: Gate,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Timeline({}/{})", self.tenant_shard_id, self.timeline_id)
    }
}

impl Timeline {
    /// Creates an empty timeline whose data starts above `start_lsn` (the
    /// branch point for a branch).
    pub fn create(
        params: TimelineParams,
        start_lsn: Lsn,
    ) -> Result<Arc<Timeline>, TimelineLoadError> {
        let dir = params.dir.clone();
        crashsafe::create_dir_durable(&dir).map_err(|source| TimelineLoadError::Io {
            dir: dir.clone(),
            source,
        })?;
        let mut index = TimelineIndex::empty(start_lsn);
        index.gc_cutoff_lsn = start_lsn;
        index.store(&dir, !params.resources.settings.no_sync)?;
        Ok(Self::from_parts(params, index, Vec::new()))
    }

    /// Loads a timeline from its directory: the layers its index names;
    /// every other file there (unfinished layer writes, scratch files of
    /// in-memory layers) is removed.
    pub fn load(params: TimelineParams) -> Result<Arc<Timeline>, TimelineLoadError> {
        let dir = params.dir.clone();
        let index = TimelineIndex::load(&dir)?.ok_or_else(|| TimelineLoadError::Invalid {
            dir: dir.clone(),
            reason: format!("missing {}", index::INDEX_FILE_NAME),
        })?;
        let mut layers = Vec::new();
        let mut expected = std::collections::HashSet::new();
        for (desc, generation) in index.layer_descs() {
            let layer = Layer::for_existing(&dir, desc, generation);
            let path = layer.path().to_owned();
            let meta = std::fs::metadata(&path).map_err(|source| TimelineLoadError::Io {
                dir: dir.clone(),
                source: std::io::Error::new(source.kind(), format!("layer file {path}: {source}")),
            })?;
            if meta.len() != layer.desc().file_size {
                return Err(TimelineLoadError::Invalid {
                    dir: dir.clone(),
                    reason: format!(
                        "layer file {path} is {} bytes, the index says {}",
                        meta.len(),
                        layer.desc().file_size
                    ),
                });
            }
            if let Some(name) = path.file_name() {
                expected.insert(name.to_owned());
            }
            layers.push(Arc::new(layer));
        }
        remove_unlisted_files(&dir, &expected).map_err(|source| TimelineLoadError::Io {
            dir: dir.clone(),
            source,
        })?;
        Ok(Self::from_parts(params, index, layers))
    }

    fn from_parts(
        params: TimelineParams,
        index: TimelineIndex,
        layers: Vec<Arc<Layer>>,
    ) -> Arc<Timeline> {
        let (ancestor, ancestor_lsn) = match params.ancestor {
            Some((t, lsn)) => (Some(t), lsn),
            None => (None, Lsn::INVALID),
        };
        let mut manager = LayerManager::default();
        manager.apply(layers, &[]);
        let disk_consistent = index.disk_consistent_lsn;
        let cluster_settings = ancestor
            .as_ref()
            .map(|a: &Arc<Timeline>| a.cluster_settings())
            .unwrap_or_default();
        Arc::new(Timeline {
            tenant_shard_id: params.tenant_shard_id,
            timeline_id: params.timeline_id,
            ancestor,
            ancestor_lsn,
            pg_version: params.pg_version,
            dir: params.dir,
            generation: params.generation,
            tenant_conf: params.tenant_conf,
            resources: params.resources,
            redo: params.redo,
            throttle: params.throttle,
            cluster_settings: Mutex::new(cluster_settings),
            min_readable_lsn: Mutex::new(Lsn::INVALID),
            wal_receiver: Mutex::new(None),
            layers: tokio::sync::RwLock::new(manager),
            last_record_lsn: watch::Sender::new(disk_consistent),
            prev_record_lsn: Mutex::new(index.prev_record_lsn),
            disk_consistent_lsn: watch::Sender::new(disk_consistent),
            gc_cutoff: RwLock::new(index.gc_cutoff_lsn),
            index: tokio::sync::Mutex::new(index),
            write_lock: tokio::sync::Mutex::new(()),
            maintenance_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            flush_requested: Notify::new(),
            ephemeral_seq: AtomicU64::new(0),
            leases: Mutex::new(BTreeMap::new()),
            cancel: CancellationToken::new(),
            gate: Gate::default(),
        })
    }

    pub fn dir(&self) -> &Utf8Path {
        &self.dir
    }

    /// Follows `source` from now on (stopping a receiver that followed
    /// another), or stops following with `None`.
    pub async fn set_wal_source(
        self: &Arc<Self>,
        source: Option<WalSourceConfig>,
    ) -> Result<(), String> {
        self.stop_wal_receiver().await;
        if let Some(source) = source {
            let receiver = WalReceiver::start(Arc::clone(self), source)?;
            *self.wal_receiver.lock().unwrap_or_else(|p| p.into_inner()) = Some(receiver);
        }
        Ok(())
    }

    async fn stop_wal_receiver(&self) {
        let receiver = self
            .wal_receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = receiver {
            r.stop().await;
        }
    }

    /// The WAL source (password removed), the receiver's status line and
    /// state, if the timeline follows one.
    pub fn wal_receiver_info(&self) -> Option<(String, String, ReceiverState)> {
        let guard = self.wal_receiver.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(|r| (r.source_redacted.clone(), r.status(), r.state()))
    }

    /// Waits as the tenant's `timeline_get_throttle` says before reading
    /// `pages` pages for the page service; returns how long it waited.
    pub async fn throttle_page_reads(&self, pages: u32) -> Duration {
        let conf = self.conf().timeline_get_throttle;
        let wait = self
            .throttle
            .reserve(&conf, pages, std::time::Instant::now());
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.cancel.cancelled() => {}
            }
        }
        wait
    }

    /// The lowest LSN public reads (page service, backups, branches) may
    /// use: the GC cutoff, or the end of the backup an import started from.
    pub fn min_readable_lsn(&self) -> Lsn {
        let imported = *self
            .min_readable_lsn
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        imported.max(self.get_gc_cutoff_lsn())
    }

    pub fn set_min_readable_lsn(&self, lsn: Lsn) {
        *self
            .min_readable_lsn
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = lsn;
    }

    /// The settings reconstruction uses (see the field's documentation).
    pub fn cluster_settings(&self) -> ClusterSettings {
        *self
            .cluster_settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_cluster_settings(&self, settings: ClusterSettings) {
        *self
            .cluster_settings
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = settings;
    }

    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// `checkpoint_distance` without cloning the whole config (write path).
    pub(crate) fn checkpoint_distance(&self) -> u64 {
        match self.tenant_conf.read() {
            Ok(c) => c.checkpoint_distance,
            Err(poisoned) => poisoned.into_inner().checkpoint_distance,
        }
    }

    pub(crate) fn conf(&self) -> TenantConfigToml {
        match self.tenant_conf.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn get_last_record_lsn(&self) -> Lsn {
        *self.last_record_lsn.borrow()
    }

    pub fn get_prev_record_lsn(&self) -> Option<Lsn> {
        *lock(&self.prev_record_lsn)
    }

    pub fn get_disk_consistent_lsn(&self) -> Lsn {
        *self.disk_consistent_lsn.borrow()
    }

    pub fn get_gc_cutoff_lsn(&self) -> Lsn {
        match self.gc_cutoff.read() {
            Ok(l) => *l,
            Err(p) => *p.into_inner(),
        }
    }

    fn set_gc_cutoff_lsn(&self, lsn: Lsn) {
        match self.gc_cutoff.write() {
            Ok(mut l) => *l = lsn,
            Err(p) => *p.into_inner() = lsn,
        }
    }

    /// Bytes of this timeline's layer files on local disk.
    pub async fn physical_size(&self) -> u64 {
        self.layers.read().await.physical_size()
    }

    /// Waits until everything up to `lsn` has been ingested.
    pub async fn wait_lsn(&self, lsn: Lsn, timeout: Duration) -> Result<(), WaitLsnError> {
        if self.get_last_record_lsn() >= lsn {
            return Ok(());
        }
        let mut rx = self.last_record_lsn.subscribe();
        let wait = rx.wait_for(|reached| *reached >= lsn);
        tokio::select! {
            res = tokio::time::timeout(timeout, wait) => match res {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(WaitLsnError::Cancelled),
                Err(_) => Err(WaitLsnError::Timeout {
                    wanted: lsn,
                    reached: self.get_last_record_lsn(),
                    timeout,
                }),
            },
            _ = self.cancel.cancelled() => Err(WaitLsnError::Cancelled),
        }
    }

    /// Keeps reads at `lsn` possible until `until` (an LSN lease).
    pub fn add_lease(&self, lsn: Lsn, until: SystemTime) {
        let mut leases = lock(&self.leases);
        let entry = leases.entry(lsn).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Whether an unexpired lease holds exactly `lsn`.
    pub fn is_leased(&self, lsn: Lsn) -> bool {
        lock(&self.leases)
            .get(&lsn)
            .is_some_and(|until| *until > SystemTime::now())
    }

    /// Unexpired leases (expired ones are dropped).
    pub fn active_leases(&self, now: SystemTime) -> Vec<Lsn> {
        let mut leases = lock(&self.leases);
        leases.retain(|_, until| *until > now);
        leases.keys().copied().collect()
    }

    fn next_ephemeral_path(&self) -> Utf8PathBuf {
        let seq = self.ephemeral_seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{EPHEMERAL_PREFIX}{seq}"))
    }

    /// Stops background work and waits for it. With `flush`, everything
    /// ingested is written to layer files first.
    pub async fn shutdown(&self, flush: bool) {
        // Stop ingest first, so the final flush has everything it ingested.
        self.stop_wal_receiver().await;
        if flush && !self.cancel.is_cancelled() {
            if let Err(e) = self.freeze_and_flush().await {
                tracing::warn!(timeline_id = %self.timeline_id, "flush at shutdown failed: {e}");
            }
        }
        self.cancel.cancel();
        self.gate.close().await;
    }

    /// Writes a new index reflecting `update`, durably.
    pub(crate) async fn update_index(
        &self,
        update: impl FnOnce(&mut TimelineIndex),
    ) -> Result<(), IndexError> {
        let mut index = self.index.lock().await;
        let mut next = index.clone();
        update(&mut next);
        let dir = self.dir.clone();
        let to_store = next.clone();
        let sync = !self.resources.settings.no_sync;
        tokio::task::spawn_blocking(move || to_store.store(&dir, sync))
            .await
            .map_err(|e| IndexError::Io {
                op: "write",
                path: self.dir.join(index::INDEX_FILE_NAME),
                source: std::io::Error::other(e),
            })??;
        *index = next;
        Ok(())
    }

    pub(crate) async fn index_snapshot(&self) -> TimelineIndex {
        self.index.lock().await.clone()
    }

    /// The in-memory layers and layer files, for `GET .../layer`. Every
    /// layer is local (no remote storage yet) and visible (no layer is
    /// hidden from reads yet).
    pub async fn layer_map_info(&self) -> LayerMapInfo {
        let guard = self.layers.read().await;
        let mut in_memory_layers = Vec::new();
        for frozen in &guard.frozen {
            let lsn_start = frozen.start_lsn();
            in_memory_layers.push(match frozen.end_lsn() {
                Some(lsn_end) => InMemoryLayerInfo::Frozen { lsn_start, lsn_end },
                None => InMemoryLayerInfo::Open { lsn_start },
            });
        }
        if let Some(open) = &guard.open {
            in_memory_layers.push(InMemoryLayerInfo::Open {
                lsn_start: open.start_lsn(),
            });
        }
        let mut historic_layers: Vec<HistoricLayerInfo> = guard
            .persistent_layers()
            .map(|l| {
                let desc = l.desc();
                let layer_file_name = desc.name.to_string();
                let lsns = desc.lsn_range();
                if desc.is_delta() {
                    HistoricLayerInfo::Delta {
                        layer_file_name,
                        layer_file_size: desc.file_size,
                        lsn_start: lsns.start,
                        lsn_end: lsns.end,
                        remote: false,
                        l0: desc.is_l0(),
                        visible: true,
                    }
                } else {
                    HistoricLayerInfo::Image {
                        layer_file_name,
                        layer_file_size: desc.file_size,
                        lsn_start: lsns.start,
                        remote: false,
                        visible: true,
                    }
                }
            })
            .collect();
        historic_layers.sort_by(|a, b| layer_info_name(a).cmp(layer_info_name(b)));
        LayerMapInfo {
            in_memory_layers,
            historic_layers,
        }
    }

    /// Layer names currently in the map (for tests and the HTTP layer list).
    pub async fn layer_names(&self) -> Vec<LayerName> {
        let guard = self.layers.read().await;
        let mut names: Vec<_> = guard.map().iter().map(|d| d.name.clone()).collect();
        names.sort();
        names
    }
}

fn layer_info_name(info: &HistoricLayerInfo) -> &str {
    match info {
        HistoricLayerInfo::Delta {
            layer_file_name, ..
        }
        | HistoricLayerInfo::Image {
            layer_file_name, ..
        } => layer_file_name,
    }
}

/// Locks a std mutex, recovering from poisoning (the data is plain state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Removes what a crash can leave in a timeline directory: layer files the
/// index does not name (written but never made part of the timeline),
/// unfinished temporary files and in-memory layers' scratch files. Other
/// files (e.g. the timeline's `metadata.json`) are not touched.
fn remove_unlisted_files(
    dir: &Utf8Path,
    expected: &std::collections::HashSet<String>,
) -> std::io::Result<()> {
    for entry in dir.read_dir_utf8()? {
        let entry = entry?;
        let name = entry.file_name();
        if expected.contains(name) || !entry.file_type()?.is_file() {
            continue;
        }
        let leftover = name.starts_with(EPHEMERAL_PREFIX)
            || name.ends_with(super::storage_layer::layer::TEMP_SUFFIX)
            || crashsafe::is_leftover(name)
            || name.parse::<LayerName>().is_ok();
        if leftover {
            tracing::info!(path = %entry.path(), "removing file not in the timeline index");
            match std::fs::remove_file(entry.path()) {
                // Gone already (an ephemeral file its owner just deleted).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}
