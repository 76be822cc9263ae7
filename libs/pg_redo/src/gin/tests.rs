//! Unit tests of the GIN redo: records built with postgres_ffi's encoder,
//! results checked byte by byte. They cover what the SQL workload cannot
//! reach: pre-9.4 (uncompressed) posting-tree leaves, SPLIT and
//! VACUUM_PAGE without their full-page images, and malformed input.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::rmgr::RM_GIN_ID;
use postgres_ffi::v15::info::gin;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};

use super::postinglist::{self, Tid};
use super::*;
use crate::error::RedoError;
use crate::pageops::{self, AddItemMode, Page};
use crate::record::{ClusterSettings, RedoRecord, RedoTarget};

static NEXT_LSN: AtomicU64 = AtomicU64::new(0x0200_0000);

const REL: RelFileNode = RelFileNode {
    spcnode: 1663,
    dbnode: 5,
    relnode: 24576,
};

fn tid(blk: u32, off: u16) -> Tid {
    Tid { blk, off }
}

struct Rec {
    info: u8,
    main: Vec<u8>,
    blocks: Vec<BlockSpec>,
}

impl Rec {
    fn new(info: u8, main: Vec<u8>) -> Rec {
        Rec {
            info,
            main,
            blocks: Vec::new(),
        }
    }
    fn block(mut self, id: u8, blkno: u32, init: bool, data: Vec<u8>) -> Rec {
        let mut b = BlockSpec::new(id, REL, 0, blkno).with_data(Bytes::from(data));
        if init {
            b = b.will_init();
        }
        self.blocks.push(b);
        self
    }
    fn image(mut self, page: &Page, apply: bool) -> Rec {
        let b = self.blocks.pop().expect("a block");
        self.blocks.push(b.with_image(ImageSpec::from_page(
            page,
            true,
            apply,
            ImageCompression::None,
        )));
        self
    }
    /// Redoes block `id` onto `base` (None: the page does not exist).
    fn redo(&self, id: u8, base: Option<&Page>) -> Result<Box<Page>, RedoError> {
        let mut r = RecordBuilder::new(RM_GIN_ID, self.info)
            .xid(700)
            .main_data(Bytes::from(self.main.clone()));
        for b in &self.blocks {
            r = r.block(b.clone());
        }
        // Every redo call gets a later LSN, so a page built by an earlier
        // call is never "already applied".
        let lsn = Lsn(NEXT_LSN.fetch_add(0x1_0000, Ordering::Relaxed));
        let bytes = r.encode(Lsn(0x0100_0000));
        let end = Lsn(lsn.0 + bytes.len() as u64).align();
        let blk = self
            .blocks
            .iter()
            .find(|b| b.block_id == id)
            .expect("block");
        let target = RedoTarget {
            rel: REL,
            forknum: 0,
            blkno: blk.blkno,
            settings: ClusterSettings::default(),
        };
        let rec = RedoRecord::wal_bytes(lsn, end, bytes, id);
        crate::apply(&target, base.map(|p| &p[..]), &[rec])
    }
}

fn gin_page(flags: u16) -> Box<Page> {
    let mut p = Box::new([0u8; BLCKSZ]);
    pageops::page_init(&mut p, OPAQUE_SIZE).unwrap();
    let o = Opaque::of(&p).unwrap();
    o.set_flags(&mut p, flags);
    o.set_rightlink(&mut p, INVALID_BLOCK);
    p
}

fn opaque(p: &Page) -> (u32, u16, u16) {
    let o = Opaque::of(p).unwrap();
    (o.rightlink(p), o.maxoff(p), o.flags(p))
}

/// Items of a compressed leaf, all segments.
fn leaf_items(p: &Page) -> Vec<Tid> {
    let area = &p[DATA_START..pageops::lower(p) as usize];
    let mut out = Vec::new();
    let mut at = 0;
    while at < area.len() {
        at += postinglist::decode_segment(area, at, &mut out).unwrap();
    }
    out
}

fn segment(items: &[Tid]) -> Vec<u8> {
    let (seg, n) = postinglist::compress(items, BLCKSZ);
    assert_eq!(n, items.len());
    seg
}

fn create_ptree(segments: &[Vec<u8>]) -> Box<Page> {
    let list: Vec<u8> = segments.concat();
    let mut main = (list.len() as u32).to_le_bytes().to_vec();
    main.extend_from_slice(&list);
    Rec::new(gin::CREATE_PTREE, main)
        .block(0, 7, true, vec![])
        .redo(0, None)
        .unwrap()
}

