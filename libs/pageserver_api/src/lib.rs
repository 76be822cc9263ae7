//! The page server's public data types, shared by the server and by tools
//! that drive it so both sides agree on names, shapes and encodings (which
//! follow Neon's for compatibility):
//!
//! - [`config`], [`tenant_config`], [`models`]: the `pageserver.toml` schema
//!   and the JSON models of the HTTP management API.
//! - [`key`], [`reltag`]: keys naming pages and metadata, and the Postgres
//!   relation/SLRU names they are built from.
//! - [`keyspace`]: sets of keys as range lists.
//! - [`shard`]: which shard stores which key.
//! - [`value`]: the values stored under keys and their binary format.

pub mod config;
pub mod key;
pub mod keyspace;
pub mod models;
pub mod pagestream;
pub mod reltag;
pub mod shard;
pub mod tenant_config;
pub mod value;
