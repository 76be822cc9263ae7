//! Decompressor for PostgreSQL's built-in LZ format ("pglz"), used for
//! `wal_compression = pglz` full-page images (and TOAST, which we do not read).
//!
//! The format is a sequence of groups: one control byte, then up to eight
//! items whose kinds are given by the control bits, least significant first.
//! A 0 bit is a literal byte. A 1 bit is a back-reference of 2 or 3 bytes:
//! the first byte holds `length - 3` in its low nibble and the high 4 bits of
//! a 12-bit offset in its high nibble, the second byte the low 8 offset bits;
//! a length nibble of 15 means a third byte adds 0..=255 to a length of 18.
//! The reference copies `length` bytes starting `offset` bytes back in the
//! output, and may overlap the bytes it is producing (run-length behaviour).
//! There is no header: the caller knows the decompressed size.
//!
//! Untrusted input: every read and back-reference is bounds-checked and a
//! zero offset is rejected (it would make no progress).

/// Why compressed input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PglzError {
    #[error("pglz input ends inside a back-reference tag at input offset {at}")]
    TruncatedTag { at: usize },
    #[error("pglz back-reference at input offset {at} has offset {offset} but only {produced} bytes were produced")]
    BadOffset {
        at: usize,
        offset: usize,
        produced: usize,
    },
    #[error("pglz produced {produced} bytes and consumed {consumed} of {input_len} input bytes; expected exactly {expected} output bytes from all input")]
    Incomplete {
        produced: usize,
        consumed: usize,
        input_len: usize,
        expected: usize,
    },
}

/// Decompresses `src` into exactly `out.len()` bytes (`pglz_decompress` with
/// `check_complete = true`): the input must be consumed exactly and fill the
/// output exactly, which is what a full-page image restore needs.
pub fn decompress_exact(src: &[u8], out: &mut [u8]) -> Result<(), PglzError> {
    let (consumed, produced) = decompress_into(src, out)?;
    if consumed != src.len() || produced != out.len() {
        return Err(PglzError::Incomplete {
            produced,
            consumed,
            input_len: src.len(),
            expected: out.len(),
        });
    }
    Ok(())
}

/// Decompresses as much as fits into `out`; returns (input bytes consumed,
/// output bytes produced). Stops when either side is exhausted.
pub fn decompress_into(src: &[u8], out: &mut [u8]) -> Result<(usize, usize), PglzError> {
    let mut sp = 0usize;
    let mut dp = 0usize;
    while sp < src.len() && dp < out.len() {
        let mut ctrl = src[sp];
        sp += 1;
        for _ in 0..8 {
            if sp >= src.len() || dp >= out.len() {
                break;
            }
            if ctrl & 1 != 0 {
                let tag_at = sp;
                let (b0, b1) = match (src.get(sp), src.get(sp + 1)) {
                    (Some(&b0), Some(&b1)) => (b0, b1),
                    _ => return Err(PglzError::TruncatedTag { at: tag_at }),
                };
                sp += 2;
                let mut len = (b0 & 0x0F) as usize + 3;
                let offset = (((b0 & 0xF0) as usize) << 4) | b1 as usize;
                if len == 18 {
                    let Some(&extra) = src.get(sp) else {
                        return Err(PglzError::TruncatedTag { at: tag_at });
                    };
                    sp += 1;
                    len += extra as usize;
                }
                if offset == 0 || offset > dp {
                    return Err(PglzError::BadOffset {
                        at: tag_at,
                        offset,
                        produced: dp,
                    });
                }
                // Never write past the requested size (PostgreSQL clips too).
                let len = len.min(out.len() - dp);
                // Byte-by-byte so overlapping references repeat the pattern,
                // as the format intends.
                for i in 0..len {
                    out[dp + i] = out[dp + i - offset];
                }
                dp += len;
            } else {
                out[dp] = src[sp];
                dp += 1;
                sp += 1;
            }
            ctrl >>= 1;
        }
    }
    Ok((sp, dp))
}

