//! Tenants and timelines as this node knows them.
//!
//! A tenant is its location (attachment mode, generation, shard identity,
//! config overrides), the creation records of its timelines (ancestry,
//! Postgres version, how they were created: `metadata.json`) and, unless it
//! is broken, its storage engine ([`storage::TenantStorage`]) that holds the
//! live timelines and their data. The [`mgr::TenantManager`] owns them all;
//! [`persistence`] keeps the records on local disk, written crash-safely so
//! that whatever the API acknowledged survives a crash or restart.

pub mod ephemeral_file;
pub mod layer_map;
pub mod mgr;
pub mod persistence;
pub mod resources;
pub mod storage;
pub mod storage_layer;
pub mod throttle;
pub mod timeline;

use std::collections::BTreeMap;
use std::sync::Arc;

use pageserver_api::models::{
    TenantAttachmentStatus, TenantInfo, TenantState, TimelineInfo, TimelineState,
};
use utils::id::TimelineId;
use utils::shard::TenantShardId;

use persistence::{PersistedLocation, TimelineMetadata};
use storage::TenantStorage;

/// One tenant shard attached to this node.
pub struct Tenant {
    pub id: TenantShardId,
    pub location: PersistedLocation,
    pub timelines: BTreeMap<TimelineId, TimelineMetadata>,
    /// Why the tenant cannot be used (e.g. unreadable local metadata).
    pub broken: Option<String>,
    /// The live storage; `None` while loading and when broken.
    pub storage: Option<Arc<TenantStorage>>,
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

    pub async fn info(&self) -> TenantInfo {
        let mut physical = 0;
        if let Some(storage) = &self.storage {
            for tl in storage.list() {
                physical += tl.physical_size().await;
            }
        }
        TenantInfo {
            id: self.id,
            state: self.state(),
            current_physical_size: Some(physical),
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

    /// The API view of a timeline: its creation record, with the LSNs and
    /// sizes of the live timeline when the storage has it.
    pub async fn timeline_info(&self, meta: &TimelineMetadata) -> TimelineInfo {
        let live = self.storage.as_ref().and_then(|s| s.get(meta.timeline_id));
        let (last_record_lsn, prev_record_lsn, disk_consistent_lsn, gc_cutoff, physical) =
            match &live {
                Some(tl) => (
                    tl.get_last_record_lsn(),
                    tl.get_prev_record_lsn(),
                    tl.get_disk_consistent_lsn(),
                    tl.get_gc_cutoff_lsn(),
                    tl.physical_size().await,
                ),
                None => (
                    meta.last_record_lsn(),
                    meta.prev_record_lsn,
                    meta.disk_consistent_lsn,
                    meta.latest_gc_cutoff_lsn,
                    0,
                ),
            };
        let receiver = live.as_ref().and_then(|tl| tl.wal_receiver_info());
        let logical_size = match &live {
            Some(tl) => logical_size(tl).await,
            None => 0,
        };
        let state = match (&self.broken, &live) {
            (Some(reason), _) => TimelineState::Broken {
                reason: reason.clone(),
                backtrace: String::new(),
            },
            (None, Some(tl)) if tl.cancel.is_cancelled() => TimelineState::Stopping,
            _ => TimelineState::Active,
        };
        TimelineInfo {
            tenant_id: self.id,
            timeline_id: meta.timeline_id,
            ancestor_timeline_id: meta.ancestor_timeline_id,
            ancestor_lsn: meta.ancestor_lsn.is_valid().then_some(meta.ancestor_lsn),
            last_record_lsn,
            prev_record_lsn,
            applied_gc_cutoff_lsn: gc_cutoff,
            min_readable_lsn: live
                .as_ref()
                .map(|tl| tl.min_readable_lsn())
                .unwrap_or(gc_cutoff.max(meta.min_readable_lsn)),
            disk_consistent_lsn,
            // Until remote storage exists, the local disk is all there is.
            remote_consistent_lsn: disk_consistent_lsn,
            remote_consistent_lsn_visible: disk_consistent_lsn,
            initdb_lsn: meta.initdb_lsn,
            current_logical_size: logical_size,
            current_logical_size_is_accurate: true,
            directory_entries_counts: Vec::new(),
            current_physical_size: Some(physical),
            current_logical_size_non_incremental: None,
            pitr_history_size: 0,
            within_ancestor_pitr: false,
            timeline_dir_layer_file_size_sum: Some(physical),
            wal_source_connstr: receiver.as_ref().map(|r| r.0.clone()),
            last_received_msg_lsn: receiver.as_ref().and_then(|r| r.2.last_received_msg_lsn),
            last_received_msg_ts: receiver.as_ref().and_then(|r| {
                r.2.last_received_msg_ts
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_micros())
            }),
            pg_version: meta.pg_version,
            state,
            walreceiver_status: receiver
                .map(|r| r.1)
                .unwrap_or_else(|| "disconnected".to_owned()),
            is_archived: Some(false),
            rel_size_migration: None,
            rel_size_migrated_at: None,
            is_invisible: None,
        }
    }
}

/// Bytes of relation data at the timeline's last record LSN
/// (`current_logical_size`); 0 for a timeline that holds no cluster, or
/// whose directories cannot be read (logged).
async fn logical_size(tl: &timeline::Timeline) -> u64 {
    let view = crate::pgdatadir_mapping::DatadirView::new(tl, tl.get_last_record_lsn());
    match view.logical_size().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(timeline_id = %tl.timeline_id, "cannot compute the logical size: {e}");
            0
        }
    }
}
