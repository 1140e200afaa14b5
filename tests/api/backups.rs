//! Backups and restores beyond the round trip of `scheduled`: a backup carries
//! the archive objects its archived orders point at, so every order reads the
//! same by id after a restore into either backend; an archived order whose
//! object is gone answers a documented 410; a table whose first items have
//! expired but which holds a live one is not taken for empty; a restore
//! refuses a backup whose manifest is unsigned, edited, or signed with another
//! key before it reads any part, and writes nothing; a restore of a backup
//! taken before an erasure erases the account again.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::Method;
use serde_json::{json, Value};
use shared::adapters::{self, DynamoStore};
use shared::backup::{self, BackupError, BackupSettings};
use shared::domain::{Order, OrderId, Role, UserId};
use shared::ports::{BlobStore, Condition, Item, ItemKey, Store, SystemClock, WriteOp, ATTR_TTL};
use shared::repo::users;
use shared::tokens::Claims;
use shared::AppState;
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::accounts::call;
use crate::helpers::{
    access_token, assert_problem, fresh_bucket, fresh_table, spawn_app, unique_email, TestApp, PASSWORD,
};
use crate::orders::{checkout, shop, Shop};
use crate::scheduled::{archive_run, empty_store, finished_orders, key, restore_into, settled_digest};

/// An empty store and data bucket of one backend, kept alive by the guard.
struct Target {
    store: Arc<dyn Store>,
    data: Arc<dyn BlobStore>,
    _guards: (Option<TempDir>, Option<TempDir>),
}

async fn empty_target(aws: bool) -> Target {
    if aws {
        let (sdk, table) = fresh_table().await;
        let store = Arc::new(DynamoStore::new(adapters::dynamo_client(&sdk), table));
        Target { store, data: Arc::new(fresh_bucket().await), _guards: (None, None) }
    } else {
        let (store, guard) = empty_store(false).await;
        let dir = tempfile::tempdir().unwrap();
        let data = Arc::new(adapters::EmbeddedBlobs::open(dir.path(), "http://127.0.0.1:1").unwrap());
        Target { store, data, _guards: (guard, Some(dir)) }
    }
}

/// An admin's claims, to read any order through the use case.
fn admin() -> Claims {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Claims {
        sub: ulid::Ulid::new().to_string(),
        role: Role::Admin,
        sid: String::new(),
        iat: now,
        exp: now + 600,
        iss: String::new(),
        aud: String::new(),
    }
}

/// Every order of `ids` as `GET /orders/{id}` reads it from `store` and `data`.
async fn read_orders(app: &TestApp, store: &Arc<dyn Store>, data: &Arc<dyn BlobStore>, ids: &[OrderId]) -> Vec<Order> {
    let state = AppState { store: Arc::clone(store), data_bucket: Some(Arc::clone(data)), ..app.state.clone() };
    let mut orders = Vec::new();
    for id in ids {
        let order = shared::orders::read(&state, &admin(), &id.to_string()).await;
        orders.push(order.unwrap_or_else(|e| panic!("order {id}: {e}")));
    }
    orders
}

/// Finished orders archived (as if half a year had passed) and one open order
/// left in the table; returns every order's id.
async fn archived_and_live_orders(app: &TestApp, shop: &Shop) -> Vec<OrderId> {
    let mut ids = finished_orders(app, shop, 3).await;
    let body = json!({"lines": [{"productId": shop.pears, "quantity": 1}]});
    let placed: Value = checkout(app, &access_token(&shop.customer), &body, None).await.json().await.unwrap();
    ids.push(OrderId::parse(placed["orders"][0]["id"].as_str().unwrap()).unwrap());
    let bucket = app.state.data_bucket.clone().unwrap();
    let later = OffsetDateTime::now_utc() + time::Duration::days(181);
    let report = archive_run(app.state.store.as_ref(), bucket.as_ref(), later).await.unwrap();
    assert_eq!(report.archived, ids.len() - 1, "every finished order is archived: {report:?}");
    ids
}

