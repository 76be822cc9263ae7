//! `pg_control` (`ControlFileData`) and the checkpoint record payload
//! (`CheckPoint`) of PostgreSQL 15, with their exact x86-64/aarch64 C layouts.
//!
//! Layouts (offsets in bytes; C alignment inserts the gaps, which PostgreSQL
//! zero-fills because it memsets both structs before filling them, and which
//! we write as zeros):
//!
//! `CheckPoint` (88 bytes): redo 0, ThisTimeLineID 8, PrevTimeLineID 12,
//! fullPageWrites 16, nextXid 24, nextOid 32, nextMulti 36, nextMultiOffset
//! 40, oldestXid 44, oldestXidDB 48, oldestMulti 52, oldestMultiDB 56, time
//! 64, oldestCommitTsXid 72, newestCommitTsXid 76, oldestActiveXid 80.
//!
//! `ControlFileData` (296 bytes; the file is padded with zeros to 8192):
//! system_identifier 0, pg_control_version 8, catalog_version_no 12, state 16,
//! time 24, checkPoint 32, checkPointCopy 40..128, unloggedLSN 128,
//! minRecoveryPoint 136, minRecoveryPointTLI 144, backupStartPoint 152,
//! backupEndPoint 160, backupEndRequired 168, wal_level 172, wal_log_hints
//! 176, MaxConnections 180, max_worker_processes 184, max_wal_senders 188,
//! max_prepared_xacts 192, max_locks_per_xact 196, track_commit_timestamp 200,
//! maxAlign 204, floatFormat 208, blcksz 216, relseg_size 220, xlog_blcksz
//! 224, xlog_seg_size 228, nameDataLen 232, indexMaxKeys 236,
//! toast_max_chunk_size 240, loblksize 244, float8ByVal 248,
//! data_checksum_version 252, mock_authentication_nonce 256..288, crc 288.
//! The CRC-32C covers bytes 0..288.
//!
//! Used by basebackup (writing pg_control), import (reading it) and ingest
//! (checkpoint records: XLOG CHECKPOINT_SHUTDOWN/ONLINE main data).

use crate::bytes_le::{array_at, bool_at, f64_at, i32_at, i64_at, put, u32_at, u64_at, Short};
use crate::types::{
    FullTransactionId, MultiXactId, MultiXactOffset, Oid, TimeLineId, TransactionId,
};
use crate::Lsn;

/// `sizeof(CheckPoint)`, also the main data length of checkpoint records.
pub const SIZEOF_CHECKPOINT: usize = 88;
/// `sizeof(ControlFileData)`.
pub const SIZEOF_CONTROLDATA: usize = 296;
/// `offsetof(ControlFileData, crc)`: bytes covered by the CRC.
pub const OFFSETOF_CONTROLDATA_CRC: usize = 288;
/// Size of the `pg_control` file (`PG_CONTROL_FILE_SIZE`).
pub const PG_CONTROL_FILE_SIZE: usize = 8192;
/// `MOCK_AUTH_NONCE_LEN`.
pub const MOCK_AUTH_NONCE_LEN: usize = 32;
/// `FLOATFORMAT_VALUE`: lets PostgreSQL detect a foreign float format.
pub const FLOATFORMAT_VALUE: f64 = 1234567.0;

const CHECKPOINT_OFFSET: usize = 40;

/// Errors decoding a checkpoint payload or a control file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlFileError {
    #[error("{what} is {len} bytes, need at least {needed}")]
    TooShort {
        what: &'static str,
        len: usize,
        needed: usize,
    },
    #[error("pg_control CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("pg_control version {found} is not {expected} (PostgreSQL 15)")]
    WrongVersion { found: u32, expected: u32 },
    #[error("pg_control has unknown database state {0}")]
    BadState(u32),
}

/// `DBState`: cluster state recorded in pg_control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum DbState {
    Startup = 0,
    Shutdowned = 1,
    ShutdownedInRecovery = 2,
    Shutdowning = 3,
    InCrashRecovery = 4,
    InArchiveRecovery = 5,
    InProduction = 6,
}

impl DbState {
    /// The wording `pg_controldata` prints for "Database cluster state".
    pub fn description(self) -> &'static str {
        match self {
            DbState::Startup => "starting up",
            DbState::Shutdowned => "shut down",
            DbState::ShutdownedInRecovery => "shut down in recovery",
            DbState::Shutdowning => "shutting down",
            DbState::InCrashRecovery => "in crash recovery",
            DbState::InArchiveRecovery => "in archive recovery",
            DbState::InProduction => "in production",
        }
    }
}

