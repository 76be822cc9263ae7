//! Block 0: the file header.
//!
//! Owns the encoding of the header block and its validation on open. The
//! header is the last thing the writer puts on disk (before the final fsync),
//! so a file whose block 0 is missing, all zeros, fails its checksum or lacks
//! the completion marker was never finished and must not be trusted.
//!
//! Layout of the payload (all integers little-endian; offsets in bytes):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0      | 4    | magic (chosen by the caller per kind of file) |
//! | 4      | 2    | format version ([`FORMAT_VERSION`]) |
//! | 6      | 2    | flags, 0 in version 1 |
//! | 8      | 4    | total number of blocks in the file |
//! | 12     | 4    | first block of the blob area (always 1) |
//! | 16     | 4    | end block of the blob area (exclusive) |
//! | 20     | 4    | first block of the index |
//! | 24     | 4    | index root block |
//! | 28     | 1    | index tree height (1 = the root is a leaf) |
//! | 29     | 1    | index key width in bytes (1..=32) |
//! | 30     | 2    | user header length (0..=[`MAX_USER_HEADER`]) |
//! | 32     | 8    | length of the blob stream in bytes |
//! | 40     | 8    | number of index entries |
//! | 48     | 4    | largest stored blob (header + stored bytes) |
//! | 52     | 12   | reserved, 0 |
//! | 64     | n    | user header bytes |
//! | 8180   | 8    | completion marker `BLKFDONE` |
//! | 8188   | 4    | block checksum (see [`crate::block`]) |
//!
//! Called by the writer's `finish` and by `BlockFile::open`.

use bytes::Bytes;
use camino::Utf8Path;

use crate::block::{seal_block, verify_block, BlockNo, BLOCK_SIZE, PAYLOAD_SIZE};
use crate::error::{BlockFileError, Result};

/// Version written by this build; the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

/// Largest caller "user header" stored in block 0.
pub const MAX_USER_HEADER: usize = 4096;

/// Largest index key width.
pub const MAX_KEY_WIDTH: usize = 32;

pub(crate) const COMPLETION_MARKER: [u8; 8] = *b"BLKFDONE";
pub(crate) const MARKER_OFFSET: usize = PAYLOAD_SIZE - COMPLETION_MARKER.len();
pub(crate) const USER_HEADER_OFFSET: usize = 64;

/// Highest tree the reader accepts; 8 KiB nodes with 32-byte keys give a
/// fanout above 200, so 16 levels is far beyond any real file.
pub(crate) const MAX_TREE_HEIGHT: u8 = 16;

/// Parsed contents of block 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub magic: u32,
    pub total_blocks: BlockNo,
    pub blob_start_blk: BlockNo,
    pub blob_end_blk: BlockNo,
    pub index_start_blk: BlockNo,
    pub index_root_blk: BlockNo,
    pub tree_height: u8,
    pub key_width: u8,
    pub blob_stream_len: u64,
    pub index_entries: u64,
    pub max_blob_stored: u32,
    pub user_header: Bytes,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Number of blocks needed for a blob stream of `len` bytes.
pub(crate) fn blob_blocks(len: u64) -> u64 {
    len.div_ceil(PAYLOAD_SIZE as u64)
}

