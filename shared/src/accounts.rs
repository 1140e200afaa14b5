//! The accounts' use cases over the ports: register (answering alike for
//! known and new emails), sign in (throttled, with unknown emails costing as
//! much as known ones), rotate a refresh token, sign out, the signed-in user,
//! email verification, password reset and change, profiles, the public farmer
//! list, notifications and sales figures, administration (list, disable,
//! enable, change role) and erasure.
//! Each sign-in hands out a `Signed` session with a fresh access token.
//! Password hashing runs on the blocking pool.
//!
//! # Registration
//! A sign-up answers the same, and does the same work, whether or not the
//! address has an account: the owner of a known address is mailed "you
//! already have an account" instead of a verification link, and nobody is
//! signed in by registering (the new user signs in next).
//!
//! # Verification policy
//! Registering mails a single-use link (valid `VERIFY_TOKEN_HOURS`). An
//! unverified account may browse and sign in; a farmer's products appear in
//! public only once the farmer is verified (and while enabled); checkout will
//! require a verified customer.
//!
//! # Disabling
//! Disabling bumps the account's session epoch, so every refresh token stops
//! working at once, and sign-in is refused. Access tokens are not looked up on
//! every call (that would cost a read per request): each lives at most
//! `ACCESS_TOKEN_TTL_SECONDS` (15 minutes), and every route that reads the
//! account (`/auth/me`, `/users/me`, every product write and image upload
//! ticket, admin routes) refuses a disabled one at once; those also go by the
//! stored role, not the token's. A disabled farmer's products leave public
//! browse and reads (the worker's `SyncFarmer` job) and come back on enable.
//!
//! # Erasure
//! `DELETE /users/me` replaces the account by a tombstone holding only its id
//! and role (what orders and products still point at), deletes the email guard
//! (the address can register again) and the farmer page, ends every session
//! and unlists a farmer's products. Throttling counters store only hashes, and
//! sessions and link tokens hold only the id. An admin cannot erase their own
//! account (another admin demotes it first), and the last enabled admin can
//! be neither disabled nor demoted, so the marketplace always keeps one.
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
//! - Password reset requests: `RESET_PER_ADDRESS` per source address,
//!   `RESET_PER_EMAIL_AND_ADDRESS` per email and address, and a per-email
//!   ceiling `RESET_PER_EMAIL` well above the latter, so one address asking
//!   for someone's resets cannot block the owner's own.

use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::{DisplayName, Email, FarmProfile, Password, PasswordHash, Place, Role, User, UserId};
use crate::jobs::{self, Job};
use crate::mail::Template;
use crate::ports::{Item, Query, StoreError, WriteOp};
use crate::repo;
/// A farmer's public page (`public_farmer`, `list_farmers`, `Profile`).
pub use crate::repo::farmers::FarmerPage;
use crate::repo::link_tokens::{LinkTokenError, Purpose};
/// A notification (`list_notifications`).
pub use crate::repo::notifications::Notification;
/// One day of a farmer's sales (`sales`).
pub use crate::repo::sales::Day as SalesDay;
use crate::repo::sessions::{Session, SessionError};
use crate::repo::throttle::Limit;
use crate::repo::users::CreateUserError;
use crate::retry::{self, Attempt::Again, Attempt::Done};
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
/// Verification mails one account may ask for per hour.
pub const RESEND_PER_ACCOUNT: Limit = Limit::new(3, 3600);
/// Password reset requests per source address per hour.
pub const RESET_PER_ADDRESS: Limit = Limit::new(10, 3600);
/// Password reset requests per email and source address per hour (known or not).
pub const RESET_PER_EMAIL_AND_ADDRESS: Limit = Limit::new(3, 3600);
/// Password reset requests per email per hour, over all addresses: a ceiling on
/// the mail one inbox gets, well above what one address may ask for, so one
/// attacker's address cannot block the owner's recovery.
pub const RESET_PER_EMAIL: Limit = Limit::new(10, 3600);
/// Password checks of a signed-in account (change, erasure) per 15 minutes.
pub const PASSWORD_CHECKS_PER_ACCOUNT: Limit = Limit::new(5, 15 * 60);
/// How long a verification link works.
pub const VERIFY_TOKEN_HOURS: i64 = 48;
/// How long a password reset link works.
pub const RESET_TOKEN_HOURS: i64 = 1;