fn insert_main(flags: u16, children: Option<(u32, u32)>) -> Vec<u8> {
    let mut m = flags.to_le_bytes().to_vec();
    if let Some((l, r)) = children {
        for b in [l, r] {
            m.extend_from_slice(&((b >> 16) as u16).to_le_bytes());
            m.extend_from_slice(&(b as u16).to_le_bytes());
        }
    }
    m
}

#[test]
fn create_ptree_lays_out_a_compressed_leaf() {
    let s1 = segment(&[tid(1, 1), tid(1, 2), tid(2, 5)]);
    let s2 = segment(&[tid(9, 1), tid(300, 7)]);
    let p = create_ptree(&[s1.clone(), s2.clone()]);
    assert_eq!(
        opaque(&p),
        (INVALID_BLOCK, 0, GIN_DATA | GIN_LEAF | GIN_COMPRESSED)
    );
    let end = DATA_START + s1.len() + s2.len();
    assert_eq!(pageops::lower(&p) as usize, end);
    assert_eq!(&p[DATA_START..end], [s1, s2].concat().as_slice());
    // The right bound stays zero.
    assert!(p[24..DATA_START].iter().all(|&b| b == 0));
    assert!(pageops::lsn(&p) > Lsn(0x0200_0000));
}

fn leaf_insert(base: &Page, actions: &[u8], nactions: u16) -> Result<Box<Page>, RedoError> {
    let mut data = nactions.to_le_bytes().to_vec();
    data.extend_from_slice(actions);
    Rec::new(gin::INSERT, insert_main(0x03, None))
        .block(0, 7, false, data)
        .redo(0, Some(base))
}

fn additems(segno: u8, items: &[Tid]) -> Vec<u8> {
    let mut a = vec![segno, 4];
    a.extend_from_slice(&(items.len() as u16).to_le_bytes());
    for t in items {
        a.extend_from_slice(&t.bytes());
    }
    a
}

#[test]
fn recompress_actions() {
    let s0 = segment(&[tid(1, 1), tid(1, 3)]);
    let s1 = segment(&[tid(5, 1), tid(5, 2)]);
    let s2 = segment(&[tid(9, 1)]);
    let base = create_ptree(&[s0.clone(), s1.clone(), s2.clone()]);

    // ADDITEMS into segment 1 (merged and re-encoded), the rest kept.
    let p = leaf_insert(&base, &additems(1, &[tid(5, 3), tid(6, 1)]), 1).unwrap();
    assert_eq!(
        leaf_items(&p),
        [
            tid(1, 1),
            tid(1, 3),
            tid(5, 1),
            tid(5, 2),
            tid(5, 3),
            tid(6, 1),
            tid(9, 1)
        ]
    );
    let merged = segment(&[tid(5, 1), tid(5, 2), tid(5, 3), tid(6, 1)]);
    let want = [s0.clone(), merged, s2.clone()].concat();
    assert_eq!(&p[DATA_START..pageops::lower(&p) as usize], want.as_slice());

    // DELETE segment 0, REPLACE segment 1, INSERT before segment 2 and
    // append a segment at the end.
    let r1 = segment(&[tid(5, 9)]);
    let i2 = segment(&[tid(7, 1), tid(7, 2)]);
    let tail = segment(&[tid(20, 1)]);
    let mut acts = vec![0u8, 1, 1, 3];
    acts.extend_from_slice(&r1);
    acts.extend_from_slice(&[2, 2]);
    acts.extend_from_slice(&i2);
    acts.extend_from_slice(&[3, 2]);
    acts.extend_from_slice(&tail);
    let p = leaf_insert(&base, &acts, 4).unwrap();
    let want = [r1, i2, s2.clone(), tail].concat();
    assert_eq!(&p[DATA_START..pageops::lower(&p) as usize], want.as_slice());

    // Actions out of order, unknown actions, trailing bytes, actions past
    // the last segment: errors.
    assert!(leaf_insert(&base, &[1, 1, 0, 1], 2).is_err());
    assert!(leaf_insert(&base, &[0, 9], 1).is_err());
    assert!(leaf_insert(&base, &[0, 1, 0], 1).is_err());
    assert!(leaf_insert(&base, &additems(3, &[tid(30, 1)]), 1).is_err());
    assert!(leaf_insert(&base, &additems(5, &[tid(30, 1)]), 1).is_err());
    // A leaf insert on an entry page is refused.
    assert!(leaf_insert(&gin_page(GIN_LEAF), &additems(0, &[tid(1, 1)]), 1).is_err());
}

