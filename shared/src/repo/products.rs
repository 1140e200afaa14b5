//! Products in the single table: `PRODUCT#<id>`/`PRODUCT`. A listed product
//! carries six index keys, one per way of browsing (unlisted products carry none,
//! so they drop out of every listing):
//!
//! | index | partition | sort key | serves |
//! |---|---|---|---|
//! | gsi1 | `CATEGORY#<category>` | `<id>` | a category, newest first |
//! | gsi2 | `FARMER#<farmer>` | `<id>` | a farmer, newest first |
//! | gsi3 | `PRODUCTS` | `<id>` | everything, newest first |
//! | gsi4 | `CATEGORY#<category>` | `<price:010>#<id>` | a category by price |
//! | gsi5 | `FARMER#<farmer>` | `<price:010>#<id>` | a farmer by price |
//! | gsi6 | `PRODUCTS` | `<price:010>#<id>` | everything by price |
//!
//! A listed product its farmer may not show in public (`farmerHidden`) carries
//! only a gsi2 key, in the partition `FARMER#<farmer>#HIDDEN`, where the sweep
//! that shows it again (`catalogue::sync_farmer`) finds it.
//!
//! Ids are ULIDs, so descending id order is newest first. Listing, unlisting or
//! moving a product updates its categories' `productCount` in the same
//! transaction, and showing or hiding it its farmer page's `listedProducts`
//! (`repo::farmers`). Image upload tickets are `UPLOAD#<imageId>`/`UPLOAD` items that
//! expire after a day; the tickets still holding a slot of a product are listed
//! in `PRODUCT#<id>`/`TICKETS`, written in the ticket's transaction.

use std::sync::Mutex;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{categories, farmers};
use crate::domain::{
    format_date, parse_harvest_date, CategoryId, ImageId, ListingStatus, Price, Product, ProductDescription, ProductId,
    ProductImage, ProductName, Stock, Unit, UserId,
};
use crate::ports::{Condition, Index, Item, ItemKey, Query, Store, StoreError, WriteOp, ATTR_TTL, ATTR_VERSION};
use crate::retry::{self, Attempt::Again, Attempt::Done};

/// Prefix of uploaded, unchecked objects (S3 notifies the worker of these, and
/// the bucket expires them after a day).
pub const INCOMING_PREFIX: &str = "incoming/";
/// Prefix of checked, public objects (the CDN serves only these).
pub const PUBLIC_PREFIX: &str = "public/";

/// The object key an upload ticket fixes: `incoming/<productId>/<imageId>`.
pub fn upload_object_key(product_id: ProductId, image_id: ImageId) -> String {
    format!("{INCOMING_PREFIX}{product_id}/{image_id}")
}

/// The ids in an upload object key, if it is one.
pub fn parse_upload_object_key(key: &str) -> Option<(ProductId, ImageId)> {
    let rest = key.strip_prefix(INCOMING_PREFIX)?;
    let (product, image) = rest.split_once('/')?;
    Some((ProductId::parse(product)?, ImageId::parse(image)?))
}

/// The index partition of every listed product.
pub const ALL_PARTITION: &str = "PRODUCTS";

/// Errors of product writes. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ProductWriteError {
    /// 422 on `categoryId`: the category does not exist.
    #[error("no such category")]
    NoSuchCategory,
    /// 412 with `If-Match`, otherwise retried: the product changed since it was read.
    #[error("the product was changed by someone else")]
    Changed,
    /// 409: the counts the write keeps (its farmer page's, a category's) kept
    /// changing under it.
    #[error("the product's category or farmer page is busy; try again")]
    CountsBusy,
    /// Replay or 422 (idempotency): one of the caller's extra writes failed its condition.
    #[error("a condition of the request's own writes failed (extra write {extra_index})")]
    ExtraConditionFailed { extra_index: usize },
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn key(id: ProductId) -> ItemKey {
    ItemKey::new(format!("PRODUCT#{id}"), "PRODUCT")
}

