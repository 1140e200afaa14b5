//! `ApiError`, the one error type handlers return, and its mapping to RFC 9457
//! problem+json responses. Storage and other internal errors are logged with
//! their full cause chain and reach the client as an opaque 500.

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde_json::json;

use crate::domain::FieldError;
use crate::ports::{BlobError, JobError, StoreError};
use crate::tokens::TokenError;

/// Every error a handler can answer with. Each variant's doc names its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be parsed (malformed JSON, bad cursor, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or a bad one; or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists with other methods.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: conflicts with the current state (duplicate, still in use).
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` does not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body is larger than the endpoint accepts.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415: the body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed, but fields are missing or invalid.
    #[error("{} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// 429: throttled; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64, detail: String },
    /// 500: a bug or a backend failure; the client sees only the request id.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(source.into())
    }

    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem `type` URI: a stable, documented identifier per kind.
    fn type_uri(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "/problems/bad-request",
            ApiError::Unauthorized(_) => "/problems/unauthorized",
            ApiError::Forbidden(_) => "/problems/forbidden",
            ApiError::NotFound(_) => "/problems/not-found",
            ApiError::MethodNotAllowed => "/problems/method-not-allowed",
            ApiError::Conflict(_) => "/problems/conflict",
            ApiError::PreconditionFailed(_) => "/problems/precondition-failed",
            ApiError::PayloadTooLarge { .. } => "/problems/payload-too-large",
            ApiError::UnsupportedMediaType(_) => "/problems/unsupported-media-type",
            ApiError::Validation(_) => "/problems/validation",
            ApiError::TooManyRequests { .. } => "/problems/too-many-requests",
            ApiError::Internal(_) => "/problems/internal",
        }
    }

    /// The problem+json response, carrying the request id. Internal errors are
    /// logged here with their whole cause chain and never shown to the client.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(source) => {
                let mut chain = source.to_string();
                let mut cause = source.source();
                while let Some(next) = cause {
                    chain.push_str(": ");
                    chain.push_str(&next.to_string());
                    cause = next.source();
                }
                tracing::error!(error = %chain, "internal error");
                "an internal error occurred; quote the request id when reporting it".to_owned()
            }
            ApiError::Validation(_) => "the request has invalid fields; see errors".to_owned(),
            ApiError::TooManyRequests { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        let mut body = json!({
            "type": self.type_uri(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
            "requestId": request_id,
        });
        if let ApiError::Validation(errors) = &self {
            body["errors"] = json!(errors);
        }
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/problem+json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::Text(body.to_string()))
            .expect("static response parts are valid");
        if let ApiError::TooManyRequests { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        ApiError::internal(e)
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        ApiError::internal(e)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(_) => ApiError::Unauthorized("the access token is invalid or expired".into()),
            other => ApiError::internal(other),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(e)
    }
}
