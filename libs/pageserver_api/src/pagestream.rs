//! The pagestream protocol's messages (v2 and v3): what a compute sends
//! inside `CopyData` after `pagestream_v2|v3 <tenant> <timeline>`, and what
//! the page server answers. Both directions are here so the server, the
//! `pagebench` client and tests share one definition.
//!
//! All integers are big-endian. A v3 request starts with a request id that
//! the response echoes together with the request's LSNs and body fields; v2
//! has no id (it is taken as 0) and responses carry only the result. Parsers
//! read only what they need (trailing bytes are ignored, as Neon does) and
//! report a short or unknown message as [`PagestreamError`], never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use utils::lsn::Lsn;

use crate::reltag::RelTag;

/// Size of a page in the protocol (fixed).
pub const PAGE_SIZE: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    V2,
    V3,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagestreamError {
    #[error("pagestream message is empty")]
    Empty,
    #[error("pagestream message tag {tag}: {len} bytes, too short")]
    Truncated { tag: u8, len: usize },
    #[error("unknown pagestream message tag {0}")]
    UnknownTag(u8),
    #[error("invalid SLRU kind {0}")]
    BadSlruKind(u8),
    #[error("pagestream error message is not NUL-terminated UTF-8")]
    BadErrorText,
}

/// The common part of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestHeader {
    pub reqid: u64,
    pub request_lsn: Lsn,
    pub not_modified_since: Lsn,
}

/// SLRU kinds of `GetSlruSegment`: on the wire, one byte with the kind's
/// key code (0 clog, 1 multixact members, 2 multixact offsets).
pub use crate::reltag::SlruKind;

fn slru_kind(v: u8) -> Result<SlruKind, PagestreamError> {
    SlruKind::from_code(v.into()).map_err(|_| PagestreamError::BadSlruKind(v))
}

fn slru_kind_code(kind: SlruKind) -> u8 {
    // Codes are 0..=2.
    kind.code() as u8
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Exists {
        hdr: RequestHeader,
        rel: RelTag,
    },
    Nblocks {
        hdr: RequestHeader,
        rel: RelTag,
    },
    GetPage {
        hdr: RequestHeader,
        rel: RelTag,
        blkno: u32,
    },
    DbSize {
        hdr: RequestHeader,
        dbnode: u32,
    },
    GetSlruSegment {
        hdr: RequestHeader,
        kind: SlruKind,
        segno: u32,
    },
}

mod tag {
    pub const EXISTS: u8 = 0;
    pub const NBLOCKS: u8 = 1;
    pub const GET_PAGE: u8 = 2;
    pub const DB_SIZE: u8 = 3;
    pub const GET_SLRU_SEGMENT: u8 = 4;
    pub const EXISTS_RESPONSE: u8 = 100;
    pub const NBLOCKS_RESPONSE: u8 = 101;
    pub const GET_PAGE_RESPONSE: u8 = 102;
    pub const ERROR_RESPONSE: u8 = 103;
    pub const DB_SIZE_RESPONSE: u8 = 104;
    pub const GET_SLRU_SEGMENT_RESPONSE: u8 = 105;
}

const RELTAG_LEN: usize = 13;

fn header_len(v: ProtocolVersion) -> usize {
    match v {
        ProtocolVersion::V2 => 16,
        ProtocolVersion::V3 => 24,
    }
}

fn need(buf: &Bytes, tag: u8, total: usize, len: usize) -> Result<(), PagestreamError> {
    if buf.remaining() < len {
        return Err(PagestreamError::Truncated { tag, len: total });
    }
    Ok(())
}

fn get_header(
    buf: &mut Bytes,
    v: ProtocolVersion,
    tag: u8,
    total: usize,
) -> Result<RequestHeader, PagestreamError> {
    need(buf, tag, total, header_len(v))?;
    let reqid = match v {
        ProtocolVersion::V2 => 0,
        ProtocolVersion::V3 => buf.get_u64(),
    };
    Ok(RequestHeader {
        reqid,
        request_lsn: Lsn(buf.get_u64()),
        not_modified_since: Lsn(buf.get_u64()),
    })
}

