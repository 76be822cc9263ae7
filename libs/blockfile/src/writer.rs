//! Writing a block file: [`BlockFileWriter`].
//!
//! Owns the write side of the format: the blob stream (blocks 1..), the index
//! (handed to [`crate::btree::writer::IndexBuilder`]) and, last, the header.
//!
//! Invariants:
//! - blob bytes are staged in one aligned chunk buffer of
//!   [`BLOB_CHUNK_BLOCKS`] blocks; a chunk is sealed (checksums) and written as
//!   soon as the stream moves past it, so memory does not grow with the file;
//! - block 0 (the header) is written after everything else, then the file is
//!   fsynced. Until then block 0 is a hole, which `BlockFile::open` rejects;
//! - after any IO error the writer refuses further work (`WriterFailed`).
//!
//! The caller (a delta or image layer writer) picks the path and magic, and
//! after `finish` fsyncs the directory or renames the file into place.

use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use virtual_file::{IoBuffer, VirtualFile};

use crate::blob::{encode_header, BlobRef, Compression, MAX_BLOB_LEN, MAX_BLOB_STREAM, ZSTD_LEVEL};
use crate::block::{block_offset, seal_block, BlockNo, BLOCK_SIZE, PAYLOAD_SIZE};
use crate::btree::writer::{spill_path, IndexBuilder};
use crate::error::{BlockFileError, Result};
use crate::header::{blob_blocks, FileHeader, MAX_KEY_WIDTH, MAX_USER_HEADER};

/// Blocks per blob write (512 KiB).
pub const BLOB_CHUNK_BLOCKS: usize = 64;

/// Blocks per index/metadata write (256 KiB).
const SINK_CHUNK_BLOCKS: usize = 32;

/// Summary of a finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedFile {
    /// File size in bytes.
    pub size: u64,
    /// Bytes in the blob stream (headers included).
    pub blob_stream_len: u64,
    /// Entries in the index.
    pub index_entries: u64,
    /// Height of the index tree (1 = the root is a leaf).
    pub index_height: u8,
}

/// Buffers whole blocks destined for consecutive block numbers and writes
/// them in large chunks. Used for index blocks.
pub(crate) struct BlockSink {
    file: VirtualFile,
    first_blk: BlockNo,
    buf: IoBuffer,
    used: usize,
}

impl BlockSink {
    pub fn new(file: VirtualFile, first_blk: BlockNo) -> BlockSink {
        BlockSink {
            file,
            first_blk,
            buf: IoBuffer::zeroed(SINK_CHUNK_BLOCKS * BLOCK_SIZE),
            used: 0,
        }
    }

    /// Block number the next pushed block will get.
    pub fn next_blk(&self) -> BlockNo {
        self.first_blk + self.used as BlockNo
    }

    /// Appends one block; `fill` writes its payload into a zeroed block.
    pub async fn push(&mut self, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        if self.used == SINK_CHUNK_BLOCKS {
            self.flush().await?;
        }
        let blkno = self.next_blk();
        if blkno == BlockNo::MAX {
            return Err(BlockFileError::invalid(
                self.file.path(),
                "file exceeds 2^32 blocks",
            ));
        }
        let block = &mut self.buf[self.used * BLOCK_SIZE..(self.used + 1) * BLOCK_SIZE];
        fill(block);
        seal_block(blkno, block);
        self.used += 1;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.used == 0 {
            return Ok(());
        }
        let offset = block_offset(self.first_blk);
        let buf = if self.used == SINK_CHUNK_BLOCKS {
            std::mem::replace(&mut self.buf, IoBuffer::zeroed(0))
        } else {
            IoBuffer::from_slice(&self.buf[..self.used * BLOCK_SIZE])
        };
        let (mut buf, res) = self.file.write_all_at(buf, offset).await;
        res.map_err(|e| BlockFileError::io(self.file.path(), "writing index", offset, e))?;
        if buf.len() == SINK_CHUNK_BLOCKS * BLOCK_SIZE {
            buf.fill(0);
            self.buf = buf;
        } else {
            self.buf.fill(0);
        }
        self.first_blk += self.used as BlockNo;
        self.used = 0;
        Ok(())
    }

    /// Writes what is buffered; returns the first block after the last one.
    pub async fn finish(mut self) -> Result<BlockNo> {
        self.flush().await?;
        Ok(self.first_blk)
    }
}

/// Streams blobs and index entries into a new block file.
pub struct BlockFileWriter {
    file: VirtualFile,
    path: Utf8PathBuf,
    magic: u32,
    key_width: usize,
    /// Staging buffer for blob blocks `buf_first_blk..buf_first_blk + BLOB_CHUNK_BLOCKS`.
    buf: IoBuffer,
    buf_first_blk: BlockNo,
    stream_len: u64,
    max_blob_stored: u32,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    index: Option<IndexBuilder>,
    failed: bool,
}

