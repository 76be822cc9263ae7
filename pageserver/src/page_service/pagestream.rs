//! Serving one pagestream (after `pagestream_v2|v3`): requests arrive as
//! `CopyData`, each gets exactly one response, in request order.
//!
//! Batching: when several GetPage requests are already buffered on the
//! connection (a pipelining client), consecutive ones that resolve to the
//! same read LSN are served as one vectored read, up to `max_batch_size`;
//! responses are then written and flushed together. Nothing waits for more
//! requests to arrive, so a lone request is never delayed.
//!
//! LSN rules (Neon's): `request_lsn` 0 or below `not_modified_since` is a
//! bad request; below the GC cutoff too unless a lease holds it; when
//! `not_modified_since` is beyond what was ingested the read waits for it
//! (up to `wait_lsn_timeout`) and reads there, otherwise it reads at
//! `min(last_record_lsn, request_lsn)`.
//!
//! Relation metadata (sizes, existence, database sizes, SLRU segments) comes
//! from the Postgres-level view of the timeline ([`DatadirView`]). GetPage
//! of a block at or past the relation's size returns a zero page, as Neon
//! does; the sizes of the relations in a batch are read in the same
//! vectored read as its pages. A block of a key space without a size key
//! (pages written through the dev API) is served as stored, or zeroes.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pageserver_api::key::{rel_block_to_key, rel_size_to_key, Key};
use pageserver_api::keyspace::KeySpace;
use pageserver_api::pagestream::{self, ProtocolVersion, Request, RequestHeader, Response};
use pageserver_api::reltag::{FSM_FORKNUM, VISIBILITYMAP_FORKNUM};
use utils::lsn::Lsn;

use crate::pgdatadir_mapping::{format::decode_size, DatadirError, DatadirView};
use crate::tenant::timeline::read::{GetVectoredError, PageReconstructError};
use crate::tenant::timeline::{Timeline, WaitLsnError};

/// A request that failed; what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Answered with a pagestream Error response; the stream goes on.
    #[error("{0}")]
    Recoverable(String),
    /// The connection must end with a libpq error of this SQLSTATE.
    #[error("{message}")]
    Fatal {
        code: &'static [u8; 5],
        message: String,
    },
}

fn bad_request(msg: impl std::fmt::Display) -> RequestError {
    RequestError::Recoverable(format!("Bad request: {msg}"))
}

/// The LSN a request is read at (waiting for ingest when needed).
pub async fn effective_lsn(tl: &Timeline, hdr: &RequestHeader) -> Result<Lsn, RequestError> {
    let RequestHeader {
        request_lsn,
        not_modified_since,
        ..
    } = *hdr;
    if request_lsn < not_modified_since {
        return Err(bad_request(format!(
            "invalid request with request LSN {request_lsn} and not_modified_since {not_modified_since}"
        )));
    }
    if request_lsn == Lsn(0) {
        return Err(bad_request("invalid LSN(0) in request"));
    }
    let cutoff = tl.get_gc_cutoff_lsn();
    if request_lsn < cutoff && !tl.is_leased(request_lsn) {
        return Err(bad_request(format!(
            "tried to request a page version that was garbage collected. requested at {request_lsn} gc cutoff {cutoff}"
        )));
    }
    let readable = tl.min_readable_lsn();
    if request_lsn < readable && request_lsn >= cutoff {
        return Err(bad_request(format!(
            "requested LSN {request_lsn} is below the timeline's minimum readable LSN {readable} (the end of the base backup it was imported from)"
        )));
    }
    let last = tl.get_last_record_lsn();
    // Reading before the timeline is consistent is never right: wait for
    // the minimum readable LSN as for not_modified_since.
    let wait_for = not_modified_since.max(readable);
    if wait_for > last {
        let timeout = tl.resources.settings.wait_lsn_timeout;
        tl.wait_lsn(wait_for, timeout).await.map_err(|e| match e {
            WaitLsnError::Timeout { .. } => RequestError::Recoverable(format!(
                "LSN timeout: {e}; disk consistent LSN={}",
                tl.get_disk_consistent_lsn()
            )),
            WaitLsnError::Cancelled => RequestError::Fatal {
                code: pq_proto::sqlstate::ADMIN_SHUTDOWN,
                message: "timeline is shutting down".to_owned(),
            },
        })?;
        Ok(wait_for)
    } else {
        Ok(last.min(request_lsn))
    }
}

