//! The local API Gateway: serves every HttpApi route of `template.yaml` in one
//! process with HTTP API (payload 2.0) semantics, through the same function
//! applications (typed routes) the Lambda binaries run, plus `GET /openapi.json`
//! (generated from those routes).
//!
//! Per request it builds a real API Gateway v2 event (`aws_lambda_events`'
//! `ApiGatewayV2httpRequest`: fresh request id, route key, path parameters, query
//! string, cookies, comma-joined lower-case headers, base64 for non-UTF-8 bodies)
//! as the Lambda runtime would deserialise it, turns it into a `lambda_http::Request`
//! as the runtime does (`http::Request::from` a `LambdaRequest`), and writes the
//! function's response back. Like API Gateway it rejects bodies over 10 MB
//! with 413, answers CORS preflights from the template's `CorsConfiguration`
//! (overriding any CORS headers a handler sets), and answers unknown routes with 404.
//! Gateway-made errors are problem+json like the functions' own; every response
//! carries `x-request-id` (and `apigw-requestid`, as API Gateway sends).
//!
//! With local assets (`Gateway::local`) it also stands in for the bucket and
//! CDN: presigned uploads under `/_local/uploads/` and public assets under
//! `/assets/` (see `assets`), and serves the local mailbox at `/_local/mail`
//! with the pages its links open (see `mailbox`). With a scheduler
//! (`Gateway::with_scheduler`), `POST /_local/schedules/<name>` runs a
//! scheduled function now (see `scheduler`).
//!
//! Tests start it with [`spawn`] on `127.0.0.1:0`; `local::LocalStack` runs it
//! with local assets and the queue pumps.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::query_map::QueryMap;
use axum::body::{Body as AxumBody, HttpBody};
use axum::extract::{ConnectInfo, State};
use axum::Router;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, RequestExt};
use shared::adapters::{MailDir, LOCAL_UPLOAD_PATH};
use shared::http::ApiError;
use shared::AppState;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use tower::ServiceExt;

use crate::assets::{AssetsError, LocalAssets};
use crate::functions::http_function;
use crate::template::{CorsConfig, HttpRoute, Template, TemplateError};

