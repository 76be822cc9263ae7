//! Bottom-up construction of the B-tree index while a file is being written.
//!
//! Owns the leaf level as it grows and the list of leaf first-keys that seeds
//! the upper levels. Entries arrive in strictly ascending key order (checked).
//!
//! Memory stays bounded while the blob area is still being streamed: finished
//! leaves collect in a fixed-size chunk buffer and, when it fills, go to a
//! spill file next to the target ([`spill_path`]), sealed with their position
//! in that file. Only the first key of each leaf is kept in memory
//! (O(entries / fanout)). At `finish` the leaves are copied (verified, then
//! re-sealed with their final block numbers) right after the blob area, and
//! the internal levels are built from the first-key list and written above
//! them, the root last. Small indexes never touch the spill file.
//!
//! Called only by [`crate::writer::BlockFileWriter`].

use camino::{Utf8Path, Utf8PathBuf};
use virtual_file::{IoBuffer, VirtualFile};

use super::node::{common_prefix, encode_node, node_size, IndexKey};
use crate::block::{block_offset, seal_block, verify_block, BlockNo, BLOCK_SIZE, PAYLOAD_SIZE};
use crate::error::{BlockFileError, Result};
use crate::header::MAX_TREE_HEIGHT;
use crate::writer::BlockSink;

/// Leaves buffered in memory before they are spilled.
const LEAF_CHUNK_BLOCKS: usize = 32;

/// Entries of one node being filled.
struct NodeAccum {
    width: usize,
    keys: Vec<u8>,
    values: Vec<u64>,
    prefix: usize,
}

