//! Layer files on the block file format (`blockfile` crate).
//!
//! This module is the only place that knows how a layer maps onto a block
//! file: the magic per layer kind, the *layer header* kept in the block
//! file's user header, and the translation of block file errors into
//! [`LayerReadError`]/[`LayerWriteError`] naming the file.
//!
//! Layer header (big-endian, 56 bytes), format version 1:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 2 | layer format version (1) |
//! | 2 | 1 | kind: 0 delta, 1 image |
//! | 3 | 1 | reserved (0) |
//! | 4 | 18 | key range start |
//! | 22 | 18 | key range end |
//! | 40 | 8 | LSN range start (image: its LSN) |
//! | 48 | 8 | LSN range end (image: LSN + 1) |
//!
//! Opening a layer checks the header against the layer's name, so a file
//! renamed to the wrong name is refused instead of read.
//!
//! Writers create `<dir>/layer-<n>.___temp`, and on finish (the block file
//! is fsynced) rename it to the layer's local name and fsync the directory.
//! A crash leaves at most a temporary file, which timeline loading removes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

pub use blockfile::DataCache;
use blockfile::{
    BlobRef, BlockCache, BlockFile, BlockFileError, BlockFileWriter, IndexIter, OpenOptions,
    ReadOptions,
};
use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use pageserver_api::key::{Key, KEY_SIZE};
use utils::lsn::Lsn;

use super::layer::TEMP_SUFFIX;
use super::layer_desc::{LayerName, PersistentLayerDesc};
use super::{LayerReadError, LayerWriteError};
use crate::tenant::resources::IoConcurrency;

const DELTA_MAGIC: u32 = 0x5053_444C; // "PSDL"
const IMAGE_MAGIC: u32 = 0x5053_494D; // "PSIM"
const LAYER_FORMAT_VERSION: u16 = 1;
const LAYER_HEADER_LEN: usize = 56;
/// Largest IO a vectored read issues: a 32-page request (the default
/// `max_get_vectored_keys`) of adjacent 8 KiB images is one IO.
const MAX_IO_SIZE: usize = 512 * 1024;
/// Largest decompressed image accepted.
const MAX_DECOMPRESSED: usize = 64 * 1024;

static BLOCK_CACHE: OnceLock<Arc<dyn BlockCache>> = OnceLock::new();
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);
static SYNC_DIR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Sets the node-wide cache for index blocks and the data of page reads
/// (decoded images, delta-layer blocks); once, at startup.
pub fn set_block_cache(cache: Arc<dyn BlockCache>) {
    let _ = BLOCK_CACHE.set(cache);
}

/// Skips directory fsyncs after renames (the `no_sync` test mode).
pub fn set_no_sync(no_sync: bool) {
    SYNC_DIR.store(!no_sync, Ordering::Relaxed);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Delta,
    Image,
}

impl LayerKind {
    fn magic(self) -> u32 {
        match self {
            LayerKind::Delta => DELTA_MAGIC,
            LayerKind::Image => IMAGE_MAGIC,
        }
    }

    fn key_width(self) -> usize {
        match self {
            LayerKind::Delta => KEY_SIZE + 8,
            LayerKind::Image => KEY_SIZE,
        }
    }
}

fn encode_header(name: &LayerName) -> Vec<u8> {
    let mut h = Vec::with_capacity(LAYER_HEADER_LEN);
    h.extend_from_slice(&LAYER_FORMAT_VERSION.to_be_bytes());
    h.push(if name.is_delta() { 0 } else { 1 });
    h.push(0);
    h.extend_from_slice(&name.key_range().start.to_bytes());
    h.extend_from_slice(&name.key_range().end.to_bytes());
    let lsns = name.lsn_range();
    h.extend_from_slice(&lsns.start.0.to_be_bytes());
    h.extend_from_slice(&lsns.end.0.to_be_bytes());
    h
}

