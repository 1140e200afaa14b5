//! Extractors: what a handler takes from a request, each failing with the
//! problem the HTTP conventions name. `JsonBody` (strict JSON objects), `Query`
//! (422 naming the parameter), `PathParams` (404 when a segment cannot be read),
//! `Caller` (the verified bearer token, 401; a token claiming admin rights is
//! checked against the stored account, 403) and `Authorized<Roles>` (a caller of
//! one of those roles, else 403, checked before the body is read), and `IfMatch`
//! (the versions a conditional write may apply to). Also the serde rules of strict
//! bodies: `non_null` and `nullable` for optional fields.
//!
//! Body rules, documented in the OpenAPI document's description: a body must be a
//! JSON object (an array, a string or a number is 422 on `(body)`); unknown
//! fields are ignored; `null` is accepted only where the schema says nullable,
//! and in a PATCH it clears the field while an absent field leaves it unchanged.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::header;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::ApiError;
use crate::domain::{FieldError, Role, UserId};
use crate::tokens::Claims;
use crate::AppState;

/// JSON bodies larger than this answer 413.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// A JSON object body parsed into `T`: 415 unless `Content-Type` is JSON, 413
/// above `MAX_JSON_BODY_BYTES`, 400 for malformed JSON (including invalid UTF-8),
/// and 422 naming the field for anything but an object, a missing field, a wrong
/// type, a `null` where none is allowed, or a value its domain type refuses.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    /// The body as received (for idempotency fingerprints).
    pub raw: Bytes,
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// Parses `raw` sent with `content_type` (the rules above).
    pub fn parse(content_type: Option<&str>, raw: Bytes) -> Result<Self, ApiError> {
        let content_type = content_type.unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected Content-Type: application/json, got {:?}",
                if content_type.is_empty() { "(none)" } else { content_type }
            )));
        }
        if raw.len() > MAX_JSON_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge { limit: MAX_JSON_BODY_BYTES });
        }
        // Syntax first (so trailing garbage and invalid UTF-8 are 400), then shape.
        let json: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
        let value = deserialize_listing_every_bad_field(json)?;
        Ok(Self { value, raw })
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let raw = axum::body::to_bytes(request.into_body(), MAX_JSON_BODY_BYTES + 1)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit: MAX_JSON_BODY_BYTES })?;
        Self::parse(content_type.as_deref(), raw)
    }
}

/// Deserializes an object body, naming every bad top-level field rather than
/// only the first: serde stops at the first error, so the bad field is taken out
/// and the rest tried again (a field already named, reported again as missing,
/// ends the search; so does an error below the top level).
fn deserialize_listing_every_bad_field<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, ApiError> {
    let serde_json::Value::Object(mut object) = json else {
        return Err(ApiError::field("(body)", "must be a JSON object"));
    };
    let mut errors: Vec<FieldError> = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize(serde_json::Value::Object(object.clone())) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(error) => error,
        };
        let top_level_key = match error.path().iter().collect::<Vec<_>>().as_slice() {
            [serde_path_to_error::Segment::Map { key }] => Some(key.clone()),
            _ => None,
        };
        let found = field_error(&error.path().to_string(), &error.into_inner().to_string());
        if errors.iter().any(|known| known.field == found.field) {
            break;
        }
        errors.push(found);
        match top_level_key {
            Some(key) if object.remove(&key).is_some() => continue,
            _ => break,
        }
    }
    Err(ApiError::Validation(errors))
}

/// Query-string parameters parsed into `T`: 422 naming the parameter when one
/// cannot be read; unknown parameters are ignored.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = if path == "." { "(query)".to_owned() } else { path };
            ApiError::Validation(vec![FieldError { field, message }])
        })
    }
}

/// Path parameters parsed into `T`: a segment that cannot be read is 404.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|_| ApiError::NotFound(format!("nothing at {}", parts.uri.path())))
    }
}

/// The address the request came from: API Gateway's `sourceIp` (the local
/// gateway passes the peer address); `unknown` when the event has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = match parts.extensions.get::<lambda_http::request::RequestContext>() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
            _ => None,
        };
        Ok(Self(address.filter(|a| !a.is_empty()).unwrap_or_else(|| "unknown".into())))
    }
}

