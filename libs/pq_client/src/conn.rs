//! One client connection: transport (TCP or Unix socket), startup and
//! authentication (trust, cleartext password, MD5, SCRAM-SHA-256), simple
//! queries with text results, and the framing of COPY sub-protocols.
//!
//! Message reading is cancel-safe: bytes are read into the connection's own
//! buffer and a message is taken out only once it is complete, so a caller
//! may drop a pending [`Connection::read_message`] (e.g. in a `select!`
//! with a timer) without losing data.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::{self, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Config, Host};
use crate::ClientError;

/// Default time allowed for connect + startup when the connection string
/// gives none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest backend message we accept (a WAL or base backup chunk is far
/// smaller); a bigger length means a broken stream.
const MAX_MESSAGE_LEN: usize = 256 << 20;

trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// What the server sent, as the connection hands it out.
pub enum BackendMessage {
    Message(Message),
    /// `CopyBothResponse` (not decoded by postgres-protocol).
    CopyBothResponse,
}

impl std::fmt::Debug for BackendMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendMessage::Message(m) => f.write_str(message_name(m)),
            BackendMessage::CopyBothResponse => f.write_str("CopyBothResponse"),
        }
    }
}

/// A text result set of a simple query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// The command tag (`SELECT 1`, `CREATE_REPLICATION_SLOT`, …).
    pub tag: String,
}

impl QueryResult {
    /// The value of `column` in row `row`, if present and not NULL.
    pub fn get(&self, row: usize, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(i)?.as_deref()
    }
}

/// An open, authenticated connection.
pub struct Connection {
    stream: Box<dyn Transport>,
    buf: BytesMut,
    out: BytesMut,
    address: String,
    /// `ParameterStatus` values the server reported.
    pub server_params: Vec<(String, String)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.address)
    }
}

impl Connection {
    /// Connects and authenticates; `extra` startup parameters (such as
    /// `replication=true`) are sent after user, database and application
    /// name.
    pub async fn connect(cfg: &Config, extra: &[(&str, &str)]) -> Result<Connection, ClientError> {
        let timeout = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        tokio::time::timeout(timeout, Self::connect_inner(cfg, extra))
            .await
            .map_err(|_| ClientError::Connect {
                address: cfg.address(),
                reason: format!("timed out after {timeout:?}"),
            })?
    }

