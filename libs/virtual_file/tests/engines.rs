//! Every engine × mode combination: roundtrips, exact-read semantics, batched
//! reads, unaligned direct reads. Engines are chosen per file with
//! `OpenOptions::io_engine`, so this binary never calls `init` (the defaults
//! apply).

mod common;

use std::io;
use std::time::Duration;

use common::{pattern, scratch, write_pattern_file};
use virtual_file::{IoBuffer, IoEngineKind, IoMode, OpenOptions, VirtualFile, IO_ALIGN};

const COMBOS: [(IoEngineKind, IoMode); 4] = [
    (IoEngineKind::StdFs, IoMode::Buffered),
    (IoEngineKind::StdFs, IoMode::Direct),
    (IoEngineKind::IoUring, IoMode::Buffered),
    (IoEngineKind::IoUring, IoMode::Direct),
];

/// Opens `path` read-only with `engine`/`mode` and checks the engine really
/// in effect: io-uring only if the kernel allows it, and then the reason for
/// the fallback must be reported.
async fn open_checked(
    path: &camino::Utf8Path,
    engine: IoEngineKind,
    mode: IoMode,
) -> io::Result<VirtualFile> {
    let file = OpenOptions::new()
        .io_engine(engine)
        .io_mode(mode)
        .open(path)
        .await?;
    match (engine, virtual_file::io_uring_available()) {
        (IoEngineKind::IoUring, Err(reason)) => {
            assert_eq!(file.io_engine(), IoEngineKind::StdFs, "fallback to std-fs");
            assert!(!reason.to_string().is_empty());
            eprintln!("io_uring unavailable here, fell back: {reason}");
        }
        _ => assert_eq!(file.io_engine(), engine),
    }
    if mode == IoMode::Direct && !file.is_direct() {
        assert!(
            virtual_file::stats().direct_fallbacks > 0,
            "direct refused must be counted"
        );
    }
    Ok(file)
}

#[tokio::test]
async fn io_uring_availability_matches_kernel_setting() {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    match virtual_file::io_uring_available() {
        Ok(()) => assert_ne!(disabled, 2, "io_uring_disabled=2 but a ring was set up"),
        Err(reason) => eprintln!("io_uring unavailable: {reason} (io_uring_disabled={disabled})"),
    }
}

