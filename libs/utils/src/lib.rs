//! Small building blocks shared by every crate of the page server: identifiers
//! (`TenantId`, `TimelineId`, shard ids, `NodeId`), `Lsn`, `Generation`,
//! crash-safe file writes, the pid-file lock, JWT validation, shutdown gates and
//! failpoints.
//!
//! Nothing here knows about tenants' contents or storage: these are the types and
//! helpers that both the API models (`pageserver_api`) and the server use.

pub mod auth;
pub mod crashsafe;
pub mod failpoint;
pub mod gate;
pub mod generation;
pub mod id;
pub mod lsn;
pub mod pid_file;
pub mod shard;
