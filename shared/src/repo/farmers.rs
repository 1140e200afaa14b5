//! Farmer pages in the single table: `FARMER#<id>`/`PAGE`, the public side of a
//! farmer account: the farm profile, whether the farmer may sell in public
//! (`public`, kept in step with the account by `catalogue::sync_farmer`), and
//! `listedProducts`, the count of their products shown in public (kept by
//! `repo::products` in the transactions that show and hide them, like a
//! category's `productCount`).
//!
//! A page with `public` set and at least one listed product is in index `gsi7`
//! under partition `FARMERS`, sorted by `<region key>#<id>`, so the public
//! farmer list is one Query, and a region filter a key prefix.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{region_key, Coordinates, FarmDescription, FarmName, FarmNote, FarmProfile, Place, UserId};
use crate::ports::{Condition, Guard, Index, Item, ItemKey, Page, Query, Store, StoreError, WriteOp, ATTR_VERSION};

/// The `gsi7` partition of listed farmer pages.
pub const LIST_PARTITION: &str = "FARMERS";

/// A farmer's page.
#[derive(Debug, Clone, PartialEq)]
pub struct FarmerPage {
    pub farmer_id: UserId,
    /// `None` until the farmer fills it in.
    pub profile: Option<FarmProfile>,
    /// Whether the farmer may sell in public (verified and enabled).
    pub public: bool,
    pub listed_products: i64,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl FarmerPage {
    /// A page with nothing on it yet.
    pub fn empty(farmer_id: UserId, public: bool, now: OffsetDateTime) -> Self {
        Self { farmer_id, profile: None, public, listed_products: 0, updated_at: now, version: 0 }
    }

    /// Whether the public farmer list shows it.
    pub fn is_listed(&self) -> bool {
        self.public && self.listed_products > 0
    }
}

pub fn key(id: UserId) -> ItemKey {
    ItemKey::new(format!("FARMER#{id}"), "PAGE")
}

fn to_item(page: &FarmerPage) -> Item {
    let mut attrs = Map::new();
    attrs.insert("entity".into(), "farmerPage".into());
    attrs.insert("farmerId".into(), page.farmer_id.to_string().into());
    attrs.insert("public".into(), page.public.into());
    attrs.insert("listedProducts".into(), page.listed_products.into());
    attrs.insert("updatedAt".into(), page.updated_at.format(&Rfc3339).unwrap_or_default().into());
    attrs.insert(ATTR_VERSION.into(), page.version.into());
    if let Some(profile) = &page.profile {
        let coordinates = profile.coordinates.map(|c| {
            let (latitude, longitude) = c.to_micro();
            json!({ "latitudeMicro": latitude, "longitudeMicro": longitude })
        });
        attrs.insert(
            "profile".into(),
            json!({
                "farmName": profile.farm_name.as_str(),
                "description": profile.description.as_str(),
                "town": profile.town.as_str(),
                "region": profile.region.as_str(),
                "coordinates": coordinates,
                "pickupNotes": profile.pickup_notes.as_str(),
                "offersDelivery": profile.offers_delivery,
                "deliveryNotes": profile.delivery_notes.as_str(),
            }),
        );
    }
    if page.is_listed() {
        let region = page.profile.as_ref().map(|p| region_key(p.region.as_str())).unwrap_or_default();
        let (pk, sk) = Index::Gsi7.key_attrs();
        attrs.insert(pk.into(), LIST_PARTITION.into());
        attrs.insert(sk.into(), format!("{region}#{}", page.farmer_id).into());
    }
    Item::new(key(page.farmer_id), attrs)
}

fn profile_from(value: &Value) -> Option<FarmProfile> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let coordinates = value.get("coordinates").filter(|c| !c.is_null()).and_then(|c| {
        Some(Coordinates::from_micro(c.get("latitudeMicro")?.as_i64()?, c.get("longitudeMicro")?.as_i64()?))
    });
    Some(FarmProfile {
        farm_name: FarmName::parse(text("farmName")).ok()?,
        description: FarmDescription::parse(text("description")).ok()?,
        town: Place::parse(text("town")).ok()?,
        region: Place::parse(text("region")).ok()?,
        coordinates,
        pickup_notes: FarmNote::parse(text("pickupNotes")).ok()?,
        offers_delivery: value.get("offersDelivery").and_then(Value::as_bool).unwrap_or(false),
        delivery_notes: FarmNote::parse(text("deliveryNotes")).ok()?,
    })
}