/// API Gateway HTTP API's payload limit: larger bodies answer 413.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// An over-limit body is read (and dropped) up to this size before answering, so
/// the client sees the 413 instead of a reset connection; larger ones are cut off.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;
/// The path of the OpenAPI document (a local convenience, not a template route).
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("template function {logical_id} (binary {binary:?}) has HttpApi routes but no handler in infra::functions::HTTP_FUNCTIONS")]
    NoHandler { logical_id: String, binary: String },
    #[error(transparent)]
    Assets(#[from] AssetsError),
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serve: {0}")]
    Serve(#[source] std::io::Error),
}

/// One route the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRoute {
    pub route: HttpRoute,
    /// The template's logical id of the function.
    pub logical_id: String,
    /// The binary (and handler table) name.
    pub binary: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

struct CompiledRoute {
    served: ServedRoute,
    segments: Vec<Segment>,
    /// The function's application (shared by its routes).
    app: Router,
}

/// One request and the response the gateway gave it, for `Gateway::observe`.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub method: &'a Method,
    /// The template route that served it.
    pub route: &'a HttpRoute,
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Sees every exchange the functions answered (tests check them against the
/// OpenAPI document).
pub type Observer = Arc<dyn Fn(&Exchange<'_>) + Send + Sync>;

struct Inner {
    routes: Vec<CompiledRoute>,
    cors: Option<CorsConfig>,
    openapi: Bytes,
    assets: Option<LocalAssets>,
    /// The local mailbox (with local assets): `/_local/mail` and `/_local/links/*`.
    mailbox: Option<MailDir>,
    /// The bucket's CORS rule, for presigned uploads.
    upload_cors: Option<CorsConfig>,
    observer: Option<Observer>,
    /// The local scheduler: `POST /_local/schedules/<name>` fires a schedule now.
    scheduler: Option<crate::scheduler::Scheduler>,
}

/// The local gateway: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.routes())
            .field("cors", &self.inner.cors)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway for `template`'s routes, handing `state` to every function. A
    /// function with routes and no entry in the function table is an error.
    pub fn new(state: AppState, template: &Template) -> Result<Self, GatewayError> {
        Self::build(state, template, None, None)
    }

    fn build(
        state: AppState,
        template: &Template,
        assets: Option<LocalAssets>,
        mailbox: Option<MailDir>,
    ) -> Result<Self, GatewayError> {
        let state = Arc::new(state);
        let mut routes = Vec::new();
        for function in template.functions.iter().filter(|f| !f.routes.is_empty()) {
            let entry = http_function(&function.binary).ok_or_else(|| GatewayError::NoHandler {
                logical_id: function.logical_id.clone(),
                binary: function.binary.clone(),
            })?;
            let app = shared::http::app((entry.routes)(), Arc::clone(&state));
            for route in &function.routes {
                routes.push(CompiledRoute {
                    served: ServedRoute {
                        route: route.clone(),
                        logical_id: function.logical_id.clone(),
                        binary: entry.binary,
                    },
                    segments: compile(&route.path),
                    app: app.clone(),
                });
            }
        }
        let openapi = Bytes::from(crate::functions::openapi_json());
        let upload_cors = template.bucket_cors.first().map(|b| b.cors.clone());
        let inner = Inner {
            routes,
            cors: template.cors.clone(),
            openapi,
            assets,
            mailbox,
            upload_cors,
            observer: None,
            scheduler: None,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Reads `template`.
    pub fn load(state: AppState, template: &Path) -> Result<Self, GatewayError> {
        Self::new(state, &Template::load(template)?)
    }

    /// Like `new`, also standing in for the bucket and CDN over the blob
    /// directory and queues of the embedded backend in `data_dir`.
    pub fn local(state: AppState, template: &Template, data_dir: &Path) -> Result<Self, GatewayError> {
        let assets = LocalAssets::open(data_dir, template)?;
        Self::build(state, template, Some(assets), Some(MailDir::new(&data_dir.join("mail"))))
    }

    /// Calls `observer` with every exchange a function answered (before any
    /// clone of this gateway starts serving).
    pub fn observe(self, observer: Observer) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| panic!("observe before the gateway is shared"));
        Self { inner: Arc::new(Inner { observer: Some(observer), ..inner }) }
    }

    /// Stops serving the local mailbox (`/_local/mail` and `/_local/links/*`):
    /// its mail holds live sign-in and reset links, so a gateway reachable from
    /// the network must not show it (before any clone starts serving).
    pub fn without_mailbox(self) -> Self {
        let inner =
            Arc::try_unwrap(self.inner).unwrap_or_else(|_| panic!("without_mailbox before the gateway is shared"));
        Self { inner: Arc::new(Inner { mailbox: None, ..inner }) }
    }

    /// Serves `POST /_local/schedules/<name>`, firing `scheduler`'s schedule
    /// now (before any clone of this gateway starts serving).
    pub fn with_scheduler(self, scheduler: crate::scheduler::Scheduler) -> Self {
        let inner =
            Arc::try_unwrap(self.inner).unwrap_or_else(|_| panic!("with_scheduler before the gateway is shared"));
        Self { inner: Arc::new(Inner { scheduler: Some(scheduler), ..inner }) }
    }

    /// Every route served, in template order (`/openapi.json` excluded).
    pub fn routes(&self) -> Vec<ServedRoute> {
        self.inner.routes.iter().map(|r| r.served.clone()).collect()
    }

    /// The CORS configuration in force, if any.
    pub fn cors(&self) -> Option<&CorsConfig> {
        self.inner.cors.as_ref()
    }

    /// The axum router (serve it with `into_make_service_with_connect_info::<SocketAddr>`
    /// so events carry the client's address).
    pub fn router(&self) -> Router {
        Router::new().fallback(entry).with_state(Arc::clone(&self.inner))
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let app = self.router().into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(GatewayError::Serve)
    }
}

/// Starts a gateway for `template` on `addr`
/// (`127.0.0.1:0` in tests) in a background task. Returns the bound address and
/// the task; the gateway runs until the task is aborted or the runtime ends.
pub async fn spawn(
    state: AppState,
    template: &Path,
    addr: SocketAddr,
) -> Result<(SocketAddr, JoinHandle<()>), GatewayError> {
    let gateway = Gateway::load(state, template)?;
    let listener = TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| GatewayError::Bind { addr, source })?;
    let handle = tokio::spawn(async move {
        if let Err(error) = gateway.serve(listener, std::future::pending()).await {
            tracing::error!(error = %error, "local gateway stopped");
        }
    });
    Ok((bound, handle))
}

fn compile(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => Segment::Param(name.to_owned()),
            None => Segment::Literal(s.to_owned()),
        })
        .collect()
}

