//! Rules both backends apply identically before touching storage: item and
//! transaction validation, query validation, blob key validation, and expiry.
//! Keeping them in one place is what lets the contract suite expect the same
//! answer from SQLite and from DynamoDB.

use std::collections::HashSet;

use serde_json::Value;

use crate::ports::{
    Attrs, BlobError, Condition, Guard, Index, Item, ItemKey, Query, Scan, StoreError, WriteOp, ATTR_TTL, ATTR_VERSION,
};

/// Most writes one transaction may hold (the port's limit).
pub(crate) const MAX_WRITES: usize = 25;
/// Most items one query page may return (the port's limit).
pub(crate) const MAX_LIMIT: usize = 1000;
/// Longest blob key (S3's limit, in bytes).
const MAX_BLOB_KEY: usize = 1024;

/// Current time in epoch seconds, the unit of `ttl`.
pub(crate) fn now_epoch() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether attributes carry a `ttl` that lies in the past.
pub(crate) fn is_expired(attrs: &Attrs, now: i64) -> bool {
    attrs.get(ATTR_TTL).and_then(Value::as_i64).is_some_and(|ttl| ttl < now)
}

/// Whether `condition` holds for the current attributes (`None` when the item is
/// absent or expired).
pub(crate) fn condition_holds(condition: &Condition, current: Option<&Attrs>) -> bool {
    match condition {
        Condition::None => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::VersionIs(version) => {
            current.and_then(|attrs| attrs.get(ATTR_VERSION)).and_then(Value::as_i64) == Some(*version)
        }
    }
}

/// Whether an existing item's attributes (`None` when absent or expired)
/// satisfy every guard of a `WriteOp::Adjust`.
pub(crate) fn guards_hold(guards: &[Guard], current: Option<&Attrs>) -> bool {
    let Some(attrs) = current else {
        return false;
    };
    guards.iter().all(|guard| match guard {
        Guard::AtLeast(attr, min) => attrs.get(attr).and_then(Value::as_i64).unwrap_or(0) >= *min,
        Guard::AtMost(attr, max) => attrs.get(attr).and_then(Value::as_i64).unwrap_or(0) <= *max,
        Guard::Equals(attr, value) => attrs.get(attr) == Some(value),
    })
}

/// `current` with each delta of a `WriteOp::Adjust` added.
pub(crate) fn adjusted(mut current: Attrs, add: &[(String, i64)]) -> Attrs {
    for (attr, delta) in add {
        let value = current.get(attr).and_then(Value::as_i64).unwrap_or(0) + delta;
        current.insert(attr.clone(), value.into());
    }
    current
}

/// Rejects an adjustment of a key attribute, an index key or the TTL.
fn check_adjust(key: &ItemKey, add: &[(String, i64)]) -> Result<(), StoreError> {
    check_key(key)?;
    let reserved =
        |attr: &str| attr == "pk" || attr == "sk" || attr == ATTR_TTL || index_key_attrs().any(|a| a == attr);
    match add.iter().find(|(attr, _)| reserved(attr)) {
        Some((attr, _)) => {
            Err(StoreError::Invalid(format!("attribute {attr} of {}/{} cannot be adjusted", key.pk, key.sk)))
        }
        None if add.is_empty() => {
            Err(StoreError::Invalid(format!("an adjustment of {}/{} adds nothing", key.pk, key.sk)))
        }
        None => Ok(()),
    }
}

/// Rejects scans DynamoDB would reject.
pub(crate) fn check_scan(scan: &Scan) -> Result<(), StoreError> {
    if scan.total_segments == 0 || scan.total_segments > 1_000_000 || scan.segment >= scan.total_segments {
        return Err(StoreError::Invalid(format!(
            "scan segment {} of {} is out of range",
            scan.segment, scan.total_segments
        )));
    }
    if !(1..=1000).contains(&scan.limit) {
        return Err(StoreError::Invalid(format!("scan limit {} is not within 1..=1000", scan.limit)));
    }
    Ok(())
}

/// The scan segment of the partition `pk` in the embedded store: a stable
/// FNV-1a hash, so a partition always falls in the same segment.
pub(crate) fn segment_of(pk: &str, total_segments: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in pk.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(total_segments)) as u32
}

/// Rejects keys DynamoDB would reject: both parts must be non-empty.
pub(crate) fn check_key(key: &ItemKey) -> Result<(), StoreError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(StoreError::Invalid(format!("item key {}/{} has an empty part", key.pk, key.sk)));
    }
    Ok(())
}

