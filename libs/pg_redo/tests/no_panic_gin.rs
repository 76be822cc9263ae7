//! Property tests for the GIN redo: records of every Gin type, built from
//! plausible parts (real compressed segments, index tuples, recompress
//! actions, metadata) and then possibly truncated or bit-flipped, applied to
//! real-looking GIN pages (posting-tree leaves and internal pages, pre-9.4
//! leaves, entry pages, metapage, list pages; possibly corrupted), random
//! pages or no page, never make `pg_redo::apply` panic; errors are fine.
//! `gin::mask` never panics on any page either.

mod common;

use bytes::Bytes;
use pg_redo::gin::postinglist::{self, Tid};
use pg_redo::gin::{self, Opaque};
use pg_redo::pageops::{self, AddItemMode, Page};
use pg_redo::{apply, RedoRecord};
use postgres_ffi::rmgr::RM_GIN_ID;
use postgres_ffi::v15::info::gin as info;
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, BLCKSZ};
use proptest::prelude::*;

const INFOS: [u8; 9] = [
    info::CREATE_PTREE,
    info::INSERT,
    info::SPLIT,
    info::VACUUM_PAGE,
    info::VACUUM_DATA_LEAF_PAGE,
    info::DELETE_PAGE,
    info::UPDATE_META_PAGE,
    info::INSERT_LISTPAGE,
    info::DELETE_LISTPAGE,
];

fn small() -> impl Strategy<Value = u16> {
    prop_oneof![6 => 0u16..6, 2 => 0u16..300, 1 => any::<u16>()]
}

fn block_no() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..4, 1 => Just(u32::MAX), 1 => any::<u32>()]
}

/// Sorted, distinct TIDs.
fn tids() -> impl Strategy<Value = Vec<Tid>> {
    prop::collection::btree_set((0u32..40, 1u16..300), 1..60)
        .prop_map(|s| s.into_iter().map(|(blk, off)| Tid { blk, off }).collect())
}

fn segment() -> impl Strategy<Value = Vec<u8>> {
    tids().prop_map(|t| postinglist::compress(&t, 384).0)
}

fn index_tuple() -> impl Strategy<Value = Vec<u8>> {
    (
        block_no(),
        small(),
        prop::collection::vec(any::<u8>(), 0..24),
        any::<bool>(),
    )
        .prop_map(|(blk, off, body, honest)| {
            let mut t = Tid { blk, off }.bytes().to_vec();
            let size = if honest {
                8 + body.len() as u16
            } else {
                body.len() as u16 * 3
            };
            t.extend_from_slice(&size.to_le_bytes());
            t.extend_from_slice(&body);
            t
        })
}

/// One recompress action: segno, action byte, payload.
fn action() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..5,
        prop_oneof![8 => 1u8..5, 1 => any::<u8>()],
        segment(),
        tids(),
    )
        .prop_map(|(segno, a, seg, items)| {
            let mut v = vec![segno, a];
            match a {
                2 | 3 => v.extend_from_slice(&seg),
                4 => {
                    v.extend_from_slice(&(items.len() as u16).to_le_bytes());
                    for t in &items {
                        v.extend_from_slice(&t.bytes());
                    }
                }
                _ => {}
            }
            v
        })
}

fn actions() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(action(), 0..5),
        prop::option::weighted(0.1, small()),
    )
        .prop_map(|(acts, lie)| {
            let n = lie.unwrap_or(acts.len() as u16);
            let mut v = n.to_le_bytes().to_vec();
            for a in acts {
                v.extend_from_slice(&a);
            }
            v
        })
}

fn block_id_bytes(b: u32) -> [u8; 4] {
    let hi = ((b >> 16) as u16).to_le_bytes();
    let lo = (b as u16).to_le_bytes();
    [hi[0], hi[1], lo[0], lo[1]]
}

fn metadata() -> impl Strategy<Value = Vec<u8>> {
    (
        block_no(),
        block_no(),
        prop::collection::vec(any::<u8>(), 48),
    )
        .prop_map(|(h, t, rest)| {
            let mut m = h.to_le_bytes().to_vec();
            m.extend_from_slice(&t.to_le_bytes());
            m.extend_from_slice(&rest);
            m
        })
}

