//! The `auth` function: register, login, token refresh, logout and the current
//! user. Passwords are argon2id (hashed off the async threads); access tokens are
//! short-lived Ed25519 JWTs; refresh tokens rotate on every use and are stored only
//! as hashes. Repeated failed logins for one email answer 429 with `Retry-After`.

use http::{header, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::domain::{DisplayName, Email, FieldErrors, Password, PasswordHash, Role, User, UserId};
use shared::http::{json, no_content, serve, ApiError, HttpResponse, RequestCtx, Route};
use shared::repo::sessions::{self, Session, SessionError};
use shared::repo::users::{self, CreateUserError};
use shared::tokens::{Claims, AUDIENCE, ISSUER};
use shared::AppState;
use time::format_description::well_known::Rfc3339;

/// The routes this function serves (mirrored by `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route::new("POST", "/auth/register"),
    Route::new("POST", "/auth/login"),
    Route::new("POST", "/auth/refresh"),
    Route::new("POST", "/auth/logout"),
    Route::new("GET", "/auth/me"),
];

pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    serve(req, ROUTES, |ctx| async move {
        match ctx.route {
            "/auth/register" => register(state, &ctx).await,
            "/auth/login" => login(state, &ctx).await,
            "/auth/refresh" => refresh(state, &ctx).await,
            "/auth/logout" => logout(state, &ctx).await,
            _ => me(state, &ctx).await,
        }
    })
    .await
}

/// Roles a person may choose when registering (never `admin`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SelfServiceRole {
    Customer,
    Farmer,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    email: String,
    password: String,
    display_name: String,
    role: SelfServiceRole,
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

/// A user as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView {
    id: String,
    email: String,
    display_name: String,
    role: Role,
    created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            display_name: user.display_name.as_str().to_owned(),
            role: user.role,
            created_at: user.created_at.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// Tokens handed out by register, login and refresh.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthSession {
    user: UserView,
    access_token: String,
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    refresh_token: String,
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

async fn register(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let body: RegisterBody = ctx.json()?;
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(&body.email));
    let password = errors.check("password", Password::parse(body.password));
    let display_name = errors.check("displayName", DisplayName::parse(&body.display_name));
    let (Some(email), Some(password), Some(display_name)) = (email, password, display_name) else {
        return Err(ApiError::Validation(errors.into_vec()));
    };
    let password_hash = tokio::task::spawn_blocking(move || PasswordHash::create(&password)).await?;
    let user = User {
        id: UserId::new(),
        email,
        display_name,
        role: match body.role {
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
        sessions::create(state.store.as_ref(), user.id, user.role, refresh_ttl(state), state.clock.now()).await?;
    let mut response = json(StatusCode::CREATED, &issue(state, &user, session)?)?;
    response.headers_mut().insert(header::LOCATION, header::HeaderValue::from_static("/auth/me"));
    Ok(response)
}

/// A hash that never matches, verified when the email is unknown so that unknown
/// and known emails take the same time to answer.
fn decoy_hash() -> &'static PasswordHash {
    static DECOY: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        PasswordHash::create(&Password::for_login("decoy password never used".into()).expect("short enough"))
    })
}

async fn login(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let body: LoginBody = ctx.json()?;
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(&body.email));
    let password = errors.check("password", Password::for_login(body.password));
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Validation(errors.into_vec()));
    };
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
    let session = sessions::create(store, user.id, user.role, refresh_ttl(state), state.clock.now()).await?;
    tracing::info!(user_id = %user.id, "logged in");
    json(StatusCode::OK, &issue(state, &user, session)?)
}

fn session_error(error: SessionError) -> ApiError {
    match error {
        SessionError::Store(e) => e.into(),
        other => ApiError::Unauthorized(other.to_string()),
    }
}

async fn refresh(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let body: RefreshBody = ctx.json()?;
    let store = state.store.as_ref();
    let session = sessions::rotate(store, &body.refresh_token, refresh_ttl(state), state.clock.now())
        .await
        .map_err(session_error)?;
    let user = users::get(store, session.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    json(StatusCode::OK, &issue(state, &user, session)?)
}

async fn logout(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let body: RefreshBody = ctx.json()?;
    sessions::revoke(state.store.as_ref(), &body.refresh_token).await.map_err(session_error)?;
    no_content()
}

async fn me(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let claims = ctx.authenticate(&state.tokens)?;
    let id = claims.user_id().ok_or_else(|| ApiError::Unauthorized("the access token names no user".into()))?;
    let user = users::get(state.store.as_ref(), id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    json(StatusCode::OK, &UserView::from(&user))
}
