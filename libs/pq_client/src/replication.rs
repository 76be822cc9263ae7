//! Physical replication on top of [`Connection`]: `IDENTIFY_SYSTEM`,
//! slots, `START_REPLICATION … PHYSICAL` (a stream of WAL in `XLogData`
//! messages, keepalives, and standby status updates we send back) and
//! PostgreSQL 15's `BASE_BACKUP` (result sets, then one COPY OUT whose
//! CopyData messages start with a type byte: `n` new archive, `d` data,
//! `p` progress, `m` manifest; then the end position).
//!
//! Replication message layouts (big-endian):
//!
//! | message | layout |
//! |---|---|
//! | XLogData `w` | start u64, server WAL end u64, send time i64, WAL bytes |
//! | keepalive `k` | server WAL end u64, send time i64, reply requested u8 |
//! | status update `r` (ours) | write u64, flush u64, apply u64, clock i64, reply requested u8 |
//!
//! Times are microseconds since 2000-01-01 UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::message::backend::Message;

use crate::config::Config;
use crate::conn::{copy_data_bytes, server_error, BackendMessage, Connection, QueryResult};
use crate::ClientError;

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_SECS: u64 = 946_684_800;

/// The current time as PostgreSQL's `TimestampTz` (µs since 2000-01-01).
pub fn pg_now() -> i64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let us = since_unix.as_micros() as i64;
    us - (PG_EPOCH_OFFSET_SECS as i64) * 1_000_000
}

/// What `IDENTIFY_SYSTEM` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    pub system_id: u64,
    pub timeline: u32,
    /// Current WAL flush position.
    pub xlogpos: u64,
}

/// A message of a physical replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationMessage {
    XLogData {
        start: u64,
        wal_end: u64,
        send_time: i64,
        data: Bytes,
    },
    Keepalive {
        wal_end: u64,
        send_time: i64,
        reply_requested: bool,
    },
}

/// Parses `X/Y`.
pub fn parse_lsn(s: &str) -> Result<u64, ClientError> {
    let (hi, lo) = s
        .split_once('/')
        .ok_or_else(|| ClientError::Protocol(format!("invalid LSN {s:?}")))?;
    let hi = u32::from_str_radix(hi, 16)
        .map_err(|_| ClientError::Protocol(format!("invalid LSN {s:?}")))?;
    let lo = u32::from_str_radix(lo, 16)
        .map_err(|_| ClientError::Protocol(format!("invalid LSN {s:?}")))?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn as u32)
}

/// A connection in physical replication mode (`replication=true`).
#[derive(Debug)]
pub struct ReplicationConnection {
    conn: Connection,
}

impl ReplicationConnection {
    pub async fn connect(cfg: &Config) -> Result<ReplicationConnection, ClientError> {
        let conn = Connection::connect(cfg, &[("replication", "true")]).await?;
        Ok(ReplicationConnection { conn })
    }

    pub async fn simple_query(&mut self, q: &str) -> Result<Vec<QueryResult>, ClientError> {
        self.conn.simple_query(q).await
    }

    pub async fn identify_system(&mut self) -> Result<SystemInfo, ClientError> {
        let res = self.conn.simple_query("IDENTIFY_SYSTEM").await?;
        let r = res
            .first()
            .ok_or_else(|| ClientError::Protocol("IDENTIFY_SYSTEM returned nothing".into()))?;
        let field = |name: &str| {
            r.get(0, name)
                .ok_or_else(|| ClientError::Protocol(format!("IDENTIFY_SYSTEM returned no {name}")))
        };
        let bad = |what: &str, v: &str| {
            ClientError::Protocol(format!("IDENTIFY_SYSTEM: bad {what} {v:?}"))
        };
        let sysid = field("systemid")?;
        let tli = field("timeline")?;
        Ok(SystemInfo {
            system_id: sysid.parse().map_err(|_| bad("systemid", sysid))?,
            timeline: tli.parse().map_err(|_| bad("timeline", tli))?,
            xlogpos: parse_lsn(field("xlogpos")?)?,
        })
    }

