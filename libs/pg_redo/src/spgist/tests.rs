//! Hand-checked SP-GiST redo cases, chiefly those real WAL cannot contain
//! or rarely does: the index-build variants (isBuild: placeholders instead
//! of redirects), MOVE_LEAFS replacing a DEAD tuple, PICKSPLIT re-creating
//! its source page, ADD_NODE with the parent on the new page, and the
//! refusals (non-placeholder replaced, blocks PostgreSQL never reads).

use bytes::Bytes;
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::rmgr::RM_SPGIST_ID;
use postgres_ffi::v15::info::spgist;
use postgres_ffi::wal::encoder::{BlockSpec, RecordBuilder};
use postgres_ffi::{Lsn, BLCKSZ};

use super::page::{
    encode_tid, INVALID_TID, SGDTSIZE, SPGIST_DEAD, SPGIST_LEAF, SPGIST_NULLS, SPGIST_PAGE_ID,
    SPGIST_PLACEHOLDER, SPGIST_REDIRECT,
};
use crate::pageops::{self, AddItemMode, Page};
use crate::{apply, ClusterSettings, RedoError, RedoRecord, RedoTarget};

const REL: RelFileNode = RelFileNode {
    spcnode: 1663,
    dbnode: 5,
    relnode: 24576,
};
const XID: u32 = 777;
const LSN: Lsn = Lsn(0x0500_0000);

fn target(blkno: u32) -> RedoTarget {
    RedoTarget {
        rel: REL,
        forknum: 0,
        blkno,
        settings: ClusterSettings::default(),
    }
}

/// Applies block `block_id` of `rec` to `base`; returns the page and the
/// record's end LSN.
fn redo(
    rec: &RecordBuilder,
    block_id: u8,
    base: Option<&Page>,
) -> Result<(Box<Page>, Lsn), RedoError> {
    let bytes = rec.encode(Lsn(LSN.0 - 0x100));
    let end = Lsn(LSN.0 + bytes.len() as u64).align();
    let blkno = rec
        .blocks
        .iter()
        .find(|b| b.block_id == block_id)
        .map_or(0, |b| b.blkno);
    let r = RedoRecord::wal_bytes(LSN, end, bytes, block_id);
    let page = apply(
        &target(blkno),
        base.map(|p| &p[..]),
        std::slice::from_ref(&r),
    )?;
    Ok((page, end))
}

fn record(info: u8, main: Vec<u8>, blocks: &[(u8, u32, bool)]) -> RecordBuilder {
    let mut r = RecordBuilder::new(RM_SPGIST_ID, info)
        .xid(XID)
        .main_data(Bytes::from(main));
    for &(id, blkno, init) in blocks {
        let mut b = BlockSpec::new(id, REL, 0, blkno);
        if init {
            b = b.will_init();
        }
        r = r.block(b);
    }
    r
}

fn spg_page(flags: u16) -> Box<Page> {
    let mut p = Box::new([0u8; BLCKSZ]);
    pageops::page_init(&mut p, 8).unwrap();
    p[BLCKSZ - 8..BLCKSZ - 6].copy_from_slice(&flags.to_le_bytes());
    p[BLCKSZ - 2..].copy_from_slice(&SPGIST_PAGE_ID.to_le_bytes());
    pageops::set_lsn(&mut p, Lsn(0x100));
    p
}

fn add(p: &mut Page, t: &[u8]) -> u16 {
    pageops::page_add_item(p, t, 0, AddItemMode::default()).unwrap()
}

fn counters(p: &Page) -> (u16, u16) {
    let sp = pageops::special(p) as usize;
    (
        pageops::read_u16(p, sp + 2).unwrap(),
        pageops::read_u16(p, sp + 4).unwrap(),
    )
}

fn set_counters(p: &mut Page, redirects: u16, placeholders: u16) {
    let sp = pageops::special(p) as usize;
    pageops::write_at(p, sp + 2, &redirects.to_le_bytes());
    pageops::write_at(p, sp + 4, &placeholders.to_le_bytes());
}

