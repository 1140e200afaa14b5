//! The `auth` function: register, login, token refresh, logout, the current
//! user, email verification and password reset and change. Passwords are
//! argon2id (hashed off the async threads); access tokens are short-lived
//! Ed25519 JWTs; refresh tokens rotate on every use and are stored only as
//! hashes, like the single-use tokens of mailed links. Repeated failed logins
//! for one email answer 429 with `Retry-After`. Mail leaves through the jobs
//! queue (`shared::jobs`), never inside a request.

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::accounts::{self, NewAccount, Signed};
use shared::domain::{Email, Password, Role, User, UserId};
use shared::http::{ApiError, Caller, JsonBody, NoContent, Reply, SourceAddress};
use shared::AppState;
use time::OffsetDateTime;
use utoipa::ToSchema;

// The function's routes, `routes()` and `router()` (the template's `Auth`
// events name the same).
shared::function_routes! {
    [register],
    [login],
    [refresh],
    [logout],
    [me],
    [verify_email],
    [resend_verification],
    [request_password_reset],
    [confirm_password_reset],
    [change_password],
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
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// Whether the owner confirmed the address through a mailed link. A
    /// farmer's products show in public only once verified.
    email_verified: bool,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.to_string(),
            display_name: user.display_name.as_str().to_owned(),
            role: user.role,
            created_at: user.created_at,
            email_verified: user.email_verified,
        }
    }
}

/// Tokens handed out by login and refresh.
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
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    refresh_token_expires_at: OffsetDateTime,
}

impl TryFrom<Signed> for AuthSession {
    type Error = ApiError;

    fn try_from(signed: Signed) -> Result<Self, ApiError> {
        let expires_at =
            time::OffsetDateTime::from_unix_timestamp(signed.session.expires_at).map_err(ApiError::internal)?;
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

/// Create an account (customer or farmer), then sign in. The answer is the
/// same whether or not the address has an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", operation_id = "register",
    request_body = NewAccount,
    responses(
        (status = 202, description = "A message to the address is on its way: a verification link for a new account, or, when the address (in any letter case) has an account already, a note to its owner to sign in or reset the password. Same answer, in about the same time, either way, so it tells nobody who has an account. Sign in next with `POST /auth/login`.", body = Accepted),
        (status = 429, description = "Too many sign-ups from this address; retry after `Retry-After` seconds."),
    ))]
async fn register(
    State(state): State<Arc<AppState>>,
    SourceAddress(source): SourceAddress,
    JsonBody { value: new, .. }: JsonBody<NewAccount>,
) -> Result<Reply<Accepted>, ApiError> {
    accounts::register(&state, new, &source).await?;
    let message = "A message to this address is on its way; sign in with your email and password.";
    Ok(Reply::with_status(StatusCode::ACCEPTED, Accepted { message }))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in.", body = AuthSession),
        (status = 401, description = "The email or password is wrong."),
        (status = 403, description = "The password is right but the account is disabled."),
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
        (status = 401, description = "The refresh token is unknown, expired or revoked, or its session ended (password changed or reset, account disabled or erased). One its session had earlier (a replay, or the loser of two refreshes racing with one token) also revokes the session."),
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
        (status = 401, description = "No valid access token, or its account no longer exists or is disabled."),
    ))]
async fn me(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Reply<UserView>, ApiError> {
    let user = accounts::current_user(&state, caller.user_id()?).await?;
    Ok(Reply::ok(UserView::from(&user)))
}

/// A token from a mailed link.
#[derive(Deserialize, ToSchema)]
#[schema(as = LinkTokenRequest)]
struct TokenBody {
    /// The `token` query parameter of the link.
    #[schema(min_length = 1, max_length = 128)]
    token: String,
}

/// A new password with a reset token.
#[derive(Deserialize, ToSchema)]
#[schema(as = PasswordResetConfirmRequest)]
struct ResetConfirmBody {
    /// The `token` query parameter of the reset link.
    #[schema(min_length = 1, max_length = 128)]
    token: String,
    password: Password,
}

/// An email to send a password reset link to.
#[derive(Deserialize, ToSchema)]
#[schema(as = PasswordResetRequest)]
struct ResetBody {
    email: Email,
}

/// The current and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PasswordChangeRequest)]
struct PasswordChangeBody {
    #[schema(schema_with = login_password_schema)]
    current_password: String,
    new_password: Password,
}

/// An accepted request whose outcome arrives by mail.
#[derive(Serialize, ToSchema)]
struct Accepted {
    #[schema(examples("If an account has this address, a link to reset its password is on its way."))]
    message: &'static str,
}

/// Confirm an email address with the token of a verification link.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", operation_id = "verifyEmail",
    request_body = TokenBody,
    responses(
        (status = 200, description = "The address is verified; the user as it is now.", body = UserView),
        (status = 400, description = "The token is not one this service issued for verification (mistyped or tampered)."),
        (status = 410, description = "The token was used already or has expired (links work once, for 48 hours); ask for a new one."),
    ))]
