//! Request dispatch: path matching (`matchit`), JWT auth per route, body
//! reading with a size limit, per-route metrics, and the launch-timestamp
//! header every response carries.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use utils::auth::{check_permission, JwtAuth};
use utils::id::{TenantId, TimelineId};
use utils::shard::TenantShardId;

use super::error::{json_response, ApiError};
use super::routes::ROUTES;
use crate::config::PageServerConf;
use crate::metrics::{HTTP_REQUESTS, HTTP_REQUEST_DURATION};
use crate::tenant::mgr::TenantManager;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const LAUNCH_TIMESTAMP_HEADER: &str = "pageserver_launch_timestamp";
const FAILPOINTS_ROUTE: &str = "/v1/failpoints";

/// Everything a handler may use.
pub struct HttpState {
    pub conf: Arc<PageServerConf>,
    pub tenants: Arc<TenantManager>,
    pub auth: Option<Arc<JwtAuth>>,
    pub launch_timestamp: HeaderValue,
}

pub type HandlerResult = Result<Response<Full<Bytes>>, ApiError>;
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
pub type Handler = fn(RequestContext) -> HandlerFuture;

/// Who may call a route when auth is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (status, metrics).
    Open,
    /// Needs a `pageserverapi` token.
    NodeWide,
    /// Needs a token for the tenant in the `tenant_shard_id` path parameter.
    Tenant,
}

pub struct Route {
    pub method: Method,
    /// `matchit` template, e.g. `/v1/tenant/{tenant_shard_id}`.
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
}

/// A matched request, handed to its handler.
pub struct RequestContext {
    pub state: Arc<HttpState>,
    pub params: Vec<(String, String)>,
    pub query: Option<String>,
    pub body: Bytes,
}

impl RequestContext {
    fn param(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::Internal(format!("route has no parameter {name}")))
    }

    pub fn tenant_shard_id(&self) -> Result<TenantShardId, ApiError> {
        parse_tenant_shard_id(self.param("tenant_shard_id")?)
    }

    pub fn timeline_id(&self) -> Result<TimelineId, ApiError> {
        self.param("timeline_id")?
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("{e}")))
    }

    /// The (percent-decoded) value of query parameter `name`, if given.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Query parameter `name` parsed as `T`; absent is `None`, unparsable a 400.
    pub fn query_parsed<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.query_param(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ApiError::BadRequest(format!("query parameter {name}={v:?}: {e}")))
            })
            .transpose()
    }

    /// The body as JSON of type `T`; malformed or mistyped JSON is a 400.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadRequest(format!("malformed request body: {e}")))
    }
}

fn parse_tenant_shard_id(s: &str) -> Result<TenantShardId, ApiError> {
    s.parse().map_err(|e| ApiError::BadRequest(format!("{e}")))
}

/// Path templates mapped to their indices in [`ROUTES`].
static MATCHER: LazyLock<matchit::Router<Vec<usize>>> = LazyLock::new(|| {
    let mut by_path: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, route) in ROUTES.iter().enumerate() {
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, indices)) => indices.push(i),
            None => by_path.push((route.path, vec![i])),
        }
    }
    let mut router = matchit::Router::new();
    for (path, indices) in by_path {
        if let Err(e) = router.insert(path, indices) {
            panic!("route table is static and must be consistent: {e}");
        }
    }
    router
});

/// Serves one request; never fails (errors become responses).
pub async fn handle(state: Arc<HttpState>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = request.method().clone();
    let has_body = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || request
            .headers()
            .contains_key(http::header::TRANSFER_ENCODING);
    let (route_label, mut response) = match dispatch(&state, request).await {
        Ok((label, response)) => (label, response),
        Err((label, err)) => {
            let mut response = err.into_response();
            // A request refused before its body was read leaves the body on
            // the connection; tell the client not to reuse it (hyper closes
            // it), instead of racing a reused connection against the close.
            if has_body {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            (label, response)
        }
    };
    HTTP_REQUESTS
        .with_label_values(&[route_label, method.as_str(), response.status().as_str()])
        .inc();
    HTTP_REQUEST_DURATION
        .with_label_values(&[route_label, method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
        .headers_mut()
        .insert(LAUNCH_TIMESTAMP_HEADER, state.launch_timestamp.clone());
    response
}

type Labelled<T> = Result<(&'static str, T), (&'static str, ApiError)>;

async fn dispatch(
    state: &Arc<HttpState>,
    request: Request<Incoming>,
) -> Labelled<Response<Full<Bytes>>> {
    const UNMATCHED: &str = "unmatched";
    let path = request.uri().path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let matched = MATCHER
        .at(path)
        .map_err(|_| (UNMATCHED, ApiError::NotFound("page not found".to_owned())))?;
    let route = matched
        .value
        .iter()
        .map(|&i| &ROUTES[i])
        .find(|r| r.method == request.method());
    let Some(route) = route else {
        let label = ROUTES[matched.value[0]].path;
        return Err((label, ApiError::MethodNotAllowed));
    };
    let label = route.path;
    let params: Vec<(String, String)> = matched
        .params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let with_label = |e| (label, e);

    authorize(state, route, &request, &params).map_err(with_label)?;

    // The failpoints route itself is exempt, so an armed point can be disarmed.
    if route.path != FAILPOINTS_ROUTE && utils::failpoint::hit("http-request-panic").await {
        return Err(with_label(ApiError::Internal(
            "failpoint http-request-panic".to_owned(),
        )));
    }

    let query = request.uri().query().map(str::to_owned);
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::BadRequest(format!("cannot read request body: {e}"))
            }
        })
        .map_err(with_label)?
        .to_bytes();
    let ctx = RequestContext {
        state: Arc::clone(state),
        params,
        query,
        body,
    };
    (route.handler)(ctx)
        .await
        .map(|r| (label, r))
        .map_err(with_label)
}

fn authorize(
    state: &HttpState,
    route: &Route,
    request: &Request<Incoming>,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    let Some(auth) = &state.auth else {
        return Ok(());
    };
    if route.access == Access::Open {
        return Ok(());
    }
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".to_owned()))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "malformed Authorization header: expected Bearer <token>".to_owned(),
            )
        })?;
    let claims = auth
        .decode(token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let tenant: Option<TenantId> = match route.access {
        Access::Tenant => {
            let raw = params
                .iter()
                .find(|(k, _)| k == "tenant_shard_id")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            Some(parse_tenant_shard_id(raw)?.tenant_id)
        }
        Access::NodeWide | Access::Open => None,
    };
    check_permission(&claims, tenant).map_err(|e| ApiError::Forbidden(e.to_string()))
}

/// `200 OK` with a JSON body.
pub fn ok_json<T: serde::Serialize + ?Sized>(body: &T) -> HandlerResult {
    Ok(json_response(StatusCode::OK, body))
}
