//! Which PostgreSQL major version a format belongs to.
//!
//! [`PgMajorVersion`] is the one switch the version-independent code matches
//! on to find version-specific constants (they live in [`crate::v15`] and,
//! later, its siblings). Adding a version = adding a module and an arm here;
//! the compiler then points at every `match` that needs a decision.

use std::fmt;

use crate::v15;
use crate::wal::WalFormat;

/// A supported PostgreSQL major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PgMajorVersion {
    V15,
}

/// A major version number this crate has no formats for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported PostgreSQL major version {0}")]
pub struct UnsupportedVersion(pub u32);

impl PgMajorVersion {
    /// Every version this build supports, oldest first.
    pub const ALL: &'static [PgMajorVersion] = &[PgMajorVersion::V15];

    pub fn from_number(n: u32) -> Result<Self, UnsupportedVersion> {
        match n {
            15 => Ok(PgMajorVersion::V15),
            other => Err(UnsupportedVersion(other)),
        }
    }

    pub fn number(self) -> u32 {
        match self {
            PgMajorVersion::V15 => 15,
        }
    }

    /// WAL page magic, block-image flag bits and other WAL format constants.
    pub fn wal_format(self) -> &'static WalFormat {
        match self {
            PgMajorVersion::V15 => &v15::WAL_FORMAT,
        }
    }

    /// `catversion.h`'s CATALOG_VERSION_NO.
    pub fn catalog_version_no(self) -> u32 {
        match self {
            PgMajorVersion::V15 => v15::CATALOG_VERSION_NO,
        }
    }

    /// `pg_control`'s format version.
    pub fn pg_control_version(self) -> u32 {
        match self {
            PgMajorVersion::V15 => v15::PG_CONTROL_VERSION,
        }
    }

    /// The per-version directory inside a tablespace, e.g. `PG_15_202209061`.
    pub fn tablespace_version_directory(self) -> &'static str {
        match self {
            PgMajorVersion::V15 => v15::TABLESPACE_VERSION_DIRECTORY,
        }
    }
}

impl fmt::Display for PgMajorVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for v in PgMajorVersion::ALL {
            assert_eq!(PgMajorVersion::from_number(v.number()), Ok(*v));
        }
        assert_eq!(PgMajorVersion::from_number(9), Err(UnsupportedVersion(9)));
        assert_eq!(
            PgMajorVersion::V15.tablespace_version_directory(),
            "PG_15_202209061"
        );
    }
}
