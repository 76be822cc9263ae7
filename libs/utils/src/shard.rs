//! Shard identity of a tenant: `ShardNumber`, `ShardCount`, the 4-hex-digit
//! `ShardIndex` slug and `TenantShardId`.
//!
//! `shard_count == 0` is the legacy unsharded identity, whose text form is the
//! bare tenant id; any other count is written `<tenant_id>-<nn><cc>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::TenantId;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ShardNumber(pub u8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ShardCount(pub u8);

impl ShardCount {
    /// The legacy, unsharded identity.
    pub const UNSHARDED: ShardCount = ShardCount(0);
}

/// A shard's position: number and count, written `{number:02x}{count:02x}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardIndex {
    pub shard_number: ShardNumber,
    pub shard_count: ShardCount,
}

impl ShardIndex {
    pub fn unsharded() -> Self {
        Self::default()
    }

    pub fn is_unsharded(&self) -> bool {
        self.shard_count == ShardCount::UNSHARDED
    }
}

impl fmt::Display for ShardIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}{:02x}", self.shard_number.0, self.shard_count.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid tenant shard id {input:?}: expected a 32-hex tenant id, optionally followed by -NNCC"
)]
pub struct TenantShardIdParseError {
    pub input: String,
}

impl FromStr for ShardIndex {
    type Err = TenantShardIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 2];
        if s.len() != 4 || hex::decode_to_slice(s, &mut bytes).is_err() {
            return Err(TenantShardIdParseError {
                input: s.to_owned(),
            });
        }
        Ok(ShardIndex {
            shard_number: ShardNumber(bytes[0]),
            shard_count: ShardCount(bytes[1]),
        })
    }
}

/// A tenant id plus the shard of it that a location holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantShardId {
    pub tenant_id: TenantId,
    pub shard_number: ShardNumber,
    pub shard_count: ShardCount,
}

impl TenantShardId {
    pub fn unsharded(tenant_id: TenantId) -> Self {
        Self {
            tenant_id,
            shard_number: ShardNumber(0),
            shard_count: ShardCount::UNSHARDED,
        }
    }

    pub fn shard_index(&self) -> ShardIndex {
        ShardIndex {
            shard_number: self.shard_number,
            shard_count: self.shard_count,
        }
    }

    pub fn is_unsharded(&self) -> bool {
        self.shard_count == ShardCount::UNSHARDED
    }
}

impl fmt::Display for TenantShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unsharded() {
            write!(f, "{}", self.tenant_id)
        } else {
            write!(f, "{}-{}", self.tenant_id, self.shard_index())
        }
    }
}

impl FromStr for TenantShardId {
    type Err = TenantShardIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TenantShardIdParseError {
            input: s.to_owned(),
        };
        match s.len() {
            32 => Ok(Self::unsharded(s.parse().map_err(|_| err())?)),
            37 => {
                let (tenant, rest) = s.split_at(32);
                let slug = rest.strip_prefix('-').ok_or_else(err)?;
                let index: ShardIndex = slug.parse().map_err(|_| err())?;
                Ok(Self {
                    tenant_id: tenant.parse().map_err(|_| err())?,
                    shard_number: index.shard_number,
                    shard_count: index.shard_count,
                })
            }
            _ => Err(err()),
        }
    }
}

impl Serialize for TenantShardId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TenantShardId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        let t = "1f359dd625e519a1a4e8d7509690f6fc";
        let plain: TenantShardId = t.parse().unwrap();
        assert!(plain.is_unsharded());
        assert_eq!(plain.to_string(), t);

        let sharded: TenantShardId = format!("{t}-0104").parse().unwrap();
        assert_eq!(sharded.shard_number, ShardNumber(1));
        assert_eq!(sharded.shard_count, ShardCount(4));
        assert_eq!(sharded.to_string(), format!("{t}-0104"));

        for bad in [
            "",
            "xyz",
            &format!("{t}-01"),
            &format!("{t}_0104"),
            &format!("{t}-01zz"),
        ] {
            assert!(bad.parse::<TenantShardId>().is_err(), "{bad}");
        }
    }
}