/// A simple pglz compressor (greedy, one candidate per 3-byte prefix).
///
/// Its output is valid pglz that [`decompress_exact`] and PostgreSQL both
/// decode, but it is not byte-identical to PostgreSQL's compressor and makes
/// no attempt at PostgreSQL's heuristics (it always compresses). Meant for
/// synthetic WAL and tests, where only decodability matters.
pub fn compress(src: &[u8]) -> Vec<u8> {
    const WINDOW: usize = 4095;
    const MAX_MATCH: usize = 273;
    let mut out = Vec::with_capacity(src.len() + src.len() / 8 + 1);
    // Last position seen for each 3-byte prefix hash.
    let mut last = vec![usize::MAX; 1 << 12];
    let hash = |i: usize| -> usize {
        let v = (src[i] as usize) << 8 ^ (src[i + 1] as usize) << 4 ^ src[i + 2] as usize;
        v & 0xFFF
    };
    let mut i = 0;
    while i < src.len() {
        let ctrl_pos = out.len();
        out.push(0u8);
        for bit in 0..8 {
            if i >= src.len() {
                break;
            }
            let mut best_len = 0;
            let mut best_off = 0;
            if i + 3 <= src.len() {
                let h = hash(i);
                let cand = last[h];
                last[h] = i;
                if cand != usize::MAX && i - cand <= WINDOW {
                    let mut l = 0;
                    while l < MAX_MATCH && i + l < src.len() && src[cand + l] == src[i + l] {
                        l += 1;
                    }
                    if l >= 3 {
                        best_len = l;
                        best_off = i - cand;
                    }
                }
            }
            if best_len >= 3 {
                out[ctrl_pos] |= 1 << bit;
                let hi = ((best_off >> 4) & 0xF0) as u8;
                if best_len >= 18 {
                    out.push(hi | 0x0F);
                    out.push((best_off & 0xFF) as u8);
                    out.push((best_len - 18) as u8);
                } else {
                    out.push(hi | (best_len - 3) as u8);
                    out.push((best_off & 0xFF) as u8);
                }
                // Index the skipped positions so later matches can use them.
                for j in i + 1..(i + best_len).min(src.len().saturating_sub(2)) {
                    last[hash(j)] = j;
                }
                i += best_len;
            } else {
                out.push(src[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn literal_and_overlapping_reference() {
        // "11234" literally, then a 16-byte reference at offset 4.
        let src = [0b0010_0000u8, b'1', b'1', b'2', b'3', b'4', 0x0D, 0x04];
        let mut out = [0u8; 21];
        decompress_exact(&src, &mut out).unwrap();
        assert_eq!(&out, b"112341234123412341234");
    }

    #[test]
    fn errors() {
        let mut out = [0u8; 8];
        assert!(matches!(
            decompress_exact(&[0x01, 0x00, 0x01], &mut out),
            Err(PglzError::BadOffset { offset: 1, .. })
        ));
        assert!(matches!(
            decompress_exact(&[0x02, b'a', 0x0F], &mut out),
            Err(PglzError::TruncatedTag { at: 2 })
        ));
        assert!(matches!(
            decompress_exact(&[0x00, b'a'], &mut out),
            Err(PglzError::Incomplete { produced: 1, .. })
        ));
        // Offset 0 would loop forever in a naive decoder.
        assert!(matches!(
            decompress_exact(&[0x02, b'a', 0x00, 0x00], &mut out),
            Err(PglzError::BadOffset { offset: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..3000)) {
            let c = compress(&data);
            let mut out = vec![0u8; data.len()];
            decompress_exact(&c, &mut out).unwrap();
            prop_assert_eq!(out, data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), size in 0usize..9000) {
            let mut out = vec![0u8; size];
            let _ = decompress_exact(&data, &mut out);
        }
    }
}
