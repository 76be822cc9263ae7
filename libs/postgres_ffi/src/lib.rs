//! Byte-level knowledge of PostgreSQL's on-disk and WAL formats, in safe Rust.
//!
//! This crate owns everything the page server needs to read or write bytes
//! exactly as a stock PostgreSQL server does, without linking to Postgres:
//!
//! - [`page`]: the 8 KiB page header, line pointers and the data checksum.
//! - [`relfile`]: relation forks, relation segment files and their paths.
//! - [`slru`]: geometry of the SLRU areas (CLOG, multixact, subtrans,
//!   commit timestamps) and their segment file names.
//! - [`relmap`], [`twophase`]: `pg_filenode.map` and `pg_twophase` files.
//! - [`pglz`]: PostgreSQL's LZ decompressor (used by compressed full-page images).
//! - [`wal`]: WAL page headers, record headers, block references, full-page
//!   images, a streaming decoder, a record/WAL encoder, segment file naming and
//!   timeline history files.
//! - [`rmgr`]: resource manager ids and `pg_waldump`-style record names.
//! - [`v15`]: everything whose value or layout belongs to PostgreSQL 15
//!   (magic numbers, catalog version, `pg_control` layout, record type codes).
//!   Support for another major version is added as a sibling module plus an
//!   arm in [`PgMajorVersion`]; the version-independent code dispatches on it.
//!
//! Invariants kept by every parser here: input bytes are untrusted. Bad or
//! truncated input yields a typed error that says what was wrong and where
//! (for WAL: the LSN); nothing panics on external input.
//!
//! Used by WAL ingest (decoding), WAL redo (images, page layout), basebackup
//! (control file, paths, SLRU names) and the verification tools.

pub mod page;
pub mod pglz;
pub mod relfile;
pub mod relmap;
pub mod rmgr;
pub mod slru;
pub mod twophase;
pub mod types;
pub mod v15;
pub mod version;
pub mod wal;

mod bytes_le;

pub use types::{
    BlockNumber, FullTransactionId, MultiXactId, MultiXactOffset, Oid, RepOriginId, TimeLineId,
    TransactionId,
};
pub use utils::lsn::Lsn;
pub use version::PgMajorVersion;

/// Size of a relation or SLRU page. PostgreSQL allows other sizes at compile
/// time, but every supported distribution uses 8 KiB; the control file records
/// the value and [`v15::controlfile::ControlFileData`] exposes it for checking.
pub const BLCKSZ: usize = 8192;

/// Size of a WAL page.
pub const XLOG_BLCKSZ: usize = 8192;

/// Blocks per relation segment file (1 GiB of 8 KiB pages).
pub const RELSEG_SIZE: u32 = 131072;

/// `MAXALIGN` on every platform PostgreSQL's 64-bit builds run on.
pub const MAXIMUM_ALIGNOF: usize = 8;

/// Rounds `len` up to [`MAXIMUM_ALIGNOF`]. Saturates instead of overflowing so
/// that a garbage length from external input cannot panic in debug builds.
pub const fn maxalign(len: usize) -> usize {
    match len.checked_add(MAXIMUM_ALIGNOF - 1) {
        Some(v) => v & !(MAXIMUM_ALIGNOF - 1),
        None => usize::MAX & !(MAXIMUM_ALIGNOF - 1),
    }
}
