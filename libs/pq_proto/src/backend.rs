//! Messages the server sends, encoded into a caller-owned buffer so a
//! connection can queue several and flush them with one write.
//!
//! Each message is a tag byte, a 4-byte big-endian length (including the
//! length itself) and a body. Strings are NUL-terminated; a string that
//! contains a NUL would corrupt the framing, so encoding replaces NULs in
//! text fields (error messages may quote client input).

use bytes::{BufMut, Bytes, BytesMut};

use crate::frontend::CancelKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSeverity {
    Error,
    Fatal,
}

impl ErrorSeverity {
    fn as_str(self) -> &'static str {
        match self {
            ErrorSeverity::Error => "ERROR",
            ErrorSeverity::Fatal => "FATAL",
        }
    }
}

/// A column of a `RowDescription`; all columns are text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    pub name: String,
    /// Postgres type oid (25 = text, 20 = int8, 3220 = pg_lsn).
    pub type_oid: u32,
    /// `typlen`: -1 for variable length.
    pub type_len: i16,
}

impl FieldDescription {
    pub fn text(name: &str) -> FieldDescription {
        FieldDescription {
            name: name.to_owned(),
            type_oid: 25,
            type_len: -1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeMessage<'a> {
    AuthenticationOk,
    AuthenticationCleartextPassword,
    /// Single-byte answer to an SSLRequest / GSSENCRequest: b'N' declines.
    EncryptionResponse(bool),
    ParameterStatus {
        name: &'a str,
        value: &'a str,
    },
    BackendKeyData(CancelKey),
    ReadyForQuery,
    ErrorResponse {
        severity: ErrorSeverity,
        code: &'a [u8; 5],
        message: &'a str,
    },
    NoticeResponse(&'a str),
    RowDescription(&'a [FieldDescription]),
    /// One row of text values; `None` is SQL NULL.
    DataRow(&'a [Option<&'a [u8]>]),
    CommandComplete(&'a str),
    EmptyQueryResponse,
    /// Text-format copy with no columns (the page service's streams).
    CopyOutResponse,
    CopyBothResponse,
    CopyData(&'a [u8]),
    CopyDone,
}

impl BeMessage<'_> {
    /// Appends the encoded message to `buf`.
    pub fn write(&self, buf: &mut BytesMut) {
        match self {
            BeMessage::EncryptionResponse(accept) => {
                buf.put_u8(if *accept { b'S' } else { b'N' });
            }
            BeMessage::AuthenticationOk => framed(buf, b'R', |b| b.put_i32(0)),
            BeMessage::AuthenticationCleartextPassword => framed(buf, b'R', |b| b.put_i32(3)),
            BeMessage::ParameterStatus { name, value } => framed(buf, b'S', |b| {
                put_cstr(b, name);
                put_cstr(b, value);
            }),
            BeMessage::BackendKeyData(key) => framed(buf, b'K', |b| {
                b.put_i32(key.process_id);
                b.put_i32(key.secret_key);
            }),
            BeMessage::ReadyForQuery => framed(buf, b'Z', |b| b.put_u8(b'I')),
            BeMessage::ErrorResponse {
                severity,
                code,
                message,
            } => framed(buf, b'E', |b| {
                for (field, value) in [(b'S', severity.as_str()), (b'V', severity.as_str())] {
                    b.put_u8(field);
                    put_cstr(b, value);
                }
                b.put_u8(b'C');
                b.put_slice(&code[..]);
                b.put_u8(0);
                b.put_u8(b'M');
                put_cstr(b, message);
                b.put_u8(0);
            }),
            BeMessage::NoticeResponse(message) => framed(buf, b'N', |b| {
                b.put_u8(b'S');
                put_cstr(b, "NOTICE");
                b.put_u8(b'C');
                put_cstr(b, "00000");
                b.put_u8(b'M');
                put_cstr(b, message);
                b.put_u8(0);
            }),
            BeMessage::RowDescription(fields) => framed(buf, b'T', |b| {
                b.put_i16(fields.len().min(i16::MAX as usize) as i16);
                for f in fields.iter().take(i16::MAX as usize) {
                    put_cstr(b, &f.name);
                    b.put_u32(0); // table oid
                    b.put_i16(0); // column number
                    b.put_u32(f.type_oid);
                    b.put_i16(f.type_len);
                    b.put_i32(-1); // type modifier
                    b.put_i16(0); // text format
                }
            }),
            BeMessage::DataRow(values) => framed(buf, b'D', |b| {
                b.put_i16(values.len().min(i16::MAX as usize) as i16);
                for v in values.iter().take(i16::MAX as usize) {
                    match v {
                        Some(bytes) => {
                            b.put_i32(bytes.len() as i32);
                            b.put_slice(bytes);
                        }
                        None => b.put_i32(-1),
                    }
                }
            }),
            BeMessage::CommandComplete(tag) => framed(buf, b'C', |b| put_cstr(b, tag)),
            BeMessage::EmptyQueryResponse => framed(buf, b'I', |_| {}),
            BeMessage::CopyOutResponse => framed(buf, b'H', |b| {
                b.put_u8(0);
                b.put_i16(0);
            }),
            BeMessage::CopyBothResponse => framed(buf, b'W', |b| {
                b.put_u8(0);
                b.put_i16(0);
            }),
            BeMessage::CopyData(data) => framed(buf, b'd', |b| b.put_slice(data)),
            BeMessage::CopyDone => framed(buf, b'c', |_| {}),
        }
    }

    /// The message as its own buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.write(&mut buf);
        buf.freeze()
    }
}

/// Writes `tag`, a length placeholder, the body, then patches the length.
/// Appends a `CopyData` message whose payload `body` writes straight into
/// `buf`: a large payload (a page) is copied once, not built apart first.
pub fn write_copy_data_with(buf: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    framed(buf, b'd', body)
}

fn framed(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let len_at = buf.len();
    buf.put_u32(0);
    body(buf);
    let len = (buf.len() - len_at) as u32;
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// A NUL-terminated string; embedded NULs become spaces so the framing holds.
fn put_cstr(buf: &mut BytesMut, s: &str) {
    buf.extend(s.bytes().map(|b| if b == 0 { b' ' } else { b }));
    buf.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_lengths() {
        let bytes = BeMessage::ReadyForQuery.to_bytes();
        assert_eq!(&bytes[..], b"Z\x00\x00\x00\x05I");
        let bytes = BeMessage::CopyData(b"abc").to_bytes();
        assert_eq!(&bytes[..], b"d\x00\x00\x00\x07abc");
        let mut direct = BytesMut::new();
        write_copy_data_with(&mut direct, |b| b.put_slice(b"abc"));
        assert_eq!(&direct[..], &bytes[..]);
        let bytes = BeMessage::CommandComplete("SELECT 1").to_bytes();
        assert_eq!(&bytes[..], b"C\x00\x00\x00\x0dSELECT 1\0");
        assert_eq!(&BeMessage::EncryptionResponse(false).to_bytes()[..], b"N");
    }

    #[test]
    fn error_response_fields() {
        let bytes = BeMessage::ErrorResponse {
            severity: ErrorSeverity::Error,
            code: b"XX000",
            message: "bad\0thing",
        }
        .to_bytes();
        assert_eq!(bytes[0], b'E');
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len + 1, bytes.len());
        let body = &bytes[5..];
        assert!(body.windows(6).any(|w| w == b"CXX000"));
        assert!(body.windows(10).any(|w| w == b"Mbad thing"));
        assert_eq!(body.last(), Some(&0));
    }

    #[test]
    fn rows() {
        let fields = [FieldDescription::text("a"), FieldDescription::text("b")];
        let desc = BeMessage::RowDescription(&fields).to_bytes();
        assert_eq!(desc[0], b'T');
        let row = BeMessage::DataRow(&[Some(b"1"), None]).to_bytes();
        assert_eq!(
            &row[..],
            b"D\x00\x00\x00\x0f\x00\x02\x00\x00\x00\x011\xff\xff\xff\xff"
        );
    }
}
