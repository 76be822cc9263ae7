//! Binary forms of the metadata values the Postgres-level view stores:
//! relation and SLRU segment sizes, and the four directories (databases,
//! relations of a database, segments of an SLRU, prepared transactions).
//!
//! Sizes are a bare `u32` little-endian block count (the form the key layout
//! reference fixes for relation size keys). Directories are our own format,
//! shared header then a sorted list of fixed-size entries:
//!
//! ```text
//! byte 0      format version = 0x01
//! byte 1      directory kind: 'D' databases, 'R' relations, 'S' SLRU segments, 'T' two-phase
//! bytes 2..6  n: u32 LE, number of entries
//! then        n entries, strictly ascending, little-endian fields:
//!   'D': spcnode u32, dbnode u32, flags u8 (bit 0 = the database has a relmapper file)
//!   'R': relnode u32, forknum u8
//!   'S': segno u32
//!   'T': xid u64 (64 bits so that PostgreSQL 17's full xids fit unchanged)
//! ```
//!
//! The encoding is canonical: decoding rejects unknown versions or kinds,
//! unknown flag bits, entries out of order or repeated, and missing or
//! trailing bytes, so `encode(decode(b)) == b` whenever decoding succeeds.
//! Counts are checked against the remaining length before allocating.
//! `docs/value-format.md` describes the same format for readers of layer
//! files. Used by [`super::DatadirView`] (decode) and
//! [`super::DatadirModification`] (encode).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use pageserver_api::reltag::Oid;

/// Current directory format version.
pub const DIRECTORY_FORMAT_V1: u8 = 0x01;

const KIND_DB: u8 = b'D';
const KIND_REL: u8 = b'R';
const KIND_SLRU: u8 = b'S';
const KIND_TWOPHASE: u8 = b'T';

const HEADER_LEN: usize = 6;

/// A stored metadata value that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataFormatError {
    #[error("{what}: value is {len} bytes, expected {expected}")]
    BadLength {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{what}: unsupported directory format version 0x{version:02X}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    #[error("{what}: directory kind 0x{found:02X}, expected 0x{expected:02X}")]
    WrongKind {
        what: &'static str,
        found: u8,
        expected: u8,
    },
    #[error("{what}: entry {index} is not above the previous one")]
    Unsorted { what: &'static str, index: usize },
    #[error("{what}: entry {index} has unknown flag bits 0x{flags:02X}")]
    BadFlags {
        what: &'static str,
        index: usize,
        flags: u8,
    },
}

/// A relation fork or SLRU segment size: number of blocks, u32 LE.
pub fn encode_size(nblocks: u32) -> Bytes {
    Bytes::copy_from_slice(&nblocks.to_le_bytes())
}

/// Decodes a value written by [`encode_size`].
pub fn decode_size(what: &'static str, value: &[u8]) -> Result<u32, MetadataFormatError> {
    let b: [u8; 4] = value
        .try_into()
        .map_err(|_| MetadataFormatError::BadLength {
            what,
            len: value.len(),
            expected: 4,
        })?;
    Ok(u32::from_le_bytes(b))
}

/// The databases of the cluster: `(spcnode, dbnode)` → whether the database
/// directory holds a relmapper file (`pg_filenode.map`). The shared
/// catalogs appear as `(1664, 0)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbDirectory {
    pub dbs: BTreeMap<(Oid, Oid), bool>,
}

/// The relation forks of one database: `(relnode, forknum)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelDirectory {
    pub rels: BTreeSet<(Oid, u8)>,
}

/// The segment files of one SLRU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlruSegmentDirectory {
    pub segments: BTreeSet<u32>,
}

/// The prepared transactions that have a state file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwoPhaseDirectory {
    pub xids: BTreeSet<u64>,
}

fn header(kind: u8, n: usize, entry_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + n * entry_len);
    out.push(DIRECTORY_FORMAT_V1);
    out.push(kind);
    // A directory of more than 4 billion entries cannot be built from WAL
    // (each entry needs its own record); saturating keeps this total.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    out
}

