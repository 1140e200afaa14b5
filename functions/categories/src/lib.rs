//! The `categories` function: public list and read (ETag, shared caching, 304 on
//! `If-None-Match`); admin-only create, update and delete. Slugs are unique; a
//! category that still has products cannot be deleted (409).

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::{Category, CategoryDescription, CategoryId, CategoryName, FieldErrors, Role, Slug};
use shared::http::{json, json_cacheable, no_content, serve, ApiError, Cursor, HttpResponse, RequestCtx, Route};
use shared::repo::categories::{self, CategoryWriteError};
use shared::AppState;
use time::format_description::well_known::Rfc3339;

/// The routes this function serves (mirrored by `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route::new("GET", "/categories"),
    Route::new("POST", "/categories"),
    Route::new("GET", "/categories/{id}"),
    Route::new("PATCH", "/categories/{id}"),
    Route::new("DELETE", "/categories/{id}"),
];

/// Page size bounds of `GET /categories`.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// Cursor scope of the listing.
const LIST_SCOPE: &str = "categories";
/// Attempts of a read-modify-write that lost a version race.
const UPDATE_ATTEMPTS: usize = 3;

pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    serve(req, ROUTES, |ctx| async move {
        match (ctx.method.as_str(), ctx.route) {
            ("GET", "/categories") => list(state, &ctx).await,
            ("POST", "/categories") => create(state, &ctx).await,
            ("GET", _) => read(state, &ctx).await,
            ("PATCH", _) => update(state, &ctx).await,
            _ => delete(state, &ctx).await,
        }
    })
    .await
}

/// A category as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CategoryView {
    id: String,
    name: String,
    slug: String,
    description: Option<String>,
    created_at: String,
    updated_at: String,
    version: i64,
    /// Listed products in the category.
    product_count: i64,
}

impl From<&Category> for CategoryView {
    fn from(c: &Category) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.as_str().to_owned(),
            slug: c.slug.as_str().to_owned(),
            description: c.description.as_ref().map(|d| d.as_str().to_owned()),
            created_at: c.created_at.format(&Rfc3339).unwrap_or_default(),
            updated_at: c.updated_at.format(&Rfc3339).unwrap_or_default(),
            version: c.version,
            product_count: c.product_count,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CategoryList {
    items: Vec<CategoryView>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    slug: Option<String>,
    description: Option<String>,
}

/// `description: null` clears it; an absent field leaves it unchanged.
#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    slug: Option<String>,
    #[serde(default, deserialize_with = "shared::http::explicit")]
    description: Option<Value>,
}

fn write_error(error: CategoryWriteError) -> ApiError {
    match error {
        CategoryWriteError::Store(e) => e.into(),
        other => ApiError::Conflict(other.to_string()),
    }
}

fn parse_limit(ctx: &RequestCtx) -> Result<usize, ApiError> {
    match ctx.query("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::field("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))),
    }
}

async fn list(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let mut query = categories::list_query();
    query.limit = parse_limit(ctx)?;
    if let Some(cursor) = ctx.query("cursor") {
        query.start_after = Some(Cursor::decode(LIST_SCOPE, &query, cursor)?);
    }
    let (found, page) = categories::list(state.store.as_ref(), &query).await?;
    let body = CategoryList {
        items: found.iter().map(CategoryView::from).collect(),
        next_cursor: page.last.as_ref().map(|last| Cursor::encode(LIST_SCOPE, &query, last)),
    };
    json_cacheable(ctx, &body)
}

async fn load(state: &AppState, ctx: &RequestCtx) -> Result<Category, ApiError> {
    let not_found = || ApiError::NotFound(format!("no category with id {:?}", ctx.param("id")));
    let id = CategoryId::parse(ctx.param("id")).ok_or_else(not_found)?;
    categories::get(state.store.as_ref(), id).await?.ok_or_else(not_found)
}

