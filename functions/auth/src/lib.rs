//! The `auth` function: register, login, token refresh, logout and the current
//! user. Passwords are argon2id (hashed off the async threads); access tokens are
//! short-lived Ed25519 JWTs; refresh tokens rotate on every use and are stored only
//! as hashes. Repeated failed logins for one email answer 429 with `Retry-After`.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User, UserId};
use shared::http::{ApiError, Caller, JsonBody, NoContent, Reply, Routes};
use shared::repo::sessions::{self, Session, SessionError};
use shared::repo::users::{self, CreateUserError};
use shared::tokens::{Claims, AUDIENCE, ISSUER};
use shared::AppState;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The function's routes (the template's `Auth` events name the same).
pub fn routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Roles a person may choose when registering (never `admin`).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum SelfServiceRole {
    Customer,
    Farmer,
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RegisterRequest)]
struct RegisterBody {
    email: Email,
    password: Password,
    display_name: DisplayName,
    role: SelfServiceRole,
}

/// Credentials. Any password up to the maximum length is checked, so a short
/// guess is answered like any wrong one.
#[derive(Deserialize, ToSchema)]
#[schema(as = LoginRequest)]
struct LoginBody {
    email: Email,
    #[schema(schema_with = login_password_schema)]
    password: String,
}

fn login_password_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(Password::MAX_CHARS))
        .write_only(Some(true))
        .build()
}

/// A refresh token of a live session.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RefreshRequest)]
struct RefreshBody {
    /// The `refreshToken` of the latest AuthSession.
    #[schema(max_length = 512)]
    refresh_token: String,
}

/// A user as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
struct UserView {
    id: UserId,
    #[schema(examples("kim@example.com"))]
    email: String,
    display_name: String,
    role: Role,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.to_string(),
            display_name: user.display_name.as_str().to_owned(),
            role: user.role,
            created_at: user.created_at.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// Tokens handed out by register, login and refresh.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthSession {
    user: UserView,
    /// Send as `Authorization: Bearer <accessToken>`.
    access_token: String,
    #[schema(value_type = String, pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Exchange at `POST /auth/refresh` for new tokens; each use rotates it.
    refresh_token: String,
    #[schema(format = DateTime)]
    refresh_token_expires_at: String,
}

fn issue(state: &AppState, user: &User, session: Session) -> Result<AuthSession, ApiError> {
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
    Ok(AuthSession {
        user: UserView::from(user),
        access_token: state.tokens.sign(&claims)?,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: session.refresh_token,
        refresh_token_expires_at: time::OffsetDateTime::from_unix_timestamp(session.expires_at)
            .map_err(ApiError::internal)?
            .format(&Rfc3339)
            .map_err(ApiError::internal)?,
    })
}

fn refresh_ttl(state: &AppState) -> i64 {
    state.token_settings.refresh_ttl.as_secs() as i64
}

/// Create an account (customer or farmer) and sign in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", operation_id = "register",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered and signed in.", body = AuthSession,
            headers(("Location" = String, description = "`/auth/me`"))),
        (status = 409, description = "An account with this email (in any letter case) exists."),
    ))]
async fn register(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<RegisterBody>,
) -> Result<Reply<AuthSession>, ApiError> {
    let RegisterBody { email, password, display_name, role } = body;
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
        Err(CreateUserError::DuplicateEmail) => {
            return Err(ApiError::Conflict("an account with this email already exists".into()))
        }
        Err(CreateUserError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(user_id = %user.id, role = user.role.as_str(), "user registered");
    let session =
        sessions::create(state.store.as_ref(), user.id, user.role, refresh_ttl(&state), state.clock.now()).await?;
    Ok(Reply::created(issue(&state, &user, session)?, "/auth/me".into()))
}

/// A hash that never matches, verified when the email is unknown so that unknown
/// and known emails take the same time to answer.
fn decoy_hash() -> &'static PasswordHash {
    static DECOY: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        PasswordHash::create(&Password::for_login("decoy password never used".into()).expect("short enough"))
    })
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in.", body = AuthSession),
        (status = 401, description = "The email or password is wrong."),
        (status = 429, description = "Too many failed logins for this email; retry after `Retry-After` seconds."),
    ))]
async fn login(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<LoginBody>,
) -> Result<Reply<AuthSession>, ApiError> {
    let email = body.email;
    let password = Password::for_login(body.password).map_err(|message| ApiError::field("password", message))?;
    let store = state.store.as_ref();
    if let Some(retry_after_secs) = users::login_retry_after(store, &email, state.clock.now()).await? {
        return Err(ApiError::TooManyRequests {
            retry_after_secs,
            detail: "too many failed logins for this email; try again later".into(),
        });
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
        return Err(ApiError::Unauthorized("the email or password is wrong".into()));
    };
    users::clear_login_failures(store, &email).await?;
    let session = sessions::create(store, user.id, user.role, refresh_ttl(&state), state.clock.now()).await?;
    tracing::info!(user_id = %user.id, "logged in");
    Ok(Reply::ok(issue(&state, &user, session)?))
}

fn session_error(error: SessionError) -> ApiError {
    match error {
        SessionError::Store(e) => e.into(),
        other => ApiError::Unauthorized(other.to_string()),
    }
}

/// Exchange a refresh token for new tokens (the refresh token rotates).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is now used up.", body = AuthSession),
        (status = 401, description = "The refresh token is unknown, expired or revoked (a reused one revokes its session)."),
    ))]
async fn refresh(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<RefreshBody>,
) -> Result<Reply<AuthSession>, ApiError> {
    let store = state.store.as_ref();
    let session = sessions::rotate(store, &body.refresh_token, refresh_ttl(&state), state.clock.now())
        .await
        .map_err(session_error)?;
    let user = users::get(store, session.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    Ok(Reply::ok(issue(&state, &user, session)?))
}

/// Sign out: revoke the session of a refresh token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "logout",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "The session is revoked."),
        (status = 401, description = "The refresh token is unknown, expired or already revoked."),
    ))]
async fn logout(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<RefreshBody>,
) -> Result<NoContent, ApiError> {
    sessions::revoke(state.store.as_ref(), &body.refresh_token).await.map_err(session_error)?;
    Ok(NoContent)
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", operation_id = "getMe",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The signed-in user.", body = UserView),
        (status = 401, description = "No valid access token, or its account no longer exists."),
    ))]
async fn me(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Reply<UserView>, ApiError> {
    let user = users::get(state.store.as_ref(), caller.user_id()?)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    Ok(Reply::ok(UserView::from(&user)))
}
