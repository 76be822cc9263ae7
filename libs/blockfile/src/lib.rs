//! Checksummed block files: the storage format under the pageserver's
//! immutable delta and image layer files.
//!
//! A block file is a sequence of 8 KiB blocks, each ending in a CRC32C
//! ([`block`]). Block 0 is the header ([`header`]), written last; blocks
//! 1.. hold the blob stream ([`blob`]: length-prefixed, optionally
//! zstd-compressed values, addressed by [`BlobRef`]); the remaining blocks
//! hold a B-tree index over fixed-width keys ([`btree`]).
//!
//! Writing: [`BlockFileWriter`]. Reading: [`BlockFile`] (single and
//! [vectored](vectored) blob reads, index lookups and range iteration), with
//! an optional shared [`BlockCache`] for index blocks and, per read, data
//! blocks ([`LruBlockCache`]).
//! Damaged or incomplete files produce [`BlockFileError`]s naming the file and
//! block; no input makes the reader panic or return wrong data.
//!
//! The exact on-disk format is described in `docs/layer-format.md`.

pub mod blob;
pub mod block;
pub mod btree;
pub mod cache;
pub mod error;
pub mod header;
pub mod reader;
pub mod vectored;
pub mod writer;

pub use blob::{BlobRef, MAX_BLOB_LEN};
pub use block::{BlockNo, BLOCK_SIZE, PAYLOAD_SIZE};
pub use btree::{IndexIter, IndexKey};
pub use cache::{next_file_id, BlockCache, CacheStats, ContentKind, LruBlockCache};
pub use error::{BlockFileError, Result};
pub use header::{FORMAT_VERSION, MAX_KEY_WIDTH, MAX_USER_HEADER};
pub use reader::{BlockFile, OpenOptions, DEFAULT_MAX_DECOMPRESSED};
pub use vectored::{
    Concurrency, DataCache, ReadOptions, VectoredRead, VectoredStats, DEFAULT_MAX_IO_SIZE,
};
pub use writer::{BlockFileWriter, FinishedFile};

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}

    /// The pageserver moves writers, readers and their futures across tokio
    /// tasks; this fails to compile if any of them stops being `Send`.
    #[allow(dead_code)]
    fn futures_are_send(
        w: &mut BlockFileWriter,
        owned: BlockFileWriter,
        f: &BlockFile,
        it: &mut IndexIter,
    ) {
        is_send(&w.append_blob(&[], false));
        is_send(&w.append_index(&[], 0));
        is_send(&owned.finish(&[]));
        is_send(&f.read_blobs(&[], 0, Concurrency::Concurrent));
        is_send(&f.read_blobs_with(&[], ReadOptions::default()));
        is_send(&f.read_blob(BlobRef(0)));
        is_send(&f.get(&[]));
        is_send(&it.next());
        is_send(&BlockFile::open(camino::Utf8Path::new(""), 0));
    }

    #[test]
    fn handles_are_send_and_sync() {
        is_send_sync::<BlockFile>();
        is_send_sync::<LruBlockCache>();
        is_send_sync::<BlockFileError>();
        is_send_sync::<IndexIter>();
    }
}
