//! Without `init`, defaults apply on first use, and a later `init` is
//! refused rather than silently ignored.

mod common;

use std::io;

use common::{scratch, write_pattern_file};
use virtual_file::{Config, InitError, IoEngineKind, IoMode, VirtualFile};

#[tokio::test]
async fn defaults_latch_on_first_use() -> io::Result<()> {
    let s = virtual_file::stats();
    assert_eq!(s.fd_table_capacity, 0, "stats() does not latch defaults");
    assert_eq!(
        virtual_file::init(Config {
            max_file_descriptors: 0,
            ..Config::default()
        }),
        Err(InitError::ZeroFileDescriptors)
    );
    let dir = scratch();
    let path = dir.path.join("f");
    write_pattern_file(&path, 1, 100).await?;
    let file = VirtualFile::open_for_layer_read(&path).await?;
    assert_eq!(file.io_engine(), IoEngineKind::StdFs);
    assert!(!file.is_direct());
    let current = virtual_file::current();
    assert_eq!(current.io_engine, IoEngineKind::StdFs);
    assert_eq!(current.io_mode, IoMode::Buffered);
    assert_eq!(current.max_file_descriptors, 1000);
    assert_eq!(current.fallback_reason, None);
    assert_eq!(virtual_file::stats().fd_table_capacity, 1000);
    let late = virtual_file::init(Config {
        io_engine: IoEngineKind::IoUring,
        ..Config::default()
    });
    assert!(
        matches!(late, Err(InitError::AlreadyInitialized(_))),
        "{late:?}"
    );
    Ok(())
}
