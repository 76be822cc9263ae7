//! The route table and its handlers. Each handler parses its inputs (a bad id
//! or body is a 400), calls the tenant manager, and shapes the JSON answer the
//! way Neon's API does.

use http::{Method, StatusCode};
use pageserver_api::models::{
    FailpointConfig, LocationConfig, StatusResponse, TimelineCreateRequest, WalSourceConfig,
};
use pageserver_api::tenant_config::TenantConfig;
use utils::id::TenantId;

use super::error::{json_response, ApiError};
use super::router::{ok_json, Access, HandlerResult, RequestContext, Route};
use super::storage_routes::{
    timeline_checkpoint, timeline_compact, timeline_dev_put, timeline_gc, timeline_getpage,
    timeline_layers, timeline_lsn_lease,
};

macro_rules! route {
    ($method:ident, $path:literal, $access:ident, $handler:ident) => {
        Route {
            method: Method::$method,
            path: $path,
            access: Access::$access,
            handler: |ctx| Box::pin($handler(ctx)),
        }
    };
}

pub static ROUTES: &[Route] = &[
    route!(GET, "/v1/status", Open, status),
    route!(GET, "/metrics", Open, metrics),
    route!(GET, "/v1/tenant", NodeWide, tenant_list),
    route!(POST, "/v1/tenant", NodeWide, tenant_create),
    route!(GET, "/v1/tenant/{tenant_shard_id}", Tenant, tenant_details),
    route!(
        DELETE,
        "/v1/tenant/{tenant_shard_id}",
        Tenant,
        tenant_delete
    ),
    route!(
        PUT,
        "/v1/tenant/{tenant_shard_id}/location_config",
        Tenant,
        location_config
    ),
    route!(
        GET,
        "/v1/tenant/{tenant_shard_id}/config",
        Tenant,
        tenant_config
    ),
    route!(
        GET,
        "/v1/tenant/{tenant_shard_id}/timeline",
        Tenant,
        timeline_list
    ),
    route!(
        POST,
        "/v1/tenant/{tenant_shard_id}/timeline",
        Tenant,
        timeline_create
    ),
    route!(
        GET,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}",
        Tenant,
        timeline_details
    ),
    route!(
        DELETE,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}",
        Tenant,
        timeline_delete
    ),
    route!(
        PUT,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/checkpoint",
        Tenant,
        timeline_checkpoint
    ),
    route!(
        PUT,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/compact",
        Tenant,
        timeline_compact
    ),
    route!(
        PUT,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/do_gc",
        Tenant,
        timeline_gc
    ),
    route!(
        GET,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/layer",
        Tenant,
        timeline_layers
    ),
    route!(
        POST,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/lsn_lease",
        Tenant,
        timeline_lsn_lease
    ),
    route!(
        GET,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/getpage",
        Tenant,
        timeline_getpage
    ),
    route!(
        PUT,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/dev/put",
        Tenant,
        timeline_dev_put
    ),
    route!(
        PUT,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/wal_source",
        Tenant,
        timeline_wal_source_put
    ),
    route!(
        DELETE,
        "/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}/wal_source",
        Tenant,
        timeline_wal_source_delete
    ),
    route!(PUT, "/v1/failpoints", NodeWide, failpoints),
];

async fn status(ctx: RequestContext) -> HandlerResult {
    ok_json(&StatusResponse {
        id: ctx.state.conf.id,
    })
}

async fn metrics(_ctx: RequestContext) -> HandlerResult {
    let text = crate::metrics::gather_text()
        .map_err(|e| ApiError::Internal(format!("cannot encode metrics: {e}")))?;
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}

async fn tenant_list(ctx: RequestContext) -> HandlerResult {
    ok_json(&ctx.state.tenants.list().await?)
}

/// Legacy create: `{"new_tenant_id"?: "<hex>", ...tenant config overrides}`.
async fn tenant_create(ctx: RequestContext) -> HandlerResult {
    let mut body: serde_json::Map<String, serde_json::Value> = if ctx.body.is_empty() {
        serde_json::Map::new()
    } else {
        ctx.json()?
    };
    let tenant_id = match body.remove("new_tenant_id") {
        None | Some(serde_json::Value::Null) => TenantId::generate(),
        Some(value) => serde_json::from_value::<TenantId>(value)
            .map_err(|e| ApiError::BadRequest(format!("new_tenant_id: {e}")))?,
    };
    let tenant_conf: TenantConfig = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::BadRequest(format!("tenant config: {e}")))?;
    ctx.state
        .tenants
        .create_tenant(tenant_id, tenant_conf)
        .await?;
    Ok(json_response(StatusCode::CREATED, &tenant_id))
}

