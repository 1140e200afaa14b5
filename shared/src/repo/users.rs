//! Users in the single table: `USER#<id>`/`PROFILE`, with a guard item
//! `EMAIL#<email>`/`EMAIL` written in the same transaction so the store itself
//! enforces one account per email (emails are stored lower-cased). Every
//! account but an erased one is in index `gsi7` under partition `USERS`, sorted
//! by email (the admin list; an email prefix is a key prefix).
//!
//! Erasing an account replaces its item by a tombstone holding only the id,
//! the role and when it was erased (what others' records may still point at),
//! and deletes the email guard, so the email is free again; the same
//! transaction records the id in the erasure ledger (`ERASURE`/`USER#<id>`),
//! which backups carry and a restore applies again (`crate::backup`).

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{DisplayName, Email, PasswordHash, Role, User, UserId};
use crate::ports::{Condition, Index, Item, ItemKey, Query, Store, StoreError, WriteOp, ATTR_VERSION};

/// The key of account `id`.
pub fn key(id: UserId) -> ItemKey {
    ItemKey::new(format!("USER#{id}"), "PROFILE")
}

fn email_key(email: &Email) -> ItemKey {
    ItemKey::new(format!("EMAIL#{email}"), "EMAIL")
}

/// Errors of `create`. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// 409: an account with this email (in any letter case) exists.
    #[error("an account with this email already exists")]
    DuplicateEmail,
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `gsi7` partition of every account (the admin list).
pub const LIST_PARTITION: &str = "USERS";

fn to_item(user: &User) -> Item {
    let created = user.created_at.format(&Rfc3339).unwrap_or_default();
    let (index_pk, index_sk) = Index::Gsi7.key_attrs();
    let attrs = json!({
        "entity": "user",
        "id": user.id.to_string(),
        "email": user.email.as_str(),
        "displayName": user.display_name.as_str(),
        "role": user.role.as_str(),
        "passwordHash": user.password_hash.as_str(),
        "createdAt": created,
        "emailVerified": user.email_verified,
        "disabled": user.disabled,
        "sessionEpoch": user.session_epoch,
        index_pk: LIST_PARTITION,
        index_sk: format!("{}#{}", user.email, user.id),
        ATTR_VERSION: user.version,
    });
    Item::new(key(user.id), into_map(attrs))
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn from_item(item: &Item) -> Result<User, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("user item {} has a bad {what}", item.key.pk));
    Ok(User {
        id: item.str("id").and_then(UserId::parse).ok_or_else(|| bad("id"))?,
        email: item.str("email").and_then(|e| Email::parse(e).ok()).ok_or_else(|| bad("email"))?,
        display_name: item
            .str("displayName")
            .and_then(|n| DisplayName::parse(n).ok())
            .ok_or_else(|| bad("displayName"))?,
        role: item.str("role").and_then(Role::parse).ok_or_else(|| bad("role"))?,
        password_hash: PasswordHash::from_stored(
            item.str("passwordHash").ok_or_else(|| bad("passwordHash"))?.to_owned(),
        ),
        created_at: item
            .str("createdAt")
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or_else(|| bad("createdAt"))?,
        email_verified: item.attrs.get("emailVerified") == Some(&Value::Bool(true)),
        disabled: item.attrs.get("disabled") == Some(&Value::Bool(true)),
        session_epoch: item.int("sessionEpoch").unwrap_or(0),
        version: item.int(ATTR_VERSION).unwrap_or(1),
    })
}

fn is_tombstone(item: &Item) -> bool {
    item.attrs.get("erased") == Some(&Value::Bool(true))
}

/// Stores a new user and its email guard in one transaction.
pub async fn create(store: &dyn Store, user: &User) -> Result<(), CreateUserError> {
    let mut guard = Map::new();
    guard.insert("userId".into(), user.id.to_string().into());
    let writes = vec![
        WriteOp::Put { item: to_item(user), condition: Condition::NotExists },
        WriteOp::Put { item: Item::new(email_key(&user.email), guard), condition: Condition::NotExists },
    ];
    match store.transact(writes).await {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed { index: 1 }) => Err(CreateUserError::DuplicateEmail),
        Err(e) => Err(e.into()),
    }
}

/// The account `id` names; `None` when there is none or it was erased.
pub async fn get(store: &dyn Store, id: UserId) -> Result<Option<User>, StoreError> {
    Ok(match lookup(store, id).await? {
        Stored::Live(user) => Some(user),
        Stored::Erased | Stored::Missing => None,
    })
}

/// What is stored under an account id.
#[derive(Debug, Clone)]
pub enum Stored {
    Live(User),
    Erased,
    Missing,
}

