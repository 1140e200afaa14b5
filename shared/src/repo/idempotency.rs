//! Idempotency records: `IDEMPOTENCY#<scope>#<key>`/`-`, written in the same
//! transaction as what a create request makes, and expiring by TTL after a day.
//! A repeat of the request with the same key finds the record and answers with
//! what the first one made; the same key with a different body is refused.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ports::{Condition, Item, ItemKey, Store, StoreError, WriteOp, ATTR_TTL};

/// How long a key is remembered.
pub const RECORD_TTL_SECS: i64 = 24 * 3600;

/// A client's `Idempotency-Key`: 1 to 128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 1 to 128 visible ASCII characters (a UUID or ULID is a good choice)".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A remembered request: the fingerprint of its body and the id of what it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub fingerprint: String,
    pub resource_id: String,
}

/// The fingerprint of a request body: of its JSON value when it is JSON (so
/// whitespace and key order do not matter; object keys serialise sorted), else
/// of its bytes.
pub fn fingerprint(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => hex::encode(Sha256::digest(value.to_string().as_bytes())),
        Err(_) => hex::encode(Sha256::digest(body)),
    }
}

fn key(scope: &str, idempotency_key: &IdempotencyKey) -> ItemKey {
    ItemKey::new(format!("IDEMPOTENCY#{scope}#{}", idempotency_key.as_str()), "-")
}

/// The write that remembers `record` under `scope` and the key (fails when the
/// key is already remembered), for the creating transaction.
pub fn remember(scope: &str, idempotency_key: &IdempotencyKey, record: &Record, now_epoch: i64) -> WriteOp {
    let Value::Object(attrs) = json!({
        "entity": "idempotency",
        "fingerprint": record.fingerprint,
        "resourceId": record.resource_id,
        ATTR_TTL: now_epoch + RECORD_TTL_SECS,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    WriteOp::Put { item: Item::new(key(scope, idempotency_key), attrs), condition: Condition::NotExists }
}

/// The remembered request for `scope` and the key, if any (and not expired).
pub async fn recall(
    store: &dyn Store,
    scope: &str,
    idempotency_key: &IdempotencyKey,
) -> Result<Option<Record>, StoreError> {
    let Some(item) = store.get(&key(scope, idempotency_key)).await? else {
        return Ok(None);
    };
    let field = |name: &str| {
        item.str(name)
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Invalid(format!("idempotency item {} has no {name}", item.key.pk)))
    };
    Ok(Some(Record { fingerprint: field("fingerprint")?, resource_id: field("resourceId")? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_json_layout_but_not_content() {
        let a = fingerprint(br#"{"name": "Kale", "price": 300}"#);
        assert_eq!(a, fingerprint(br#"{"price":300,"name":"Kale"}"#));
        assert_ne!(a, fingerprint(br#"{"price":301,"name":"Kale"}"#));
        assert!(IdempotencyKey::parse("01JDQ9A4B7C2D5E8F1G3H6J9KM").is_ok());
        for bad in ["", "has space", &"x".repeat(129), "caf\u{e9}"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