fn decode_header(h: &[u8]) -> Result<LayerName, String> {
    if h.len() != LAYER_HEADER_LEN {
        return Err(format!(
            "layer header is {} bytes, expected {LAYER_HEADER_LEN}",
            h.len()
        ));
    }
    let version = u16::from_be_bytes([h[0], h[1]]);
    if version != LAYER_FORMAT_VERSION {
        return Err(format!(
            "layer format version {version}, this build reads {LAYER_FORMAT_VERSION}"
        ));
    }
    let key = |at: usize| Key::from_slice(&h[at..at + KEY_SIZE]).map_err(|e| e.to_string());
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let key_range = key(4)?..key(22)?;
    let (start, end) = (Lsn(u64_at(40)), Lsn(u64_at(48)));
    match h[2] {
        0 => Ok(LayerName::Delta {
            key_range,
            lsn_range: start..end,
        }),
        1 if end.0 == start.0.wrapping_add(1) => Ok(LayerName::Image {
            key_range,
            lsn: start,
        }),
        kind => Err(format!("bad layer kind {kind} / LSN range {start}..{end}")),
    }
}

fn read_err(path: &Utf8Path, e: BlockFileError) -> LayerReadError {
    if e.is_corruption() {
        LayerReadError::Corrupt {
            path: path.to_string(),
            reason: e.to_string(),
        }
    } else {
        LayerReadError::Io {
            path: path.to_string(),
            source: std::io::Error::other(e.to_string()),
        }
    }
}

fn write_err(e: BlockFileError) -> LayerWriteError {
    LayerWriteError::Format(e.to_string())
}

/// An open, validated layer file.
pub struct LayerFile {
    file: BlockFile,
    path: Utf8PathBuf,
}

impl LayerFile {
    pub async fn open(
        path: &Utf8Path,
        desc: &PersistentLayerDesc,
    ) -> Result<LayerFile, LayerReadError> {
        let kind = if desc.is_delta() {
            LayerKind::Delta
        } else {
            LayerKind::Image
        };
        let options = OpenOptions {
            cache: BLOCK_CACHE.get().cloned(),
            max_decompressed_size: MAX_DECOMPRESSED,
        };
        let (file, header) = BlockFile::open_with(path, kind.magic(), options)
            .await
            .map_err(|e| read_err(path, e))?;
        let corrupt = |reason: String| LayerReadError::Corrupt {
            path: path.to_string(),
            reason,
        };
        let name = decode_header(&header).map_err(corrupt)?;
        if name != desc.name {
            return Err(corrupt(format!(
                "header describes layer {name}, not {}",
                desc.name
            )));
        }
        if file.key_width() != kind.key_width() {
            return Err(corrupt(format!("index key width {}", file.key_width())));
        }
        Ok(LayerFile {
            file,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    pub fn corrupt(&self, reason: String) -> LayerReadError {
        LayerReadError::Corrupt {
            path: self.path.to_string(),
            reason,
        }
    }

    /// Index entries with keys `>= from`, ascending.
    pub fn index_scan(&self, from: &[u8]) -> IndexScan<'_> {
        IndexScan {
            file: self,
            iter: Some(self.file.iter_from(from)),
        }
    }

    /// Reads blobs (results in the order of `blobs`), coalescing IOs.
    /// `cache` says how the node's block cache serves and keeps them: page
    /// reads use it (a warm read does no IO), whole-layer scans do not.
    pub async fn read_blobs(
        &self,
        blobs: &[u64],
        concurrency: IoConcurrency,
        cache: DataCache,
    ) -> Result<Vec<Bytes>, LayerReadError> {
        let refs: Vec<BlobRef> = blobs.iter().map(|b| BlobRef(*b)).collect();
        let opts = ReadOptions {
            max_io_size: MAX_IO_SIZE,
            concurrency,
            cache,
        };
        let read = self.file.read_blobs_with(&refs, opts).await;
        read.results
            .into_iter()
            .map(|r| r.map_err(|e| read_err(&self.path, e)))
            .collect()
    }
}

/// A forward scan of a layer's index.
pub struct IndexScan<'a> {
    file: &'a LayerFile,
    iter: Option<Result<IndexIter, BlockFileError>>,
}

impl IndexScan<'_> {
    pub async fn next(&mut self) -> Result<Option<(Vec<u8>, u64)>, LayerReadError> {
        match self.iter.as_mut() {
            None => Ok(None),
            Some(Err(e)) => {
                let e = read_err(&self.file.path, e.clone());
                self.iter = None;
                Err(e)
            }
            Some(Ok(iter)) => match iter.next().await {
                Ok(Some((k, v))) => Ok(Some((k.as_bytes().to_vec(), v))),
                Ok(None) => Ok(None),
                Err(e) => {
                    self.iter = None;
                    Err(read_err(&self.file.path, e))
                }
            },
        }
    }
}

