//! `/auth` routes, API Gateway HTTP API: builds the state once and serves events. Only `auth` holds the signing key.

use shared::config::{AppState, KeyUse};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = AppState::from_env(KeyUse::Sign).await?;
    shared::http::run(auth::router(), state).await
}
