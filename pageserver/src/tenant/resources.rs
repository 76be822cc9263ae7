//! Node-wide resources every timeline's storage shares.
//!
//! - the background-task semaphore: compaction, image creation, GC and flush
//!   of every tenant take a permit, so a node with thousands of tenants never
//!   runs more than `concurrent_background_tasks` IO-heavy jobs at once; the
//!   number of jobs waiting is exported per loop kind;
//! - the ephemeral (in-memory layer) byte budget: every put adds to a node-wide
//!   counter, every flushed layer subtracts; when the total exceeds the budget
//!   the background loops roll the larger open layers first;
//! - read-path settings (IO concurrency, wait-for-LSN timeout, request limits).
//!
//! Created once by the binary (or a test) and passed to each tenant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

pub use blockfile::Concurrency as IoConcurrency;

/// Kinds of background work, for queue-depth metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundKind {
    Flush,
    Compaction,
    ImageCreation,
    Gc,
}

impl BackgroundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackgroundKind::Flush => "flush",
            BackgroundKind::Compaction => "compaction",
            BackgroundKind::ImageCreation => "image_creation",
            BackgroundKind::Gc => "gc",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub concurrent_background_tasks: usize,
    /// 0 disables the node-wide budget.
    pub ephemeral_budget_bytes: u64,
    pub read_concurrency: IoConcurrency,
    pub wait_lsn_timeout: Duration,
    pub max_get_vectored_keys: usize,
    pub max_vectored_read_bytes: usize,
    /// Blocks (8 KiB) of the shared block cache; 0 disables it.
    pub page_cache_blocks: usize,
    pub no_sync: bool,
    /// zstd-compress page images in image layers.
    pub image_compression: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            concurrent_background_tasks: 4,
            ephemeral_budget_bytes: 0,
            read_concurrency: IoConcurrency::Concurrent,
            wait_lsn_timeout: Duration::from_secs(300),
            max_get_vectored_keys: 32,
            max_vectored_read_bytes: 128 * 1024,
            page_cache_blocks: 8192,
            no_sync: false,
            image_compression: false,
        }
    }
}

pub struct StorageResources {
    pub settings: StorageSettings,
    background: Semaphore,
    ephemeral_bytes: AtomicU64,
    open_layers: AtomicU64,
    pub block_cache: Option<Arc<blockfile::LruBlockCache>>,
}

impl StorageResources {
    pub fn new(settings: StorageSettings) -> Arc<StorageResources> {
        let block_cache = (settings.page_cache_blocks > 0)
            .then(|| Arc::new(blockfile::LruBlockCache::new(settings.page_cache_blocks)));
        if let Some(cache) = &block_cache {
            super::storage_layer::format::set_block_cache(
                Arc::clone(cache) as Arc<dyn blockfile::BlockCache>
            );
        }
        super::storage_layer::format::set_no_sync(settings.no_sync);
        Arc::new(StorageResources {
            background: Semaphore::new(settings.concurrent_background_tasks.max(1)),
            ephemeral_bytes: AtomicU64::new(0),
            open_layers: AtomicU64::new(0),
            block_cache,
            settings,
        })
    }

    /// Waits for a background permit, counted as queued meanwhile.
    pub async fn background_permit(&self, kind: BackgroundKind) -> SemaphorePermit<'_> {
        let gauge = crate::metrics::BACKGROUND_QUEUE_DEPTH.with_label_values(&[kind.as_str()]);
        gauge.inc();
        let permit = self.background.acquire().await;
        gauge.dec();
        // The semaphore is never closed.
        permit.expect("background semaphore is never closed")
    }

    pub fn ephemeral_add(&self, bytes: u64) {
        self.ephemeral_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn ephemeral_sub(&self, bytes: u64) {
        let _ = self
            .ephemeral_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes))
            });
    }

    pub fn ephemeral_bytes(&self) -> u64 {
        self.ephemeral_bytes.load(Ordering::Relaxed)
    }

    pub fn open_layer_opened(&self) {
        self.open_layers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn open_layer_closed(&self) {
        let _ = self
            .open_layers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
    }

    /// When over budget: the open-layer size above which layers should roll
    /// (the mean open layer size). `None` while within budget.
    pub fn roll_threshold(&self) -> Option<u64> {
        let budget = self.settings.ephemeral_budget_bytes;
        let used = self.ephemeral_bytes();
        if budget == 0 || used <= budget {
            return None;
        }
        let open = self.open_layers.load(Ordering::Relaxed).max(1);
        Some(used / open)
    }
}
