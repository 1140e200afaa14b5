//! The embedded item store: the single table as the SQLite table `items`, whose
//! index key attributes and `ttl` are mirrored from the JSON attributes into
//! indexed columns so index queries and expiry checks run in SQL.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::Notify;

use super::db::Db;
use crate::adapters::rules;
use crate::ports::{Attrs, Index, Item, ItemKey, Page, Query, Scan, ScanPage, Store, StoreError, WriteOp, ATTR_TTL};

/// `items` mirrors the DynamoDB table: `pk`/`sk` primary key, `ttl`, and `attrs`
/// holding every attribute as JSON. Each index's key pair is mirrored into the
/// columns `gsiNpk`/`gsiNsk` (set only when both attributes are present, which is
/// when DynamoDB indexes an item); `add_index_columns` adds them, so a data
/// directory made before an index existed gains it on open.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk     TEXT NOT NULL,
    sk     TEXT NOT NULL,
    ttl    INTEGER,
    attrs  TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
";

/// Adds the key columns (and SQL index) of every `Index` the table lacks. New
/// columns start empty: no stored item has attributes of an index that did not
/// exist when it was written.
fn add_index_columns(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('items')")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for index in Index::ALL {
        let (pk, sk) = index.key_attrs();
        for column in [pk, sk] {
            if !existing.iter().any(|c| c == column) {
                tx.execute_batch(&format!("ALTER TABLE items ADD COLUMN {column} TEXT;"))?;
            }
        }
        tx.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS items_{name} ON items ({pk}, {sk}, pk, sk);",
            name = index.name()
        ))?;
    }
    tx.commit()
}

/// The item store on a SQLite file. Several processes may open the same file.
///
/// Expired items (a `ttl` in the past) read as absent and count as absent for
/// conditions; they stay in the file until overwritten or deleted, as they do in
/// DynamoDB until its TTL sweeper removes them.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Db,
    /// Notified after each committed write (see `super::wake`).
    written: Arc<Notify>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in the SQLite file at `path`. Every
    /// store and job queue this process opens on one file shares its
    /// connections (see `Db`).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_index_columns(path, Db::open(path, SCHEMA))
    }

    /// Opens the store with connections of its own, as another process on the
    /// file would: for tests of concurrent writers across processes.
    pub fn open_unshared(path: &Path) -> Result<Self, StoreError> {
        Self::with_index_columns(path, Db::open_unshared(path, SCHEMA))
    }

    fn with_index_columns(path: &Path, opened: Result<Db, super::db::OpenError>) -> Result<Self, StoreError> {
        let context = || format!("open embedded store {}", path.display());
        let db = opened.map_err(|e| StoreError::backend(context(), e))?;
        db.with_conn(add_index_columns).map_err(|e| StoreError::backend(context(), e))?;
        Ok(Self { db, written: super::wake::waker(path, super::wake::STORE_WRITES) })
    }

    /// Runs `f` on the blocking pool; `context` names the call if the task fails.
    async fn call<T: Send + 'static>(
        &self,
        context: String,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = context.clone();
        self.db.call(move |conn| f(conn, &inner)).await.map_err(|e| StoreError::backend(context, e))?
    }

    /// Runs `f`, a single-statement read, on a read-only connection.
    async fn read<T: Send + 'static>(
        &self,
        context: String,
        f: impl FnOnce(&Connection, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = context.clone();
        self.db.read(move |conn| f(conn, &inner)).await.map_err(|e| StoreError::backend(context, e))?
    }
}

/// Attributes of the live item at `key`: `None` when absent or expired.
fn current(conn: &Connection, key: &ItemKey, now: i64, context: &str) -> Result<Option<Attrs>, StoreError> {
    let row: Option<(String, Option<i64>)> = conn
        .query_row("SELECT attrs, ttl FROM items WHERE pk = ?1 AND sk = ?2", params![key.pk, key.sk], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(|e| StoreError::backend(context, e))?;
    match row {
        Some((_, Some(ttl))) if ttl < now => Ok(None),
        Some((json, _)) => Ok(Some(parse_attrs(&json, context)?)),
        None => Ok(None),
    }
}

fn parse_attrs(json: &str, context: &str) -> Result<Attrs, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::backend(context, e))
}

