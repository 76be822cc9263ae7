//! Page reconstruction: turning a base image plus WAL records into a page.
//!
//! The read path collects, per key, the newest image at or below the read LSN
//! (if any) and every record above it, and hands them to a [`Redo`]
//! implementation. The real one (native Rust redo of every Postgres 15
//! resource manager) arrives with its own crate; until then the engine runs
//! with [`TestRedo`], which understands only the synthetic
//! [`WalRecord::Test`] records and refuses everything else with a typed
//! error, so a wrong page can never be produced silently.

use bytes::{Bytes, BytesMut};
use pageserver_api::key::Key;
use pageserver_api::value::WalRecord;
use utils::lsn::Lsn;

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
    ) -> Result<Bytes, RedoError>;
}

/// Redo for storage-engine tests: a `Test` record appends bytes to the page,
/// after clearing it when the record initializes or clears the page.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestRedo;

impl Redo for TestRedo {
    fn reconstruct(
        &self,
        key: Key,
        lsn: Lsn,
        base: Option<Bytes>,
        records: &[(Lsn, WalRecord)],
    ) -> Result<Bytes, RedoError> {
        let mut page = BytesMut::from(base.unwrap_or_default().as_ref());
        for (record_lsn, record) in records {
            match record {
                WalRecord::Test {
                    append,
                    will_init,
                    clear,
                } => {
                    if *will_init || *clear {
                        page.clear();
                    }
                    page.extend_from_slice(append);
                }
                other => {
                    return Err(RedoError::Unsupported {
                        key,
                        lsn,
                        record_lsn: *record_lsn,
                        what: format!("{other:?}").chars().take(80).collect(),
                    })
                }
            }
        }
        Ok(page.freeze())
    }
}
