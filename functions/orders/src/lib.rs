//! The `orders` function: checkout (`POST /orders`, one order per farmer, with a
//! required `Idempotency-Key`), reading orders by role, status changes along
//! the lifecycle (`If-Match` honoured), recording payment, and a checkout's
//! orders together. The use cases live in `shared::orders`.

use std::sync::Arc;

use axum::extract::State;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use shared::domain::{
    Address, CheckoutId, FulfilmentMethod, Order, OrderId, OrderLine, OrderStatus, Payment, StatusChange, UserId,
};
use shared::http::{
    body_fingerprint, date_param, idempotency_key, paginate, ApiError, Caller, IfMatch, JsonBody, Listed, Page,
    PageParams, PathParams, Query, Reply,
};
use shared::orders::{self, etag, NewOrder, Placed, StatusRequest};
use shared::AppState;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

// The function's routes, `routes()` and `router()` (the template's `Orders`
// events name the same).
shared::function_routes! {
    [list, checkout],
    [read],
    [change_status],
    [record_payment],
    [read_checkout],
}

/// How an order reaches its customer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Fulfilment)]
struct FulfilmentView {
    method: FulfilmentMethod,
    /// The delivery address; `null` for pickup, and once the order finished
    /// more than `AddressRetentionDays` (90) ago or was archived.
    address: Option<Address>,
}

/// One farmer's part of a checkout.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Order)]
struct OrderView {
    id: OrderId,
    checkout_id: CheckoutId,
    customer_id: UserId,
    farmer_id: UserId,
    lines: Vec<OrderLine>,
    /// Sum of the lines, in minor units.
    #[schema(minimum = 1)]
    total: i64,
    fulfilment: FulfilmentView,
    status: OrderStatus,
    /// Every status the order had, oldest first.
    history: Vec<StatusChange>,
    payment: Payment,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
    /// Bumped by every change; the ETag is this number in double quotes.
    #[schema(minimum = 1)]
    version: i64,
    /// `true` once the order is archived (finished and past the archive age):
    /// it still reads by id but is no longer listed and cannot change.
    archived: bool,
}

fn view(order: &Order) -> OrderView {
    OrderView {
        id: order.id,
        checkout_id: order.checkout_id,
        customer_id: order.customer_id,
        farmer_id: order.farmer_id,
        lines: order.lines.clone(),
        total: order.total,
        fulfilment: FulfilmentView { method: order.fulfilment.method, address: order.fulfilment.address.clone() },
        status: order.status,
        history: order.history.clone(),
        payment: order.payment.clone(),
        created_at: order.created_at,
        updated_at: order.updated_at,
        version: order.version,
        archived: order.archived,
    }
}

/// The orders of one checkout.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Checkout)]
struct CheckoutView {
    id: CheckoutId,
    customer_id: UserId,
    /// Sum of the orders, in minor units.
    total: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// One order per farmer.
    orders: Vec<OrderView>,
}

fn checkout_view(placed: &Placed) -> CheckoutView {
    CheckoutView {
        id: placed.checkout.id,
        customer_id: placed.checkout.customer_id,
        total: placed.checkout.total,
        created_at: placed.checkout.created_at,
        orders: placed.orders.iter().map(view).collect(),
    }
}

/// Check out a cart: one order per farmer, all or nothing.
#[utoipa::path(post, path = "/orders", tag = "orders", operation_id = "checkout",
    security(("bearerAuth" = [])),
    params(("Idempotency-Key" = String, Header, description = "Required. Makes the checkout safe to retry: the same key (per customer, remembered 24 hours) with the same body answers 201 with the first checkout, marked `Idempotent-Replayed: true`; with another body 422 on `Idempotency-Key`; while the first request is still in flight 409 with `Retry-After`. 1 to 128 visible ASCII characters.")),
    request_body = NewOrder,
    responses(
        (status = 201, description = "Placed: the checkout and its orders (one per farmer, each `pending`, payment `due`). `Location` names the checkout.", body = CheckoutView,
            headers(("Location" = String, description = "`/checkouts/{id}`."), ("Idempotent-Replayed" = String, description = "`true` when an earlier request with the same key made this checkout."))),
        (status = 403, description = "Only customers check out, with a verified email address."),
        (status = 409, description = "Nothing was ordered: some lines are short of stock (`shortages` names each product and what is left); or the checkout would pass one of the customer's open-order limits (type `/problems/open-order-limit`, `limit` says which: `openOrders`, at most `MaxOpenOrders` pending or confirmed orders, default 10; `openUnitsPerProduct`, at most `MaxOpenUnitsPerProduct` units of one product across them, default 100); or a product's price changed during the checkout (`detail` names the line, `lines[i]`; checking out again bills the new price); or the same key is still in flight (`Retry-After`); or the products kept changing."),
        (status = 428, description = "The `Idempotency-Key` header is missing."),
        (status = 429, description = "More than 10 checkouts from this account in a minute; retry after `Retry-After` seconds."),
    ))]
async fn checkout(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<NewOrder>,
) -> Result<Reply<CheckoutView>, ApiError> {
    let key = idempotency_key(&headers)?.ok_or_else(|| {
        ApiError::PreconditionRequired(
            "an Idempotency-Key header is required (a fresh UUID or ULID per checkout)".into(),
        )
    })?;
    let fingerprint = body_fingerprint(&body.raw);
    let placed = orders::checkout(&state, &caller.0, body.value, &key, &fingerprint).await?;
    let location = format!("/checkouts/{}", placed.checkout.id);
    Ok(Reply::created(checkout_view(&placed), location).replayed(placed.replayed))
}

impl Listed for OrderView {
    const PAGE_NAME: &'static str = "OrderList";
    const PAGE_DESCRIPTION: &'static str = "A page of orders.";
    const SHORT_PAGES: bool = true;
}

