//! Blob round trips, writer limits, decompression bounds and vectored reads.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use blockfile::{
    BlobRef, BlockCache, BlockFile, BlockFileError, BlockFileWriter, Concurrency, ContentKind,
    DataCache, LruBlockCache, OpenOptions, ReadOptions, BLOCK_SIZE, MAX_USER_HEADER, PAYLOAD_SIZE,
};
use common::*;
use rand::seq::SliceRandom;
use rand::Rng;

/// Sizes around every interesting boundary plus random ones up to 100 KiB.
fn sizes(rng: &mut impl Rng) -> Vec<usize> {
    let mut v = vec![
        0,
        1,
        2,
        126,
        127,
        128,
        129,
        1000,
        PAYLOAD_SIZE - 5,
        PAYLOAD_SIZE - 4,
        PAYLOAD_SIZE - 1,
        PAYLOAD_SIZE,
        PAYLOAD_SIZE + 1,
        8192,
        8193,
        2 * PAYLOAD_SIZE,
        100 * 1024,
    ];
    for _ in 0..150 {
        let max = if rng.gen_bool(0.5) { 300 } else { 100 * 1024 };
        v.push(rng.gen_range(0..=max));
    }
    v
}

#[tokio::test]
async fn many_blobs_roundtrip() {
    let dir = tempdir();
    let path = dir.path.join("blobs");
    let mut rng = rng(1);
    let blobs: Vec<(Vec<u8>, bool)> = sizes(&mut rng)
        .into_iter()
        .map(|len| {
            let compressible = rng.gen_bool(0.5);
            let compress = rng.gen_bool(0.7);
            (blob_data(&mut rng, len, compressible), compress)
        })
        .collect();
    let raw_total: usize = blobs.iter().map(|(b, _)| b.len()).sum();
    let w = write_file(&path, 18, &blobs, &[], b"hdr").await;
    assert!(
        (w.finished.blob_stream_len as usize) < raw_total,
        "compression saved nothing: {} >= {raw_total}",
        w.finished.blob_stream_len
    );
    // Refs are strictly increasing and below the stream length.
    assert!(w.refs.windows(2).all(|p| p[0] < p[1]));
    assert_eq!(w.finished.size % BLOCK_SIZE as u64, 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), w.finished.size);

    let (file, user) = BlockFile::open(&path, MAGIC).await.unwrap();
    assert_eq!(&user[..], b"hdr");
    assert_eq!(file.blob_stream_len(), w.finished.blob_stream_len);
    for (r, (data, _)) in w.refs.iter().zip(&blobs) {
        assert_eq!(
            &file.read_blob(*r).await.unwrap()[..],
            &data[..],
            "blob at {r:?}"
        );
    }

    // Vectored, shuffled, both concurrency modes, several IO sizes.
    let mut order: Vec<usize> = (0..blobs.len()).collect();
    order.shuffle(&mut rng);
    let refs: Vec<BlobRef> = order.iter().map(|&i| w.refs[i]).collect();
    for conc in [Concurrency::Sequential, Concurrency::Concurrent] {
        for max_io in [BLOCK_SIZE, 64 * 1024, 128 * 1024, 1 << 20] {
            let r = file.read_blobs(&refs, max_io, conc).await;
            assert_eq!(r.results.len(), refs.len());
            for (res, &i) in r.results.iter().zip(&order) {
                assert_eq!(
                    &res.as_ref().unwrap()[..],
                    &blobs[i].0[..],
                    "{conc:?} {max_io}"
                );
            }
            assert!(r.stats.ios >= 1);
        }
    }
}

#[tokio::test]
async fn compression_only_when_it_helps() {
    let dir = tempdir();
    let path = dir.path.join("c");
    let mut rng = rng(2);
    let random = blob_data(&mut rng, 5000, false);
    let runs = vec![0u8; 5000];
    let w = write_file(
        &path,
        8,
        &[
            (random.clone(), true),
            (runs.clone(), true),
            (runs.clone(), false),
        ],
        &[],
        b"",
    )
    .await;
    // Random data is stored as is: 4-byte header + 5000 bytes.
    assert_eq!(w.refs[1].0 - w.refs[0].0, 5004);
    // The zero run compresses to far fewer bytes.
    assert!(w.refs[2].0 - w.refs[1].0 < 100);
    let (file, _) = BlockFile::open(&path, MAGIC).await.unwrap();
    assert_eq!(file.read_blob(w.refs[0]).await.unwrap(), random);
    assert_eq!(file.read_blob(w.refs[1]).await.unwrap(), runs);
    assert_eq!(file.read_blob(w.refs[2]).await.unwrap(), runs);
}

