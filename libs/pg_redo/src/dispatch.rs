//! Routing one (record, block) pair to its resource manager, and the common
//! "read buffer for redo" protocol every routine follows.
//!
//! PostgreSQL's `XLogReadBufferForRedoExtended` decides per block: restore
//! an image that has BKPIMAGE_APPLY (the rmgr's routine then leaves that
//! block alone), or initialise a WILL_INIT block, or apply the delta unless
//! the page LSN shows it is already applied. [`redo_block`] does the first
//! step; for Hash and GiST, which edit a restored page further, it then calls
//! their `after_restore`. Unknown record types are refused before any image
//! is touched. [`prepare_existing`] and [`prepare_init`] are the other two
//! steps. Everything not implemented is refused with
//! [`RedoError::Unsupported`] naming rmgr and record.

use postgres_ffi::rmgr::{
    self, RM_BRIN_ID, RM_BTREE_ID, RM_GENERIC_ID, RM_GIN_ID, RM_GIST_ID, RM_HASH_ID, RM_HEAP2_ID,
    RM_HEAP_ID, RM_SEQ_ID, RM_SPGIST_ID, RM_XLOG_ID,
};
use postgres_ffi::v15::info::{heap, seq, xlog};
use postgres_ffi::wal::{WalRecord, XLR_RMGR_INFO_MASK};
use postgres_ffi::PgMajorVersion;

use crate::error::RedoError;
use crate::pageops::{self, Page};
use crate::record::Ctx;
use crate::{brin, btree, generic, gin, gist, hash, spgist};
use crate::{heap as heap_redo, heap2 as heap2_redo, seq as seq_redo};

/// Which native routine handles a record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// XLOG FPI / FPI_FOR_HINT: image restore only.
    XlogImage {
        for_hint: bool,
    },
    Heap,
    Heap2,
    Sequence,
    Btree,
    Hash,
    Gin,
    Gist,
    SpGist,
    Brin,
    Generic,
}

/// The handler for `(rmid, info)`, or `None` if the record type has no native
/// redo yet.
pub fn classify(rmid: u8, info: u8) -> Option<Handler> {
    let info = info & XLR_RMGR_INFO_MASK;
    match rmid {
        RM_XLOG_ID => match info {
            xlog::FPI => Some(Handler::XlogImage { for_hint: false }),
            xlog::FPI_FOR_HINT => Some(Handler::XlogImage { for_hint: true }),
            _ => None,
        },
        // Every Heap/Heap2 op code (3 bits) is known; the top bit is the
        // INIT_PAGE flag.
        RM_HEAP_ID => Some(Handler::Heap),
        RM_HEAP2_ID => Some(Handler::Heap2),
        RM_SEQ_ID if info == seq::LOG => Some(Handler::Sequence),
        RM_BTREE_ID if btree::supports(info) => Some(Handler::Btree),
        RM_HASH_ID if hash::supports(info) => Some(Handler::Hash),
        RM_GIN_ID if gin::supports(info) => Some(Handler::Gin),
        RM_GIST_ID if gist::supports(info) => Some(Handler::Gist),
        RM_SPGIST_ID if spgist::supports(info) => Some(Handler::SpGist),
        RM_BRIN_ID if brin::supports(info) => Some(Handler::Brin),
        RM_GENERIC_ID if generic::supports(info) => Some(Handler::Generic),
        _ => None,
    }
}

/// Whether redo of this rmgr may change a block after restoring its
/// full-page image (Hash and GiST do, in some records): such blocks must be
/// stored as the record, not as the restored image.
pub fn edits_restored_image(rmid: u8) -> bool {
    matches!(rmid, RM_HASH_ID | RM_GIST_ID)
}

/// Whether [`crate::apply`] can redo blocks of this record type.
pub fn is_supported(rmid: u8, info: u8) -> bool {
    classify(rmid, info).is_some()
}

