//! The catalogue's use cases, one function per business action over the ports:
//! categories (list, create, change, delete) and products (browse, create with
//! an optional idempotency key, change under optimistic concurrency, unlist,
//! photo upload tickets, photo removal, and attaching a checked photo for the
//! worker), and the farmer sync the worker runs when an account changes
//! (`sync_farmer`: show, hide or unlist a farmer's products). Handlers
//! parse, authorise, call one of these and map the result to HTTP; the commands
//! here are also the request bodies' schemas.

use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::{
    parse_harvest_date, Category, CategoryDescription, CategoryId, CategoryName, ImageFormat, ImageId, ListingStatus,
    Price, Product, ProductDescription, ProductId, ProductImage, ProductName, Role, Slug, Stock, Unit, UserId,
    MAX_IMAGES_PER_PRODUCT,
};
use crate::http::{non_null, nullable, IfMatch};
use crate::ports::{BlobError, Condition, Index, Item, PresignedUpload, Query, StoreError, WriteOp};
use crate::repo;
use crate::repo::categories::CategoryWriteError;
use crate::repo::farmers::FarmerPage;
use crate::repo::idempotency::IdempotencyKey;
/// Upload tickets and the object keys uploads and published photos live under
/// (`upload_ticket`, `delete_ticket`, `attach_image`).
pub use crate::repo::products::{
    parse_upload_object_key, upload_object_key, UploadTicket, INCOMING_PREFIX, PUBLIC_PREFIX,
};
/// The browse filters and sorts (`browse_products`).
pub use crate::repo::products::{Browse, Sort};
use crate::repo::products::{ProductWriteError, TICKET_HOLDS_SLOT_SECS};
use crate::repo::throttle::Limit;
use crate::retry::{self, Attempt::Again, Attempt::Done};
use crate::tokens::Claims;
use crate::AppState;

/// How long an upload URL stays valid.
const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long the ticket record outlives the URL: as long as incoming objects live.
const TICKET_RECORD_TTL: Duration = Duration::from_secs(24 * 3600);
/// Upload tickets one farmer may ask for per hour (each is a presigned URL and,
/// once used, an image check): generous for a farmer photographing a harvest,
/// tight for a script.
pub const TICKETS_PER_FARMER: Limit = Limit::new(30, 3600);

/// Why a catalogue action failed. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 409: conflicts with the current state (duplicate slug, still in use, busy).
    #[error("{0}")]
    Conflict(String),
    /// 412: the caller's `If-Match` names an older version.
    #[error("{0}")]
    Stale(String),
    /// 422 on `field`.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// 413.
    #[error("an image may be at most {limit} bytes")]
    TooLarge { limit: u64 },
    /// 415.
    #[error("{0}")]
    UnsupportedImage(String),
    /// 429: `what` is over its limit.
    #[error("too many {what}; try again later")]
    Throttled { what: &'static str, retry_after_secs: u64 },
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// 500: a broken invariant.
    #[error("{0}")]
    Internal(&'static str),
}

type Result<T> = std::result::Result<T, CatalogueError>;

fn busy(what: &str) -> CatalogueError {
    CatalogueError::Conflict(format!("the {what} is being changed concurrently; try again"))
}

// --- categories ---------------------------------------------------------------

/// A new category. Without a slug, one is derived from the name.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CreateCategoryRequest)]
pub struct NewCategory {
    pub name: CategoryName,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub slug: Option<Slug>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub description: Option<CategoryDescription>,
}

/// Absent fields are left unchanged; `description: null` clears the description.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = UpdateCategoryRequest)]
pub struct CategoryChanges {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub name: Option<CategoryName>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub slug: Option<Slug>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<CategoryDescription>>,
}

fn category_write_error(error: CategoryWriteError) -> CatalogueError {
    match error {
        CategoryWriteError::Store(e) => e.into(),
        other => CatalogueError::Conflict(other.to_string()),
    }
}

/// The category `raw_id` names.
/// `GET /categories/{id}` (handler `read`).
pub async fn category(state: &AppState, raw_id: &str) -> Result<Category> {
    let not_found = || CatalogueError::NotFound(format!("no category with id {raw_id:?}"));
    let id = CategoryId::parse(raw_id).ok_or_else(not_found)?;
    repo::categories::get(state.store.as_ref(), id).await?.ok_or_else(not_found)
}

pub async fn create_category(state: &AppState, new: NewCategory) -> Result<Category> {
    let slug = match new.slug {
        Some(slug) => slug,
        None => Slug::from_name(&new.name).map_err(|message| CatalogueError::Invalid { field: "slug", message })?,
    };
    let now = state.clock.now();
    let category = Category {
        id: CategoryId::new(),
        name: new.name,
        slug,
        description: new.description,
        created_at: now,
        updated_at: now,
        version: 1,
        product_count: 0,
    };
    repo::categories::create(state.store.as_ref(), &category).await.map_err(category_write_error)?;
    tracing::info!(category_id = %category.id, "category created");
    Ok(category)
}

pub async fn update_category(state: &AppState, raw_id: &str, changes: CategoryChanges) -> Result<Category> {
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let current = category(state, raw_id).await?;
        let mut next = current.clone();
        if let Some(name) = &changes.name {
            next.name = name.clone();
        }
        if let Some(slug) = &changes.slug {
            next.slug = slug.clone();
        }
        if let Some(description) = &changes.description {
            next.description = description.clone();
        }
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match repo::categories::update(state.store.as_ref(), &current, &next).await {
            Ok(()) => Ok(Done(next)),
            Err(CategoryWriteError::Changed) => Ok(Again(busy("category"))),
            Err(other) => Err(category_write_error(other)),
        }
    })
    .await
}

