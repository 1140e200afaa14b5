//! Opaque pagination cursors. A cursor carries the key of the last item of a page
//! and a fingerprint of the query it belongs to, authenticated with HMAC-SHA256
//! under the deployment's cursor key (`repo::cursor_key`); decoding checks the tag
//! (under the current key, then the previous one, so a rotation does not break
//! cursors in flight), the fingerprint, the length of every key part and that the
//! position lies inside the query's own range. A tampered or forged cursor, an
//! over-long one, or one from another query answers 400, never a 500 and never
//! another page of someone else's data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::ApiError;
use crate::ports::{Item, ItemKey, Query};

/// Bytes of HMAC-SHA256 appended to the payload as its tag.
const TAG_BYTES: usize = 32;
/// Longest cursor accepted (longer ones answer 400).
const MAX_CURSOR_CHARS: usize = 2048;
/// Longest key part (`pk`, `sk`, an index key) a cursor may carry, in bytes:
/// the table's keys are prefixes, ids and short names, well below this.
const MAX_KEY_PART_BYTES: usize = 512;
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

/// Cursor encoding and decoding under this deployment's cursor keys: the
/// current key signs, and the current or the previous one verifies.
#[derive(Clone)]
pub struct Cursors {
    current: hmac::Key,
    previous: Option<hmac::Key>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors").field("previous", &self.previous.is_some()).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

impl Cursors {
    /// Signs with `current` and also accepts cursors signed with `previous`.
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Self {
        Self {
            current: hmac::Key::new(hmac::HMAC_SHA256, current),
            previous: previous.map(|key| hmac::Key::new(hmac::HMAC_SHA256, key)),
        }
    }

