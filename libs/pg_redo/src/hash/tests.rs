//! Hand-built records for what the SQL workload cannot reach (a new bitmap
//! page in ADD_OVFL_PAGE, the next-page link of SQUEEZE_PAGE, edits of
//! restored images that PostgreSQL's primary already made before taking
//! the image) and checks of `hash_mask`.

use bytes::Bytes;
use postgres_ffi::page::{ItemId, LpFlags};
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::rmgr::RM_HASH_ID;
use postgres_ffi::types::INVALID_BLOCK_NUMBER;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};

use super::page::{self as hp, Opaque};
use super::*;
use crate::pageops::AddItemMode;
use crate::{ClusterSettings, RedoRecord, RedoTarget};

const REL: RelFileNode = RelFileNode {
    spcnode: 1663,
    dbnode: 5,
    relnode: 16400,
};
const LSN: Lsn = Lsn(0x0100_0000);

/// Applies block `block_id` of `rec` to `base`; returns the page and the
/// LSN redo stamps.
fn run(
    rec: &RecordBuilder,
    block_id: u8,
    base: Option<&Page>,
) -> (Result<Box<Page>, RedoError>, Lsn) {
    let bytes = rec.encode(Lsn(LSN.0 - 0x100));
    let end = Lsn(LSN.0 + bytes.len() as u64).align();
    let blkno = rec
        .blocks
        .iter()
        .find(|b| b.block_id == block_id)
        .map_or(0, |b| b.blkno);
    let target = RedoTarget {
        rel: REL,
        forknum: 0,
        blkno,
        settings: ClusterSettings::default(),
    };
    let stored = RedoRecord::wal_bytes(LSN, end, bytes, block_id);
    (crate::apply(&target, base.map(|p| &p[..]), &[stored]), end)
}

fn block(id: u8, blkno: u32) -> BlockSpec {
    BlockSpec::new(id, REL, 0, blkno)
}

fn u32s(v: &[u32]) -> Bytes {
    Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
}

fn special(page: &Page) -> Opaque {
    let s = BLCKSZ - hp::SPECIAL_SIZE;
    Opaque {
        prev: hp::get_u32(page, s),
        next: hp::get_u32(page, s + 4),
        bucket: hp::get_u32(page, s + 8),
        flag: pageops::read_u16(page, s + 12).unwrap(),
    }
}

fn meta_page(num_buckets: u32) -> Box<Page> {
    let mut p = Box::new([0u8; BLCKSZ]);
    hp::init_meta_page(&mut p, num_buckets, 450, 40).unwrap();
    // As after INIT_BITMAP_PAGE: one bitmap page after the buckets.
    hp::put_u32(&mut p, hp::mapp_offset(0).unwrap(), num_buckets + 1);
    hp::put_u32(&mut p, hp::META_NMAPS, 1);
    p
}

/// A bucket page holding `n` 16-byte index tuples.
fn bucket_page(bucket: u32, flag: u16, n: u16) -> Box<Page> {
    let mut p = Box::new([0u8; BLCKSZ]);
    hp::init_bucket_page(&mut p, 3, bucket, flag).unwrap();
    for i in 0..n {
        let mut t = [0u8; 16];
        t[4..6].copy_from_slice(&(i + 1).to_le_bytes());
        t[6..8].copy_from_slice(&16u16.to_le_bytes());
        t[8..12].copy_from_slice(&(1000 + i as u32).to_le_bytes());
        pageops::page_add_item(&mut p, &t, 0, AddItemMode::default()).unwrap();
    }
    p
}

fn apply_image(page: &Page) -> ImageSpec {
    ImageSpec::from_page(page, true, true, ImageCompression::None)
}

#[test]
fn add_ovfl_page_with_new_bitmap_page() {
    let mut md = 4096u16.to_le_bytes().to_vec();
    md.push(0); // bmpage_found = false: the index was extended
    let rec = RecordBuilder::new(RM_HASH_ID, info::ADD_OVFL_PAGE)
        .main_data(Bytes::from(md))
        .block(block(0, 41).will_init().with_data(u32s(&[3])))
        .block(block(1, 4))
        .block(block(3, 40).will_init())
        .block(block(4, 0).with_data(u32s(&[77])));

    let (ovfl, end) = run(&rec, 0, None);
    let ovfl = ovfl.unwrap();
    assert_eq!(pageops::lsn(&ovfl), end);
    assert_eq!(
        special(&ovfl),
        Opaque {
            prev: 4,
            next: INVALID_BLOCK_NUMBER,
            bucket: 3,
            flag: hp::LH_OVERFLOW_PAGE
        }
    );
    assert_eq!(pageops::max_offset(&ovfl), 0);

    let (map, _) = run(&rec, 3, None);
    let map = map.unwrap();
    assert_eq!(special(&map), Opaque::unlinked(hp::LH_BITMAP_PAGE));
    assert_eq!(pageops::lower(&map) as usize, hp::CONTENTS + 4096);
    assert!(map[hp::CONTENTS..hp::CONTENTS + 4096]
        .iter()
        .all(|&b| b == 0xFF));
    assert!(map[hp::CONTENTS + 4096..BLCKSZ - 16]
        .iter()
        .all(|&b| b == 0));

    let base = meta_page(4);
    let point = hp::get_u32(&base, hp::META_OVFLPOINT) as usize;
    let spares_at = hp::spares_offset(point).unwrap();
    let (meta, _) = run(&rec, 4, Some(&base));
    let meta = meta.unwrap();
    assert_eq!(hp::get_u32(&meta, hp::META_FIRSTFREE), 77);
    // One spare for the overflow page, one for the bitmap page.
    assert_eq!(
        hp::get_u32(&meta, spares_at),
        hp::get_u32(&base, spares_at) + 2
    );
    assert_eq!(hp::get_u32(&meta, hp::META_NMAPS), 2);
    assert_eq!(hp::get_u32(&meta, hp::mapp_offset(1).unwrap()), 40);

    let (prev, _) = run(&rec, 1, Some(&bucket_page(3, hp::LH_BUCKET_PAGE, 2)));
    assert_eq!(special(&prev.unwrap()).next, 41);
}

