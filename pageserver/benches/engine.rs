//! Storage-engine benchmarks (criterion). Targets and results are recorded
//! in `docs/performance.md`. Run: `cargo bench -p pageserver --bench engine`.
//!
//! Besides timings, the bench prints the in-memory layer's index cost per
//! value, measured with a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pageserver::tenant::layer_map::LayerMap;
use pageserver::tenant::resources::{StorageResources, StorageSettings};
use pageserver::tenant::storage::TenantStorage;
use pageserver::tenant::storage_layer::inmemory_layer::InMemoryLayer;
use pageserver::tenant::storage_layer::layer_desc::{LayerName, PersistentLayerDesc};
use pageserver::tenant::timeline::Timeline;
use pageserver::walredo::TestRedo;
use pageserver_api::key::Key;
use pageserver_api::keyspace::KeySpace;
use pageserver_api::tenant_config::TenantConfigToml;
use pageserver_api::value::{Value, WalRecord};
use utils::generation::Generation;
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

struct Counting;
static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn key(i: u32) -> Key {
    Key {
        field1: 0,
        field2: 1663,
        field3: 5,
        field4: 3000,
        field5: 0,
        field6: i,
    }
}

fn small_record(b: u8) -> Value {
    Value::WalRecord(WalRecord::Test {
        append: Bytes::from(vec![b; 32]),
        will_init: false,
        clear: false,
    })
}

fn bench_dir() -> (tempfile::TempDir, Utf8PathBuf) {
    let tmp =
        tempfile::tempdir_in(std::env::var("BENCH_TMPDIR").unwrap_or_else(|_| "/var/tmp".into()))
            .or_else(|_| tempfile::tempdir())
            .expect("tempdir");
    let p = Utf8Path::from_path(tmp.path()).expect("utf8").to_owned();
    (tmp, p)
}

/// Index bytes per value of an in-memory layer: 1M values, 10 per key.
fn index_memory_per_value() {
    let rt = rt();
    let (_tmp, dir) = bench_dir();
    let per_key = 10u32;
    let keys = 100_000u32;
    let layer = rt
        .block_on(InMemoryLayer::create(&dir.join("eph"), Lsn(1)))
        .expect("layer");
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut lsn = 1u64;
    for round in 0..per_key {
        let batch: Vec<_> = (0..keys)
            .map(|i| {
                lsn += 1;
                (key(i), Lsn(lsn), small_record(round as u8))
            })
            .collect();
        let batch_bytes = ALLOCATED.load(Ordering::Relaxed);
        rt.block_on(layer.put_batch(&batch)).expect("put");
        drop(batch);
        let _ = batch_bytes;
    }
    let after = ALLOCATED.load(Ordering::Relaxed);
    let values = (per_key * keys) as f64;
    // The ephemeral file's tail buffer (256 KiB) is included: it is the
    // layer's only other heap allocation.
    eprintln!(
        "in-memory index: {:.1} bytes per value ({} values, {} per key)",
        (after - before) as f64 / values,
        values,
        per_key
    );
}

fn inmemory_put(c: &mut Criterion) {
    let rt = rt();
    let (_tmp, dir) = bench_dir();
    let mut group = c.benchmark_group("inmemory_put");
    let n = 10_000u32;
    group.throughput(Throughput::Elements(n as u64));
    let mut seq = 0u64;
    group.bench_function("10k_small_values_one_batch", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let layer = rt
                    .block_on(InMemoryLayer::create(
                        &dir.join(format!("eph{seq}")),
                        Lsn(1),
                    ))
                    .expect("layer");
                let batch: Vec<_> = (0..n)
                    .map(|i| (key(i % 1000), Lsn(2 + i as u64), small_record(1)))
                    .collect();
                let start = Instant::now();
                rt.block_on(layer.put_batch(&batch)).expect("put");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

fn layer_map_search(c: &mut Criterion) {
    // 100k layers: 1000 LSN slices of 100 key-partitioned L1 deltas, plus
    // an image layer every 10 slices.
    let mut map = LayerMap::default();
    let mut descs = Vec::new();
    for slice in 0..1000u64 {
        for part in 0..100u32 {
            let key_range = key(part * 1000)..key((part + 1) * 1000);
            if slice % 10 == 9 {
                descs.push(PersistentLayerDesc {
                    name: LayerName::Image {
                        key_range,
                        lsn: Lsn(slice * 100 + 99),
                    },
                    file_size: 1,
                });
            } else {
                descs.push(PersistentLayerDesc {
                    name: LayerName::Delta {
                        key_range,
                        lsn_range: Lsn(slice * 100)..Lsn(slice * 100 + 100),
                    },
                    file_size: 1,
                });
            }
        }
    }
    map.apply(descs, &[]);
    assert_eq!(map.len(), 100_000);
    let mut i = 0u64;
    c.bench_function("layer_map_search_100k", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let k = key((i % 100_000) as u32);
            let lsn = Lsn(i % 100_000 + 1);
            std::hint::black_box(map.search(k, lsn))
        })
    });
}

