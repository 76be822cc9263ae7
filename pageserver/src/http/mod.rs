//! The HTTP management API (hyper 1) on `listen_http_addr`.
//!
//! [`server`] accepts connections until cancelled and holds a gate guard per
//! connection so shutdown can wait for in-flight requests; [`router`] matches a
//! request to a route, enforces JWT auth, records metrics and turns handler
//! errors into `{"msg": ...}` responses ([`error`]); [`routes`] holds the
//! handlers. The route table is the source of truth for `openapi_spec.yml`
//! (a test checks they agree).

pub mod error;
pub mod router;
pub mod routes;
pub mod server;

pub use router::HttpState;
