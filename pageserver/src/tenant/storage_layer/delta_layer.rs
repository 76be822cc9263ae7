//! Delta layers: every value of a key range × LSN range, in one immutable file.
//!
//! On top of the block file format ([`super::format`]): each value is one
//! blob (the serialized [`Value`]); the index maps `key (18 bytes) ++ LSN
//! (8 bytes, big-endian)` to `blob offset << 1 | will_init`, so the read path
//! knows where a key's history starts without reading blobs, and reads only
//! the values it needs, newest first down to the first that initializes the
//! page.
//!
//! Writers take values in (key, LSN) order — flush and compaction produce
//! them that way — and stream them to disk.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use camino::Utf8Path;
use pageserver_api::key::{Key, KEY_SIZE};
use pageserver_api::keyspace::KeySpace;
use pageserver_api::value::Value;
use utils::generation::Generation;
use utils::lsn::Lsn;

use super::format::{DataCache, LayerFile, LayerFileWriter, LayerKind};
use super::layer::Layer;
use super::layer_desc::LayerName;
use super::reconstruct::ValuesReconstructState;
use super::{LayerReadError, LayerWriteError};
use crate::tenant::resources::IoConcurrency;

pub const DELTA_KEY_SIZE: usize = KEY_SIZE + 8;
/// Index entries fetched per batch when streaming a whole layer.
const STREAM_BATCH: usize = 512;

pub fn index_key(key: Key, lsn: Lsn) -> [u8; DELTA_KEY_SIZE] {
    let mut out = [0u8; DELTA_KEY_SIZE];
    out[..KEY_SIZE].copy_from_slice(&key.to_bytes());
    out[KEY_SIZE..].copy_from_slice(&lsn.0.to_be_bytes());
    out
}

fn parse_index_key(file: &LayerFile, raw: &[u8]) -> Result<(Key, Lsn), LayerReadError> {
    if raw.len() != DELTA_KEY_SIZE {
        return Err(file.corrupt(format!("index key of {} bytes in a delta layer", raw.len())));
    }
    let key = Key::from_slice(&raw[..KEY_SIZE]).map_err(|e| file.corrupt(e.to_string()))?;
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&raw[KEY_SIZE..]);
    Ok((key, Lsn(u64::from_be_bytes(lsn))))
}

pub struct DeltaLayerWriter {
    dir: camino::Utf8PathBuf,
    generation: Generation,
    key_start: Key,
    lsn_range: Range<Lsn>,
    last: Option<(Key, Lsn)>,
    file: LayerFileWriter,
}

impl DeltaLayerWriter {
    pub async fn new(
        dir: &Utf8Path,
        generation: Generation,
        key_start: Key,
        lsn_range: Range<Lsn>,
    ) -> Result<DeltaLayerWriter, LayerWriteError> {
        Ok(DeltaLayerWriter {
            dir: dir.to_owned(),
            generation,
            key_start,
            lsn_range,
            last: None,
            file: LayerFileWriter::create(dir, LayerKind::Delta).await?,
        })
    }

    /// Appends one serialized value; (key, lsn) must ascend.
    pub async fn put_value_bytes(
        &mut self,
        key: Key,
        lsn: Lsn,
        will_init: bool,
        bytes: &[u8],
    ) -> Result<(), LayerWriteError> {
        if self.last.is_some_and(|last| last >= (key, lsn)) || key < self.key_start {
            return Err(LayerWriteError::OutOfOrder {
                what: format!("delta value {key}@{lsn} after {:?}", self.last),
            });
        }
        if !self.lsn_range.contains(&lsn) {
            return Err(LayerWriteError::OutOfOrder {
                what: format!("delta value at {lsn} outside {:?}", self.lsn_range),
            });
        }
        let blob = self.file.append_blob(bytes, false).await?;
        self.file
            .index_push(&index_key(key, lsn), blob << 1 | will_init as u64)
            .await?;
        self.last = Some((key, lsn));
        Ok(())
    }

    pub async fn put_value(
        &mut self,
        key: Key,
        lsn: Lsn,
        value: &Value,
    ) -> Result<(), LayerWriteError> {
        let mut buf = Vec::new();
        value.ser_into(&mut buf);
        self.put_value_bytes(key, lsn, value.will_init(), &buf)
            .await
    }

    /// Bytes written so far (to cut compaction output by size).
    pub fn size(&self) -> u64 {
        self.file.size()
    }

    pub async fn finish(self, key_end: Key) -> Result<Layer, LayerWriteError> {
        let name = LayerName::Delta {
            key_range: self.key_start..key_end,
            lsn_range: self.lsn_range,
        };
        Layer::finish_writing(self.file, &self.dir, self.generation, name).await
    }
}

