//! Hand-built GiST records: the cases SQL cannot produce on demand (a left
//! child restored from a full-page image, records without blocks), plus
//! checks of page layouts the conformance test sees only through masks.

use bytes::Bytes;
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::rmgr::RM_GIST_ID;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;

use super::*;
use crate::record::{ClusterSettings, RedoRecord, RedoTarget};

const REL: RelFileNode = RelFileNode {
    spcnode: 1663,
    dbnode: 5,
    relnode: 16500,
};

fn target(blkno: BlockNumber) -> RedoTarget {
    RedoTarget {
        rel: REL,
        forknum: 0,
        blkno,
        settings: ClusterSettings::default(),
    }
}

/// Applies `rec`'s block `block_id` (which must be block `blkno`) to `base`;
/// returns the page and the record's end LSN.
fn run(
    rec: &RecordBuilder,
    block_id: u8,
    blkno: BlockNumber,
    base: Option<&Page>,
) -> Result<(Box<Page>, Lsn), RedoError> {
    let lsn = Lsn(0x0200_0000);
    let bytes = rec.encode(Lsn(0x0100_0000));
    let end = Lsn(lsn.0 + bytes.len() as u64).align();
    let r = RedoRecord::wal_bytes(lsn, end, bytes, block_id);
    crate::apply(&target(blkno), base.map(|p| &p[..]), &[r]).map(|p| (p, end))
}

/// An index tuple of `len` bytes whose TID and key bytes derive from `key`.
fn tuple(key: u8, len: usize) -> Vec<u8> {
    let mut t = vec![key; len];
    t[0..6].copy_from_slice(&[0, 0, 0, key, 0, 1]);
    t[6..8].copy_from_slice(&(len as u16).to_le_bytes());
    t
}

/// A GiST page with `flags` and tuples keyed 1..=n, 24 bytes each.
fn gist_page(flags: u16, n: u8) -> Page {
    let mut p = [0u8; BLCKSZ];
    pageops::page_init(&mut p, GIST_OPAQUE_SIZE).unwrap();
    let at = opaque_at(&p).unwrap();
    set_rightlink(&mut p, at, INVALID_BLOCK);
    set_gist_flags(&mut p, at, flags);
    pageops::write_at(&mut p, at + 14, &GIST_PAGE_ID.to_le_bytes());
    for k in 1..=n {
        pageops::page_add_item(&mut p, &tuple(k, 24), 0, AddItemMode::default()).unwrap();
    }
    pageops::set_lsn(&mut p, Lsn(0x0100_0000));
    p
}

fn flags_of(p: &Page) -> u16 {
    gist_flags(p, opaque_at(p).unwrap())
}

fn nsn_of(p: &Page) -> Lsn {
    let at = opaque_at(p).unwrap();
    let hi = pageops::read_u32(p, at).unwrap() as u64;
    let lo = pageops::read_u32(p, at + 4).unwrap() as u64;
    Lsn(hi << 32 | lo)
}

fn item(p: &Page, off: u16) -> Vec<u8> {
    p[pageops::normal_item_range(p, off).unwrap()].to_vec()
}

fn update_record(ntodelete: u16, ntoinsert: u16, data: Vec<u8>) -> RecordBuilder {
    let mut md = ntodelete.to_le_bytes().to_vec();
    md.extend_from_slice(&ntoinsert.to_le_bytes());
    RecordBuilder::new(RM_GIST_ID, gist::PAGE_UPDATE)
        .main_data(Bytes::from(md))
        .block(BlockSpec::new(0, REL, 0, 7).with_data(Bytes::from(data)))
}

#[test]
fn left_child_restored_from_image_still_loses_follow_right() {
    let mut child = gist_page(F_LEAF | F_FOLLOW_RIGHT, 3);
    set_nsn(&mut child, BLCKSZ - GIST_OPAQUE_SIZE, Lsn(0x42));
    let img = ImageSpec::from_page(&child, true, true, ImageCompression::None);
    let rec = update_record(0, 1, tuple(9, 16)).block(BlockSpec::new(1, REL, 0, 3).with_image(img));
    let (out, end) = run(&rec, 1, 3, None).unwrap();
    assert_eq!(flags_of(&out), F_LEAF);
    assert_eq!(nsn_of(&out), end);
    assert_eq!(pageops::lsn(&out), end);
    assert_eq!(item(&out, 3), tuple(3, 24));

    // The same child as a delta block (no image) gets the same change.
    let rec = update_record(0, 1, tuple(9, 16)).block(BlockSpec::new(1, REL, 0, 3));
    let (out2, end2) = run(&rec, 1, 3, Some(&child)).unwrap();
    assert_eq!(flags_of(&out2), F_LEAF);
    assert_eq!(nsn_of(&out2), end2);
    assert!(out[24..BLCKSZ - GIST_OPAQUE_SIZE] == out2[24..BLCKSZ - GIST_OPAQUE_SIZE]);
}

