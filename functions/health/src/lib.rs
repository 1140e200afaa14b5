//! The `health` function: liveness plus a round trip to the store. 200 when the
//! store answers, 503 when it does not (or takes longer than two seconds).

use std::time::{Duration, Instant};

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::http::{json, serve, HttpResponse, RequestCtx, Route};
use shared::AppState;

/// The routes this function serves (mirrored by `template.yaml`).
pub const ROUTES: &[Route] = &[Route::new("GET", "/health")];

const STORE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    version: &'static str,
    storage: Storage,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Storage {
    status: &'static str,
    backend: &'static str,
    latency_ms: u64,
}

pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    serve(req, ROUTES, |ctx| health(state, ctx)).await
}

async fn health(state: &AppState, _ctx: RequestCtx) -> HttpResponse {
    let started = Instant::now();
    let reachable = match tokio::time::timeout(STORE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::error!(error = %error, "store unreachable");
            false
        }
        Err(_) => {
            tracing::error!("store ping timed out");
            false
        }
    };
    let body = Health {
        status: if reachable { "ok" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        storage: Storage {
            status: if reachable { "ok" } else { "unreachable" },
            backend: state.backend.name(),
            latency_ms: started.elapsed().as_millis() as u64,
        },
    };
    json(if reachable { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}
