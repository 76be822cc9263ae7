//! `Key`: the 18-byte name of one page or one piece of metadata.
//!
//! Six fields compared in order (`field1` .. `field6`), with the byte layout,
//! text form and compact 128-bit form of Neon's pageserver so layer names and
//! API payloads are interchangeable (see `neon-interfaces.md` §2).
//!
//! | form    | layout |
//! |---------|--------|
//! | bytes   | `f1 u8, f2 u32 BE, f3 u32 BE, f4 u32 BE, f5 u8, f6 u32 BE` (18 bytes) |
//! | text    | 36 uppercase hex digits, same order |
//! | i128    | `(f1 & 0x7F)<<120 | (f2 & 0xFFFF)<<104 | f3<<72 | f4<<40 | f5<<32 | f6` |
//! | metadata| the i128 form as 16 big-endian bytes, for keys with `0x60 <= f1 < 0x7F` |
//!
//! This file owns the `Key` type and its encodings, plus the rules about which
//! keys the compact form can carry ([`Key::is_valid_key_on_write_path`]). The
//! meaning of keys lives in submodules, re-exported here:
//! - [`map`]: constructors, ranges and predicates for every kind of key
//!   (relation blocks and sizes, SLRUs, two-phase files, control file, ...).
//! - [`aux`]: keys and values of "aux files" (logical replication state).
//!
//! Callers: the storage engine (layer names, indexes, the write path), WAL
//! ingest (building keys), the read path and basebackup (decoding them).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod aux;
pub mod map;

pub use aux::*;
pub use map::*;

/// Length of the byte form of a [`Key`].
pub const KEY_SIZE: usize = 18;

/// Length of a metadata key, the 16-byte big-endian compact form.
pub const METADATA_KEY_SIZE: usize = 16;
/// First `field1` value of the sparse metadata keyspace.
pub const METADATA_KEY_BEGIN_PREFIX: u8 = 0x60;
/// End (exclusive) of the `field1` values of the sparse metadata keyspace.
pub const METADATA_KEY_END_PREFIX: u8 = 0x7F;

#[derive(Clone, Copy, Eq, PartialOrd, Ord, Default)]
pub struct Key {
    pub field1: u8,
    pub field2: u32,
    pub field3: u32,
    pub field4: u32,
    pub field5: u8,
    pub field6: u32,
}

impl Key {
    /// The fields as three words, for equality and hashing (also by the
    /// pageserver's own hash tables).
    #[inline]
    pub fn words(&self) -> (u64, u64, u16) {
        (
            self.field2 as u64 | (self.field3 as u64) << 32,
            self.field4 as u64 | (self.field6 as u64) << 32,
            self.field1 as u16 | (self.field5 as u16) << 8,
        )
    }
}

/// Compared as three words rather than six fields: keys are compared in
/// every hash probe of ingest's per-value index.
impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Key) -> bool {
        self.words() == other.words()
    }
}

/// Hashed as three words rather than six fields: keys are hashed for every
/// value ingest indexes, and with a word-at-a-time hasher each write is a
/// round. Consistent with `Eq` (every field goes in).
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (a, b, c) = self.words();
        state.write_u64(a);
        state.write_u64(b);
        state.write_u16(c);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key {input:?}: expected 36 hex digits")]
    BadText { input: String },
    #[error("invalid key: expected {KEY_SIZE} bytes, got {len}")]
    BadLength { len: usize },
    #[error("invalid metadata key: first byte 0x{first_byte:02X} is outside 0x60..0x7F")]
    NotMetadataKey { first_byte: u8 },
    #[error("key {key} has no exact 16-byte metadata form")]
    NoMetadataForm { key: Key },
}

impl Key {
    pub const MIN: Key = Key {
        field1: 0,
        field2: 0,
        field3: 0,
        field4: 0,
        field5: 0,
        field6: 0,
    };
    pub const MAX: Key = Key {
        field1: u8::MAX,
        field2: u32::MAX,
        field3: u32::MAX,
        field4: u32::MAX,
        field5: u8::MAX,
        field6: u32::MAX,
    };

    pub fn to_bytes(&self) -> [u8; KEY_SIZE] {
        let mut b = [0u8; KEY_SIZE];
        b[0] = self.field1;
        b[1..5].copy_from_slice(&self.field2.to_be_bytes());
        b[5..9].copy_from_slice(&self.field3.to_be_bytes());
        b[9..13].copy_from_slice(&self.field4.to_be_bytes());
        b[13] = self.field5;
        b[14..18].copy_from_slice(&self.field6.to_be_bytes());
        b
    }

    pub fn from_slice(b: &[u8]) -> Result<Key, KeyError> {
        let b: &[u8; KEY_SIZE] = b
            .try_into()
            .map_err(|_| KeyError::BadLength { len: b.len() })?;
        Ok(Key::from_array(b))
    }