/// The account `id` names, telling an erased account from a missing one.
pub async fn lookup(store: &dyn Store, id: UserId) -> Result<Stored, StoreError> {
    Ok(match store.get(&key(id)).await? {
        None => Stored::Missing,
        Some(item) if is_tombstone(&item) => Stored::Erased,
        Some(item) => Stored::Live(from_item(&item)?),
    })
}

/// The write storing `user`, whose `version` is one past `expected_version`
/// (conditional on that being current).
pub fn update(user: &User, expected_version: i64) -> WriteOp {
    WriteOp::Put { item: to_item(user), condition: Condition::VersionIs(expected_version) }
}

/// The write checking that `user` is still stored at its `version` (a
/// transaction that relies on what was read of it).
pub fn unchanged(user: &User) -> WriteOp {
    WriteOp::Check { key: key(user.id), condition: Condition::VersionIs(user.version) }
}

/// Stores the next version of `user` (`user.version` must be the stored one
/// plus one); `ConditionFailed` when someone else changed it first.
pub async fn save(store: &dyn Store, user: &User) -> Result<(), StoreError> {
    store.transact(vec![update(user, user.version - 1)]).await
}

/// Partition of the erasure ledger: an item per erased account.
pub const ERASURE_PARTITION: &str = "ERASURE";

/// The erasure ledger's entry for account `id`.
pub fn erasure_key(id: UserId) -> ItemKey {
    ItemKey::new(ERASURE_PARTITION, format!("USER#{id}"))
}

/// The account an erasure ledger item names, if `item` is one.
pub fn erased_by(item: &Item) -> Option<UserId> {
    (item.key.pk == ERASURE_PARTITION).then(|| item.key.sk.strip_prefix("USER#").and_then(UserId::parse)).flatten()
}

/// The write recording in the erasure ledger that account `id` was erased.
pub fn record_erasure(id: UserId, now: OffsetDateTime) -> WriteOp {
    let entry = json!({
        "entity": "erasure",
        "userId": id.to_string(),
        "erasedAt": now.format(&Rfc3339).unwrap_or_default(),
    });
    WriteOp::Put { item: Item::new(erasure_key(id), into_map(entry)), condition: Condition::None }
}

/// Every account the erasure ledger of `store` names.
pub async fn erased_accounts(store: &dyn Store) -> Result<Vec<UserId>, StoreError> {
    let mut ids = Vec::new();
    let mut query = Query::partition(ERASURE_PARTITION);
    loop {
        let page = store.query(&query).await?;
        ids.extend(page.items.iter().filter_map(erased_by));
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return Ok(ids),
        }
    }
}

/// The writes that erase `user`: a tombstone in place of the account (under
/// a version condition), the email guard's delete, and the erasure ledger's
/// entry.
pub fn erase(user: &User, now: OffsetDateTime) -> Vec<WriteOp> {
    let tombstone = json!({
        "entity": "user",
        "id": user.id.to_string(),
        "role": user.role.as_str(),
        "erased": true,
        "erasedAt": now.format(&Rfc3339).unwrap_or_default(),
        ATTR_VERSION: user.version + 1,
    });
    vec![
        WriteOp::Put {
            item: Item::new(key(user.id), into_map(tombstone)),
            condition: Condition::VersionIs(user.version),
        },
        WriteOp::Delete { key: email_key(&user.email), condition: Condition::None },
        record_erasure(user.id, now),
    ]
}

/// The admin list query: every account by email, or those whose email starts
/// with `email_prefix` (lower-cased).
pub fn list_query(email_prefix: Option<&str>) -> Query {
    let mut query = Query::index(Index::Gsi7, LIST_PARTITION);
    query.sort_prefix = email_prefix.map(str::to_lowercase);
    query
}

/// Accounts of `query` passing `keep` (see `repo::pages::filtered`).
pub async fn list(
    store: &dyn Store,
    query: Query,
    keep: impl Fn(&User) -> bool,
    limit: usize,
    budget: usize,
) -> Result<(Vec<User>, Option<Item>), StoreError> {
    super::pages::filtered(store, query, from_item, keep, limit, budget).await
}

pub async fn find_by_email(store: &dyn Store, email: &Email) -> Result<Option<User>, StoreError> {
    let Some(guard) = store.get(&email_key(email)).await? else {
        return Ok(None);
    };
    match guard.str("userId").and_then(UserId::parse) {
        Some(id) => get(store, id).await,
        None => Err(StoreError::Invalid(format!("email guard {} has no userId", guard.key.pk))),
    }
}
