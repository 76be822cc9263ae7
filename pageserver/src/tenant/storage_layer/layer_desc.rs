//! Descriptions and file names of persistent (on-disk) layers.
//!
//! File names follow Neon's layout so remote storage listings are
//! interchangeable: image `<KEYSTART>-<KEYEND>__<LSN>`, delta
//! `<KEYSTART>-<KEYEND>__<LSNSTART>-<LSNEND>`, keys as 36 hex digits and LSNs as
//! 16 uppercase hex digits. An image at LSN `l` is treated as covering the LSN
//! range `[l, l+1)`. Parsers accept a trailing generation part (`-xxxxxxxx` or
//! `-v1-xxxxxxxx`), which is not part of the layer's name.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use pageserver_api::key::Key;
use utils::lsn::Lsn;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LayerName {
    Image {
        key_range: Range<Key>,
        lsn: Lsn,
    },
    Delta {
        key_range: Range<Key>,
        lsn_range: Range<Lsn>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid layer file name {name:?}: {reason}")]
pub struct LayerNameError {
    pub name: String,
    pub reason: &'static str,
}

impl LayerName {
    pub fn key_range(&self) -> &Range<Key> {
        match self {
            LayerName::Image { key_range, .. } | LayerName::Delta { key_range, .. } => key_range,
        }
    }

    /// The LSN range the layer covers (`[lsn, lsn+1)` for an image).
    pub fn lsn_range(&self) -> Range<Lsn> {
        match self {
            LayerName::Image { lsn, .. } => *lsn..Lsn(lsn.0 + 1),
            LayerName::Delta { lsn_range, .. } => lsn_range.clone(),
        }
    }

    pub fn is_delta(&self) -> bool {
        matches!(self, LayerName::Delta { .. })
    }
}

impl LayerName {
    fn sort_key(&self) -> (Key, Key, Lsn, Lsn, bool) {
        let lsns = self.lsn_range();
        let keys = self.key_range();
        (keys.start, keys.end, lsns.start, lsns.end, self.is_delta())
    }
}

/// Ordered by key range, then LSN range: the order of a remote listing.
impl Ord for LayerName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for LayerName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerName::Image { key_range, lsn } => {
                write!(f, "{}-{}__{:016X}", key_range.start, key_range.end, lsn.0)
            }
            LayerName::Delta {
                key_range,
                lsn_range,
            } => write!(
                f,
                "{}-{}__{:016X}-{:016X}",
                key_range.start, key_range.end, lsn_range.start.0, lsn_range.end.0
            ),
        }
    }
}

impl FromStr for LayerName {
    type Err = LayerNameError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let err = |reason| LayerNameError {
            name: name.to_owned(),
            reason,
        };
        let (keys, lsns) = name.split_once("__").ok_or(err("missing '__'"))?;
        let (start, end) = keys.split_once('-').ok_or(err("missing key range"))?;
        let key_range = start.parse::<Key>().map_err(|_| err("bad start key"))?
            ..end.parse::<Key>().map_err(|_| err("bad end key"))?;
        if key_range.start >= key_range.end {
            return Err(err("empty key range"));
        }
        let lsn16 = |s: &str| {
            if s.len() == 16 {
                u64::from_str_radix(s, 16).ok().map(Lsn)
            } else {
                None
            }
        };
        let mut parts = lsns.split('-');
        let first = parts.next().and_then(lsn16).ok_or(err("bad lsn"))?;
        let rest: Vec<&str> = parts.collect();
        // What follows the LSN(s) may only be a generation suffix.
        let (second, suffix) = match rest.split_first() {
            Some((s, tail)) if s.len() == 16 => (Some(lsn16(s).ok_or(err("bad end lsn"))?), tail),
            _ => (None, rest.as_slice()),
        };
        let suffix_ok = match suffix {
            [] => true,
            [generation] => generation.len() == 8,
            [version, generation] => version.starts_with('v') && generation.len() == 8,
            _ => false,
        };
        if !suffix_ok {
            return Err(err("unexpected trailing part"));
        }
        Ok(match second {
            None => LayerName::Image {
                key_range,
                lsn: first,
            },
            Some(end) if first < end => LayerName::Delta {
                key_range,
                lsn_range: first..end,
            },
            Some(_) => return Err(err("empty lsn range")),
        })
    }
}

/// What the layer map knows of a persistent layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersistentLayerDesc {
    pub name: LayerName,
    pub file_size: u64,
}

impl PersistentLayerDesc {
    pub fn key_range(&self) -> &Range<Key> {
        self.name.key_range()
    }

    pub fn lsn_range(&self) -> Range<Lsn> {
        self.name.lsn_range()
    }

    pub fn is_delta(&self) -> bool {
        self.name.is_delta()
    }

    /// An L0 delta covers the whole key space.
    pub fn is_l0(&self) -> bool {
        self.is_delta() && *self.key_range() == (Key::MIN..Key::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        let delta = "000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000001696070-00000000016960E9";
        let parsed: LayerName = delta.parse().unwrap();
        assert!(parsed.is_delta());
        assert_eq!(parsed.to_string(), delta);
        assert_eq!(parsed, format!("{delta}-v1-00000001").parse().unwrap());
        assert_eq!(parsed, format!("{delta}-0000000a").parse().unwrap());

        let image = "000000067F000032BE0000400000000070B6-000000067F000032BE0000400000000080B6__00000000346BC568";
        let parsed: LayerName = image.parse().unwrap();
        assert_eq!(parsed.lsn_range(), Lsn(0x346BC568)..Lsn(0x346BC569));
        assert_eq!(parsed.to_string(), image);

        for bad in [
            "",
            "x__y",
            &format!("{image}-zz"),
            &format!("{image}-v1-0000000a-extra"),
            "000000000000000000000000000000000001-000000000000000000000000000000000000__0000000000000001",
            "000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000000000002-0000000000000001",
        ] {
            assert!(bad.parse::<LayerName>().is_err(), "{bad}");
        }
    }
}
