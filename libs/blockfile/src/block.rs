//! Block geometry and the per-block checksum.
//!
//! Owns the constants that fix the physical layout ([`BLOCK_SIZE`],
//! [`PAYLOAD_SIZE`]) and the two operations every other module goes through
//! when a block crosses the disk boundary: [`seal_block`] before a write and
//! [`verify_block`] after a read.
//!
//! Invariants:
//! - every block of a block file is exactly [`BLOCK_SIZE`] bytes at an offset
//!   that is a multiple of [`BLOCK_SIZE`] (so direct IO alignment holds);
//! - the last [`CHECKSUM_SIZE`] bytes hold a little-endian CRC32C of the block
//!   number (4 bytes LE) followed by the first [`PAYLOAD_SIZE`] bytes. Mixing
//!   in the block number catches blocks that were written to, or read from,
//!   the wrong place, and makes an all-zero block (a hole) invalid.
//!
//! Callers: the writer seals blob and index blocks, the reader and the
//! vectored read path verify every block they get from disk.

/// Size of one block on disk.
pub const BLOCK_SIZE: usize = 8192;

/// Bytes at the end of each block holding the checksum.
pub const CHECKSUM_SIZE: usize = 4;

/// Usable bytes of one block (everything but the checksum trailer).
pub const PAYLOAD_SIZE: usize = BLOCK_SIZE - CHECKSUM_SIZE;

/// Block number within a file. Block 0 is the header.
pub type BlockNo = u32;

/// Checksum of `block[..PAYLOAD_SIZE]` as stored at block number `blkno`.
pub fn block_checksum(blkno: BlockNo, block: &[u8]) -> u32 {
    debug_assert_eq!(block.len(), BLOCK_SIZE);
    let seed = crc32c::crc32c(&blkno.to_le_bytes());
    crc32c::crc32c_append(seed, &block[..PAYLOAD_SIZE])
}

/// Writes the checksum trailer of a block that will be stored at `blkno`.
pub fn seal_block(blkno: BlockNo, block: &mut [u8]) {
    let sum = block_checksum(blkno, block);
    block[PAYLOAD_SIZE..BLOCK_SIZE].copy_from_slice(&sum.to_le_bytes());
}

/// Checks the trailer of a block read from `blkno`; on mismatch returns a
/// human-readable reason (the caller wraps it into an error with the path).
pub fn verify_block(blkno: BlockNo, block: &[u8]) -> Result<(), String> {
    if block.len() != BLOCK_SIZE {
        return Err(format!(
            "block has {} bytes, expected {BLOCK_SIZE}",
            block.len()
        ));
    }
    let stored = u32::from_le_bytes(block[PAYLOAD_SIZE..].try_into().expect("4 bytes"));
    let computed = block_checksum(blkno, block);
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    Ok(())
}

/// Byte offset of block `blkno` in the file.
pub fn block_offset(blkno: BlockNo) -> u64 {
    u64::from(blkno) * BLOCK_SIZE as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_verify() {
        let mut b = vec![0u8; BLOCK_SIZE];
        b[17] = 42;
        seal_block(7, &mut b);
        assert!(verify_block(7, &b).is_ok());
        // Same content at another block number is rejected.
        assert!(verify_block(8, &b).is_err());
        // An all-zero block (a hole) is never valid.
        assert!(verify_block(0, &[0u8; BLOCK_SIZE]).is_err());
        for pos in [0, 17, PAYLOAD_SIZE - 1, PAYLOAD_SIZE, BLOCK_SIZE - 1] {
            let mut c = b.clone();
            c[pos] ^= 0x01;
            assert!(verify_block(7, &c).is_err(), "flip at {pos} not detected");
        }
        assert!(verify_block(7, &b[..100]).is_err());
    }
}
