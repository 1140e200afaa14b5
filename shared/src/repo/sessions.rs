//! Refresh sessions: `SESSION#<id>`/`SESSION`. A refresh token is `<id>.<secret>`;
//! only the SHA-256 of the secret is stored. Each refresh rotates the secret under
//! a version condition; presenting an old secret revokes the whole session
//! (reuse detection), as does logout.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use ulid::Ulid;

use crate::domain::{Role, UserId};
use crate::ports::{Condition, Item, ItemKey, Store, StoreError, ATTR_TTL, ATTR_VERSION};

/// A live session after a successful create or rotation.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: UserId,
    pub role: Role,
    /// The refresh token to hand to the client (`<id>.<secret>`).
    pub refresh_token: String,
    pub expires_at: i64,
}

/// Why a refresh token was refused. Every variant is a 401 except `Store`.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// 401: malformed, unknown, expired or revoked.
    #[error("the refresh token is invalid, expired or revoked")]
    Invalid,
    /// 401: a rotated-out token was presented; the session is now revoked.
    #[error("the refresh token was already used; the session is revoked")]
    Reused,
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(id: &str) -> ItemKey {
    ItemKey::new(format!("SESSION#{id}"), "SESSION")
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn item(id: &str, user_id: UserId, role: Role, secret: &str, expires_at: i64, revoked: bool, version: i64) -> Item {
    let Value::Object(attrs) = json!({
        "userId": user_id.to_string(),
        "role": role.as_str(),
        "tokenHash": hash(secret),
        "revoked": revoked,
        "expiresAt": expires_at,
        ATTR_TTL: expires_at + 24 * 3600,
        ATTR_VERSION: version,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(key(id), attrs)
}

/// Starts a session for a user who just proved their password.
pub async fn create(
    store: &dyn Store,
    user_id: UserId,
    role: Role,
    ttl_secs: i64,
    now: OffsetDateTime,
) -> Result<Session, StoreError> {
    let id = Ulid::new().to_string();
    let secret = new_secret();
    let expires_at = now.unix_timestamp() + ttl_secs;
    store.put(item(&id, user_id, role, &secret, expires_at, false, 1), Condition::NotExists).await?;
    Ok(Session { refresh_token: format!("{id}.{secret}"), id, user_id, role, expires_at })
}

/// Splits `<id>.<secret>` and loads the session; checks nothing else.
async fn load(store: &dyn Store, token: &str) -> Result<(Item, String, String), SessionError> {
    let (id, secret) = token.split_once('.').ok_or(SessionError::Invalid)?;
    if Ulid::from_string(id).is_err() || secret.is_empty() || secret.len() > 100 {
        return Err(SessionError::Invalid);
    }
    let found = store.get(&key(id)).await?.ok_or(SessionError::Invalid)?;
    Ok((found, id.to_owned(), secret.to_owned()))
}

fn revoked_copy(found: &Item) -> Item {
    let mut copy = found.clone();
    copy.attrs.insert("revoked".into(), true.into());
    copy.attrs.insert(ATTR_VERSION.into(), (found.int(ATTR_VERSION).unwrap_or(0) + 1).into());
    copy
}

/// Exchanges a refresh token for a new one. A token that is not the current one
/// of its session revokes the session.
pub async fn rotate(
    store: &dyn Store,
    token: &str,
    ttl_secs: i64,
    now: OffsetDateTime,
) -> Result<Session, SessionError> {
    let (found, id, secret) = load(store, token).await?;
    let version = found.int(ATTR_VERSION).unwrap_or(0);
    if found.attrs.get("revoked") == Some(&Value::Bool(true))
        || found.int("expiresAt").unwrap_or(0) <= now.unix_timestamp()
    {
        return Err(SessionError::Invalid);
    }
    let user_id = found.str("userId").and_then(UserId::parse).ok_or(SessionError::Invalid)?;
    let role = found.str("role").and_then(Role::parse).ok_or(SessionError::Invalid)?;
    if found.str("tokenHash") != Some(hash(&secret).as_str()) {
        // Reuse of a rotated-out token: someone else may hold the current one.
        store.put(revoked_copy(&found), Condition::VersionIs(version)).await.or_else(ignore_race)?;
        tracing::warn!(session = %id, "refresh token reuse detected; session revoked");
        return Err(SessionError::Reused);
    }
    let new_secret = new_secret();
    let expires_at = now.unix_timestamp() + ttl_secs;
    match store
        .put(item(&id, user_id, role, &new_secret, expires_at, false, version + 1), Condition::VersionIs(version))
        .await
    {
        Ok(()) => Ok(Session { refresh_token: format!("{id}.{new_secret}"), id, user_id, role, expires_at }),
        // Another refresh with the same token won the race: this one is a reuse.
        Err(StoreError::ConditionFailed { .. }) => Err(SessionError::Reused),
        Err(e) => Err(e.into()),
    }
}

/// Revokes the session of a current refresh token (logout). Revoking an already
/// revoked session succeeds.
pub async fn revoke(store: &dyn Store, token: &str) -> Result<(), SessionError> {
    let (found, _, secret) = load(store, token).await?;
    if found.str("tokenHash") != Some(hash(&secret).as_str()) {
        return Err(SessionError::Invalid);
    }
    if found.attrs.get("revoked") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    let version = found.int(ATTR_VERSION).unwrap_or(0);
    store.put(revoked_copy(&found), Condition::VersionIs(version)).await.or_else(ignore_race)?;
    Ok(())
}

/// A lost version race while revoking means someone else changed the session
/// first; revocation is best effort in that case.
fn ignore_race(e: StoreError) -> Result<(), StoreError> {
    match e {
        StoreError::ConditionFailed { .. } => Ok(()),
        other => Err(other),
    }
}