fn item(p: &Page, off: u16) -> &[u8] {
    &p[pageops::normal_item_range(p, off).unwrap()]
}

/// A live leaf tuple of 24 bytes: header, then 8 bytes of `tag`.
fn leaf(tag: u8, next: u16) -> Vec<u8> {
    let mut t = vec![tag; 24];
    t[0..4].copy_from_slice(&(24u32 << 2).to_le_bytes());
    t[4..6].copy_from_slice(&next.to_le_bytes());
    t[6..12].copy_from_slice(&encode_tid(40, tag as u16));
    t
}

/// An inner tuple without prefix whose nodes point at `links`.
fn inner(links: &[(u32, u16)]) -> Vec<u8> {
    let size = 8 + 8 * links.len();
    let mut t = vec![0u8; size];
    t[0..4].copy_from_slice(&((links.len() as u32) << 3).to_le_bytes());
    t[4..6].copy_from_slice(&(size as u16).to_le_bytes());
    for (i, &(b, o)) in links.iter().enumerate() {
        let at = 8 + 8 * i;
        t[at..at + 6].copy_from_slice(&encode_tid(b, o));
        t[at + 6..at + 8].copy_from_slice(&8u16.to_le_bytes());
    }
    t
}

fn dead(state: u8, target: (u32, u16), xid: u32) -> Vec<u8> {
    let mut t = vec![0u8; SGDTSIZE];
    t[0..4].copy_from_slice(&(state as u32 | (16 << 2)).to_le_bytes());
    if state == SPGIST_REDIRECT {
        t[6..12].copy_from_slice(&encode_tid(target.0, target.1));
        t[12..16].copy_from_slice(&xid.to_le_bytes());
    } else {
        t[6..12].copy_from_slice(&INVALID_TID);
    }
    t
}

fn state_bytes(my_xid: u32, is_build: bool) -> [u8; 8] {
    let mut s = [0u8; 8];
    s[0..4].copy_from_slice(&my_xid.to_le_bytes());
    s[4] = is_build as u8;
    s
}

fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The fields of an spgxlogMoveLeafs and what follows it.
#[derive(Default)]
struct MoveLeafsSpec<'a> {
    n_moves: u16,
    new_page: bool,
    replace_dead: bool,
    /// (offnumParent, nodeI)
    parent: (u16, u16),
    is_build: bool,
    del: &'a [u16],
    ins: &'a [u16],
    leaves: &'a [Vec<u8>],
}

fn move_leafs_main(x: &MoveLeafsSpec<'_>) -> Vec<u8> {
    let mut m = vec![0u8; 20];
    m[0..2].copy_from_slice(&x.n_moves.to_le_bytes());
    m[2] = x.new_page as u8;
    m[3] = x.replace_dead as u8;
    m[6..8].copy_from_slice(&x.parent.0.to_le_bytes());
    m[8..10].copy_from_slice(&x.parent.1.to_le_bytes());
    m[12..20].copy_from_slice(&state_bytes(XID, x.is_build));
    m.extend(u16s(x.del));
    m.extend(u16s(x.ins));
    for l in x.leaves {
        m.extend_from_slice(l);
    }
    m
}

#[test]
fn dead_tuples_have_postgres_layout() {
    let r = super::page::dead_tuple(SPGIST_REDIRECT, (0x0001_0002, 7), 99);
    assert_eq!(
        r,
        [0x41, 0, 0, 0, 0, 0, 1, 0, 2, 0, 7, 0, 99, 0, 0, 0],
        "tupstate 1 | size 16 << 2, t_info 0, TID (1,2 halves), offset, xid"
    );
    let p = super::page::dead_tuple(SPGIST_PLACEHOLDER, (5, 5), 99);
    assert_eq!(
        p,
        [0x43, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0]
    );
    let d = super::page::dead_tuple(SPGIST_DEAD, (5, 5), 99);
    assert_eq!(d[0], 0x42);
    assert_eq!(&d[6..], &p[6..]);
}

