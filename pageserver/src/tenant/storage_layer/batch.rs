//! [`SerializedBatch`]: values serialized by the writer before they reach the
//! in-memory layer.
//!
//! WAL ingest builds a batch of values record by record and commits it as a
//! unit. Holding the batch as `Value`s would keep a reference-counted slice
//! of the WAL per value and serialize every value a second time at commit;
//! instead each value is serialized once, as it is produced, into one byte
//! buffer (a page restored from a full-page image is written straight into
//! it), and the batch keeps per value only its key, LSN, `will_init` bit and
//! byte range. [`super::inmemory_layer::InMemoryLayer::put_serialized`]
//! then appends the buffer to the layer's file as one piece.
//!
//! Invariants: entries are in the order they were pushed; their byte
//! ranges tile `data` in that order; no value is longer than
//! [`MAX_VALUE_LEN`] (a push that would be is refused and leaves the batch
//! unchanged). Callers: `DatadirModification` (ingest, import) and
//! `TimelineWriter::put_batch`, which serializes a `Value` slice into one.

use pageserver_api::key::Key;
use pageserver_api::value::Value;
use utils::lsn::Lsn;

use super::inmemory_layer::MAX_VALUE_LEN;

/// One value of a batch: where its bytes are in [`SerializedBatch::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    pub key: Key,
    pub lsn: Lsn,
    pub will_init: bool,
    pub start: usize,
    pub len: usize,
}

/// A serialized value above [`MAX_VALUE_LEN`].
#[derive(Debug, thiserror::Error)]
#[error("value for key {key} at {lsn} is {len} bytes, above the limit of {MAX_VALUE_LEN}")]
pub struct ValueTooLarge {
    pub key: Key,
    pub lsn: Lsn,
    pub len: usize,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct SerializedBatch {
    data: Vec<u8>,
    entries: Vec<BatchEntry>,
}

impl SerializedBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch of `values`, in order.
    pub fn from_values(values: &[(Key, Lsn, Value)]) -> Result<Self, ValueTooLarge> {
        let mut batch = SerializedBatch::new();
        for (key, lsn, value) in values {
            batch.push(*key, *lsn, value)?;
        }
        Ok(batch)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The serialized values, back to back.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn entries(&self) -> &[BatchEntry] {
        &self.entries
    }

    /// Empties the batch, keeping its allocations for the next one.
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }

    /// Appends `value` for `key` at `lsn`.
    pub fn push(&mut self, key: Key, lsn: Lsn, value: &Value) -> Result<(), ValueTooLarge> {
        self.push_with(key, lsn, value.will_init(), |out| {
            value.ser_into(out);
            Ok::<(), ValueTooLarge>(())
        })
    }

    /// Appends a value that `write` serializes at the end of the buffer it
    /// is given (in the format of `Value::ser_into`). If `write` fails, or
    /// the value is too large, whatever it wrote is taken back.
    pub fn push_with<E: From<ValueTooLarge>>(
        &mut self,
        key: Key,
        lsn: Lsn,
        will_init: bool,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.data.len();
        if let Err(e) = write(&mut self.data) {
            self.data.truncate(start);
            return Err(e);
        }
        let len = self.data.len() - start;
        if len > MAX_VALUE_LEN {
            self.data.truncate(start);
            return Err(ValueTooLarge { key, lsn, len }.into());
        }
        self.entries.push(BatchEntry {
            key,
            lsn,
            will_init,
            start,
            len,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pageserver_api::value::WalRecord;

    #[test]
    fn values_serialize_back_to_back() {
        let key = Key::from_i128(0x42);
        let values = [
            (key, Lsn(10), Value::Image(Bytes::from_static(b"page"))),
            (
                key,
                Lsn(20),
                Value::WalRecord(WalRecord::Postgres {
                    will_init: false,
                    rec: Bytes::from_static(b"rec"),
                }),
            ),
        ];
        let batch = SerializedBatch::from_values(&values).unwrap();
        assert_eq!(batch.len(), 2);
        let mut at = 0;
        for (entry, (_, lsn, value)) in batch.entries().iter().zip(&values) {
            assert_eq!(entry.start, at);
            assert_eq!(entry.lsn, *lsn);
            assert_eq!(entry.will_init, value.will_init());
            let bytes = &batch.data()[entry.start..entry.start + entry.len];
            assert_eq!(&Value::des(bytes).unwrap(), value);
            at += entry.len;
        }
        assert_eq!(at, batch.data().len());
    }

    #[test]
    fn failed_and_oversized_pushes_leave_no_trace() {
        let key = Key::from_i128(7);
        let mut batch = SerializedBatch::new();
        batch
            .push(key, Lsn(1), &Value::Image(Bytes::from_static(b"x")))
            .unwrap();
        let before = batch.data().len();
        let r: Result<(), ValueTooLarge> = batch.push_with(key, Lsn(2), true, |out| {
            out.resize(out.len() + MAX_VALUE_LEN + 1, 0);
            Ok(())
        });
        assert_eq!(r.unwrap_err().len, MAX_VALUE_LEN + 1);
        #[derive(Debug)]
        struct Failed;
        impl From<ValueTooLarge> for Failed {
            fn from(_: ValueTooLarge) -> Self {
                Failed
            }
        }
        let r = batch.push_with(key, Lsn(3), true, |out| {
            out.extend_from_slice(b"partial");
            Err(Failed)
        });
        assert!(r.is_err());
        assert_eq!((batch.len(), batch.data().len()), (1, before));
    }
}
