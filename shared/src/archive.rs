//! The order archive: finished orders (`delivered` or `cancelled`) older than
//! the archive age move from the table to the data bucket as gzip-compressed
//! JSON lines, partitioned the way Athena reads them:
//! `archive/orders/year=YYYY/month=MM/<batch id>.jsonl.gz` (year and month of
//! the order date; the table definition is `infra/athena/orders_archive.sql`).
//!
//! # Crash safety: a journal per batch
//!
//! A run picks up to `batch_size` eligible orders of one month and first writes
//! a journal item `ARCHIVE`/`BATCH#<batch id>` naming them and their object.
//! Completing a batch then (1) writes the object from the orders still in the
//! table and, for orders an earlier attempt already deleted, from the object
//! that attempt wrote; (2) reads it back and checks the line count and the
//! SHA-256 of the lines; (3) deletes the orders, each in the same transaction
//! as a pointer `ORDER#<id>`/`ARCHIVED` naming the object (so `GET
//! /orders/{id}` finds an archived order in one read), and only on an
//! unchanged version; (4) deletes the journal item. Every run first completes
//! the batches a killed run left, so a run killed at any point and started
//! again loses no order and archives none twice: the object name comes from
//! the journal, and rewriting it replaces the earlier attempt. An order that
//! changed between (1) and (3) fails its version check and the batch is
//! completed again from the top.
//!
//! The archive touches neither the sales figures (their own items) nor the
//! outbox: archiving is not an order event. Two runs must not overlap; the
//! template gives the function a reserved concurrency of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::domain::{Order, OrderId, OrderStatus};
use crate::jsonl;
use crate::ports::{
    BlobError, BlobStore, Clock, Condition, Index, Item, ItemKey, Query, Store, StoreError, WriteOp, ATTR_VERSION,
};
use crate::repo;
use crate::retry::{self, Attempt};

/// Key prefix of the archive in the data bucket.
pub const OBJECT_PREFIX: &str = "archive/orders/";
/// Content type of archive objects (gzip-compressed JSON lines).
pub const CONTENT_TYPE: &str = "application/x-ndjson";
const JOURNAL_PARTITION: &str = "ARCHIVE";
const JOURNAL_PREFIX: &str = "BATCH#";
/// Orders deleted per transaction (each with its pointer: two writes).
const DELETES_PER_TRANSACTION: usize = 12;

/// What a run archives.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSettings {
    /// Finished orders placed longer ago than this are archived.
    pub min_age: Duration,
    /// Most orders per object.
    pub batch_size: usize,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        Self { min_age: Duration::days(180), batch_size: 1000 }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Orders moved out of the table by this run.
    pub archived: usize,
    /// Objects written (batches completed), including batches an earlier run left.
    pub batches: usize,
    /// Batches a killed earlier run left, completed by this one.
    pub resumed: usize,
    /// `false` when the time budget ran out with eligible orders left (the next run goes on).
    pub complete: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("archive object {key}: {reason}")]
    Object { key: String, reason: String },
    /// The object an archived order's pointer names is not in the bucket (lost,
    /// or not restored with the table).
    #[error("archive object {key} is missing, though order {order} points at it")]
    MissingObject { key: String, order: OrderId },
}

/// One journalled batch: which orders go into which object.
#[derive(Debug, Clone, PartialEq)]
struct Batch {
    id: String,
    object: String,
    order_ids: Vec<OrderId>,
}

fn journal_key(batch_id: &str) -> ItemKey {
    ItemKey::new(JOURNAL_PARTITION, format!("{JOURNAL_PREFIX}{batch_id}"))
}

/// The key of the pointer an archived order leaves in the table.
pub fn pointer_key(id: OrderId) -> ItemKey {
    ItemKey::new(repo::orders::key(id).pk, "ARCHIVED")
}

/// The archive object an item names, when it is an archived order's pointer.
pub fn pointed_object(item: &Item) -> Option<&str> {
    (item.key.pk.starts_with("ORDER#") && item.key.sk == "ARCHIVED").then(|| item.str("object")).flatten()
}

