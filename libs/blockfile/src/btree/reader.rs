//! Index lookups: point `get` and the range iterator [`IndexIter`].
//!
//! Both descend from the root named in the header, loading each node through
//! [`Inner::read_index_block`] (cache, then disk with checksum check) and
//! validating it against the tree invariants listed in [`crate::btree`]:
//! expected level, key width, child pointers strictly below the parent and
//! inside the index area, and each child's first key equal to its separator.
//! Because levels strictly decrease on the way down, a damaged tree cannot
//! make a lookup loop; it produces a `Corrupt` error naming the block.
//!
//! Called through [`crate::BlockFile::get`], [`crate::BlockFile::iter_from`]
//! and [`crate::BlockFile::iter_back_from`].

use std::sync::Arc;

use crate::block::BlockNo;
use crate::btree::node::{IndexKey, Node};
use crate::error::{BlockFileError, Result};
use crate::reader::Inner;

fn check_key(inner: &Inner, key: &[u8]) -> Result<()> {
    let width = inner.header.key_width as usize;
    if key.len() != width {
        return Err(BlockFileError::invalid(
            &inner.path,
            format!("index key has {} bytes, this file uses {width}", key.len()),
        ));
    }
    Ok(())
}

/// Loads and validates the node at `blkno`, reached from `referrer` (0 for
/// the root, whose pointer lives in the header). `separator` is the key the
/// parent holds for this child.
async fn load(
    inner: &Inner,
    blkno: BlockNo,
    referrer: BlockNo,
    level: u8,
    separator: Option<IndexKey>,
) -> Result<Node> {
    let block = inner.read_index_block(blkno, referrer).await?;
    let width = inner.header.key_width as usize;
    let node = Node::parse(&inner.path, blkno, block, level, width)?;
    let bad = |reason: &str| Err(BlockFileError::corrupt(&inner.path, blkno, reason));
    if node.n == 0 {
        let lone_root =
            blkno == inner.header.index_root_blk && level == 0 && inner.header.index_entries == 0;
        if !lone_root {
            return bad("empty index node");
        }
    }
    if let Some(sep) = separator {
        if node.key(0) != sep {
            return bad("first key differs from the parent's separator");
        }
    }
    Ok(node)
}

/// Child pointer `i` of an internal node, validated.
fn child(inner: &Inner, node: &Node, i: usize) -> Result<BlockNo> {
    let v = node.value(i);
    if v >= u64::from(node.blkno) || v < u64::from(inner.header.index_start_blk) {
        return Err(BlockFileError::corrupt(
            &inner.path,
            node.blkno,
            format!(
                "child pointer {v} not in {}..{}",
                inner.header.index_start_blk, node.blkno
            ),
        ));
    }
    Ok(v as BlockNo)
}

pub(crate) async fn get(inner: &Inner, key: &[u8]) -> Result<Option<u64>> {
    check_key(inner, key)?;
    let mut blkno = inner.header.index_root_blk;
    let mut referrer = 0;
    let mut level = inner.header.tree_height - 1;
    let mut separator = None;
    loop {
        let node = load(inner, blkno, referrer, level, separator).await?;
        if level == 0 {
            let i = node.search(key, false);
            let hit = i < node.n && node.key(i).as_bytes() == key;
            return Ok(hit.then(|| node.value(i)));
        }
        let i = node.search(key, true);
        if i == 0 {
            return Ok(None);
        }
        separator = Some(node.key(i - 1));
        referrer = blkno;
        blkno = child(inner, &node, i - 1)?;
        level -= 1;
    }
}

/// One level of the iterator's path. For internal nodes `pos` is the child
/// being visited. For leaves it is the next entry to return going forward,
/// or the number of entries left going backward.
struct Frame {
    node: Node,
    pos: usize,
}

enum State {
    /// Not positioned yet; the first `next` descends to this key.
    Start(IndexKey),
    Running,
    Done,
    Failed(BlockFileError),
}

