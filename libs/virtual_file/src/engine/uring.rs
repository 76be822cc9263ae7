//! The io_uring engine: one ring for the process, shared by the submitting
//! tasks and one completion thread.
//!
//! Owns: the ring, the operations the kernel is working on (each with its
//! buffer, its `Arc<File>` and a `oneshot` to answer on), a queue of
//! operations waiting for room in the ring, and the completion thread.
//!
//! How it runs: an async caller turns its request(s) into [`Op`]s, and under
//! the state mutex pushes them as SQEs (a `read_exact_at_many` batch goes in
//! as one submission); outside the mutex it calls `io_uring_enter` to submit,
//! then reaps the completion queue once more. Reads served from the page
//! cache complete inside that submit, so the caller finds its answers ready
//! and no thread hand-off happens. Everything else completes later: the
//! completion thread sleeps in `io_uring_enter` waiting for CQEs while
//! anything is in flight (it also submits anything a caller left behind, and
//! wakes every [`WAIT_TICK`] at most), and on a condition variable while
//! nothing is, so CQEs that submitters reap themselves do not wake it. It
//! handles the CQEs and answers the oneshots, which wakes the awaiting
//! tasks. Whoever reaps handles all CQEs: a short read or write is queued
//! again for the remainder, finished operations are answered, and queued
//! operations are pushed as slots free up. No tokio worker blocks: the
//! submit does not wait for IO, and the mutex is never held across a
//! syscall.
//!
//! Invariants:
//! - An operation's buffer and fd are owned by the engine from push until
//!   its CQE is handled; only then are they handed back (or dropped if the
//!   caller went away). The kernel therefore never touches freed memory, and
//!   the fd table cannot close the fd underneath (it holds an `Arc<File>`).
//! - SQEs in flight never exceed the SQ size, which is half the CQ size, so
//!   the completion queue cannot overflow.
//! - Only the holder of the state mutex touches the SQ/CQ rings.
//! - Shutdown: dropping a [`UringEngine`] marks it closing and posts a NOP;
//!   the completion thread exits once nothing is in flight. The process-wide
//!   engine ([`global`]) lives as long as the process.
//! - The kernel runs some completion work on the thread that submitted the
//!   request; if that thread exits first, a not-yet-started request may
//!   complete with `ECANCELED`, which is reported as an error (only futures
//!   dropped by a runtime that is shutting down can observe this).
//!
//! Callers: `engine::Engine` (`global`), and `init` through
//! `Engine::resolve`, which reports why the ring could not be set up.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use io_uring::{opcode, types, IoUring, Probe};
use tokio::sync::oneshot;

use super::{may_continue, ReadResult};
use crate::buffer::IoBuffer;
use crate::config::EngineUnavailable;

/// Submission queue size (the completion queue gets twice as many).
const RING_ENTRIES: u32 = 256;
/// `user_data` of the NOP posted at shutdown.
const SHUTDOWN_TOKEN: u64 = u64::MAX;
/// Longest the completion thread sleeps without checking for SQEs that a
/// caller pushed but could not submit.
const WAIT_TICK: Duration = Duration::from_millis(50);
/// Largest single read/write submitted (the length field is 32 bits); longer
/// buffers are done in several rounds.
const MAX_CHUNK: usize = 1 << 30;

static GLOBAL: OnceLock<Result<UringEngine, EngineUnavailable>> = OnceLock::new();

/// The process-wide engine, started on first call. A failure is remembered:
/// the kernel's answer will not change while the process runs.
pub(crate) fn global() -> Result<&'static UringEngine, EngineUnavailable> {
    GLOBAL
        .get_or_init(|| UringEngine::start(|| IoUring::new(RING_ENTRIES)))
        .as_ref()
        .map_err(Clone::clone)
}

enum OpKind {
    Read {
        buf: IoBuffer,
        offset: u64,
        direct: bool,
    },
    Write {
        buf: IoBuffer,
        offset: u64,
    },
    Fsync,
}

