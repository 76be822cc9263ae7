//! The libpq front end on `listen_pg_addr`: what computes and tools use to
//! read pages (`pagestream_v2|v3`), and later to fetch base backups.
//!
//! [`serve`] accepts connections until cancelled; each runs in its own task
//! holding a guard of the page service's gate, so shutdown cancels them and
//! then waits for all of them. A connection's failure is logged and ends
//! only that connection. Protocol details: [`connection`]; command syntax:
//! [`commands`]; request semantics and batching: [`pagestream`].

pub mod commands;
pub mod connection;
pub mod pagestream;

use std::sync::Arc;

use pageserver_api::config::{AuthType, PageServicePipelining};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utils::auth::JwtAuth;
use utils::gate::Gate;

use crate::config::PageServerConf;
use crate::tenant::mgr::TenantManager;
use connection::{Connection, ConnectionError};

pub struct PageServiceState {
    pub tenants: Arc<TenantManager>,
    pub auth_type: AuthType,
    pub auth: Option<Arc<JwtAuth>>,
    /// Most GetPage requests served as one vectored read.
    pub max_batch_size: usize,
    /// One permit per open connection (`page_service_max_connections`).
    pub connection_slots: Arc<tokio::sync::Semaphore>,
}

impl PageServiceState {
    pub fn new(
        conf: &PageServerConf,
        tenants: Arc<TenantManager>,
        auth: Option<Arc<JwtAuth>>,
    ) -> PageServiceState {
        let max_batch_size = match conf.toml.page_service_pipelining {
            PageServicePipelining::Serial => 1,
            PageServicePipelining::Pipelined { max_batch_size, .. } => max_batch_size.get(),
        };
        PageServiceState {
            tenants,
            auth_type: conf.pg_auth_type,
            auth,
            max_batch_size,
            connection_slots: Arc::new(tokio::sync::Semaphore::new(
                conf.toml.page_service_max_connections,
            )),
        }
    }
}

/// Accepts connections until `cancel`; returns once every connection task
/// has ended (they watch the same token).
pub async fn serve(
    listener: TcpListener,
    state: Arc<PageServiceState>,
    cancel: CancellationToken,
    gate: Arc<Gate>,
) {
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = cancel.cancelled() => break,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically out of file descriptors: back off a little
                // rather than spinning.
                tracing::warn!("page service accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(guard) = gate.enter() else {
            break;
        };
        let _ = socket.set_nodelay(true);
        let state = Arc::clone(&state);
        let cancel = cancel.clone();
        let Ok(slot) = Arc::clone(&state.connection_slots).try_acquire_owned() else {
            tracing::warn!(%peer, "page service connection refused: too many connections");
            crate::metrics::PAGE_SERVICE_REFUSED.inc();
            tokio::spawn(async move {
                let _guard = guard;
                connection::refuse(socket, "too many page service connections").await;
            });
            continue;
        };
        crate::metrics::PAGE_SERVICE_CONNECTIONS.inc();
        tokio::spawn(async move {
            let _guard = guard;
            let _slot = slot;
            let (read, write) = socket.into_split();
            let result = Connection::new(state, read, write, cancel).run().await;
            crate::metrics::PAGE_SERVICE_CONNECTIONS.dec();
            match result {
                Ok(()) | Err(ConnectionError::Shutdown) => {}
                Err(e) => tracing::info!(%peer, "page service connection ended: {e}"),
            }
        });
    }
    gate.close().await;
}