/// Async iterator over index entries, forward from a key or backward from it.
///
/// Owns a handle to the file, so it can outlive the `BlockFile` it came from.
/// After an error every further `next` returns that error again.
pub struct IndexIter {
    inner: Arc<Inner>,
    forward: bool,
    stack: Vec<Frame>,
    state: State,
}

impl IndexIter {
    pub(crate) fn new(inner: Arc<Inner>, key: &[u8], forward: bool) -> Result<IndexIter> {
        check_key(&inner, key)?;
        Ok(IndexIter {
            inner,
            forward,
            stack: Vec::new(),
            state: State::Start(IndexKey::new(key)),
        })
    }

    /// Next entry, or `None` at the end of the index.
    pub async fn next(&mut self) -> Result<Option<(IndexKey, u64)>> {
        match &self.state {
            State::Done => return Ok(None),
            State::Failed(e) => return Err(e.clone()),
            State::Running => {}
            State::Start(key) => {
                let key = *key;
                self.state = State::Running;
                if let Err(e) = self.position(&key).await {
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
        match self.step().await {
            Ok(Some(entry)) => Ok(Some(entry)),
            Ok(None) => {
                self.state = State::Done;
                self.stack.clear();
                Ok(None)
            }
            Err(e) => {
                self.state = State::Failed(e.clone());
                self.stack.clear();
                Err(e)
            }
        }
    }

    /// Builds the root-to-leaf path for the start key.
    async fn position(&mut self, key: &IndexKey) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let mut blkno = inner.header.index_root_blk;
        let mut referrer = 0;
        let mut level = inner.header.tree_height - 1;
        let mut separator = None;
        loop {
            let node = load(&inner, blkno, referrer, level, separator).await?;
            if level == 0 {
                // Forward: first entry >= key. Backward: entries <= key remain.
                let pos = node.search(key, !self.forward);
                self.stack.push(Frame { node, pos });
                return Ok(());
            }
            let i = node.search(key, true);
            let c = if i > 0 {
                i - 1
            } else if self.forward {
                0
            } else {
                // Every key in the tree is above `key`.
                self.stack.clear();
                return Ok(());
            };
            separator = Some(node.key(c));
            referrer = blkno;
            blkno = child(&inner, &node, c)?;
            level -= 1;
            self.stack.push(Frame { node, pos: c });
        }
    }

    /// Descends from the top frame's current child to a leaf, along the
    /// leftmost (forward) or rightmost (backward) edge.
    async fn descend(&mut self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        loop {
            let top = self.stack.last().expect("descend from a frame");
            if top.node.level == 0 {
                return Ok(());
            }
            let blkno = child(&inner, &top.node, top.pos)?;
            let separator = top.node.key(top.pos);
            let node = load(
                &inner,
                blkno,
                top.node.blkno,
                top.node.level - 1,
                Some(separator),
            )
            .await?;
            let pos = match (self.forward, node.level) {
                (true, _) => 0,
                (false, 0) => node.n,
                (false, _) => node.n - 1,
            };
            self.stack.push(Frame { node, pos });
        }
    }

    async fn step(&mut self) -> Result<Option<(IndexKey, u64)>> {
        loop {
            let Some(leaf) = self.stack.last_mut() else {
                return Ok(None);
            };
            if self.forward && leaf.pos < leaf.node.n {
                let i = leaf.pos;
                leaf.pos += 1;
                return Ok(Some((leaf.node.key(i), leaf.node.value(i))));
            }
            if !self.forward && leaf.pos > 0 {
                leaf.pos -= 1;
                let i = leaf.pos;
                return Ok(Some((leaf.node.key(i), leaf.node.value(i))));
            }
            // Leaf exhausted: move the nearest ancestor that has a sibling
            // left in our direction, then descend to its next leaf.
            self.stack.pop();
            loop {
                let Some(parent) = self.stack.last_mut() else {
                    return Ok(None);
                };
                if self.forward && parent.pos + 1 < parent.node.n {
                    parent.pos += 1;
                    break;
                }
                if !self.forward && parent.pos > 0 {
                    parent.pos -= 1;
                    break;
                }
                self.stack.pop();
            }
            self.descend().await?;
        }
    }
}
