//! The page server's public data types: the `pageserver.toml` schema with its
//! defaults ([`config`]), and the JSON models of the HTTP management API
//! ([`models`]). Shared by the server and by tools that drive it, so both sides
//! agree on field names and shapes (which follow Neon's for compatibility).

pub mod config;
pub mod key;
pub mod models;
pub mod tenant_config;
