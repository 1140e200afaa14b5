//! Sales figures per farmer per day: `SALES#<farmer>`/`DAY#<yyyy-mm-dd>` with
//! the day's orders, units and revenue, in total and by product. The worker
//! applies each order event once: the day's new version is written with a
//! marker `APPLIED#<event id>`/`sales` that must not exist yet, so a duplicate
//! event changes nothing. Reading a date range is one key-range query.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::{OrderLine, ProductId, UserId};
use crate::ports::{Condition, Item, ItemKey, Query, Store, StoreError, WriteOp, ATTR_TTL, ATTR_VERSION};
use crate::retry::{self, Attempt::Again, Attempt::Done};

/// How long an applied-event marker is kept (longer than any redelivery).
const MARKER_SECS: i64 = 30 * 24 * 3600;

/// One product's part of a day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSales {
    pub name: String,
    pub units: i64,
    pub revenue: i64,
}

/// One farmer's sales on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    /// `yyyy-mm-dd`.
    pub date: String,
    pub orders: i64,
    pub units: i64,
    pub revenue: i64,
    pub products: BTreeMap<ProductId, ProductSales>,
    pub version: i64,
}

fn partition(farmer: UserId) -> String {
    format!("SALES#{farmer}")
}

fn day_key(farmer: UserId, date: &str) -> ItemKey {
    ItemKey::new(partition(farmer), format!("DAY#{date}"))
}

fn to_item(farmer: UserId, day: &Day) -> Item {
    let products: serde_json::Map<String, Value> = day
        .products
        .iter()
        .map(|(id, sales)| (id.to_string(), serde_json::to_value(sales).expect("sales serialize")))
        .collect();
    let Value::Object(attrs) = json!({
        "entity": "salesDay",
        "date": day.date,
        "orders": day.orders,
        "units": day.units,
        "revenue": day.revenue,
        "products": products,
        ATTR_VERSION: day.version,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(day_key(farmer, &day.date), attrs)
}

fn from_item(item: &Item) -> Result<Day, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("sales day {}/{} has a bad {what}", item.key.pk, item.key.sk));
    let mut products = BTreeMap::new();
    if let Some(Value::Object(map)) = item.attrs.get("products") {
        for (id, sales) in map {
            let id = ProductId::parse(id).ok_or_else(|| bad("product id"))?;
            products.insert(id, serde_json::from_value(sales.clone()).map_err(|_| bad("products"))?);
        }
    }
    Ok(Day {
        date: item.str("date").ok_or_else(|| bad("date"))?.to_owned(),
        orders: item.int("orders").unwrap_or(0),
        units: item.int("units").unwrap_or(0),
        revenue: item.int("revenue").unwrap_or(0),
        products,
        version: item.int(ATTR_VERSION).unwrap_or(0),
    })
}

/// Adds (`sign` 1) or removes (`sign` -1, a cancellation) one order's `lines`
/// to `farmer`'s `date`, once per `event_id`; `false` when already applied.
pub async fn apply(
    store: &dyn Store,
    farmer: UserId,
    date: &str,
    lines: &[OrderLine],
    sign: i64,
    event_id: &str,
    now_epoch: i64,
) -> Result<bool, StoreError> {
    let Value::Object(marker) = json!({ "entity": "appliedEvent", ATTR_TTL: now_epoch + MARKER_SECS }) else {
        unreachable!("an object")
    };
    let marker = Item::new(ItemKey::new(format!("APPLIED#{event_id}"), "sales"), marker);
    retry::run(retry::SALES_DAY, |_| async {
        let current = store.get(&day_key(farmer, date)).await?.as_ref().map(from_item).transpose()?;
        let mut next = current.clone().unwrap_or_else(|| Day { date: date.to_owned(), ..Day::default() });
        next.orders += sign;
        for line in lines {
            next.units += sign * line.quantity;
            next.revenue += sign * line.line_total;
            let product = next.products.entry(line.product_id).or_default();
            product.name = line.name.clone();
            product.units += sign * line.quantity;
            product.revenue += sign * line.line_total;
        }
        next.version += 1;
        let condition = match &current {
            None => Condition::NotExists,
            Some(day) => Condition::VersionIs(day.version),
        };
        let writes = vec![
            WriteOp::Put { item: marker.clone(), condition: Condition::NotExists },
            WriteOp::Put { item: to_item(farmer, &next), condition },
        ];
        match store.transact(writes).await {
            Ok(()) => Ok(Done(true)),
            Err(StoreError::ConditionFailed { index: 0 }) => Ok(Done(false)),
            Err(StoreError::ConditionFailed { .. }) => {
                Ok(Again(StoreError::Invalid(format!("the sales of {farmer} on {date} kept changing"))))
            }
            Err(e) => Err(e),
        }
    })
    .await
}

/// `farmer`'s days from `from` to `to` (inclusive, `yyyy-mm-dd`), oldest first.
pub async fn range(store: &dyn Store, farmer: UserId, from: &str, to: &str) -> Result<Vec<Day>, StoreError> {
    let mut query = Query::partition(partition(farmer));
    query.sort_between = Some((format!("DAY#{from}"), format!("DAY#{to}")));
    query.limit = 400;
    let mut days = Vec::new();
    loop {
        let page = store.query(&query).await?;
        for item in &page.items {
            days.extend(super::decoded(item, from_item));
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return Ok(days),
        }
    }
}