/// MOVE_LEAFS on all three blocks, normal and during a build.
#[test]
fn move_leafs_redirect_or_placeholder() {
    let mut src = spg_page(SPGIST_LEAF);
    for tag in 1..=3 {
        add(&mut src, &leaf(tag, 0));
    }
    let mut parent = spg_page(0);
    add(&mut parent, &inner(&[(9, 9), (3, 3)]));
    let moved = [leaf(3, 0), leaf(1, 1), leaf(50, 2)];
    for is_build in [false, true] {
        let main = move_leafs_main(&MoveLeafsSpec {
            n_moves: 2,
            new_page: true,
            parent: (1, 1),
            is_build,
            del: &[3, 1],
            ins: &[1, 2, 3],
            leaves: &moved,
            ..Default::default()
        });
        let rec = record(
            spgist::MOVE_LEAFS,
            main,
            &[(0, 3, false), (1, 8, true), (2, 4, false)],
        );
        let (dest, end) = redo(&rec, 1, None).unwrap();
        assert_eq!(pageops::lsn(&dest), end);
        assert_eq!(pageops::max_offset(&dest), 3);
        assert_eq!(item(&dest, 3), &moved[2][..]);
        assert_eq!(pageops::read_u16(&dest, BLCKSZ - 8), Some(SPGIST_LEAF));

        let (s, _) = redo(&rec, 0, Some(&src)).unwrap();
        assert_eq!(item(&s, 2), &leaf(2, 0)[..], "unmoved tuple intact");
        assert_eq!(item(&s, 1), &dead(SPGIST_PLACEHOLDER, (0, 0), 0)[..]);
        if is_build {
            assert_eq!(item(&s, 3), &dead(SPGIST_PLACEHOLDER, (0, 0), 0)[..]);
            assert_eq!(counters(&s), (0, 2));
        } else {
            // The first listed item (3) becomes the redirect to the new head.
            assert_eq!(item(&s, 3), &dead(SPGIST_REDIRECT, (8, 3), XID)[..]);
            assert_eq!(counters(&s), (1, 1));
        }

        let (par, _) = redo(&rec, 2, Some(&parent)).unwrap();
        assert_eq!(item(&par, 1), &inner(&[(9, 9), (8, 3)])[..]);
    }
}

/// MOVE_LEAFS whose chain was a single DEAD tuple: only the new tuple is
/// carried and inserted, into a placeholder slot of an existing page.
#[test]
fn move_leafs_replacing_dead() {
    let mut src = spg_page(SPGIST_LEAF);
    add(&mut src, &leaf(1, 0));
    add(&mut src, &dead(SPGIST_DEAD, (0, 0), 0));
    let mut dest = spg_page(SPGIST_LEAF);
    add(&mut dest, &leaf(7, 0));
    add(&mut dest, &dead(SPGIST_PLACEHOLDER, (0, 0), 0));
    add(&mut dest, &leaf(8, 0));
    set_counters(&mut dest, 0, 1);
    let new = leaf(60, 0);
    let main = move_leafs_main(&MoveLeafsSpec {
        n_moves: 1,
        replace_dead: true,
        parent: (1, 0),
        del: &[2],
        ins: &[2],
        leaves: std::slice::from_ref(&new),
        ..Default::default()
    });
    let rec = record(
        spgist::MOVE_LEAFS,
        main,
        &[(0, 3, false), (1, 5, false), (2, 4, false)],
    );
    let (d, _) = redo(&rec, 1, Some(&dest)).unwrap();
    assert_eq!(item(&d, 2), &new[..]);
    assert_eq!(item(&d, 3), &leaf(8, 0)[..]);
    assert_eq!(counters(&d), (0, 0), "placeholder reused");
    let (s, _) = redo(&rec, 0, Some(&src)).unwrap();
    assert_eq!(item(&s, 2), &dead(SPGIST_REDIRECT, (5, 2), XID)[..]);
    assert_eq!(counters(&s), (1, 0));
}