/// Path parameters (percent-decoded) when `raw_path` matches `segments`.
fn match_segments(segments: &[Segment], raw_path: &str) -> Option<BTreeMap<String, String>> {
    let got: Vec<&str> = raw_path.strip_prefix('/')?.split('/').collect();
    if got.len() != segments.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (want, got) in segments.iter().zip(got) {
        match want {
            Segment::Literal(literal) if literal == got => {}
            Segment::Param(name) if !got.is_empty() => {
                params.insert(name.clone(), percent_decode(got));
            }
            _ => return None,
        }
    }
    Some(params)
}

/// API Gateway's choice among matching routes: literal segments beat variables
/// (left to right), and an exact method beats `ANY`.
fn find_route<'a>(
    routes: &'a [CompiledRoute],
    method: &Method,
    raw_path: &str,
) -> Option<(&'a CompiledRoute, BTreeMap<String, String>)> {
    routes
        .iter()
        .filter(|r| r.served.route.method == method.as_str() || r.served.route.method == "ANY")
        .filter_map(|r| match_segments(&r.segments, raw_path).map(|params| (r, params)))
        .min_by_key(|(r, _)| {
            let variables: Vec<bool> = r.segments.iter().map(|s| matches!(s, Segment::Param(_))).collect();
            (variables, r.served.route.method == "ANY")
        })
}

/// Decodes `%XX` escapes (a `%` without two hex digits stays as is, invalid
/// UTF-8 becomes U+FFFD); `+` stays as is.
fn percent_decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// Everything the event needs from one HTTP request.
struct Incoming<'r> {
    method: &'r Method,
    raw_path: &'r str,
    raw_query: &'r str,
    headers: &'r HeaderMap,
    body: &'r [u8],
    source_ip: String,
    request_id: &'r str,
}

const CLF_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");

/// The API Gateway HTTP API payload 2.0 event for `incoming` matched to `route`,
/// built as the Lambda runtime deserialises it for `lambda_http`: headers in
/// name order, each name's values comma-joined (cookies apart), and each query
/// parameter's values split at commas, as `query_map` reads API Gateway's
/// comma-joined parameters.
fn api_gateway_event(
    route: &HttpRoute,
    params: &BTreeMap<String, String>,
    incoming: &Incoming<'_>,
    now: OffsetDateTime,
) -> Result<ApiGatewayV2httpRequest, ApiError> {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for name in incoming.headers.keys() {
        let values: Vec<String> =
            incoming.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        if name == header::COOKIE {
            cookies.extend(
                values.iter().flat_map(|v| v.split(';')).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned),
            );
        } else {
            joined.insert(name.as_str().to_owned(), values.join(","));
        }
    }
    let forwarded_for = match joined.get("x-forwarded-for") {
        Some(chain) => format!("{chain}, {}", incoming.source_ip),
        None => incoming.source_ip.clone(),
    };
    joined.insert("x-forwarded-for".into(), forwarded_for);
    joined.entry("x-forwarded-proto".into()).or_insert_with(|| "http".into());
    let host = joined.get("host").map_or("localhost", String::as_str).to_owned();
    let mut headers = HeaderMap::with_capacity(joined.len());
    for (name, value) in joined {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(ApiError::internal)?;
        headers.insert(name, value.parse::<HeaderValue>().map_err(ApiError::internal)?);
    }

    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for pair in incoming.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        query.entry(percent_decode(key)).or_default().extend(percent_decode(value).split(',').map(str::to_owned));
    }
    let route_key = route.route_key();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = incoming.method.clone();
    http.path = Some(incoming.raw_path.to_owned());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(incoming.source_ip.clone());
    http.user_agent = Some(
        incoming
            .headers
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
    );
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.account_id = Some("000000000000".into());
    context.apiid = Some("local".into());
    context.domain_prefix = Some(host.split('.').next().unwrap_or_default().to_owned());
    context.domain_name = Some(host);
    context.http = http;
    context.request_id = Some(incoming.request_id.to_owned());
    context.route_key = Some(route_key.clone());
    context.stage = Some("$default".into());
    context.time = Some(now.format(CLF_TIME).unwrap_or_default());
    context.time_epoch = (now.unix_timestamp_nanos() / 1_000_000) as i64;

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(route_key);
    event.raw_path = Some(incoming.raw_path.to_owned());
    event.raw_query_string = Some(incoming.raw_query.to_owned());
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = QueryMap::from(query);
    event.path_parameters = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    event.request_context = context;
    if !incoming.body.is_empty() {
        match std::str::from_utf8(incoming.body) {
            Ok(text) => event.body = Some(text.to_owned()),
            Err(_) => {
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(incoming.body));
                event.is_base64_encoded = true;
            }
        }
    }
    Ok(event)
}

