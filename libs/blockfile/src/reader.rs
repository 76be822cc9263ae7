//! Reading a block file: [`BlockFile`].
//!
//! Owns an open, validated file: `open` reads and checks block 0 (magic,
//! version, completion marker, checksum, geometry) and that the file length
//! matches the header, so later reads can trust block numbers derived from
//! the header. Blob reads go through [`crate::vectored`]; index lookups go
//! through [`crate::btree::reader`], which fetches blocks with
//! [`Inner::read_index_block`] (cache first, then disk with checksum check).
//!
//! A `BlockFile` is a cheap handle (`Clone`, `Send`, `Sync`); the pageserver's
//! delta and image layers keep one per resident layer file.

use std::sync::Arc;

use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use virtual_file::{IoBuffer, VirtualFile};

use crate::blob::BlobRef;
use crate::block::{block_offset, verify_block, BlockNo, BLOCK_SIZE};
use crate::btree::reader::{self as btree_reader, IndexIter};
use crate::cache::{next_file_id, BlockCache, ContentKind};
use crate::error::{BlockFileError, Result};
use crate::header::FileHeader;
use crate::vectored::{self, Concurrency, DataCache, ReadOptions, VectoredRead};

/// Default bound on the decompressed size of one blob.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 1 << 20;

/// Settings for [`BlockFile::open_with`].
#[derive(Clone)]
pub struct OpenOptions {
    /// Cache for index blocks, and for the data of reads that ask for it
    /// ([`ReadOptions::cache`]); `None` reads them from disk every time.
    pub cache: Option<Arc<dyn BlockCache>>,
    /// Compressed blobs that would decompress to more bytes than this are
    /// refused with [`BlockFileError::DecompressLimit`].
    pub max_decompressed_size: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache: None,
            max_decompressed_size: DEFAULT_MAX_DECOMPRESSED,
        }
    }
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("cache", &self.cache.is_some())
            .field("max_decompressed_size", &self.max_decompressed_size)
            .finish()
    }
}

pub(crate) struct Inner {
    pub file: VirtualFile,
    pub path: Utf8PathBuf,
    pub file_id: u64,
    pub header: FileHeader,
    pub cache: Option<Arc<dyn BlockCache>>,
    pub max_decompressed: usize,
}

/// An open, validated block file.
#[derive(Clone)]
pub struct BlockFile {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BlockFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockFile")
            .field("path", &self.inner.path)
            .field("file_id", &self.inner.file_id)
            .finish()
    }
}

impl BlockFile {
    /// Opens `path`, checking that it is a finished block file with `magic`.
    /// Returns the file and the user header given to the writer's `finish`.
    pub async fn open(path: &Utf8Path, magic: u32) -> Result<(BlockFile, Bytes)> {
        Self::open_with(path, magic, OpenOptions::default()).await
    }

    /// [`BlockFile::open`] with a cache and/or a decompression limit.
    pub async fn open_with(
        path: &Utf8Path,
        magic: u32,
        options: OpenOptions,
    ) -> Result<(BlockFile, Bytes)> {
        let file = VirtualFile::open(path)
            .await
            .map_err(|e| BlockFileError::io(path, "opening", 0, e))?;
        let len = file
            .len()
            .await
            .map_err(|e| BlockFileError::io(path, "reading the length", 0, e))?;
        if len < BLOCK_SIZE as u64 {
            return Err(BlockFileError::NoHeader {
                path: path.to_owned(),
                reason: format!("file is only {len} bytes"),
            });
        }
        let (buf, res) = file.read_exact_at(IoBuffer::zeroed(BLOCK_SIZE), 0).await;
        res.map_err(|e| BlockFileError::io(path, "reading the header", 0, e))?;
        let header = FileHeader::decode(path, &buf, magic)?;
        let expected = block_offset(header.total_blocks);
        if len != expected {
            return Err(BlockFileError::Truncated {
                path: path.to_owned(),
                expected,
                actual: len,
            });
        }
        let user_header = header.user_header.clone();
        let inner = Inner {
            file,
            path: path.to_owned(),
            file_id: next_file_id(),
            header,
            cache: options.cache,
            max_decompressed: options.max_decompressed_size,
        };
        Ok((
            BlockFile {
                inner: Arc::new(inner),
            },
            user_header,
        ))
    }