    pub fn from_array(b: &[u8; KEY_SIZE]) -> Key {
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Key {
            field1: b[0],
            field2: u32_at(1),
            field3: u32_at(5),
            field4: u32_at(9),
            field5: b[13],
            field6: u32_at(14),
        }
    }

    /// The next key in order (wrapping from `MAX` to `MIN`), carrying from
    /// `field6` up to `field1`.
    pub fn next(&self) -> Key {
        self.add(1)
    }

    /// `self + n`, carrying across fields.
    pub fn add(&self, n: u32) -> Key {
        let (field6, carry) = self.field6.overflowing_add(n);
        let mut key = Key { field6, ..*self };
        if carry {
            let (field5, c) = key.field5.overflowing_add(1);
            key.field5 = field5;
            if c {
                let (field4, c) = key.field4.overflowing_add(1);
                key.field4 = field4;
                if c {
                    let (field3, c) = key.field3.overflowing_add(1);
                    key.field3 = field3;
                    if c {
                        let (field2, c) = key.field2.overflowing_add(1);
                        key.field2 = field2;
                        if c {
                            key.field1 = key.field1.wrapping_add(1);
                        }
                    }
                }
            }
        }
        key
    }

    /// The compact 128-bit form, valid for keys whose `field2` fits 16 bits
    /// (every key the write path accepts).
    pub fn to_i128(&self) -> i128 {
        ((self.field1 as i128 & 0x7F) << 120)
            | ((self.field2 as i128 & 0xFFFF) << 104)
            | ((self.field3 as i128) << 72)
            | ((self.field4 as i128) << 40)
            | ((self.field5 as i128) << 32)
            | self.field6 as i128
    }

    pub fn from_i128(x: i128) -> Key {
        Key {
            field1: ((x >> 120) & 0x7F) as u8,
            field2: ((x >> 104) & 0xFFFF) as u32,
            field3: (x >> 72) as u32,
            field4: (x >> 40) as u32,
            field5: (x >> 32) as u8,
            field6: x as u32,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02X}{:08X}{:08X}{:08X}{:02X}{:08X}",
            self.field1, self.field2, self.field3, self.field4, self.field5, self.field6
        )
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; KEY_SIZE];
        if s.len() != 2 * KEY_SIZE || hex::decode_to_slice(s, &mut b).is_err() {
            return Err(KeyError::BadText {
                input: s.to_owned(),
            });
        }
        Ok(Key::from_array(&b))
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Key {
    /// Whether the write path can store this key: its compact form keeps
    /// only the low 16 bits of `field2`, so `field2` must fit 16 bits, except
    /// for the two historical sentinels `0xFFFFFFFF` and `0x22222222` that
    /// Neon accepts as well. In practice `field2` is a tablespace OID (0, 1663
    /// or 1664) or a small enum, so user tablespaces with OIDs >= 65536 are
    /// rejected.
    pub fn is_i128_representable(&self) -> bool {
        self.field2 <= 0xFFFF || self.field2 == 0xFFFF_FFFF || self.field2 == 0x2222_2222
    }

    /// See [`Key::is_i128_representable`]; the name used by the write path.
    pub fn is_valid_key_on_write_path(&self) -> bool {
        self.is_i128_representable()
    }

    /// Whether `from_i128(to_i128(key)) == key`: `field1 < 0x80` and
    /// `field2 <= 0xFFFF`. Stricter than [`Key::is_i128_representable`],
    /// whose sentinels do not survive the roundtrip.
    pub fn is_exact_i128(&self) -> bool {
        self.field1 < 0x80 && self.field2 <= 0xFFFF
    }

    /// Whether the key is in the sparse metadata keyspace
    /// (`0x60 <= field1 < 0x7F`), where a missing key reads as absent and an
    /// empty value is a tombstone.
    pub const fn is_metadata_key(&self) -> bool {
        self.field1 >= METADATA_KEY_BEGIN_PREFIX && self.field1 < METADATA_KEY_END_PREFIX
    }

    /// The key of a 16-byte metadata key (its compact form, big-endian).
    /// Rejects first bytes outside the metadata keyspace.
    pub fn from_metadata_key(bytes: &[u8; METADATA_KEY_SIZE]) -> Result<Key, KeyError> {
        let first_byte = bytes[0];
        if !(METADATA_KEY_BEGIN_PREFIX..METADATA_KEY_END_PREFIX).contains(&first_byte) {
            return Err(KeyError::NotMetadataKey { first_byte });
        }
        // The first byte is below 0x80, so the value is non-negative and
        // `from_i128` puts it back in `field1` unchanged.
        Ok(Key::from_i128(i128::from_be_bytes(*bytes)))
    }

    /// The 16-byte form of a metadata key; the inverse of
    /// [`Key::from_metadata_key`]. Fails for keys outside the metadata
    /// keyspace or whose `field2` does not fit 16 bits.
    pub fn to_metadata_key(&self) -> Result<[u8; METADATA_KEY_SIZE], KeyError> {
        if !self.is_metadata_key() || !self.is_exact_i128() {
            return Err(KeyError::NoMetadataForm { key: *self });
        }
        Ok(self.to_i128().to_be_bytes())
    }

    /// The whole sparse metadata keyspace.
    pub const fn metadata_key_range() -> Range<Key> {
        prefix_start(METADATA_KEY_BEGIN_PREFIX)..prefix_start(METADATA_KEY_END_PREFIX)
    }
}

