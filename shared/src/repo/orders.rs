//! Orders in the single table: `ORDER#<id>`/`ORDER`, each in three private
//! indexes, newest first (ids are ULIDs, so the sort key orders by time and a
//! date range is a key range): gsi8 `CUSTOMER#<customer>` (a customer's
//! orders), gsi9 `FARMERORDERS#<farmer>` (a farmer's), gsi10 `ORDERS` (all, for
//! admins). A checkout is `CHECKOUT#<id>`/`CHECKOUT`, listing its orders.
//! What a customer holds open (pending or confirmed orders) is tallied in
//! `OPENORDERS#<customer>`/`OPEN`: `orders`, and `units#<product>` for each
//! product, adjusted in the transactions that open and close orders, so the
//! limits on them hold under concurrent checkouts.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{CheckoutId, Order, OrderId, OrderStatus, ProductId, UserId};
use crate::ports::Guard;
use crate::ports::{Condition, Index, Item, ItemKey, Query, Store, StoreError, WriteOp, ATTR_VERSION};

pub fn key(id: OrderId) -> ItemKey {
    ItemKey::new(format!("ORDER#{id}"), "ORDER")
}

pub fn checkout_key(id: CheckoutId) -> ItemKey {
    ItemKey::new(format!("CHECKOUT#{id}"), "CHECKOUT")
}

/// Whose orders a listing reads.
#[derive(Debug, Clone, Copy)]
pub enum Listing {
    Customer(UserId),
    Farmer(UserId),
    All,
}

impl Listing {
    /// The newest-first index query of this listing.
    pub fn query(self) -> Query {
        let (index, partition) = match self {
            Listing::Customer(id) => (Index::Gsi8, format!("CUSTOMER#{id}")),
            Listing::Farmer(id) => (Index::Gsi9, format!("FARMERORDERS#{id}")),
            Listing::All => (Index::Gsi10, "ORDERS".to_owned()),
        };
        Query { ascending: false, ..Query::index(index, partition) }
    }
}

fn time_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn to_item(order: &Order) -> Item {
    let id = order.id.to_string();
    let (c_pk, c_sk) = Index::Gsi8.key_attrs();
    let (f_pk, f_sk) = Index::Gsi9.key_attrs();
    let (a_pk, a_sk) = Index::Gsi10.key_attrs();
    let Value::Object(attrs) = json!({
        "entity": "order",
        "id": id,
        "checkoutId": order.checkout_id.to_string(),
        "customerId": order.customer_id.to_string(),
        "farmerId": order.farmer_id.to_string(),
        "lines": order.lines,
        "total": order.total,
        "fulfilment": order.fulfilment,
        "status": order.status.as_str(),
        "history": order.history,
        "payment": order.payment,
        "createdAt": time_text(order.created_at),
        "updatedAt": time_text(order.updated_at),
        ATTR_VERSION: order.version,
        c_pk: format!("CUSTOMER#{}", order.customer_id),
        c_sk: id,
        f_pk: format!("FARMERORDERS#{}", order.farmer_id),
        f_sk: id,
        a_pk: "ORDERS",
        a_sk: id,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(key(order.id), attrs)
}

pub fn from_item(item: &Item) -> Result<Order, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("order item {} has a bad {what}", item.key.pk));
    let parsed = |name: &str| -> Result<Value, StoreError> { item.attrs.get(name).cloned().ok_or_else(|| bad(name)) };
    let time =
        |name: &str| item.str(name).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()).ok_or_else(|| bad(name));
    Ok(Order {
        id: item.str("id").and_then(OrderId::parse).ok_or_else(|| bad("id"))?,
        checkout_id: item.str("checkoutId").and_then(CheckoutId::parse).ok_or_else(|| bad("checkoutId"))?,
        customer_id: item.str("customerId").and_then(UserId::parse).ok_or_else(|| bad("customerId"))?,
        farmer_id: item.str("farmerId").and_then(UserId::parse).ok_or_else(|| bad("farmerId"))?,
        lines: serde_json::from_value(parsed("lines")?).map_err(|_| bad("lines"))?,
        total: item.int("total").ok_or_else(|| bad("total"))?,
        fulfilment: serde_json::from_value(parsed("fulfilment")?).map_err(|_| bad("fulfilment"))?,
        status: item.str("status").and_then(OrderStatus::parse).ok_or_else(|| bad("status"))?,
        history: serde_json::from_value(parsed("history")?).map_err(|_| bad("history"))?,
        payment: serde_json::from_value(parsed("payment")?).map_err(|_| bad("payment"))?,
        created_at: time("createdAt")?,
        updated_at: time("updatedAt")?,
        version: item.int(ATTR_VERSION).ok_or_else(|| bad("version"))?,
        archived: false,
    })
}

/// The write creating `order`.
pub fn create(order: &Order) -> WriteOp {
    WriteOp::Put { item: to_item(order), condition: Condition::NotExists }
}

/// The write storing `order`, the next version of the stored one.
pub fn update(order: &Order) -> WriteOp {
    WriteOp::Put { item: to_item(order), condition: Condition::VersionIs(order.version - 1) }
}