#[test]
fn split_left_child_restored_from_image() {
    let mut child = gist_page(F_FOLLOW_RIGHT, 2);
    set_nsn(&mut child, BLCKSZ - GIST_OPAQUE_SIZE, Lsn(0x99));
    let img = ImageSpec::from_page(&child, true, true, ImageCompression::Lz4);
    let mut data = 1i32.to_le_bytes().to_vec();
    data.extend(tuple(5, 32));
    let rec = RecordBuilder::new(RM_GIST_ID, gist::PAGE_SPLIT)
        .main_data(Bytes::from(split_main(
            INVALID_BLOCK,
            Lsn(7),
            false,
            1,
            true,
        )))
        .block(BlockSpec::new(0, REL, 0, 4).with_image(img))
        .block(
            BlockSpec::new(1, REL, 0, 8)
                .will_init()
                .with_data(Bytes::from(data)),
        );
    let (out, end) = run(&rec, 0, 4, None).unwrap();
    assert_eq!(flags_of(&out), 0);
    assert_eq!(nsn_of(&out), end);
    // Other blocks of a record with a restored image: nothing extra.
    let (other, _) = run(&rec, 1, 8, None).unwrap();
    assert_eq!(item(&other, 1), tuple(5, 32));

    // A split page with an image anyway is still rebuilt from the record
    // (PostgreSQL re-initialises it after the restore).
    let mut data = 1i32.to_le_bytes().to_vec();
    data.extend(tuple(6, 48));
    let rec = RecordBuilder::new(RM_GIST_ID, gist::PAGE_SPLIT)
        .main_data(Bytes::from(split_main(77, Lsn(7), true, 1, false)))
        .block(
            BlockSpec::new(1, REL, 0, 8)
                .will_init()
                .with_data(Bytes::from(data))
                .with_image(ImageSpec::from_page(
                    &gist_page(0, 5),
                    true,
                    true,
                    ImageCompression::None,
                )),
        );
    let (p, _) = run(&rec, 1, 8, None).unwrap();
    assert_eq!(flags_of(&p), F_LEAF);
    assert_eq!(pageops::max_offset(&p), 1);
    assert_eq!(item(&p, 1), tuple(6, 48));
    assert_eq!(pageops::read_u32(&p, BLCKSZ - 8), Some(77));
}

fn split_main(rlink: BlockNumber, nsn: Lsn, leaf: bool, npage: u16, follow: bool) -> Vec<u8> {
    let mut md = vec![0u8; 24];
    md[0..4].copy_from_slice(&rlink.to_le_bytes());
    md[8..16].copy_from_slice(&nsn.0.to_le_bytes());
    md[16] = leaf as u8;
    md[18..20].copy_from_slice(&npage.to_le_bytes());
    md[20] = follow as u8;
    md
}

fn split_data(keys: &[u8]) -> Bytes {
    let mut d = (keys.len() as i32).to_le_bytes().to_vec();
    for &k in keys {
        d.extend(tuple(k, 40));
    }
    Bytes::from(d)
}