pub fn from_item(item: &Item) -> Result<FarmerPage, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("farmer page {} has a bad {what}", item.key.pk));
    let profile = match item.attrs.get("profile") {
        None | Some(Value::Null) => None,
        Some(value) => Some(profile_from(value).ok_or_else(|| bad("profile"))?),
    };
    Ok(FarmerPage {
        farmer_id: item.str("farmerId").and_then(UserId::parse).ok_or_else(|| bad("farmerId"))?,
        profile,
        public: item.attrs.get("public") == Some(&Value::Bool(true)),
        listed_products: item.int("listedProducts").unwrap_or(0).max(0),
        updated_at: item
            .str("updatedAt")
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or_else(|| bad("updatedAt"))?,
        version: item.int(ATTR_VERSION).ok_or_else(|| bad("version"))?,
    })
}

pub async fn get(store: &dyn Store, id: UserId) -> Result<Option<FarmerPage>, StoreError> {
    store.get(&key(id)).await?.as_ref().map(from_item).transpose()
}

/// The write storing `new`, the next version of `old` (or a new page when
/// `old` is `None`): conditional on `old` being current.
pub fn write(old: Option<&FarmerPage>, new: &FarmerPage) -> WriteOp {
    let condition = match old {
        None => Condition::NotExists,
        Some(old) => Condition::VersionIs(old.version),
    };
    WriteOp::Put { item: to_item(new), condition }
}

/// The write changing the farmer's `listedProducts` by `delta`, or none when
/// the count falls on a page that is gone (an erased farmer).
///
/// While the count stays at one or more, the page keeps its place in the
/// public list, and the write is an atomic adjustment guarded by that (so one
/// farmer listing many products at once does not race on a read count; the
/// version moves too, so a profile edit that read the old page reads it
/// again). A count reaching or leaving zero moves the page into or out of the
/// list's index: that is a versioned put of the page as read (changed at
/// `now`), and a caller whose guard or version failed reads again.
pub async fn count_write(
    store: &dyn Store,
    farmer: UserId,
    delta: i64,
    now: OffsetDateTime,
) -> Result<Option<WriteOp>, StoreError> {
    let current = get(store, farmer).await?;
    let next = match &current {
        Some(page) if page.listed_products >= 1 && page.listed_products + delta >= 1 => {
            return Ok(Some(WriteOp::Adjust {
                key: key(farmer),
                add: vec![("listedProducts".into(), delta), (ATTR_VERSION.into(), 1)],
                guards: vec![Guard::AtLeast("listedProducts".into(), 1.max(1 - delta))],
            }));
        }
        None if delta < 0 => return Ok(None),
        // Only a farmer who may sell in public has products shown.
        None => FarmerPage { listed_products: delta, version: 1, ..FarmerPage::empty(farmer, true, now) },
        Some(page) => FarmerPage {
            listed_products: (page.listed_products + delta).max(0),
            version: page.version + 1,
            updated_at: now,
            ..page.clone()
        },
    };
    Ok(Some(write(current.as_ref(), &next)))
}

/// The delete of a farmer's page (erasure).
pub fn delete(id: UserId) -> WriteOp {
    WriteOp::Delete { key: key(id), condition: Condition::None }
}

/// The public farmer list, by region then id; `region` narrows it to one
/// region (compared by `region_key`).
pub fn list_query(region: Option<&str>) -> Query {
    let mut query = Query::index(Index::Gsi7, LIST_PARTITION);
    query.sort_prefix = region.map(|r| format!("{}#", region_key(r)));
    query
}

/// One page of listed farmer pages.
pub async fn list(store: &dyn Store, query: &Query) -> Result<(Vec<FarmerPage>, Option<Item>), StoreError> {
    let Page { items, last } = store.query(query).await?;
    let pages = items.iter().filter_map(|item| super::decoded(item, from_item)).collect();
    Ok((pages, last))
}
