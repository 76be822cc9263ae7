//! [`VirtualFile`] and [`OpenOptions`]: positional file IO with owned
//! buffers, over the node-wide fd table and the configured IO engine.
//!
//! Owns, per file: its path, how to reopen it, its engine, whether it reads
//! with `O_DIRECT`, and its current [`SlotHandle`] in the fd table.
//!
//! Invariants:
//! - A `VirtualFile` does not own an fd; it asks the table before every
//!   operation and reopens (without create/truncate flags) on a miss, so any
//!   number of `VirtualFile`s can exist with at most `max_file_descriptors`
//!   fds cached. Clones share one state (`Arc<Inner>`); dropping the last
//!   clone releases its table slot, so a deleted file's space is freed once
//!   in-flight operations finish.
//! - Reads are exact: every `read_exact_at*` either fills the whole buffer or
//!   fails, `UnexpectedEof` if the file is too short.
//! - Direct files (read-only, `IoMode::Direct`) read aligned ranges straight
//!   into the caller's (aligned) buffer, and unaligned ranges through an
//!   aligned bounce buffer. If the filesystem refuses `O_DIRECT` at open time
//!   (EINVAL) the file is read buffered instead, and the fallback is counted.
//!   Writes are always buffered.
//! - Writes and fsyncs after an eviction go through a fresh fd for the same
//!   inode; on Linux `fsync` flushes the inode, so no data is lost, but a
//!   writeback error reported to the old fd before it was closed is not seen
//!   again (the same caveat as any fd cache).
//!
//! Callers: `blockfile`, the pageserver's ephemeral file and layer readers.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use camino::{Utf8Path, Utf8PathBuf};

use crate::align::bounce_for;
use crate::buffer::IoBuffer;
use crate::config::{IoEngineKind, IoMode};
use crate::engine::{lost_task, Engine};
use crate::error::{duplicate, VirtualFileError};
use crate::fd_cache::{FdCache, SlotHandle};
use crate::metrics::{add, bump, COUNTERS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    /// The file must exist.
    No,
    /// Create; fail if it exists.
    New,
    /// Create, or truncate if it exists.
    Truncate,
}

