//! The orders' use cases: checkout (one order per farmer, all or nothing),
//! status changes along the lifecycle, reading by role, and the worker's
//! handling of order events (notifications, mail, sales figures).
//!
//! # Checkout
//! One transaction holds, for every product, a stock decrement guarded by
//! `stock >= quantity`, the product still listed at the price the order bills
//! and its farmer still selling in public (`WriteOp::Adjust`; a price changed
//! meanwhile answers 409 naming the line); an order per farmer; the checkout; the
//! idempotency record; and an `OrderPlaced` event per order in the outbox.
//! DynamoDB transactions hold at most 100 actions and the store port 25, so a
//! checkout holds at most `MAX_PRODUCTS` products from at most `MAX_FARMERS`
//! farmers (12 + 2 × 5 + 3 = 25 writes with the checkout, the idempotency
//! record and the customer's open-order tally), each line 1 to 1000 units.
//!
//! # Limits
//! The tally's guarded adjustment keeps a customer within `OrderLimits`
//! (open orders, open units per product) under concurrent checkouts, and
//! `repo::throttle` lets an account start `checkouts_per_minute` a minute.
//! Cancellations put stock back never past `Stock::MAX`; `expire_pending`
//! cancels orders the farmer left pending too long.
//!
//! # Idempotency
//! `Idempotency-Key` is required (428 without). The record is written in the
//! checkout's transaction, so a replay finds either the committed checkout (and
//! answers with it) or nothing; a key whose record is not readable yet although
//! its write won (in flight) answers 409 with `Retry-After`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::config::OrderLimits;
use crate::domain::{
    Address, CheckoutId, Fulfilment, FulfilmentMethod, Order, OrderId, OrderLine, OrderStatus, Party, Payment,
    PaymentStatus, Product, ProductId, Quantity, Role, StatusChange, Stock, User, UserId,
};
use crate::http::IfMatch;
use crate::jobs::{Job, OrderEvent};
use crate::mail::Template;
use crate::ports::{Condition, Guard, Item, Query, Store, StoreError, WriteOp};
use crate::repo;
use crate::repo::idempotency::IdempotencyKey;
use crate::repo::orders::{Checkout, Listing};
use crate::repo::throttle::Limit;
use crate::retry::{self, Attempt::Again, Attempt::Done};
use crate::tokens::Claims;
use crate::AppState;

/// Distinct products one checkout may hold.
pub const MAX_PRODUCTS: usize = 12;
/// Farmers one checkout may span (an order each).
pub const MAX_FARMERS: usize = 5;
/// Index entries one list request may evaluate when `status` filters after the
/// lookup; past it the page comes back short, with a cursor.
pub const LIST_BUDGET: usize = 500;

/// Which open-order limit a checkout would pass (see `OrderLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum OpenLimit {
    /// Pending or confirmed orders per customer.
    OpenOrders,
    /// Units of one product across the customer's pending or confirmed orders.
    OpenUnitsPerProduct,
}

/// A product short of stock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shortage {
    pub product_id: ProductId,
    pub requested: i64,
    /// Units left (0 when the product is no longer on sale).
    pub available: i64,
}

/// Why an order action failed. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// 422 on `field`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 409: some lines are short; nothing was written.
    #[error("not enough stock for {} product(s)", .0.len())]
    Short(Vec<Shortage>),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// 409: an illegal status change or a lost race.
    #[error("{0}")]
    Conflict(String),
    /// 409: the checkout would pass one of the customer's open-order limits;
    /// nothing was written.
    #[error("{detail}")]
    Limit { limit: OpenLimit, detail: String },
    /// 429 with `Retry-After`: too many checkouts from this account.
    #[error("too many checkouts from this account; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// 409 with `Retry-After`: the same key's first request is still in flight.
    #[error("a request with this Idempotency-Key is still in flight; retry shortly")]
    InFlight,
    /// 412: `If-Match` does not match.
    #[error("{0}")]
    Stale(String),
    /// 410: the order was archived, but its archive object is missing (an
    /// operator restores it from a backup); logged as an error.
    #[error("{0}")]
    ArchiveMissing(String),
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

type Result<T> = std::result::Result<T, OrderError>;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> OrderError {
    OrderError::Invalid { field: field.into(), message: message.into() }
}

fn now_text(now: OffsetDateTime) -> String {
    now.format(&Rfc3339).unwrap_or_default()
}

/// One line of a cart.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NewOrderLine)]
pub struct NewLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// How one farmer's order reaches the customer (pickup when not given).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FulfilmentChoice)]
pub struct FulfilmentChoice {
    pub farmer_id: UserId,
    pub method: FulfilmentMethod,
    /// Required for delivery.
    #[serde(default)]
    pub address: Option<Address>,
}

/// A cart to check out.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NewCheckout)]
pub struct NewOrder {
    /// 1 to 12 distinct products, from at most 5 farmers.
    #[schema(min_items = 1, max_items = 12)]
    pub lines: Vec<NewLine>,
    /// One entry per farmer who delivers; farmers not named mean pickup.
    #[serde(default)]
    #[schema(max_items = 5)]
    pub fulfilment: Vec<FulfilmentChoice>,
}

/// What a checkout made.
#[derive(Debug, Clone)]
pub struct Placed {
    pub checkout: Checkout,
    pub orders: Vec<Order>,
    /// An earlier request with the same key made it.
    pub replayed: bool,
}

