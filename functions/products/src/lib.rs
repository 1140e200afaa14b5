//! The `products` function: public browse (filters, sorts, cursor pages) and read
//! with ETags and shared caching; farmers create (with an optional
//! `Idempotency-Key`), update (optimistic concurrency through `If-Match`) and
//! unlist their products, and ask for presigned image
//! upload tickets. The `worker` function checks uploaded images and attaches them.

use std::sync::Arc;

use axum::extract::State;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use shared::catalogue::{self, etag, Browse, Idempotent, ImageUpload, NewProduct, ProductChanges, Sort};
use shared::domain::{format_date, CategoryId, ImageId, PriceBound, Product, ProductId, SearchText, Unit, UserId};
use shared::http::{body_fingerprint, idempotency_key};
use shared::http::{
    paginate, ApiError, Authorized, Caller, Farmers, IfMatch, IfNoneMatch, JsonBody, Listed, NoContent, Page,
    PageParams, PathParams, Query, Reply,
};
use shared::AppState;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

// The function's routes, `routes()` and `router()` (the template's `Products`
// events name the same).
shared::function_routes! {
    [browse, create],
    [read, update, unlist],
    [create_image_upload],
    [delete_image],
}

/// A product photo, as the CDN serves it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ProductImage)]
struct ImageView {
    id: ImageId,
    /// The original (metadata stripped), immutable and cached for a year.
    #[schema(format = "uri")]
    url: String,
    /// A JPEG at most 400×400.
    #[schema(format = "uri")]
    thumbnail_url: String,
    #[schema(minimum = 1)]
    width: u32,
    #[schema(minimum = 1)]
    height: u32,
    #[schema(examples("image/jpeg"))]
    content_type: String,
}

/// A product on sale.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Product, examples(json!({
    "id": "01JD7M2K4Q9R3S5T6V8W0X1Y2Z", "farmerId": "01JC9F3H5J7K2M4N6P8Q0R2S4T",
    "categoryId": "01JD3Q6V7N0G8X3Y5Z2W4K6M8P", "name": "Heirloom Cherry Tomatoes",
    "description": "Mixed colours, picked this morning.", "price": 450, "unit": "kg", "stock": 35,
    "inStock": true, "harvestDate": "2026-06-30",
    "images": [{"id": "01JD7M5B8C2D4E6F8G0H1J3K5M",
        "url": "https://cdn.example.com/public/images/3f1c0a9e7b2d4c6e.jpg",
        "thumbnailUrl": "https://cdn.example.com/public/thumbs/3f1c0a9e7b2d4c6e.jpg",
        "width": 3024, "height": 4032, "contentType": "image/jpeg"}],
    "createdAt": "2026-06-30T07:42:10Z", "updatedAt": "2026-06-30T09:05:31Z", "version": 3
})))]
struct ProductView {
    id: ProductId,
    /// The farmer who sells it.
    farmer_id: UserId,
    category_id: CategoryId,
    #[schema(examples("Heirloom Cherry Tomatoes"))]
    name: String,
    /// Empty when the farmer gave none.
    description: String,
    /// Price per `unit` in minor currency units (cents): 450 is 4.50.
    #[schema(minimum = 1, examples(450))]
    price: i64,
    unit: Unit,
    /// How many `unit`s are for sale.
    #[schema(minimum = 0)]
    stock: i64,
    /// `stock > 0`.
    in_stock: bool,
    #[schema(format = Date, examples("2026-06-30"))]
    harvest_date: Option<String>,
    #[schema(max_items = 8)]
    images: Vec<ImageView>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
    /// Bumped by every change; the ETag is this number in double quotes (`"3"`).
    #[schema(minimum = 1)]
    version: i64,
}