/// The index key column values of `attrs` for `index`: both or neither.
fn index_columns(attrs: &Attrs, index: Index) -> (Option<&str>, Option<&str>) {
    let (pk, sk) = index.key_attrs();
    match (attrs.get(pk).and_then(|v| v.as_str()), attrs.get(sk).and_then(|v| v.as_str())) {
        (Some(pk), Some(sk)) => (Some(pk), Some(sk)),
        _ => (None, None),
    }
}

/// `INSERT OR REPLACE` of every column: `pk`, `sk`, `ttl`, `attrs`, then each
/// index's key pair in `Index::ALL` order (built once).
fn insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let mut columns = vec!["pk", "sk", "ttl", "attrs"];
        for index in Index::ALL {
            let (pk, sk) = index.key_attrs();
            columns.extend([pk, sk]);
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
        format!("INSERT OR REPLACE INTO items ({}) VALUES ({})", columns.join(", "), placeholders.join(", "))
    })
}

fn write_item(conn: &Connection, item: &Item, context: &str) -> Result<(), StoreError> {
    let json = serde_json::to_string(&item.attrs).map_err(|e| StoreError::backend(context, e))?;
    let mut values: Vec<SqlValue> =
        vec![item.key.pk.clone().into(), item.key.sk.clone().into(), item.int(ATTR_TTL).into(), json.into()];
    for index in Index::ALL {
        let (pk, sk) = index_columns(&item.attrs, index);
        values.extend([pk.map(str::to_owned).into(), sk.map(str::to_owned).into()]);
    }
    conn.prepare_cached(insert_sql())
        .and_then(|mut statement| statement.execute(params_from_iter(values)))
        .map_err(|e| StoreError::backend(context, e))?;
    Ok(())
}

/// Checks every condition, then applies every write, in one `BEGIN IMMEDIATE`
/// transaction (so no other process writes between the checks and the writes).
fn transact(conn: &mut Connection, writes: &[WriteOp], context: &str) -> Result<(), StoreError> {
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| StoreError::backend(context, e))?;
    let now = rules::now_epoch();
    let mut adjusted = Vec::new();
    for (index, write) in writes.iter().enumerate() {
        let live = current(&tx, write.key(), now, context)?;
        let holds = match write {
            WriteOp::Put { condition, .. } | WriteOp::Delete { condition, .. } | WriteOp::Check { condition, .. } => {
                rules::condition_holds(condition, live.as_ref())
            }
            WriteOp::Adjust { key, add, guards } => {
                let holds = rules::guards_hold(guards, live.as_ref());
                if let (true, Some(attrs)) = (holds, live) {
                    adjusted.push(Item::new(key.clone(), rules::adjusted(attrs, add)));
                }
                holds
            }
        };
        if !holds {
            return Err(StoreError::ConditionFailed { index });
        }
    }
    for item in &adjusted {
        write_item(&tx, item, context)?;
    }
    for write in writes {
        match write {
            WriteOp::Put { item, .. } => write_item(&tx, item, context)?,
            WriteOp::Adjust { .. } => {}
            WriteOp::Delete { key, .. } => {
                tx.execute("DELETE FROM items WHERE pk = ?1 AND sk = ?2", params![key.pk, key.sk])
                    .map_err(|e| StoreError::backend(context, e))?;
            }
            WriteOp::Check { .. } => {}
        }
    }
    tx.commit().map_err(|e| StoreError::backend(context, e))
}

