//! The client side of the PostgreSQL v3 protocol, for what the page server
//! needs from a primary: replication connections (`replication=true`) with
//! `IDENTIFY_SYSTEM`, physical slots, `START_REPLICATION … PHYSICAL` and
//! `BASE_BACKUP`, and plain simple queries. Message encoding and decoding is
//! `postgres-protocol`'s; this crate adds the connection state machine,
//! authentication, connection-string parsing and the replication framing.
//!
//! Used by the walreceiver and by import from a running Postgres. TLS is
//! not spoken (`sslmode` stronger than `prefer` is refused).

pub mod config;
pub mod conn;
pub mod replication;

pub use config::{Config, Host};
pub use conn::{Connection, QueryResult};
pub use replication::{
    check_slot_name, format_lsn, parse_lsn, BackupChunk, BaseBackupStream, ReplicationConnection,
    ReplicationMessage, ReplicationStream, SystemInfo,
};

/// Why a connection or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid connection string: {0}")]
    Config(String),
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("server error {code}: {message}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Server {
        code: String,
        message: String,
        detail: Option<String>,
    },
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
