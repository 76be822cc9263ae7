//! The per-record redo routines of SP-GiST, one block reference at a time.
//!
//! PostgreSQL's `spgRedo*` functions visit a record's blocks in a fixed
//! order (new tuple before the redirect that points at it, and so on); only
//! hot-standby readers care about that order, each block's result depends
//! on nothing but the record and that block's previous contents. So every
//! routine here decodes the whole record, checks that the blocks PostgreSQL
//! would read are all referenced, and then performs only the part that
//! belongs to `ctx.blk`. A block reference PostgreSQL would never read
//! (e.g. a parent block in an ADD_LEAF without a parent downlink) is
//! refused as malformed, since a primary never registers one.

use postgres_ffi::BlockNumber;

use crate::dispatch::prepare_existing;
use crate::error::RedoError;
use crate::pageops::{self, Page};
use crate::record::Ctx;

use super::page::{
    add_or_replace, bump, dead_tuple, init_page, multi_delete_dead, redirect_to_placeholder,
    replace_at, set_next_offset, swap_line_pointers, update_node_link, Counter, DeadFill,
    SPGIST_DEAD, SPGIST_LEAF, SPGIST_NULLS, SPGIST_PLACEHOLDER, SPGIST_REDIRECT,
};
use super::records::{self, FakeState};

/// Block number of another block reference the redo of this block needs
/// (PostgreSQL errors out when it is missing).
fn blkno_of(ctx: &Ctx<'_>, block_id: u8, what: &str) -> Result<BlockNumber, RedoError> {
    ctx.other_block(block_id)
        .map(|b| b.blkno)
        .ok_or_else(|| ctx.malformed(format!("no block reference {block_id} ({what})")))
}

/// Every block PostgreSQL's redo of this record reads must be referenced.
fn require_blocks(ctx: &Ctx<'_>, ids: &[(u8, &str)]) -> Result<(), RedoError> {
    for &(id, what) in ids {
        blkno_of(ctx, id, what)?;
    }
    Ok(())
}

fn unexpected_block(ctx: &Ctx<'_>, why: &str) -> RedoError {
    ctx.malformed(format!(
        "unexpected block reference {}: {why}",
        ctx.blk.block_id
    ))
}

fn leaf_flags(stores_nulls: bool) -> u16 {
    SPGIST_LEAF | if stores_nulls { SPGIST_NULLS } else { 0 }
}

/// Either re-initialise a WILL_INIT page with `flags` (`Some`) or apply to
/// the existing page; `false` when the existing page already has the change.
fn start(ctx: &Ctx<'_>, page: &mut Page, init: Option<u16>) -> Result<bool, RedoError> {
    match init {
        Some(flags) => {
            init_page(ctx, page, flags)?;
            Ok(true)
        }
        None => prepare_existing(ctx, page),
    }
}

