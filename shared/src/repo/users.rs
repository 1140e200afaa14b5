//! Users in the single table: `USER#<id>`/`PROFILE`, with a guard item
//! `EMAIL#<email>`/`EMAIL` written in the same transaction so the store itself
//! enforces one account per email (emails are stored lower-cased).

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{DisplayName, Email, PasswordHash, Role, User, UserId};
use crate::ports::{Condition, Item, ItemKey, Store, StoreError, WriteOp, ATTR_VERSION};

fn user_key(id: UserId) -> ItemKey {
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

fn to_item(user: &User) -> Item {
    let created = user.created_at.format(&Rfc3339).unwrap_or_default();
    let attrs = json!({
        "entity": "user",
        "id": user.id.to_string(),
        "email": user.email.as_str(),
        "displayName": user.display_name.as_str(),
        "role": user.role.as_str(),
        "passwordHash": user.password_hash.as_str(),
        "createdAt": created,
        ATTR_VERSION: 1,
    });
    Item::new(user_key(user.id), into_map(attrs))
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
    })
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

pub async fn get(store: &dyn Store, id: UserId) -> Result<Option<User>, StoreError> {
    store.get(&user_key(id)).await?.as_ref().map(from_item).transpose()
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
