//! The backup function's Lambda entry point: builds the state once and runs
//! each scheduled backup or restore invocation.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::config::{AppState, KeyUse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let state = Arc::new(AppState::from_env(KeyUse::Verify).await?);
    let settings = backup::settings_from_env()?;
    let key = Arc::new(backup::key_from_env(&state).await?);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (state, key) = (Arc::clone(&state), Arc::clone(&key));
        async move { Ok::<_, Error>(backup::handle(&state, &settings, &key, event.payload).await?) }
    }))
    .await
}