fn done(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// ADD_LEAF. Block 0: the leaf page gets the new tuple — appended or in a
/// placeholder's slot (and then linked second in its chain when a chain
/// head is given), or in place of a DEAD chain head when both offsets are
/// equal. Block 1: the parent's downlink now points at the new tuple.
pub fn add_leaf(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::add_leaf(ctx)?;
    let has_parent = x.offnum_parent != 0;
    if has_parent {
        require_blocks(ctx, &[(1, "parent page")])?;
    }
    match ctx.blk.block_id {
        0 => {
            let init = x.new_page.then(|| leaf_flags(x.stores_nulls));
            if !start(ctx, page, init)? {
                return Ok(());
            }
            if x.offnum_leaf != x.offnum_head_leaf {
                add_or_replace(ctx, page, x.leaf, x.offnum_leaf)?;
                if x.offnum_head_leaf != 0 {
                    set_next_offset(ctx, page, x.offnum_head_leaf, x.offnum_leaf)?;
                }
            } else {
                replace_at(ctx, page, x.leaf, x.offnum_leaf)?;
            }
            done(ctx, page)
        }
        1 if has_parent => {
            let leaf_blk = blkno_of(ctx, 0, "leaf page")?;
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            update_node_link(
                ctx,
                page,
                x.offnum_parent,
                x.node_i,
                leaf_blk,
                x.offnum_leaf,
            )?;
            done(ctx, page)
        }
        _ => Err(unexpected_block(
            ctx,
            "ADD_LEAF uses blocks 0 and (with a parent) 1",
        )),
    }
}

/// MOVE_LEAFS. Block 1: the moved chain (plus the new tuple) lands on the
/// destination page. Block 0: the moved tuples become a redirect to the
/// chain's new head (a placeholder during a build) followed by
/// placeholders. Block 2: the parent's downlink points at the new head.
pub fn move_leafs(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::move_leafs(ctx)?;
    require_blocks(ctx, &[(0, "source page"), (2, "parent page")])?;
    let dest_blk = blkno_of(ctx, 1, "destination page")?;
    // Decoding guarantees at least one inserted offset.
    let new_head = x.to_insert.last().copied().unwrap_or(0);
    match ctx.blk.block_id {
        1 => {
            let init = x.new_page.then(|| leaf_flags(x.stores_nulls));
            if !start(ctx, page, init)? {
                return Ok(());
            }
            for (&off, leaf) in x.to_insert.iter().zip(&x.leaves) {
                add_or_replace(ctx, page, leaf, off)?;
            }
            done(ctx, page)
        }
        0 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            let fill = DeadFill {
                first: if x.state.is_build {
                    SPGIST_PLACEHOLDER
                } else {
                    SPGIST_REDIRECT
                },
                rest: SPGIST_PLACEHOLDER,
                target: (dest_blk, new_head),
                my_xid: x.state.my_xid,
            };
            multi_delete_dead(ctx, page, &x.to_delete, fill)?;
            done(ctx, page)
        }
        2 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            update_node_link(ctx, page, x.offnum_parent, x.node_i, dest_blk, new_head)?;
            done(ctx, page)
        }
        _ => Err(unexpected_block(ctx, "MOVE_LEAFS uses blocks 0, 1 and 2")),
    }
}

/// ADD_NODE. Without block 1 the enlarged inner tuple replaces the old one
/// in place on block 0. Otherwise it goes to block 1, the old slot on
/// block 0 becomes a redirect to it (a placeholder during a build), and
/// the parent downlink — on block 0, 1 or 2 as `parentBlk` says — follows.
pub fn add_node(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::add_node(ctx)?;
    require_blocks(ctx, &[(0, "original page")])?;
    let Some(new_ref) = ctx.other_block(1) else {
        if ctx.blk.block_id != 0 {
            return Err(unexpected_block(
                ctx,
                "an in-place ADD_NODE uses block 0 only",
            ));
        }
        if !prepare_existing(ctx, page)? {
            return Ok(());
        }
        replace_at(ctx, page, x.inner, x.offnum)?;
        return done(ctx, page);
    };
    let new_blk = new_ref.blkno;
    if x.parent_blk == 2 {
        require_blocks(ctx, &[(2, "parent page")])?;
    }
    let link = |page: &mut Page| {
        update_node_link(ctx, page, x.offnum_parent, x.node_i, new_blk, x.offnum_new)
    };
    match ctx.blk.block_id {
        1 => {
            // ADD_NODE never happens on the nulls tree.
            let init = x.new_page.then_some(0);
            if !start(ctx, page, init)? {
                return Ok(());
            }
            add_or_replace(ctx, page, x.inner, x.offnum_new)?;
            if x.parent_blk == 1 {
                link(page)?;
            }
            done(ctx, page)
        }
        0 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            let (dt, counter) = stand_in(x.state, (new_blk, x.offnum_new));
            replace_at(ctx, page, &dt, x.offnum)?;
            bump(ctx, page, counter, 1)?;
            if x.parent_blk == 0 {
                link(page)?;
            }
            done(ctx, page)
        }
        2 if x.parent_blk == 2 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            link(page)?;
            done(ctx, page)
        }
        _ => Err(unexpected_block(
            ctx,
            "ADD_NODE uses blocks 0, 1 and (when it holds the parent) 2",
        )),
    }
}