    async fn connect_inner(
        cfg: &Config,
        extra: &[(&str, &str)],
    ) -> Result<Connection, ClientError> {
        let address = cfg.address();
        let connect_err = |e: std::io::Error| ClientError::Connect {
            address: address.clone(),
            reason: e.to_string(),
        };
        let stream: Box<dyn Transport> = match &cfg.host {
            Host::Tcp(h) => {
                let s = tokio::net::TcpStream::connect((h.as_str(), cfg.port))
                    .await
                    .map_err(connect_err)?;
                s.set_nodelay(true).map_err(connect_err)?;
                Box::new(s)
            }
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{}", cfg.port));
                Box::new(
                    tokio::net::UnixStream::connect(&path)
                        .await
                        .map_err(connect_err)?,
                )
            }
        };
        let mut conn = Connection {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
            address,
            server_params: Vec::new(),
        };
        let mut params: Vec<(&str, &str)> = vec![("user", cfg.user.as_str())];
        if let Some(db) = &cfg.dbname {
            params.push(("database", db));
        }
        if let Some(app) = &cfg.application_name {
            params.push(("application_name", app));
        }
        if let Some(opts) = &cfg.options {
            params.push(("options", opts));
        }
        params.extend_from_slice(extra);
        frontend::startup_message(params.iter().copied(), &mut conn.out)?;
        conn.flush().await?;
        conn.authenticate(cfg).await?;
        // ParameterStatus / BackendKeyData until ReadyForQuery.
        loop {
            match conn.read_message().await? {
                BackendMessage::Message(Message::ReadyForQuery(_)) => return Ok(conn),
                BackendMessage::Message(Message::BackendKeyData(_)) => {}
                BackendMessage::Message(Message::ErrorResponse(e)) => return Err(server_error(&e)),
                other => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected message during startup: {other:?}"
                    )))
                }
            }
        }
    }

    async fn authenticate(&mut self, cfg: &Config) -> Result<(), ClientError> {
        let password = || {
            cfg.password.as_deref().ok_or_else(|| {
                ClientError::Auth("the server asks for a password, none given".into())
            })
        };
        match self.read_message().await? {
            BackendMessage::Message(Message::AuthenticationOk) => return Ok(()),
            BackendMessage::Message(Message::AuthenticationCleartextPassword) => {
                frontend::password_message(password()?.as_bytes(), &mut self.out)?;
                self.flush().await?;
            }
            BackendMessage::Message(Message::AuthenticationMd5Password(body)) => {
                let hash = postgres_protocol::authentication::md5_hash(
                    cfg.user.as_bytes(),
                    password()?.as_bytes(),
                    body.salt(),
                );
                frontend::password_message(hash.as_bytes(), &mut self.out)?;
                self.flush().await?;
            }
            BackendMessage::Message(Message::AuthenticationSasl(body)) => {
                let mut mechanisms = body.mechanisms();
                let mut scram_ok = false;
                while let Some(m) = mechanisms.next()? {
                    scram_ok |= m == SCRAM_SHA_256;
                }
                if !scram_ok {
                    return Err(ClientError::Auth(
                        "the server offers no SASL mechanism this client supports".into(),
                    ));
                }
                self.scram(password()?).await?;
            }
            BackendMessage::Message(Message::ErrorResponse(e)) => return Err(server_error(&e)),
            other => {
                return Err(ClientError::Auth(format!(
                    "unsupported authentication request: {other:?}"
                )))
            }
        }
        match self.read_message().await? {
            BackendMessage::Message(Message::AuthenticationOk) => Ok(()),
            BackendMessage::Message(Message::ErrorResponse(e)) => Err(server_error(&e)),
            other => Err(ClientError::Auth(format!(
                "unexpected message after the password: {other:?}"
            ))),
        }
    }

    async fn scram(&mut self, password: &str) -> Result<(), ClientError> {
        let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), &mut self.out)?;
        self.flush().await?;
        match self.read_message().await? {
            BackendMessage::Message(Message::AuthenticationSaslContinue(body)) => {
                scram
                    .update(body.data())
                    .map_err(|e| ClientError::Auth(format!("SCRAM: {e}")))?;
            }
            BackendMessage::Message(Message::ErrorResponse(e)) => return Err(server_error(&e)),
            other => {
                return Err(ClientError::Auth(format!(
                    "SCRAM: unexpected message {other:?}"
                )))
            }
        }
        frontend::sasl_response(scram.message(), &mut self.out)?;
        self.flush().await?;
        match self.read_message().await? {
            BackendMessage::Message(Message::AuthenticationSaslFinal(body)) => scram
                .finish(body.data())
                .map_err(|e| ClientError::Auth(format!("SCRAM: server signature: {e}"))),
            BackendMessage::Message(Message::ErrorResponse(e)) => Err(server_error(&e)),
            other => Err(ClientError::Auth(format!(
                "SCRAM: unexpected message {other:?}"
            ))),
        }
    }

    /// Writes whatever is queued in the output buffer.
    pub(crate) async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            let out = self.out.split();
            self.stream.write_all(&out).await?;
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Queues a CopyData message with `data` and sends it.
    pub(crate) async fn send_copy_data(&mut self, data: &[u8]) -> Result<(), ClientError> {
        frontend::CopyData::new(data)?.write(&mut self.out);
        self.flush().await
    }

    /// Sends CopyDone.
    pub(crate) async fn send_copy_done(&mut self) -> Result<(), ClientError> {
        frontend::copy_done(&mut self.out);
        self.flush().await
    }

    /// The next message, skipping notices and recording parameter changes.
    /// Cancel-safe (see the module documentation).
    pub async fn read_message(&mut self) -> Result<BackendMessage, ClientError> {
        loop {
            if let Some(msg) = self.take_message()? {
                match msg {
                    BackendMessage::Message(Message::NoticeResponse(n)) => {
                        let text = fields_text(n.fields());
                        tracing::debug!(server = %self.address, "notice: {text}");
                    }
                    BackendMessage::Message(Message::ParameterStatus(p)) => {
                        if let (Ok(name), Ok(value)) = (p.name(), p.value()) {
                            self.server_params.retain(|(n, _)| n != name);
                            self.server_params.push((name.to_owned(), value.to_owned()));
                        }
                    }
                    other => return Ok(other),
                }
                continue;
            }
            self.buf.reserve(64 * 1024);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// A complete message from the buffer, if there is one.
    fn take_message(&mut self) -> Result<Option<BackendMessage>, ClientError> {
        let Some(header) = backend::Header::parse(&self.buf)? else {
            return Ok(None);
        };
        let len = header.len() as usize;
        if len > MAX_MESSAGE_LEN {
            return Err(ClientError::Protocol(format!(
                "server message {:?} of {len} bytes is too long",
                header.tag() as char
            )));
        }
        if self.buf.len() < len + 1 {
            return Ok(None);
        }
        if header.tag() == b'W' {
            self.buf.advance(len + 1);
            return Ok(Some(BackendMessage::CopyBothResponse));
        }
        match Message::parse(&mut self.buf)? {
            Some(m) => Ok(Some(BackendMessage::Message(m))),
            None => Ok(None),
        }
    }

    /// Runs a simple query and returns its result sets. A server error is
    /// returned as [`ClientError::Server`] once the server is ready again;
    /// a query that enters COPY mode is a protocol error here.
    pub async fn simple_query(&mut self, query: &str) -> Result<Vec<QueryResult>, ClientError> {
        self.send_query(query).await?;
        let mut results = Vec::new();
        let mut current = QueryResult::default();
        let mut error = None;
        loop {
            match self.read_message().await? {
                BackendMessage::Message(m) => match m {
                    Message::RowDescription(rd) => {
                        current.columns = rd.fields().map(|f| Ok(f.name().to_owned())).collect()?;
                    }
                    Message::DataRow(row) => current.rows.push(data_row(&row)?),
                    Message::CommandComplete(c) => {
                        current.tag = c.tag()?.to_owned();
                        results.push(std::mem::take(&mut current));
                    }
                    Message::EmptyQueryResponse => {}
                    Message::ErrorResponse(e) => error = Some(server_error(&e)),
                    Message::ReadyForQuery(_) => {
                        return match error {
                            Some(e) => Err(e),
                            None => Ok(results),
                        }
                    }
                    other => {
                        return Err(ClientError::Protocol(format!(
                            "unexpected message in a simple query: {}",
                            message_name(&other)
                        )))
                    }
                },
                BackendMessage::CopyBothResponse => {
                    return Err(ClientError::Protocol(
                        "simple query entered COPY BOTH mode".into(),
                    ))
                }
            }
        }
    }

    pub(crate) async fn send_query(&mut self, query: &str) -> Result<(), ClientError> {
        frontend::query(query, &mut self.out)?;
        self.flush().await
    }

    /// Reads result sets up to (not including) a CopyOutResponse or
    /// CopyBothResponse, which it returns with them. An error response (and
    /// the ReadyForQuery after it) ends it with the server's error.
    pub(crate) async fn results_until_copy(
        &mut self,
    ) -> Result<(Vec<QueryResult>, BackendMessage), ClientError> {
        let mut results = Vec::new();
        let mut current = QueryResult::default();
        loop {
            match self.read_message().await? {
                BackendMessage::Message(Message::RowDescription(rd)) => {
                    current.columns = rd.fields().map(|f| Ok(f.name().to_owned())).collect()?;
                }
                BackendMessage::Message(Message::DataRow(row)) => {
                    current.rows.push(data_row(&row)?)
                }
                BackendMessage::Message(Message::CommandComplete(c)) => {
                    current.tag = c.tag()?.to_owned();
                    results.push(std::mem::take(&mut current));
                }
                BackendMessage::Message(Message::ErrorResponse(e)) => {
                    let err = server_error(&e);
                    self.wait_ready().await?;
                    return Err(err);
                }
                m @ (BackendMessage::Message(Message::CopyOutResponse(_))
                | BackendMessage::CopyBothResponse) => {
                    if !current.columns.is_empty() {
                        results.push(current);
                    }
                    return Ok((results, m));
                }
                BackendMessage::Message(other) => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected message before COPY: {}",
                        message_name(&other)
                    )))
                }
            }
        }
    }

    /// Skips to the ReadyForQuery that follows an error.
    async fn wait_ready(&mut self) -> Result<(), ClientError> {
        loop {
            if let BackendMessage::Message(Message::ReadyForQuery(_)) = self.read_message().await? {
                return Ok(());
            }
        }
    }

    /// Sends Terminate and closes the socket.
    pub async fn close(mut self) {
        frontend::terminate(&mut self.out);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    pub fn address(&self) -> &str {
        &self.address
    }
}

