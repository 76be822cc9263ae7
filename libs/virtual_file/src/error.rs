//! Errors this crate creates itself (as opposed to errors from the kernel).
//!
//! Owns [`VirtualFileError`]. The public file API returns `std::io::Error`
//! so callers can keep matching on `ErrorKind`; these errors travel inside it
//! (`io::Error::new(kind, VirtualFileError::..)`) and can be recovered with
//! `io::Error::get_ref` / `downcast`. Created by `file.rs`.

use std::io;

use camino::Utf8PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VirtualFileError {
    /// The file ended before the buffer was filled (kind `UnexpectedEof`).
    #[error("short read from {path} at offset {offset}: wanted {wanted} bytes, file had {got}")]
    ShortRead {
        path: Utf8PathBuf,
        offset: u64,
        wanted: usize,
        got: usize,
    },
    /// `O_DIRECT` was asked for a writable file (kind `InvalidInput`); direct
    /// IO is only used for reading layer files.
    #[error("direct IO is only supported for read-only files ({path})")]
    DirectWrite { path: Utf8PathBuf },
    /// Creating or truncating a file needs write access (kind `InvalidInput`).
    #[error("create/truncate needs write access ({path})")]
    CreateWithoutWrite { path: Utf8PathBuf },
    /// The IO engine returned fewer results than requests (kind `Other`);
    /// indicates a bug, reported instead of panicking.
    #[error("IO engine lost a request")]
    LostRequest,
}

impl VirtualFileError {
    fn kind(&self) -> io::ErrorKind {
        match self {
            VirtualFileError::ShortRead { .. } => io::ErrorKind::UnexpectedEof,
            VirtualFileError::DirectWrite { .. } | VirtualFileError::CreateWithoutWrite { .. } => {
                io::ErrorKind::InvalidInput
            }
            VirtualFileError::LostRequest => io::ErrorKind::Other,
        }
    }
}

impl From<VirtualFileError> for io::Error {
    fn from(e: VirtualFileError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// A second `io::Error` equal in kind, OS code and message to `e`, for
/// reporting one failure (e.g. a failed open) to every request of a batch.
pub(crate) fn duplicate(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
