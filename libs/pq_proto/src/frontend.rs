//! Messages a client sends to the server.
//!
//! Two framings exist. Before authentication a client sends a *startup
//! packet*: a 4-byte big-endian length (including itself) and a 4-byte code —
//! the protocol version, or one of the magic request codes (SSL, GSS
//! encryption, cancel). After that every message is a tag byte, a 4-byte
//! length (including itself, not the tag) and a body.
//!
//! Parsers here take a complete body (the framing is [`crate::framed`]'s job)
//! and check every field against the body's bounds.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};

use crate::ProtocolError;

/// Protocol 3.0.
pub const PROTOCOL_V3: u32 = 3 << 16;
/// `SSLRequest` code (1234.5679).
pub const SSL_REQUEST_CODE: u32 = (1234 << 16) | 5679;
/// `GSSENCRequest` code (1234.5680).
pub const GSS_ENC_REQUEST_CODE: u32 = (1234 << 16) | 5680;
/// `CancelRequest` code (1234.5678).
pub const CANCEL_REQUEST_CODE: u32 = (1234 << 16) | 5678;

/// Largest startup packet accepted (Postgres uses 10000 as well).
pub const MAX_STARTUP_PACKET_LEN: u32 = 10_000;

/// Identifies a connection for cancel requests (`BackendKeyData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub process_id: i32,
    pub secret_key: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeStartupPacket {
    SslRequest,
    GssEncRequest,
    CancelRequest(CancelKey),
    Startup {
        major: u16,
        minor: u16,
        params: BTreeMap<String, String>,
    },
}

impl FeStartupPacket {
    /// Parses a startup packet body: everything after the length word.
    pub fn parse(mut body: Bytes) -> Result<FeStartupPacket, ProtocolError> {
        if body.len() < 4 {
            return Err(ProtocolError::Malformed {
                what: "startup packet",
                reason: format!("{} bytes, too short for a protocol code", body.len()),
            });
        }
        let code = body.get_u32();
        match code {
            SSL_REQUEST_CODE => Ok(FeStartupPacket::SslRequest),
            GSS_ENC_REQUEST_CODE => Ok(FeStartupPacket::GssEncRequest),
            CANCEL_REQUEST_CODE => {
                if body.len() != 8 {
                    return Err(ProtocolError::Malformed {
                        what: "cancel request",
                        reason: format!("body is {} bytes, expected 8", body.len()),
                    });
                }
                Ok(FeStartupPacket::CancelRequest(CancelKey {
                    process_id: body.get_i32(),
                    secret_key: body.get_i32(),
                }))
            }
            code => {
                let (major, minor) = ((code >> 16) as u16, (code & 0xFFFF) as u16);
                if major != 3 {
                    return Err(ProtocolError::UnsupportedVersion { major, minor });
                }
                let params = parse_startup_params(&body)?;
                Ok(FeStartupPacket::Startup {
                    major,
                    minor,
                    params,
                })
            }
        }
    }
}

/// `name\0value\0 ... \0`.
fn parse_startup_params(body: &[u8]) -> Result<BTreeMap<String, String>, ProtocolError> {
    let bad = |reason: String| ProtocolError::Malformed {
        what: "startup parameters",
        reason,
    };
    let mut params = BTreeMap::new();
    let mut rest = body;
    loop {
        let (name, after) = take_cstr(rest).map_err(|e| bad(e.to_owned()))?;
        if name.is_empty() {
            if !after.is_empty() {
                return Err(bad(format!("{} bytes after the terminator", after.len())));
            }
            return Ok(params);
        }
        let (value, after) = take_cstr(after).map_err(|e| bad(e.to_owned()))?;
        params.insert(name.to_owned(), value.to_owned());
        rest = after;
    }
}

/// A NUL-terminated UTF-8 string and what follows it.
fn take_cstr(buf: &[u8]) -> Result<(&str, &[u8]), &'static str> {
    let end = buf
        .iter()
        .position(|b| *b == 0)
        .ok_or("string is not NUL-terminated")?;
    let s = std::str::from_utf8(&buf[..end]).map_err(|_| "string is not UTF-8")?;
    Ok((s, &buf[end + 1..]))
}

/// A message after startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeMessage {
    /// 'Q': simple query.
    Query(String),
    /// 'p': password (or SASL) response; the raw body.
    Password(Bytes),
    /// 'd'
    CopyData(Bytes),
    /// 'c'
    CopyDone,
    /// 'f'
    CopyFail(String),
    /// 'S'
    Sync,
    /// 'H'
    Flush,
    /// 'X'
    Terminate,
    /// Extended-protocol messages ('P', 'B', 'D', 'E', 'C'): the page service
    /// does not implement the extended protocol; the tag is kept so the
    /// caller can say which message it refused.
    Extended(u8),
}