fn category_partition(id: CategoryId) -> String {
    categories::products_partition(id)
}

/// The gsi2 partition of a farmer's public products.
pub fn farmer_partition(id: UserId) -> String {
    format!("FARMER#{id}")
}

/// The gsi2 partition of a farmer's listed but hidden products.
pub fn hidden_partition(id: UserId) -> String {
    format!("FARMER#{id}#HIDDEN")
}

fn price_sort_key(price: Price, id: ProductId) -> String {
    format!("{:010}#{id}", price.minor_units())
}

fn to_item(product: &Product) -> Item {
    let Value::Object(mut attrs) = json!({
        "entity": "product",
        "id": product.id.to_string(),
        "farmerId": product.farmer_id.to_string(),
        "categoryId": product.category_id.to_string(),
        "name": product.name.as_str(),
        "description": product.description.as_str(),
        "price": product.price.minor_units(),
        "unit": product.unit.as_str(),
        "stock": product.stock.count(),
        "harvestDate": product.harvest_date.map(format_date),
        "images": product.images,
        "status": product.status.as_str(),
        "farmerHidden": product.farmer_hidden,
        "createdAt": product.created_at.format(&Rfc3339).unwrap_or_default(),
        "updatedAt": product.updated_at.format(&Rfc3339).unwrap_or_default(),
        ATTR_VERSION: product.version,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    if product.is_listed() && product.farmer_hidden {
        let (pk, sk) = Index::Gsi2.key_attrs();
        attrs.insert(pk.into(), hidden_partition(product.farmer_id).into());
        attrs.insert(sk.into(), product.id.to_string().into());
    }
    if product.is_public() {
        let id = product.id.to_string();
        let by_price = price_sort_key(product.price, product.id);
        let keys = [
            (Index::Gsi1, category_partition(product.category_id), id.clone()),
            (Index::Gsi2, farmer_partition(product.farmer_id), id.clone()),
            (Index::Gsi3, ALL_PARTITION.to_owned(), id),
            (Index::Gsi4, category_partition(product.category_id), by_price.clone()),
            (Index::Gsi5, farmer_partition(product.farmer_id), by_price.clone()),
            (Index::Gsi6, ALL_PARTITION.to_owned(), by_price),
        ];
        for (index, partition, sort) in keys {
            let (pk, sk) = index.key_attrs();
            attrs.insert(pk.into(), partition.into());
            attrs.insert(sk.into(), sort.into());
        }
    }
    Item::new(key(product.id), attrs)
}

/// The stock of a stored product, brought within `0..=Stock::MAX` when an
/// older write left it outside (cancellations once put stock back without a
/// bound): the product stays readable, and its farmer's next edit stores a
/// valid count. A clamp is logged as an error with the product's key.
fn stored_stock(item: &Item) -> Option<Stock> {
    let raw = item.int("stock")?;
    let clamped = raw.clamp(0, Stock::MAX);
    if clamped != raw {
        tracing::error!(pk = %item.key.pk, stored = raw, read_as = clamped, "product stock outside its bounds");
    }
    Stock::parse(clamped).ok()
}

/// The product a stored item holds.
pub fn from_item(item: &Item) -> Result<Product, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("product item {} has a bad {what}", item.key.pk));
    let time =
        |name: &str| item.str(name).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()).ok_or_else(|| bad(name));
    let far_future = time::macros::date!(9999 - 12 - 31);
    let harvest_date = match item.str("harvestDate") {
        None => None,
        Some(raw) => Some(parse_harvest_date(raw, far_future).map_err(|_| bad("harvestDate"))?),
    };
    let images = match item.attrs.get("images") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value.clone()).map_err(|_| bad("images"))?,
    };
    Ok(Product {
        id: item.str("id").and_then(ProductId::parse).ok_or_else(|| bad("id"))?,
        farmer_id: item.str("farmerId").and_then(UserId::parse).ok_or_else(|| bad("farmerId"))?,
        category_id: item.str("categoryId").and_then(CategoryId::parse).ok_or_else(|| bad("categoryId"))?,
        name: item.str("name").and_then(|n| ProductName::parse(n).ok()).ok_or_else(|| bad("name"))?,
        description: ProductDescription::parse(item.str("description").unwrap_or_default())
            .map_err(|_| bad("description"))?,
        price: item.int("price").and_then(|p| Price::parse(p).ok()).ok_or_else(|| bad("price"))?,
        unit: item.str("unit").and_then(|u| Unit::parse(u).ok()).ok_or_else(|| bad("unit"))?,
        stock: stored_stock(item).ok_or_else(|| bad("stock"))?,
        harvest_date,
        images,
        status: item.str("status").and_then(ListingStatus::parse).ok_or_else(|| bad("status"))?,
        farmer_hidden: item.attrs.get("farmerHidden") == Some(&Value::Bool(true)),
        created_at: time("createdAt")?,
        updated_at: time("updatedAt")?,
        version: item.int(ATTR_VERSION).ok_or_else(|| bad("version"))?,
    })
}

