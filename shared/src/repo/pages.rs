//! Reading an index in order while some filters apply only after the lookup:
//! entries are read until `limit` pass or `budget` were evaluated, so a request
//! never reads more than its budget; a page cut short still carries where to
//! resume, so walking the cursors visits every match exactly once. Entries are
//! read in batches sized to what the page still needs at the pass rate seen so
//! far, so a filter most entries pass reads about what an unfiltered page reads.

use crate::ports::{Item, Page, Query, Store, StoreError};

/// Most entries one read asks for.
const MAX_BATCH: usize = 100;

/// How many entries to read next for `needed` more matches, after `passed` of
/// `evaluated` passed: all of them first, then as many as the pass rate so far
/// says (counted as at least 1 in 20, so a rare match does not mean many reads).
fn batch_size(needed: usize, passed: usize, evaluated: usize) -> usize {
    if evaluated == 0 {
        return needed.min(MAX_BATCH);
    }
    let rate = (passed.max(1) as f64 / evaluated as f64).clamp(0.05, 1.0);
    ((needed as f64 / rate).ceil() as usize + 1).min(MAX_BATCH)
}

/// Reads `query` from its start (or `start_after`) until `limit` items parsed
/// by `parse` pass `keep`, or `budget` entries were evaluated. Returns them and
/// the item to resume after, when more may follow. An entry that does not parse
/// is reported and skipped (`repo::decoded`).
pub async fn filtered<T>(
    store: &dyn Store,
    mut query: Query,
    parse: impl Fn(&Item) -> Result<T, StoreError>,
    keep: impl Fn(&T) -> bool,
    limit: usize,
    budget: usize,
) -> Result<(Vec<T>, Option<Item>), StoreError> {
    let mut found = Vec::new();
    let mut evaluated = 0;
    loop {
        query.limit = batch_size(limit - found.len(), found.len(), evaluated).min(budget - evaluated).max(1);
        let Page { items, last } = store.query(&query).await?;
        let count = items.len();
        for (position, item) in items.into_iter().enumerate() {
            evaluated += 1;
            let Some(value) = super::decoded(&item, &parse) else {
                continue;
            };
            if keep(&value) {
                found.push(value);
                if found.len() == limit {
                    let more = position + 1 < count || last.is_some();
                    return Ok((found, more.then_some(item)));
                }
            }
        }
        match last {
            None => return Ok((found, None)),
            Some(last) if evaluated >= budget => return Ok((found, Some(last))),
            Some(last) => query.start_after = Some(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::ports::{ItemKey, Scan, ScanPage, WriteOp};

    /// Counts the entries queries return.
    struct Counting {
        inner: crate::adapters::EmbeddedStore,
        entries: AtomicUsize,
    }

    #[async_trait]
    impl Store for Counting {
        async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
            self.inner.get(key).await
        }
        async fn transact(&self, writes: Vec<WriteOp>) -> Result<(), StoreError> {
            self.inner.transact(writes).await
        }
        async fn query(&self, query: &Query) -> Result<Page, StoreError> {
            let page = self.inner.query(query).await?;
            self.entries.fetch_add(page.items.len(), Ordering::SeqCst);
            Ok(page)
        }
        async fn scan(&self, scan: &Scan) -> Result<ScanPage, StoreError> {
            self.inner.scan(scan).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn increment(&self, key: &ItemKey, attr: &str, expires_at: i64) -> Result<i64, StoreError> {
            self.inner.increment(key, attr, expires_at).await
        }
    }

    /// Entries read for a page of 20 passing `keep` within `budget`, and what passed.
    async fn entries_read(store: &Counting, keep: impl Fn(&i64) -> bool, budget: usize) -> (usize, Vec<i64>) {
        store.entries.store(0, Ordering::SeqCst);
        let parse = |item: &Item| Ok(item.int("n").unwrap_or_default());
        let (found, _) = filtered(store, Query::partition("P"), parse, keep, 20, budget).await.unwrap();
        (store.entries.load(Ordering::SeqCst), found)
    }

    #[tokio::test]
    async fn a_filter_most_entries_pass_reads_about_what_an_unfiltered_page_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Counting {
            inner: crate::adapters::EmbeddedStore::open(&dir.path().join("p.db")).unwrap(),
            entries: AtomicUsize::new(0),
        };
        for chunk in (0..500i64).collect::<Vec<_>>().chunks(25) {
            let writes = chunk
                .iter()
                .map(|n| {
                    let serde_json::Value::Object(attrs) = json!({ "n": n }) else { unreachable!() };
                    let item = Item::new(ItemKey::new("P", format!("{n:05}")), attrs);
                    WriteOp::Put { item, condition: crate::ports::Condition::None }
                })
                .collect();
            store.transact(writes).await.unwrap();
        }
        // An unfiltered page reads exactly its 20 entries (its budget is its size).
        let (unfiltered, all) = entries_read(&store, |_| true, 20).await;
        assert_eq!((unfiltered, all.len()), (20, 20));
        // Nine in ten pass: at most twice the entries of the unfiltered page.
        let (most, found) = entries_read(&store, |n| n % 10 != 0, 1000).await;
        assert_eq!(found.len(), 20);
        assert!(found.iter().all(|n| n % 10 != 0));
        assert!(most <= 2 * unfiltered, "read {most} entries for a page most pass");
        // One in ten passes: still a full page, in a few reads of growing size.
        let (rare, found) = entries_read(&store, |n| n % 10 == 0, 1000).await;
        assert_eq!(found, (0..20).map(|n| n * 10).collect::<Vec<_>>());
        assert!(rare <= 300, "read {rare} entries for 20 of one in ten");
    }
}