async fn verify_email(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<TokenBody>,
) -> Result<Reply<UserView>, ApiError> {
    let user = accounts::verify_email(&state, &body.token).await?;
    Ok(Reply::ok(UserView::from(&user)))
}

/// Mail the signed-in user a new verification link.
#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "auth", operation_id = "resendVerificationEmail",
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "A new link is on its way (earlier ones keep working until used or expired).", body = Accepted),
        (status = 401, description = "No valid access token, or its account no longer exists or is disabled."),
        (status = 409, description = "The address is already verified."),
        (status = 429, description = "Three links an hour at most; retry after `Retry-After` seconds."),
    ))]
async fn resend_verification(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Reply<Accepted>, ApiError> {
    accounts::resend_verification(&state, &caller.0).await?;
    Ok(Reply::with_status(StatusCode::ACCEPTED, Accepted { message: "A new verification link is on its way." }))
}

/// Ask for a password reset link. The answer is the same whether or not an
/// account has the address.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", operation_id = "requestPasswordReset",
    request_body = ResetBody,
    responses(
        (status = 202, description = "If an account has this address, a link (valid one hour, usable once) is on its way. Same answer, in about the same time, when none has.", body = Accepted),
        (status = 429, description = "Too many resets from this address (10 an hour), for this email from this address (3 an hour), or for this email from all addresses (10 an hour); retry after `Retry-After` seconds."),
    ))]
async fn request_password_reset(
    State(state): State<Arc<AppState>>,
    SourceAddress(source): SourceAddress,
    JsonBody { value: body, .. }: JsonBody<ResetBody>,
) -> Result<Reply<Accepted>, ApiError> {
    accounts::request_password_reset(&state, body.email, &source).await?;
    let message = "If an account has this address, a link to reset its password is on its way.";
    Ok(Reply::with_status(StatusCode::ACCEPTED, Accepted { message }))
}

/// Set a new password with the token of a reset link; every session of the
/// account ends.
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", operation_id = "confirmPasswordReset",
    request_body = ResetConfirmBody,
    responses(
        (status = 204, description = "The password is set; every refresh token of the account stops working. Sign in with the new password."),
        (status = 400, description = "The token is not one this service issued for a reset (mistyped or tampered)."),
        (status = 410, description = "The token was used already or has expired (one hour); ask for a new link."),
    ))]
async fn confirm_password_reset(
    State(state): State<Arc<AppState>>,
    JsonBody { value: body, .. }: JsonBody<ResetConfirmBody>,
) -> Result<NoContent, ApiError> {
    accounts::confirm_password_reset(&state, &body.token, body.password).await?;
    Ok(NoContent)
}

/// Change the signed-in user's password; the other sessions end.
#[utoipa::path(post, path = "/auth/password", tag = "auth", operation_id = "changePassword",
    security(("bearerAuth" = [])),
    request_body = PasswordChangeBody,
    responses(
        (status = 204, description = "Changed. This session carries on; every other refresh token of the account stops working."),
        (status = 401, description = "No valid access token, or its account no longer exists or is disabled."),
        (status = 422, description = "`currentPassword` is wrong, or `newPassword` breaks the password rules."),
        (status = 429, description = "Five password checks per 15 minutes; retry after `Retry-After` seconds."),
    ))]
async fn change_password(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody { value: body, .. }: JsonBody<PasswordChangeBody>,
) -> Result<NoContent, ApiError> {
    accounts::change_password(&state, &caller.0, body.current_password, body.new_password).await?;
    Ok(NoContent)
}