impl TryFrom<u32> for DbState {
    type Error = ControlFileError;
    fn try_from(v: u32) -> Result<Self, ControlFileError> {
        Ok(match v {
            0 => DbState::Startup,
            1 => DbState::Shutdowned,
            2 => DbState::ShutdownedInRecovery,
            3 => DbState::Shutdowning,
            4 => DbState::InCrashRecovery,
            5 => DbState::InArchiveRecovery,
            6 => DbState::InProduction,
            other => return Err(ControlFileError::BadState(other)),
        })
    }
}

/// `wal_level` values stored in pg_control.
pub const WAL_LEVEL_MINIMAL: i32 = 0;
pub const WAL_LEVEL_REPLICA: i32 = 1;
pub const WAL_LEVEL_LOGICAL: i32 = 2;

/// The name `pg_controldata` prints for a wal_level value.
pub fn wal_level_name(level: i32) -> &'static str {
    match level {
        WAL_LEVEL_MINIMAL => "minimal",
        WAL_LEVEL_REPLICA => "replica",
        WAL_LEVEL_LOGICAL => "logical",
        _ => "unrecognized wal_level",
    }
}

/// `CheckPoint`: the payload of checkpoint records and a copy in pg_control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckPoint {
    /// Where replay must start (insert position when the checkpoint began).
    pub redo: Lsn,
    pub this_timeline_id: TimeLineId,
    pub prev_timeline_id: TimeLineId,
    pub full_page_writes: bool,
    pub next_xid: FullTransactionId,
    pub next_oid: Oid,
    pub next_multi: MultiXactId,
    pub next_multi_offset: MultiXactOffset,
    pub oldest_xid: TransactionId,
    pub oldest_xid_db: Oid,
    pub oldest_multi: MultiXactId,
    pub oldest_multi_db: Oid,
    /// `pg_time_t`: seconds since the Unix epoch.
    pub time: i64,
    pub oldest_commit_ts_xid: TransactionId,
    pub newest_commit_ts_xid: TransactionId,
    pub oldest_active_xid: TransactionId,
}

fn short(what: &'static str, len: usize, needed: usize) -> impl Fn(Short) -> ControlFileError {
    move |_| ControlFileError::TooShort { what, len, needed }
}

impl CheckPoint {
    /// Decodes a checkpoint from the first [`SIZEOF_CHECKPOINT`] bytes of
    /// `buf` (a checkpoint record's main data).
    pub fn decode(buf: &[u8]) -> Result<Self, ControlFileError> {
        let e = short("checkpoint", buf.len(), SIZEOF_CHECKPOINT);
        if buf.len() < SIZEOF_CHECKPOINT {
            return Err(e(Short {
                offset: 0,
                needed: SIZEOF_CHECKPOINT,
            }));
        }
        Ok(CheckPoint {
            redo: Lsn(u64_at(buf, 0).map_err(&e)?),
            this_timeline_id: u32_at(buf, 8).map_err(&e)?,
            prev_timeline_id: u32_at(buf, 12).map_err(&e)?,
            full_page_writes: bool_at(buf, 16).map_err(&e)?,
            next_xid: FullTransactionId(u64_at(buf, 24).map_err(&e)?),
            next_oid: u32_at(buf, 32).map_err(&e)?,
            next_multi: u32_at(buf, 36).map_err(&e)?,
            next_multi_offset: u32_at(buf, 40).map_err(&e)?,
            oldest_xid: u32_at(buf, 44).map_err(&e)?,
            oldest_xid_db: u32_at(buf, 48).map_err(&e)?,
            oldest_multi: u32_at(buf, 52).map_err(&e)?,
            oldest_multi_db: u32_at(buf, 56).map_err(&e)?,
            time: i64_at(buf, 64).map_err(&e)?,
            oldest_commit_ts_xid: u32_at(buf, 72).map_err(&e)?,
            newest_commit_ts_xid: u32_at(buf, 76).map_err(&e)?,
            oldest_active_xid: u32_at(buf, 80).map_err(&e)?,
        })
    }

    /// The 88-byte C struct, padding zeroed.
    pub fn encode(&self) -> [u8; SIZEOF_CHECKPOINT] {
        let mut b = [0u8; SIZEOF_CHECKPOINT];
        self.encode_into(&mut b);
        b
    }