#[test]
fn recompress_without_touching_old_segments_drops_the_tail() {
    // PostgreSQL carries the unmodified tail over only once an action
    // touched an old segment: no actions at all leaves an empty list.
    let base = create_ptree(&[segment(&[tid(1, 1)])]);
    let p = leaf_insert(&base, &[], 0).unwrap();
    assert_eq!(pageops::lower(&p) as usize, DATA_START);
}

/// A pre-9.4 posting-tree leaf: plain item pointers, pd_lower not
/// maintained, no GIN_COMPRESSED.
fn uncompressed_leaf(items: &[Tid]) -> Box<Page> {
    let mut p = gin_page(GIN_DATA | GIN_LEAF);
    for (i, t) in items.iter().enumerate() {
        let at = DATA_START + i * 6;
        p[at..at + 6].copy_from_slice(&t.bytes());
    }
    Opaque::of(&p)
        .unwrap()
        .set_maxoff(&mut p, items.len() as u16);
    p
}

#[test]
fn pre_94_leaf_is_converted_first() {
    let items = [tid(1, 1), tid(1, 2), tid(4, 10)];
    let base = uncompressed_leaf(&items);
    let mut data = 1u16.to_le_bytes().to_vec();
    data.extend_from_slice(&additems(0, &[tid(2, 1)]));
    let rec = Rec::new(gin::VACUUM_DATA_LEAF_PAGE, vec![]).block(0, 7, false, data);
    let p = rec.redo(0, Some(&base)).unwrap();
    let (_, maxoff, flags) = opaque(&p);
    assert_eq!(maxoff, 0);
    assert_eq!(flags, GIN_DATA | GIN_LEAF | GIN_COMPRESSED);
    assert_eq!(
        leaf_items(&p),
        [tid(1, 1), tid(1, 2), tid(2, 1), tid(4, 10)]
    );
    // An empty pre-9.4 leaf becomes an empty compressed one; the insert
    // appends there.
    let base = uncompressed_leaf(&[]);
    let seg = segment(&[tid(3, 3)]);
    let mut acts = vec![0u8, 2];
    acts.extend_from_slice(&seg);
    let p = leaf_insert(&base, &acts, 1).unwrap();
    assert_eq!(leaf_items(&p), [tid(3, 3)]);
    assert_eq!(opaque(&p).2 & GIN_COMPRESSED, GIN_COMPRESSED);
}

fn posting_item(child: u32, key: Tid) -> Vec<u8> {
    let mut v = ((child >> 16) as u16).to_le_bytes().to_vec();
    v.extend_from_slice(&(child as u16).to_le_bytes());
    v.extend_from_slice(&key.bytes());
    v
}

fn internal_page(items: &[(u32, Tid)]) -> Box<Page> {
    let mut p = gin_page(GIN_DATA);
    for (i, (c, k)) in items.iter().enumerate() {
        let at = DATA_START + i * 10;
        p[at..at + 10].copy_from_slice(&posting_item(*c, *k));
    }
    Opaque::of(&p)
        .unwrap()
        .set_maxoff(&mut p, items.len() as u16);
    pageops::set_lower(&mut p, (DATA_START + items.len() * 10) as u16);
    p
}