/// A record's parts: main data and the data of blocks 0..=3.
#[derive(Debug, Clone)]
struct Parts {
    info: u8,
    main: Vec<u8>,
    data: [Vec<u8>; 4],
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        prop_oneof![9 => prop::sample::select(INFOS.to_vec()), 1 => any::<u8>()],
        prop_oneof![4 => 0u16..4, 1 => any::<u16>()],
        (block_no(), block_no(), small(), any::<bool>()),
        (segment(), prop::collection::vec(segment(), 0..3), actions()),
        (
            prop::collection::vec(index_tuple(), 0..4),
            metadata(),
            small(),
        ),
        (prop::collection::vec(any::<u8>(), 10), any::<i32>()),
    )
        .prop_map(
            |(
                info_byte,
                flags,
                (b1, b2, off, del),
                (seg, segs, acts),
                (tuples, meta, n),
                (pitem, wild),
            )| {
                let info_byte = info_byte & 0xF0;
                let tuple_bytes: Vec<u8> = tuples.concat();
                let ntuples = if wild < 0 && wild % 7 == 0 {
                    wild
                } else {
                    tuples.len() as i32
                };
                let mut main = Vec::new();
                let mut data: [Vec<u8>; 4] = Default::default();
                match info_byte {
                    info::CREATE_PTREE => {
                        let list = [vec![seg], segs].concat().concat();
                        let size = if del { n as u32 } else { list.len() as u32 };
                        main.extend_from_slice(&size.to_le_bytes());
                        main.extend_from_slice(&list);
                    }
                    info::INSERT => {
                        main.extend_from_slice(&flags.to_le_bytes());
                        if flags & 2 == 0 {
                            main.extend_from_slice(&block_id_bytes(b1));
                            main.extend_from_slice(&block_id_bytes(b2));
                        }
                        data[0] = match flags & 3 {
                            // entry page
                            0 | 2 => {
                                let mut d = off.to_le_bytes().to_vec();
                                d.push(del as u8);
                                d.push(0);
                                d.extend_from_slice(tuples.first().map_or(&[][..], |t| t));
                                d
                            }
                            // data internal
                            1 => {
                                let mut d = off.to_le_bytes().to_vec();
                                d.extend_from_slice(&pitem);
                                d
                            }
                            _ => acts,
                        };
                    }
                    info::SPLIT => {
                        main.resize(24, 0);
                        main.extend_from_slice(&flags.to_le_bytes());
                        main.extend_from_slice(&[0, 0]);
                    }
                    info::VACUUM_DATA_LEAF_PAGE => data[0] = acts,
                    info::DELETE_PAGE => {
                        main.extend_from_slice(&off.to_le_bytes());
                        main.extend_from_slice(&[0, 0]);
                        main.extend_from_slice(&b1.to_le_bytes());
                        main.extend_from_slice(&b2.to_le_bytes());
                    }
                    info::UPDATE_META_PAGE => {
                        main.resize(16, 0);
                        main.extend_from_slice(&meta);
                        main.extend_from_slice(&b1.to_le_bytes());
                        main.extend_from_slice(&b2.to_le_bytes());
                        main.extend_from_slice(&ntuples.to_le_bytes());
                        main.extend_from_slice(&[0; 4]);
                        data[1] = tuple_bytes;
                    }
                    info::INSERT_LISTPAGE => {
                        main.extend_from_slice(&b1.to_le_bytes());
                        main.extend_from_slice(&ntuples.to_le_bytes());
                        data[0] = tuple_bytes;
                    }
                    info::DELETE_LISTPAGE => {
                        main.extend_from_slice(&meta);
                        main.extend_from_slice(&(i32::from(n % 5)).to_le_bytes());
                        main.extend_from_slice(&[0; 4]);
                    }
                    _ => main.extend_from_slice(&seg),
                }
                Parts {
                    info: info_byte,
                    main,
                    data,
                }
            },
        )
}

