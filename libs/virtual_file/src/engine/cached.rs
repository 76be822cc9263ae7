//! Reads the OS page cache already holds, done on the calling thread.
//!
//! A layer read that misses the pageserver's block cache usually hits the
//! OS page cache (layer files are small against RAM). Through either engine
//! such a read costs more in hand-off than in copying: a blocking-pool
//! round trip for std-fs, a ring submission and often a completion-thread
//! wake-up for io_uring. `preadv2(RWF_NOWAIT)` copies the bytes if every one
//! of them is cached and otherwise returns at once (`EAGAIN`, or a short
//! count) without starting any IO, so trying it first never blocks the
//! async worker on the disk.
//!
//! Contract: [`try_read`] reports `true` only when it filled the whole
//! buffer; on `false` the buffer's content is unspecified and the caller
//! issues the read through its engine as if this had not been tried (a
//! read at end of file, a partly cached range, any error — the engine gives
//! the authoritative answer). Only for buffered fds: `O_DIRECT` reads
//! bypass the page cache by definition. A kernel or filesystem without
//! `RWF_NOWAIT` (`EOPNOTSUPP`/`EINVAL`/`ENOSYS`) turns the fast path off
//! for the process.
//!
//! Callers: `engine::Engine::read_many`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::buffer::IoBuffer;

static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Fills `buf` from `offset` if the OS page cache holds all of it.
pub(crate) fn try_read(file: &File, buf: &mut IoBuffer, offset: u64) -> bool {
    let len = buf.len();
    if len == 0 || UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    let Ok(off) = libc::off_t::try_from(offset) else {
        return false;
    };
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    // SAFETY: the iovec describes `len` writable bytes owned by `buf`, which
    // this thread holds exclusively for the duration of the call; the fd is
    // open for as long as `file` is borrowed.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, off, libc::RWF_NOWAIT) };
    if n < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        if matches!(
            errno,
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS)
        ) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return false;
    }
    n as usize == len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_read_fills_or_declines() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data)?;
        let file = File::open(&path)?;
        // Just written: in the page cache.
        let mut buf = IoBuffer::zeroed(8192);
        if try_read(&file, &mut buf, 4096) {
            assert_eq!(&buf[..], &data[4096..4096 + 8192]);
        } else {
            // Only a filesystem without RWF_NOWAIT gets here.
            assert!(UNSUPPORTED.load(Ordering::Relaxed));
        }
        // Past the end: a short read is never reported as done.
        let mut tail = IoBuffer::zeroed(8192);
        assert!(!try_read(&file, &mut tail, 16_384));
        let mut empty = IoBuffer::zeroed(0);
        assert!(!try_read(&file, &mut empty, 0));
        Ok(())
    }
}