#[tokio::test]
async fn zstd_bomb_is_refused() {
    let dir = tempdir();
    let path = dir.path.join("bomb");
    let bomb = vec![0u8; 8 << 20];
    let w = write_file(
        &path,
        8,
        &[(bomb.clone(), true), (b"small".to_vec(), true)],
        &[],
        b"",
    )
    .await;
    assert!(w.finished.size < 64 * 1024, "bomb should compress well");

    let opts = OpenOptions {
        max_decompressed_size: 64 * 1024,
        ..Default::default()
    };
    let (file, _) = BlockFile::open_with(&path, MAGIC, opts).await.unwrap();
    match file.read_blob(w.refs[0]).await {
        Err(BlockFileError::DecompressLimit { path: p, limit, .. }) => {
            assert_eq!(p, path);
            assert_eq!(limit, 64 * 1024);
        }
        other => panic!("expected DecompressLimit, got {other:?}"),
    }
    assert_eq!(&file.read_blob(w.refs[1]).await.unwrap()[..], b"small");
    // The default limit (1 MiB) refuses it too; a larger one accepts it.
    let (file, _) = BlockFile::open(&path, MAGIC).await.unwrap();
    assert!(matches!(
        file.read_blob(w.refs[0]).await,
        Err(BlockFileError::DecompressLimit { .. })
    ));
    let opts = OpenOptions {
        max_decompressed_size: 8 << 20,
        ..Default::default()
    };
    let (file, _) = BlockFile::open_with(&path, MAGIC, opts).await.unwrap();
    assert_eq!(file.read_blob(w.refs[0]).await.unwrap(), bomb);
}

#[tokio::test]
async fn user_header_limits_and_empty_file() {
    let dir = tempdir();
    let path = dir.path.join("empty");
    let user = vec![0xabu8; MAX_USER_HEADER];
    let w = write_file(&path, 26, &[], &[], &user).await;
    assert_eq!(
        w.finished.size,
        2 * BLOCK_SIZE as u64,
        "header + empty root leaf"
    );
    let (file, got) = BlockFile::open(&path, MAGIC).await.unwrap();
    assert_eq!(&got[..], &user[..]);
    assert_eq!(file.index_entries(), 0);
    assert_eq!(file.get(&[0u8; 26]).await.unwrap(), None);
    assert!(file
        .iter_from(&[0u8; 26])
        .unwrap()
        .next()
        .await
        .unwrap()
        .is_none());
    assert!(file
        .iter_back_from(&[0xffu8; 26])
        .unwrap()
        .next()
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        file.read_blob(BlobRef(0)).await,
        Err(BlockFileError::BadBlobRef { offset: 0, .. })
    ));

    let path = dir.path.join("big-header");
    let w = BlockFileWriter::create(&path, MAGIC, 26).await.unwrap();
    let e = w.finish(&vec![0u8; MAX_USER_HEADER + 1]).await.unwrap_err();
    assert!(matches!(e, BlockFileError::InvalidInput { .. }), "{e}");
}

#[tokio::test]
async fn writer_rejects_bad_keys() {
    let dir = tempdir();
    let path = dir.path.join("keys");
    assert!(BlockFileWriter::create(&path, MAGIC, 33).await.is_err());
    assert!(BlockFileWriter::create(&path, MAGIC, 0).await.is_err());
    let mut w = BlockFileWriter::create(&path, MAGIC, 4).await.unwrap();
    w.append_index(&[0, 0, 0, 5], 1).await.unwrap();
    let e = w.append_index(&[0, 0, 5], 1).await.unwrap_err();
    assert!(e.to_string().contains("4"), "{e}");
    let e = w.append_index(&[0, 0, 0, 5], 1).await.unwrap_err();
    assert!(e.to_string().contains("ascending"), "{e}");
    let e = w.append_index(&[0, 0, 0, 4], 1).await.unwrap_err();
    assert!(matches!(e, BlockFileError::InvalidInput { .. }));
    // Input errors do not poison the writer.
    w.append_index(&[0, 0, 0, 6], 2).await.unwrap();
    w.finish(b"").await.unwrap();
    let (file, _) = BlockFile::open(&path, MAGIC).await.unwrap();
    assert_eq!(file.get(&[0, 0, 0, 6]).await.unwrap(), Some(2));
    assert!(file.get(&[0, 0, 6]).await.is_err());
    // An existing path is not overwritten.
    assert!(BlockFileWriter::create(&path, MAGIC, 4).await.is_err());
}