#[test]
fn split_pages_rebuilt_with_links_and_flags() {
    // A leaf split into blocks 5, 9, 12, with follow-right marks.
    let rec = RecordBuilder::new(RM_GIST_ID, gist::PAGE_SPLIT)
        .main_data(Bytes::from(split_main(
            30,
            Lsn(0x1234_5678_9ABC),
            true,
            3,
            true,
        )))
        .block(
            BlockSpec::new(1, REL, 0, 5)
                .will_init()
                .with_data(split_data(&[1, 2])),
        )
        .block(
            BlockSpec::new(2, REL, 0, 9)
                .will_init()
                .with_data(split_data(&[3])),
        )
        .block(
            BlockSpec::new(3, REL, 0, 12)
                .will_init()
                .with_data(split_data(&[4, 5, 6])),
        );
    let stale = gist_page(F_DELETED, 9);
    for (b, blk, rlink, follow, keys) in [
        (1u8, 5u32, 9u32, true, &[1u8, 2][..]),
        (2, 9, 12, true, &[3][..]),
        (3, 12, 30, false, &[4, 5, 6][..]),
    ] {
        let (p, end) = run(&rec, b, blk, Some(&stale)).unwrap();
        let at = opaque_at(&p).unwrap();
        assert_eq!(at, BLCKSZ - GIST_OPAQUE_SIZE);
        assert_eq!(pageops::read_u32(&p, at + 8), Some(rlink));
        let want = F_LEAF | if follow { F_FOLLOW_RIGHT } else { 0 };
        assert_eq!(flags_of(&p), want);
        assert_eq!(pageops::read_u16(&p, at + 14), Some(GIST_PAGE_ID));
        assert_eq!(nsn_of(&p), Lsn(0x1234_5678_9ABC));
        assert_eq!(pageops::lsn(&p), end);
        assert_eq!(pageops::max_offset(&p) as usize, keys.len());
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(item(&p, i as u16 + 1), tuple(k, 40));
        }
    }

    // A root split: block 0 becomes an internal root without links; the new
    // children get no follow-right.
    let rec = RecordBuilder::new(RM_GIST_ID, gist::PAGE_SPLIT)
        .main_data(Bytes::from(split_main(
            INVALID_BLOCK,
            Lsn(0),
            true,
            3,
            true,
        )))
        .block(
            BlockSpec::new(1, REL, 0, 0)
                .will_init()
                .with_data(split_data(&[1, 2])),
        )
        .block(
            BlockSpec::new(2, REL, 0, 1)
                .will_init()
                .with_data(split_data(&[3])),
        )
        .block(
            BlockSpec::new(3, REL, 0, 2)
                .will_init()
                .with_data(split_data(&[4])),
        );
    let (root, _) = run(&rec, 1, 0, None).unwrap();
    assert_eq!(flags_of(&root), 0);
    assert_eq!(pageops::read_u32(&root, BLCKSZ - 8), Some(INVALID_BLOCK));
    let (left, _) = run(&rec, 2, 1, None).unwrap();
    assert_eq!(flags_of(&left), F_LEAF);
    assert_eq!(pageops::read_u32(&left, BLCKSZ - 8), Some(2));

    // Wrong tuple counts, missing WILL_INIT, blocks beyond npage: errors.
    let bad = RecordBuilder::new(RM_GIST_ID, gist::PAGE_SPLIT)
        .main_data(Bytes::from(split_main(0, Lsn(0), true, 1, false)))
        .block(
            BlockSpec::new(1, REL, 0, 5)
                .will_init()
                .with_data(Bytes::from(
                    [&3i32.to_le_bytes()[..], &tuple(1, 40)].concat(),
                )),
        )
        .block(BlockSpec::new(2, REL, 0, 6).with_data(split_data(&[1])));
    assert!(run(&bad, 1, 5, None).is_err());
    assert!(run(&bad, 2, 6, None).is_err());
}

#[test]
fn page_update_replaces_deletes_and_appends() {
    let base = gist_page(F_LEAF, 4);
    // One-for-one: in place, other offsets unchanged.
    let mut d = 2u16.to_le_bytes().to_vec();
    d.extend(tuple(20, 40));
    let (p, _) = run(&update_record(1, 1, d), 0, 7, Some(&base)).unwrap();
    assert_eq!(item(&p, 2), tuple(20, 40));
    assert_eq!(item(&p, 4), tuple(4, 24));
    assert_eq!(flags_of(&p) & F_TUPLES_DELETED, 0);

    // Delete two, add one: appended after the remaining two; a leaf is
    // marked as having lost tuples.
    let mut d = [1u16, 3]
        .iter()
        .flat_map(|o| o.to_le_bytes())
        .collect::<Vec<u8>>();
    d.extend(tuple(30, 16));
    let (p, _) = run(&update_record(2, 1, d.clone()), 0, 7, Some(&base)).unwrap();
    assert_eq!(pageops::max_offset(&p), 3);
    assert_eq!(item(&p, 1), tuple(2, 24));
    assert_eq!(item(&p, 3), tuple(30, 16));
    assert_ne!(flags_of(&p) & F_TUPLES_DELETED, 0);
    // Not on an internal page.
    let (p, _) = run(&update_record(2, 1, d), 0, 7, Some(&gist_page(0, 4))).unwrap();
    assert_eq!(flags_of(&p) & F_TUPLES_DELETED, 0);

    // Counts that disagree with the data, and garbage tuple sizes.
    assert!(run(&update_record(0, 2, tuple(1, 24)), 0, 7, Some(&base)).is_err());
    let mut t = tuple(1, 24);
    t[6] = 3;
    assert!(run(&update_record(0, 1, t), 0, 7, Some(&base)).is_err());
}