/// Checks the header and returns the entry bytes split into `entry_len`
/// chunks.
fn entries<'a>(
    what: &'static str,
    value: &'a [u8],
    kind: u8,
    entry_len: usize,
) -> Result<std::slice::ChunksExact<'a, u8>, MetadataFormatError> {
    let Some((head, body)) = value.split_first_chunk::<HEADER_LEN>() else {
        return Err(MetadataFormatError::BadLength {
            what,
            len: value.len(),
            expected: HEADER_LEN,
        });
    };
    if head[0] != DIRECTORY_FORMAT_V1 {
        return Err(MetadataFormatError::UnsupportedVersion {
            what,
            version: head[0],
        });
    }
    if head[1] != kind {
        return Err(MetadataFormatError::WrongKind {
            what,
            found: head[1],
            expected: kind,
        });
    }
    let n = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
    let expected = n
        .checked_mul(entry_len)
        .and_then(|b| b.checked_add(HEADER_LEN))
        .unwrap_or(usize::MAX);
    if value.len() != expected {
        return Err(MetadataFormatError::BadLength {
            what,
            len: value.len(),
            expected,
        });
    }
    Ok(body.chunks_exact(entry_len))
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Collects decoded entries, enforcing strict ascending order.
fn sorted<T: Ord + Copy>(
    what: &'static str,
    items: impl Iterator<Item = Result<T, MetadataFormatError>>,
) -> Result<Vec<T>, MetadataFormatError> {
    let mut out: Vec<T> = Vec::new();
    for (index, item) in items.enumerate() {
        let item = item?;
        if out.last().is_some_and(|prev| *prev >= item) {
            return Err(MetadataFormatError::Unsorted { what, index });
        }
        out.push(item);
    }
    Ok(out)
}

impl DbDirectory {
    const ENTRY: usize = 9;
    const HAS_RELMAP: u8 = 0x01;

    pub fn encode(&self) -> Bytes {
        let mut out = header(KIND_DB, self.dbs.len(), Self::ENTRY);
        for (&(spc, db), &has_relmap) in &self.dbs {
            out.extend_from_slice(&spc.to_le_bytes());
            out.extend_from_slice(&db.to_le_bytes());
            out.push(if has_relmap { Self::HAS_RELMAP } else { 0 });
        }
        Bytes::from(out)
    }

    pub fn decode(value: &[u8]) -> Result<Self, MetadataFormatError> {
        const WHAT: &str = "database directory";
        let chunks = entries(WHAT, value, KIND_DB, Self::ENTRY)?;
        let items = chunks.enumerate().map(|(index, e)| {
            let flags = e[8];
            if flags & !Self::HAS_RELMAP != 0 {
                return Err(MetadataFormatError::BadFlags {
                    what: WHAT,
                    index,
                    flags,
                });
            }
            Ok((u32_le(&e[0..4]), u32_le(&e[4..8]), flags != 0))
        });
        let list = sorted(WHAT, items.map(|r| r.map(|(s, d, f)| ((s, d), f))))?;
        Ok(DbDirectory {
            dbs: list.into_iter().collect(),
        })
    }
}

impl RelDirectory {
    const ENTRY: usize = 5;

    pub fn encode(&self) -> Bytes {
        let mut out = header(KIND_REL, self.rels.len(), Self::ENTRY);
        for &(relnode, forknum) in &self.rels {
            out.extend_from_slice(&relnode.to_le_bytes());
            out.push(forknum);
        }
        Bytes::from(out)
    }

    pub fn decode(value: &[u8]) -> Result<Self, MetadataFormatError> {
        const WHAT: &str = "relation directory";
        let chunks = entries(WHAT, value, KIND_REL, Self::ENTRY)?;
        let list = sorted(WHAT, chunks.map(|e| Ok((u32_le(&e[0..4]), e[4]))))?;
        Ok(RelDirectory {
            rels: list.into_iter().collect(),
        })
    }
}

impl SlruSegmentDirectory {
    const ENTRY: usize = 4;

    pub fn encode(&self) -> Bytes {
        let mut out = header(KIND_SLRU, self.segments.len(), Self::ENTRY);
        for segno in &self.segments {
            out.extend_from_slice(&segno.to_le_bytes());
        }
        Bytes::from(out)
    }

    pub fn decode(value: &[u8]) -> Result<Self, MetadataFormatError> {
        const WHAT: &str = "SLRU segment directory";
        let chunks = entries(WHAT, value, KIND_SLRU, Self::ENTRY)?;
        let list = sorted(WHAT, chunks.map(|e| Ok(u32_le(e))))?;
        Ok(SlruSegmentDirectory {
            segments: list.into_iter().collect(),
        })
    }
}

impl TwoPhaseDirectory {
    const ENTRY: usize = 8;

