//! Alignment arithmetic for direct (`O_DIRECT`) reads.
//!
//! Owns the rule for turning an arbitrary `(offset, len)` read into one the
//! kernel accepts on an `O_DIRECT` fd: start rounded down and end rounded up
//! to [`IO_ALIGN`], read into an aligned bounce buffer, then copy out the
//! `skip..skip + len` window. Pure functions; used by `file.rs` for every read
//! on a direct file.

use crate::IO_ALIGN;

/// An aligned superset of a requested byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounce {
    /// Aligned start to read from.
    pub offset: u64,
    /// Aligned length to read.
    pub len: usize,
    /// Where the requested bytes start inside the bounce buffer.
    pub skip: usize,
}

/// `None` if `offset` and `len` are already aligned (read straight into the
/// caller's buffer, which is itself aligned); otherwise the bounce read.
pub(crate) fn bounce_for(offset: u64, len: usize) -> Option<Bounce> {
    let align = IO_ALIGN as u64;
    if offset % align == 0 && len % IO_ALIGN == 0 {
        return None;
    }
    let start = offset - offset % align;
    let end = (offset + len as u64).div_ceil(align) * align;
    Some(Bounce {
        offset: start,
        len: (end - start) as usize,
        skip: (offset - start) as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_requests_need_no_bounce() {
        assert_eq!(bounce_for(0, 4096), None);
        assert_eq!(bounce_for(8192, 8192), None);
        assert_eq!(bounce_for(4096, 0), None);
    }

    #[test]
    fn unaligned_requests_cover_the_range() {
        assert_eq!(
            bounce_for(100, 50),
            Some(Bounce {
                offset: 0,
                len: 4096,
                skip: 100
            })
        );
        assert_eq!(
            bounce_for(4000, 200),
            Some(Bounce {
                offset: 0,
                len: 8192,
                skip: 4000
            })
        );
        assert_eq!(
            bounce_for(8192, 10),
            Some(Bounce {
                offset: 8192,
                len: 4096,
                skip: 0
            })
        );
        for (off, len) in [(1u64, 1usize), (4095, 2), (12_345, 67_890), (4096, 4095)] {
            let b = bounce_for(off, len).expect("unaligned");
            assert_eq!(b.offset % IO_ALIGN as u64, 0);
            assert_eq!(b.len % IO_ALIGN, 0);
            assert_eq!(b.offset + b.skip as u64, off);
            assert!(b.skip + len <= b.len);
            assert!(b.len - (b.skip + len) < IO_ALIGN);
        }
    }
}