/// The caller, from a valid bearer access token: 401 when absent or invalid. A
/// token claiming admin rights holds them only while the stored account is an
/// enabled admin (one read, admins only), so a demoted or disabled admin loses
/// them at once on every route, not when the token expires; else 403.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Claims, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!("this action is not allowed for the role {}", self.0.role.as_str())))
        }
    }

    pub fn role(&self) -> Role {
        self.0.role
    }

    /// The caller's user id (401 for a token naming none).
    pub fn user_id(&self) -> Result<UserId, ApiError> {
        self.0.user_id().ok_or_else(|| ApiError::Unauthorized("the access token names no user".into()))
    }
}

/// A set of roles an endpoint is for.
pub trait Allowed: Send + Sync {
    const ROLES: &'static [Role];
}

/// Admins only (by the stored account too: see `Caller`).
#[derive(Debug)]
pub struct Admins;

impl Allowed for Admins {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// Farmers only.
#[derive(Debug)]
pub struct Farmers;

impl Allowed for Farmers {
    const ROLES: &'static [Role] = &[Role::Farmer];
}

/// A caller with one of `A`'s roles: 401 without a valid token, 403 for another role.
#[derive(Debug)]
pub struct Authorized<A> {
    pub claims: Claims,
    roles: std::marker::PhantomData<A>,
}

impl<A: Allowed> Authorized<A> {
    /// The caller's user id (401 for a token naming none).
    pub fn user_id(&self) -> Result<UserId, ApiError> {
        self.claims.user_id().ok_or_else(|| ApiError::Unauthorized("the access token names no user".into()))
    }
}

impl<A: Allowed> FromRequestParts<Arc<AppState>> for Authorized<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(A::ROLES)?;
        Ok(Self { claims: caller.0, roles: std::marker::PhantomData })
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("an Authorization: Bearer token is required".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be \"Bearer <token>\"".into()))?;
        let caller = Caller(state.tokens.verify(token)?);
        if caller.role() == Role::Admin {
            match crate::repo::users::get(state.store.as_ref(), caller.user_id()?).await? {
                Some(user) if !user.disabled && user.role == Role::Admin => {}
                _ => return Err(ApiError::Forbidden("this account no longer has admin rights".into())),
            }
        }
        Ok(caller)
    }
}

/// For `#[serde(default, deserialize_with = "non_null")]` on an optional field
/// that is not nullable: absent is `None`, `null` is refused like any wrong type.
pub fn non_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// For `#[serde(default, deserialize_with = "nullable")]` on a clearable PATCH
/// field: absent is `None` (unchanged), `null` is `Some(None)` (clear).
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
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

/// The fingerprint an `Idempotency-Key` is remembered with: a hash of the raw
/// request body, so the same key with another body is told apart.
pub fn body_fingerprint(raw: &[u8]) -> String {
    crate::repo::idempotency::fingerprint(raw)
}

/// The `Idempotency-Key` header, if sent: 400 when malformed.
pub fn idempotency_key(
    headers: &http::HeaderMap,
) -> Result<Option<crate::repo::idempotency::IdempotencyKey>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let raw = value.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".into()))?;
            crate::repo::idempotency::IdempotencyKey::parse(raw)
                .map(Some)
                .map_err(|e| ApiError::BadRequest(format!("Idempotency-Key {e}")))
        }
    }
}

/// The `If-Match` header of a conditional write, parsed at the edge: the entity
/// tags it lists (`*` for any), or none when it was not sent, in which case the
/// write applies to whatever version is current. A value that is not visible
/// ASCII counts as not sent. Tags compare strongly (`W/"3"` names no version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfMatch {
    /// The header as sent, for messages.
    raw: Option<String>,
    tags: Vec<String>,
}

impl IfMatch {
    /// The header value `raw` (a comma-separated list of entity tags, or `*`).
    pub fn parse(raw: &str) -> Self {
        Self { raw: Some(raw.to_owned()), tags: raw.split(',').map(|tag| tag.trim().to_owned()).collect() }
    }

    /// Whether the header was sent: the write is then conditional on it.
    pub fn is_sent(&self) -> bool {
        self.raw.is_some()
    }

    /// Whether a write may apply to the version whose ETag is `etag`: the header
    /// was not sent, or it lists `*` or `etag`.
    pub fn allows(&self, etag: &str) -> bool {
        !self.is_sent() || self.tags.iter().any(|tag| tag == "*" || tag == etag)
    }
}

impl std::fmt::Display for IfMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.raw.as_deref().unwrap_or_default())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
        Ok(raw.map(Self::parse).unwrap_or_default())
    }
}

