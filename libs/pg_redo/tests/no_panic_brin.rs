//! Property test: BRIN records (every op code, with and without INIT_PAGE)
//! with random or corrupted main data, block data and block layout, applied
//! to real-looking BRIN pages (metapage, revmap and regular pages, possibly
//! bit-flipped), random pages or no page, never make `pg_redo::apply`
//! panic; nor does `brin_mask` on random pages.
//!
//! Fields are biased towards small values (offsets that exist, ranges of a
//! few pages, tuples that start with the logged heap block) so redo gets
//! past its first checks before the damage starts.

mod common;

use bytes::Bytes;
use pg_redo::pageops::{self, AddItemMode};
use pg_redo::{apply, brin, RedoRecord};
use postgres_ffi::rmgr::RM_BRIN_ID;
use postgres_ffi::v15::info::brin as info;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};
use proptest::prelude::*;

fn small_u32() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0u32..8, 2 => 0u32..5000, 1 => any::<u32>()]
}

fn small_u16() -> impl Strategy<Value = u16> {
    prop_oneof![6 => 0u16..8, 1 => any::<u16>()]
}

#[derive(Debug, Clone)]
enum Base {
    None,
    /// 0 meta, 1 revmap, 2 regular with `n` tuples.
    Brin {
        kind: u8,
        n: u8,
        flips: Vec<(usize, u8)>,
    },
    Random(Vec<u8>),
}

fn brin_page(kind: u8, n: u8) -> [u8; BLCKSZ] {
    let mut p = [0u8; BLCKSZ];
    pageops::page_init(&mut p, 8).unwrap();
    let ty = [
        brin::BRIN_PAGETYPE_META,
        brin::BRIN_PAGETYPE_REVMAP,
        brin::BRIN_PAGETYPE_REGULAR,
    ][kind as usize % 3];
    p[BLCKSZ - 2..].copy_from_slice(&ty.to_le_bytes());
    match kind % 3 {
        0 => {
            p[24..28].copy_from_slice(&brin::BRIN_META_MAGIC.to_le_bytes());
            p[28..32].copy_from_slice(&1u32.to_le_bytes());
            p[32..36].copy_from_slice(&4u32.to_le_bytes());
            p[36..40].copy_from_slice(&1u32.to_le_bytes());
            pageops::set_lower(&mut p, 40);
        }
        1 => {
            for i in 0..n as usize {
                p[24 + 6 * i..30 + 6 * i].copy_from_slice(&[0, 0, 0, 2, 0, i as u8 + 1]);
            }
        }
        _ => {
            for k in 0..n {
                let mut t = vec![k; 16 + (k as usize % 4) * 8];
                t[0..4].copy_from_slice(&(k as u32 * 4).to_le_bytes());
                let _ = pageops::page_add_item(&mut p, &t, 0, AddItemMode::default());
            }
        }
    }
    pageops::set_lsn(&mut p, Lsn(0x0100_0000));
    p
}

fn base_strategy() -> impl Strategy<Value = Base> {
    prop_oneof![
        1 => Just(Base::None),
        8 => (0u8..3, 0u8..30, prop::collection::vec((0usize..BLCKSZ, any::<u8>()), 0..3))
            .prop_map(|(kind, n, flips)| Base::Brin { kind, n, flips }),
        1 => prop::collection::vec(prop_oneof![0u8..4, any::<u8>()], BLCKSZ..=BLCKSZ)
            .prop_map(Base::Random),
    ]
}

fn base_bytes(b: &Base) -> Option<Vec<u8>> {
    match b {
        Base::None => None,
        Base::Brin { kind, n, flips } => {
            let mut p = brin_page(*kind, *n).to_vec();
            for &(at, x) in flips {
                p[at] ^= x;
            }
            Some(p)
        }
        Base::Random(v) => Some(v.clone()),
    }
}

