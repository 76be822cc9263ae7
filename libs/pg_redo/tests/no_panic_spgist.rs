//! Property tests for the SP-GiST redo: records of every SPGist type, with
//! plausible but random headers, offset arrays and tuples (then possibly
//! bit-flipped, truncated or extended), applied to real-looking SP-GiST
//! pages (leaf and inner tuples, placeholders, redirects; possibly
//! corrupted), random pages or no page, never make the library panic —
//! failures are typed errors. `spg_mask` runs on random pages too.

mod common;

use bytes::Bytes;
use pg_redo::pageops::{self, AddItemMode};
use pg_redo::{apply, mask, RedoRecord};
use postgres_ffi::rmgr::RM_SPGIST_ID;
use postgres_ffi::v15::info::spgist;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};
use proptest::prelude::*;

const TYPES: [u8; 8] = [
    spgist::ADD_LEAF,
    spgist::MOVE_LEAFS,
    spgist::ADD_NODE,
    spgist::SPLIT_TUPLE,
    spgist::PICKSPLIT,
    spgist::VACUUM_LEAF,
    spgist::VACUUM_ROOT,
    spgist::VACUUM_REDIRECT,
];

fn small() -> impl Strategy<Value = u16> {
    prop_oneof![6 => 0u16..8, 2 => 0u16..40, 1 => any::<u16>()]
}

fn biased_byte() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0u8..4, 2 => 0u8..40, 3 => any::<u8>()]
}

/// A tuple as SP-GiST stores it: a leaf or dead tuple (state + 30-bit
/// size, t_info, TID) or an inner tuple (state, nNodes, prefix size, u16
/// size, nodes), with sizes that are usually right.
#[derive(Debug, Clone)]
struct TupleSpec {
    inner: bool,
    state: u8,
    len: u8,
    nodes: u8,
    prefix: u8,
    next: u16,
    lie: Option<u16>,
    fill: u8,
}

fn tuple_spec() -> impl Strategy<Value = TupleSpec> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(0u8), 1 => 0u8..4],
        prop_oneof![Just(16u8), Just(24), Just(32), 0u8..64],
        0u8..5,
        prop_oneof![3 => Just(0u8), 1 => Just(8), 1 => 0u8..20],
        small(),
        prop::option::weighted(0.1, any::<u16>()),
        any::<u8>(),
    )
        .prop_map(
            |(inner, state, len, nodes, prefix, next, lie, fill)| TupleSpec {
                inner,
                state,
                len,
                nodes,
                prefix,
                next,
                lie,
                fill,
            },
        )
}

fn tuple_bytes(t: &TupleSpec) -> Vec<u8> {
    if t.inner {
        let size = 8 + t.prefix as usize + 8 * t.nodes as usize;
        let mut v = vec![t.fill; size];
        let word = (t.state as u32 & 3) | ((t.nodes as u32) << 3) | ((t.prefix as u32) << 16);
        v[0..4].copy_from_slice(&word.to_le_bytes());
        v[4..6].copy_from_slice(&t.lie.unwrap_or(size as u16).to_le_bytes());
        for i in 0..t.nodes as usize {
            let at = 8 + t.prefix as usize + 8 * i;
            v[at..at + 6].copy_from_slice(&[0, 0, 0, 5, 1, 0]);
            v[at + 6..at + 8].copy_from_slice(&8u16.to_le_bytes());
        }
        v
    } else {
        let size = (t.len as usize).max(12);
        let mut v = vec![t.fill; size];
        let claimed = t.lie.map_or(size as u32, u32::from);
        v[0..4].copy_from_slice(&((t.state as u32 & 3) | (claimed << 2)).to_le_bytes());
        v[4..6].copy_from_slice(&t.next.to_le_bytes());
        v
    }
}

/// The random parts a record's main data is assembled from.
#[derive(Debug, Clone)]
struct MainParts {
    flags: [bool; 8],
    counts: [u16; 4],
    fields: [u16; 6],
    parent_blk: i8,
    xid: u32,
    offsets: Vec<u16>,
    select: Vec<u8>,
    tuples: Vec<TupleSpec>,
}