/// `Store::increment` in one `BEGIN IMMEDIATE` transaction.
fn increment(
    conn: &mut Connection,
    key: &ItemKey,
    attr: &str,
    expires_at: i64,
    context: &str,
) -> Result<i64, StoreError> {
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| StoreError::backend(context, e))?;
    let mut attrs = current(&tx, key, rules::now_epoch(), context)?.unwrap_or_default();
    let next = attrs.get(attr).and_then(serde_json::Value::as_i64).unwrap_or(0) + 1;
    attrs.insert(attr.to_owned(), next.into());
    attrs.insert(ATTR_TTL.to_owned(), expires_at.into());
    write_item(&tx, &Item::new(key.clone(), attrs), context)?;
    tx.commit().map_err(|e| StoreError::backend(context, e))?;
    Ok(next)
}

/// One page of one scan segment: live rows in key order after `start_after`,
/// those of the segment kept, up to `limit` (one more tells whether more follow).
fn scan(conn: &Connection, scan: &Scan, context: &str) -> Result<ScanPage, StoreError> {
    let (after_pk, after_sk) =
        scan.start_after.as_ref().map_or((String::new(), String::new()), |k| (k.pk.clone(), k.sk.clone()));
    let mut statement = conn
        .prepare_cached(
            "SELECT pk, sk, attrs FROM items WHERE (ttl IS NULL OR ttl >= ?1) AND (pk, sk) > (?2, ?3) ORDER BY pk, sk",
        )
        .map_err(|e| StoreError::backend(context, e))?;
    let rows = statement
        .query_map(params![rules::now_epoch(), after_pk, after_sk], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
        })
        .map_err(|e| StoreError::backend(context, e))?;
    let mut items = Vec::new();
    for row in rows {
        let (pk, sk, json) = row.map_err(|e| StoreError::backend(context, e))?;
        if rules::segment_of(&pk, scan.total_segments) != scan.segment {
            continue;
        }
        if items.len() == scan.limit {
            let last = items.last().map(|item: &Item| item.key.clone());
            return Ok(ScanPage { items, last, read_units: 0.0 });
        }
        items.push(Item::new(ItemKey::new(pk, sk), parse_attrs(&json, context)?));
    }
    Ok(ScanPage { items, last: None, read_units: 0.0 })
}