async fn adjacent_file(
    dir: &TempDir,
    n: usize,
    len: usize,
) -> (BlockFile, Vec<BlobRef>, Vec<Vec<u8>>) {
    let path = dir.path.join(format!("adj-{n}-{len}"));
    let mut rng = rng(3);
    let blobs: Vec<(Vec<u8>, bool)> = (0..n)
        .map(|_| (blob_data(&mut rng, len, false), false))
        .collect();
    let w = write_file(&path, 8, &blobs, &[], b"").await;
    let (file, _) = BlockFile::open(&path, MAGIC).await.unwrap();
    (file, w.refs, blobs.into_iter().map(|b| b.0).collect())
}

#[tokio::test]
async fn vectored_adjacent_blobs_coalesce() {
    let dir = tempdir();
    let (file, refs, data) = adjacent_file(&dir, 64, 8192).await;
    let first32: Vec<BlobRef> = refs[..32].to_vec();
    for conc in [Concurrency::Sequential, Concurrency::Concurrent] {
        let r = file.read_blobs(&first32, 1 << 20, conc).await;
        assert_eq!(r.stats.ios, 1, "{:?}", r.stats);
        assert_eq!(r.stats.followup_ios, 0);
        // 32 blobs of 8196 stored bytes need 33 blocks; the speculative tail
        // adds at most one more.
        assert!(r.stats.blocks_read <= 34, "{:?}", r.stats);
        for (res, d) in r.results.iter().zip(&data) {
            assert_eq!(res.as_ref().unwrap(), d);
        }
        // With 128 KiB IOs (16 blocks) the same read takes 3 IOs.
        let r = file.read_blobs(&first32, 128 * 1024, conc).await;
        assert_eq!(r.stats.ios, 3, "{:?}", r.stats);
        for (res, d) in r.results.iter().zip(&data) {
            assert_eq!(res.as_ref().unwrap(), d);
        }
    }
    // Reverse order input gives results in input order.
    let rev: Vec<BlobRef> = first32.iter().rev().copied().collect();
    let r = file
        .read_blobs(&rev, 1 << 20, Concurrency::Concurrent)
        .await;
    assert_eq!(r.stats.ios, 1);
    for (res, d) in r.results.iter().zip(data[..32].iter().rev()) {
        assert_eq!(res.as_ref().unwrap(), d);
    }
}

#[tokio::test]
async fn vectored_far_apart_blobs_split() {
    let dir = tempdir();
    let (file, refs, data) = adjacent_file(&dir, 64, 8192).await;
    // Every 8th blob: ~7 blobs (8 blocks) apart, far beyond the gap.
    let picks: Vec<usize> = (0..64).step_by(8).collect();
    let want: Vec<BlobRef> = picks.iter().map(|&i| refs[i]).collect();
    for conc in [Concurrency::Sequential, Concurrency::Concurrent] {
        let r = file.read_blobs(&want, 1 << 20, conc).await;
        assert_eq!(r.stats.ios, picks.len(), "{:?}", r.stats);
        for (res, &i) in r.results.iter().zip(&picks) {
            assert_eq!(res.as_ref().unwrap(), &data[i]);
            assert_eq!(
                res.as_ref().unwrap(),
                &file.read_blob(refs[i]).await.unwrap()
            );
        }
    }
    // Two neighbours plus a far one: 2 IOs.
    let r = file
        .read_blobs(
            &[refs[40], refs[3], refs[4]],
            1 << 20,
            Concurrency::Sequential,
        )
        .await;
    assert_eq!(r.stats.ios, 2, "{:?}", r.stats);
    assert_eq!(r.results[0].as_ref().unwrap(), &data[40]);
    assert_eq!(r.results[1].as_ref().unwrap(), &data[3]);
    assert_eq!(r.results[2].as_ref().unwrap(), &data[4]);
}

