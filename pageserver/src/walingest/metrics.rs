//! Prometheus metrics of WAL ingest, in the process-wide default registry
//! (served by `GET /metrics` with the others).
//!
//! - `pageserver_wal_ingest_records_total{rmgr}` / `..._bytes_total{rmgr}`:
//!   records and bytes ingested, by resource manager name.
//! - `pageserver_wal_ingest_errors_total{kind}`: ingest stops, by error kind
//!   ([`super::IngestErrorKind::label`]).
//! - [`UNSUPPORTED_RECORDS_METRIC`]`{record}`: records that stopped ingest
//!   because this server does not handle them (unknown or unsupported
//!   rmgr/record type), by `Rmgr/TYPE` name.

use std::sync::LazyLock;

use prometheus::{register_int_counter_vec, IntCounter, IntCounterVec};

/// Name of the counter of records that stopped ingest as unsupported.
pub const UNSUPPORTED_RECORDS_METRIC: &str = "pageserver_wal_ingest_unsupported_records_total";

pub static RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_wal_ingest_records_total",
        "WAL records ingested, by resource manager",
        &["rmgr"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

pub static BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_wal_ingest_bytes_total",
        "Bytes of WAL records ingested (record length), by resource manager",
        &["rmgr"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

pub static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_wal_ingest_errors_total",
        "WAL ingest stops, by error kind",
        &["kind"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

pub static UNSUPPORTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        UNSUPPORTED_RECORDS_METRIC,
        "WAL records that stopped ingest because they are unknown or unsupported, by record name",
        &["record"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// Per-rmgr counters resolved once, so the per-record cost is two atomic
/// adds instead of two label lookups.
pub struct RmgrCounters {
    pub records: IntCounter,
    pub bytes: IntCounter,
}

impl RmgrCounters {
    pub fn for_rmgr(name: &str) -> Self {
        RmgrCounters {
            records: RECORDS.with_label_values(&[name]),
            bytes: BYTES.with_label_values(&[name]),
        }
    }
}