/// Deletes a category that lists no products (409 while it does).
pub async fn delete_category(state: &AppState, raw_id: &str) -> Result<()> {
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let category = category(state, raw_id).await?;
        match repo::categories::delete(state.store.as_ref(), &category).await {
            Ok(()) => {
                tracing::info!(category_id = %category.id, "category deleted");
                Ok(Done(()))
            }
            // Changed meanwhile (a product listed or unlisted, a rename): look again.
            Err(CategoryWriteError::Changed) => Ok(Again(busy("category"))),
            Err(other) => Err(category_write_error(other)),
        }
    })
    .await
}

/// The category list's query, all categories by name, `limit` to a page: what
/// `paginate` positions and fingerprints for `list_categories`.
pub fn categories_query(limit: usize) -> Query {
    let mut query = repo::categories::list_query();
    query.limit = limit;
    query
}

/// One page of categories by name (`GET /categories`; the repo's `list`), read
/// from `query`'s start or its `start_after`, and the entry to continue after.
pub async fn list_categories(state: &AppState, query: Query) -> Result<(Vec<Category>, Option<Item>)> {
    let (found, next) = repo::categories::list(state.store.as_ref(), &query).await?;
    Ok((found, next.last))
}

// --- products -----------------------------------------------------------------

/// A new product. Unknown fields are ignored; the caller becomes its farmer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateProduct)]
pub struct NewProduct {
    pub name: ProductName,
    /// Empty when absent.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub description: Option<ProductDescription>,
    /// An existing category; an unknown one answers 422 on `categoryId`.
    pub category_id: CategoryId,
    pub price: Price,
    pub unit: Unit,
    pub stock: Stock,
    /// Between 2000-01-01 and a year from today; `null` or absent when unknown.
    #[serde(default)]
    #[schema(format = Date, examples("2026-06-30"))]
    pub harvest_date: Option<String>,
}

/// Absent fields are left unchanged; `description: null` clears the description
/// and `harvestDate: null` the harvest date.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UpdateProduct)]
pub struct ProductChanges {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub name: Option<ProductName>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<ProductDescription>>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub category_id: Option<CategoryId>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub price: Option<Price>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub unit: Option<Unit>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pub stock: Option<Stock>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(format = Date, examples("2026-06-30"))]
    pub harvest_date: Option<Option<String>>,
}