#[test]
fn data_internal_insert_and_delete() {
    let base = internal_page(&[(10, tid(5, 1)), (11, tid(0, 0))]);
    let mut data = 1u16.to_le_bytes().to_vec();
    data.extend_from_slice(&posting_item(10, tid(2, 7)));
    let rec = Rec::new(gin::INSERT, insert_main(0x01, Some((10, 12)))).block(0, 3, false, data);
    let p = rec.redo(0, Some(&base)).unwrap();
    let want = [
        posting_item(10, tid(2, 7)),
        posting_item(12, tid(5, 1)),
        posting_item(11, tid(0, 0)),
    ]
    .concat();
    assert_eq!(&p[DATA_START..DATA_START + 30], want.as_slice());
    assert_eq!(opaque(&p).1, 3);
    assert_eq!(pageops::lower(&p) as usize, DATA_START + 30);

    // Offset 0 (PostgreSQL would write into the header) and offsets past
    // the end are refused.
    for off in [0u16, 4] {
        let mut data = off.to_le_bytes().to_vec();
        data.extend_from_slice(&posting_item(10, tid(2, 7)));
        let rec = Rec::new(gin::INSERT, insert_main(0x01, Some((10, 12)))).block(0, 3, false, data);
        assert!(rec.redo(0, Some(&base)).is_err());
    }

    // DELETE_PAGE: parent loses item 1, left sibling gets the right link,
    // the deleted page its flag and delete xid.
    let mut main = 1u16.to_le_bytes().to_vec();
    main.extend_from_slice(&[0, 0]);
    main.extend_from_slice(&77u32.to_le_bytes());
    main.extend_from_slice(&4242u32.to_le_bytes());
    let rec = Rec::new(gin::DELETE_PAGE, main)
        .block(0, 10, false, vec![])
        .block(1, 3, false, vec![])
        .block(2, 9, false, vec![]);
    let parent = rec.redo(1, Some(&p)).unwrap();
    assert_eq!(opaque(&parent).1, 2);
    assert_eq!(
        &parent[DATA_START..DATA_START + 20],
        [posting_item(12, tid(5, 1)), posting_item(11, tid(0, 0))]
            .concat()
            .as_slice()
    );
    assert_eq!(pageops::lower(&parent) as usize, DATA_START + 20);
    let leaf = create_ptree(&[segment(&[tid(1, 1)])]);
    let left = rec.redo(2, Some(&leaf)).unwrap();
    assert_eq!(opaque(&left).0, 77);
    let deleted = rec.redo(0, Some(&leaf)).unwrap();
    assert_eq!(opaque(&deleted).2 & GIN_DELETED, GIN_DELETED);
    assert_eq!(pageops::prune_xid(&deleted), 4242);
    // The parent must be an internal data page.
    assert!(rec.redo(1, Some(&leaf)).is_err());
}

fn index_tuple(tid_blk: u32, tid_off: u16, key: u32) -> Vec<u8> {
    let mut t = tid(tid_blk, tid_off).bytes().to_vec();
    t.extend_from_slice(&16u16.to_le_bytes());
    t.extend_from_slice(&key.to_le_bytes());
    t.extend_from_slice(&[0; 4]);
    t
}

fn entry_data(offset: u16, is_delete: bool, tuple: &[u8]) -> Vec<u8> {
    let mut d = offset.to_le_bytes().to_vec();
    d.push(is_delete as u8);
    d.push(0);
    d.extend_from_slice(tuple);
    d
}

#[test]
fn entry_inserts() {
    let mut leaf = gin_page(GIN_LEAF);
    for k in [10u32, 20, 30] {
        pageops::page_add_item(&mut leaf, &index_tuple(0, 1, k), 0, AddItemMode::default())
            .unwrap();
    }
    // Replace tuple 2 by a new version.
    let new = index_tuple(0, 2, 20);
    let rec = Rec::new(gin::INSERT, insert_main(0x02, None)).block(
        0,
        1,
        false,
        entry_data(2, true, &new),
    );
    let p = rec.redo(0, Some(&leaf)).unwrap();
    assert_eq!(pageops::max_offset(&p), 3);
    let r = pageops::normal_item_range(&p, 2).unwrap();
    assert_eq!(&p[r], new.as_slice());

    // Internal page: the downlink at the offset is re-pointed at the right
    // child, then the new downlink is inserted before it.
    let mut internal = gin_page(0);
    for (k, c) in [(10u32, 4u32), (u32::MAX, 5)] {
        pageops::page_add_item(
            &mut internal,
            &index_tuple(c, 0, k),
            0,
            AddItemMode::default(),
        )
        .unwrap();
    }
    let down = index_tuple(4, 0, 7);
    let rec = Rec::new(gin::INSERT, insert_main(0x00, Some((4, 0x0001_0009))))
        .block(0, 1, false, entry_data(1, false, &down))
        .block(1, 4, false, vec![]);
    let p = rec.redo(0, Some(&internal)).unwrap();
    let r1 = pageops::normal_item_range(&p, 1).unwrap();
    assert_eq!(&p[r1], down.as_slice());
    let r2 = pageops::normal_item_range(&p, 2).unwrap();
    assert_eq!(&p[r2.start..r2.start + 6], &[1, 0, 9, 0, 0, 0]);
    // The child loses GIN_INCOMPLETE_SPLIT and nothing else.
    let child = gin_page(GIN_LEAF | GIN_INCOMPLETE_SPLIT);
    let c = rec.redo(1, Some(&child)).unwrap();
    assert_eq!(opaque(&c).2, GIN_LEAF);
    // Entry tuple length must match the block data; a delete on an
    // internal page is refused.
    let mut bad = entry_data(2, true, &new);
    bad.push(0);
    let rec = Rec::new(gin::INSERT, insert_main(0x02, None)).block(0, 1, false, bad);
    assert!(rec.redo(0, Some(&leaf)).is_err());
    let rec = Rec::new(gin::INSERT, insert_main(0x02, None)).block(
        0,
        1,
        false,
        entry_data(1, true, &down),
    );
    assert!(rec.redo(0, Some(&internal)).is_err());
}