/// Why an account action failed. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// 401: wrong email or password, or a refresh token that is no good.
    #[error("{0}")]
    Unauthenticated(String),
    /// 429: too many attempts; `what` says which.
    #[error("too many {what}; try again later")]
    Throttled { what: &'static str, retry_after_secs: u64 },
    /// 422 on `field`.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// 400: a link token that is not one of ours.
    #[error("{0}")]
    BadToken(String),
    /// 410: a link token used already or expired.
    #[error("{0}")]
    TokenGone(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 500.
    #[error(transparent)]
    Jobs(#[from] crate::ports::JobError),
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

impl From<LinkTokenError> for AccountError {
    fn from(error: LinkTokenError) -> Self {
        match error {
            LinkTokenError::Invalid => {
                AccountError::BadToken("the token is not valid: use the whole link from the most recent message".into())
            }
            LinkTokenError::Used | LinkTokenError::Expired => {
                AccountError::TokenGone(format!("{error}; ask for a new link"))
            }
            LinkTokenError::Store(e) => e.into(),
        }
    }
}

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

impl From<SelfServiceRole> for Role {
    fn from(role: SelfServiceRole) -> Self {
        match role {
            SelfServiceRole::Customer => Role::Customer,
            SelfServiceRole::Farmer => Role::Farmer,
        }
    }
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
    match repo::throttle::hit(state.store.as_ref(), scope, limit, state.clock.now()).await? {
        Some(retry_after_secs) => Err(AccountError::Throttled { what, retry_after_secs }),
        None => Ok(()),
    }
}

/// Creates a customer or farmer account, from `source` (an address), and
/// mails its verification link; the new user then signs in. For an address
/// that already has an account, does the same work (the password hash, one
/// queued mail) and answers alike, but mails the owner "you already have an
/// account" instead, so a sign-up tells nobody who has an account.
pub async fn register(state: &AppState, new: NewAccount, source: &str) -> Result<()> {
    limit(state, &format!("register#{source}"), REGISTER_PER_ADDRESS, "sign-ups from this address").await?;
    let NewAccount { email, password, display_name, role } = new;
    let password_hash = hash(password).await?;
    let user = User::new(email, display_name, role.into(), password_hash, state.clock.now());
    // Either way the outcome is mailed: a failure to queue the mail must not
    // change the answer (the owner can ask for another link, or a reset).
    match repo::users::create(state.store.as_ref(), &user).await {
        Ok(()) => {
            tracing::info!(user_id = %user.id, role = user.role.as_str(), "user registered");
            if let Err(e) = send_verification(state, &user).await {
                tracing::error!(user_id = %user.id, error = %e, "the verification mail could not be queued");
            }
        }
        Err(CreateUserError::DuplicateEmail) => {
            if let Err(e) = send_account_exists(state, &user.email).await {
                tracing::error!(error = %e, "the account-exists mail could not be queued");
            }
        }
        Err(CreateUserError::Store(e)) => return Err(e.into()),
    }
    Ok(())
}

/// Mails the owner of `email` that they already have an account (nothing
/// when the account went meanwhile).
async fn send_account_exists(state: &AppState, email: &Email) -> Result<()> {
    let Some(owner) = repo::users::find_by_email(state.store.as_ref(), email).await? else {
        return Ok(());
    };
    tracing::info!(user_id = %owner.id, "sign-up with an address that has an account");
    let mail = Template::AccountExists { name: owner.display_name.as_str() }.render(owner.email.as_str());
    jobs::enqueue(state, &Job::SendEmail { mail }).await?;
    Ok(())
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
    if repo::throttle::hit(store, &format!("login-account#{email}"), LOGIN_PER_ACCOUNT, state.clock.now())
        .await?
        .is_some()
    {
        tokio::time::sleep(ACCOUNT_SLOWDOWN).await;
    }
    let user = repo::users::find_by_email(store, &email).await?;
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
    repo::throttle::reset(store, &account_and_address, LOGIN_PER_ACCOUNT_AND_ADDRESS, state.clock.now()).await?;
    if user.disabled {
        return Err(AccountError::Forbidden("this account is disabled; contact the marketplace".into()));
    }
    tracing::info!(user_id = %user.id, "logged in");
    start_session(state, user).await
}

/// A new session for `user`, who just proved who they are.
async fn start_session(state: &AppState, user: User) -> Result<Signed> {
    let store = state.store.as_ref();
    let session = repo::sessions::create(
        store,
        user.id,
        user.role,
        user.session_epoch,
        session_lifetime(state),
        state.clock.now(),
    )
    .await?;
    sign_in(state, user, session)
}

/// Exchanges a refresh token for new tokens; the refresh token rotates.
/// A session older than its account's epoch, or of a disabled or erased
/// account, is ended instead.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<Signed> {
    let store = state.store.as_ref();
    let session = repo::sessions::rotate(store, refresh_token, state.clock.now()).await?;
    let user = match repo::users::get(store, session.user_id).await? {
        Some(user) if !user.disabled && session.epoch >= user.session_epoch => user,
        _ => {
            repo::sessions::end(store, &session.id).await?;
            return Err(AccountError::Unauthenticated(
                "the session has ended (password changed, account disabled or erased); sign in again".into(),
            ));
        }
    };
    sign_in(state, user, session)
}

/// Revokes the session of a refresh token (current or earlier).
pub async fn logout(state: &AppState, refresh_token: &str) -> Result<()> {
    Ok(repo::sessions::revoke(state.store.as_ref(), refresh_token).await?)
}

/// The signed-in user `id` names: 401 when the account no longer exists or
/// is disabled (its access token is refused at once wherever this is read).
/// `GET /auth/me` (handler `me`).
pub async fn current_user(state: &AppState, id: UserId) -> Result<User> {
    match repo::users::get(state.store.as_ref(), id).await? {
        None => Err(AccountError::Unauthenticated("the account no longer exists".into())),
        Some(user) if user.disabled => Err(AccountError::Unauthenticated("this account is disabled".into())),
        Some(user) => Ok(user),
    }
}

/// The signed-in user of `caller`'s access token.
pub async fn caller_user(state: &AppState, caller: &Claims) -> Result<User> {
    let id = caller.user_id().ok_or_else(|| AccountError::Unauthenticated("the token names no user".into()))?;
    current_user(state, id).await
}

// ---------------------------------------------------------------------------
// Email verification
// ---------------------------------------------------------------------------

/// `<link base>/<page>?token=<token>`.
fn link(state: &AppState, page: &str, token: &str) -> Result<String> {
    let base = state
        .link_base_url
        .as_deref()
        .ok_or_else(|| AccountError::Internal("LINK_BASE_URL is not set for this function".into()))?;
    Ok(format!("{base}/{page}?token={token}"))
}

/// Issues a verification token for `user` and queues its mail.
async fn send_verification(state: &AppState, user: &User) -> Result<()> {
    let lifetime = VERIFY_TOKEN_HOURS * 3600;
    let token =
        repo::link_tokens::issue(state.store.as_ref(), Purpose::VerifyEmail, user.id, lifetime, state.clock.now())
            .await?;
    let link = link(state, "verify-email", &token)?;
    let mail = Template::VerifyEmail { name: user.display_name.as_str(), link: &link, hours: VERIFY_TOKEN_HOURS }
        .render(user.email.as_str());
    jobs::enqueue(state, &Job::SendEmail { mail }).await?;
    Ok(())
}

/// Mails the signed-in user a new verification link (409 when verified).
pub async fn resend_verification(state: &AppState, caller: &Claims) -> Result<()> {
    let user = caller_user(state, caller).await?;
    if user.email_verified {
        return Err(AccountError::Conflict("the email address is already verified".into()));
    }
    limit(state, &format!("verify-resend#{}", user.id), RESEND_PER_ACCOUNT, "verification mails for this account")
        .await?;
    send_verification(state, &user).await
}

/// The outbox write asking the worker to bring a farmer's products in line
/// with the account: part of the account change's own transaction, so the
/// sync happens if and only if the change committed.
fn farmer_sync(state: &AppState, farmer_id: UserId) -> WriteOp {
    let event_id = ulid::Ulid::new().to_string();
    repo::outbox::write(&event_id, &Job::SyncFarmer { farmer_id }, state.clock.now().unix_timestamp())
}

/// Marks the address of the token's account verified and spends the token.
pub async fn verify_email(state: &AppState, token: &str) -> Result<User> {
    let store = state.store.as_ref();
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let valid = repo::link_tokens::check(store, Purpose::VerifyEmail, token, state.clock.now()).await?;
        let Some(user) = repo::users::get(store, valid.user_id).await? else {
            return Err(LinkTokenError::Invalid.into());
        };
        let next = User { email_verified: true, version: user.version + 1, ..user.clone() };
        let mut writes = vec![valid.spend(), repo::users::update(&next, user.version)];
        if next.role == Role::Farmer {
            writes.push(farmer_sync(state, next.id));
        }
        match store.transact(writes).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "email verified");
                Ok(Done(next))
            }
            // Checked again: spent, or the account changed.
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

fn busy() -> AccountError {
    AccountError::Conflict("the account is being changed by another request; try again".into())
}

// ---------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------

/// Queues a password reset for `email` from `source` (an address). Answers
/// the same, and does the same work (three counters and one queued job),
/// whether or not an account has the address: the worker finds out
/// (`issue_password_reset`). A request refused by the per-email-and-address
/// limit does not count towards the per-email ceiling.
pub async fn request_password_reset(state: &AppState, email: Email, source: &str) -> Result<()> {
    limit(state, &format!("reset-address#{source}"), RESET_PER_ADDRESS, "password resets from this address").await?;
    let what = "password resets for this email from this address";
    limit(state, &format!("reset#{email}#{source}"), RESET_PER_EMAIL_AND_ADDRESS, what).await?;
    limit(state, &format!("reset#{email}"), RESET_PER_EMAIL, "password resets for this email").await?;
    jobs::enqueue(state, &Job::PasswordReset { email: email.to_string() }).await?;
    Ok(())
}

/// The worker's half of a reset request: when an enabled account has
/// `email`, issues a reset token and queues its mail (`true`); otherwise
/// sends nothing (`false`).
pub async fn issue_password_reset(state: &AppState, email: &str) -> Result<bool> {
    let Ok(email) = Email::parse(email) else {
        return Ok(false);
    };
    let store = state.store.as_ref();
    let Some(user) = repo::users::find_by_email(store, &email).await?.filter(|u| !u.disabled) else {
        return Ok(false);
    };
    let lifetime = RESET_TOKEN_HOURS * 3600;
    let token = repo::link_tokens::issue(store, Purpose::ResetPassword, user.id, lifetime, state.clock.now()).await?;
    let link = link(state, "reset-password", &token)?;
    let mail = Template::ResetPassword { name: user.display_name.as_str(), link: &link, hours: RESET_TOKEN_HOURS }
        .render(user.email.as_str());
    jobs::enqueue(state, &Job::SendEmail { mail }).await?;
    Ok(true)
}

async fn hash(password: Password) -> Result<PasswordHash> {
    Ok(tokio::task::spawn_blocking(move || PasswordHash::create(&password)).await?)
}

/// Sets a new password with a reset token: every session of the account ends,
/// the token is spent, and the address counts as verified (the link reached it).
pub async fn confirm_password_reset(state: &AppState, token: &str, password: Password) -> Result<()> {
    let store = state.store.as_ref();
    // Check before hashing, so a bad token costs no hash.
    repo::link_tokens::check(store, Purpose::ResetPassword, token, state.clock.now()).await?;
    let password_hash = hash(password).await?;
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let valid = repo::link_tokens::check(store, Purpose::ResetPassword, token, state.clock.now()).await?;
        let Some(user) = repo::users::get(store, valid.user_id).await? else {
            return Err(LinkTokenError::Invalid.into());
        };
        let next = User {
            password_hash: password_hash.clone(),
            session_epoch: user.session_epoch + 1,
            email_verified: true,
            version: user.version + 1,
            ..user.clone()
        };
        let mut writes = vec![valid.spend(), repo::users::update(&next, user.version)];
        if !user.email_verified && user.role == Role::Farmer {
            writes.push(farmer_sync(state, user.id));
        }
        match store.transact(writes).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "password reset; every session ended");
                Ok(Done(()))
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Checks the signed-in user's current password (throttled per account):
/// 422 on `field` when it is wrong.
async fn check_password(state: &AppState, user: &User, password: String, field: &'static str) -> Result<()> {
    let password = Password::for_login(password).map_err(|message| AccountError::Invalid { field, message })?;
    limit(state, &format!("password-check#{}", user.id), PASSWORD_CHECKS_PER_ACCOUNT, "password checks").await?;
    state.counters.password_verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stored = user.password_hash.clone();
    if tokio::task::spawn_blocking(move || stored.verify(&password)).await? {
        Ok(())
    } else {
        Err(AccountError::Invalid { field, message: "is not the account's password".into() })
    }
}

/// Changes the signed-in user's password: the other sessions end, the
/// caller's own session carries on.
pub async fn change_password(state: &AppState, caller: &Claims, current: String, new: Password) -> Result<()> {
    let user = caller_user(state, caller).await?;
    check_password(state, &user, current, "currentPassword").await?;
    let password_hash = hash(new).await?;
    let store = state.store.as_ref();
    let (user, password_hash) = (&user, &password_hash);
    retry::run(retry::CONTENDED_WRITE, |attempt| async move {
        // Read again after a lost race.
        let user = match attempt {
            0 => user.clone(),
            _ => caller_user(state, caller).await?,
        };
        let next = User {
            password_hash: password_hash.clone(),
            session_epoch: user.session_epoch + 1,
            version: user.version + 1,
            ..user.clone()
        };
        match repo::users::save(store, &next).await {
            Ok(()) => {
                repo::sessions::restamp(store, &caller.sid, user.id, next.session_epoch).await?;
                tracing::info!(user_id = %user.id, "password changed; other sessions ended");
                Ok(Done(()))
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------

/// A user with, for a farmer, their page.
#[derive(Debug, Clone)]
pub struct Profile {
    pub user: User,
    pub page: Option<FarmerPage>,
}

/// `user` with, for a farmer, their page as stored now.
async fn with_page(state: &AppState, user: User) -> Result<Profile> {
    let page = match user.role {
        Role::Farmer => repo::farmers::get(state.store.as_ref(), user.id).await?,
        _ => None,
    };
    Ok(Profile { user, page })
}

/// `users` with, for each farmer, their page (one read per farmer, in parallel),
/// in the same order: what an admin's account list shows.
pub async fn profiles(state: &AppState, users: Vec<User>) -> Result<Vec<Profile>> {
    futures::future::try_join_all(users.into_iter().map(|user| with_page(state, user))).await
}

/// The signed-in user's profile.
/// `GET /users/me` (handler `me`).
pub async fn profile(state: &AppState, caller: &Claims) -> Result<Profile> {
    with_page(state, caller_user(state, caller).await?).await
}

/// Changes to the signed-in user's profile; absent fields stay as they are.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub display_name: Option<DisplayName>,
    /// Replaces the whole farm profile (farmers only).
    pub farm: Option<FarmProfile>,
}

/// Applies `changes` to the signed-in user's account and, for a farmer, page,
/// in one transaction.
/// `PATCH /users/me` (handler `update_me`).
pub async fn update_profile(state: &AppState, caller: &Claims, changes: ProfileChanges) -> Result<Profile> {
    let store = state.store.as_ref();
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let Profile { user, page } = profile(state, caller).await?;
        if changes.farm.is_some() && user.role != Role::Farmer {
            return Err(AccountError::Invalid { field: "farm", message: "only farmers have a farm profile".into() });
        }
        let mut writes: Vec<WriteOp> = Vec::new();
        let mut next_user = user.clone();
        if let Some(name) = &changes.display_name {
            next_user = User { display_name: name.clone(), version: user.version + 1, ..user.clone() };
            writes.push(repo::users::update(&next_user, user.version));
        }
        let mut next_page = page.clone();
        if let Some(farm) = &changes.farm {
            let now = state.clock.now();
            let base = page.clone().unwrap_or_else(|| FarmerPage::empty(user.id, user.sells_in_public(), now));
            let next = FarmerPage { profile: Some(farm.clone()), version: base.version + 1, updated_at: now, ..base };
            writes.push(repo::farmers::write(page.as_ref(), &next));
            next_page = Some(next);
        }
        if writes.is_empty() {
            return Ok(Done(Profile { user, page }));
        }
        match store.transact(writes).await {
            Ok(()) => Ok(Done(Profile { user: next_user, page: next_page })),
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// A farmer's public page: 404 unless the farmer sells in public.
/// `GET /farmers/{id}` (handler `read_farmer`).
pub async fn public_farmer(state: &AppState, raw_id: &str) -> Result<FarmerPage> {
    let not_found = || AccountError::NotFound(format!("no farmer with id {raw_id:?}"));
    let id = UserId::parse(raw_id).ok_or_else(not_found)?;
    repo::farmers::get(state.store.as_ref(), id).await?.filter(|page| page.public).ok_or_else(not_found)
}

/// Farmer pages one public list request reads to fill a page.
const FARMERS_PER_QUERY: usize = 100;

/// The public farmer list's query, by region then id (`region` narrows it to
/// one region), `limit` to a page of at most `FARMERS_PER_QUERY`: what
/// `paginate` positions and fingerprints for `list_farmers`.
pub fn farmers_query(region: Option<&Place>, limit: usize) -> Query {
    let mut query = repo::farmers::list_query(region.map(Place::as_str));
    query.limit = limit.min(FARMERS_PER_QUERY);
    query
}

/// One page of listed farmer pages (`GET /farmers`; the repo's `list`), read
/// from `query`'s start or its `start_after`, and the entry to continue after.
pub async fn list_farmers(state: &AppState, query: Query) -> Result<(Vec<FarmerPage>, Option<Item>)> {
    Ok(repo::farmers::list(state.store.as_ref(), &query).await?)
}

// ---------------------------------------------------------------------------
// Notifications and sales figures
// ---------------------------------------------------------------------------

/// The query of `user`'s notifications, newest first, `limit` to a page: what
/// `paginate` positions and fingerprints for `list_notifications`.
pub fn notifications_query(user: UserId, limit: usize) -> Query {
    let mut query = repo::notifications::list_query(user);
    query.limit = limit;
    query
}

/// One page of a user's notifications (`GET /users/me/notifications`; the
/// repo's `list`), read from `query`'s start or its `start_after`.
pub async fn list_notifications(state: &AppState, query: Query) -> Result<(Vec<Notification>, Option<Item>)> {
    Ok(repo::notifications::list(state.store.as_ref(), &query).await?)
}

/// How many of `user`'s notifications are unread (the repo's `unread`).
pub async fn unread_notifications(state: &AppState, user: UserId) -> Result<i64> {
    Ok(repo::notifications::unread(state.store.as_ref(), user).await?)
}

/// Marks `user`'s notification `id` read (the repo's `mark_read`); `false` when
/// there is no such notification. Marking a read one again changes nothing.
pub async fn read_notification(state: &AppState, user: UserId, id: &str) -> Result<bool> {
    Ok(repo::notifications::mark_read(state.store.as_ref(), user, id).await?.is_some())
}

/// A farmer's daily sales from `from` to `to` (`yyyy-mm-dd`, inclusive), days
/// with sales oldest first (`GET /farmers/me/sales`; the repo's `range`).
pub async fn sales(state: &AppState, farmer: UserId, from: &str, to: &str) -> Result<Vec<SalesDay>> {
    Ok(repo::sales::range(state.store.as_ref(), farmer, from, to).await?)
}

// ---------------------------------------------------------------------------
// Administration
// ---------------------------------------------------------------------------

/// Index entries one admin list request may evaluate when `role` or `disabled`
/// filter after the lookup; past it the page comes back short, with a cursor.
const LIST_BUDGET: usize = 500;

/// The admin account list's filters.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only accounts with this role.
    pub role: Option<Role>,
    /// Only accounts whose email starts with this (ignoring case).
    pub email_prefix: Option<String>,
    /// Only disabled (`true`) or enabled (`false`) accounts.
    pub disabled: Option<bool>,
}

impl UserFilter {
    /// The list's query, every account by email or those under the prefix:
    /// what `paginate` positions and fingerprints for `list_users`.
    pub fn query(&self) -> Query {
        let prefix = self.email_prefix.as_deref().map(str::trim).filter(|p| !p.is_empty());
        repo::users::list_query(prefix)
    }

    /// The cursor scope: the endpoint and the filters applied after the lookup.
    pub fn scope(&self) -> String {
        format!(
            "users#{}#{}",
            self.role.map(Role::as_str).unwrap_or("any"),
            self.disabled.map_or("any", |d| if d { "disabled" } else { "enabled" })
        )
    }

    fn keeps(&self, user: &User) -> bool {
        self.role.is_none_or(|role| user.role == role) && self.disabled.is_none_or(|d| user.disabled == d)
    }
}

/// One page of accounts by email passing `filter`, each with its farmer page
/// (`GET /users`; the repo's `list`, then `profiles`), read from `query`'s
/// start or its `start_after` within the list's read budget.
pub async fn list_users(
    state: &AppState,
    filter: &UserFilter,
    query: Query,
    limit: usize,
) -> Result<(Vec<Profile>, Option<Item>)> {
    let keep = |user: &User| filter.keeps(user);
    let (found, last) = repo::users::list(state.store.as_ref(), query, keep, limit, LIST_BUDGET).await?;
    Ok((profiles(state, found).await?, last))
}

/// The account `raw_id` names, for an admin (404 when there is none).
pub async fn account(state: &AppState, raw_id: &str) -> Result<User> {
    let not_found = || AccountError::NotFound(format!("no user with id {raw_id:?}"));
    let id = UserId::parse(raw_id).ok_or_else(not_found)?;
    repo::users::get(state.store.as_ref(), id).await?.ok_or_else(not_found)
}

/// Whether `user` holds admin rights now.
fn is_enabled_admin(user: &User) -> bool {
    user.role == Role::Admin && !user.disabled
}

/// Accounts the search for another enabled admin reads at most (admin
/// changes are rare; the admin list is read in pages of this budget).
const ADMIN_SEARCH_BUDGET: usize = 100_000;

/// An enabled admin other than `id`, if there is one.
async fn another_enabled_admin(state: &AppState, id: UserId) -> Result<Option<User>> {
    let keep = |user: &User| is_enabled_admin(user) && user.id != id;
    let query = repo::users::list_query(None);
    let (found, _) = repo::users::list(state.store.as_ref(), query, keep, 1, ADMIN_SEARCH_BUDGET).await?;
    Ok(found.into_iter().next())
}

/// Applies `change` to the account `raw_id` names, retrying lost races; when
/// the account was or becomes a farmer's, a farmer sync goes into the outbox
/// in the same transaction (so repeating an action repairs a farmer's products).
/// A change that takes admin rights away (disabling or demoting an admin)
/// needs another enabled admin, checked unchanged in the same transaction, so
/// two admins disabling each other at once cannot leave none: 409 for the
/// last one.
async fn administer(state: &AppState, raw_id: &str, change: impl Fn(&User) -> User) -> Result<User> {
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let user = account(state, raw_id).await?;
        let next = User { version: user.version + 1, ..change(&user) };
        let mut writes = vec![repo::users::update(&next, user.version)];
        if is_enabled_admin(&user) && !is_enabled_admin(&next) {
            let Some(other) = another_enabled_admin(state, user.id).await? else {
                return Err(AccountError::Conflict(
                    "this is the last enabled admin: it can be neither disabled nor demoted; \
                     create another admin first (marketplace-admin create-admin)"
                        .into(),
                ));
            };
            writes.push(repo::users::unchanged(&other));
        }
        if user.role == Role::Farmer || next.role == Role::Farmer {
            writes.push(farmer_sync(state, next.id));
        }
        match state.store.transact(writes).await {
            Ok(()) => Ok(Done(next)),
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Disables or enables an account. Disabling ends every session at once; a
/// farmer's products leave (or return to) public view. Repeating it is
/// harmless and syncs the farmer's products again. Answers the account with,
/// for a farmer, their page.
/// `POST /users/{id}/disable` and `/enable` (handlers `disable_user`, `enable_user`).
pub async fn set_disabled(state: &AppState, raw_id: &str, disabled: bool) -> Result<Profile> {
    let after = administer(state, raw_id, |user| User {
        disabled,
        session_epoch: if disabled && !user.disabled { user.session_epoch + 1 } else { user.session_epoch },
        ..user.clone()
    })
    .await?;
    tracing::info!(user_id = %after.id, disabled, "account {}", if disabled { "disabled" } else { "enabled" });
    with_page(state, after).await
}

/// Makes a customer a farmer or a farmer a customer, or demotes an admin (a
/// former farmer's products leave public view, and return if they become a
/// farmer again). Tokens carry the role: the new one shows in them from the
/// next refresh (at most 15 minutes), while product writes and image upload
/// tickets (`catalogue`) go by the stored role, so a demoted farmer loses them
/// at once. Answers the account with, for a farmer, their page.
/// `PATCH /users/{id}` (handler `change_user`).
pub async fn set_role(state: &AppState, raw_id: &str, role: SelfServiceRole) -> Result<Profile> {
    let role = Role::from(role);
    let after = administer(state, raw_id, |user| User { role, ..user.clone() }).await?;
    with_page(state, after).await
}

// ---------------------------------------------------------------------------
// Erasure
// ---------------------------------------------------------------------------

/// Erases the signed-in user's account after checking their password (see
/// the module doc, Erasure).
/// `DELETE /users/me` (handler `erase_me`).
pub async fn erase(state: &AppState, caller: &Claims, password: String) -> Result<()> {
    let store = state.store.as_ref();
    let user = caller_user(state, caller).await?;
    if user.role == Role::Admin {
        return Err(AccountError::Forbidden(
            "an admin account cannot be erased through the API: have another admin demote it first".into(),
        ));
    }
    check_password(state, &user, password, "password").await?;
    let user = &user;
    retry::run(retry::CONTENDED_WRITE, |attempt| async move {
        // Read again after a lost race.
        let user = match attempt {
            0 => user.clone(),
            _ => caller_user(state, caller).await?,
        };
        let mut writes = repo::users::erase(&user, state.clock.now());
        if user.role == Role::Farmer {
            writes.push(repo::farmers::delete(user.id));
            writes.push(farmer_sync(state, user.id));
        }
        match store.transact(writes).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "account erased");
                Ok(Done(()))
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}