fn main_parts() -> impl Strategy<Value = MainParts> {
    (
        prop::array::uniform8(any::<bool>()),
        prop::array::uniform4(prop_oneof![4 => 0u16..4, 1 => 0u16..12]),
        prop::array::uniform6(small()),
        prop_oneof![Just(-1i8), 0i8..3, any::<i8>()],
        prop_oneof![Just(0u32), 3u32..1000],
        prop::collection::vec(prop_oneof![5 => 1u16..8, 1 => small()], 0..40),
        prop::collection::vec(0u8..2, 0..12),
        prop::collection::vec(tuple_spec(), 0..14),
    )
        .prop_map(
            |(flags, counts, fields, parent_blk, xid, offsets, select, tuples)| MainParts {
                flags,
                counts,
                fields,
                parent_blk,
                xid,
                offsets,
                select,
                tuples,
            },
        )
}

fn put16(v: &mut [u8], at: usize, x: u16) {
    v[at..at + 2].copy_from_slice(&x.to_le_bytes());
}

fn state(v: &mut [u8], at: usize, p: &MainParts) {
    v[at..at + 4].copy_from_slice(&p.xid.to_le_bytes());
    v[at + 4] = p.flags[7] as u8;
}

/// Main data laid out as the record type's struct says, with its counts
/// mostly consistent with the arrays and tuples that follow.
fn main_data(info: u8, p: &MainParts) -> Vec<u8> {
    let f = |i: usize| p.flags[i] as u8;
    let offs = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| p.offsets.get(i).copied().unwrap_or(1).to_le_bytes())
            .collect()
    };
    let tuples = |n: usize, inner_first: bool| -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut t = p.tuples.get(i).cloned().unwrap_or(TupleSpec {
                inner: false,
                state: 0,
                len: 16,
                nodes: 0,
                prefix: 0,
                next: 0,
                lie: None,
                fill: 0,
            });
            t.inner = inner_first && i == 0;
            out.extend(tuple_bytes(&t));
        }
        out
    };
    let [c0, c1, c2, c3] = p.counts.map(|c| c as usize);
    match info {
        spgist::ADD_LEAF => {
            let mut v = vec![0u8; 10];
            v[0] = f(0);
            v[1] = f(1);
            for i in 0..4 {
                put16(&mut v, 2 + 2 * i, p.fields[i]);
            }
            v.extend(tuples(1, false));
            v
        }
        spgist::MOVE_LEAFS => {
            let mut v = vec![0u8; 20];
            put16(&mut v, 0, c0 as u16);
            v[2] = f(0);
            v[3] = f(1);
            v[4] = f(2);
            put16(&mut v, 6, p.fields[0]);
            put16(&mut v, 8, p.fields[1]);
            state(&mut v, 12, p);
            let n_insert = if p.flags[1] { 1 } else { c0 + 1 };
            v.extend(offs(c0 + n_insert));
            v.extend(tuples(n_insert, false));
            v
        }
        spgist::ADD_NODE => {
            let mut v = vec![0u8; 20];
            put16(&mut v, 0, p.fields[0]);
            put16(&mut v, 2, p.fields[1]);
            v[4] = f(0);
            v[5] = p.parent_blk as u8;
            put16(&mut v, 6, p.fields[2]);
            put16(&mut v, 8, p.fields[3]);
            state(&mut v, 12, p);
            v.extend(tuples(1, true));
            v
        }
        spgist::SPLIT_TUPLE => {
            let mut v = vec![0u8; 6];
            put16(&mut v, 0, p.fields[0]);
            put16(&mut v, 2, p.fields[1]);
            v[4] = f(0);
            v[5] = f(1);
            let mut t = p.tuples.clone();
            t.iter_mut().for_each(|t| t.inner = true);
            for t in t.iter().take(2) {
                v.extend(tuple_bytes(t));
            }
            v
        }
        spgist::PICKSPLIT => {
            let mut v = vec![0u8; 28];
            v[0] = f(0);
            put16(&mut v, 2, c0 as u16);
            put16(&mut v, 4, c1 as u16);
            v[6] = f(1);
            v[7] = f(2);
            put16(&mut v, 8, p.fields[0]);
            v[10] = f(3);
            v[11] = f(4);
            v[12] = f(5);
            put16(&mut v, 14, p.fields[1]);
            put16(&mut v, 16, p.fields[2]);
            state(&mut v, 20, p);
            v.extend(offs(c0 + c1));
            v.extend((0..c1).map(|i| p.select.get(i).copied().unwrap_or(1)));
            v.extend(tuples(c1 + 1, true));
            v
        }
        spgist::VACUUM_LEAF => {
            let mut v = vec![0u8; 16];
            for (i, c) in p.counts.iter().enumerate() {
                put16(&mut v, 2 * i, *c);
            }
            state(&mut v, 8, p);
            v.extend(offs(c0 + c1 + 2 * c2 + 2 * c3));
            v
        }
        spgist::VACUUM_ROOT => {
            let mut v = vec![0u8; 12];
            put16(&mut v, 0, c0 as u16);
            state(&mut v, 4, p);
            v.extend(offs(c0));
            v
        }
        _ => {
            let mut v = vec![0u8; 8];
            put16(&mut v, 0, c0 as u16);
            put16(&mut v, 2, p.fields[0]);
            v[4..8].copy_from_slice(&p.xid.to_le_bytes());
            v.extend(offs(c0));
            v
        }
    }
}