/// The dead tuple left where a moved inner tuple was, and the counter it
/// adds to: a redirect to `target`, or a placeholder during an index build
/// (no concurrent scans can need the redirect then).
fn stand_in(state: FakeState, target: (BlockNumber, u16)) -> ([u8; 16], Counter) {
    if state.is_build {
        (
            dead_tuple(SPGIST_PLACEHOLDER, target, state.my_xid),
            Counter::Placeholder,
        )
    } else {
        (
            dead_tuple(SPGIST_REDIRECT, target, state.my_xid),
            Counter::Redirection,
        )
    }
}

/// SPLIT_TUPLE. The prefix tuple replaces the split inner tuple on block 0;
/// the postfix tuple goes to block 0 too or to block 1 (possibly a new
/// page).
pub fn split_tuple(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::split_tuple(ctx)?;
    require_blocks(ctx, &[(0, "prefix page")])?;
    if !x.postfix_blk_same {
        require_blocks(ctx, &[(1, "postfix page")])?;
    }
    match ctx.blk.block_id {
        1 if !x.postfix_blk_same => {
            // SPLIT_TUPLE never happens on the nulls tree.
            let init = x.new_page.then_some(0);
            if !start(ctx, page, init)? {
                return Ok(());
            }
            add_or_replace(ctx, page, x.postfix, x.offnum_postfix)?;
            done(ctx, page)
        }
        0 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            replace_at(ctx, page, x.prefix, x.offnum_prefix)?;
            if x.postfix_blk_same {
                add_or_replace(ctx, page, x.postfix, x.offnum_postfix)?;
            }
            done(ctx, page)
        }
        _ => Err(unexpected_block(
            ctx,
            "SPLIT_TUPLE uses block 0 and (for a postfix elsewhere) 1",
        )),
    }
}

/// PICKSPLIT. Block 0 (the split leaf, absent for a root split) loses the
/// split tuples — a redirect to the new inner tuple plus placeholders, or
/// only placeholders during a build — or is re-initialised; blocks 0 and 1
/// receive the redistributed leaf tuples as the selector bytes say;
/// block 2 gets the new inner tuple (and the downlink to it when it is
/// also the parent); block 3, when present, is the parent.
pub fn pick_split(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::pick_split(ctx)?;
    let inner_blk = blkno_of(ctx, 2, "inner page")?;
    if !x.is_root_split {
        require_blocks(ctx, &[(0, "source page")])?;
    }
    let link = |page: &mut Page| {
        update_node_link(
            ctx,
            page,
            x.offnum_parent,
            x.node_i,
            inner_blk,
            x.offnum_inner,
        )
    };
    match ctx.blk.block_id {
        0 if !x.is_root_split => {
            if x.init_src {
                init_page(ctx, page, leaf_flags(x.stores_nulls))?;
            } else {
                if !prepare_existing(ctx, page)? {
                    return Ok(());
                }
                let fill = if x.state.is_build {
                    DeadFill {
                        first: SPGIST_PLACEHOLDER,
                        rest: SPGIST_PLACEHOLDER,
                        target: (BlockNumber::MAX, 0),
                        my_xid: x.state.my_xid,
                    }
                } else {
                    DeadFill {
                        first: SPGIST_REDIRECT,
                        rest: SPGIST_PLACEHOLDER,
                        target: (inner_blk, x.offnum_inner),
                        my_xid: x.state.my_xid,
                    }
                };
                multi_delete_dead(ctx, page, &x.to_delete, fill)?;
            }
            insert_selected(ctx, page, &x, false)?;
            done(ctx, page)
        }
        1 => {
            let init = x.init_dest.then(|| leaf_flags(x.stores_nulls));
            if !start(ctx, page, init)? {
                return Ok(());
            }
            insert_selected(ctx, page, &x, true)?;
            done(ctx, page)
        }
        2 => {
            let init = x
                .init_inner
                .then_some(if x.stores_nulls { SPGIST_NULLS } else { 0 });
            if !start(ctx, page, init)? {
                return Ok(());
            }
            add_or_replace(ctx, page, x.inner, x.offnum_inner)?;
            if x.inner_is_parent {
                link(page)?;
            }
            done(ctx, page)
        }
        3 => {
            if !prepare_existing(ctx, page)? {
                return Ok(());
            }
            link(page)?;
            done(ctx, page)
        }
        _ => Err(unexpected_block(
            ctx,
            "PICKSPLIT uses blocks 0 (unless splitting the root), 1, 2 and 3",
        )),
    }
}

