//! The on-disk B-tree index of a block file.
//!
//! Fixed-width keys (1..=32 bytes, chosen per file) map to `u64` values. The
//! tree is built bottom-up by [`writer::IndexBuilder`] from keys appended in
//! strictly ascending order and read by [`reader`] (point lookups, forward and
//! backward range iteration). Every node fills one block; see [`node`] for the
//! layout.
//!
//! Tree invariants (checked by the reader while descending):
//! - leaves are at level 0, the root at level `height - 1`;
//! - an internal entry's key equals the first key of the child it points to;
//! - children are written before their parents, so a child's block number is
//!   below its parent's and at or above the first index block;
//! - only a root leaf may be empty (an index without entries).

pub(crate) mod node;
pub(crate) mod reader;
pub(crate) mod writer;

pub use node::IndexKey;
pub use reader::IndexIter;
pub use writer::spill_path;
