//! The mail port: send one message. Messages leave through the jobs queue (a
//! `Job::SendEmail` per message, sent by the worker), never inside a request,
//! so a slow or failing mail provider never fails the request that caused it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One message, rendered (see `crate::mail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Mail failures: the job is retried, then dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{context}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl MailError {
    pub fn backend(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        MailError::Backend { context: context.into(), source: source.into() }
    }
}

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `mail`; returns the provider's message id.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError>;
}
