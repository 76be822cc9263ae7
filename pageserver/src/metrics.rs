//! Prometheus metrics of the process, served by `GET /metrics`.
//!
//! Everything registers in the `prometheus` default registry, which on Linux
//! already carries the process collector (CPU, memory, file descriptors,
//! start time).

use std::sync::{Arc, LazyLock, OnceLock};

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
};

/// Requests served by the management API, by route template, method and status.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_http_requests_total",
        "HTTP management API requests by route, method and status code",
        &["route", "method", "status"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Time from a request's arrival to its response being produced.
pub static HTTP_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "pageserver_http_request_duration_seconds",
        "HTTP management API request latency by route and method",
        &["route", "method"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// The block cache whose counters [`gather_text`] exports.
static PAGE_CACHE: OnceLock<Arc<blockfile::LruBlockCache>> = OnceLock::new();

/// Exports `cache`'s hit/miss counters (by content kind) from now on. The
/// cache keeps its own atomic counters so the read path pays nothing for
/// Prometheus; they are copied into [`PAGE_CACHE_ACCESSES`] at scrape time.
pub fn watch_page_cache(cache: Arc<blockfile::LruBlockCache>) {
    let _ = PAGE_CACHE.set(cache);
}

fn sync_page_cache_metrics() {
    let Some(cache) = PAGE_CACHE.get() else {
        return;
    };
    for kind in blockfile::ContentKind::ALL {
        let stats = cache.stats(kind);
        for (result, value) in [("hit", stats.hits), ("miss", stats.misses)] {
            let counter = PAGE_CACHE_ACCESSES.with_label_values(&[kind.as_str(), result]);
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }
}

/// All registered metrics in the text exposition format.
pub fn gather_text() -> Result<String, prometheus::Error> {
    sync_page_cache_metrics();
    let families = prometheus::gather();
    prometheus::TextEncoder::new().encode_to_string(&families)
}

/// Background jobs waiting for a permit of the node-wide semaphore, by kind.
pub static BACKGROUND_QUEUE_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "pageserver_background_loop_semaphore_waiting_tasks",
        "Background jobs waiting for a permit of the node-wide background semaphore, by kind",
        &["kind"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Background jobs run, by kind and outcome.
pub static BACKGROUND_JOBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_background_jobs_total",
        "Background jobs run, by kind and outcome",
        &["kind", "outcome"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Layer visits and reconstructions of the read path.
pub static READ_LAYERS_VISITED: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "pageserver_layers_per_read",
        "Layers visited by one vectored read",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Page reconstruction failures (redo errors, missing bases), by kind.
pub static RECONSTRUCT_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_page_reconstruct_errors_total",
        "Keys a read could not reconstruct, by kind of failure",
        &["kind"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Block cache lookups by content kind and result.
pub static PAGE_CACHE_ACCESSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_page_cache_accesses_total",
        "Block cache lookups by content kind and result (hit or miss)",
        &["content_kind", "result"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Pagestream requests: time from arrival to the response being flushed.
pub static PAGESTREAM_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "pageserver_pagestream_request_duration_seconds",
        "Pagestream request latency from arrival to flush, by request type",
        &["op"],
        vec![
            0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
            10.0
        ]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Requests served together (one vectored read per read LSN).
pub static PAGESTREAM_BATCH_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "pageserver_pagestream_batch_size",
        "Pagestream requests taken as one batch",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Open page service (libpq) connections.
/// Time GetPage batches waited for the tenant's `timeline_get_throttle`.
pub static PAGE_SERVICE_THROTTLED: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "pageserver_page_service_throttled_microseconds_total",
        "Microseconds GetPage requests were delayed by the per-tenant read throttle"
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Page service connections refused at `page_service_max_connections`.
pub static PAGE_SERVICE_REFUSED: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "pageserver_page_service_connections_refused_total",
        "Page service connections refused because too many were open"
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

pub static PAGE_SERVICE_CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "pageserver_page_service_connections",
        "Open page service connections"
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});