fn fresh(flags: u16) -> Page {
    let mut p = [0u8; BLCKSZ];
    pageops::page_init(&mut p, 8).unwrap();
    let o = Opaque::of(&p).unwrap();
    o.set_flags(&mut p, flags);
    o.set_rightlink(&mut p, u32::MAX);
    p
}

/// Base page kinds.
fn gin_page(kind: u8, segs: &[Vec<u8>], tuples: &[Vec<u8>], n: u16) -> Page {
    match kind % 7 {
        // compressed posting-tree leaf
        0 => {
            let mut p = fresh(gin::GIN_DATA | gin::GIN_LEAF | gin::GIN_COMPRESSED);
            let list = segs.concat();
            let len = list.len().min(8000);
            p[gin::DATA_START..gin::DATA_START + len].copy_from_slice(&list[..len]);
            pageops::set_lower(&mut p, (gin::DATA_START + len) as u16);
            p
        }
        // pre-9.4 leaf with n plain item pointers
        1 => {
            let mut p = fresh(gin::GIN_DATA | gin::GIN_LEAF);
            let n = n % 50;
            for i in 0..n as usize {
                let at = gin::DATA_START + i * 6;
                p[at..at + 6].copy_from_slice(
                    &Tid {
                        blk: i as u32,
                        off: 1,
                    }
                    .bytes(),
                );
            }
            Opaque::of(&p).unwrap().set_maxoff(&mut p, n);
            p
        }
        // posting-tree internal page with n items
        2 => {
            let mut p = fresh(gin::GIN_DATA);
            let n = n % 30;
            for i in 0..n as usize {
                let at = gin::DATA_START + i * 10;
                p[at..at + 4].copy_from_slice(&block_id_bytes(i as u32 + 2));
            }
            Opaque::of(&p).unwrap().set_maxoff(&mut p, n);
            pageops::set_lower(&mut p, (gin::DATA_START + n as usize * 10) as u16);
            p
        }
        // entry leaf / internal / list page with tuples
        k @ (3..=5) => {
            let flags = match k {
                3 => gin::GIN_LEAF,
                4 => 0,
                _ => gin::GIN_LIST | gin::GIN_LIST_FULLROW,
            };
            let mut p = fresh(flags);
            for t in tuples {
                let _ = pageops::page_add_item(&mut p, t, 0, AddItemMode::default());
            }
            p
        }
        // metapage
        _ => {
            let mut p = fresh(gin::GIN_META);
            pageops::set_lower(&mut p, 80);
            p
        }
    }
}

/// The base page kind the record expects for `block_id` (so that most
/// cases get past the page-type checks).
fn matching_kind(p: &Parts, block_id: u8) -> u8 {
    let flags = p.main.first().copied().unwrap_or(0);
    match (p.info, block_id) {
        (info::INSERT, 0) => [4, 2, 3, 0][(flags & 3) as usize],
        (info::VACUUM_DATA_LEAF_PAGE, _) => 0,
        (info::DELETE_PAGE, 1) => 2,
        (info::DELETE_PAGE, _) => 0,
        (info::UPDATE_META_PAGE, 1) => 5,
        _ => 3,
    }
}

#[derive(Debug, Clone)]
enum Base {
    None,
    /// The kind the record expects, or another one; some bytes flipped.
    Gin(Option<u8>, Vec<(usize, u8)>),
    Random(Vec<u8>),
}

fn base_strategy() -> impl Strategy<Value = Base> {
    let flips = || prop::collection::vec((0usize..BLCKSZ, any::<u8>()), 0..3);
    prop_oneof![
        1 => Just(Base::None),
        6 => flips().prop_map(|f| Base::Gin(None, f)),
        1 => Just(Base::Gin(None, Vec::new())),
        3 => (0u8..7, flips()).prop_map(|(k, f)| Base::Gin(Some(k), f)),
        1 => prop::collection::vec(any::<u8>(), BLCKSZ..=BLCKSZ).prop_map(Base::Random),
    ]
}

/// Damage to a byte string: none, truncation, or a flipped byte.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        2 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
    ]
}

