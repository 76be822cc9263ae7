//! GIN's compressed posting lists (`ginpostinglist.c` equivalents): item
//! pointers, the varbyte codec, segment decoding and encoding, and the
//! duplicate-free merge redo uses for `GIN_SEGMENT_ADDITEMS`.
//!
//! Segment layout (2-byte aligned, little-endian):
//!
//! | offset | field |
//! |---|---|
//! | 0 | first item, an uncompressed 6-byte item pointer |
//! | 6 | `nbytes` u16: length of the varbyte stream |
//! | 8 | `nbytes` bytes of varbyte-encoded deltas, plus one zero pad byte when `nbytes` is odd |
//!
//! An item pointer is `(block hi u16, block lo u16, offset u16)`: the block
//! number is stored as two 16-bit halves, high half first (`BlockIdData`).
//! For encoding it becomes the integer `block << 11 | offset`; each later
//! item is stored as the difference to its predecessor, 7 bits per byte,
//! low bits first, high bit set on every byte but the last. A valid delta
//! needs at most 7 bytes (43 bits); the 7th byte contributes all 8 of its
//! bits.
//!
//! Everything here is bounds-checked: a truncated segment or varbyte gives a
//! [`CodecError`] instead of reading past the data.

use std::cmp::Ordering;

/// Bytes before the varbyte stream of a segment.
pub const SEGMENT_HEADER: usize = 8;
/// Size of one item pointer on disk.
pub const TID_SIZE: usize = 6;
/// Offset numbers get 11 bits in the integer form.
const OFFSET_BITS: u32 = 11;
/// Longest encoding of a valid delta.
const MAX_VARBYTE: usize = 7;

/// A heap item pointer as GIN stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tid {
    pub blk: u32,
    pub off: u16,
}

impl Tid {
    /// Reads the 6-byte on-disk form; `None` if `b` is shorter.
    pub fn read(b: &[u8]) -> Option<Tid> {
        let b = b.get(..TID_SIZE)?;
        let hi = u16::from_le_bytes([b[0], b[1]]) as u32;
        let lo = u16::from_le_bytes([b[2], b[3]]) as u32;
        Some(Tid {
            blk: (hi << 16) | lo,
            off: u16::from_le_bytes([b[4], b[5]]),
        })
    }

    pub fn bytes(self) -> [u8; TID_SIZE] {
        let hi = ((self.blk >> 16) as u16).to_le_bytes();
        let lo = (self.blk as u16).to_le_bytes();
        let off = self.off.to_le_bytes();
        [hi[0], hi[1], lo[0], lo[1], off[0], off[1]]
    }

    /// The integer the codec works on. Like PostgreSQL, an offset wider
    /// than 11 bits is not masked (it cannot occur in valid data).
    fn as_u64(self) -> u64 {
        ((self.blk as u64) << OFFSET_BITS) | self.off as u64
    }

    fn from_u64(v: u64) -> Tid {
        Tid {
            blk: (v >> OFFSET_BITS) as u32,
            off: (v & ((1 << OFFSET_BITS) - 1)) as u16,
        }
    }

    /// `ginCompareItemPointers`: block first, then offset.
    fn key(self) -> u64 {
        ((self.blk as u64) << 32) | self.off as u64
    }
}

impl PartialOrd for Tid {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tid {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// What was wrong with posting-list bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Fewer than 8 bytes where a segment header should be.
    TruncatedHeader { at: usize, have: usize },
    /// The segment's size runs past the bytes available.
    TruncatedSegment { at: usize, size: usize, have: usize },
    /// A varbyte integer continues past the end of the stream.
    TruncatedVarbyte { at: usize },
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::TruncatedHeader { at, have } => {
                write!(f, "posting list segment header at {at} truncated ({have} bytes left)")
            }
            CodecError::TruncatedSegment { at, size, have } => write!(
                f,
                "posting list segment at {at} of {size} bytes runs past the data ({have} bytes left)"
            ),
            CodecError::TruncatedVarbyte { at } => {
                write!(f, "varbyte integer at {at} runs past the end of its segment")
            }
        }
    }
}

fn short_align(n: usize) -> usize {
    (n + 1) & !1
}

