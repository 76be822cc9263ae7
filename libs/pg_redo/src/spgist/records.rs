//! Decoding of SP-GiST main data (`spgxlog.h`): every record keeps all of
//! its payload in the main data, the block references carry none. Struct
//! offsets are those of the C structs (with their padding); tuples that
//! follow are unaligned and sized by their own headers. Decoding checks
//! that every count, array and tuple is present and that nothing is left
//! over, so a block's redo never reads past the record.

use crate::error::RedoError;
use crate::record::{Ctx, Reader};

use super::page::{leaf_size, INNER_HEADER_SIZE, LEAF_HEADER_SIZE};

/// `spgxlogState`: what redo needs of the inserting backend's SpGistState
/// to build dead tuples — the xid redirects carry, and whether the index
/// was being built (then placeholders are left instead of redirects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeState {
    pub my_xid: u32,
    pub is_build: bool,
}

pub struct AddLeaf<'a> {
    pub new_page: bool,
    pub stores_nulls: bool,
    pub offnum_leaf: u16,
    pub offnum_head_leaf: u16,
    pub offnum_parent: u16,
    pub node_i: u16,
    pub leaf: &'a [u8],
}

pub struct MoveLeafs<'a> {
    pub new_page: bool,
    pub stores_nulls: bool,
    pub offnum_parent: u16,
    pub node_i: u16,
    pub state: FakeState,
    pub to_delete: Vec<u16>,
    /// `nMoves + 1` offsets, or one when a DEAD source tuple is replaced.
    pub to_insert: Vec<u16>,
    pub leaves: Vec<&'a [u8]>,
}

pub struct AddNode<'a> {
    pub offnum: u16,
    pub offnum_new: u16,
    pub new_page: bool,
    /// Which block holds the parent downlink: 0, 1, 2, or -1 for none.
    pub parent_blk: i8,
    pub offnum_parent: u16,
    pub node_i: u16,
    pub state: FakeState,
    pub inner: &'a [u8],
}

pub struct SplitTuple<'a> {
    pub offnum_prefix: u16,
    pub offnum_postfix: u16,
    pub new_page: bool,
    pub postfix_blk_same: bool,
    pub prefix: &'a [u8],
    pub postfix: &'a [u8],
}

pub struct PickSplit<'a> {
    pub is_root_split: bool,
    pub init_src: bool,
    pub init_dest: bool,
    pub offnum_inner: u16,
    pub init_inner: bool,
    pub stores_nulls: bool,
    pub inner_is_parent: bool,
    pub offnum_parent: u16,
    pub node_i: u16,
    pub state: FakeState,
    pub to_delete: Vec<u16>,
    pub to_insert: Vec<u16>,
    /// Per inserted tuple: 0 = source page, otherwise destination page.
    pub page_select: &'a [u8],
    pub inner: &'a [u8],
    pub leaves: Vec<&'a [u8]>,
}

pub struct VacuumLeaf {
    pub state: FakeState,
    pub to_dead: Vec<u16>,
    pub to_placeholder: Vec<u16>,
    pub move_src: Vec<u16>,
    pub move_dest: Vec<u16>,
    pub chain_src: Vec<u16>,
    pub chain_dest: Vec<u16>,
}

pub struct VacuumRoot {
    pub to_delete: Vec<u16>,
}

pub struct VacuumRedirect {
    pub first_placeholder: u16,
    pub to_placeholder: Vec<u16>,
}

/// A cursor over the main data that names the record in its errors.
struct Main<'c, 'a> {
    ctx: &'c Ctx<'a>,
    r: Reader<'a>,
}