fn metadata(head: u32, tail: u32) -> Vec<u8> {
    let mut m = vec![0u8; 56];
    m[0..4].copy_from_slice(&head.to_le_bytes());
    m[4..8].copy_from_slice(&tail.to_le_bytes());
    m[48..52].copy_from_slice(&2u32.to_le_bytes());
    m[36] = 0xAA; // padding is copied verbatim too
    m
}

fn update_meta_main(meta: &[u8], prev_tail: u32, new_rightlink: u32, ntuples: i32) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m.extend_from_slice(meta);
    m.extend_from_slice(&prev_tail.to_le_bytes());
    m.extend_from_slice(&new_rightlink.to_le_bytes());
    m.extend_from_slice(&ntuples.to_le_bytes());
    m.extend_from_slice(&[0; 4]);
    m
}

#[test]
fn pending_list_records() {
    let meta = metadata(2, 3);
    // UPDATE_META_PAGE: metapage rebuilt; two tuples appended to the tail.
    let tuples = [index_tuple(1, 1, 5), index_tuple(1, 1, 6)].concat();
    let rec = Rec::new(
        gin::UPDATE_META_PAGE,
        update_meta_main(&meta, INVALID_BLOCK, INVALID_BLOCK, 2),
    )
    .block(0, 0, true, vec![])
    .block(1, 3, false, tuples.clone());
    let m = rec.redo(0, None).unwrap();
    assert_eq!(opaque(&m), (INVALID_BLOCK, 0, GIN_META));
    assert_eq!(&m[24..80], meta.as_slice());
    assert_eq!(pageops::lower(&m), 80);

    // INSERT_LISTPAGE ending a row: FULLROW, maxoff 1.
    let mut main = INVALID_BLOCK.to_le_bytes().to_vec();
    main.extend_from_slice(&1i32.to_le_bytes());
    let lp = Rec::new(gin::INSERT_LISTPAGE, main)
        .block(0, 3, true, index_tuple(1, 0, 4))
        .redo(0, None)
        .unwrap();
    assert_eq!(opaque(&lp), (INVALID_BLOCK, 1, GIN_LIST | GIN_LIST_FULLROW));
    assert_eq!(pageops::max_offset(&lp), 1);

    let tail = rec.redo(1, Some(&lp)).unwrap();
    assert_eq!(pageops::max_offset(&tail), 3);
    assert_eq!(opaque(&tail).1, 2);
    let r = pageops::normal_item_range(&tail, 3).unwrap();
    assert_eq!(&tail[r], &tuples[16..]);

    // A continued list page: maxoff 0, right link kept.
    let mut main = 9u32.to_le_bytes().to_vec();
    main.extend_from_slice(&1i32.to_le_bytes());
    let lp2 = Rec::new(gin::INSERT_LISTPAGE, main)
        .block(0, 8, true, index_tuple(1, 0, 4))
        .redo(0, None)
        .unwrap();
    assert_eq!(opaque(&lp2), (9, 0, GIN_LIST));

    // New sublist: the old tail gets the right link.
    let rec = Rec::new(gin::UPDATE_META_PAGE, update_meta_main(&meta, 3, 8, 0))
        .block(0, 0, true, vec![])
        .block(1, 3, false, vec![]);
    assert_eq!(opaque(&rec.redo(1, Some(&lp)).unwrap()).0, 8);
    // Neither tuples nor a previous tail: block 1 has no business here.
    let rec = Rec::new(
        gin::UPDATE_META_PAGE,
        update_meta_main(&meta, INVALID_BLOCK, 8, 0),
    )
    .block(0, 0, true, vec![])
    .block(1, 3, false, vec![]);
    assert!(rec.redo(1, Some(&lp)).is_err());
    // The metapage must be block 0 and WILL_INIT.
    let rec = Rec::new(
        gin::UPDATE_META_PAGE,
        update_meta_main(&meta, INVALID_BLOCK, 8, 0),
    )
    .block(0, 4, true, vec![]);
    assert!(rec.redo(0, None).is_err());
    let rec = Rec::new(
        gin::UPDATE_META_PAGE,
        update_meta_main(&meta, INVALID_BLOCK, 8, 0),
    )
    .block(0, 0, false, vec![]);
    assert!(rec.redo(0, Some(&m)).is_err());

    // DELETE_LISTPAGE: metapage and two deleted pages.
    let mut main = metadata(INVALID_BLOCK, INVALID_BLOCK);
    main.extend_from_slice(&2i32.to_le_bytes());
    main.extend_from_slice(&[0; 4]);
    let rec = Rec::new(gin::DELETE_LISTPAGE, main)
        .block(0, 0, true, vec![])
        .block(1, 3, true, vec![])
        .block(2, 8, true, vec![])
        .block(3, 9, true, vec![]);
    assert_eq!(&rec.redo(0, None).unwrap()[24..28], &[0xFF; 4]);
    let d = rec.redo(2, Some(&lp2)).unwrap();
    assert_eq!(opaque(&d), (INVALID_BLOCK, 0, GIN_DELETED));
    assert_eq!(pageops::max_offset(&d), 0);
    assert!(rec.redo(3, None).is_err());
}

