//! The secret that authenticates pagination cursors (`http::Cursors`): one item,
//! `CURSORKEY`/`-`, holding the current key and the previous one, in the same
//! table on both backends. The first process that needs it creates it with a
//! conditional put and then reads it back, so cold starts racing each other
//! all end up with the one key that won. `rotate` moves the current key to
//! `previousKey` and stores a new one: cursors signed before a rotation keep
//! decoding until the next one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::http::Cursors;
use crate::ports::{Condition, Item, ItemKey, Store, StoreError};
use crate::retry::{self, Attempt::Again, Attempt::Done};

/// Partition of the cursor key item (also its `dynamodb:LeadingKeys` grant).
pub const PARTITION: &str = "CURSORKEY";
/// Bytes of a cursor key (HMAC-SHA256's block-size-friendly 256 bits).
const KEY_BYTES: usize = 32;

/// The stored item.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    entity: String,
    /// Base64 of the key that signs.
    key: String,
    /// Base64 of the key before the last rotation (still accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_key: Option<String>,
    /// The attribute `Condition::VersionIs` compares (`ports::ATTR_VERSION`).
    version: i64,
}

fn key() -> ItemKey {
    ItemKey::new(PARTITION, "-")
}

fn new_secret() -> String {
    let mut bytes = [0u8; KEY_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

fn to_item(record: &Record) -> Item {
    let serde_json::Value::Object(attrs) = serde_json::to_value(record).expect("strings and a number serialize") else {
        unreachable!("a struct serializes to an object")
    };
    Item::new(key(), attrs)
}

fn invalid(what: &str) -> StoreError {
    StoreError::backend("read the cursor key item", format!("{what} is not base64 of {KEY_BYTES} bytes"))
}

fn decode_secret(raw: &str, what: &str) -> Result<Vec<u8>, StoreError> {
    STANDARD.decode(raw).ok().filter(|bytes| bytes.len() == KEY_BYTES).ok_or_else(|| invalid(what))
}

fn from_item(item: &Item) -> Result<Record, StoreError> {
    serde_json::from_value(serde_json::Value::Object(item.attrs.clone()))
        .map_err(|e| StoreError::backend("read the cursor key item", e))
}

fn cursors(record: &Record) -> Result<Cursors, StoreError> {
    let current = decode_secret(&record.key, "key")?;
    let previous = record.previous_key.as_deref().map(|raw| decode_secret(raw, "previousKey")).transpose()?;
    Ok(Cursors::new(&current, previous.as_deref()))
}

/// The cursor keys, creating the item on first use.
pub async fn load_or_create(store: &dyn Store) -> Result<Cursors, StoreError> {
    if let Some(item) = store.get(&key()).await? {
        return cursors(&from_item(&item)?);
    }
    let fresh = Record { entity: "cursorKey".into(), key: new_secret(), previous_key: None, version: 1 };
    match store.put(to_item(&fresh), Condition::NotExists).await {
        Ok(()) => cursors(&fresh),
        // Another process created it first: use theirs.
        Err(StoreError::ConditionFailed { .. }) => {
            let item = store.get(&key()).await?.ok_or_else(|| {
                StoreError::backend("read the cursor key item", "it was created concurrently and is gone again")
            })?;
            cursors(&from_item(&item)?)
        }
        Err(e) => Err(e),
    }
}

/// Replaces the current key with a new one, keeping it as the previous key
/// (creating the item when there is none yet). Processes already running keep
/// the keys they read until their next cold start.
pub async fn rotate(store: &dyn Store) -> Result<(), StoreError> {
    retry::run(retry::CURSOR_KEY_ROTATION, |_| async {
        let (next, condition) = match store.get(&key()).await? {
            None => {
                let fresh = Record { entity: "cursorKey".into(), key: new_secret(), previous_key: None, version: 1 };
                (fresh, Condition::NotExists)
            }
            Some(item) => {
                let record = from_item(&item)?;
                let condition = Condition::VersionIs(record.version);
                let next = Record {
                    entity: record.entity,
                    key: new_secret(),
                    previous_key: Some(record.key),
                    version: record.version + 1,
                };
                (next, condition)
            }
        };
        match store.put(to_item(&next), condition).await {
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(StoreError::Contended("rotate the cursor key".into()))),
            other => other.map(Done),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Query;

    async fn store() -> (crate::adapters::EmbeddedStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (crate::adapters::EmbeddedStore::open(&dir.path().join("db")).unwrap(), dir)
    }

    fn item() -> Item {
        Item::new(ItemKey::new("CATEGORY#01", "CATEGORY"), Default::default())
    }

    #[tokio::test]
    async fn racing_first_uses_end_up_with_one_key() {
        let (store, _dir) = store().await;
        let loaded = futures::future::join_all((0..8).map(|_| load_or_create(&store))).await;
        let query = Query::partition("CATEGORY#01");
        let cursor = loaded[0].as_ref().unwrap().encode("scope", &query, &item());
        for cursors in &loaded {
            assert!(cursors.as_ref().unwrap().decode("scope", &query, &cursor).is_ok());
        }
        let again = load_or_create(&store).await.unwrap();
        assert!(again.decode("scope", &query, &cursor).is_ok(), "the stored key is the one handed out");
    }

    #[tokio::test]
    async fn a_rotation_keeps_accepting_the_previous_key_for_one_more_rotation() {
        let (store, _dir) = store().await;
        let query = Query::partition("CATEGORY#01");
        let before = load_or_create(&store).await.unwrap().encode("scope", &query, &item());
        rotate(&store).await.unwrap();
        let rotated = load_or_create(&store).await.unwrap();
        assert!(rotated.decode("scope", &query, &before).is_ok());
        assert_ne!(rotated.encode("scope", &query, &item()), before);
        rotate(&store).await.unwrap();
        assert!(load_or_create(&store).await.unwrap().decode("scope", &query, &before).is_err());
    }
}
