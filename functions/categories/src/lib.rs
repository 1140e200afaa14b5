//! The `categories` function: public list and read (ETag, shared caching, 304 on
//! `If-None-Match`); admin-only create, update and delete. Slugs are unique; a
//! category that still has products cannot be deleted (409).

use std::sync::Arc;

use axum::extract::State;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use shared::catalogue::{self, CategoryChanges, NewCategory};
use shared::domain::{Category, CategoryId};
use shared::http::{
    paginate, Admins, ApiError, Authorized, IfNoneMatch, JsonBody, Listed, NoContent, Page, PageParams, PathParams,
    Query, Reply,
};
use shared::AppState;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Cursor scope of the listing.
const LIST_SCOPE: &str = "categories";

// The function's routes, `routes()` and `router()` (the template's `Categories`
// events name the same).
shared::function_routes! {
    [list, create],
    [read, update, delete],
}

/// A product category.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Category)]
struct CategoryView {
    id: CategoryId,
    #[schema(examples("Leafy Greens"))]
    name: String,
    #[schema(examples("leafy-greens"))]
    slug: String,
    description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
    /// Bumped by every change.
    #[schema(minimum = 1)]
    version: i64,
    /// Listed products in the category.
    #[schema(minimum = 0)]
    product_count: i64,
}

impl From<&Category> for CategoryView {
    fn from(c: &Category) -> Self {
        Self {
            id: c.id,
            name: c.name.as_str().to_owned(),
            slug: c.slug.as_str().to_owned(),
            description: c.description.as_ref().map(|d| d.as_str().to_owned()),
            created_at: c.created_at,
            updated_at: c.updated_at,
            version: c.version,
            product_count: c.product_count,
        }
    }
}

impl Listed for CategoryView {
    const PAGE_NAME: &'static str = "CategoryList";
    const PAGE_DESCRIPTION: &'static str = "A page of categories, by name.";
}

/// A page of categories, by name.
type CategoryList = Page<CategoryView>;

/// The category id in the path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct CategoryPath {
    /// The category's id (a ULID); anything else answers 404.
    id: String,
}

/// List categories, by name.
#[utoipa::path(get, path = "/categories", tag = "categories", operation_id = "listCategories",
    params(PageParams, IfNoneMatch),
    responses(
        (status = 200, description = "A page of categories.", body = CategoryList),
        (status = 400, description = "The cursor is invalid or belongs to another query."),
    ))]
async fn list(
    State(state): State<Arc<AppState>>,
    Query(page): Query<PageParams>,
    headers: HeaderMap,
) -> Result<Reply<CategoryList>, ApiError> {
    let query = catalogue::categories_query(page.limit());
    let found = paginate(&state, LIST_SCOPE, query, &page, |query| catalogue::list_categories(&state, query)).await?;
    Ok(Reply::public(found.map(|category| CategoryView::from(&category)), &headers))
}

/// Read one category.
#[utoipa::path(get, path = "/categories/{id}", tag = "categories", operation_id = "getCategory",
    params(CategoryPath, IfNoneMatch),
    responses(
        (status = 200, description = "The category.", body = CategoryView),
        (status = 404, description = "No such category."),
    ))]
async fn read(
    State(state): State<Arc<AppState>>,
    PathParams(path): PathParams<CategoryPath>,
    headers: HeaderMap,
) -> Result<Reply<CategoryView>, ApiError> {
    let category = catalogue::category(&state, &path.id).await?;
    Ok(Reply::public(CategoryView::from(&category), &headers))
}

/// Create a category (admins).
#[utoipa::path(post, path = "/categories", tag = "categories", operation_id = "createCategory",
    security(("bearerAuth" = [])),
    request_body = NewCategory,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = CategoryView,
            headers(("Location" = String, description = "The category's URL path."))),
        (status = 403, description = "Only admins create categories."),
        (status = 409, description = "Another category has this slug."),
    ))]
async fn create(
    State(state): State<Arc<AppState>>,
    _admin: Authorized<Admins>,
    JsonBody { value: new, .. }: JsonBody<NewCategory>,
) -> Result<Reply<CategoryView>, ApiError> {
    let category = catalogue::create_category(&state, new).await?;
    Ok(Reply::created(CategoryView::from(&category), format!("/categories/{}", category.id)))
}

/// Change a category (admins).
#[utoipa::path(patch, path = "/categories/{id}", tag = "categories", operation_id = "updateCategory",
    security(("bearerAuth" = [])),
    params(CategoryPath),
    request_body = CategoryChanges,
    responses(
        (status = 200, description = "The updated category.", body = CategoryView),
        (status = 403, description = "Only admins change categories."),
        (status = 404, description = "No such category."),
        (status = 409, description = "Another category has this slug, or the category kept changing concurrently."),
    ))]
async fn update(
    State(state): State<Arc<AppState>>,
    _admin: Authorized<Admins>,
    PathParams(path): PathParams<CategoryPath>,
    JsonBody { value: changes, .. }: JsonBody<CategoryChanges>,
) -> Result<Reply<CategoryView>, ApiError> {
    let category = catalogue::update_category(&state, &path.id, changes).await?;
    Ok(Reply::ok(CategoryView::from(&category)))
}

/// Delete a category that lists no products (admins).
#[utoipa::path(delete, path = "/categories/{id}", tag = "categories", operation_id = "deleteCategory",
    security(("bearerAuth" = [])),
    params(CategoryPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "Only admins delete categories."),
        (status = 404, description = "No such category."),
        (status = 409, description = "The category still lists products, or kept changing concurrently."),
    ))]
async fn delete(
    State(state): State<Arc<AppState>>,
    _admin: Authorized<Admins>,
    PathParams(path): PathParams<CategoryPath>,
) -> Result<NoContent, ApiError> {
    catalogue::delete_category(&state, &path.id).await?;
    Ok(NoContent)
}