/// The product `id` names; an item that does not decode reads as absent (`repo::decoded`).
pub async fn get(store: &dyn Store, id: ProductId) -> Result<Option<Product>, StoreError> {
    Ok(store.get(&key(id)).await?.and_then(|item| super::decoded(&item, from_item)))
}

/// The listed-product count change each category sees when `old` becomes `new`.
fn count_changes(old: Option<&Product>, new: &Product) -> Vec<(CategoryId, i64)> {
    let mut changes: Vec<(CategoryId, i64)> = Vec::new();
    let mut add = |category: CategoryId, delta: i64| match changes.iter_mut().find(|(c, _)| *c == category) {
        Some((_, total)) => *total += delta,
        None => changes.push((category, delta)),
    };
    if let Some(old) = old.filter(|p| p.is_listed()) {
        add(old.category_id, -1);
    }
    if new.is_listed() {
        add(new.category_id, 1);
    }
    changes.retain(|(_, delta)| *delta != 0);
    changes
}

/// Writes `new` (a fresh product when `old` is `None`, else the next version of
/// `old`) together with the product counts of the categories it enters or
/// leaves, all in one transaction. A product can only enter an existing category.
pub async fn save(store: &dyn Store, old: Option<&Product>, new: &Product) -> Result<(), ProductWriteError> {
    write(store, old, new, Vec::new()).await
}

/// Creates `product` together with `extra` writes (such as an idempotency
/// record) in one transaction.
pub async fn create(store: &dyn Store, product: &Product, extra: Vec<WriteOp>) -> Result<(), ProductWriteError> {
    write(store, None, product, extra).await
}

