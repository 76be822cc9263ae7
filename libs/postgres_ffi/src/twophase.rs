//! Two-phase commit state files (`pg_twophase/<xid>`, `twophase.c`).
//!
//! A prepared transaction's state is written at checkpoint time to a file
//! named after its xid: in PostgreSQL 15, eight upper-case hex digits of the
//! 32-bit xid. The file body is the PREPARE record's main data (it starts with
//! magic [`TWOPHASE_MAGIC`] and `total_len`, the length of the whole *file*)
//! followed by a CRC-32C of the body; the body length is a multiple of 8. Naming is version specific (later versions add the epoch), so the
//! functions take the version. Used by ingest/basebackup to (re)create the
//! files and by import to recognise them.

use crate::bytes_le::u32_at;
use crate::types::TransactionId;
use crate::PgMajorVersion;

pub const TWOPHASE_DIR: &str = "pg_twophase";
/// First field of every state file body (`xl_xact_prepare.magic`).
pub const TWOPHASE_MAGIC: u32 = 0x57F94534;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwoPhaseError {
    #[error("{0:?} is not a two-phase state file name")]
    BadName(String),
    #[error("two-phase state file is {len} bytes, too short")]
    TooShort { len: usize },
    #[error("two-phase state file has magic {magic:#x}, expected {TWOPHASE_MAGIC:#x}")]
    BadMagic { magic: u32 },
    #[error("two-phase state file says it is {stated} bytes long, but it has {actual}")]
    BadLength { stated: u32, actual: usize },
    #[error("two-phase state file CRC {stored:#010x} does not match computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
}

/// The state file name inside [`TWOPHASE_DIR`].
pub fn file_name(version: PgMajorVersion, xid: TransactionId) -> String {
    match version {
        PgMajorVersion::V15 => format!("{xid:08X}"),
    }
}

/// Path relative to the data directory.
pub fn file_path(version: PgMajorVersion, xid: TransactionId) -> String {
    format!("{TWOPHASE_DIR}/{}", file_name(version, xid))
}

/// The xid a state file name stands for.
pub fn parse_file_name(
    version: PgMajorVersion,
    name: &str,
) -> Result<TransactionId, TwoPhaseError> {
    match version {
        PgMajorVersion::V15 => {
            let ok = name.len() == 8
                && name
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
            if !ok {
                return Err(TwoPhaseError::BadName(name.to_owned()));
            }
            u32::from_str_radix(name, 16).map_err(|_| TwoPhaseError::BadName(name.to_owned()))
        }
    }
}

/// The file content for a PREPARE record's main data: body + CRC-32C.
pub fn state_file_from_prepare_record(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out
}

/// Checks a state file (magic, stated length, CRC) and returns its body.
pub fn verify_state_file(file: &[u8]) -> Result<&[u8], TwoPhaseError> {
    // magic u32, total_len u32 (file length), ..., then the 4-byte CRC
    // right after a MAXALIGNed body.
    if file.len() < 12 || !(file.len() - 4).is_multiple_of(crate::MAXIMUM_ALIGNOF) {
        return Err(TwoPhaseError::TooShort { len: file.len() });
    }
    let too_short = |_| TwoPhaseError::TooShort { len: file.len() };
    let magic = u32_at(file, 0).map_err(too_short)?;
    if magic != TWOPHASE_MAGIC {
        return Err(TwoPhaseError::BadMagic { magic });
    }
    let (body, crc) = file.split_at(file.len() - 4);
    let stated = u32_at(file, 4).map_err(too_short)?;
    if stated as usize != file.len() {
        return Err(TwoPhaseError::BadLength {
            stated,
            actual: file.len(),
        });
    }
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(TwoPhaseError::BadCrc { stored, computed });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: PgMajorVersion = PgMajorVersion::V15;

    #[test]
    fn names() {
        assert_eq!(file_path(V, 0x2E1), "pg_twophase/000002E1");
        assert_eq!(parse_file_name(V, "000002E1"), Ok(0x2E1));
        for bad in ["2E1", "000002e1", "000002E10", "0000002G"] {
            assert!(parse_file_name(V, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_files() {
        let mut body = Vec::new();
        body.extend_from_slice(&TWOPHASE_MAGIC.to_le_bytes());
        body.extend_from_slice(&20u32.to_le_bytes());
        body.extend_from_slice(&[7u8; 8]);
        let file = state_file_from_prepare_record(&body);
        assert_eq!(verify_state_file(&file).unwrap(), &body[..]);
        let mut bad = file.clone();
        bad[10] ^= 1;
        assert!(matches!(
            verify_state_file(&bad),
            Err(TwoPhaseError::BadCrc { .. })
        ));
        assert!(matches!(
            verify_state_file(&file[..8]),
            Err(TwoPhaseError::TooShort { .. })
        ));
        let mut bad = file;
        bad[4] = 3;
        assert!(matches!(
            verify_state_file(&bad),
            Err(TwoPhaseError::BadLength { .. })
        ));
    }
}