/// The signed-in user behind `caller` (401 when gone or disabled).
async fn caller_user(state: &AppState, caller: &Claims) -> Result<User> {
    crate::accounts::caller_user(state, caller).await.map_err(|e| match e {
        crate::accounts::AccountError::Store(e) => OrderError::Store(e),
        other => OrderError::Unauthenticated(other.to_string()),
    })
}

async fn load_checkout(state: &AppState, id: CheckoutId) -> Result<Placed> {
    let store = state.store.as_ref();
    let checkout = repo::orders::get_checkout(store, id)
        .await?
        .ok_or_else(|| OrderError::Internal(format!("checkout {id} is missing")))?;
    let mut found = Vec::new();
    for order_id in &checkout.order_ids {
        found.push(
            repo::orders::get(store, *order_id)
                .await?
                .ok_or_else(|| OrderError::Internal(format!("order {order_id} is missing")))?,
        );
    }
    Ok(Placed { checkout, orders: found, replayed: true })
}

/// The answer to a repeated key: the checkout it made, 422 for another body.
async fn replay(state: &AppState, fingerprint: &str, record: &repo::idempotency::Record) -> Result<Placed> {
    if record.fingerprint != fingerprint {
        return Err(invalid(
            "Idempotency-Key",
            "this key was already used for a different request body; use a new key for a new checkout",
        ));
    }
    let id =
        CheckoutId::parse(&record.resource_id).ok_or_else(|| OrderError::Internal("bad idempotency record".into()))?;
    load_checkout(state, id).await
}

/// Checks the cart's shape: lines, duplicates, fulfilment choices.
fn check_cart(new: &NewOrder) -> Result<()> {
    if new.lines.is_empty() {
        return Err(invalid("lines", "must hold at least one line"));
    }
    if new.lines.len() > MAX_PRODUCTS {
        return Err(invalid("lines", format!("at most {MAX_PRODUCTS} products per checkout")));
    }
    for (i, line) in new.lines.iter().enumerate() {
        if new.lines[..i].iter().any(|other| other.product_id == line.product_id) {
            return Err(invalid(format!("lines[{i}].productId"), "appears twice; put the whole quantity on one line"));
        }
    }
    for (i, choice) in new.fulfilment.iter().enumerate() {
        if new.fulfilment[..i].iter().any(|other| other.farmer_id == choice.farmer_id) {
            return Err(invalid(format!("fulfilment[{i}].farmerId"), "appears twice"));
        }
    }
    Ok(())
}

/// The products of the cart, each on sale (422 naming the line otherwise).
async fn products_on_sale(state: &AppState, new: &NewOrder) -> Result<Vec<Product>> {
    let mut found = Vec::with_capacity(new.lines.len());
    for (i, line) in new.lines.iter().enumerate() {
        match repo::products::get(state.store.as_ref(), line.product_id).await? {
            Some(product) if product.is_public() => found.push(product),
            _ => return Err(invalid(format!("lines[{i}].productId"), "no such product on sale")),
        }
    }
    Ok(found)
}

/// Each farmer's fulfilment, checked against their farm profile.
async fn fulfilments(state: &AppState, new: &NewOrder, farmers: &[UserId]) -> Result<BTreeMap<UserId, Fulfilment>> {
    let mut chosen = BTreeMap::new();
    for (i, choice) in new.fulfilment.iter().enumerate() {
        if !farmers.contains(&choice.farmer_id) {
            return Err(invalid(format!("fulfilment[{i}].farmerId"), "no line of the cart is this farmer's"));
        }
        let address = match (choice.method, &choice.address) {
            (FulfilmentMethod::Pickup, _) => None,
            (FulfilmentMethod::Delivery, None) => {
                return Err(invalid(format!("fulfilment[{i}].address"), "delivery needs an address"))
            }
            (FulfilmentMethod::Delivery, Some(address)) => {
                Some(address.check().map_err(|m| invalid(format!("fulfilment[{i}].address"), m))?)
            }
        };
        if choice.method == FulfilmentMethod::Delivery {
            let page = repo::farmers::get(state.store.as_ref(), choice.farmer_id).await?;
            if !page.and_then(|p| p.profile).is_some_and(|p| p.offers_delivery) {
                return Err(invalid(format!("fulfilment[{i}].method"), "this farmer does not deliver; choose pickup"));
            }
        }
        chosen.insert(choice.farmer_id, Fulfilment { method: choice.method, address });
    }
    Ok(chosen)
}

/// The lines whose product (on sale, from `products_on_sale`) has too little stock.
fn shortages(new: &NewOrder, found: &[Product]) -> Vec<Shortage> {
    new.lines
        .iter()
        .zip(found)
        .filter_map(|(line, product)| {
            let available = product.stock.count();
            (available < line.quantity.count()).then_some(Shortage {
                product_id: line.product_id,
                requested: line.quantity.count(),
                available,
            })
        })
        .collect()
}

/// The first open-order limit placing `orders` more orders with `new`'s lines
/// would pass, given what the customer holds open.
fn limit_passed(
    new: &NewOrder,
    orders: i64,
    tally: &repo::orders::OpenTally,
    limits: &OrderLimits,
) -> Option<OrderError> {
    if tally.orders + orders > limits.max_open_orders {
        return Some(OrderError::Limit {
            limit: OpenLimit::OpenOrders,
            detail: format!(
                "you have {} open (pending or confirmed) orders and this checkout makes {orders} more; at most {} \
                 may be open at once: wait for some to be confirmed and fulfilled, or cancel some",
                tally.orders, limits.max_open_orders
            ),
        });
    }
    new.lines.iter().enumerate().find_map(|(i, line)| {
        let held = tally.units(line.product_id);
        (held + line.quantity.count() > limits.max_open_units_per_product).then(|| OrderError::Limit {
            limit: OpenLimit::OpenUnitsPerProduct,
            detail: format!(
                "lines[{i}]: your open orders already hold {held} units of product {} and at most {} may be open \
                 at once; nothing was ordered",
                line.product_id, limits.max_open_units_per_product
            ),
        })
    })
}

