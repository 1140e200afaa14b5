//! The tables of functions local tools can run in-process: binary name (as in the
//! template's `Metadata.BuildProperties.Binary`) → the handler the Lambda binary
//! calls (and, for HTTP functions, the routes the function declares).

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::{Body, Request, Response};
use shared::http::Route;
use shared::AppState;

/// The future a handler returns, borrowing the state.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// A function's `handle`, as a plain function pointer.
pub type HandlerFn = for<'a> fn(&'a AppState, Request) -> HandlerFuture<'a>;

/// One HTTP function.
#[derive(Clone, Copy)]
pub struct HttpFunction {
    /// The cargo binary name, matched against the template.
    pub binary: &'static str,
    /// The routes the function itself serves (its `ROUTES`).
    pub routes: &'static [Route],
    /// Its `handle` fn, the same one the Lambda binary calls.
    pub handle: HandlerFn,
}

impl std::fmt::Debug for HttpFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFunction")
            .field("binary", &self.binary)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

fn health(state: &AppState, req: Request) -> HandlerFuture<'_> {
    Box::pin(health::handle(state, req))
}

fn auth(state: &AppState, req: Request) -> HandlerFuture<'_> {
    Box::pin(auth::handle(state, req))
}

fn categories(state: &AppState, req: Request) -> HandlerFuture<'_> {
    Box::pin(categories::handle(state, req))
}

fn products(state: &AppState, req: Request) -> HandlerFuture<'_> {
    Box::pin(products::handle(state, req))
}

/// Every HTTP function. A template function with HttpApi routes and no entry here
/// stops the local gateway at start-up.
pub const HTTP_FUNCTIONS: &[HttpFunction] = &[
    HttpFunction { binary: "health", routes: health::ROUTES, handle: health },
    HttpFunction { binary: "auth", routes: auth::ROUTES, handle: auth },
    HttpFunction { binary: "categories", routes: categories::ROUTES, handle: categories },
    HttpFunction { binary: "products", routes: products::ROUTES, handle: products },
];

/// The HTTP function built as `binary`.
pub fn http_function(binary: &str) -> Option<&'static HttpFunction> {
    HTTP_FUNCTIONS.iter().find(|f| f.binary == binary)
}

/// The future a queue handler returns, borrowing the state.
pub type QueueHandlerFuture<'a> = Pin<Box<dyn Future<Output = SqsBatchResponse> + Send + 'a>>;

/// A queue function's `handle`, as a plain function pointer.
pub type QueueHandlerFn = for<'a> fn(&'a AppState, SqsEvent) -> QueueHandlerFuture<'a>;

/// One SQS-triggered function.
#[derive(Clone, Copy)]
pub struct QueueFunction {
    /// The cargo binary name, matched against the template.
    pub binary: &'static str,
    /// Its `handle` fn, the same one the Lambda binary calls.
    pub handle: QueueHandlerFn,
}

fn worker(state: &AppState, event: SqsEvent) -> QueueHandlerFuture<'_> {
    Box::pin(worker::handle(state, event))
}

/// Every SQS-triggered function. A template function with an SQS event and no
/// entry here stops the local queue pump at start-up.
pub const QUEUE_FUNCTIONS: &[QueueFunction] = &[QueueFunction { binary: "worker", handle: worker }];

/// The queue function built as `binary`.
pub fn queue_function(binary: &str) -> Option<&'static QueueFunction> {
    QUEUE_FUNCTIONS.iter().find(|f| f.binary == binary)
}