/// The object a batch of orders placed in `month` goes to.
pub fn object_key(created: OffsetDateTime, batch_id: &str) -> String {
    format!("{OBJECT_PREFIX}year={:04}/month={:02}/{batch_id}.jsonl.gz", created.year(), u8::from(created.month()))
}

fn batch_to_item(batch: &Batch) -> Item {
    let Value::Object(attrs) = json!({
        "entity": "archiveBatch",
        "object": batch.object,
        "orderIds": batch.order_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(journal_key(&batch.id), attrs)
}

fn batch_from_item(item: &Item) -> Result<Batch, StoreError> {
    let bad = || StoreError::Invalid(format!("archive journal item {} is malformed", item.key.sk));
    Ok(Batch {
        id: item.key.sk.strip_prefix(JOURNAL_PREFIX).ok_or_else(bad)?.to_owned(),
        object: item.str("object").ok_or_else(bad)?.to_owned(),
        order_ids: item
            .attrs
            .get("orderIds")
            .and_then(Value::as_array)
            .ok_or_else(bad)?
            .iter()
            .map(|id| id.as_str().and_then(OrderId::parse).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
    })
}

/// An order's archive line: its stored attributes without the index keys and
/// without a delivery address (archived orders finished long ago; see
/// `repo::orders::redact_addresses`).
fn archive_line(item: &Item) -> Map<String, Value> {
    let mut attrs = item.attrs.clone();
    for index in Index::ALL {
        let (pk, sk) = index.key_attrs();
        attrs.remove(pk);
        attrs.remove(sk);
    }
    if let Some(Value::Object(fulfilment)) = attrs.get_mut("fulfilment") {
        fulfilment.insert("address".into(), Value::Null);
    }
    attrs
}

/// The order an archive line holds.
pub fn order_from_line(line: &Map<String, Value>) -> Result<Order, StoreError> {
    let id = line.get("id").and_then(Value::as_str).and_then(OrderId::parse);
    let id = id.ok_or_else(|| StoreError::Invalid("archive line without an order id".into()))?;
    let mut order = repo::orders::from_item(&Item::new(repo::orders::key(id), line.clone()))?;
    order.archived = true;
    Ok(order)
}

/// Gzip-compressed JSON lines and the SHA-256 (hex) of the uncompressed lines.
fn encode(lines: &[Map<String, Value>]) -> (Vec<u8>, String) {
    let mut text = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut text, line).expect("JSON values serialize");
        text.push(b'\n');
    }
    let checksum = hex::encode(Sha256::digest(&text));
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&text).expect("writing to memory cannot fail");
    (gz.finish().expect("writing to memory cannot fail"), checksum)
}

/// The lines of an archive object and the SHA-256 (hex) of their text.
pub fn decode(key: &str, bytes: &[u8]) -> Result<(Vec<Map<String, Value>>, String), ArchiveError> {
    let bad = |reason: String| ArchiveError::Object { key: key.to_owned(), reason };
    let text = jsonl::gunzip(bytes).map_err(bad)?;
    let checksum = hex::encode(Sha256::digest(&text));
    let lines = jsonl::parse_lines(&text).map_err(bad)?;
    Ok((lines, checksum))
}

/// Whether `order` may be archived at `now`.
fn eligible(order: &Order, cutoff: OffsetDateTime) -> bool {
    matches!(order.status, OrderStatus::Delivered | OrderStatus::Cancelled) && order.created_at < cutoff
}

