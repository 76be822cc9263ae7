//! The page server: a multi-tenant storage engine that follows a Postgres
//! primary's WAL and serves pages at any LSN.
//!
//! This crate holds the server's modules; `src/bin/pageserver.rs` wires them
//! into a process. At this stage: configuration ([`config`]), logging
//! ([`logging`]), metrics ([`metrics`]), the tenant/timeline registry with its
//! crash-safe on-disk state ([`tenant`]) and the HTTP management API ([`http`]).

pub mod basebackup;
pub mod config;
pub mod http;
pub mod import_datadir;
pub mod import_postgres;
pub mod logging;
pub mod metrics;
pub mod page_service;
pub mod pgdatadir_mapping;
pub mod tenant;
pub mod walingest;
pub mod walreceiver;
pub mod walredo;