    /// `CREATE_REPLICATION_SLOT name PHYSICAL RESERVE_WAL`; `Ok(false)` if a
    /// slot of that name exists already.
    pub async fn create_physical_slot(&mut self, name: &str) -> Result<bool, ClientError> {
        check_slot_name(name)?;
        match self
            .conn
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT \"{name}\" PHYSICAL RESERVE_WAL"
            ))
            .await
        {
            Ok(_) => Ok(true),
            // duplicate_object
            Err(ClientError::Server { code, .. }) if code == "42710" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `START_REPLICATION [SLOT s] PHYSICAL start [TIMELINE tli]`.
    pub async fn start_physical(
        mut self,
        slot: Option<&str>,
        start: u64,
        timeline: Option<u32>,
    ) -> Result<ReplicationStream, ClientError> {
        let mut q = String::from("START_REPLICATION ");
        if let Some(s) = slot {
            check_slot_name(s)?;
            q.push_str(&format!("SLOT \"{s}\" "));
        }
        q.push_str(&format!("PHYSICAL {}", format_lsn(start)));
        if let Some(t) = timeline {
            q.push_str(&format!(" TIMELINE {t}"));
        }
        self.conn.send_query(&q).await?;
        match self.conn.results_until_copy().await? {
            (_, BackendMessage::CopyBothResponse) => Ok(ReplicationStream {
                conn: self.conn,
                done: false,
            }),
            (_, other) => Err(ClientError::Protocol(format!(
                "START_REPLICATION answered {other:?}, not COPY BOTH"
            ))),
        }
    }

    /// Starts `BASE_BACKUP (options)`; read the archives from the result.
    pub async fn base_backup(mut self, options: &str) -> Result<BaseBackupStream, ClientError> {
        self.conn
            .send_query(&format!("BASE_BACKUP ({options})"))
            .await?;
        let (results, msg) = self.conn.results_until_copy().await?;
        if !matches!(msg, BackendMessage::Message(Message::CopyOutResponse(_))) {
            return Err(ClientError::Protocol(
                "BASE_BACKUP did not start COPY OUT".into(),
            ));
        }
        let start = results
            .first()
            .and_then(|r| Some((r.get(0, "recptr")?, r.get(0, "tli")?)))
            .ok_or_else(|| ClientError::Protocol("BASE_BACKUP sent no start position".into()))?;
        let start_lsn = parse_lsn(start.0)?;
        let start_tli = start.1.parse().map_err(|_| {
            ClientError::Protocol(format!("BASE_BACKUP: bad timeline {:?}", start.1))
        })?;
        Ok(BaseBackupStream {
            conn: self.conn,
            start_lsn,
            start_tli,
            copy_done: false,
        })
    }

    pub async fn close(self) {
        self.conn.close().await
    }
}

/// Slot names are plain identifiers (lower-case letters, digits, `_`, at
/// most 63 bytes, as Postgres requires); refusing others keeps quoting
/// trivial.
pub fn check_slot_name(name: &str) -> Result<(), ClientError> {
    let ok = !name.is_empty()
        && name.len() < 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ClientError::Config(format!(
            "invalid replication slot name {name:?} (lower-case letters, digits and _ only)"
        )))
    }
}

/// WAL streaming after `START_REPLICATION`.
#[derive(Debug)]
pub struct ReplicationStream {
    conn: Connection,
    done: bool,
}

