//! The health check's use case: whether the store answers a ping in time. It
//! reads no item, so it goes to the store port directly, not through `repo`.

use std::time::Duration;

use crate::AppState;

/// How long the store may take to answer.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the store answers a ping within two seconds (`GET /health`); a
/// failure or a timeout is logged.
pub async fn store_reachable(state: &AppState) -> bool {
    match tokio::time::timeout(STORE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::error!(error = %error, "store unreachable");
            false
        }
        Err(_) => {
            tracing::error!("store ping timed out");
            false
        }
    }
}
