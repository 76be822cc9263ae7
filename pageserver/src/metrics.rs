//! Prometheus metrics of the process, served by `GET /metrics`.
//!
//! Everything registers in the `prometheus` default registry, which on Linux
//! already carries the process collector (CPU, memory, file descriptors,
//! start time).

use std::sync::LazyLock;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

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

/// All registered metrics in the text exposition format.
pub fn gather_text() -> Result<String, prometheus::Error> {
    let families = prometheus::gather();
    prometheus::TextEncoder::new().encode_to_string(&families)
}
