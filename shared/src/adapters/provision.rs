//! Creates the AWS resources the adapters expect, idempotently: the single table
//! (matching `template.yaml`), a bucket, and a queue with an optional dead-letter
//! queue. Used by tests and by local development against moto.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::ports::{Index, ATTR_TTL};

/// How long `create_table` waits for a new table (and its indexes) to be active.
const TABLE_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// A resource could not be created or inspected.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct ProvisionError {
    context: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl ProvisionError {
    fn new(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { context: context.into(), source: source.into() }
    }
}

/// Wraps an SDK failure with context (the full cause chain in the message).
fn sdk<E: std::error::Error + Send + Sync + 'static>(context: &str, err: E) -> ProvisionError {
    let message = format!("{context}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
    ProvisionError::new(message, err)
}

/// Creates the single table `name` unless it exists: string keys `pk` (hash) and
/// `sk` (range); global indexes `gsi1`..`gsi10` (`gsiNpk`, `gsiNsk`) projecting
/// all attributes; on-demand billing; TTL on `ttl`. Waits
/// until the table is active. TTL is enabled only where the endpoint supports
/// it; reads filter expired items anyway, so its absence changes no result.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    let context = format!("create table {name}");
    let build = |e| ProvisionError::new(context.clone(), e);
    let string_attr = |attr: &str| {
        AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build)
    };
    let key = |attr: &str, kind: KeyType| {
        KeySchemaElement::builder().attribute_name(attr).key_type(kind).build().map_err(build)
    };

    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr("pk")?)
        .attribute_definitions(string_attr("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?);
    for index in Index::ALL {
        let (pk, sk) = index.key_attrs();
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(index.name())
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build)?;
        request = request
            .attribute_definitions(string_attr(pk)?)
            .attribute_definitions(string_attr(sk)?)
            .global_secondary_indexes(gsi);
    }
    match request.send().await {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(err) => return Err(sdk(&context, err)),
    }
    wait_until_active(client, name).await?;
    enable_ttl(client, name).await;
    Ok(())
}

async fn wait_until_active(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    let context = format!("wait for table {name} to be active");
    let deadline = tokio::time::Instant::now() + TABLE_READY_TIMEOUT;
    loop {
        let out = client.describe_table().table_name(name).send().await.map_err(|e| sdk(&context, e))?;
        let table = out.table();
        let active = table.and_then(|t| t.table_status()) == Some(&TableStatus::Active)
            && table
                .map(|t| t.global_secondary_indexes().iter().all(|i| i.index_status() == Some(&IndexStatus::Active)))
                .unwrap_or(true);
        if active {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProvisionError::new(context, "timed out"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Enables TTL on `ttl` unless it is on already; failures are logged, not fatal
/// (some DynamoDB-compatible endpoints lack the TTL API).
async fn enable_ttl(client: &aws_sdk_dynamodb::Client, name: &str) {
    if let Ok(out) = client.describe_time_to_live().table_name(name).send().await {
        let status = out.time_to_live_description().and_then(|d| d.time_to_live_status());
        if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
            return;
        }
    }
    let spec = match TimeToLiveSpecification::builder().attribute_name(ATTR_TTL).enabled(true).build() {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(table = name, error = %e, "could not describe TTL");
            return;
        }
    };
    if let Err(err) = client.update_time_to_live().table_name(name).time_to_live_specification(spec).send().await {
        tracing::warn!(
            table = name,
            error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err),
            "could not enable TTL; expired items are still filtered on read"
        );
    }
}

/// Creates the bucket `name` unless this account already owns it.
pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) -> Result<(), ProvisionError> {
    let context = format!("create bucket {name}");
    let mut request = client.create_bucket().bucket(name);
    // us-east-1 is the default location and must not be named.
    if let Some(region) = client.config().region().map(|r| r.as_ref().to_owned()).filter(|r| r != "us-east-1") {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_bucket_already_owned_by_you()) => Ok(()),
        // Some endpoints answer "already exists" for our own bucket: ours if we can reach it.
        Err(err) if err.as_service_error().is_some_and(|e| e.is_bucket_already_exists()) => {
            match client.head_bucket().bucket(name).send().await {
                Ok(_) => Ok(()),
                Err(_) => Err(sdk(&context, err)),
            }
        }
        Err(err) => Err(sdk(&context, err)),
    }
}

/// Creates the queue `name` (and, with `dlq = Some((dlq_name, max_receive_count))`,
/// its dead-letter queue and redrive policy) unless it exists, and returns its URL.
/// An existing queue gets the redrive policy set again, so settings converge.
pub async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    dlq: Option<(&str, u32)>,
) -> Result<String, ProvisionError> {
    let context = format!("create queue {name}");
    let redrive = match dlq {
        None => None,
        Some((dlq_name, max_receive_count)) => {
            let dlq_url = Box::pin(create_queue(client, dlq_name, None)).await?;
            let out = client
                .get_queue_attributes()
                .queue_url(&dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| sdk(&context, e))?;
            let arn = out
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn))
                .ok_or_else(|| ProvisionError::new(context.clone(), format!("queue {dlq_name} has no ARN")))?;
            Some(serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count }).to_string())
        }
    };
    let mut request = client.create_queue().queue_name(name);
    if let Some(policy) = &redrive {
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    match request.send().await {
        Ok(out) => out.queue_url.ok_or_else(|| ProvisionError::new(context, "SQS returned no queue URL")),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_queue_name_exists()) => {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| sdk(&context, e))?
                .queue_url
                .ok_or_else(|| ProvisionError::new(context.clone(), "SQS returned no queue URL"))?;
            if let Some(policy) = redrive {
                client
                    .set_queue_attributes()
                    .queue_url(&url)
                    .attributes(QueueAttributeName::RedrivePolicy, policy)
                    .send()
                    .await
                    .map_err(|e| sdk(&context, e))?;
            }
            Ok(url)
        }
        Err(err) => Err(sdk(&context, err)),
    }
}
