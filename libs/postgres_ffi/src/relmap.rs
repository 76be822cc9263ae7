//! The relation mapper file `pg_filenode.map` (`relmapper.c`).
//!
//! Mapped catalogs (pg_class, shared catalogs, ...) have relfilenode 0 in
//! pg_class; their real file node comes from this 512-byte file, one in
//! `global/` and one per database directory. Layout (little-endian):
//! `magic i32 = 0x592717`, `num_mappings i32` (0..=62), 62 × `(oid u32,
//! filenode u32)`, CRC-32C of everything before it, 4 bytes of padding.
//! The same bytes arrive in RelMap UPDATE WAL records.
//!
//! Unused mapping slots are zero in files PostgreSQL writes; [`RelMapFile`]
//! keeps only the used ones and serialises unused slots as zero, so a file
//! round-trips byte for byte. Used by ingest, basebackup and import.

use crate::bytes_le::{i32_at, put, u32_at};
use crate::types::Oid;

pub const RELMAPPER_FILENAME: &str = "pg_filenode.map";
pub const RELMAPPER_FILEMAGIC: i32 = 0x592717;
pub const MAX_MAPPINGS: usize = 62;
/// Size of the file and of the map in a RelMap UPDATE record.
pub const RELMAPPER_FILESIZE: usize = 512;
const CRC_OFFSET: usize = 8 + MAX_MAPPINGS * 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelMapError {
    #[error("relation mapping file is {len} bytes, expected {RELMAPPER_FILESIZE}")]
    WrongSize { len: usize },
    #[error("relation mapping file has invalid magic {magic:#x}")]
    BadMagic { magic: i32 },
    #[error("relation mapping file has invalid mapping count {count}")]
    BadCount { count: i32 },
    #[error(
        "relation mapping file has incorrect checksum {stored:#010x} (computed {computed:#010x})"
    )]
    BadCrc { stored: u32, computed: u32 },
    #[error("too many relation mappings: {count} (max {MAX_MAPPINGS})")]
    TooManyMappings { count: usize },
}

/// One mapping: catalog OID → current relfilenode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelMapping {
    pub mapoid: Oid,
    pub mapfilenode: Oid,
}

/// The decoded map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelMapFile {
    pub mappings: Vec<RelMapping>,
}

impl RelMapFile {
    /// Parses and verifies (size, magic, count, CRC) a map file.
    pub fn parse(buf: &[u8]) -> Result<Self, RelMapError> {
        if buf.len() != RELMAPPER_FILESIZE {
            return Err(RelMapError::WrongSize { len: buf.len() });
        }
        let short = |_| RelMapError::WrongSize { len: buf.len() };
        let magic = i32_at(buf, 0).map_err(short)?;
        if magic != RELMAPPER_FILEMAGIC {
            return Err(RelMapError::BadMagic { magic });
        }
        let count = i32_at(buf, 4).map_err(short)?;
        if !(0..=MAX_MAPPINGS as i32).contains(&count) {
            return Err(RelMapError::BadCount { count });
        }
        let stored = u32_at(buf, CRC_OFFSET).map_err(short)?;
        let computed = crc32c::crc32c(&buf[..CRC_OFFSET]);
        if stored != computed {
            return Err(RelMapError::BadCrc { stored, computed });
        }
        let mappings = (0..count as usize)
            .map(|i| {
                Ok(RelMapping {
                    mapoid: u32_at(buf, 8 + i * 8).map_err(short)?,
                    mapfilenode: u32_at(buf, 12 + i * 8).map_err(short)?,
                })
            })
            .collect::<Result<_, RelMapError>>()?;
        Ok(RelMapFile { mappings })
    }

    /// The 512-byte file with a fresh CRC.
    pub fn serialize(&self) -> Result<[u8; RELMAPPER_FILESIZE], RelMapError> {
        if self.mappings.len() > MAX_MAPPINGS {
            return Err(RelMapError::TooManyMappings {
                count: self.mappings.len(),
            });
        }
        let mut buf = [0u8; RELMAPPER_FILESIZE];
        put(&mut buf, 0, &RELMAPPER_FILEMAGIC.to_le_bytes());
        put(&mut buf, 4, &(self.mappings.len() as i32).to_le_bytes());
        for (i, m) in self.mappings.iter().enumerate() {
            put(&mut buf, 8 + i * 8, &m.mapoid.to_le_bytes());
            put(&mut buf, 12 + i * 8, &m.mapfilenode.to_le_bytes());
        }
        let crc = crc32c::crc32c(&buf[..CRC_OFFSET]);
        put(&mut buf, CRC_OFFSET, &crc.to_le_bytes());
        Ok(buf)
    }

    /// The relfilenode of a mapped catalog.
    pub fn lookup(&self, oid: Oid) -> Option<Oid> {
        self.mappings
            .iter()
            .find(|m| m.mapoid == oid)
            .map(|m| m.mapfilenode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let map = RelMapFile {
            mappings: vec![
                RelMapping {
                    mapoid: 1259,
                    mapfilenode: 1259,
                },
                RelMapping {
                    mapoid: 1249,
                    mapfilenode: 16400,
                },
            ],
        };
        let bytes = map.serialize().unwrap();
        assert_eq!(RelMapFile::parse(&bytes).unwrap(), map);
        assert_eq!(map.lookup(1249), Some(16400));
        assert_eq!(map.lookup(1), None);

        let mut bad = bytes;
        bad[20] ^= 1;
        assert!(matches!(
            RelMapFile::parse(&bad),
            Err(RelMapError::BadCrc { .. })
        ));
        let mut bad = bytes;
        bad[0] = 0;
        assert!(matches!(
            RelMapFile::parse(&bad),
            Err(RelMapError::BadMagic { .. })
        ));
        let mut bad = bytes;
        bad[4] = 63;
        assert!(matches!(
            RelMapFile::parse(&bad),
            Err(RelMapError::BadCount { count: 63 })
        ));
        assert!(matches!(
            RelMapFile::parse(&bytes[..100]),
            Err(RelMapError::WrongSize { len: 100 })
        ));
        let too_many = RelMapFile {
            mappings: vec![map.mappings[0]; 63],
        };
        assert!(too_many.serialize().is_err());
    }
}
