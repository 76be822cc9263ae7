//! Redo of the GIN records that change the entry tree and posting trees:
//! CREATE_PTREE, INSERT (entry pages, posting-tree internal and leaf pages),
//! SPLIT, VACUUM_PAGE, VACUUM_DATA_LEAF_PAGE and DELETE_PAGE. Layouts are
//! in the table of the parent module.
//!
//! SPLIT and VACUUM_PAGE log their pages as forced full-page images, which
//! the dispatcher restores; reaching redo for those blocks means the image
//! is missing, an error as in PostgreSQL. The child block of an insert or
//! split that completes an earlier split only loses GIN_INCOMPLETE_SPLIT.

use crate::dispatch::prepare_existing;
use crate::error::RedoError;
use crate::pageops::{self, AddItemMode, Page};
use crate::record::{Ctx, Reader};

use super::{
    clear_incomplete_split, expect_block, init_page, recompress, set_data_size, Opaque, DATA_START,
    GIN_COMPRESSED, GIN_DATA, GIN_DELETED, GIN_LEAF, INVALID_BLOCK,
};

/// ginxlogInsert / ginxlogSplit flags.
const INSERT_ISDATA: u16 = 0x01;
const INSERT_ISLEAF: u16 = 0x02;
const SPLIT_ROOT: u16 = 0x04;
/// `sizeof(PostingItem)`: child BlockId (4) + key item pointer (6).
const POSTING_ITEM_SIZE: usize = 10;
/// Offset of the entry tuple in ginxlogInsertEntry.
const ENTRY_TUPLE_AT: usize = 4;
/// `sizeof(ginxlogInsertDataInternal)`.
const DATA_INTERNAL_SIZE: usize = 2 + POSTING_ITEM_SIZE;
/// Offset of `flags` in ginxlogSplit.
const SPLIT_FLAGS_AT: usize = 24;
/// `INDEX_SIZE_MASK` of an index tuple's t_info.
const INDEX_SIZE_MASK: u16 = 0x1FFF;

/// A `BlockIdData`: high half first.
fn read_block_id(r: &mut Reader<'_>) -> Option<u32> {
    let hi = r.u16()? as u32;
    let lo = r.u16()? as u32;
    Some((hi << 16) | lo)
}

fn block_id_bytes(blk: u32) -> [u8; 4] {
    let hi = ((blk >> 16) as u16).to_le_bytes();
    let lo = (blk as u16).to_le_bytes();
    [hi[0], hi[1], lo[0], lo[1]]
}

/// Size of the index tuple at the start of `b` (`IndexTupleSize`), checked
/// to lie within `b`.
pub(super) fn index_tuple_size(b: &[u8]) -> Option<usize> {
    let t_info = u16::from_le_bytes([*b.get(6)?, *b.get(7)?]);
    let size = (t_info & INDEX_SIZE_MASK) as usize;
    (size <= b.len()).then_some(size)
}

fn kind_name(data: bool, leaf: bool) -> &'static str {
    match (data, leaf) {
        (true, true) => "posting-tree leaf",
        (true, false) => "posting-tree internal",
        (false, true) => "entry leaf",
        (false, false) => "entry internal",
    }
}

/// The page must be of the kind the record was written for (PostgreSQL
/// asserts this; a mismatch means the record or base page is wrong).
fn check_kind(
    ctx: &Ctx<'_>,
    page: &Page,
    o: Opaque,
    data: bool,
    leaf: Option<bool>,
) -> Result<(), RedoError> {
    let f = o.flags(page);
    let (is_data, is_leaf) = (f & GIN_DATA != 0, f & GIN_LEAF != 0);
    if is_data != data || leaf.is_some_and(|l| l != is_leaf) {
        return Err(ctx.malformed(format!(
            "record is for a {} page, block {} is a {} page (flags {f:#06x})",
            kind_name(data, leaf.unwrap_or(is_leaf)),
            ctx.blk.blkno,
            kind_name(is_data, is_leaf)
        )));
    }
    Ok(())
}

