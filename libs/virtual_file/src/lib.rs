//! `virtual_file`: positional file IO with owned buffers for the storage
//! engine, over a bounded node-wide fd table and a choice of IO engines.
//!
//! API contract (stable; the implementation behind it may change):
//! - [`IoBuffer`] is an owned, zero-initialised, fixed-length byte buffer whose
//!   start is aligned to [`IO_ALIGN`], so it can be used with direct IO.
//! - [`VirtualFile::read_exact_at`] fills the whole buffer from `offset` and
//!   hands the buffer back with the result (owned-buffer style, as io_uring
//!   needs); a short file is an `UnexpectedEof` error.
//!   [`VirtualFile::read_exact_at_many`] does the same for a batch, issued at
//!   once, results in request order.
//! - [`VirtualFile::write_all_at`] writes the whole buffer at `offset`.
//! - A `VirtualFile` is `Clone + Send + Sync`; clones share one file.
//!
//! Process-wide state, owned here: the node settings chosen once by [`init`]
//! (or defaults: std-fs, buffered, 1000 fds, latched on first use), the fd
//! table sized from them, and the counters behind [`stats`]. The io_uring
//! ring is started on first use by `engine::uring`.
//!
//! Modules: `buffer` (aligned buffers), `config` (settings and their
//! parsing), `fd_cache` (the bounded fd table), `engine` (std-fs and io_uring
//! back ends), `align` (direct-IO bounce arithmetic), `file` (`VirtualFile`),
//! `metrics`, `error`.
//!
//! Callers: the pageserver binary calls [`init`] at startup and exports
//! [`stats`]; `blockfile` and the pageserver's layer code do the IO.

mod align;
mod buffer;
mod config;
mod engine;
mod error;
mod fd_cache;
mod file;
mod metrics;

use std::sync::OnceLock;

pub use buffer::IoBuffer;
pub use config::{
    Config, EngineUnavailable, InitError, InitOutcome, IoEngineKind, IoMode, ParseError,
    DEFAULT_MAX_FILE_DESCRIPTORS,
};
pub use error::VirtualFileError;
pub use file::{OpenOptions, VirtualFile};
pub use metrics::{stats, Stats};

use engine::Engine;
use fd_cache::FdCache;

/// Alignment of buffers, offsets and lengths for direct IO.
pub const IO_ALIGN: usize = 4096;

/// The settings in effect for this process.
struct Node {
    outcome: InitOutcome,
    engine: Engine,
    fd_cache: FdCache,
}

impl Node {
    fn build(config: Config) -> Node {
        Node::build_with(config, Engine::resolve)
    }

    /// `build` with the engine lookup injectable, so the fallback report can
    /// be tested on machines where io_uring works.
    fn build_with(
        config: Config,
        resolve: impl FnOnce(IoEngineKind) -> (Engine, Option<EngineUnavailable>),
    ) -> Node {
        let (engine, fallback_reason) = resolve(config.io_engine);
        let max = config.max_file_descriptors.max(1);
        Node {
            outcome: InitOutcome {
                io_engine: engine.kind(),
                io_mode: config.io_mode,
                max_file_descriptors: max,
                fallback_reason,
            },
            engine,
            fd_cache: FdCache::new(max),
        }
    }
}

static NODE: OnceLock<Node> = OnceLock::new();

/// The node settings, latching the defaults if [`init`] was not called.
fn node() -> &'static Node {
    NODE.get_or_init(|| Node::build(Config::default()))
}

/// Applies `config` for the whole process. Call once, at startup, before any
/// file is opened.
///
/// If io-uring is requested but the kernel refuses it, std-fs is used and
/// [`InitOutcome::fallback_reason`] says why; the caller should log it.
/// Fails if settings are already in effect (an earlier `init`, or a file used
/// before `init` latched the defaults).
pub fn init(config: Config) -> Result<InitOutcome, InitError> {
    if config.max_file_descriptors == 0 {
        return Err(InitError::ZeroFileDescriptors);
    }
    let mut applied = false;
    let node = NODE.get_or_init(|| {
        applied = true;
        Node::build(config)
    });
    if applied {
        Ok(node.outcome.clone())
    } else {
        Err(InitError::AlreadyInitialized(Box::new(
            node.outcome.clone(),
        )))
    }
}

/// (occupied, capacity) of the node-wide fd table, zeros if not yet built.
fn fd_table_usage() -> (usize, usize) {
    NODE.get()
        .map(|n| (n.fd_cache.occupied(), n.fd_cache.capacity()))
        .unwrap_or((0, 0))
}

/// The settings in effect (latching the defaults if [`init`] was not called).
pub fn current() -> InitOutcome {
    node().outcome.clone()
}

/// Whether io_uring can be used in this process; the error is the reason it
/// cannot (the same one [`init`] would report). Starts the ring if needed.
pub fn io_uring_available() -> Result<(), EngineUnavailable> {
    engine::uring::global().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}

    #[test]
    fn refused_io_uring_is_reported_as_std_fs_with_reason() {
        let config = Config {
            max_file_descriptors: 8,
            io_engine: IoEngineKind::IoUring,
            io_mode: IoMode::Direct,
        };
        let reason = EngineUnavailable::Setup("Operation not permitted (os error 1)".into());
        let mut asked = None;
        let node = Node::build_with(config, |kind| {
            asked = Some(kind);
            (Engine::StdFs, Some(reason.clone()))
        });
        assert_eq!(asked, Some(IoEngineKind::IoUring));
        assert_eq!(node.outcome.io_engine, IoEngineKind::StdFs);
        assert_eq!(node.engine.kind(), IoEngineKind::StdFs);
        assert_eq!(node.outcome.fallback_reason, Some(reason));
        assert_eq!(node.outcome.io_mode, IoMode::Direct);
        assert_eq!(node.fd_cache.capacity(), 8);
    }

    #[test]
    fn public_types_are_thread_safe() {
        assert_send_sync::<VirtualFile>();
        assert_send_sync::<IoBuffer>();
    }
}
