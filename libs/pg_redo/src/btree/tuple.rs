//! B-tree index tuples and posting lists, as `nbtree.h` and `nbtdedup.c`
//! lay them out: the bits redo needs to rebuild tuples exactly as the
//! primary built them.
//!
//! An index tuple starts with `IndexTupleData`: the item pointer `t_tid`
//! (block number as two u16 halves, high half first, then the offset, 6
//! bytes) and `t_info` (u16: size in the low 13 bits, bit 13 the AM's
//! "alternative TID" flag). A **posting tuple** has that flag set and
//! `BT_IS_POSTING` in its TID offset: the offset's low 12 bits are the
//! number of heap TIDs, the TID's block number is where the array of
//! 6-byte heap TIDs starts inside the tuple (after the key). Pivot tuples
//! (high keys, downlinks) have the flag without `BT_IS_POSTING`; their TID
//! block number is the downlink (or, on a half-dead leaf's high key, the
//! top parent).
//!
//! Every function works on byte slices and checks what it reads against
//! the slice, returning `None` for a tuple that is not what it claims.

use postgres_ffi::maxalign;

/// `sizeof(IndexTupleData)`.
pub const SIZE_OF_INDEX_TUPLE: usize = 8;
/// `sizeof(ItemPointerData)`.
pub const SIZE_OF_TID: usize = 6;
const INDEX_SIZE_MASK: u16 = 0x1FFF;
const INDEX_ALT_TID_MASK: u16 = 0x2000;
const BT_OFFSET_MASK: u16 = 0x0FFF;
const BT_IS_POSTING: u16 = 0x2000;

/// A 6-byte heap (or index) item pointer.
pub type Tid = [u8; SIZE_OF_TID];

fn u16_at(t: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(t.get(at..at + 2)?.try_into().ok()?))
}

