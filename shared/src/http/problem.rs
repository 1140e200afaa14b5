//! `ApiError`, the one error type handlers and extractors return, and its mapping
//! to RFC 9457 problem+json responses carrying the request id. Storage and other
//! internal errors are logged with their full cause chain and reach the client as
//! an opaque 500.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::accounts::AccountError;
use crate::catalogue::CatalogueError;
use crate::domain::FieldError;
use crate::orders::{OpenLimit, OrderError, Shortage};
use crate::ports::{BlobError, JobError, StoreError};
use crate::tokens::TokenError;

/// An RFC 9457 problem, the body of every error response. Validation problems
/// (422) list each bad field in `errors`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Stable identifier of the kind of problem.
    #[serde(rename = "type")]
    #[schema(format = "uri-reference", examples("/problems/validation"))]
    pub kind: &'static str,
    #[schema(examples("Unprocessable Entity"))]
    pub title: &'static str,
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    pub detail: String,
    /// The request id, also in the `x-request-id` header; quote it when reporting a problem.
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldError>>,
    /// On a checkout's 409: each product short of stock and what is left.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub shortages: Option<Vec<Shortage>>,
    /// On a checkout's 409 of type `/problems/open-order-limit`: which of the
    /// customer's open-order limits the checkout would pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limit: Option<OpenLimit>,
}

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
    /// 410: the thing asked for existed but is used up or expired (a link token).
    #[error("{0}")]
    Gone(String),
    /// 409 naming each product short of stock.
    #[error("{detail}")]
    OutOfStock { detail: String, shortages: Vec<Shortage> },
    /// 409 naming the open-order limit a checkout would pass.
    #[error("{detail}")]
    OpenOrderLimit { detail: String, limit: OpenLimit },
    /// 409 with `Retry-After`: the same request is still in flight.
    #[error("{detail}")]
    Busy { detail: String, retry_after_secs: u64 },
    /// 412: `If-Match` does not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 428: a header the request needs is missing (`Idempotency-Key`).
    #[error("{0}")]
    PreconditionRequired(String),
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
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::OutOfStock { .. } | ApiError::OpenOrderLimit { .. } | ApiError::Busy { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
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
            ApiError::Gone(_) => "/problems/gone",
            ApiError::OutOfStock { .. } => "/problems/out-of-stock",
            ApiError::OpenOrderLimit { .. } => "/problems/open-order-limit",
            ApiError::Busy { .. } => "/problems/in-flight",
            ApiError::PreconditionRequired(_) => "/problems/precondition-required",
            ApiError::PreconditionFailed(_) => "/problems/precondition-failed",
            ApiError::PayloadTooLarge { .. } => "/problems/payload-too-large",
            ApiError::UnsupportedMediaType(_) => "/problems/unsupported-media-type",
            ApiError::Validation(_) => "/problems/validation",
            ApiError::TooManyRequests { .. } => "/problems/too-many-requests",
            ApiError::Internal(_) => "/problems/internal",
        }
    }

    /// The problem+json response, carrying `request_id`. Internal errors are
    /// logged here with their whole cause chain and never shown to the client.
    pub fn problem(self, request_id: &str) -> Response {
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
        let errors = match &self {
            ApiError::Validation(errors) => Some(errors.clone()),
            _ => None,
        };
        let shortages = match &self {
            ApiError::OutOfStock { shortages, .. } => Some(shortages.clone()),
            _ => None,
        };
        let limit = match &self {
            ApiError::OpenOrderLimit { limit, .. } => Some(*limit),
            _ => None,
        };
        let body = Problem {
            kind: self.type_uri(),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            request_id: request_id.to_owned(),
            errors,
            shortages,
            limit,
        };
        let body = serde_json::to_string(&body).expect("a problem serializes");
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/problem+json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::from(body))
            .expect("static response parts are valid");
        if let ApiError::TooManyRequests { retry_after_secs, .. } | ApiError::Busy { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        response
    }
}

/// Inside a request served by `http::app`, the problem carries that request's id.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = super::app::current_request_id();
        self.problem(&request_id)
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Unauthenticated(detail) => ApiError::Unauthorized(detail),
            AccountError::Throttled { retry_after_secs, .. } => {
                ApiError::TooManyRequests { retry_after_secs, detail: e.to_string() }
            }
            AccountError::Invalid { field, message } => ApiError::field(field, message),
            AccountError::BadToken(detail) => ApiError::BadRequest(detail),
            AccountError::TokenGone(detail) => ApiError::Gone(detail),
            AccountError::Forbidden(detail) => ApiError::Forbidden(detail),
            AccountError::NotFound(detail) => ApiError::NotFound(detail),
            AccountError::Conflict(detail) => ApiError::Conflict(detail),
            AccountError::Store(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Invalid { field, message } => ApiError::field(&field, message),
            OrderError::Short(shortages) => {
                let names: Vec<String> =
                    shortages.iter().map(|s| format!("{} ({} left)", s.product_id, s.available)).collect();
                let detail = format!("not enough stock, nothing was ordered: {}", names.join(", "));
                ApiError::OutOfStock { detail, shortages }
            }
            OrderError::NotFound(detail) => ApiError::NotFound(detail),
            OrderError::Forbidden(detail) => ApiError::Forbidden(detail),
            OrderError::Unauthenticated(detail) => ApiError::Unauthorized(detail),
            OrderError::Conflict(detail) => ApiError::Conflict(detail),
            OrderError::InFlight => ApiError::Busy { detail: e.to_string(), retry_after_secs: 1 },
            OrderError::Limit { limit, detail } => ApiError::OpenOrderLimit { detail, limit },
            OrderError::Throttled { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs, detail: e.to_string() }
            }
            OrderError::Stale(detail) => ApiError::PreconditionFailed(detail),
            OrderError::ArchiveMissing(detail) => ApiError::Gone(detail),
            OrderError::Store(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<CatalogueError> for ApiError {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::NotFound(detail) => ApiError::NotFound(detail),
            CatalogueError::Forbidden(detail) => ApiError::Forbidden(detail),
            CatalogueError::Conflict(detail) => ApiError::Conflict(detail),
            CatalogueError::Stale(detail) => ApiError::PreconditionFailed(detail),
            CatalogueError::Invalid { field, message } => ApiError::field(field, message),
            CatalogueError::TooLarge { limit } => ApiError::PayloadTooLarge { limit: limit as usize },
            CatalogueError::UnsupportedImage(detail) => ApiError::UnsupportedMediaType(detail),
            CatalogueError::Throttled { retry_after_secs, .. } => {
                ApiError::TooManyRequests { retry_after_secs, detail: e.to_string() }
            }
            CatalogueError::Store(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Contended(_) => ApiError::Busy {
                detail: "the data is busy with concurrent requests; nothing was changed, retry shortly".into(),
                retry_after_secs: 1,
            },
            other => ApiError::internal(other),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contended_writes_are_a_409_to_retry_and_other_store_failures_a_500() {
        let busy = ApiError::from(StoreError::Contended("transaction of 3 writes".into())).problem("r1");
        assert_eq!(busy.status(), StatusCode::CONFLICT);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let through_a_use_case = ApiError::from(OrderError::Store(StoreError::Contended("x".into())));
        assert_eq!(through_a_use_case.status(), StatusCode::CONFLICT);
        let broken = ApiError::from(StoreError::Invalid("x".into()));
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