/// `SizeOfGinPostingList` of the segment starting at `buf[at..]`, checked
/// to lie within `buf`.
pub fn segment_size(buf: &[u8], at: usize) -> Result<usize, CodecError> {
    let have = buf.len().saturating_sub(at);
    let hdr = buf
        .get(at..at.saturating_add(SEGMENT_HEADER))
        .ok_or(CodecError::TruncatedHeader { at, have })?;
    let nbytes = u16::from_le_bytes([hdr[6], hdr[7]]) as usize;
    let size = SEGMENT_HEADER + short_align(nbytes);
    if size > have {
        return Err(CodecError::TruncatedSegment { at, size, have });
    }
    Ok(size)
}

/// Decodes one varbyte integer from `stream[*pos..]`.
fn decode_varbyte(stream: &[u8], pos: &mut usize) -> Result<u64, CodecError> {
    let start = *pos;
    let mut val = 0u64;
    for i in 0..MAX_VARBYTE {
        let c = *stream
            .get(*pos)
            .ok_or(CodecError::TruncatedVarbyte { at: start })? as u64;
        *pos += 1;
        if i == MAX_VARBYTE - 1 {
            // The last possible byte has no continuation bit: all 8 bits
            // are value bits.
            return Ok(val | (c << (7 * i)));
        }
        val |= (c & 0x7F) << (7 * i);
        if c & 0x80 == 0 {
            break;
        }
    }
    Ok(val)
}

fn encode_varbyte(mut val: u64, out: &mut Vec<u8>) {
    while val > 0x7F {
        out.push(0x80 | (val & 0x7F) as u8);
        val >>= 7;
    }
    out.push(val as u8);
}

/// Decodes the segment at `buf[at..]` (`ginPostingListDecode`), appending
/// its items to `out`; returns the segment's size.
pub fn decode_segment(buf: &[u8], at: usize, out: &mut Vec<Tid>) -> Result<usize, CodecError> {
    let size = segment_size(buf, at)?;
    let seg = &buf[at..at + size];
    let first = Tid::read(seg).ok_or(CodecError::TruncatedHeader {
        at,
        have: seg.len(),
    })?;
    let nbytes = u16::from_le_bytes([seg[6], seg[7]]) as usize;
    let stream = &seg[SEGMENT_HEADER..SEGMENT_HEADER + nbytes];
    out.push(first);
    let mut val = first.as_u64();
    let mut pos = 0;
    while pos < stream.len() {
        let delta_at = at + SEGMENT_HEADER + pos;
        let delta = decode_varbyte(stream, &mut pos)
            .map_err(|_| CodecError::TruncatedVarbyte { at: delta_at })?;
        val = val.wrapping_add(delta);
        out.push(Tid::from_u64(val));
    }
    Ok(size)
}

/// `ginCompressPostingList`: encodes as many of `items` (non-empty) as fit
/// in a segment of at most `maxsize` bytes. Returns the segment (its pad
/// byte zeroed) and how many items it holds.
pub fn compress(items: &[Tid], maxsize: usize) -> (Vec<u8>, usize) {
    let maxsize = maxsize & !1;
    let maxbytes = maxsize.saturating_sub(SEGMENT_HEADER);
    let Some(&first) = items.first() else {
        return (Vec::new(), 0);
    };
    let mut seg = Vec::with_capacity(maxsize.min(SEGMENT_HEADER + items.len() * 2));
    seg.extend_from_slice(&first.bytes());
    seg.extend_from_slice(&[0, 0]);
    let mut prev = first.as_u64();
    let mut packed = 1;
    let mut buf = Vec::with_capacity(10);
    for item in &items[1..] {
        let val = item.as_u64();
        buf.clear();
        encode_varbyte(val.wrapping_sub(prev), &mut buf);
        let used = seg.len() - SEGMENT_HEADER;
        if buf.len() > maxbytes - used {
            break;
        }
        seg.extend_from_slice(&buf);
        prev = val;
        packed += 1;
    }
    let nbytes = seg.len() - SEGMENT_HEADER;
    seg[6..8].copy_from_slice(&(nbytes as u16).to_le_bytes());
    if nbytes % 2 == 1 {
        seg.push(0);
    }
    (seg, packed)
}