    fn encode_into(&self, b: &mut [u8; SIZEOF_CHECKPOINT]) {
        put(b, 0, &self.redo.0.to_le_bytes());
        put(b, 8, &self.this_timeline_id.to_le_bytes());
        put(b, 12, &self.prev_timeline_id.to_le_bytes());
        put(b, 16, &[self.full_page_writes as u8]);
        put(b, 24, &self.next_xid.0.to_le_bytes());
        put(b, 32, &self.next_oid.to_le_bytes());
        put(b, 36, &self.next_multi.to_le_bytes());
        put(b, 40, &self.next_multi_offset.to_le_bytes());
        put(b, 44, &self.oldest_xid.to_le_bytes());
        put(b, 48, &self.oldest_xid_db.to_le_bytes());
        put(b, 52, &self.oldest_multi.to_le_bytes());
        put(b, 56, &self.oldest_multi_db.to_le_bytes());
        put(b, 64, &self.time.to_le_bytes());
        put(b, 72, &self.oldest_commit_ts_xid.to_le_bytes());
        put(b, 76, &self.newest_commit_ts_xid.to_le_bytes());
        put(b, 80, &self.oldest_active_xid.to_le_bytes());
    }
}

/// `ControlFileData`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlFileData {
    pub system_identifier: u64,
    pub pg_control_version: u32,
    pub catalog_version_no: u32,
    pub state: DbState,
    /// Last update of pg_control, seconds since the Unix epoch.
    pub time: i64,
    /// LSN of the latest checkpoint record.
    pub check_point: Lsn,
    pub check_point_copy: CheckPoint,
    pub unlogged_lsn: Lsn,
    pub min_recovery_point: Lsn,
    pub min_recovery_point_tli: TimeLineId,
    pub backup_start_point: Lsn,
    pub backup_end_point: Lsn,
    pub backup_end_required: bool,
    pub wal_level: i32,
    pub wal_log_hints: bool,
    pub max_connections: i32,
    pub max_worker_processes: i32,
    pub max_wal_senders: i32,
    pub max_prepared_xacts: i32,
    pub max_locks_per_xact: i32,
    pub track_commit_timestamp: bool,
    pub max_align: u32,
    pub float_format: f64,
    pub blcksz: u32,
    pub relseg_size: u32,
    pub xlog_blcksz: u32,
    pub xlog_seg_size: u32,
    pub name_data_len: u32,
    pub index_max_keys: u32,
    pub toast_max_chunk_size: u32,
    pub loblksize: u32,
    pub float8_by_val: bool,
    /// 0 = data checksums off, 1 = on (`PG_DATA_CHECKSUM_VERSION`).
    pub data_checksum_version: u32,
    pub mock_authentication_nonce: [u8; MOCK_AUTH_NONCE_LEN],
}