impl NodeAccum {
    fn new(width: usize) -> NodeAccum {
        NodeAccum {
            width,
            keys: Vec::new(),
            values: Vec::new(),
            prefix: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds the entry if the node still fits in a block; false otherwise.
    fn try_push(&mut self, key: &[u8], value: u64) -> bool {
        let prefix = if self.is_empty() {
            self.width
        } else {
            self.prefix
                .min(common_prefix(&self.keys[..self.width], key))
        };
        if node_size(self.width, prefix, self.values.len() + 1) > PAYLOAD_SIZE {
            return false;
        }
        self.prefix = prefix;
        self.keys.extend_from_slice(key);
        self.values.push(value);
        true
    }

    fn first_key(&self) -> &[u8] {
        &self.keys[..self.width]
    }

    fn encode_into(&self, level: u8, payload: &mut [u8]) {
        encode_node(payload, level, self.width, &self.keys, &self.values);
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
        self.prefix = 0;
    }
}

/// Where the finished index landed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexLayout {
    pub root: BlockNo,
    pub height: u8,
    /// First block after the index (= total blocks of the file).
    pub end: BlockNo,
}

pub(crate) struct IndexBuilder {
    path: Utf8PathBuf,
    width: usize,
    leaf: NodeAccum,
    last_key: Option<IndexKey>,
    entries: u64,
    /// Finished leaves not yet spilled (unsealed payloads).
    chunk: IoBuffer,
    chunk_leaves: usize,
    spill: Option<VirtualFile>,
    spilled_leaves: u32,
    /// First key of every finished leaf, in order.
    leaf_first_keys: Vec<u8>,
}

/// Path of the leaf spill file used while writing `path`. It ends in
/// `.___temp`, so directory cleanup that removes temporary files after a
/// crash also removes a spill file left behind.
pub fn spill_path(path: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{path}.idx-spill.___temp"))
}

impl IndexBuilder {
    pub fn new(path: &Utf8Path, width: usize) -> IndexBuilder {
        IndexBuilder {
            path: path.to_owned(),
            width,
            leaf: NodeAccum::new(width),
            last_key: None,
            entries: 0,
            chunk: IoBuffer::zeroed(LEAF_CHUNK_BLOCKS * BLOCK_SIZE),
            chunk_leaves: 0,
            spill: None,
            spilled_leaves: 0,
            leaf_first_keys: Vec::new(),
        }
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// True when a spill file was created (the writer removes it).
    pub fn has_spill(&self) -> bool {
        self.spill.is_some()
    }

    /// Checks an entry without adding it.
    pub fn check(&self, key: &[u8]) -> Result<()> {
        if key.len() != self.width {
            return Err(BlockFileError::invalid(
                &self.path,
                format!(
                    "index key has {} bytes, this file uses {}",
                    key.len(),
                    self.width
                ),
            ));
        }
        if let Some(last) = &self.last_key {
            if key <= last.as_bytes() {
                return Err(BlockFileError::invalid(
                    &self.path,
                    format!(
                        "index keys must be strictly ascending: {:?} after {:?}",
                        IndexKey::new(key),
                        last
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Adds an entry; `check` must have passed.
    pub async fn push(&mut self, key: &[u8], value: u64) -> Result<()> {
        if !self.leaf.try_push(key, value) {
            self.finish_leaf().await?;
            assert!(
                self.leaf.try_push(key, value),
                "an empty node holds one entry"
            );
        }
        self.last_key = Some(IndexKey::new(key));
        self.entries += 1;
        Ok(())
    }

    /// Moves the current leaf into the chunk (spilling a full chunk first).
    async fn finish_leaf(&mut self) -> Result<()> {
        if self.chunk_leaves == LEAF_CHUNK_BLOCKS {
            self.spill_chunk().await?;
        }
        let at = self.chunk_leaves * BLOCK_SIZE;
        self.leaf
            .encode_into(0, &mut self.chunk[at..at + BLOCK_SIZE]);
        self.chunk_leaves += 1;
        if !self.leaf.is_empty() {
            self.leaf_first_keys
                .extend_from_slice(self.leaf.first_key());
        }
        self.leaf.clear();
        Ok(())
    }

    async fn spill_chunk(&mut self) -> Result<()> {
        let spill = match &self.spill {
            Some(f) => f.clone(),
            None => {
                let p = spill_path(&self.path);
                // A leftover from an earlier crashed attempt at this path.
                let _ = tokio::fs::remove_file(&p).await;
                let f = VirtualFile::create_new(&p)
                    .await
                    .map_err(|e| BlockFileError::io(&p, "creating index spill file", 0, e))?;
                self.spill = Some(f.clone());
                f
            }
        };
        for i in 0..self.chunk_leaves {
            let at = i * BLOCK_SIZE;
            seal_block(
                self.spilled_leaves + i as BlockNo,
                &mut self.chunk[at..at + BLOCK_SIZE],
            );
        }
        let offset = block_offset(self.spilled_leaves);
        let buf = std::mem::replace(&mut self.chunk, IoBuffer::zeroed(0));
        let (mut buf, res) = spill.write_all_at(buf, offset).await;
        res.map_err(|e| BlockFileError::io(spill.path(), "writing index spill file", offset, e))?;
        buf.fill(0);
        self.chunk = buf;
        self.spilled_leaves += self.chunk_leaves as BlockNo;
        self.chunk_leaves = 0;
        Ok(())
    }

    /// Writes the whole index to `file` from block `start` on.
    pub async fn finish(mut self, file: &VirtualFile, start: BlockNo) -> Result<IndexLayout> {
        if !self.leaf.is_empty() || (self.spilled_leaves == 0 && self.chunk_leaves == 0) {
            self.finish_leaf().await?;
        }
        let total_leaves = self.spilled_leaves + self.chunk_leaves as BlockNo;
        let mut sink = BlockSink::new(file.clone(), start);

        // Leaves that went to the spill file, verified and re-sealed.
        if let Some(spill) = &self.spill {
            let mut done: BlockNo = 0;
            while done < self.spilled_leaves {
                let n = (self.spilled_leaves - done).min(LEAF_CHUNK_BLOCKS as BlockNo);
                let offset = block_offset(done);
                let (buf, res) = spill
                    .read_exact_at(IoBuffer::zeroed(n as usize * BLOCK_SIZE), offset)
                    .await;
                res.map_err(|e| {
                    BlockFileError::io(spill.path(), "reading index spill file", offset, e)
                })?;
                for (i, block) in buf.chunks_exact(BLOCK_SIZE).enumerate() {
                    let spill_blk = done + i as BlockNo;
                    verify_block(spill_blk, block)
                        .map_err(|r| BlockFileError::corrupt(spill.path(), spill_blk, r))?;
                    sink.push(|out| out[..PAYLOAD_SIZE].copy_from_slice(&block[..PAYLOAD_SIZE]))
                        .await?;
                }
                done += n;
            }
        }
        for i in 0..self.chunk_leaves {
            let block = &self.chunk[i * BLOCK_SIZE..(i + 1) * BLOCK_SIZE];
            sink.push(|out| out[..PAYLOAD_SIZE].copy_from_slice(&block[..PAYLOAD_SIZE]))
                .await?;
        }

        // Internal levels: (first key, block) of each node of the level below.
        let width = self.width;
        let mut child_keys = std::mem::take(&mut self.leaf_first_keys);
        let mut child_blocks: Vec<BlockNo> = (0..total_leaves).map(|i| start + i).collect();
        if child_keys.is_empty() {
            // Only an empty root leaf exists.
            debug_assert_eq!(total_leaves, 1);
        }
        let mut level: u8 = 0;
        while child_blocks.len() > 1 {
            level += 1;
            if level >= MAX_TREE_HEIGHT {
                return Err(BlockFileError::invalid(&self.path, "index tree too high"));
            }
            let mut next_keys = Vec::new();
            let mut next_blocks = Vec::new();
            let mut acc = NodeAccum::new(width);
            for (key, &blk) in child_keys.chunks_exact(width).zip(&child_blocks) {
                if !acc.try_push(key, u64::from(blk)) {
                    next_keys.extend_from_slice(acc.first_key());
                    next_blocks.push(sink.next_blk());
                    sink.push(|out| acc.encode_into(level, out)).await?;
                    acc.clear();
                    assert!(acc.try_push(key, u64::from(blk)));
                }
            }
            next_keys.extend_from_slice(acc.first_key());
            next_blocks.push(sink.next_blk());
            sink.push(|out| acc.encode_into(level, out)).await?;
            child_keys = next_keys;
            child_blocks = next_blocks;
        }
        let end = sink.finish().await?;
        Ok(IndexLayout {
            root: child_blocks[0],
            height: level + 1,
            end,
        })
    }
}
