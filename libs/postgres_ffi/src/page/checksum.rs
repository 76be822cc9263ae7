//! PostgreSQL's data page checksum (`pg_checksum_page`, `checksum_impl.h`).
//!
//! The algorithm: the page is viewed as 64 rows of 32 little-endian `u32`
//! words; 32 independent FNV-1a-like lanes (each seeded with a fixed offset)
//! absorb one column each, followed by two extra rounds of zeros for mixing;
//! the lanes are XOR-folded, the block number is XORed in (so a page copied
//! to the wrong place fails), and the result is reduced to 1..=65535 so that
//! zero never appears as a checksum. `pd_checksum` itself counts as zero.
//!
//! Used by WAL redo / basebackup to stamp pages when the cluster has data
//! checksums, and by tests to verify pages read from a data directory.

use crate::BLCKSZ;

const N_SUMS: usize = 32;
const FNV_PRIME: u32 = 16777619;

/// Per-lane seeds; fixed by the on-disk format.
const CHECKSUM_BASE_OFFSETS: [u32; N_SUMS] = [
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
];

/// Byte offset of `pd_checksum` in the page header.
const PD_CHECKSUM_OFFSET: usize = 8;

#[inline]
fn mix(sum: u32, value: u32) -> u32 {
    let tmp = sum ^ value;
    tmp.wrapping_mul(FNV_PRIME) ^ (tmp >> 17)
}

/// The checksum PostgreSQL would store in `pd_checksum` of `page` at block
/// `blkno` (block number within the whole fork, i.e. including
/// `segno * RELSEG_SIZE`). The current `pd_checksum` value is ignored.
///
/// PostgreSQL never checksums new (all-zero header) pages; computing one for
/// them is harmless but meaningless, so callers skip pages with `pd_upper == 0`.
pub fn pg_checksum_page(page: &[u8; BLCKSZ], blkno: u32) -> u16 {
    let mut sums = CHECKSUM_BASE_OFFSETS;
    for (row_idx, row) in page.chunks_exact(N_SUMS * 4).enumerate() {
        for (lane, word) in row.chunks_exact(4).enumerate() {
            let offset = row_idx * N_SUMS * 4 + lane * 4;
            let value = if offset == PD_CHECKSUM_OFFSET {
                // pd_checksum (2 bytes) is treated as zero; the other half of
                // this word is pd_flags and is included as usual.
                u32::from_le_bytes([0, 0, word[2], word[3]])
            } else {
                u32::from_le_bytes([word[0], word[1], word[2], word[3]])
            };
            sums[lane] = mix(sums[lane], value);
        }
    }
    for _ in 0..2 {
        for s in sums.iter_mut() {
            *s = mix(*s, 0);
        }
    }
    let folded = sums.iter().fold(0u32, |acc, s| acc ^ s) ^ blkno;
    ((folded % 65535) + 1) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_stored_checksum_and_depends_on_blkno() {
        let mut page = [0u8; BLCKSZ];
        page[12] = 24; // pd_lower
        page[14] = 0x20; // pd_upper = 0x2000
        page[16] = 0x20;
        let a = pg_checksum_page(&page, 0);
        page[8] = 0xAB;
        page[9] = 0xCD;
        assert_eq!(pg_checksum_page(&page, 0), a);
        assert_ne!(pg_checksum_page(&page, 1), a);
        page[10] = 1; // pd_flags is covered
        assert_ne!(pg_checksum_page(&page, 0), a);
        assert_ne!(a, 0);
    }
}
