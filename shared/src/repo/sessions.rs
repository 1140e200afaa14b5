//! Refresh sessions: `SESSION#<id>`/`SESSION`. A refresh token is `<id>.<secret>`;
//! only SHA-256 hashes of secrets are stored: the current one and those it
//! replaced. Each refresh rotates the secret under a version condition. A secret
//! the session had earlier (a replayed token, or the loser of two refreshes
//! racing with one token) revokes the session, whatever the interleaving; a
//! secret it never had is refused and changes nothing. A session ends at a fixed
//! time set when it starts: refreshing does not extend it. Logout with any
//! secret the session ever had revokes it.
//!
//! A session also carries the account's session epoch from when it started.
//! Bumping the account's epoch (password change or reset, disabling) ends
//! every older session at once without finding them: `accounts::refresh`
//! refuses a session whose epoch is behind its account's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use ulid::Ulid;

use crate::domain::{Role, UserId};
use crate::ports::{Condition, Item, ItemKey, Store, StoreError, ATTR_TTL, ATTR_VERSION};
use crate::retry::{self, Attempt::Again, Attempt::Done};

/// A live session after a successful create or rotation.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: UserId,
    pub role: Role,
    /// The refresh token to hand to the client (`<id>.<secret>`).
    pub refresh_token: String,
    pub expires_at: i64,
    /// The account's session epoch when the session started (or was re-stamped).
    pub epoch: i64,
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
    /// 500: a revocation (or re-stamp) kept losing version races.
    #[error("session {0} could not be updated")]
    RevokeFailed(String),
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

/// Hashes of earlier secrets kept per session: a replay of any of them revokes
/// it. Older ones are refused without revoking (a session refreshed this often
/// within its life is rare; 15-minute access tokens mean about 96 a day).
const PREVIOUS_SECRETS_KEPT: usize = 200;

/// A stored session.
#[derive(Debug, Clone)]
struct Stored {
    id: String,
    user_id: UserId,
    role: Role,
    token_hash: String,
    previous: Vec<String>,
    revoked: bool,
    expires_at: i64,
    epoch: i64,
    version: i64,
}