#[tokio::test]
async fn vectored_small_blobs_and_big_tails() {
    let dir = tempdir();
    let path = dir.path.join("mixed");
    let mut rng = rng(4);
    // Many small blobs, with a few large ones in between.
    let mut blobs = Vec::new();
    for i in 0..400 {
        let len = if i % 97 == 50 {
            300_000
        } else {
            rng.gen_range(0..200)
        };
        blobs.push((blob_data(&mut rng, len, false), false));
    }
    let w = write_file(&path, 8, &blobs, &[], b"").await;
    let (file, _) = BlockFile::open(&path, MAGIC).await.unwrap();

    // All small blobs of the first 40 (≈ 4 KiB, one block): one IO.
    let r = file
        .read_blobs(&w.refs[..40], 128 * 1024, Concurrency::Sequential)
        .await;
    assert_eq!(r.stats.ios, 1, "{:?}", r.stats);

    // A large blob alone: planned IO plus exact follow-ups of <= 128 KiB.
    let big = 50;
    let r = file
        .read_blobs(&[w.refs[big]], 128 * 1024, Concurrency::Concurrent)
        .await;
    assert_eq!(r.results[0].as_ref().unwrap(), &blobs[big].0);
    assert!(r.stats.followup_ios >= 3, "{:?}", r.stats);
    let needed = (300_004 / PAYLOAD_SIZE + 2) as u64;
    assert!(r.stats.blocks_read <= needed + 2, "{:?}", r.stats);

    // Everything at once, with duplicates and a bad reference in the middle.
    let mut req: Vec<BlobRef> = w.refs.clone();
    req.push(w.refs[7]);
    req.push(BlobRef(w.finished.blob_stream_len + 10));
    req.push(w.refs[big]);
    let r = file
        .read_blobs(&req, 128 * 1024, Concurrency::Concurrent)
        .await;
    for (i, res) in r.results.iter().enumerate().take(blobs.len()) {
        assert_eq!(res.as_ref().unwrap(), &blobs[i].0, "blob {i}");
    }
    assert_eq!(r.results[blobs.len()].as_ref().unwrap(), &blobs[7].0);
    assert!(matches!(
        r.results[blobs.len() + 1],
        Err(BlockFileError::BadBlobRef { .. })
    ));
    assert_eq!(r.results[blobs.len() + 2].as_ref().unwrap(), &blobs[big].0);
    // Every planned IO respects the size limit.
    assert!(r.stats.blocks_read <= r.stats.ios as u64 * 16);

    let r = file
        .read_blobs(&[], 128 * 1024, Concurrency::Concurrent)
        .await;
    assert!(r.results.is_empty());
    assert_eq!(r.stats.ios, 0);
}

#[tokio::test]
async fn index_spill_file_is_cleaned_up() {
    let dir = tempdir();
    let path = dir.path.join("spill");
    let spill = dir.path.join("spill.idx-spill.___temp");
    let mut w = BlockFileWriter::create(&path, MAGIC, 26).await.unwrap();
    for i in 0..50_000u64 {
        w.append_index(&key26(i), i).await.unwrap();
    }
    assert_eq!(spill, blockfile::btree::spill_path(&path));
    assert!(spill.exists(), "50k entries should spill leaves");
    let f = w.finish(b"").await.unwrap();
    assert!(!spill.exists());
    assert!(f.index_height >= 2);
    let (file, _) = BlockFile::open(&path, MAGIC).await.unwrap();
    assert_eq!(file.get(&key26(12_345)).await.unwrap(), Some(12_345));

    // A writer dropped before finish removes its spill file.
    let path = dir.path.join("dropped");
    let spill = dir.path.join("dropped.idx-spill.___temp");
    let mut w = BlockFileWriter::create(&path, MAGIC, 26).await.unwrap();
    for i in 0..50_000u64 {
        w.append_index(&key26(i), i).await.unwrap();
    }
    assert!(spill.exists());
    drop(w);
    assert!(!spill.exists());
    let names: HashSet<String> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["spill".to_string(), "dropped".to_string()])
    );
}

