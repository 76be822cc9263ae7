//! Error types of the redo library.
//!
//! [`PageOpError`] is what the page toolkit ([`crate::pageops`]) returns when a
//! page's pointers or line pointers are inconsistent, or an operation does not
//! fit; it knows nothing about records. [`RedoError`] is what [`crate::apply`]
//! returns: it names the record (LSN and `Rmgr/TYPE`) so that a caller can
//! report which key failed at which LSN. Redo never panics on bad input: every
//! malformed record or page ends up as one of these.

use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::wal::{ImageError, WalDecodeError};
use postgres_ffi::{BlockNumber, Lsn};

/// A page-level operation could not be carried out on this page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageOpError {
    #[error("corrupted page pointers: lower = {lower}, upper = {upper}, special = {special}")]
    CorruptPointers {
        lower: u16,
        upper: u16,
        special: u16,
    },
    #[error("line pointer {offnum} does not exist (page has {max})")]
    NoSuchItem { offnum: u16, max: u16 },
    #[error("line pointer {offnum} points outside the page (offset {off}, length {len})")]
    ItemOutOfPage { offnum: u16, off: u16, len: u16 },
    #[error("corrupted line pointer {offnum}: offset = {off}, size = {len}")]
    CorruptLinePointer { offnum: u16, off: u16, len: u16 },
    #[error("corrupted item lengths: total {total}, available space {available}")]
    CorruptItemLengths { total: usize, available: usize },
    #[error("line pointer {offnum} is {flags} but the operation needs {wanted}")]
    WrongItemState {
        offnum: u16,
        flags: &'static str,
        wanted: &'static str,
    },
    #[error("item offset {offnum} is beyond the first free slot {limit}")]
    OffsetTooLarge { offnum: u16, limit: u16 },
    #[error("cannot put more than {max} items on a heap page (offset {offnum})")]
    TooManyHeapItems { offnum: u16, max: u16 },
    #[error("will not overwrite used line pointer {offnum}")]
    WouldOverwrite { offnum: u16 },
    #[error("item of {size} bytes does not fit (lower {lower}, upper {upper})")]
    NoSpace { size: usize, lower: u16, upper: u16 },
    #[error("item of {size} bytes is larger than a page can hold")]
    ItemTooLarge { size: usize },
    #[error("item offsets to delete are not sorted, unique and present on the page")]
    BadDeleteList,
    #[error("special space of {size} bytes does not fit in a page")]
    SpecialTooLarge { size: usize },
}

/// Why [`crate::apply`] could not produce the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedoError {
    /// The record type has no native redo (yet). Never guessed at.
    #[error("unsupported record {name} (rmgr {rmgr} id {rmid}, info {info:#04x}) at {lsn}")]
    Unsupported {
        lsn: Lsn,
        rmid: u8,
        info: u8,
        /// Resource manager name, e.g. `Btree`.
        rmgr: String,
        /// `Rmgr/TYPE` as `pg_waldump` names it.
        name: String,
    },
    #[error("stored WAL record could not be decoded: {0}")]
    Decode(#[from] WalDecodeError),
    #[error("record at {lsn}: block {block_id}: cannot restore image: {source}")]
    Image {
        lsn: Lsn,
        block_id: u8,
        #[source]
        source: ImageError,
    },
    #[error("record {name} at {lsn} has no block reference {block_id}")]
    NoSuchBlock {
        lsn: Lsn,
        name: String,
        block_id: u8,
    },
    #[error(
        "record {name} at {lsn}: block {block_id} is {found_rel} fork {found_fork} blk {found_blk}, \
         but the target is {rel} fork {fork} blk {blkno}"
    )]
    WrongTarget {
        lsn: Lsn,
        name: String,
        block_id: u8,
        found_rel: RelFileNode,
        found_fork: u8,
        found_blk: BlockNumber,
        rel: RelFileNode,
        fork: u8,
        blkno: BlockNumber,
    },
    /// A delta record needs the page's previous contents, but the page does
    /// not exist (no base image) or was never initialised (all zeroes).
    #[error("record {name} at {lsn} modifies a page that does not exist or is not initialised")]
    MissingBase { lsn: Lsn, name: String },
    #[error("base page is {len} bytes, expected 8192")]
    BadBasePage { len: usize },
    #[error("record {name} at {lsn} is malformed: {what}")]
    Malformed {
        lsn: Lsn,
        name: String,
        what: String,
    },
    #[error("record {name} at {lsn}: {source}")]
    Page {
        lsn: Lsn,
        name: String,
        #[source]
        source: PageOpError,
    },
    #[error("visibility map page: {0}")]
    VmPage(PageOpError),
}