/// Archives eligible orders until none are left or `deadline` is near; see the
/// module doc. `deadline` is when the run must have returned (the Lambda
/// deadline less a margin); no batch starts after it.
pub async fn run(
    store: &dyn Store,
    bucket: &dyn BlobStore,
    clock: &dyn Clock,
    settings: ArchiveSettings,
    deadline: Instant,
) -> Result<ArchiveReport, ArchiveError> {
    let mut report = ArchiveReport::default();
    for batch in unfinished_batches(store).await? {
        tracing::info!(batch = %batch.id, orders = batch.order_ids.len(), "completing a batch an earlier run left");
        report.archived += complete(store, bucket, clock, &batch).await?;
        report.batches += 1;
        report.resumed += 1;
    }
    let cutoff = clock.now() - settings.min_age;
    loop {
        if Instant::now() >= deadline {
            return Ok(report);
        }
        let Some((created, order_ids)) = next_batch(store, cutoff, settings.batch_size).await? else {
            report.complete = true;
            return Ok(report);
        };
        let id = ulid::Ulid::new().to_string();
        let batch = Batch { object: object_key(created, &id), id, order_ids };
        store.put(batch_to_item(&batch), Condition::NotExists).await?;
        report.archived += complete(store, bucket, clock, &batch).await?;
        report.batches += 1;
    }
}

async fn unfinished_batches(store: &dyn Store) -> Result<Vec<Batch>, StoreError> {
    let mut batches = Vec::new();
    let mut query = Query { sort_prefix: Some(JOURNAL_PREFIX.into()), ..Query::partition(JOURNAL_PARTITION) };
    loop {
        let page = store.query(&query).await?;
        for item in &page.items {
            batches.push(batch_from_item(item)?);
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return Ok(batches),
        }
    }
}

