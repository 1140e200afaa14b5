//! In-app notifications: `NOTIF#<user>`/`N#<id>` (newest first by id, a ULID),
//! and the user's unread count `NOTIF#<user>`/`UNREAD`, changed in the same
//! transaction as the notification it counts. A notification's id is the id of
//! the event that caused it, so a duplicate event adds nothing.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{OrderId, UserId};
use crate::ports::{Condition, Guard, Item, ItemKey, Page, Query, Store, StoreError, WriteOp, ATTR_VERSION};
use crate::retry::{self, Attempt::Again, Attempt::Done};

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: String,
    pub title: String,
    pub body: String,
    pub order_id: Option<OrderId>,
    pub read: bool,
    pub created_at: OffsetDateTime,
    pub version: i64,
}

fn partition(user: UserId) -> String {
    format!("NOTIF#{user}")
}

fn key(user: UserId, id: &str) -> ItemKey {
    ItemKey::new(partition(user), format!("N#{id}"))
}

fn counter_key(user: UserId) -> ItemKey {
    ItemKey::new(partition(user), "UNREAD")
}

fn to_item(user: UserId, n: &Notification) -> Item {
    let Value::Object(attrs) = json!({
        "entity": "notification",
        "id": n.id,
        "title": n.title,
        "body": n.body,
        "orderId": n.order_id.map(|id| id.to_string()),
        "read": n.read,
        "createdAt": n.created_at.format(&Rfc3339).unwrap_or_default(),
        ATTR_VERSION: n.version,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Item::new(key(user, &n.id), attrs)
}

fn from_item(item: &Item) -> Result<Notification, StoreError> {
    let bad =
        |what: &str| StoreError::Invalid(format!("notification {}/{} has a bad {what}", item.key.pk, item.key.sk));
    Ok(Notification {
        id: item.str("id").ok_or_else(|| bad("id"))?.to_owned(),
        title: item.str("title").unwrap_or_default().to_owned(),
        body: item.str("body").unwrap_or_default().to_owned(),
        order_id: item.str("orderId").and_then(OrderId::parse),
        read: item.attrs.get("read") == Some(&Value::Bool(true)),
        created_at: item
            .str("createdAt")
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or_else(|| bad("createdAt"))?,
        version: item.int(ATTR_VERSION).unwrap_or(1),
    })
}

/// The write adding `delta` to the unread count, creating it when absent.
async fn count_write(store: &dyn Store, user: UserId, delta: i64) -> Result<WriteOp, StoreError> {
    let key = counter_key(user);
    Ok(match store.get(&key).await? {
        None => {
            let Value::Object(attrs) = json!({ "count": delta.max(0) }) else { unreachable!("an object") };
            WriteOp::Put { item: Item::new(key, attrs), condition: Condition::NotExists }
        }
        Some(_) => {
            let guards = if delta < 0 { vec![Guard::AtLeast("count".into(), -delta)] } else { Vec::new() };
            WriteOp::Adjust { key, add: vec![("count".into(), delta)], guards }
        }
    })
}

/// Adds `notification` for `user` with `extra` writes (such as its mail's
/// outbox event) in one transaction; `false` when it was there already.
pub async fn add(
    store: &dyn Store,
    user: UserId,
    notification: &Notification,
    extra: Vec<WriteOp>,
) -> Result<bool, StoreError> {
    retry::run(retry::UNREAD_COUNT, |_| async {
        let mut writes = vec![
            WriteOp::Put { item: to_item(user, notification), condition: Condition::NotExists },
            count_write(store, user, 1).await?,
        ];
        writes.extend(extra.iter().cloned());
        match store.transact(writes).await {
            Ok(()) => Ok(Done(true)),
            Err(StoreError::ConditionFailed { index: 0 }) => Ok(Done(false)),
            Err(StoreError::ConditionFailed { .. }) => {
                Ok(Again(StoreError::Invalid(format!("the unread count of {user} kept changing"))))
            }
            Err(e) => Err(e),
        }
    })
    .await
}

/// One page of `user`'s notifications, newest first.
pub fn list_query(user: UserId) -> Query {
    Query { sort_prefix: Some("N#".into()), ascending: false, ..Query::partition(partition(user)) }
}

pub async fn list(store: &dyn Store, query: &Query) -> Result<(Vec<Notification>, Option<Item>), StoreError> {
    let Page { items, last } = store.query(query).await?;
    Ok((items.iter().filter_map(|item| super::decoded(item, from_item)).collect(), last))
}

pub async fn unread(store: &dyn Store, user: UserId) -> Result<i64, StoreError> {
    Ok(store.get(&counter_key(user)).await?.and_then(|item| item.int("count")).unwrap_or(0).max(0))
}

/// Marks notification `id` of `user` read; `None` when there is no such
/// notification. Marking a read one again changes nothing.
pub async fn mark_read(store: &dyn Store, user: UserId, id: &str) -> Result<Option<()>, StoreError> {
    retry::run(retry::UNREAD_COUNT, |_| async {
        let Some(item) = store.get(&key(user, id)).await? else {
            return Ok(Done(None));
        };
        let current = from_item(&item)?;
        if current.read {
            return Ok(Done(Some(())));
        }
        let next = Notification { read: true, version: current.version + 1, ..current.clone() };
        let writes = vec![
            WriteOp::Put { item: to_item(user, &next), condition: Condition::VersionIs(current.version) },
            count_write(store, user, -1).await?,
        ];
        match store.transact(writes).await {
            Ok(()) => Ok(Done(Some(()))),
            Err(StoreError::ConditionFailed { .. }) => {
                Ok(Again(StoreError::Invalid(format!("notification {id} kept changing"))))
            }
            Err(e) => Err(e),
        }
    })
    .await
}
