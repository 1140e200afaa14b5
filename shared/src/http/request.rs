//! `RequestCtx`: one parsed request as handlers see it (route, path parameters,
//! query, headers, body), with JSON body parsing and the bearer-token guard.

use std::collections::HashMap;

use bytes::Bytes;
use http::{header, HeaderMap, Method};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::domain::{FieldError, Role};
use crate::tokens::{Claims, TokenKeys};

/// JSON bodies larger than this answer 413.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// A request matched to one of the function's routes.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// API Gateway's request id (a fresh ULID when the event has none).
    pub request_id: String,
    pub method: Method,
    /// The matched route template, e.g. `/categories/{id}`.
    pub route: &'static str,
    pub params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RequestCtx {
    /// A path parameter of the matched route (always present by construction).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or_default()
    }

    /// A query-string parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A header as text, if present and visible ASCII.
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Parses the JSON body: 415 unless `Content-Type` is JSON, 413 above
    /// `MAX_JSON_BODY_BYTES`, 400 for malformed JSON (including invalid UTF-8), and
    /// 422 naming the field for a missing field, a wrong type or an unknown value.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let content_type = self.header(header::CONTENT_TYPE).unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected Content-Type: application/json, got {:?}",
                if content_type.is_empty() { "(none)" } else { content_type }
            )));
        }
        if self.body.len() > MAX_JSON_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge { limit: MAX_JSON_BODY_BYTES });
        }
        // Syntax first (so trailing garbage and invalid UTF-8 are 400), then shape.
        let value: serde_json::Value = serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ApiError::Validation(vec![field_error(&path, &e.into_inner().to_string())])
        })
    }

    /// The verified claims of the bearer token: 401 when absent or invalid.
    pub fn authenticate(&self, keys: &TokenKeys) -> Result<Claims, ApiError> {
        let value = self
            .header(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("an Authorization: Bearer token is required".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be \"Bearer <token>\"".into()))?;
        Ok(keys.verify(token)?)
    }

    /// Like `authenticate`, then 403 unless the user has one of `roles`.
    pub fn require_role(&self, keys: &TokenKeys, roles: &[Role]) -> Result<Claims, ApiError> {
        let claims = self.authenticate(keys)?;
        if roles.contains(&claims.role) {
            Ok(claims)
        } else {
            Err(ApiError::Forbidden(format!("this action is not allowed for the role {}", claims.role.as_str())))
        }
    }
}

/// For `#[serde(default, deserialize_with = "explicit")]` on an `Option<Value>`
/// field: an absent field stays `None`, an explicit `null` becomes
/// `Some(Value::Null)` (so a PATCH can tell "leave as is" from "clear").
pub fn explicit<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    use serde::Deserialize;
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// Turns a serde data error at `path` into a field error. Serde reports a missing
/// field at its parent's path with the name in the message (``missing field `x` ``).
fn field_error(path: &str, message: &str) -> FieldError {
    let message = message.split(" at line ").next().unwrap_or(message);
    let parent = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let field = if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") };
        return FieldError { field, message: "is required".into() };
    }
    let field = if parent.is_empty() { "(body)".to_owned() } else { parent.to_owned() };
    FieldError { field, message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        display_name: String,
        role: Role,
        count: u32,
    }

    fn ctx(content_type: &str, body: &[u8]) -> RequestCtx {
        let mut headers = HeaderMap::new();
        if !content_type.is_empty() {
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        }
        RequestCtx {
            request_id: "r".into(),
            method: Method::POST,
            route: "/x",
            params: HashMap::new(),
            query: HashMap::new(),
            headers,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn error_of(content_type: &str, body: &[u8]) -> ApiError {
        ctx(content_type, body).json::<Body>().unwrap_err()
    }

    #[test]
    fn json_body_errors_map_to_the_right_status_and_field() {
        assert!(matches!(error_of("", b"{}"), ApiError::UnsupportedMediaType(_)));
        assert!(matches!(error_of("text/plain", b"{}"), ApiError::UnsupportedMediaType(_)));
        assert!(matches!(error_of("application/json", b"{"), ApiError::BadRequest(_)));
        assert!(matches!(error_of("application/json", b"{}  x"), ApiError::BadRequest(_)));
        assert!(matches!(error_of("application/json", b"\"\xff\""), ApiError::BadRequest(_)));
        let big = vec![b' '; MAX_JSON_BODY_BYTES + 1];
        assert!(matches!(error_of("application/json", &big), ApiError::PayloadTooLarge { .. }));
        let ApiError::Validation(errors) =
            error_of("application/json; charset=utf-8", br#"{"role":"customer","count":1}"#)
        else {
            panic!("expected validation")
        };
        assert_eq!(errors[0].field, "displayName");
        let ApiError::Validation(errors) =
            error_of("application/json", br#"{"displayName":"a","role":"king","count":1}"#)
        else {
            panic!("expected validation")
        };
        assert_eq!(errors[0].field, "role");
        let ApiError::Validation(errors) =
            error_of("application/json", br#"{"displayName":"a","role":"admin","count":"x"}"#)
        else {
            panic!("expected validation")
        };
        assert_eq!(errors[0].field, "count");
    }
}
