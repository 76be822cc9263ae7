//! Vectored blob reads: plan, coalesce, issue, verify, slice.
//!
//! [`read_blobs`] serves many [`BlobRef`]s with few large IOs:
//!
//! 0. **Cache.** With a block cache on the file, [`ReadOptions::cache`]
//!    picks what is looked up first and kept afterwards:
//!    - [`DataCache::Blocks`]: a blob whose blocks are all cached
//!      ([`ContentKind::DataBlock`], verified when they were read) is
//!      assembled from them without IO or checksum work (a blob inside one
//!      block is a zero-copy slice of it); every verified block the IOs
//!      below bring in is added. Suits many small blobs (delta values).
//!    - [`DataCache::Blobs`]: a cached decoded blob ([`ContentKind::Blob`],
//!      keyed by its offset) is returned as is, without copying or
//!      decompressing; every blob read below is added. Suits blobs of about
//!      a block (page images).
//!
//!    The blobs the cache does not serve go through the steps below.
//! 1. **Plan.** Requests are sorted and deduplicated. A blob's length is only
//!    known once its header is read, so the planner bounds each blob's end by
//!    the smallest of: the next requested blob's start (blobs never overlap),
//!    its start plus the largest stored blob of the file (kept in the
//!    header), and the end of the blob stream. Consecutive blobs join one IO
//!    when at most [`MAX_GAP_BLOCKS`] unneeded blocks separate them and the
//!    IO stays within `max_io_size` (counting the joining blob's likely
//!    end, so a full IO does not cut its last blob). The last blob of an IO
//!    is read speculatively up to [`SPECULATIVE_TAIL`] bytes, which covers
//!    an 8 KiB page image and its header in the same IO.
//! 2. **Issue.** IOs run one after another or, with
//!    [`Concurrency::Concurrent`], as tokio tasks (at most [`MAX_IN_FLIGHT`]
//!    at a time). Every block's checksum is verified inside the IO task.
//! 3. **Slice.** Each blob's header is decoded and its bytes are copied out,
//!    skipping the checksum trailers. A blob that runs past the end of its IO
//!    gets exact follow-up IOs (also at most `max_io_size` each). A damaged
//!    block fails only the blobs that touch it.
//!
//! [`VectoredStats`] reports the IOs issued and the blobs served from the
//! cache, so tests and metrics can see the coalescing. Called by
//! [`crate::BlockFile::read_blobs`], [`crate::BlockFile::read_blobs_with`]
//! and [`crate::BlockFile::read_blob`].

use std::collections::HashMap;

use bytes::Bytes;
use camino::Utf8Path;
use virtual_file::{IoBuffer, VirtualFile};

use crate::blob::{
    decode_header, decompress_bounded, header_len, BlobHeader, BlobRef, Compression,
    DecompressError,
};
use crate::block::{block_offset, verify_block, BlockNo, BLOCK_SIZE, PAYLOAD_SIZE};
use crate::cache::{BlockCache, ContentKind};
use crate::error::{BlockFileError, Result};
use crate::reader::Inner;

/// Default upper bound of one coalesced IO.
pub const DEFAULT_MAX_IO_SIZE: usize = 128 * 1024;

/// Unneeded blocks an IO may read to join two blobs.
pub const MAX_GAP_BLOCKS: BlockNo = 1;

/// Bytes read past the start of the last blob of an IO when its length is
/// unknown: a full 8 KiB page plus a long header.
pub const SPECULATIVE_TAIL: u64 = 8192 + 4;

/// IOs in flight at once with [`Concurrency::Concurrent`].
pub const MAX_IN_FLIGHT: usize = 16;

/// How the IOs of one vectored read are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// One IO after another on the calling task.
    Sequential,
    /// All IOs as concurrent tokio tasks (bounded by [`MAX_IN_FLIGHT`]).
    Concurrent,
}