impl FeMessage {
    /// Parses the body of a message with tag `tag`.
    pub fn parse(tag: u8, body: Bytes) -> Result<FeMessage, ProtocolError> {
        Ok(match tag {
            b'Q' => FeMessage::Query(single_cstr("query", &body)?),
            b'p' => FeMessage::Password(body),
            b'd' => FeMessage::CopyData(body),
            b'c' => FeMessage::CopyDone,
            b'f' => FeMessage::CopyFail(single_cstr("CopyFail", &body)?),
            b'S' => FeMessage::Sync,
            b'H' => FeMessage::Flush,
            b'X' => FeMessage::Terminate,
            b'P' | b'B' | b'D' | b'E' | b'C' => FeMessage::Extended(tag),
            other => {
                return Err(ProtocolError::UnexpectedMessage {
                    tag: other as char,
                    context: "unknown frontend message type",
                })
            }
        })
    }
}

/// A body that is exactly one NUL-terminated UTF-8 string.
fn single_cstr(what: &'static str, body: &[u8]) -> Result<String, ProtocolError> {
    let (s, rest) = take_cstr(body).map_err(|reason| ProtocolError::Malformed {
        what,
        reason: reason.to_owned(),
    })?;
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed {
            what,
            reason: format!("{} bytes after the string", rest.len()),
        });
    }
    Ok(s.to_owned())
}

/// The password of a cleartext `PasswordMessage` body.
pub fn parse_password(body: &[u8]) -> Result<String, ProtocolError> {
    single_cstr("password message", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup_body(params: &[(&str, &str)]) -> Bytes {
        let mut b = PROTOCOL_V3.to_be_bytes().to_vec();
        for (k, v) in params {
            b.extend_from_slice(k.as_bytes());
            b.push(0);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
        b.push(0);
        Bytes::from(b)
    }

    #[test]
    fn startup_packets() {
        let p = FeStartupPacket::parse(startup_body(&[
            ("user", "cloud_admin"),
            ("options", "-c x=1"),
        ]))
        .unwrap();
        let FeStartupPacket::Startup { major, params, .. } = p else {
            panic!("not a startup message: {p:?}");
        };
        assert_eq!(major, 3);
        assert_eq!(params["user"], "cloud_admin");
        assert_eq!(params["options"], "-c x=1");

        let ssl = Bytes::from(SSL_REQUEST_CODE.to_be_bytes().to_vec());
        assert_eq!(
            FeStartupPacket::parse(ssl).unwrap(),
            FeStartupPacket::SslRequest
        );

        let mut cancel = CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        cancel.extend_from_slice(&7i32.to_be_bytes());
        cancel.extend_from_slice(&(-9i32).to_be_bytes());
        assert_eq!(
            FeStartupPacket::parse(Bytes::from(cancel)).unwrap(),
            FeStartupPacket::CancelRequest(CancelKey {
                process_id: 7,
                secret_key: -9
            })
        );
    }

    #[test]
    fn malformed_startup_packets_are_errors() {
        assert!(FeStartupPacket::parse(Bytes::from_static(b"\x00\x03")).is_err());
        let v2 = Bytes::from((2u32 << 16).to_be_bytes().to_vec());
        assert!(matches!(
            FeStartupPacket::parse(v2),
            Err(ProtocolError::UnsupportedVersion { major: 2, .. })
        ));
        // Missing terminator, then a value without NUL.
        let mut b = PROTOCOL_V3.to_be_bytes().to_vec();
        b.extend_from_slice(b"user\0x");
        assert!(FeStartupPacket::parse(Bytes::from(b)).is_err());
        let mut cancel = CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        cancel.push(1);
        assert!(FeStartupPacket::parse(Bytes::from(cancel)).is_err());
    }

    #[test]
    fn messages() {
        assert_eq!(
            FeMessage::parse(b'Q', Bytes::from_static(b"pagestream_v3 a b\0")).unwrap(),
            FeMessage::Query("pagestream_v3 a b".to_owned())
        );
        assert!(FeMessage::parse(b'Q', Bytes::from_static(b"no nul")).is_err());
        assert!(FeMessage::parse(b'Q', Bytes::from_static(b"a\0b\0")).is_err());
        assert_eq!(
            FeMessage::parse(b'P', Bytes::new()).unwrap(),
            FeMessage::Extended(b'P')
        );
        assert!(FeMessage::parse(b'!', Bytes::new()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(tag: u8, body: Vec<u8>) {
            let _ = FeStartupPacket::parse(Bytes::from(body.clone()));
            let _ = FeMessage::parse(tag, Bytes::from(body.clone()));
            let _ = parse_password(&body);
        }
    }
}