/// An `Idempotency-Key` and the fingerprint of the body it came with.
#[derive(Debug)]
pub struct Idempotent {
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

/// What `create_product` made, or found made by an earlier request with the same key.
#[derive(Debug)]
pub struct Created {
    pub product: Product,
    pub replayed: bool,
}

fn product_write_error(error: ProductWriteError) -> CatalogueError {
    match error {
        ProductWriteError::NoSuchCategory => {
            CatalogueError::Invalid { field: "categoryId", message: "no such category".into() }
        }
        ProductWriteError::Changed => {
            CatalogueError::Stale("the product was changed by someone else; read it again".into())
        }
        ProductWriteError::CountsBusy => CatalogueError::Conflict(error.to_string()),
        ProductWriteError::ExtraConditionFailed { .. } => CatalogueError::Internal("an unexpected extra write failed"),
        ProductWriteError::Store(e) => e.into(),
    }
}

fn harvest_date(raw: Option<&str>, today: time::Date) -> Result<Option<time::Date>> {
    raw.map(|raw| parse_harvest_date(raw, today))
        .transpose()
        .map_err(|message| CatalogueError::Invalid { field: "harvestDate", message })
}

/// The listed product `raw_id` names (unlisted ones are gone for everyone but
/// their stored orders), shown in public or not.
pub async fn listed_product(state: &AppState, raw_id: &str) -> Result<Product> {
    let not_found = || CatalogueError::NotFound(format!("no product with id {raw_id:?}"));
    let id = ProductId::parse(raw_id).ok_or_else(not_found)?;
    repo::products::get(state.store.as_ref(), id).await?.filter(Product::is_listed).ok_or_else(not_found)
}

/// The product `raw_id` names as the public sees it: listed, and its farmer
/// may sell in public (verified and enabled); otherwise 404.
/// `GET /products/{id}` (handler `read`).
pub async fn public_product(state: &AppState, raw_id: &str) -> Result<Product> {
    let product = listed_product(state, raw_id).await?;
    if product.farmer_hidden {
        return Err(CatalogueError::NotFound(format!("no product with id {raw_id:?}")));
    }
    Ok(product)
}

/// Index entries one browse request may evaluate when filters apply after the
/// lookup; past it the page comes back short, with a cursor.
const BROWSE_BUDGET: usize = 500;

/// One page of listed products passing `browse` (`GET /products`; the repo's
/// `browse`), read from `query` (`browse.query()`, positioned by `paginate`),
/// and the index entry to continue after.
pub async fn browse_products(
    state: &AppState,
    browse: &Browse,
    query: Query,
    limit: usize,
) -> Result<(Vec<Product>, Option<Item>)> {
    let found = repo::products::browse(state.store.as_ref(), browse, query, limit, BROWSE_BUDGET).await?;
    Ok((found.products, found.resume_after))
}

/// Products one farmer sync may change before giving up (a guard against a
/// product that never leaves its partition).
const SYNC_LIMIT: usize = 100_000;

/// Brings a farmer's listed products and page in line with the account (the
/// worker's `SyncFarmer` job): an erased or vanished account's products are
/// unlisted; otherwise they are shown when the farmer may sell in public
/// (verified, enabled, still a farmer) and hidden when not. Reads the account
/// itself, so it converges on the current state however often, and in
/// whatever order, it runs. Returns how many products changed.
pub async fn sync_farmer(state: &AppState, farmer_id: UserId) -> Result<usize> {
    let store = state.store.as_ref();
    let public = match repo::users::lookup(store, farmer_id).await? {
        repo::users::Stored::Live(user) => Some(user.sells_in_public()),
        repo::users::Stored::Erased | repo::users::Stored::Missing => None,
    };
    if let Some(public) = public {
        set_page_public(state, farmer_id, public).await?;
    }
    // Each change moves the product out of the partition read; reading on
    // after the last item seen still visits every product once, and steps
    // over one that does not decode (reported) instead of reading it forever.
    let partitions = match public {
        Some(true) => vec![repo::products::hidden_partition(farmer_id)],
        Some(false) => vec![repo::products::farmer_partition(farmer_id)],
        None => vec![repo::products::farmer_partition(farmer_id), repo::products::hidden_partition(farmer_id)],
    };
    let mut changed = 0;
    for partition in partitions {
        let mut query = Query::index(Index::Gsi2, partition.clone());
        query.limit = 100;
        loop {
            let page = store.query(&query).await?;
            for item in &page.items {
                let Some(product) = repo::decoded(item, repo::products::from_item) else {
                    continue;
                };
                sync_product(state, product.id, public).await?;
                changed += 1;
            }
            if changed > SYNC_LIMIT {
                return Err(CatalogueError::Internal("a farmer sync did not finish"));
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => break,
            }
        }
    }
    tracing::info!(farmer_id = %farmer_id, changed, public = ?public, "farmer products synced");
    Ok(changed)
}

/// Shows (`Some(true)`), hides (`Some(false)`) or unlists (`None`) one product.
async fn sync_product(state: &AppState, id: ProductId, public: Option<bool>) -> Result<()> {
    let store = state.store.as_ref();
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let Some(current) = repo::products::get(store, id).await?.filter(Product::is_listed) else {
            return Ok(Done(()));
        };
        let mut next = current.clone();
        match public {
            Some(public) if current.farmer_hidden != public => return Ok(Done(())),
            Some(public) => next.farmer_hidden = !public,
            None => next.status = ListingStatus::Unlisted,
        }
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match repo::products::save(store, Some(&current), &next).await {
            Ok(()) => Ok(Done(())),
            Err(ProductWriteError::Changed | ProductWriteError::CountsBusy) => Ok(Again(busy("product"))),
            Err(other) => Err(product_write_error(other)),
        }
    })
    .await
}