/// Reads `refs` with `cache` and checks every result against `want`.
async fn read_checked(
    file: &BlockFile,
    refs: &[BlobRef],
    want: &[&[u8]],
    cache: DataCache,
) -> blockfile::VectoredStats {
    let opts = ReadOptions {
        max_io_size: 1 << 20,
        concurrency: Concurrency::Concurrent,
        cache,
    };
    let r = file.read_blobs_with(refs, opts).await;
    assert_eq!(r.results.len(), refs.len());
    for (i, (res, w)) in r.results.iter().zip(want).enumerate() {
        assert_eq!(&res.as_ref().unwrap()[..], *w, "{cache:?} blob {i}");
    }
    r.stats
}

#[tokio::test]
async fn cached_reads_do_no_io_when_warm() {
    let dir = tempdir();
    let path = dir.path.join("cached");
    let mut rng = rng(5);
    // Small blobs (several per block), page-sized ones (two blocks each),
    // compressed ones and a large one.
    let mut blobs = Vec::new();
    for i in 0..120 {
        let (len, compress) = match i % 4 {
            0 => (rng.gen_range(0..300), false),
            1 => (8192, false),
            2 => (8192, true),
            _ => (rng.gen_range(300..3000), false),
        };
        blobs.push((blob_data(&mut rng, len, i % 3 == 0), compress));
    }
    blobs.push((blob_data(&mut rng, 200_000, false), false));
    let w = write_file(&path, 8, &blobs, &[], b"").await;
    let cache = Arc::new(LruBlockCache::new(10_000));
    let opts = OpenOptions {
        cache: Some(cache.clone() as Arc<dyn BlockCache>),
        ..Default::default()
    };
    let (file, _) = BlockFile::open_with(&path, MAGIC, opts).await.unwrap();
    // Every other blob, then all of them with duplicates, newest first.
    let half: Vec<usize> = (0..blobs.len()).step_by(2).collect();
    let mut all: Vec<usize> = (0..blobs.len()).rev().collect();
    all.extend([3, 5, 3]);
    for cache_mode in [DataCache::Off, DataCache::Blocks, DataCache::Blobs] {
        for picks in [&half, &all] {
            let refs: Vec<BlobRef> = picks.iter().map(|&i| w.refs[i]).collect();
            let want: Vec<&[u8]> = picks.iter().map(|&i| &blobs[i].0[..]).collect();
            let cold = read_checked(&file, &refs, &want, cache_mode).await;
            let warm = read_checked(&file, &refs, &want, cache_mode).await;
            if cache_mode == DataCache::Off {
                assert_eq!(warm.cached_blobs, 0);
                assert_eq!(warm.ios, cold.ios);
            } else {
                assert_eq!(warm.ios, 0, "{cache_mode:?}: {warm:?}");
                let distinct: HashSet<usize> = picks.iter().copied().collect();
                assert_eq!(warm.cached_blobs, distinct.len(), "{cache_mode:?}");
            }
        }
    }
    // Off reads kept nothing; each mode kept its own kind.
    assert!(cache.stats(ContentKind::DataBlock).inserts > 0);
    assert_eq!(
        cache.stats(ContentKind::Blob).inserts,
        blobs.len() as u64,
        "each distinct blob once"
    );
    assert!(cache.stats(ContentKind::Blob).hits >= blobs.len() as u64);
    // The default single-blob read does not use the data cache.
    let before = cache.stats(ContentKind::Blob);
    assert_eq!(
        &file.read_blob(w.refs[1]).await.unwrap()[..],
        &blobs[1].0[..]
    );
    assert_eq!(cache.stats(ContentKind::Blob), before);
}

#[tokio::test]
async fn a_small_cache_still_returns_right_data() {
    let dir = tempdir();
    let (file_nocache, refs, data) = adjacent_file(&dir, 64, 8192).await;
    // 4 blocks: entries keep getting evicted mid-read.
    let cache = Arc::new(LruBlockCache::new(4));
    let opts = OpenOptions {
        cache: Some(cache.clone() as Arc<dyn BlockCache>),
        ..Default::default()
    };
    let (file, _) = BlockFile::open_with(file_nocache.path(), MAGIC, opts)
        .await
        .unwrap();
    let want: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
    for cache_mode in [DataCache::Blocks, DataCache::Blobs] {
        for _ in 0..3 {
            read_checked(&file, &refs, &want, cache_mode).await;
            read_checked(&file, &refs[10..13], &want[10..13], cache_mode).await;
        }
    }
    assert!(cache.used_blocks() <= 4);
    assert!(cache.stats(ContentKind::DataBlock).evictions > 0);
}
