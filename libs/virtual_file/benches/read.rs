//! Random 8 KiB reads from a 256 MiB file: one at a time and 32 at once
//! (`read_exact_at_many`), for each engine (std-fs, io-uring) and mode
//! (buffered, direct).
//!
//! The file is written once per run into a temporary directory under the
//! cargo target directory (removed at the end), fsynced so that direct reads
//! do not have to flush dirty pages. Buffered reads therefore come from the
//! page cache; direct reads go to the device. Offsets are multiples of 8 KiB
//! (the page size of the storage engine), so direct reads need no bounce
//! buffer. Each measurement runs the whole iteration count inside one
//! `block_on`, so the runtime entry cost is not part of the figures.
//!
//! Run: `cargo bench -p virtual_file --bench read -- --warm-up-time 1 --measurement-time 3`

use std::io::Write;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use criterion::{BenchmarkId, Criterion, Throughput};
use virtual_file::{IoBuffer, IoEngineKind, IoMode, OpenOptions, VirtualFile};

const FILE_SIZE: u64 = 256 * 1024 * 1024;
const READ_SIZE: usize = 8192;
const BATCH: usize = 32;

/// xorshift64*: deterministic, cheap random page offsets.
struct Offsets(u64);

impl Offsets {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r % (FILE_SIZE / READ_SIZE as u64)) * READ_SIZE as u64
    }
}

fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

fn write_data_file(path: &Utf8PathBuf) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let mut chunk = vec![0u8; 1 << 20];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    for _ in 0..FILE_SIZE / chunk.len() as u64 {
        file.write_all(&chunk)?;
    }
    file.sync_all()
}

async fn single_reads(file: &VirtualFile, offsets: &mut Offsets, iters: u64) -> Duration {
    let mut buf = IoBuffer::zeroed(READ_SIZE);
    let start = Instant::now();
    for _ in 0..iters {
        let (b, res) = file.read_exact_at(buf, offsets.next()).await;
        if let Err(e) = res {
            panic!("bench read failed: {e}");
        }
        buf = b;
    }
    start.elapsed()
}

async fn batched_reads(file: &VirtualFile, offsets: &mut Offsets, iters: u64) -> Duration {
    let mut bufs: Vec<IoBuffer> = (0..BATCH).map(|_| IoBuffer::zeroed(READ_SIZE)).collect();
    let start = Instant::now();
    for _ in 0..iters {
        let reqs = bufs.drain(..).map(|b| (offsets.next(), b)).collect();
        for (b, res) in file.read_exact_at_many(reqs).await {
            if let Err(e) = res {
                panic!("bench batched read failed: {e}");
            }
            bufs.push(b);
        }
    }
    start.elapsed()
}

fn main() {
    let dir = match tempfile::Builder::new()
        .prefix("vf-bench-")
        .tempdir_in(target_dir())
    {
        Ok(dir) => dir,
        Err(e) => panic!("bench temp dir under {:?}: {e}", target_dir()),
    };
    let path = match Utf8PathBuf::from_path_buf(dir.path().join("data")) {
        Ok(p) => p,
        Err(p) => panic!("non-UTF-8 temp path {p:?}"),
    };
    if let Err(e) = write_data_file(&path) {
        panic!("writing bench file {path}: {e}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    if let Err(reason) = virtual_file::io_uring_available() {
        eprintln!("io_uring unavailable, io-uring rows measure std-fs: {reason}");
    }

    let mut c = Criterion::default().configure_from_args();
    for (name, batch) in [("read_8k_single", false), ("read_8k_batch32", true)] {
        let mut group = c.benchmark_group(name);
        let per_iter = if batch { BATCH as u64 } else { 1 };
        group.throughput(Throughput::Bytes(per_iter * READ_SIZE as u64));
        for engine in [IoEngineKind::StdFs, IoEngineKind::IoUring] {
            for mode in [IoMode::Buffered, IoMode::Direct] {
                let file = rt.block_on(
                    OpenOptions::new()
                        .io_engine(engine)
                        .io_mode(mode)
                        .open(&path),
                );
                let file = match file {
                    Ok(f) => f,
                    Err(e) => panic!("open {path} {engine}/{mode}: {e}"),
                };
                let label = format!(
                    "{}/{}{}",
                    file.io_engine(),
                    mode,
                    if mode == IoMode::Direct && !file.is_direct() {
                        "(refused)"
                    } else {
                        ""
                    }
                );
                let mut offsets = Offsets(0x9E37_79B9_7F4A_7C15);
                group.bench_function(BenchmarkId::from_parameter(label), |b| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            if batch {
                                batched_reads(&file, &mut offsets, iters).await
                            } else {
                                single_reads(&file, &mut offsets, iters).await
                            }
                        })
                    })
                });
            }
        }
        group.finish();
    }
    c.final_summary();
    drop(dir);
}
