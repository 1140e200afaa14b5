//! The `health` function: liveness plus a round trip to the store. 200 when the
//! store answers, 503 when it does not (or takes longer than two seconds).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use http::StatusCode;
use serde::Serialize;
use shared::health;
use shared::http::Reply;
use shared::AppState;
use utoipa::ToSchema;

// The function's routes, `routes()` and `router()` (the template's `Health`
// events name the same).
shared::function_routes! {
    [health],
}

/// Liveness and storage reachability.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Health {
    #[schema(value_type = String, pattern = "^(ok|unavailable)$")]
    status: &'static str,
    #[schema(value_type = String, examples("0.1.0"))]
    version: &'static str,
    storage: Storage,
}

/// The store's answer to a ping.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = HealthStorage)]
struct Storage {
    #[schema(value_type = String, pattern = "^(ok|unreachable)$")]
    status: &'static str,
    #[schema(value_type = String, pattern = "^(embedded|aws)$")]
    backend: &'static str,
    latency_ms: u64,
}

/// Liveness and a round trip to the store.
#[utoipa::path(get, path = "/health", tag = "health", operation_id = "getHealth",
    responses(
        (status = 200, description = "Up, and the store answers.", body = Health),
        (status = 503, description = "Up, but the store does not answer (within two seconds).", body = Health),
    ))]
async fn health(State(state): State<Arc<AppState>>) -> Reply<Health> {
    let started = Instant::now();
    let reachable = health::store_reachable(&state).await;
    let body = Health {
        status: if reachable { "ok" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        storage: Storage {
            status: if reachable { "ok" } else { "unreachable" },
            backend: state.backend.name(),
            latency_ms: started.elapsed().as_millis() as u64,
        },
    };
    Reply::with_status(if reachable { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}
