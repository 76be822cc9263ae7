//! JSON models of the HTTP management API.
//!
//! Field names, enum spellings and optionality follow Neon's pageserver API
//! (see `neon-interfaces.md` §3) so that a storage controller or `neon_local`
//! can drive this server unchanged.

use serde::{Deserialize, Serialize};
use utils::id::{NodeId, TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

use crate::tenant_config::{TenantConfig, TenantConfigToml};

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub id: NodeId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocationConfigMode {
    AttachedSingle,
    AttachedMulti,
    AttachedStale,
    Secondary,
    Detached,
}

impl LocationConfigMode {
    pub fn is_attached(self) -> bool {
        matches!(
            self,
            Self::AttachedSingle | Self::AttachedMulti | Self::AttachedStale
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfigSecondary {
    pub warm: bool,
}

/// Body of `PUT /v1/tenant/:tenant_shard_id/location_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    pub mode: LocationConfigMode,
    #[serde(default)]
    pub generation: Option<u32>,
    #[serde(default)]
    pub secondary_conf: Option<LocationConfigSecondary>,
    #[serde(default)]
    pub shard_number: u8,
    #[serde(default)]
    pub shard_count: u8,
    #[serde(default)]
    pub shard_stripe_size: u32,
    pub tenant_conf: TenantConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantShardLocation {
    pub shard_id: TenantShardId,
    pub node_id: NodeId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationConfigResponse {
    pub shards: Vec<TenantShardLocation>,
    pub stripe_size: Option<u32>,
}

/// `{"slug": ..., "data": ...}` lifecycle state of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "slug", content = "data")]
pub enum TenantState {
    Attaching,
    Activating(ActivatingFrom),
    Active,
    Stopping {},
    Broken { reason: String, backtrace: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivatingFrom {
    Attaching,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "slug", content = "data", rename_all = "snake_case")]
pub enum TenantAttachmentStatus {
    Maybe,
    Attached,
    Failed { reason: String },
}

/// An element of `GET /v1/tenant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    pub id: TenantShardId,
    pub state: TenantState,
    pub current_physical_size: Option<u64>,
    pub attachment_status: TenantAttachmentStatus,
    pub generation: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_blocking: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRedoManagerProcessStatus {
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRedoManagerStatus {
    pub last_redo_at: Option<String>,
    pub process: Option<WalRedoManagerProcessStatus>,
}

/// `GET /v1/tenant/:tenant_shard_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDetails {
    #[serde(flatten)]
    pub tenant_info: TenantInfo,
    pub walredo: Option<WalRedoManagerStatus>,
    pub timelines: Vec<TimelineId>,
}

/// `GET /v1/tenant/:tenant_shard_id/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantConfigResponse {
    pub tenant_specific_overrides: TenantConfig,
    pub effective_config: TenantConfigToml,
}

/// `POST /v1/tenant/:tenant_shard_id/timeline`: the new id plus one of the
/// creation modes, chosen by which fields are present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineCreateRequest {
    pub new_timeline_id: TimelineId,
    #[serde(flatten)]
    pub mode: TimelineCreateRequestMode,
}

/// The creation mode is chosen by which fields are present (`ancestor_timeline_id`
/// ⇒ branch, `import_pgdata` ⇒ import, `import_from_postgres` ⇒ base backup of
/// a running Postgres, otherwise bootstrap), and then every
/// field is parsed strictly: a malformed ancestor id is an error, never a
/// silent fall-through to another mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, try_from = "RawTimelineCreateMode")]
pub enum TimelineCreateRequestMode {
    Branch {
        ancestor_timeline_id: TimelineId,
        ancestor_start_lsn: Option<Lsn>,
        /// Accepted for compatibility; a branch inherits its ancestor's version.
        pg_version: Option<u32>,
        read_only: bool,
    },
    ImportPgdata {
        import_pgdata: serde_json::Value,
    },
    /// Not in Neon's API: a base backup of a running Postgres, which the
    /// timeline then follows.
    ImportFromPostgres {
        import_from_postgres: WalSourceConfig,
        pg_version: Option<u32>,
    },
    Bootstrap {
        existing_initdb_timeline_id: Option<TimelineId>,
        pg_version: Option<u32>,
    },
}

#[derive(Deserialize)]
struct RawTimelineCreateMode {
    #[serde(default)]
    ancestor_timeline_id: Option<TimelineId>,
    #[serde(default)]
    ancestor_start_lsn: Option<Lsn>,
    #[serde(default)]
    pg_version: Option<u32>,
    #[serde(default)]
    read_only: Option<bool>,
    #[serde(default)]
    import_pgdata: Option<serde_json::Value>,
    #[serde(default)]
    existing_initdb_timeline_id: Option<TimelineId>,
    #[serde(default)]
    import_from_postgres: Option<WalSourceConfig>,
}

impl TryFrom<RawTimelineCreateMode> for TimelineCreateRequestMode {
    type Error = String;
    fn try_from(raw: RawTimelineCreateMode) -> Result<Self, Self::Error> {
        if let Some(source) = raw.import_from_postgres {
            if raw.ancestor_timeline_id.is_some()
                || raw.import_pgdata.is_some()
                || raw.existing_initdb_timeline_id.is_some()
                || raw.ancestor_start_lsn.is_some()
                || raw.read_only.is_some()
            {
                return Err(
                    "import_from_postgres takes only new_timeline_id and pg_version".to_owned(),
                );
            }
            return Ok(Self::ImportFromPostgres {
                import_from_postgres: source,
                pg_version: raw.pg_version,
            });
        }
        match (raw.ancestor_timeline_id, raw.import_pgdata) {
            (Some(_), Some(_)) => {
                Err("ancestor_timeline_id and import_pgdata are mutually exclusive".to_owned())
            }
            (Some(ancestor_timeline_id), None) => {
                if raw.existing_initdb_timeline_id.is_some() {
                    return Err("existing_initdb_timeline_id is not valid for a branch".to_owned());
                }
                Ok(Self::Branch {
                    ancestor_timeline_id,
                    ancestor_start_lsn: raw.ancestor_start_lsn,
                    pg_version: raw.pg_version,
                    read_only: raw.read_only.unwrap_or(false),
                })
            }
            (None, Some(import_pgdata)) => Ok(Self::ImportPgdata { import_pgdata }),
            (None, None) => {
                if raw.ancestor_start_lsn.is_some() || raw.read_only.is_some() {
                    return Err(
                        "ancestor_start_lsn and read_only need ancestor_timeline_id".to_owned()
                    );
                }
                Ok(Self::Bootstrap {
                    existing_initdb_timeline_id: raw.existing_initdb_timeline_id,
                    pg_version: raw.pg_version,
                })
            }
        }
    }
}

/// A timeline's lifecycle state: `"Active"` or `{"Broken": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimelineState {
    Loading,
    Active,
    Stopping,
    Broken { reason: String, backtrace: String },
}

/// `GET /v1/tenant/:tenant_shard_id/timeline/:timeline_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineInfo {
    pub tenant_id: TenantShardId,
    pub timeline_id: TimelineId,
    pub ancestor_timeline_id: Option<TimelineId>,
    pub ancestor_lsn: Option<Lsn>,
    pub last_record_lsn: Lsn,
    pub prev_record_lsn: Option<Lsn>,
    pub applied_gc_cutoff_lsn: Lsn,
    pub min_readable_lsn: Lsn,
    pub disk_consistent_lsn: Lsn,
    pub remote_consistent_lsn: Lsn,
    pub remote_consistent_lsn_visible: Lsn,
    pub initdb_lsn: Lsn,
    pub current_logical_size: u64,
    pub current_logical_size_is_accurate: bool,
    pub directory_entries_counts: Vec<u64>,
    pub current_physical_size: Option<u64>,
    pub current_logical_size_non_incremental: Option<u64>,
    pub pitr_history_size: u64,
    pub within_ancestor_pitr: bool,
    pub timeline_dir_layer_file_size_sum: Option<u64>,
    pub wal_source_connstr: Option<String>,
    pub last_received_msg_lsn: Option<Lsn>,
    pub last_received_msg_ts: Option<u128>,
    pub pg_version: u32,
    pub state: TimelineState,
    pub walreceiver_status: String,
    pub is_archived: Option<bool>,
    pub rel_size_migration: Option<String>,
    pub rel_size_migrated_at: Option<Lsn>,
    pub is_invisible: Option<bool>,
}

/// Body of `PUT /v1/tenant/:t/timeline/:tl/wal_source`: the primary (or any
/// server speaking the physical replication protocol) to follow, and the
/// physical replication slot to stream through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalSourceConfig {
    pub connstr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_name: Option<String>,
}

/// An element of the body of `PUT /v1/failpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailpointConfig {
    pub name: String,
    pub actions: String,
}

