//! The HTTP management API (hyper 1) on `listen_http_addr`.
//!
//! [`server`] accepts connections until cancelled and holds a gate guard per
//! connection so shutdown can wait for in-flight requests; [`router`] matches a
//! request to a route, enforces JWT auth, records metrics and turns handler
//! errors into `{"msg": ...}` responses ([`error`]); [`routes`] holds the
//! route table and the tenant/timeline handlers, [`storage_routes`] those
//! that work on a timeline's data. The route table is the source of truth for `openapi_spec.yml`
//! (a test checks they agree).

pub mod error;
pub mod router;
pub mod routes;
pub mod server;
pub mod storage_routes;

pub use router::HttpState;
