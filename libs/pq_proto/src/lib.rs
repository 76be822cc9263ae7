//! The server side of the PostgreSQL wire protocol (version 3.0), as the page
//! service speaks it to computes and tools.
//!
//! - [`frontend`]: parsing what a client sends — the length-prefixed startup
//!   packets (startup, SSL/GSS encryption requests, cancel requests) and the
//!   tagged messages after startup (simple query, password, CopyData, ...).
//! - [`backend`]: encoding what the server sends (authentication requests,
//!   parameter status, ErrorResponse with SQLSTATE, row descriptions, data
//!   rows, Copy responses, CopyData, ReadyForQuery).
//! - [`framed`]: a buffered, cancel-safe message reader over any
//!   `AsyncRead`: a message is consumed only once it is complete, so a
//!   dropped read future loses nothing.
//!
//! Every length and field read from the client is untrusted: a malformed
//! message is a [`ProtocolError`] naming what was wrong, never a panic, and
//! messages above a configurable size are refused before buffering them.
//!
//! The client side (replication connections) lives in `pq_client`, which
//! uses the `postgres-protocol` codecs for that direction.

pub mod backend;
pub mod framed;
pub mod frontend;

pub use backend::{BeMessage, ErrorSeverity, FieldDescription};
pub use framed::MessageReader;
pub use frontend::{CancelKey, FeMessage, FeStartupPacket};

/// Protocol errors: the client sent something this server cannot accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("{what}: length {len} is invalid (allowed {min}..={max})")]
    BadLength {
        what: &'static str,
        len: u64,
        min: u64,
        max: u64,
    },
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("unexpected message type {tag:?} ({context})")]
    UnexpectedMessage { tag: char, context: &'static str },
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
}

/// SQLSTATE codes the page service answers with.
pub mod sqlstate {
    pub const PROTOCOL_VIOLATION: &[u8; 5] = b"08P01";
    pub const CONNECTION_FAILURE: &[u8; 5] = b"08006";
    pub const INVALID_PASSWORD: &[u8; 5] = b"28P01";
    pub const INVALID_AUTHORIZATION: &[u8; 5] = b"28000";
    pub const ADMIN_SHUTDOWN: &[u8; 5] = b"57P01";
    pub const QUERY_CANCELED: &[u8; 5] = b"57014";
    pub const TOO_MANY_CONNECTIONS: &[u8; 5] = b"53300";
    pub const FEATURE_NOT_SUPPORTED: &[u8; 5] = b"0A000";
    pub const SYNTAX_ERROR: &[u8; 5] = b"42601";
    pub const INTERNAL_ERROR: &[u8; 5] = b"XX000";
}