/// Identifies a tenant by its plain id in the legacy create response.
pub type TenantCreateResponse = TenantId;

/// Body of `PUT .../do_gc`: the horizon (bytes of WAL behind the last record
/// LSN) to use instead of the tenant's `gc_horizon`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineGcRequest {
    #[serde(default)]
    pub gc_horizon: Option<u64>,
}

/// Answer of `PUT .../do_gc`. A layer kept for several reasons counts once,
/// under the first that applies in the order cutoff, branches, leases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcResult {
    pub layers_total: u64,
    pub layers_needed_by_cutoff: u64,
    pub layers_needed_by_pitr: u64,
    pub layers_needed_by_branches: u64,
    pub layers_needed_by_leases: u64,
    pub layers_not_updated: u64,
    pub layers_removed: u64,
    /// Milliseconds.
    pub elapsed: u64,
}

/// An in-memory layer in `GET .../layer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum InMemoryLayerInfo {
    Open { lsn_start: Lsn },
    Frozen { lsn_start: Lsn, lsn_end: Lsn },
}

/// A layer file in `GET .../layer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum HistoricLayerInfo {
    Delta {
        layer_file_name: String,
        layer_file_size: u64,
        lsn_start: Lsn,
        lsn_end: Lsn,
        remote: bool,
        l0: bool,
        visible: bool,
    },
    Image {
        layer_file_name: String,
        layer_file_size: u64,
        lsn_start: Lsn,
        remote: bool,
        visible: bool,
    },
}