#[tokio::test]
async fn a_restored_backup_reads_every_order_by_id_archived_ones_included_on_both_backends() {
    let app = spawn_app().await;
    let shop = shop(&app, 20).await;
    let ids = archived_and_live_orders(&app, &shop).await;
    let source_store = Arc::clone(&app.state.store);
    let source_data = app.state.data_bucket.clone().unwrap();
    let expected = read_orders(&app, &source_store, &source_data, &ids).await;
    assert_eq!(expected.iter().filter(|o| o.archived).count(), ids.len() - 1);
    let digest = settled_digest(source_store.as_ref()).await;

    // Embedded store to DynamoDB: the archive objects come along.
    let manifest = backup::back_up(
        source_store.as_ref(),
        source_data.as_ref(),
        source_data.as_ref(),
        &key(),
        &SystemClock,
        &BackupSettings::default(),
        "embedded",
    )
    .await
    .unwrap();
    assert!(!manifest.archive_objects.is_empty() && manifest.missing_archive_objects.is_empty(), "{manifest:?}");
    let dynamo = empty_target(true).await;
    backup::restore(
        source_data.as_ref(),
        &manifest.id,
        &key(),
        backup::Target { store: dynamo.store.as_ref(), data: dynamo.data.as_ref(), clock: &SystemClock },
        false,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(read_orders(&app, &dynamo.store, &dynamo.data, &ids).await, expected, "read back from DynamoDB");
    assert_eq!(backup::digest(dynamo.store.as_ref()).await.unwrap(), digest);

    // And back: DynamoDB to an empty embedded store and data bucket.
    let again = backup::back_up(
        dynamo.store.as_ref(),
        dynamo.data.as_ref(),
        dynamo.data.as_ref(),
        &key(),
        &SystemClock,
        &BackupSettings::default(),
        "aws",
    )
    .await
    .unwrap();
    assert_eq!(again.archive_objects.len(), manifest.archive_objects.len());
    let embedded = empty_target(false).await;
    backup::restore(
        dynamo.data.as_ref(),
        &again.id,
        &key(),
        backup::Target { store: embedded.store.as_ref(), data: embedded.data.as_ref(), clock: &SystemClock },
        false,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(read_orders(&app, &embedded.store, &embedded.data, &ids).await, expected, "read back locally");
    assert_eq!(backup::digest(embedded.store.as_ref()).await.unwrap(), digest);
}

async fn an_archived_order_whose_object_is_missing_answers_410(app: TestApp) {
    let shop = shop(&app, 20).await;
    let ids = archived_and_live_orders(&app, &shop).await;
    let bucket = app.state.data_bucket.clone().unwrap();
    for key in bucket.list(shared::archive::OBJECT_PREFIX).await.unwrap() {
        bucket.delete(&key).await.unwrap();
    }
    let customer = access_token(&shop.customer);
    let missing = app.get(&format!("/orders/{}", ids[0]), Some(&customer)).await;
    let problem = assert_problem(missing, 410).await;
    assert!(problem["detail"].as_str().unwrap().contains("archive"), "{problem}");
    // A backup taken now says which object it could not copy, and still completes.
    let manifest = backup::back_up(
        app.state.store.as_ref(),
        bucket.as_ref(),
        bucket.as_ref(),
        &key(),
        &SystemClock,
        &BackupSettings::default(),
        "test",
    )
    .await
    .unwrap();
    assert!(manifest.archive_objects.is_empty() && !manifest.missing_archive_objects.is_empty(), "{manifest:?}");
}

crate::helpers::scenarios!(
    embedded: [
        an_archived_order_whose_object_is_missing_answers_410,
        a_fresh_stack_that_has_served_a_list_still_takes_a_restore,
    ],
);

#[tokio::test]
async fn a_backup_copy_of_an_archive_object_that_was_altered_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let shop = shop(&app, 20).await;
    archived_and_live_orders(&app, &shop).await;
    let bucket = app.state.data_bucket.clone().unwrap();
    let manifest = backup::back_up(
        app.state.store.as_ref(),
        bucket.as_ref(),
        bucket.as_ref(),
        &key(),
        &SystemClock,
        &BackupSettings::default(),
        "test",
    )
    .await
    .unwrap();
    let copy = &manifest.archive_objects[0].copy;
    bucket.put(copy, Bytes::from_static(b"not the object"), "application/x-ndjson").await.unwrap();
    let target = empty_target(false).await;
    let error = restore_into(bucket.as_ref(), &manifest.id, target.store.as_ref()).await.unwrap_err();
    assert!(error.to_string().contains(copy.as_str()) && error.to_string().contains("SHA-256"), "{error}");
    assert_eq!(backup::digest(target.store.as_ref()).await.unwrap().0, 0, "nothing was written");
}

#[tokio::test]
async fn restore_refuses_a_table_whose_first_items_expired_but_which_holds_a_live_one() {
    // DynamoDB (here moto) applies a scan's limit before expired items are
    // dropped: more than a page of expired items comes first.
    let (target, _guard) = empty_store(true).await;
    let expired = OffsetDateTime::now_utc().unix_timestamp() - 3600;
    let numbers: Vec<usize> = (0..130).collect();
    for chunk in numbers.chunks(25) {
        let writes = chunk
            .iter()
            .map(|n| {
                let attrs = json!({"entity": "session", ATTR_TTL: expired});
                let item = Item::new(ItemKey::new(format!("AAAA#{n:03}"), "-"), attrs.as_object().unwrap().clone());
                WriteOp::Put { item, condition: Condition::None }
            })
            .collect();
        target.transact(writes).await.unwrap();
    }
    let live = Item::new(ItemKey::new("ZZZZ#live", "-"), json!({"entity": "user"}).as_object().unwrap().clone());
    target.put(live, Condition::None).await.unwrap();

    let (source, _source_guard) = empty_store(false).await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = adapters::EmbeddedBlobs::open(dir.path(), "http://127.0.0.1:1").unwrap();
    let manifest =
        backup::back_up(source.as_ref(), &bucket, &bucket, &key(), &SystemClock, &BackupSettings::default(), "test")
            .await
            .unwrap();
    let refused = restore_into(&bucket, &manifest.id, target.as_ref()).await.unwrap_err();
    assert!(matches!(&refused, BackupError::NotEmpty { pk, .. } if pk == "ZZZZ#live"), "{refused}");
    assert_eq!(backup::digest(target.as_ref()).await.unwrap().0, 1, "the live item is all there is, untouched");
}

async fn a_fresh_stack_that_has_served_a_list_still_takes_a_restore(app: TestApp) {
    let (source, _source_guard) = empty_store(false).await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = adapters::EmbeddedBlobs::open(dir.path(), "http://127.0.0.1:1").unwrap();
    let manifest =
        backup::back_up(source.as_ref(), &bucket, &bucket, &key(), &SystemClock, &BackupSettings::default(), "test")
            .await
            .unwrap();
    // Serving a list makes the deployment's cursor key: configuration, not data.
    assert_eq!(app.get("/categories", None).await.status(), 200);
    assert_eq!(backup::digest(app.state.store.as_ref()).await.unwrap().0, 1, "the cursor key alone");
    restore_into(&bucket, &manifest.id, app.state.store.as_ref()).await.unwrap();
}

/// A backup of a store with some data, signed with `key`, in the app's data bucket.
async fn signed_backup(app: &TestApp, key: &backup::BackupKey) -> backup::Manifest {
    shop(app, 5).await;
    let bucket = app.state.data_bucket.clone().unwrap();
    let store = app.state.store.as_ref();
    backup::back_up(store, bucket.as_ref(), bucket.as_ref(), key, &SystemClock, &BackupSettings::default(), "test")
        .await
        .unwrap()
}

/// Restores backup `id` into an empty store, expecting a refusal for want of
/// authenticity before any part was read and with nothing written; returns
/// the message.
async fn refused_as_unauthentic(app: &TestApp, id: &str) -> String {
    let bucket = app.state.data_bucket.clone().unwrap();
    let target = empty_target(false).await;
    let mut progress = Vec::new();
    let error = backup::restore(
        bucket.as_ref(),
        id,
        &key(),
        backup::Target { store: target.store.as_ref(), data: target.data.as_ref(), clock: &SystemClock },
        false,
        &mut |p| progress.push(p),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, BackupError::Unauthentic { .. }), "{error}");
    assert!(progress.is_empty(), "no part was read: {progress:?}");
    assert_eq!(backup::digest(target.store.as_ref()).await.unwrap().0, 0, "nothing was written");
    error.to_string()
}

