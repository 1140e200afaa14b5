//! The transactional outbox: `OUTBOX`/`<event id>` items, each holding one job
//! (`job`, its JSON text), written in the same transaction as the change it
//! announces, so an event exists if and only if its change committed.
//!
//! Relaying: in AWS an EventBridge Pipe reads the table's stream (new `OUTBOX`
//! items only) and sends each job to the jobs queue, retrying and then
//! dead-lettering what it cannot deliver; the items expire by TTL a week later.
//! Locally `relay` drains the partition into the embedded queue: hand off, then
//! delete. A crash between the two hands the job off again, which the worker
//! absorbs (every effect is keyed by the event id); a crash before the hand-off
//! leaves the item for the next drain. Nothing is lost either way.

use serde_json::Value;

use crate::jobs::Job;
use crate::ports::{Condition, Item, ItemKey, JobError, JobQueue, Query, Store, StoreError, WriteOp, ATTR_TTL};

/// The partition of pending events.
pub const PARTITION: &str = "OUTBOX";
/// How long an event item stays (the AWS relay reads it from the stream at once).
const KEPT_SECS: i64 = 7 * 24 * 3600;

/// Why a relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Jobs(#[from] JobError),
}

/// The write putting `job` in the outbox under `event_id` (a fresh ULID).
pub fn write(event_id: &str, job: &Job, now_epoch: i64) -> WriteOp {
    let mut attrs = serde_json::Map::new();
    attrs.insert("entity".into(), "outboxEvent".into());
    attrs.insert("job".into(), serde_json::to_string(job).expect("jobs serialize").into());
    attrs.insert(ATTR_TTL.into(), (now_epoch + KEPT_SECS).into());
    WriteOp::Put { item: Item::new(ItemKey::new(PARTITION, event_id), attrs), condition: Condition::NotExists }
}

/// Up to `limit` pending events, oldest first.
pub async fn pending(store: &dyn Store, limit: usize) -> Result<Vec<Item>, StoreError> {
    let mut query = Query::partition(PARTITION);
    query.limit = limit;
    Ok(store.query(&query).await?.items)
}

/// Sends one event's job to the queue.
pub async fn hand_off(jobs: &dyn JobQueue, event: &Item) -> Result<(), RelayError> {
    let body = event.attrs.get("job").and_then(Value::as_str).unwrap_or("{}");
    jobs.send(body).await?;
    Ok(())
}

/// Removes a handed-off event.
pub async fn acknowledge(store: &dyn Store, event: &Item) -> Result<(), StoreError> {
    store.delete(event.key.clone(), Condition::None).await
}

/// Hands off and removes every pending event, oldest first; returns how many.
pub async fn relay(store: &dyn Store, jobs: &dyn JobQueue) -> Result<usize, RelayError> {
    let mut relayed = 0;
    loop {
        let events = pending(store, 25).await?;
        if events.is_empty() {
            return Ok(relayed);
        }
        for event in &events {
            hand_off(jobs, event).await?;
            acknowledge(store, event).await?;
            relayed += 1;
        }
    }
}