/// Records on the farmer's page whether they may sell in public.
async fn set_page_public(state: &AppState, farmer_id: UserId, public: bool) -> Result<()> {
    let store = state.store.as_ref();
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let current = repo::farmers::get(store, farmer_id).await?;
        if current.as_ref().is_some_and(|page| page.public == public) {
            return Ok(Done(()));
        }
        let now = state.clock.now();
        let base = current.clone().unwrap_or_else(|| FarmerPage::empty(farmer_id, public, now));
        let next = FarmerPage { public, version: base.version + 1, updated_at: now, ..base };
        match store.transact(vec![repo::farmers::write(current.as_ref(), &next)]).await {
            Ok(()) => Ok(Done(())),
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy("farmer page"))),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// The answer to a repeated create: the product the first request made, or 422
/// when the key came with another body.
async fn replay(state: &AppState, request: &Idempotent, record: &repo::idempotency::Record) -> Result<Created> {
    if record.fingerprint != request.fingerprint {
        return Err(CatalogueError::Invalid {
            field: "Idempotency-Key",
            message: "this key was already used for a different request body; use a new key for a new product".into(),
        });
    }
    let id = ProductId::parse(&record.resource_id).ok_or(CatalogueError::Internal("bad idempotency record"))?;
    let product = repo::products::get(state.store.as_ref(), id).await?.ok_or_else(|| {
        CatalogueError::Conflict("the product this key created is gone; use a new key for a new product".into())
    })?;
    Ok(Created { product, replayed: true })
}