#[tokio::test]
async fn roundtrip_every_engine_and_mode() -> io::Result<()> {
    let dir = scratch();
    let len = 5 * IO_ALIGN + 123;
    let path = dir.path.join("data");
    write_pattern_file(&path, 1, len).await?;
    for (engine, mode) in COMBOS {
        let file = open_checked(&path, engine, mode).await?;
        assert_eq!(file.len().await?, len as u64);
        let what = format!("{engine}/{mode}");
        // Aligned, unaligned, crossing blocks, and up to the exact end.
        for (offset, n) in [
            (0u64, IO_ALIGN),
            (IO_ALIGN as u64, 2 * IO_ALIGN),
            (1, 10),
            (4000, 300),
            (777, 3 * IO_ALIGN),
            ((len - 123) as u64, 123),
            (0, len),
        ] {
            let (buf, res) = file.read_exact_at(IoBuffer::zeroed(n), offset).await;
            res.map_err(|e| io::Error::other(format!("{what} read {offset}+{n}: {e}")))?;
            assert_eq!(buf.len(), n);
            assert_eq!(&buf[..], &pattern(1, offset, n)[..], "{what} {offset}+{n}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn short_file_is_unexpected_eof_everywhere() -> io::Result<()> {
    let dir = scratch();
    let path = dir.path.join("short");
    write_pattern_file(&path, 2, 1000).await?;
    for (engine, mode) in COMBOS {
        let file = open_checked(&path, engine, mode).await?;
        for (offset, n) in [(0u64, 1001usize), (999, 2), (5000, 10), (0, IO_ALIGN)] {
            let (buf, res) = file.read_exact_at(IoBuffer::zeroed(n), offset).await;
            assert_eq!(buf.len(), n, "buffer comes back whole");
            let err = res.expect_err("read past end must fail");
            assert_eq!(
                err.kind(),
                io::ErrorKind::UnexpectedEof,
                "{engine}/{mode}: {err}"
            );
        }
        // The last byte exactly is fine.
        let (buf, res) = file.read_exact_at(IoBuffer::zeroed(1), 999).await;
        res?;
        assert_eq!(buf[0], pattern(2, 999, 1)[0]);
    }
    Ok(())
}

#[tokio::test]
async fn unaligned_direct_reads_match_buffered() -> io::Result<()> {
    let dir = scratch();
    let len = 64 * 1024 + 17;
    let path = dir.path.join("direct");
    write_pattern_file(&path, 3, len).await?;
    for engine in [IoEngineKind::StdFs, IoEngineKind::IoUring] {
        let direct = open_checked(&path, engine, IoMode::Direct).await?;
        let buffered = open_checked(&path, engine, IoMode::Buffered).await?;
        let before = virtual_file::stats().bounce_reads;
        let mut rng_state = 12345u64;
        for _ in 0..200 {
            rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let offset = (rng_state >> 33) % len as u64;
            let n = ((rng_state >> 13) % 9000 + 1) as usize;
            let n = n.min(len - offset as usize);
            let (a, ra) = direct.read_exact_at(IoBuffer::zeroed(n), offset).await;
            let (b, rb) = buffered.read_exact_at(IoBuffer::zeroed(n), offset).await;
            ra?;
            rb?;
            assert_eq!(a, b, "{engine} {offset}+{n}");
            assert_eq!(&a[..], &pattern(3, offset, n)[..]);
        }
        if direct.is_direct() {
            assert!(virtual_file::stats().bounce_reads > before);
        }
    }
    Ok(())
}

#[tokio::test]
async fn batched_reads_keep_request_order() -> io::Result<()> {
    let dir = scratch();
    let len = 256 * 1024;
    let path = dir.path.join("batch");
    write_pattern_file(&path, 4, len).await?;
    for (engine, mode) in COMBOS {
        let file = open_checked(&path, engine, mode).await?;
        // 100 requests (more than one ring's worth of SQEs for small rings),
        // mixed aligned/unaligned/empty, one past the end.
        let mut reqs = Vec::new();
        for i in 0..100u64 {
            let offset = (i * 7919 * 13) % (len as u64 - 9000);
            let n = match i % 4 {
                0 => 8192,
                1 => 100 + i as usize,
                2 => 0,
                _ => IO_ALIGN,
            };
            reqs.push((offset, IoBuffer::zeroed(n)));
        }
        reqs.push((len as u64 - 10, IoBuffer::zeroed(20)));
        let expected: Vec<(u64, usize)> = reqs.iter().map(|(o, b)| (*o, b.len())).collect();
        let results = file.read_exact_at_many(reqs).await;
        assert_eq!(results.len(), expected.len());
        let last = expected.len() - 1;
        for (i, ((buf, res), (offset, n))) in results.into_iter().zip(expected).enumerate() {
            assert_eq!(buf.len(), n);
            if i == last {
                let err = res.expect_err("past end");
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
                continue;
            }
            res.map_err(|e| io::Error::other(format!("{engine}/{mode} #{i}: {e}")))?;
            assert_eq!(&buf[..], &pattern(4, offset, n)[..], "{engine}/{mode} #{i}");
        }
        assert!(file.read_exact_at_many(Vec::new()).await.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn read_write_files_for_both_engines() -> io::Result<()> {
    let dir = scratch();
    for engine in [IoEngineKind::StdFs, IoEngineKind::IoUring] {
        let path = dir.path.join(format!("rw-{engine}"));
        let file = OpenOptions::new()
            .write(true)
            .create_truncate()
            .io_engine(engine)
            .open(&path)
            .await?;
        // Append in odd-sized pieces, reading back as we go (the in-memory
        // layer pattern).
        let mut offset = 0u64;
        for i in 0..50usize {
            let piece = pattern(5, offset, 100 + i * 37);
            let (_, res) = file
                .write_all_at(IoBuffer::from_slice(&piece), offset)
                .await;
            res?;
            let (back, res) = file
                .read_exact_at(IoBuffer::zeroed(piece.len()), offset)
                .await;
            res?;
            assert_eq!(&back[..], &piece[..]);
            offset += piece.len() as u64;
        }
        file.sync_all().await?;
        assert_eq!(file.len().await?, offset);
        drop(file);
        // open_rw sees the data and can overwrite in place.
        let again = OpenOptions::new()
            .write(true)
            .io_engine(engine)
            .open(&path)
            .await?;
        let (_, res) = again.write_all_at(IoBuffer::from_slice(b"XYZ"), 10).await;
        res?;
        let (back, res) = again.read_exact_at(IoBuffer::zeroed(16), 4).await;
        res?;
        let mut want = pattern(5, 4, 16);
        want[6..9].copy_from_slice(b"XYZ");
        assert_eq!(&back[..], &want[..]);
        // create_rw truncates.
        let fresh = VirtualFile::create_rw(&path).await?;
        assert_eq!(fresh.len().await?, 0);
    }
    Ok(())
}

#[tokio::test]
async fn constructors_enforce_existence_rules() -> io::Result<()> {
    let dir = scratch();
    let path = dir.path.join("f");
    let kind = |r: io::Result<VirtualFile>| r.err().map(|e| e.kind());
    assert_eq!(
        kind(VirtualFile::open(&path).await),
        Some(io::ErrorKind::NotFound)
    );
    assert_eq!(
        kind(VirtualFile::open_rw(&path).await),
        Some(io::ErrorKind::NotFound)
    );
    let created = VirtualFile::create_new(&path).await?;
    assert_eq!(created.path(), path);
    assert_eq!(
        kind(VirtualFile::create_new(&path).await),
        Some(io::ErrorKind::AlreadyExists)
    );
    // A read-only file refuses writes (the kernel says EBADF).
    let ro = VirtualFile::open(&path).await?;
    let (_, res) = ro.write_all_at(IoBuffer::from_slice(b"no"), 0).await;
    assert!(res.is_err());
    // Without init, layer reads use the default (buffered) mode.
    assert_eq!(virtual_file::current().io_mode, IoMode::Buffered);
    assert!(!VirtualFile::open_for_layer_read(&path).await?.is_direct());
    Ok(())
}

#[tokio::test]
async fn cancelled_reads_do_not_break_the_engine() -> io::Result<()> {
    let dir = scratch();
    let path = dir.path.join("cancel");
    write_pattern_file(&path, 6, 1 << 20).await?;
    for (engine, mode) in COMBOS {
        let file = open_checked(&path, engine, mode).await?;
        for _ in 0..20 {
            // Polled once, then dropped with the read possibly in flight.
            let fut = file.read_exact_at(IoBuffer::zeroed(1 << 20), 0);
            let _ = tokio::time::timeout(Duration::ZERO, fut).await;
        }
        let (buf, res) = file.read_exact_at(IoBuffer::zeroed(4096), 8192).await;
        res?;
        assert_eq!(&buf[..], &pattern(6, 8192, 4096)[..]);
    }
    Ok(())
}

/// Buffered reads try the OS page cache on the calling thread first: reads
/// of evicted pages still go through the engine and return the right bytes,
/// and reads of cached pages are counted as served without it.
#[tokio::test]
async fn page_cache_fast_path_and_fallback() -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = scratch();
    let len = 512 * 1024;
    let path = dir.path.join("cached");
    write_pattern_file(&path, 7, len).await?;
    for engine in [IoEngineKind::StdFs, IoEngineKind::IoUring] {
        let file = open_checked(&path, engine, IoMode::Buffered).await?;
        // Drop the file's clean pages so the first pass misses the cache
        // (advisory: the kernel may keep some, which only makes them hits).
        let raw = std::fs::File::open(&path)?;
        raw.sync_all()?;
        // SAFETY: plain advisory syscall on an fd this test owns.
        let rc = unsafe { libc::posix_fadvise(raw.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise");
        let offsets: Vec<u64> = (0..32u64).map(|i| i * 16_000).collect();
        for pass in 0..2 {
            let before = virtual_file::stats().cached_reads;
            let got = file
                .read_exact_at_many(
                    offsets
                        .iter()
                        .map(|o| (*o, IoBuffer::zeroed(8192)))
                        .collect(),
                )
                .await;
            assert_eq!(got.len(), offsets.len());
            for (offset, (buf, res)) in offsets.iter().zip(got) {
                res?;
                assert_eq!(
                    &buf[..],
                    &pattern(7, *offset, 8192)[..],
                    "{engine} pass {pass} at {offset}"
                );
            }
            let served = virtual_file::stats().cached_reads - before;
            if pass == 1 {
                assert!(
                    served >= offsets.len() as u64,
                    "{engine}: second pass found {served} of {} reads in the page cache",
                    offsets.len()
                );
            }
        }
        // A read past the end is still an error, not a fast-path success.
        let (_, res) = file
            .read_exact_at(IoBuffer::zeroed(8192), len as u64 - 100)
            .await;
        assert_eq!(
            res.expect_err("past the end").kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
    Ok(())
}