/// Places the PICKSPLIT leaf tuples destined for the source page
/// (`to_dest` false) or the destination page.
fn insert_selected(
    ctx: &Ctx<'_>,
    page: &mut Page,
    x: &records::PickSplit<'_>,
    to_dest: bool,
) -> Result<(), RedoError> {
    for ((&off, &sel), leaf) in x.to_insert.iter().zip(x.page_select).zip(&x.leaves) {
        if (sel != 0) == to_dest {
            add_or_replace(ctx, page, leaf, off)?;
        }
    }
    Ok(())
}

/// VACUUM_LEAF on block 0: tuples become DEAD or placeholders, live tuples
/// are moved into chain slots by swapping line pointers (their old slots
/// become placeholders), and chain links are rewritten.
pub fn vacuum_leaf(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::vacuum_leaf(ctx)?;
    if ctx.blk.block_id != 0 {
        return Err(unexpected_block(ctx, "VACUUM_LEAF uses block 0 only"));
    }
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    let fill = |state| DeadFill {
        first: state,
        rest: state,
        target: (BlockNumber::MAX, 0),
        my_xid: x.state.my_xid,
    };
    multi_delete_dead(ctx, page, &x.to_dead, fill(SPGIST_DEAD))?;
    multi_delete_dead(ctx, page, &x.to_placeholder, fill(SPGIST_PLACEHOLDER))?;
    for (&src, &dst) in x.move_src.iter().zip(&x.move_dest) {
        swap_line_pointers(ctx, page, src, dst)?;
    }
    multi_delete_dead(ctx, page, &x.move_src, fill(SPGIST_PLACEHOLDER))?;
    for (&src, &next) in x.chain_src.iter().zip(&x.chain_dest) {
        set_next_offset(ctx, page, src, next)?;
    }
    done(ctx, page)
}

/// VACUUM_ROOT on block 0 (a root that is still a leaf): plain deletion,
/// no stand-ins needed since nothing links to root tuples.
pub fn vacuum_root(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::vacuum_root(ctx)?;
    if ctx.blk.block_id != 0 {
        return Err(unexpected_block(ctx, "VACUUM_ROOT uses block 0 only"));
    }
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    pageops::page_index_multi_delete(page, &x.to_delete).map_err(|e| ctx.page_err(e))?;
    done(ctx, page)
}

/// VACUUM_REDIRECT on block 0: redirects no snapshot can still follow
/// become placeholders, then the run of placeholders at the end of the
/// page (from `firstPlaceholder` on) is removed.
pub fn vacuum_redirect(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let x = records::vacuum_redirect(ctx)?;
    if ctx.blk.block_id != 0 {
        return Err(unexpected_block(ctx, "VACUUM_REDIRECT uses block 0 only"));
    }
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    for &off in &x.to_placeholder {
        redirect_to_placeholder(ctx, page, off)?;
    }
    let n = x.to_placeholder.len() as i32;
    bump(ctx, page, Counter::Redirection, -n)?;
    bump(ctx, page, Counter::Placeholder, n)?;
    if x.first_placeholder != 0 {
        let max = pageops::max_offset(page);
        if x.first_placeholder > max.saturating_add(1) {
            return Err(ctx.malformed(format!(
                "first trailing placeholder {} is beyond the page's {max} tuples",
                x.first_placeholder
            )));
        }
        let trailing: Vec<u16> = (x.first_placeholder..=max).collect();
        bump(ctx, page, Counter::Placeholder, -(trailing.len() as i32))?;
        pageops::page_index_multi_delete(page, &trailing).map_err(|e| ctx.page_err(e))?;
    }
    done(ctx, page)
}