    pub fn encode(&self) -> Bytes {
        let mut out = header(KIND_TWOPHASE, self.xids.len(), Self::ENTRY);
        for xid in &self.xids {
            out.extend_from_slice(&xid.to_le_bytes());
        }
        Bytes::from(out)
    }

    pub fn decode(value: &[u8]) -> Result<Self, MetadataFormatError> {
        const WHAT: &str = "two-phase directory";
        let chunks = entries(WHAT, value, KIND_TWOPHASE, Self::ENTRY)?;
        let list = sorted(
            WHAT,
            chunks.map(|e| {
                let mut b = [0u8; 8];
                b.copy_from_slice(e);
                Ok(u64::from_le_bytes(b))
            }),
        )?;
        Ok(TwoPhaseDirectory {
            xids: list.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        assert_eq!(&encode_size(0x0102_0304)[..], &[4, 3, 2, 1]);
        assert_eq!(decode_size("x", &[4, 3, 2, 1]), Ok(0x0102_0304));
        assert!(matches!(
            decode_size("x", &[1, 2, 3]),
            Err(MetadataFormatError::BadLength { len: 3, .. })
        ));
    }

    #[test]
    fn db_directory_layout() {
        let mut d = DbDirectory::default();
        d.dbs.insert((1664, 0), true);
        d.dbs.insert((1663, 5), false);
        let b = d.encode();
        assert_eq!(
            &b[..],
            &[
                1, b'D', 2, 0, 0, 0, //
                0x7F, 6, 0, 0, 5, 0, 0, 0, 0, //
                0x80, 6, 0, 0, 0, 0, 0, 0, 1,
            ]
        );
        assert_eq!(DbDirectory::decode(&b), Ok(d));
    }

    #[test]
    fn rejects_non_canonical() {
        let mut r = RelDirectory::default();
        r.rels.insert((16384, 0));
        r.rels.insert((16384, 2));
        let good = r.encode().to_vec();
        assert_eq!(RelDirectory::decode(&good), Ok(r));

        let mut bad = good.clone();
        bad[0] = 2;
        assert!(matches!(
            RelDirectory::decode(&bad),
            Err(MetadataFormatError::UnsupportedVersion { version: 2, .. })
        ));
        let mut bad = good.clone();
        bad[1] = b'S';
        assert!(matches!(
            RelDirectory::decode(&bad),
            Err(MetadataFormatError::WrongKind { .. })
        ));
        let mut bad = good.clone();
        bad.push(0);
        assert!(matches!(
            RelDirectory::decode(&bad),
            Err(MetadataFormatError::BadLength { .. })
        ));
        // Swap the two entries: out of order.
        let mut bad = good.clone();
        bad[10] = 0;
        bad[15] = 0;
        assert!(matches!(
            RelDirectory::decode(&bad),
            Err(MetadataFormatError::Unsorted { index: 1, .. })
        ));
        // A huge count must not allocate or overflow.
        let mut bad = good;
        bad[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(RelDirectory::decode(&bad).is_err());

        let mut d = DbDirectory::default();
        d.dbs.insert((1663, 1), true);
        let mut bad = d.encode().to_vec();
        bad[14] = 3;
        assert!(matches!(
            DbDirectory::decode(&bad),
            Err(MetadataFormatError::BadFlags { flags: 3, .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trips(
            dbs in proptest::collection::btree_map((any::<u32>(), any::<u32>()), any::<bool>(), 0..20),
            rels in proptest::collection::btree_set((any::<u32>(), 0u8..4), 0..50),
            segs in proptest::collection::btree_set(any::<u32>(), 0..20),
            xids in proptest::collection::btree_set(any::<u64>(), 0..20),
        ) {
            let d = DbDirectory { dbs };
            prop_assert_eq!(DbDirectory::decode(&d.encode()), Ok(d.clone()));
            let r = RelDirectory { rels };
            prop_assert_eq!(RelDirectory::decode(&r.encode()), Ok(r.clone()));
            let s = SlruSegmentDirectory { segments: segs };
            prop_assert_eq!(SlruSegmentDirectory::decode(&s.encode()), Ok(s.clone()));
            let t = TwoPhaseDirectory { xids };
            prop_assert_eq!(TwoPhaseDirectory::decode(&t.encode()), Ok(t.clone()));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = DbDirectory::decode(&bytes);
            let _ = RelDirectory::decode(&bytes);
            let _ = SlruSegmentDirectory::decode(&bytes);
            let _ = TwoPhaseDirectory::decode(&bytes);
            let _ = decode_size("x", &bytes);
        }
    }
}
