//! What a read collects per key while it walks layers newest-first.
//!
//! Each layer visit appends, for every key it serves, the values it holds in
//! the visit's LSN range in descending LSN order, and marks the key complete
//! when it reached an image or a record that initializes the page. An image
//! layer also completes the keys of its range that it does not hold: such a
//! key did not exist at the image's LSN ([`KeyState::absent`]).
//!
//! Invariant: values arrive in strictly descending LSN order per key (the
//! read path visits layers with disjoint LSN ranges, newest first).

use std::collections::BTreeMap;

use bytes::Bytes;
use pageserver_api::key::Key;
use pageserver_api::value::{Value, WalRecord};
use utils::lsn::Lsn;

#[derive(Debug, Default)]
pub struct KeyState {
    /// Base image, if the walk reached one.
    pub image: Option<(Lsn, Bytes)>,
    /// Records above the image, newest first.
    pub records: Vec<(Lsn, WalRecord)>,
    /// No older value is needed.
    pub complete: bool,
    /// An image layer covering the key at an LSN below every record found
    /// says the key did not exist there.
    pub absent: bool,
}

impl KeyState {
    /// Whether anything at all was found.
    pub fn is_empty(&self) -> bool {
        self.image.is_none() && self.records.is_empty()
    }
}

/// Per-request collection state.
#[derive(Debug, Default)]
pub struct ValuesReconstructState {
    pub keys: BTreeMap<Key, KeyState>,
    /// Layer visits made, for metrics and tests.
    pub layers_visited: u32,
}

impl ValuesReconstructState {
    pub fn is_complete(&self, key: &Key) -> bool {
        self.keys.get(key).is_some_and(|s| s.complete)
    }

    /// Records one value found for `key` at `lsn`.
    pub fn add_value(&mut self, key: Key, lsn: Lsn, value: Value) {
        let state = self.keys.entry(key).or_default();
        if state.complete {
            return;
        }
        match value {
            Value::Image(img) => {
                state.image = Some((lsn, img));
                state.complete = true;
            }
            Value::WalRecord(rec) => {
                state.complete = rec.will_init();
                state.records.push((lsn, rec));
            }
        }
    }

    /// Marks `key` as not existing below the values already collected.
    pub fn add_absent(&mut self, key: Key) {
        let state = self.keys.entry(key).or_default();
        if !state.complete {
            state.complete = true;
            state.absent = true;
        }
    }
}