impl FileHeader {
    /// Serialises into a sealed block ready to be written at block 0.
    pub fn encode(&self, block: &mut [u8]) {
        assert_eq!(block.len(), BLOCK_SIZE);
        assert!(self.user_header.len() <= MAX_USER_HEADER);
        block.fill(0);
        block[0..4].copy_from_slice(&self.magic.to_le_bytes());
        block[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        block[8..12].copy_from_slice(&self.total_blocks.to_le_bytes());
        block[12..16].copy_from_slice(&self.blob_start_blk.to_le_bytes());
        block[16..20].copy_from_slice(&self.blob_end_blk.to_le_bytes());
        block[20..24].copy_from_slice(&self.index_start_blk.to_le_bytes());
        block[24..28].copy_from_slice(&self.index_root_blk.to_le_bytes());
        block[28] = self.tree_height;
        block[29] = self.key_width;
        block[30..32].copy_from_slice(&(self.user_header.len() as u16).to_le_bytes());
        block[32..40].copy_from_slice(&self.blob_stream_len.to_le_bytes());
        block[40..48].copy_from_slice(&self.index_entries.to_le_bytes());
        block[48..52].copy_from_slice(&self.max_blob_stored.to_le_bytes());
        block[USER_HEADER_OFFSET..USER_HEADER_OFFSET + self.user_header.len()]
            .copy_from_slice(&self.user_header);
        block[MARKER_OFFSET..PAYLOAD_SIZE].copy_from_slice(&COMPLETION_MARKER);
        seal_block(0, block);
    }

    /// Parses and validates block 0 as read from `path`.
    pub fn decode(path: &Utf8Path, block: &[u8], expected_magic: u32) -> Result<FileHeader> {
        if block.iter().all(|&b| b == 0) {
            return Err(BlockFileError::NoHeader {
                path: path.to_owned(),
                reason: "block 0 is all zeros".into(),
            });
        }
        verify_block(0, block).map_err(|r| BlockFileError::corrupt(path, 0, r))?;
        let bad = |reason: String| BlockFileError::corrupt(path, 0, reason);
        if block[MARKER_OFFSET..PAYLOAD_SIZE] != COMPLETION_MARKER {
            return Err(bad("completion marker missing".into()));
        }
        let magic = u32_at(block, 0);
        if magic != expected_magic {
            return Err(BlockFileError::BadMagic {
                path: path.to_owned(),
                expected: expected_magic,
                found: magic,
            });
        }
        let version = u16_at(block, 4);
        if version != FORMAT_VERSION {
            return Err(BlockFileError::UnsupportedVersion {
                path: path.to_owned(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let user_len = u16_at(block, 30) as usize;
        if user_len > MAX_USER_HEADER {
            return Err(bad(format!(
                "user header length {user_len} exceeds {MAX_USER_HEADER}"
            )));
        }
        let h = FileHeader {
            magic,
            total_blocks: u32_at(block, 8),
            blob_start_blk: u32_at(block, 12),
            blob_end_blk: u32_at(block, 16),
            index_start_blk: u32_at(block, 20),
            index_root_blk: u32_at(block, 24),
            tree_height: block[28],
            key_width: block[29],
            blob_stream_len: u64_at(block, 32),
            index_entries: u64_at(block, 40),
            max_blob_stored: u32_at(block, 48),
            user_header: Bytes::copy_from_slice(
                &block[USER_HEADER_OFFSET..USER_HEADER_OFFSET + user_len],
            ),
        };
        h.check_consistency().map_err(bad)?;
        Ok(h)
    }

    /// Cross-checks the geometry fields against each other.
    fn check_consistency(&self) -> std::result::Result<(), String> {
        if self.blob_start_blk != 1 {
            return Err(format!(
                "blob area starts at block {}, expected 1",
                self.blob_start_blk
            ));
        }
        let blob_blocks = blob_blocks(self.blob_stream_len);
        if u64::from(self.blob_end_blk) != 1 + blob_blocks {
            return Err(format!(
                "blob area ends at block {} but {} stream bytes need {} blocks",
                self.blob_end_blk, self.blob_stream_len, blob_blocks
            ));
        }
        if self.index_start_blk != self.blob_end_blk {
            return Err(format!(
                "index starts at block {}, expected {}",
                self.index_start_blk, self.blob_end_blk
            ));
        }
        if self.total_blocks == 0 || self.index_root_blk != self.total_blocks - 1 {
            return Err(format!(
                "index root {} is not the last of {} blocks",
                self.index_root_blk, self.total_blocks
            ));
        }
        if self.index_root_blk < self.index_start_blk {
            return Err(format!(
                "index root {} lies before the index start {}",
                self.index_root_blk, self.index_start_blk
            ));
        }
        if self.tree_height == 0 || self.tree_height > MAX_TREE_HEIGHT {
            return Err(format!(
                "index tree height {} out of range",
                self.tree_height
            ));
        }
        if self.key_width == 0 || self.key_width as usize > MAX_KEY_WIDTH {
            return Err(format!("index key width {} out of range", self.key_width));
        }
        if u64::from(self.max_blob_stored) > self.blob_stream_len {
            return Err(format!(
                "largest blob {} exceeds the blob stream length {}",
                self.max_blob_stored, self.blob_stream_len
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileHeader {
        FileHeader {
            magic: 0xD17A_0001,
            total_blocks: 10,
            blob_start_blk: 1,
            blob_end_blk: 4,
            index_start_blk: 4,
            index_root_blk: 9,
            tree_height: 2,
            key_width: 26,
            blob_stream_len: 3 * PAYLOAD_SIZE as u64 - 5,
            index_entries: 1234,
            max_blob_stored: 999,
            user_header: Bytes::from_static(b"key range and lsn range"),
        }
    }

    #[test]
    fn roundtrip_and_rejections() {
        let p = Utf8Path::new("/x/layer");
        let h = sample();
        let mut block = vec![0u8; BLOCK_SIZE];
        h.encode(&mut block);
        assert_eq!(FileHeader::decode(p, &block, h.magic).unwrap(), h);

        let e = FileHeader::decode(p, &block, 0x1234).unwrap_err();
        assert!(
            matches!(
                e,
                BlockFileError::BadMagic {
                    found: 0xD17A_0001,
                    ..
                }
            ),
            "{e}"
        );

        let e = FileHeader::decode(p, &[0u8; BLOCK_SIZE], h.magic).unwrap_err();
        assert!(matches!(e, BlockFileError::NoHeader { .. }), "{e}");

        // A future version, correctly sealed, is rejected by version.
        let mut v2 = block.clone();
        v2[4] = 2;
        seal_block(0, &mut v2);
        let e = FileHeader::decode(p, &v2, h.magic).unwrap_err();
        assert!(
            matches!(e, BlockFileError::UnsupportedVersion { found: 2, .. }),
            "{e}"
        );

        // Sealed but inconsistent geometry is corrupt.
        let mut bad = h.clone();
        bad.index_start_blk = 5;
        bad.encode(&mut block);
        let e = FileHeader::decode(p, &block, h.magic).unwrap_err();
        assert!(matches!(e, BlockFileError::Corrupt { block: 0, .. }), "{e}");
        assert!(e.to_string().contains("/x/layer"), "{e}");
    }
}