fn put_header(buf: &mut BytesMut, v: ProtocolVersion, hdr: &RequestHeader) {
    if v == ProtocolVersion::V3 {
        buf.put_u64(hdr.reqid);
    }
    buf.put_u64(hdr.request_lsn.0);
    buf.put_u64(hdr.not_modified_since.0);
}

fn get_rel(buf: &mut Bytes, tag: u8, total: usize) -> Result<RelTag, PagestreamError> {
    need(buf, tag, total, RELTAG_LEN)?;
    Ok(RelTag {
        spcnode: buf.get_u32(),
        dbnode: buf.get_u32(),
        relnode: buf.get_u32(),
        forknum: buf.get_u8(),
    })
}

fn put_rel(buf: &mut BytesMut, rel: &RelTag) {
    buf.put_u32(rel.spcnode);
    buf.put_u32(rel.dbnode);
    buf.put_u32(rel.relnode);
    buf.put_u8(rel.forknum);
}

fn get_u32(buf: &mut Bytes, tag: u8, total: usize) -> Result<u32, PagestreamError> {
    need(buf, tag, total, 4)?;
    Ok(buf.get_u32())
}

impl Request {
    pub fn header(&self) -> &RequestHeader {
        match self {
            Request::Exists { hdr, .. }
            | Request::Nblocks { hdr, .. }
            | Request::GetPage { hdr, .. }
            | Request::DbSize { hdr, .. }
            | Request::GetSlruSegment { hdr, .. } => hdr,
        }
    }

    pub fn parse(v: ProtocolVersion, mut buf: Bytes) -> Result<Request, PagestreamError> {
        let total = buf.len();
        if buf.is_empty() {
            return Err(PagestreamError::Empty);
        }
        let t = buf.get_u8();
        Ok(match t {
            tag::EXISTS => Request::Exists {
                hdr: get_header(&mut buf, v, t, total)?,
                rel: get_rel(&mut buf, t, total)?,
            },
            tag::NBLOCKS => Request::Nblocks {
                hdr: get_header(&mut buf, v, t, total)?,
                rel: get_rel(&mut buf, t, total)?,
            },
            tag::GET_PAGE => Request::GetPage {
                hdr: get_header(&mut buf, v, t, total)?,
                rel: get_rel(&mut buf, t, total)?,
                blkno: get_u32(&mut buf, t, total)?,
            },
            tag::DB_SIZE => Request::DbSize {
                hdr: get_header(&mut buf, v, t, total)?,
                dbnode: get_u32(&mut buf, t, total)?,
            },
            tag::GET_SLRU_SEGMENT => {
                let hdr = get_header(&mut buf, v, t, total)?;
                need(&buf, t, total, 5)?;
                let kind = slru_kind(buf.get_u8())?;
                Request::GetSlruSegment {
                    hdr,
                    kind,
                    segno: buf.get_u32(),
                }
            }
            other => return Err(PagestreamError::UnknownTag(other)),
        })
    }

    pub fn serialize(&self, v: ProtocolVersion) -> Bytes {
        let mut buf = BytesMut::with_capacity(48);
        match self {
            Request::Exists { hdr, rel } => {
                buf.put_u8(tag::EXISTS);
                put_header(&mut buf, v, hdr);
                put_rel(&mut buf, rel);
            }
            Request::Nblocks { hdr, rel } => {
                buf.put_u8(tag::NBLOCKS);
                put_header(&mut buf, v, hdr);
                put_rel(&mut buf, rel);
            }
            Request::GetPage { hdr, rel, blkno } => {
                buf.put_u8(tag::GET_PAGE);
                put_header(&mut buf, v, hdr);
                put_rel(&mut buf, rel);
                buf.put_u32(*blkno);
            }
            Request::DbSize { hdr, dbnode } => {
                buf.put_u8(tag::DB_SIZE);
                put_header(&mut buf, v, hdr);
                buf.put_u32(*dbnode);
            }
            Request::GetSlruSegment { hdr, kind, segno } => {
                buf.put_u8(tag::GET_SLRU_SEGMENT);
                put_header(&mut buf, v, hdr);
                buf.put_u8(slru_kind_code(*kind));
                buf.put_u32(*segno);
            }
        }
        buf.freeze()
    }
}