/// Reads, for each key of `keyspace`, the versions in `lsn_range` newest
/// first down to the first initializing one.
pub async fn get_values_reconstruct_data(
    file: &LayerFile,
    keyspace: &KeySpace,
    lsn_range: Range<Lsn>,
    state: &mut ValuesReconstructState,
    concurrency: IoConcurrency,
) -> Result<(), LayerReadError> {
    // (key, lsn, blob) of the values to read, per key newest first.
    let mut wanted: Vec<(Key, Lsn, u64)> = Vec::new();
    for range in &keyspace.ranges {
        let mut scan = file.index_scan(&index_key(range.start, Lsn(0)));
        let mut key_versions: Vec<(Lsn, u64)> = Vec::new();
        let mut current: Option<Key> = None;
        loop {
            let next = scan.next().await?;
            let parsed = match &next {
                Some((raw, value)) => {
                    let (k, l) = parse_index_key(file, raw)?;
                    Some((k, l, *value))
                }
                None => None,
            };
            let key_done = match (&parsed, current) {
                (Some((k, _, _)), Some(c)) => *k != c,
                (None, Some(_)) => true,
                _ => false,
            };
            if key_done {
                if let Some(c) = current {
                    for (lsn, v) in key_versions.drain(..).rev() {
                        wanted.push((c, lsn, v >> 1));
                        if v & 1 == 1 {
                            break;
                        }
                    }
                }
                current = None;
            }
            let Some((k, l, v)) = parsed else { break };
            if k >= range.end {
                break;
            }
            if current.is_none() {
                current = Some(k);
                key_versions.clear();
            }
            if lsn_range.contains(&l) {
                key_versions.push((l, v));
            }
        }
        if let Some(c) = current {
            for (lsn, v) in key_versions.drain(..).rev() {
                wanted.push((c, lsn, v >> 1));
                if v & 1 == 1 {
                    break;
                }
            }
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let blobs: Vec<u64> = wanted.iter().map(|(_, _, b)| *b).collect();
    // Values are mostly small WAL records, many to a block: cache blocks.
    let values = file
        .read_blobs(&blobs, concurrency, DataCache::Blocks)
        .await?;
    for ((key, lsn, _), bytes) in wanted.into_iter().zip(values) {
        let value = Value::des(&bytes)
            .map_err(|e| file.corrupt(format!("value of key {key} at {lsn}: {e}")))?;
        state.add_value(key, lsn, value);
    }
    Ok(())
}

pub async fn collect_keys(
    file: &LayerFile,
    lsn: Lsn,
    keys: &mut BTreeSet<Key>,
) -> Result<(), LayerReadError> {
    let mut scan = file.index_scan(&[0u8; DELTA_KEY_SIZE]);
    while let Some((raw, _)) = scan.next().await? {
        let (k, l) = parse_index_key(file, &raw)?;
        if l <= lsn {
            keys.insert(k);
        }
    }
    Ok(())
}

/// One value of a stream.
pub struct StreamValue {
    pub key: Key,
    pub lsn: Lsn,
    pub will_init: bool,
    pub bytes: Bytes,
}

/// All values of a delta layer in (key, LSN) order, read in batches.
pub struct DeltaValueStream {
    file: Arc<LayerFile>,
    next_from: Option<[u8; DELTA_KEY_SIZE]>,
    buffered: std::collections::VecDeque<StreamValue>,
}

impl DeltaValueStream {
    pub async fn open(layer: &Layer) -> Result<DeltaValueStream, LayerReadError> {
        Ok(DeltaValueStream {
            file: layer.open_file().await?,
            next_from: Some([0u8; DELTA_KEY_SIZE]),
            buffered: Default::default(),
        })
    }

    pub async fn next(&mut self) -> Result<Option<StreamValue>, LayerReadError> {
        if self.buffered.is_empty() {
            self.fill().await?;
        }
        Ok(self.buffered.pop_front())
    }

    async fn fill(&mut self) -> Result<(), LayerReadError> {
        let Some(from) = self.next_from.take() else {
            return Ok(());
        };
        let mut scan = self.file.index_scan(&from);
        let mut batch = Vec::with_capacity(STREAM_BATCH);
        while batch.len() < STREAM_BATCH {
            match scan.next().await? {
                Some((raw, v)) => {
                    let (k, l) = parse_index_key(&self.file, &raw)?;
                    batch.push((k, l, v));
                }
                None => break,
            }
        }
        if batch.len() == STREAM_BATCH {
            if let Some((k, l, _)) = batch.last() {
                self.next_from = Some(index_key(*k, Lsn(l.0 + 1)));
            }
        }
        let blobs: Vec<u64> = batch.iter().map(|(_, _, v)| v >> 1).collect();
        let values = self
            .file
            .read_blobs(&blobs, IoConcurrency::Sequential, DataCache::Off)
            .await?;
        for ((key, lsn, v), bytes) in batch.into_iter().zip(values) {
            self.buffered.push_back(StreamValue {
                key,
                lsn,
                will_init: v & 1 == 1,
                bytes,
            });
        }
        Ok(())
    }
}