/// The event as the Lambda runtime hands it to `lambda_http` (a `LambdaRequest`
/// converted with `http::Request::from`), with a Lambda context.
fn lambda_request(
    event: ApiGatewayV2httpRequest,
    binary: &str,
    request_id: &str,
    now: OffsetDateTime,
) -> lambda_http::Request {
    let request = lambda_http::Request::from(LambdaRequest::ApiGatewayV2(event));
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context.deadline = ((now.unix_timestamp_nanos() / 1_000_000) as u64).saturating_add(30_000);
    context.invoked_function_arn = format!("arn:aws:lambda:local:000000000000:function:{binary}");
    request.with_lambda_context(context)
}

enum BodyRead {
    Complete(Bytes),
    TooLarge,
    Failed(String),
}

/// Reads the body up to `MAX_BODY_BYTES`; past that, drains up to the drain limit.
async fn read_body(mut body: AxumBody) -> BodyRead {
    let mut buffer = BytesMut::new();
    let mut total = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Err(error)) => return BodyRead::Failed(error.to_string()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total = total.saturating_add(data.len());
                    if total <= MAX_BODY_BYTES {
                        buffer.extend_from_slice(&data);
                    } else if total > DRAIN_LIMIT_BYTES {
                        break;
                    }
                }
            }
        }
    }
    if total > MAX_BODY_BYTES {
        BodyRead::TooLarge
    } else {
        BodyRead::Complete(buffer.freeze())
    }
}

/// Whether `origin` is allowed: exact (case-insensitive) match, `*`, or a
/// `scheme://*.domain` wildcard.
fn origin_allowed(cors: &CorsConfig, origin: &str) -> bool {
    cors.allow_origins.iter().any(|allowed| {
        if allowed == "*" || allowed.eq_ignore_ascii_case(origin) {
            return true;
        }
        match allowed.split_once("://*.") {
            Some((scheme, domain)) => {
                let origin = origin.to_ascii_lowercase();
                origin.strip_prefix(&format!("{}://", scheme.to_ascii_lowercase())).is_some_and(|host| {
                    let host = host.split(':').next().unwrap_or_default();
                    host.ends_with(&format!(".{}", domain.to_ascii_lowercase()))
                })
            }
            None => false,
        }
    })
}

fn header_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// `Access-Control-Allow-Origin` (and credentials) for an allowed origin.
fn allow_origin(cors: &CorsConfig, origin: &str, headers: &mut HeaderMap) {
    let wildcard = cors.allow_origins.iter().any(|o| o == "*") && !cors.allow_credentials;
    let value = if wildcard { Some(HeaderValue::from_static("*")) } else { header_value(origin) };
    if let Some(value) = value {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    if !wildcard {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    if cors.allow_credentials {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
}

/// The preflight answer: 204, with `Access-Control-Allow-*` only when the origin
/// and the requested method are allowed.
fn preflight(cors: &CorsConfig, request: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let origin = request.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let wanted = request.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(wanted)) = (origin, wanted) else {
        return headers;
    };
    let method_allowed = cors.allow_methods.iter().any(|m| m == "*" || m.eq_ignore_ascii_case(wanted));
    if !origin_allowed(cors, origin) || !method_allowed {
        return headers;
    }
    allow_origin(cors, origin, &mut headers);
    let methods =
        if cors.allow_methods.iter().any(|m| m == "*") { wanted.to_owned() } else { cors.allow_methods.join(",") };
    if let Some(value) = header_value(&methods) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
    }
    let requested_headers = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok());
    let allow_headers = if cors.allow_headers.iter().any(|h| h == "*") {
        requested_headers.map(str::to_owned)
    } else if cors.allow_headers.is_empty() {
        None
    } else {
        Some(cors.allow_headers.join(","))
    };
    if let Some(value) = allow_headers.as_deref().and_then(header_value) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    if let Some(value) = cors.max_age.and_then(|age| header_value(&age.to_string())) {
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, value);
    }
    headers
}

