//! CRC-32C of WAL records, tuned for their sizes.
//!
//! Most records of an OLTP stream are under 200 bytes. For those, the
//! `crc32c` crate's general routine spends about as long on its alignment
//! prologue and byte-wise tail as on the data (up to 14 single-byte steps of
//! 3 cycles each, on every record). Unaligned 8-byte loads cost nothing
//! extra on x86-64, so short inputs here take 8-byte steps from the first
//! byte and finish with at most one 4-, one 2- and one 1-byte step. Inputs
//! of [`SHORT_MAX`] bytes or more, and CPUs without SSE 4.2, go to the
//! crate, whose three-way interleaved routine is faster on long data.
//!
//! Callers: record CRC checks of the decoder and the encoder
//! ([`super::record::compute_record_crc`]).

/// Longest input taken by the short-input routine.
const SHORT_MAX: usize = 256;

/// `crc32c::crc32c_append` with the same result, faster on short input.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() < SHORT_MAX && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2, checked just above.
        return unsafe { short_sse42(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let mut words = data.chunks_exact(8);
    let mut c = u64::from(!crc);
    for w in &mut words {
        let w: [u8; 8] = w.try_into().unwrap_or_default();
        c = _mm_crc32_u64(c, u64::from_le_bytes(w));
    }
    let mut c = c as u32;
    let mut rest = words.remainder();
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        c = _mm_crc32_u32(c, u32::from_le_bytes(*w));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        c = _mm_crc32_u16(c, u16::from_le_bytes(*w));
        rest = r;
    }
    if let Some(&b) = rest.first() {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_crate_at_every_length_and_alignment() {
        let data: Vec<u8> = (0..2 * SHORT_MAX as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for len in 0..data.len() - start {
                let s = &data[start..start + len];
                for seed in [0, 0xdead_beef] {
                    assert_eq!(
                        crc32c_append(seed, s),
                        crc32c::crc32c_append(seed, s),
                        "start {start} len {len}"
                    );
                }
            }
        }
    }
}