/// What an operation reports: its buffer (none for fsync) and the bytes
/// transferred or the error.
struct Completion {
    buf: Option<IoBuffer>,
    res: io::Result<usize>,
}

struct Op {
    file: Arc<File>,
    kind: OpKind,
    /// Bytes transferred so far (by earlier short completions).
    done: usize,
    reply: oneshot::Sender<Completion>,
}

enum Step {
    Resubmit(Op),
    Finished,
}

impl Op {
    fn new(file: Arc<File>, kind: OpKind) -> (Op, oneshot::Receiver<Completion>) {
        let (reply, rx) = oneshot::channel();
        let op = Op {
            file,
            kind,
            done: 0,
            reply,
        };
        (op, rx)
    }

    /// The SQE for the (remaining part of the) operation.
    fn sqe(&mut self, token: u64) -> io_uring::squeue::Entry {
        let fd = types::Fd(self.file.as_raw_fd());
        let done = self.done;
        let entry = match &mut self.kind {
            OpKind::Read { buf, offset, .. } => {
                let len = (buf.len() - done).min(MAX_CHUNK) as u32;
                // SAFETY (pointer arithmetic): `done < buf.len()` while an op
                // is unfinished, so the pointer stays inside the allocation.
                let ptr = unsafe { buf.as_mut_ptr().add(done) };
                opcode::Read::new(fd, ptr, len)
                    .offset(*offset + done as u64)
                    .build()
            }
            OpKind::Write { buf, offset } => {
                let len = (buf.len() - done).min(MAX_CHUNK) as u32;
                // SAFETY: as for reads.
                let ptr = unsafe { buf.as_ptr().add(done) };
                opcode::Write::new(fd, ptr, len)
                    .offset(*offset + done as u64)
                    .build()
            }
            OpKind::Fsync => opcode::Fsync::new(fd).build(),
        };
        entry.user_data(token)
    }

    /// Accounts for a CQE result: answers the caller or asks for a resubmit.
    fn complete(mut self, res: i32) -> Step {
        if res < 0 {
            let err = io::Error::from_raw_os_error(-res);
            if matches!(
                err.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                return Step::Resubmit(self);
            }
            self.answer(Err(err));
            return Step::Finished;
        }
        let n = res as usize;
        match &self.kind {
            OpKind::Fsync => {
                self.answer(Ok(0));
                Step::Finished
            }
            OpKind::Read {
                buf,
                offset,
                direct,
            } => {
                self.done += n;
                let at_eof = n == 0 || !may_continue(*direct, *offset, self.done);
                if self.done >= buf.len() || at_eof {
                    let done = self.done;
                    self.answer(Ok(done));
                    Step::Finished
                } else {
                    Step::Resubmit(self)
                }
            }
            OpKind::Write { buf, .. } => {
                if n == 0 {
                    self.answer(Err(io::ErrorKind::WriteZero.into()));
                    return Step::Finished;
                }
                self.done += n;
                if self.done >= buf.len() {
                    let done = self.done;
                    self.answer(Ok(done));
                    Step::Finished
                } else {
                    Step::Resubmit(self)
                }
            }
        }
    }

    fn answer(self, res: io::Result<usize>) {
        let buf = match self.kind {
            OpKind::Read { buf, .. } | OpKind::Write { buf, .. } => Some(buf),
            OpKind::Fsync => None,
        };
        // The caller may have stopped waiting; then the buffer drops here,
        // after the kernel is done with it.
        let _ = self.reply.send(Completion { buf, res });
    }
}

/// Handle to a running ring and its completion thread.
pub(crate) struct UringEngine {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for UringEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringEngine").finish_non_exhaustive()
    }
}

/// The ring plus the bookkeeping of its operations, shared by submitting
/// tasks and the completion thread. `state` also serialises all use of the
/// SQ and CQ rings (the io-uring crate's `*_shared` accessors require that).
struct Shared {
    ring: IoUring,
    state: Mutex<State>,
    /// Wakes the completion thread when it idles with nothing in flight.
    wake: Condvar,
}

