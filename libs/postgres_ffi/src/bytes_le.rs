//! Bounds-checked little-endian reading of byte slices (crate-internal).
//!
//! Every on-disk and WAL structure PostgreSQL writes on the platforms we
//! support is little-endian with C struct alignment. Parsers in this crate read
//! fields at fixed offsets through these helpers so that short input becomes a
//! [`Short`] value the caller turns into its own typed error, never a panic.

/// The input ended before a field: `needed` bytes were wanted at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short {
    pub offset: usize,
    pub needed: usize,
}

pub(crate) fn bytes_at(buf: &[u8], offset: usize, len: usize) -> Result<&[u8], Short> {
    offset
        .checked_add(len)
        .and_then(|end| buf.get(offset..end))
        .ok_or(Short {
            offset,
            needed: len,
        })
}

pub(crate) fn array_at<const N: usize>(buf: &[u8], offset: usize) -> Result<[u8; N], Short> {
    let s = bytes_at(buf, offset, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Ok(out)
}

pub(crate) fn u8_at(buf: &[u8], offset: usize) -> Result<u8, Short> {
    Ok(array_at::<1>(buf, offset)?[0])
}

pub(crate) fn u16_at(buf: &[u8], offset: usize) -> Result<u16, Short> {
    Ok(u16::from_le_bytes(array_at(buf, offset)?))
}

pub(crate) fn u32_at(buf: &[u8], offset: usize) -> Result<u32, Short> {
    Ok(u32::from_le_bytes(array_at(buf, offset)?))
}

pub(crate) fn i32_at(buf: &[u8], offset: usize) -> Result<i32, Short> {
    Ok(i32::from_le_bytes(array_at(buf, offset)?))
}

pub(crate) fn u64_at(buf: &[u8], offset: usize) -> Result<u64, Short> {
    Ok(u64::from_le_bytes(array_at(buf, offset)?))
}

pub(crate) fn i64_at(buf: &[u8], offset: usize) -> Result<i64, Short> {
    Ok(i64::from_le_bytes(array_at(buf, offset)?))
}

pub(crate) fn f64_at(buf: &[u8], offset: usize) -> Result<f64, Short> {
    Ok(f64::from_le_bytes(array_at(buf, offset)?))
}

/// C `bool`: one byte, any non-zero value is true. Postgres only ever writes
/// 0 or 1; we accept others the way C would rather than reject the file.
pub(crate) fn bool_at(buf: &[u8], offset: usize) -> Result<bool, Short> {
    Ok(u8_at(buf, offset)? != 0)
}

/// Writes `bytes` at `offset`; the caller sized `buf` for its fixed layout,
/// so an out-of-range write is a bug in this crate, not bad input.
pub(crate) fn put(buf: &mut [u8], offset: usize, bytes: &[u8]) {
    buf[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// A forward cursor over a byte slice, for variable-length formats.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8, Short> {
        let v = u8_at(self.buf, self.pos)?;
        self.pos += 1;
        Ok(v)
    }

    pub fn u16(&mut self) -> Result<u16, Short> {
        let v = u16_at(self.buf, self.pos)?;
        self.pos += 2;
        Ok(v)
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        let v = u32_at(self.buf, self.pos)?;
        self.pos += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_are_errors() {
        let b = [1u8, 2, 3];
        assert_eq!(u16_at(&b, 1), Ok(0x0302));
        assert_eq!(
            u32_at(&b, 0),
            Err(Short {
                offset: 0,
                needed: 4
            })
        );
        assert!(bytes_at(&b, usize::MAX, 2).is_err());
        let mut c = Cursor::new(&b);
        assert_eq!(c.u8(), Ok(1));
        assert_eq!(c.u16(), Ok(0x0302));
        assert!(c.u8().is_err());
        assert_eq!(c.remaining(), 0);
    }
}