/// Main data of `op` from field values: (pagesPerRange or target, heapBlk,
/// offnum, old offnum).
fn main_data(op: u8, ppr: u32, heap_blk: u32, off: u16, old: u16) -> Vec<u8> {
    let insert = |m: &mut Vec<u8>| {
        m.extend_from_slice(&heap_blk.to_le_bytes());
        m.extend_from_slice(&ppr.to_le_bytes());
        m.extend_from_slice(&off.to_le_bytes());
    };
    let mut m = Vec::new();
    match op & info::OPMASK {
        info::CREATE_INDEX => {
            m.extend_from_slice(&ppr.to_le_bytes());
            m.extend_from_slice(&off.to_le_bytes());
        }
        info::INSERT => insert(&mut m),
        info::UPDATE => {
            m.extend_from_slice(&old.to_le_bytes());
            m.extend_from_slice(&[0, 0]);
            insert(&mut m);
        }
        info::SAMEPAGE_UPDATE => m.extend_from_slice(&off.to_le_bytes()),
        info::REVMAP_EXTEND => m.extend_from_slice(&ppr.to_le_bytes()),
        info::DESUMMARIZE => {
            m.extend_from_slice(&ppr.to_le_bytes());
            m.extend_from_slice(&heap_blk.to_le_bytes());
            m.extend_from_slice(&off.to_le_bytes());
        }
        _ => m.extend_from_slice(&[1, 2, 3]),
    }
    m
}

/// Whether block `i` of `op` is WILL_INIT in records PostgreSQL writes.
fn will_init_by_convention(op: u8, i: usize) -> bool {
    match op & info::OPMASK {
        info::CREATE_INDEX => i == 0,
        info::INSERT | info::UPDATE => i == 0 && op & info::INIT_PAGE != 0,
        info::REVMAP_EXTEND => i == 1,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    #[test]
    fn brin_apply_never_panics(
        op in prop_oneof![8 => (0u8..6, any::<bool>()).prop_map(|(o, i)| o << 4 | if i { 0x80 } else { 0 }),
                          1 => (0u8..16).prop_map(|n| n << 4)],
        ppr in small_u32(),
        heap_blk in small_u32(),
        off in small_u16(),
        old in small_u16(),
        blocks in prop::collection::vec(
            (prop_oneof![3 => 0u32..4, 1 => any::<u32>()], prop::bool::weighted(0.1),
             prop::collection::vec(any::<u8>(), 0..80), prop::bool::weighted(0.7),
             prop::option::weighted(0.1, any::<bool>())),
            1..4),
        base in base_strategy(),
        pick in any::<prop::sample::Index>(),
        checksums in any::<bool>(),
        main_flip in prop::option::weighted(0.2, (any::<prop::sample::Index>(), 1u8..=255)),
    ) {
        let mut md = main_data(op, ppr, heap_blk, off, old);
        if let Some((at, v)) = main_flip {
            let i = at.index(md.len());
            md[i] ^= v;
        }
        let mut rec = RecordBuilder::new(RM_BRIN_ID, op).main_data(Bytes::from(md));
        for (i, (blkno, flip_init, body, tuple_like, image)) in blocks.iter().enumerate() {
            let mut data = body.clone();
            if *tuple_like {
                // A summary tuple starts with the range's first heap block.
                let mut t = heap_blk.to_le_bytes().to_vec();
                t.extend_from_slice(body);
                data = t;
            }
            let mut spec = BlockSpec::new(i as u8, common::REL, 0, *blkno)
                .with_data(Bytes::from(data));
            if will_init_by_convention(op, i) != *flip_init {
                spec = spec.will_init();
            }
            if let Some(apply_img) = image {
                let page = brin_page(i as u8, 4);
                spec = spec.with_image(ImageSpec::from_page(
                    &page, true, *apply_img, ImageCompression::None,
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
        let base = base_bytes(&base);
        if let Ok(page) = apply(&target, base.as_deref(), std::slice::from_ref(&stored)) {
            let again = [stored];
            let _ = apply(&target, Some(&page[..]), &again);
            let mut m = *page;
            brin::mask(&mut m, blkno);
        }
    }

    #[test]
    fn brin_mask_never_panics(
        page in prop::collection::vec(prop_oneof![0u8..4, any::<u8>()], BLCKSZ..=BLCKSZ),
        special in prop_oneof![Just(8184u16), 8180u16..8200, any::<u16>()],
        ty in prop_oneof![Just(brin::BRIN_PAGETYPE_META), Just(brin::BRIN_PAGETYPE_REGULAR), any::<u16>()],
        lower in prop_oneof![24u16..100, any::<u16>()],
        blkno in any::<u32>(),
    ) {
        let mut p = [0u8; BLCKSZ];
        p.copy_from_slice(&page);
        p[12..14].copy_from_slice(&lower.to_le_bytes());
        p[16..18].copy_from_slice(&special.to_le_bytes());
        p[BLCKSZ - 2..].copy_from_slice(&ty.to_le_bytes());
        brin::mask(&mut p, blkno);
    }
}
