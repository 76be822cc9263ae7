//! B-tree index: big multi-level trees and property tests against a
//! `BTreeMap` oracle, plus the block cache hook.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use blockfile::{BlockCache, BlockFile, ContentKind, IndexIter, LruBlockCache, OpenOptions};
use common::*;
use proptest::prelude::*;
use rand::Rng;

async fn collect(mut it: IndexIter, limit: usize) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    while out.len() < limit {
        match it.next().await.unwrap() {
            Some((k, v)) => out.push((k.to_vec(), v)),
            None => break,
        }
    }
    out
}

fn oracle_from(m: &BTreeMap<Vec<u8>, u64>, k: &[u8], limit: usize) -> Vec<(Vec<u8>, u64)> {
    m.range::<[u8], _>((Bound::Included(k), Bound::Unbounded))
        .take(limit)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn oracle_back(m: &BTreeMap<Vec<u8>, u64>, k: &[u8], limit: usize) -> Vec<(Vec<u8>, u64)> {
    m.range::<[u8], _>((Bound::Unbounded, Bound::Included(k)))
        .rev()
        .take(limit)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[tokio::test]
async fn big_tree_against_oracle() {
    let dir = tempdir();
    let path = dir.path.join("big");
    let n = 100_000u64;
    // Random keys defeat prefix compression, so the tree gets three levels.
    let mut rng = rng(7);
    let mut keys: Vec<[u8; 26]> = (0..n).map(|_| rng.gen()).collect();
    keys.sort();
    keys.dedup();
    let entries: Vec<(Vec<u8>, u64)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (
                k.to_vec(),
                (i as u64).wrapping_mul(0x9E37_79B9) ^ ((i as u64) << 40),
            )
        })
        .collect();
    let oracle: BTreeMap<Vec<u8>, u64> = entries.iter().cloned().collect();
    assert_eq!(oracle.len(), n as usize, "keys are distinct");
    let w = write_file(&path, 26, &[], &entries, b"").await;
    assert_eq!(w.finished.index_entries, n);
    assert!(
        w.finished.index_height >= 3,
        "height {}",
        w.finished.index_height
    );

    let cache = Arc::new(LruBlockCache::new(10_000));
    let opts = OpenOptions {
        cache: Some(cache.clone() as Arc<dyn BlockCache>),
        ..Default::default()
    };
    let (file, _) = BlockFile::open_with(&path, MAGIC, opts).await.unwrap();
    assert_eq!(file.index_entries(), n);

    // Every key, in order, then a full scan each way.
    for (k, v) in &entries {
        assert_eq!(file.get(k).await.unwrap(), Some(*v));
    }
    let all = collect(file.iter_from(&[0u8; 26]).unwrap(), usize::MAX).await;
    assert_eq!(all, entries);
    let mut back = collect(file.iter_back_from(&[0xffu8; 26]).unwrap(), usize::MAX).await;
    back.reverse();
    assert_eq!(back, entries);

    // Probes next to stored keys (present, just below, just above) and
    // random ones, with short range scans.
    for i in 0..3000 {
        let mut k: [u8; 26] = keys[rng.gen_range(0..keys.len())];
        match i % 4 {
            0 => {}
            1 => k[25] = k[25].wrapping_sub(1),
            2 => k[25] = k[25].wrapping_add(1),
            _ => k = rng.gen(),
        }
        assert_eq!(file.get(&k).await.unwrap(), oracle.get(&k[..]).copied());
        let len = rng.gen_range(0..600);
        assert_eq!(
            collect(file.iter_from(&k).unwrap(), len).await,
            oracle_from(&oracle, &k, len)
        );
        assert_eq!(
            collect(file.iter_back_from(&k).unwrap(), len).await,
            oracle_back(&oracle, &k, len)
        );
    }
    // Below the first and above the last key.
    assert_eq!(file.get(&[0u8; 26]).await.unwrap(), None);
    assert!(collect(file.iter_back_from(&[0u8; 26]).unwrap(), 1)
        .await
        .is_empty());
    assert!(collect(file.iter_from(&[0xffu8; 26]).unwrap(), 1)
        .await
        .is_empty());

    // The index blocks were cached: far more hits than misses, misses bounded
    // by the number of index blocks.
    let s = cache.stats(ContentKind::IndexBlock);
    let index_blocks = (file.size() - 8192) / 8192;
    assert!(s.misses <= index_blocks, "{s:?} vs {index_blocks} blocks");
    assert!(s.hits > 10 * s.misses, "{s:?}");
    assert_eq!(s.evictions, 0);
    assert_eq!(cache.stats(ContentKind::MaterializedPage).hits, 0);
}