#[test]
fn add_ovfl_page_refuses_a_bitmap_off_the_page_and_a_full_map_list() {
    let mut md = 9000u16.to_le_bytes().to_vec();
    md.push(0);
    let rec = RecordBuilder::new(RM_HASH_ID, info::ADD_OVFL_PAGE)
        .main_data(Bytes::from(md.clone()))
        .block(block(0, 41).will_init().with_data(u32s(&[3])))
        .block(block(1, 4))
        .block(block(3, 40).will_init())
        .block(block(4, 0).with_data(u32s(&[77])));
    assert!(matches!(
        run(&rec, 3, None).0,
        Err(RedoError::Malformed { .. })
    ));
    let mut full = meta_page(4);
    hp::put_u32(&mut full, hp::META_NMAPS, hp::MAX_BITMAPS as u32);
    assert!(matches!(
        run(&rec, 4, Some(&full)).0,
        Err(RedoError::Malformed { .. })
    ));
}

#[test]
fn squeeze_page_relinks_the_next_page_and_frees_the_page() {
    let mut md = u32s(&[9, 12]).to_vec();
    md.extend_from_slice(&0u16.to_le_bytes()); // no tuples moved
    md.push(0); // write page is not the primary bucket page
    md.push(1); // write page is the page before the freed one
    let rec = RecordBuilder::new(RM_HASH_ID, info::SQUEEZE_PAGE)
        .main_data(Bytes::from(md))
        .block(block(0, 3))
        .block(block(1, 9))
        .block(block(2, 10))
        .block(block(3, 9))
        .block(block(4, 12))
        .block(block(5, 5).with_data(u32s(&[33])));
    let base = bucket_page(3, hp::LH_OVERFLOW_PAGE, 3);

    let (next, end) = run(&rec, 4, Some(&base));
    let next = next.unwrap();
    assert_eq!(special(&next).prev, 9);
    assert_eq!(pageops::lsn(&next), end);

    let (write, _) = run(&rec, 1, Some(&base));
    let write = write.unwrap();
    assert_eq!(special(&write).next, 12);
    assert_eq!(pageops::max_offset(&write), 3);

    // Block 3 is the write page again: redo leaves it alone.
    let (prev, _) = run(&rec, 3, Some(&base));
    assert_eq!(&prev.unwrap()[..], &base[..]);
    // So is the primary bucket page, registered for its cleanup lock.
    let (bucket, _) = run(&rec, 0, Some(&base));
    assert_eq!(&bucket.unwrap()[..], &base[..]);

    let (freed, _) = run(&rec, 2, Some(&base));
    let freed = freed.unwrap();
    assert_eq!(special(&freed), Opaque::unlinked(hp::LH_UNUSED_PAGE));
    assert_eq!(pageops::max_offset(&freed), 0);

    let mut map = Box::new([0u8; BLCKSZ]);
    hp::init_bitmap_page(&mut map, 4096).unwrap();
    let (map, _) = run(&rec, 5, Some(&map));
    let map = map.unwrap();
    assert_eq!(hp::get_u32(&map, hp::CONTENTS + 4), !(1u32 << 1));
}

#[test]
fn split_page_needs_its_image() {
    let page = bucket_page(2, hp::LH_BUCKET_PAGE, 4);
    let plain = RecordBuilder::new(RM_HASH_ID, info::SPLIT_PAGE).block(block(0, 7));
    assert!(matches!(
        run(&plain, 0, Some(&page)).0,
        Err(RedoError::Malformed { .. })
    ));
    let restored = RecordBuilder::new(RM_HASH_ID, info::SPLIT_PAGE)
        .block(block(0, 7).with_image(apply_image(&page)));
    let (out, end) = run(&restored, 0, None);
    let mut expect = *page;
    pageops::set_lsn(&mut expect, end);
    assert_eq!(&out.unwrap()[..], &expect[..]);
}

