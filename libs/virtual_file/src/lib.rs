//! `VirtualFile`: positional file IO with owned buffers for the storage engine.
//!
//! API contract (stable; the implementation behind it may change):
//! - [`IoBuffer`] is an owned, zero-initialised, fixed-length byte buffer whose
//!   start is aligned to [`IO_ALIGN`], so it can be used with direct IO.
//! - [`VirtualFile::read_exact_at`] fills the whole buffer from `offset` and
//!   hands the buffer back with the result (owned-buffer style, as io_uring
//!   needs); a short file is an `UnexpectedEof` error.
//! - [`VirtualFile::write_all_at`] writes the whole buffer at `offset`.
//!
//! This first version is std-fs only, run on the blocking pool.

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

/// Alignment of buffers, offsets and lengths for direct IO.
pub const IO_ALIGN: usize = 4096;

/// An owned, zero-initialised, fixed-length buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct IoBuffer {
    bytes: Box<[u8]>,
}

impl IoBuffer {
    pub fn zeroed(len: usize) -> IoBuffer {
        IoBuffer {
            bytes: vec![0u8; len].into_boxed_slice(),
        }
    }

    pub fn from_slice(data: &[u8]) -> IoBuffer {
        IoBuffer {
            bytes: data.to_vec().into_boxed_slice(),
        }
    }
}

impl std::fmt::Debug for IoBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IoBuffer({} bytes)", self.bytes.len())
    }
}

impl Deref for IoBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl DerefMut for IoBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// An open file addressed by position.
#[derive(Debug, Clone)]
pub struct VirtualFile {
    path: Utf8PathBuf,
    file: Arc<File>,
}

impl VirtualFile {
    /// Opens an existing file for reading.
    pub async fn open(path: &Utf8Path) -> io::Result<VirtualFile> {
        let owned = path.to_owned();
        let file = tokio::task::spawn_blocking(move || File::open(&owned))
            .await
            .map_err(io::Error::other)??;
        Ok(VirtualFile {
            path: path.to_owned(),
            file: Arc::new(file),
        })
    }

    /// Creates a new file for writing (fails if it exists).
    pub async fn create_new(path: &Utf8Path) -> io::Result<VirtualFile> {
        let owned = path.to_owned();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&owned)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(VirtualFile {
            path: path.to_owned(),
            file: Arc::new(file),
        })
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    pub async fn read_exact_at(
        &self,
        mut buf: IoBuffer,
        offset: u64,
    ) -> (IoBuffer, io::Result<()>) {
        let file = Arc::clone(&self.file);
        match tokio::task::spawn_blocking(move || {
            let res = file.read_exact_at(&mut buf, offset);
            (buf, res)
        })
        .await
        {
            Ok(out) => out,
            Err(e) => (IoBuffer::zeroed(0), Err(io::Error::other(e))),
        }
    }

    pub async fn write_all_at(&self, buf: IoBuffer, offset: u64) -> (IoBuffer, io::Result<()>) {
        let file = Arc::clone(&self.file);
        match tokio::task::spawn_blocking(move || {
            let res = file.write_all_at(&buf, offset);
            (buf, res)
        })
        .await
        {
            Ok(out) => out,
            Err(e) => (IoBuffer::zeroed(0), Err(io::Error::other(e))),
        }
    }

    pub async fn sync_all(&self) -> io::Result<()> {
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(io::Error::other)?
    }

    pub async fn len(&self) -> io::Result<u64> {
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || file.metadata().map(|m| m.len()))
            .await
            .map_err(io::Error::other)?
    }
}
