//! The tenant manager: the one owner of every tenant on this node.
//!
//! All API operations on tenants and timelines go through it. A single async
//! mutex serialises modifications, so two concurrent calls on one tenant can
//! never interleave their disk writes; each modification is made durable on
//! disk before the in-memory map changes and before the caller is answered.
//! After [`TenantManager::shutdown`] every operation fails with `ShuttingDown`.

use std::collections::BTreeMap;
use std::sync::Arc;

use camino::Utf8PathBuf;
use pageserver_api::models::{
    LocationConfig, LocationConfigMode, LocationConfigResponse, TenantConfigResponse,
    TenantDetails, TenantInfo, TenantShardLocation, TimelineCreateRequest,
    TimelineCreateRequestMode, TimelineInfo,
};
use pageserver_api::tenant_config::TenantConfig;
use tokio::sync::Mutex;
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

use super::persistence::{
    self, CreationParams, PersistedLocation, PersistenceError, TimelineMetadata,
};
use super::Tenant;
use crate::config::PageServerConf;

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
    #[error(transparent)]
    Persistence(#[from] PersistenceError),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

struct Inner {
    tenants: BTreeMap<TenantShardId, Tenant>,
    shutting_down: bool,
}

pub struct TenantManager {
    conf: Arc<PageServerConf>,
    tenants_path: Utf8PathBuf,
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
    /// Loads every tenant from local disk.
    pub async fn load(conf: Arc<PageServerConf>) -> Result<Self, MgrError> {
        let tenants_path = conf.tenants_path();
        let path = tenants_path.clone();
        let tenants = blocking(move || persistence::load_tenants(&path)).await?;
        tracing::info!("loaded {} tenant(s) from {tenants_path}", tenants.len());
        Ok(Self {
            conf,
            tenants_path,
            inner: Mutex::new(Inner {
                tenants,
                shutting_down: false,
            }),
        })
    }

    async fn lock(&self) -> Result<tokio::sync::MutexGuard<'_, Inner>, MgrError> {
        let guard = self.inner.lock().await;
        if guard.shutting_down {
            return Err(MgrError::ShuttingDown);
        }
        Ok(guard)
    }

    /// Refuses every later operation; waits for the one in progress.
    pub async fn shutdown(&self) {
        self.inner.lock().await.shutting_down = true;
    }

    pub async fn list(&self) -> Result<Vec<TenantInfo>, MgrError> {
        let inner = self.lock().await?;
        Ok(inner.tenants.values().map(Tenant::info).collect())
    }

    pub async fn details(&self, id: TenantShardId) -> Result<TenantDetails, MgrError> {
        let inner = self.lock().await?;
        let tenant = inner.tenants.get(&id).ok_or(MgrError::TenantNotFound(id))?;
        Ok(TenantDetails {
            tenant_info: tenant.info(),
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
        inner.tenants.insert(
            id,
            Tenant {
                id,
                location,
                timelines: BTreeMap::new(),
                broken: None,
            },
        );
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
                if inner.tenants.contains_key(&id) {
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
            Some(tenant) => tenant.location = location,
            None => {
                inner.tenants.insert(
                    id,
                    Tenant {
                        id,
                        location,
                        timelines: BTreeMap::new(),
                        broken: None,
                    },
                );
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
        if !inner.tenants.contains_key(&id) {
            return Err(MgrError::TenantNotFound(id));
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

    pub async fn list_timelines(&self, id: TenantShardId) -> Result<Vec<TimelineInfo>, MgrError> {
        let inner = self.lock().await?;
        let tenant = Self::active_tenant(&inner, id)?;
        Ok(tenant
            .timelines
            .values()
            .map(|m| tenant.timeline_info(m))
            .collect())
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
        Ok(tenant.timeline_info(meta))
    }

    /// `POST /v1/tenant/:id/timeline`: idempotent for identical parameters.
    pub async fn create_timeline(
        &self,
        id: TenantShardId,
        request: TimelineCreateRequest,
    ) -> Result<TimelineInfo, MgrError> {
        let timeline_id = request.new_timeline_id;
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
            TimelineCreateRequestMode::Bootstrap { pg_version, .. } => {
                let pg_version = pg_version.unwrap_or(SUPPORTED_PG_VERSION);
                if pg_version != SUPPORTED_PG_VERSION {
                    return Err(MgrError::BadRequest(format!(
                        "pg_version {pg_version} is not supported (supported: {SUPPORTED_PG_VERSION})"
                    )));
                }
                CreationParams::Bootstrap { pg_version }
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
                Ok(tenant.timeline_info(existing))
            } else {
                Err(MgrError::Conflict(format!(
                    "timeline {timeline_id} already exists with different creation parameters"
                )))
            };
        }

        let meta = match &creation {
            CreationParams::Bootstrap { pg_version } => {
                TimelineMetadata::new(timeline_id, None, *pg_version, creation.clone())
            }
            CreationParams::Branch {
                ancestor_timeline_id,
                ancestor_start_lsn,
            } => {
                let ancestor = tenant
                    .timelines
                    .get(ancestor_timeline_id)
                    .ok_or(MgrError::AncestorNotFound(id, *ancestor_timeline_id))?;
                let lsn = branch_lsn(ancestor, *ancestor_start_lsn)?;
                TimelineMetadata::new(
                    timeline_id,
                    Some((*ancestor_timeline_id, lsn)),
                    ancestor.pg_version,
                    creation.clone(),
                )
            }
        };
        let path = self.tenants_path.clone();
        let to_write = meta.clone();
        blocking(move || persistence::write_timeline(&path, &id, &to_write)).await?;
        let tenant = inner
            .tenants
            .get_mut(&id)
            .ok_or(MgrError::TenantNotFound(id))?;
        tenant.timelines.insert(timeline_id, meta.clone());
        tracing::info!(tenant_id = %id, %timeline_id, "created timeline");
        Ok(tenant.timeline_info(&meta))
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
        let path = self.tenants_path.clone();
        blocking(move || persistence::remove_timeline(&path, &id, &timeline_id)).await?;
        if let Some(tenant) = inner.tenants.get_mut(&id) {
            tenant.timelines.remove(&timeline_id);
        }
        tracing::info!(tenant_id = %id, %timeline_id, "deleted timeline");
        Ok(())
    }
}

/// The LSN a new branch of `ancestor` starts at.
fn branch_lsn(ancestor: &TimelineMetadata, requested: Option<Lsn>) -> Result<Lsn, MgrError> {
    let last = ancestor.last_record_lsn();
    let Some(requested) = requested else {
        return Ok(last);
    };
    let lsn = requested.align();
    if lsn < ancestor.ancestor_lsn {
        return Err(MgrError::NotAcceptable(format!(
            "invalid branch start lsn {lsn}: below the ancestor's own branch point {}",
            ancestor.ancestor_lsn
        )));
    }
    if lsn < ancestor.latest_gc_cutoff_lsn {
        return Err(MgrError::NotAcceptable(format!(
            "invalid branch start lsn {lsn}: below the GC cutoff {}",
            ancestor.latest_gc_cutoff_lsn
        )));
    }
    if lsn > last {
        // Nothing ingests WAL yet, so waiting could not help.
        return Err(MgrError::NotAcceptable(format!(
            "invalid branch start lsn {lsn}: beyond the ancestor's last record lsn {last}"
        )));
    }
    Ok(lsn)
}