#[tokio::test]
async fn restore_refuses_a_backup_signed_with_another_key_and_writes_nothing() {
    let app = spawn_app().await;
    let other = backup::BackupKey::new(&[9; 32]).unwrap();
    let manifest = signed_backup(&app, &other).await;
    let message = refused_as_unauthentic(&app, &manifest.id).await;
    assert!(message.contains("does not verify") && message.contains("another key"), "{message}");
}

#[tokio::test]
async fn restore_refuses_an_edited_manifest_and_writes_nothing() {
    let app = spawn_app().await;
    let manifest = signed_backup(&app, &key()).await;
    let bucket = app.state.data_bucket.clone().unwrap();
    let path = format!("backups/{}/manifest.json", manifest.id);
    let text = String::from_utf8(bucket.get(&path).await.unwrap().unwrap().bytes.to_vec()).unwrap();
    let edited = text.replace("\"source\": \"test\"", "\"source\": \"aws\"");
    assert_ne!(edited, text);
    bucket.put(&path, Bytes::from(edited), "application/json").await.unwrap();
    let message = refused_as_unauthentic(&app, &manifest.id).await;
    assert!(message.contains("changed after it was signed"), "{message}");
}

#[tokio::test]
async fn restore_refuses_an_unsigned_backup_and_writes_nothing() {
    let app = spawn_app().await;
    let manifest = signed_backup(&app, &key()).await;
    let bucket = app.state.data_bucket.clone().unwrap();
    bucket.delete(&format!("backups/{}/manifest.json.sig", manifest.id)).await.unwrap();
    let message = refused_as_unauthentic(&app, &manifest.id).await;
    assert!(message.contains("unsigned"), "{message}");
}

