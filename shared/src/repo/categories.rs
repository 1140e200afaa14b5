//! Categories in the single table: `CATEGORY#<id>`/`CATEGORY`, listed through index
//! `gsi1` under partition `CATEGORIES` ordered by lower-cased name, with a slug guard
//! item `SLUG#<slug>`/`SLUG` written in the same transaction so slugs stay unique.
//! Products of a category are indexed in `gsi1` under `CATEGORY#<id>`; the
//! category's `productCount` counts its listed products (kept by `repo::products`
//! in the transactions that list and unlist them), which is what a delete checks.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{Category, CategoryDescription, CategoryId, CategoryName, Slug};
use crate::ports::{Condition, Index, Item, ItemKey, Page, Query, Store, StoreError, WriteOp, ATTR_VERSION};

/// The `gsi1` partition listing all categories.
pub const LIST_PARTITION: &str = "CATEGORIES";

/// Errors of category writes. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum CategoryWriteError {
    /// 409: another category has this slug.
    #[error("a category with this slug already exists")]
    DuplicateSlug,
    /// 409: the category changed (or vanished) since it was read.
    #[error("the category was changed by someone else; read it again")]
    Changed,
    /// 409: products still list this category.
    #[error("the category still has products")]
    HasProducts,
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn key(id: CategoryId) -> ItemKey {
    ItemKey::new(format!("CATEGORY#{id}"), "CATEGORY")
}

fn slug_key(slug: &Slug) -> ItemKey {
    ItemKey::new(format!("SLUG#{}", slug.as_str()), "SLUG")
}

/// The `gsi1` partition of a category's products.
pub fn products_partition(id: CategoryId) -> String {
    format!("CATEGORY#{id}")
}

/// The listing query (ascending by name).
pub fn list_query() -> Query {
    Query::index(Index::Gsi1, LIST_PARTITION)
}

fn to_item(category: &Category) -> Item {
    let Value::Object(attrs) = json!({
        "entity": "category",
        "id": category.id.to_string(),
        "name": category.name.as_str(),
        "slug": category.slug.as_str(),
        "description": category.description.as_ref().map(CategoryDescription::as_str),
        "createdAt": category.created_at.format(&Rfc3339).unwrap_or_default(),
        "updatedAt": category.updated_at.format(&Rfc3339).unwrap_or_default(),
        ATTR_VERSION: category.version,
        "productCount": category.product_count,
        "gsi1pk": LIST_PARTITION,
        "gsi1sk": format!("{}#{}", category.name.as_str().to_lowercase(), category.id),
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(key(category.id), attrs)
}

pub fn from_item(item: &Item) -> Result<Category, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("category item {} has a bad {what}", item.key.pk));
    let time =
        |name: &str| item.str(name).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()).ok_or_else(|| bad(name));
    Ok(Category {
        id: item.str("id").and_then(CategoryId::parse).ok_or_else(|| bad("id"))?,
        name: item.str("name").and_then(|n| CategoryName::parse(n).ok()).ok_or_else(|| bad("name"))?,
        slug: item.str("slug").and_then(|s| Slug::parse(s).ok()).ok_or_else(|| bad("slug"))?,
        description: item
            .str("description")
            .map(CategoryDescription::parse)
            .transpose()
            .map_err(|_| bad("description"))?,
        created_at: time("createdAt")?,
        updated_at: time("updatedAt")?,
        version: item.int(ATTR_VERSION).ok_or_else(|| bad("version"))?,
        product_count: item.int("productCount").unwrap_or(0),
    })
}

fn slug_guard(category: &Category) -> Item {
    let Value::Object(attrs) = json!({ "categoryId": category.id.to_string() }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(slug_key(&category.slug), attrs)
}

/// Adds `delta` to the category's `productCount` and moves its version, as
/// one atomic adjustment: products entering or leaving one category at once do
/// not race on a read count, while an edit or delete that read the category
/// before still finds its version changed and reads it again. The category
/// must exist (else the transaction's condition fails at this write).
pub(crate) fn count_write(id: CategoryId, delta: i64) -> WriteOp {
    WriteOp::Adjust {
        key: key(id),
        add: vec![("productCount".into(), delta), (ATTR_VERSION.into(), 1)],
        guards: Vec::new(),
    }
}

pub async fn create(store: &dyn Store, category: &Category) -> Result<(), CategoryWriteError> {
    let writes = vec![
        WriteOp::Put { item: to_item(category), condition: Condition::NotExists },
        WriteOp::Put { item: slug_guard(category), condition: Condition::NotExists },
    ];
    match store.transact(writes).await {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed { index: 1 }) => Err(CategoryWriteError::DuplicateSlug),
        Err(e) => Err(e.into()),
    }
}

/// The category `id` names; an item that does not decode reads as absent (`repo::decoded`).
pub async fn get(store: &dyn Store, id: CategoryId) -> Result<Option<Category>, StoreError> {
    Ok(store.get(&key(id)).await?.and_then(|item| super::decoded(&item, from_item)))
}

/// Replaces `old` by `new` (same id; `new.version` = `old.version + 1`) if nobody
/// changed it meanwhile, moving the slug guard when the slug changes.
pub async fn update(store: &dyn Store, old: &Category, new: &Category) -> Result<(), CategoryWriteError> {
    let mut writes = vec![WriteOp::Put { item: to_item(new), condition: Condition::VersionIs(old.version) }];
    if old.slug != new.slug {
        writes.push(WriteOp::Put { item: slug_guard(new), condition: Condition::NotExists });
        writes.push(WriteOp::Delete { key: slug_key(&old.slug), condition: Condition::None });
    }
    match store.transact(writes).await {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed { index: 0 }) => Err(CategoryWriteError::Changed),
        Err(StoreError::ConditionFailed { .. }) => Err(CategoryWriteError::DuplicateSlug),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a category with no listed products, with its slug guard. The count
/// and the version are checked in one condition, so a product listed in the
/// category meanwhile makes the delete fail (`Changed`) rather than orphan it.
pub async fn delete(store: &dyn Store, category: &Category) -> Result<(), CategoryWriteError> {
    if category.product_count > 0 {
        return Err(CategoryWriteError::HasProducts);
    }
    let writes = vec![
        WriteOp::Delete { key: key(category.id), condition: Condition::VersionIs(category.version) },
        WriteOp::Delete { key: slug_key(&category.slug), condition: Condition::None },
    ];
    match store.transact(writes).await {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed { .. }) => Err(CategoryWriteError::Changed),
        Err(e) => Err(e.into()),
    }
}

/// One page of the listing.
pub async fn list(store: &dyn Store, query: &Query) -> Result<(Vec<Category>, Page), StoreError> {
    let page = store.query(query).await?;
    let categories = page.items.iter().filter_map(|item| super::decoded(item, from_item)).collect();
    Ok((categories, page))
}