/// A response; the request it answers is carried along for v3's echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Exists { req: Request, exists: bool },
    Nblocks { req: Request, n_blocks: u32 },
    GetPage { req: Request, page: Bytes },
    Error { hdr: RequestHeader, message: String },
    DbSize { req: Request, db_size: i64 },
    GetSlruSegment { req: Request, segment: Bytes },
}

/// The request's body fields as v3 echoes them (after the header).
fn put_request_body(buf: &mut BytesMut, req: &Request) {
    match req {
        Request::Exists { rel, .. } | Request::Nblocks { rel, .. } => put_rel(buf, rel),
        Request::GetPage { rel, blkno, .. } => {
            put_rel(buf, rel);
            buf.put_u32(*blkno);
        }
        Request::DbSize { dbnode, .. } => buf.put_u32(*dbnode),
        Request::GetSlruSegment { kind, segno, .. } => {
            buf.put_u8(slru_kind_code(*kind));
            buf.put_u32(*segno);
        }
    }
}

impl Response {
    /// Appends the encoded response (the `CopyData` payload) to `buf`.
    pub fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) {
        let echo = |buf: &mut BytesMut, req: &Request| {
            if v == ProtocolVersion::V3 {
                put_header(buf, v, req.header());
                put_request_body(buf, req);
            }
        };
        match self {
            Response::Exists { req, exists } => {
                buf.put_u8(tag::EXISTS_RESPONSE);
                echo(buf, req);
                buf.put_u8(u8::from(*exists));
            }
            Response::Nblocks { req, n_blocks } => {
                buf.put_u8(tag::NBLOCKS_RESPONSE);
                echo(buf, req);
                buf.put_u32(*n_blocks);
            }
            Response::GetPage { req, page } => {
                buf.put_u8(tag::GET_PAGE_RESPONSE);
                echo(buf, req);
                buf.put_slice(page);
            }
            Response::Error { hdr, message } => {
                buf.put_u8(tag::ERROR_RESPONSE);
                if v == ProtocolVersion::V3 {
                    put_header(buf, v, hdr);
                }
                buf.extend(message.bytes().map(|b| if b == 0 { b' ' } else { b }));
                buf.put_u8(0);
            }
            Response::DbSize { req, db_size } => {
                buf.put_u8(tag::DB_SIZE_RESPONSE);
                echo(buf, req);
                buf.put_i64(*db_size);
            }
            Response::GetSlruSegment { req, segment } => {
                buf.put_u8(tag::GET_SLRU_SEGMENT_RESPONSE);
                echo(buf, req);
                buf.put_u32((segment.len() / PAGE_SIZE) as u32);
                buf.put_slice(segment);
            }
        }
    }

    pub fn serialize(&self, v: ProtocolVersion) -> Bytes {
        let mut buf = BytesMut::new();
        self.write(v, &mut buf);
        buf.freeze()
    }
}

/// A response as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientResponse {
    Exists(bool),
    Nblocks(u32),
    GetPage(Bytes),
    Error(String),
    DbSize(i64),
    GetSlruSegment(Bytes),
}

/// A parsed response and, for v3, the echoed request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    pub hdr: Option<RequestHeader>,
    pub body: ClientResponse,
}

