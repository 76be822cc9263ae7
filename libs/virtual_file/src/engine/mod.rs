//! IO engines: how a read, write or fsync reaches the kernel.
//!
//! Owns the [`Engine`] handle that every `VirtualFile` carries, and the
//! contract both engines implement:
//! - A read fills its buffer from `offset` until the buffer is full or the
//!   file ends, resubmitting the remainder after a short read, and reports the
//!   number of bytes read; turning "fewer than asked" into `UnexpectedEof` is
//!   the caller's job (it may have asked for an aligned superset).
//!   On an `O_DIRECT` fd a short read that leaves the position or the buffer
//!   unaligned is treated as end of file (resubmitting would fail with
//!   EINVAL; such a short read only happens at end of file).
//! - A write writes the whole buffer or fails (`WriteZero` if the kernel
//!   accepts nothing).
//! - Buffers are owned: moved into the engine and handed back on completion,
//!   so memory the kernel writes into is never freed or reused early. The
//!   `Arc<File>` passed in is held until the kernel is done with the fd.
//!
//! Buffered reads are first tried against the OS page cache on the calling
//! thread ([`cached`]); only the ones it cannot serve whole reach the
//! engine.
//!
//! Callers: `file.rs`. The io_uring engine is process-wide and started on
//! first use ([`uring::global`]); std-fs needs no state.

pub(crate) mod cached;
pub(crate) mod std_fs;
pub(crate) mod uring;

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::buffer::IoBuffer;
use crate::config::{EngineUnavailable, IoEngineKind};
use crate::metrics::{bump, COUNTERS};
use crate::IO_ALIGN;

/// Result of an engine read: the buffer back, and bytes read or the error.
pub(crate) type ReadResult = (IoBuffer, io::Result<usize>);

/// The engine a file's operations go through.
#[derive(Clone, Copy)]
pub(crate) enum Engine {
    StdFs,
    IoUring(&'static uring::UringEngine),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind().as_str())
    }
}

impl Engine {
    /// The engine for `kind`, or std-fs and the reason if io_uring cannot be
    /// used in this process.
    pub(crate) fn resolve(kind: IoEngineKind) -> (Engine, Option<EngineUnavailable>) {
        match kind {
            IoEngineKind::StdFs => (Engine::StdFs, None),
            IoEngineKind::IoUring => match uring::global() {
                Ok(engine) => (Engine::IoUring(engine), None),
                Err(reason) => (Engine::StdFs, Some(reason)),
            },
        }
    }

    pub(crate) fn kind(&self) -> IoEngineKind {
        match self {
            Engine::StdFs => IoEngineKind::StdFs,
            Engine::IoUring(_) => IoEngineKind::IoUring,
        }
    }

    /// Issues all reads at once; results in request order. Each read fills
    /// its buffer, or stops early at end of file.
    pub(crate) async fn read_many(
        &self,
        file: Arc<File>,
        reads: Vec<(u64, IoBuffer)>,
        direct: bool,
    ) -> Vec<ReadResult> {
        if direct {
            return self.engine_read_many(file, reads, direct).await;
        }
        let mut results: Vec<Option<ReadResult>> = Vec::with_capacity(reads.len());
        let mut rest = Vec::new();
        let mut rest_at = Vec::new();
        for (i, (offset, mut buf)) in reads.into_iter().enumerate() {
            if cached::try_read(&file, &mut buf, offset) {
                bump(&COUNTERS.cached_reads);
                let len = buf.len();
                results.push(Some((buf, Ok(len))));
            } else {
                results.push(None);
                rest.push((offset, buf));
                rest_at.push(i);
            }
        }
        if !rest.is_empty() {
            let done = self.engine_read_many(file, rest, direct).await;
            for (i, result) in rest_at.into_iter().zip(done) {
                results[i] = Some(result);
            }
        }
        fill_missing(results)
    }

    async fn engine_read_many(
        &self,
        file: Arc<File>,
        reads: Vec<(u64, IoBuffer)>,
        direct: bool,
    ) -> Vec<ReadResult> {
        match self {
            Engine::StdFs => std_fs::read_many(file, reads, direct).await,
            Engine::IoUring(ring) => ring.read_many(file, reads, direct).await,
        }
    }

    pub(crate) async fn write_all(
        &self,
        file: Arc<File>,
        buf: IoBuffer,
        offset: u64,
    ) -> (IoBuffer, io::Result<()>) {
        match self {
            Engine::StdFs => std_fs::write_all(file, buf, offset).await,
            Engine::IoUring(ring) => ring.write_all(file, buf, offset).await,
        }
    }

    pub(crate) async fn fsync(&self, file: Arc<File>) -> io::Result<()> {
        match self {
            Engine::StdFs => std_fs::fsync(file).await,
            Engine::IoUring(ring) => ring.fsync(file).await,
        }
    }
}

/// Results in request order; a slot nobody filled (a bug, never expected)
/// becomes an error rather than a panic.
pub(crate) fn fill_missing(slots: Vec<Option<ReadResult>>) -> Vec<ReadResult> {
    slots
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| {
                (
                    IoBuffer::zeroed(0),
                    Err(io::Error::other("read result missing")),
                )
            })
        })
        .collect()
}

/// After a short read of `done` bytes into a buffer starting at `offset`,
/// may the remainder be requested? Always for buffered fds; for `O_DIRECT`
/// only if file position and buffer position are still aligned.
pub(crate) fn may_continue(direct: bool, offset: u64, done: usize) -> bool {
    !direct || ((offset + done as u64) % IO_ALIGN as u64 == 0 && done % IO_ALIGN == 0)
}

/// Error for a blocking-pool task that never reported back (the runtime is
/// shutting down or the task panicked).
pub(crate) fn lost_task(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("blocking IO task did not complete: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rule() {
        assert!(may_continue(false, 1, 3));
        assert!(may_continue(true, 0, 8192));
        assert!(may_continue(true, 4096, 4096));
        assert!(!may_continue(true, 0, 100));
        assert!(!may_continue(true, 100, 4096));
    }
}