/// Checks an item before it is written, and drops `null` index-key and `ttl`
/// attributes (a `null` there means "not indexed" / "never expires", the way an
/// absent attribute does; DynamoDB would reject a `NULL` index key).
///
/// Rejected with `StoreError::Invalid`: an empty `pk` or `sk`; attributes named
/// `pk` or `sk`; an index key attribute that is not a non-empty string; a `ttl`
/// that is not an integer; any non-integer number, however deeply nested.
pub(crate) fn normalize_item(mut item: Item) -> Result<Item, StoreError> {
    check_key(&item.key)?;
    let at = |what: String| StoreError::Invalid(format!("item {}/{}: {what}", item.key.pk, item.key.sk));
    for reserved in ["pk", "sk"] {
        if item.attrs.contains_key(reserved) {
            return Err(at(format!("attribute {reserved:?} is reserved for the key")));
        }
    }
    for name in index_key_attrs().chain([ATTR_TTL]) {
        if item.attrs.get(name).is_some_and(Value::is_null) {
            item.attrs.remove(name);
        }
    }
    for name in index_key_attrs() {
        match item.attrs.get(name) {
            None => {}
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => return Err(at(format!("index key attribute {name:?} must be a non-empty string"))),
        }
    }
    if item.attrs.get(ATTR_TTL).is_some_and(|ttl| ttl.as_i64().is_none()) {
        return Err(at(format!("attribute {ATTR_TTL:?} must be an integer (epoch seconds)")));
    }
    for (name, value) in &item.attrs {
        if let Some(path) = first_float(value) {
            return Err(at(format!("attribute {name:?}{path} is not an integer; numbers must be integers")));
        }
    }
    Ok(item)
}

/// The four index key attribute names.
fn index_key_attrs() -> impl Iterator<Item = &'static str> {
    Index::ALL.into_iter().flat_map(|index| {
        let (pk, sk) = index.key_attrs();
        [pk, sk]
    })
}

/// Path (e.g. `.a[2]`) to the first non-integer number inside `value`, if any.
fn first_float(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => Some(String::new()),
        Value::Array(values) => {
            values.iter().enumerate().find_map(|(i, v)| first_float(v).map(|path| format!("[{i}]{path}")))
        }
        Value::Object(map) => map.iter().find_map(|(k, v)| first_float(v).map(|path| format!(".{k}{path}"))),
        _ => None,
    }
}

/// Validates a transaction: at most `MAX_WRITES` writes, each to a distinct
/// valid key, every item normalised (see `normalize_item`).
pub(crate) fn check_writes(writes: Vec<WriteOp>) -> Result<Vec<WriteOp>, StoreError> {
    if writes.len() > MAX_WRITES {
        return Err(StoreError::Invalid(format!(
            "a transaction holds at most {MAX_WRITES} writes, not {}",
            writes.len()
        )));
    }
    let mut seen = HashSet::new();
    for write in &writes {
        let key = write.key();
        if !seen.insert(key) {
            return Err(StoreError::Invalid(format!("two writes to {}/{} in one transaction", key.pk, key.sk)));
        }
    }
    writes
        .into_iter()
        .map(|write| match write {
            WriteOp::Put { item, condition } => Ok(WriteOp::Put { item: normalize_item(item)?, condition }),
            WriteOp::Delete { key, condition } => check_key(&key).map(|()| WriteOp::Delete { key, condition }),
            WriteOp::Check { key, condition } => check_key(&key).map(|()| WriteOp::Check { key, condition }),
            WriteOp::Adjust { key, add, guards } => {
                check_adjust(&key, &add).map(|()| WriteOp::Adjust { key, add, guards })
            }
        })
        .collect()
}

/// What a transaction does, for error context: `put item USER#1/PROFILE`, or
/// `transaction of 3 writes (put item ORDER#1/ORDER, …)`.
pub(crate) fn describe_writes(writes: &[WriteOp]) -> String {
    let one = |write: &WriteOp| {
        let verb = match write {
            WriteOp::Put { .. } => "put",
            WriteOp::Delete { .. } => "delete",
            WriteOp::Check { .. } => "check",
            WriteOp::Adjust { .. } => "adjust",
        };
        let key = write.key();
        format!("{verb} item {}/{}", key.pk, key.sk)
    };
    match writes {
        [] => "empty transaction".into(),
        [write] => one(write),
        [first, ..] => format!("transaction of {} writes ({}, …)", writes.len(), one(first)),
    }
}