/// How one vectored read is done; see [`crate::BlockFile::read_blobs_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Upper bound of one coalesced IO (at least one block is read).
    pub max_io_size: usize,
    pub concurrency: Concurrency,
    /// What to look up in, and keep in, the file's block cache (if it has
    /// one). Leave off for one-off scans (compaction) that would only push
    /// hotter entries out.
    pub cache: DataCache,
}

/// Use of the block cache by a blob read; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataCache {
    /// Neither look up nor keep data.
    #[default]
    Off,
    /// Cache verified blob-area blocks ([`ContentKind::DataBlock`]).
    Blocks,
    /// Cache decoded blobs by offset ([`ContentKind::Blob`]).
    Blobs,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_io_size: DEFAULT_MAX_IO_SIZE,
            concurrency: Concurrency::Sequential,
            cache: DataCache::Off,
        }
    }
}

/// What one vectored read did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VectoredStats {
    /// IOs issued, follow-ups included.
    pub ios: usize,
    /// Of those, IOs issued for blobs longer than their planned read.
    pub followup_ios: usize,
    /// Blocks read in total.
    pub blocks_read: u64,
    /// Distinct blobs served from the cache (as blobs, or entirely from
    /// cached blocks).
    pub cached_blobs: usize,
}

/// Results (in request order) and statistics of one vectored read.
#[derive(Debug)]
pub struct VectoredRead {
    pub results: Vec<Result<Bytes>>,
    pub stats: VectoredStats,
}

fn stream_blk(off: u64) -> BlockNo {
    (1 + off / PAYLOAD_SIZE as u64) as BlockNo
}

/// First block after the one holding stream byte `end - 1`.
fn stream_end_blk(end: u64) -> BlockNo {
    stream_blk(end - 1) + 1
}

/// Stream offset where block `blk` (of the blob area) begins.
fn blk_stream_start(blk: BlockNo) -> u64 {
    u64::from(blk - 1) * PAYLOAD_SIZE as u64
}

#[derive(Debug, Clone, Copy)]
struct IoJob {
    first_blk: BlockNo,
    nblocks: BlockNo,
}

/// An IO's buffer, handed back to the read-buffer pool when the read is
/// done with it.
struct PooledBuf(Option<IoBuffer>);

impl std::ops::Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.0.take() {
            buf.recycle();
        }
    }
}

/// A finished IO: its buffer, or the IO error, and blocks that failed
/// verification.
struct IoOutcome {
    job: IoJob,
    buf: std::result::Result<PooledBuf, BlockFileError>,
    bad: Vec<(BlockNo, String)>,
}

async fn do_io(file: VirtualFile, job: IoJob) -> IoOutcome {
    let offset = block_offset(job.first_blk);
    let (buf, res) = file
        .read_exact_at(
            IoBuffer::for_read(job.nblocks as usize * BLOCK_SIZE),
            offset,
        )
        .await;
    let buf = PooledBuf(Some(buf));
    if let Err(e) = res {
        return IoOutcome {
            job,
            buf: Err(BlockFileError::io(file.path(), "reading blobs", offset, e)),
            bad: Vec::new(),
        };
    }
    let mut bad = Vec::new();
    for (i, block) in buf.chunks_exact(BLOCK_SIZE).enumerate() {
        let blkno = job.first_blk + i as BlockNo;
        if let Err(reason) = verify_block(blkno, block) {
            bad.push((blkno, reason));
        }
    }
    IoOutcome {
        job,
        buf: Ok(buf),
        bad,
    }
}