#[test]
fn delete_and_page_delete() {
    let mut base = gist_page(F_LEAF | F_HAS_GARBAGE, 5);
    let mut md = 900u32.to_le_bytes().to_vec();
    md.extend_from_slice(&3u16.to_le_bytes());
    for o in [1u16, 2, 5] {
        md.extend_from_slice(&o.to_le_bytes());
    }
    let rec = RecordBuilder::new(RM_GIST_ID, gist::DELETE)
        .main_data(Bytes::from(md))
        .block(BlockSpec::new(0, REL, 0, 7));
    let (p, _) = run(&rec, 0, 7, Some(&base)).unwrap();
    assert_eq!(pageops::max_offset(&p), 2);
    assert_eq!(item(&p, 1), tuple(3, 24));
    assert_eq!(flags_of(&p), F_LEAF | F_TUPLES_DELETED);

    // mask keeps F_TUPLES_DELETED (as PostgreSQL's does); the comparison
    // mask hides it on leaves only.
    let mut theirs = *p;
    let at = opaque_at(&theirs).unwrap();
    set_gist_flags(&mut theirs, at, F_LEAF);
    let (mut a, mut b) = (*p, theirs);
    mask(&mut a, 7);
    mask(&mut b, 7);
    assert_ne!(a, b);
    comparison_mask(&mut a, 7);
    comparison_mask(&mut b, 7);
    assert_eq!(a, b);

    // PAGE_DELETE: the emptied leaf is flagged and stores the xid; the
    // parent loses its downlink.
    let empty = gist_page(F_LEAF, 0);
    let mut md = 0x0000_0001_0000_0457u64.to_le_bytes().to_vec();
    md.extend_from_slice(&2u16.to_le_bytes());
    let rec = RecordBuilder::new(RM_GIST_ID, gist::PAGE_DELETE)
        .main_data(Bytes::from(md))
        .block(BlockSpec::new(0, REL, 0, 7))
        .block(BlockSpec::new(1, REL, 0, 2));
    let (leaf, _) = run(&rec, 0, 7, Some(&empty)).unwrap();
    assert_eq!(flags_of(&leaf), F_LEAF | F_DELETED);
    assert_eq!(pageops::lower(&leaf), 32);
    assert_eq!(&leaf[24..32], &0x0000_0001_0000_0457u64.to_le_bytes());
    base = gist_page(0, 3);
    let (parent, _) = run(&rec, 1, 2, Some(&base)).unwrap();
    assert_eq!(pageops::max_offset(&parent), 2);
    assert_eq!(item(&parent, 2), tuple(3, 24));
}

#[test]
fn records_without_pages() {
    for info in [gist::PAGE_REUSE, gist::ASSIGN_LSN] {
        assert!(crate::is_supported(RM_GIST_ID, info));
        // PostgreSQL never attaches a block; one that does is refused.
        let rec = RecordBuilder::new(RM_GIST_ID, info)
            .main_data(Bytes::from(vec![0u8; 24]))
            .block(BlockSpec::new(0, REL, 0, 7));
        assert!(matches!(
            run(&rec, 0, 7, Some(&gist_page(F_LEAF, 1))),
            Err(RedoError::Malformed { .. })
        ));
    }
    assert!(!crate::is_supported(RM_GIST_ID, 0x40));
    assert!(!crate::is_supported(RM_GIST_ID, 0x50));
}

#[test]
fn mask_on_garbage_special_does_not_panic() {
    let mut p = [0xEEu8; BLCKSZ];
    mask(&mut p, 0);
    comparison_mask(&mut p, 0);
    let mut p = gist_page(F_LEAF | F_HAS_GARBAGE, 2);
    mask(&mut p, 0);
    assert_eq!(flags_of(&p), F_LEAF | F_FOLLOW_RIGHT);
    assert_eq!(nsn_of(&p), Lsn(0));
}
