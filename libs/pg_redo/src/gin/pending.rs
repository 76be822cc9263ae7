//! Redo of the metapage and the fast-update pending list: UPDATE_META_PAGE,
//! INSERT_LISTPAGE and DELETE_LISTPAGE (layouts in the parent module).
//!
//! The metapage is always rebuilt from the record (`GinInitMetabuffer`
//! plus the logged `GinMetaPageData`, copied verbatim with its padding), as
//! PostgreSQL does regardless of the page's LSN. List pages hold plain
//! index tuples; their `maxoff` counts heap rows, not tuples: a page ending
//! a row's tuples (GIN_LIST_FULLROW) starts at 1, and every row appended to
//! the tail by UPDATE_META_PAGE adds one.

use crate::dispatch::prepare_existing;
use crate::error::RedoError;
use crate::pageops::{self, AddItemMode, Page, SIZE_OF_PAGE_HEADER};
use crate::record::Ctx;

use super::tree::index_tuple_size;
use super::INVALID_BLOCK;
use super::{expect_block, init_page, Opaque, GIN_DELETED, GIN_LIST, GIN_LIST_FULLROW, GIN_META};

/// `sizeof(GinMetaPageData)`.
const META_SIZE: usize = 56;
/// Offset of the metadata in ginxlogUpdateMeta (after the 12-byte
/// RelFileNode, aligned for its int64 fields).
const UPDATE_META_AT: usize = 16;
/// `GIN_METAPAGE_BLKNO`.
const METAPAGE_BLKNO: u32 = 0;

/// Rebuilds the metapage (block 0) from the logged metadata.
fn restore_metapage(ctx: &Ctx<'_>, page: &mut Page, meta: &[u8]) -> Result<(), RedoError> {
    expect_block(ctx, &[0])?;
    if ctx.blk.blkno != METAPAGE_BLKNO {
        return Err(ctx.malformed(format!(
            "metapage reference is block {}, not {METAPAGE_BLKNO}",
            ctx.blk.blkno
        )));
    }
    init_page(ctx, page, GIN_META)?;
    let start = SIZE_OF_PAGE_HEADER;
    page[start..start + META_SIZE].copy_from_slice(meta);
    // pd_lower just past the metadata keeps it out of the image hole.
    pageops::set_lower(page, (start + META_SIZE) as u16);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// Adds `ntuples` index tuples, packed back to back in the block data, at
/// consecutive offsets from `off`; all of the data must be used.
fn add_tuples(ctx: &Ctx<'_>, page: &mut Page, ntuples: i32, mut off: u16) -> Result<(), RedoError> {
    let data: &[u8] = ctx.data();
    let mut pos = 0usize;
    for i in 0..ntuples.max(0) {
        let rest = data.get(pos..).unwrap_or_default();
        let size = index_tuple_size(rest)
            .ok_or_else(|| ctx.malformed(format!("tuple {i} of {ntuples} truncated")))?;
        pageops::page_add_item(page, &rest[..size], off, AddItemMode::default())
            .map_err(|e| ctx.page_err(e))?;
        pos += size;
        off = off
            .checked_add(1)
            .ok_or_else(|| ctx.malformed("too many tuples"))?;
    }
    if pos != data.len() {
        return Err(ctx.malformed(format!(
            "{} bytes of tuple data left after {ntuples} tuples",
            data.len() - pos
        )));
    }
    Ok(())
}

pub fn update_meta(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than ginxlogUpdateMeta");
    md.seek(UPDATE_META_AT).ok_or_else(bad)?;
    let meta = md.bytes(META_SIZE).ok_or_else(bad)?;
    let prev_tail = md.u32().ok_or_else(bad)?;
    let new_rightlink = md.u32().ok_or_else(bad)?;
    let ntuples = md.u32().ok_or_else(bad)? as i32;
    match ctx.blk.block_id {
        0 => restore_metapage(ctx, page, meta),
        // One heap row's tuples appended to the tail page.
        1 if ntuples > 0 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            let o = Opaque::get(ctx, page)?;
            let first = pageops::max_offset(page) + 1;
            add_tuples(ctx, page, ntuples, first)?;
            o.set_maxoff(page, o.maxoff(page).wrapping_add(1));
            pageops::set_lsn(page, ctx.end_lsn());
            Ok(())
        }
        // A new sublist was linked after the old tail.
        1 if prev_tail != INVALID_BLOCK => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            Opaque::get(ctx, page)?.set_rightlink(page, new_rightlink);
            pageops::set_lsn(page, ctx.end_lsn());
            Ok(())
        }
        _ => expect_block(ctx, &[0]),
    }
}

pub fn insert_list_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block(ctx, &[0])?;
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than ginxlogInsertListPage");
    let rightlink = md.u32().ok_or_else(bad)?;
    let ntuples = md.u32().ok_or_else(bad)? as i32;
    let o = init_page(ctx, page, GIN_LIST)?;
    o.set_rightlink(page, rightlink);
    if rightlink == INVALID_BLOCK {
        // The last page of a sublist ends a heap row.
        o.set_flags(page, o.flags(page) | GIN_LIST_FULLROW);
        o.set_maxoff(page, 1);
    }
    add_tuples(ctx, page, ntuples, 1)?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

pub fn delete_list_pages(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than ginxlogDeleteListPages");
    let meta = md.bytes(META_SIZE).ok_or_else(bad)?;
    let ndeleted = md.u32().ok_or_else(bad)? as i32;
    let id = ctx.blk.block_id;
    if id == 0 {
        return restore_metapage(ctx, page, meta);
    }
    if i32::from(id) > ndeleted {
        return Err(ctx.malformed(format!(
            "block reference {id} but only {ndeleted} deleted pages"
        )));
    }
    // Deleted list pages are re-initialised empty; nobody follows their
    // links any more.
    init_page(ctx, page, GIN_DELETED)?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}
