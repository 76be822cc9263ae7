//! The tenant manager: the one owner of every tenant on this node.
//!
//! All API operations on tenants and timelines go through it. A single async
//! mutex serialises modifications, so two concurrent calls on one tenant can
//! never interleave their disk writes; each modification is made durable on
//! disk before the in-memory map changes and before the caller is answered.
//! After [`TenantManager::shutdown`] every operation fails with `ShuttingDown`.
//!
//! Every attached, non-broken tenant has a running [`TenantStorage`]: started
//! at load or attach, restarted when its generation changes, shut down (with
//! a flush) at node shutdown and without one at detach or delete. Data-path
//! callers (page reads, checkpoint, compaction, GC) take the manager's lock
//! only to look their timeline up, so they never wait behind each other.
//!
//! Timeline creation order: the storage creates the timeline directory and
//! its `index.json`, then `metadata.json` is written; that last write is the
//! commit point (a directory without it is removed at the next load).

use std::collections::BTreeMap;
use std::sync::Arc;

use camino::Utf8PathBuf;
use pageserver_api::models::{
    LocationConfig, LocationConfigMode, LocationConfigResponse, TenantConfigResponse,
    TenantDetails, TenantInfo, TenantShardLocation, TimelineCreateRequest,
    TimelineCreateRequestMode, TimelineInfo, WalSourceConfig,
};
use pageserver_api::tenant_config::TenantConfig;
use tokio::sync::Mutex;
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

use super::persistence::{
    self, CreationParams, PersistedLocation, PersistenceError, TimelineMetadata,
};
use super::resources::StorageResources;
use super::storage::{StorageError, TenantStorage, TimelineSpec};
use super::timeline::Timeline;
use super::Tenant;
use crate::config::PageServerConf;
use crate::import_datadir::{self, ImportError};
use crate::walredo::Redo;
use utils::generation::Generation;

/// The only Postgres major version this build supports.
pub const SUPPORTED_PG_VERSION: u32 = 15;