/// Serves a batch of GetPage requests that share `lsn` with one vectored
/// read (with the size keys of their relations); one response per request,
/// in order (a block asked for twice is read once and answered twice).
pub async fn get_pages(
    tl: &Timeline,
    lsn: Lsn,
    batch: &[Request],
) -> Vec<Result<Response, RequestError>> {
    let targets: Vec<Option<(Key, Key, u32)>> = batch
        .iter()
        .map(|r| match r {
            Request::GetPage { rel, blkno, .. } => Some((
                rel_block_to_key(*rel, *blkno),
                rel_size_to_key(*rel),
                *blkno,
            )),
            // Callers only batch GetPage.
            _ => None,
        })
        .collect();
    let mut ranges: Vec<_> = targets
        .iter()
        .flatten()
        .flat_map(|(page, size, _)| [*page..page.next(), *size..size.next()])
        .collect();
    ranges.sort_by_key(|r| r.start);
    ranges.dedup();
    let result = tl.get_vectored(KeySpace { ranges }, lsn).await;
    let values = match result {
        Ok(values) => values,
        Err(e) => {
            let err = vectored_error(&e);
            return batch.iter().map(|_| Err(clone_error(&err))).collect();
        }
    };
    batch
        .iter()
        .zip(targets)
        .map(|(req, target)| {
            let Some((key, size_key, blkno)) = target else {
                return Err(bad_request("not a GetPage request"));
            };
            let beyond_end = match values.get(&size_key) {
                Some(Ok(v)) => match decode_size("relation size", v) {
                    Ok(n) => blkno >= n,
                    Err(e) => return Err(RequestError::Recoverable(format!("Read error: {e}"))),
                },
                Some(Err(PageReconstructError::MissingKey { .. })) | None => false,
                Some(Err(e)) => {
                    return Err(RequestError::Recoverable(format!("Read error: {e}")));
                }
            };
            let page = if beyond_end {
                zero_page()
            } else {
                match values.get(&key) {
                    Some(Ok(page)) => page.clone(),
                    Some(Err(PageReconstructError::MissingKey { .. })) => zero_page(),
                    None => {
                        return Err(RequestError::Recoverable(format!(
                            "Read error: no result for key {key} at {lsn}"
                        )))
                    }
                    Some(Err(e)) => {
                        tracing::warn!(%key, %lsn, "cannot reconstruct page: {e}");
                        return Err(RequestError::Recoverable(format!("Read error: {e}")));
                    }
                }
            };
            Ok(Response::GetPage {
                req: req.clone(),
                page,
            })
        })
        .collect()
}

fn zero_page() -> Bytes {
    static ZERO: [u8; pagestream::PAGE_SIZE] = [0; pagestream::PAGE_SIZE];
    Bytes::from_static(&ZERO)
}

fn clone_error(e: &RequestError) -> RequestError {
    match e {
        RequestError::Recoverable(m) => RequestError::Recoverable(m.clone()),
        RequestError::Fatal { code, message } => RequestError::Fatal {
            code,
            message: message.clone(),
        },
    }
}

fn vectored_error(e: &GetVectoredError) -> RequestError {
    match e {
        GetVectoredError::Cancelled | GetVectoredError::WaitLsn(WaitLsnError::Cancelled) => {
            RequestError::Fatal {
                code: pq_proto::sqlstate::ADMIN_SHUTDOWN,
                message: "timeline is shutting down".to_owned(),
            }
        }
        GetVectoredError::BelowGcCutoff { .. } | GetVectoredError::Oversized { .. } => {
            bad_request(e)
        }
        other => RequestError::Recoverable(format!("Read error: {other}")),
    }
}

