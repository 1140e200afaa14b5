//! Reading an index in order while some filters apply only after the lookup:
//! entries are read until `limit` pass or `budget` were evaluated, so a request
//! never reads more than its budget; a page cut short still carries where to
//! resume, so walking the cursors visits every match exactly once.

use crate::ports::{Item, Page, Query, Store, StoreError};

/// Reads `query` from its start (or `start_after`) until `limit` items parsed
/// by `parse` pass `keep`, or `budget` entries were evaluated. Returns them and
/// the item to resume after, when more may follow.
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
        query.limit = 100.min(budget - evaluated).max(1);
        let Page { items, last } = store.query(&query).await?;
        let count = items.len();
        for (position, item) in items.into_iter().enumerate() {
            evaluated += 1;
            let value = parse(&item)?;
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
