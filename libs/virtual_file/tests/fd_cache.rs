//! The node-wide fd table under pressure: this binary initialises the crate
//! with a table of only 4 fds and works with many more files.

mod common;

use std::io;
use std::sync::Arc;

use camino::Utf8Path;
use common::{pattern, scratch, write_pattern_file};
use virtual_file::{Config, IoBuffer, IoEngineKind, IoMode, OpenOptions, VirtualFile};

const MAX_FDS: usize = 4;

/// Tests in this binary share the 4-slot table; run them one at a time so
/// one test's churn does not evict another's fds mid-assertion.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Initialises once for the whole binary (tests run in parallel threads).
fn init_small_table() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let outcome = virtual_file::init(Config {
            max_file_descriptors: MAX_FDS,
            io_engine: IoEngineKind::StdFs,
            io_mode: IoMode::Buffered,
        });
        assert!(outcome.is_ok(), "first init must apply: {outcome:?}");
    });
    assert_eq!(virtual_file::current().max_file_descriptors, MAX_FDS);
}

/// Fds of this process that point into `dir`.
fn open_fds_under(dir: &Utf8Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Ok(target) = std::fs::read_link(entry?.path()) {
            if target.starts_with(dir) {
                n += 1;
            }
        }
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_files_read_concurrently_through_four_fds() -> io::Result<()> {
    let _serial = SERIAL.lock().await;
    init_small_table();
    let dir = scratch();
    const FILES: u64 = 50;
    const LEN: usize = 64 * 1024;
    let mut files = Vec::new();
    for i in 0..FILES {
        let path = dir.path.join(format!("f{i}"));
        write_pattern_file(&path, i, LEN).await?;
        // Half the files through io_uring (std-fs if unavailable), a few
        // direct: all share the one table.
        let engine = if i % 2 == 0 {
            IoEngineKind::StdFs
        } else {
            IoEngineKind::IoUring
        };
        let mode = if i % 5 == 0 {
            IoMode::Direct
        } else {
            IoMode::Buffered
        };
        let file = OpenOptions::new()
            .io_engine(engine)
            .io_mode(mode)
            .open(&path)
            .await?;
        files.push((i, file));
    }
    assert!(open_fds_under(&dir.path)? <= MAX_FDS);
    let before = virtual_file::stats();
    let files = Arc::new(files);
    let mut tasks = Vec::new();
    for t in 0..200u64 {
        let files = Arc::clone(&files);
        tasks.push(tokio::spawn(async move {
            let mut state = t.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            for round in 0..10u64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let (seed, file) = &files[((t + round * 7) % FILES) as usize];
                let offset = state % (LEN as u64 - 5000);
                let n = (state >> 40) as usize % 5000 + 1;
                if round % 3 == 0 {
                    let reqs = vec![(offset, IoBuffer::zeroed(n)), (0, IoBuffer::zeroed(8192))];
                    let out = file.read_exact_at_many(reqs).await;
                    for ((buf, res), (o, len)) in out.into_iter().zip([(offset, n), (0, 8192)]) {
                        res?;
                        if buf[..] != pattern(*seed, o, len)[..] {
                            return Err(io::Error::other(format!("file {seed} {o}+{len} wrong")));
                        }
                    }
                } else {
                    let (buf, res) = file.read_exact_at(IoBuffer::zeroed(n), offset).await;
                    res?;
                    if buf[..] != pattern(*seed, offset, n)[..] {
                        return Err(io::Error::other(format!("file {seed} {offset}+{n} wrong")));
                    }
                }
            }
            Ok::<(), io::Error>(())
        }));
    }
    for task in tasks {
        task.await.map_err(io::Error::other)??;
    }
    let after = virtual_file::stats();
    assert!(
        after.evictions > before.evictions,
        "{before:?} -> {after:?}"
    );
    assert!(after.opens > before.opens, "evicted files were reopened");
    assert!(after.fd_cache_misses > before.fd_cache_misses);
    assert_eq!(after.fd_table_capacity, MAX_FDS as u64);
    assert!(after.cached_fds <= MAX_FDS as u64);
    assert!(after.reads - before.reads >= 200 * 10);
    // Once nothing is in flight, evicted fds are really closed.
    assert!(open_fds_under(&dir.path)? <= MAX_FDS);
    Ok(())
}

#[tokio::test]
async fn dropping_the_last_clone_closes_the_fd() -> io::Result<()> {
    let _serial = SERIAL.lock().await;
    init_small_table();
    let dir = scratch();
    let path = dir.path.join("single");
    write_pattern_file(&path, 9, 4096).await?;
    let file = VirtualFile::open(&path).await?;
    let clone = file.clone();
    drop(file);
    let (buf, res) = clone.read_exact_at(IoBuffer::zeroed(10), 0).await;
    res?;
    assert_eq!(&buf[..], &pattern(9, 0, 10)[..]);
    assert_eq!(open_fds_under(&dir.path)?, 1);
    drop(clone);
    assert_eq!(open_fds_under(&dir.path)?, 0);
    Ok(())
}

#[tokio::test]
async fn evicted_file_reopens_and_sees_writes() -> io::Result<()> {
    let _serial = SERIAL.lock().await;
    init_small_table();
    let dir = scratch();
    let path = dir.path.join("rw");
    let file = VirtualFile::create_rw(&path).await?;
    let (_, res) = file.write_all_at(IoBuffer::from_slice(b"before"), 0).await;
    res?;
    // Push it out of the table with other files.
    let mut others = Vec::new();
    for i in 0..(2 * MAX_FDS) {
        let p = dir.path.join(format!("other{i}"));
        others.push(VirtualFile::create_rw(&p).await?);
    }
    let misses = virtual_file::stats().fd_cache_misses;
    // Reopen must not truncate (create_rw only truncates on first open).
    let (_, res) = file.write_all_at(IoBuffer::from_slice(b"-after"), 6).await;
    res?;
    file.sync_all().await?;
    assert!(virtual_file::stats().fd_cache_misses > misses);
    let (buf, res) = file.read_exact_at(IoBuffer::zeroed(12), 0).await;
    res?;
    assert_eq!(&buf[..], b"before-after");
    // A file deleted while evicted cannot be reopened.
    std::fs::remove_file(&path)?;
    for o in &others {
        let (_, res) = o.write_all_at(IoBuffer::from_slice(b"x"), 0).await;
        res?;
    }
    let (_, res) = file.read_exact_at(IoBuffer::zeroed(1), 0).await;
    assert_eq!(res.err().map(|e| e.kind()), Some(io::ErrorKind::NotFound));
    Ok(())
}