/// A `yyyy-mm-dd` query parameter (422 on `field` when malformed).
pub fn date_param(field: &str, raw: Option<&str>) -> Result<Option<time::Date>, ApiError> {
    raw.map(|raw| {
        time::Date::parse(raw, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| ApiError::field(field, "must be a date like 2026-11-28"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        display_name: String,
        role: Role,
        count: u32,
        #[serde(default, deserialize_with = "non_null")]
        note: Option<String>,
        #[serde(default, deserialize_with = "nullable")]
        clearable: Option<Option<String>>,
    }

    fn parse(content_type: &str, body: &[u8]) -> Result<Body, ApiError> {
        let content_type = (!content_type.is_empty()).then_some(content_type);
        JsonBody::<Body>::parse(content_type, Bytes::copy_from_slice(body)).map(|b| b.value)
    }

    fn field_of(body: &[u8]) -> String {
        match parse("application/json", body) {
            Err(ApiError::Validation(errors)) => errors[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn json_body_errors_map_to_the_right_status_and_field() {
        assert!(matches!(parse("", b"{}"), Err(ApiError::UnsupportedMediaType(_))));
        assert!(matches!(parse("text/plain", b"{}"), Err(ApiError::UnsupportedMediaType(_))));
        assert!(matches!(parse("application/json", b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse("application/json", b"{}  x"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse("application/json", b"\"\xff\""), Err(ApiError::BadRequest(_))));
        let big = vec![b' '; MAX_JSON_BODY_BYTES + 1];
        assert!(matches!(parse("application/json", &big), Err(ApiError::PayloadTooLarge { .. })));
        assert_eq!(field_of(br#"{"role":"customer","count":1}"#), "displayName");
        assert_eq!(field_of(br#"{"displayName":"a","role":"king","count":1}"#), "role");
        assert_eq!(field_of(br#"{"displayName":"a","role":"admin","count":"x"}"#), "count");
    }

    #[test]
    fn every_bad_field_is_named() {
        let Err(ApiError::Validation(errors)) =
            parse("application/json", br#"{"displayName":7,"role":"king","count":-1,"note":null}"#)
        else {
            panic!("expected a validation error")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["count", "displayName", "note", "role"]);
        let Err(ApiError::Validation(errors)) = parse("application/json", br#"{"role":"king"}"#) else {
            panic!("expected a validation error")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["role", "displayName"], "a bad field, then the first missing one");
    }

    #[test]
    fn only_objects_are_bodies() {
        // serde would read a struct from an array of its fields.
        assert_eq!(field_of(br#"["a", "admin", 1]"#), "(body)");
        assert_eq!(field_of(b"\"text\""), "(body)");
        assert_eq!(field_of(b"7"), "(body)");
        assert_eq!(field_of(b"null"), "(body)");
    }

    #[test]
    fn null_is_accepted_only_where_nullable() {
        let ok = br#"{"displayName":"a","role":"admin","count":1}"#;
        let body = parse("application/json", ok).unwrap();
        assert_eq!((body.note, body.clearable), (None, None));
        assert_eq!(field_of(br#"{"displayName":"a","role":"admin","count":1,"note":null}"#), "note");
        let cleared = parse("application/json", br#"{"displayName":"a","role":"admin","count":1,"clearable":null}"#);
        assert_eq!(cleared.unwrap().clearable, Some(None));
        let set = parse("application/json", br#"{"displayName":"a","role":"admin","count":1,"clearable":"x"}"#);
        assert_eq!(set.unwrap().clearable, Some(Some("x".into())));
        let unknown = parse("application/json", br#"{"displayName":"a","role":"admin","count":1,"extra":[1]}"#);
        assert!(unknown.is_ok(), "unknown fields are ignored");
    }

    #[test]
    fn if_match_allows_the_versions_it_lists_or_any_when_not_sent() {
        assert!(IfMatch::default().allows("\"3\""));
        assert!(!IfMatch::default().is_sent());
        let listed = IfMatch::parse("\"2\", \"3\"");
        assert!(listed.is_sent());
        assert!(listed.allows("\"3\"") && !listed.allows("\"4\""));
        assert!(IfMatch::parse("*").allows("\"4\""));
        assert!(!IfMatch::parse("W/\"3\"").allows("\"3\""), "weak tags name no version");
        assert_eq!(listed.to_string(), "\"2\", \"3\"");
    }
}