async fn tenant_details(ctx: RequestContext) -> HandlerResult {
    ok_json(&ctx.state.tenants.details(ctx.tenant_shard_id()?).await?)
}

async fn tenant_delete(ctx: RequestContext) -> HandlerResult {
    ctx.state
        .tenants
        .delete_tenant(ctx.tenant_shard_id()?)
        .await?;
    ok_json(&())
}

async fn location_config(ctx: RequestContext) -> HandlerResult {
    let id = ctx.tenant_shard_id()?;
    let config: LocationConfig = ctx.json()?;
    ok_json(&ctx.state.tenants.set_location(id, config).await?)
}

async fn tenant_config(ctx: RequestContext) -> HandlerResult {
    ok_json(&ctx.state.tenants.config(ctx.tenant_shard_id()?).await?)
}

async fn timeline_list(ctx: RequestContext) -> HandlerResult {
    ok_json(
        &ctx.state
            .tenants
            .list_timelines(ctx.tenant_shard_id()?)
            .await?,
    )
}

async fn timeline_create(ctx: RequestContext) -> HandlerResult {
    let id = ctx.tenant_shard_id()?;
    let request: TimelineCreateRequest = ctx.json()?;
    let info = ctx.state.tenants.create_timeline(id, request).await?;
    Ok(json_response(StatusCode::CREATED, &info))
}

async fn timeline_details(ctx: RequestContext) -> HandlerResult {
    let (id, timeline_id) = (ctx.tenant_shard_id()?, ctx.timeline_id()?);
    ok_json(&ctx.state.tenants.timeline(id, timeline_id).await?)
}

async fn timeline_delete(ctx: RequestContext) -> HandlerResult {
    let (id, timeline_id) = (ctx.tenant_shard_id()?, ctx.timeline_id()?);
    ctx.state.tenants.delete_timeline(id, timeline_id).await?;
    Ok(json_response(StatusCode::ACCEPTED, &()))
}

/// Follow a primary: the source is stored with the timeline (it survives
/// restarts) and the walreceiver (re)starts at once. Answers the timeline.
async fn timeline_wal_source_put(ctx: RequestContext) -> HandlerResult {
    let (id, timeline_id) = (ctx.tenant_shard_id()?, ctx.timeline_id()?);
    let source: WalSourceConfig = ctx.json()?;
    let info = ctx
        .state
        .tenants
        .set_wal_source(id, timeline_id, Some(source))
        .await?;
    ok_json(&info)
}

/// Stop following; idempotent.
async fn timeline_wal_source_delete(ctx: RequestContext) -> HandlerResult {
    let (id, timeline_id) = (ctx.tenant_shard_id()?, ctx.timeline_id()?);
    let info = ctx
        .state
        .tenants
        .set_wal_source(id, timeline_id, None)
        .await?;
    ok_json(&info)
}

/// Test hook, only with `dev_mode = true`: arms or disarms failpoints.
async fn failpoints(ctx: RequestContext) -> HandlerResult {
    if !ctx.state.conf.dev_mode {
        return Err(ApiError::NotFound("page not found".to_owned()));
    }
    let configs: Vec<FailpointConfig> = ctx.json()?;
    let mut parsed = Vec::with_capacity(configs.len());
    for fp in configs {
        let action = fp
            .actions
            .parse::<utils::failpoint::Action>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        parsed.push((fp.name, action));
    }
    for (name, action) in parsed {
        tracing::info!("failpoint {name} set to {action:?}");
        utils::failpoint::configure(&name, action);
    }
    ok_json(&())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route in the table is documented in the OpenAPI spec, and the
    /// spec documents nothing the server does not serve.
    #[test]
    fn openapi_spec_matches_routes() {
        let text = include_str!("openapi_spec.yml");
        let spec: serde_yaml::Value = serde_yaml::from_str(text).expect("spec is YAML");
        let paths = spec["paths"].as_mapping().expect("spec has paths");
        let mut documented = std::collections::BTreeSet::new();
        for (path, ops) in paths {
            let path = path.as_str().expect("path is a string");
            for (method, _) in ops.as_mapping().expect("operations") {
                let method = method.as_str().expect("method is a string");
                if ["get", "put", "post", "delete", "patch", "head"].contains(&method) {
                    documented.insert((method.to_uppercase(), path.to_owned()));
                }
            }
        }
        let served: std::collections::BTreeSet<_> = ROUTES
            .iter()
            .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
            .collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let phantom: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi_spec.yml: {undocumented:?}"
        );
        assert!(
            phantom.is_empty(),
            "spec documents routes the server lacks: {phantom:?}"
        );
    }
}
