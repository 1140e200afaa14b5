//! Log set-up. In Lambda, Lambda's advanced logging controls decide: JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL`. Locally, readable
//! lines with `RUST_LOG` (default `info`). Each request runs in a span carrying its
//! request id, so every line logged while serving it names the request. Request
//! bodies, headers, passwords and tokens are never logged, at any level: the Lambda
//! runtime logs each raw event at TRACE, so its targets are held at DEBUG whatever
//! the level asks. Also the process's `Counters`, and the metric every read path
//! reports a stored item it cannot decode by.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::ports::{ItemKey, StoreError};

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

/// Targets whose TRACE events carry whole invocation events (`lambda_runtime`
/// logs "raw JSON event received from Lambda": bodies with passwords, headers
/// with tokens). They log at DEBUG at most, whatever the configured level.
pub const RAW_EVENT_TARGETS: [&str; 3] = ["lambda_runtime", "lambda_runtime_api_client", "lambda_http"];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Lambda with `AWS_LAMBDA_LOG_FORMAT=JSON`: JSON lines, no timestamp (Lambda adds it).
    LambdaJson,
    /// Lambda with text logs: plain lines, no timestamp.
    LambdaText,
    /// A terminal: readable lines with a timestamp.
    Local,
}

/// The `EnvFilter` directives for a level `setting`: `RUST_LOG` syntax, or one of
/// Lambda's level names (`FATAL`, which `tracing` lacks, is `error`).
fn directives(setting: &str) -> String {
    match setting.trim().to_ascii_lowercase().as_str() {
        "fatal" => "error".into(),
        "" => "info".into(),
        other => other.into(),
    }
}

/// A subscriber writing to `writer` at `setting`, with the raw-event targets
/// held at DEBUG.
fn subscriber<W>(setting: &str, format: Format, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let raw_events_capped = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(RAW_EVENT_TARGETS.map(|t| (t, LevelFilter::DEBUG)));
    let filter = EnvFilter::builder().parse_lossy(directives(setting)).and(raw_events_capped);
    let lines = tracing_subscriber::fmt::layer().with_writer(writer).with_target(false);
    let lines = match format {
        Format::LambdaJson => lines.without_time().json().boxed(),
        Format::LambdaText => lines.without_time().boxed(),
        Format::Local => lines.boxed(),
    };
    tracing_subscriber::registry().with(lines.with_filter(filter))
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
    let (setting, format) = if let Some(name) = var("AWS_LAMBDA_FUNCTION_NAME") {
        let _ = FUNCTION_NAME.set(name);
        let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json"));
        let setting = var("AWS_LAMBDA_LOG_LEVEL").or_else(|| var("RUST_LOG"));
        (setting, if json { Format::LambdaJson } else { Format::LambdaText })
    } else {
        (var("RUST_LOG"), Format::Local)
    };
    let _ = subscriber(setting.as_deref().unwrap_or("info"), format, std::io::stdout).try_init();
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer collecting everything logged, for reading back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// What is logged at `setting` while the runtime traces a raw event and the
    /// marketplace traces and debugs lines of its own.
    fn logged(setting: &str) -> String {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(setting, Format::LambdaJson, captured.clone()), || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "{\"password\":\"hunter2\"}", "raw JSON event received from Lambda");
            tracing::trace!(target: "lambda_http::request", body = "token=abc", "raw request");
            tracing::debug!(target: "lambda_runtime::runtime", "concurrent polling disabled");
            tracing::trace!(target: "marketplace_shared::http", "own trace line");
            tracing::debug!(target: "marketplace_shared::http", "own debug line");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn raw_lambda_events_never_reach_the_logs_at_any_level() {
        for setting in ["TRACE", "trace", "lambda_runtime=trace,lambda_http=trace", "DEBUG", "INFO", "FATAL", ""] {
            let text = logged(setting);
            assert!(!text.contains("hunter2") && !text.contains("token=abc"), "{setting:?}: {text}");
        }
        let at_trace = logged("TRACE");
        assert!(at_trace.contains("own trace line"), "the level still applies elsewhere: {at_trace}");
        assert!(at_trace.contains("concurrent polling disabled"), "the runtime's DEBUG lines stay: {at_trace}");
        let at_info = logged("INFO");
        assert!(!at_info.contains("own debug line") && !at_info.contains("concurrent polling"), "{at_info}");
        assert!(logged("DEBUG").contains("own debug line"));
    }
}
