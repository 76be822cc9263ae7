//! One replication connection of the walreceiver: from connecting to the
//! end of the stream.
//!
//! The stream starts at the beginning of the WAL page holding the
//! timeline's last record LSN; the decoder skips the tail of a record
//! continued from an earlier page and ingest skips records that end at or
//! below what the timeline has. Every `XLogData` message must start where
//! the previous one ended (a gap is refused), and the WAL's page headers
//! must stay on the timeline's Postgres timeline. After each message the
//! ingested records are committed, so `last_record_lsn` moves with the
//! stream; a status update goes out when the server asks for one, every
//! [`STATUS_INTERVAL`], and when `disk_consistent_lsn` moves. When the
//! server asks for a reply and the flush position lags, the in-memory data
//! is flushed first: a primary's shutdown waits for the flush position to
//! reach its end of WAL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use postgres_ffi::wal::{WalDecoderConfig, WalRecord, WalSegmentSize, WalStreamDecoder};
use postgres_ffi::{PgMajorVersion, XLOG_BLCKSZ};
use pq_client::{ClientError, ReplicationConnection, ReplicationMessage};
use tokio_util::sync::CancellationToken;
use utils::lsn::Lsn;

use super::{lock, Phase, ReceiverState};
use crate::pgdatadir_mapping::DatadirView;
use crate::tenant::timeline::Timeline;
use crate::walingest::{Ingest, IngestStep};

/// How often a status update is sent without being asked.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Why a receiver stopped for good.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StopReason {
    #[error(
        "the source is a different cluster: system identifier {found}, the timeline's is {ours}"
    )]
    OtherSystem { found: u64, ours: u64 },
    #[error(
        "timeline switch: the source is on Postgres timeline {found}, this timeline follows \
         timeline {ours}; following a switch is not supported"
    )]
    TimelineSwitch { found: u32, ours: u32 },
    #[error("the source does not have the WAL this timeline needs next ({0})")]
    WalGone(String),
    #[error("WAL gap: expected WAL at {expected}, the source sent WAL from {got}")]
    Gap { expected: Lsn, got: Lsn },
    #[error("WAL ingest stopped: {0}")]
    Ingest(String),
    #[error("the timeline holds no Postgres cluster to follow: {0}")]
    NoCluster(String),
    #[error("invalid source: {0}")]
    BadSource(String),
}

impl StopReason {
    pub fn label(&self) -> &'static str {
        match self {
            StopReason::OtherSystem { .. } => "other_system",
            StopReason::TimelineSwitch { .. } => "timeline_switch",
            StopReason::WalGone(_) => "wal_gone",
            StopReason::Gap { .. } => "gap",
            StopReason::Ingest(_) => "ingest",
            StopReason::NoCluster(_) => "no_cluster",
            StopReason::BadSource(_) => "bad_source",
        }
    }
}

