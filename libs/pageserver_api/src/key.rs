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

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const KEY_SIZE: usize = 18;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key {
    pub field1: u8,
    pub field2: u32,
    pub field3: u32,
    pub field4: u32,
    pub field5: u8,
    pub field6: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key {input:?}: expected 36 hex digits")]
    BadText { input: String },
    #[error("invalid key: expected {KEY_SIZE} bytes, got {len}")]
    BadLength { len: usize },
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
}
