//! `/users` and `/farmers` routes, API Gateway HTTP API: builds the state once and serves events.

use shared::config::{AppState, KeyUse};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = AppState::from_env(KeyUse::Verify).await?;
    shared::http::run(users::router(), state).await
}