/// How a connection ended.
pub enum Outcome {
    Cancelled,
    Stop(StopReason),
    /// Retry later: (metric kind, message), and whether WAL was received.
    Retry {
        error: (&'static str, String),
        streamed: bool,
    },
}

fn retry(kind: &'static str, e: impl std::fmt::Display, streamed: bool) -> Outcome {
    Outcome::Retry {
        error: (kind, e.to_string()),
        streamed,
    }
}

/// What the timeline's cluster tells us about the WAL to expect.
struct ClusterIdentity {
    system_id: u64,
    pg_timeline: u32,
    segment_size: WalSegmentSize,
}

async fn identity(tl: &Timeline) -> Result<ClusterIdentity, StopReason> {
    let view = DatadirView::new(tl, tl.get_last_record_lsn());
    let cf = view
        .control_file()
        .await
        .map_err(|e| StopReason::NoCluster(e.to_string()))?;
    let cp = view
        .checkpoint()
        .await
        .map_err(|e| StopReason::NoCluster(e.to_string()))?;
    let segment_size = WalSegmentSize::new(cf.xlog_seg_size)
        .map_err(|e| StopReason::NoCluster(format!("control file: {e}")))?;
    Ok(ClusterIdentity {
        system_id: cf.system_identifier,
        pg_timeline: cp.this_timeline_id,
        segment_size,
    })
}

/// Server errors that mean the source will never have the WAL we need.
fn is_wal_gone(e: &ClientError) -> bool {
    matches!(e, ClientError::Server { message, .. }
        if message.contains("has already been removed")
            || message.contains("ahead of the WAL flush position")
            || message.contains("is not in this server's history"))
}

/// Connects and streams until the connection ends.
pub async fn stream(
    tl: &Arc<Timeline>,
    cfg: &pq_client::Config,
    slot: Option<&str>,
    state: &Arc<Mutex<ReceiverState>>,
    cancel: &CancellationToken,
) -> Outcome {
    let id = match identity(tl).await {
        Ok(id) => id,
        Err(e) => return Outcome::Stop(e),
    };
    let mut conn = match ReplicationConnection::connect(cfg).await {
        Ok(c) => c,
        Err(e @ ClientError::Config(_)) => {
            return Outcome::Stop(StopReason::BadSource(e.to_string()))
        }
        Err(e) => return retry("connect", e, false),
    };
    let sys = match conn.identify_system().await {
        Ok(s) => s,
        Err(e) => return retry("identify_system", e, false),
    };
    if sys.system_id != id.system_id {
        return Outcome::Stop(StopReason::OtherSystem {
            found: sys.system_id,
            ours: id.system_id,
        });
    }
    if sys.timeline != id.pg_timeline {
        return Outcome::Stop(StopReason::TimelineSwitch {
            found: sys.timeline,
            ours: id.pg_timeline,
        });
    }
    let mut ingest = match Ingest::new(Arc::clone(tl)).await {
        Ok(i) => i,
        Err(e) => return Outcome::Stop(StopReason::Ingest(e.to_string())),
    };
    let last = ingest.last_lsn();
    let start = Lsn(last.0 - last.0 % XLOG_BLCKSZ as u64);
    let decoder_cfg = WalDecoderConfig::new(PgMajorVersion::V15, id.segment_size)
        .with_system_identifier(id.system_id);
    let mut decoder = match WalStreamDecoder::new(start, decoder_cfg) {
        Ok(d) => d,
        Err(e) => return Outcome::Stop(StopReason::Ingest(format!("WAL decoder at {start}: {e}"))),
    };
    let mut stream = match conn
        .start_physical(slot, start.0, Some(id.pg_timeline))
        .await
    {
        Ok(s) => s,
        Err(e) if is_wal_gone(&e) => return Outcome::Stop(StopReason::WalGone(e.to_string())),
        Err(e) => return retry("start_replication", e, false),
    };
    tracing::info!(
        tenant_id = %tl.tenant_shard_id,
        timeline_id = %tl.timeline_id,
        source = %cfg.redacted(),
        %start,
        "streaming WAL"
    );
    {
        let mut s = lock(state);
        s.phase = Phase::Streaming { since: start };
    }
    let mut expected = start;
    let mut streamed = false;
    let mut ticker = tokio::time::interval(STATUS_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_flush = Lsn(0);
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => {
                // What was ingested is committed; tell the source once more.
                let (w, f) = (tl.get_last_record_lsn(), tl.get_disk_consistent_lsn());
                let _ = stream.send_status(w.0, f.0, f.0, false).await;
                stream.close().await;
                return Outcome::Cancelled;
            }
            _ = ticker.tick() => None,
            m = stream.next() => Some(m),
        };
        let tick = msg.is_none();
        let reply_requested = match msg {
            None => false,
            Some(Err(e)) if is_wal_gone(&e) => {
                return Outcome::Stop(StopReason::WalGone(e.to_string()))
            }
            Some(Err(e)) => return retry("stream", e, streamed),
            Some(Ok(None)) => {
                return retry(
                    "stream",
                    "the source ended the replication stream",
                    streamed,
                )
            }
            Some(Ok(Some(ReplicationMessage::Keepalive {
                reply_requested, ..
            }))) => reply_requested,
            Some(Ok(Some(ReplicationMessage::XLogData { start, data, .. }))) => {
                if Lsn(start) != expected {
                    return Outcome::Stop(StopReason::Gap {
                        expected,
                        got: Lsn(start),
                    });
                }
                expected = Lsn(start + data.len() as u64);
                streamed = true;
                decoder.feed(&data);
                if let Err(stop) = ingest_available(&mut decoder, &mut ingest, id.pg_timeline).await
                {
                    return Outcome::Stop(stop);
                }
                if let Err(e) = ingest.commit().await {
                    return Outcome::Stop(StopReason::Ingest(e.to_string()));
                }
                let mut s = lock(state);
                s.last_received_msg_lsn = Some(expected);
                s.last_received_msg_ts = Some(SystemTime::now());
                false
            }
        };
        // The source asks for a reply when it needs our position to go on,
        // most importantly at its shutdown, which waits until the flush
        // position reaches its end of WAL: make what was ingested durable
        // first, so that the answer lets it finish.
        if reply_requested && tl.get_disk_consistent_lsn() < tl.get_last_record_lsn() {
            if let Err(e) = tl.freeze_and_flush().await {
                return retry("flush", e, streamed);
            }
        }
        let flush = tl.get_disk_consistent_lsn();
        if reply_requested || tick || flush != reported_flush {
            let write = tl.get_last_record_lsn();
            // Remote storage does not exist yet: local disk is what is durable.
            if let Err(e) = stream.send_status(write.0, flush.0, flush.0, false).await {
                return retry("status_update", e, streamed);
            }
            reported_flush = flush;
        }
    }
}

/// Decodes and ingests every complete record the decoder has.
async fn ingest_available(
    decoder: &mut WalStreamDecoder,
    ingest: &mut Ingest,
    pg_timeline: u32,
) -> Result<(), StopReason> {
    // One slot for every record: its buffers are reused from record to
    // record.
    let mut rec = WalRecord::default();
    loop {
        let got = decoder
            .next_record_into(&mut rec)
            .map_err(|e| StopReason::Ingest(format!("decoding WAL: {e}")))?;
        if let Some(tli) = decoder.last_page_tli() {
            if tli != pg_timeline {
                return Err(StopReason::TimelineSwitch {
                    found: tli,
                    ours: pg_timeline,
                });
            }
        }
        if !got {
            return Ok(());
        }
        if let IngestStep::Continue(rest) = ingest
            .ingest_record_now(&rec)
            .map_err(|e| StopReason::Ingest(e.to_string()))?
        {
            ingest
                .ingest_record_rest(&rec, rest)
                .await
                .map_err(|e| StopReason::Ingest(e.to_string()))?;
        }
    }
}