fn view(state: &AppState, p: &Product) -> ProductView {
    let base = state.assets_base_url.as_deref().unwrap_or_default();
    ProductView {
        id: p.id,
        farmer_id: p.farmer_id,
        category_id: p.category_id,
        name: p.name.as_str().to_owned(),
        description: p.description.as_str().to_owned(),
        price: p.price.minor_units(),
        unit: p.unit,
        stock: p.stock.count(),
        in_stock: p.stock.count() > 0,
        harvest_date: p.harvest_date.map(format_date),
        images: p
            .images
            .iter()
            .map(|image| ImageView {
                id: image.id,
                url: format!("{base}/{}", image.key),
                thumbnail_url: format!("{base}/{}", image.thumbnail_key),
                width: image.width,
                height: image.height,
                content_type: image.content_type.clone(),
            })
            .collect(),
        created_at: p.created_at,
        updated_at: p.updated_at,
        version: p.version,
    }
}

impl Listed for ProductView {
    const PAGE_NAME: &'static str = "ProductList";
    const PAGE_DESCRIPTION: &'static str = "A page of products.";
    const SHORT_PAGES: bool = true;
}

/// A page of products.
type ProductList = Page<ProductView>;

/// Browse orders.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProductSort)]
enum SortParam {
    /// Most recently created first.
    #[default]
    Newest,
    /// Cheapest first; equal prices oldest first.
    PriceAsc,
    /// Dearest first; equal prices newest first.
    PriceDesc,
}

/// Browse filters (with `limit` and `cursor`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct BrowseParams {
    /// Only products in this category.
    #[param(inline, nullable = false)]
    category: Option<CategoryId>,
    /// Only products of this farmer.
    #[param(inline, nullable = false)]
    farmer: Option<UserId>,
    /// Only products whose `inStock` equals this.
    #[param(nullable = false)]
    in_stock: Option<bool>,
    /// Lowest `price`, inclusive, in minor units.
    #[param(inline, nullable = false)]
    min_price: Option<PriceBound>,
    /// Highest `price`, inclusive, in minor units; not below `minPrice`.
    #[param(inline, nullable = false)]
    max_price: Option<PriceBound>,
    /// Order of the list (default `newest`).
    #[param(inline, nullable = false)]
    sort: Option<SortParam>,
    /// Words to find in the product name: every word must appear as a whole word
    /// of the name, ignoring case.
    #[param(inline, nullable = false)]
    q: Option<SearchText>,
}

impl BrowseParams {
    fn into_browse(self) -> Result<Browse, ApiError> {
        let (min_price, max_price) =
            (self.min_price.map(PriceBound::minor_units), self.max_price.map(PriceBound::minor_units));
        if let (Some(min), Some(max)) = (min_price, max_price) {
            if min > max {
                return Err(ApiError::field("maxPrice", "must not be below minPrice"));
            }
        }
        let sort = match self.sort.unwrap_or_default() {
            SortParam::Newest => Sort::Newest,
            SortParam::PriceAsc => Sort::PriceAscending,
            SortParam::PriceDesc => Sort::PriceDescending,
        };
        Ok(Browse {
            category: self.category,
            farmer: self.farmer,
            in_stock: self.in_stock,
            min_price,
            max_price,
            sort,
            words: self.q.map(SearchText::into_words).unwrap_or_default(),
        })
    }
}

/// Browse listed products: filters, sorts, cursor pages.
#[utoipa::path(get, path = "/products", tag = "products", operation_id = "listProducts",
    params(BrowseParams, PageParams, IfNoneMatch),
    responses(
        (status = 200, description = "A page of products.", body = ProductList),
        (status = 400, description = "The cursor is invalid or belongs to another query."),
    ))]
async fn browse(
    State(state): State<Arc<AppState>>,
    Query(params): Query<BrowseParams>,
    Query(page): Query<PageParams>,
    headers: HeaderMap,
) -> Result<Reply<ProductList>, ApiError> {
    let browse = params.into_browse()?;
    let found = paginate(&state, &browse.scope(), browse.query(), &page, |query| {
        catalogue::browse_products(&state, &browse, query, page.limit())
    })
    .await?;
    Ok(Reply::public(found.map(|product| view(&state, &product)), &headers))
}

/// The product id in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ProductPath {
    /// The product's id (a ULID); anything else answers 404.
    id: String,
}

/// The product and image ids in the path.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct ImagePath {
    /// The product's id (a ULID); anything else answers 404.
    id: String,
    /// The image's id (the `id` of a ProductImage); anything else answers 404.
    image_id: String,
}

