//! Typed responses. `Reply<T>` is what a handler answers with, JSON or (with a
//! `Csv` body) CSV, or either as `Accept` asks (`JsonOrCsv`): personal data and
//! writes are `private, no-store`; public
//! catalogue reads carry a strong ETag and shared-cache headers, and answer
//! `If-None-Match` with 304. `NoContent` is the 204 of deletes and logouts.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ApiError;

/// Cache policy for personal data and writes.
pub const PRIVATE_NO_STORE: &str = "private, no-store";
/// Cache policy for public catalogue reads.
pub const PUBLIC_CATALOGUE_CACHE: &str = "public, max-age=60, stale-while-revalidate=300";

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

/// A CSV document (RFC 4180, CRLF line ends). Text cells are always quoted, and
/// one starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed
/// with `'`, so a spreadsheet shows it as text instead of running it as a formula.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csv {
    text: String,
}

/// One CSV cell: text (quoted and neutralised) or a number (written as is).
#[derive(Debug, Clone, Copy)]
pub enum CsvCell<'a> {
    Text(&'a str),
    Number(i64),
}

impl<'a> From<&'a str> for CsvCell<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(text)
    }
}

impl From<i64> for CsvCell<'_> {
    fn from(number: i64) -> Self {
        Self::Number(number)
    }
}

impl Csv {
    /// A document with the header row `columns` (plain names, written as they are).
    pub fn new(columns: &[&str]) -> Self {
        Self { text: format!("{}\r\n", columns.join(",")) }
    }