async fn run_ios(inner: &Inner, jobs: &[IoJob], concurrency: Concurrency) -> Vec<IoOutcome> {
    if concurrency == Concurrency::Sequential || jobs.len() <= 1 {
        let mut out = Vec::with_capacity(jobs.len());
        for &job in jobs {
            out.push(do_io(inner.file.clone(), job).await);
        }
        return out;
    }
    let mut out: Vec<Option<IoOutcome>> = jobs.iter().map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut ids = HashMap::new();
    let mut next = 0;
    while next < jobs.len() || !set.is_empty() {
        while next < jobs.len() && set.len() < MAX_IN_FLIGHT {
            let job = jobs[next];
            let handle = set.spawn(do_io(inner.file.clone(), job));
            ids.insert(handle.id(), next);
            next += 1;
        }
        match set.join_next_with_id().await {
            Some(Ok((id, outcome))) => out[ids[&id]] = Some(outcome),
            Some(Err(e)) => {
                let i = ids[&e.id()];
                out[i] = Some(IoOutcome {
                    job: jobs[i],
                    buf: Err(BlockFileError::io(
                        &inner.path,
                        "reading blobs",
                        block_offset(jobs[i].first_blk),
                        std::io::Error::other(format!("IO task failed: {e}")),
                    )),
                    bad: Vec::new(),
                });
            }
            None => break,
        }
    }
    out.into_iter()
        .map(|o| o.expect("every job completes"))
        .collect()
}

impl IoOutcome {
    /// Stream bytes this IO covers: `[start, end)`.
    fn coverage(&self, stream_len: u64) -> (u64, u64) {
        let start = blk_stream_start(self.job.first_blk);
        let end = blk_stream_start(self.job.first_blk + self.job.nblocks).min(stream_len);
        (start, end)
    }

    /// Appends stream bytes `[start, end)` (inside the coverage) to `dst`.
    fn copy_range(&self, path: &Utf8Path, start: u64, end: u64, dst: &mut Vec<u8>) -> Result<()> {
        let buf = self.buf.as_ref().map_err(Clone::clone)?;
        let mut off = start;
        while off < end {
            let blk = stream_blk(off);
            if let Some((_, reason)) = self.bad.iter().find(|(b, _)| *b == blk) {
                return Err(BlockFileError::corrupt(path, blk, reason.clone()));
            }
            let pos = (off % PAYLOAD_SIZE as u64) as usize;
            let n = ((end - off) as usize).min(PAYLOAD_SIZE - pos);
            let at = (blk - self.job.first_blk) as usize * BLOCK_SIZE + pos;
            dst.extend_from_slice(&buf[at..at + n]);
            off += n as u64;
        }
        Ok(())
    }

    /// Decodes the header of the blob at `off` (its block is in this IO).
    fn blob_header(&self, path: &Utf8Path, off: u64, stream_len: u64) -> Result<BlobHeader> {
        let buf = self.buf.as_ref().map_err(Clone::clone)?;
        let blk = stream_blk(off);
        if let Some((_, reason)) = self.bad.iter().find(|(b, _)| *b == blk) {
            return Err(BlockFileError::corrupt(path, blk, reason.clone()));
        }
        let at = (blk - self.job.first_blk) as usize * BLOCK_SIZE;
        parse_header(path, &buf[at..at + BLOCK_SIZE], off, stream_len)
    }

    /// Adds the job's verified blocks to the cache.
    fn cache_blocks(&self, cache: &dyn BlockCache, file_id: u64) {
        let Ok(buf) = &self.buf else { return };
        for (i, block) in buf.chunks_exact(BLOCK_SIZE).enumerate() {
            let blkno = self.job.first_blk + i as BlockNo;
            if self.bad.iter().all(|(b, _)| *b != blkno) {
                cache.insert(
                    ContentKind::DataBlock,
                    file_id,
                    blkno,
                    Bytes::copy_from_slice(block),
                );
            }
        }
    }
}

