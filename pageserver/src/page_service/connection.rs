//! One client connection: handshake, authentication, the query loop and the
//! pagestream loop.
//!
//! Errors are contained: a malformed message ends this connection with an
//! `ErrorResponse` (when the socket still takes one) and never affects
//! others. Shutdown: every wait — reading a message, waiting for an LSN,
//! writing to a slow client — is raced against the server's cancellation
//! token, so a client that stops reading cannot hold shutdown up, and no
//! timeline gate is held across socket IO.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use pageserver_api::config::AuthType;
use pageserver_api::pagestream::{ProtocolVersion, Request};
use pq_proto::framed::ReadError;
use pq_proto::{sqlstate, BeMessage, ErrorSeverity, FeMessage, FeStartupPacket, MessageReader};
use std::io::Write as _;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use utils::auth::{check_permission, Claims};
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

use super::commands::{self, Command};
use super::pagestream::{self, RequestError};
use super::PageServiceState;
use crate::basebackup::{self, BackupKind};
use crate::tenant::timeline::Timeline;

/// Largest frontend message accepted (requests are tiny; passwords are JWTs).
const MAX_MESSAGE_LEN: u32 = 1024 * 1024;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("writing to the client: {0}")]
    Write(#[from] std::io::Error),
    #[error("server is shutting down")]
    Shutdown,
    #[error("{0}")]
    Closed(String),
}

/// Answers a connection we will not serve with a FATAL ErrorResponse
/// (SQLSTATE 53300, as Postgres does at `max_connections`) and closes it.
pub async fn refuse(mut socket: tokio::net::TcpStream, message: &str) {
    let mut out = BytesMut::new();
    BeMessage::ErrorResponse {
        severity: ErrorSeverity::Fatal,
        code: sqlstate::TOO_MANY_CONNECTIONS,
        message,
    }
    .write(&mut out);
    let write = async {
        socket.write_all(&out).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), write).await;
}

pub struct Connection<R, W> {
    state: Arc<PageServiceState>,
    reader: MessageReader<R>,
    writer: W,
    out: BytesMut,
    cancel: CancellationToken,
    claims: Option<Claims>,
}