fn add_node_main(offnum: u16, new: u16, parent_blk: i8, parent: u16, is_build: bool) -> Vec<u8> {
    let mut m = vec![0u8; 20];
    m[0..2].copy_from_slice(&offnum.to_le_bytes());
    m[2..4].copy_from_slice(&new.to_le_bytes());
    m[5] = parent_blk as u8;
    m[6..8].copy_from_slice(&parent.to_le_bytes());
    m[12..20].copy_from_slice(&state_bytes(XID, is_build));
    m
}

/// ADD_NODE moving the tuple to a page that holds its parent, during a
/// build: a placeholder stays behind.
#[test]
fn add_node_build_parent_on_new_page() {
    let mut old = spg_page(0);
    add(&mut old, &inner(&[(1, 1)]));
    add(&mut old, &inner(&[(2, 2)]));
    let mut newp = spg_page(0);
    add(&mut newp, &inner(&[(6, 6), (3, 2)]));
    let grown = inner(&[(2, 2), (0xFFFF_FFFF, 0)]);
    let mut main = add_node_main(2, 2, 1, 1, true);
    main.extend_from_slice(&grown);
    // nodeI 1 of the parent.
    main[8..10].copy_from_slice(&1u16.to_le_bytes());
    let rec = record(spgist::ADD_NODE, main, &[(0, 3, false), (1, 6, false)]);
    let (n, _) = redo(&rec, 1, Some(&newp)).unwrap();
    assert_eq!(item(&n, 2), &grown[..]);
    assert_eq!(item(&n, 1), &inner(&[(6, 6), (6, 2)])[..]);
    let (o, _) = redo(&rec, 0, Some(&old)).unwrap();
    assert_eq!(item(&o, 2), &dead(SPGIST_PLACEHOLDER, (0, 0), 0)[..]);
    assert_eq!(item(&o, 1), &inner(&[(1, 1)])[..]);
    assert_eq!(counters(&o), (0, 1));
    // A parent block 2 is only read when parentBlk says so.
    let mut main = add_node_main(2, 2, 1, 1, true);
    main.extend_from_slice(&grown);
    let rec = record(
        spgist::ADD_NODE,
        main,
        &[(0, 3, false), (1, 6, false), (2, 9, false)],
    );
    assert!(matches!(
        redo(&rec, 2, Some(&old)),
        Err(RedoError::Malformed { .. })
    ));
}

/// The fields of an spgxlogPickSplit and what follows it.
#[derive(Default)]
struct PickSplitSpec<'a> {
    root: bool,
    init_src: bool,
    init_dest: bool,
    inner_at: u16,
    init_inner: bool,
    nulls: bool,
    is_build: bool,
    del: &'a [u16],
    ins: &'a [u16],
    sel: &'a [u8],
    inner: &'a [u8],
    leaves: &'a [Vec<u8>],
}

fn pick_split_main(x: &PickSplitSpec<'_>) -> Vec<u8> {
    let mut m = vec![0u8; 28];
    m[0] = x.root as u8;
    m[2..4].copy_from_slice(&(x.del.len() as u16).to_le_bytes());
    m[4..6].copy_from_slice(&(x.ins.len() as u16).to_le_bytes());
    m[6] = x.init_src as u8;
    m[7] = x.init_dest as u8;
    m[8..10].copy_from_slice(&x.inner_at.to_le_bytes());
    m[10] = x.init_inner as u8;
    m[11] = x.nulls as u8;
    m[20..28].copy_from_slice(&state_bytes(XID, x.is_build));
    m.extend(u16s(x.del));
    m.extend(u16s(x.ins));
    m.extend_from_slice(x.sel);
    m.extend_from_slice(x.inner);
    for l in x.leaves {
        m.extend_from_slice(l);
    }
    m
}

