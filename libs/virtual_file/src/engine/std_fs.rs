//! The std-fs engine: blocking `pread`/`pwrite`/`fsync` on tokio's blocking
//! thread pool.
//!
//! Owns nothing across calls. Each operation moves its `Arc<File>` and
//! buffer into a `spawn_blocking` closure and gets both back from it, so a
//! cancelled caller never leaves the kernel writing into freed memory (the
//! closure runs to completion and drops the buffer itself). `read_many`
//! spreads a batch over up to `BATCH_PARALLELISM` closures, so it is served
//! by several pool threads at once, each reading its share in order.
//!
//! Callers: `engine::Engine` only.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::{fill_missing, lost_task, may_continue, ReadResult};
use crate::buffer::IoBuffer;

/// Reads into `buf` at `offset` until full or end of file.
pub(crate) fn read_full_blocking(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    direct: bool,
) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                if done < buf.len() && !may_continue(direct, offset, done) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Most blocking-pool tasks one batch is spread over. Each task reads its
/// share one after another: enough parallelism to keep a device queue busy,
/// without paying a thread hand-off per 8 KiB page-cache read.
const BATCH_PARALLELISM: usize = 8;

pub(crate) async fn read_many(
    file: Arc<File>,
    reads: Vec<(u64, IoBuffer)>,
    direct: bool,
) -> Vec<ReadResult> {
    let n = reads.len();
    let tasks_wanted = n.clamp(1, BATCH_PARALLELISM);
    // Request `i` goes to task `i % tasks_wanted`, keeping its index.
    let mut shares: Vec<Vec<(usize, u64, IoBuffer)>> =
        (0..tasks_wanted).map(|_| Vec::new()).collect();
    for (i, (offset, buf)) in reads.into_iter().enumerate() {
        shares[i % tasks_wanted].push((i, offset, buf));
    }
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let file = Arc::clone(&file);
            let lens: Vec<(usize, usize)> = share.iter().map(|(i, _, b)| (*i, b.len())).collect();
            let task = tokio::task::spawn_blocking(move || {
                share
                    .into_iter()
                    .map(|(i, offset, mut buf)| {
                        let res = read_full_blocking(&file, &mut buf, offset, direct);
                        (i, (buf, res))
                    })
                    .collect::<Vec<_>>()
            });
            (lens, task)
        })
        .collect();
    let mut slots: Vec<Option<ReadResult>> = (0..n).map(|_| None).collect();
    for (lens, task) in tasks {
        match task.await {
            Ok(done) => {
                for (i, result) in done {
                    slots[i] = Some(result);
                }
            }
            Err(e) => {
                let msg = lost_task(e).to_string();
                for (i, len) in lens {
                    slots[i] = Some((IoBuffer::zeroed(len), Err(io::Error::other(msg.clone()))));
                }
            }
        }
    }
    fill_missing(slots)
}

pub(crate) async fn write_all(
    file: Arc<File>,
    buf: IoBuffer,
    offset: u64,
) -> (IoBuffer, io::Result<()>) {
    let len = buf.len();
    let task = tokio::task::spawn_blocking(move || {
        let res = file.write_all_at(&buf, offset);
        (buf, res)
    });
    match task.await {
        Ok(out) => out,
        Err(e) => (IoBuffer::zeroed(len), Err(lost_task(e))),
    }
}

pub(crate) async fn fsync(file: Arc<File>) -> io::Result<()> {
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(lost_task)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_full_stops_at_eof() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789")?;
        let file = File::open(&path)?;
        let mut buf = [0u8; 8];
        assert_eq!(read_full_blocking(&file, &mut buf, 4, false)?, 6);
        assert_eq!(&buf[..6], b"456789");
        assert_eq!(read_full_blocking(&file, &mut buf, 100, false)?, 0);
        Ok(())
    }
}
