//! `Lsn`: a position in the WAL, a 64-bit byte offset.
//!
//! Text form `X/Y` (upper and lower 32 bits in uppercase hex, no padding), which
//! is also its JSON form, as Postgres and Neon print it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lsn(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {input:?}: expected X/Y with hexadecimal X and Y")]
pub struct LsnParseError {
    pub input: String,
}

impl Lsn {
    pub const INVALID: Lsn = Lsn(0);
    pub const MAX: Lsn = Lsn(u64::MAX);

    pub fn is_valid(self) -> bool {
        self != Self::INVALID
    }

    /// Rounds up to a multiple of 8, the alignment of WAL records.
    pub fn align(self) -> Lsn {
        Lsn(self.0.saturating_add(7) & !7)
    }
}

impl FromStr for Lsn {
    type Err = LsnParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError {
            input: s.to_owned(),
        };
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let valid = |part: &str| !part.is_empty() && part.len() <= 8;
        if !valid(hi) || !valid(lo) {
            return Err(err());
        }
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        assert_eq!(Lsn(0x16960E8).to_string(), "0/16960E8");
        assert_eq!(Lsn(0x1_0000_0000).to_string(), "1/0");
        assert_eq!("0/16960e8".parse::<Lsn>().unwrap(), Lsn(0x16960E8));
        assert_eq!("FFFFFFFF/FFFFFFFF".parse::<Lsn>().unwrap(), Lsn::MAX);
        for bad in ["", "0", "/1", "1/", "0/123456789", "g/0", "0/0/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
        assert_eq!(Lsn(9).align(), Lsn(16));
        assert_eq!(Lsn(16).align(), Lsn(16));
    }
}