/// Lists a new product of `farmer_id`. With `idempotent`, the key is remembered
/// in the product's own transaction, and a repeat answers with the first product.
pub async fn create_product(
    state: &AppState,
    farmer_id: UserId,
    new: NewProduct,
    idempotent: Option<Idempotent>,
) -> Result<Created> {
    let scope = format!("products.create#{farmer_id}");
    if let Some(request) = &idempotent {
        if let Some(record) = repo::idempotency::recall(state.store.as_ref(), &scope, &request.key).await? {
            return replay(state, request, &record).await;
        }
    }
    let store = state.store.as_ref();
    let now = state.clock.now();
    let product = Product {
        id: ProductId::new(),
        farmer_id,
        category_id: new.category_id,
        name: new.name,
        description: new.description.unwrap_or_default(),
        price: new.price,
        unit: new.unit,
        stock: new.stock,
        harvest_date: harvest_date(new.harvest_date.as_deref(), now.date())?,
        images: Vec::new(),
        status: ListingStatus::Listed,
        farmer_hidden: true,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let remembered = idempotent
        .iter()
        .map(|request| {
            let record = repo::idempotency::Record {
                fingerprint: request.fingerprint.clone(),
                resource_id: product.id.to_string(),
            };
            repo::idempotency::remember(&scope, &request.key, &record, now.unix_timestamp())
        })
        .collect::<Vec<_>>();
    let created = retry::run(retry::CONTENDED_WRITE, |_| async {
        // The account decides whether the product shows in public; the write
        // checks it is still the version read, so a farmer disabled or
        // verified meanwhile is never missed by the sync that follows.
        let farmer = match repo::users::get(store, farmer_id).await? {
            Some(user) if user.disabled => return Err(CatalogueError::Forbidden("this account is disabled".into())),
            Some(user) if user.role == Role::Farmer => user,
            _ => return Err(CatalogueError::Forbidden("only farmers list products".into())),
        };
        let product = Product { farmer_hidden: !farmer.sells_in_public(), ..product.clone() };
        let mut extra = remembered.clone();
        extra
            .push(WriteOp::Check { key: repo::users::key(farmer_id), condition: Condition::VersionIs(farmer.version) });
        match (repo::products::create(store, &product, extra).await, &idempotent) {
            (Ok(()), _) => Ok(Done(Created { product, replayed: false })),
            // The same key won a race a moment ago: answer as it did.
            (Err(ProductWriteError::ExtraConditionFailed { extra_index: 0 }), Some(request)) => {
                let record = repo::idempotency::recall(store, &scope, &request.key)
                    .await?
                    .ok_or(CatalogueError::Internal("idempotency record vanished"))?;
                replay(state, request, &record).await.map(Done)
            }
            // The account changed since it was read: read it again.
            (Err(ProductWriteError::ExtraConditionFailed { .. }), _) => Ok(Again(busy("farmer account"))),
            (Err(other), _) => Err(product_write_error(other)),
        }
    })
    .await?;
    if !created.replayed {
        tracing::info!(product_id = %created.product.id, "product created");
    }
    Ok(created)
}

/// 403 unless `caller` owns the product (or, where `admin_may`, is an admin).
fn require_owner(caller: &Claims, product: &Product, admin_may: bool) -> Result<()> {
    let owner = caller.role == Role::Farmer && caller.sub == product.farmer_id.to_string();
    if owner || (admin_may && caller.role == Role::Admin) {
        Ok(())
    } else {
        Err(CatalogueError::Forbidden("this product belongs to another farmer".into()))
    }
}

/// `caller` with the role their account has now: 403 when it is disabled or
/// gone. The role in an access token may be up to its life (15 minutes) old,
/// so product writes and upload tickets go by the stored account instead (one
/// read), and a farmer demoted or disabled by an admin loses them at once.
async fn as_stored(state: &AppState, caller: &Claims) -> Result<Claims> {
    let id = caller.user_id().ok_or_else(|| CatalogueError::Forbidden("the access token names no user".into()))?;
    match repo::users::get(state.store.as_ref(), id).await? {
        Some(user) if user.disabled => Err(CatalogueError::Forbidden("this account is disabled".into())),
        Some(user) => Ok(Claims { role: user.role, ..caller.clone() }),
        None => Err(CatalogueError::Forbidden("the account no longer exists".into())),
    }
}

/// The product's ETag: its version, quoted.
pub fn etag(product: &Product) -> String {
    format!("\"{}\"", product.version)
}

/// Applies `changes` for its farmer or an admin. With `if_match` sent, only to a
/// version it names (412 otherwise); without, to whatever version is current.
pub async fn update_product(
    state: &AppState,
    caller: &Claims,
    raw_id: &str,
    changes: ProductChanges,
    if_match: &IfMatch,
) -> Result<Product> {
    let caller = &as_stored(state, caller).await?;
    let harvest = match &changes.harvest_date {
        None => None,
        Some(raw) => Some(harvest_date(raw.as_deref(), state.clock.now().date())?),
    };
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let current = listed_product(state, raw_id).await?;
        require_owner(caller, &current, true)?;
        let current_tag = etag(&current);
        if !if_match.allows(&current_tag) {
            return Err(CatalogueError::Stale(format!(
                "If-Match {if_match} does not match the current version {current_tag}; nothing was changed"
            )));
        }
        let mut next = current.clone();
        if let Some(name) = &changes.name {
            next.name = name.clone();
        }
        if let Some(description) = &changes.description {
            next.description = description.clone().unwrap_or_default();
        }
        next.category_id = changes.category_id.unwrap_or(next.category_id);
        next.price = changes.price.unwrap_or(next.price);
        next.unit = changes.unit.unwrap_or(next.unit);
        next.stock = changes.stock.unwrap_or(next.stock);
        next.harvest_date = harvest.unwrap_or(next.harvest_date);
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match repo::products::save(state.store.as_ref(), Some(&current), &next).await {
            Ok(()) => Ok(Done(next)),
            // Without If-Match the caller asked for "apply to whatever is current".
            Err(ProductWriteError::Changed) if !if_match.is_sent() => Ok(Again(busy("product"))),
            Err(other) => Err(product_write_error(other)),
        }
    })
    .await
}

