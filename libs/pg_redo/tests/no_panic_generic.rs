//! Property test: Generic records (contrib bloom's WAL) whose delta
//! fragments are random, truncated, out of the page or bit-flipped, on
//! real-looking pages (a bloom-like page with special space and items,
//! possibly damaged), random pages or no page, never make `pg_redo::apply`
//! panic; nor does `generic_mask` on random pages.

mod common;

use bytes::Bytes;
use pg_redo::pageops::{self, AddItemMode};
use pg_redo::{apply, generic, RedoRecord};
use postgres_ffi::rmgr::RM_GENERIC_ID;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};
use proptest::prelude::*;

fn bloomish_page(n: u8) -> [u8; BLCKSZ] {
    let mut p = [0u8; BLCKSZ];
    pageops::page_init(&mut p, 16).unwrap();
    for k in 0..n {
        let _ = pageops::page_add_item(&mut p, &[k; 40], 0, AddItemMode::default());
    }
    pageops::set_lsn(&mut p, Lsn(0x0100_0000));
    p
}

/// A fragment: offset biased to the header, the line pointers and the
/// tuple area; length biased small.
fn fragment() -> impl Strategy<Value = (u16, Vec<u8>, Option<u16>)> {
    (
        prop_oneof![2 => 0u16..64, 2 => 8000u16..8192, 1 => any::<u16>()],
        prop::collection::vec(any::<u8>(), 0..48),
        prop::option::weighted(0.1, any::<u16>()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    #[test]
    fn generic_apply_never_panics(
        blocks in prop::collection::vec(
            (prop_oneof![3 => 0u32..4, 1 => any::<u32>()],
             prop::collection::vec(fragment(), 0..5),
             prop::option::weighted(0.1, any::<prop::sample::Index>()),
             prop::bool::weighted(0.05),
             prop::option::weighted(0.15, any::<bool>())),
            1..6),
        info in prop_oneof![8 => Just(0u8), 1 => (0u8..16).prop_map(|n| n << 4)],
        base in prop_oneof![1 => Just(None), 6 => (0u8..30).prop_map(Some), 1 => Just(Some(255))],
        flips in prop::collection::vec((0usize..BLCKSZ, any::<u8>()), 0..3),
        random_page in prop::collection::vec(any::<u8>(), BLCKSZ..=BLCKSZ),
        pick in any::<prop::sample::Index>(),
        checksums in any::<bool>(),
    ) {
        let mut rec = RecordBuilder::new(RM_GENERIC_ID, info);
        for (i, (blkno, frags, cut, will_init, image)) in blocks.iter().enumerate() {
            let mut delta = Vec::new();
            for (off, bytes, len_override) in frags {
                delta.extend_from_slice(&off.to_le_bytes());
                let len = len_override.unwrap_or(bytes.len() as u16);
                delta.extend_from_slice(&len.to_le_bytes());
                delta.extend_from_slice(bytes);
            }
            if let Some(at) = cut {
                if !delta.is_empty() {
                    delta.truncate(at.index(delta.len()));
                }
            }
            let mut spec = BlockSpec::new(i as u8, common::REL, 0, *blkno)
                .with_data(Bytes::from(delta));
            if *will_init {
                spec = spec.will_init();
            }
            if let Some(apply_img) = image {
                spec = spec.with_image(ImageSpec::from_page(
                    &bloomish_page(3), true, *apply_img, ImageCompression::None,
                ));
            }
            rec = rec.block(spec);
        }
        let block_id = pick.index(blocks.len()) as u8;
        let lsn = Lsn(0x0200_0000);
        let bytes = rec.encode(Lsn(0x0100_0000));
        let end = Lsn(lsn.0 + bytes.len() as u64).align();
        let stored = RedoRecord::wal_bytes(lsn, end, bytes, block_id);
        let blkno = blocks[block_id as usize].0;
        let target = common::target(0, blkno, checksums);
        let base = base.map(|n| {
            let mut p = if n == 255 { random_page.clone() } else { bloomish_page(n).to_vec() };
            for &(at, x) in &flips {
                p[at] ^= x;
            }
            p
        });
        if let Ok(page) = apply(&target, base.as_deref(), std::slice::from_ref(&stored)) {
            let mut m = *page;
            generic::mask(&mut m, blkno);
        }
    }

    #[test]
    fn generic_mask_never_panics(
        page in prop::collection::vec(any::<u8>(), BLCKSZ..=BLCKSZ),
        blkno in any::<u32>(),
    ) {
        let mut p = [0u8; BLCKSZ];
        p.copy_from_slice(&page);
        generic::mask(&mut p, blkno);
    }
}