pub fn unsupported(rec: &WalRecord) -> RedoError {
    RedoError::Unsupported {
        lsn: rec.lsn,
        rmid: rec.rmid(),
        info: rec.info() & XLR_RMGR_INFO_MASK,
        rmgr: rmgr::rmgr_name(rec.rmid()).unwrap_or_else(|| format!("rmgr{}", rec.rmid())),
        name: rec.name(PgMajorVersion::V15),
    }
}

/// Restores the block's image into `page` and stamps the record's end LSN
/// unless the image is an all-zero ("new") page.
pub fn restore_image(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let image = ctx
        .blk
        .image
        .as_ref()
        .ok_or_else(|| ctx.malformed("block has no image to restore"))?;
    let restored = ctx
        .rec
        .restore_block_image(image)
        .map_err(|source| RedoError::Image {
            lsn: ctx.rec.lsn,
            block_id: ctx.blk.block_id,
            source,
        })?;
    *page = *restored;
    if !pageops::is_new(page) {
        pageops::set_lsn(page, ctx.end_lsn());
    }
    Ok(())
}

/// Redo of one block reference of one record onto `page`.
pub fn redo_block(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let handler = classify(ctx.rec.rmid(), ctx.rec.info()).ok_or_else(|| unsupported(ctx.rec))?;
    if ctx.blk.apply_image() {
        restore_image(ctx, page)?;
        return match handler {
            Handler::Hash => hash::after_restore(ctx, page),
            Handler::Gist => gist::after_restore(ctx, page),
            _ => Ok(()),
        };
    }
    match handler {
        Handler::XlogImage { for_hint } => {
            if ctx.blk.image.is_some() {
                // XLOG images are always taken for restore; one without
                // APPLY makes PostgreSQL error out too.
                Err(ctx.malformed("XLOG image without BKPIMAGE_APPLY"))
            } else if for_hint {
                // full_page_writes was off: the hint change is not logged.
                Ok(())
            } else {
                Err(ctx.malformed("XLOG FPI block without an image"))
            }
        }
        Handler::Heap => heap_redo::redo(ctx, page),
        Handler::Heap2 => heap2_redo::redo(ctx, page),
        Handler::Sequence => seq_redo::redo(ctx, page),
        Handler::Btree => btree::redo(ctx, page),
        Handler::Hash => hash::redo(ctx, page),
        Handler::Gin => gin::redo(ctx, page),
        Handler::Gist => gist::redo(ctx, page),
        Handler::SpGist => spgist::redo(ctx, page),
        Handler::Brin => brin::redo(ctx, page),
        Handler::Generic => generic::redo(ctx, page),
    }
}

/// For a delta on an existing page: the block must not be WILL_INIT, the page
/// must be initialised, and returns `false` ("already applied", PostgreSQL's
/// BLK_DONE) when the page LSN is at or past the record's end.
pub fn prepare_existing(ctx: &Ctx<'_>, page: &Page) -> Result<bool, RedoError> {
    if ctx.blk.will_init() {
        return Err(ctx.malformed(format!(
            "block {} has WILL_INIT but the record does not initialise it",
            ctx.blk.block_id
        )));
    }
    if pageops::is_new(page) {
        return Err(ctx.missing_base());
    }
    Ok(pageops::lsn(page) < ctx.end_lsn())
}

/// For records that re-initialise the page: the block must be WILL_INIT;
/// the page is zeroed and `PageInit`ed with `special` bytes of special space.
pub fn prepare_init(ctx: &Ctx<'_>, page: &mut Page, special: usize) -> Result<(), RedoError> {
    if !ctx.blk.will_init() {
        return Err(ctx.malformed(format!(
            "record initialises block {} but it is not marked WILL_INIT",
            ctx.blk.block_id
        )));
    }
    pageops::page_init(page, special).map_err(|e| ctx.page_err(e))
}

/// The heap op code of a Heap/Heap2 record (INIT_PAGE bit stripped).
pub fn heap_op(info: u8) -> u8 {
    info & heap::OPMASK
}