/// Unlists a product (its farmer or an admin): it leaves every listing and can
/// no longer be read or ordered. Unlisting an unlisted product succeeds.
pub async fn unlist_product(state: &AppState, caller: &Claims, raw_id: &str) -> Result<()> {
    let caller = &as_stored(state, caller).await?;
    let not_found = || CatalogueError::NotFound(format!("no product with id {raw_id:?}"));
    let id = ProductId::parse(raw_id).ok_or_else(not_found)?;
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let current = repo::products::get(state.store.as_ref(), id).await?.ok_or_else(not_found)?;
        require_owner(caller, &current, true)?;
        if !current.is_listed() {
            return Ok(Done(()));
        }
        let mut next = current.clone();
        next.status = ListingStatus::Unlisted;
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match repo::products::save(state.store.as_ref(), Some(&current), &next).await {
            Ok(()) => {
                tracing::info!(product_id = %id, "product unlisted");
                Ok(Done(()))
            }
            Err(ProductWriteError::Changed) => Ok(Again(busy("product"))),
            Err(other) => Err(product_write_error(other)),
        }
    })
    .await
}

/// One image file to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateImageUpload)]
pub struct ImageUpload {
    /// The file's media type; any other answers 415.
    #[schema(schema_with = image_content_type_schema)]
    pub content_type: String,
    /// The file's exact size in bytes; over 5 MiB answers 413.
    #[schema(schema_with = image_size_schema)]
    pub size: i64,
}

fn image_content_type_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ImageFormat::ALL.map(ImageFormat::content_type)))
        .build()
}

fn image_size_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .minimum(Some(1))
        .maximum(Some(ImageFormat::MAX_BYTES))
        .build()
}

/// Issues a presigned upload of one photo of the caller's product; the worker
/// checks what arrives and attaches it as image `ImageId`.
/// `POST /products/{id}/images` (handler `create_image_upload`).
pub async fn issue_image_upload(
    state: &AppState,
    caller: &Claims,
    raw_id: &str,
    upload: ImageUpload,
) -> Result<(ImageId, PresignedUpload)> {
    let caller = &as_stored(state, caller).await?;
    let format = ImageFormat::from_content_type(&upload.content_type).ok_or_else(|| {
        CatalogueError::UnsupportedImage(format!(
            "images must be image/jpeg, image/png or image/webp, not {:?}",
            upload.content_type
        ))
    })?;
    let size = u64::try_from(upload.size)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| CatalogueError::Invalid { field: "size", message: "must be > 0".into() })?;
    if size > ImageFormat::MAX_BYTES {
        return Err(CatalogueError::TooLarge { limit: ImageFormat::MAX_BYTES });
    }
    let store = state.store.as_ref();
    let now = state.clock.now();
    let farmer = format!("tickets#{}", caller.sub);
    if let Some(retry_after_secs) = repo::throttle::hit(store, &farmer, TICKETS_PER_FARMER, now).await? {
        return Err(CatalogueError::Throttled { what: "upload tickets this hour", retry_after_secs });
    }
    let blobs = state.blobs.as_ref().ok_or(CatalogueError::Internal("no blob store is configured"))?;
    let image_id = ImageId::new();
    let ticket = retry::run(retry::UPLOAD_RESERVATION, |_| async {
        let product = listed_product(state, raw_id).await?;
        require_owner(caller, &product, false)?;
        let held = repo::products::reservations(store, product.id, now.unix_timestamp()).await?;
        if product.images.len() + held.open.len() >= MAX_IMAGES_PER_PRODUCT {
            return Err(CatalogueError::Conflict(format!(
                "a product has at most {MAX_IMAGES_PER_PRODUCT} images; this one has {} and {} uploads in progress",
                product.images.len(),
                held.open.len()
            )));
        }
        let ticket = UploadTicket {
            image_id,
            product_id: product.id,
            farmer_id: product.farmer_id,
            object_key: repo::products::upload_object_key(product.id, image_id),
            content_type: format.content_type().to_owned(),
            size,
            expires_at: (now + TICKET_RECORD_TTL).unix_timestamp(),
        };
        let holds_until = now.unix_timestamp() + TICKET_HOLDS_SLOT_SECS;
        match repo::products::reserve_ticket(store, &product, &held, &ticket, holds_until).await {
            Ok(()) => Ok(Done(ticket)),
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(busy("product"))),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let (product_id, object_key) = (ticket.product_id, ticket.object_key);
    let presigned = blobs.presign_put(&object_key, format.content_type(), size, UPLOAD_URL_TTL).await?;
    tracing::info!(product_id = %product_id, image_id = %image_id, "image upload ticket issued");
    Ok((image_id, presigned))
}

/// Removes a photo from the caller's product. The public objects stay: their
/// keys are content-addressed and may be shared with another product.
/// `DELETE /products/{id}/images/{imageId}` (handler `delete_image`).
pub async fn remove_image(state: &AppState, caller: &Claims, raw_id: &str, raw_image_id: &str) -> Result<()> {
    let caller = &as_stored(state, caller).await?;
    let not_found = || CatalogueError::NotFound(format!("no image {raw_image_id:?} on this product"));
    let image_id = ImageId::parse(raw_image_id).ok_or_else(not_found)?;
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let current = listed_product(state, raw_id).await?;
        require_owner(caller, &current, false)?;
        if !repo::products::has_image(&current, image_id) {
            return Err(not_found());
        }
        let mut next = current.clone();
        next.images.retain(|image| image.id != image_id);
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match repo::products::save(state.store.as_ref(), Some(&current), &next).await {
            Ok(()) => Ok(Done(())),
            Err(ProductWriteError::Changed) => Ok(Again(busy("product"))),
            Err(other) => Err(product_write_error(other)),
        }
    })
    .await
}

