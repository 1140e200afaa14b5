//! `/products` routes, API Gateway HTTP API: builds the state once and serves events.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error};
use shared::config::{AppState, KeyUse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let state = Arc::new(AppState::from_env(KeyUse::Verify).await?);
    run(service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Error>(products::handle(&state, req).await) }
    }))
    .await
}
