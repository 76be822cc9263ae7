//! Layout of one B-tree node (one block) and the code that encodes/decodes it.
//!
//! Payload layout (integers little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | kind: 1 = leaf, 2 = internal |
//! | 1 | 1 | level (0 for leaves) |
//! | 2 | 2 | entry count `n` |
//! | 4 | 1 | key width `w` |
//! | 5 | 1 | prefix length `p` (0..=w), shared by all keys of the node |
//! | 6 | 2 | reserved, 0 |
//! | 8 | p | the shared key prefix |
//! | 8+p | n·(w−p) | key suffixes, ascending |
//! | 8+p+n·(w−p) | n·8 | values (`u64`); in internal nodes, child block numbers |
//!
//! The rest of the payload is zero; the block ends in its checksum.
//!
//! Used by the index builder (encoding) and the index reader (decoding,
//! searching); decoding validates every field so that a damaged node, even one
//! with a valid checksum, becomes an error rather than a panic.

use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;
use camino::Utf8Path;

use crate::block::{BlockNo, PAYLOAD_SIZE};
use crate::error::{BlockFileError, Result};
use crate::header::MAX_KEY_WIDTH;

pub(crate) const KIND_LEAF: u8 = 1;
pub(crate) const KIND_INTERNAL: u8 = 2;
pub(crate) const NODE_HEADER: usize = 8;

/// Bytes a node with `n` entries and a `p`-byte prefix occupies.
pub(crate) fn node_size(width: usize, prefix: usize, n: usize) -> usize {
    NODE_HEADER + prefix + n * (width - prefix + 8)
}

/// A key as returned by index iteration: up to 32 bytes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexKey {
    len: u8,
    bytes: [u8; MAX_KEY_WIDTH],
}