impl ControlFileData {
    /// Decodes pg_control and checks its CRC and version. `buf` is the file
    /// (8192 bytes) or at least its first [`SIZEOF_CONTROLDATA`] bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, ControlFileError> {
        let e = short("pg_control", buf.len(), SIZEOF_CONTROLDATA);
        if buf.len() < SIZEOF_CONTROLDATA {
            return Err(e(Short {
                offset: 0,
                needed: SIZEOF_CONTROLDATA,
            }));
        }
        let stored = u32_at(buf, OFFSETOF_CONTROLDATA_CRC).map_err(&e)?;
        let computed = crc32c::crc32c(&buf[..OFFSETOF_CONTROLDATA_CRC]);
        if stored != computed {
            return Err(ControlFileError::BadCrc { stored, computed });
        }
        let cd = Self::decode_unchecked(buf)?;
        if cd.pg_control_version != super::PG_CONTROL_VERSION {
            return Err(ControlFileError::WrongVersion {
                found: cd.pg_control_version,
                expected: super::PG_CONTROL_VERSION,
            });
        }
        Ok(cd)
    }

    /// Decodes the fields without checking CRC or version (for tools that
    /// want to show a damaged file).
    pub fn decode_unchecked(buf: &[u8]) -> Result<Self, ControlFileError> {
        let e = short("pg_control", buf.len(), SIZEOF_CONTROLDATA);
        let cp = buf
            .get(CHECKPOINT_OFFSET..CHECKPOINT_OFFSET + SIZEOF_CHECKPOINT)
            .ok_or(ControlFileError::TooShort {
                what: "pg_control",
                len: buf.len(),
                needed: SIZEOF_CONTROLDATA,
            })?;
        Ok(ControlFileData {
            system_identifier: u64_at(buf, 0).map_err(&e)?,
            pg_control_version: u32_at(buf, 8).map_err(&e)?,
            catalog_version_no: u32_at(buf, 12).map_err(&e)?,
            state: DbState::try_from(u32_at(buf, 16).map_err(&e)?)?,
            time: i64_at(buf, 24).map_err(&e)?,
            check_point: Lsn(u64_at(buf, 32).map_err(&e)?),
            check_point_copy: CheckPoint::decode(cp)?,
            unlogged_lsn: Lsn(u64_at(buf, 128).map_err(&e)?),
            min_recovery_point: Lsn(u64_at(buf, 136).map_err(&e)?),
            min_recovery_point_tli: u32_at(buf, 144).map_err(&e)?,
            backup_start_point: Lsn(u64_at(buf, 152).map_err(&e)?),
            backup_end_point: Lsn(u64_at(buf, 160).map_err(&e)?),
            backup_end_required: bool_at(buf, 168).map_err(&e)?,
            wal_level: i32_at(buf, 172).map_err(&e)?,
            wal_log_hints: bool_at(buf, 176).map_err(&e)?,
            max_connections: i32_at(buf, 180).map_err(&e)?,
            max_worker_processes: i32_at(buf, 184).map_err(&e)?,
            max_wal_senders: i32_at(buf, 188).map_err(&e)?,
            max_prepared_xacts: i32_at(buf, 192).map_err(&e)?,
            max_locks_per_xact: i32_at(buf, 196).map_err(&e)?,
            track_commit_timestamp: bool_at(buf, 200).map_err(&e)?,
            max_align: u32_at(buf, 204).map_err(&e)?,
            float_format: f64_at(buf, 208).map_err(&e)?,
            blcksz: u32_at(buf, 216).map_err(&e)?,
            relseg_size: u32_at(buf, 220).map_err(&e)?,
            xlog_blcksz: u32_at(buf, 224).map_err(&e)?,
            xlog_seg_size: u32_at(buf, 228).map_err(&e)?,
            name_data_len: u32_at(buf, 232).map_err(&e)?,
            index_max_keys: u32_at(buf, 236).map_err(&e)?,
            toast_max_chunk_size: u32_at(buf, 240).map_err(&e)?,
            loblksize: u32_at(buf, 244).map_err(&e)?,
            float8_by_val: bool_at(buf, 248).map_err(&e)?,
            data_checksum_version: u32_at(buf, 252).map_err(&e)?,
            mock_authentication_nonce: array_at(buf, 256).map_err(&e)?,
        })
    }

    /// The struct bytes with a freshly computed CRC.
    pub fn encode_struct(&self) -> [u8; SIZEOF_CONTROLDATA] {
        let mut b = [0u8; SIZEOF_CONTROLDATA];
        put(&mut b, 0, &self.system_identifier.to_le_bytes());
        put(&mut b, 8, &self.pg_control_version.to_le_bytes());
        put(&mut b, 12, &self.catalog_version_no.to_le_bytes());
        put(&mut b, 16, &(self.state as u32).to_le_bytes());
        put(&mut b, 24, &self.time.to_le_bytes());
        put(&mut b, 32, &self.check_point.0.to_le_bytes());
        put(&mut b, CHECKPOINT_OFFSET, &self.check_point_copy.encode());
        put(&mut b, 128, &self.unlogged_lsn.0.to_le_bytes());
        put(&mut b, 136, &self.min_recovery_point.0.to_le_bytes());
        put(&mut b, 144, &self.min_recovery_point_tli.to_le_bytes());
        put(&mut b, 152, &self.backup_start_point.0.to_le_bytes());
        put(&mut b, 160, &self.backup_end_point.0.to_le_bytes());
        put(&mut b, 168, &[self.backup_end_required as u8]);
        put(&mut b, 172, &self.wal_level.to_le_bytes());
        put(&mut b, 176, &[self.wal_log_hints as u8]);
        put(&mut b, 180, &self.max_connections.to_le_bytes());
        put(&mut b, 184, &self.max_worker_processes.to_le_bytes());
        put(&mut b, 188, &self.max_wal_senders.to_le_bytes());
        put(&mut b, 192, &self.max_prepared_xacts.to_le_bytes());
        put(&mut b, 196, &self.max_locks_per_xact.to_le_bytes());
        put(&mut b, 200, &[self.track_commit_timestamp as u8]);
        put(&mut b, 204, &self.max_align.to_le_bytes());
        put(&mut b, 208, &self.float_format.to_le_bytes());
        put(&mut b, 216, &self.blcksz.to_le_bytes());
        put(&mut b, 220, &self.relseg_size.to_le_bytes());
        put(&mut b, 224, &self.xlog_blcksz.to_le_bytes());
        put(&mut b, 228, &self.xlog_seg_size.to_le_bytes());
        put(&mut b, 232, &self.name_data_len.to_le_bytes());
        put(&mut b, 236, &self.index_max_keys.to_le_bytes());
        put(&mut b, 240, &self.toast_max_chunk_size.to_le_bytes());
        put(&mut b, 244, &self.loblksize.to_le_bytes());
        put(&mut b, 248, &[self.float8_by_val as u8]);
        put(&mut b, 252, &self.data_checksum_version.to_le_bytes());
        put(&mut b, 256, &self.mock_authentication_nonce);
        let crc = crc32c::crc32c(&b[..OFFSETOF_CONTROLDATA_CRC]);
        put(&mut b, OFFSETOF_CONTROLDATA_CRC, &crc.to_le_bytes());
        b
    }

    /// The whole 8192-byte `pg_control` file (struct + zero padding).
    pub fn encode_file(&self) -> Vec<u8> {
        let mut f = vec![0u8; PG_CONTROL_FILE_SIZE];
        f[..SIZEOF_CONTROLDATA].copy_from_slice(&self.encode_struct());
        f
    }

    pub fn data_checksums_enabled(&self) -> bool {
        self.data_checksum_version != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ControlFileData {
        ControlFileData {
            system_identifier: 7_300_000_000_000_000_001,
            pg_control_version: super::super::PG_CONTROL_VERSION,
            catalog_version_no: super::super::CATALOG_VERSION_NO,
            state: DbState::Shutdowned,
            time: 1_700_000_000,
            check_point: Lsn(0x0100_0028),
            check_point_copy: CheckPoint {
                redo: Lsn(0x0100_0028),
                this_timeline_id: 1,
                prev_timeline_id: 1,
                full_page_writes: true,
                next_xid: FullTransactionId::new(0, 735),
                next_oid: 16384,
                next_multi: 1,
                next_multi_offset: 0,
                oldest_xid: 716,
                oldest_xid_db: 1,
                oldest_multi: 1,
                oldest_multi_db: 1,
                time: 1_700_000_000,
                oldest_commit_ts_xid: 0,
                newest_commit_ts_xid: 0,
                oldest_active_xid: 0,
            },
            unlogged_lsn: Lsn(1000),
            min_recovery_point: Lsn(0),
            min_recovery_point_tli: 0,
            backup_start_point: Lsn(0),
            backup_end_point: Lsn(0),
            backup_end_required: false,
            wal_level: WAL_LEVEL_REPLICA,
            wal_log_hints: false,
            max_connections: 100,
            max_worker_processes: 8,
            max_wal_senders: 10,
            max_prepared_xacts: 0,
            max_locks_per_xact: 64,
            track_commit_timestamp: false,
            max_align: 8,
            float_format: FLOATFORMAT_VALUE,
            blcksz: 8192,
            relseg_size: 131072,
            xlog_blcksz: 8192,
            xlog_seg_size: 16 * 1024 * 1024,
            name_data_len: 64,
            index_max_keys: 32,
            toast_max_chunk_size: 1996,
            loblksize: 2048,
            float8_by_val: true,
            data_checksum_version: 1,
            mock_authentication_nonce: [9; 32],
        }
    }

    #[test]
    fn round_trip() {
        let cd = sample();
        let file = cd.encode_file();
        assert_eq!(file.len(), 8192);
        assert_eq!(ControlFileData::decode(&file).unwrap(), cd);
        let cp = cd.check_point_copy;
        assert_eq!(CheckPoint::decode(&cp.encode()).unwrap(), cp);
    }

    #[test]
    fn rejects_bad_files() {
        let cd = sample();
        let mut file = cd.encode_file();
        assert!(matches!(
            ControlFileData::decode(&file[..200]),
            Err(ControlFileError::TooShort { .. })
        ));
        file[50] ^= 1;
        assert!(matches!(
            ControlFileData::decode(&file),
            Err(ControlFileError::BadCrc { .. })
        ));
        let mut other = cd.clone();
        other.pg_control_version = 1700;
        assert!(matches!(
            ControlFileData::decode(&other.encode_file()),
            Err(ControlFileError::WrongVersion { found: 1700, .. })
        ));
        let mut bad_state = cd.encode_struct();
        bad_state[16] = 9;
        let crc = crc32c::crc32c(&bad_state[..OFFSETOF_CONTROLDATA_CRC]);
        bad_state[OFFSETOF_CONTROLDATA_CRC..OFFSETOF_CONTROLDATA_CRC + 4]
            .copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            ControlFileData::decode(&bad_state),
            Err(ControlFileError::BadState(9))
        );
        assert!(CheckPoint::decode(&[0u8; 87]).is_err());
    }
}