#[derive(Debug, thiserror::Error)]
pub enum MgrError {
    #[error("{0}")]
    BadRequest(String),
    #[error("tenant {0} not found")]
    TenantNotFound(TenantShardId),
    #[error("timeline {1} of tenant {0} not found")]
    TimelineNotFound(TenantShardId, TimelineId),
    #[error("ancestor timeline {1} not found in tenant {0}")]
    AncestorNotFound(TenantShardId, TimelineId),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("tenant {0} is broken: {1}")]
    Broken(TenantShardId, String),
    #[error("pageserver is shutting down")]
    ShuttingDown,
    #[error("creating timeline {0}: {1}")]
    Import(TimelineId, String),
    #[error(transparent)]
    Persistence(#[from] PersistenceError),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

struct Inner {
    tenants: BTreeMap<TenantShardId, Tenant>,
    shutting_down: bool,
}

pub struct TenantManager {
    conf: Arc<PageServerConf>,
    tenants_path: Utf8PathBuf,
    resources: Arc<StorageResources>,
    redo: Arc<dyn Redo>,
    inner: Mutex<Inner>,
}

/// Runs blocking file-system work off the async runtime.
async fn blocking<T, F>(f: F) -> Result<T, MgrError>
where
    F: FnOnce() -> Result<T, PersistenceError> + Send + 'static,
    T: Send + 'static,
{
    Ok(tokio::task::spawn_blocking(f).await??)
}

impl TenantManager {
    /// Loads every tenant from local disk and starts its storage.
    pub async fn load(
        conf: Arc<PageServerConf>,
        resources: Arc<StorageResources>,
        redo: Arc<dyn Redo>,
    ) -> Result<Self, MgrError> {
        let tenants_path = conf.tenants_path();
        let path = tenants_path.clone();
        let mut tenants = blocking(move || persistence::load_tenants(&path)).await?;
        let mgr = Self {
            conf,
            tenants_path,
            resources,
            redo,
            inner: Mutex::new(Inner {
                tenants: BTreeMap::new(),
                shutting_down: false,
            }),
        };
        for tenant in tenants.values_mut() {
            if tenant.broken.is_none() {
                mgr.start_storage(tenant).await;
            }
        }
        tracing::info!(
            "loaded {} tenant(s) from {}",
            tenants.len(),
            mgr.tenants_path
        );
        mgr.inner.lock().await.tenants = tenants;
        Ok(mgr)
    }

    /// A tenant without timelines, its storage started.
    async fn start_new_tenant(&self, id: TenantShardId, location: PersistedLocation) -> Tenant {
        let mut tenant = Tenant {
            id,
            location,
            timelines: BTreeMap::new(),
            broken: None,
            storage: None,
        };
        self.start_storage(&mut tenant).await;
        tenant
    }

    /// Starts `tenant`'s storage and loads its timelines; a failure marks
    /// the tenant broken, naming the cause.
    async fn start_storage(&self, tenant: &mut Tenant) {
        let storage = TenantStorage::new(
            tenant.id,
            &persistence::tenant_dir(&self.tenants_path, &tenant.id),
            Generation(tenant.location.generation),
            self.conf
                .default_tenant_conf
                .apply(&tenant.location.tenant_conf),
            Arc::clone(&self.resources),
            Arc::clone(&self.redo),
        );
        let specs: Vec<TimelineSpec> = tenant
            .timelines
            .values()
            .map(|m| TimelineSpec {
                timeline_id: m.timeline_id,
                ancestor: m.ancestor_timeline_id.map(|a| (a, m.ancestor_lsn)),
                pg_version: m.pg_version,
            })
            .collect();
        match storage.load_timelines(&specs).await {
            Ok(()) => {
                storage.spawn_background_loops();
                for meta in tenant.timelines.values() {
                    let Some(tl) = storage.get(meta.timeline_id) else {
                        continue;
                    };
                    tl.set_min_readable_lsn(meta.min_readable_lsn);
                    let Some(source) = &meta.wal_source else {
                        continue;
                    };
                    if let Err(e) = tl.set_wal_source(Some(source.clone())).await {
                        tracing::error!(
                            tenant_id = %tenant.id,
                            timeline_id = %meta.timeline_id,
                            "cannot start the walreceiver: {e}"
                        );
                    }
                }
                tenant.storage = Some(storage);
            }
            Err(e) => {
                let reason = format!("cannot load timelines: {e}");
                tracing::error!(tenant_id = %tenant.id, "tenant is broken: {reason}");
                storage.shutdown(false).await;
                tenant.broken = Some(reason);
            }
        }
    }

    async fn lock(&self) -> Result<tokio::sync::MutexGuard<'_, Inner>, MgrError> {
        let guard = self.inner.lock().await;
        if guard.shutting_down {
            return Err(MgrError::ShuttingDown);
        }
        Ok(guard)
    }

    /// Refuses every later operation, waits for the one in progress, then
    /// stops every tenant's storage, flushing in-memory data to disk.
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        inner.shutting_down = true;
        for tenant in inner.tenants.values_mut() {
            if let Some(storage) = tenant.storage.take() {
                storage.shutdown(true).await;
            }
        }
    }

    pub async fn list(&self) -> Result<Vec<TenantInfo>, MgrError> {
        let inner = self.lock().await?;
        let mut out = Vec::with_capacity(inner.tenants.len());
        for tenant in inner.tenants.values() {
            out.push(tenant.info().await);
        }
        Ok(out)
    }

    pub async fn details(&self, id: TenantShardId) -> Result<TenantDetails, MgrError> {
        let inner = self.lock().await?;
        let tenant = inner.tenants.get(&id).ok_or(MgrError::TenantNotFound(id))?;
        Ok(TenantDetails {
            tenant_info: tenant.info().await,
            walredo: None,
            timelines: tenant.timelines.keys().copied().collect(),
        })
    }

    pub async fn config(&self, id: TenantShardId) -> Result<TenantConfigResponse, MgrError> {
        let inner = self.lock().await?;
        let tenant = inner.tenants.get(&id).ok_or(MgrError::TenantNotFound(id))?;
        let overrides = tenant.location.tenant_conf.clone();
        Ok(TenantConfigResponse {
            effective_config: self.conf.default_tenant_conf.apply(&overrides),
            tenant_specific_overrides: overrides,
        })
    }

    /// Legacy `POST /v1/tenant`: a new unsharded tenant in generation 1, this
    /// node being its own generation authority.
    pub async fn create_tenant(
        &self,
        tenant_id: TenantId,
        tenant_conf: TenantConfig,
    ) -> Result<(), MgrError> {
        let id = TenantShardId::unsharded(tenant_id);
        let mut inner = self.lock().await?;
        if inner.tenants.contains_key(&id) {
            return Err(MgrError::Conflict(format!("tenant {id} already exists")));
        }
        let location = PersistedLocation {
            mode: LocationConfigMode::AttachedSingle,
            generation: 1,
            shard_number: 0,
            shard_count: 0,
            shard_stripe_size: 0,
            tenant_conf,
        };
        self.persist_location(id, location.clone()).await?;
        let tenant = self.start_new_tenant(id, location).await;
        inner.tenants.insert(id, tenant);
        tracing::info!(tenant_id = %id, "created tenant");
        Ok(())
    }

    async fn persist_location(
        &self,
        id: TenantShardId,
        location: PersistedLocation,
    ) -> Result<(), MgrError> {
        let path = self.tenants_path.clone();
        blocking(move || persistence::write_location(&path, &id, &location)).await
    }

    /// `PUT /v1/tenant/:id/location_config`.
    pub async fn set_location(
        &self,
        id: TenantShardId,
        config: LocationConfig,
    ) -> Result<LocationConfigResponse, MgrError> {
        if config.shard_number != id.shard_number.0 || config.shard_count != id.shard_count.0 {
            return Err(MgrError::BadRequest(format!(
                "shard {}/{} in the body does not match tenant shard id {id}",
                config.shard_number, config.shard_count
            )));
        }
        if config.shard_count > 0 && config.shard_stripe_size == 0 {
            return Err(MgrError::BadRequest(
                "shard_stripe_size must be non-zero for a sharded tenant".to_owned(),
            ));
        }
        let mut inner = self.lock().await?;
        match config.mode {
            LocationConfigMode::Detached => {
                if let Some(tenant) = inner.tenants.get_mut(&id) {
                    if let Some(storage) = tenant.storage.take() {
                        storage.shutdown(false).await;
                    }
                    let path = self.tenants_path.clone();
                    blocking(move || persistence::remove_tenant(&path, &id)).await?;
                    inner.tenants.remove(&id);
                    tracing::info!(tenant_id = %id, "detached tenant");
                }
                return Ok(LocationConfigResponse {
                    shards: Vec::new(),
                    stripe_size: None,
                });
            }
            LocationConfigMode::Secondary => {
                return Err(MgrError::BadRequest(
                    "location mode Secondary is not supported yet".to_owned(),
                ))
            }
            LocationConfigMode::AttachedSingle
            | LocationConfigMode::AttachedMulti
            | LocationConfigMode::AttachedStale => {}
        }
        let generation = config.generation.ok_or_else(|| {
            MgrError::BadRequest(format!("mode {:?} requires a generation", config.mode))
        })?;
        if config.secondary_conf.is_some() {
            return Err(MgrError::BadRequest(
                "secondary_conf is only valid in Secondary mode".to_owned(),
            ));
        }
        if let Some(existing) = inner.tenants.get(&id) {
            if generation < existing.location.generation {
                return Err(MgrError::BadRequest(format!(
                    "generation {generation} is less than existing {}",
                    existing.location.generation
                )));
            }
        }
        let location = PersistedLocation {
            mode: config.mode,
            generation,
            shard_number: config.shard_number,
            shard_count: config.shard_count,
            shard_stripe_size: config.shard_stripe_size,
            tenant_conf: config.tenant_conf,
        };
        self.persist_location(id, location.clone()).await?;
        match inner.tenants.get_mut(&id) {
            Some(tenant) => {
                let new_generation = tenant.location.generation != location.generation;
                tenant.location = location;
                match &tenant.storage {
                    // Layer files carry the generation that wrote them, so a
                    // new generation means restarting the storage.
                    Some(storage) if new_generation => {
                        storage.shutdown(true).await;
                        tenant.storage = None;
                        self.start_storage(tenant).await;
                    }
                    Some(storage) => storage.set_conf(
                        self.conf
                            .default_tenant_conf
                            .apply(&tenant.location.tenant_conf),
                    ),
                    None if tenant.broken.is_none() => self.start_storage(tenant).await,
                    None => {}
                }
            }
            None => {
                let tenant = self.start_new_tenant(id, location).await;
                inner.tenants.insert(id, tenant);
            }
        }
        tracing::info!(tenant_id = %id, generation, mode = ?config.mode, "location configured");
        Ok(LocationConfigResponse {
            shards: vec![TenantShardLocation {
                shard_id: id,
                node_id: self.conf.id,
            }],
            stripe_size: (config.shard_count > 1).then_some(config.shard_stripe_size),
        })
    }

    pub async fn delete_tenant(&self, id: TenantShardId) -> Result<(), MgrError> {
        let mut inner = self.lock().await?;
        let tenant = inner
            .tenants
            .get_mut(&id)
            .ok_or(MgrError::TenantNotFound(id))?;
        if let Some(storage) = tenant.storage.take() {
            storage.shutdown(false).await;
        }
        let path = self.tenants_path.clone();
        blocking(move || persistence::remove_tenant(&path, &id)).await?;
        inner.tenants.remove(&id);
        tracing::info!(tenant_id = %id, "deleted tenant");
        Ok(())
    }

    fn active_tenant(inner: &Inner, id: TenantShardId) -> Result<&Tenant, MgrError> {
        let tenant = inner.tenants.get(&id).ok_or(MgrError::TenantNotFound(id))?;
        match &tenant.broken {
            Some(reason) => Err(MgrError::Broken(id, reason.clone())),
            None => Ok(tenant),
        }
    }

    fn storage_of(tenant: &Tenant) -> Result<&Arc<TenantStorage>, MgrError> {
        tenant.storage.as_ref().ok_or(MgrError::ShuttingDown)
    }

    /// The live timeline, for data-path callers; the manager's lock is held
    /// only for the lookup.
    pub async fn get_timeline(
        &self,
        id: TenantShardId,
        timeline_id: TimelineId,
    ) -> Result<Arc<Timeline>, MgrError> {
        let inner = self.lock().await?;
        let tenant = Self::active_tenant(&inner, id)?;
        Self::storage_of(tenant)?
            .get(timeline_id)
            .ok_or(MgrError::TimelineNotFound(id, timeline_id))
    }

    /// The tenant's storage (GC needs the whole tenant for branch points).
    pub async fn get_storage(&self, id: TenantShardId) -> Result<Arc<TenantStorage>, MgrError> {
        let inner = self.lock().await?;
        let tenant = Self::active_tenant(&inner, id)?;
        Ok(Arc::clone(Self::storage_of(tenant)?))
    }

    pub async fn list_timelines(&self, id: TenantShardId) -> Result<Vec<TimelineInfo>, MgrError> {
        let inner = self.lock().await?;
        let tenant = Self::active_tenant(&inner, id)?;
        let mut out = Vec::with_capacity(tenant.timelines.len());
        for meta in tenant.timelines.values() {
            out.push(tenant.timeline_info(meta).await);
        }
        Ok(out)
    }

    pub async fn timeline(
        &self,
        id: TenantShardId,
        timeline_id: TimelineId,
    ) -> Result<TimelineInfo, MgrError> {
        let inner = self.lock().await?;
        let tenant = Self::active_tenant(&inner, id)?;
        let meta = tenant
            .timelines
            .get(&timeline_id)
            .ok_or(MgrError::TimelineNotFound(id, timeline_id))?;
        Ok(tenant.timeline_info(meta).await)
    }

    /// `PUT` / `DELETE .../wal_source`: stores the timeline's WAL source
    /// (durably, before the receiver starts) and (re)starts or stops its
    /// walreceiver.
    pub async fn set_wal_source(
        &self,
        id: TenantShardId,
        timeline_id: TimelineId,
        source: Option<WalSourceConfig>,
    ) -> Result<TimelineInfo, MgrError> {
        if let Some(s) = &source {
            crate::walreceiver::validate_source(s)
                .map_err(|e| MgrError::BadRequest(format!("invalid wal_source: {e}")))?;
        }
        let mut inner = self.lock().await?;
        let tenant = Self::active_tenant(&inner, id)?;
        let meta = tenant
            .timelines
            .get(&timeline_id)
            .ok_or(MgrError::TimelineNotFound(id, timeline_id))?;
        let tl = Self::storage_of(tenant)?
            .get(timeline_id)
            .ok_or(MgrError::TimelineNotFound(id, timeline_id))?;
        let mut meta = meta.clone();
        if meta.wal_source != source {
            meta.wal_source = source.clone();
            let path = self.tenants_path.clone();
            let to_write = meta.clone();
            blocking(move || persistence::write_timeline(&path, &id, &to_write)).await?;
        }
        tl.set_wal_source(source)
            .await
            .map_err(|e| MgrError::BadRequest(format!("cannot follow the WAL source: {e}")))?;
        let tenant = inner
            .tenants
            .get_mut(&id)
            .ok_or(MgrError::TenantNotFound(id))?;
        tenant.timelines.insert(timeline_id, meta.clone());
        Ok(tenant.timeline_info(&meta).await)
    }

    /// `POST /v1/tenant/:id/timeline`: idempotent for identical parameters.
    pub async fn create_timeline(
        &self,
        id: TenantShardId,
        request: TimelineCreateRequest,
    ) -> Result<TimelineInfo, MgrError> {
        let timeline_id = request.new_timeline_id;
        // A branch LSN the ancestor has not reached yet is waited for before
        // taking the manager's lock: the writes it waits for must get through.
        if let TimelineCreateRequestMode::Branch {
            ancestor_timeline_id,
            ancestor_start_lsn: Some(lsn),
            ..
        } = &request.mode
        {
            if let Ok(ancestor) = self.get_timeline(id, *ancestor_timeline_id).await {
                let timeout = self.resources.settings.wait_lsn_timeout;
                ancestor.wait_lsn(lsn.align(), timeout).await.map_err(|e| {
                    MgrError::NotAcceptable(format!(
                        "invalid branch start lsn: waiting for the branch LSN: {e}"
                    ))
                })?;
            }
        }
        let mut inner = self.lock().await?;
        let tenant = Self::active_tenant(&inner, id)?;
        let creation = match request.mode {
            TimelineCreateRequestMode::Bootstrap {
                existing_initdb_timeline_id: Some(_),
                ..
            } => {
                return Err(MgrError::BadRequest(
                    "existing_initdb_timeline_id is not supported yet".to_owned(),
                ))
            }
            TimelineCreateRequestMode::Bootstrap { pg_version, .. } => CreationParams::Bootstrap {
                pg_version: supported_version(pg_version)?,
            },
            TimelineCreateRequestMode::ImportFromPostgres {
                import_from_postgres,
                pg_version,
            } => {
                crate::walreceiver::validate_source(&import_from_postgres).map_err(|e| {
                    MgrError::BadRequest(format!("invalid import_from_postgres: {e}"))
                })?;
                CreationParams::ImportFromPostgres {
                    pg_version: supported_version(pg_version)?,
                    source: import_from_postgres,
                }
            }
            TimelineCreateRequestMode::Branch {
                ancestor_timeline_id,
                ancestor_start_lsn,
                ..
            } => CreationParams::Branch {
                ancestor_timeline_id,
                ancestor_start_lsn,
            },
            TimelineCreateRequestMode::ImportPgdata { .. } => {
                return Err(MgrError::BadRequest(
                    "import_pgdata timeline creation is not supported".to_owned(),
                ))
            }
        };

        if let Some(existing) = tenant.timelines.get(&timeline_id) {
            return if existing.creation == creation {
                Ok(tenant.timeline_info(existing).await)
            } else {
                Err(MgrError::Conflict(format!(
                    "timeline {timeline_id} already exists with different creation parameters"
                )))
            };
        }

        let storage = Arc::clone(Self::storage_of(tenant)?);
        if let CreationParams::ImportFromPostgres { pg_version, source } = &creation {
            // A base backup can take long: the manager is not locked
            // meanwhile (the storage refuses a second timeline of this id).
            drop(inner);
            return self
                .create_imported(
                    id,
                    timeline_id,
                    *pg_version,
                    source,
                    storage,
                    creation.clone(),
                )
                .await;
        }
        let meta = match &creation {
            CreationParams::Bootstrap { pg_version } => {
                let mut meta =
                    TimelineMetadata::new(timeline_id, None, *pg_version, creation.clone());
                let (tl, summary) = self.bootstrap(&storage, timeline_id).await?;
                meta.initdb_lsn = summary.lsn;
                meta.disk_consistent_lsn = tl.get_disk_consistent_lsn();
                meta
            }
            CreationParams::ImportFromPostgres { .. } => {
                return Err(MgrError::BadRequest("import handled above".to_owned()))
            }
            CreationParams::Branch {
                ancestor_timeline_id,
                ancestor_start_lsn,
            } => {
                let ancestor_meta = tenant
                    .timelines
                    .get(ancestor_timeline_id)
                    .ok_or(MgrError::AncestorNotFound(id, *ancestor_timeline_id))?;
                let ancestor = storage
                    .get(*ancestor_timeline_id)
                    .ok_or(MgrError::AncestorNotFound(id, *ancestor_timeline_id))?;
                let lsn = branch_lsn(ancestor_meta, &ancestor, *ancestor_start_lsn)?;
                let pg_version = ancestor_meta.pg_version;
                storage
                    .branch_timeline(timeline_id, *ancestor_timeline_id, Some(lsn))
                    .await
                    .map_err(|e| match e {
                        e @ (StorageError::BranchBelowGcCutoff { .. }
                        | StorageError::WaitLsn(_)) => {
                            MgrError::NotAcceptable(format!("invalid branch start lsn: {e}"))
                        }
                        other => MgrError::Storage(other),
                    })?;
                TimelineMetadata::new(
                    timeline_id,
                    Some((*ancestor_timeline_id, lsn)),
                    pg_version,
                    creation.clone(),
                )
            }
        };
        let path = self.tenants_path.clone();
        let to_write = meta.clone();
        let written = blocking(move || persistence::write_timeline(&path, &id, &to_write)).await;
        if let Err(e) = written {
            // Not acknowledged: take the half-created timeline away again.
            if let Err(cleanup) = storage.delete_timeline(timeline_id).await {
                tracing::warn!(%timeline_id, "cannot remove unfinished timeline: {cleanup}");
            }
            return Err(e);
        }
        let tenant = inner
            .tenants
            .get_mut(&id)
            .ok_or(MgrError::TenantNotFound(id))?;
        tenant.timelines.insert(timeline_id, meta.clone());
        tracing::info!(tenant_id = %id, %timeline_id, "created timeline");
        Ok(tenant.timeline_info(&meta).await)
    }

    /// Import from a running Postgres (see [`crate::import_postgres`]), then
    /// the timeline follows that server through the same slot. Runs without
    /// the manager's lock; it is taken again to record the timeline.
    async fn create_imported(
        &self,
        id: TenantShardId,
        timeline_id: TimelineId,
        pg_version: u32,
        source: &WalSourceConfig,
        storage: Arc<TenantStorage>,
        creation: CreationParams,
    ) -> Result<TimelineInfo, MgrError> {
        let scratch = std::env::temp_dir();
        let imported = crate::import_postgres::import_from_postgres(
            &storage,
            timeline_id,
            pg_version,
            source,
            &scratch,
        )
        .await;
        let cleanup = |storage: Arc<TenantStorage>| async move {
            if storage.get(timeline_id).is_some() {
                if let Err(e) = storage.delete_timeline(timeline_id).await {
                    tracing::warn!(%timeline_id, "cannot remove unfinished timeline: {e}");
                }
            }
        };
        let (tl, import) = match imported {
            // Another request is creating this timeline: leave it alone.
            Err(e @ ImportError::Storage(StorageError::TimelineExists(_))) => {
                return Err(MgrError::Conflict(e.to_string()))
            }
            Err(e) => {
                cleanup(Arc::clone(&storage)).await;
                return Err(MgrError::Import(timeline_id, e.to_string()));
            }
            Ok(done) => done,
        };
        if let Err(e) = tl.freeze_and_flush().await {
            cleanup(Arc::clone(&storage)).await;
            return Err(MgrError::Import(
                timeline_id,
                format!("flushing the import: {e}"),
            ));
        }
        let mut meta = TimelineMetadata::new(timeline_id, None, pg_version, creation);
        meta.initdb_lsn = import.start_lsn;
        meta.disk_consistent_lsn = tl.get_disk_consistent_lsn();
        meta.min_readable_lsn = import.end_lsn;
        meta.wal_source = Some(source.clone());
        tl.set_min_readable_lsn(import.end_lsn);

        let mut inner = self.lock().await?;
        if !inner.tenants.contains_key(&id) {
            cleanup(storage).await;
            return Err(MgrError::TenantNotFound(id));
        }
        let path = self.tenants_path.clone();
        let to_write = meta.clone();
        if let Err(e) = blocking(move || persistence::write_timeline(&path, &id, &to_write)).await {
            cleanup(storage).await;
            return Err(e);
        }
        if let Err(e) = tl.set_wal_source(Some(source.clone())).await {
            tracing::error!(%timeline_id, "cannot start the walreceiver: {e}");
        }
        tracing::info!(
            tenant_id = %id,
            %timeline_id,
            start_lsn = %import.start_lsn,
            end_lsn = %import.end_lsn,
            pages = import.summary.relation_pages,
            "imported timeline from a running Postgres"
        );
        let tenant = inner
            .tenants
            .get_mut(&id)
            .ok_or(MgrError::TenantNotFound(id))?;
        tenant.timelines.insert(timeline_id, meta.clone());
        Ok(tenant.timeline_info(&meta).await)
    }

    /// `initdb` from `pg_distrib_dir`, the data directory imported as the
    /// timeline's first image, flushed to disk before the creation is
    /// acknowledged. The scratch directory is in the system's temporary
    /// directory, where initdb's `postgres` user can reach it when we run as
    /// root.
    async fn bootstrap(
        &self,
        storage: &TenantStorage,
        timeline_id: TimelineId,
    ) -> Result<(Arc<Timeline>, import_datadir::ImportSummary), MgrError> {
        let opts = import_datadir::InitdbOptions::default();
        let scratch = std::env::temp_dir();
        let imported = import_datadir::bootstrap_timeline(
            storage,
            timeline_id,
            self.conf.pg_distrib_dir.as_std_path(),
            &scratch,
            &opts,
        )
        .await
        .map_err(|e| e.to_string());
        let result = match imported {
            Ok((tl, summary)) => match tl.freeze_and_flush().await {
                Ok(()) => Ok((tl, summary)),
                Err(e) => Err(format!("flushing the import: {e}")),
            },
            Err(e) => Err(e),
        };
        let (tl, summary) = match result {
            Ok(done) => done,
            Err(e) => {
                // Not acknowledged: take the half-created timeline away.
                if storage.get(timeline_id).is_some() {
                    if let Err(cleanup) = storage.delete_timeline(timeline_id).await {
                        tracing::warn!(%timeline_id, "cannot remove unfinished timeline: {cleanup}");
                    }
                }
                return Err(MgrError::Import(timeline_id, e));
            }
        };
        tracing::info!(
            %timeline_id,
            lsn = %summary.lsn,
            databases = summary.databases,
            relation_forks = summary.relation_forks,
            pages = summary.relation_pages,
            "bootstrapped timeline from initdb"
        );
        Ok((tl, summary))
    }

    /// `DELETE /v1/tenant/:id/timeline/:timeline_id`.
    pub async fn delete_timeline(
        &self,
        id: TenantShardId,
        timeline_id: TimelineId,
    ) -> Result<(), MgrError> {
        let mut inner = self.lock().await?;
        let Some(tenant) = inner.tenants.get(&id) else {
            return Err(MgrError::PreconditionFailed(format!(
                "Requested tenant is missing: {id}"
            )));
        };
        if !tenant.timelines.contains_key(&timeline_id) {
            return Err(MgrError::TimelineNotFound(id, timeline_id));
        }
        let children = tenant.children_of(timeline_id);
        if !children.is_empty() {
            return Err(MgrError::PreconditionFailed(format!(
                "timeline {timeline_id} has child timelines: {children:?}"
            )));
        }
        match &tenant.storage {
            Some(storage) => storage.delete_timeline(timeline_id).await?,
            None => {
                let path = self.tenants_path.clone();
                blocking(move || persistence::remove_timeline(&path, &id, &timeline_id)).await?;
            }
        }
        if let Some(tenant) = inner.tenants.get_mut(&id) {
            tenant.timelines.remove(&timeline_id);
        }
        tracing::info!(tenant_id = %id, %timeline_id, "deleted timeline");
        Ok(())
    }
}