/// The order `id` names; an item that does not decode reads as absent (`repo::decoded`).
pub async fn get(store: &dyn Store, id: OrderId) -> Result<Option<Order>, StoreError> {
    Ok(store.get(&key(id)).await?.and_then(|item| super::decoded(&item, from_item)))
}

/// A checkout: whose it is and its orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkout {
    pub id: CheckoutId,
    pub customer_id: UserId,
    pub order_ids: Vec<OrderId>,
    pub total: i64,
    pub created_at: OffsetDateTime,
}

/// The write creating `checkout`.
pub fn create_checkout(checkout: &Checkout) -> WriteOp {
    let Value::Object(attrs) = json!({
        "entity": "checkout",
        "id": checkout.id.to_string(),
        "customerId": checkout.customer_id.to_string(),
        "orderIds": checkout.order_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "total": checkout.total,
        "createdAt": time_text(checkout.created_at),
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    WriteOp::Put { item: Item::new(checkout_key(checkout.id), attrs), condition: Condition::NotExists }
}

pub async fn get_checkout(store: &dyn Store, id: CheckoutId) -> Result<Option<Checkout>, StoreError> {
    let Some(item) = store.get(&checkout_key(id)).await? else {
        return Ok(None);
    };
    let bad = |what: &str| StoreError::Invalid(format!("checkout item {} has a bad {what}", item.key.pk));
    Ok(Some(Checkout {
        id,
        customer_id: item.str("customerId").and_then(UserId::parse).ok_or_else(|| bad("customerId"))?,
        order_ids: item
            .attrs
            .get("orderIds")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).filter_map(OrderId::parse).collect())
            .ok_or_else(|| bad("orderIds"))?,
        total: item.int("total").ok_or_else(|| bad("total"))?,
        created_at: item
            .str("createdAt")
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or_else(|| bad("createdAt"))?,
    }))
}

/// The key of `customer`'s open-order tally.
pub fn open_tally_key(customer: UserId) -> ItemKey {
    ItemKey::new(format!("OPENORDERS#{customer}"), "OPEN")
}

/// The tally attribute of a product's open units.
fn units_attr(product: ProductId) -> String {
    format!("units#{product}")
}

/// What a customer holds open, as tallied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenTally {
    pub orders: i64,
    /// When the tally began (`None`: it does not exist yet); orders placed
    /// before then are not in it.
    since: Option<OffsetDateTime>,
    item: Option<Item>,
}

impl OpenTally {
    /// Open units of `product`.
    pub fn units(&self, product: ProductId) -> i64 {
        self.item.as_ref().and_then(|item| item.int(&units_attr(product))).unwrap_or(0)
    }

    /// Whether the tally item exists.
    pub fn exists(&self) -> bool {
        self.since.is_some()
    }

    /// Whether `order` is counted in this tally (placed once it existed).
    pub fn counts(&self, order: &Order) -> bool {
        self.since.is_some_and(|since| order.created_at >= since)
    }
}

/// Reads `customer`'s tally (all zero when there is none yet).
pub async fn open_tally(store: &dyn Store, customer: UserId) -> Result<OpenTally, StoreError> {
    Ok(match store.get(&open_tally_key(customer)).await? {
        None => OpenTally::default(),
        Some(item) => OpenTally {
            orders: item.int("orders").unwrap_or(0),
            since: Some(
                item.str("since")
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ),
            item: Some(item),
        },
    })
}

/// Creates `customer`'s empty tally, beginning `now`, unless it exists, so the
/// guarded adjustments of a checkout have an item to adjust.
pub async fn ensure_open_tally(store: &dyn Store, customer: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
    let Value::Object(attrs) = json!({ "entity": "openOrders", "orders": 0, "since": time_text(now) }) else {
        unreachable!("json! of an object literal is an object")
    };
    match store.put(Item::new(open_tally_key(customer), attrs), Condition::NotExists).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The write opening `orders` more orders holding `units` of each product,
/// guarded so the tally never passes `max_orders` orders nor `max_units`
/// units of any product.
pub fn open(customer: UserId, orders: i64, units: &[(ProductId, i64)], max_orders: i64, max_units: i64) -> WriteOp {
    let mut add = vec![("orders".to_owned(), orders)];
    let mut guards = vec![Guard::AtMost("orders".into(), max_orders - orders)];
    for (product, quantity) in units {
        add.push((units_attr(*product), *quantity));
        guards.push(Guard::AtMost(units_attr(*product), max_units - quantity));
    }
    WriteOp::Adjust { key: open_tally_key(customer), add, guards }
}

/// The write taking `order` out of its customer's tally once it is no longer open.
pub fn close(order: &Order) -> WriteOp {
    let mut add = vec![("orders".to_owned(), -1)];
    add.extend(order.lines.iter().map(|line| (units_attr(line.product_id), -line.quantity)));
    WriteOp::Adjust { key: open_tally_key(order.customer_id), add, guards: Vec::new() }
}