impl ReplicationStream {
    /// The next message; `None` when the server ended the stream (end of a
    /// historic timeline, or shutdown). Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<ReplicationMessage>, ClientError> {
        if self.done {
            return Ok(None);
        }
        match self.conn.read_message().await? {
            BackendMessage::Message(Message::CopyData(body)) => {
                parse_replication_message(copy_data_bytes(body)).map(Some)
            }
            BackendMessage::Message(Message::CopyDone) => {
                self.done = true;
                // Answer the server's CopyDone, as a walreceiver does.
                self.conn.send_copy_done().await?;
                Ok(None)
            }
            BackendMessage::Message(Message::ErrorResponse(e)) => {
                self.done = true;
                Err(server_error(&e))
            }
            other => Err(ClientError::Protocol(format!(
                "unexpected message in the replication stream: {other:?}"
            ))),
        }
    }

    /// Sends a standby status update.
    pub async fn send_status(
        &mut self,
        write: u64,
        flush: u64,
        apply: u64,
        reply_requested: bool,
    ) -> Result<(), ClientError> {
        let mut b = BytesMut::with_capacity(34);
        b.put_u8(b'r');
        b.put_u64(write);
        b.put_u64(flush);
        b.put_u64(apply);
        b.put_i64(pg_now());
        b.put_u8(u8::from(reply_requested));
        self.conn.send_copy_data(&b).await
    }

    pub async fn close(self) {
        self.conn.close().await
    }
}

fn parse_replication_message(mut b: Bytes) -> Result<ReplicationMessage, ClientError> {
    let short = |what: &str| ClientError::Protocol(format!("{what} message is too short"));
    if b.is_empty() {
        return Err(short("replication"));
    }
    match b.get_u8() {
        b'w' => {
            if b.len() < 24 {
                return Err(short("XLogData"));
            }
            let start = b.get_u64();
            let wal_end = b.get_u64();
            let send_time = b.get_i64();
            Ok(ReplicationMessage::XLogData {
                start,
                wal_end,
                send_time,
                data: b,
            })
        }
        b'k' => {
            if b.len() < 17 {
                return Err(short("keepalive"));
            }
            Ok(ReplicationMessage::Keepalive {
                wal_end: b.get_u64(),
                send_time: b.get_i64(),
                reply_requested: b.get_u8() != 0,
            })
        }
        t => Err(ClientError::Protocol(format!(
            "unknown replication message type {:?}",
            t as char
        ))),
    }
}

/// One piece of a base backup stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupChunk {
    /// A new tar archive begins: its name (`base.tar`, `<oid>.tar`) and,
    /// for tablespaces, their location.
    NewArchive {
        name: String,
        location: Option<String>,
    },
    /// Bytes of the current archive (or of the manifest after `Manifest`).
    Data(Bytes),
    Progress(u64),
    Manifest,
}

/// A base backup being received.
#[derive(Debug)]
pub struct BaseBackupStream {
    conn: Connection,
    /// Where WAL replay must start (the backup's checkpoint redo point).
    pub start_lsn: u64,
    pub start_tli: u32,
    copy_done: bool,
}

impl BaseBackupStream {
    /// The next chunk; `None` once the COPY is over (then call
    /// [`Self::finish`]).
    pub async fn next(&mut self) -> Result<Option<BackupChunk>, ClientError> {
        if self.copy_done {
            return Ok(None);
        }
        match self.conn.read_message().await? {
            BackendMessage::Message(Message::CopyData(body)) => {
                let mut b = copy_data_bytes(body);
                if b.is_empty() {
                    return Err(ClientError::Protocol("empty base backup message".into()));
                }
                match b.get_u8() {
                    b'n' => {
                        let name = cstr(&mut b)?;
                        let location = cstr(&mut b)?;
                        Ok(Some(BackupChunk::NewArchive {
                            name,
                            location: (!location.is_empty()).then_some(location),
                        }))
                    }
                    b'd' => Ok(Some(BackupChunk::Data(b))),
                    b'p' if b.len() >= 8 => Ok(Some(BackupChunk::Progress(b.get_u64()))),
                    b'm' => Ok(Some(BackupChunk::Manifest)),
                    t => Err(ClientError::Protocol(format!(
                        "unknown base backup message type {:?}",
                        t as char
                    ))),
                }
            }
            BackendMessage::Message(Message::CopyDone) => {
                self.copy_done = true;
                Ok(None)
            }
            BackendMessage::Message(Message::ErrorResponse(e)) => Err(server_error(&e)),
            other => Err(ClientError::Protocol(format!(
                "unexpected message in a base backup: {other:?}"
            ))),
        }
    }

