//! Opaque pagination cursors. A cursor carries the key of the last item of a page,
//! a fingerprint of the query it belongs to, and a checksum over both; decoding
//! checks all three, so a tampered cursor or one from another query answers 400,
//! never another page of someone else's data. The checksum is unkeyed: it catches
//! edits, and a deliberately forged cursor still has to name a position inside the
//! same query's own partition, which the caller could read anyway.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::ApiError;
use crate::ports::{Item, ItemKey, Query};

/// Bytes of SHA-256 appended to the payload as its checksum.
const CHECKSUM_BYTES: usize = 8;
/// Longest cursor accepted (longer ones answer 400).
const MAX_CURSOR_CHARS: usize = 2048;

/// A page size: 1 to `MAX`, `DEFAULT` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Limit(usize);

impl Limit {
    pub const DEFAULT: usize = 20;
    pub const MAX: usize = 100;

    pub fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<u32> for Limit {
    type Error = String;

    fn try_from(raw: u32) -> Result<Self, String> {
        let n = raw as usize;
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be an integer from 1 to {}", Self::MAX))
        }
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(Self::MAX))
            .default(Some(Self::DEFAULT.into()))
            .description(Some("Page size."))
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size (1 to 100, default 20).
    #[param(inline, nullable = false)]
    pub limit: Option<Limit>,
    /// The `nextCursor` of the previous page (opaque). One that was edited or
    /// belongs to another query answers 400.
    #[param(nullable = false, max_length = 2048)]
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> usize {
        self.limit.map_or(Limit::DEFAULT, Limit::get)
    }
}

/// Cursor encoding and decoding for one `Query`.
pub struct Cursor;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Fingerprint of the query.
    q: String,
    /// Key attributes of the last item.
    k: Map<String, Value>,
}

/// Fingerprint of everything that defines the result set except its position.
fn fingerprint(scope: &str, query: &Query) -> String {
    let mut hasher = Sha256::new();
    let (low, high) = query.sort_between.as_ref().map(|(l, h)| (l.as_str(), h.as_str())).unwrap_or(("", ""));
    for part in [
        scope,
        query.index.map(|i| i.name()).unwrap_or("table"),
        &query.partition,
        query.sort_prefix.as_deref().unwrap_or(""),
        low,
        high,
        if query.ascending { "asc" } else { "desc" },
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..12])
}

