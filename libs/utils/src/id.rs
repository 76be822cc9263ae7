//! 16-byte identifiers (`TenantId`, `TimelineId`) and the node id.
//!
//! The text form is 32 lowercase hex characters, the binary form the 16 raw
//! bytes, matching Neon's encoding so existing tooling can name our objects.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid 16-byte hex id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {input:?}: expected 32 hex characters")]
pub struct IdParseError {
    pub input: String,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            pub const fn from_array(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(rand::random())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 16];
                if s.len() != 32 || hex::decode_to_slice(s, &mut bytes).is_err() {
                    return Err(IdParseError { input: s.to_owned() });
                }
                Ok(Self(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// Identifies one Postgres cluster (all its branches).
    TenantId
);
hex_id!(
    /// Identifies one branch of a tenant's history.
    TimelineId
);

/// The id of a pageserver node, as known to the storage controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects() {
        let s = "0123456789abcdef0123456789abcdef";
        let id: TenantId = s.parse().unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
        let upper: TimelineId = s.to_uppercase().parse().unwrap();
        assert_eq!(upper.to_string(), s);
        assert!("0123".parse::<TenantId>().is_err());
        assert!("zz23456789abcdef0123456789abcdef"
            .parse::<TenantId>()
            .is_err());
        assert!(serde_json::from_str::<TenantId>("\"abc\"").is_err());
    }
}