/// `ginMergeItemPointers`: merges two sorted lists, keeping one copy of
/// items present in both. `a` are the new items, `b` the existing ones; the
/// case analysis (append either way round when the ranges do not overlap)
/// follows PostgreSQL so that unsorted input merges the same way.
pub fn merge(a: &[Tid], b: &[Tid]) -> Vec<Tid> {
    let mut dst = Vec::with_capacity(a.len() + b.len());
    match (a.first(), a.last(), b.first(), b.last()) {
        (Some(_), Some(&a_last), Some(&b_first), Some(_)) if a_last < b_first => {
            dst.extend_from_slice(a);
            dst.extend_from_slice(b);
        }
        (Some(&a_first), Some(_), Some(_), Some(&b_last)) if b_last < a_first => {
            dst.extend_from_slice(b);
            dst.extend_from_slice(a);
        }
        (Some(_), _, Some(_), _) => {
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                match a[i].cmp(&b[j]) {
                    Ordering::Greater => {
                        dst.push(b[j]);
                        j += 1;
                    }
                    Ordering::Equal => {
                        dst.push(b[j]);
                        j += 1;
                        i += 1;
                    }
                    Ordering::Less => {
                        dst.push(a[i]);
                        i += 1;
                    }
                }
            }
            dst.extend_from_slice(&a[i..]);
            dst.extend_from_slice(&b[j..]);
        }
        _ => {
            dst.extend_from_slice(a);
            dst.extend_from_slice(b);
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(blk: u32, off: u16) -> Tid {
        Tid { blk, off }
    }

    #[test]
    fn tid_layout_is_block_halves_high_first() {
        let t = tid(0x0001_0002, 7);
        assert_eq!(t.bytes(), [1, 0, 2, 0, 7, 0]);
        assert_eq!(Tid::read(&t.bytes()), Some(t));
        assert!(tid(1, 0) > tid(0, 0xFFFF));
    }

    #[test]
    fn varbyte_round_trip_and_sizes() {
        for (v, len) in [
            (0u64, 1),
            (0x7F, 1),
            (0x80, 2),
            (1 << 14, 3),
            ((1 << 43) - 1, 7),
        ] {
            let mut b = Vec::new();
            encode_varbyte(v, &mut b);
            assert_eq!(b.len(), len, "{v:#x}");
            let mut pos = 0;
            assert_eq!(decode_varbyte(&b, &mut pos), Ok(v));
            assert_eq!(pos, len);
        }
        assert!(decode_varbyte(&[0x80, 0x80], &mut 0).is_err());
    }

    #[test]
    fn compress_decode_round_trip_with_padding() {
        let items = [tid(0, 1), tid(0, 2), tid(3, 5), tid(100_000, 9)];
        let (seg, n) = compress(&items, 8192);
        assert_eq!(n, 4);
        // Deltas: 1 (1 byte), 6147 (2 bytes), about 2^27.6 (4 bytes): 7
        // bytes, padded to 8.
        assert_eq!(u16::from_le_bytes([seg[6], seg[7]]), 7);
        assert_eq!(seg.len(), 16);
        assert_eq!(seg[15], 0);
        let mut out = Vec::new();
        assert_eq!(decode_segment(&seg, 0, &mut out), Ok(16));
        assert_eq!(out, items);
        // Odd stream: zero pad byte.
        let (seg, _) = compress(&[tid(0, 1), tid(0, 2)], 8192);
        assert_eq!(seg, [0, 0, 0, 0, 1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn compress_stops_when_full() {
        let items: Vec<Tid> = (1..100).map(|i| tid(i * 1000, 1)).collect();
        let (seg, n) = compress(&items, 21);
        assert!(seg.len() <= 20);
        assert!(n < items.len());
        let mut out = Vec::new();
        decode_segment(&seg, 0, &mut out).unwrap();
        assert_eq!(out, items[..n]);
    }

    #[test]
    fn merge_like_postgres() {
        let a = [tid(1, 1), tid(1, 3)];
        let b = [tid(1, 2), tid(1, 3), tid(2, 1)];
        assert_eq!(merge(&a, &b), [tid(1, 1), tid(1, 2), tid(1, 3), tid(2, 1)]);
        assert_eq!(merge(&b[2..], &a), [tid(1, 1), tid(1, 3), tid(2, 1)]);
        assert_eq!(merge(&[], &a), a);
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(segment_size(&[0; 7], 0).is_err());
        let mut seg = compress(&[tid(0, 1), tid(0, 2)], 8192).0;
        seg[6] = 9;
        assert!(decode_segment(&seg, 0, &mut Vec::new()).is_err());
        seg[6] = 1;
        seg[8] = 0x80;
        assert!(decode_segment(&seg, 0, &mut Vec::new()).is_err());
    }
}