impl<'c, 'a> Main<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>) -> Self {
        Main { ctx, r: ctx.main() }
    }

    fn short(&self, what: &str) -> RedoError {
        self.ctx
            .malformed(format!("main data too short for {what}"))
    }

    fn at(&mut self, pos: usize, what: &str) -> Result<(), RedoError> {
        self.r.seek(pos).ok_or_else(|| self.short(what))
    }

    fn u8(&mut self, what: &str) -> Result<u8, RedoError> {
        self.r.u8().ok_or_else(|| self.short(what))
    }

    fn flag(&mut self, what: &str) -> Result<bool, RedoError> {
        Ok(self.u8(what)? != 0)
    }

    fn u16(&mut self, what: &str) -> Result<u16, RedoError> {
        self.r.u16().ok_or_else(|| self.short(what))
    }

    fn u32(&mut self, what: &str) -> Result<u32, RedoError> {
        self.r.u32().ok_or_else(|| self.short(what))
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], RedoError> {
        self.r.bytes(n).ok_or_else(|| self.short(what))
    }

    /// An `spgxlogState` at `pos`.
    fn state(&mut self, pos: usize) -> Result<FakeState, RedoError> {
        self.at(pos, "spgxlogState")?;
        let my_xid = self.u32("spgxlogState")?;
        let is_build = self.flag("spgxlogState")?;
        Ok(FakeState { my_xid, is_build })
    }

    fn offsets(&mut self, n: usize, what: &str) -> Result<Vec<u16>, RedoError> {
        let raw = self.bytes(n * 2, what)?;
        Ok(raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }

    /// A leaf tuple, sized by its header's 30-bit size field.
    fn leaf(&mut self, what: &str) -> Result<&'a [u8], RedoError> {
        let start = self.r.pos();
        let size = leaf_size(self.u32(what)?);
        if size < LEAF_HEADER_SIZE {
            return Err(self
                .ctx
                .malformed(format!("{what} claims {size} bytes, less than its header")));
        }
        self.at(start, what)?;
        self.bytes(size, what)
    }

    /// An inner tuple, sized by its header's u16 size field.
    fn inner(&mut self, what: &str) -> Result<&'a [u8], RedoError> {
        let start = self.r.pos();
        self.at(start + 4, what)?;
        let size = self.u16(what)? as usize;
        if size < INNER_HEADER_SIZE {
            return Err(self
                .ctx
                .malformed(format!("{what} claims {size} bytes, less than its header")));
        }
        self.at(start, what)?;
        self.bytes(size, what)
    }

    fn leaves(&mut self, n: usize) -> Result<Vec<&'a [u8]>, RedoError> {
        (0..n).map(|_| self.leaf("leaf tuple")).collect()
    }

    fn end(self) -> Result<(), RedoError> {
        if self.r.at_end() {
            Ok(())
        } else {
            Err(self.ctx.malformed(format!(
                "{} unexpected bytes after the record's payload",
                self.r.remaining()
            )))
        }
    }
}

/// `spgxlogAddLeaf` (10 bytes), then the leaf tuple.
pub fn add_leaf<'a>(ctx: &Ctx<'a>) -> Result<AddLeaf<'a>, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogAddLeaf";
    let rec = AddLeaf {
        new_page: m.flag(w)?,
        stores_nulls: m.flag(w)?,
        offnum_leaf: m.u16(w)?,
        offnum_head_leaf: m.u16(w)?,
        offnum_parent: m.u16(w)?,
        node_i: m.u16(w)?,
        leaf: m.leaf("new leaf tuple")?,
    };
    m.end()?;
    Ok(rec)
}

/// `spgxlogMoveLeafs`: nMoves u16 @0, newPage @2, replaceDead @3,
/// storesNulls @4, offnumParent u16 @6, nodeI u16 @8, state @12; arrays
/// from @20, then the leaf tuples.
pub fn move_leafs<'a>(ctx: &Ctx<'a>) -> Result<MoveLeafs<'a>, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogMoveLeafs";
    let n_moves = m.u16(w)? as usize;
    let new_page = m.flag(w)?;
    let replace_dead = m.flag(w)?;
    let stores_nulls = m.flag(w)?;
    m.at(6, w)?;
    let offnum_parent = m.u16(w)?;
    let node_i = m.u16(w)?;
    let state = m.state(12)?;
    m.at(20, w)?;
    let n_insert = if replace_dead { 1 } else { n_moves + 1 };
    let to_delete = m.offsets(n_moves, "deleted offsets")?;
    let to_insert = m.offsets(n_insert, "inserted offsets")?;
    let leaves = m.leaves(n_insert)?;
    m.end()?;
    Ok(MoveLeafs {
        new_page,
        stores_nulls,
        offnum_parent,
        node_i,
        state,
        to_delete,
        to_insert,
        leaves,
    })
}

/// `spgxlogAddNode` (20 bytes: offnum @0, offnumNew @2, newPage @4,
/// parentBlk i8 @5, offnumParent @6, nodeI @8, state @12), then the new
/// inner tuple.
pub fn add_node<'a>(ctx: &Ctx<'a>) -> Result<AddNode<'a>, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogAddNode";
    let offnum = m.u16(w)?;
    let offnum_new = m.u16(w)?;
    let new_page = m.flag(w)?;
    let parent_blk = m.u8(w)? as i8;
    let offnum_parent = m.u16(w)?;
    let node_i = m.u16(w)?;
    let state = m.state(12)?;
    m.at(20, w)?;
    let inner = m.inner("new inner tuple")?;
    m.end()?;
    Ok(AddNode {
        offnum,
        offnum_new,
        new_page,
        parent_blk,
        offnum_parent,
        node_i,
        state,
        inner,
    })
}

