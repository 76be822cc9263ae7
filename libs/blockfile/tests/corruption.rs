//! Damaged and incomplete files: every byte flip is detected (or harmless),
//! truncation and missing headers are refused at open.

mod common;

use std::sync::Arc;

use blockfile::{
    BlobRef, BlockCache, BlockFile, BlockFileError, BlockFileWriter, Concurrency, DataCache,
    LruBlockCache, OpenOptions, ReadOptions, BLOCK_SIZE, PAYLOAD_SIZE,
};
use camino::Utf8Path;
use common::*;
use rand::Rng;

struct Expected {
    refs: Vec<BlobRef>,
    blobs: Vec<Vec<u8>>,
    index: Vec<(Vec<u8>, u64)>,
    user: Vec<u8>,
}

/// A file of ~25 blocks: blobs of mixed sizes (some compressed) and a
/// two-level index.
async fn sample(path: &Utf8Path) -> Expected {
    let mut rng = rng(11);
    let mut blobs = Vec::new();
    for i in 0..40 {
        let len = match i % 5 {
            0 => rng.gen_range(0..128),
            1 => rng.gen_range(128..2000),
            2 => 8192,
            3 => rng.gen_range(5000..20_000),
            _ => 3,
        };
        blobs.push((blob_data(&mut rng, len, i % 2 == 0), i % 3 == 0));
    }
    // 1,000 keys of 32 bytes: several leaves under one root.
    let index: Vec<(Vec<u8>, u64)> = (0..1000u64)
        .map(|i| {
            let mut k = vec![0u8; 32];
            k[..8].copy_from_slice(&(i * 7919).to_be_bytes());
            k[8..16].copy_from_slice(&i.to_le_bytes());
            (k, i * 3)
        })
        .collect();
    let user = b"key range 00..ff, lsn range 0/10..0/20".to_vec();
    let w = write_file(path, 32, &blobs, &index, &user).await;
    assert!(w.finished.index_height >= 2);
    Expected {
        refs: w.refs,
        blobs: blobs.into_iter().map(|b| b.0).collect(),
        index,
        user,
    }
}

/// Checks that `e` reports damage in `block` of `path`.
fn assert_names_block(e: &BlockFileError, path: &Utf8Path, block: u32) {
    match e {
        BlockFileError::Corrupt {
            path: p, block: b, ..
        } => {
            assert_eq!(p, path, "{e}");
            assert_eq!(*b, block, "{e}");
            assert!(e.to_string().contains(path.as_str()));
        }
        other => panic!("expected Corrupt for block {block}, got {other}"),
    }
}

/// Reads everything; returns how many operations reported the damage.
/// Anything that succeeds must return exactly the original data.
async fn read_all(path: &Utf8Path, exp: &Expected, block: u32) -> usize {
    let (file, user) = match BlockFile::open(path, MAGIC).await {
        Ok(x) => x,
        Err(e) => {
            assert_names_block(&e, path, block);
            assert_eq!(block, 0, "only header damage can fail open");
            return 1;
        }
    };
    assert_eq!(&user[..], &exp.user[..]);
    let mut detected = 0;
    for (r, want) in exp.refs.iter().zip(&exp.blobs) {
        match file.read_blob(*r).await {
            Ok(got) => assert_eq!(&got[..], &want[..]),
            Err(e) => {
                assert_names_block(&e, path, block);
                detected += 1;
            }
        }
    }
    let v = file
        .read_blobs(&exp.refs, 64 * 1024, Concurrency::Concurrent)
        .await;
    for (res, want) in v.results.iter().zip(&exp.blobs) {
        match res {
            Ok(got) => assert_eq!(&got[..], &want[..]),
            Err(e) => {
                assert_names_block(e, path, block);
                detected += 1;
            }
        }
    }
    for (k, val) in exp.index.iter().step_by(13) {
        match file.get(k).await {
            Ok(got) => assert_eq!(got, Some(*val)),
            Err(e) => {
                assert_names_block(&e, path, block);
                detected += 1;
            }
        }
    }
    for forward in [true, false] {
        let mut it = if forward {
            file.iter_from(&[0u8; 32]).unwrap()
        } else {
            file.iter_back_from(&[0xffu8; 32]).unwrap()
        };
        let mut got = Vec::new();
        loop {
            match it.next().await {
                Ok(Some((k, v))) => got.push((k.to_vec(), v)),
                Ok(None) => {
                    if !forward {
                        got.reverse();
                    }
                    assert_eq!(got, exp.index);
                    break;
                }
                Err(e) => {
                    assert_names_block(&e, path, block);
                    // The error sticks.
                    assert!(it.next().await.is_err());
                    let n = got.len();
                    let want: Vec<_> = if forward {
                        exp.index[..n].to_vec()
                    } else {
                        exp.index[exp.index.len() - n..]
                            .iter()
                            .rev()
                            .cloned()
                            .collect()
                    };
                    assert_eq!(got, want, "entries before the error are correct");
                    detected += 1;
                    break;
                }
            }
        }
    }
    detected
}