struct State {
    /// Operations owned by the kernel, indexed by `user_data`.
    slots: Vec<Option<Op>>,
    free: Vec<usize>,
    /// SQEs pushed and not yet completed (operations and a shutdown NOP).
    in_flight: usize,
    /// Accepted, waiting for room in the ring (or resubmitted remainders).
    queued: VecDeque<Op>,
    closing: bool,
    /// The completion thread waits on `wake`, not in the ring.
    idle: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections leave `State` consistent even if they unwind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Operations allowed in the ring at once: one SQ's worth, minus room for
    /// the shutdown NOP. The CQ holds twice the SQ, so it cannot overflow.
    fn max_in_flight(&self) -> usize {
        (self.ring.params().sq_entries() as usize)
            .saturating_sub(1)
            .max(1)
    }

    /// Handles every available completion, then moves queued operations into
    /// the SQ. Returns how many SQEs were pushed (they still need a submit).
    /// The caller holds `state`'s lock, which makes this the only user of
    /// the SQ and CQ.
    fn pump(&self, st: &mut State) -> usize {
        // SAFETY: the state lock is held; no other CompletionQueue exists.
        let cq = unsafe { self.ring.completion_shared() };
        for cqe in cq {
            st.in_flight = st.in_flight.saturating_sub(1);
            let token = cqe.user_data();
            if token == SHUTDOWN_TOKEN {
                continue;
            }
            let Some(op) = st.slots.get_mut(token as usize).and_then(Option::take) else {
                tracing::error!("io_uring completion for unknown token {token}");
                continue;
            };
            st.free.push(token as usize);
            if let Step::Resubmit(op) = op.complete(cqe.result()) {
                st.queued.push_front(op);
            }
        }
        let limit = self.max_in_flight();
        let mut pushed = 0;
        // SAFETY: the state lock is held; no other SubmissionQueue exists.
        let mut sq = unsafe { self.ring.submission_shared() };
        while st.in_flight < limit {
            let Some(mut op) = st.queued.pop_front() else {
                break;
            };
            let token = match st.free.pop() {
                Some(t) => t,
                None => {
                    st.slots.push(None);
                    st.slots.len() - 1
                }
            };
            let entry = op.sqe(token as u64);
            // SAFETY: the op (buffer and `Arc<File>`) is stored in `slots`
            // right below and stays there until its CQE is handled above.
            if unsafe { sq.push(&entry) }.is_err() {
                st.free.push(token);
                st.queued.push_front(op);
                break;
            }
            st.slots[token] = Some(op);
            st.in_flight += 1;
            pushed += 1;
        }
        pushed
    }

    /// Tells the kernel about pushed SQEs. Transient refusals are retried a
    /// few times; anything left is submitted by the completion thread on its
    /// next wait (at the latest after [`WAIT_TICK`]).
    fn submit(&self) {
        for _ in 0..3 {
            match self.ring.submit() {
                Ok(_) => return,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) | Some(libc::EBUSY) => std::thread::yield_now(),
                    _ => {
                        tracing::error!("io_uring submit failed: {e}");
                        return;
                    }
                },
            }
        }
    }

    /// Submits and reaps until nothing more can be pushed; then wakes the
    /// completion thread if something is left for it to wait for.
    fn submit_and_pump(&self) {
        loop {
            self.submit();
            let mut st = self.lock();
            let pushed = self.pump(&mut st);
            if pushed == 0 {
                self.wake_if_needed(&mut st);
                return;
            }
        }
    }

    /// Wakes an idle completion thread when operations are in flight or
    /// queued (or the engine is closing). State lock held.
    fn wake_if_needed(&self, st: &mut State) {
        if st.idle && (st.in_flight > 0 || !st.queued.is_empty() || st.closing) {
            st.idle = false;
            self.wake.notify_one();
        }
    }
}