/// Up to `limit` eligible orders placed in the same month as the oldest
/// eligible one (oldest first), with that one's order date.
async fn next_batch(
    store: &dyn Store,
    cutoff: OffsetDateTime,
    limit: usize,
) -> Result<Option<(OffsetDateTime, Vec<OrderId>)>, StoreError> {
    let millis = (cutoff.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    let below_cutoff = ulid::Ulid::from_parts(millis, 0).to_string();
    let mut query = Query {
        sort_between: Some((ulid::Ulid::nil().to_string(), below_cutoff)),
        limit: 500,
        ..repo::orders::Listing::All.query()
    };
    query.ascending = true;
    let mut month: Option<OffsetDateTime> = None;
    let mut ids = Vec::new();
    loop {
        let page = store.query(&query).await?;
        for item in &page.items {
            let Some(order) = crate::repo::decoded(item, repo::orders::from_item) else {
                continue;
            };
            if !eligible(&order, cutoff) {
                continue;
            }
            let first = *month.get_or_insert(order.created_at);
            if (first.year(), first.month()) != (order.created_at.year(), order.created_at.month()) {
                return Ok(Some((first, ids)));
            }
            ids.push(order.id);
            if ids.len() == limit {
                return Ok(Some((first, ids)));
            }
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return Ok(month.map(|first| (first, ids))),
        }
    }
}

/// Completes `batch` (steps 1 to 4 of the module doc); returns how many
/// orders it deleted from the table.
async fn complete(
    store: &dyn Store,
    bucket: &dyn BlobStore,
    clock: &dyn Clock,
    batch: &Batch,
) -> Result<usize, ArchiveError> {
    // Orders deleted by the attempts so far.
    let deleted = AtomicUsize::new(0);
    retry::run(retry::ARCHIVE_BATCH, |_| async {
        match write_and_delete(store, bucket, clock, batch).await? {
            Completion::Done(count) => {
                let deleted = deleted.fetch_add(count, Ordering::Relaxed) + count;
                store.delete(journal_key(&batch.id), Condition::None).await?;
                tracing::info!(batch = %batch.id, object = %batch.object, orders = batch.order_ids.len(), "archive batch written");
                Ok(Attempt::Done(deleted))
            }
            Completion::Changed(count) => {
                deleted.fetch_add(count, Ordering::Relaxed);
                let contended = StoreError::Contended(format!("orders of archive batch {} kept changing", batch.id));
                Ok(Attempt::Again(contended.into()))
            }
        }
    })
    .await
}

enum Completion {
    /// Every order of the batch is in the object and out of the table.
    Done(usize),
    /// An order changed after the object was written; this many were deleted.
    Changed(usize),
}

async fn write_and_delete(
    store: &dyn Store,
    bucket: &dyn BlobStore,
    clock: &dyn Clock,
    batch: &Batch,
) -> Result<Completion, ArchiveError> {
    // Orders an earlier attempt deleted are only in the object it wrote (an
    // order leaves the table only once that object was read back whole).
    let earlier: BTreeMap<String, Map<String, Value>> = match bucket.get(&batch.object).await? {
        Some(blob) => decode(&batch.object, &blob.bytes)
            .map(|(lines, _)| lines)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|line| Some((line.get("id")?.as_str()?.to_owned(), line)))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut lines = Vec::with_capacity(batch.order_ids.len());
    let mut in_table = Vec::new();
    for id in &batch.order_ids {
        if let Some(item) = store.get(&repo::orders::key(*id)).await? {
            let version = item.int(ATTR_VERSION).unwrap_or_default();
            lines.push(archive_line(&item));
            in_table.push((*id, version));
        } else if let Some(line) = earlier.get(&id.to_string()) {
            lines.push(line.clone());
        } else {
            return Err(ArchiveError::Object {
                key: batch.object.clone(),
                reason: format!("order {id} is neither in the table nor in the object"),
            });
        }
    }
    let (bytes, checksum) = encode(&lines);
    bucket.put(&batch.object, Bytes::from(bytes), CONTENT_TYPE).await?;
    let read_back = bucket.get(&batch.object).await?.ok_or_else(|| ArchiveError::Object {
        key: batch.object.clone(),
        reason: "missing right after it was written".into(),
    })?;
    let (read_lines, read_checksum) = decode(&batch.object, &read_back.bytes)?;
    if read_lines.len() != lines.len() || read_checksum != checksum {
        return Err(ArchiveError::Object {
            key: batch.object.clone(),
            reason: format!(
                "read back {} lines with checksum {read_checksum}, wrote {} with {checksum}",
                read_lines.len(),
                lines.len()
            ),
        });
    }
    let archived_at = clock.now().format(&Rfc3339).unwrap_or_default();
    let mut deleted = 0;
    for chunk in in_table.chunks(DELETES_PER_TRANSACTION) {
        let mut writes = Vec::with_capacity(chunk.len() * 2);
        for (id, version) in chunk {
            writes.push(WriteOp::Delete { key: repo::orders::key(*id), condition: Condition::VersionIs(*version) });
            let Value::Object(attrs) = json!({
                "entity": "archivedOrder",
                "object": batch.object,
                "archivedAt": archived_at,
            }) else {
                unreachable!("json! of an object literal is an object")
            };
            writes.push(WriteOp::Put { item: Item::new(pointer_key(*id), attrs), condition: Condition::None });
        }
        match store.transact(writes).await {
            Ok(()) => deleted += chunk.len(),
            Err(StoreError::ConditionFailed { .. }) => return Ok(Completion::Changed(deleted)),
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Completion::Done(deleted))
}

/// An archived order, found through the pointer it left in the table; `None`
/// when `id` was never archived.
pub async fn find(store: &dyn Store, bucket: &dyn BlobStore, id: OrderId) -> Result<Option<Order>, ArchiveError> {
    let Some(pointer) = store.get(&pointer_key(id)).await? else {
        return Ok(None);
    };
    let object = pointer
        .str("object")
        .ok_or_else(|| StoreError::Invalid(format!("archive pointer of order {id} names no object")))?;
    let blob =
        bucket.get(object).await?.ok_or_else(|| ArchiveError::MissingObject { key: object.to_owned(), order: id })?;
    let (lines, _) = decode(object, &blob.bytes)?;
    let wanted = id.to_string();
    let line = lines.iter().find(|line| line.get("id").and_then(Value::as_str) == Some(wanted.as_str()));
    Ok(line.map(order_from_line).transpose()?)
}

/// Every order in the archive (for tests and tools).
pub async fn read_all(bucket: &dyn BlobStore) -> Result<Vec<Order>, ArchiveError> {
    let mut found = Vec::new();
    for key in bucket.list(OBJECT_PREFIX).await? {
        let Some(blob) = bucket.get(&key).await? else { continue };
        for line in decode(&key, &blob.bytes)?.0 {
            found.push(order_from_line(&line)?);
        }
    }
    Ok(found)
}