/// Read one listed product.
#[utoipa::path(get, path = "/products/{id}", tag = "products", operation_id = "getProduct",
    params(ProductPath, IfNoneMatch),
    responses(
        (status = 200, description = "The product; its `ETag` is the version.", body = ProductView),
        (status = 404, description = "No such listed product, or its farmer does not sell in public (not verified yet, or disabled)."),
    ))]
async fn read(
    State(state): State<Arc<AppState>>,
    PathParams(path): PathParams<ProductPath>,
    headers: HeaderMap,
) -> Result<Reply<ProductView>, ApiError> {
    let product = catalogue::public_product(&state, &path.id).await?;
    Ok(Reply::public(view(&state, &product), &headers).etag(etag(&product)))
}

/// List a product (farmers).
#[utoipa::path(post, path = "/products", tag = "products", operation_id = "createProduct",
    security(("bearerAuth" = [])),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, description = "Makes the create safe to retry: the same key (per farmer, remembered for 24 hours) with the same body answers 201 with the product the first request made, marked `Idempotent-Replayed: true`; the same key with a different body answers 422 on the field `Idempotency-Key`. 1 to 128 visible ASCII characters; a malformed key answers 400.")),
    request_body = NewProduct,
    responses(
        (status = 201, description = "Listed; `Location` names it, `ETag` is its version.", body = ProductView,
            headers(("Location" = String, description = "The product's URL path."), ("ETag" = String, description = "The version, quoted."), ("Idempotent-Replayed" = String, description = "`true` when an earlier request with the same `Idempotency-Key` made this product."))),
        (status = 403, description = "Only farmers list products; a disabled account lists none. An unverified farmer's products are listed but shown in public only once the farmer's email is verified."),
        (status = 409, description = "The counts the listing keeps (its category's, the farmer page's) kept changing concurrently, or the product an `Idempotency-Key` created is gone; nothing was written."),
    ))]
async fn create(
    State(state): State<Arc<AppState>>,
    farmer: Authorized<Farmers>,
    headers: HeaderMap,
    body: JsonBody<NewProduct>,
) -> Result<Reply<ProductView>, ApiError> {
    let idempotent = idempotency_key(&headers)?.map(|key| Idempotent { key, fingerprint: body_fingerprint(&body.raw) });
    let created = catalogue::create_product(&state, farmer.user_id()?, body.value, idempotent).await?;
    let product = &created.product;
    let location = format!("/products/{}", product.id);
    Ok(Reply::created(view(&state, product), location).etag(etag(product)).replayed(created.replayed))
}

/// Change a product (its farmer or an admin).
#[utoipa::path(patch, path = "/products/{id}", tag = "products", operation_id = "updateProduct",
    security(("bearerAuth" = [])),
    params(ProductPath, ("If-Match" = Option<String>, Header, nullable = false, description = "The ETag of the version the change is based on (`\"3\"`). If it does not name the current version the answer is 412 and nothing changes; without it the change applies to whatever version is current.")),
    request_body = ProductChanges,
    responses(
        (status = 200, description = "The updated product; `ETag` is its new version.", body = ProductView),
        (status = 403, description = "The caller is neither the product's farmer nor an admin (by the account's role now, not the token's), or the account is disabled."),
        (status = 404, description = "No such listed product."),
        (status = 409, description = "The product kept changing concurrently, or its category or farmer page did; nothing changed. Retry."),
        (status = 412, description = "`If-Match` does not name the current version; nothing changed."),
    ))]
async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(path): PathParams<ProductPath>,
    if_match: IfMatch,
    JsonBody { value: changes, .. }: JsonBody<ProductChanges>,
) -> Result<Reply<ProductView>, ApiError> {
    let product = catalogue::update_product(&state, &caller.0, &path.id, changes, &if_match).await?;
    Ok(Reply::ok(view(&state, &product)).etag(etag(&product)))
}