impl UringEngine {
    /// Sets up a ring with `setup`, checks the opcodes this engine uses and
    /// starts the completion thread.
    fn start(
        setup: impl FnOnce() -> io::Result<IoUring>,
    ) -> Result<UringEngine, EngineUnavailable> {
        let ring = setup().map_err(|e| EngineUnavailable::Setup(e.to_string()))?;
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| EngineUnavailable::Setup(format!("probe: {e}")))?;
        for (code, name) in [
            (opcode::Read::CODE, "IORING_OP_READ"),
            (opcode::Write::CODE, "IORING_OP_WRITE"),
            (opcode::Fsync::CODE, "IORING_OP_FSYNC"),
            (opcode::Nop::CODE, "IORING_OP_NOP"),
        ] {
            if !probe.is_supported(code) {
                return Err(EngineUnavailable::MissingOpcode(name));
            }
        }
        let shared = Arc::new(Shared {
            ring,
            state: Mutex::new(State {
                slots: Vec::new(),
                free: Vec::new(),
                in_flight: 0,
                queued: VecDeque::new(),
                closing: false,
                idle: false,
            }),
            wake: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("io-uring-completions".into())
            .spawn(move || completion_loop(&for_thread))
            .map_err(|e| EngineUnavailable::Driver(format!("spawn thread: {e}")))?;
        Ok(UringEngine {
            shared,
            thread: Some(thread),
        })
    }

    /// Submits `ops` and waits for each answer, in order.
    async fn run_ops(&self, ops: Vec<(Op, oneshot::Receiver<Completion>)>) -> Vec<Completion> {
        let (ops, waits): (Vec<Op>, Vec<_>) = ops.into_iter().unzip();
        {
            let mut st = self.shared.lock();
            st.queued.extend(ops);
            self.shared.pump(&mut st);
        }
        // Reads served from the page cache complete inside this submit; the
        // pump after it answers them, so the awaits below return at once.
        self.shared.submit_and_pump();
        let mut out = Vec::with_capacity(waits.len());
        for rx in waits {
            out.push(rx.await.unwrap_or_else(|_| Completion {
                buf: None,
                res: Err(io::Error::other("io_uring operation was dropped")),
            }));
        }
        out
    }

    pub(crate) async fn read_many(
        &self,
        file: Arc<File>,
        reads: Vec<(u64, IoBuffer)>,
        direct: bool,
    ) -> Vec<ReadResult> {
        let lens: Vec<usize> = reads.iter().map(|(_, b)| b.len()).collect();
        let ops = reads
            .into_iter()
            .map(|(offset, buf)| {
                let kind = OpKind::Read {
                    buf,
                    offset,
                    direct,
                };
                Op::new(Arc::clone(&file), kind)
            })
            .collect();
        self.run_ops(ops)
            .await
            .into_iter()
            .zip(lens)
            .map(|(c, len)| (c.buf.unwrap_or_else(|| IoBuffer::zeroed(len)), c.res))
            .collect()
    }

    pub(crate) async fn write_all(
        &self,
        file: Arc<File>,
        buf: IoBuffer,
        offset: u64,
    ) -> (IoBuffer, io::Result<()>) {
        let len = buf.len();
        if len == 0 {
            return (buf, Ok(()));
        }
        let op = Op::new(file, OpKind::Write { buf, offset });
        match self.run_ops(vec![op]).await.pop() {
            Some(c) => (
                c.buf.unwrap_or_else(|| IoBuffer::zeroed(len)),
                c.res.map(|_| ()),
            ),
            None => (IoBuffer::zeroed(len), Err(lost())),
        }
    }

    pub(crate) async fn fsync(&self, file: Arc<File>) -> io::Result<()> {
        let op = Op::new(file, OpKind::Fsync);
        match self.run_ops(vec![op]).await.pop() {
            Some(c) => c.res.map(|_| ()),
            None => Err(lost()),
        }
    }
}

impl Drop for UringEngine {
    fn drop(&mut self) {
        // Mark closing and post a NOP so a completion thread waiting on an
        // idle ring wakes up and sees it. It exits once nothing is in flight;
        // it is not joined here (that could block an async worker).
        {
            let mut st = self.shared.lock();
            st.closing = true;
            let nop = opcode::Nop::new().build().user_data(SHUTDOWN_TOKEN);
            // SAFETY: a NOP references no memory; state lock held.
            if unsafe { self.shared.ring.submission_shared().push(&nop) }.is_ok() {
                st.in_flight += 1;
            }
        }
        self.shared.submit();
        self.shared.wake_if_needed(&mut self.shared.lock());
        drop(self.thread.take());
    }
}

fn lost() -> io::Error {
    io::Error::other("io_uring engine lost an operation")
}

/// Body of the completion thread: wait for completions (submitting any SQEs
/// left behind), handle them, and exit once the engine is dropped and
/// nothing is in flight.
fn completion_loop(shared: &Shared) {
    let tick = types::Timespec::new()
        .sec(WAIT_TICK.as_secs())
        .nsec(WAIT_TICK.subsec_nanos());
    let args = types::SubmitArgs::new().timespec(&tick);
    let bounded_wait = shared.ring.params().is_feature_ext_arg();
    loop {
        {
            let mut st = shared.lock();
            shared.pump(&mut st);
            if st.closing && st.in_flight == 0 && st.queued.is_empty() {
                return;
            }
            if st.in_flight == 0 && st.queued.is_empty() {
                // Nothing to wait for in the ring. Waiting there anyway
                // would wake this thread for every CQE, including the reads
                // that submitters reap themselves right after submitting
                // (page-cache hits): two context switches per read for
                // nothing. Submitters wake it when they leave work behind;
                // the timeout is only a safety net.
                st.idle = true;
                let (mut st, _) = shared
                    .wake
                    .wait_timeout(st, WAIT_TICK)
                    .unwrap_or_else(PoisonError::into_inner);
                st.idle = false;
                continue;
            }
        }
        let waited = if bounded_wait {
            shared.ring.submitter().submit_with_args(1, &args)
        } else {
            shared.ring.submit_and_wait(1)
        };
        if let Err(e) = waited {
            match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                _ => {
                    // What is in flight cannot be given back safely, so keep
                    // serving; back off to avoid spinning.
                    tracing::error!("io_uring wait failed: {e}");
                    std::thread::sleep(WAIT_TICK);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_failure_is_reported_not_panicked() {
        let err = UringEngine::start(|| Err(io::Error::from_raw_os_error(libc::EPERM)))
            .expect_err("setup refused");
        match &err {
            EngineUnavailable::Setup(msg) => assert!(msg.contains("not permitted"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn private_engine_roundtrip_and_shutdown() -> io::Result<()> {
        let engine = match UringEngine::start(|| IoUring::new(8)) {
            Ok(e) => e,
            Err(reason) => {
                // Only acceptable if the global probe agrees.
                assert_eq!(global().err(), Some(reason));
                return Ok(());
            }
        };
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?,
        );
        for i in 0..40u8 {
            let buf = IoBuffer::from_slice(&[i; 100]);
            let (buf, res) = engine
                .write_all(Arc::clone(&file), buf, i as u64 * 100)
                .await;
            assert_eq!(buf.len(), 100);
            res?;
        }
        engine.fsync(Arc::clone(&file)).await?;
        // One batch larger than the ring (8 entries): exercises the queue.
        let reads = (0..40u64)
            .map(|i| (i * 100 + 50, IoBuffer::zeroed(100)))
            .collect();
        let results = engine.read_many(Arc::clone(&file), reads, false).await;
        for (i, (buf, res)) in results.into_iter().enumerate() {
            assert_eq!(res?, if i == 39 { 50 } else { 100 });
            assert!(buf[..50].iter().all(|&b| b == i as u8));
            if i < 39 {
                assert!(buf[50..].iter().all(|&b| b == i as u8 + 1));
            }
        }
        let mut engine = engine;
        let thread = engine.thread.take();
        drop(engine);
        if let Some(t) = thread {
            assert!(t.join().is_ok(), "driver exits after the engine is dropped");
        }
        Ok(())
    }
}