/// How to open a [`VirtualFile`]; a builder.
///
/// Defaults: read-only, existing file, buffered, the node's engine (see
/// [`crate::init`]). `O_DIRECT` is only used for read-only files: setting
/// [`IoMode::Direct`] together with write access is an `InvalidInput` error.
/// [`OpenOptions::io_engine`] overrides the engine for this file only (tests
/// and benchmarks compare engines with it); if io_uring is unavailable the
/// file uses std-fs, which [`VirtualFile::io_engine`] reports.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    write: bool,
    create: Create,
    io_mode: IoMode,
    io_engine: Option<IoEngineKind>,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Read-only, existing file, buffered, node engine.
    pub fn new() -> OpenOptions {
        OpenOptions {
            write: false,
            create: Create::No,
            io_mode: IoMode::Buffered,
            io_engine: None,
        }
    }

    /// Read and write access.
    pub fn write(mut self, write: bool) -> OpenOptions {
        self.write = write;
        self
    }

    /// Create the file; fail with `AlreadyExists` if it exists.
    pub fn create_new(mut self) -> OpenOptions {
        self.create = Create::New;
        self
    }

    /// Create the file, or truncate it to zero length if it exists.
    pub fn create_truncate(mut self) -> OpenOptions {
        self.create = Create::Truncate;
        self
    }

    pub fn io_mode(mut self, mode: IoMode) -> OpenOptions {
        self.io_mode = mode;
        self
    }

    pub fn io_engine(mut self, kind: IoEngineKind) -> OpenOptions {
        self.io_engine = Some(kind);
        self
    }

    pub async fn open(&self, path: &Utf8Path) -> io::Result<VirtualFile> {
        if self.create != Create::No && !self.write {
            return Err(VirtualFileError::CreateWithoutWrite {
                path: path.to_owned(),
            }
            .into());
        }
        if self.write && self.io_mode == IoMode::Direct {
            return Err(VirtualFileError::DirectWrite {
                path: path.to_owned(),
            }
            .into());
        }
        let node = crate::node();
        let engine = match self.io_engine {
            Some(kind) => Engine::resolve(kind).0,
            None => node.engine,
        };
        let flags = Flags {
            write: self.write,
            create: self.create,
            direct: self.io_mode == IoMode::Direct,
        };
        let owned = path.to_owned();
        let (file, direct) = tokio::task::spawn_blocking(move || open_file(&owned, flags))
            .await
            .map_err(lost_task)??;
        let inner = Inner {
            path: path.to_owned(),
            write: self.write,
            direct,
            engine,
            cache: &node.fd_cache,
            handle: Mutex::new(None),
        };
        inner.install(Arc::new(file));
        Ok(VirtualFile {
            inner: Arc::new(inner),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Flags {
    write: bool,
    create: Create,
    direct: bool,
}

/// Opens with `flags`; returns the file and whether it is really direct.
fn open_file(path: &Utf8Path, flags: Flags) -> io::Result<(File, bool)> {
    let res = open_with_direct_fallback(flags.direct, |direct| {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(flags.write);
        match flags.create {
            Create::No => {}
            Create::New => {
                opts.create_new(true);
            }
            Create::Truncate => {
                opts.create(true).truncate(true);
            }
        }
        if direct {
            opts.custom_flags(libc::O_DIRECT);
        }
        opts.open(path)
    });
    match &res {
        Ok(_) => bump(&COUNTERS.opens),
        Err(_) => bump(&COUNTERS.open_errors),
    }
    res
}

/// Runs `open(direct)`; if `direct` was asked and refused with EINVAL (the
/// filesystem has no `O_DIRECT`), runs `open(false)` instead.
fn open_with_direct_fallback(
    direct: bool,
    mut open: impl FnMut(bool) -> io::Result<File>,
) -> io::Result<(File, bool)> {
    match open(direct) {
        Ok(file) => Ok((file, direct)),
        Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
            bump(&COUNTERS.direct_fallbacks);
            tracing::debug!("O_DIRECT refused ({e}); reading buffered");
            open(false).map(|file| (file, false))
        }
        Err(e) => Err(e),
    }
}

struct Inner {
    path: Utf8PathBuf,
    write: bool,
    /// Reads use `O_DIRECT` (after any fallback).
    direct: bool,
    engine: Engine,
    cache: &'static FdCache,
    handle: Mutex<Option<SlotHandle>>,
}

impl Inner {
    fn lock_handle(&self) -> MutexGuard<'_, Option<SlotHandle>> {
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a freshly opened fd in the table and forgets any older slot.
    fn install(&self, file: Arc<File>) {
        let handle = self.cache.insert(file);
        let old = self.lock_handle().replace(handle);
        if let Some(old) = old {
            self.cache.remove(old);
        }
    }

    /// The fd for the next operation: from the table, or reopened.
    async fn fd(&self) -> io::Result<Arc<File>> {
        let handle = *self.lock_handle();
        if let Some(file) = handle.and_then(|h| self.cache.get(h)) {
            bump(&COUNTERS.fd_cache_hits);
            return Ok(file);
        }
        bump(&COUNTERS.fd_cache_misses);
        let flags = Flags {
            write: self.write,
            create: Create::No,
            direct: self.direct,
        };
        let path = self.path.clone();
        let (file, _) = tokio::task::spawn_blocking(move || open_file(&path, flags))
            .await
            .map_err(lost_task)??;
        let file = Arc::new(file);
        self.install(Arc::clone(&file));
        Ok(file)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let handle = self.lock_handle().take();
        if let Some(handle) = handle {
            self.cache.remove(handle);
        }
    }
}

/// A file addressed by position, cheap to clone, usable from many tasks.
#[derive(Clone)]
pub struct VirtualFile {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VirtualFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualFile")
            .field("path", &self.inner.path)
            .field("write", &self.inner.write)
            .field("direct", &self.inner.direct)
            .field("engine", &self.inner.engine)
            .finish()
    }
}

/// How one request of a batch maps onto engine reads.
/// Counts one inline read or write of `len` bytes: the operation, its
/// bytes if it succeeded, an IO error if not.
fn count_inline(
    res: &io::Result<()>,
    ops: &std::sync::atomic::AtomicU64,
    bytes: &std::sync::atomic::AtomicU64,
    len: usize,
) {
    bump(ops);
    match res {
        Ok(()) => add(bytes, len as u64),
        Err(_) => bump(&COUNTERS.io_errors),
    }
}

enum Plan {
    /// Nothing to read.
    Empty(IoBuffer),
    /// Read straight into the caller's buffer (now owned by the engine).
    Straight { offset: u64, len: usize },
    /// Read an aligned superset, then copy into `user`.
    Bounce {
        user: IoBuffer,
        offset: u64,
        skip: usize,
    },
}

impl VirtualFile {
    /// Opens an existing file for reading (buffered, node engine).
    pub async fn open(path: &Utf8Path) -> io::Result<VirtualFile> {
        OpenOptions::new().open(path).await
    }

    /// Opens an existing layer file for reading, with `O_DIRECT` if the node
    /// runs in [`IoMode::Direct`].
    pub async fn open_for_layer_read(path: &Utf8Path) -> io::Result<VirtualFile> {
        OpenOptions::new()
            .io_mode(crate::node().outcome.io_mode)
            .open(path)
            .await
    }

    /// Creates a new file for reading and writing (fails if it exists).
    pub async fn create_new(path: &Utf8Path) -> io::Result<VirtualFile> {
        OpenOptions::new().write(true).create_new().open(path).await
    }

    /// Creates or truncates a file for reading and writing (e.g. the backing
    /// file of an in-memory layer).
    pub async fn create_rw(path: &Utf8Path) -> io::Result<VirtualFile> {
        OpenOptions::new()
            .write(true)
            .create_truncate()
            .open(path)
            .await
    }

    /// Opens an existing file for reading and writing.
    pub async fn open_rw(path: &Utf8Path) -> io::Result<VirtualFile> {
        OpenOptions::new().write(true).open(path).await
    }

    pub fn path(&self) -> &Utf8Path {
        &self.inner.path
    }

    /// The engine this file's IO goes through.
    pub fn io_engine(&self) -> IoEngineKind {
        self.inner.engine.kind()
    }

    /// Whether reads use `O_DIRECT` (false after a fallback).
    pub fn is_direct(&self) -> bool {
        self.inner.direct
    }

    /// Fills `buf` from `offset`. A file that ends first gives
    /// `UnexpectedEof`. The buffer comes back either way.
    pub async fn read_exact_at(&self, buf: IoBuffer, offset: u64) -> (IoBuffer, io::Result<()>) {
        let len = buf.len();
        let mut out = self.read_exact_at_many(vec![(offset, buf)]).await;
        out.pop().unwrap_or_else(|| {
            (
                IoBuffer::zeroed(len),
                Err(VirtualFileError::LostRequest.into()),
            )
        })
    }

    /// Fills every buffer from its offset; all reads are issued at once (one
    /// io_uring submission, or concurrently on the blocking pool). Results
    /// are in request order, each with its buffer.
    pub async fn read_exact_at_many(
        &self,
        reads: Vec<(u64, IoBuffer)>,
    ) -> Vec<(IoBuffer, io::Result<()>)> {
        if reads.iter().all(|(_, b)| b.is_empty()) {
            return reads.into_iter().map(|(_, b)| (b, Ok(()))).collect();
        }
        let file = match self.inner.fd().await {
            Ok(file) => file,
            Err(e) => {
                add(&COUNTERS.reads, reads.len() as u64);
                add(&COUNTERS.io_errors, reads.len() as u64);
                return reads
                    .into_iter()
                    .map(|(_, b)| (b, Err(duplicate(&e))))
                    .collect();
            }
        };
        let direct = self.inner.direct;
        let mut plans = Vec::with_capacity(reads.len());
        let mut requests = Vec::with_capacity(reads.len());
        for (offset, buf) in reads {
            if buf.is_empty() {
                plans.push(Plan::Empty(buf));
                continue;
            }
            match bounce_for(offset, buf.len()).filter(|_| direct) {
                Some(b) => {
                    bump(&COUNTERS.bounce_reads);
                    requests.push((b.offset, IoBuffer::zeroed(b.len)));
                    plans.push(Plan::Bounce {
                        user: buf,
                        offset,
                        skip: b.skip,
                    });
                }
                None => {
                    plans.push(Plan::Straight {
                        offset,
                        len: buf.len(),
                    });
                    requests.push((offset, buf));
                }
            }
        }
        let mut results = self
            .inner
            .engine
            .read_many(file, requests, direct)
            .await
            .into_iter();
        plans
            .into_iter()
            .map(|plan| {
                let out = self.finish_read(plan, &mut results);
                bump(&COUNTERS.reads);
                match &out.1 {
                    Ok(()) => add(&COUNTERS.read_bytes, out.0.len() as u64),
                    Err(_) => bump(&COUNTERS.io_errors),
                }
                out
            })
            .collect()
    }

    /// Turns an engine result into the caller's exact-read result.
    fn finish_read(
        &self,
        plan: Plan,
        results: &mut impl Iterator<Item = (IoBuffer, io::Result<usize>)>,
    ) -> (IoBuffer, io::Result<()>) {
        match plan {
            Plan::Empty(buf) => (buf, Ok(())),
            Plan::Straight { offset, len } => match results.next() {
                Some((buf, res)) => {
                    let res = res.and_then(|got| self.check_exact(offset, len, got));
                    (buf, res)
                }
                None => (
                    IoBuffer::zeroed(len),
                    Err(VirtualFileError::LostRequest.into()),
                ),
            },
            Plan::Bounce {
                mut user,
                offset,
                skip,
            } => match results.next() {
                Some((bounce, res)) => {
                    let len = user.len();
                    let res = res.and_then(|got| {
                        self.check_exact(offset, len, got.saturating_sub(skip))?;
                        user.copy_from_slice(&bounce[skip..skip + len]);
                        Ok(())
                    });
                    (user, res)
                }
                None => (user, Err(VirtualFileError::LostRequest.into())),
            },
        }
    }

    fn check_exact(&self, offset: u64, wanted: usize, got: usize) -> io::Result<()> {
        if got >= wanted {
            return Ok(());
        }
        Err(VirtualFileError::ShortRead {
            path: self.inner.path.clone(),
            offset,
            wanted,
            got,
        }
        .into())
    }

    /// Writes all of `buf` at `offset`. The buffer comes back either way.
    pub async fn write_all_at(&self, buf: IoBuffer, offset: u64) -> (IoBuffer, io::Result<()>) {
        if buf.is_empty() {
            return (buf, Ok(()));
        }
        let (buf, res) = match self.inner.fd().await {
            Ok(file) => self.inner.engine.write_all(file, buf, offset).await,
            Err(e) => (buf, Err(e)),
        };
        bump(&COUNTERS.writes);
        match &res {
            Ok(()) => add(&COUNTERS.written_bytes, buf.len() as u64),
            Err(_) => bump(&COUNTERS.io_errors),
        }
        (buf, res)
    }

    /// Writes all of `data` at `offset` with `pwrite` on the calling thread.
    /// For buffered scratch files written in large appends (an in-memory
    /// layer's backing file): the write only copies into the OS page cache
    /// (tens of microseconds for a few hundred KiB), which costs less than
    /// an engine's hand-off to a kernel worker and back, and `data` needs no
    /// aligned copy. An `O_DIRECT` file goes through the engine instead.
    pub async fn write_all_at_inline(&self, data: &[u8], offset: u64) -> io::Result<()> {
        if self.inner.direct {
            let (_, res) = self.write_all_at(IoBuffer::from_slice(data), offset).await;
            return res;
        }
        if data.is_empty() {
            return Ok(());
        }
        let file = self.inner.fd().await?;
        let res = std::os::unix::fs::FileExt::write_all_at(&*file, data, offset);
        count_inline(&res, &COUNTERS.writes, &COUNTERS.written_bytes, data.len());
        res
    }

    /// Fills `buf` from `offset` with `pread` on the calling thread (see
    /// [`Self::write_all_at_inline`]: for buffered scratch files whose data
    /// is in the page cache), into the caller's memory rather than an
    /// aligned buffer. A file that ends first gives `UnexpectedEof`. An
    /// `O_DIRECT` file goes through the engine and a bounce copy.
    pub async fn read_exact_at_inline(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if self.inner.direct {
            let (got, res) = self
                .read_exact_at(IoBuffer::zeroed(buf.len()), offset)
                .await;
            res?;
            buf.copy_from_slice(&got);
            return Ok(());
        }
        if buf.is_empty() {
            return Ok(());
        }
        let file = self.inner.fd().await?;
        let res = std::os::unix::fs::FileExt::read_exact_at(&*file, buf, offset);
        count_inline(&res, &COUNTERS.reads, &COUNTERS.read_bytes, buf.len());
        res
    }

    /// Flushes data and metadata to stable storage.
    pub async fn sync_all(&self) -> io::Result<()> {
        let file = self.inner.fd().await?;
        let res = self.inner.engine.fsync(file).await;
        bump(&COUNTERS.fsyncs);
        if res.is_err() {
            bump(&COUNTERS.io_errors);
        }
        res
    }

    /// Current file length.
    pub async fn len(&self) -> io::Result<u64> {
        let file = self.inner.fd().await?;
        tokio::task::spawn_blocking(move || file.metadata().map(|m| m.len()))
            .await
            .map_err(lost_task)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn einval_on_direct_open_falls_back_to_buffered() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, b"x")?;
        let before = crate::stats().direct_fallbacks;
        let mut asked = Vec::new();
        let (_file, direct) = open_with_direct_fallback(true, |direct| {
            asked.push(direct);
            if direct {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                File::open(&path)
            }
        })?;
        assert!(!direct);
        assert_eq!(asked, [true, false]);
        assert!(crate::stats().direct_fallbacks > before);
        // Other errors are not retried.
        let err =
            open_with_direct_fallback(true, |_| Err(io::Error::from_raw_os_error(libc::ENOENT)))
                .err()
                .map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::NotFound));
        Ok(())
    }

    #[tokio::test]
    async fn invalid_option_combinations_are_rejected() {
        let path = Utf8Path::new("/nonexistent/never-created");
        let err = OpenOptions::new()
            .write(true)
            .io_mode(IoMode::Direct)
            .open(path)
            .await;
        assert_eq!(
            err.err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
        let err = OpenOptions::new().create_new().open(path).await;
        assert_eq!(
            err.err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
    }
}