impl Stored {
    fn from_item(id: &str, item: &Item) -> Result<Self, SessionError> {
        Ok(Self {
            id: id.to_owned(),
            user_id: item.str("userId").and_then(UserId::parse).ok_or(SessionError::Invalid)?,
            role: item.str("role").and_then(Role::parse).ok_or(SessionError::Invalid)?,
            token_hash: item.str("tokenHash").ok_or(SessionError::Invalid)?.to_owned(),
            previous: item
                .attrs
                .get("previousHashes")
                .and_then(Value::as_array)
                .map(|hashes| hashes.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            revoked: item.attrs.get("revoked") == Some(&Value::Bool(true)),
            expires_at: item.int("expiresAt").unwrap_or(0),
            epoch: item.int("epoch").unwrap_or(0),
            version: item.int(ATTR_VERSION).unwrap_or(0),
        })
    }

    fn to_item(&self) -> Item {
        let Value::Object(attrs) = json!({
            "userId": self.user_id.to_string(),
            "role": self.role.as_str(),
            "tokenHash": self.token_hash,
            "previousHashes": self.previous,
            "revoked": self.revoked,
            "expiresAt": self.expires_at,
            "epoch": self.epoch,
            ATTR_TTL: self.expires_at + 24 * 3600,
            ATTR_VERSION: self.version,
        }) else {
            unreachable!("json! of an object literal is an object")
        };
        Item::new(key(&self.id), attrs)
    }

    fn had_secret(&self, secret: &str) -> bool {
        let hashed = hash(secret);
        self.token_hash == hashed || self.previous.contains(&hashed)
    }
}

/// Starts a session under the account's `epoch`, ending `lifetime_secs` from
/// `now`, for a user who just proved their password.
pub async fn create(
    store: &dyn Store,
    user_id: UserId,
    role: Role,
    epoch: i64,
    lifetime_secs: i64,
    now: OffsetDateTime,
) -> Result<Session, StoreError> {
    let id = Ulid::new().to_string();
    let secret = new_secret();
    let stored = Stored {
        id: id.clone(),
        user_id,
        role,
        token_hash: hash(&secret),
        previous: Vec::new(),
        revoked: false,
        expires_at: now.unix_timestamp() + lifetime_secs,
        epoch,
        version: 1,
    };
    store.put(stored.to_item(), Condition::NotExists).await?;
    Ok(Session { refresh_token: format!("{id}.{secret}"), id, user_id, role, expires_at: stored.expires_at, epoch })
}

/// Splits `<id>.<secret>` and loads the session; checks nothing else.
async fn load(store: &dyn Store, token: &str) -> Result<(Stored, String), SessionError> {
    let (id, secret) = token.split_once('.').ok_or(SessionError::Invalid)?;
    if Ulid::from_string(id).is_err() || secret.is_empty() || secret.len() > 100 {
        return Err(SessionError::Invalid);
    }
    let found = store.get(&key(id)).await?.ok_or(SessionError::Invalid)?;
    Ok((Stored::from_item(id, &found)?, secret.to_owned()))
}

/// Applies `change` to session `id`, re-reading it after every lost version
/// race until the write lands; `change` answers `false` to leave the session
/// as it is (already in the wanted state). A missing session is left alone.
async fn update(store: &dyn Store, id: &str, change: impl Fn(&mut Stored) -> bool) -> Result<(), SessionError> {
    retry::run(retry::SESSION_CHANGE, |_| async {
        let Some(found) = store.get(&key(id)).await? else {
            return Ok(Done(()));
        };
        let mut stored = Stored::from_item(id, &found)?;
        let expected = stored.version;
        if !change(&mut stored) {
            return Ok(Done(()));
        }
        stored.version = expected + 1;
        match store.put(stored.to_item(), Condition::VersionIs(expected)).await {
            Ok(()) => Ok(Done(())),
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(SessionError::RevokeFailed(id.to_owned()))),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Marks session `id` revoked (or finds it already revoked).
async fn revoke_session(store: &dyn Store, id: &str) -> Result<(), SessionError> {
    update(store, id, |stored| !std::mem::replace(&mut stored.revoked, true)).await
}

/// Exchanges the current refresh token of a live session for a new one. A
/// secret the session had earlier revokes it; one it never had changes nothing.
pub async fn rotate(store: &dyn Store, token: &str, now: OffsetDateTime) -> Result<Session, SessionError> {
    let (stored, secret) = load(store, token).await?;
    if stored.revoked || stored.expires_at <= now.unix_timestamp() || !stored.had_secret(&secret) {
        return Err(SessionError::Invalid);
    }
    if stored.token_hash != hash(&secret) {
        return Err(reuse(store, &stored.id).await);
    }
    let new_secret = new_secret();
    let mut next = stored.clone();
    next.previous.insert(0, stored.token_hash.clone());
    next.previous.truncate(PREVIOUS_SECRETS_KEPT);
    next.token_hash = hash(&new_secret);
    next.version = stored.version + 1;
    match store.put(next.to_item(), Condition::VersionIs(stored.version)).await {
        Ok(()) => Ok(Session {
            refresh_token: format!("{}.{new_secret}", stored.id),
            id: stored.id,
            user_id: stored.user_id,
            role: stored.role,
            expires_at: stored.expires_at,
            epoch: stored.epoch,
        }),
        // Another refresh with the same token won the race: this one is a reuse.
        Err(StoreError::ConditionFailed { .. }) => Err(reuse(store, &stored.id).await),
        Err(e) => Err(e.into()),
    }
}

/// Marks session `id` revoked (an account-level decision, such as a session
/// older than its account's epoch).
pub async fn end(store: &dyn Store, id: &str) -> Result<(), SessionError> {
    revoke_session(store, id).await
}

/// Moves session `id` (of `user_id`) to the account's new `epoch`, so it
/// outlives the bump that ends the account's other sessions. A session that
/// is gone, revoked or someone else's is left alone.
pub async fn restamp(store: &dyn Store, id: &str, user_id: UserId, epoch: i64) -> Result<(), SessionError> {
    update(store, id, |stored| {
        let moves = !stored.revoked && stored.user_id == user_id && stored.epoch < epoch;
        if moves {
            stored.epoch = epoch;
        }
        moves
    })
    .await
}

/// Revokes session `id` after a reused secret; the error to answer with.
async fn reuse(store: &dyn Store, id: &str) -> SessionError {
    match revoke_session(store, id).await {
        Ok(()) => {
            tracing::warn!(session = %id, "refresh token reuse detected; session revoked");
            SessionError::Reused
        }
        Err(e) => e,
    }
}

/// Revokes the session of any refresh token it ever had (logout). Revoking an
/// already revoked session succeeds; a secret it never had is refused.
pub async fn revoke(store: &dyn Store, token: &str) -> Result<(), SessionError> {
    let (stored, secret) = load(store, token).await?;
    if !stored.had_secret(&secret) {
        return Err(SessionError::Invalid);
    }
    revoke_session(store, &stored.id).await
}
