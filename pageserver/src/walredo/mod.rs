//! Page reconstruction: turning a base image plus WAL records into a page.
//!
//! The read path collects, per key, the newest image at or below the read LSN
//! (if any) and every record above it, and hands them to a [`Redo`]
//! implementation:
//!
//! - [`NativeRedo`] (module [`native`]) is the server's redo. It applies the
//!   records WAL ingest synthesizes for effects that have no page of their
//!   own in WAL (CLOG status bits, multixact offsets and members,
//!   visibility-map bit clears; pure page functions in [`pages`]), the raw
//!   Postgres records ingest stores on pages it does not own a synthetic
//!   form for (the visibility-map tail cleared by Storage TRUNCATE), and the
//!   storage-engine [`WalRecord::Test`] records; every other Postgres record
//!   goes to the native Postgres redo of `libs/pg_redo`
//!   ([`native::NativeRedo::apply_postgres`]), which refuses record types it
//!   does not implement with [`RedoError::Unsupported`].
//! - [`TestRedo`] understands only `Test` records, for storage-engine tests.
//!
//! Either way a record that cannot be applied is a typed error, so a wrong
//! page can never be produced silently.

pub mod native;
pub mod pages;

use bytes::{Bytes, BytesMut};
use pageserver_api::key::Key;
use pageserver_api::value::WalRecord;
use utils::lsn::Lsn;

pub use native::NativeRedo;
/// Cluster settings that change the bytes redo produces (data checksums,
/// `wal_log_hints`); the timeline keeps the current ones.
pub use pg_redo::ClusterSettings;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedoError {
    #[error("cannot reconstruct key {key} at {lsn}: record at {record_lsn} is not supported by this redo ({what})")]
    Unsupported {
        key: Key,
        lsn: Lsn,
        record_lsn: Lsn,
        what: String,
    },
    #[error("cannot reconstruct key {key} at {lsn}: {reason}")]
    Failed { key: Key, lsn: Lsn, reason: String },
}

/// Applies records (ascending LSN) on top of an optional base image.
pub trait Redo: Send + Sync + 'static {
    fn reconstruct(
        &self,
        key: Key,
        lsn: Lsn,
        base: Option<Bytes>,
        records: &[(Lsn, WalRecord)],
        settings: ClusterSettings,
    ) -> Result<Bytes, RedoError>;
}

/// Redo for storage-engine tests: a `Test` record appends bytes to the page,
/// after clearing it when the record initializes or clears the page.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestRedo;

/// Applies one `Test` record to a variable-length test page.
pub(crate) fn apply_test_record(page: &mut BytesMut, append: &[u8], will_init: bool, clear: bool) {
    if will_init || clear {
        page.clear();
    }
    page.extend_from_slice(append);
}

/// A short description of a record for error messages.
pub(crate) fn describe(record: &WalRecord) -> String {
    format!("{record:?}").chars().take(80).collect()
}

impl Redo for TestRedo {
    fn reconstruct(
        &self,
        key: Key,
        lsn: Lsn,
        base: Option<Bytes>,
        records: &[(Lsn, WalRecord)],
        _settings: ClusterSettings,
    ) -> Result<Bytes, RedoError> {
        let mut page = BytesMut::from(base.unwrap_or_default().as_ref());
        for (record_lsn, record) in records {
            match record {
                WalRecord::Test {
                    append,
                    will_init,
                    clear,
                } => apply_test_record(&mut page, append, *will_init, *clear),
                other => {
                    return Err(RedoError::Unsupported {
                        key,
                        lsn,
                        record_lsn: *record_lsn,
                        what: describe(other),
                    })
                }
            }
        }
        Ok(page.freeze())
    }
}
