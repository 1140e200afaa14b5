//! Log set-up. In Lambda, Lambda's advanced logging controls decide: JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL`. Locally, readable
//! lines with `RUST_LOG` (default `info`). Each request runs in a span carrying its
//! request id, so every line logged while serving it names the request. Request
//! bodies, headers, passwords and tokens are never logged. Also the process's
//! `Counters`.

use std::sync::atomic::AtomicU64;

use tracing_subscriber::EnvFilter;

/// Counts of expensive work a process did, for logs and for tests that prove
/// limits hold (e.g. how many password hashes a burst of logins verified).
#[derive(Debug, Default)]
pub struct Counters {
    pub password_verifications: AtomicU64,
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        lambda_http::tracing::init_default_subscriber();
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
