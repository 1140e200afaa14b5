//! Single-use tokens sent in email links (address verification, password
//! reset): `LINKTOKEN#<sha256 of the token>`/`TOKEN`. Only the hash is stored,
//! so the table never holds a usable token. A token is spent by a write in
//! the same transaction as the change it allows, conditional on its version,
//! so two requests racing with one token cannot both succeed. Spent and
//! expired tokens stay a week past their expiry (then the TTL removes them),
//! so a late click is told "already used" or "expired", not "unknown".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::UserId;
use crate::ports::{Condition, Item, ItemKey, Store, StoreError, WriteOp, ATTR_TTL, ATTR_VERSION};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verifyEmail",
            Purpose::ResetPassword => "resetPassword",
        }
    }
}

/// Why a token was refused. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum LinkTokenError {
    /// 400: not a token this service issued for this purpose (mistyped, tampered).
    #[error("the token is not valid")]
    Invalid,
    /// 410: the token was used already.
    #[error("the token was already used")]
    Used,
    /// 410: the token expired.
    #[error("the token has expired")]
    Expired,
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Seconds a spent or expired token is kept to answer "used" or "expired".
const KEPT_AFTER_EXPIRY: i64 = 7 * 24 * 3600;
/// Longest token accepted (issued ones have 43 characters).
pub const MAX_TOKEN_CHARS: usize = 128;

fn key(token: &str) -> ItemKey {
    ItemKey::new(format!("LINKTOKEN#{}", hex::encode(Sha256::digest(token.as_bytes()))), "TOKEN")
}

/// A token that may still be spent.
#[derive(Debug, Clone)]
pub struct Valid {
    pub user_id: UserId,
    item: Item,
    version: i64,
}

impl Valid {
    /// The write spending the token: include it in the transaction of the change.
    pub fn spend(&self) -> WriteOp {
        let mut item = self.item.clone();
        item.attrs.insert("used".into(), Value::Bool(true));
        item.attrs.insert(ATTR_VERSION.into(), (self.version + 1).into());
        WriteOp::Put { item, condition: Condition::VersionIs(self.version) }
    }
}

/// Stores a new token for `user_id`, valid `lifetime_secs` from `now`, and
/// returns it (the only time it exists in clear).
pub async fn issue(
    store: &dyn Store,
    purpose: Purpose,
    user_id: UserId,
    lifetime_secs: i64,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let expires_at = now.unix_timestamp() + lifetime_secs;
    let Value::Object(attrs) = json!({
        "entity": "linkToken",
        "purpose": purpose.as_str(),
        "userId": user_id.to_string(),
        "expiresAt": expires_at,
        "used": false,
        ATTR_TTL: expires_at + KEPT_AFTER_EXPIRY,
        ATTR_VERSION: 1,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    store.put(Item::new(key(&token), attrs), Condition::NotExists).await?;
    Ok(token)
}

/// Checks `token` for `purpose` at `now` without spending it.
pub async fn check(
    store: &dyn Store,
    purpose: Purpose,
    token: &str,
    now: OffsetDateTime,
) -> Result<Valid, LinkTokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(LinkTokenError::Invalid);
    }
    let item = store.get(&key(token)).await?.ok_or(LinkTokenError::Invalid)?;
    if item.str("purpose") != Some(purpose.as_str()) {
        return Err(LinkTokenError::Invalid);
    }
    let user_id = item.str("userId").and_then(UserId::parse).ok_or(LinkTokenError::Invalid)?;
    if item.attrs.get("used") == Some(&Value::Bool(true)) {
        return Err(LinkTokenError::Used);
    }
    if item.int("expiresAt").unwrap_or(0) <= now.unix_timestamp() {
        return Err(LinkTokenError::Expired);
    }
    let version = item.int(ATTR_VERSION).unwrap_or(1);
    Ok(Valid { user_id, item, version })
}