fn damaged(mut v: Vec<u8>, d: &Damage) -> Vec<u8> {
    if v.is_empty() {
        return v;
    }
    match d {
        Damage::None => {}
        Damage::Truncate(i) => v.truncate(i.index(v.len())),
        Damage::Flip(i, x) => {
            let at = i.index(v.len());
            v[at] ^= x;
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    #[test]
    fn gin_apply_never_panics(
        p in parts(),
        nblocks in prop_oneof![2 => 1usize..=2, 1 => 1usize..=4],
        will_init in prop::collection::vec(prop::bool::weighted(0.15), 4),
        image in prop::option::weighted(0.05, any::<bool>()),
        target_block in prop_oneof![3 => Just(0u8), 2 => 0u8..4],
        base in base_strategy(),
        (segs, tuples, n) in (
            prop::collection::vec(segment(), 0..6),
            prop::collection::vec(index_tuple(), 0..8),
            any::<u16>(),
        ),
        main_damage in damage(),
        data_damage in damage(),
        checksums in any::<bool>(),
    ) {
        // Blocks 0..nblocks; WILL_INIT where the record type initialises
        // the block (for DELETE_LISTPAGE all of them).
        let init_all = matches!(p.info, info::DELETE_LISTPAGE);
        let mut r = RecordBuilder::new(RM_GIN_ID, p.info)
            .xid(900)
            .main_data(Bytes::from(damaged(p.main.clone(), &main_damage)));
        for (id, (data, &wrong)) in p.data.iter().zip(&will_init).enumerate().take(nblocks) {
            let data = damaged(data.clone(), &data_damage);
            let mut b = BlockSpec::new(id as u8, common::REL, 0, id as u32)
                .with_data(Bytes::from(data));
            let init = match p.info {
                info::CREATE_PTREE | info::INSERT_LISTPAGE | info::UPDATE_META_PAGE => id == 0,
                _ => init_all,
            };
            // Mostly as PostgreSQL writes it, sometimes the wrong way round.
            if init ^ wrong {
                b = b.will_init();
            }
            if let (Some(apply), 0) = (image, id) {
                let page = gin_page(matching_kind(&p, 0), &segs, &tuples, n);
                b = b.with_image(ImageSpec::from_page(&page, true, apply, ImageCompression::None));
            }
            r = r.block(b);
        }
        let bytes = r.encode(Lsn(0x0100_0000));
        let lsn = Lsn(0x0200_0000);
        let end = Lsn(lsn.0 + bytes.len() as u64).align();
        let block_id = target_block.min(nblocks as u8 - 1);
        let rec = RedoRecord::wal_bytes(lsn, end, bytes, block_id);
        let target = common::target(0, block_id as u32, checksums);
        let base = match &base {
            Base::None => None,
            Base::Gin(k, flips) => {
                let k = k.unwrap_or_else(|| matching_kind(&p, block_id));
                let mut pg = gin_page(k, &segs, &tuples, n);
                for &(at, x) in flips {
                    pg[at] ^= x;
                }
                Some(pg.to_vec())
            }
            Base::Random(v) => Some(v.clone()),
        };
        if let Ok(mut page) = apply(&target, base.as_deref(), std::slice::from_ref(&rec)) {
            gin::mask(&mut page, 0);
        }
    }

    #[test]
    fn gin_mask_never_panics(
        page in prop::collection::vec(any::<u8>(), BLCKSZ..=BLCKSZ),
        header in prop::collection::vec(prop_oneof![3 => 0u8..4, 1 => any::<u8>()], 24),
        special in prop_oneof![Just(8184u16), Just(8188u16), any::<u16>()],
        flags in any::<u16>(),
    ) {
        let mut p = [0u8; BLCKSZ];
        p.copy_from_slice(&page);
        p[..24].copy_from_slice(&header);
        p[16..18].copy_from_slice(&special.to_le_bytes());
        if let Some(o) = Opaque::of(&p) {
            o.set_flags(&mut p, flags);
        }
        gin::mask(&mut p, 1);
    }
}
