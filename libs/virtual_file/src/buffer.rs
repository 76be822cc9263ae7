//! [`IoBuffer`]: the owned, aligned byte buffer every IO in this crate moves
//! in and out of.
//!
//! Owns: one heap allocation made with [`std::alloc`] under a [`Layout`] whose
//! alignment is [`IO_ALIGN`], so the buffer can be handed to the kernel for
//! `O_DIRECT` IO and to io_uring, which writes into it after the submitting
//! future has moved on.
//!
//! Invariants:
//! - `ptr` is non-null, aligned to `IO_ALIGN`, and points to `cap` initialised
//!   bytes owned exclusively by this value (`cap >= 1`, even for an empty
//!   buffer, so the allocation is never zero-sized).
//! - `len <= cap`; the visible bytes are `ptr[..len]`. `truncate` only shrinks
//!   `len`; the allocation is freed with the layout it was made with.
//! - The allocation's address never changes while the value exists, even when
//!   the `IoBuffer` itself is moved: an IO engine may therefore keep the raw
//!   pointer while it owns the buffer.
//!
//! Callers: everyone who reads or writes through [`crate::VirtualFile`]
//! (`blockfile`, the ephemeral file, the layer readers) and the engines.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::IO_ALIGN;

/// An owned, zero-initialised, fixed-length byte buffer whose start is aligned
/// to [`IO_ALIGN`].
pub struct IoBuffer {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: `IoBuffer` exclusively owns its allocation (like `Box<[u8]>`); no
// interior mutability is reachable through `&IoBuffer`.
unsafe impl Send for IoBuffer {}
// SAFETY: as above; `&IoBuffer` only gives `&[u8]`.
unsafe impl Sync for IoBuffer {}

impl IoBuffer {
    /// A buffer of `len` zero bytes.
    ///
    /// Aborts through [`alloc::handle_alloc_error`] if memory is exhausted,
    /// like `Vec`; panics only if `len` is so large that no layout exists.
    pub fn zeroed(len: usize) -> IoBuffer {
        let cap = len.max(1);
        let layout = match Layout::from_size_align(cap, IO_ALIGN) {
            Ok(layout) => layout,
            // Only reachable for sizes near `isize::MAX`, which `Vec` also
            // refuses with a panic ("capacity overflow").
            Err(_) => panic!("IoBuffer::zeroed: length {len} too large"),
        };
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        IoBuffer { ptr, len, cap }
    }

    /// A buffer of `len` bytes to read into, reused from the free list when
    /// one of its size class is there ([`IoBuffer::recycle`] puts buffers
    /// back). Its bytes are unspecified — zeroes or data of an earlier IO —
    /// so it is only for reads that overwrite every byte or fail.
    ///
    /// Why: a fresh zeroed allocation of tens of KiB made the allocator
    /// hand pages back and fault them in again (`madvise`, TLB shootdowns,
    /// page clearing), about a tenth of the CPU of a GetPage that missed
    /// the block cache.
    pub fn for_read(len: usize) -> IoBuffer {
        match pool::take(len) {
            Some(mut buf) => {
                // Within `cap`, whose bytes are all initialised.
                buf.len = len;
                buf
            }
            None => IoBuffer::zeroed(pool::class_len(len).unwrap_or(len)).with_len(len),
        }
    }

    /// Returns the buffer to the free list of [`IoBuffer::for_read`] (or frees
    /// it, when it is of no pooled size or the list is full).
    pub fn recycle(self) {
        pool::give(self)
    }

    fn with_len(mut self, len: usize) -> IoBuffer {
        self.len = len.min(self.cap);
        self
    }

    /// A buffer holding a copy of `data` (not zeroed first: every byte is
    /// written before the buffer is handed out).
    pub fn from_slice(data: &[u8]) -> IoBuffer {
        let len = data.len();
        let cap = len.max(1);
        let layout = match Layout::from_size_align(cap, IO_ALIGN) {
            Ok(layout) => layout,
            Err(_) => panic!("IoBuffer::from_slice: length {len} too large"),
        };
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: `ptr` is valid for `cap >= len` bytes and does not overlap
        // `data`; after the copy the first `len` bytes are initialised, and
        // only those are ever visible.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr.as_ptr(), len) };
        IoBuffer { ptr, len, cap }
    }

    /// Number of visible bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shortens the buffer to `len` bytes; does nothing if it is already
    /// shorter. The allocation is kept (and stays aligned).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Copies the visible bytes into a `Vec`.
    pub fn into_vec(self) -> Vec<u8> {
        self.to_vec()
    }

    /// Start of the buffer, for handing to the kernel.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

/// Free lists of read buffers by size class (capacity in multiples of
/// [`IO_ALIGN`], up to [`pool::MAX_CLASS`] of them), each capped at
/// [`pool::CLASS_BYTES`], so the pool never holds more than a few MiB.
mod pool {
    use std::sync::Mutex;

    use super::IoBuffer;
    use crate::IO_ALIGN;

