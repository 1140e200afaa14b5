//! The archive function's Lambda entry point: builds the state once and runs
//! each scheduled invocation within its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::config::{AppState, KeyUse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let state = Arc::new(AppState::from_env(KeyUse::Verify).await?);
    let settings = archive::Settings::from_env()?;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let state = Arc::clone(&state);
        async move {
            let deadline = instant_of(event.context.deadline);
            let outcome = archive::handle(&state, &settings, event.payload, deadline).await?;
            Ok::<_, Error>(outcome)
        }
    }))
    .await
}

/// The `Instant` of Lambda's deadline (epoch milliseconds).
fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
