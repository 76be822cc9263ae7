//! Property test for the B-tree redo: random and corrupted records of every
//! Btree record type, on real-looking B-tree pages (leaves with plain and
//! posting tuples, internal pages, metapage; possibly bit-flipped), random
//! bytes or no page, never make `pg_redo::apply` panic — failures are typed
//! errors. `btree_mask` runs on random pages too.

mod common;

use bytes::Bytes;
use pg_redo::btree;
use pg_redo::pageops::{self, AddItemMode};
use pg_redo::{apply, RedoRecord};
use postgres_ffi::rmgr::RM_BTREE_ID;
use postgres_ffi::wal::encoder::{BlockSpec, RecordBuilder};
use postgres_ffi::{Lsn, BLCKSZ};
use proptest::prelude::*;

/// A plain index tuple: heap TID (block, offset), 8-byte key.
fn plain_tuple(key: u64, blk: u16, off: u16) -> Vec<u8> {
    let mut t = vec![0u8; 16];
    t[2..4].copy_from_slice(&blk.to_le_bytes());
    t[4..6].copy_from_slice(&off.to_le_bytes());
    t[6..8].copy_from_slice(&16u16.to_le_bytes());
    t[8..16].copy_from_slice(&key.to_le_bytes());
    t
}

/// A posting tuple with `n` heap TIDs.
fn posting_tuple(key: u64, n: u16) -> Vec<u8> {
    let tids: Vec<[u8; 6]> = (0..n)
        .map(|i| {
            let mut t = [0u8; 6];
            t[2..4].copy_from_slice(&(i / 50).to_le_bytes());
            t[4..6].copy_from_slice(&(i % 50 + 1).to_le_bytes());
            t
        })
        .collect();
    btree::tuple::form_posting(&plain_tuple(key, 0, 1), &tids).unwrap()
}

/// 0 leaf, 1 internal page, 2 metapage-like, 3 heap page.
fn btree_page(kind: u8, n: u16) -> Box<[u8; BLCKSZ]> {
    let mut p = Box::new([0u8; BLCKSZ]);
    if kind == 3 {
        return common::heap_page(n.min(10), 0).0;
    }
    pageops::page_init(&mut p, btree::SPECIAL_SIZE).unwrap();
    let special = pageops::special(&p) as usize;
    let flags = match kind {
        0 => btree::BTP_LEAF,
        1 => 0,
        _ => btree::BTP_META,
    };
    p[special + 4..special + 8].copy_from_slice(&(n as u32 % 3).to_le_bytes());
    p[special + 12..special + 14].copy_from_slice(&flags.to_le_bytes());
    for i in 0..n {
        let t = if i % 3 == 2 {
            posting_tuple(i as u64, 2 + i % 5)
        } else {
            plain_tuple(i as u64, i, 1)
        };
        let _ = pageops::page_add_item(&mut p, &t, 0, AddItemMode::default());
    }
    p
}

fn block_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (0u64..50, 0u16..8, 1u16..6).prop_map(|(k, b, o)| plain_tuple(k, b, o)),
        2 => (0u64..50, 1u16..8).prop_map(|(k, n)| posting_tuple(k, n)),
        2 => prop::collection::vec(prop_oneof![3 => 0u16..8, 1 => any::<u16>()], 0..10)
            .prop_map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        2 => prop::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
    ]
}

fn main_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(prop_oneof![4 => 0u8..4, 1 => any::<u8>()], 0..40),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn btree_records_never_panic(
        op in 0u8..15,
        blocks in prop::collection::vec(
            (0u8..5, 0u32..6, any::<bool>(), block_data()), 1..5),
        main in main_data(),
        target in 0usize..5,
        kind in 0u8..5,
        n in 0u16..40,
        flips in prop::collection::vec((0usize..BLCKSZ, any::<u8>()), 0..4),
    ) {
        let info = op << 4;
        let mut b = RecordBuilder::new(RM_BTREE_ID, info).main_data(Bytes::from(main));
        let mut ids: Vec<u8> = blocks.iter().map(|x| x.0).collect();
        ids.sort_unstable();
        ids.dedup();
        for (i, id) in ids.iter().enumerate() {
            let (_, blkno, wi, data) = &blocks[i.min(blocks.len() - 1)];
            let mut spec = BlockSpec::new(*id, common::REL, 0, *blkno);
            if *wi {
                spec = spec.will_init();
            }
            if !data.is_empty() {
                spec = spec.with_data(Bytes::from(data.clone()));
            }
            b = b.block(spec);
        }
        let rec = b.encode(Lsn(0x100));
        let Some(&id) = ids.get(target % ids.len()) else { return Ok(()); };
        let (_, blkno, _, _) = blocks[(target % ids.len()).min(blocks.len() - 1)];
        let t = common::target(0, blkno, false);
        let base = (kind < 4).then(|| {
            let mut p = btree_page(kind, n);
            for (at, v) in &flips {
                p[*at] ^= v;
            }
            p
        });
        let recs = [RedoRecord::wal_bytes(Lsn(0x100), Lsn(0x200), rec, id)];
        let _ = apply(&t, base.as_deref().map(|p| &p[..]), &recs);
    }

    #[test]
    fn btree_mask_never_panics(bytes in prop::collection::vec(any::<u8>(), BLCKSZ..=BLCKSZ), kind in 0u8..3, n in 0u16..50) {
        let mut p: [u8; BLCKSZ] = bytes.try_into().unwrap();
        btree::mask(&mut p, 0);
        let mut q = btree_page(kind, n);
        btree::mask(&mut q, 1);
    }
}
