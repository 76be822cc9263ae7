//! Redo for the SP-GiST resource manager (rmgr 16). Not implemented yet: every
//! record is refused with [`RedoError::Unsupported`] by the dispatcher
//! (see [`supports`]), and [`mask`] applies only the masks every rmgr
//! shares.

use postgres_ffi::BlockNumber;

use crate::dispatch::unsupported;
use crate::error::RedoError;
use crate::mask;
use crate::pageops::Page;
use crate::record::Ctx;

/// Whether the record type `info` (rmgr bits of xl_info) has native redo.
pub fn supports(_info: u8) -> bool {
    false
}

/// Redo of one block reference (not restored from an image).
pub fn redo(ctx: &Ctx<'_>, _page: &mut Page) -> Result<(), RedoError> {
    Err(unsupported(ctx.rec))
}

/// PostgreSQL's rm_mask for this rmgr.
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    mask::mask_hint_bits(page);
    mask::mask_unused_space(page);
}