/// One page of `query`, reading `limit + 1` rows to know whether more follow.
fn query(conn: &Connection, query: &Query, context: &str) -> Result<Page, StoreError> {
    let (pcol, scol) = match query.index {
        None => ("pk", "sk"),
        Some(index) => index.key_attrs(),
    };
    let mut params: Vec<SqlValue> = vec![query.partition.clone().into(), rules::now_epoch().into()];
    let mut sql = format!("SELECT pk, sk, attrs FROM items WHERE {pcol} = ?1 AND (ttl IS NULL OR ttl >= ?2)");
    if query.index.is_some() {
        sql.push_str(&format!(" AND {scol} IS NOT NULL"));
    }
    if let Some(prefix) = query.sort_prefix.as_deref().filter(|p| !p.is_empty()) {
        params.push(prefix.to_owned().into());
        let n = params.len();
        sql.push_str(&format!(" AND {scol} >= ?{n} AND substr({scol}, 1, length(?{n})) = ?{n}"));
    }
    if let Some((low, high)) = &query.sort_between {
        params.extend([low.clone().into(), high.clone().into()]);
        let n = params.len();
        sql.push_str(&format!(" AND {scol} BETWEEN ?{} AND ?{n}", n - 1));
    }
    let (op, dir) = if query.ascending { (">", "ASC") } else { ("<", "DESC") };
    if let Some(after) = &query.start_after {
        if query.index.is_none() {
            params.push(after.key.sk.clone().into());
            sql.push_str(&format!(" AND sk {op} ?{}", params.len()));
        } else {
            let (_, sort) = rules::sort_key(query, after).ok_or_else(|| {
                StoreError::Invalid(format!("start_after item {}/{} lacks the index keys", after.key.pk, after.key.sk))
            })?;
            params.extend([sort.to_owned().into(), after.key.pk.clone().into(), after.key.sk.clone().into()]);
            let n = params.len();
            sql.push_str(&format!(" AND ({scol}, pk, sk) {op} (?{}, ?{}, ?{n})", n - 2, n - 1));
        }
    }
    if query.index.is_none() {
        sql.push_str(&format!(" ORDER BY sk {dir}"));
    } else {
        sql.push_str(&format!(" ORDER BY {scol} {dir}, pk {dir}, sk {dir}"));
    }
    sql.push_str(&format!(" LIMIT {}", query.limit + 1));

    let mut statement = conn.prepare_cached(&sql).map_err(|e| StoreError::backend(context, e))?;
    let rows = statement
        .query_map(params_from_iter(params), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
        })
        .map_err(|e| StoreError::backend(context, e))?;
    let mut items = Vec::new();
    for row in rows {
        let (pk, sk, json) = row.map_err(|e| StoreError::backend(context, e))?;
        items.push(Item::new(ItemKey::new(pk, sk), parse_attrs(&json, context)?));
    }
    let last = if items.len() > query.limit {
        items.truncate(query.limit);
        items.last().cloned()
    } else {
        None
    };
    Ok(Page { items, last })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        rules::check_key(key)?;
        let key = key.clone();
        let context = format!("get item {}/{}", key.pk, key.sk);
        self.read(context, move |conn, context| {
            Ok(current(conn, &key, rules::now_epoch(), context)?.map(|attrs| Item::new(key, attrs)))
        })
        .await
    }

    async fn transact(&self, writes: Vec<WriteOp>) -> Result<(), StoreError> {
        let writes = rules::check_writes(writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        let context = rules::describe_writes(&writes);
        self.call(context, move |conn, context| transact(conn, &writes, context)).await?;
        self.written.notify_waiters();
        Ok(())
    }

    async fn query(&self, q: &Query) -> Result<Page, StoreError> {
        rules::check_query(q)?;
        let q = q.clone();
        self.read(rules::query_context(&q), move |conn, context| query(conn, &q, context)).await
    }

    async fn scan(&self, s: &Scan) -> Result<ScanPage, StoreError> {
        rules::check_scan(s)?;
        let s = s.clone();
        let context = format!("scan segment {} of {}", s.segment, s.total_segments);
        self.read(context, move |conn, context| scan(conn, &s, context)).await
    }

    async fn increment(&self, key: &ItemKey, attr: &str, expires_at: i64) -> Result<i64, StoreError> {
        rules::check_key(key)?;
        let (key, attr) = (key.clone(), attr.to_owned());
        let context = format!("increment {attr} of {}/{}", key.pk, key.sk);
        let count = self.call(context, move |conn, context| increment(conn, &key, &attr, expires_at, context)).await?;
        self.written.notify_waiters();
        Ok(count)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping embedded store".into(), |conn, context| {
            conn.query_row("SELECT count(*) FROM items WHERE pk = ''", [], |row| row.get::<_, i64>(0))
                .map(|_| ())
                .map_err(|e| StoreError::backend(context, e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Condition;
    use serde_json::Value;

    #[tokio::test]
    async fn a_store_made_before_newer_indexes_gains_them_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE items (pk TEXT NOT NULL, sk TEXT NOT NULL, gsi1pk TEXT, gsi1sk TEXT, gsi2pk TEXT,
             gsi2sk TEXT, ttl INTEGER, attrs TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID;
             INSERT INTO items VALUES ('U#1', 'P', 'L', '1', NULL, NULL, NULL, '{\"gsi1pk\":\"L\",\"gsi1sk\":\"1\"}');",
        )
        .unwrap();
        drop(old);
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.query(&Query::index(Index::Gsi1, "L")).await.unwrap().items.len(), 1);
        let Value::Object(attrs) = serde_json::json!({ "gsi5pk": "F", "gsi5sk": "2" }) else { unreachable!() };
        store.put(Item::new(ItemKey::new("P#2", "P"), attrs), Condition::None).await.unwrap();
        assert_eq!(store.query(&Query::index(Index::Gsi5, "F")).await.unwrap().items.len(), 1);
        // Opening again (as a second local process would) changes nothing.
        EmbeddedStore::open_unshared(&path).unwrap();
    }
}
