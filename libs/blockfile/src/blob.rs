//! Blob encoding: the length header in front of every blob, and compression.
//!
//! A blob is a length header followed by its stored bytes, placed in the blob
//! stream (the concatenation of the payloads of the blob-area blocks; see
//! [`crate::block`]). Header forms:
//!
//! - **short**, 1 byte, top bit clear: `0lllllll`, an uncompressed blob of
//!   0..=127 bytes;
//! - **long**, 4 bytes big-endian, top bit set: `1ccc` then a 28-bit stored
//!   length. `ccc` is the compression: 0 = none, 1 = zstd, others reserved
//!   (rejected as corruption).
//!
//! The writer never lets a 4-byte header straddle two blocks (it skips to the
//! next block first), so a blob's header always sits in the block its
//! [`BlobRef`] points into.
//!
//! zstd frames carry their decompressed size; the reader checks it against a
//! caller limit before allocating, and decompresses into a buffer of at most
//! that limit, so a "zstd bomb" yields an error, never an unbounded allocation.
//!
//! Called by the writer (`encode_header`, compression) and by the blob read
//! paths (`decode_header`, `decompress_bounded`).

use std::cmp::Ordering;

/// Reference to a blob: its byte offset in the blob stream.
///
/// Values are always below `2^BlobRef::BITS`, so callers may pack flags into
/// the high bits of a `u64` that holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobRef(pub u64);

impl BlobRef {
    /// Number of low bits a blob offset can occupy.
    pub const BITS: u32 = 44;

    /// Offset of the blob in the blob stream.
    pub fn offset(self) -> u64 {
        self.0
    }
}

/// Largest blob stream (exclusive); keeps [`BlobRef`] within [`BlobRef::BITS`].
pub const MAX_BLOB_STREAM: u64 = 1 << BlobRef::BITS;

/// Largest stored (possibly compressed) blob length a header can express.
pub const MAX_BLOB_LEN: usize = (1 << 28) - 1;

/// zstd level used for compressed blobs.
pub const ZSTD_LEVEL: i32 = 1;

const SHORT_MAX: usize = 0x7f;
const LONG_FLAG: u32 = 0x8000_0000;
const COMPRESSION_SHIFT: u32 = 28;
const LEN_MASK: u32 = (1 << COMPRESSION_SHIFT) - 1;

/// How a blob's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Zstd,
}

/// Decoded blob header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobHeader {
    /// Bytes taken by the header itself (1 or 4).
    pub header_len: usize,
    /// Stored length following the header.
    pub stored_len: usize,
    pub compression: Compression,
}

/// Encodes a header; returns the buffer and how many of its bytes are used.
pub(crate) fn encode_header(stored_len: usize, compression: Compression) -> ([u8; 4], usize) {
    assert!(stored_len <= MAX_BLOB_LEN);
    if compression == Compression::None && stored_len <= SHORT_MAX {
        return ([stored_len as u8, 0, 0, 0], 1);
    }
    let code: u32 = match compression {
        Compression::None => 0,
        Compression::Zstd => 1,
    };
    let word = LONG_FLAG | (code << COMPRESSION_SHIFT) | stored_len as u32;
    (word.to_be_bytes(), 4)
}

/// Header length implied by the first header byte.
pub(crate) fn header_len(first: u8) -> usize {
    if first & 0x80 == 0 {
        1
    } else {
        4
    }
}

/// Decodes a header from `bytes` (which must hold at least `header_len` bytes).
pub(crate) fn decode_header(bytes: &[u8]) -> Result<BlobHeader, String> {
    let first = *bytes.first().ok_or("empty blob header")?;
    if header_len(first) == 1 {
        return Ok(BlobHeader {
            header_len: 1,
            stored_len: first as usize,
            compression: Compression::None,
        });
    }
    let word = u32::from_be_bytes(
        bytes
            .get(..4)
            .ok_or("blob header cut short")?
            .try_into()
            .expect("4 bytes"),
    );
    let compression = match (word & !LONG_FLAG) >> COMPRESSION_SHIFT {
        0 => Compression::None,
        1 => Compression::Zstd,
        other => return Err(format!("unknown blob compression code {other}")),
    };
    Ok(BlobHeader {
        header_len: 4,
        stored_len: (word & LEN_MASK) as usize,
        compression,
    })
}

/// Outcome of a bounded decompression.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecompressError {
    /// The data would decompress to more than the limit.
    TooLarge,
    /// The data is not a valid zstd frame.
    Invalid(String),
}

/// Decompresses one zstd frame, refusing output larger than `limit` bytes.
pub(crate) fn decompress_bounded(src: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let capacity = match zstd::zstd_safe::get_frame_content_size(src) {
        Ok(Some(n)) => match n.cmp(&(limit as u64)) {
            Ordering::Greater => return Err(DecompressError::TooLarge),
            _ => n as usize,
        },
        // No size recorded: decompress into a buffer of the limit; zstd
        // fails rather than writing past it.
        Ok(None) => limit,
        Err(e) => {
            return Err(DecompressError::Invalid(format!(
                "bad zstd frame header: {e:?}"
            )))
        }
    };
    // A decompression context costs a large allocation and setup; creating
    // one per page showed up as the top cost of warm-ish page reads, so
    // each thread keeps one.
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let result = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(src, capacity),
            None => Err(std::io::Error::other("no zstd decompressor")),
        }
    });
    let out = result.map_err(|e| {
        if capacity == limit && e.to_string().contains("Destination buffer is too small") {
            DecompressError::TooLarge
        } else {
            DecompressError::Invalid(format!("zstd: {e}"))
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        for (len, comp, hlen) in [
            (0, Compression::None, 1),
            (127, Compression::None, 1),
            (128, Compression::None, 4),
            (5, Compression::Zstd, 4),
            (MAX_BLOB_LEN, Compression::Zstd, 4),
        ] {
            let (buf, n) = encode_header(len, comp);
            assert_eq!(n, hlen);
            assert_eq!(header_len(buf[0]), hlen);
            let h = decode_header(&buf[..n]).unwrap();
            assert_eq!(
                h,
                BlobHeader {
                    header_len: hlen,
                    stored_len: len,
                    compression: comp
                }
            );
        }
        assert!(decode_header(&[0xA0, 0, 0, 1]).is_err(), "reserved code 2");
        assert!(decode_header(&[0x80, 0]).is_err(), "cut short");
    }

    #[test]
    fn bounded_decompression() {
        let data = vec![7u8; 100_000];
        let z = zstd::bulk::compress(&data, 1).unwrap();
        assert_eq!(decompress_bounded(&z, 100_000).unwrap(), data);
        assert_eq!(
            decompress_bounded(&z, 99_999),
            Err(DecompressError::TooLarge)
        );
        // A frame without a recorded size (streaming encoder) is bounded by
        // the output buffer instead.
        let z = zstd::stream::encode_all(&data[..], 1).unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&z),
            Ok(None)
        ));
        assert_eq!(decompress_bounded(&z, 100_000).unwrap(), data);
        assert_eq!(decompress_bounded(&z, 200_000).unwrap(), data);
        assert_eq!(
            decompress_bounded(&z, 99_999),
            Err(DecompressError::TooLarge)
        );
        assert!(matches!(
            decompress_bounded(b"not zstd at all", 1000),
            Err(DecompressError::Invalid(_))
        ));
    }
}