/// PICKSPLIT of a non-root page: during a build the deleted tuples all
/// become placeholders; with initSrc the source page starts over.
#[test]
fn pick_split_build_and_init_src() {
    let mut src = spg_page(SPGIST_LEAF | SPGIST_NULLS);
    for tag in 1..=3 {
        add(&mut src, &leaf(tag, 0));
    }
    let new_inner = inner(&[(3, 4), (7, 1)]);
    let leaves = [leaf(2, 0), leaf(3, 0)];
    let main = pick_split_main(&PickSplitSpec {
        init_dest: true,
        inner_at: 1,
        init_inner: true,
        nulls: true,
        is_build: true,
        del: &[2, 3],
        ins: &[4, 1],
        sel: &[0, 1],
        inner: &new_inner,
        leaves: &leaves,
        ..Default::default()
    });
    let rec = record(
        spgist::PICKSPLIT,
        main,
        &[(0, 3, false), (1, 7, true), (2, 9, true)],
    );
    let (s, _) = redo(&rec, 0, Some(&src)).unwrap();
    assert_eq!(pageops::max_offset(&s), 4);
    assert_eq!(item(&s, 2), &dead(SPGIST_PLACEHOLDER, (0, 0), 0)[..]);
    assert_eq!(item(&s, 3), &dead(SPGIST_PLACEHOLDER, (0, 0), 0)[..]);
    assert_eq!(item(&s, 4), &leaves[0][..]);
    assert_eq!(counters(&s), (0, 2));
    let (d, _) = redo(&rec, 1, None).unwrap();
    assert_eq!(item(&d, 1), &leaves[1][..]);
    assert_eq!(
        pageops::read_u16(&d, BLCKSZ - 8),
        Some(SPGIST_LEAF | SPGIST_NULLS)
    );
    let (i, _) = redo(&rec, 2, None).unwrap();
    assert_eq!(item(&i, 1), &new_inner[..]);
    assert_eq!(pageops::read_u16(&i, BLCKSZ - 8), Some(SPGIST_NULLS));

    // initSrc: the source page is re-created and gets only its tuples.
    let init_src = PickSplitSpec {
        init_src: true,
        init_dest: true,
        inner_at: 1,
        init_inner: true,
        ins: &[1, 1],
        sel: &[0, 1],
        inner: &new_inner,
        leaves: &leaves,
        ..Default::default()
    };
    let main = pick_split_main(&init_src);
    let rec = record(
        spgist::PICKSPLIT,
        main,
        &[(0, 3, true), (1, 7, true), (2, 9, true)],
    );
    let (s, _) = redo(&rec, 0, Some(&src)).unwrap();
    assert_eq!(pageops::max_offset(&s), 1);
    assert_eq!(item(&s, 1), &leaves[0][..]);
    assert_eq!(counters(&s), (0, 0));
    // initSrc without WILL_INIT is refused.
    let main = pick_split_main(&init_src);
    let rec = record(
        spgist::PICKSPLIT,
        main,
        &[(0, 3, false), (1, 7, true), (2, 9, true)],
    );
    assert!(redo(&rec, 0, Some(&src)).is_err());
}

/// A root split never touches block 0; a record that references one is
/// refused rather than guessed at.
#[test]
fn pick_split_root_refuses_block0() {
    let new_inner = inner(&[(7, 1)]);
    let leaves = [leaf(2, 0)];
    let main = pick_split_main(&PickSplitSpec {
        root: true,
        init_dest: true,
        inner_at: 1,
        init_inner: true,
        ins: &[1],
        sel: &[1],
        inner: &new_inner,
        leaves: &leaves,
        ..Default::default()
    });
    let rec = record(
        spgist::PICKSPLIT,
        main,
        &[(0, 3, false), (1, 7, true), (2, 1, true)],
    );
    let src = spg_page(SPGIST_LEAF);
    assert!(matches!(
        redo(&rec, 0, Some(&src)),
        Err(RedoError::Malformed { .. })
    ));
    let (root, _) = redo(&rec, 2, None).unwrap();
    assert_eq!(item(&root, 1), &new_inner[..]);
}