/// The order event of `order` moving `from` → its status, and its outbox write.
fn event(order: &Order, from: Option<OrderStatus>, reason: Option<String>, now: OffsetDateTime) -> WriteOp {
    let by = from.and_then(|_| order.history.last().map(|change| change.by));
    let event_id = ulid::Ulid::new().to_string();
    let event = OrderEvent {
        event_id: event_id.clone(),
        order_id: order.id,
        checkout_id: order.checkout_id,
        customer_id: order.customer_id,
        farmer_id: order.farmer_id,
        lines: order.lines.clone(),
        total: order.total,
        placed_at: now_text(order.created_at),
        from,
        to: order.status,
        reason,
        at: now_text(now),
        by,
    };
    let job = if from.is_none() { Job::OrderPlaced(event) } else { Job::OrderStatusChanged(event) };
    repo::outbox::write(&event_id, &job, now.unix_timestamp())
}

/// Checks out the caller's cart under `key` (see the module doc).
pub async fn checkout(
    state: &AppState,
    caller: &Claims,
    new: NewOrder,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<Placed> {
    let customer = caller_user(state, caller).await?;
    if customer.role != Role::Customer {
        return Err(OrderError::Forbidden("only customers check out".into()));
    }
    if !customer.email_verified {
        return Err(OrderError::Forbidden("verify your email address before checking out".into()));
    }
    let store = state.store.as_ref();
    let scope = format!("orders.create#{}", customer.id);
    if let Some(record) = repo::idempotency::recall(store, &scope, key).await? {
        return replay(state, fingerprint, &record).await;
    }
    check_cart(&new)?;
    let limits = state.order_limits;
    let limit = Limit::new(limits.checkouts_per_minute, 60);
    if let Some(retry_after_secs) =
        repo::throttle::hit(store, &format!("checkout#{}", customer.id), limit, state.clock.now()).await?
    {
        return Err(OrderError::Throttled { retry_after_secs });
    }
    // The prices the checkout began with: a price that changes under it
    // answers 409 rather than billing either price unseen.
    let first_prices: OnceLock<Vec<i64>> = OnceLock::new();
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let tally = repo::orders::open_tally(store, customer.id).await?;
        let found = products_on_sale(state, &new).await?;
        let prices: Vec<i64> = found.iter().map(|p| p.price.minor_units()).collect();
        let first = first_prices.get_or_init(|| prices.clone());
        if let Some(i) = (0..prices.len()).find(|&i| prices[i] != first[i]) {
            return Err(OrderError::Conflict(format!(
                "lines[{i}]: the price of product {} changed from {} to {} during checkout; nothing was ordered \
                 (check out again to buy at the new price)",
                new.lines[i].product_id,
                money(first[i]),
                money(prices[i])
            )));
        }
        let mut farmer_ids: Vec<UserId> = Vec::new();
        for product in &found {
            if !farmer_ids.contains(&product.farmer_id) {
                farmer_ids.push(product.farmer_id);
            }
        }
        if farmer_ids.len() > MAX_FARMERS {
            return Err(invalid("lines", format!("at most {MAX_FARMERS} farmers per checkout")));
        }
        if let Some(passed) = limit_passed(&new, farmer_ids.len() as i64, &tally, &limits) {
            return Err(passed);
        }
        let chosen = fulfilments(state, &new, &farmer_ids).await?;
        let short = shortages(&new, &found);
        if !short.is_empty() {
            return Err(OrderError::Short(short));
        }
        if !tally.exists() {
            // Made before the first checkout that adjusts it, once the cart
            // passed every check (a refused cart writes nothing).
            repo::orders::ensure_open_tally(store, customer.id, state.clock.now()).await?;
        }
        let now = state.clock.now();
        let checkout_id = CheckoutId::new();
        let mut placed_orders = Vec::new();
        for farmer_id in &farmer_ids {
            let lines: Vec<OrderLine> = new
                .lines
                .iter()
                .zip(&found)
                .filter(|(_, product)| product.farmer_id == *farmer_id)
                .map(|(line, product)| OrderLine {
                    product_id: product.id,
                    name: product.name.as_str().to_owned(),
                    unit: product.unit,
                    unit_price: product.price.minor_units(),
                    quantity: line.quantity.count(),
                    line_total: product.price.minor_units() * line.quantity.count(),
                })
                .collect();
            placed_orders.push(Order {
                id: OrderId::new(),
                checkout_id,
                customer_id: customer.id,
                farmer_id: *farmer_id,
                total: lines.iter().map(|l| l.line_total).sum(),
                lines,
                fulfilment: chosen
                    .get(farmer_id)
                    .cloned()
                    .unwrap_or(Fulfilment { method: FulfilmentMethod::Pickup, address: None }),
                status: OrderStatus::Pending,
                history: vec![StatusChange {
                    status: OrderStatus::Pending,
                    at: now_text(now),
                    by: customer.id,
                    reason: None,
                }],
                payment: Payment { method: "payOnFulfilment".into(), status: PaymentStatus::Due },
                created_at: now,
                updated_at: now,
                version: 1,
                archived: false,
            });
        }
        let checkout = Checkout {
            id: checkout_id,
            customer_id: customer.id,
            order_ids: placed_orders.iter().map(|o| o.id).collect(),
            total: placed_orders.iter().map(|o| o.total).sum(),
            created_at: now,
        };
        let mut writes: Vec<WriteOp> = new
            .lines
            .iter()
            .zip(&prices)
            .map(|(line, price)| WriteOp::Adjust {
                key: repo::products::key(line.product_id),
                add: vec![("stock".into(), -line.quantity.count()), ("version".into(), 1)],
                guards: vec![
                    Guard::AtLeast("stock".into(), line.quantity.count()),
                    Guard::Equals("status".into(), "listed".into()),
                    Guard::Equals("farmerHidden".into(), false.into()),
                    Guard::Equals("price".into(), (*price).into()),
                ],
            })
            .collect();
        let product_writes = writes.len();
        let record =
            repo::idempotency::Record { fingerprint: fingerprint.to_owned(), resource_id: checkout_id.to_string() };
        writes.push(repo::idempotency::remember(&scope, key, &record, now.unix_timestamp()));
        let idempotency_write = product_writes;
        writes.push(repo::orders::create_checkout(&checkout));
        let tally_write = writes.len();
        let units: Vec<(ProductId, i64)> = new.lines.iter().map(|l| (l.product_id, l.quantity.count())).collect();
        writes.push(repo::orders::open(
            customer.id,
            placed_orders.len() as i64,
            &units,
            limits.max_open_orders,
            limits.max_open_units_per_product,
        ));
        for order in &placed_orders {
            writes.push(repo::orders::create(order));
            writes.push(event(order, None, None, now));
        }
        match store.transact(writes).await {
            Ok(()) => {
                tracing::info!(checkout_id = %checkout_id, orders = placed_orders.len(), "checkout placed");
                Ok(Done(Placed { checkout, orders: placed_orders, replayed: false }))
            }
            Err(StoreError::ConditionFailed { index }) if index == idempotency_write => {
                match repo::idempotency::recall(store, &scope, key).await? {
                    Some(record) => replay(state, fingerprint, &record).await.map(Done),
                    None => Err(OrderError::InFlight),
                }
            }
            // A product changed, or another checkout opened orders meanwhile:
            // read again; short lines and passed limits answer 409 then.
            Err(StoreError::ConditionFailed { index }) if index < product_writes || index == tally_write => {
                Ok(Again(OrderError::Conflict("the products kept changing during checkout; try again".into())))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Whether `caller` may see `order`: its customer, its farmer, or an admin.
fn may_see(caller: &Claims, order: &Order) -> bool {
    caller.role == Role::Admin
        || caller.sub == order.customer_id.to_string()
        || caller.sub == order.farmer_id.to_string()
}

/// The order `raw_id` names, if `caller` may see it (404 otherwise: existence
/// is not leaked); an archived order is read from the archive.
pub async fn read(state: &AppState, caller: &Claims, raw_id: &str) -> Result<Order> {
    let not_found = || OrderError::NotFound(format!("no order with id {raw_id:?}"));
    let id = OrderId::parse(raw_id).ok_or_else(not_found)?;
    let order = match (repo::orders::get(state.store.as_ref(), id).await?, &state.data_bucket) {
        (Some(order), _) => Some(order),
        (None, Some(bucket)) => match crate::archive::find(state.store.as_ref(), bucket.as_ref(), id).await {
            Ok(order) => order,
            Err(crate::archive::ArchiveError::MissingObject { key, .. }) => {
                tracing::error!(order_id = %id, object = %key, "archived order's archive object is missing");
                return Err(OrderError::ArchiveMissing(format!(
                    "order {id} was archived, but its archive copy is unavailable; it needs restoring from a backup"
                )));
            }
            Err(e) => return Err(OrderError::Internal(format!("read archived order {id}: {e}"))),
        },
        (None, None) => None,
    };
    order.filter(|order| may_see(caller, order)).ok_or_else(not_found)
}

/// The orders of checkout `raw_id`, for its customer or an admin.
pub async fn read_checkout(state: &AppState, caller: &Claims, raw_id: &str) -> Result<Placed> {
    let not_found = || OrderError::NotFound(format!("no checkout with id {raw_id:?}"));
    let id = CheckoutId::parse(raw_id).ok_or_else(not_found)?;
    let checkout = repo::orders::get_checkout(state.store.as_ref(), id).await?.ok_or_else(not_found)?;
    if caller.role != Role::Admin && caller.sub != checkout.customer_id.to_string() {
        return Err(not_found());
    }
    load_checkout(state, id).await
}

/// The order's ETag: its version, quoted.
pub fn etag(order: &Order) -> String {
    format!("\"{}\"", order.version)
}

/// A requested status change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OrderStatusChange)]
pub struct StatusRequest {
    pub status: OrderStatus,
    /// Required to cancel a confirmed order; kept in the history.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// A cancel reason as stored: control characters (line breaks, escapes,
/// NUL) removed, so it reads as one line of text wherever it is shown; trimmed.
fn plain_reason(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_owned()
}

/// Moves an order along its lifecycle for its customer, its farmer or an admin
/// (see `OrderStatus::may_become`). Cancelling restores the stock in the same
/// transaction, never past `Stock::MAX` (see `restock`); every change leaves an
/// `OrderStatusChanged` event.
pub async fn change_status(
    state: &AppState,
    caller: &Claims,
    raw_id: &str,
    request: StatusRequest,
    if_match: &IfMatch,
) -> Result<Order> {
    let reason = request.reason.as_deref().map(plain_reason).filter(|r| !r.is_empty());
    if request.reason.as_deref().is_some_and(|r| r.chars().count() > 500) {
        return Err(invalid("reason", "must be at most 500 characters"));
    }
    let store = state.store.as_ref();
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let current = read(state, caller, raw_id).await?;
        if current.archived {
            return Err(OrderError::Conflict("the order is archived; it can no longer change".into()));
        }
        let by = caller.user_id().ok_or_else(|| OrderError::Unauthenticated("the token names no user".into()))?;
        let tag = etag(&current);
        if !if_match.allows(&tag) {
            return Err(OrderError::Stale(format!(
                "If-Match {if_match} does not match the current version {tag}; nothing was changed"
            )));
        }
        let party = if caller.role == Role::Admin || caller.sub == current.farmer_id.to_string() {
            Party::Farmer
        } else {
            Party::Customer
        };
        if !current.status.may_become(request.status, party, current.fulfilment.method) {
            return Err(OrderError::Conflict(format!(
                "the order is {}; it cannot become {} by this request",
                current.status.as_str(),
                request.status.as_str()
            )));
        }
        if current.status.needs_reason(request.status) && reason.is_none() {
            return Err(invalid("reason", "a confirmed order is cancelled only with a reason"));
        }
        let now = state.clock.now();
        let next = moved(&current, request.status, by, reason.clone(), now);
        let (writes, dropped) = transition(store, &current, &next, reason.clone(), now).await?;
        match store.transact(writes).await {
            Ok(()) => {
                tracing::info!(order_id = %next.id, status = next.status.as_str(), "order status changed");
                log_dropped(next.id, &dropped);
                Ok(Done(next))
            }
            Err(StoreError::ConditionFailed { index: 0 }) if if_match.is_sent() => {
                Err(OrderError::Stale("the order changed meanwhile; nothing was changed".into()))
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(kept_changing())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// `current` moved to status `to` by `by` at `now`: the change in its history,
/// its next version.
fn moved(current: &Order, to: OrderStatus, by: UserId, reason: Option<String>, now: OffsetDateTime) -> Order {
    let mut next = current.clone();
    next.status = to;
    next.history.push(StatusChange { status: to, at: now_text(now), by, reason });
    next.updated_at = now;
    next.version = current.version + 1;
    next
}

/// The writes moving `current` to `next` (its next version, one status on):
/// the order under its version condition (write 0), the stock a cancellation
/// puts back, the customer's open-order tally when the order stops being
/// open, and the event; with the units a cancellation could not put back.
async fn transition(
    store: &dyn Store,
    current: &Order,
    next: &Order,
    reason: Option<String>,
    now: OffsetDateTime,
) -> Result<(Vec<WriteOp>, Vec<(ProductId, i64)>)> {
    let mut writes = vec![repo::orders::update(next)];
    let mut dropped = Vec::new();
    if next.status == OrderStatus::Cancelled {
        let restocked = restock(store, &current.lines).await?;
        writes.extend(restocked.writes);
        dropped = restocked.dropped;
    }
    writes.extend(close_if_leaving_open(store, current, next.status).await?);
    writes.push(event(next, Some(current.status), reason, now));
    Ok((writes, dropped))
}

/// The writes putting a cancelled order's units back in stock, and what could
/// not go back.
struct Restock {
    writes: Vec<WriteOp>,
    /// Units per product left out: stock may never pass `Stock::MAX`, and a
    /// product gone from the table takes nothing back.
    dropped: Vec<(ProductId, i64)>,
}

/// Puts `lines` back in stock, each increment guarded (`Guard::AtMost`) so the
/// stored stock never passes `Stock::MAX` however the farmer changed it since
/// the checkout; the units that would pass it are dropped. A product whose
/// stock moves between this read and the transaction fails the guard, and the
/// caller reads again.
async fn restock(store: &dyn Store, lines: &[OrderLine]) -> Result<Restock> {
    let mut restock = Restock { writes: Vec::new(), dropped: Vec::new() };
    for line in lines {
        let key = repo::products::key(line.product_id);
        let Some(product) = store.get(&key).await? else {
            restock.dropped.push((line.product_id, line.quantity));
            continue;
        };
        let room = (Stock::MAX - product.int("stock").unwrap_or(0)).max(0);
        let back = line.quantity.clamp(0, room);
        if back < line.quantity {
            restock.dropped.push((line.product_id, line.quantity - back));
        }
        if back > 0 {
            restock.writes.push(WriteOp::Adjust {
                key,
                add: vec![("stock".into(), back), ("version".into(), 1)],
                guards: vec![Guard::AtMost("stock".into(), Stock::MAX - back)],
            });
        }
    }
    Ok(restock)
}

/// The write taking `order` out of its customer's open-order tally when it
/// moves to `to`, a status that is no longer open (nothing for an order the
/// tally never counted).
async fn close_if_leaving_open(store: &dyn Store, order: &Order, to: OrderStatus) -> Result<Option<WriteOp>> {
    if !order.status.is_open() || to.is_open() {
        return Ok(None);
    }
    let tally = repo::orders::open_tally(store, order.customer_id).await?;
    Ok(tally.counts(order).then(|| repo::orders::close(order)))
}

/// Logs the units a committed cancellation of `order` could not put back.
fn log_dropped(order: OrderId, dropped: &[(ProductId, i64)]) {
    for (product_id, units) in dropped {
        tracing::warn!(
            order_id = %order,
            product_id = %product_id,
            dropped_units = units,
            max_stock = Stock::MAX,
            "cancelled units not put back in stock: the product is gone or its stock would pass the maximum"
        );
    }
}

/// Marks an order paid (its farmer or an admin).
/// `POST /orders/{id}/payment` (handler `record_payment`).
pub async fn mark_paid(state: &AppState, caller: &Claims, raw_id: &str) -> Result<Order> {
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let current = read(state, caller, raw_id).await?;
        if current.archived {
            return Err(OrderError::Conflict("the order is archived; it can no longer change".into()));
        }
        if caller.role != Role::Admin && caller.sub != current.farmer_id.to_string() {
            return Err(OrderError::Forbidden("only the order's farmer records a payment".into()));
        }
        if current.status == OrderStatus::Cancelled {
            return Err(OrderError::Conflict("the order is cancelled; nothing is due".into()));
        }
        if current.payment.status == PaymentStatus::Paid {
            return Ok(Done(current));
        }
        let mut next = current.clone();
        next.payment.status = PaymentStatus::Paid;
        next.updated_at = state.clock.now();
        next.version = current.version + 1;
        match state.store.transact(vec![repo::orders::update(&next)]).await {
            Ok(()) => Ok(Done(next)),
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(kept_changing())),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// The answer when an order kept changing under every attempt of a change.
fn kept_changing() -> OrderError {
    OrderError::Conflict("the order kept changing; try again".into())
}

/// The orders listing `caller` sees: a customer's own, a farmer's incoming,
/// an admin's all.
pub fn listing(caller: &Claims) -> Result<Listing> {
    let id = caller.user_id().ok_or_else(|| OrderError::Unauthenticated("the token names no user".into()))?;
    Ok(match caller.role {
        Role::Customer => Listing::Customer(id),
        Role::Farmer => Listing::Farmer(id),
        Role::Admin => Listing::All,
    })
}

/// The ULID bounds of orders placed from `from` to `to` (dates, inclusive).
pub fn id_range(from: Option<time::Date>, to: Option<time::Date>) -> Option<(String, String)> {
    if from.is_none() && to.is_none() {
        return None;
    }
    let millis = |date: time::Date| (date.midnight().assume_utc().unix_timestamp().max(0) as u64) * 1000;
    let low = from.map_or(0, millis);
    // Without `to`, up to the last instant a ULID can name (year 10889), so
    // the range is never empty for any `from` a date can spell.
    let high = to.map_or((1 << 48) - 1, |d| millis(d) + 86_400_000 - 1);
    let low = ulid::Ulid::from_parts(low, 0).to_string();
    let high = ulid::Ulid::from_parts(high, u128::MAX).to_string();
    Some((low, high))
}

/// The order list's filters.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFilter {
    /// Only orders with this status.
    pub status: Option<OrderStatus>,
    /// Only orders placed on or after this day (UTC).
    pub from: Option<time::Date>,
    /// Only orders placed on or before this day (UTC).
    pub to: Option<time::Date>,
}

impl OrderFilter {
    /// The list's query for `caller` (`listing`), narrowed to the days asked
    /// for: what `paginate` positions and fingerprints for `list`.
    pub fn query(&self, caller: &Claims) -> Result<Query> {
        let mut query = listing(caller)?.query();
        query.sort_between = id_range(self.from, self.to);
        Ok(query)
    }

    /// The cursor scope: the endpoint and the filter applied after the lookup.
    pub fn scope(&self) -> String {
        format!("orders#{}", self.status.map_or("any", OrderStatus::as_str))
    }
}

/// One page of orders, newest first, passing `filter` (`GET /orders`; the
/// repo's `pages::filtered` over the orders' index), read from `query`'s start
/// or its `start_after` within the list's read budget.
pub async fn list(
    state: &AppState,
    filter: &OrderFilter,
    query: Query,
    limit: usize,
) -> Result<(Vec<Order>, Option<Item>)> {
    let keep = |order: &Order| filter.status.is_none_or(|status| order.status == status);
    let store = state.store.as_ref();
    Ok(repo::pages::filtered(store, query, repo::orders::from_item, keep, limit, LIST_BUDGET).await?)
}

// ---------------------------------------------------------------------------
// Expiry: orders the farmer never confirmed
// ---------------------------------------------------------------------------

/// The id that stands for the marketplace itself in an order's history (an
/// expiry): the all-zero ULID, which no account has.
pub const MARKETPLACE: UserId = UserId(ulid::Ulid(0));

/// The greatest order id a ULID minted at `at` can have: every order placed
/// by then sorts at or below it.
fn last_id_placed_at(at: OffsetDateTime) -> String {
    let millis = (at.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    ulid::Ulid::from_parts(millis, u128::MAX).to_string()
}

/// The all-orders index from order id `from` through `through`, oldest
/// first, a hundred a page: what the scheduled order runs walk.
fn oldest_first(from: String, through: String) -> Query {
    Query { sort_between: Some((from, through)), limit: 100, ascending: true, ..Listing::All.query() }
}

/// What an expiry run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryReport {
    /// Orders placed before the cutoff that were read.
    pub examined: usize,
    /// Pending orders this run cancelled.
    pub expired: usize,
    /// `false` when the time budget ran out first; the next run goes on.
    pub complete: bool,
}

/// The key of the expiry's progress: every order whose id sorts below its
/// `through` was past the cutoff and no longer pending when a run ended (a
/// run starts reading at `through` itself).
fn expiry_progress_key() -> crate::ports::ItemKey {
    crate::ports::ItemKey::new("ORDEREXPIRY", "-")
}

/// Cancels every order still pending `state.order_limits.pending_expiry` after
/// it was placed, as a status change by `MARKETPLACE`: the stock goes back
/// (bounded as for any cancellation), the customer's open-order tally drops,
/// and the event notifies customer and farmer. Each cancellation is
/// conditional on the order's version, so a farmer confirming at the same
/// moment wins or loses whole; a run that is repeated or overlaps another
/// changes nothing twice. Orders are read oldest first from the all-orders
/// index, from where the last complete run stopped, until `budget_end`.
pub async fn expire_pending(state: &AppState, budget_end: std::time::Instant) -> Result<ExpiryReport> {
    let store = state.store.as_ref();
    let now = state.clock.now();
    let cutoff = now - state.order_limits.pending_expiry;
    let through = last_id_placed_at(cutoff);
    let progress = store.get(&expiry_progress_key()).await?;
    let from =
        progress.as_ref().and_then(|p| p.str("through")).map_or_else(|| ulid::Ulid::nil().to_string(), str::to_owned);
    let mut report = ExpiryReport::default();
    if from >= through {
        report.complete = true;
        return Ok(report);
    }
    let mut query = oldest_first(from, through.clone());
    // How far every order is settled (past the cutoff and not pending): the
    // id before the first one that is not, or `through` when none.
    let mut settled_through: Option<String> = None;
    let mut unsettled = false;
    loop {
        if std::time::Instant::now() >= budget_end {
            return Ok(report);
        }
        let page = store.query(&query).await?;
        for item in &page.items {
            report.examined += 1;
            let Some(order) = repo::decoded(item, repo::orders::from_item) else {
                continue;
            };
            let settled = match expire_one(state, order.id, cutoff).await {
                Ok(Expiry::Expired) => {
                    report.expired += 1;
                    true
                }
                Ok(Expiry::Settled) => true,
                // Placed after the cutoff by its own clock (a clock ahead of
                // the id's): a later run expires it.
                Ok(Expiry::Young) => false,
                Err(e) => {
                    tracing::error!(order_id = %order.id, error = %e, "could not expire a pending order; the next run retries");
                    false
                }
            };
            unsettled |= !settled;
            if !unsettled {
                settled_through = Some(order.id.to_string());
            }
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => break,
        }
    }
    let progress = if unsettled { settled_through } else { Some(through) };
    if let Some(progress) = progress {
        let Value::Object(attrs) = serde_json::json!({ "entity": "orderExpiry", "through": progress }) else {
            unreachable!("json! of an object literal is an object")
        };
        store.put(Item::new(expiry_progress_key(), attrs), Condition::None).await?;
    }
    report.complete = true;
    tracing::info!(examined = report.examined, expired = report.expired, "pending orders expired");
    Ok(report)
}

/// What `expire_one` found.
enum Expiry {
    /// This call cancelled the order.
    Expired,
    /// Gone, or no longer pending: nothing to do, ever.
    Settled,
    /// Still pending, but placed after the cutoff.
    Young,
}

/// Cancels order `id` if it is still pending and was placed by `cutoff`.
async fn expire_one(state: &AppState, id: OrderId, cutoff: OffsetDateTime) -> Result<Expiry> {
    let store = state.store.as_ref();
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let Some(current) = repo::orders::get(store, id).await? else { return Ok(Done(Expiry::Settled)) };
        if current.status != OrderStatus::Pending {
            return Ok(Done(Expiry::Settled));
        }
        if current.created_at > cutoff {
            return Ok(Done(Expiry::Young));
        }
        let now = state.clock.now();
        let hours = state.order_limits.pending_expiry.whole_hours();
        let reason = format!("not confirmed by the farmer within {hours} hours");
        let next = moved(&current, OrderStatus::Cancelled, MARKETPLACE, Some(reason.clone()), now);
        let (writes, dropped) = transition(store, &current, &next, Some(reason), now).await?;
        match store.transact(writes).await {
            Ok(()) => {
                tracing::info!(order_id = %id, "pending order expired");
                log_dropped(id, &dropped);
                Ok(Done(Expiry::Expired))
            }
            // The farmer (or the customer) acted meanwhile, or stock moved: read again.
            Err(StoreError::ConditionFailed { .. }) => {
                Ok(Again(OrderError::Conflict(format!("order {id} kept changing while it expired"))))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// When `order` finished (delivered or cancelled), from its history.
fn finished_at(order: &Order) -> Option<OffsetDateTime> {
    if !matches!(order.status, OrderStatus::Delivered | OrderStatus::Cancelled) {
        return None;
    }
    let change = order.history.iter().rev().find(|change| change.status == order.status)?;
    OffsetDateTime::parse(&change.at, &Rfc3339).ok()
}

/// Removes the delivery address of every order in the table that finished
/// more than `retention` ago (the fulfilment stays `delivery`, its address
/// `null`), each under the order's version condition; returns how many.
/// Orders are read oldest first from the all-orders index up to those placed
/// `retention` ago (none younger can have finished that long ago), until
/// `budget_end`; the next run goes on.
pub async fn redact_addresses(
    state: &AppState,
    retention: time::Duration,
    budget_end: std::time::Instant,
) -> Result<usize> {
    let store = state.store.as_ref();
    let cutoff = state.clock.now() - retention;
    let mut query = oldest_first(ulid::Ulid::nil().to_string(), last_id_placed_at(cutoff));
    let mut redacted = 0;
    loop {
        if std::time::Instant::now() >= budget_end {
            return Ok(redacted);
        }
        let page = store.query(&query).await?;
        for item in &page.items {
            let Some(order) = repo::decoded(item, repo::orders::from_item) else {
                continue;
            };
            let due = order.fulfilment.address.is_some() && finished_at(&order).is_some_and(|at| at <= cutoff);
            if !due {
                continue;
            }
            let mut next = order.clone();
            next.fulfilment.address = None;
            next.version = order.version + 1;
            match store.transact(vec![repo::orders::update(&next)]).await {
                Ok(()) => redacted += 1,
                // Changed meanwhile (paid, archived): the next run sees it again.
                Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => break,
        }
    }
    if redacted > 0 {
        tracing::info!(redacted, "delivery addresses of long-finished orders redacted");
    }
    Ok(redacted)
}

// ---------------------------------------------------------------------------
// The worker's side: order events
// ---------------------------------------------------------------------------

/// What an order event changed, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEffects {
    pub notified: bool,
    pub sales_applied: bool,
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor.rem_euclid(100))
}

/// Handles an `OrderPlaced` or `OrderStatusChanged` event once: notifies the
/// farmer (new order), the customer (status change) and the farmer too when
/// someone else cancelled the order (the customer, an admin, the expiry), in
/// the app and by mail (each mail's job goes into the outbox in its
/// notification's transaction), and keeps the farmer's daily sales (a
/// cancellation takes its order back out). A duplicate delivery changes nothing.
pub async fn on_event(state: &AppState, event: &OrderEvent) -> Result<EventEffects> {
    let store = state.store.as_ref();
    let now = state.clock.now();
    let mut notices = Vec::new();
    match event.from {
        None => notices.push((
            event.event_id.clone(),
            event.farmer_id,
            "New order".to_owned(),
            format!(
                "Order {} for {} ({} line(s)) is waiting for you to confirm it.",
                event.order_id,
                money(event.total),
                event.lines.len()
            ),
        )),
        Some(_) => {
            notices.push((
                event.event_id.clone(),
                event.customer_id,
                format!("Your order is {}", event.to.as_str()),
                match &event.reason {
                    Some(reason) => format!("Order {} is now {}: {reason}", event.order_id, event.to.as_str()),
                    None => format!("Order {} is now {}.", event.order_id, event.to.as_str()),
                },
            ));
            if event.to == OrderStatus::Cancelled && event.by != Some(event.farmer_id) {
                let who = match event.by {
                    Some(by) if by == event.customer_id => "by the customer",
                    Some(by) if by == MARKETPLACE => "because it was not confirmed in time",
                    _ => "by the marketplace",
                };
                let body = match &event.reason {
                    Some(reason) => {
                        format!("Order {} for {} was cancelled {who}: {reason}", event.order_id, money(event.total))
                    }
                    None => format!("Order {} for {} was cancelled {who}.", event.order_id, money(event.total)),
                };
                notices.push((
                    format!("{}-farmer", event.event_id),
                    event.farmer_id,
                    "An order was cancelled".to_owned(),
                    body,
                ));
            }
        }
    }
    let mut notified = false;
    for (id, recipient, title, body) in notices {
        let notification = repo::notifications::Notification {
            id: id.clone(),
            title: title.clone(),
            body: body.clone(),
            order_id: Some(event.order_id),
            read: false,
            created_at: now,
            version: 1,
        };
        let mut extra = Vec::new();
        if let Some(user) = repo::users::get(store, recipient).await? {
            let mail = Template::Notice { name: user.display_name.as_str(), title: &title, body: &body }
                .render(user.email.as_str());
            extra.push(repo::outbox::write(&format!("{id}-mail"), &Job::SendEmail { mail }, now.unix_timestamp()));
        }
        notified |= repo::notifications::add(store, recipient, &notification, extra).await?;
    }
    let placed_on = event.placed_at.get(..10).unwrap_or_default();
    let sales_applied = match (event.from, event.to) {
        (None, _) => {
            repo::sales::apply(
                store,
                event.farmer_id,
                placed_on,
                &event.lines,
                1,
                &event.event_id,
                now.unix_timestamp(),
            )
            .await?
        }
        (Some(_), OrderStatus::Cancelled) => {
            repo::sales::apply(
                store,
                event.farmer_id,
                placed_on,
                &event.lines,
                -1,
                &event.event_id,
                now.unix_timestamp(),
            )
            .await?
        }
        _ => false,
    };
    Ok(EventEffects { notified, sales_applied })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_ranges_are_never_empty_and_cover_whole_days() {
        let date = |y, m, d| time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
        for from in [date(2000, 1, 1), date(2026, 11, 28), date(8435, 7, 9), date(9999, 12, 31)] {
            let (low, high) = id_range(Some(from), None).unwrap();
            assert!(low <= high, "{from}");
        }
        let (low, high) = id_range(Some(date(2026, 11, 28)), Some(date(2026, 11, 28))).unwrap();
        let noon = ulid::Ulid::from_parts(
            (date(2026, 11, 28).midnight().assume_utc().unix_timestamp() as u64 + 43_200) * 1000,
            7,
        )
        .to_string();
        assert!(low <= noon && noon <= high);
        assert_eq!(id_range(None, None), None);
    }
}