    /// Appends one row.
    pub fn row(&mut self, cells: &[CsvCell<'_>]) {
        for (position, cell) in cells.iter().enumerate() {
            if position > 0 {
                self.text.push(',');
            }
            match cell {
                CsvCell::Number(number) => self.text.push_str(&number.to_string()),
                CsvCell::Text(text) => {
                    self.text.push('"');
                    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                        self.text.push('\'');
                    }
                    self.text.push_str(&text.replace('"', "\"\""));
                    self.text.push('"');
                }
            }
        }
        self.text.push_str("\r\n");
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// How a reply's body is written out: JSON for any `Serialize` type, CSV for `Csv`.
pub trait ReplyBody {
    /// The body and its content type.
    fn render(&self) -> Result<(String, &'static str), ApiError>;
}

impl<T: Serialize> ReplyBody for T {
    fn render(&self) -> Result<(String, &'static str), ApiError> {
        Ok((serde_json::to_string(self).map_err(ApiError::internal)?, "application/json"))
    }
}

impl ReplyBody for Csv {
    fn render(&self) -> Result<(String, &'static str), ApiError> {
        Ok((self.text.clone(), "text/csv; charset=utf-8"))
    }
}

/// A body with two representations: JSON, or CSV when `Accept` asks for it
/// (`JsonOrCsv::wanted`).
#[derive(Debug)]
pub enum JsonOrCsv<T> {
    Json(T),
    Csv(Csv),
}

impl<T> JsonOrCsv<T> {
    /// Whether `Accept` in `request` asks for CSV: it names `text/csv` and not
    /// `application/json`.
    pub fn wanted(request: &HeaderMap) -> bool {
        request
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv") && !accept.contains("application/json"))
    }
}

impl<T: Serialize> ReplyBody for JsonOrCsv<T> {
    fn render(&self) -> Result<(String, &'static str), ApiError> {
        match self {
            Self::Json(body) => body.render(),
            Self::Csv(csv) => csv.render(),
        }
    }
}

/// A JSON (or CSV) response with its status, cache policy and headers.
#[derive(Debug)]
#[must_use]
pub struct Reply<T> {
    status: StatusCode,
    body: T,
    /// `Some(If-None-Match)` for a public, cacheable read; `None` for private data.
    public: Option<Option<String>>,
    etag: Option<String>,
    headers: Vec<(HeaderName, String)>,
}

impl<T: ReplyBody> Reply<T> {
    /// `status` with `body`, `Cache-Control: private, no-store`.
    pub fn with_status(status: StatusCode, body: T) -> Self {
        Self { status, body, public: None, etag: None, headers: Vec::new() }
    }

    /// 200, private.
    pub fn ok(body: T) -> Self {
        Self::with_status(StatusCode::OK, body)
    }

    /// 201, private, with `Location`: the one answer of a request that made
    /// something with its own URL.
    pub fn created(body: T, location: String) -> Self {
        Self::with_status(StatusCode::CREATED, body).header(header::LOCATION, location)
    }

    /// Marks the answer `Idempotent-Replayed: true` when `replayed`: an earlier
    /// request with the same `Idempotency-Key` made what it carries.
    pub fn replayed(self, replayed: bool) -> Self {
        if replayed {
            self.header(HeaderName::from_static("idempotent-replayed"), "true".into())
        } else {
            self
        }
    }

    /// 200 for a public catalogue read: shared caching and an ETag (over the body
    /// unless `etag` sets the entity's own); 304 without a body when the
    /// `If-None-Match` of `request` lists it.
    pub fn public(body: T, request: &HeaderMap) -> Self {
        let if_none_match = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self { public: Some(if_none_match), ..Self::ok(body) }
    }

    /// Sets the ETag (e.g. the entity's version) instead of one over the body.
    pub fn etag(mut self, etag: String) -> Self {
        self.etag = Some(etag);
        self
    }

    pub fn header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn build(self) -> Result<Response, ApiError> {
        let (body, content_type) = self.body.render()?;
        let etag = match (&self.etag, &self.public) {
            (Some(etag), _) => Some(etag.clone()),
            (None, Some(_)) => Some(etag_of(body.as_bytes())),
            (None, None) => None,
        };
        let not_modified = match (&self.public, &etag) {
            (Some(if_none_match), Some(etag)) => none_match_hits(if_none_match.as_deref(), etag),
            _ => false,
        };
        let cache = if self.public.is_some() { PUBLIC_CATALOGUE_CACHE } else { PRIVATE_NO_STORE };
        let mut builder = Response::builder().header(header::CACHE_CONTROL, cache);
        if let Some(etag) = etag {
            builder = builder.header(header::ETAG, HeaderValue::from_str(&etag).map_err(ApiError::internal)?);
        }
        for (name, value) in self.headers {
            builder = builder.header(name, HeaderValue::from_str(&value).map_err(ApiError::internal)?);
        }
        let response = if not_modified {
            builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
        } else {
            builder.status(self.status).header(header::CONTENT_TYPE, content_type).body(Body::from(body))
        };
        response.map_err(ApiError::internal)
    }
}

impl<T: Serialize> Reply<JsonOrCsv<T>> {
    /// 200 with either representation: private, and `Vary: Accept`, as `Accept`
    /// chose it.
    pub fn negotiated(body: JsonOrCsv<T>) -> Self {
        Self::ok(body).header(header::VARY, "Accept".into())
    }
}

impl<T: ReplyBody> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        self.build().unwrap_or_else(IntoResponse::into_response)
    }
}

/// 204 No Content, private.
#[derive(Debug)]
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        (StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, PRIVATE_NO_STORE)]).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_would_run_as_formulas_are_neutralised() {
        let mut csv = Csv::new(&["name", "units"]);
        for name in ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-1", "@SUM(A1)", "\tTab", "\rCR", "Apples"] {
            csv.row(&[name.into(), 2.into()]);
        }
        csv.row(&["-".into(), (-5).into()]);
        let lines: Vec<&str> = csv.as_str().split("\r\n").collect();
        assert_eq!(
            lines,
            [
                "name,units",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",2",
                "\"'+1\",2",
                "\"'-1\",2",
                "\"'@SUM(A1)\",2",
                "\"'\tTab\",2",
                "\"'\rCR\",2",
                "\"Apples\",2",
                "\"'-\",-5",
                "",
            ]
        );
    }

    #[tokio::test]
    async fn csv_replies_are_private_and_vary_on_accept() {
        let mut csv = Csv::new(&["name"]);
        csv.row(&["Apples".into()]);
        let response = Reply::negotiated(JsonOrCsv::<()>::Csv(csv)).into_response();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], PRIVATE_NO_STORE);
        assert_eq!(headers[header::VARY], "Accept");
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"name\r\n\"Apples\"\r\n");
    }
}