#[test]
fn image_only_records_need_their_images() {
    let mut split = vec![0u8; 24];
    split.extend_from_slice(&(0x04u16).to_le_bytes()); // root split, non-leaf
    split.extend_from_slice(&[0, 0]);
    let page = gin_page(GIN_LEAF | GIN_INCOMPLETE_SPLIT);
    let rec = Rec::new(gin::SPLIT, split.clone())
        .block(0, 1, false, vec![])
        .block(1, 2, false, vec![])
        .block(2, 3, false, vec![])
        .block(3, 4, false, vec![]);
    for id in 0..3 {
        assert!(matches!(
            rec.redo(id, Some(&page)),
            Err(RedoError::Malformed { .. })
        ));
    }
    assert_eq!(opaque(&rec.redo(3, Some(&page)).unwrap()).2, GIN_LEAF);
    // With APPLY images the dispatcher restores them.
    let rec = Rec::new(gin::SPLIT, split)
        .block(0, 1, false, vec![])
        .image(&page, true);
    assert_eq!(&rec.redo(0, None).unwrap()[8192 - 8..], &page[8192 - 8..]);

    let rec = Rec::new(gin::VACUUM_PAGE, vec![]).block(0, 1, false, vec![]);
    assert!(rec.redo(0, Some(&page)).is_err());
    let rec = Rec::new(gin::VACUUM_PAGE, vec![])
        .block(0, 1, false, vec![])
        .image(&page, true);
    assert!(rec.redo(0, None).is_ok());
}

#[test]
fn delta_on_missing_page_is_refused() {
    let rec = Rec::new(gin::INSERT, insert_main(0x03, None)).block(0, 7, false, vec![0, 0]);
    assert!(matches!(
        rec.redo(0, None),
        Err(RedoError::MissingBase { .. })
    ));
}

#[test]
fn mask_rules() {
    // A deleted page: everything after the header and pd_lower/upper.
    let mut a = gin_page(GIN_DELETED);
    let mut b = gin_page(GIN_DELETED | GIN_DATA);
    a[3000] = 1;
    pageops::set_lower(&mut b, 100);
    mask(&mut a, 0);
    mask(&mut b, 0);
    assert_eq!(a[..], b[..]);
    // pd_lower at the header end: free space is not masked.
    let mut c = gin_page(GIN_DATA | GIN_LEAF);
    c[3000] = 1;
    mask(&mut c, 0);
    assert_eq!(c[3000], 1);
    // Past the header: masked.
    pageops::set_lower(&mut c, 32);
    mask(&mut c, 0);
    assert_eq!(c[3000], 0);
    // Garbage special pointer: no panic.
    let mut d = [0xFFu8; BLCKSZ];
    mask(&mut d, 0);
}
