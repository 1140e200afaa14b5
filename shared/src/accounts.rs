//! The accounts' use cases over the ports: register, sign in (throttled, with
//! unknown emails costing as much as known ones), rotate a refresh token, sign
//! out, and the signed-in user; each sign-in hands out a `Signed` session with a
//! fresh access token. Password hashing runs on the blocking pool.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::{DisplayName, Email, Password, PasswordHash, Role, User, UserId};
use crate::repo::sessions::{self, Session, SessionError};
use crate::repo::users::{self, CreateUserError};
use crate::tokens::{Claims, TokenError, AUDIENCE, ISSUER};
use crate::AppState;

/// Why an account action failed. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// 409.
    #[error("an account with this email already exists")]
    DuplicateEmail,
    /// 401: wrong email or password, or a refresh token that is no good.
    #[error("{0}")]
    Unauthenticated(String),
    /// 429: too many failed logins for the email.
    #[error("too many failed logins for this email; try again later")]
    Throttled { retry_after_secs: u64 },
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
}

type Result<T> = std::result::Result<T, AccountError>;

impl From<SessionError> for AccountError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(e) => e.into(),
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

fn refresh_ttl(state: &AppState) -> i64 {
    state.token_settings.refresh_ttl.as_secs() as i64
}

/// Creates a customer or farmer account and signs it in.
pub async fn register(state: &AppState, new: NewAccount) -> Result<Signed> {
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
        sessions::create(state.store.as_ref(), user.id, user.role, refresh_ttl(state), state.clock.now()).await?;
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

/// Signs in with email and password; repeated failures for one email are
/// throttled.
pub async fn login(state: &AppState, email: Email, password: String) -> Result<Signed> {
    let password =
        Password::for_login(password).map_err(|message| AccountError::Invalid { field: "password", message })?;
    let store = state.store.as_ref();
    if let Some(retry_after_secs) = users::login_retry_after(store, &email, state.clock.now()).await? {
        return Err(AccountError::Throttled { retry_after_secs });
    }
    let user = users::find_by_email(store, &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => hash.verify(&password),
        None => {
            decoy_hash().verify(&password);
            false
        }
    })
    .await?;
    let Some(user) = user.filter(|_| verified) else {
        users::record_login_failure(store, &email, state.clock.now()).await?;
        tracing::info!("failed login");
        return Err(AccountError::Unauthenticated("the email or password is wrong".into()));
    };
    users::clear_login_failures(store, &email).await?;
    let session = sessions::create(store, user.id, user.role, refresh_ttl(state), state.clock.now()).await?;
    tracing::info!(user_id = %user.id, "logged in");
    sign_in(state, user, session)
}

/// Exchanges a refresh token for new tokens; the refresh token rotates.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<Signed> {
    let session = sessions::rotate(state.store.as_ref(), refresh_token, refresh_ttl(state), state.clock.now()).await?;
    let user = current_user(state, session.user_id).await?;
    sign_in(state, user, session)
}

/// Revokes the session of a refresh token.
pub async fn logout(state: &AppState, refresh_token: &str) -> Result<()> {
    Ok(sessions::revoke(state.store.as_ref(), refresh_token).await?)
}

/// The user `id` names (401 when the account no longer exists).
pub async fn current_user(state: &AppState, id: UserId) -> Result<User> {
    users::get(state.store.as_ref(), id)
        .await?
        .ok_or_else(|| AccountError::Unauthenticated("the account no longer exists".into()))
}