impl ParsedResponse {
    pub fn parse(v: ProtocolVersion, mut buf: Bytes) -> Result<ParsedResponse, PagestreamError> {
        let total = buf.len();
        if buf.is_empty() {
            return Err(PagestreamError::Empty);
        }
        let t = buf.get_u8();
        let hdr = match v {
            ProtocolVersion::V2 => None,
            ProtocolVersion::V3 => Some(get_header(&mut buf, v, t, total)?),
        };
        let v3 = v == ProtocolVersion::V3;
        let body = match t {
            tag::EXISTS_RESPONSE => {
                if v3 {
                    get_rel(&mut buf, t, total)?;
                }
                need(&buf, t, total, 1)?;
                ClientResponse::Exists(buf.get_u8() != 0)
            }
            tag::NBLOCKS_RESPONSE => {
                if v3 {
                    get_rel(&mut buf, t, total)?;
                }
                ClientResponse::Nblocks(get_u32(&mut buf, t, total)?)
            }
            tag::GET_PAGE_RESPONSE => {
                if v3 {
                    get_rel(&mut buf, t, total)?;
                    get_u32(&mut buf, t, total)?;
                }
                need(&buf, t, total, PAGE_SIZE)?;
                ClientResponse::GetPage(buf.split_to(PAGE_SIZE))
            }
            tag::ERROR_RESPONSE => {
                let end = buf
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or(PagestreamError::BadErrorText)?;
                let text =
                    std::str::from_utf8(&buf[..end]).map_err(|_| PagestreamError::BadErrorText)?;
                ClientResponse::Error(text.to_owned())
            }
            tag::DB_SIZE_RESPONSE => {
                if v3 {
                    get_u32(&mut buf, t, total)?;
                }
                need(&buf, t, total, 8)?;
                ClientResponse::DbSize(buf.get_i64())
            }
            tag::GET_SLRU_SEGMENT_RESPONSE => {
                if v3 {
                    need(&buf, t, total, 5)?;
                    buf.advance(5);
                }
                let n = get_u32(&mut buf, t, total)? as usize;
                let len = n.saturating_mul(PAGE_SIZE);
                need(&buf, t, total, len)?;
                ClientResponse::GetSlruSegment(buf.split_to(len))
            }
            other => return Err(PagestreamError::UnknownTag(other)),
        };
        Ok(ParsedResponse { hdr, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> RequestHeader {
        RequestHeader {
            reqid: 42,
            request_lsn: Lsn(0x1_0000_0028),
            not_modified_since: Lsn(0x1_0000_0000),
        }
    }

    fn rel() -> RelTag {
        RelTag::new(1663, 5, 16384, 0)
    }

    #[test]
    fn request_sizes_match_the_reference() {
        let cases = [
            (
                Request::Exists {
                    hdr: hdr(),
                    rel: rel(),
                },
                30,
                38,
            ),
            (
                Request::Nblocks {
                    hdr: hdr(),
                    rel: rel(),
                },
                30,
                38,
            ),
            (
                Request::GetPage {
                    hdr: hdr(),
                    rel: rel(),
                    blkno: 7,
                },
                34,
                42,
            ),
            (
                Request::DbSize {
                    hdr: hdr(),
                    dbnode: 5,
                },
                21,
                29,
            ),
            (
                Request::GetSlruSegment {
                    hdr: hdr(),
                    kind: SlruKind::MultiXactOffsets,
                    segno: 3,
                },
                22,
                30,
            ),
        ];
        for (req, v2_len, v3_len) in cases {
            let v2 = req.serialize(ProtocolVersion::V2);
            let v3 = req.serialize(ProtocolVersion::V3);
            assert_eq!((v2.len(), v3.len()), (v2_len, v3_len), "{req:?}");
            let back = Request::parse(ProtocolVersion::V3, v3).unwrap();
            assert_eq!(back, req);
            let back2 = Request::parse(ProtocolVersion::V2, v2).unwrap();
            assert_eq!(back2.header().reqid, 0);
        }
    }

    #[test]
    fn response_sizes_and_roundtrip() {
        let get = Request::GetPage {
            hdr: hdr(),
            rel: rel(),
            blkno: 9,
        };
        let page = Bytes::from(vec![5u8; PAGE_SIZE]);
        let resp = Response::GetPage {
            req: get.clone(),
            page: page.clone(),
        };
        assert_eq!(resp.serialize(ProtocolVersion::V2).len(), 8193);
        let v3 = resp.serialize(ProtocolVersion::V3);
        assert_eq!(v3.len(), 8234);
        let parsed = ParsedResponse::parse(ProtocolVersion::V3, v3).unwrap();
        assert_eq!(parsed.hdr, Some(hdr()));
        assert_eq!(parsed.body, ClientResponse::GetPage(page));

        let err = Response::Error {
            hdr: hdr(),
            message: "Bad request: x".into(),
        };
        assert_eq!(err.serialize(ProtocolVersion::V3).len(), 26 + 14);
        assert_eq!(
            ParsedResponse::parse(ProtocolVersion::V2, err.serialize(ProtocolVersion::V2))
                .unwrap()
                .body,
            ClientResponse::Error("Bad request: x".into())
        );

        let nb = Response::Nblocks {
            req: Request::Nblocks {
                hdr: hdr(),
                rel: rel(),
            },
            n_blocks: 77,
        };
        assert_eq!(nb.serialize(ProtocolVersion::V3).len(), 42);
        let db = Response::DbSize {
            req: Request::DbSize {
                hdr: hdr(),
                dbnode: 5,
            },
            db_size: 8192 * 3,
        };
        assert_eq!(db.serialize(ProtocolVersion::V3).len(), 37);
        let ex = Response::Exists {
            req: Request::Exists {
                hdr: hdr(),
                rel: rel(),
            },
            exists: true,
        };
        assert_eq!(ex.serialize(ProtocolVersion::V3).len(), 39);
        let seg = Response::GetSlruSegment {
            req: Request::GetSlruSegment {
                hdr: hdr(),
                kind: SlruKind::Clog,
                segno: 0,
            },
            segment: Bytes::from(vec![0u8; 2 * PAGE_SIZE]),
        };
        let bytes = seg.serialize(ProtocolVersion::V3);
        assert_eq!(bytes.len(), 34 + 2 * PAGE_SIZE);
        assert_eq!(
            ParsedResponse::parse(ProtocolVersion::V3, bytes)
                .unwrap()
                .body,
            ClientResponse::GetSlruSegment(Bytes::from(vec![0u8; 2 * PAGE_SIZE]))
        );
    }

    #[test]
    fn bad_requests_are_errors() {
        assert_eq!(
            Request::parse(ProtocolVersion::V3, Bytes::new()),
            Err(PagestreamError::Empty)
        );
        assert!(matches!(
            Request::parse(ProtocolVersion::V3, Bytes::from_static(&[2, 0, 0])),
            Err(PagestreamError::Truncated { tag: 2, .. })
        ));
        assert_eq!(
            Request::parse(ProtocolVersion::V2, Bytes::from_static(&[77])),
            Err(PagestreamError::UnknownTag(77))
        );
        let mut slru = Request::GetSlruSegment {
            hdr: hdr(),
            kind: SlruKind::Clog,
            segno: 1,
        }
        .serialize(ProtocolVersion::V2)
        .to_vec();
        slru[17] = 9;
        assert_eq!(
            Request::parse(ProtocolVersion::V2, Bytes::from(slru)),
            Err(PagestreamError::BadSlruKind(9))
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(data: Vec<u8>) {
            for v in [ProtocolVersion::V2, ProtocolVersion::V3] {
                let _ = Request::parse(v, Bytes::from(data.clone()));
                let _ = ParsedResponse::parse(v, Bytes::from(data.clone()));
            }
        }
    }
}