/// The default tablespace, the one DbSize counts (as Neon does).
const DEFAULTTABLESPACE_OID: u32 = 1663;

/// Serves a request that is not a GetPage, at its effective LSN.
pub async fn other_request(tl: &Timeline, req: &Request) -> Result<Response, RequestError> {
    let lsn = effective_lsn(tl, req.header()).await?;
    let view = DatadirView::new(tl, lsn);
    let read = |e: DatadirError| RequestError::Recoverable(format!("Read error: {e}"));
    match req {
        Request::Exists { rel, .. } => {
            check_relnode(rel.relnode)?;
            let exists = view.rel_exists(*rel).await.map_err(read)?;
            Ok(Response::Exists {
                req: req.clone(),
                exists,
            })
        }
        Request::Nblocks { rel, .. } => {
            check_relnode(rel.relnode)?;
            let n_blocks = match view.rel_size(*rel).await.map_err(read)? {
                Some(n) => n,
                // The maps are created lazily: a missing one is empty.
                None if matches!(rel.forknum, FSM_FORKNUM | VISIBILITYMAP_FORKNUM) => 0,
                None => {
                    return Err(RequestError::Recoverable(format!(
                        "Read error: relation {rel} does not exist at {lsn}"
                    )))
                }
            };
            Ok(Response::Nblocks {
                req: req.clone(),
                n_blocks,
            })
        }
        Request::DbSize { dbnode, .. } => {
            let bytes = view
                .db_size(DEFAULTTABLESPACE_OID, *dbnode)
                .await
                .map_err(read)?;
            Ok(Response::DbSize {
                req: req.clone(),
                db_size: i64::try_from(bytes).unwrap_or(i64::MAX),
            })
        }
        Request::GetSlruSegment { kind, segno, .. } => {
            let Some(n) = view.slru_segment_size(*kind, *segno).await.map_err(read)? else {
                return Err(RequestError::Recoverable(format!(
                    "Read error: {kind} segment {segno:04X} does not exist at {lsn}"
                )));
            };
            let mut segment = BytesMut::with_capacity(n as usize * pagestream::PAGE_SIZE);
            for blkno in 0..n {
                segment
                    .extend_from_slice(&view.slru_page(*kind, *segno, blkno).await.map_err(read)?);
            }
            Ok(Response::GetSlruSegment {
                req: req.clone(),
                segment: segment.freeze(),
            })
        }
        Request::GetPage { .. } => {
            let mut out = get_pages(tl, lsn, std::slice::from_ref(req)).await;
            out.pop()
                .unwrap_or_else(|| Err(bad_request("no response for GetPage")))
        }
    }
}

fn check_relnode(relnode: u32) -> Result<(), RequestError> {
    if relnode == 0 {
        return Err(bad_request("invalid relnode 0"));
    }
    Ok(())
}

pub fn request_name(req: &Request) -> &'static str {
    match req {
        Request::Exists { .. } => "exists",
        Request::Nblocks { .. } => "nblocks",
        Request::GetPage { .. } => "get_page",
        Request::DbSize { .. } => "db_size",
        Request::GetSlruSegment { .. } => "get_slru_segment",
    }
}

/// Encodes `result` as the `CopyData` payload answering a request with
/// header `hdr`.
pub fn encode(
    v: ProtocolVersion,
    hdr: &RequestHeader,
    result: &Result<Response, RequestError>,
    out: &mut BytesMut,
) {
    let error;
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            error = Response::Error {
                hdr: *hdr,
                message: e.to_string(),
            };
            &error
        }
    };
    pq_proto::backend::write_copy_data_with(out, |b| response.write(v, b));
}

/// Observes one request's latency from arrival to flush.
pub fn observe(op: &str, arrived: Instant) {
    crate::metrics::PAGESTREAM_REQUEST_DURATION
        .with_label_values(&[op])
        .observe(arrived.elapsed().as_secs_f64());
}