fn data_row(row: &backend::DataRowBody) -> Result<Vec<Option<String>>, ClientError> {
    let buf = row.buffer();
    let mut ranges = row.ranges();
    let mut out = Vec::new();
    while let Some(range) = ranges.next()? {
        out.push(match range {
            Some(r) => {
                Some(
                    std::str::from_utf8(buf.get(r).ok_or_else(|| {
                        ClientError::Protocol("data row field out of bounds".into())
                    })?)
                    .map_err(|_| ClientError::Protocol("non-UTF-8 text in a data row".into()))?
                    .to_owned(),
                )
            }
            None => None,
        });
    }
    Ok(out)
}

fn fields_text(mut fields: backend::ErrorFields<'_>) -> String {
    let mut parts = Vec::new();
    while let Ok(Some(f)) = fields.next() {
        if matches!(f.type_(), b'M' | b'D') {
            parts.push(String::from_utf8_lossy(f.value_bytes()).into_owned());
        }
    }
    parts.join(": ")
}

/// The server's error response as a [`ClientError::Server`].
pub(crate) fn server_error(e: &backend::ErrorResponseBody) -> ClientError {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = None;
    let mut fields = e.fields();
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = v,
            b'M' => message = v,
            b'D' => detail = Some(v),
            _ => {}
        }
    }
    ClientError::Server {
        code,
        message,
        detail,
    }
}

fn message_name(m: &Message) -> &'static str {
    match m {
        Message::AuthenticationOk => "AuthenticationOk",
        Message::AuthenticationCleartextPassword => "AuthenticationCleartextPassword",
        Message::AuthenticationMd5Password(_) => "AuthenticationMd5Password",
        Message::AuthenticationSasl(_) => "AuthenticationSasl",
        Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => "AuthenticationGss",
        Message::AuthenticationKerberosV5 => "AuthenticationKerberosV5",
        Message::AuthenticationSspi => "AuthenticationSspi",
        Message::AuthenticationScmCredential => "AuthenticationScmCredential",
        Message::ErrorResponse(_) => "ErrorResponse",
        Message::NoticeResponse(_) => "NoticeResponse",
        Message::ParameterStatus(_) => "ParameterStatus",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::CopyData(_) => "CopyData",
        Message::CopyDone => "CopyDone",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::DataRow(_) => "DataRow",
        Message::RowDescription(_) => "RowDescription",
        Message::CommandComplete(_) => "CommandComplete",
        _ => "other message",
    }
}

/// Bytes of a CopyData body, as an owned buffer.
pub(crate) fn copy_data_bytes(body: backend::CopyDataBody) -> Bytes {
    body.into_bytes()
}
