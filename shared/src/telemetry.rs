//! Log set-up. In Lambda, Lambda's advanced logging controls decide: JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL`. Locally, readable
//! lines with `RUST_LOG` (default `info`). Each request runs in a span carrying its
//! request id, so every line logged while serving it names the request. Request
//! bodies, headers, passwords and tokens are never logged. Also the process's
//! `Counters`, and the metric every read path reports a stored item it cannot decode by.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use crate::ports::{ItemKey, StoreError};

use tracing_subscriber::EnvFilter;

/// Counts of expensive work a process did, for logs and for tests that prove
/// limits hold (e.g. how many password hashes a burst of logins verified).
#[derive(Debug, Default)]
pub struct Counters {
    pub password_verifications: AtomicU64,
}

/// The Lambda function's name (`local` outside Lambda), the `Function` dimension
/// of the metrics this module emits itself.
static FUNCTION_NAME: OnceLock<String> = OnceLock::new();

fn function_name() -> &'static str {
    FUNCTION_NAME.get().map_or("local", String::as_str)
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    if let Ok(name) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") {
        let _ = FUNCTION_NAME.set(name);
        lambda_http::tracing::init_default_subscriber();
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

/// Namespace of the marketplace's own CloudWatch metrics.
pub const METRICS_NAMESPACE: &str = "Marketplace";

/// One metric value for `metrics_line`: name, CloudWatch unit, value.
pub type Metric<'a> = (&'a str, &'a str, f64);

/// A CloudWatch embedded metric format record of `metrics`, with the dimension
/// `Function = function`: printed as one line to standard output, Lambda's
/// logs turn it into metrics (`Marketplace/<name>`), no API call needed.
pub fn metrics_line(function: &str, metrics: &[Metric<'_>]) -> String {
    let mut record = serde_json::json!({
        "_aws": {
            "Timestamp": time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": metrics.iter().map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        },
        "Function": function,
    });
    for (name, _, value) in metrics {
        record[*name] = serde_json::json!(value);
    }
    record.to_string()
}

/// Prints `metrics_line(function, metrics)` to standard output.
pub fn emit_metrics(function: &str, metrics: &[Metric<'_>]) {
    println!("{}", metrics_line(function, metrics));
}

/// Metric counting stored items a read skipped because they did not decode.
pub const UNDECODABLE_ITEMS: &str = "UndecodableItems";

/// Reports a stored item that failed to decode and was skipped: an error log
/// naming its key and the cause, and one `UndecodableItems` count.
pub fn report_undecodable(key: &ItemKey, error: &StoreError) {
    tracing::error!(pk = %key.pk, sk = %key.sk, error = %error, "skipped a stored item that does not decode");
    emit_metrics(function_name(), &[(UNDECODABLE_ITEMS, "Count", 1.0)]);
}