async fn write(
    store: &dyn Store,
    old: Option<&Product>,
    new: &Product,
    extra: Vec<WriteOp>,
) -> Result<(), ProductWriteError> {
    let product_condition = match old {
        None => Condition::NotExists,
        Some(old) => Condition::VersionIs(old.version),
    };
    // Changes to counts of categories that exist; one found gone is dropped.
    let changes_left = Mutex::new(count_changes(old, new));
    let shown = i64::from(new.is_public()) - i64::from(old.is_some_and(Product::is_public));
    retry::run(retry::CONTENDED_WRITE, |_| async {
        let changes = changes_left.lock().expect("count changes lock").clone();
        let mut writes = vec![WriteOp::Put { item: to_item(new), condition: product_condition.clone() }];
        if shown != 0 {
            // The page changes with the product, at the time the caller gave it.
            writes.extend(farmers::count_write(store, new.farmer_id, shown, new.updated_at).await?);
        }
        // A category's adjustment fails only when the category is gone, so
        // it checks the category's existence too; no read is needed first.
        let counts_from = writes.len();
        writes.extend(changes.iter().map(|(category_id, delta)| categories::count_write(*category_id, *delta)));
        // Staying listed in the same category: it must still exist.
        let category_check = (new.is_listed() && changes.is_empty()).then_some(writes.len());
        if category_check.is_some() {
            writes.push(WriteOp::Check { key: categories::key(new.category_id), condition: Condition::Exists });
        }
        let extra_from = writes.len();
        writes.extend(extra.iter().cloned());
        match store.transact(writes).await {
            Ok(()) => Ok(Done(())),
            Err(StoreError::ConditionFailed { index: 0 }) => Err(ProductWriteError::Changed),
            Err(StoreError::ConditionFailed { index }) if index >= extra_from => {
                Err(ProductWriteError::ExtraConditionFailed { extra_index: index - extra_from })
            }
            Err(StoreError::ConditionFailed { index }) if Some(index) == category_check => {
                Err(ProductWriteError::NoSuchCategory)
            }
            Err(StoreError::ConditionFailed { index })
                if (counts_from..counts_from + changes.len()).contains(&index) =>
            {
                if changes[index - counts_from].1 > 0 {
                    return Err(ProductWriteError::NoSuchCategory);
                }
                // Leaving a category that is gone: nothing to count there.
                changes_left.lock().expect("count changes lock").remove(index - counts_from);
                Ok(Again(ProductWriteError::CountsBusy))
            }
            // A count changed under its guard, or its item came or went: read again.
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(ProductWriteError::CountsBusy)),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Sort orders of the browse listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Newest first (descending id).
    Newest,
    /// Cheapest first; equal prices oldest first.
    PriceAscending,
    /// Dearest first; equal prices newest first.
    PriceDescending,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::PriceAscending => "price_asc",
            Sort::PriceDescending => "price_desc",
        }
    }
}

/// What a browse request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browse {
    pub category: Option<CategoryId>,
    pub farmer: Option<UserId>,
    pub in_stock: Option<bool>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: Sort,
    /// Lower-cased words that must all be words of the name.
    pub words: Vec<String>,
}

impl Browse {
    /// The index query serving this browse: the farmer's partition when a farmer
    /// is given (the narrowest), else the category's, else all products; sorted by
    /// the requested order; a price range is a key condition when sorting by price.
    pub fn query(&self) -> Query {
        let by_price = self.sort != Sort::Newest;
        let (index, partition) = match (self.farmer, self.category, by_price) {
            (Some(farmer), _, false) => (Index::Gsi2, farmer_partition(farmer)),
            (Some(farmer), _, true) => (Index::Gsi5, farmer_partition(farmer)),
            (None, Some(category), false) => (Index::Gsi1, category_partition(category)),
            (None, Some(category), true) => (Index::Gsi4, category_partition(category)),
            (None, None, false) => (Index::Gsi3, ALL_PARTITION.to_owned()),
            (None, None, true) => (Index::Gsi6, ALL_PARTITION.to_owned()),
        };
        let mut query = Query::index(index, partition);
        query.ascending = self.sort == Sort::PriceAscending;
        if by_price && (self.min_price.is_some() || self.max_price.is_some()) {
            let low = format!("{:010}", self.min_price.unwrap_or(0).max(0));
            let high = format!("{:010}~", self.max_price.unwrap_or(Price::MAX).min(Price::MAX));
            query.sort_between = Some((low, high));
        }
        query
    }

    /// Whether some filter is applied after the index lookup.
    pub fn filters_after_lookup(&self) -> bool {
        let price_after = self.sort == Sort::Newest && (self.min_price.is_some() || self.max_price.is_some());
        (self.farmer.is_some() && self.category.is_some())
            || self.in_stock.is_some()
            || !self.words.is_empty()
            || price_after
    }

    /// Whether `product` passes every filter (those the index already applied
    /// pass trivially).
    pub fn matches(&self, product: &Product) -> bool {
        let price = product.price.minor_units();
        product.is_public()
            && self.category.is_none_or(|c| product.category_id == c)
            && self.farmer.is_none_or(|f| product.farmer_id == f)
            && self.in_stock.is_none_or(|wanted| (product.stock.count() > 0) == wanted)
            && self.min_price.is_none_or(|min| price >= min)
            && self.max_price.is_none_or(|max| price <= max)
            && product.name_has_words(&self.words)
    }