#[derive(Debug, Clone)]
enum Base {
    None,
    Spg(u16, Vec<TupleSpec>, Vec<(usize, u8)>),
    Random(Vec<u8>),
}

fn base_strategy() -> impl Strategy<Value = Base> {
    prop_oneof![
        1 => Just(Base::None),
        8 => (
            prop_oneof![Just(4u16), Just(0), Just(8), Just(12), any::<u16>()],
            prop::collection::vec(tuple_spec(), 0..12),
            prop::collection::vec((0usize..BLCKSZ, any::<u8>()), 0..3),
        )
            .prop_map(|(f, t, flips)| Base::Spg(f, t, flips)),
        1 => prop::collection::vec(biased_byte(), BLCKSZ..=BLCKSZ).prop_map(Base::Random),
    ]
}

/// An SP-GiST page with the given flags and tuples (counters roughly
/// consistent with the dead tuples on it), then a few flipped bytes.
fn spg_page(flags: u16, tuples: &[TupleSpec], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut p = [0u8; BLCKSZ];
    pageops::page_init(&mut p, 8).unwrap();
    p[BLCKSZ - 8..BLCKSZ - 6].copy_from_slice(&flags.to_le_bytes());
    p[BLCKSZ - 2..].copy_from_slice(&0xFF82u16.to_le_bytes());
    let (mut redirects, mut placeholders) = (0u16, 0u16);
    for t in tuples {
        let mut t = t.clone();
        t.lie = None;
        if pageops::page_add_item(&mut p, &tuple_bytes(&t), 0, AddItemMode::default()).is_ok() {
            match t.state {
                1 => redirects += 1,
                3 => placeholders += 1,
                _ => {}
            }
        }
    }
    p[BLCKSZ - 6..BLCKSZ - 4].copy_from_slice(&redirects.to_le_bytes());
    p[BLCKSZ - 4..BLCKSZ - 2].copy_from_slice(&placeholders.to_le_bytes());
    pageops::set_lsn(&mut p, Lsn(0x10));
    for &(at, x) in flips {
        p[at] ^= x;
    }
    p.to_vec()
}

fn base_bytes(b: &Base) -> Option<Vec<u8>> {
    match b {
        Base::None => None,
        Base::Spg(flags, tuples, flips) => Some(spg_page(*flags, tuples, flips)),
        Base::Random(v) => Some(v.clone()),
    }
}