/// Answer of `GET /v1/tenant/:tenant_shard_id/timeline/:timeline_id/layer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMapInfo {
    pub in_memory_layers: Vec<InMemoryLayerInfo>,
    pub historic_layers: Vec<HistoricLayerInfo>,
}

/// Body of `POST .../lsn_lease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsnLeaseRequest {
    pub lsn: Lsn,
}

/// Answer of `POST .../lsn_lease`: `valid_until` in RFC 3339 with
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsnLease {
    pub valid_until: String,
}

/// One value of a dev-mode put: a page image, the storage engine's test
/// record, or a raw Postgres WAL record as ingest stores it (hex-encoded
/// bytes in each case; the last lets tests store records redo must reject).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevPutValue {
    pub key: String,
    pub lsn: Lsn,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub test_append: Option<String>,
    #[serde(default)]
    pub postgres_record: Option<String>,
    #[serde(default)]
    pub will_init: bool,
}

/// Body of the dev-mode-only `PUT .../dev/put`: values written atomically
/// as one batch, after which `commit_lsn` is the last record LSN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevPutRequest {
    pub commit_lsn: Lsn,
    #[serde(default)]
    pub values: Vec<DevPutValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_state_shapes() {
        assert_eq!(
            serde_json::to_string(&TenantState::Active).unwrap(),
            r#"{"slug":"Active"}"#
        );
        assert_eq!(
            serde_json::to_string(&TenantState::Stopping {}).unwrap(),
            r#"{"slug":"Stopping","data":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&TenantAttachmentStatus::Attached).unwrap(),
            r#"{"slug":"attached"}"#
        );
        assert_eq!(
            serde_json::to_string(&TimelineState::Active).unwrap(),
            r#""Active""#
        );
    }

    #[test]
    fn location_config_parsing() {
        let lc: LocationConfig =
            serde_json::from_str(r#"{"mode":"AttachedSingle","generation":3,"tenant_conf":{}}"#)
                .unwrap();
        assert_eq!(lc.generation, Some(3));
        assert!(serde_json::from_str::<LocationConfig>(
            r#"{"mode":"AttachedSingle","generation":3}"#
        )
        .is_err());
        assert!(serde_json::from_str::<LocationConfig>(
            r#"{"mode":"AttachedSingle","generation":3,"tenant_conf":{},"bogus":1}"#
        )
        .is_err());
    }

    #[test]
    fn timeline_create_modes() {
        let branch: TimelineCreateRequest = serde_json::from_str(
            r#"{"new_timeline_id":"11111111111111111111111111111111","ancestor_timeline_id":"22222222222222222222222222222222","ancestor_start_lsn":"0/16B5A50"}"#,
        )
        .unwrap();
        assert!(matches!(
            branch.mode,
            TimelineCreateRequestMode::Branch { .. }
        ));
        let boot: TimelineCreateRequest = serde_json::from_str(
            r#"{"new_timeline_id":"11111111111111111111111111111111","pg_version":15}"#,
        )
        .unwrap();
        assert_eq!(
            boot.mode,
            TimelineCreateRequestMode::Bootstrap {
                existing_initdb_timeline_id: None,
                pg_version: Some(15)
            }
        );
        for bad in [
            r#"{"new_timeline_id":"11111111111111111111111111111111","ancestor_timeline_id":"nope"}"#,
            r#"{"new_timeline_id":"11111111111111111111111111111111","ancestor_start_lsn":"0/10"}"#,
            r#"{"new_timeline_id":"11111111111111111111111111111111","pg_version":"x"}"#,
        ] {
            assert!(
                serde_json::from_str::<TimelineCreateRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