/// Decodes and checks the header of the blob at stream offset `off`;
/// `block` is the (verified) block holding it.
fn parse_header(path: &Utf8Path, block: &[u8], off: u64, stream_len: u64) -> Result<BlobHeader> {
    let blk = stream_blk(off);
    let pos = (off % PAYLOAD_SIZE as u64) as usize;
    let hlen = header_len(block[pos]);
    if pos + hlen > PAYLOAD_SIZE {
        return Err(BlockFileError::corrupt(
            path,
            blk,
            format!("blob header at offset {off} crosses the block boundary"),
        ));
    }
    let h = decode_header(&block[pos..pos + hlen])
        .map_err(|r| BlockFileError::corrupt(path, blk, format!("blob at offset {off}: {r}")))?;
    let end = off + (h.header_len + h.stored_len) as u64;
    if end > stream_len {
        return Err(BlockFileError::corrupt(
            path,
            blk,
            format!("blob at offset {off} ends at {end}, past the blob stream end {stream_len}"),
        ));
    }
    Ok(h)
}

/// Serves the blob at `off` from cached data blocks; `None` if one of its
/// blocks is not cached. `last` memoizes the most recent block, as sorted
/// neighbours share blocks.
fn from_cache(
    inner: &Inner,
    cache: &dyn BlockCache,
    off: u64,
    last: &mut Option<(BlockNo, Bytes)>,
) -> Option<Result<Bytes>> {
    let mut get = |blk: BlockNo| -> Option<Bytes> {
        if let Some((b, bytes)) = last {
            if *b == blk {
                return Some(bytes.clone());
            }
        }
        let bytes = cache.get(ContentKind::DataBlock, inner.file_id, blk)?;
        *last = Some((blk, bytes.clone()));
        Some(bytes)
    };
    let stream_len = inner.header.blob_stream_len;
    let first = get(stream_blk(off))?;
    let h = match parse_header(&inner.path, &first, off, stream_len) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    let data_start = off + h.header_len as u64;
    let end = data_start + h.stored_len as u64;
    if data_start == end {
        return Some(finalize(inner, off, &h, Vec::new()));
    }
    let (first_blk, end_blk) = (stream_blk(data_start), stream_end_blk(end));
    if end_blk == first_blk + 1 && h.compression == Compression::None {
        // Inside one block: share it instead of copying.
        let block = if first_blk == stream_blk(off) {
            first
        } else {
            get(first_blk)?
        };
        let pos = (data_start % PAYLOAD_SIZE as u64) as usize;
        return Some(Ok(block.slice(pos..pos + h.stored_len)));
    }
    let mut stored = Vec::with_capacity(h.stored_len);
    let mut o = data_start;
    while o < end {
        let blk = stream_blk(o);
        let block = if blk == stream_blk(off) {
            first.clone()
        } else {
            get(blk)?
        };
        let pos = (o % PAYLOAD_SIZE as u64) as usize;
        let n = ((end - o) as usize).min(PAYLOAD_SIZE - pos);
        stored.extend_from_slice(&block[pos..pos + n]);
        o += n as u64;
    }
    Some(finalize(inner, off, &h, stored))
}

/// Turns stored bytes into the blob's contents.
fn finalize(inner: &Inner, off: u64, h: &BlobHeader, stored: Vec<u8>) -> Result<Bytes> {
    match h.compression {
        Compression::None => Ok(Bytes::from(stored)),
        Compression::Zstd => match decompress_bounded(&stored, inner.max_decompressed) {
            Ok(mut v) => {
                // A frame without a recorded size decompresses into a buffer
                // of the limit; do not keep (or cache) the slack.
                if v.capacity() > v.len() {
                    v.shrink_to_fit();
                }
                Ok(Bytes::from(v))
            }
            Err(DecompressError::TooLarge) => Err(BlockFileError::DecompressLimit {
                path: inner.path.clone(),
                offset: off,
                block: stream_blk(off),
                limit: inner.max_decompressed,
            }),
            Err(DecompressError::Invalid(r)) => Err(BlockFileError::corrupt(
                &inner.path,
                stream_blk(off),
                format!("blob at offset {off}: {r}"),
            )),
        },
    }
}

/// A blob whose bytes did not all arrive with its planned IO.
struct Partial {
    uniq: usize,
    header: BlobHeader,
    have: Vec<u8>,
    /// Stream offset of the first missing byte, and the blob's end.
    next: u64,
    end: u64,
    /// Index range of its follow-up jobs.
    jobs: std::ops::Range<usize>,
}