/// VACUUM_REDIRECT: redirects become placeholders (keeping their xid),
/// trailing placeholders go away.
#[test]
fn vacuum_redirect_and_trailing_placeholders() {
    let mut p = spg_page(0);
    add(&mut p, &inner(&[(1, 1)]));
    add(&mut p, &dead(SPGIST_REDIRECT, (4, 4), 500));
    add(&mut p, &dead(SPGIST_PLACEHOLDER, (0, 0), 0));
    add(&mut p, &dead(SPGIST_REDIRECT, (5, 5), 501));
    set_counters(&mut p, 2, 1);
    let mut main = vec![0u8; 8];
    main[0..2].copy_from_slice(&1u16.to_le_bytes());
    main[2..4].copy_from_slice(&3u16.to_le_bytes());
    main[4..8].copy_from_slice(&501u32.to_le_bytes());
    main.extend(u16s(&[4]));
    let rec = record(spgist::VACUUM_REDIRECT, main, &[(0, 1, false)]);
    let (q, end) = redo(&rec, 0, Some(&p)).unwrap();
    assert_eq!(pageops::max_offset(&q), 2);
    assert_eq!(item(&q, 2), &dead(SPGIST_REDIRECT, (4, 4), 500)[..]);
    assert_eq!(counters(&q), (1, 0));
    assert_eq!(pageops::lsn(&q), end);

    // Only the state bits and the pointer change in a converted redirect.
    let mut main = vec![0u8; 8];
    main[0..2].copy_from_slice(&1u16.to_le_bytes());
    main.extend(u16s(&[2]));
    let rec = record(spgist::VACUUM_REDIRECT, main, &[(0, 1, false)]);
    let (q, _) = redo(&rec, 0, Some(&p)).unwrap();
    let mut want = dead(SPGIST_PLACEHOLDER, (0, 0), 0);
    want[12..16].copy_from_slice(&500u32.to_le_bytes());
    assert_eq!(item(&q, 2), &want[..]);
    assert_eq!(counters(&q), (1, 2));
}

/// VACUUM_LEAF: dead, placeholder, a move (line pointers swapped, source
/// slot becomes a placeholder) and a chain fix, in PostgreSQL's order.
#[test]
fn vacuum_leaf_all_lists() {
    let mut p = spg_page(SPGIST_LEAF);
    add(&mut p, &leaf(1, 0)); // chain head, dies
    add(&mut p, &leaf(2, 0)); // dies, not linked
    add(&mut p, &leaf(3, 4)); // head of a chain whose head dies
    add(&mut p, &leaf(4, 5)); // live, moves into slot 3
    add(&mut p, &leaf(5, 0));
    let mut main = vec![0u8; 16];
    for (i, n) in [1u16, 1, 1, 1].iter().enumerate() {
        main[2 * i..2 * i + 2].copy_from_slice(&n.to_le_bytes());
    }
    main[8..16].copy_from_slice(&state_bytes(XID, false));
    main.extend(u16s(&[1, 2, 4, 3, 3, 5]));
    let rec = record(spgist::VACUUM_LEAF, main, &[(0, 3, false)]);
    let (q, _) = redo(&rec, 0, Some(&p)).unwrap();
    assert_eq!(item(&q, 1), &dead(SPGIST_DEAD, (0, 0), 0)[..]);
    assert_eq!(item(&q, 2), &dead(SPGIST_PLACEHOLDER, (0, 0), 0)[..]);
    assert_eq!(item(&q, 3), &leaf(4, 5)[..]);
    assert_eq!(item(&q, 4), &dead(SPGIST_PLACEHOLDER, (0, 0), 0)[..]);
    assert_eq!(item(&q, 5), &leaf(5, 0)[..]);
    assert_eq!(counters(&q), (0, 2));
}

