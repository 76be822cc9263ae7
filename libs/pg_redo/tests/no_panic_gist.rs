//! Property test: GiST records with random or corrupted main data, block
//! data and block layout, applied to real-looking GiST pages (leaf and
//! internal, possibly bit-flipped), random pages or no page, never make
//! `pg_redo::apply` panic; nor do the GiST masks on random pages.
//!
//! Records are built field by field from biased values (small offsets and
//! counts, tuple sizes that often match the bytes that follow) so that redo
//! gets past the first checks, then optionally damaged.

mod common;

use bytes::Bytes;
use pg_redo::pageops::{self, AddItemMode};
use pg_redo::{apply, gist, RedoRecord};
use postgres_ffi::rmgr::RM_GIST_ID;
use postgres_ffi::v15::info::gist as info;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};
use proptest::prelude::*;

fn small() -> impl Strategy<Value = u16> {
    prop_oneof![6 => 0u16..8, 2 => 0u16..300, 1 => any::<u16>()]
}

/// An index tuple: 6-byte TID, t_info with a size that usually is `len`.
fn tuple_bytes(len: usize, size_override: Option<u16>, fill: u8) -> Vec<u8> {
    let len = len.max(8);
    let mut t = vec![fill; len];
    let size = size_override.unwrap_or(len as u16);
    t[6..8].copy_from_slice(&size.to_le_bytes());
    t
}

fn tuples() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop_oneof![8..64usize, 8..2100usize],
            prop::option::weighted(0.1, any::<u16>()),
            any::<u8>(),
        ),
        0..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .flat_map(|(len, o, fill)| tuple_bytes(len, o, fill))
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Base {
    None,
    Gist {
        leaf: bool,
        n: u8,
        flips: Vec<(usize, u8)>,
    },
    Random(Vec<u8>),
}

