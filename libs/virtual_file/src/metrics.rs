//! Process-wide IO counters, as plain atomics.
//!
//! Owns the [`COUNTERS`] static. Every counter only ever increases (relaxed
//! ordering: they are statistics, not synchronisation). The fd cache bumps
//! the open/eviction counters, the file layer bumps read/write counters once
//! per completed request. [`crate::stats`] takes a snapshot; the pageserver
//! binary exports the snapshot to Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct Counters {
    pub opens: AtomicU64,
    pub open_errors: AtomicU64,
    pub direct_fallbacks: AtomicU64,
    pub fd_cache_hits: AtomicU64,
    pub fd_cache_misses: AtomicU64,
    pub evictions: AtomicU64,
    pub evictions_in_use: AtomicU64,
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub bounce_reads: AtomicU64,
    pub cached_reads: AtomicU64,
    pub writes: AtomicU64,
    pub written_bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub io_errors: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    opens: AtomicU64::new(0),
    open_errors: AtomicU64::new(0),
    direct_fallbacks: AtomicU64::new(0),
    fd_cache_hits: AtomicU64::new(0),
    fd_cache_misses: AtomicU64::new(0),
    evictions: AtomicU64::new(0),
    evictions_in_use: AtomicU64::new(0),
    reads: AtomicU64::new(0),
    read_bytes: AtomicU64::new(0),
    bounce_reads: AtomicU64::new(0),
    cached_reads: AtomicU64::new(0),
    writes: AtomicU64::new(0),
    written_bytes: AtomicU64::new(0),
    fsyncs: AtomicU64::new(0),
    io_errors: AtomicU64::new(0),
};

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A snapshot of the process-wide counters (monotonic since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful `open(2)` calls, first opens and reopens after eviction.
    pub opens: u64,
    /// Failed `open(2)` calls.
    pub open_errors: u64,
    /// Files asked for `O_DIRECT` whose filesystem refused it (EINVAL), now
    /// read buffered.
    pub direct_fallbacks: u64,
    /// Operations that found their fd in the table.
    pub fd_cache_hits: u64,
    /// Operations that had to (re)open their file.
    pub fd_cache_misses: u64,
    /// Fds closed to make room in the table.
    pub evictions: u64,
    /// Of `evictions`, those whose fd was still used by an in-flight
    /// operation (it closes when that operation ends).
    pub evictions_in_use: u64,
    /// Completed read requests (one per `read_exact_at`, one per element of
    /// `read_exact_at_many`), successful or not.
    pub reads: u64,
    /// Bytes delivered to callers by successful reads.
    pub read_bytes: u64,
    /// Direct reads that went through an aligned bounce buffer.
    pub bounce_reads: u64,
    /// Buffered reads served from the OS page cache on the calling thread,
    /// without the engine (`preadv2` with `RWF_NOWAIT`).
    pub cached_reads: u64,
    /// Completed write requests.
    pub writes: u64,
    /// Bytes written by successful writes.
    pub written_bytes: u64,
    pub fsyncs: u64,
    /// Read, write or fsync requests that failed (including short reads).
    pub io_errors: u64,
    /// Gauge: fds currently held by the node-wide table (0 before first use).
    pub cached_fds: u64,
    /// Gauge: size of the node-wide table (0 before first use).
    pub fd_table_capacity: u64,
}

/// Current values of the process-wide counters and fd-table gauges. Does
/// not latch the default settings (safe to call before [`crate::init`]).
pub fn stats() -> Stats {
    let (cached_fds, fd_table_capacity) = crate::fd_table_usage();
    let c = &COUNTERS;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Stats {
        opens: get(&c.opens),
        open_errors: get(&c.open_errors),
        direct_fallbacks: get(&c.direct_fallbacks),
        fd_cache_hits: get(&c.fd_cache_hits),
        fd_cache_misses: get(&c.fd_cache_misses),
        evictions: get(&c.evictions),
        evictions_in_use: get(&c.evictions_in_use),
        reads: get(&c.reads),
        read_bytes: get(&c.read_bytes),
        bounce_reads: get(&c.bounce_reads),
        cached_reads: get(&c.cached_reads),
        writes: get(&c.writes),
        written_bytes: get(&c.written_bytes),
        fsyncs: get(&c.fsyncs),
        io_errors: get(&c.io_errors),
        cached_fds: cached_fds as u64,
        fd_table_capacity: fd_table_capacity as u64,
    }
}