pub(crate) async fn read_blobs(inner: &Inner, refs: &[BlobRef], opts: ReadOptions) -> VectoredRead {
    let concurrency = opts.concurrency;
    let stream_len = inner.header.blob_stream_len;
    let max_stored = u64::from(inner.header.max_blob_stored);
    let max_io_blocks = (opts.max_io_size / BLOCK_SIZE).max(1) as BlockNo;
    let cache = inner
        .cache
        .as_deref()
        .filter(|_| opts.cache != DataCache::Off);
    let (block_cache, blob_cache) = match opts.cache {
        DataCache::Off => (None, None),
        DataCache::Blocks => (cache, None),
        DataCache::Blobs => (None, cache),
    };
    let mut stats = VectoredStats::default();

    // Requests sorted by offset; `uniq` holds each distinct offset once.
    let mut results: Vec<Option<Result<Bytes>>> = vec![None; refs.len()];
    let mut order: Vec<(u64, usize)> = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        if r.0 >= stream_len {
            results[i] = Some(Err(BlockFileError::BadBlobRef {
                path: inner.path.clone(),
                offset: r.0,
                area_len: stream_len,
            }));
        } else {
            order.push((r.0, i));
        }
    }
    order.sort_unstable();
    let mut uniq: Vec<u64> = order.iter().map(|&(o, _)| o).collect();
    uniq.dedup();
    let mut uniq_results: Vec<Option<Result<Bytes>>> = vec![None; uniq.len()];

    // Serve what the cache holds; `pending` (indexes into `uniq`) need IO.
    let mut pending: Vec<usize> = Vec::with_capacity(uniq.len());
    if let Some(cache) = block_cache {
        let mut last = None;
        for (k, &off) in uniq.iter().enumerate() {
            match from_cache(inner, cache, off, &mut last) {
                Some(res) => {
                    stats.cached_blobs += 1;
                    uniq_results[k] = Some(res);
                }
                None => pending.push(k),
            }
        }
    } else if let Some(cache) = blob_cache {
        for (k, &off) in uniq.iter().enumerate() {
            match cache.get_at(ContentKind::Blob, inner.file_id, off) {
                Some(blob) => {
                    stats.cached_blobs += 1;
                    uniq_results[k] = Some(Ok(blob));
                }
                None => pending.push(k),
            }
        }
    } else {
        pending.extend(0..uniq.len());
    }

    // Plan: group consecutive blobs into IOs.
    struct Group {
        first_blk: BlockNo,
        est_end_blk: BlockNo,
        /// Positions in `pending`.
        members: std::ops::Range<usize>,
    }
    let upper = |k: usize| -> u64 {
        let mut end = (uniq[k] + max_stored).min(stream_len);
        if let Some(&next) = uniq.get(k + 1) {
            end = end.min(next);
        }
        end.max(uniq[k] + 1)
    };
    let mut groups: Vec<Group> = Vec::new();
    for (pi, &k) in pending.iter().enumerate() {
        let off = uniq[k];
        let sb = stream_blk(off);
        let eb = stream_end_blk(upper(k));
        // Where this blob probably ends if it turns out to be the last one
        // of its IO; joining must not push that past the IO size limit.
        let tail_eb = stream_end_blk(upper(k).min(off + SPECULATIVE_TAIL));
        match groups.last_mut() {
            Some(g)
                if tail_eb - g.first_blk <= max_io_blocks
                    && sb <= g.est_end_blk + MAX_GAP_BLOCKS =>
            {
                g.members.end = pi + 1;
                g.est_end_blk = g.est_end_blk.max(eb);
            }
            _ => groups.push(Group {
                first_blk: sb,
                est_end_blk: eb,
                members: pi..pi + 1,
            }),
        }
    }
    let jobs: Vec<IoJob> = groups
        .iter()
        .map(|g| {
            let last = pending[g.members.end - 1];
            let tail_end = upper(last).min(uniq[last] + SPECULATIVE_TAIL);
            let end_blk = stream_end_blk(tail_end)
                .min(g.first_blk + max_io_blocks)
                .max(stream_blk(uniq[last]) + 1);
            IoJob {
                first_blk: g.first_blk,
                nblocks: end_blk - g.first_blk,
            }
        })
        .collect();
    stats.ios += jobs.len();
    stats.blocks_read += jobs.iter().map(|j| u64::from(j.nblocks)).sum::<u64>();
    let outcomes = run_ios(inner, &jobs, concurrency).await;
    if let Some(cache) = block_cache {
        for o in &outcomes {
            o.cache_blocks(cache, inner.file_id);
        }
    }

    // Slice the blobs out; collect those needing more bytes.
    let mut partials: Vec<Partial> = Vec::new();
    let mut followups: Vec<IoJob> = Vec::new();
    for (g, outcome) in groups.iter().zip(&outcomes) {
        let (_, covered_end) = outcome.coverage(stream_len);
        for &k in &pending[g.members.clone()] {
            let off = uniq[k];
            let h = match outcome.blob_header(&inner.path, off, stream_len) {
                Ok(h) => h,
                Err(e) => {
                    uniq_results[k] = Some(Err(e));
                    continue;
                }
            };
            let data_start = off + h.header_len as u64;
            let end = data_start + h.stored_len as u64;
            let mut have = Vec::with_capacity(h.stored_len);
            let got_to = end.min(covered_end);
            if let Err(e) =
                outcome.copy_range(&inner.path, data_start, got_to.max(data_start), &mut have)
            {
                uniq_results[k] = Some(Err(e));
                continue;
            }
            if end <= covered_end {
                uniq_results[k] = Some(finalize(inner, off, &h, have));
                continue;
            }
            let next = covered_end.max(data_start);
            let first = followups.len();
            let mut blk = stream_blk(next);
            let end_blk = stream_end_blk(end);
            while blk < end_blk {
                let n = (end_blk - blk).min(max_io_blocks);
                followups.push(IoJob {
                    first_blk: blk,
                    nblocks: n,
                });
                blk += n;
            }
            partials.push(Partial {
                uniq: k,
                header: h,
                have,
                next,
                end,
                jobs: first..followups.len(),
            });
        }
    }

    if !followups.is_empty() {
        stats.ios += followups.len();
        stats.followup_ios += followups.len();
        stats.blocks_read += followups.iter().map(|j| u64::from(j.nblocks)).sum::<u64>();
        let outcomes = run_ios(inner, &followups, concurrency).await;
        if let Some(cache) = block_cache {
            for o in &outcomes {
                o.cache_blocks(cache, inner.file_id);
            }
        }
        for mut p in partials {
            let mut res = Ok(());
            for o in &outcomes[p.jobs.clone()] {
                let (_, covered_end) = o.coverage(stream_len);
                let upto = covered_end.min(p.end);
                res = o.copy_range(&inner.path, p.next, upto, &mut p.have);
                if res.is_err() {
                    break;
                }
                p.next = upto;
            }
            uniq_results[p.uniq] = Some(res.and_then(|()| {
                debug_assert_eq!(p.next, p.end);
                finalize(inner, uniq[p.uniq], &p.header, p.have)
            }));
        }
    }

    if let Some(cache) = blob_cache {
        for &k in &pending {
            if let Some(Ok(blob)) = &uniq_results[k] {
                cache.insert_at(ContentKind::Blob, inner.file_id, uniq[k], blob.clone());
            }
        }
    }

    // Fan the per-offset results out to the requests, in request order.
    let mut u = 0;
    for (off, i) in order {
        while uniq[u] != off {
            u += 1;
        }
        results[i] = uniq_results[u].clone();
    }
    VectoredRead {
        results: results
            .into_iter()
            .map(|r| r.expect("every request resolved"))
            .collect(),
        stats,
    }
}