    /// The cursor continuing `query` after `last`. `scope` names the endpoint and
    /// any filter applied after the key lookup.
    pub fn encode(&self, scope: &str, query: &Query, last: &Item) -> String {
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
        let tag = hmac::sign(&self.current, &bytes);
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `tag` authenticates `payload` under the current or the previous key.
    fn authentic(&self, payload: &[u8], tag: &[u8]) -> bool {
        std::iter::once(&self.current).chain(self.previous.as_ref()).any(|key| hmac::verify(key, payload, tag).is_ok())
    }

    /// The `start_after` item for `query`, or 400 when the cursor is not one this
    /// query produced.
    pub fn decode(&self, scope: &str, query: &Query, raw: &str) -> Result<Item, ApiError> {
        let bad = || ApiError::BadRequest("the cursor is invalid or belongs to another query".into());
        if raw.len() > MAX_CURSOR_CHARS {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        let split = bytes.len().checked_sub(TAG_BYTES).ok_or_else(bad)?;
        let (json, tag) = bytes.split_at(split);
        if !self.authentic(json, tag) {
            return Err(bad());
        }
        let payload: Payload = serde_json::from_slice(json).map_err(|_| bad())?;
        if payload.q != fingerprint(scope, query) {
            return Err(bad());
        }
        // Only the key attributes this query's cursors carry, each a bounded,
        // non-empty string (an empty key part is no position at all, and a
        // store would refuse it).
        let index_attrs = query.index.map(|index| index.key_attrs());
        let expected = |name: &str| {
            name == "pk" || name == "sk" || index_attrs.is_some_and(|(ipk, isk)| name == ipk || name == isk)
        };
        let well_formed =
            |value: &Value| value.as_str().is_some_and(|text| !text.is_empty() && text.len() <= MAX_KEY_PART_BYTES);
        if !payload.k.iter().all(|(name, value)| expected(name) && well_formed(value)) {
            return Err(bad());
        }
        let text = |name: &str| payload.k.get(name).and_then(Value::as_str).map(str::to_owned);
        let (pk, sk) = (text("pk").ok_or_else(bad)?, text("sk").ok_or_else(bad)?);
        let (partition, sort) = match index_attrs {
            None => (Some(pk.clone()), Some(sk.clone())),
            Some((ipk, isk)) => (text(ipk), text(isk)),
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

    const KEY: &[u8] = b"a cursor key of thirty-two bytes";

    fn cursors() -> Cursors {
        Cursors::new(KEY, None)
    }

    fn item() -> Item {
        let mut attrs = Map::new();
        attrs.insert("gsi1pk".into(), "CATEGORIES".into());
        attrs.insert("gsi1sk".into(), "fruit#01".into());
        attrs.insert("name".into(), "Fruit".into());
        Item::new(ItemKey::new("CATEGORY#01", "CATEGORY"), attrs)
    }

    /// A cursor over `payload` tagged with `key`, as an attacker holding it would make one.
    fn signed(key: &[u8], payload: &Value) -> String {
        let mut bytes = payload.to_string().into_bytes();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &bytes);
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn round_trips_only_for_the_same_query() {
        let query = Query::index(Index::Gsi1, "CATEGORIES");
        let cursor = cursors().encode("categories", &query, &item());
        let decoded = cursors().decode("categories", &query, &cursor).unwrap();
        assert_eq!(decoded.key, item().key);
        assert!(!decoded.attrs.contains_key("name"));
        assert!(cursors().decode("products", &query, &cursor).is_err());
        assert!(cursors().decode("categories", &Query::index(Index::Gsi1, "OTHER"), &cursor).is_err());
        assert!(cursors().decode("categories", &Query { ascending: false, ..query.clone() }, &cursor).is_err());
    }

    #[test]
    fn tampered_cursors_are_rejected() {
        let query = Query::index(Index::Gsi1, "CATEGORIES");
        let cursor = cursors().encode("categories", &query, &item());
        for bad in ["", "!!!", "e30", &format!("{cursor}x"), &cursor[1..]] {
            assert!(cursors().decode("categories", &query, bad).is_err(), "{bad:?}");
        }
        // One changed character inside the key (still well-formed, same partition).
        let mut edited = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        let position = edited.windows(2).position(|w| w == b"01").unwrap();
        edited[position + 1] = b'2';
        assert!(cursors().decode("categories", &query, &URL_SAFE_NO_PAD.encode(edited)).is_err());
    }

    #[test]
    fn cursors_forged_without_the_key_are_rejected() {
        let query = Query::index(Index::Gsi1, "CATEGORIES");
        let payload = serde_json::json!({"q": fingerprint("categories", &query), "k": {"pk": "CATEGORY#02", "sk": "CATEGORY", "gsi1pk": "CATEGORIES", "gsi1sk": "fruit#02"}});
        // With an unkeyed checksum (SHA-256 of the payload), as cursors once carried.
        let mut unkeyed = payload.to_string().into_bytes();
        let checksum = Sha256::digest(&unkeyed);
        unkeyed.extend_from_slice(&checksum);
        assert!(cursors().decode("categories", &query, &URL_SAFE_NO_PAD.encode(unkeyed)).is_err());
        // With a tag under some other key (another deployment's).
        let other = signed(b"another deployment's cursor key", &payload);
        assert!(cursors().decode("categories", &query, &other).is_err());
        // The same payload under this deployment's key is a position.
        assert!(cursors().decode("categories", &query, &signed(KEY, &payload)).is_ok());
    }

    #[test]
    fn cursors_signed_with_the_previous_key_still_decode_after_a_rotation() {
        let query = Query::index(Index::Gsi1, "CATEGORIES");
        let before = cursors().encode("categories", &query, &item());
        let rotated = Cursors::new(b"the next cursor key, 32 bytes...", Some(KEY));
        assert_eq!(rotated.decode("categories", &query, &before).unwrap().key, item().key);
        let after = rotated.encode("categories", &query, &item());
        assert_ne!(after, before, "the new key signs");
        // Two rotations later the first key is gone.
        let twice = Cursors::new(b"yet another cursor key, 32 bytes", Some(b"the next cursor key, 32 bytes..."));
        assert!(twice.decode("categories", &query, &before).is_err());
        assert!(twice.decode("categories", &query, &after).is_ok());
    }

    #[test]
    fn authentic_cursors_with_a_bad_key_are_still_rejected() {
        let query = Query::index(Index::Gsi1, "CATEGORIES");
        let q = fingerprint("categories", &query);
        let long = "x".repeat(MAX_KEY_PART_BYTES + 1);
        for k in [
            // Another partition.
            serde_json::json!({"pk": "USER#1", "sk": "PROFILE", "gsi1pk": "USERS", "gsi1sk": "a"}),
            // An empty `pk` or `sk`.
            serde_json::json!({"pk": "", "sk": "CATEGORY", "gsi1pk": "CATEGORIES", "gsi1sk": "a"}),
            serde_json::json!({"pk": "CATEGORY#1", "sk": "", "gsi1pk": "CATEGORIES", "gsi1sk": "a"}),
            // A key part over the bound.
            serde_json::json!({"pk": "CATEGORY#1", "sk": long, "gsi1pk": "CATEGORIES", "gsi1sk": "a"}),
            // A number where a key part goes, and an attribute no cursor carries.
            serde_json::json!({"pk": "CATEGORY#1", "sk": 7, "gsi1pk": "CATEGORIES", "gsi1sk": "a"}),
            serde_json::json!({"pk": "CATEGORY#1", "sk": "CATEGORY", "gsi1pk": "CATEGORIES", "gsi1sk": "a", "role": "admin"}),
        ] {
            let cursor = signed(KEY, &serde_json::json!({"q": q, "k": k}));
            assert!(cursors().decode("categories", &query, &cursor).is_err(), "{k}");
        }
        // Past the overall bound, however it is signed.
        let huge = signed(KEY, &serde_json::json!({"q": q, "k": {"pk": "CATEGORY#1", "sk": "x".repeat(2000)}}));
        assert!(huge.len() > MAX_CURSOR_CHARS);
        assert!(cursors().decode("categories", &query, &huge).is_err());
    }
}
