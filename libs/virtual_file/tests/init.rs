//! `init` with io-uring + direct: reports the engine in effect (or the
//! fallback reason), applies the mode to layer reads, and refuses a second
//! call.

mod common;

use std::io;

use common::{pattern, scratch, write_pattern_file};
use virtual_file::{Config, InitError, IoBuffer, IoEngineKind, IoMode, VirtualFile};

#[tokio::test]
async fn init_io_uring_direct() -> io::Result<()> {
    let config = Config {
        max_file_descriptors: 16,
        io_engine: IoEngineKind::IoUring,
        io_mode: IoMode::Direct,
    };
    let outcome = match virtual_file::init(config) {
        Ok(outcome) => outcome,
        Err(e) => panic!("first init failed: {e}"),
    };
    match virtual_file::io_uring_available() {
        Ok(()) => {
            assert_eq!(outcome.io_engine, IoEngineKind::IoUring);
            assert_eq!(outcome.fallback_reason, None);
        }
        Err(reason) => {
            assert_eq!(outcome.io_engine, IoEngineKind::StdFs);
            assert_eq!(outcome.fallback_reason, Some(reason));
        }
    }
    assert_eq!(outcome.io_mode, IoMode::Direct);
    assert_eq!(outcome.max_file_descriptors, 16);
    assert_eq!(virtual_file::current(), outcome);

    match virtual_file::init(Config::default()) {
        Err(InitError::AlreadyInitialized(in_effect)) => assert_eq!(*in_effect, outcome),
        other => panic!("second init must be refused, got {other:?}"),
    }

    let dir = scratch();
    let path = dir.path.join("layer");
    write_pattern_file(&path, 7, 3 * 4096 + 5).await?;
    let layer = VirtualFile::open_for_layer_read(&path).await?;
    assert_eq!(layer.io_engine(), outcome.io_engine);
    assert!(layer.is_direct() || virtual_file::stats().direct_fallbacks > 0);
    let plain = VirtualFile::open(&path).await?;
    assert!(!plain.is_direct(), "plain open stays buffered");
    let (buf, res) = layer.read_exact_at(IoBuffer::zeroed(4100), 10).await;
    res?;
    assert_eq!(&buf[..], &pattern(7, 10, 4100)[..]);
    Ok(())
}