    pub(super) const MAX_CLASS: usize = 16;
    pub(super) const CLASS_BYTES: usize = 1 << 20;

    static FREE: [Mutex<Vec<IoBuffer>>; MAX_CLASS] = [const { Mutex::new(Vec::new()) }; MAX_CLASS];

    /// The pooled capacity for a buffer of `len` bytes, if it is pooled.
    pub(super) fn class_len(len: usize) -> Option<usize> {
        let units = len.div_ceil(IO_ALIGN).max(1);
        (units <= MAX_CLASS).then_some(units * IO_ALIGN)
    }

    fn list(cap: usize) -> Option<&'static Mutex<Vec<IoBuffer>>> {
        let units = cap / IO_ALIGN;
        (cap % IO_ALIGN == 0 && (1..=MAX_CLASS).contains(&units)).then(|| &FREE[units - 1])
    }

    pub(super) fn take(len: usize) -> Option<IoBuffer> {
        let list = list(class_len(len)?)?;
        list.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    pub(super) fn give(buf: IoBuffer) {
        let Some(list) = list(buf.cap) else { return };
        let mut free = list.lock().unwrap_or_else(|e| e.into_inner());
        if (free.len() + 1) * buf.cap <= CLASS_BYTES {
            free.push(buf);
        }
    }
}

impl Drop for IoBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout
        // (`zeroed` proved it valid), and is freed only here.
        unsafe {
            let layout = Layout::from_size_align_unchecked(self.cap, IO_ALIGN);
            alloc::dealloc(self.ptr.as_ptr(), layout);
        }
    }
}

impl Deref for IoBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr[..len]` is initialised and owned by `self` (invariant).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for IoBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Clone for IoBuffer {
    fn clone(&self) -> IoBuffer {
        IoBuffer::from_slice(self)
    }
}

impl PartialEq for IoBuffer {
    fn eq(&self, other: &IoBuffer) -> bool {
        **self == **other
    }
}

impl Eq for IoBuffer {}

impl std::fmt::Debug for IoBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IoBuffer({} bytes)", self.len)
    }
}

impl From<&[u8]> for IoBuffer {
    fn from(data: &[u8]) -> IoBuffer {
        IoBuffer::from_slice(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_aligned_for_many_sizes() {
        // Keep several alive at once so the allocator cannot hand back the
        // same (possibly lucky) address every time.
        let bufs: Vec<IoBuffer> = [0usize, 1, 7, 512, 4095, 4096, 4097, 8192, 100_000]
            .iter()
            .map(|&n| IoBuffer::zeroed(n))
            .collect();
        for b in &bufs {
            assert_eq!(b.as_ptr() as usize % IO_ALIGN, 0, "{b:?} misaligned");
            assert!(b.iter().all(|&x| x == 0), "{b:?} not zeroed");
        }
        let small = IoBuffer::from_slice(b"abc");
        assert_eq!(small.as_ptr() as usize % IO_ALIGN, 0);
    }

    #[test]
    fn read_buffers_are_reused_by_size_class() {
        // A size class (13 IO_ALIGN units) no other code of this crate's
        // tests uses, so nothing else takes from its list meanwhile.
        let len = 13 * IO_ALIGN;
        let mut a = IoBuffer::for_read(len);
        assert_eq!(a.len(), len);
        a[0] = 7;
        let addr = a.as_ptr();
        a.recycle();
        let b = IoBuffer::for_read(len - 100);
        assert_eq!(b.len(), len - 100);
        assert_eq!(b.as_ptr(), addr, "the recycled allocation is reused");
        assert_eq!(b[0], 7, "and keeps its bytes (reads overwrite them)");
        b.recycle();
        // Too large to pool: a plain zeroed buffer, freed on recycle.
        let big = IoBuffer::for_read(1 << 20);
        assert_eq!(big.len(), 1 << 20);
        assert!(big.iter().all(|&x| x == 0));
        big.recycle();
    }

    #[test]
    fn slice_roundtrip_truncate_clone_eq() {
        let mut b = IoBuffer::from_slice(b"hello world");
        assert_eq!(b.len(), 11);
        assert_eq!(&b[..], b"hello world");
        b[0] = b'j';
        let c = b.clone();
        assert_eq!(c, b);
        assert_ne!(c.as_ptr(), b.as_ptr());
        b.truncate(5);
        assert_eq!(&b[..], b"jello");
        b.truncate(100);
        assert_eq!(b.len(), 5);
        assert_ne!(c, b);
        assert_eq!(b.into_vec(), b"jello".to_vec());
        let empty = IoBuffer::zeroed(0);
        assert!(empty.is_empty());
        assert_eq!(format!("{c:?}"), "IoBuffer(11 bytes)");
    }

    #[test]
    fn moving_keeps_the_address() {
        let b = IoBuffer::zeroed(4096);
        let addr = b.as_ptr();
        let moved = [b];
        assert_eq!(moved[0].as_ptr(), addr);
    }
}