async fn read(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let category = load(state, ctx).await?;
    json_cacheable(ctx, &CategoryView::from(&category))
}

async fn create(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    ctx.require_role(&state.tokens, &[Role::Admin])?;
    let body: CreateBody = ctx.json()?;
    let mut errors = FieldErrors::new();
    let name = errors.check("name", CategoryName::parse(&body.name));
    let slug = match (&body.slug, &name) {
        (Some(raw), _) => errors.check("slug", Slug::parse(raw)),
        (None, Some(name)) => errors.check("slug", Slug::from_name(name)),
        (None, None) => None,
    };
    let description = errors.check_opt("description", body.description.as_deref(), CategoryDescription::parse);
    let (Some(name), Some(slug), Some(description)) = (name, slug, description) else {
        return Err(ApiError::Validation(errors.into_vec()));
    };
    let now = state.clock.now();
    let category = Category {
        id: CategoryId::new(),
        name,
        slug,
        description,
        created_at: now,
        updated_at: now,
        version: 1,
        product_count: 0,
    };
    categories::create(state.store.as_ref(), &category).await.map_err(write_error)?;
    tracing::info!(category_id = %category.id, "category created");
    let mut response = json(StatusCode::CREATED, &CategoryView::from(&category))?;
    let location = HeaderValue::from_str(&format!("/categories/{}", category.id)).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// Applies a validated patch to the current category.
struct Patch {
    name: Option<CategoryName>,
    slug: Option<Slug>,
    description: Option<Option<CategoryDescription>>,
}

fn parse_patch(body: UpdateBody) -> Result<Patch, ApiError> {
    let mut errors = FieldErrors::new();
    let name = errors.check_opt("name", body.name.as_deref(), CategoryName::parse);
    let slug = errors.check_opt("slug", body.slug.as_deref(), Slug::parse);
    let description = match body.description {
        None => Some(None),
        Some(Value::Null) => Some(Some(None)),
        Some(Value::String(text)) => {
            errors.check("description", CategoryDescription::parse(&text)).map(|d| Some(Some(d)))
        }
        Some(_) => {
            errors.check::<Option<Option<CategoryDescription>>>("description", Err("must be a string or null".into()))
        }
    };
    match (name, slug, description) {
        (Some(name), Some(slug), Some(description)) if errors.is_empty() => Ok(Patch { name, slug, description }),
        _ => Err(ApiError::Validation(errors.into_vec())),
    }
}

async fn update(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    ctx.require_role(&state.tokens, &[Role::Admin])?;
    let patch = parse_patch(ctx.json()?)?;
    for _ in 0..UPDATE_ATTEMPTS {
        let current = load(state, ctx).await?;
        let mut next = current.clone();
        if let Some(name) = &patch.name {
            next.name = name.clone();
        }
        if let Some(slug) = &patch.slug {
            next.slug = slug.clone();
        }
        if let Some(description) = &patch.description {
            next.description = description.clone();
        }
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match categories::update(state.store.as_ref(), &current, &next).await {
            Ok(()) => return json(StatusCode::OK, &CategoryView::from(&next)),
            Err(CategoryWriteError::Changed) => continue,
            Err(other) => return Err(write_error(other)),
        }
    }
    Err(ApiError::Conflict("the category is being changed concurrently; try again".into()))
}

async fn delete(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    ctx.require_role(&state.tokens, &[Role::Admin])?;
    for _ in 0..UPDATE_ATTEMPTS {
        let category = load(state, ctx).await?;
        match categories::delete(state.store.as_ref(), &category).await {
            Ok(()) => {
                tracing::info!(category_id = %category.id, "category deleted");
                return no_content();
            }
            // Changed meanwhile (a product listed or unlisted, a rename): look again.
            Err(CategoryWriteError::Changed) => continue,
            Err(other) => return Err(write_error(other)),
        }
    }
    Err(ApiError::Conflict("the category is being changed concurrently; try again".into()))
}
