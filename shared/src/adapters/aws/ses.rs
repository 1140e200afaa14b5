//! Mail through Amazon SES (API v2): one `SendEmail` per message from the
//! configured sender identity, tagged with the configuration set when one is
//! set (for bounce and complaint tracking).

use async_trait::async_trait;
use aws_sdk_sesv2::error::DisplayErrorContext;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sesv2::Client;

use super::LazyClient;
use crate::ports::{MailError, Mailer, OutgoingMail};

/// SES sending as `from`.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: LazyClient<Client>,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: impl Into<LazyClient<Client>>, from: String, configuration_set: Option<String>) -> Self {
        Self { client: client.into(), from, configuration_set }
    }
}

fn content(data: &str) -> Result<Content, MailError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| MailError::backend("build mail content", e))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError> {
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(Body::builder().text(content(&mail.text)?).html(content(&mail.html)?).build())
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| MailError::backend(format!("SES SendEmail: {}", DisplayErrorContext(&e)), e))?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}