fn conf() -> TenantConfigToml {
    TenantConfigToml {
        checkpoint_distance: 1 << 30,
        compaction_threshold: 1,
        ..TenantConfigToml::default()
    }
}

/// A timeline whose 4096 pages are served from one image layer.
fn image_timeline(
    rt: &tokio::runtime::Runtime,
    dir: &Utf8Path,
) -> (Arc<TenantStorage>, Arc<Timeline>, Lsn) {
    let resources = StorageResources::new(StorageSettings {
        no_sync: true,
        ..StorageSettings::default()
    });
    let st = TenantStorage::new(
        TenantShardId::unsharded(TenantId::from_array([3; 16])),
        dir,
        Generation(1),
        conf(),
        resources,
        Arc::new(TestRedo),
    );
    let tl = rt
        .block_on(st.create_timeline(TimelineId::from_array([4; 16]), 15, Lsn(0x100)))
        .expect("timeline");
    let lsn = Lsn(0x200);
    let batch: Vec<_> = (0..4096u32)
        .map(|i| (key(i), lsn, Value::Image(Bytes::from(vec![i as u8; 8192]))))
        .collect();
    rt.block_on(async {
        tl.writer().await.put_batch(&batch, lsn).await.expect("put");
        tl.freeze_and_flush().await.expect("flush");
        tl.compact_forced().await.expect("compact");
    });
    (st, tl, lsn)
}

fn reads(c: &mut Criterion) {
    let rt = rt();
    let (_tmp, dir) = bench_dir();
    let (_st, tl, lsn) = image_timeline(&rt, &dir);
    let names = rt.block_on(tl.layer_names());
    assert!(
        names.iter().any(|n| !n.is_delta()),
        "an image layer exists: {names:?}"
    );
    let mut i = 0u32;
    c.bench_function("get_single_key_image_warm", |b| {
        b.iter(|| {
            i = (i + 997) % 4096;
            rt.block_on(tl.get(key(i), lsn)).expect("get")
        })
    });
    let mut j = 0u32;
    c.bench_function("get_vectored_32_blocks_image_warm", |b| {
        b.iter(|| {
            j = (j + 32 * 7) % (4096 - 32);
            let ks = KeySpace {
                ranges: vec![key(j)..key(j + 32)],
            };
            rt.block_on(tl.get_vectored(ks, lsn)).expect("get")
        })
    });
}

fn flush(c: &mut Criterion) {
    let rt = rt();
    let (_tmp, dir) = bench_dir();
    let mut group = c.benchmark_group("flush");
    let pages = 8192u32; // 64 MiB of page images
    group.throughput(Throughput::Bytes(pages as u64 * 8192));
    group.sample_size(10);
    let mut seq = 0u8;
    group.bench_function(BenchmarkId::new("l0_from_inmemory", "64MiB"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq = seq.wrapping_add(1);
                let resources = StorageResources::new(StorageSettings::default());
                let st = TenantStorage::new(
                    TenantShardId::unsharded(TenantId::from_array([seq; 16])),
                    &dir.join(format!("t{seq}")),
                    Generation(1),
                    conf(),
                    resources,
                    Arc::new(TestRedo),
                );
                let tl = rt
                    .block_on(st.create_timeline(TimelineId::from_array([1; 16]), 15, Lsn(0x100)))
                    .expect("timeline");
                let mut lsn = 0x100u64;
                for chunk in 0..(pages / 256) {
                    lsn += 8;
                    let batch: Vec<_> = (0..256u32)
                        .map(|i| {
                            (
                                key(chunk * 256 + i),
                                Lsn(lsn),
                                Value::Image(Bytes::from(vec![i as u8; 8192])),
                            )
                        })
                        .collect();
                    rt.block_on(async { tl.writer().await.put_batch(&batch, Lsn(lsn)).await })
                        .expect("put");
                }
                let start = Instant::now();
                rt.block_on(tl.freeze_and_flush()).expect("flush");
                total += start.elapsed();
                rt.block_on(st.shutdown(false));
                let _ = std::fs::remove_dir_all(dir.join(format!("t{seq}")));
            }
            total
        })
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    index_memory_per_value();
    inmemory_put(c);
    layer_map_search(c);
    reads(c);
    flush(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
