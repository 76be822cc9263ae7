//! Redo for the Sequence resource manager (rmgr 15, `seq_redo`): every
//! Sequence/LOG record rebuilds the sequence's single page from scratch.
//!
//! Main data: `xl_seq_rec` (the sequence's RelFileNode, 12 bytes) followed by
//! the complete sequence tuple. The page is `PageInit`ed with 4 bytes of
//! special space holding the magic 0x1717, and the tuple is added as item 1.
//! Block 0 is always WILL_INIT; the previous page contents do not matter.

use crate::dispatch::prepare_init;
use crate::error::RedoError;
use crate::heap::expect_block0;
use crate::pageops::{self, AddItemMode, Page};
use crate::record::Ctx;

/// `SEQ_MAGIC`, stored in the special space.
pub const SEQ_MAGIC: u32 = 0x1717;
/// sizeof(xl_seq_rec).
const SIZE_OF_SEQ_REC: usize = 12;

pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block0(ctx)?;
    let tuple = ctx
        .rec
        .main_data()
        .get(SIZE_OF_SEQ_REC..)
        .ok_or_else(|| ctx.malformed("main data shorter than xl_seq_rec"))?;
    prepare_init(ctx, page, 4)?;
    let special = pageops::special(page) as usize;
    pageops::write_at(page, special, &SEQ_MAGIC.to_le_bytes());
    pageops::page_add_item(page, tuple, 1, AddItemMode::default()).map_err(|e| ctx.page_err(e))?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}
