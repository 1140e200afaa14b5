//! The `auth` function: register, login, token refresh, logout and the current
//! user. Passwords are argon2id (hashed off the async threads); access tokens are
//! short-lived Ed25519 JWTs; refresh tokens rotate on every use and are stored only
//! as hashes. Repeated failed logins for one email answer 429 with `Retry-After`.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::accounts::{self, NewAccount, Signed};
use shared::domain::{Email, Password, Role, User, UserId};
use shared::http::{ApiError, Caller, JsonBody, NoContent, Reply, Routes, SourceAddress};
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

impl TryFrom<Signed> for AuthSession {
    type Error = ApiError;

    fn try_from(signed: Signed) -> Result<Self, ApiError> {
        let expires_at = time::OffsetDateTime::from_unix_timestamp(signed.session.expires_at)
            .map_err(ApiError::internal)?
            .format(&Rfc3339)
            .map_err(ApiError::internal)?;
        Ok(AuthSession {
            user: UserView::from(&signed.user),
            access_token: signed.access_token,
            token_type: "Bearer",
            expires_in: signed.access_ttl_secs,
            refresh_token: signed.session.refresh_token,
            refresh_token_expires_at: expires_at,
        })
    }
}

/// Create an account (customer or farmer) and sign in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", operation_id = "register",
    request_body = NewAccount,
    responses(
        (status = 201, description = "Registered and signed in.", body = AuthSession,
            headers(("Location" = String, description = "`/auth/me`"))),
        (status = 409, description = "An account with this email (in any letter case) exists."),
        (status = 429, description = "Too many sign-ups from this address; retry after `Retry-After` seconds."),
    ))]
async fn register(
    State(state): State<Arc<AppState>>,
    SourceAddress(source): SourceAddress,
    JsonBody { value: new, .. }: JsonBody<NewAccount>,
) -> Result<Reply<AuthSession>, ApiError> {
    let signed = accounts::register(&state, new, &source).await?;
    Ok(Reply::created(signed.try_into()?, "/auth/me".into()))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in.", body = AuthSession),
        (status = 401, description = "The email or password is wrong."),
        (status = 429, description = "Too many logins from this address, or for this email from this address; retry after `Retry-After` seconds."),
    ))]
async fn login(
    State(state): State<Arc<AppState>>,
    SourceAddress(source): SourceAddress,
    JsonBody { value: body, .. }: JsonBody<LoginBody>,
) -> Result<Reply<AuthSession>, ApiError> {
    let signed = accounts::login(&state, body.email, body.password, &source).await?;
    Ok(Reply::ok(signed.try_into()?))
}

/// Exchange a refresh token for new tokens (the refresh token rotates).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is now used up.", body = AuthSession),
        (status = 401, description = "The refresh token is unknown, expired or revoked. One its session had earlier (a replay, or the loser of two refreshes racing with one token) also revokes the session."),
    ))]
async fn refresh(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<RefreshBody>,
) -> Result<Reply<AuthSession>, ApiError> {
    let signed = accounts::refresh(&state, &body.refresh_token).await?;
    Ok(Reply::ok(signed.try_into()?))
}

/// Sign out: revoke the session of a refresh token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "logout",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "The session is revoked (any refresh token it ever had works)."),
        (status = 401, description = "The refresh token is not one its session ever had."),
    ))]
async fn logout(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<RefreshBody>,
) -> Result<NoContent, ApiError> {
    accounts::logout(&state, &body.refresh_token).await?;
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
    let user = accounts::current_user(&state, caller.user_id()?).await?;
    Ok(Reply::ok(UserView::from(&user)))
}