impl Cursor {
    /// The cursor continuing `query` after `last`. `scope` names the endpoint and
    /// any filter applied after the key lookup.
    pub fn encode(scope: &str, query: &Query, last: &Item) -> String {
        let mut k = Map::new();
        k.insert("pk".into(), last.key.pk.clone().into());
        k.insert("sk".into(), last.key.sk.clone().into());
        if let Some(index) = query.index {
            let (ipk, isk) = index.key_attrs();
            for name in [ipk, isk] {
                if let Some(value) = last.attrs.get(name) {
                    k.insert(name.into(), value.clone());
                }
            }
        }
        let payload = Payload { q: fingerprint(scope, query), k };
        let mut bytes = serde_json::to_vec(&payload).expect("a map of strings serializes");
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum[..CHECKSUM_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The `start_after` item for `query`, or 400 when the cursor is not one this
    /// query produced.
    pub fn decode(scope: &str, query: &Query, raw: &str) -> Result<Item, ApiError> {
        let bad = || ApiError::BadRequest("the cursor is invalid or belongs to another query".into());
        if raw.len() > MAX_CURSOR_CHARS {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        let split = bytes.len().checked_sub(CHECKSUM_BYTES).ok_or_else(bad)?;
        let (json, checksum) = bytes.split_at(split);
        if Sha256::digest(json)[..CHECKSUM_BYTES] != *checksum {
            return Err(bad());
        }
        let payload: Payload = serde_json::from_slice(json).map_err(|_| bad())?;
        if payload.q != fingerprint(scope, query) {
            return Err(bad());
        }
        let text = |name: &str| payload.k.get(name).and_then(Value::as_str).map(str::to_owned);
        // Empty key parts are no position at all (and a store would refuse them).
        let text = |name: &str| text(name).filter(|value| !value.is_empty());
        let (pk, sk) = (text("pk").ok_or_else(bad)?, text("sk").ok_or_else(bad)?);
        let (partition, sort) = match query.index {
            None => (Some(pk.clone()), Some(sk.clone())),
            Some(index) => {
                let (ipk, isk) = index.key_attrs();
                (text(ipk), text(isk))
            }
        };
        let sort = sort.ok_or_else(bad)?;
        if partition.as_deref() != Some(query.partition.as_str())
            || query.sort_prefix.as_deref().is_some_and(|prefix| !sort.starts_with(prefix))
            || query.sort_between.as_ref().is_some_and(|(low, high)| sort < *low || sort > *high)
        {
            return Err(bad());
        }
        let mut attrs = payload.k;
        attrs.remove("pk");
        attrs.remove("sk");
        Ok(Item::new(ItemKey::new(pk, sk), attrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Index;

    fn item() -> Item {
        let mut attrs = Map::new();
        attrs.insert("gsi1pk".into(), "CATEGORIES".into());
        attrs.insert("gsi1sk".into(), "fruit#01".into());
        attrs.insert("name".into(), "Fruit".into());
        Item::new(ItemKey::new("CATEGORY#01", "CATEGORY"), attrs)
    }

    #[test]
    fn round_trips_only_for_the_same_query() {
        let query = Query::index(Index::Gsi1, "CATEGORIES");
        let cursor = Cursor::encode("categories", &query, &item());
        let decoded = Cursor::decode("categories", &query, &cursor).unwrap();
        assert_eq!(decoded.key, item().key);
        assert!(!decoded.attrs.contains_key("name"));
        assert!(Cursor::decode("products", &query, &cursor).is_err());
        assert!(Cursor::decode("categories", &Query::index(Index::Gsi1, "OTHER"), &cursor).is_err());
        assert!(Cursor::decode("categories", &Query { ascending: false, ..query.clone() }, &cursor).is_err());
    }

    #[test]
    fn tampered_cursors_are_rejected() {
        let query = Query::index(Index::Gsi1, "CATEGORIES");
        let cursor = Cursor::encode("categories", &query, &item());
        for bad in ["", "!!!", "e30", &format!("{cursor}x"), &cursor[1..]] {
            assert!(Cursor::decode("categories", &query, bad).is_err(), "{bad:?}");
        }
        // A well-formed cursor whose key points into another partition.
        let payload = serde_json::json!({"q": fingerprint("categories", &query), "k": {"pk": "USER#1", "sk": "PROFILE", "gsi1pk": "USERS", "gsi1sk": "a"}});
        let mut forged = payload.to_string().into_bytes();
        let checksum = Sha256::digest(&forged);
        forged.extend_from_slice(&checksum[..CHECKSUM_BYTES]);
        assert!(Cursor::decode("categories", &query, &URL_SAFE_NO_PAD.encode(forged)).is_err());
        // A valid checksum over a key with an empty `pk` (or `sk`) in the right partition.
        for (pk, sk) in [("", "CATEGORY"), ("CATEGORY#1", "")] {
            let payload = serde_json::json!({"q": fingerprint("categories", &query), "k": {"pk": pk, "sk": sk, "gsi1pk": "CATEGORIES", "gsi1sk": "a"}});
            let mut forged = payload.to_string().into_bytes();
            let checksum = Sha256::digest(&forged);
            forged.extend_from_slice(&checksum[..CHECKSUM_BYTES]);
            assert!(Cursor::decode("categories", &query, &URL_SAFE_NO_PAD.encode(forged)).is_err(), "{pk:?} {sk:?}");
        }
        // One changed character inside the key (still well-formed, same partition).
        let mut edited = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        let position = edited.windows(2).position(|w| w == b"01").unwrap();
        edited[position + 1] = b'2';
        assert!(Cursor::decode("categories", &query, &URL_SAFE_NO_PAD.encode(edited)).is_err());
    }
}
