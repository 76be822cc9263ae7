//! The io_uring engine: one ring, owned by one dedicated driver thread.
//!
//! Owns: the ring, the in-flight operations (each with its buffer, its
//! `Arc<File>` and a `oneshot` to answer on), and an eventfd used to wake the
//! driver.
//!
//! How it runs: async callers build [`Op`]s, send them (a whole batch as one
//! message) over an mpsc channel and write to the eventfd; then they await
//! their oneshots, so no tokio worker ever blocks. The driver thread only
//! blocks in `io_uring_enter` (`submit_and_wait(1)`). It keeps a read of the
//! eventfd armed *inside the ring*, so a new request completes that read and
//! wakes it just like an IO completion would. Each wakeup it drains the
//! channel, pushes as many SQEs as the in-flight limit allows (the rest wait
//! in a local queue), submits, and handles completions: a short read or
//! write is resubmitted for the remainder, a finished operation is answered.
//!
//! Invariants:
//! - An operation's buffer and fd are owned by the driver from submission
//!   until its CQE arrives; only then are they handed back (or dropped if the
//!   caller went away). The kernel therefore never touches freed memory, and
//!   the fd table cannot close the fd underneath (it holds an `Arc<File>`).
//! - In-flight operations never exceed the SQ size, which is half the CQ
//!   size, so the completion queue cannot overflow.
//! - Shutdown: dropping a [`UringEngine`] drops the channel sender and writes
//!   the eventfd; the driver stops accepting work, waits for everything in
//!   flight (including its own eventfd read) to complete, and exits. The
//!   process-wide engine ([`global`]) lives as long as the process.
//!
//! Callers: `engine::Engine` (`global`), and `init` through
//! `Engine::resolve`, which reports why the ring could not be set up.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;

use io_uring::{opcode, types, IoUring, Probe};
use tokio::sync::oneshot;

use super::{may_continue, ReadResult};
use crate::buffer::IoBuffer;
use crate::config::EngineUnavailable;

/// Submission queue size (the completion queue gets twice as many).
const RING_ENTRIES: u32 = 256;
/// `user_data` of the driver's own eventfd read.
const WAKE_TOKEN: u64 = u64::MAX;
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

/// Handle to a running ring and its driver thread.
pub(crate) struct UringEngine {
    tx: Option<mpsc::Sender<Vec<Op>>>,
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for UringEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringEngine").finish_non_exhaustive()
    }
}

