//! Tenants and timelines as this node knows them.
//!
//! At this stage a tenant is its location (attachment mode, generation, shard
//! identity, config overrides) and a set of timelines described by their
//! metadata (ancestry, LSNs, Postgres version). The [`mgr::TenantManager`]
//! owns them all; [`persistence`] keeps them on local disk, written crash-safely
//! so that whatever the API acknowledged survives a crash or restart.

pub mod ephemeral_file;
pub mod layer_map;
pub mod mgr;
pub mod persistence;
pub mod resources;
pub mod storage;
pub mod storage_layer;
pub mod timeline;

use std::collections::BTreeMap;

use pageserver_api::models::{
    TenantAttachmentStatus, TenantInfo, TenantState, TimelineInfo, TimelineState,
};
use utils::id::TimelineId;
use utils::shard::TenantShardId;

use persistence::{PersistedLocation, TimelineMetadata};

/// One tenant shard attached to this node.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantShardId,
    pub location: PersistedLocation,
    pub timelines: BTreeMap<TimelineId, TimelineMetadata>,
    /// Why the tenant cannot be used (e.g. unreadable local metadata).
    pub broken: Option<String>,
}

impl Tenant {
    pub fn state(&self) -> TenantState {
        match &self.broken {
            Some(reason) => TenantState::Broken {
                reason: reason.clone(),
                backtrace: String::new(),
            },
            None => TenantState::Active,
        }
    }

    pub fn info(&self) -> TenantInfo {
        TenantInfo {
            id: self.id,
            state: self.state(),
            current_physical_size: Some(0),
            attachment_status: match &self.broken {
                Some(reason) => TenantAttachmentStatus::Failed {
                    reason: reason.clone(),
                },
                None => TenantAttachmentStatus::Attached,
            },
            generation: self.location.generation,
            gc_blocking: None,
        }
    }

    /// Timelines whose ancestor is `timeline_id`.
    pub fn children_of(&self, timeline_id: TimelineId) -> Vec<TimelineId> {
        self.timelines
            .values()
            .filter(|t| t.ancestor_timeline_id == Some(timeline_id))
            .map(|t| t.timeline_id)
            .collect()
    }

    pub fn timeline_info(&self, meta: &TimelineMetadata) -> TimelineInfo {
        let last_record_lsn = meta.last_record_lsn();
        TimelineInfo {
            tenant_id: self.id,
            timeline_id: meta.timeline_id,
            ancestor_timeline_id: meta.ancestor_timeline_id,
            ancestor_lsn: meta.ancestor_lsn.is_valid().then_some(meta.ancestor_lsn),
            last_record_lsn,
            prev_record_lsn: meta.prev_record_lsn,
            applied_gc_cutoff_lsn: meta.latest_gc_cutoff_lsn,
            min_readable_lsn: meta.latest_gc_cutoff_lsn,
            disk_consistent_lsn: meta.disk_consistent_lsn,
            remote_consistent_lsn: meta.disk_consistent_lsn,
            remote_consistent_lsn_visible: meta.disk_consistent_lsn,
            initdb_lsn: meta.initdb_lsn,
            current_logical_size: 0,
            current_logical_size_is_accurate: true,
            directory_entries_counts: Vec::new(),
            current_physical_size: Some(0),
            current_logical_size_non_incremental: None,
            pitr_history_size: 0,
            within_ancestor_pitr: false,
            timeline_dir_layer_file_size_sum: Some(0),
            wal_source_connstr: None,
            last_received_msg_lsn: None,
            last_received_msg_ts: None,
            pg_version: meta.pg_version,
            state: TimelineState::Active,
            walreceiver_status: "disconnected".to_owned(),
            is_archived: Some(false),
            rel_size_migration: None,
            rel_size_migrated_at: None,
            is_invisible: None,
        }
    }
}
