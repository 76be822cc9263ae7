//! Reading whole messages from a client connection.
//!
//! [`MessageReader`] buffers bytes from an `AsyncRead` and hands out a
//! message only once all of it has arrived. Bytes stay in the buffer until
//! then, so dropping a `read_*` future (e.g. in a `select!` with a shutdown
//! signal) never loses part of a message: the next call resumes where the
//! last one stopped. Lengths are checked against limits before any body is
//! buffered, so a client cannot make the server allocate a huge buffer.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::frontend::{FeMessage, FeStartupPacket, MAX_STARTUP_PACKET_LEN};
use crate::ProtocolError;

/// Why a read ended without a message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("reading from the client: {0}")]
    Io(#[from] std::io::Error),
}

pub struct MessageReader<R> {
    inner: R,
    buf: BytesMut,
    max_message_len: u32,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// `max_message_len` bounds a message body (after startup).
    pub fn new(inner: R, max_message_len: u32) -> Self {
        MessageReader {
            inner,
            buf: BytesMut::with_capacity(8192),
            max_message_len,
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> Result<bool, std::io::Error> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(8192);
        }
        Ok(self.inner.read_buf(&mut self.buf).await? > 0)
    }

    /// The next startup packet; `None` if the client closed the connection
    /// before sending one.
    pub async fn read_startup(&mut self) -> Result<Option<FeStartupPacket>, ReadError> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if !(8..=MAX_STARTUP_PACKET_LEN).contains(&len) {
                    return Err(ProtocolError::BadLength {
                        what: "startup packet",
                        len: len.into(),
                        min: 8,
                        max: MAX_STARTUP_PACKET_LEN.into(),
                    }
                    .into());
                }
                if self.buf.len() >= len as usize {
                    let mut packet = self.buf.split_to(len as usize);
                    packet.advance(4);
                    return Ok(Some(FeStartupPacket::parse(packet.freeze())?));
                }
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtocolError::UnexpectedEof.into())
                };
            }
        }
    }

    /// The next message as (tag, body) without interpreting it; `None` at
    /// a clean end of stream (between messages).
    pub async fn read_raw(&mut self) -> Result<Option<(u8, Bytes)>, ReadError> {
        loop {
            if self.buf.len() >= 5 {
                let tag = self.buf[0];
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let max = self.max_message_len.saturating_add(4);
                if !(4..=max).contains(&len) {
                    return Err(ProtocolError::BadLength {
                        what: "message",
                        len: len.into(),
                        min: 4,
                        max: max.into(),
                    }
                    .into());
                }
                let total = 1 + len as usize;
                if self.buf.len() >= total {
                    let mut msg = self.buf.split_to(total);
                    msg.advance(5);
                    return Ok(Some((tag, msg.freeze())));
                }
                self.buf.reserve(total - self.buf.len());
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtocolError::UnexpectedEof.into())
                };
            }
        }
    }

    /// The next message, parsed.
    pub async fn read_message(&mut self) -> Result<Option<FeMessage>, ReadError> {
        match self.read_raw().await? {
            Some((tag, body)) => Ok(Some(FeMessage::parse(tag, body)?)),
            None => Ok(None),
        }
    }

    /// Whether a complete message is already buffered (a pipelining client
    /// sent more than one): lets a server batch without waiting.
    pub fn has_buffered_message(&self) -> bool {
        if self.buf.len() < 5 {
            return false;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        self.buf.len() > len as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BeMessage;
    use tokio::io::AsyncWriteExt;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn reads_messages_split_at_any_byte() {
        let mut wire = Vec::new();
        let mut startup = Vec::new();
        startup.extend_from_slice(&crate::frontend::PROTOCOL_V3.to_be_bytes());
        startup.extend_from_slice(b"user\0u\0\0");
        wire.extend_from_slice(&((startup.len() + 4) as u32).to_be_bytes());
        wire.extend_from_slice(&startup);
        wire.extend(msg(b'Q', b"select 1\0"));
        wire.extend(msg(b'd', &[7u8; 100]));
        wire.extend(msg(b'X', b""));

        for split in [1, 3, 7, 64] {
            let (client, server) = tokio::io::duplex(16);
            let data = wire.clone();
            let writer = tokio::spawn(async move {
                let mut client = client;
                for chunk in data.chunks(split) {
                    client.write_all(chunk).await.unwrap();
                }
            });
            let mut reader = MessageReader::new(server, 1024);
            assert!(matches!(
                reader.read_startup().await.unwrap(),
                Some(FeStartupPacket::Startup { .. })
            ));
            assert_eq!(
                reader.read_message().await.unwrap(),
                Some(FeMessage::Query("select 1".into()))
            );
            assert_eq!(
                reader.read_message().await.unwrap(),
                Some(FeMessage::CopyData(Bytes::from(vec![7u8; 100])))
            );
            assert_eq!(
                reader.read_message().await.unwrap(),
                Some(FeMessage::Terminate)
            );
            writer.await.unwrap();
            assert_eq!(reader.read_message().await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn oversized_and_truncated_messages_are_errors() {
        let mut big = vec![b'd'];
        big.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut reader = MessageReader::new(&big[..], 1024);
        assert!(matches!(
            reader.read_raw().await,
            Err(ReadError::Protocol(ProtocolError::BadLength { .. }))
        ));

        let truncated = &msg(b'Q', b"select 1\0")[..8];
        let mut reader = MessageReader::new(truncated, 1024);
        assert!(matches!(
            reader.read_raw().await,
            Err(ReadError::Protocol(ProtocolError::UnexpectedEof))
        ));

        let bad_startup = 3u32.to_be_bytes();
        let mut reader = MessageReader::new(&bad_startup[..], 1024);
        assert!(reader.read_startup().await.is_err());
    }

    #[tokio::test]
    async fn dropped_read_loses_nothing() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = MessageReader::new(server, 1024);
        let full = BeMessage::CopyData(b"hello").to_bytes();
        client.write_all(&full[..3]).await.unwrap();
        // The read cannot complete; drop it half-way.
        let attempt =
            tokio::time::timeout(std::time::Duration::from_millis(20), reader.read_raw()).await;
        assert!(attempt.is_err());
        client.write_all(&full[3..]).await.unwrap();
        let (tag, body) = reader.read_raw().await.unwrap().unwrap();
        assert_eq!((tag, &body[..]), (b'd', &b"hello"[..]));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data: Vec<u8>) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut reader = MessageReader::new(&data[..], 4096);
                let _ = reader.read_startup().await;
                while let Ok(Some(_)) = reader.read_message().await {}
            });
        }
    }
}