impl IndexKey {
    /// Copies `key` (at most 32 bytes).
    pub fn new(key: &[u8]) -> IndexKey {
        assert!(
            key.len() <= MAX_KEY_WIDTH,
            "index keys are at most 32 bytes"
        );
        let mut bytes = [0u8; MAX_KEY_WIDTH];
        bytes[..key.len()].copy_from_slice(key);
        IndexKey {
            len: key.len() as u8,
            bytes,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::ops::Deref for IndexKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Length of the common prefix of two slices.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Writes a node into `payload` (at least [`PAYLOAD_SIZE`] bytes, zeroed).
/// `keys` holds `values.len()` full keys of `width` bytes each, ascending.
pub(crate) fn encode_node(
    payload: &mut [u8],
    level: u8,
    width: usize,
    keys: &[u8],
    values: &[u64],
) {
    let n = values.len();
    debug_assert_eq!(keys.len(), n * width);
    let prefix = if n == 0 {
        0
    } else {
        common_prefix(&keys[..width], &keys[(n - 1) * width..])
    };
    assert!(node_size(width, prefix, n) <= PAYLOAD_SIZE, "node overflow");
    payload[0] = if level == 0 { KIND_LEAF } else { KIND_INTERNAL };
    payload[1] = level;
    payload[2..4].copy_from_slice(&(n as u16).to_le_bytes());
    payload[4] = width as u8;
    payload[5] = prefix as u8;
    payload[6..8].fill(0);
    let mut pos = NODE_HEADER;
    if n > 0 {
        payload[pos..pos + prefix].copy_from_slice(&keys[..prefix]);
    }
    pos += prefix;
    let suffix = width - prefix;
    for key in keys.chunks_exact(width) {
        payload[pos..pos + suffix].copy_from_slice(&key[prefix..]);
        pos += suffix;
    }
    for v in values {
        payload[pos..pos + 8].copy_from_slice(&v.to_le_bytes());
        pos += 8;
    }
}

/// A decoded, validated node over a cached block.
#[derive(Clone)]
pub(crate) struct Node {
    block: Bytes,
    pub blkno: BlockNo,
    pub level: u8,
    pub n: usize,
    width: usize,
    prefix: usize,
}

impl Node {
    /// Validates the node header of `block` read from `blkno`.
    pub fn parse(
        path: &Utf8Path,
        blkno: BlockNo,
        block: Bytes,
        expected_level: u8,
        width: usize,
    ) -> Result<Node> {
        let bad = |reason: String| BlockFileError::corrupt(path, blkno, reason);
        let kind = block[0];
        let level = block[1];
        let n = u16::from_le_bytes([block[2], block[3]]) as usize;
        let w = block[4] as usize;
        let prefix = block[5] as usize;
        let expected_kind = if expected_level == 0 {
            KIND_LEAF
        } else {
            KIND_INTERNAL
        };
        if kind != expected_kind || level != expected_level {
            return Err(bad(format!(
                "index node kind {kind} level {level}, expected kind {expected_kind} level {expected_level}"
            )));
        }
        if w != width {
            return Err(bad(format!("index node key width {w}, file uses {width}")));
        }
        if prefix > w || (n == 0 && prefix != 0) {
            return Err(bad(format!("index node prefix length {prefix} invalid")));
        }
        if node_size(w, prefix, n) > PAYLOAD_SIZE {
            return Err(bad(format!(
                "index node with {n} entries overflows its block"
            )));
        }
        Ok(Node {
            block,
            blkno,
            level,
            n,
            width,
            prefix,
        })
    }

    fn prefix_bytes(&self) -> &[u8] {
        &self.block[NODE_HEADER..NODE_HEADER + self.prefix]
    }

    fn suffix(&self, i: usize) -> &[u8] {
        let s = self.width - self.prefix;
        let start = NODE_HEADER + self.prefix + i * s;
        &self.block[start..start + s]
    }

    pub fn key(&self, i: usize) -> IndexKey {
        let mut k = IndexKey::new(&[]);
        k.len = self.width as u8;
        k.bytes[..self.prefix].copy_from_slice(self.prefix_bytes());
        k.bytes[self.prefix..self.width].copy_from_slice(self.suffix(i));
        k
    }

    pub fn value(&self, i: usize) -> u64 {
        let start = NODE_HEADER + self.prefix + self.n * (self.width - self.prefix) + i * 8;
        u64::from_le_bytes(self.block[start..start + 8].try_into().expect("8 bytes"))
    }

    /// Index of the first key `>= target` (`strict`: `> target`).
    pub fn search(&self, target: &[u8], strict: bool) -> usize {
        debug_assert_eq!(target.len(), self.width);
        match target[..self.prefix].cmp(self.prefix_bytes()) {
            Ordering::Less => return 0,
            Ordering::Greater => return self.n,
            Ordering::Equal => {}
        }
        let t = &target[self.prefix..];
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let before = match self.suffix(mid).cmp(t) {
                Ordering::Less => true,
                Ordering::Equal => strict,
                Ordering::Greater => false,
            };
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parse_search() {
        let width = 4;
        let keys: Vec<[u8; 4]> = vec![[1, 2, 0, 5], [1, 2, 3, 0], [1, 2, 3, 9], [1, 2, 7, 7]];
        let flat: Vec<u8> = keys.iter().flatten().copied().collect();
        let values = [10, 20, 30, 40];
        let mut payload = vec![0u8; crate::block::BLOCK_SIZE];
        encode_node(&mut payload, 0, width, &flat, &values);
        assert_eq!(payload[5], 2, "prefix [1,2] is shared");
        let node = Node::parse(
            Utf8Path::new("f"),
            3,
            Bytes::from(payload.clone()),
            0,
            width,
        )
        .unwrap();
        assert_eq!(node.n, 4);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(node.key(i).as_bytes(), k);
            assert_eq!(node.value(i), values[i]);
            assert_eq!(node.search(k, false), i);
            assert_eq!(node.search(k, true), i + 1);
        }
        assert_eq!(node.search(&[0, 9, 9, 9], false), 0);
        assert_eq!(node.search(&[1, 2, 3, 5], false), 2);
        assert_eq!(node.search(&[1, 3, 0, 0], false), 4);
        assert!(Node::parse(
            Utf8Path::new("f"),
            3,
            Bytes::from(payload.clone()),
            1,
            width
        )
        .is_err());
        assert!(Node::parse(Utf8Path::new("f"), 3, Bytes::from(payload), 0, 5).is_err());
    }
}
