//! The accounts' use cases over the ports: register, sign in (throttled, with
//! unknown emails costing as much as known ones), rotate a refresh token, sign
//! out, and the signed-in user; each sign-in hands out a `Signed` session with a
//! fresh access token. Password hashing runs on the blocking pool.
//!
//! # Throttling policy
//! Every limit is counted *before* the password is hashed or checked (atomic
//! counters, `repo::throttle`), so parallel attempts cannot slip past a limit.
//! - Per email and source address: `LOGIN_PER_ACCOUNT_AND_ADDRESS` attempts per
//!   window; a successful login starts the count again. An attacker who knows an
//!   email is stopped at their own address, not the owner at theirs.
//! - Per source address, whatever the emails: `LOGIN_PER_ADDRESS` (password
//!   spraying) and `REGISTER_PER_ADDRESS` (each sign-up costs a hash).
//! - Per email from every address: past `LOGIN_PER_ACCOUNT`, each attempt waits
//!   `ACCOUNT_SLOWDOWN` first. This slows a distributed attack on one account but
//!   never refuses its owner.

use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::{DisplayName, Email, Password, PasswordHash, Role, User, UserId};
use crate::repo::sessions::{self, Session, SessionError};
use crate::repo::throttle::{self, Limit};
use crate::repo::users::{self, CreateUserError};
use crate::tokens::{Claims, TokenError, AUDIENCE, ISSUER};
use crate::AppState;

/// Login attempts per email and source address per 15 minutes.
pub const LOGIN_PER_ACCOUNT_AND_ADDRESS: Limit = Limit::new(5, 15 * 60);
/// Login attempts per source address, over all emails, per 15 minutes.
pub const LOGIN_PER_ADDRESS: Limit = Limit::new(30, 15 * 60);
/// Login attempts per email, over all addresses, per 15 minutes, before each
/// further one is slowed down.
pub const LOGIN_PER_ACCOUNT: Limit = Limit::new(100, 15 * 60);
/// The wait of a login past `LOGIN_PER_ACCOUNT`.
pub const ACCOUNT_SLOWDOWN: Duration = Duration::from_secs(1);
/// Registrations per source address per hour.
pub const REGISTER_PER_ADDRESS: Limit = Limit::new(10, 3600);

/// Why an account action failed. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// 409.
    #[error("an account with this email already exists")]
    DuplicateEmail,
    /// 401: wrong email or password, or a refresh token that is no good.
    #[error("{0}")]
    Unauthenticated(String),
    /// 429: too many attempts; `what` says which.
    #[error("too many {what}; try again later")]
    Throttled { what: &'static str, retry_after_secs: u64 },
    /// 422 on `field`.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// 500.
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    /// 500.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// 500: hashing did not finish.
    #[error(transparent)]
    Hashing(#[from] tokio::task::JoinError),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

type Result<T> = std::result::Result<T, AccountError>;

impl From<SessionError> for AccountError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(e) => e.into(),
            SessionError::RevokeFailed(_) => AccountError::Internal(error.to_string()),
            other => AccountError::Unauthenticated(other.to_string()),
        }
    }
}

/// Roles a person may choose when registering (never `admin`).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SelfServiceRole {
    Customer,
    Farmer,
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RegisterRequest)]
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub display_name: DisplayName,
    pub role: SelfServiceRole,
}

/// A signed-in session: the user, a fresh access token and the refresh session.
#[derive(Debug)]
pub struct Signed {
    pub user: User,
    pub access_token: String,
    /// Seconds the access token lives.
    pub access_ttl_secs: u64,
    pub session: Session,
}

fn sign_in(state: &AppState, user: User, session: Session) -> Result<Signed> {
    let now = state.clock.now().unix_timestamp();
    let ttl = state.token_settings.access_ttl.as_secs();
    let claims = Claims {
        sub: user.id.to_string(),
        role: user.role,
        sid: session.id.clone(),
        iat: now,
        exp: now + ttl as i64,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
    };
    let access_token = state.tokens.sign(&claims)?;
    Ok(Signed { user, access_token, access_ttl_secs: ttl, session })
}

/// A session's whole life (refreshing does not extend it).
fn session_lifetime(state: &AppState) -> i64 {
    state.token_settings.refresh_ttl.as_secs() as i64
}