pub fn create_ptree(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block(ctx, &[0])?;
    let mut md = ctx.main();
    let size = md
        .u32()
        .ok_or_else(|| ctx.malformed("main data shorter than ginxlogCreatePostingTree"))?
        as usize;
    let list = md
        .bytes(size)
        .ok_or_else(|| ctx.malformed(format!("posting list of {size} bytes truncated")))?;
    if !md.at_end() {
        return Err(ctx.malformed("bytes after the posting list"));
    }
    let o = init_page(ctx, page, GIN_DATA | GIN_LEAF | GIN_COMPRESSED)?;
    set_data_size(ctx, page, o, size)?;
    page[DATA_START..DATA_START + size].copy_from_slice(list);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

pub fn insert(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than ginxlogInsert");
    let flags = md.u16().ok_or_else(bad)?;
    let is_data = flags & INSERT_ISDATA != 0;
    let is_leaf = flags & INSERT_ISLEAF != 0;
    // A downlink insert names the split child pair; the existing downlink
    // is re-pointed at the right one.
    let right_child = if is_leaf {
        INVALID_BLOCK
    } else {
        let _left = read_block_id(&mut md).ok_or_else(bad)?;
        read_block_id(&mut md).ok_or_else(bad)?
    };
    match ctx.blk.block_id {
        1 if !is_leaf => clear_incomplete_split(ctx, page),
        0 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            let o = Opaque::get(ctx, page)?;
            check_kind(ctx, page, o, is_data, Some(is_leaf))?;
            if !is_data {
                insert_entry(ctx, page, right_child)?;
            } else if is_leaf {
                recompress::apply(page, o, ctx.data()).map_err(|e| ctx.malformed(e))?;
            } else {
                insert_posting_item(ctx, page, o, right_child)?;
            }
            pageops::set_lsn(page, ctx.end_lsn());
            Ok(())
        }
        _ => expect_block(ctx, &[]),
    }
}

/// Entry page: re-point the downlink at `offset` (after a child split),
/// drop the old tuple (leaf update), then add the new tuple at `offset`.
fn insert_entry(ctx: &Ctx<'_>, page: &mut Page, right_child: u32) -> Result<(), RedoError> {
    let data: &[u8] = ctx.data();
    let mut r = Reader::new(data);
    let bad = || ctx.malformed("block data shorter than ginxlogInsertEntry");
    let offset = r.u16().ok_or_else(bad)?;
    let is_delete = r.u8().ok_or_else(bad)? != 0;
    let tuple = data.get(ENTRY_TUPLE_AT..).ok_or_else(bad)?;
    let size = index_tuple_size(tuple).ok_or_else(|| ctx.malformed("entry tuple truncated"))?;
    if size != tuple.len() {
        return Err(ctx.malformed(format!(
            "entry tuple of {size} bytes in {} bytes of block data",
            tuple.len()
        )));
    }
    if right_child != INVALID_BLOCK {
        let range = pageops::normal_item_range(page, offset).map_err(|e| ctx.page_err(e))?;
        if range.len() < 6 {
            return Err(ctx.malformed(format!("downlink tuple {offset} shorter than its tid")));
        }
        let mut tid = [0u8; 6];
        tid[..4].copy_from_slice(&block_id_bytes(right_child));
        page[range.start..range.start + 6].copy_from_slice(&tid);
    }
    if is_delete {
        pageops::page_index_tuple_delete(page, offset).map_err(|e| ctx.page_err(e))?;
    }
    pageops::page_add_item(page, tuple, offset, AddItemMode::default())
        .map_err(|e| ctx.page_err(e))?;
    Ok(())
}

/// Byte offset of PostingItem `off` (1-based) on an internal data page.
fn posting_item_pos(off: usize) -> usize {
    DATA_START + (off - 1) * POSTING_ITEM_SIZE
}