fn put_u16(t: &mut [u8], at: usize, v: u16) {
    t[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// `IndexTupleSize`.
pub fn size(t: &[u8]) -> Option<usize> {
    Some((u16_at(t, 6)? & INDEX_SIZE_MASK) as usize)
}

/// Block number of the tuple's `t_tid`.
pub fn tid_block(t: &[u8]) -> Option<u32> {
    Some(((u16_at(t, 0)? as u32) << 16) | u16_at(t, 2)? as u32)
}

pub fn set_tid_block(t: &mut [u8], blk: u32) {
    put_u16(t, 0, (blk >> 16) as u16);
    put_u16(t, 2, blk as u16);
}

fn tid_offset(t: &[u8]) -> Option<u16> {
    u16_at(t, 4)
}

pub fn is_posting(t: &[u8]) -> bool {
    matches!((u16_at(t, 6), tid_offset(t)), (Some(info), Some(off))
        if info & INDEX_ALT_TID_MASK != 0 && off & BT_IS_POSTING != 0)
}

/// Number of heap TIDs of a posting tuple.
pub fn n_posting(t: &[u8]) -> Option<usize> {
    Some((tid_offset(t)? & BT_OFFSET_MASK) as usize)
}

/// Byte range of a posting tuple's heap TID array, checked against the
/// tuple's size.
fn posting_range(t: &[u8]) -> Option<(usize, usize)> {
    let off = tid_block(t)? as usize;
    let n = n_posting(t)?;
    let end = off.checked_add(n.checked_mul(SIZE_OF_TID)?)?;
    (off >= SIZE_OF_INDEX_TUPLE && end <= size(t)? && end <= t.len()).then_some((off, n))
}

/// The heap TIDs of a tuple: its own `t_tid` for a plain tuple, the posting
/// list for a posting tuple.
pub fn heap_tids(t: &[u8]) -> Option<Vec<Tid>> {
    if !is_posting(t) {
        return Some([t.get(..SIZE_OF_TID)?.try_into().ok()?].to_vec());
    }
    let (off, n) = posting_range(t)?;
    Some(
        t[off..off + n * SIZE_OF_TID]
            .chunks_exact(SIZE_OF_TID)
            .map(|c| c.try_into().unwrap_or([0; SIZE_OF_TID]))
            .collect(),
    )
}

/// Size of the key part: everything before the posting list, or the whole
/// tuple for a plain one.
pub fn key_size(t: &[u8]) -> Option<usize> {
    if is_posting(t) {
        posting_range(t).map(|(off, _)| off)
    } else {
        size(t)
    }
}

/// `_bt_form_posting`: a tuple with `base`'s key and `htids` (a posting
/// tuple when there are several, else a plain tuple pointing at the one).
/// `None` if the key is not MAXALIGNed or the result would not fit
/// `t_info`'s size field.
pub fn form_posting(base: &[u8], htids: &[Tid]) -> Option<Vec<u8>> {
    let keysize = key_size(base)?;
    if keysize != maxalign(keysize) || keysize < SIZE_OF_INDEX_TUPLE || htids.is_empty() {
        return None;
    }
    let newsize = if htids.len() > 1 {
        maxalign(keysize + htids.len() * SIZE_OF_TID)
    } else {
        keysize
    };
    if newsize > INDEX_SIZE_MASK as usize || htids.len() > BT_OFFSET_MASK as usize {
        return None;
    }
    let mut t = vec![0u8; newsize];
    t[..keysize].copy_from_slice(base.get(..keysize)?);
    let info = (u16_at(&t, 6)? & !INDEX_SIZE_MASK) | newsize as u16;
    put_u16(&mut t, 6, info);
    if htids.len() > 1 {
        put_u16(&mut t, 6, info | INDEX_ALT_TID_MASK);
        put_u16(&mut t, 4, htids.len() as u16 | BT_IS_POSTING);
        set_tid_block(&mut t, keysize as u32);
        for (i, tid) in htids.iter().enumerate() {
            let at = keysize + i * SIZE_OF_TID;
            t[at..at + SIZE_OF_TID].copy_from_slice(tid);
        }
    } else {
        put_u16(&mut t, 6, info & !INDEX_ALT_TID_MASK);
        t[..SIZE_OF_TID].copy_from_slice(&htids[0]);
    }
    Some(t)
}

/// `_bt_swap_posting`: the posting split of an insertion in the middle of
/// posting list `oposting` at `postingoff`. Returns the new posting tuple
/// (same size: `newitem`'s heap TID goes in at `postingoff`, the last one
/// drops out) and changes `newitem` to carry that last TID.
pub fn swap_posting(newitem: &mut [u8], oposting: &[u8], postingoff: usize) -> Option<Vec<u8>> {
    if !is_posting(oposting) || is_posting(newitem) || newitem.len() < SIZE_OF_TID {
        return None;
    }
    let (off, n) = posting_range(oposting)?;
    if postingoff == 0 || postingoff >= n {
        return None;
    }
    let mut nposting = oposting.get(..size(oposting)?)?.to_vec();
    let at = off + postingoff * SIZE_OF_TID;
    let last = off + (n - 1) * SIZE_OF_TID;
    let max_tid: Tid = oposting[last..last + SIZE_OF_TID].try_into().ok()?;
    nposting.copy_within(at..last, at + SIZE_OF_TID);
    nposting[at..at + SIZE_OF_TID].copy_from_slice(&newitem[..SIZE_OF_TID]);
    newitem[..SIZE_OF_TID].copy_from_slice(&max_tid);
    Some(nposting)
}

/// `_bt_update_posting`: posting tuple `orig` without the heap TIDs at the
/// (ascending) positions `deleted`; `None` unless at least one TID stays
/// and the positions exist in order.
pub fn update_posting(orig: &[u8], deleted: &[u16]) -> Option<Vec<u8>> {
    let tids = heap_tids(orig)?;
    if !is_posting(orig) || deleted.is_empty() || deleted.len() >= tids.len() {
        return None;
    }
    let mut keep = Vec::with_capacity(tids.len() - deleted.len());
    let mut d = 0;
    for (i, tid) in tids.iter().enumerate() {
        if d < deleted.len() && deleted[d] as usize == i {
            d += 1;
        } else {
            keep.push(*tid);
        }
    }
    if d != deleted.len() {
        return None;
    }
    form_posting(orig, &keep)
}

/// The high key of a half-dead leaf: an empty pivot tuple whose TID block
/// is the top parent of the subtree being deleted
/// (`BTreeTupleSetTopParent` on a zeroed `IndexTupleData`).
pub fn dummy_high_key(top_parent: u32) -> [u8; SIZE_OF_INDEX_TUPLE] {
    let mut t = [0u8; SIZE_OF_INDEX_TUPLE];
    set_tid_block(&mut t, top_parent);
    // No key attributes, no heap TID: offset 0.
    put_u16(&mut t, 6, SIZE_OF_INDEX_TUPLE as u16 | INDEX_ALT_TID_MASK);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(b: u32, o: u16) -> Tid {
        let mut t = [0u8; 6];
        t[0..2].copy_from_slice(&((b >> 16) as u16).to_le_bytes());
        t[2..4].copy_from_slice(&(b as u16).to_le_bytes());
        t[4..6].copy_from_slice(&o.to_le_bytes());
        t
    }

    fn plain(key: u64, heap: Tid) -> Vec<u8> {
        let mut t = vec![0u8; 16];
        t[..6].copy_from_slice(&heap);
        t[6..8].copy_from_slice(&16u16.to_le_bytes());
        t[8..16].copy_from_slice(&key.to_le_bytes());
        t
    }

    #[test]
    fn posting_lists_round_trip() {
        let base = plain(7, tid(1, 1));
        let p = form_posting(&base, &[tid(1, 1), tid(1, 2), tid(2, 5)]).unwrap();
        assert!(is_posting(&p));
        assert_eq!(size(&p), Some(maxalign(16 + 18)));
        assert_eq!(
            heap_tids(&p).unwrap(),
            vec![tid(1, 1), tid(1, 2), tid(2, 5)]
        );
        assert_eq!(key_size(&p), Some(16));
        // Removing all but one gives a plain tuple again.
        let one = update_posting(&p, &[0, 2]).unwrap();
        assert!(!is_posting(&one));
        assert_eq!(one, plain(7, tid(1, 2)));
        let two = update_posting(&p, &[1]).unwrap();
        assert_eq!(heap_tids(&two).unwrap(), vec![tid(1, 1), tid(2, 5)]);
        assert!(update_posting(&p, &[0, 1, 2]).is_none());
        assert!(update_posting(&p, &[2, 1]).is_none());

        let mut newitem = plain(7, tid(1, 3));
        let n = swap_posting(&mut newitem, &p, 2).unwrap();
        assert_eq!(
            heap_tids(&n).unwrap(),
            vec![tid(1, 1), tid(1, 2), tid(1, 3)]
        );
        assert_eq!(&newitem[..6], &tid(2, 5));
        assert!(swap_posting(&mut plain(7, tid(1, 3)), &p, 0).is_none());
        assert!(swap_posting(&mut plain(7, tid(1, 3)), &p, 3).is_none());
    }

    #[test]
    fn garbage_is_none() {
        let mut bad = form_posting(&plain(1, tid(0, 1)), &[tid(0, 1), tid(0, 2)]).unwrap();
        // Posting list claimed to start past the tuple.
        bad[0..4].copy_from_slice(&[0, 0, 0xFF, 0x7F]);
        assert!(heap_tids(&bad).is_none());
        assert!(size(&[1]).is_none());
        assert!(!is_posting(&[]));
        let t = dummy_high_key(42);
        assert_eq!(tid_block(&t), Some(42));
        assert_eq!(size(&t), Some(8));
        assert!(!is_posting(&t));
    }
}