    pub fn path(&self) -> &Utf8Path {
        &self.inner.path
    }

    /// Unique id of this open file in block caches.
    pub fn file_id(&self) -> u64 {
        self.inner.file_id
    }

    /// The magic the file was opened with.
    pub fn magic(&self) -> u32 {
        self.inner.header.magic
    }

    /// The caller header stored at `finish`.
    pub fn user_header(&self) -> &Bytes {
        &self.inner.header.user_header
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        block_offset(self.inner.header.total_blocks)
    }

    /// Length of the blob stream; every valid [`BlobRef`] is below it.
    pub fn blob_stream_len(&self) -> u64 {
        self.inner.header.blob_stream_len
    }

    pub fn key_width(&self) -> usize {
        self.inner.header.key_width as usize
    }

    pub fn index_entries(&self) -> u64 {
        self.inner.header.index_entries
    }

    pub fn index_height(&self) -> u8 {
        self.inner.header.tree_height
    }

    /// Reads one blob (decompressed if it was stored compressed), without
    /// the data block cache.
    pub async fn read_blob(&self, blob: BlobRef) -> Result<Bytes> {
        let mut r = vectored::read_blobs(&self.inner, &[blob], ReadOptions::default()).await;
        r.results.pop().expect("one result per request")
    }

    /// Reads many blobs with as few IOs as possible, without the data block
    /// cache; see [`crate::vectored`]. Results are in the order of `blobs`.
    pub async fn read_blobs(
        &self,
        blobs: &[BlobRef],
        max_io_size: usize,
        concurrency: Concurrency,
    ) -> VectoredRead {
        let opts = ReadOptions {
            max_io_size,
            concurrency,
            cache: DataCache::Off,
        };
        vectored::read_blobs(&self.inner, blobs, opts).await
    }

    /// [`BlockFile::read_blobs`] with all options, in particular the use of
    /// the block cache for data ([`ReadOptions::cache`]).
    pub async fn read_blobs_with(&self, blobs: &[BlobRef], opts: ReadOptions) -> VectoredRead {
        vectored::read_blobs(&self.inner, blobs, opts).await
    }

    /// Looks up `key` in the index.
    pub async fn get(&self, key: &[u8]) -> Result<Option<u64>> {
        btree_reader::get(&self.inner, key).await
    }

    /// Iterates index entries with keys `>= key`, ascending.
    pub fn iter_from(&self, key: &[u8]) -> Result<IndexIter> {
        IndexIter::new(Arc::clone(&self.inner), key, true)
    }

    /// Iterates index entries with keys `<= key`, descending.
    pub fn iter_back_from(&self, key: &[u8]) -> Result<IndexIter> {
        IndexIter::new(Arc::clone(&self.inner), key, false)
    }
}

impl Inner {
    /// Reads one index block, from the cache when possible. `referrer` is the
    /// block holding the pointer, used in the error when it points outside
    /// the index area.
    pub(crate) async fn read_index_block(
        &self,
        blkno: BlockNo,
        referrer: BlockNo,
    ) -> Result<Bytes> {
        let h = &self.header;
        if blkno < h.index_start_blk || blkno > h.index_root_blk {
            return Err(BlockFileError::corrupt(
                &self.path,
                referrer,
                format!(
                    "points to block {blkno}, outside the index blocks {}..={}",
                    h.index_start_blk, h.index_root_blk
                ),
            ));
        }
        if let Some(cache) = &self.cache {
            if let Some(b) = cache.get(ContentKind::IndexBlock, self.file_id, blkno) {
                return Ok(b);
            }
        }
        let offset = block_offset(blkno);
        let (buf, res) = self
            .file
            .read_exact_at(IoBuffer::zeroed(BLOCK_SIZE), offset)
            .await;
        res.map_err(|e| BlockFileError::io(&self.path, "reading an index block", offset, e))?;
        verify_block(blkno, &buf).map_err(|r| BlockFileError::corrupt(&self.path, blkno, r))?;
        let bytes = Bytes::copy_from_slice(&buf);
        if let Some(cache) = &self.cache {
            cache.insert(ContentKind::IndexBlock, self.file_id, blkno, bytes.clone());
        }
        Ok(bytes)
    }
}
