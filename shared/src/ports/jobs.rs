//! The job queue port: at-least-once messages with a visibility timeout (SQS
//! semantics). A received message is hidden until deleted or until its
//! visibility timeout lapses, when it becomes receivable again.

use std::time::Duration;

use async_trait::async_trait;

/// A received message.
#[derive(Debug, Clone, PartialEq)]
pub struct JobMessage {
    /// Stable id of the message across receives.
    pub id: String,
    pub body: String,
    /// Handle for `delete`; changes with every receive.
    pub receipt: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// Job queue failures; each becomes an opaque 500 unless a handler maps it.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// 500: the backend failed.
    #[error("{context}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl JobError {
    pub fn backend(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        JobError::Backend { context: context.into(), source: source.into() }
    }
}

/// A queue of jobs.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues a message and returns its id.
    async fn send(&self, body: &str) -> Result<String, JobError>;
    /// Receives up to `max` (1..=10) visible messages, hiding them for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<JobMessage>, JobError>;
    /// Deletes a received message by its receipt. A stale receipt is not an error.
    async fn delete(&self, receipt: &str) -> Result<(), JobError>;
}