impl BlockFileWriter {
    /// Creates `path` (which must not exist). `magic` identifies the kind of
    /// file; `key_width` (1..=32) is the width of every index key.
    pub async fn create(path: &Utf8Path, magic: u32, key_width: usize) -> Result<BlockFileWriter> {
        if key_width == 0 || key_width > MAX_KEY_WIDTH {
            return Err(BlockFileError::invalid(
                path,
                format!("index key width {key_width} not in 1..={MAX_KEY_WIDTH}"),
            ));
        }
        let file = VirtualFile::create_new(path)
            .await
            .map_err(|e| BlockFileError::io(path, "creating", 0, e))?;
        Ok(BlockFileWriter {
            file,
            path: path.to_owned(),
            magic,
            key_width,
            buf: IoBuffer::zeroed(BLOB_CHUNK_BLOCKS * BLOCK_SIZE),
            buf_first_blk: 1,
            stream_len: 0,
            max_blob_stored: 0,
            compressor: None,
            index: Some(IndexBuilder::new(path, key_width)),
            failed: false,
        })
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    pub fn key_width(&self) -> usize {
        self.key_width
    }

    /// Bytes appended to the blob stream so far.
    pub fn blob_stream_len(&self) -> u64 {
        self.stream_len
    }

    /// Index entries appended so far.
    pub fn index_entries(&self) -> u64 {
        self.index.as_ref().map_or(0, |i| i.entries())
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(BlockFileError::WriterFailed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Seals and writes the full staging chunk, then reuses the buffer.
    async fn flush_full_chunk(&mut self) -> Result<()> {
        for i in 0..BLOB_CHUNK_BLOCKS {
            seal_block(
                self.buf_first_blk + i as BlockNo,
                &mut self.buf[i * BLOCK_SIZE..(i + 1) * BLOCK_SIZE],
            );
        }
        let offset = block_offset(self.buf_first_blk);
        let buf = std::mem::replace(&mut self.buf, IoBuffer::zeroed(0));
        let (mut buf, res) = self.file.write_all_at(buf, offset).await;
        res.map_err(|e| BlockFileError::io(&self.path, "writing blobs", offset, e))?;
        buf.fill(0);
        self.buf = buf;
        self.buf_first_blk += BLOB_CHUNK_BLOCKS as BlockNo;
        Ok(())
    }

    /// Copies bytes into the blob stream.
    async fn put(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let blk = 1 + (self.stream_len / PAYLOAD_SIZE as u64) as BlockNo;
            let pos = (self.stream_len % PAYLOAD_SIZE as u64) as usize;
            if blk >= self.buf_first_blk + BLOB_CHUNK_BLOCKS as BlockNo {
                self.flush_full_chunk().await?;
            }
            let at = (blk - self.buf_first_blk) as usize * BLOCK_SIZE + pos;
            let n = data.len().min(PAYLOAD_SIZE - pos);
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.stream_len += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// Appends a blob and returns where it starts. With `compress`, the blob
    /// is stored zstd-compressed when that makes it smaller.
    pub async fn append_blob(&mut self, data: &[u8], compress: bool) -> Result<BlobRef> {
        self.check_usable()?;
        let mut compressed: Option<Vec<u8>> = None;
        if compress && data.len() > 8 {
            if self.compressor.is_none() {
                let c = zstd::bulk::Compressor::new(ZSTD_LEVEL)
                    .map_err(|e| BlockFileError::invalid(&self.path, format!("zstd: {e}")))?;
                self.compressor = Some(c);
            }
            let c = self.compressor.as_mut().expect("just set");
            let z = c
                .compress(data)
                .map_err(|e| BlockFileError::invalid(&self.path, format!("zstd: {e}")))?;
            let plain_cost =
                encode_header(data.len().min(MAX_BLOB_LEN), Compression::None).1 + data.len();
            if 4 + z.len() < plain_cost {
                compressed = Some(z);
            }
        }
        let (stored, compression) = match &compressed {
            Some(z) => (z.as_slice(), Compression::Zstd),
            None => (data, Compression::None),
        };
        if stored.len() > MAX_BLOB_LEN {
            return Err(BlockFileError::invalid(
                &self.path,
                format!(
                    "blob of {} bytes exceeds the limit of {MAX_BLOB_LEN}",
                    stored.len()
                ),
            ));
        }
        let (header, header_len) = encode_header(stored.len(), compression);
        // A long header never straddles two blocks.
        let pos = (self.stream_len % PAYLOAD_SIZE as u64) as usize;
        let pad = if PAYLOAD_SIZE - pos < header_len {
            PAYLOAD_SIZE - pos
        } else {
            0
        };
        let offset = self.stream_len + pad as u64;
        let end = offset + (header_len + stored.len()) as u64;
        if end > MAX_BLOB_STREAM {
            return Err(BlockFileError::invalid(
                &self.path,
                format!("blob stream would exceed {MAX_BLOB_STREAM} bytes"),
            ));
        }
        // Padding bytes are already zero in the staging buffer.
        self.stream_len = offset;
        let res = async {
            self.put(&header[..header_len]).await?;
            self.put(stored).await
        }
        .await;
        if res.is_err() {
            self.failed = true;
        }
        res?;
        self.max_blob_stored = self.max_blob_stored.max((header_len + stored.len()) as u32);
        Ok(BlobRef(offset))
    }

    /// Adds an index entry. Keys must be `key_width` bytes and strictly
    /// ascending across calls.
    pub async fn append_index(&mut self, key: &[u8], value: u64) -> Result<()> {
        self.check_usable()?;
        let index = self.index.as_mut().expect("index present until finish");
        index.check(key)?;
        let res = index.push(key, value).await;
        if res.is_err() {
            self.failed = true;
        }
        res
    }

    /// Writes the rest of the blob area, the index, and the header (with
    /// `user_header`, at most [`MAX_USER_HEADER`] bytes), then fsyncs the file.
    pub async fn finish(mut self, user_header: &[u8]) -> Result<FinishedFile> {
        self.check_usable()?;
        if user_header.len() > MAX_USER_HEADER {
            return Err(BlockFileError::invalid(
                &self.path,
                format!(
                    "user header of {} bytes exceeds {MAX_USER_HEADER}",
                    user_header.len()
                ),
            ));
        }
        self.failed = true; // Until proven otherwise; also stops Drop noise.
        let blob_end_blk = BlockNo::try_from(1 + blob_blocks(self.stream_len))
            .map_err(|_| BlockFileError::invalid(&self.path, "blob area exceeds 2^32 blocks"))?;
        let used = (blob_end_blk - self.buf_first_blk) as usize;
        if used > 0 {
            for i in 0..used {
                seal_block(
                    self.buf_first_blk + i as BlockNo,
                    &mut self.buf[i * BLOCK_SIZE..(i + 1) * BLOCK_SIZE],
                );
            }
            let offset = block_offset(self.buf_first_blk);
            let buf = IoBuffer::from_slice(&self.buf[..used * BLOCK_SIZE]);
            let (_, res) = self.file.write_all_at(buf, offset).await;
            res.map_err(|e| BlockFileError::io(&self.path, "writing blobs", offset, e))?;
        }
        self.buf = IoBuffer::zeroed(0);

        let index = self.index.take().expect("index present until finish");
        let index_entries = index.entries();
        let had_spill = index.has_spill();
        let layout = index.finish(&self.file, blob_end_blk).await?;

        let header = FileHeader {
            magic: self.magic,
            total_blocks: layout.end,
            blob_start_blk: 1,
            blob_end_blk,
            index_start_blk: blob_end_blk,
            index_root_blk: layout.root,
            tree_height: layout.height,
            key_width: self.key_width as u8,
            blob_stream_len: self.stream_len,
            index_entries,
            max_blob_stored: self.max_blob_stored,
            user_header: Bytes::copy_from_slice(user_header),
        };
        let mut block = IoBuffer::zeroed(BLOCK_SIZE);
        header.encode(&mut block);
        let (_, res) = self.file.write_all_at(block, 0).await;
        res.map_err(|e| BlockFileError::io(&self.path, "writing header", 0, e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| BlockFileError::io(&self.path, "fsyncing", 0, e))?;
        if had_spill {
            let p = spill_path(&self.path);
            tokio::fs::remove_file(&p)
                .await
                .map_err(|e| BlockFileError::io(&p, "removing index spill file", 0, e))?;
        }
        self.failed = false;
        Ok(FinishedFile {
            size: block_offset(layout.end),
            blob_stream_len: self.stream_len,
            index_entries,
            index_height: layout.height,
        })
    }
}

impl Drop for BlockFileWriter {
    fn drop(&mut self) {
        // An unfinished (or failed) writer may have left a spill file behind;
        // the main file is the caller's to delete. Best effort.
        let spill = spill_path(&self.path);
        if self.failed || self.index.as_ref().is_some_and(|i| i.has_spill()) {
            let _ = std::fs::remove_file(spill);
        }
    }
}