/// Posting-tree internal page: re-point the item at `offset` to the right
/// half of the split child, then insert the new item before it.
fn insert_posting_item(
    ctx: &Ctx<'_>,
    page: &mut Page,
    o: Opaque,
    right_child: u32,
) -> Result<(), RedoError> {
    let data: &[u8] = ctx.data();
    if data.len() != DATA_INTERNAL_SIZE {
        return Err(ctx.malformed(format!(
            "ginxlogInsertDataInternal of {} bytes, expected {DATA_INTERNAL_SIZE}",
            data.len()
        )));
    }
    let offset = u16::from_le_bytes([data[0], data[1]]) as usize;
    let item = &data[2..];
    let maxoff = o.maxoff(page) as usize;
    // Offset 0 would make PostgreSQL write into the page header.
    if offset == 0 || offset > maxoff + 1 {
        return Err(ctx.malformed(format!(
            "posting item offset {offset} on a page with {maxoff} items"
        )));
    }
    let newmax = maxoff + 1;
    set_data_size(ctx, page, o, newmax * POSTING_ITEM_SIZE)?;
    let at = posting_item_pos(offset);
    page[at..at + 4].copy_from_slice(&block_id_bytes(right_child));
    if offset != newmax {
        page.copy_within(at..posting_item_pos(newmax), at + POSTING_ITEM_SIZE);
    }
    page[at..at + POSTING_ITEM_SIZE].copy_from_slice(item);
    o.set_maxoff(page, newmax as u16);
    Ok(())
}

/// `GinPageDeletePostingItem`.
fn delete_posting_item(
    ctx: &Ctx<'_>,
    page: &mut Page,
    o: Opaque,
    offset: usize,
) -> Result<(), RedoError> {
    let maxoff = o.maxoff(page) as usize;
    if offset == 0 || offset > maxoff {
        return Err(ctx.malformed(format!(
            "parent offset {offset} on a page with {maxoff} posting items"
        )));
    }
    let end = posting_item_pos(maxoff + 1);
    if end > o.pos() {
        return Err(ctx.malformed(format!(
            "{maxoff} posting items do not fit before the special space"
        )));
    }
    if offset != maxoff {
        page.copy_within(posting_item_pos(offset + 1)..end, posting_item_pos(offset));
    }
    o.set_maxoff(page, (maxoff - 1) as u16);
    set_data_size(ctx, page, o, (maxoff - 1) * POSTING_ITEM_SIZE)
}

pub fn split(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let flags = md
        .seek(SPLIT_FLAGS_AT)
        .and_then(|_| md.u16())
        .ok_or_else(|| ctx.malformed("main data shorter than ginxlogSplit"))?;
    let is_leaf = flags & INSERT_ISLEAF != 0;
    let is_root = flags & SPLIT_ROOT != 0;
    let which = match ctx.blk.block_id {
        3 if !is_leaf => return clear_incomplete_split(ctx, page),
        0 => "left",
        1 => "right",
        2 if is_root => "root",
        _ => return expect_block(ctx, &[]),
    };
    Err(ctx.malformed(format!(
        "GIN split record did not contain a full-page image of the {which} page"
    )))
}

pub fn vacuum_page(ctx: &Ctx<'_>) -> Result<(), RedoError> {
    expect_block(ctx, &[0])?;
    Err(ctx.malformed(
        "replay of gin entry tree page vacuum did not restore the page (no full-page image)",
    ))
}

pub fn vacuum_data_leaf(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    expect_block(ctx, &[0])?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let o = Opaque::get(ctx, page)?;
    check_kind(ctx, page, o, true, Some(true))?;
    recompress::apply(page, o, ctx.data()).map_err(|e| ctx.malformed(e))?;
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

pub fn delete_page(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut md = ctx.main();
    let bad = || ctx.malformed("main data shorter than ginxlogDeletePage");
    let parent_offset = md.u16().ok_or_else(bad)? as usize;
    md.seek(4).ok_or_else(bad)?;
    let right_link = md.u32().ok_or_else(bad)?;
    let delete_xid = md.u32().ok_or_else(bad)?;
    expect_block(ctx, &[0, 1, 2])?;
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let o = Opaque::get(ctx, page)?;
    match ctx.blk.block_id {
        // The left sibling skips the deleted page.
        2 => {
            check_kind(ctx, page, o, true, None)?;
            o.set_rightlink(page, right_link);
        }
        // The deleted page keeps its right link for scans still on it;
        // pd_prune_xid remembers who may still see it.
        0 => {
            check_kind(ctx, page, o, true, None)?;
            o.set_flags(page, o.flags(page) | GIN_DELETED);
            pageops::set_prune_xid(page, delete_xid);
        }
        // The parent loses its downlink.
        _ => {
            check_kind(ctx, page, o, true, Some(false))?;
            delete_posting_item(ctx, page, o, parent_offset)?;
        }
    }
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}
