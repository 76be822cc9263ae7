//! Helpers shared by the integration tests: temp paths, deterministic test
//! data, and a one-call "write a whole file" helper.

#![allow(dead_code)]

use blockfile::{BlobRef, BlockFileWriter, FinishedFile};
use camino::{Utf8Path, Utf8PathBuf};
use rand::{Rng, SeedableRng};

pub const MAGIC: u32 = 0x7e57_b10c;

pub struct TempDir {
    _dir: tempfile::TempDir,
    pub path: Utf8PathBuf,
}

pub fn tempdir() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("utf8 temp path");
    TempDir { _dir: dir, path }
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Bytes that zstd can shrink (runs and a small alphabet) or not (random).
pub fn blob_data(rng: &mut impl Rng, len: usize, compressible: bool) -> Vec<u8> {
    if compressible {
        (0..len).map(|i| b"abcab"[(i / 7) % 5]).collect()
    } else {
        (0..len).map(|_| rng.gen()).collect()
    }
}

/// A 26-byte key (18-byte key ++ 8-byte big-endian LSN) derived from `i`.
pub fn key26(i: u64) -> [u8; 26] {
    let mut k = [0u8; 26];
    k[0] = 0x00;
    k[1..5].copy_from_slice(&1663u32.to_be_bytes());
    k[9..13].copy_from_slice(&((i / 1000) as u32).to_be_bytes());
    k[13] = 0;
    k[14..18].copy_from_slice(&((i % 1000) as u32 / 10).to_be_bytes());
    k[18..26].copy_from_slice(&(0x100_0000 + (i % 10) * 8).to_be_bytes());
    k
}

pub struct Written {
    pub refs: Vec<BlobRef>,
    pub finished: FinishedFile,
}

/// Writes `blobs` (with their compress flags), then index entries `keys` →
/// value, then finishes with `user_header`.
pub async fn write_file(
    path: &Utf8Path,
    key_width: usize,
    blobs: &[(Vec<u8>, bool)],
    index: &[(Vec<u8>, u64)],
    user_header: &[u8],
) -> Written {
    let mut w = BlockFileWriter::create(path, MAGIC, key_width)
        .await
        .unwrap();
    let mut refs = Vec::new();
    for (data, compress) in blobs {
        refs.push(w.append_blob(data, *compress).await.unwrap());
    }
    for (k, v) in index {
        w.append_index(k, *v).await.unwrap();
    }
    let finished = w.finish(user_header).await.unwrap();
    Written { refs, finished }
}