/// CORS headers of an actual (non-preflight) response. API Gateway replaces any
/// CORS headers the integration returned when CORS is configured.
fn apply_cors(cors: &CorsConfig, origin: Option<&str>, headers: &mut HeaderMap) {
    let stale: Vec<HeaderName> =
        headers.keys().filter(|name| name.as_str().starts_with("access-control-")).cloned().collect();
    for name in stale {
        headers.remove(name);
    }
    let Some(origin) = origin.filter(|o| origin_allowed(cors, o)) else {
        return;
    };
    allow_origin(cors, origin, headers);
    if !cors.expose_headers.is_empty() {
        if let Some(value) = header_value(&cors.expose_headers.join(",")) {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
        }
    }
}

/// Fires a schedule now: 200 with the run's result, 404 for an unknown
/// schedule, 500 with the reason when the run failed (local tooling only).
async fn fire_schedule(
    scheduler: &crate::scheduler::Scheduler,
    name: &str,
    request_id: &str,
) -> http::Response<AxumBody> {
    use crate::scheduler::SchedulerError;
    let (status, body) = match scheduler.fire(name).await {
        Ok(result) => (StatusCode::OK, serde_json::json!({"schedule": name, "result": result})),
        Err(error @ SchedulerError::UnknownSchedule(..)) => {
            return problem(ApiError::NotFound(error.to_string()), request_id)
        }
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({"schedule": name, "error": error.to_string()}))
        }
    };
    let mut response = http::Response::new(AxumBody::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A problem+json response for an error the gateway itself answers.
pub(crate) fn problem(error: ApiError, request_id: &str) -> http::Response<AxumBody> {
    error.problem(request_id)
}

/// Every request enters here.
async fn entry(State(inner): State<Arc<Inner>>, request: http::Request<AxumBody>) -> http::Response<AxumBody> {
    let started = Instant::now();
    let request_id = ulid::Ulid::new().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);

    let is_preflight = method == Method::OPTIONS && find_route(&inner.routes, &method, &path).is_none();
    // Uploads go to the bucket, which has its own CORS rule.
    let cors =
        if inner.assets.is_some() && path.starts_with(LOCAL_UPLOAD_PATH) { &inner.upload_cors } else { &inner.cors };
    let mut response = match (cors, is_preflight) {
        (Some(cors), true) => {
            let mut response = http::Response::new(AxumBody::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            *response.headers_mut() = preflight(cors, request.headers());
            response
        }
        _ => {
            let mut response = dispatch(&inner, request, &request_id).await;
            if let Some(cors) = cors {
                apply_cors(cors, origin.as_deref(), response.headers_mut());
            }
            response
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HeaderName::from_static("x-request-id"), value.clone());
        response.headers_mut().insert(HeaderName::from_static("apigw-requestid"), value);
    }
    tracing::info!(
        request_id = %request_id,
        "{method} {path} {status} {ms}ms",
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis(),
    );
    response
}

/// Routes one (non-preflight) request.
async fn dispatch(inner: &Arc<Inner>, request: http::Request<AxumBody>, request_id: &str) -> http::Response<AxumBody> {
    let (parts, body) = request.into_parts();
    let raw_path = parts.uri.path();
    if let Some(assets) = &inner.assets {
        let asset_key = raw_path.strip_prefix(shared::config::LOCAL_ASSETS_PATH).and_then(|p| p.strip_prefix('/'));
        if let (Some(key), true) = (asset_key, parts.method == Method::GET || parts.method == Method::HEAD) {
            return assets.serve(&parts.method, &percent_decode(key), &parts.headers, request_id).await;
        }
        if let (Some(key), true) = (raw_path.strip_prefix(LOCAL_UPLOAD_PATH), parts.method == Method::PUT) {
            let body = match read_body(body).await {
                BodyRead::Complete(body) => body,
                BodyRead::TooLarge => return problem(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES }, request_id),
                BodyRead::Failed(reason) => {
                    return problem(ApiError::BadRequest(format!("could not read the upload: {reason}")), request_id)
                }
            };
            let query = parts.uri.query().unwrap_or_default();
            return assets.accept_upload(&percent_decode(key), query, &parts.headers, body, request_id).await;
        }
    }
    if let (Some(mailbox), true) = (&inner.mailbox, parts.method == Method::GET) {
        if raw_path == crate::mailbox::MAIL_PATH {
            let query = parts.uri.query().unwrap_or_default();
            return crate::mailbox::serve_mail(mailbox, &parts.headers, query, request_id);
        }
        if let Some(page) = raw_path.strip_prefix(shared::config::LOCAL_LINKS_PATH).and_then(|p| p.strip_prefix('/')) {
            return crate::mailbox::serve_link_page(page, request_id);
        }
    }
    if let (Some(scheduler), true) = (&inner.scheduler, parts.method == Method::POST) {
        if let Some(name) = raw_path.strip_prefix(crate::scheduler::FIRE_PATH) {
            return fire_schedule(scheduler, &percent_decode(name), request_id).await;
        }
    }
    let Some((route, params)) = find_route(&inner.routes, &parts.method, raw_path) else {
        if parts.method == Method::GET && raw_path == OPENAPI_PATH {
            let mut response = http::Response::new(AxumBody::from(inner.openapi.clone()));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return response;
        }
        return problem(ApiError::NotFound(format!("no route for {} {raw_path}", parts.method)), request_id);
    };
    let body = match read_body(body).await {
        BodyRead::Complete(body) => body,
        BodyRead::TooLarge => return problem(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES }, request_id),
        BodyRead::Failed(reason) => {
            return problem(ApiError::BadRequest(format!("could not read the request body: {reason}")), request_id)
        }
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let now = OffsetDateTime::now_utc();
    let incoming = Incoming {
        method: &parts.method,
        raw_path,
        raw_query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
        source_ip,
        request_id,
    };
    let lambda_request = match api_gateway_event(&route.served.route, &params, &incoming, now) {
        Ok(event) => lambda_request(event, route.served.binary, request_id, now),
        Err(error) => return problem(error, request_id),
    };
    // Run the function in its own task: a panic fails this invocation (500), as in
    // Lambda, instead of the connection.
    let app = route.app.clone();
    let response = match tokio::spawn(async move { app.oneshot(lambda_request).await }).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(error) => return problem(ApiError::internal(error), request_id),
    };
    // Lambda buffers the whole response; so does the gateway.
    let (head, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => return problem(ApiError::internal(error), request_id),
    };
    if let Some(observer) = &inner.observer {
        observer(&Exchange {
            method: &parts.method,
            route: &route.served.route,
            status: head.status,
            headers: &head.headers,
            body: &body,
        });
    }
    http::Response::from_parts(head, AxumBody::from(body))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn incoming<'r>(headers: &'r HeaderMap, body: &'r [u8], query: &'r str) -> Incoming<'r> {
        Incoming {
            method: &Method::POST,
            raw_path: "/categories/01H%20X",
            raw_query: query,
            headers,
            body,
            source_ip: "10.0.0.1".into(),
            request_id: "req-1",
        }
    }

    fn route() -> HttpRoute {
        HttpRoute { method: "POST".into(), path: "/categories/{id}".into() }
    }

    /// `event` as JSON, read back as the Lambda runtime reads it.
    fn round_trip(event: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpRequest {
        let text = serde_json::to_string(event).unwrap();
        match serde_json::from_str::<LambdaRequest>(&text).unwrap() {
            LambdaRequest::ApiGatewayV2(read) => read,
            other => panic!("not an HTTP API event: {other:?}"),
        }
    }

    #[test]
    fn event_has_the_payload_2_shape_and_becomes_a_lambda_request() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        let params = match_segments(&compile("/categories/{id}"), "/categories/01H%20X").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let event = api_gateway_event(&route(), &params, &incoming(&headers, b"{\"a\":1}", "limit=5&tag=x&tag=y"), now)
            .unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["version"], "2.0");
        assert_eq!(json["routeKey"], "POST /categories/{id}");
        assert_eq!(json["rawPath"], "/categories/01H%20X");
        assert_eq!(json["headers"]["x-multi"], "a,b");
        assert_eq!(json["cookies"], json!(["a=1", "b=2"]));
        assert!(json["headers"].get("cookie").is_none());
        assert_eq!(json["queryStringParameters"]["tag"], "x,y");
        assert_eq!(json["pathParameters"]["id"], "01H X");
        assert_eq!(json["requestContext"]["stage"], "$default");
        assert_eq!(json["requestContext"]["http"]["sourceIp"], "10.0.0.1");
        assert_eq!(json["requestContext"]["time"], "14/Nov/2023:22:13:20 +0000");
        assert_eq!(json["requestContext"]["timeEpoch"], 1_700_000_000_000i64);
        assert_eq!(json["body"], "{\"a\":1}");
        assert_eq!(round_trip(&event), event, "the event is what the runtime deserialises from its JSON");

        let request = lambda_request(event, "categories", "req-1", now);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/categories/01H%20X");
        assert_eq!(request.query_string_parameters_ref().and_then(|q| q.first("limit")), Some("5"));
        assert_eq!(request.path_parameters_ref().and_then(|p| p.first("id")), Some("01H X"));
        assert_eq!(request.headers()["cookie"], "a=1; b=2");
        assert_eq!(request.lambda_context_ref().map(|c| c.request_id.as_str()), Some("req-1"));
        assert!(matches!(request.body(), lambda_http::Body::Text(t) if t == "{\"a\":1}"));
    }

    #[test]
    fn non_utf8_bodies_travel_base64_encoded() {
        let headers = HeaderMap::new();
        let now = OffsetDateTime::now_utc();
        let event =
            api_gateway_event(&route(), &BTreeMap::new(), &incoming(&headers, &[0xff, 0x00, 0xfe], ""), now).unwrap();
        assert!(event.is_base64_encoded);
        assert_eq!(round_trip(&event), event);
        let request = lambda_request(event, "categories", "r", now);
        assert!(matches!(request.body(), lambda_http::Body::Binary(b) if b == &[0xff, 0x00, 0xfe]));
    }

    #[test]
    fn literal_routes_beat_variables_and_exact_methods_beat_any() {
        let make = |method: &str, path: &str| CompiledRoute {
            served: ServedRoute {
                route: HttpRoute { method: method.into(), path: path.into() },
                logical_id: path.into(),
                binary: "x",
            },
            segments: compile(path),
            app: Router::new(),
        };
        let routes = vec![make("GET", "/a/{id}"), make("GET", "/a/b"), make("ANY", "/c"), make("GET", "/c")];
        let path_of =
            |method: Method, path: &str| find_route(&routes, &method, path).map(|(r, _)| r.served.route.to_string());
        assert_eq!(path_of(Method::GET, "/a/b").as_deref(), Some("GET /a/b"));
        assert_eq!(path_of(Method::GET, "/a/z").as_deref(), Some("GET /a/{id}"));
        assert_eq!(path_of(Method::GET, "/c").as_deref(), Some("GET /c"));
        assert_eq!(path_of(Method::DELETE, "/c").as_deref(), Some("ANY /c"));
        assert_eq!(path_of(Method::POST, "/a/b"), None);
        assert_eq!(path_of(Method::GET, "/a/"), None);
        assert_eq!(path_of(Method::GET, "/a/b/c"), None);
    }

    #[test]
    fn origins_match_exactly_or_by_wildcard() {
        let cors = CorsConfig {
            allow_origins: vec!["http://localhost:5173".into(), "https://*.example.com".into()],
            ..CorsConfig::default()
        };
        assert!(origin_allowed(&cors, "http://localhost:5173"));
        assert!(origin_allowed(&cors, "https://app.example.com"));
        assert!(!origin_allowed(&cors, "https://example.com.evil.net"));
        assert!(!origin_allowed(&cors, "http://app.example.com"));
        assert!(!origin_allowed(&cors, "http://localhost:5174"));
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%+1%-1"), "%+1%-1");
        assert_eq!(percent_decode("%41%"), "A%");
        assert_eq!(percent_decode("%C3%A9%FF"), "é\u{FFFD}");
        assert_eq!(percent_decode("a+b"), "a+b");
    }
}