/// Streams a new layer file.
pub struct LayerFileWriter {
    temp_path: Utf8PathBuf,
    /// `None` once finished.
    writer: Option<BlockFileWriter>,
}

impl LayerFileWriter {
    pub async fn create(
        dir: &Utf8Path,
        kind: LayerKind,
    ) -> Result<LayerFileWriter, LayerWriteError> {
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let temp_path = dir.join(format!("layer-{}-{seq}{TEMP_SUFFIX}", std::process::id()));
        let writer = BlockFileWriter::create(&temp_path, kind.magic(), kind.key_width())
            .await
            .map_err(write_err)?;
        Ok(LayerFileWriter {
            temp_path,
            writer: Some(writer),
        })
    }

    pub async fn append_blob(
        &mut self,
        data: &[u8],
        compress: bool,
    ) -> Result<u64, LayerWriteError> {
        self.writer_mut()?
            .append_blob(data, compress)
            .await
            .map(|b| b.0)
            .map_err(write_err)
    }

    pub async fn index_push(&mut self, key: &[u8], value: u64) -> Result<(), LayerWriteError> {
        self.writer_mut()?
            .append_index(key, value)
            .await
            .map_err(write_err)
    }

    fn writer_mut(&mut self) -> Result<&mut BlockFileWriter, LayerWriteError> {
        self.writer
            .as_mut()
            .ok_or_else(|| LayerWriteError::Format("writer already finished".into()))
    }

    pub fn size(&self) -> u64 {
        self.writer
            .as_ref()
            .map(|w| w.blob_stream_len() + w.index_entries() * 34)
            .unwrap_or(0)
    }

    /// Finishes the file (fsynced), moves it to `final_path` and opens it.
    pub async fn finish(
        mut self,
        mut desc: PersistentLayerDesc,
        final_path: &Utf8Path,
    ) -> Result<(PersistentLayerDesc, LayerFile), LayerWriteError> {
        let header = encode_header(&desc.name);
        let writer = self
            .writer
            .take()
            .ok_or_else(|| LayerWriteError::Format("writer already finished".into()))?;
        let finished = writer.finish(&header).await.map_err(write_err)?;
        desc.file_size = finished.size;
        let temp = self.temp_path.clone();
        let target = final_path.to_owned();
        let sync = SYNC_DIR.load(Ordering::Relaxed);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::rename(&temp, &target)?;
            if sync {
                if let Some(dir) = target.parent() {
                    utils::crashsafe::fsync_dir(dir)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| LayerWriteError::Format(format!("rename task failed: {e}")))?
        .map_err(|source| LayerWriteError::Io {
            path: final_path.to_string(),
            source,
        })?;
        let file = LayerFile::open(final_path, &desc)
            .await
            .map_err(|e| LayerWriteError::Format(e.to_string()))?;
        Ok((desc, file))
    }
}

impl Drop for LayerFileWriter {
    /// An abandoned (or failed) write leaves nothing behind; after a
    /// successful finish the temporary name no longer exists.
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.temp_path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.temp_path, "cannot remove unfinished layer file: {e}");
            }
        }
    }
}