#[test]
fn restored_bucket_pages_get_the_record_flags() {
    let stale = bucket_page(2, hp::LH_BUCKET_PAGE, 4);
    let mut md = 5u32.to_le_bytes().to_vec();
    let old_flag = hp::LH_BUCKET_PAGE | (1 << 5);
    let new_flag = hp::LH_BUCKET_PAGE | (1 << 4);
    md.extend_from_slice(&old_flag.to_le_bytes());
    md.extend_from_slice(&new_flag.to_le_bytes());
    md.push(0);
    let alloc = RecordBuilder::new(RM_HASH_ID, info::SPLIT_ALLOCATE_PAGE)
        .main_data(Bytes::from(md))
        .block(block(0, 3).with_image(apply_image(&stale)))
        .block(block(1, 6).will_init().with_image(apply_image(&stale)))
        .block(block(2, 0));
    let (old, end) = run(&alloc, 0, None);
    let old = old.unwrap();
    assert_eq!(special(&old).flag, old_flag);
    assert_eq!(special(&old).prev, 5);
    assert_eq!(pageops::lsn(&old), end);
    assert_eq!(pageops::max_offset(&old), 4);
    // The new bucket is initialised even over a restored image.
    let (new, _) = run(&alloc, 1, None);
    let new = new.unwrap();
    assert_eq!(pageops::max_offset(&new), 0);
    assert_eq!(
        special(&new),
        Opaque {
            prev: 5,
            next: INVALID_BLOCK_NUMBER,
            bucket: 5,
            flag: new_flag
        }
    );

    let mut md = (hp::LH_BUCKET_PAGE | hp::LH_BUCKET_NEEDS_SPLIT_CLEANUP)
        .to_le_bytes()
        .to_vec();
    md.extend_from_slice(&hp::LH_BUCKET_PAGE.to_le_bytes());
    let complete = RecordBuilder::new(RM_HASH_ID, info::SPLIT_COMPLETE)
        .main_data(Bytes::from(md))
        .block(block(0, 3).with_image(apply_image(&old)))
        .block(block(1, 6).with_image(apply_image(&new)));
    let (old2, _) = run(&complete, 0, None);
    assert_eq!(
        special(&old2.unwrap()).flag,
        hp::LH_BUCKET_PAGE | hp::LH_BUCKET_NEEDS_SPLIT_CLEANUP
    );
    let (new2, _) = run(&complete, 1, None);
    assert_eq!(special(&new2.unwrap()).flag, hp::LH_BUCKET_PAGE);
}

#[test]
fn restored_images_of_other_records_are_left_as_restored() {
    let page = bucket_page(2, hp::LH_BUCKET_PAGE, 4);
    let rec = RecordBuilder::new(RM_HASH_ID, info::INSERT)
        .main_data(Bytes::copy_from_slice(&1u16.to_le_bytes()))
        .block(block(0, 7).with_image(apply_image(&page)))
        .block(block(1, 0));
    let (out, end) = run(&rec, 0, None);
    let mut expect = *page;
    pageops::set_lsn(&mut expect, end);
    assert_eq!(&out.unwrap()[..], &expect[..]);
}

#[test]
fn init_meta_page_overwrites_a_restored_image() {
    let mut md = 0f64.to_le_bytes().to_vec();
    md.extend_from_slice(&450u32.to_le_bytes());
    md.extend_from_slice(&40u16.to_le_bytes());
    let garbage = bucket_page(1, hp::LH_BUCKET_PAGE, 7);
    let rec = RecordBuilder::new(RM_HASH_ID, info::INIT_META_PAGE)
        .main_data(Bytes::from(md))
        .block(block(0, 0).will_init().with_image(apply_image(&garbage)));
    let (out, end) = run(&rec, 0, None);
    let mut expect = [0u8; BLCKSZ];
    hp::init_meta_page(&mut expect, 2, 450, 40).unwrap();
    pageops::set_lsn(&mut expect, end);
    assert_eq!(&out.unwrap()[..], &expect[..]);
}

#[test]
fn mask_by_page_type() {
    // Bucket page: line pointer flags and the dead-tuples hint hidden.
    let mut a = bucket_page(2, hp::LH_BUCKET_PAGE | hp::LH_PAGE_HAS_DEAD_TUPLES, 3);
    let mut b = bucket_page(2, hp::LH_BUCKET_PAGE, 3);
    let lp = pageops::item_id(&a, 2).unwrap();
    pageops::set_item_id(
        &mut a,
        2,
        ItemId {
            flags: LpFlags::Dead,
            ..lp
        },
    )
    .unwrap();
    mask(&mut a, 3);
    mask(&mut b, 3);
    assert_eq!(&a[..], &b[..]);

    // Unused page: everything after the header.
    let mut u = bucket_page(2, hp::LH_UNUSED_PAGE, 3);
    mask(&mut u, 3);
    assert!(u[12..16].iter().chain(&u[24..]).all(|&x| x == 0));

    // Metapage: contents kept.
    let mut m = meta_page(4);
    mask(&mut m, 0);
    assert_eq!(hp::get_u32(&m, hp::META_MAGIC), hp::HASH_MAGIC);

    // Insane special pointer: no panic.
    let mut g = [0xFFu8; BLCKSZ];
    mask(&mut g, 0);
}