#[tokio::test]
async fn small_cache_evicts_and_files_do_not_share_entries() {
    let dir = tempdir();
    let entries: Vec<(Vec<u8>, u64)> = (0..20_000u64).map(|i| (key26(i).to_vec(), i)).collect();
    let p1 = dir.path.join("a");
    let p2 = dir.path.join("b");
    write_file(&p1, 26, &[], &entries, b"").await;
    let shifted: Vec<(Vec<u8>, u64)> = entries.iter().map(|(k, v)| (k.clone(), v + 1)).collect();
    write_file(&p2, 26, &[], &shifted, b"").await;
    let cache = Arc::new(LruBlockCache::new(4));
    let opts = OpenOptions {
        cache: Some(cache.clone() as Arc<dyn BlockCache>),
        ..Default::default()
    };
    let (a, _) = BlockFile::open_with(&p1, MAGIC, opts.clone())
        .await
        .unwrap();
    let (b, _) = BlockFile::open_with(&p2, MAGIC, opts).await.unwrap();
    assert_ne!(a.file_id(), b.file_id());
    for i in (0..20_000u64).step_by(37) {
        assert_eq!(a.get(&key26(i)).await.unwrap(), Some(i));
        assert_eq!(b.get(&key26(i)).await.unwrap(), Some(i + 1));
    }
    let s = cache.stats(ContentKind::IndexBlock);
    assert!(s.evictions > 0, "{s:?}");
    assert!(cache.len() <= 4);
}

/// Keys over a tiny alphabet so that nodes share long prefixes.
fn keyset(width: usize, max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::btree_set(prop::collection::vec(0u8..3, width), 0..max)
        .prop_map(|s| s.into_iter().collect())
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn tree_matches_oracle(
        (width, keys) in (1usize..=32).prop_flat_map(|w| (Just(w), keyset(w, 3000))),
        probes in prop::collection::vec(prop::collection::vec(0u8..3, 32), 1..40),
        seed in any::<u64>(),
    ) {
        run(async {
            let dir = tempdir();
            let path = dir.path.join("p");
            let entries: Vec<(Vec<u8>, u64)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), seed.wrapping_add(i as u64)))
                .collect();
            let oracle: BTreeMap<Vec<u8>, u64> = entries.iter().cloned().collect();
            write_file(&path, width, &[], &entries, b"").await;
            let (file, _) = BlockFile::open(&path, MAGIC).await.unwrap();
            // Probes: random keys plus every stored key.
            let mut all: Vec<Vec<u8>> = probes.iter().map(|p| p[..width].to_vec()).collect();
            all.extend(keys.iter().step_by(7).cloned());
            for k in &all {
                assert_eq!(file.get(k).await.unwrap(), oracle.get(k).copied());
                assert_eq!(collect(file.iter_from(k).unwrap(), 300).await, oracle_from(&oracle, k, 300));
                assert_eq!(collect(file.iter_back_from(k).unwrap(), 300).await, oracle_back(&oracle, k, 300));
            }
            let full = collect(file.iter_from(&vec![0u8; width]).unwrap(), usize::MAX).await;
            assert_eq!(full, entries);
        });
    }
}