#[tokio::test]
async fn every_flipped_byte_is_detected() {
    let dir = tempdir();
    let good = dir.path.join("good");
    let exp = sample(&good).await;
    let original = std::fs::read(&good).unwrap();
    let blocks = original.len() / BLOCK_SIZE;
    assert!(blocks >= 10, "{blocks} blocks");
    assert_eq!(
        read_all(&good, &exp, u32::MAX).await,
        0,
        "clean file reads cleanly"
    );

    let mut rng = rng(12);
    let bad = dir.path.join("bad");
    let mut flips = 0;
    for blk in 0..blocks {
        let mut positions = vec![
            0,
            1,
            5,
            63,
            64,
            PAYLOAD_SIZE - 9,
            PAYLOAD_SIZE - 1,
            PAYLOAD_SIZE,
            BLOCK_SIZE - 1,
        ];
        positions.extend((0..6).map(|_| rng.gen_range(0..BLOCK_SIZE)));
        for pos in positions {
            let mut data = original.clone();
            data[blk * BLOCK_SIZE + pos] ^= 1 << rng.gen_range(0..8);
            std::fs::write(&bad, &data).unwrap();
            let detected = read_all(&bad, &exp, blk as u32).await;
            // Every block is read by one of the operations above, and every
            // block is fully checksummed, so the damage is always seen.
            assert!(detected > 0, "flip in block {blk} at {pos} went unnoticed");
            flips += 1;
        }
    }
    assert!(flips >= 150);
}

#[tokio::test]
async fn truncated_or_extended_files_are_refused() {
    let dir = tempdir();
    let good = dir.path.join("good");
    sample(&good).await;
    let original = std::fs::read(&good).unwrap();
    let bad = dir.path.join("bad");
    for len in [
        0,
        100,
        BLOCK_SIZE - 1,
        BLOCK_SIZE,
        original.len() / 2,
        original.len() - BLOCK_SIZE,
        original.len() - 1,
    ] {
        std::fs::write(&bad, &original[..len]).unwrap();
        let e = BlockFile::open(&bad, MAGIC).await.unwrap_err();
        assert!(e.is_corruption(), "{e}");
        assert!(e.to_string().contains(bad.as_str()), "{e}");
        if len >= BLOCK_SIZE {
            assert!(
                matches!(e, BlockFileError::Truncated { actual, .. } if actual == len as u64),
                "{e}"
            );
        } else {
            assert!(matches!(e, BlockFileError::NoHeader { .. }), "{e}");
        }
    }
    let mut longer = original.clone();
    longer.extend_from_slice(&[0u8; BLOCK_SIZE]);
    std::fs::write(&bad, &longer).unwrap();
    let e = BlockFile::open(&bad, MAGIC).await.unwrap_err();
    assert!(matches!(e, BlockFileError::Truncated { .. }), "{e}");
}

#[tokio::test]
async fn unfinished_file_has_no_header() {
    let dir = tempdir();
    // Crash before any write reached the disk: an empty file.
    let p = dir.path.join("empty");
    let mut w = BlockFileWriter::create(&p, MAGIC, 8).await.unwrap();
    w.append_blob(b"hello", false).await.unwrap();
    drop(w);
    let e = BlockFile::open(&p, MAGIC).await.unwrap_err();
    assert!(matches!(e, BlockFileError::NoHeader { .. }), "{e}");

    // Crash after blob chunks were written: block 0 is a hole of zeros.
    let p = dir.path.join("partial");
    let mut w = BlockFileWriter::create(&p, MAGIC, 8).await.unwrap();
    let mut rng = rng(13);
    for _ in 0..200 {
        w.append_blob(&blob_data(&mut rng, 8192, false), false)
            .await
            .unwrap();
    }
    for i in 0..10_000u64 {
        w.append_index(&i.to_be_bytes(), i).await.unwrap();
    }
    drop(w);
    let len = std::fs::metadata(&p).unwrap().len();
    assert!(len >= 512 * 1024, "blob chunks were flushed ({len} bytes)");
    let e = BlockFile::open(&p, MAGIC).await.unwrap_err();
    assert!(matches!(e, BlockFileError::NoHeader { .. }), "{e}");
    assert!(e.to_string().contains("partial"), "{e}");
}

