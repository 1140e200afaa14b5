//! The jobs queue consumer, an SQS event source with `ReportBatchItemFailures`:
//! builds the state once and processes batches.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::config::{AppState, KeyUse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let state = Arc::new(AppState::from_env(KeyUse::Verify).await?);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let state = Arc::clone(&state);
        async move { Ok::<SqsBatchResponse, Error>(worker::handle(&state, event.payload).await) }
    }))
    .await
}
