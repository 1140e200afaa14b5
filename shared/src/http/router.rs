//! Routing inside one function: `serve` matches the request to one of the
//! function's routes (templates like `/categories/{id}`), builds the `RequestCtx`,
//! runs the handler inside a span carrying the request id, and turns every error
//! into problem+json. Unknown paths answer 404 and known paths with another
//! method 405, both as problem+json.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use super::{ApiError, HttpResponse, RequestCtx};

/// One route a function serves: method and path template, as in `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

impl Route {
    pub const fn new(method: &'static str, path: &'static str) -> Self {
        Self { method, path }
    }

    /// Path parameters when `path` matches this route's template.
    pub fn match_path(&self, path: &str) -> Option<HashMap<String, String>> {
        let mut params = HashMap::new();
        let mut want = self.path.trim_matches('/').split('/');
        let mut got = path.trim_matches('/').split('/');
        loop {
            match (want.next(), got.next()) {
                (None, None) => return Some(params),
                (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {
                    params.insert(w[1..w.len() - 1].to_owned(), percent_decode(g)?);
                }
                (Some(w), Some(g)) if w == g => {}
                _ => return None,
            }
        }
    }
}

/// Decodes `%XX` escapes of a path segment; `None` when not valid UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(segment.get(i + 1..i + 3).unwrap_or(""), 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn request_id(req: &Request) -> String {
    let from_context = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    from_context.filter(|id| !id.is_empty()).unwrap_or_else(|| ulid::Ulid::new().to_string())
}

/// Serves one request with the function's `routes`; `dispatch` receives the
/// context of the matched route (`ctx.route` names it).
pub async fn serve<F, Fut>(req: Request, routes: &'static [Route], dispatch: F) -> Response<Body>
where
    F: FnOnce(RequestCtx) -> Fut,
    Fut: Future<Output = HttpResponse>,
{
    let started = Instant::now();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    async move {
        let matched = routes.iter().find_map(|route| {
            (route.method == method.as_str()).then(|| route.match_path(&path).map(|params| (route, params))).flatten()
        });
        let result = match matched {
            Some((route, params)) => {
                let query = req
                    .query_string_parameters_ref()
                    .map(|q| q.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
                    .unwrap_or_default();
                let (parts, body) = req.into_parts();
                let body = match body {
                    Body::Empty => Bytes::new(),
                    Body::Text(text) => Bytes::from(text),
                    Body::Binary(bytes) => Bytes::from(bytes),
                    _ => Bytes::new(),
                };
                let ctx = RequestCtx {
                    request_id: request_id.clone(),
                    method: parts.method,
                    route: route.path,
                    params,
                    query,
                    headers: parts.headers,
                    body,
                };
                dispatch(ctx).await
            }
            None if routes.iter().any(|route| route.match_path(&path).is_some()) => Err(ApiError::MethodNotAllowed),
            None => Err(ApiError::NotFound(format!("no route for {method} {path}"))),
        };
        let mut response = result.unwrap_or_else(|error| error.into_response(&request_id));
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(header::HeaderName::from_static("x-request-id"), value);
        }
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "served"
        );
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literal_and_parameter_segments() {
        let route = Route::new("GET", "/categories/{id}");
        assert_eq!(route.match_path("/categories/abc").unwrap()["id"], "abc");
        assert_eq!(route.match_path("/categories/a%20b").unwrap()["id"], "a b");
        assert!(route.match_path("/categories").is_none());
        assert!(route.match_path("/categories/").is_none());
        assert!(route.match_path("/categories/a/b").is_none());
        assert!(route.match_path("/products/abc").is_none());
        assert!(Route::new("GET", "/categories").match_path("/categories").is_some());
    }
}