    /// Names everything that shapes the result set, for the cursor's fingerprint.
    pub fn scope(&self) -> String {
        format!(
            "products|c={:?}|f={:?}|s={:?}|min={:?}|max={:?}|q={}|sort={}",
            self.category.map(|c| c.to_string()),
            self.farmer.map(|f| f.to_string()),
            self.in_stock,
            self.min_price,
            self.max_price,
            self.words.join(" "),
            self.sort.as_str()
        )
    }
}

/// One browse page: the products, and the index entry to continue after when
/// more may follow.
pub struct BrowsePage {
    pub products: Vec<Product>,
    pub resume_after: Option<Item>,
}

/// Reads index entries in order until `limit` products match or `budget` entries
/// were evaluated (`repo::pages::filtered`). A page cut short by the budget still
/// carries `resume_after`, so walking the cursors visits every match exactly once.
/// Without filters after the lookup every index entry matches (only public
/// products carry index keys), so exactly one page is read.
pub async fn browse(
    store: &dyn Store,
    browse: &Browse,
    query: Query,
    limit: usize,
    budget: usize,
) -> Result<BrowsePage, StoreError> {
    let budget = if browse.filters_after_lookup() { budget } else { limit };
    let (products, resume_after) =
        super::pages::filtered(store, query, from_item, |product| browse.matches(product), limit, budget).await?;
    Ok(BrowsePage { products, resume_after })
}

/// An issued image upload ticket: what the worker checks an uploaded object against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTicket {
    pub image_id: ImageId,
    pub product_id: ProductId,
    pub farmer_id: UserId,
    pub object_key: String,
    pub content_type: String,
    pub size: u64,
    /// Epoch seconds after which the record expires.
    pub expires_at: i64,
}

fn ticket_key(image_id: ImageId) -> ItemKey {
    ItemKey::new(format!("UPLOAD#{image_id}"), "UPLOAD")
}