/// The (partition, sort) key of `item` in the order `query` reads: the table's
/// `pk`/`sk`, or the index key attributes (`None` when the item is not indexed).
pub(crate) fn sort_key<'a>(query: &Query, item: &'a Item) -> Option<(&'a str, &'a str)> {
    match query.index {
        None => Some((item.key.pk.as_str(), item.key.sk.as_str())),
        Some(index) => {
            let (pk, sk) = index.key_attrs();
            Some((item.str(pk)?, item.str(sk)?))
        }
    }
}

/// Validates a query: `limit` in 1..=`MAX_LIMIT`, a non-empty partition, and a
/// `start_after` item that belongs to the queried partition.
pub(crate) fn check_query(query: &Query) -> Result<(), StoreError> {
    if query.limit == 0 || query.limit > MAX_LIMIT {
        return Err(StoreError::Invalid(format!("query limit must be 1..={MAX_LIMIT}, not {}", query.limit)));
    }
    if query.partition.is_empty() {
        return Err(StoreError::Invalid("query partition is empty".into()));
    }
    if query.sort_prefix.is_some() && query.sort_between.is_some() {
        return Err(StoreError::Invalid("a query takes a sort prefix or a sort range, not both".into()));
    }
    if let Some((low, high)) = &query.sort_between {
        if low > high {
            return Err(StoreError::Invalid(format!("sort range {low:?}..={high:?} is empty")));
        }
    }
    if let Some(after) = &query.start_after {
        check_key(&after.key)?;
        match sort_key(query, after) {
            Some((partition, _)) if partition == query.partition => {}
            _ => {
                return Err(StoreError::Invalid(format!(
                    "start_after item {}/{} is not in the queried partition {}",
                    after.key.pk, after.key.sk, query.partition
                )))
            }
        }
    }
    Ok(())
}

/// A human-readable name of what a query reads, for error context.
pub(crate) fn query_context(query: &Query) -> String {
    format!("query {} partition {}", query.index.map(Index::name).unwrap_or("table"), query.partition)
}

/// Rejects blob keys that could escape the store or that S3 and a file system
/// would treat differently: empty, absolute, containing `..`, a backslash or NUL,
/// an empty or `.` path segment (so no trailing `/`), or longer than 1024 bytes.
pub(crate) fn check_blob_key(key: &str) -> Result<(), BlobError> {
    let bad = key.is_empty()
        || key.len() > MAX_BLOB_KEY
        || check_blob_prefix(key).is_err()
        || key.split('/').any(|segment| segment.is_empty() || segment == ".");
    if bad {
        return Err(BlobError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

/// Rejects list prefixes that could escape the store (empty is fine: all keys).
pub(crate) fn check_blob_prefix(prefix: &str) -> Result<(), BlobError> {
    if prefix.starts_with('/') || prefix.contains("..") || prefix.contains('\\') || prefix.contains('\0') {
        return Err(BlobError::InvalidKey(prefix.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(attrs: Value) -> Item {
        let Value::Object(attrs) = attrs else { panic!("object") };
        Item::new(ItemKey::new("A", "B"), attrs)
    }

    #[test]
    fn nested_floats_are_rejected_with_their_path() {
        let err = normalize_item(item(json!({ "a": { "b": [1, 2.5] } }))).unwrap_err();
        assert!(err.to_string().contains("\"a\".b[1]"), "{err}");
        assert!(normalize_item(item(json!({ "a": { "b": [1, -2, u64::MAX] } }))).is_ok());
    }

    #[test]
    fn null_index_keys_and_ttl_are_dropped() {
        let normalized = normalize_item(item(json!({ "gsi1pk": null, "ttl": null, "x": null }))).unwrap();
        assert_eq!(Value::Object(normalized.attrs), json!({ "x": null }));
        assert!(normalize_item(item(json!({ "gsi2sk": "" }))).is_err());
        assert!(normalize_item(item(json!({ "gsi2sk": 3 }))).is_err());
        assert!(normalize_item(item(json!({ "ttl": "soon" }))).is_err());
        assert!(normalize_item(item(json!({ "pk": "x" }))).is_err());
    }

    #[test]
    fn blob_keys_stay_inside_the_store() {
        for bad in ["", "/etc/passwd", "a/../b", "..", "a\\b", "a\0b", "a//b", "a/", "./a"] {
            assert!(check_blob_key(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "public/ab/cd.jpg", "x.meta", "a b/c"] {
            assert!(check_blob_key(good).is_ok(), "{good:?}");
        }
    }
}
