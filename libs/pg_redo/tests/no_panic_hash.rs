//! Property tests for the Hash redo: random and corrupted records of every
//! Hash record type, on real-looking hash pages (metapage, bitmap, bucket
//! and overflow pages, freed pages; possibly bit-flipped), random bytes or
//! no page, never make `pg_redo::apply` panic — failures are typed errors.
//! `hash_mask` is run on random pages too.
//!
//! Main data is shaped like the record's C struct (right length, biased
//! small field values) most of the time, and random or truncated otherwise;
//! block data is a mix of offset arrays, u32 values and index tuples, so
//! the routines get past their length checks and into the page edits.

mod common;

use bytes::Bytes;
use pg_redo::hash::page as hp;
use pg_redo::pageops::{self, AddItemMode};
use pg_redo::{apply, ClusterSettings, RedoRecord, RedoTarget};
use postgres_ffi::rmgr::RM_HASH_ID;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};
use proptest::prelude::*;

fn biased_byte() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0u8..4, 2 => 0u8..40, 3 => any::<u8>()]
}

fn biased_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(biased_byte(), 0..max)
}

/// sizeof the main-data struct of each record type (SPLIT_PAGE and
/// SPLIT_CLEANUP have none).
fn main_size(info: u8) -> usize {
    match info >> 4 {
        0x0 => 14,
        0x1 | 0x2 => 2,
        0x3 => 3,
        0x4 => 9,
        0x6 => 4,
        0x7 => 3,
        0x8 => 12,
        0x9 => 2,
        0xB => 8,
        0xC => 8,
        _ => 0,
    }
}

#[derive(Debug, Clone)]
enum Data {
    Offsets(Vec<u16>),
    U32s(Vec<u32>),
    /// An offset array for `n` tuples, then index tuples of `len` bytes.
    Tuples(Vec<u16>, Vec<u16>),
    Raw(Vec<u8>),
}

fn data_strategy() -> impl Strategy<Value = Data> {
    prop_oneof![
        2 => prop::collection::vec(0u16..12, 0..6).prop_map(Data::Offsets),
        2 => prop_oneof![3 => Just(1usize), 1 => 0usize..4]
            .prop_flat_map(|n| prop::collection::vec(prop_oneof![0u32..40, any::<u32>()], n))
            .prop_map(Data::U32s),
        3 => (1usize..4).prop_flat_map(|n| (
            prop::collection::vec(0u16..6, n),
            prop::collection::vec(prop_oneof![4 => Just(16u16), 1 => 0u16..64, 1 => any::<u16>()], n),
        ))
            .prop_map(|(o, t)| Data::Tuples(o, t)),
        1 => biased_bytes(64).prop_map(Data::Raw),
    ]
}

fn data_bytes(d: &Data) -> Vec<u8> {
    match d {
        Data::Offsets(o) => o.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::U32s(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Tuples(offs, lens) => {
            let mut b: Vec<u8> = offs.iter().flat_map(|x| x.to_le_bytes()).collect();
            for &len in lens {
                let mut t = vec![0u8; 16];
                t[6..8].copy_from_slice(&len.to_le_bytes());
                t[8..12].copy_from_slice(&0xABCDu32.to_le_bytes());
                t.resize(postgres_ffi::maxalign((len & 0x1FFF) as usize).min(96), 0);
                b.extend_from_slice(&t);
            }
            b
        }
        Data::Raw(r) => r.clone(),
    }
}

#[derive(Debug, Clone)]
struct Blk {
    present: bool,
    blkno: u32,
    will_init: Option<bool>,
    data: Data,
    /// (apply, page kind) of a full-page image.
    image: Option<(bool, u8)>,
}

fn blk_strategy() -> impl Strategy<Value = Blk> {
    (
        prop::bool::weighted(0.8),
        0u32..8,
        prop::option::weighted(0.1, any::<bool>()),
        data_strategy(),
        prop::option::weighted(0.15, (prop::bool::weighted(0.7), 0u8..6)),
    )
        .prop_map(|(present, blkno, will_init, data, image)| Blk {
            present,
            blkno,
            will_init,
            data,
            image,
        })
}

/// Real-looking hash pages: 0 metapage, 1 bitmap, 2 bucket page with
/// tuples, 3 overflow page, 4 freed page, 5 a heap page.
fn hash_page(kind: u8, ntuples: u16) -> Box<[u8; BLCKSZ]> {
    let mut p = Box::new([0u8; BLCKSZ]);
    match kind {
        0 => {
            hp::init_meta_page(&mut p, 4, 450, 40).unwrap();
            hp::put_u32(&mut p, hp::META_NMAPS, 1);
            hp::put_u32(&mut p, hp::mapp_offset(0).unwrap(), 5);
        }
        1 => hp::init_bitmap_page(&mut p, 4096).unwrap(),
        2 | 3 => {
            let flag = if kind == 2 {
                hp::LH_BUCKET_PAGE
            } else {
                hp::LH_OVERFLOW_PAGE
            };
            hp::init_bucket_page(&mut p, 3, 1, flag).unwrap();
            for i in 0..ntuples {
                let mut t = [0u8; 16];
                t[6..8].copy_from_slice(&16u16.to_le_bytes());
                t[8..12].copy_from_slice(&(i as u32 * 7).to_le_bytes());
                let _ = pageops::page_add_item(&mut p, &t, 0, AddItemMode::default());
            }
        }
        4 => hp::init_unused_page(&mut p).unwrap(),
        _ => return common::heap_page(ntuples.min(10), 0).0,
    }
    p
}

#[derive(Debug, Clone)]
enum Base {
    None,
    Hash(u8, u16, Vec<(usize, u8)>),
    Random(Vec<u8>),
}

fn base_strategy() -> impl Strategy<Value = Base> {
    prop_oneof![
        1 => Just(Base::None),
        8 => (0u8..6, 0u16..12, prop::collection::vec((0usize..BLCKSZ, any::<u8>()), 0..3))
            .prop_map(|(k, n, f)| Base::Hash(k, n, f)),
        1 => prop::collection::vec(biased_byte(), BLCKSZ..=BLCKSZ).prop_map(Base::Random),
    ]
}

fn base_bytes(b: &Base) -> Option<Vec<u8>> {
    match b {
        Base::None => None,
        Base::Hash(k, n, flips) => {
            let mut p = hash_page(*k, *n).to_vec();
            for &(at, x) in flips {
                p[at] ^= x;
            }
            Some(p)
        }
        Base::Random(v) => Some(v.clone()),
    }
}

/// Blocks each record type writes WILL_INIT.
fn will_init(info: u8, id: u8) -> bool {
    matches!(
        (info, id),
        (0x00, 0) | (0x10, 0) | (0x30, 0) | (0x30, 3) | (0x40, 1)
    )
}

fn build(info: u8, main: &[u8], blocks: &[Blk]) -> RecordBuilder {
    let mut r = RecordBuilder::new(RM_HASH_ID, info).main_data(Bytes::copy_from_slice(main));
    for (i, b) in blocks.iter().enumerate() {
        if !b.present {
            continue;
        }
        let id = i as u8;
        let mut spec =
            BlockSpec::new(id, common::REL, 0, b.blkno).with_data(Bytes::from(data_bytes(&b.data)));
        if b.will_init.unwrap_or_else(|| will_init(info, id)) {
            spec = spec.will_init();
        }
        if let Some((apply, kind)) = b.image {
            spec = spec.with_image(ImageSpec::from_page(
                &hash_page(kind, 3),
                true,
                apply,
                ImageCompression::None,
            ));
        }
        r = r.block(spec);
    }
    r
}

fn info_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![12 => (0u8..13).prop_map(|i| i << 4), 1 => any::<u8>().prop_map(|i| i & 0xF0)]
}