#[tokio::test]
async fn wrong_magic_is_refused() {
    let dir = tempdir();
    let p = dir.path.join("f");
    sample(&p).await;
    let e = BlockFile::open(&p, MAGIC ^ 1).await.unwrap_err();
    assert!(
        matches!(e, BlockFileError::BadMagic { found, expected, .. } if found == MAGIC && expected == MAGIC ^ 1),
        "{e}"
    );
    assert!(BlockFile::open(&dir.path.join("missing"), MAGIC)
        .await
        .is_err());
}

/// Damage that keeps a valid checksum (a bug, not bit rot): the data may be
/// wrong, but decoding must never panic, loop, or over-allocate; structural
/// damage becomes an error.
#[tokio::test]
async fn resealed_damage_never_panics() {
    let dir = tempdir();
    let good = dir.path.join("good");
    let exp = sample(&good).await;
    let original = std::fs::read(&good).unwrap();
    let blocks = original.len() / BLOCK_SIZE;
    let bad = dir.path.join("bad");
    let mut rng = rng(14);
    let mut errors = 0;
    for blk in 0..blocks {
        // Node/header fields live in the first bytes; sample those densely.
        let mut positions: Vec<usize> = (0..40).collect();
        positions.extend((0..12).map(|_| rng.gen_range(0..PAYLOAD_SIZE)));
        for pos in positions {
            let mut data = original.clone();
            let block = &mut data[blk * BLOCK_SIZE..(blk + 1) * BLOCK_SIZE];
            block[pos] = rng.gen();
            blockfile::block::seal_block(blk as u32, block);
            std::fs::write(&bad, &data).unwrap();
            let Ok((file, _)) = BlockFile::open(&bad, MAGIC).await else {
                errors += 1;
                continue;
            };
            let v = file
                .read_blobs(&exp.refs, 64 * 1024, Concurrency::Sequential)
                .await;
            errors += v.results.iter().filter(|r| r.is_err()).count();
            for (k, _) in exp.index.iter().step_by(97) {
                errors += usize::from(file.get(k).await.is_err());
            }
            let mut it = file.iter_from(&[0u8; 32]).unwrap();
            let mut n = 0;
            while let Ok(Some(_)) = it.next().await {
                n += 1;
                assert!(n <= exp.index.len() * 2, "iteration does not terminate");
            }
        }
    }
    assert!(
        errors > 0,
        "structural damage was reported at least sometimes"
    );
}

/// Reads through the data cache verify what they cache: a damaged block is
/// reported (naming it) on every read, never cached, and the blobs that do
/// not touch it come back right, warm or cold.
#[tokio::test]
async fn cached_reads_never_cache_damage() {
    let dir = tempdir();
    let good = dir.path.join("good");
    let exp = sample(&good).await;
    let original = std::fs::read(&good).unwrap();
    let (file, _) = BlockFile::open(&good, MAGIC).await.unwrap();
    let blob_blocks = 1 + file.blob_stream_len().div_ceil(PAYLOAD_SIZE as u64) as usize;
    drop(file);
    let bad = dir.path.join("bad");
    let mut rng = rng(15);
    for blk in 1..blob_blocks {
        let mut data = original.clone();
        data[blk * BLOCK_SIZE + rng.gen_range(0..BLOCK_SIZE)] ^= 0x10;
        std::fs::write(&bad, &data).unwrap();
        let cache = Arc::new(LruBlockCache::new(1000));
        let opts = OpenOptions {
            cache: Some(cache.clone() as Arc<dyn BlockCache>),
            ..Default::default()
        };
        let (file, _) = BlockFile::open_with(&bad, MAGIC, opts).await.unwrap();
        for mode in [DataCache::Blocks, DataCache::Blobs] {
            let mut errors_per_pass = Vec::new();
            for _pass in 0..2 {
                let opts = ReadOptions {
                    max_io_size: 64 * 1024,
                    concurrency: Concurrency::Concurrent,
                    cache: mode,
                };
                let v = file.read_blobs_with(&exp.refs, opts).await;
                let mut errors = 0;
                for (res, want) in v.results.iter().zip(&exp.blobs) {
                    match res {
                        Ok(got) => assert_eq!(&got[..], &want[..]),
                        Err(e) => {
                            assert_names_block(e, &bad, blk as u32);
                            errors += 1;
                        }
                    }
                }
                errors_per_pass.push(errors);
            }
            assert!(errors_per_pass[0] > 0, "damage in block {blk} seen");
            assert_eq!(
                errors_per_pass[0], errors_per_pass[1],
                "{mode:?}: damage in block {blk} is not cached away"
            );
        }
    }
}
