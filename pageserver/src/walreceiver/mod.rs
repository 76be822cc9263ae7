//! The walreceiver: follows a Postgres primary (or anything that speaks the
//! physical replication protocol) for one timeline.
//!
//! One task per timeline with a WAL source (`PUT .../wal_source`). It loops:
//! connect, check the source (system identifier and timeline must be the
//! timeline's), `START_REPLICATION [SLOT s] PHYSICAL` at the page holding
//! the timeline's last record LSN, decode and ingest what arrives, and send
//! standby status updates — write = ingested (`last_record_lsn`), flush =
//! `disk_consistent_lsn`, apply = `remote_consistent_lsn` (until remote
//! storage exists: `disk_consistent_lsn`) — so a slot only releases WAL the
//! page server has made durable. Connection failures are retried with
//! exponential backoff (100 ms doubling to 10 s, reset after a connection
//! that streamed); a different system, a timeline switch, WAL the source no
//! longer has, and records ingest cannot handle stop the receiver for good,
//! loudly: an error log line, `pageserver_walreceiver_stops_total{reason}`,
//! and the timeline's `walreceiver_status`.
//!
//! Ownership: the [`WalReceiver`] handle lives in its timeline
//! ([`crate::tenant::timeline::Timeline::set_wal_source`]); its task holds
//! the timeline's gate and stops on the timeline's cancellation or on
//! [`WalReceiver::stop`], which the timeline calls before its final flush
//! at shutdown. After a restart the receiver resumes from
//! `disk_consistent_lsn`, re-ingesting what was only in memory.

mod connection;

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use pageserver_api::models::WalSourceConfig;
use prometheus::{register_int_counter_vec, IntCounterVec};
use tokio_util::sync::CancellationToken;
use utils::lsn::Lsn;

use crate::tenant::timeline::Timeline;

pub use connection::StopReason;

/// First retry delay after a failed connection.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest delay between connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

pub static STOPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_walreceiver_stops_total",
        "Walreceivers that stopped for good, by reason",
        &["reason"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

pub static CONNECTION_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pageserver_walreceiver_connection_errors_total",
        "Walreceiver connections that failed and were retried, by kind",
        &["kind"]
    )
    .unwrap_or_else(|e| panic!("metric registration is static: {e}"))
});

/// What the receiver is doing, for `walreceiver_status` and the timeline
/// detail fields.
#[derive(Debug, Clone, Default)]
pub struct ReceiverState {
    pub phase: Phase,
    /// The last error, kept while retrying.
    pub last_error: Option<String>,
    pub last_received_msg_lsn: Option<Lsn>,
    pub last_received_msg_ts: Option<SystemTime>,
    pub connection_attempts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Connecting,
    Streaming {
        since: Lsn,
    },
    WaitingToRetry,
    /// Stopped for good; the reason.
    Stopped(String),
}

impl ReceiverState {
    /// One line for `walreceiver_status`.
    pub fn describe(&self, source: &str) -> String {
        let err = self
            .last_error
            .as_ref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        match &self.phase {
            Phase::Connecting => format!("connecting to {source}{err}"),
            Phase::Streaming { since } => format!("streaming from {source} since {since}"),
            Phase::WaitingToRetry => format!(
                "waiting to reconnect to {source} after {} attempt(s){err}",
                self.connection_attempts
            ),
            Phase::Stopped(reason) => format!("stopped: {reason}"),
        }
    }
}

/// A running receiver.
pub struct WalReceiver {
    pub source: WalSourceConfig,
    /// `source.connstr` without its password.
    pub source_redacted: String,
    state: Arc<Mutex<ReceiverState>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WalReceiver {
    /// Starts following `source` for `tl`. A connection string that does not
    /// parse is refused here, before anything starts.
    pub fn start(tl: Arc<Timeline>, source: WalSourceConfig) -> Result<WalReceiver, String> {
        let cfg = validate_source(&source)?;
        let guard = tl
            .gate
            .enter()
            .map_err(|_| "timeline is shutting down".to_owned())?;
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let cancel = tl.cancel.child_token();
        let task = {
            let state = Arc::clone(&state);
            let cancel = cancel.clone();
            let slot = source.slot_name.clone();
            tokio::spawn(async move {
                let _guard = guard;
                run(tl, cfg, slot, state, cancel).await;
            })
        };
        Ok(WalReceiver {
            source_redacted: redact(&source.connstr),
            source,
            state,
            cancel,
            task,
        })
    }

    pub fn state(&self) -> ReceiverState {
        lock(&self.state).clone()
    }

    pub fn status(&self) -> String {
        self.state().describe(&self.source_redacted)
    }

    /// Stops the task and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!("walreceiver task failed: {e}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks a WAL source before it is stored or used: the connection string
/// parses and the slot name is valid.
pub fn validate_source(source: &WalSourceConfig) -> Result<pq_client::Config, String> {
    let cfg: pq_client::Config = source
        .connstr
        .parse()
        .map_err(|e: pq_client::ClientError| e.to_string())?;
    if let Some(slot) = &source.slot_name {
        pq_client::check_slot_name(slot).map_err(|e| e.to_string())?;
    }
    Ok(cfg)
}

/// A connection string for display: parsed and printed without password;
/// unparsable ones are not shown at all.
pub fn redact(connstr: &str) -> String {
    connstr
        .parse::<pq_client::Config>()
        .map(|c| c.redacted())
        .unwrap_or_else(|_| "<invalid connection string>".to_owned())
}

/// The receiver's life: connections until cancelled or stopped for good.
async fn run(
    tl: Arc<Timeline>,
    cfg: pq_client::Config,
    slot: Option<String>,
    state: Arc<Mutex<ReceiverState>>,
    cancel: CancellationToken,
) {
    let mut backoff = BACKOFF_START;
    loop {
        {
            let mut s = lock(&state);
            s.phase = Phase::Connecting;
            s.connection_attempts += 1;
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            o = connection::stream(&tl, &cfg, slot.as_deref(), &state, &cancel) => o,
        };
        match outcome {
            connection::Outcome::Cancelled => return,
            connection::Outcome::Stop(reason) => {
                let text = reason.to_string();
                tracing::error!(
                    tenant_id = %tl.tenant_shard_id,
                    timeline_id = %tl.timeline_id,
                    source = %cfg.redacted(),
                    "walreceiver stopped: {text}"
                );
                STOPS.with_label_values(&[reason.label()]).inc();
                lock(&state).phase = Phase::Stopped(text);
                return;
            }
            connection::Outcome::Retry { error, streamed } => {
                CONNECTION_ERRORS.with_label_values(&[error.0]).inc();
                tracing::warn!(
                    tenant_id = %tl.tenant_shard_id,
                    timeline_id = %tl.timeline_id,
                    source = %cfg.redacted(),
                    "walreceiver connection ended, retrying in {backoff:?}: {}",
                    error.1
                );
                if streamed {
                    backoff = BACKOFF_START;
                }
                {
                    let mut s = lock(&state);
                    s.phase = Phase::WaitingToRetry;
                    s.last_error = Some(error.1);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