fn gist_page(leaf: bool, n: u8) -> [u8; BLCKSZ] {
    let mut p = [0u8; BLCKSZ];
    pageops::page_init(&mut p, 16).unwrap();
    let at = BLCKSZ - 16;
    p[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    p[at + 12..at + 14].copy_from_slice(&(if leaf { 1u16 } else { 0 }).to_le_bytes());
    p[at + 14..at + 16].copy_from_slice(&0xFF81u16.to_le_bytes());
    for k in 0..n {
        let t = tuple_bytes(16 + (k as usize % 5) * 8, None, k);
        let _ = pageops::page_add_item(&mut p, &t, 0, AddItemMode::default());
    }
    pageops::set_lsn(&mut p, Lsn(0x0100_0000));
    p
}

fn base_strategy() -> impl Strategy<Value = Base> {
    prop_oneof![
        1 => Just(Base::None),
        8 => (any::<bool>(), 0u8..40, prop::collection::vec((0usize..BLCKSZ, any::<u8>()), 0..3))
            .prop_map(|(leaf, n, flips)| Base::Gist { leaf, n, flips }),
        1 => prop::collection::vec(prop_oneof![0u8..4, any::<u8>()], BLCKSZ..=BLCKSZ)
            .prop_map(Base::Random),
    ]
}

fn base_bytes(b: &Base) -> Option<Vec<u8>> {
    match b {
        Base::None => None,
        Base::Gist { leaf, n, flips } => {
            let mut p = gist_page(*leaf, *n).to_vec();
            for &(at, x) in flips {
                p[at] ^= x;
            }
            Some(p)
        }
        Base::Random(v) => Some(v.clone()),
    }
}

/// Main data of record type `op` from random field values.
fn main_data(op: u8, a: u16, b: u16, x: u64, offs: &[u16]) -> Vec<u8> {
    match op {
        info::PAGE_UPDATE => [a.to_le_bytes(), b.to_le_bytes()].concat(),
        info::DELETE => {
            let mut m = (x as u32).to_le_bytes().to_vec();
            m.extend_from_slice(&a.to_le_bytes());
            m.extend(offs.iter().flat_map(|o| o.to_le_bytes()));
            m
        }
        info::PAGE_SPLIT => {
            let mut m = vec![0u8; 24];
            m[0..4].copy_from_slice(&(x as u32).to_le_bytes());
            m[8..16].copy_from_slice(&x.to_le_bytes());
            m[16] = (a & 1) as u8;
            m[18..20].copy_from_slice(&(b % 5).to_le_bytes());
            m[20] = (a >> 1 & 1) as u8;
            m
        }
        info::PAGE_DELETE => {
            let mut m = x.to_le_bytes().to_vec();
            m.extend_from_slice(&a.to_le_bytes());
            m
        }
        _ => vec![0u8; 24],
    }
}

#[derive(Debug, Clone)]
struct Blk {
    blkno: u32,
    /// Deviate from the record type's WILL_INIT convention.
    will_init: bool,
    offs: Vec<u16>,
    tuples: Vec<u8>,
    image: Option<bool>,
}

fn blk_strategy() -> impl Strategy<Value = Blk> {
    (
        prop_oneof![3 => 0u32..4, 1 => any::<u32>()],
        prop::bool::weighted(0.1),
        prop::collection::vec(small(), 0..4),
        tuples(),
        prop::option::weighted(0.1, any::<bool>()),
    )
        .prop_map(|(blkno, will_init, offs, tuples, image)| Blk {
            blkno,
            will_init,
            offs,
            tuples,
            image,
        })
}

fn op_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(info::PAGE_UPDATE),
        2 => Just(info::DELETE),
        3 => Just(info::PAGE_SPLIT),
        2 => Just(info::PAGE_DELETE),
        1 => Just(info::PAGE_REUSE),
        1 => Just(info::ASSIGN_LSN),
        1 => (0u8..16).prop_map(|n| n << 4),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    #[test]
    fn gist_apply_never_panics(
        op in op_strategy(),
        a in small(),
        b in small(),
        x in prop_oneof![Just(0u64), 0u64..10, any::<u64>()],
        del_offs in prop::collection::vec(small(), 0..5),
        blocks in prop_oneof![1 => prop::collection::vec(blk_strategy(), 0..4),
                              6 => prop::collection::vec(blk_strategy(), 1..4)],
        base in base_strategy(),
        pick in any::<prop::sample::Index>(),
        checksums in any::<bool>(),
        main_flip in prop::option::weighted(0.2, (any::<prop::sample::Index>(), 1u8..=255)),
        data_flip in prop::option::weighted(0.2, (any::<prop::sample::Index>(), 1u8..=255)),
        split_count in prop::option::weighted(0.7, 0i32..6),
    ) {
        let mut md = main_data(op, a, b, x, &del_offs);
        if let Some((at, v)) = main_flip {
            if !md.is_empty() {
                let i = at.index(md.len());
                md[i] ^= v;
            }
        }
        let mut rec = RecordBuilder::new(RM_GIST_ID, op).main_data(Bytes::from(md));
        for (i, blk) in blocks.iter().enumerate() {
            let mut data: Vec<u8> = if op == info::PAGE_SPLIT && i > 0 {
                split_count.unwrap_or(a as i32).to_le_bytes().to_vec()
            } else {
                blk.offs.iter().flat_map(|o| o.to_le_bytes()).collect()
            };
            data.extend_from_slice(&blk.tuples);
            if let Some((at, v)) = data_flip {
                if !data.is_empty() {
                    let j = at.index(data.len());
                    data[j] ^= v;
                }
            }
            let mut spec = BlockSpec::new(i as u8, common::REL, 0, blk.blkno)
                .with_data(Bytes::from(data));
            // Split pages are WILL_INIT; `will_init` flips the convention.
            if blk.will_init != (op == info::PAGE_SPLIT && i > 0) {
                spec = spec.will_init();
            }
            if let Some(apply_img) = blk.image {
                let page = gist_page(i % 2 == 0, 3);
                spec = spec.with_image(ImageSpec::from_page(
                    &page, true, apply_img, ImageCompression::None,
                ));
            }
            rec = rec.block(spec);
        }
        let block_id = if blocks.is_empty() { 0 } else { pick.index(blocks.len()) as u8 };
        let lsn = Lsn(0x0200_0000);
        let bytes = rec.encode(Lsn(0x0100_0000));
        let end = Lsn(lsn.0 + bytes.len() as u64).align();
        let stored = RedoRecord::wal_bytes(lsn, end, bytes, block_id);
        let blkno = blocks.get(block_id as usize).map_or(0, |b| b.blkno);
        let target = common::target(0, blkno, checksums);
        let base = base_bytes(&base);
        if let Ok(page) = apply(&target, base.as_deref(), std::slice::from_ref(&stored)) {
            // The result is a page redo can go on from.
            let again = [stored];
            let _ = apply(&target, Some(&page[..]), &again);
            let mut m = *page;
            gist::comparison_mask(&mut m, blkno);
        }
    }

    #[test]
    fn gist_masks_never_panic(
        page in prop::collection::vec(prop_oneof![0u8..4, any::<u8>()], BLCKSZ..=BLCKSZ),
        special in prop_oneof![Just(8176u16), any::<u16>()],
        lower in prop_oneof![24u16..100, any::<u16>()],
        upper in prop_oneof![4000u16..8176, any::<u16>()],
        blkno in any::<u32>(),
    ) {
        let mut p = [0u8; BLCKSZ];
        p.copy_from_slice(&page);
        p[12..14].copy_from_slice(&lower.to_le_bytes());
        p[14..16].copy_from_slice(&upper.to_le_bytes());
        p[16..18].copy_from_slice(&special.to_le_bytes());
        let mut q = p;
        gist::mask(&mut p, blkno);
        gist::comparison_mask(&mut q, blkno);
    }
}