/// `pg_version` of a create request (default 15), if this build supports it.
fn supported_version(pg_version: Option<u32>) -> Result<u32, MgrError> {
    let v = pg_version.unwrap_or(SUPPORTED_PG_VERSION);
    if v != SUPPORTED_PG_VERSION {
        return Err(MgrError::BadRequest(format!(
            "pg_version {v} is not supported (supported: {SUPPORTED_PG_VERSION})"
        )));
    }
    Ok(v)
}

/// The LSN a new branch of `ancestor` starts at: its last record LSN by
/// default. An LSN below the ancestor's own branch point or GC cutoff is
/// refused here; one above its last record LSN is waited for (up to
/// `wait_lsn_timeout`) by the storage, as WAL may still be arriving.
fn branch_lsn(
    meta: &TimelineMetadata,
    ancestor: &Timeline,
    requested: Option<Lsn>,
) -> Result<Lsn, MgrError> {
    let Some(requested) = requested else {
        return Ok(ancestor.get_last_record_lsn());
    };
    let lsn = requested.align();
    if lsn < meta.ancestor_lsn {
        return Err(MgrError::NotAcceptable(format!(
            "invalid branch start lsn {lsn}: below the ancestor's own branch point {}",
            meta.ancestor_lsn
        )));
    }
    let cutoff = ancestor.get_gc_cutoff_lsn();
    if lsn < cutoff {
        return Err(MgrError::NotAcceptable(format!(
            "invalid branch start lsn {lsn}: below the GC cutoff {cutoff}"
        )));
    }
    let readable = ancestor.min_readable_lsn();
    if lsn < readable {
        return Err(MgrError::NotAcceptable(format!(
            "invalid branch start lsn {lsn}: below the ancestor's minimum readable LSN {readable}"
        )));
    }
    Ok(lsn)
}