    /// After the COPY: the end position and timeline; the connection is
    /// closed.
    pub async fn finish(mut self) -> Result<(u64, u32), ClientError> {
        while self.next().await?.is_some() {}
        let mut end = None;
        let mut error = None;
        let mut current = QueryResult::default();
        loop {
            match self.conn.read_message().await? {
                BackendMessage::Message(Message::RowDescription(rd)) => {
                    use fallible_iterator::FallibleIterator;
                    current.columns = rd.fields().map(|f| Ok(f.name().to_owned())).collect()?;
                }
                BackendMessage::Message(Message::DataRow(row)) => {
                    use fallible_iterator::FallibleIterator;
                    let buf = row.buffer();
                    let mut ranges = row.ranges();
                    let mut vals = Vec::new();
                    while let Some(r) = ranges.next()? {
                        vals.push(
                            r.and_then(|r| buf.get(r))
                                .map(|v| String::from_utf8_lossy(v).into_owned()),
                        );
                    }
                    current.rows.push(vals);
                }
                BackendMessage::Message(Message::CommandComplete(_)) => {
                    if end.is_none() {
                        if let (Some(lsn), Some(tli)) =
                            (current.get(0, "recptr"), current.get(0, "tli"))
                        {
                            end = Some((
                                parse_lsn(lsn)?,
                                tli.parse::<u32>().map_err(|_| {
                                    ClientError::Protocol(format!(
                                        "BASE_BACKUP: bad end timeline {tli:?}"
                                    ))
                                })?,
                            ));
                        }
                    }
                    current = QueryResult::default();
                }
                BackendMessage::Message(Message::ErrorResponse(e)) => {
                    error = Some(server_error(&e))
                }
                BackendMessage::Message(Message::ReadyForQuery(_)) => break,
                other => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected message after a base backup: {other:?}"
                    )))
                }
            }
        }
        self.conn.close().await;
        if let Some(e) = error {
            return Err(e);
        }
        end.ok_or_else(|| ClientError::Protocol("BASE_BACKUP sent no end position".into()))
    }
}

fn cstr(b: &mut Bytes) -> Result<String, ClientError> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| ClientError::Protocol("unterminated string".into()))?;
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    b.advance(end + 1);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text() {
        assert_eq!(parse_lsn("16/B374D848").unwrap(), 0x16_B374_D848);
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert!(parse_lsn("nope").is_err());
    }

    #[test]
    fn replication_messages() {
        let mut b = BytesMut::new();
        b.put_u8(b'w');
        b.put_u64(0x100);
        b.put_u64(0x200);
        b.put_i64(7);
        b.put_slice(b"wal");
        assert_eq!(
            parse_replication_message(b.freeze()).unwrap(),
            ReplicationMessage::XLogData {
                start: 0x100,
                wal_end: 0x200,
                send_time: 7,
                data: Bytes::from_static(b"wal")
            }
        );
        let mut b = BytesMut::new();
        b.put_u8(b'k');
        b.put_u64(0x300);
        b.put_i64(1);
        b.put_u8(1);
        assert!(matches!(
            parse_replication_message(b.freeze()).unwrap(),
            ReplicationMessage::Keepalive {
                wal_end: 0x300,
                reply_requested: true,
                ..
            }
        ));
        for bad in [&b""[..], b"w\0\0", b"k", b"x"] {
            assert!(parse_replication_message(Bytes::copy_from_slice(bad)).is_err());
        }
    }

    #[test]
    fn slot_names() {
        assert!(check_slot_name("pageserver_1").is_ok());
        for bad in ["", "Upper", "a\"b", "x y", &"a".repeat(64)] {
            assert!(check_slot_name(bad).is_err(), "{bad}");
        }
    }
}
