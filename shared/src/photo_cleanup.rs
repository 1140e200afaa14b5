//! Photo clean-up: public image objects no listed product references any more
//! (a removed photo, an unlisted product's photos) are deleted once they have
//! been unreferenced for a grace period.
//!
//! Mark and sweep: a run collects every image and thumbnail key of the listed
//! products (a scan of the table: hidden products count, unlisted ones do
//! not), lists `public/` in the assets bucket, and for each object no product
//! references either records when it was first seen so (`PHOTOORPHAN`/`<key>`)
//! or, once that lies longer ago than the grace period, deletes the object and
//! the mark. An object referenced again loses its mark. Keys are compared
//! whole, so an object still referenced by any product stays. The grace
//! period also covers a photo the worker has published but not yet attached.
//! A product item that does not decode is reported and its photos are kept:
//! every string in its stored `images` counts as referenced.

use std::collections::{BTreeMap, HashSet};
use std::pin::pin;

use futures::TryStreamExt;

use serde_json::{json, Value};
use time::Duration;

use crate::domain::ListingStatus;
use crate::ports::{BlobError, BlobStore, Clock, Condition, Item, ItemKey, Query, Store, StoreError};
use crate::repo;
use crate::repo::products::PUBLIC_PREFIX;

const MARK_PARTITION: &str = "PHOTOORPHAN";

/// What a clean-up run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Public objects looked at.
    pub objects: usize,
    /// Of those, referenced by a listed product.
    pub referenced: usize,
    /// Newly found unreferenced (marked; deleted after the grace period).
    pub marked: usize,
    /// Deleted this run.
    pub removed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

fn mark_key(object: &str) -> ItemKey {
    ItemKey::new(MARK_PARTITION, object)
}

/// Image and thumbnail keys of every listed product.
async fn referenced_keys(store: &dyn Store) -> Result<HashSet<String>, StoreError> {
    let mut keys = HashSet::new();
    let mut pages = pin!(crate::repo::scan_all(store, 0, 1, 1000));
    while let Some(page) = pages.try_next().await? {
        for item in page.items.iter().filter(|item| item.str("entity") == Some("product")) {
            let Some(product) = crate::repo::decoded(item, repo::products::from_item) else {
                keys.extend(raw_strings(item.attrs.get("images")));
                continue;
            };
            if product.status == ListingStatus::Listed {
                for image in product.images {
                    keys.insert(image.key);
                    keys.insert(image.thumbnail_key);
                }
            }
        }
    }
    Ok(keys)
}

/// Every string inside `value`, however deeply nested.
fn raw_strings(value: Option<&Value>) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending: Vec<&Value> = value.into_iter().collect();
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) => found.push(text.clone()),
            Value::Array(values) => pending.extend(values),
            Value::Object(fields) => pending.extend(fields.values()),
            _ => {}
        }
    }
    found
}

/// When each marked object was first seen unreferenced (epoch seconds).
async fn marks(store: &dyn Store) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut marks = BTreeMap::new();
    let mut query = Query { limit: 1000, ..Query::partition(MARK_PARTITION) };
    loop {
        let page = store.query(&query).await?;
        for item in &page.items {
            marks.insert(item.key.sk.clone(), item.int("since").unwrap_or_default());
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return Ok(marks),
        }
    }
}

/// One clean-up run over the public objects of `assets` (see the module doc).
pub async fn run(
    store: &dyn Store,
    assets: &dyn BlobStore,
    clock: &dyn Clock,
    grace: Duration,
) -> Result<CleanupReport, CleanupError> {
    let referenced = referenced_keys(store).await?;
    let mut marks = marks(store).await?;
    let now = clock.now().unix_timestamp();
    let mut report = CleanupReport::default();
    for object in assets.list(PUBLIC_PREFIX).await? {
        report.objects += 1;
        let since = marks.remove(&object);
        if referenced.contains(&object) {
            report.referenced += 1;
            if since.is_some() {
                store.delete(mark_key(&object), Condition::None).await?;
            }
            continue;
        }
        match since {
            None => {
                let Value::Object(attrs) = json!({"entity": "photoOrphan", "since": now}) else {
                    unreachable!("json! of an object literal is an object")
                };
                store.put(Item::new(mark_key(&object), attrs), Condition::None).await?;
                report.marked += 1;
            }
            Some(since) if now - since >= grace.whole_seconds() => {
                assets.delete(&object).await?;
                store.delete(mark_key(&object), Condition::None).await?;
                tracing::info!(object = %object, "unreferenced photo removed");
                report.removed += 1;
            }
            Some(_) => {}
        }
    }
    // Marks of objects that are gone.
    for object in marks.keys() {
        store.delete(mark_key(object), Condition::None).await?;
    }
    Ok(report)
}
