//! JSON responses: personal data is `private, no-store`; public catalogue reads
//! carry a strong ETag and shared-cache headers, and answer `If-None-Match` with 304.

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ApiError, RequestCtx};

/// What handlers return.
pub type HttpResponse = Result<Response<Body>, ApiError>;

/// Cache policy for personal data and writes.
pub const PRIVATE_NO_STORE: &str = "private, no-store";
/// Cache policy for public catalogue reads.
pub const PUBLIC_CATALOGUE_CACHE: &str = "public, max-age=60, stale-while-revalidate=300";

fn encode(value: &impl Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

/// A JSON response with `Cache-Control: private, no-store`.
pub fn json(status: StatusCode, value: &impl Serialize) -> HttpResponse {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, PRIVATE_NO_STORE)
        .body(Body::Text(encode(value)?))
        .map_err(ApiError::internal)
}

/// A strong ETag over `bytes`: the first 128 bits of their SHA-256, quoted.
pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..32])
}

/// Whether an `If-None-Match` header value lists `etag` (weak comparison, as RFC
/// 9110 asks for this header) or is `*`.
pub fn none_match_hits(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|list| {
        list.split(',').map(|tag| tag.trim().trim_start_matches("W/")).any(|tag| tag == "*" || tag == etag)
    })
}

/// A public, cacheable 200 with a strong ETag over the body; 304 (no body) when
/// the request's `If-None-Match` lists that ETag or is `*`.
pub fn json_cacheable(ctx: &RequestCtx, value: &impl Serialize) -> HttpResponse {
    let body = encode(value)?;
    let etag = etag_of(body.as_bytes());
    cacheable(ctx, body, &etag)
}

/// Like `json_cacheable`, with the entity's own ETag (e.g. its version) instead
/// of a hash of the body.
pub fn json_cacheable_tagged(ctx: &RequestCtx, value: &impl Serialize, etag: &str) -> HttpResponse {
    cacheable(ctx, encode(value)?, etag)
}

fn cacheable(ctx: &RequestCtx, body: String, etag: &str) -> HttpResponse {
    let not_modified = none_match_hits(ctx.header(header::IF_NONE_MATCH), etag);
    let builder = Response::builder()
        .header(header::ETAG, HeaderValue::from_str(etag).map_err(ApiError::internal)?)
        .header(header::CACHE_CONTROL, PUBLIC_CATALOGUE_CACHE);
    let response = if not_modified {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::Empty)
    } else {
        builder.status(StatusCode::OK).header(header::CONTENT_TYPE, "application/json").body(Body::Text(body))
    };
    response.map_err(ApiError::internal)
}

/// 204 No Content.
pub fn no_content() -> HttpResponse {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::CACHE_CONTROL, PRIVATE_NO_STORE)
        .body(Body::Empty)
        .map_err(ApiError::internal)
}
