//! Block file benchmarks: write throughput, warm index lookups, vectored reads
//! (from the OS page cache, and through the data cache).
//!
//! Run: `cargo bench -p blockfile --bench blockfile -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::{Duration, Instant};

use blockfile::{
    BlobRef, BlockCache, BlockFile, BlockFileWriter, Concurrency, DataCache, LruBlockCache,
    OpenOptions, ReadOptions,
};
use camino::{Utf8Path, Utf8PathBuf};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};

const MAGIC: u32 = 0xbe9c_0001;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(d.path().to_owned()).unwrap();
    (d, p)
}

fn key(i: u64) -> [u8; 26] {
    let mut k = [0u8; 26];
    k[1..5].copy_from_slice(&1663u32.to_be_bytes());
    k[10..18].copy_from_slice(&(i / 8).to_be_bytes());
    k[18..26].copy_from_slice(&(0x100_0000 + (i % 8) * 64).to_be_bytes());
    k
}

/// 8 KiB blobs, each with an index entry, like an image layer.
async fn write_pages(path: &Utf8Path, pages: &[Vec<u8>]) -> u64 {
    let mut w = BlockFileWriter::create(path, MAGIC, 26).await.unwrap();
    for (i, p) in pages.iter().enumerate() {
        let r = w.append_blob(p, false).await.unwrap();
        w.append_index(&key(i as u64), r.0).await.unwrap();
    }
    w.finish(b"bench").await.unwrap().size
}

fn bench_write(c: &mut Criterion) {
    let rt = runtime();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let total = 64usize << 20;
    let pages: Vec<Vec<u8>> = (0..total / 8192)
        .map(|_| (0..8192).map(|_| rng.gen()).collect())
        .collect();
    let (_d, dir) = tempdir();
    let mut g = c.benchmark_group("write");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(total as u64));
    let mut n = 0u64;
    g.bench_function("64MiB_8KiB_blobs_with_index", |b| {
        b.iter_batched(
            || {
                n += 1;
                dir.join(format!("w{n}"))
            },
            |path| {
                rt.block_on(write_pages(&path, &pages));
                std::fs::remove_file(&path).unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let rt = runtime();
    let (_d, dir) = tempdir();
    let path = dir.join("idx");
    let n = 1_000_000u64;
    rt.block_on(async {
        let mut w = BlockFileWriter::create(&path, MAGIC, 26).await.unwrap();
        for i in 0..n {
            w.append_index(&key(i), i).await.unwrap();
        }
        w.finish(b"").await.unwrap();
    });
    let cache = Arc::new(LruBlockCache::new(100_000));
    let opts = OpenOptions {
        cache: Some(cache.clone() as Arc<dyn BlockCache>),
        ..Default::default()
    };
    let (file, _) = rt
        .block_on(BlockFile::open_with(&path, MAGIC, opts))
        .unwrap();
    // Warm the cache with every index block.
    rt.block_on(async {
        let mut it = file.iter_from(&[0u8; 26]).unwrap();
        while it.next().await.unwrap().is_some() {}
        for i in (0..n).step_by(97) {
            file.get(&key(i)).await.unwrap();
        }
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut g = c.benchmark_group("btree");
    g.bench_function("get_1M_keys_warm_cache", |b| {
        b.iter_custom(|iters| {
            let keys: Vec<[u8; 26]> = (0..iters).map(|_| key(rng.gen_range(0..n))).collect();
            rt.block_on(async {
                let start = Instant::now();
                for k in &keys {
                    assert!(file.get(k).await.unwrap().is_some());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("iter_from_100_entries_warm_cache", |b| {
        b.iter_custom(|iters| {
            let keys: Vec<[u8; 26]> = (0..iters).map(|_| key(rng.gen_range(0..n - 200))).collect();
            rt.block_on(async {
                let start = Instant::now();
                for k in &keys {
                    let mut it = file.iter_from(k).unwrap();
                    for _ in 0..100 {
                        it.next().await.unwrap().unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    let s = cache.stats(blockfile::ContentKind::IndexBlock);
    eprintln!("index cache: {s:?}");
}

fn bench_vectored(c: &mut Criterion) {
    let rt = runtime();
    let (_d, dir) = tempdir();
    let path = dir.join("v");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let refs: Vec<BlobRef> = rt.block_on(async {
        let mut w = BlockFileWriter::create(&path, MAGIC, 26).await.unwrap();
        let mut refs = Vec::new();
        for _ in 0..4096 {
            let page: Vec<u8> = (0..8192).map(|_| rng.gen()).collect();
            refs.push(w.append_blob(&page, false).await.unwrap());
        }
        w.finish(b"").await.unwrap();
        refs
    });
    let (file, _) = rt.block_on(BlockFile::open(&path, MAGIC)).unwrap();
    // Warm the OS page cache.
    let _ = std::fs::read(&path).unwrap();
    let mut g = c.benchmark_group("vectored");
    g.throughput(Throughput::Bytes(32 * 8192));
    let cases = [
        (
            "32x8KiB_adjacent_seq_maxio128k",
            128 * 1024,
            Concurrency::Sequential,
        ),
        (
            "32x8KiB_adjacent_conc_maxio128k",
            128 * 1024,
            Concurrency::Concurrent,
        ),
        (
            "32x8KiB_adjacent_seq_maxio1M",
            1 << 20,
            Concurrency::Sequential,
        ),
    ];
    for (name, max_io, conc) in cases {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let s = rng.gen_range(0..refs.len() - 32);
                        let want = &refs[s..s + 32];
                        let start = Instant::now();
                        let r = file.read_blobs(want, max_io, conc).await;
                        total += start.elapsed();
                        assert!(r
                            .results
                            .iter()
                            .all(|x| x.as_ref().is_ok_and(|b| b.len() == 8192)));
                    }
                    total
                })
            })
        });
    }
    g.bench_function("32x8KiB_adjacent_single_reads", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let s = rng.gen_range(0..refs.len() - 32);
                    let start = Instant::now();
                    for r in &refs[s..s + 32] {
                        assert_eq!(file.read_blob(*r).await.unwrap().len(), 8192);
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    // Through the data cache, warm (every block/blob cached): no IO.
    let cache = Arc::new(LruBlockCache::new(20_000));
    let opts = OpenOptions {
        cache: Some(cache.clone() as Arc<dyn BlockCache>),
        ..Default::default()
    };
    let (cached, _) = rt
        .block_on(BlockFile::open_with(&path, MAGIC, opts))
        .unwrap();
    for (name, mode, n) in [
        ("32x8KiB_adjacent_cached_blocks", DataCache::Blocks, 32),
        ("32x8KiB_adjacent_cached_blobs", DataCache::Blobs, 32),
        ("1x8KiB_cached_blocks", DataCache::Blocks, 1),
        ("1x8KiB_cached_blobs", DataCache::Blobs, 1),
    ] {
        let opts = ReadOptions {
            max_io_size: 1 << 20,
            concurrency: Concurrency::Concurrent,
            cache: mode,
        };
        rt.block_on(cached.read_blobs_with(&refs, opts));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let s = rng.gen_range(0..refs.len() - n);
                        let start = Instant::now();
                        let r = cached.read_blobs_with(&refs[s..s + n], opts).await;
                        total += start.elapsed();
                        assert_eq!(r.stats.ios, 0);
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_write, bench_lookup, bench_vectored);
criterion_main!(benches);