impl UringEngine {
    /// Sets up a ring with `setup`, checks the opcodes this engine uses and
    /// starts the driver thread.
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
        ] {
            if !probe.is_supported(code) {
                return Err(EngineUnavailable::MissingOpcode(name));
            }
        }
        // A blocking eventfd: io_uring would fail a read of an O_NONBLOCK fd
        // with EAGAIN instead of waiting for it.
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(EngineUnavailable::Driver(format!("eventfd: {e}")));
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let (tx, rx) = mpsc::channel();
        let driver = Driver::new(ring, rx, Arc::clone(&wake));
        let thread = std::thread::Builder::new()
            .name("io-uring-driver".into())
            .spawn(move || driver.run())
            .map_err(|e| EngineUnavailable::Driver(format!("spawn thread: {e}")))?;
        Ok(UringEngine {
            tx: Some(tx),
            wake,
            thread: Some(thread),
        })
    }

    /// Hands `ops` to the driver; gives them back if it is gone.
    fn send(&self, ops: Vec<Op>) -> Result<(), Vec<Op>> {
        let Some(tx) = &self.tx else {
            return Err(ops);
        };
        tx.send(ops).map_err(|mpsc::SendError(ops)| ops)?;
        wake(&self.wake);
        Ok(())
    }

    /// Submits `ops` and waits for each answer, in order.
    async fn run_ops(&self, ops: Vec<(Op, oneshot::Receiver<Completion>)>) -> Vec<Completion> {
        let (ops, waits): (Vec<Op>, Vec<_>) = ops.into_iter().unzip();
        if let Err(ops) = self.send(ops) {
            return ops
                .into_iter()
                .map(|op| Completion {
                    buf: match op.kind {
                        OpKind::Read { buf, .. } | OpKind::Write { buf, .. } => Some(buf),
                        OpKind::Fsync => None,
                    },
                    res: Err(driver_gone()),
                })
                .collect();
        }
        let mut out = Vec::with_capacity(waits.len());
        for rx in waits {
            out.push(rx.await.unwrap_or_else(|_| Completion {
                buf: None,
                res: Err(driver_gone()),
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
            None => (IoBuffer::zeroed(len), Err(driver_gone())),
        }
    }

    pub(crate) async fn fsync(&self, file: Arc<File>) -> io::Result<()> {
        let op = Op::new(file, OpKind::Fsync);
        match self.run_ops(vec![op]).await.pop() {
            Some(c) => c.res.map(|_| ()),
            None => Err(driver_gone()),
        }
    }
}

impl Drop for UringEngine {
    fn drop(&mut self) {
        // Disconnect first, then wake: the driver sees the disconnect when it
        // drains the channel after the wakeup. The thread is not joined here
        // (that could block an async worker); it exits once idle.
        drop(self.tx.take());
        wake(&self.wake);
        drop(self.thread.take());
    }
}

fn wake(eventfd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an fd we own. Failure is
    // impossible short of counter overflow (2^64 - 2 pending wakeups), in
    // which case a wakeup is pending anyway.
    let _ = unsafe {
        libc::write(
            eventfd.as_raw_fd(),
            (&one as *const u64).cast::<libc::c_void>(),
            std::mem::size_of::<u64>(),
        )
    };
}

fn driver_gone() -> io::Error {
    io::Error::other("io_uring driver thread is not running")
}

/// State owned by the driver thread.
struct Driver {
    ring: IoUring,
    rx: mpsc::Receiver<Vec<Op>>,
    wake: Arc<OwnedFd>,
    /// Target of the armed eventfd read; boxed so its address is stable.
    wake_buf: Box<u64>,
    wake_armed: bool,
    /// In-flight operations, indexed by `user_data`.
    slots: Vec<Option<Op>>,
    free: Vec<usize>,
    in_flight: usize,
    /// Received, not yet submitted.
    queued: VecDeque<Op>,
    closing: bool,
}

impl Driver {
    fn new(ring: IoUring, rx: mpsc::Receiver<Vec<Op>>, wake: Arc<OwnedFd>) -> Driver {
        Driver {
            ring,
            rx,
            wake,
            wake_buf: Box::new(0),
            wake_armed: false,
            slots: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
            queued: VecDeque::new(),
            closing: false,
        }
    }

    fn max_in_flight(&self) -> usize {
        // One SQ's worth including the eventfd read; the CQ holds twice that.
        (self.ring.params().sq_entries() as usize)
            .saturating_sub(1)
            .max(1)
    }

    fn run(mut self) {
        loop {
            self.drain_channel();
            self.push_sqes();
            if self.closing && self.in_flight == 0 && !self.wake_armed && self.queued.is_empty() {
                return;
            }
            if let Err(e) = self.ring.submit_and_wait(1) {
                match e.raw_os_error() {
                    // Interrupted, or the kernel wants completions reaped
                    // first: reap and go round again.
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                    _ => {
                        // Nothing in flight can be given back safely, so keep
                        // serving; back off to avoid spinning.
                        tracing::error!("io_uring submit failed: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
            self.reap();
        }
    }

    fn drain_channel(&mut self) {
        while !self.closing {
            match self.rx.try_recv() {
                Ok(ops) => self.queued.extend(ops),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => self.closing = true,
            }
        }
    }

    fn push_sqes(&mut self) {
        let limit = self.max_in_flight();
        let mut sq = self.ring.submission();
        if !self.closing && !self.wake_armed {
            let ptr = (&mut *self.wake_buf as *mut u64).cast::<u8>();
            let entry = opcode::Read::new(types::Fd(self.wake.as_raw_fd()), ptr, 8)
                .build()
                .user_data(WAKE_TOKEN);
            // SAFETY: `wake_buf` and the eventfd live as long as the driver,
            // which does not return while this read is armed.
            if unsafe { sq.push(&entry) }.is_ok() {
                self.wake_armed = true;
            }
        }
        while self.in_flight < limit {
            let Some(mut op) = self.queued.pop_front() else {
                break;
            };
            let token = match self.free.pop() {
                Some(t) => t,
                None => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
            };
            let entry = op.sqe(token as u64);
            // SAFETY: the op (buffer and `Arc<File>`) is stored in `slots`
            // right below and stays there until its CQE is reaped.
            if unsafe { sq.push(&entry) }.is_err() {
                self.free.push(token);
                self.queued.push_front(op);
                break;
            }
            self.slots[token] = Some(op);
            self.in_flight += 1;
        }
    }

    fn reap(&mut self) {
        let done: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()))
            .collect();
        for (token, res) in done {
            if token == WAKE_TOKEN {
                self.wake_armed = false;
                continue;
            }
            let Some(op) = self.slots.get_mut(token as usize).and_then(Option::take) else {
                tracing::error!("io_uring completion for unknown token {token}");
                continue;
            };
            self.free.push(token as usize);
            self.in_flight -= 1;
            if let Step::Resubmit(op) = op.complete(res) {
                self.queued.push_front(op);
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
