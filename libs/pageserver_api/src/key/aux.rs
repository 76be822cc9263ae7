//! Aux files v2: small non-relation files (logical replication mappings,
//! snapshots and slots, `pg_stat` files, ...) stored in the sparse keyspace.
//!
//! Owns the path → key mapping and the value encoding
//! (`neon-interfaces.md` §2.3):
//!
//! - The key is a 16-byte metadata key: byte 0 is `0x62`, bytes 1–2 a
//!   directory class chosen from the path, bytes 3–15 the low 13 bytes of the
//!   big-endian 128-bit FNV-1a hash of the rest of the path.
//! - Several files may hash to one key, so a value holds a list of files:
//!   empty means "no files"; otherwise a version byte `0x01` followed by
//!   repeated `[u32 BE path length][path][u32 BE content length][content]`,
//!   with the full path.
//!
//! Invariant: the mapping is persistent. A path must always produce the same
//! key, so classes may only be added for paths that were never stored.
//!
//! Called by WAL ingest (writing aux files), basebackup and the
//! logical-replication read path (listing them).

use super::{Key, AUX_KEY_PREFIX, METADATA_KEY_SIZE};

const FNV_OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;

/// The 128-bit FNV-1a hash: for each byte, xor it in, then multiply by the
/// prime (wrapping).
pub const fn fnv1a_128(bytes: &[u8]) -> u128 {
    let mut hash = FNV_OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u128;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// The directory class bytes and the hashed part of an aux file path.
fn classify(path: &str) -> ([u8; 2], &str) {
    const PREFIXED: [(&str, [u8; 2]); 2] = [
        ("pg_logical/mappings/", [0x01, 0x01]),
        ("pg_logical/snapshots/", [0x01, 0x02]),
    ];
    for (prefix, class) in PREFIXED {
        if let Some(rest) = path.strip_prefix(prefix) {
            return (class, rest);
        }
    }
    if path == "pg_logical/replorigin_checkpoint" {
        return ([0x01, 0x03], "");
    }
    const OTHERS: [(&str, [u8; 2]); 3] = [
        ("pg_logical/", [0x01, 0xFF]),
        ("pg_replslot/", [0x02, 0x01]),
        ("pg_stat/", [0x03, 0x01]),
    ];
    for (prefix, class) in OTHERS {
        if let Some(rest) = path.strip_prefix(prefix) {
            return (class, rest);
        }
    }
    ([0xFF, 0xFF], path)
}

/// The key that holds the aux file at `path` (relative to the data
/// directory, e.g. `pg_replslot/slot1/state`).
pub fn aux_file_key(path: &str) -> Key {
    let (class, hashed) = classify(path);
    let hash = fnv1a_128(hashed.as_bytes()).to_be_bytes();
    let mut raw = [0u8; METADATA_KEY_SIZE];
    raw[0] = AUX_KEY_PREFIX;
    raw[1..3].copy_from_slice(&class);
    raw[3..].copy_from_slice(&hash[3..]);
    // Same as `Key::from_metadata_key`, which cannot fail for this prefix.
    Key::from_i128(i128::from_be_bytes(raw))
}

/// Version byte of a non-empty aux value.
pub const AUX_VALUE_VERSION: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuxValueError {
    #[error("unsupported aux value version 0x{0:02X}")]
    UnsupportedVersion(u8),
    #[error("aux value truncated at byte {offset}: need {needed} more bytes")]
    Truncated { offset: usize, needed: usize },
    #[error("aux value: the path chunk at byte {offset} is not UTF-8")]
    BadPath { offset: usize },
    #[error("aux file {path:?}: {what} longer than u32::MAX bytes")]
    TooLarge { path: String, what: &'static str },
}

/// Encodes the files that share one aux key. No files encode as an empty
/// value.
pub fn encode_aux_value(files: &[(&str, &[u8])]) -> Result<Vec<u8>, AuxValueError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let total: usize = files.iter().map(|(p, c)| 8 + p.len() + c.len()).sum();
    let mut out = Vec::with_capacity(1 + total);
    out.push(AUX_VALUE_VERSION);
    for (path, content) in files {
        for (what, bytes) in [("path", path.as_bytes()), ("content", content)] {
            let len = u32::try_from(bytes.len()).map_err(|_| AuxValueError::TooLarge {
                path: path.to_string(),
                what,
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
    Ok(out)
}

/// Decodes an aux value into `(path, content)` pairs borrowing from `value`.
pub fn decode_aux_value(value: &[u8]) -> Result<Vec<(&str, &[u8])>, AuxValueError> {
    let Some((&version, mut rest)) = value.split_first() else {
        return Ok(Vec::new());
    };
    if version != AUX_VALUE_VERSION {
        return Err(AuxValueError::UnsupportedVersion(version));
    }
    let mut files = Vec::new();
    while !rest.is_empty() {
        let path_offset = value.len() - rest.len();
        let path = take_chunk(value, &mut rest)?;
        let path = std::str::from_utf8(path).map_err(|_| AuxValueError::BadPath {
            offset: path_offset,
        })?;
        let content = take_chunk(value, &mut rest)?;
        files.push((path, content));
    }
    Ok(files)
}

/// Splits one `[u32 BE len][bytes]` chunk off the front of `rest`.
fn take_chunk<'a>(whole: &[u8], rest: &mut &'a [u8]) -> Result<&'a [u8], AuxValueError> {
    let truncated = |needed: usize, rest: &[u8]| AuxValueError::Truncated {
        offset: whole.len() - rest.len(),
        needed,
    };
    let Some((len, tail)) = rest.split_first_chunk::<4>() else {
        return Err(truncated(4 - rest.len(), rest));
    };
    let len = u32::from_be_bytes(*len) as usize;
    if tail.len() < len {
        return Err(truncated(len - tail.len(), tail));
    }
    let (chunk, tail) = tail.split_at(len);
    *rest = tail;
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_vectors() {
        // Published FNV-1a 128-bit vectors: the empty input is the offset
        // basis, "a" is from the reference test suite.
        assert_eq!(fnv1a_128(b""), FNV_OFFSET_BASIS);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
        assert_eq!(
            fnv1a_128(b"test1"),
            265_160_408_618_497_461_376_862_998_434_862_070_044
        );
    }

    #[test]
    fn key_per_class() {
        // Expected keys were computed independently with a Python model of
        // §2.3 (and agree with Neon's published vectors where they overlap).
        let cases = [
            (
                "pg_logical/mappings/map-1",
                "6200000101E66D83D94F708123D0BE08304F",
            ),
            (
                "pg_logical/snapshots/0-16B2D40.snap",
                "6200000102211437A8B168FA66D888071837",
            ),
            (
                "pg_logical/replorigin_checkpoint",
                "62000001032E07BB014262B821756295C58D",
            ),
            ("pg_logical/other", "62000001FF8F6083D94F708129D912924DBD"),
            (
                "pg_replslot/slot1/state",
                "620000020169708DCE2103D47F6431FACB3E",
            ),
            (
                "pg_stat/pgstat.stat",
                "62000003014A14AF1BD3D02542B00AA75B8E",
            ),
            (
                "postgresql.auto.conf",
                "620000FFFF5FB05C518185836FABC834A254",
            ),
            (
                "pg_logical/mappings/test1",
                "62000001017F8B83D94F7081693471ABF91C",
            ),
        ];
        for (path, expected) in cases {
            let key = aux_file_key(path);
            assert_eq!(key.to_string(), expected, "{path}");
            assert!(key.is_aux_file_key() && key.is_metadata_key());
            let raw = key.to_metadata_key().unwrap();
            assert_eq!(Key::from_metadata_key(&raw), Ok(key));
        }
    }

    #[test]
    fn value_roundtrip() {
        let files: Vec<(&str, &[u8])> = vec![
            ("pg_logical/mappings/a", b"1111"),
            ("pg_logical/mappings/b", b""),
        ];
        let encoded = encode_aux_value(&files).unwrap();
        assert_eq!(encoded[0], AUX_VALUE_VERSION);
        assert_eq!(&encoded[1..5], &21u32.to_be_bytes());
        assert_eq!(decode_aux_value(&encoded).unwrap(), files);
        assert!(encode_aux_value(&[]).unwrap().is_empty());
        assert!(decode_aux_value(&[]).unwrap().is_empty());
        assert_eq!(decode_aux_value(&[AUX_VALUE_VERSION]).unwrap(), vec![]);
    }

    #[test]
    fn malformed_values_are_errors() {
        let encoded = encode_aux_value(&[("p", b"xyz")]).unwrap();
        for cut in 2..encoded.len() {
            assert!(
                matches!(
                    decode_aux_value(&encoded[..cut]),
                    Err(AuxValueError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode_aux_value(&[0x02, 0, 0, 0, 0]),
            Err(AuxValueError::UnsupportedVersion(2))
        );
        let bad_utf8 = [1, 0, 0, 0, 1, 0xFF, 0, 0, 0, 0];
        assert_eq!(
            decode_aux_value(&bad_utf8),
            Err(AuxValueError::BadPath { offset: 1 })
        );
        let huge_len = [1, 0xFF, 0xFF, 0xFF, 0xFF, b'a'];
        assert!(matches!(
            decode_aux_value(&huge_len),
            Err(AuxValueError::Truncated { .. })
        ));
    }
}
