//! Log set-up. In Lambda, Lambda's advanced logging controls decide: JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL`. Locally, readable
//! lines with `RUST_LOG` (default `info`). Each request runs in a span carrying its
//! request id, so every line logged while serving it names the request. Request
//! bodies, headers, passwords and tokens are never logged.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        lambda_http::tracing::init_default_subscriber();
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
