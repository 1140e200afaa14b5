//! The job queue on an SQS queue: the port is SQS's own semantics, so this is a
//! thin mapping (receive counts from `ApproximateReceiveCount`).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::Client;

use super::LazyClient;
use crate::ports::{JobError, JobMessage, JobQueue};

/// Longest visibility timeout SQS accepts (12 hours).
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;

/// The queue at `queue_url`.
///
/// `receive` short-polls (`WaitTimeSeconds` 0), so it answers at once; on real
/// SQS a short poll samples a subset of servers and may return nothing while a
/// few messages wait, which the next poll picks up. Visibility timeouts are
/// whole seconds, rounded up.
#[derive(Debug, Clone)]
pub struct SqsJobs {
    client: LazyClient<Client>,
    queue_url: String,
}

impl SqsJobs {
    pub fn new(client: impl Into<LazyClient<Client>>, queue_url: String) -> Self {
        Self { client: client.into(), queue_url }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

/// Wraps an SDK failure with context, keeping it as the source.
fn sdk_error<E>(context: String, err: SdkError<E>) -> JobError
where
    E: std::error::Error + Send + Sync + 'static,
{
    JobError::backend(format!("{context}: {}", DisplayErrorContext(&err)), err)
}

#[async_trait]
impl JobQueue for SqsJobs {
    async fn send(&self, body: &str) -> Result<String, JobError> {
        let context = || format!("send job to queue {}", self.queue_url);
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sdk_error(context(), e))?;
        out.message_id.ok_or_else(|| JobError::backend(context(), "SQS returned no message id"))
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<JobMessage>, JobError> {
        let context = || format!("receive jobs from queue {}", self.queue_url);
        let secs = visibility.as_secs() + u64::from(visibility.subsec_nanos() > 0);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(i32::try_from(secs.min(MAX_VISIBILITY_SECS)).unwrap_or(i32::MAX))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_error(context(), e))?;
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| {
                let receive_count = message
                    .attributes()
                    .and_then(|attrs| attrs.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1);
                match (message.message_id, message.receipt_handle) {
                    (Some(id), Some(receipt)) => {
                        Ok(JobMessage { id, body: message.body.unwrap_or_default(), receipt, receive_count })
                    }
                    _ => Err(JobError::backend(context(), "SQS returned a message without id or receipt handle")),
                }
            })
            .collect()
    }

    /// SQS answers `ReceiptHandleIsInvalid` for a receipt that has expired; the
    /// port treats a stale receipt as no error, so that answer is ignored.
    async fn delete(&self, receipt: &str) -> Result<(), JobError> {
        match self.client.delete_message().queue_url(&self.queue_url).receipt_handle(receipt).send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_receipt_handle_is_invalid()) => {
                tracing::debug!(queue = %self.queue_url, "ignored stale receipt on delete");
                Ok(())
            }
            Err(err) => Err(sdk_error(format!("delete job from queue {}", self.queue_url), err)),
        }
    }
}