/// Counts one hit on `scope`; 429 (naming `what`) when past `limit`.
async fn limit(state: &AppState, scope: &str, limit: Limit, what: &'static str) -> Result<()> {
    match throttle::hit(state.store.as_ref(), scope, limit, state.clock.now()).await? {
        Some(retry_after_secs) => Err(AccountError::Throttled { what, retry_after_secs }),
        None => Ok(()),
    }
}

/// Creates a customer or farmer account, from `source` (an address), and signs it in.
pub async fn register(state: &AppState, new: NewAccount, source: &str) -> Result<Signed> {
    limit(state, &format!("register#{source}"), REGISTER_PER_ADDRESS, "sign-ups from this address").await?;
    let NewAccount { email, password, display_name, role } = new;
    let password_hash = tokio::task::spawn_blocking(move || PasswordHash::create(&password)).await?;
    let user = User {
        id: UserId::new(),
        email,
        display_name,
        role: match role {
            SelfServiceRole::Customer => Role::Customer,
            SelfServiceRole::Farmer => Role::Farmer,
        },
        password_hash,
        created_at: state.clock.now(),
    };
    match users::create(state.store.as_ref(), &user).await {
        Ok(()) => {}
        Err(CreateUserError::DuplicateEmail) => return Err(AccountError::DuplicateEmail),
        Err(CreateUserError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(user_id = %user.id, role = user.role.as_str(), "user registered");
    let session =
        sessions::create(state.store.as_ref(), user.id, user.role, session_lifetime(state), state.clock.now()).await?;
    sign_in(state, user, session)
}

/// A hash that never matches, verified when the email is unknown so that unknown
/// and known emails take the same time to answer.
fn decoy_hash() -> &'static PasswordHash {
    static DECOY: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        PasswordHash::create(&Password::for_login("decoy password never used".into()).expect("short enough"))
    })
}

/// Signs in with email and password from `source` (an address), under the
/// throttling policy above.
pub async fn login(state: &AppState, email: Email, password: String, source: &str) -> Result<Signed> {
    let password =
        Password::for_login(password).map_err(|message| AccountError::Invalid { field: "password", message })?;
    limit(state, &format!("login-address#{source}"), LOGIN_PER_ADDRESS, "logins from this address").await?;
    let account_and_address = format!("login#{email}#{source}");
    let what = "logins for this email from this address";
    limit(state, &account_and_address, LOGIN_PER_ACCOUNT_AND_ADDRESS, what).await?;
    let store = state.store.as_ref();
    if throttle::hit(store, &format!("login-account#{email}"), LOGIN_PER_ACCOUNT, state.clock.now()).await?.is_some() {
        tokio::time::sleep(ACCOUNT_SLOWDOWN).await;
    }
    let user = users::find_by_email(store, &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    state.counters.password_verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => hash.verify(&password),
        None => {
            decoy_hash().verify(&password);
            false
        }
    })
    .await?;
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!("failed login");
        return Err(AccountError::Unauthenticated("the email or password is wrong".into()));
    };
    throttle::reset(store, &account_and_address, LOGIN_PER_ACCOUNT_AND_ADDRESS, state.clock.now()).await?;
    let session = sessions::create(store, user.id, user.role, session_lifetime(state), state.clock.now()).await?;
    tracing::info!(user_id = %user.id, "logged in");
    sign_in(state, user, session)
}

/// Exchanges a refresh token for new tokens; the refresh token rotates.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<Signed> {
    let session = sessions::rotate(state.store.as_ref(), refresh_token, state.clock.now()).await?;
    let user = current_user(state, session.user_id).await?;
    sign_in(state, user, session)
}

/// Revokes the session of a refresh token (current or earlier).
pub async fn logout(state: &AppState, refresh_token: &str) -> Result<()> {
    Ok(sessions::revoke(state.store.as_ref(), refresh_token).await?)
}

/// The user `id` names (401 when the account no longer exists).
pub async fn current_user(state: &AppState, id: UserId) -> Result<User> {
    users::get(state.store.as_ref(), id)
        .await?
        .ok_or_else(|| AccountError::Unauthenticated("the account no longer exists".into()))
}