#[tokio::test]
async fn a_restore_of_a_backup_taken_before_an_erasure_erases_the_account_again() {
    let app = spawn_app().await;
    let bucket = app.state.data_bucket.clone().unwrap();
    let store = app.state.store.as_ref();
    let (customer_email, farmer_email) = (unique_email("erased-customer"), unique_email("erased-farmer"));
    let customer = app.register(&customer_email, "customer").await;
    let farmer = app.register(&farmer_email, "farmer").await;
    let ids: Vec<UserId> =
        [&customer, &farmer].iter().map(|s| UserId::parse(s["user"]["id"].as_str().unwrap()).unwrap()).collect();
    let back_up = || async {
        backup::back_up(
            store,
            bucket.as_ref(),
            bucket.as_ref(),
            &key(),
            &SystemClock,
            &BackupSettings::default(),
            "test",
        )
        .await
        .unwrap()
    };
    let before = back_up().await;
    assert!(before.erased_users.is_empty());
    for session in [&customer, &farmer] {
        let body = json!({"password": PASSWORD});
        let erased = call(&app, Method::DELETE, "/users/me", Some(&body), Some(&access_token(session))).await;
        assert_eq!(erased.status(), 204);
    }
    let after = back_up().await;
    let mut expected: Vec<String> = ids.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(after.erased_users, expected, "the later backup carries the erasure ledger");

    let target = empty_target(false).await;
    restore_into(bucket.as_ref(), &before.id, target.store.as_ref()).await.unwrap();
    for (id, email) in ids.iter().zip([&customer_email, &farmer_email]) {
        let stored = users::lookup(target.store.as_ref(), *id).await.unwrap();
        assert!(matches!(stored, users::Stored::Erased), "account {id} is erased again: {stored:?}");
        let email = shared::domain::Email::parse(email).unwrap();
        assert!(users::find_by_email(target.store.as_ref(), &email).await.unwrap().is_none(), "its email is free");
    }
    let mut ledger: Vec<String> =
        users::erased_accounts(target.store.as_ref()).await.unwrap().iter().map(ToString::to_string).collect();
    ledger.sort();
    assert_eq!(ledger, expected, "the restored store's ledger records both");
}