/// What `attach_image` did with an uploaded photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// Added to the product's images.
    Attached,
    /// Already among them (a repeated notification).
    AlreadyAttached,
    /// Not added, for the reason given.
    Rejected(String),
}

/// The upload ticket issued as image `image_id`, if any (the worker checks what
/// arrives against it; the repo's `get_ticket`).
pub async fn upload_ticket(state: &AppState, image_id: ImageId) -> Result<Option<UploadTicket>> {
    Ok(repo::products::get_ticket(state.store.as_ref(), image_id).await?)
}

/// Deletes an upload ticket, freeing its product's slot.
pub async fn delete_ticket(state: &AppState, ticket: &UploadTicket) -> Result<()> {
    Ok(repo::products::delete_ticket(state.store.as_ref(), ticket).await?)
}

/// Adds a checked photo to a product (the worker's last step of an upload)
/// unless it is already there, the product is gone or unlisted, or it is full.
/// A product that keeps changing under every attempt is a `Conflict`.
pub async fn attach_image(state: &AppState, product_id: ProductId, image: ProductImage) -> Result<Attachment> {
    let store = state.store.as_ref();
    retry::run(retry::IMAGE_ATTACH, |_| async {
        let Some(current) = repo::products::get(store, product_id).await?.filter(|p| p.is_listed()) else {
            return Ok(Done(Attachment::Rejected("the product is gone or unlisted".into())));
        };
        if repo::products::has_image(&current, image.id) {
            return Ok(Done(Attachment::AlreadyAttached));
        }
        if current.images.len() >= MAX_IMAGES_PER_PRODUCT {
            return Ok(Done(Attachment::Rejected(format!("the product already has {MAX_IMAGES_PER_PRODUCT} images"))));
        }
        let mut next = current.clone();
        next.images.push(image.clone());
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match repo::products::save(store, Some(&current), &next).await {
            Ok(()) => Ok(Done(Attachment::Attached)),
            Err(ProductWriteError::Changed | ProductWriteError::CountsBusy) => Ok(Again(busy("product"))),
            Err(ProductWriteError::NoSuchCategory) => {
                Ok(Done(Attachment::Rejected("the product's category is gone".into())))
            }
            Err(ProductWriteError::Store(e)) => Err(e.into()),
            // Attaching adds no extra writes; should it ever, this must not retry forever.
            Err(other @ ProductWriteError::ExtraConditionFailed { .. }) => {
                Err(StoreError::Invalid(other.to_string()).into())
            }
        }
    })
    .await
}
