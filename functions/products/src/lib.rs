//! The `products` function: public browse (filters, sorts, cursor pages) and read
//! with ETags and shared caching; farmers create (with an optional
//! `Idempotency-Key`), update (optimistic concurrency through `If-Match`) and
//! unlist their products, and ask for presigned image
//! upload tickets. The `worker` function checks uploaded images and attaches them.

use std::time::Duration;

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::{
    format_date, parse_harvest_date, search_words, CategoryId, ImageFormat, ImageId, ListingStatus, Price, Product,
    ProductDescription, ProductId, ProductName, Role, Stock, Unit, UserId, MAX_IMAGES_PER_PRODUCT,
};
use shared::http::{
    json, json_cacheable, json_cacheable_tagged, no_content, serve, ApiError, Cursor, HttpResponse, RequestCtx, Route,
};
use shared::repo::idempotency::{self, IdempotencyKey};
use shared::repo::products::{self, Browse, ProductWriteError, Sort, UploadTicket};
use shared::tokens::Claims;
use shared::AppState;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The routes this function serves (mirrored by `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route::new("GET", "/products"),
    Route::new("POST", "/products"),
    Route::new("GET", "/products/{id}"),
    Route::new("PATCH", "/products/{id}"),
    Route::new("DELETE", "/products/{id}"),
    Route::new("POST", "/products/{id}/images"),
    Route::new("DELETE", "/products/{id}/images/{imageId}"),
];

/// Page size bounds of `GET /products`.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// Index entries one browse request may evaluate when filters apply after the
/// lookup; past it the page comes back short, with a cursor.
const BROWSE_BUDGET: usize = 500;
/// Longest search text.
const MAX_QUERY_CHARS: usize = 100;
/// Attempts of a read-modify-write without `If-Match` that lost a version race.
const UPDATE_ATTEMPTS: usize = 3;
/// How long an upload URL stays valid.
const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long the ticket record outlives the URL: as long as incoming objects live.
const TICKET_RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    serve(req, ROUTES, |ctx| async move {
        match (ctx.method.as_str(), ctx.route) {
            ("GET", "/products") => list(state, &ctx).await,
            ("POST", "/products") => create(state, &ctx).await,
            ("GET", _) => read(state, &ctx).await,
            ("PATCH", _) => update(state, &ctx).await,
            ("DELETE", "/products/{id}") => unlist(state, &ctx).await,
            ("POST", _) => create_image_upload(state, &ctx).await,
            _ => delete_image(state, &ctx).await,
        }
    })
    .await
}

/// A product image as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageView {
    id: String,
    url: String,
    thumbnail_url: String,
    width: u32,
    height: u32,
    content_type: String,
}

/// A product as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProductView {
    id: String,
    farmer_id: String,
    category_id: String,
    name: String,
    description: String,
    /// Integer minor units (cents).
    price: i64,
    unit: &'static str,
    stock: i64,
    in_stock: bool,
    harvest_date: Option<String>,
    images: Vec<ImageView>,
    created_at: String,
    updated_at: String,
    version: i64,
}

fn view(state: &AppState, p: &Product) -> ProductView {
    let base = state.assets_base_url.as_deref().unwrap_or_default();
    ProductView {
        id: p.id.to_string(),
        farmer_id: p.farmer_id.to_string(),
        category_id: p.category_id.to_string(),
        name: p.name.as_str().to_owned(),
        description: p.description.as_str().to_owned(),
        price: p.price.minor_units(),
        unit: p.unit.as_str(),
        stock: p.stock.count(),
        in_stock: p.stock.count() > 0,
        harvest_date: p.harvest_date.map(format_date),
        images: p
            .images
            .iter()
            .map(|image| ImageView {
                id: image.id.to_string(),
                url: format!("{base}/{}", image.key),
                thumbnail_url: format!("{base}/{}", image.thumbnail_key),
                width: image.width,
                height: image.height,
                content_type: image.content_type.clone(),
            })
            .collect(),
        created_at: p.created_at.format(&Rfc3339).unwrap_or_default(),
        updated_at: p.updated_at.format(&Rfc3339).unwrap_or_default(),
        version: p.version,
    }
}

/// The product's ETag: its version, quoted.
fn etag(product: &Product) -> String {
    format!("\"{}\"", product.version)
}

/// A private JSON response carrying the product's ETag.
fn product_response(state: &AppState, status: StatusCode, product: &Product) -> HttpResponse {
    let mut response = json(status, &view(state, product))?;
    response.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag(product)).map_err(ApiError::internal)?);
    Ok(response)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProductList {
    items: Vec<ProductView>,
    next_cursor: Option<String>,
}

fn write_error(error: ProductWriteError) -> ApiError {
    match error {
        ProductWriteError::NoSuchCategory => ApiError::field("categoryId", "no such category"),
        ProductWriteError::Changed => {
            ApiError::PreconditionFailed("the product was changed by someone else; read it again".into())
        }
        ProductWriteError::CategoryBusy => ApiError::Conflict(error.to_string()),
        ProductWriteError::ExtraConditionFailed => ApiError::internal(error),
        ProductWriteError::Store(e) => e.into(),
    }
}

/// Parses the browse query string, naming every bad parameter.
fn parse_browse(ctx: &RequestCtx) -> Result<(Browse, usize), ApiError> {
    let mut errors = shared::domain::FieldErrors::new();
    let id_param = |errors: &mut shared::domain::FieldErrors, name: &str| {
        errors
            .check_opt(name, ctx.query(name), |raw| {
                ulid::Ulid::from_string(raw).map_err(|_| "must be an id (ULID)".to_owned())
            })
            .flatten()
    };
    let category = id_param(&mut errors, "category").map(CategoryId);
    let farmer = id_param(&mut errors, "farmer").map(UserId);
    let in_stock = errors
        .check_opt("inStock", ctx.query("inStock"), |raw| match raw {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("must be true or false".to_owned()),
        })
        .flatten();
    let price_param = |errors: &mut shared::domain::FieldErrors, name: &str| {
        errors
            .check_opt(name, ctx.query(name), |raw| {
                raw.parse::<i64>()
                    .ok()
                    .filter(|n| (0..=Price::MAX).contains(n))
                    .ok_or_else(|| format!("must be an integer number of minor units from 0 to {}", Price::MAX))
            })
            .flatten()
    };
    let min_price = price_param(&mut errors, "minPrice");
    let max_price = price_param(&mut errors, "maxPrice");
    if let (Some(min), Some(max)) = (min_price, max_price) {
        if min > max {
            errors.check::<()>("maxPrice", Err("must not be below minPrice".into()));
        }
    }
    let sort = errors
        .check_opt("sort", ctx.query("sort"), |raw| {
            Sort::parse(raw).ok_or_else(|| "must be one of newest, price_asc, price_desc".to_owned())
        })
        .flatten()
        .unwrap_or(Sort::Newest);
    let words = errors
        .check_opt("q", ctx.query("q"), |raw| {
            if raw.chars().count() > MAX_QUERY_CHARS {
                Err(format!("must be at most {MAX_QUERY_CHARS} characters"))
            } else {
                Ok(search_words(raw))
            }
        })
        .flatten()
        .unwrap_or_default();
    let limit = errors
        .check_opt("limit", ctx.query("limit"), |raw| {
            raw.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| format!("must be an integer from 1 to {MAX_LIMIT}"))
        })
        .flatten()
        .unwrap_or(DEFAULT_LIMIT);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors.into_vec()));
    }
    Ok((Browse { category, farmer, in_stock, min_price, max_price, sort, words }, limit))
}

async fn list(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let (browse, limit) = parse_browse(ctx)?;
    let scope = browse.scope();
    let mut query = browse.query();
    if let Some(cursor) = ctx.query("cursor") {
        query.start_after = Some(Cursor::decode(&scope, &query, cursor)?);
    }
    let fingerprint_query = query.clone();
    let page = products::browse(state.store.as_ref(), &browse, query, limit, BROWSE_BUDGET).await?;
    let body = ProductList {
        items: page.products.iter().map(|p| view(state, p)).collect(),
        next_cursor: page.resume_after.as_ref().map(|last| Cursor::encode(&scope, &fingerprint_query, last)),
    };
    json_cacheable(ctx, &body)
}

/// The product named by the path, if it is listed (unlisted ones are gone for
/// everyone but their stored orders).
async fn load(state: &AppState, ctx: &RequestCtx) -> Result<Product, ApiError> {
    let not_found = || ApiError::NotFound(format!("no product with id {:?}", ctx.param("id")));
    let id = ProductId::parse(ctx.param("id")).ok_or_else(not_found)?;
    products::get(state.store.as_ref(), id).await?.filter(Product::is_listed).ok_or_else(not_found)
}

async fn read(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let product = load(state, ctx).await?;
    json_cacheable_tagged(ctx, &view(state, &product), &etag(&product))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    category_id: String,
    price: i64,
    unit: String,
    stock: i64,
    #[serde(default)]
    harvest_date: Option<String>,
}

fn parse_category_id(raw: &str) -> Result<CategoryId, String> {
    CategoryId::parse(raw).ok_or_else(|| "no such category".to_owned())
}

/// The `Idempotency-Key` header, if sent: 400 when malformed.
fn idempotency_key(ctx: &RequestCtx) -> Result<Option<IdempotencyKey>, ApiError> {
    match ctx.headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let raw = value.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".into()))?;
            IdempotencyKey::parse(raw).map(Some).map_err(|e| ApiError::BadRequest(format!("Idempotency-Key {e}")))
        }
    }
}

/// The answer to a repeated create: the product the first request made (201, as
/// then, marked `Idempotent-Replayed`), or 422 when the key came with another body.
async fn replay(state: &AppState, ctx: &RequestCtx, record: &idempotency::Record) -> HttpResponse {
    if record.fingerprint != idempotency::fingerprint(&ctx.body) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "this key was already used for a different request body; use a new key for a new product",
        ));
    }
    let id = ProductId::parse(&record.resource_id).ok_or_else(|| ApiError::internal("bad idempotency record"))?;
    let product = products::get(state.store.as_ref(), id).await?.ok_or_else(|| {
        ApiError::Conflict("the product this key created is gone; use a new key for a new product".into())
    })?;
    let mut response = created(state, &product)?;
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// 201 with the product, its `Location` and `ETag`.
fn created(state: &AppState, product: &Product) -> HttpResponse {
    let mut response = product_response(state, StatusCode::CREATED, product)?;
    let location = HeaderValue::from_str(&format!("/products/{}", product.id)).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

async fn create(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let claims = ctx.require_role(&state.tokens, &[Role::Farmer])?;
    let farmer_id = UserId::parse(&claims.sub).ok_or_else(|| ApiError::Unauthorized("bad token subject".into()))?;
    let idempotency_key = idempotency_key(ctx)?;
    let scope = format!("products.create#{farmer_id}");
    if let Some(key) = &idempotency_key {
        if let Some(record) = idempotency::recall(state.store.as_ref(), &scope, key).await? {
            return replay(state, ctx, &record).await;
        }
    }
    let body: CreateBody = ctx.json()?;
    let now = state.clock.now();
    let mut errors = shared::domain::FieldErrors::new();
    let name = errors.check("name", ProductName::parse(&body.name));
    let description = errors
        .check_opt("description", body.description.as_deref(), ProductDescription::parse)
        .map(Option::unwrap_or_default);
    let category_id = errors.check("categoryId", parse_category_id(&body.category_id));
    let price = errors.check("price", Price::parse(body.price));
    let unit = errors.check("unit", Unit::parse(&body.unit));
    let stock = errors.check("stock", Stock::parse(body.stock));
    let harvest_date =
        errors.check_opt("harvestDate", body.harvest_date.as_deref(), |raw| parse_harvest_date(raw, now.date()));
    let (Some(name), Some(description), Some(category_id), Some(price), Some(unit), Some(stock), Some(harvest_date)) =
        (name, description, category_id, price, unit, stock, harvest_date)
    else {
        return Err(ApiError::Validation(errors.into_vec()));
    };
    let product = Product {
        id: ProductId::new(),
        farmer_id,
        category_id,
        name,
        description,
        price,
        unit,
        stock,
        harvest_date,
        images: Vec::new(),
        status: ListingStatus::Listed,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let remember = idempotency_key.as_ref().map(|key| {
        let record = idempotency::Record {
            fingerprint: idempotency::fingerprint(&ctx.body),
            resource_id: product.id.to_string(),
        };
        (key, record)
    });
    let extra =
        remember.iter().map(|(key, record)| idempotency::remember(&scope, key, record, now.unix_timestamp())).collect();
    match products::create(state.store.as_ref(), &product, extra).await {
        Ok(()) => {}
        // The same key won a race a moment ago: answer as it did.
        Err(ProductWriteError::ExtraConditionFailed) => {
            let (key, _) = remember.as_ref().ok_or_else(|| ApiError::internal("extra write without a key"))?;
            let record = idempotency::recall(state.store.as_ref(), &scope, key)
                .await?
                .ok_or_else(|| ApiError::internal("idempotency record vanished"))?;
            return replay(state, ctx, &record).await;
        }
        Err(other) => return Err(write_error(other)),
    }
    tracing::info!(product_id = %product.id, "product created");
    created(state, &product)
}

/// 403 unless the caller owns the product (or, where `admin_may`, is an admin).
fn require_owner(claims: &Claims, product: &Product, admin_may: bool) -> Result<(), ApiError> {
    let owner = claims.role == Role::Farmer && claims.sub == product.farmer_id.to_string();
    if owner || (admin_may && claims.role == Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("this product belongs to another farmer".into()))
    }
}

/// `description: null` and `harvestDate: null` clear them; absent fields stay.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "shared::http::explicit")]
    description: Option<Value>,
    category_id: Option<String>,
    price: Option<i64>,
    unit: Option<String>,
    stock: Option<i64>,
    #[serde(default, deserialize_with = "shared::http::explicit")]
    harvest_date: Option<Value>,
}

/// A validated patch.
struct Patch {
    name: Option<ProductName>,
    description: Option<ProductDescription>,
    category_id: Option<CategoryId>,
    price: Option<Price>,
    unit: Option<Unit>,
    stock: Option<Stock>,
    harvest_date: Option<Option<time::Date>>,
}

/// A JSON string-or-null field: `Some(None)` for null.
fn nullable_text(value: Option<Value>) -> Result<Option<Option<String>>, String> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) => Ok(Some(Some(text))),
        Some(_) => Err("must be a string or null".into()),
    }
}

fn parse_patch(body: UpdateBody, today: time::Date) -> Result<Patch, ApiError> {
    let mut errors = shared::domain::FieldErrors::new();
    let name = errors.check_opt("name", body.name.as_deref(), ProductName::parse);
    let description = errors
        .check("description", nullable_text(body.description))
        .map(|text| text.map(|t| ProductDescription::parse(t.as_deref().unwrap_or_default())).transpose());
    let description = match description {
        Some(parsed) => errors.check("description", parsed),
        None => None,
    };
    let category_id = errors.check_opt("categoryId", body.category_id.as_deref(), parse_category_id);
    let price = errors.check_opt("price", body.price, Price::parse);
    let unit = errors.check_opt("unit", body.unit.as_deref(), Unit::parse);
    let stock = errors.check_opt("stock", body.stock, Stock::parse);
    let harvest_date = match errors.check("harvestDate", nullable_text(body.harvest_date)) {
        Some(None) => Some(None),
        Some(Some(None)) => Some(Some(None)),
        Some(Some(Some(raw))) => errors.check("harvestDate", parse_harvest_date(&raw, today)).map(|d| Some(Some(d))),
        None => None,
    };
    match (name, description, category_id, price, unit, stock, harvest_date) {
        (
            Some(name),
            Some(description),
            Some(category_id),
            Some(price),
            Some(unit),
            Some(stock),
            Some(harvest_date),
        ) if errors.is_empty() => Ok(Patch { name, description, category_id, price, unit, stock, harvest_date }),
        _ => Err(ApiError::Validation(errors.into_vec())),
    }
}

impl Patch {
    fn apply(&self, current: &Product, now: OffsetDateTime) -> Product {
        let mut next = current.clone();
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        if let Some(description) = &self.description {
            next.description = description.clone();
        }
        if let Some(category_id) = self.category_id {
            next.category_id = category_id;
        }
        if let Some(price) = self.price {
            next.price = price;
        }
        if let Some(unit) = self.unit {
            next.unit = unit;
        }
        if let Some(stock) = self.stock {
            next.stock = stock;
        }
        if let Some(harvest_date) = self.harvest_date {
            next.harvest_date = harvest_date;
        }
        next.updated_at = now;
        next.version = current.version + 1;
        next
    }
}

async fn update(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let claims = ctx.authenticate(&state.tokens)?;
    let patch = parse_patch(ctx.json()?, state.clock.now().date())?;
    let if_match = ctx.header(header::IF_MATCH).map(str::to_owned);
    for _ in 0..UPDATE_ATTEMPTS {
        let current = load(state, ctx).await?;
        require_owner(&claims, &current, true)?;
        if let Some(wanted) = &if_match {
            let current_tag = etag(&current);
            if !wanted.split(',').map(str::trim).any(|tag| tag == "*" || tag == current_tag) {
                return Err(ApiError::PreconditionFailed(format!(
                    "If-Match {wanted} does not match the current version {current_tag}; nothing was changed"
                )));
            }
        }
        let next = patch.apply(&current, state.clock.now());
        match products::save(state.store.as_ref(), Some(&current), &next).await {
            Ok(()) => return product_response(state, StatusCode::OK, &next),
            // Without If-Match the caller asked for "apply to whatever is current".
            Err(ProductWriteError::Changed) if if_match.is_none() => continue,
            Err(other) => return Err(write_error(other)),
        }
    }
    Err(ApiError::Conflict("the product is being changed concurrently; try again".into()))
}

async fn unlist(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let claims = ctx.authenticate(&state.tokens)?;
    let not_found = || ApiError::NotFound(format!("no product with id {:?}", ctx.param("id")));
    let id = ProductId::parse(ctx.param("id")).ok_or_else(not_found)?;
    for _ in 0..UPDATE_ATTEMPTS {
        let current = products::get(state.store.as_ref(), id).await?.ok_or_else(not_found)?;
        require_owner(&claims, &current, true)?;
        if !current.is_listed() {
            return no_content();
        }
        let mut next = current.clone();
        next.status = ListingStatus::Unlisted;
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match products::save(state.store.as_ref(), Some(&current), &next).await {
            Ok(()) => {
                tracing::info!(product_id = %id, "product unlisted");
                return no_content();
            }
            Err(ProductWriteError::Changed) => continue,
            Err(other) => return Err(write_error(other)),
        }
    }
    Err(ApiError::Conflict("the product is being changed concurrently; try again".into()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadBody {
    content_type: String,
    size: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketView {
    image_id: String,
    upload_url: String,
    method: &'static str,
    headers: serde_json::Map<String, Value>,
    expires_at: String,
    max_bytes: u64,
}

async fn create_image_upload(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let claims = ctx.require_role(&state.tokens, &[Role::Farmer])?;
    let body: UploadBody = ctx.json()?;
    let format = ImageFormat::from_content_type(&body.content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "images must be image/jpeg, image/png or image/webp, not {:?}",
            body.content_type
        ))
    })?;
    let size =
        u64::try_from(body.size).ok().filter(|s| *s > 0).ok_or_else(|| ApiError::field("size", "must be > 0"))?;
    if size > ImageFormat::MAX_BYTES {
        return Err(ApiError::PayloadTooLarge { limit: ImageFormat::MAX_BYTES as usize });
    }
    let product = load(state, ctx).await?;
    require_owner(&claims, &product, false)?;
    if product.images.len() >= MAX_IMAGES_PER_PRODUCT {
        return Err(ApiError::Conflict(format!("a product has at most {MAX_IMAGES_PER_PRODUCT} images")));
    }
    let blobs = state.blobs.as_ref().ok_or_else(|| ApiError::internal("no blob store is configured"))?;
    let image_id = ImageId::new();
    let object_key = products::upload_object_key(product.id, image_id);
    let now = state.clock.now();
    let ticket = UploadTicket {
        image_id,
        product_id: product.id,
        farmer_id: product.farmer_id,
        object_key: object_key.clone(),
        content_type: format.content_type().to_owned(),
        size,
        expires_at: (now + TICKET_RECORD_TTL).unix_timestamp(),
    };
    products::put_ticket(state.store.as_ref(), &ticket).await?;
    let upload = blobs.presign_put(&object_key, format.content_type(), size, UPLOAD_URL_TTL).await?;
    tracing::info!(product_id = %product.id, image_id = %image_id, "image upload ticket issued");
    let body = TicketView {
        image_id: image_id.to_string(),
        upload_url: upload.url,
        method: "PUT",
        headers: upload.headers.into_iter().map(|(name, value)| (name, Value::String(value))).collect(),
        expires_at: upload.expires_at.format(&Rfc3339).unwrap_or_default(),
        max_bytes: size,
    };
    json(StatusCode::CREATED, &body)
}

async fn delete_image(state: &AppState, ctx: &RequestCtx) -> HttpResponse {
    let claims = ctx.require_role(&state.tokens, &[Role::Farmer])?;
    let not_found = || ApiError::NotFound(format!("no image {:?} on this product", ctx.param("imageId")));
    let image_id = ImageId::parse(ctx.param("imageId")).ok_or_else(not_found)?;
    for _ in 0..UPDATE_ATTEMPTS {
        let current = load(state, ctx).await?;
        require_owner(&claims, &current, false)?;
        if !products::has_image(&current, image_id) {
            return Err(not_found());
        }
        let mut next = current.clone();
        next.images.retain(|image| image.id != image_id);
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match products::save(state.store.as_ref(), Some(&current), &next).await {
            // The public objects stay: their keys are content-addressed and may be
            // shared with another product showing the same photo.
            Ok(()) => return no_content(),
            Err(ProductWriteError::Changed) => continue,
            Err(other) => return Err(write_error(other)),
        }
    }
    Err(ApiError::Conflict("the product is being changed concurrently; try again".into()))
}
