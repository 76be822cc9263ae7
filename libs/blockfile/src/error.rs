//! The crate's single error type.
//!
//! Every variant names the file it concerns; variants about on-disk data also
//! name the block (or the blob offset) so an operator can find the damage.
//! The type is `Clone` (IO errors are shared behind an `Arc`) because one
//! failed vectored IO is reported for every blob it was meant to serve.
//!
//! Produced by every module of the crate; callers match on the variants, in
//! particular [`BlockFileError::Corrupt`].

use std::io;
use std::sync::Arc;

use camino::Utf8PathBuf;

use crate::block::BlockNo;

/// Result alias used throughout the crate.
pub type Result<T, E = BlockFileError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BlockFileError {
    /// The operating system reported an error.
    #[error("{path}: I/O error while {op} at byte offset {offset}: {source}")]
    Io {
        path: Utf8PathBuf,
        op: &'static str,
        offset: u64,
        #[source]
        source: Arc<io::Error>,
    },

    /// A block failed its checksum or holds data that violates the format.
    #[error("{path}: corrupt block {block}: {reason}")]
    Corrupt {
        path: Utf8PathBuf,
        block: BlockNo,
        reason: String,
    },

    /// The file is shorter (or longer) than its header says.
    #[error("{path}: file is {actual} bytes but its header says {expected}; truncated or damaged")]
    Truncated {
        path: Utf8PathBuf,
        expected: u64,
        actual: u64,
    },

    /// Block 0 is missing or was never written: the writer did not finish.
    #[error("{path}: no header ({reason}); the file was never finished or was truncated")]
    NoHeader { path: Utf8PathBuf, reason: String },

    /// The header belongs to another kind of file.
    #[error("{path}: bad magic {found:#010x}, expected {expected:#010x}")]
    BadMagic {
        path: Utf8PathBuf,
        expected: u32,
        found: u32,
    },

    /// The file was written by a format version this build cannot read.
    #[error(
        "{path}: unsupported block file format version {found} (this build reads {supported})"
    )]
    UnsupportedVersion {
        path: Utf8PathBuf,
        found: u16,
        supported: u16,
    },

    /// A compressed blob would decompress to more than the configured limit.
    #[error(
        "{path}: blob at offset {offset} (block {block}) decompresses to more than {limit} bytes"
    )]
    DecompressLimit {
        path: Utf8PathBuf,
        offset: u64,
        block: BlockNo,
        limit: usize,
    },

    /// A caller-supplied blob reference does not point into the blob area.
    #[error("{path}: blob reference {offset} is outside the blob area ({area_len} bytes)")]
    BadBlobRef {
        path: Utf8PathBuf,
        offset: u64,
        area_len: u64,
    },

    /// The caller used the API in a way the format cannot represent
    /// (key of the wrong width, keys out of order, blob or header too big).
    #[error("{path}: {reason}")]
    InvalidInput { path: Utf8PathBuf, reason: String },

    /// An earlier error left the writer in an unknown state.
    #[error("{path}: writer already failed; discard the file")]
    WriterFailed { path: Utf8PathBuf },
}

impl BlockFileError {
    pub(crate) fn io(
        path: &camino::Utf8Path,
        op: &'static str,
        offset: u64,
        source: io::Error,
    ) -> Self {
        BlockFileError::Io {
            path: path.to_owned(),
            op,
            offset,
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(
        path: &camino::Utf8Path,
        block: BlockNo,
        reason: impl Into<String>,
    ) -> Self {
        BlockFileError::Corrupt {
            path: path.to_owned(),
            block,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(path: &camino::Utf8Path, reason: impl Into<String>) -> Self {
        BlockFileError::InvalidInput {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// True for errors that mean the on-disk data is damaged or incomplete
    /// (as opposed to IO failures or API misuse).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            BlockFileError::Corrupt { .. }
                | BlockFileError::Truncated { .. }
                | BlockFileError::NoHeader { .. }
                | BlockFileError::DecompressLimit { .. }
        )
    }
}