fn main_strategy() -> impl Strategy<Value = (Vec<u8>, i8)> {
    // Field bytes, and a length adjustment (negative truncates).
    (biased_bytes(40), prop_oneof![6 => Just(0i8), 1 => -4i8..8])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn hash_apply_never_panics(
        info in info_strategy(),
        (main_raw, adjust) in main_strategy(),
        mut bools in prop::collection::vec(prop::bool::weighted(0.4), 2),
        blocks in prop::collection::vec(blk_strategy(), 1..8),
        target_id in 0u8..8,
        base in base_strategy(),
        checksums in any::<bool>(),
        flip in prop::option::weighted(0.1, (any::<prop::sample::Index>(), 1u8..=255)),
    ) {
        let size = (main_size(info) as isize + adjust as isize).max(0) as usize;
        let mut main = main_raw;
        main.resize(size, 0);
        // The trailing bools of MOVE/SQUEEZE/DELETE as 0/1 most of the time.
        let nbools = match info { 0x70 => 1, 0x80 | 0x90 => 2, _ => 0 };
        if nbools > 0 && size == main_size(info) {
            for (i, b) in bools.drain(..nbools).enumerate() {
                main[size - nbools + i] = b as u8;
            }
        }
        let rec = build(info, &main, &blocks);
        let mut bytes = rec.encode(Lsn(0x0100_0000)).to_vec();
        if let Some((at, x)) = flip {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let lsn = Lsn(0x0200_0000);
        let end = Lsn(lsn.0 + bytes.len() as u64).align();
        let id = target_id % blocks.len() as u8;
        let target = RedoTarget {
            rel: common::REL,
            forknum: 0,
            blkno: blocks[id as usize].blkno,
            settings: ClusterSettings { data_checksums: checksums, wal_log_hints: false },
        };
        let stored = RedoRecord::wal_bytes(lsn, end, Bytes::from(bytes), id);
        let base = base_bytes(&base);
        if let Ok(mut page) = apply(&target, base.as_deref(), std::slice::from_ref(&stored)) {
            pg_redo::hash::mask(&mut page, target.blkno);
        }
    }

    #[test]
    fn hash_mask_never_panics(
        page in prop::collection::vec(biased_byte(), BLCKSZ..=BLCKSZ),
        special in prop_oneof![Just(8176u16), 0u16..24, 8170u16..8200, any::<u16>()],
        flag in any::<u16>(),
        lower in prop_oneof![Just(40u16), any::<u16>()],
    ) {
        let mut p = [0u8; BLCKSZ];
        p.copy_from_slice(&page);
        p[12..14].copy_from_slice(&lower.to_le_bytes());
        p[14..16].copy_from_slice(&8000u16.to_le_bytes());
        p[16..18].copy_from_slice(&special.to_le_bytes());
        let at = special as usize + 12;
        if at + 2 <= BLCKSZ {
            p[at..at + 2].copy_from_slice(&flag.to_le_bytes());
        }
        pg_redo::hash::mask(&mut p, 1);
    }
}
