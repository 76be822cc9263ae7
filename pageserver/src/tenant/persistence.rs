//! On-disk layout of a tenant and its timelines, under `<workdir>/tenants/`:
//!
//! ```text
//! tenants/<tenant_shard_id>/config-v1                         location (TOML)
//! tenants/<tenant_shard_id>/timelines/<timeline_id>/metadata.json
//! ```
//!
//! Every file is replaced atomically (`utils::crashsafe::overwrite`), new
//! directories are fsynced into their parents, and deletions rename first, so
//! after a crash each tenant and timeline is either fully there or recognisably
//! garbage, which [`load_tenants`] removes. A file that exists but cannot be
//! parsed is not guessed at: the tenant is loaded as broken, naming the file.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use pageserver_api::models::{LocationConfigMode, WalSourceConfig};
use pageserver_api::tenant_config::TenantConfig;
use serde::{Deserialize, Serialize};
use utils::crashsafe;
use utils::id::TimelineId;
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

use super::Tenant;

pub const LOCATION_CONFIG_FILE: &str = "config-v1";
pub const TIMELINES_DIR: &str = "timelines";
pub const TIMELINE_METADATA_FILE: &str = "metadata.json";
const METADATA_FORMAT_VERSION: u32 = 1;

/// `config-v1`: how this node holds the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedLocation {
    pub mode: LocationConfigMode,
    pub generation: u32,
    #[serde(default)]
    pub shard_number: u8,
    #[serde(default)]
    pub shard_count: u8,
    #[serde(default)]
    pub shard_stripe_size: u32,
    #[serde(default)]
    pub tenant_conf: TenantConfig,
}

/// How a timeline was created; a repeated create with the same parameters is
/// an idempotent success, with different ones a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CreationParams {
    Bootstrap {
        pg_version: u32,
    },
    Branch {
        ancestor_timeline_id: TimelineId,
        ancestor_start_lsn: Option<Lsn>,
    },
    /// A base backup of a running Postgres (which the timeline follows).
    ImportFromPostgres {
        pg_version: u32,
        source: WalSourceConfig,
    },
}

/// `metadata.json` of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineMetadata {
    pub format_version: u32,
    pub timeline_id: TimelineId,
    pub ancestor_timeline_id: Option<TimelineId>,
    pub ancestor_lsn: Lsn,
    pub pg_version: u32,
    pub initdb_lsn: Lsn,
    pub disk_consistent_lsn: Lsn,
    pub prev_record_lsn: Option<Lsn>,
    pub latest_gc_cutoff_lsn: Lsn,
    pub creation: CreationParams,
    /// The LSN from which reads are consistent: the end of the base backup
    /// for a timeline imported from a running Postgres, else 0.
    #[serde(default)]
    pub min_readable_lsn: Lsn,
    /// The primary this timeline follows (`PUT .../wal_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_source: Option<WalSourceConfig>,
}

impl TimelineMetadata {
    pub fn new(
        timeline_id: TimelineId,
        ancestor: Option<(TimelineId, Lsn)>,
        pg_version: u32,
        creation: CreationParams,
    ) -> Self {
        let (ancestor_timeline_id, ancestor_lsn) = match ancestor {
            Some((id, lsn)) => (Some(id), lsn),
            None => (None, Lsn::INVALID),
        };
        Self {
            format_version: METADATA_FORMAT_VERSION,
            timeline_id,
            ancestor_timeline_id,
            ancestor_lsn,
            pg_version,
            initdb_lsn: ancestor_lsn,
            disk_consistent_lsn: ancestor_lsn,
            prev_record_lsn: None,
            latest_gc_cutoff_lsn: ancestor_lsn,
            creation,
            min_readable_lsn: Lsn::INVALID,
            wal_source: None,
        }
    }