/// ADD_LEAF variants on one page: a new chain member in a placeholder's
/// slot (head re-linked), and a DEAD head replaced in place.
#[test]
fn add_leaf_chain_and_dead_head() {
    let mut p = spg_page(SPGIST_LEAF);
    add(&mut p, &leaf(1, 0));
    add(&mut p, &dead(SPGIST_PLACEHOLDER, (0, 0), 0));
    add(&mut p, &dead(SPGIST_DEAD, (0, 0), 0));
    set_counters(&mut p, 0, 1);
    let main_of = |leaf_at: u16, head: u16, t: &[u8]| {
        let mut m = vec![0u8; 10];
        m[2..4].copy_from_slice(&leaf_at.to_le_bytes());
        m[4..6].copy_from_slice(&head.to_le_bytes());
        m.extend_from_slice(t);
        m
    };
    let rec = record(
        spgist::ADD_LEAF,
        main_of(2, 1, &leaf(9, 0)),
        &[(0, 3, false)],
    );
    let (q, _) = redo(&rec, 0, Some(&p)).unwrap();
    assert_eq!(item(&q, 1), &leaf(1, 2)[..]);
    assert_eq!(item(&q, 2), &leaf(9, 0)[..]);
    assert_eq!(counters(&q), (0, 0));
    let rec = record(
        spgist::ADD_LEAF,
        main_of(3, 3, &leaf(8, 0)),
        &[(0, 3, false)],
    );
    let (q, _) = redo(&rec, 0, Some(&p)).unwrap();
    assert_eq!(item(&q, 3), &leaf(8, 0)[..]);
    assert_eq!(counters(&q), (0, 1));
    // The slot to fill must hold a placeholder.
    let rec = record(
        spgist::ADD_LEAF,
        main_of(1, 0, &leaf(8, 0)),
        &[(0, 3, false)],
    );
    assert!(matches!(
        redo(&rec, 0, Some(&p)),
        Err(RedoError::Malformed { .. })
    ));
    // A parent block without a parent downlink is never written by PostgreSQL.
    let rec = record(
        spgist::ADD_LEAF,
        main_of(4, 0, &leaf(8, 0)),
        &[(0, 3, false), (1, 1, false)],
    );
    assert!(redo(&rec, 1, Some(&p)).is_err());
    // Already applied (page LSN at the record's end): nothing changes.
    let rec = record(
        spgist::ADD_LEAF,
        main_of(4, 0, &leaf(8, 0)),
        &[(0, 3, false)],
    );
    let mut late = p.clone();
    pageops::set_lsn(&mut late, Lsn(u64::MAX));
    let (q, _) = redo(&rec, 0, Some(&late)).unwrap();
    assert_eq!(q[..], late[..]);
    // Trailing bytes after the payload mean we misread the record.
    let mut m = main_of(4, 0, &leaf(8, 0));
    m.push(0);
    let rec = record(spgist::ADD_LEAF, m, &[(0, 3, false)]);
    assert!(redo(&rec, 0, Some(&p)).is_err());
}

/// SPLIT_TUPLE with the postfix on the same page, and the refusal of a
/// block 1 then.
#[test]
fn split_tuple_same_page() {
    let mut p = spg_page(0);
    add(&mut p, &inner(&[(1, 1), (2, 2)]));
    let prefix = inner(&[(1, 2)]);
    let postfix = inner(&[(1, 1), (2, 2)]);
    let mut m = vec![0u8; 6];
    m[0..2].copy_from_slice(&1u16.to_le_bytes());
    m[2..4].copy_from_slice(&2u16.to_le_bytes());
    m[5] = 1;
    m.extend_from_slice(&prefix);
    m.extend_from_slice(&postfix);
    let rec = record(spgist::SPLIT_TUPLE, m.clone(), &[(0, 1, false)]);
    let (q, _) = redo(&rec, 0, Some(&p)).unwrap();
    assert_eq!(item(&q, 1), &prefix[..]);
    assert_eq!(item(&q, 2), &postfix[..]);
    let rec = record(spgist::SPLIT_TUPLE, m, &[(0, 1, false), (1, 2, false)]);
    assert!(redo(&rec, 1, Some(&p)).is_err());
}

#[test]
fn mask_skips_free_space_of_unset_pd_lower() {
    let mut a = [7u8; BLCKSZ];
    a[12..14].copy_from_slice(&0u16.to_le_bytes());
    let b = a;
    super::mask(&mut a, 0);
    assert_eq!(&a[24..], &b[24..]);
    assert_eq!(&a[0..10], &[0u8; 10]);
}