/// Unlist a product (its farmer or an admin): it leaves every listing and can no
/// longer be read or ordered. Unlisting an unlisted product succeeds.
#[utoipa::path(delete, path = "/products/{id}", tag = "products", operation_id = "deleteProduct",
    security(("bearerAuth" = [])),
    params(ProductPath),
    responses(
        (status = 204, description = "Unlisted."),
        (status = 403, description = "The caller is neither the product's farmer nor an admin (by the account's role now, not the token's), or the account is disabled."),
        (status = 404, description = "No such product."),
        (status = 409, description = "The product, its category or its farmer page kept changing concurrently; nothing changed. Retry."),
    ))]
async fn unlist(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(path): PathParams<ProductPath>,
) -> Result<NoContent, ApiError> {
    catalogue::unlist_product(&state, &caller.0, &path.id).await?;
    Ok(NoContent)
}

/// Where and how to upload one image file.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ImageUploadTicket)]
struct TicketView {
    /// The id the image will have in the product's `images` once it passes the checks.
    image_id: ImageId,
    /// A presigned URL to send the file to.
    #[schema(format = "uri")]
    upload_url: String,
    #[schema(value_type = String, pattern = "^PUT$")]
    method: &'static str,
    /// Send exactly these headers with the PUT (names in lower case): the declared
    /// `content-type` and `content-length`. Both are signed; another type or size
    /// is refused.
    headers: std::collections::BTreeMap<String, String>,
    /// 15 minutes after the ticket was issued; the URL refuses uploads afterwards.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
    /// The size the ticket was issued for: the upload must be exactly this many bytes.
    #[schema(minimum = 1)]
    max_bytes: u64,
}

/// Ask for a presigned upload of one product photo (the product's farmer).
#[utoipa::path(post, path = "/products/{id}/images", tag = "products", operation_id = "createProductImageUpload",
    security(("bearerAuth" = [])),
    params(ProductPath),
    request_body = ImageUpload,
    responses(
        (status = 201, description = "An upload ticket; the image appears on the product once the upload passed the checks.", body = TicketView),
        (status = 403, description = "Only the product's farmer adds photos (a farmer by the account's role now, not the token's, and enabled)."),
        (status = 404, description = "No such listed product."),
        (status = 409, description = "The product's images and the uploads in progress (tickets issued within the last 75 minutes and not yet processed) already fill its 8 slots."),
        (status = 429, description = "Too many upload tickets for this farmer this hour; retry after `Retry-After` seconds."),
        (status = 413, description = "`size` is over 5 MiB."),
        (status = 415, description = "`contentType` is not image/jpeg, image/png or image/webp."),
    ))]
async fn create_image_upload(
    State(state): State<Arc<AppState>>,
    farmer: Authorized<Farmers>,
    PathParams(path): PathParams<ProductPath>,
    JsonBody { value: upload, .. }: JsonBody<ImageUpload>,
) -> Result<Reply<TicketView>, ApiError> {
    let max_bytes = upload.size.max(0) as u64;
    let (image_id, presigned) = catalogue::issue_image_upload(&state, &farmer.claims, &path.id, upload).await?;
    let body = TicketView {
        image_id,
        upload_url: presigned.url,
        method: "PUT",
        headers: presigned.headers.into_iter().collect(),
        expires_at: presigned.expires_at,
        max_bytes,
    };
    Ok(Reply::with_status(StatusCode::CREATED, body))
}

/// Remove a photo from a product (the product's farmer).
#[utoipa::path(delete, path = "/products/{id}/images/{imageId}", tag = "products", operation_id = "deleteProductImage",
    security(("bearerAuth" = [])),
    params(ImagePath),
    responses(
        (status = 204, description = "Removed from the product."),
        (status = 403, description = "Only the product's farmer removes photos (a farmer by the account's role now, not the token's, and enabled)."),
        (status = 404, description = "No such listed product, or no such image on it."),
        (status = 409, description = "The product, its category or its farmer page kept changing concurrently; nothing changed. Retry."),
    ))]
async fn delete_image(
    State(state): State<Arc<AppState>>,
    farmer: Authorized<Farmers>,
    PathParams(path): PathParams<ImagePath>,
) -> Result<NoContent, ApiError> {
    catalogue::remove_image(&state, &farmer.claims, &path.id, &path.image_id).await?;
    Ok(NoContent)
}