/// `spgxlogSplitTuple` (6 bytes), then the prefix and postfix inner tuples.
pub fn split_tuple<'a>(ctx: &Ctx<'a>) -> Result<SplitTuple<'a>, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogSplitTuple";
    let rec = SplitTuple {
        offnum_prefix: m.u16(w)?,
        offnum_postfix: m.u16(w)?,
        new_page: m.flag(w)?,
        postfix_blk_same: m.flag(w)?,
        prefix: m.inner("prefix tuple")?,
        postfix: m.inner("postfix tuple")?,
    };
    m.end()?;
    Ok(rec)
}

/// `spgxlogPickSplit`: isRootSplit @0, nDelete u16 @2, nInsert u16 @4,
/// initSrc @6, initDest @7, offnumInner u16 @8, initInner @10,
/// storesNulls @11, innerIsParent @12, offnumParent u16 @14, nodeI u16 @16,
/// state @20; from @28 the deleted and inserted offsets, the page selector
/// bytes, the inner tuple and the leaf tuples.
pub fn pick_split<'a>(ctx: &Ctx<'a>) -> Result<PickSplit<'a>, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogPickSplit";
    let is_root_split = m.flag(w)?;
    m.at(2, w)?;
    let n_delete = m.u16(w)? as usize;
    let n_insert = m.u16(w)? as usize;
    let init_src = m.flag(w)?;
    let init_dest = m.flag(w)?;
    let offnum_inner = m.u16(w)?;
    let init_inner = m.flag(w)?;
    let stores_nulls = m.flag(w)?;
    let inner_is_parent = m.flag(w)?;
    m.at(14, w)?;
    let offnum_parent = m.u16(w)?;
    let node_i = m.u16(w)?;
    let state = m.state(20)?;
    m.at(28, w)?;
    let to_delete = m.offsets(n_delete, "deleted offsets")?;
    let to_insert = m.offsets(n_insert, "inserted offsets")?;
    let page_select = m.bytes(n_insert, "page selectors")?;
    let inner = m.inner("new inner tuple")?;
    let leaves = m.leaves(n_insert)?;
    m.end()?;
    Ok(PickSplit {
        is_root_split,
        init_src,
        init_dest,
        offnum_inner,
        init_inner,
        stores_nulls,
        inner_is_parent,
        offnum_parent,
        node_i,
        state,
        to_delete,
        to_insert,
        page_select,
        inner,
        leaves,
    })
}

/// `spgxlogVacuumLeaf`: nDead, nPlaceholder, nMove, nChain (u16 each),
/// state @8; from @16 the offset arrays (dead, placeholder, move sources,
/// move destinations, chain sources, chain destinations).
pub fn vacuum_leaf(ctx: &Ctx<'_>) -> Result<VacuumLeaf, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogVacuumLeaf";
    let n_dead = m.u16(w)? as usize;
    let n_placeholder = m.u16(w)? as usize;
    let n_move = m.u16(w)? as usize;
    let n_chain = m.u16(w)? as usize;
    let state = m.state(8)?;
    m.at(16, w)?;
    let rec = VacuumLeaf {
        state,
        to_dead: m.offsets(n_dead, "offsets to make dead")?,
        to_placeholder: m.offsets(n_placeholder, "offsets to make placeholders")?,
        move_src: m.offsets(n_move, "move sources")?,
        move_dest: m.offsets(n_move, "move destinations")?,
        chain_src: m.offsets(n_chain, "chain sources")?,
        chain_dest: m.offsets(n_chain, "chain destinations")?,
    };
    m.end()?;
    Ok(rec)
}

/// `spgxlogVacuumRoot`: nDelete u16 @0, state @4 (unused by redo), offsets
/// from @12.
pub fn vacuum_root(ctx: &Ctx<'_>) -> Result<VacuumRoot, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogVacuumRoot";
    let n_delete = m.u16(w)? as usize;
    m.state(4)?;
    m.at(12, w)?;
    let to_delete = m.offsets(n_delete, "offsets to delete")?;
    m.end()?;
    Ok(VacuumRoot { to_delete })
}

/// `spgxlogVacuumRedirect`: nToPlaceholder u16 @0, firstPlaceholder u16 @2,
/// newestRedirectXid u32 @4 (only for hot standby conflicts), offsets from @8.
pub fn vacuum_redirect(ctx: &Ctx<'_>) -> Result<VacuumRedirect, RedoError> {
    let mut m = Main::new(ctx);
    let w = "spgxlogVacuumRedirect";
    let n = m.u16(w)? as usize;
    let first_placeholder = m.u16(w)?;
    let _newest_redirect_xid = m.u32(w)?;
    let to_placeholder = m.offsets(n, "redirect offsets")?;
    m.end()?;
    Ok(VacuumRedirect {
        first_placeholder,
        to_placeholder,
    })
}
