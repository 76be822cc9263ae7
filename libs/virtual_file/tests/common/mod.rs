//! Helpers shared by the integration tests: deterministic file contents and
//! scratch directories.

#![allow(dead_code)]

use camino::{Utf8Path, Utf8PathBuf};
use virtual_file::{IoBuffer, VirtualFile};

/// The byte stored at position `pos` of a pattern file with `seed`.
pub fn pattern_byte(seed: u64, pos: u64) -> u8 {
    let x = pos.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x >> 56) as u8 ^ (pos as u8)
}

pub fn pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| pattern_byte(seed, offset + i))
        .collect()
}

pub struct Scratch {
    _dir: tempfile::TempDir,
    pub path: Utf8PathBuf,
}

pub fn scratch() -> Scratch {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = Utf8Path::from_path(dir.path())
        .expect("utf-8 temp dir")
        .to_owned();
    Scratch { _dir: dir, path }
}

/// Writes a pattern file of `len` bytes through `VirtualFile::create_rw`.
pub async fn write_pattern_file(path: &Utf8Path, seed: u64, len: usize) -> std::io::Result<()> {
    let file = VirtualFile::create_rw(path).await?;
    let (_, res) = file
        .write_all_at(IoBuffer::from_slice(&pattern(seed, 0, len)), 0)
        .await;
    res?;
    file.sync_all().await
}