impl<R, W> Connection<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub fn new(state: Arc<PageServiceState>, read: R, write: W, cancel: CancellationToken) -> Self {
        Connection {
            state,
            reader: MessageReader::new(read, MAX_MESSAGE_LEN),
            writer: write,
            out: BytesMut::with_capacity(64 * 1024),
            cancel,
            claims: None,
        }
    }

    /// Writes everything queued, unless shutdown comes first.
    async fn flush(&mut self) -> Result<(), ConnectionError> {
        let out = std::mem::take(&mut self.out);
        let write = async {
            self.writer.write_all(&out).await?;
            self.writer.flush().await
        };
        tokio::select! {
            res = write => res?,
            _ = self.cancel.cancelled() => return Err(ConnectionError::Shutdown),
        }
        self.out = out;
        self.out.clear();
        Ok(())
    }

    fn queue(&mut self, msg: BeMessage<'_>) {
        msg.write(&mut self.out);
    }

    /// Queues an error and flushes it (best effort: the connection may be
    /// going away anyway).
    async fn send_error(&mut self, code: &[u8; 5], message: &str) {
        self.queue(BeMessage::ErrorResponse {
            severity: ErrorSeverity::Error,
            code,
            message,
        });
        let _ = self.flush().await;
    }

    async fn read_message(&mut self) -> Result<Option<FeMessage>, ConnectionError> {
        tokio::select! {
            res = self.reader.read_message() => Ok(res?),
            _ = self.cancel.cancelled() => Err(ConnectionError::Shutdown),
        }
    }

    /// Runs the connection to its end.
    pub async fn run(mut self) -> Result<(), ConnectionError> {
        let result = self.run_inner().await;
        match &result {
            Err(ConnectionError::Shutdown) => {
                // Tell the client why, if its socket still takes it.
                let msg = BeMessage::ErrorResponse {
                    severity: ErrorSeverity::Fatal,
                    code: sqlstate::ADMIN_SHUTDOWN,
                    message: "page server is shutting down",
                }
                .to_bytes();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(100),
                    self.writer.write_all(&msg),
                )
                .await;
            }
            Err(ConnectionError::Read(ReadError::Protocol(e))) => {
                let text = format!("protocol violation: {e}");
                let msg = BeMessage::ErrorResponse {
                    severity: ErrorSeverity::Fatal,
                    code: sqlstate::PROTOCOL_VIOLATION,
                    message: &text,
                }
                .to_bytes();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(100),
                    self.writer.write_all(&msg),
                )
                .await;
            }
            _ => {}
        }
        result
    }

    async fn run_inner(&mut self) -> Result<(), ConnectionError> {
        if !self.handshake().await? {
            return Ok(());
        }
        loop {
            let Some(msg) = self.read_message().await? else {
                return Ok(());
            };
            match msg {
                FeMessage::Query(query) => {
                    self.query(&query).await?;
                    self.queue(BeMessage::ReadyForQuery);
                    self.flush().await?;
                }
                FeMessage::Terminate => return Ok(()),
                FeMessage::Sync | FeMessage::Flush => {
                    self.queue(BeMessage::ReadyForQuery);
                    self.flush().await?;
                }
                FeMessage::Extended(tag) => {
                    let text = format!(
                        "extended query protocol message {:?} is not supported",
                        tag as char
                    );
                    self.send_error(sqlstate::FEATURE_NOT_SUPPORTED, &text)
                        .await;
                    return Err(ConnectionError::Closed(text));
                }
                other => {
                    let text = format!("unexpected message {other:?} outside COPY");
                    self.send_error(sqlstate::PROTOCOL_VIOLATION, &text).await;
                    return Err(ConnectionError::Closed(text));
                }
            }
        }
    }

    /// Startup and authentication. `Ok(false)` when the client went away
    /// (or only wanted to cancel).
    async fn handshake(&mut self) -> Result<bool, ConnectionError> {
        let params = loop {
            let packet = tokio::select! {
                res = self.reader.read_startup() => res?,
                _ = self.cancel.cancelled() => return Err(ConnectionError::Shutdown),
            };
            match packet {
                None => return Ok(false),
                Some(FeStartupPacket::SslRequest) | Some(FeStartupPacket::GssEncRequest) => {
                    // No TLS on this listener: decline, the client may go on
                    // in plain text.
                    self.queue(BeMessage::EncryptionResponse(false));
                    self.flush().await?;
                }
                // Cancellation of running queries is not supported: every
                // request is short or bounded by its own timeout.
                Some(FeStartupPacket::CancelRequest(_)) => return Ok(false),
                Some(FeStartupPacket::Startup { params, .. }) => break params,
            }
        };
        tracing::debug!(application_name = ?params.get("application_name"), "page service startup");
        match self.state.auth_type {
            AuthType::Trust => {}
            AuthType::NeonJWT => {
                self.queue(BeMessage::AuthenticationCleartextPassword);
                self.flush().await?;
                let token = match self.read_message().await? {
                    Some(FeMessage::Password(body)) => pq_proto::frontend::parse_password(&body)
                        .map_err(|e| ConnectionError::Read(ReadError::Protocol(e)))?,
                    Some(other) => {
                        let text = format!("expected a password message, got {other:?}");
                        self.send_error(sqlstate::PROTOCOL_VIOLATION, &text).await;
                        return Err(ConnectionError::Closed(text));
                    }
                    None => return Ok(false),
                };
                let claims = self
                    .state
                    .auth
                    .as_ref()
                    .ok_or_else(|| {
                        ConnectionError::Closed("NeonJWT auth without a public key".to_owned())
                    })
                    .and_then(|auth| {
                        auth.decode(&token)
                            .map_err(|e| ConnectionError::Closed(e.to_string()))
                    });
                match claims {
                    Ok(claims) => self.claims = Some(claims),
                    Err(e) => {
                        self.send_error(sqlstate::INTERNAL_ERROR, "JWT authentication error")
                            .await;
                        return Err(e);
                    }
                }
            }
        }
        self.queue(BeMessage::AuthenticationOk);
        for (name, value) in [
            ("client_encoding", "UTF8"),
            ("integer_datetimes", "on"),
            ("server_version", "14.1"),
        ] {
            self.queue(BeMessage::ParameterStatus { name, value });
        }
        self.queue(BeMessage::ReadyForQuery);
        self.flush().await?;
        Ok(true)
    }

    fn check_permission(&self, tenant_id: TenantId) -> Result<(), String> {
        match (&self.state.auth_type, &self.claims) {
            (AuthType::Trust, _) => Ok(()),
            (AuthType::NeonJWT, Some(claims)) => {
                check_permission(claims, Some(tenant_id)).map_err(|e| e.to_string())
            }
            (AuthType::NeonJWT, None) => Err("not authenticated".to_owned()),
        }
    }

    /// Runs one simple query; the caller appends ReadyForQuery.
    async fn query(&mut self, query: &str) -> Result<(), ConnectionError> {
        let command = match commands::parse(query) {
            Ok(c) => c,
            Err(e) => {
                self.queue(BeMessage::ErrorResponse {
                    severity: ErrorSeverity::Error,
                    code: sqlstate::INTERNAL_ERROR,
                    message: &e.to_string(),
                });
                return Ok(());
            }
        };
        let tenant = match &command {
            Command::Pagestream { tenant_id, .. }
            | Command::Basebackup { tenant_id, .. }
            | Command::Fullbackup { tenant_id, .. } => Some(*tenant_id),
            Command::LeaseLsn {
                tenant_shard_id, ..
            } => Some(tenant_shard_id.tenant_id),
            Command::Set => None,
        };
        if let Some(tenant_id) = tenant {
            if let Err(e) = self.check_permission(tenant_id) {
                self.queue(BeMessage::ErrorResponse {
                    severity: ErrorSeverity::Error,
                    code: sqlstate::INVALID_AUTHORIZATION,
                    message: &format!("permission denied: {e}"),
                });
                return Ok(());
            }
        }
        match command {
            Command::Set => self.queue(BeMessage::CommandComplete("SELECT 1")),
            Command::Pagestream {
                version,
                tenant_id,
                timeline_id,
            } => {
                let Some(tl) = self
                    .lookup(TenantShardId::unsharded(tenant_id), timeline_id)
                    .await
                else {
                    return Ok(());
                };
                self.pagestream(version, tl).await?;
            }
            Command::LeaseLsn {
                tenant_shard_id,
                timeline_id,
                lsn,
            } => {
                let Some(tl) = self.lookup(tenant_shard_id, timeline_id).await else {
                    return Ok(());
                };
                let until = (lsn >= tl.get_gc_cutoff_lsn()).then(|| {
                    let until = std::time::SystemTime::now() + tl.conf().lsn_lease_length;
                    tl.add_lease(lsn, until);
                    until
                });
                let millis = until.map(|u| {
                    u.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis())
                        .to_string()
                });
                let fields = [pq_proto::FieldDescription::text("valid_until")];
                self.queue(BeMessage::RowDescription(&fields));
                self.queue(BeMessage::DataRow(&[millis.as_deref().map(str::as_bytes)]));
                self.queue(BeMessage::CommandComplete("SELECT 1"));
            }
            Command::Basebackup {
                tenant_id,
                timeline_id,
                lsn,
                gzip,
                replica: _,
            } => {
                self.backup(tenant_id, timeline_id, lsn, None, BackupKind::Lazy, gzip)
                    .await?
            }
            Command::Fullbackup {
                tenant_id,
                timeline_id,
                lsn,
                prev_lsn,
            } => {
                self.backup(
                    tenant_id,
                    timeline_id,
                    lsn,
                    prev_lsn,
                    BackupKind::Full,
                    false,
                )
                .await?
            }
        }
        Ok(())
    }

    /// `basebackup` / `fullbackup`: CopyOutResponse, the tar stream in
    /// CopyData messages (gzip-compressed on request), CopyDone and
    /// CommandComplete; an error after the stream started ends it with an
    /// ErrorResponse instead, which clients notice after the tar.
    async fn backup(
        &mut self,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        lsn: Option<Lsn>,
        prev_lsn: Option<Lsn>,
        kind: BackupKind,
        gzip: bool,
    ) -> Result<(), ConnectionError> {
        let Some(tl) = self
            .lookup(TenantShardId::unsharded(tenant_id), timeline_id)
            .await
        else {
            return Ok(());
        };
        let lsn = match self.backup_lsn(&tl, lsn).await {
            Ok(lsn) => lsn,
            Err(message) => {
                self.queue(BeMessage::ErrorResponse {
                    severity: ErrorSeverity::Error,
                    code: sqlstate::INTERNAL_ERROR,
                    message: &message,
                });
                return Ok(());
            }
        };
        let prev_lsn = prev_lsn.or_else(|| {
            (lsn == tl.get_last_record_lsn())
                .then(|| tl.get_prev_record_lsn())
                .flatten()
        });
        self.queue(BeMessage::CopyOutResponse);
        self.flush().await?;
        let started = Instant::now();
        let (mut tar_out, tar_in) = tokio::io::duplex(1 << 20);
        let produce = basebackup::send_basebackup(&tl, lsn, prev_lsn, kind, tar_in);
        let consume = async {
            let mut buf = vec![0u8; 256 * 1024];
            let mut gz = gzip
                .then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
            let mut sent = 0u64;
            loop {
                let n = tar_out.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                sent += n as u64;
                match gz.as_mut() {
                    Some(enc) => {
                        enc.write_all(&buf[..n])?;
                        if enc.get_ref().len() >= 128 * 1024 {
                            let chunk = std::mem::take(enc.get_mut());
                            self.queue(BeMessage::CopyData(&chunk));
                            self.flush().await?;
                        }
                    }
                    None => {
                        self.queue(BeMessage::CopyData(&buf[..n]));
                        self.flush().await?;
                    }
                }
            }
            if let Some(enc) = gz {
                let rest = enc.finish()?;
                self.queue(BeMessage::CopyData(&rest));
                self.flush().await?;
            }
            Ok::<u64, ConnectionError>(sent)
        };
        let (produced, consumed) = tokio::join!(produce, consume);
        let sent = consumed?;
        match produced {
            Ok(()) => {
                self.queue(BeMessage::CopyDone);
                self.queue(BeMessage::CommandComplete("SELECT 1"));
                tracing::info!(
                    %timeline_id, %lsn, ?kind, gzip, bytes = sent,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "sent basebackup"
                );
            }
            Err(e) => {
                tracing::warn!(%timeline_id, %lsn, "basebackup failed: {e}");
                self.queue(BeMessage::ErrorResponse {
                    severity: ErrorSeverity::Error,
                    code: sqlstate::INTERNAL_ERROR,
                    message: &format!("basebackup failed: {e}"),
                });
            }
        }
        Ok(())
    }

    /// The LSN a backup is taken at: the requested one once ingested (it
    /// must be readable), else the last record LSN (waiting for the
    /// minimum readable LSN if the timeline is still catching up).
    async fn backup_lsn(&self, tl: &Timeline, lsn: Option<Lsn>) -> Result<Lsn, String> {
        let timeout = tl.resources.settings.wait_lsn_timeout;
        let readable = tl.min_readable_lsn();
        let target = lsn.unwrap_or(readable);
        let wait = tl.wait_lsn(target.max(readable), timeout);
        tokio::select! {
            r = wait => r.map_err(|e| format!("invalid basebackup lsn: {e}"))?,
            _ = self.cancel.cancelled() => return Err("server is shutting down".to_owned()),
        }
        match lsn {
            Some(l) if l < readable && !tl.is_leased(l) => Err(format!(
                "invalid basebackup lsn {l}: below the minimum readable LSN {readable}"
            )),
            Some(l) if l < tl.ancestor_lsn => Err(format!(
                "invalid basebackup lsn {l}: below the timeline's branch point {}",
                tl.ancestor_lsn
            )),
            Some(l) => Ok(l),
            None => Ok(tl.get_last_record_lsn()),
        }
    }

    /// The timeline, or an ErrorResponse queued and `None`.
    async fn lookup(
        &mut self,
        id: TenantShardId,
        timeline_id: TimelineId,
    ) -> Option<Arc<Timeline>> {
        match self.state.tenants.get_timeline(id, timeline_id).await {
            Ok(tl) => Some(tl),
            Err(e) => {
                self.queue(BeMessage::ErrorResponse {
                    severity: ErrorSeverity::Error,
                    code: sqlstate::INTERNAL_ERROR,
                    message: &format!("Not found: {e}"),
                });
                None
            }
        }
    }

    async fn pagestream(
        &mut self,
        version: ProtocolVersion,
        tl: Arc<Timeline>,
    ) -> Result<(), ConnectionError> {
        self.queue(BeMessage::CopyBothResponse);
        self.flush().await?;
        let max_batch = self.state.max_batch_size;
        loop {
            let Some(first) = self.next_request(version).await? else {
                return Ok(());
            };
            let mut batch = vec![first];
            // Batch what the client has already sent: consecutive GetPage
            // requests, served as one vectored read per read LSN.
            while batch.len() < max_batch
                && matches!(batch[0].0, Request::GetPage { .. })
                && self.reader.has_buffered_message()
            {
                match self.next_request(version).await? {
                    Some(next) => batch.push(next),
                    None => break,
                }
            }
            crate::metrics::PAGESTREAM_BATCH_SIZE.observe(batch.len() as f64);
            self.serve_batch(version, &tl, batch).await?;
        }
    }

    /// The next request of the stream; `None` when the client ends it.
    async fn next_request(
        &mut self,
        version: ProtocolVersion,
    ) -> Result<Option<(Request, Instant)>, ConnectionError> {
        match self.read_message().await? {
            Some(FeMessage::CopyData(body)) => {
                let arrived = Instant::now();
                match Request::parse(version, body) {
                    Ok(req) => Ok(Some((req, arrived))),
                    Err(e) => {
                        let text = format!("malformed pagestream request: {e}");
                        self.send_error(sqlstate::INTERNAL_ERROR, &text).await;
                        Err(ConnectionError::Closed(text))
                    }
                }
            }
            Some(FeMessage::Terminate) | None => Ok(None),
            Some(other) => {
                let text = format!("unexpected message {other:?} in a pagestream");
                self.send_error(sqlstate::PROTOCOL_VIOLATION, &text).await;
                Err(ConnectionError::Closed(text))
            }
        }
    }

    async fn serve_batch(
        &mut self,
        version: ProtocolVersion,
        tl: &Timeline,
        batch: Vec<(Request, Instant)>,
    ) -> Result<(), ConnectionError> {
        let mut results = Vec::with_capacity(batch.len());
        let mut i = 0;
        while i < batch.len() {
            let (req, _) = &batch[i];
            let lsn = match pagestream::effective_lsn(tl, req.header()).await {
                Ok(lsn) => lsn,
                Err(e) => {
                    results.push(Err(e));
                    i += 1;
                    continue;
                }
            };
            if !matches!(req, Request::GetPage { .. }) {
                results.push(pagestream::other_request(tl, req).await);
                i += 1;
                continue;
            }
            // The run of GetPage requests at this same read LSN.
            let mut j = i + 1;
            while j < batch.len() && matches!(batch[j].0, Request::GetPage { .. }) {
                match pagestream::effective_lsn(tl, batch[j].0.header()).await {
                    Ok(l) if l == lsn => j += 1,
                    _ => break,
                }
            }
            let run: Vec<Request> = batch[i..j].iter().map(|(r, _)| r.clone()).collect();
            let waited = tl.throttle_page_reads(run.len() as u32).await;
            if !waited.is_zero() {
                crate::metrics::PAGE_SERVICE_THROTTLED
                    .inc_by(waited.as_micros().try_into().unwrap_or(u64::MAX));
            }
            results.extend(pagestream::get_pages(tl, lsn, &run).await);
            i = j;
        }
        // Room for every page of the batch (response header: under 64 bytes),
        // so encoding never regrows the buffer.
        self.out
            .reserve(batch.len() * (pageserver_api::pagestream::PAGE_SIZE + 64));
        for ((req, _), result) in batch.iter().zip(&results) {
            if let Err(RequestError::Fatal { code, message }) = result {
                self.send_error(code, message).await;
                return Err(ConnectionError::Closed(message.clone()));
            }
            pagestream::encode(version, req.header(), result, &mut self.out);
        }
        self.flush().await?;
        for (req, arrived) in &batch {
            pagestream::observe(pagestream::request_name(req), *arrived);
        }
        Ok(())
    }
}