/// The first key whose `field1` is `prefix`.
pub const fn prefix_start(prefix: u8) -> Key {
    Key {
        field1: prefix,
        field2: 0,
        field3: 0,
        field4: 0,
        field5: 0,
        field6: 0,
    }
}

/// A half-open range of keys.
pub type KeyRange = Range<Key>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_roundtrip() {
        let k = Key {
            field1: 0,
            field2: 1663,
            field3: 5,
            field4: 16384,
            field5: 0,
            field6: 7,
        };
        assert_eq!(Key::from_array(&k.to_bytes()), k);
        assert_eq!(k.to_string().parse::<Key>().unwrap(), k);
        assert_eq!(Key::from_i128(k.to_i128()), k);
        assert_eq!(Key::MAX.to_string(), "F".repeat(36));
        assert!("XYZ".parse::<Key>().is_err());
        assert!(Key::from_slice(&[0u8; 3]).is_err());
    }

    #[test]
    fn next_carries_and_orders() {
        let k = Key {
            field6: u32::MAX,
            ..Key::MIN
        };
        let n = k.next();
        assert_eq!(n.field5, 1);
        assert_eq!(n.field6, 0);
        assert!(n > k);
        assert_eq!(Key::MAX.next(), Key::MIN);
        let bytes_order = k.to_bytes() < n.to_bytes();
        assert!(bytes_order, "byte order matches key order");
    }

    #[test]
    fn write_path_representability() {
        let with_f2 = |field2| Key { field2, ..Key::MIN };
        assert!(with_f2(0).is_valid_key_on_write_path());
        assert!(with_f2(1664).is_valid_key_on_write_path());
        assert!(with_f2(0xFFFF).is_valid_key_on_write_path());
        assert!(!with_f2(0x1_0000).is_valid_key_on_write_path());
        assert!(!with_f2(0x2222_2223).is_valid_key_on_write_path());
        assert!(with_f2(0x2222_2222).is_valid_key_on_write_path());
        assert!(with_f2(u32::MAX).is_valid_key_on_write_path());
        // The sentinels pass the write-path rule but do not roundtrip.
        assert!(!with_f2(u32::MAX).is_exact_i128());
        assert_ne!(
            Key::from_i128(with_f2(u32::MAX).to_i128()),
            with_f2(u32::MAX)
        );
        assert!(with_f2(0xFFFF).is_exact_i128());
        assert!(!Key::MAX.is_exact_i128());
        assert_eq!(Key::MAX.to_i128(), i128::MAX, "MAX projects to the top");
    }

    #[test]
    fn metadata_key_form() {
        let mut raw = [0u8; METADATA_KEY_SIZE];
        raw[0] = 0x62;
        raw[1] = 0x01;
        raw[2] = 0x02;
        raw[3..7].copy_from_slice(&0xA1B2_C3D4u32.to_be_bytes());
        raw[7..11].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        raw[11] = 0x55;
        raw[12..16].copy_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
        let key = Key::from_metadata_key(&raw).unwrap();
        assert_eq!(
            key,
            Key {
                field1: 0x62,
                field2: 0x0102,
                field3: 0xA1B2_C3D4,
                field4: 0x0102_0304,
                field5: 0x55,
                field6: 0xDEAD_BEEF,
            }
        );
        assert!(key.is_metadata_key());
        assert_eq!(key.to_metadata_key(), Ok(raw));

        raw[0] = 0x7F;
        assert_eq!(
            Key::from_metadata_key(&raw),
            Err(KeyError::NotMetadataKey { first_byte: 0x7F })
        );
        raw[0] = 0x5F;
        assert!(Key::from_metadata_key(&raw).is_err());
        raw[0] = 0xE2;
        assert!(Key::from_metadata_key(&raw).is_err());

        let dense = Key {
            field1: 0x03,
            ..Key::MIN
        };
        assert!(!dense.is_metadata_key());
        assert!(dense.to_metadata_key().is_err());
        let wide = Key {
            field2: 0x1_0000,
            ..key
        };
        assert!(wide.to_metadata_key().is_err());

        let range = Key::metadata_key_range();
        assert!(range.contains(&key));
        assert!(!range.contains(&dense));
        assert_eq!(range.end.field1, 0x7F);
    }
}