fn ticket_item(ticket: &UploadTicket) -> Item {
    let Value::Object(attrs) = json!({
        "entity": "upload",
        "imageId": ticket.image_id.to_string(),
        "productId": ticket.product_id.to_string(),
        "farmerId": ticket.farmer_id.to_string(),
        "objectKey": ticket.object_key,
        "contentType": ticket.content_type,
        "size": ticket.size,
        ATTR_TTL: ticket.expires_at,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(ticket_key(ticket.image_id), attrs)
}

pub async fn get_ticket(store: &dyn Store, image_id: ImageId) -> Result<Option<UploadTicket>, StoreError> {
    let Some(item) = store.get(&ticket_key(image_id)).await? else {
        return Ok(None);
    };
    let bad = |what: &str| StoreError::Invalid(format!("upload item {} has a bad {what}", item.key.pk));
    Ok(Some(UploadTicket {
        image_id,
        product_id: item.str("productId").and_then(ProductId::parse).ok_or_else(|| bad("productId"))?,
        farmer_id: item.str("farmerId").and_then(UserId::parse).ok_or_else(|| bad("farmerId"))?,
        object_key: item.str("objectKey").ok_or_else(|| bad("objectKey"))?.to_owned(),
        content_type: item.str("contentType").ok_or_else(|| bad("contentType"))?.to_owned(),
        size: item.int("size").and_then(|s| u64::try_from(s).ok()).ok_or_else(|| bad("size"))?,
        expires_at: item.int(ATTR_TTL).ok_or_else(|| bad("ttl"))?,
    }))
}

/// How long an issued ticket holds one of its product's image slots: the upload
/// URL's life, plus time for the worker to process an upload made at its end.
pub const TICKET_HOLDS_SLOT_SECS: i64 = 15 * 60 + 3600;

/// The item listing a product's open tickets, in the product's partition.
fn reservations_key(product: ProductId) -> ItemKey {
    ItemKey::new(format!("PRODUCT#{product}"), "TICKETS")
}

/// A product's open tickets: image ids and when their hold on a slot lapses.
#[derive(Debug, Clone, Default)]
pub struct Reservations {
    pub open: Vec<(ImageId, i64)>,
    /// The stored version (`None` when no item exists yet).
    version: Option<i64>,
}

impl Reservations {
    fn item(&self, product: ProductId, open: &[(ImageId, i64)]) -> (Item, Condition) {
        let listed: Vec<Value> =
            open.iter().map(|(id, until)| json!({"imageId": id.to_string(), "until": until})).collect();
        let until = open.iter().map(|(_, until)| *until).max().unwrap_or(0);
        let Value::Object(attrs) = json!({
            "entity": "uploadReservations",
            "open": listed,
            ATTR_TTL: until + 3600,
            ATTR_VERSION: self.version.unwrap_or(0) + 1,
        }) else {
            unreachable!("json! of an object literal is an object")
        };
        let condition = self.version.map_or(Condition::NotExists, Condition::VersionIs);
        (Item::new(reservations_key(product), attrs), condition)
    }
}

/// The open tickets of `product` whose hold has not lapsed at `now`.
pub async fn reservations(store: &dyn Store, product: ProductId, now: i64) -> Result<Reservations, StoreError> {
    let Some(item) = store.get(&reservations_key(product)).await? else {
        return Ok(Reservations::default());
    };
    let open = item
        .attrs
        .get("open")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| Some((ImageId::parse(entry["imageId"].as_str()?)?, entry["until"].as_i64()?)))
        .filter(|(_, until)| *until > now)
        .collect();
    Ok(Reservations { open, version: item.int(ATTR_VERSION) })
}

/// Stores `ticket` and its hold on a slot of `product` (as read, at its
/// version) in one transaction: `ConditionFailed` when the product or its
/// reservations changed since they were read (read again and retry).
pub async fn reserve_ticket(
    store: &dyn Store,
    product: &Product,
    reservations: &Reservations,
    ticket: &UploadTicket,
    holds_until: i64,
) -> Result<(), StoreError> {
    let mut open = reservations.open.clone();
    open.push((ticket.image_id, holds_until));
    let (held, condition) = reservations.item(product.id, &open);
    store
        .transact(vec![
            WriteOp::Put { item: ticket_item(ticket), condition: Condition::NotExists },
            WriteOp::Put { item: held, condition },
            WriteOp::Check { key: key(product.id), condition: Condition::VersionIs(product.version) },
        ])
        .await
}

/// Deletes `ticket` and frees its product's slot (done when the ticket's slot
/// is already free, or the ticket already gone).
pub async fn delete_ticket(store: &dyn Store, ticket: &UploadTicket) -> Result<(), StoreError> {
    retry::run(retry::UPLOAD_RESERVATION, |_| async {
        let reservations = reservations(store, ticket.product_id, 0).await?;
        let open: Vec<(ImageId, i64)> =
            reservations.open.iter().copied().filter(|(id, _)| *id != ticket.image_id).collect();
        let mut writes = vec![WriteOp::Delete { key: ticket_key(ticket.image_id), condition: Condition::None }];
        if open.len() != reservations.open.len() {
            let (held, condition) = reservations.item(ticket.product_id, &open);
            writes.push(WriteOp::Put { item: held, condition });
        }
        match store.transact(writes).await {
            Err(StoreError::ConditionFailed { .. }) => Ok(Again(StoreError::Invalid(format!(
                "the reservations of product {} kept changing",
                ticket.product_id
            )))),
            other => other.map(Done),
        }
    })
    .await
}

/// Whether `image_id` is attached to the product.
pub fn has_image(product: &Product, image_id: ImageId) -> bool {
    product.images.iter().any(|image: &ProductImage| image.id == image_id)
}
