//! `/auth` routes, API Gateway HTTP API: builds the state once and serves events. Only `auth` holds the signing key.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error};
use shared::config::{AppState, KeyUse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let state = Arc::new(AppState::from_env(KeyUse::Sign).await?);
    run(service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Error>(auth::handle(&state, req).await) }
    }))
    .await
}