#[derive(Debug, Clone)]
struct BlockParts {
    blkno: u32,
    will_init: bool,
    image: Option<bool>,
}

fn blocks_strategy() -> impl Strategy<Value = Vec<Option<BlockParts>>> {
    prop::collection::vec(
        prop::option::weighted(
            0.8,
            (
                0u32..6,
                prop::bool::weighted(0.3),
                prop::option::weighted(0.1, any::<bool>()),
            )
                .prop_map(|(blkno, will_init, image)| BlockParts {
                    blkno,
                    will_init,
                    image,
                }),
        ),
        1..5,
    )
}

fn build(
    info: u8,
    main: Vec<u8>,
    blocks: &[Option<BlockParts>],
    base: &Option<Vec<u8>>,
) -> RecordBuilder {
    let mut r = RecordBuilder::new(RM_SPGIST_ID, info)
        .xid(900)
        .main_data(Bytes::from(main));
    for (i, b) in blocks.iter().enumerate() {
        let Some(b) = b else { continue };
        let mut spec = BlockSpec::new(i as u8, common::REL, 0, b.blkno);
        if b.will_init {
            spec = spec.will_init();
        }
        if let Some(apply) = b.image {
            let page: [u8; BLCKSZ] = base
                .as_deref()
                .and_then(|p| p.try_into().ok())
                .unwrap_or([0u8; BLCKSZ]);
            spec = spec.with_image(ImageSpec::from_page(
                &page,
                true,
                apply,
                ImageCompression::None,
            ));
        }
        r = r.block(spec);
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, .. ProptestConfig::default() })]

    #[test]
    fn spgist_redo_never_panics(
        kind in prop_oneof![8 => 0usize..8, 1 => Just(8usize)],
        raw_info in any::<u8>(),
        parts in main_parts(),
        blocks in blocks_strategy(),
        base in base_strategy(),
        edit in prop_oneof![
            4 => Just(None),
            1 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Some((0u8, i, x))),
            1 => any::<prop::sample::Index>().prop_map(|i| Some((1u8, i, 0))),
            1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, x)| Some((2u8, i, x))),
        ],
        checksums in any::<bool>(),
    ) {
        let info = TYPES.get(kind).copied().unwrap_or(raw_info & 0xF0);
        let mut main = main_data(info, &parts);
        match edit {
            Some((0, i, x)) if !main.is_empty() => {
                let at = i.index(main.len());
                main[at] ^= x;
            }
            Some((1, i, _)) => main.truncate(i.index(main.len() + 1)),
            Some((2, i, x)) => {
                let at = i.index(main.len() + 1);
                main.insert(at, x);
            }
            _ => {}
        }
        let base = base_bytes(&base);
        let rec = build(info, main, &blocks, &base);
        let bytes = rec.encode(Lsn(0x0100_0000));
        let lsn = Lsn(0x0200_0000);
        let end = Lsn(lsn.0 + bytes.len() as u64).align();
        for (id, b) in blocks.iter().enumerate() {
            let Some(b) = b else { continue };
            let stored = RedoRecord::wal_bytes(lsn, end, bytes.clone(), id as u8);
            let target = common::target(0, b.blkno, checksums);
            let _ = apply(&target, base.as_deref(), std::slice::from_ref(&stored));
        }
    }

    #[test]
    fn spg_mask_never_panics(
        page in prop::collection::vec(biased_byte(), BLCKSZ..=BLCKSZ),
        header in prop::collection::vec(any::<u8>(), 24..=24),
        blkno in any::<u32>(),
    ) {
        let mut p = [0u8; BLCKSZ];
        p.copy_from_slice(&page);
        p[..24].copy_from_slice(&header);
        let f = mask::rmgr_mask(RM_SPGIST_ID).expect("SPGist has a mask");
        f(&mut p, blkno);
        prop_assert_eq!(&p[0..10], &[0u8; 10][..]);
    }
}