/// A page of orders.
type OrderList = Page<OrderView>;

/// Order list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OrderFilter {
    /// Only orders with this status.
    #[param(inline, nullable = false)]
    status: Option<OrderStatus>,
    /// Only orders placed on or after this day (UTC).
    #[param(nullable = false, format = Date)]
    from: Option<String>,
    /// Only orders placed on or before this day (UTC).
    #[param(nullable = false, format = Date)]
    to: Option<String>,
}

/// List orders, newest first: a customer's own, a farmer's incoming, or (admins) all.
#[utoipa::path(get, path = "/orders", tag = "orders", operation_id = "listOrders",
    security(("bearerAuth" = [])),
    params(OrderFilter, PageParams),
    responses(
        (status = 200, description = "A page of orders.", body = OrderList),
        (status = 400, description = "The cursor is invalid or belongs to another query."),
    ))]
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(filter): Query<OrderFilter>,
    Query(page): Query<PageParams>,
) -> Result<Reply<OrderList>, ApiError> {
    let (from, to) = (date_param("from", filter.from.as_deref())?, date_param("to", filter.to.as_deref())?);
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::field("to", "must not be before from"));
        }
    }
    let filter = orders::OrderFilter { status: filter.status, from, to };
    let found = paginate(&state, &filter.scope(), filter.query(&caller.0)?, &page, |query| {
        orders::list(&state, &filter, query, page.limit())
    })
    .await?;
    Ok(Reply::ok(found.map(|order| view(&order))))
}

/// The id in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct IdPath {
    /// The id (a ULID); anything else answers 404.
    id: String,
}

/// Read one order (its customer, its farmer or an admin).
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", operation_id = "getOrder",
    security(("bearerAuth" = [])),
    params(IdPath),
    responses(
        (status = 200, description = "The order; its `ETag` is the version. An archived order (`archived: true`) is read from the archive.", body = OrderView),
        (status = 404, description = "No such order, or not the caller's to see."),
        (status = 410, description = "The order was archived, but its archive copy is missing from the data bucket (title `Gone`); the error is logged, and restoring the backup's archive objects brings it back."),
    ))]
async fn read(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
) -> Result<Reply<OrderView>, ApiError> {
    let order = orders::read(&state, &caller.0, &path.id).await?;
    Ok(Reply::ok(view(&order)).etag(etag(&order)))
}

/// Move an order along its lifecycle.
#[utoipa::path(post, path = "/orders/{id}/status", tag = "orders", operation_id = "changeOrderStatus",
    security(("bearerAuth" = [])),
    params(IdPath, ("If-Match" = Option<String>, Header, nullable = false, description = "The ETag of the version the change is based on; if it is not current the answer is 412 and nothing changes.")),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "The order as it is now; `ETag` is its new version. `pending → confirmed → ready` (pickup) `| shipped` (delivery) `→ delivered` by the farmer; `cancelled` from `pending` by either party or from `confirmed` by the farmer with a `reason`. Cancelling puts the stock back.", body = OrderView),
        (status = 404, description = "No such order, or not the caller's to see."),
        (status = 409, description = "The change is not allowed from the current status (named in `detail`), the order is archived, or it kept changing."),
        (status = 412, description = "`If-Match` does not name the current version; nothing changed."),
        (status = 422, description = "A field is invalid, or a confirmed order is cancelled without a `reason`."),
    ))]
async fn change_status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
    if_match: IfMatch,
    JsonBody { value: body, .. }: JsonBody<StatusRequest>,
) -> Result<Reply<OrderView>, ApiError> {
    let order = orders::change_status(&state, &caller.0, &path.id, body, &if_match).await?;
    Ok(Reply::ok(view(&order)).etag(etag(&order)))
}

/// A payment to record.
#[derive(Deserialize, ToSchema)]
#[schema(as = RecordPayment)]
struct PaymentBody {
    /// `paid`: the customer paid at pickup or delivery.
    #[schema(schema_with = paid_schema)]
    status: String,
}

fn paid_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["paid"]))
        .build()
}

/// Record that an order was paid (its farmer or an admin).
#[utoipa::path(post, path = "/orders/{id}/payment", tag = "orders", operation_id = "recordOrderPayment",
    security(("bearerAuth" = [])),
    params(IdPath),
    request_body = PaymentBody,
    responses(
        (status = 200, description = "The order with `payment.status: paid` (recording it again changes nothing).", body = OrderView),
        (status = 403, description = "Only the order's farmer (or an admin) records a payment."),
        (status = 404, description = "No such order, or not the caller's to see."),
        (status = 409, description = "The order is cancelled or archived, or kept changing."),
    ))]
async fn record_payment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
    JsonBody { value: body, .. }: JsonBody<PaymentBody>,
) -> Result<Reply<OrderView>, ApiError> {
    if body.status != "paid" {
        return Err(ApiError::field("status", "must be \"paid\""));
    }
    let order = orders::mark_paid(&state, &caller.0, &path.id).await?;
    Ok(Reply::ok(view(&order)).etag(etag(&order)))
}

/// A checkout's orders together (its customer or an admin).
#[utoipa::path(get, path = "/checkouts/{id}", tag = "orders", operation_id = "getCheckout",
    security(("bearerAuth" = [])),
    params(IdPath),
    responses(
        (status = 200, description = "The checkout and its orders as they are now.", body = CheckoutView),
        (status = 404, description = "No such checkout, or not the caller's."),
    ))]
async fn read_checkout(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
) -> Result<Reply<CheckoutView>, ApiError> {
    let placed = orders::read_checkout(&state, &caller.0, &path.id).await?;
    Ok(Reply::ok(checkout_view(&placed)))
}