    /// End of the last record the timeline holds. Until WAL ingest exists,
    /// everything a timeline holds is on local disk.
    pub fn last_record_lsn(&self) -> Lsn {
        self.disk_consistent_lsn
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
}

fn io_err(op: &'static str, path: &Utf8Path) -> impl FnOnce(std::io::Error) -> PersistenceError {
    let path = path.to_owned();
    move |source| PersistenceError::Io { op, path, source }
}

pub fn tenant_dir(tenants: &Utf8Path, id: &TenantShardId) -> Utf8PathBuf {
    tenants.join(id.to_string())
}

pub fn timeline_dir(tenants: &Utf8Path, id: &TenantShardId, timeline: &TimelineId) -> Utf8PathBuf {
    tenant_dir(tenants, id)
        .join(TIMELINES_DIR)
        .join(timeline.to_string())
}

/// Creates or updates a tenant's directory and location file.
pub fn write_location(
    tenants: &Utf8Path,
    id: &TenantShardId,
    location: &PersistedLocation,
) -> Result<(), PersistenceError> {
    let dir = tenant_dir(tenants, id);
    let text =
        toml_edit::ser::to_string_pretty(location).map_err(|e| PersistenceError::Encode {
            what: format!("location config of tenant {id}"),
            message: e.to_string(),
        })?;
    let timelines = dir.join(TIMELINES_DIR);
    if !timelines.exists() {
        crashsafe::create_dir_durable(&timelines).map_err(io_err("create", &timelines))?;
    }
    let path = dir.join(LOCATION_CONFIG_FILE);
    crashsafe::overwrite(&path, text.as_bytes()).map_err(io_err("write", &path))
}

pub fn write_timeline(
    tenants: &Utf8Path,
    id: &TenantShardId,
    meta: &TimelineMetadata,
) -> Result<(), PersistenceError> {
    let dir = timeline_dir(tenants, id, &meta.timeline_id);
    if !dir.exists() {
        crashsafe::create_dir_durable(&dir).map_err(io_err("create", &dir))?;
    }
    let bytes = serde_json::to_vec_pretty(meta).map_err(|e| PersistenceError::Encode {
        what: format!("metadata of timeline {}", meta.timeline_id),
        message: e.to_string(),
    })?;
    let path = dir.join(TIMELINE_METADATA_FILE);
    crashsafe::overwrite(&path, &bytes).map_err(io_err("write", &path))
}

pub fn remove_tenant(tenants: &Utf8Path, id: &TenantShardId) -> Result<(), PersistenceError> {
    let dir = tenant_dir(tenants, id);
    crashsafe::remove_dir_durable(&dir).map_err(io_err("remove", &dir))
}

pub fn remove_timeline(
    tenants: &Utf8Path,
    id: &TenantShardId,
    timeline: &TimelineId,
) -> Result<(), PersistenceError> {
    let dir = timeline_dir(tenants, id, timeline);
    crashsafe::remove_dir_durable(&dir).map_err(io_err("remove", &dir))
}

/// Reads every tenant under `tenants`, removing leftovers of interrupted
/// writes and deletions first. Unreadable tenants come back broken.
pub fn load_tenants(
    tenants: &Utf8Path,
) -> Result<BTreeMap<TenantShardId, Tenant>, PersistenceError> {
    if !tenants.exists() {
        crashsafe::create_dir_durable(tenants).map_err(io_err("create", tenants))?;
    }
    for removed in crashsafe::remove_leftovers(tenants).map_err(io_err("clean", tenants))? {
        tracing::info!("removed leftover of an interrupted operation: {removed}");
    }
    let mut result = BTreeMap::new();
    for entry in tenants.read_dir_utf8().map_err(io_err("list", tenants))? {
        let entry = entry.map_err(io_err("list", tenants))?;
        let Ok(id) = entry.file_name().parse::<TenantShardId>() else {
            tracing::warn!("ignoring unexpected entry {} in {tenants}", entry.path());
            continue;
        };
        let tenant = load_tenant(tenants, id).unwrap_or_else(|reason| {
            tracing::error!(tenant_id = %id, "tenant is broken: {reason}");
            Tenant {
                id,
                location: PersistedLocation {
                    mode: LocationConfigMode::AttachedSingle,
                    generation: 0,
                    shard_number: id.shard_number.0,
                    shard_count: id.shard_count.0,
                    shard_stripe_size: 0,
                    tenant_conf: TenantConfig::default(),
                },
                timelines: BTreeMap::new(),
                broken: Some(reason),
                storage: None,
            }
        });
        result.insert(id, tenant);
    }
    Ok(result)
}

fn load_tenant(tenants: &Utf8Path, id: TenantShardId) -> Result<Tenant, String> {
    let dir = tenant_dir(tenants, &id);
    let location_path = dir.join(LOCATION_CONFIG_FILE);
    let text = std::fs::read_to_string(&location_path)
        .map_err(|e| format!("cannot read {location_path}: {e}"))?;
    let location: PersistedLocation = toml_edit::de::from_str(&text)
        .map_err(|e| format!("corrupt {location_path}: {}", e.message().trim()))?;

    let timelines_dir = dir.join(TIMELINES_DIR);
    let mut timelines = BTreeMap::new();
    if timelines_dir.exists() {
        let removed = crashsafe::remove_leftovers(&timelines_dir)
            .map_err(|e| format!("cannot clean {timelines_dir}: {e}"))?;
        for path in removed {
            tracing::info!("removed leftover of an interrupted operation: {path}");
        }
        let entries = timelines_dir
            .read_dir_utf8()
            .map_err(|e| format!("cannot list {timelines_dir}: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {timelines_dir}: {e}"))?;
            let Ok(timeline_id) = entry.file_name().parse::<TimelineId>() else {
                tracing::warn!("ignoring unexpected entry {}", entry.path());
                continue;
            };
            let meta_path = entry.path().join(TIMELINE_METADATA_FILE);
            let meta = match std::fs::read(&meta_path) {
                Ok(bytes) => serde_json::from_slice::<TimelineMetadata>(&bytes)
                    .map_err(|e| format!("corrupt {meta_path}: {e}"))?,
                // A directory without metadata is a creation that never
                // completed (the API did not acknowledge it): drop it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!("removing incomplete timeline directory {}", entry.path());
                    crashsafe::remove_dir_durable(entry.path())
                        .map_err(|e| format!("cannot remove {}: {e}", entry.path()))?;
                    continue;
                }
                Err(e) => return Err(format!("cannot read {meta_path}: {e}")),
            };
            if meta.timeline_id != timeline_id || meta.format_version != METADATA_FORMAT_VERSION {
                return Err(format!(
                    "{meta_path}: names timeline {} format {} (expected {timeline_id}, format {METADATA_FORMAT_VERSION})",
                    meta.timeline_id, meta.format_version
                ));
            }
            timelines.insert(timeline_id, meta);
        }
    }
    Ok(Tenant {
        id,
        location,
        timelines,
        broken: None,
        storage: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants_dir() -> (tempfile::TempDir, Utf8PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(tmp.path().join("tenants")).unwrap();
        (tmp, path)
    }

    #[test]
    fn roundtrip_and_broken_detection() {
        let (_tmp, tenants) = tenants_dir();
        std::fs::create_dir_all(&tenants).unwrap();
        let id: TenantShardId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let tenant_conf = TenantConfig {
            gc_period: Some(std::time::Duration::from_secs(90)),
            ..Default::default()
        };
        let location = PersistedLocation {
            mode: LocationConfigMode::AttachedSingle,
            generation: 4,
            shard_number: 0,
            shard_count: 0,
            shard_stripe_size: 0,
            tenant_conf,
        };
        write_location(&tenants, &id, &location).unwrap();
        let tl = TimelineId::generate();
        let meta =
            TimelineMetadata::new(tl, None, 15, CreationParams::Bootstrap { pg_version: 15 });
        write_timeline(&tenants, &id, &meta).unwrap();
        // An unacknowledged creation: directory without metadata.
        std::fs::create_dir_all(timeline_dir(&tenants, &id, &TimelineId::generate())).unwrap();

        let loaded = load_tenants(&tenants).unwrap();
        let t = &loaded[&id];
        assert!(t.broken.is_none());
        assert_eq!(t.location, location);
        assert_eq!(t.timelines.len(), 1);
        assert_eq!(t.timelines[&tl], meta);

        std::fs::write(
            tenant_dir(&tenants, &id).join(LOCATION_CONFIG_FILE),
            "mode = 7",
        )
        .unwrap();
        let loaded = load_tenants(&tenants).unwrap();
        let reason = loaded[&id].broken.clone().unwrap();
        assert!(reason.contains(LOCATION_CONFIG_FILE), "{reason}");
    }
}
