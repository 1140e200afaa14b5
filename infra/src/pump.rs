//! The local SQS event source: for every function with an `SQS` event in the
//! template, polls that queue (in the embedded store's SQLite file, queue name =
//! the queue's logical id) and hands batches to the same `handle` the Lambda
//! binary calls, the way Lambda's event source mapping does: `BatchSize` messages
//! at a time, hidden for the queue's `VisibilityTimeout`, `MaximumConcurrency`
//! batches at once; with `ReportBatchItemFailures` only the reported messages
//! stay on the queue, without it any failure keeps the whole batch; a message
//! received more than `maxReceiveCount` times moves to the dead-letter queue.

use std::path::Path;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{json, Value};
use shared::adapters::EmbeddedJobs;
use shared::ports::{JobError, JobMessage, JobQueue};
use shared::AppState;
use tokio::task::JoinHandle;

use crate::functions::{queue_function, QueueHandlerFn};
use crate::template::{QueueSource, Template};

/// Why the pump cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("template function {logical_id} (binary {binary:?}) has an SQS event but no handler in infra::functions::QUEUE_FUNCTIONS")]
    NoHandler { logical_id: String, binary: String },
    #[error("queue {queue}: {source}")]
    Queue {
        queue: String,
        #[source]
        source: JobError,
    },
}

/// Local overrides (tests shorten the visibility timeout to see retries quickly).
#[derive(Debug, Clone, Default)]
pub struct PumpSettings {
    /// Replaces every queue's `VisibilityTimeout`.
    pub visibility_timeout: Option<Duration>,
}

/// The longest wait between polls of an empty queue: a send by this process
/// wakes the pump at once; the poll finds messages whose visibility lapsed
/// and those sent by another process.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// One event source: a queue feeding one function.
#[derive(Clone)]
pub struct QueuePump {
    source: QueueSource,
    queue: EmbeddedJobs,
    dead_letter: Option<(EmbeddedJobs, u32)>,
    visibility: Duration,
    handle: QueueHandlerFn,
    state: AppState,
}

impl std::fmt::Debug for QueuePump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePump").field("source", &self.source).finish_non_exhaustive()
    }
}

/// Opens the embedded queue named `logical_id` in `db`.
pub fn open_queue(db: &Path, logical_id: &str) -> Result<EmbeddedJobs, PumpError> {
    EmbeddedJobs::open(db, logical_id).map_err(|source| PumpError::Queue { queue: logical_id.to_owned(), source })
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    pub delivered: usize,
    pub failed: usize,
    pub dead_lettered: usize,
}

impl QueuePump {
    /// A pump per SQS event source of `template`, on queues in the SQLite file `db`.
    pub fn for_template(
        state: &AppState,
        template: &Template,
        db: &Path,
        settings: &PumpSettings,
    ) -> Result<Vec<QueuePump>, PumpError> {
        let mut pumps = Vec::new();
        for source in &template.queue_sources {
            let function = queue_function(&source.binary).ok_or_else(|| PumpError::NoHandler {
                logical_id: source.function_logical_id.clone(),
                binary: source.binary.clone(),
            })?;
            // The template parser guarantees the queue exists.
            let queue_config = template.queue(&source.queue).cloned();
            let visibility_secs = queue_config.as_ref().map(|q| q.visibility_timeout_secs).unwrap_or(30);
            let dead_letter = match queue_config.and_then(|q| q.dead_letter) {
                Some((dlq, max_receives)) => Some((open_queue(db, &dlq)?, max_receives)),
                None => None,
            };
            pumps.push(QueuePump {
                source: source.clone(),
                queue: open_queue(db, &source.queue)?,
                dead_letter,
                visibility: settings.visibility_timeout.unwrap_or(Duration::from_secs(visibility_secs)),
                handle: function.handle,
                state: state.clone(),
            });
        }
        Ok(pumps)
    }

    /// The event source this pump runs.
    pub fn source(&self) -> &QueueSource {
        &self.source
    }

    /// Receives one batch and delivers it. Messages over `maxReceiveCount` go to
    /// the dead-letter queue instead.
    pub async fn poll_once(&self) -> Result<PollReport, JobError> {
        let mut report = PollReport::default();
        let received = self.queue.receive(self.source.batch_size, self.visibility).await?;
        let mut batch = Vec::new();
        for message in received {
            match &self.dead_letter {
                Some((dlq, max_receives)) if message.receive_count > *max_receives => {
                    dlq.send(&message.body).await?;
                    self.queue.delete(&message.receipt).await?;
                    tracing::warn!(message_id = %message.id, queue = %self.source.queue, "moved to the dead-letter queue");
                    report.dead_lettered += 1;
                }
                _ => batch.push(message),
            }
        }
        if batch.is_empty() {
            return Ok(report);
        }
        report.delivered = batch.len();
        let event = self.event(&batch);
        let (handle, state) = (self.handle, self.state.clone());
        // A panic fails the whole invocation (every message is retried), as in Lambda.
        let failed: Vec<String> = match tokio::spawn(async move { handle(&state, event).await }).await {
            Ok(response) if self.source.report_batch_item_failures => {
                response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
            }
            Ok(response) if response.batch_item_failures.is_empty() => Vec::new(),
            Ok(_) | Err(_) => batch.iter().map(|m| m.id.clone()).collect(),
        };
        for message in &batch {
            if !failed.contains(&message.id) {
                self.queue.delete(&message.receipt).await?;
            }
        }
        report.failed = failed.len();
        Ok(report)
    }

    /// The SQS event Lambda would deliver for `batch`.
    fn event(&self, batch: &[JobMessage]) -> SqsEvent {
        let arn = format!("arn:aws:sqs:local:000000000000:{}", self.source.queue);
        let records: Vec<Value> = batch
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.id,
                    "receiptHandle": m.receipt,
                    "body": m.body,
                    "attributes": { "ApproximateReceiveCount": m.receive_count.to_string() },
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "local",
                })
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).expect("the SQS event shape deserialises")
    }

    /// Runs `MaximumConcurrency` pollers until the tasks are aborted.
    pub fn spawn(self) -> Vec<JoinHandle<()>> {
        (0..self.source.maximum_concurrency)
            .map(|_| {
                let pump = self.clone();
                tokio::spawn(async move {
                    let sent = pump.queue.sent();
                    loop {
                        // Listening before the poll: a send during it is not missed.
                        let woken = sent.notified();
                        tokio::pin!(woken);
                        woken.as_mut().enable();
                        match pump.poll_once().await {
                            Ok(report) if report.delivered + report.dead_lettered > 0 => {}
                            Ok(_) => {
                                tokio::select! {
                                    _ = woken => {}
                                    _ = tokio::time::sleep(IDLE_POLL) => {}
                                }
                            }
                            Err(error) => {
                                tracing::error!(error = %error, queue = %pump.source.queue, "queue poll failed");
                                tokio::time::sleep(IDLE_POLL).await;
                            }
                        }
                    }
                })
            })
            .collect()
    }
}
