//! Handlers that reach into a timeline's storage: flush (`checkpoint`),
//! `compact`, `do_gc`, the layer listing, LSN leases, single-page reads
//! (`getpage`) and, with `dev_mode` only, a raw put used to test the engine
//! through the binary before WAL ingest exists.
//!
//! Each handler looks its timeline up through the tenant manager (which
//! holds its lock only for the lookup) and then works on the timeline
//! directly, so a slow compaction never blocks other API calls. Maintenance
//! started here takes a permit of the node-wide background semaphore like
//! the background loops do.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use pageserver_api::key::Key;
use pageserver_api::models::{
    DevPutRequest, DevPutValue, GcResult, LsnLease, LsnLeaseRequest, TimelineGcRequest,
};
use pageserver_api::value::{Value, WalRecord};
use utils::lsn::Lsn;

use super::error::ApiError;
use super::router::{ok_json, HandlerResult, RequestContext};
use crate::tenant::resources::BackgroundKind;
use crate::tenant::timeline::read::{GetError, GetVectoredError, PageReconstructError};
use crate::tenant::timeline::write::WriteError;
use crate::tenant::timeline::{Timeline, WaitLsnError};

async fn timeline(ctx: &RequestContext) -> Result<std::sync::Arc<Timeline>, ApiError> {
    let (id, timeline_id) = (ctx.tenant_shard_id()?, ctx.timeline_id()?);
    Ok(ctx.state.tenants.get_timeline(id, timeline_id).await?)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Whether any of Neon's `force_*` compaction query flags is set.
fn forced(ctx: &RequestContext) -> Result<bool, ApiError> {
    let mut force = false;
    for flag in [
        "force_image_layer_creation",
        "force_l0_compaction",
        "force_repartition",
    ] {
        force |= ctx.query_parsed::<bool>(flag)?.unwrap_or(false);
    }
    Ok(force)
}

async fn run_compaction(tl: &Timeline, force: bool) -> Result<(), ApiError> {
    let _permit = tl
        .resources
        .background_permit(BackgroundKind::Compaction)
        .await;
    let outcome = if force {
        tl.compact_forced().await
    } else {
        tl.compact().await
    };
    let outcome = outcome.map_err(internal)?;
    tracing::info!(timeline_id = %tl.timeline_id, ?outcome, "compaction requested over HTTP done");
    Ok(())
}

/// `PUT .../checkpoint`: flush everything in memory to layer files, then
/// (unless `compact=false`) compact.
pub async fn timeline_checkpoint(ctx: RequestContext) -> HandlerResult {
    let tl = timeline(&ctx).await?;
    let force = forced(&ctx)?;
    let compact = ctx.query_parsed::<bool>("compact")?.unwrap_or(true);
    tl.freeze_and_flush().await.map_err(internal)?;
    if compact {
        run_compaction(&tl, force).await?;
    }
    ok_json(&())
}

/// `PUT .../compact`: one compaction pass; with a `force_*` flag the
/// L0-count and delta-depth thresholds are ignored.
pub async fn timeline_compact(ctx: RequestContext) -> HandlerResult {
    let tl = timeline(&ctx).await?;
    let force = forced(&ctx)?;
    run_compaction(&tl, force).await?;
    ok_json(&())
}

/// `PUT .../do_gc` with `{"gc_horizon": u64|null}`.
pub async fn timeline_gc(ctx: RequestContext) -> HandlerResult {
    let (id, timeline_id) = (ctx.tenant_shard_id()?, ctx.timeline_id()?);
    let request: TimelineGcRequest = if ctx.body.is_empty() {
        TimelineGcRequest::default()
    } else {
        ctx.json()?
    };
    let storage = ctx.state.tenants.get_storage(id).await?;
    let tl = storage.get(timeline_id).ok_or_else(|| {
        ApiError::NotFound(format!("timeline {timeline_id} of tenant {id} not found"))
    })?;
    let started = Instant::now();
    let outcome = storage
        .gc_timeline(&tl, SystemTime::now(), request.gc_horizon)
        .await
        .map_err(internal)?;
    let kept = outcome.layers_kept as u64;
    let for_branches = outcome.kept_for_branches as u64;
    let for_leases = outcome.kept_for_leases as u64;
    ok_json(&GcResult {
        layers_total: kept + outcome.layers_removed as u64,
        layers_needed_by_cutoff: kept.saturating_sub(for_branches + for_leases),
        layers_needed_by_pitr: 0,
        layers_needed_by_branches: for_branches,
        layers_needed_by_leases: for_leases,
        layers_not_updated: 0,
        layers_removed: outcome.layers_removed as u64,
        elapsed: started.elapsed().as_millis() as u64,
    })
}

/// `GET .../layer`.
pub async fn timeline_layers(ctx: RequestContext) -> HandlerResult {
    let tl = timeline(&ctx).await?;
    ok_json(&tl.layer_map_info().await)
}

/// `POST .../lsn_lease` with `{"lsn": "X/Y"}`: keeps reads at that LSN
/// possible for the tenant's `lsn_lease_length`.
pub async fn timeline_lsn_lease(ctx: RequestContext) -> HandlerResult {
    let tl = timeline(&ctx).await?;
    let request: LsnLeaseRequest = ctx.json()?;
    let cutoff = tl.get_gc_cutoff_lsn();
    if request.lsn < cutoff {
        return Err(ApiError::BadRequest(format!(
            "LSN {} is below the GC cutoff {cutoff}; it cannot be leased",
            request.lsn
        )));
    }
    let until = SystemTime::now() + tl.conf().lsn_lease_length;
    tl.add_lease(request.lsn, until);
    ok_json(&LsnLease {
        valid_until: humantime::format_rfc3339_millis(until).to_string(),
    })
}

/// `GET .../getpage?key=<36 hex digits>&lsn=<X/Y>`: the value of one key,
/// as raw bytes; `lsn` defaults to the last record LSN.
pub async fn timeline_getpage(ctx: RequestContext) -> HandlerResult {
    let tl = timeline(&ctx).await?;
    let key: Key = ctx
        .query_parsed("key")?
        .ok_or_else(|| ApiError::BadRequest("query parameter key is required".to_owned()))?;
    let lsn = ctx
        .query_parsed::<Lsn>("lsn")?
        .unwrap_or_else(|| tl.get_last_record_lsn());
    let page = tl.get(key, lsn).await.map_err(get_error)?;
    let mut response = http::Response::new(Full::new(page));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

fn get_error(e: GetError) -> ApiError {
    let msg = e.to_string();
    match e {
        GetError::Reconstruct(PageReconstructError::MissingKey { .. }) => ApiError::NotFound(msg),
        GetError::Vectored(GetVectoredError::BelowGcCutoff { .. })
        | GetError::Vectored(GetVectoredError::Oversized { .. }) => ApiError::BadRequest(msg),
        GetError::Vectored(GetVectoredError::WaitLsn(WaitLsnError::Timeout { .. })) => {
            ApiError::Timeout(msg)
        }
        GetError::Vectored(GetVectoredError::WaitLsn(WaitLsnError::Cancelled))
        | GetError::Vectored(GetVectoredError::Cancelled) => ApiError::ShuttingDown,
        _ => ApiError::Internal(msg),
    }
}

/// `PUT .../dev/put` (only with `dev_mode = true`): writes values as one
/// atomic batch and publishes `commit_lsn`, exactly as WAL ingest will.
pub async fn timeline_dev_put(ctx: RequestContext) -> HandlerResult {
    if !ctx.state.conf.dev_mode {
        return Err(ApiError::NotFound("page not found".to_owned()));
    }
    let tl = timeline(&ctx).await?;
    let request: DevPutRequest = ctx.json()?;
    let mut batch = Vec::with_capacity(request.values.len());
    for (i, v) in request.values.iter().enumerate() {
        batch.push(dev_value(i, v)?);
    }
    let mut writer = tl.writer().await;
    writer
        .put_batch(&batch, request.commit_lsn)
        .await
        .map_err(|e| match e {
            WriteError::Cancelled => ApiError::ShuttingDown,
            e @ (WriteError::LsnNotAdvancing { .. }
            | WriteError::LsnAboveCommit { .. }
            | WriteError::CommitBehind { .. }) => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        })?;
    Ok(super::error::json_response(StatusCode::OK, &()))
}

fn dev_value(i: usize, v: &DevPutValue) -> Result<(Key, Lsn, Value), ApiError> {
    let bad = |what: String| ApiError::BadRequest(format!("values[{i}]: {what}"));
    let key: Key = v
        .key
        .parse()
        .map_err(|e| bad(format!("key {:?}: {e}", v.key)))?;
    let decode = |field: &str, text: &str| {
        hex::decode(text)
            .map(Bytes::from)
            .map_err(|e| bad(format!("{field} is not hex: {e}")))
    };
    let value = match (&v.image, &v.test_append, &v.postgres_record) {
        (Some(image), None, None) => Value::Image(decode("image", image)?),
        (None, Some(append), None) => Value::WalRecord(WalRecord::Test {
            append: decode("test_append", append)?,
            will_init: v.will_init,
            clear: false,
        }),
        (None, None, Some(rec)) => Value::WalRecord(WalRecord::Postgres {
            will_init: v.will_init,
            rec: decode("postgres_record", rec)?,
        }),
        _ => {
            return Err(bad(
                "exactly one of image, test_append and postgres_record is required".into(),
            ))
        }
    };
    Ok((key, v.lsn, value))
}
