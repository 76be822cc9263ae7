//! API errors and their HTTP form: a status code and a `{"msg": ...}` body.
//! Client mistakes map to 4xx; only genuine server faults are 5xx.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::tenant::mgr::MgrError;
use crate::tenant::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Bad request: {0}")]
    BadRequest(String),
    #[error("Unauthorized: {0}")]
    Unauthorized(String),
    #[error("Forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("Not acceptable: {0}")]
    NotAcceptable(String),
    #[error("Conflict: {0}")]
    Conflict(String),
    #[error("Precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("Timeout: {0}")]
    Timeout(String),
    #[error("Shutting down")]
    ShuttingDown,
    #[error("Internal server error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("request failed: {self}");
        }
        let body = serde_json::json!({ "msg": self.to_string() });
        json_response(status, &body)
    }
}

impl From<MgrError> for ApiError {
    fn from(e: MgrError) -> Self {
        let msg = e.to_string();
        match e {
            MgrError::BadRequest(_) => ApiError::BadRequest(msg),
            MgrError::TenantNotFound(_)
            | MgrError::TimelineNotFound(..)
            | MgrError::AncestorNotFound(..) => ApiError::NotFound(msg),
            MgrError::Conflict(_) => ApiError::Conflict(msg),
            MgrError::PreconditionFailed(_) => ApiError::PreconditionFailed(msg),
            MgrError::NotAcceptable(_) => ApiError::NotAcceptable(msg),
            MgrError::ShuttingDown | MgrError::Storage(StorageError::ShuttingDown) => {
                ApiError::ShuttingDown
            }
            MgrError::Storage(StorageError::TimelineExists(_)) => ApiError::Conflict(msg),
            MgrError::Storage(StorageError::TimelineNotFound(_)) => ApiError::NotFound(msg),
            MgrError::Storage(StorageError::HasChildren(_)) => ApiError::PreconditionFailed(msg),
            MgrError::Broken(..)
            | MgrError::Import(..)
            | MgrError::Persistence(_)
            | MgrError::Join(_)
            | MgrError::Storage(_) => ApiError::Internal(msg),
        }
    }
}

/// A JSON response; serialising our own models cannot fail, but if it did the
/// client gets a 500 rather than the process a panic.
pub fn json_response<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Response<Full<Bytes>> {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "msg": format!("cannot encode response: {e}") })
                .to_string()
                .into_bytes(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
