//! The scheduled functions end to end: backups restore into an empty store of
//! either backend with identical data (both directions), a corrupt part or a
//! non-empty target is refused with nothing written, the archive survives being
//! killed after writing its object and halfway through deleting (every eligible
//! order archived exactly once, young or unfinished orders untouched, archived
//! orders still readable, sales figures unchanged), both jobs succeed on an
//! empty table, the photo clean-up removes only what no listed product uses
//! after the grace period, and the local stack fires the template's schedules.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::Method;
use serde_json::{json, Value};
use shared::adapters::{self, DynamoStore, EmbeddedStore};
use shared::archive::{self, ArchiveSettings};
use shared::backup::{self, BackupError, BackupSettings};
use shared::domain::{ImageId, OrderId, ProductId};
use shared::ports::{
    BlobStore, Clock, Item, ItemKey, Page, Query, Scan, ScanPage, Store, StoreError, SystemClock, WriteOp,
};
use shared::repo::{orders, products};
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::accounts::{call, eventually};
use crate::helpers::{access_token, fresh_bucket, fresh_table, spawn_app, spawn_app_on_aws, TestApp};
use crate::orders::{checkout, shop, Shop};

/// A clock standing at one instant.
pub(crate) struct At(pub(crate) OffsetDateTime);

impl Clock for At {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// An empty store of the same kind as `app`'s (a fresh table on the test
/// endpoint, or a fresh embedded store), kept alive by the returned guard.
pub(crate) async fn empty_store(aws: bool) -> (Arc<dyn Store>, Option<TempDir>) {
    if aws {
        let (sdk, table) = fresh_table().await;
        (Arc::new(DynamoStore::new(adapters::dynamo_client(&sdk), table)), None)
    } else {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("restored.db")).unwrap();
        (Arc::new(store), Some(dir))
    }
}

pub(crate) fn is_aws(app: &TestApp) -> bool {
    matches!(app.state.backend, shared::Backend::Aws { .. })
}

/// The store's digest once background work (outbox relay, worker) has settled:
/// two readings half a second apart agree.
pub(crate) async fn settled_digest(store: &dyn Store) -> (usize, String) {
    let mut last = backup::digest(store).await.unwrap();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = backup::digest(store).await.unwrap();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the store never settled");
}

/// Some of everything: accounts, a category, products, checkouts across two
/// farmers moved along (notifications, sales figures, mail events).
async fn marketplace_data(app: &TestApp) -> Shop {
    let shop = shop(app, 20).await;
    let customer = access_token(&shop.customer);
    let farmer_a = access_token(&shop.farmer_a);
    for _ in 0..3 {
        let body =
            json!({"lines": [{"productId": shop.apples, "quantity": 2}, {"productId": shop.cheese, "quantity": 1}]});
        let placed: Value = checkout(app, &customer, &body, None).await.json().await.unwrap();
        let order = placed["orders"].as_array().unwrap().iter().find(|o| o["farmerId"] == shop.farmer_a["user"]["id"]);
        let order = order.unwrap()["id"].as_str().unwrap().to_owned();
        let confirmed = call(
            app,
            Method::POST,
            &format!("/orders/{order}/status"),
            Some(&json!({"status": "confirmed"})),
            Some(&farmer_a),
        )
        .await;
        assert_eq!(confirmed.status(), 200);
    }
    shop
}

/// Restores backup `id` into `target`, putting archive objects back into the
/// backup's own bucket.
pub(crate) async fn restore_into(
    bucket: &dyn BlobStore,
    id: &str,
    target: &dyn Store,
) -> Result<backup::Manifest, BackupError> {
    let into = backup::Target { store: target, data: bucket, clock: &SystemClock };
    backup::restore(bucket, id, &key(), into, false, &mut |_| {}).await
}

/// The backup key of these tests.
pub(crate) fn key() -> backup::BackupKey {
    backup::BackupKey::new(&[7; 32]).unwrap()
}

#[tokio::test]
async fn a_backup_from_the_embedded_store_restores_into_dynamodb_identically() {
    let app = spawn_app().await;
    marketplace_data(&app).await;
    let source = settled_digest(app.state.store.as_ref()).await;
    let bucket = app.state.data_bucket.clone().unwrap();
    let settings = BackupSettings { part_items: 7, ..BackupSettings::default() };
    let manifest = backup::back_up(
        app.state.store.as_ref(),
        bucket.as_ref(),
        bucket.as_ref(),
        &key(),
        &SystemClock,
        &settings,
        "embedded",
    )
    .await
    .unwrap();
    assert_eq!(manifest.items as usize, source.0);
    assert!(manifest.parts.len() > 4, "several parts: {}", manifest.parts.len());
    for entity in ["user", "product", "order", "checkout", "category"] {
        assert!(manifest.counts.get(entity).copied().unwrap_or_default() > 0, "{entity} in {:?}", manifest.counts);
    }
    let (target, _guard) = empty_store(true).await;
    restore_into(bucket.as_ref(), &manifest.id, target.as_ref()).await.unwrap();
    assert_eq!(backup::digest(target.as_ref()).await.unwrap(), source, "DynamoDB holds exactly what was backed up");
}

#[tokio::test]
async fn a_backup_from_dynamodb_restores_into_the_embedded_store_identically() {
    let app = spawn_app_on_aws().await;
    marketplace_data(&app).await;
    let source = settled_digest(app.state.store.as_ref()).await;
    let bucket = fresh_bucket().await;
    let manifest = backup::back_up(
        app.state.store.as_ref(),
        &bucket,
        &bucket,
        &key(),
        &SystemClock,
        &BackupSettings::default(),
        "aws",
    )
    .await
    .unwrap();
    assert_eq!(manifest.items as usize, source.0);
    assert_eq!(manifest.source, "aws");
    assert!(manifest.read_units > 0.0 || manifest.items == 0, "the scan reports consumed capacity or none at all");
    let (target, _guard) = empty_store(false).await;
    restore_into(&bucket, &manifest.id, target.as_ref()).await.unwrap();
    assert_eq!(backup::digest(target.as_ref()).await.unwrap(), source, "the embedded store holds exactly the backup");
}

async fn corrupt_part_or_busy_target_is_refused(app: TestApp) {
    marketplace_data(&app).await;
    let store = app.state.store.as_ref();
    let bucket = app.state.data_bucket.clone().unwrap();
    let settings = BackupSettings { part_items: 5, ..BackupSettings::default() };
    let manifest = backup::back_up(store, bucket.as_ref(), bucket.as_ref(), &key(), &SystemClock, &settings, "test")
        .await
        .unwrap();

    // A non-empty target is refused (here: the source itself), and forcing it works.
    let before = settled_digest(store).await;
    let refused = restore_into(bucket.as_ref(), &manifest.id, store).await.unwrap_err();
    assert!(matches!(refused, BackupError::NotEmpty { .. }), "{refused}");
    assert!(refused.to_string().contains("not empty"), "{refused}");
    let into = backup::Target { store, data: bucket.as_ref(), clock: &SystemClock };
    backup::restore(bucket.as_ref(), &manifest.id, &key(), into, true, &mut |_| {}).await.unwrap();

    // One part with a flipped byte: refused, naming the part, nothing written.
    let victim = &manifest.parts[manifest.parts.len() / 2];
    let mut bytes = bucket.get(&victim.key).await.unwrap().unwrap().bytes.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    bucket.put(&victim.key, Bytes::from(bytes), "application/x-ndjson").await.unwrap();
    let (target, _guard) = empty_store(is_aws(&app)).await;
    let mut progress = Vec::new();
    let into = backup::Target { store: target.as_ref(), data: bucket.as_ref(), clock: &SystemClock };
    let error = backup::restore(bucket.as_ref(), &manifest.id, &key(), into, false, &mut |p| progress.push(p))
        .await
        .unwrap_err();
    assert!(matches!(&error, BackupError::CorruptPart { part, .. } if *part == victim.key), "{error}");
    assert!(error.to_string().contains(&victim.key) && error.to_string().contains("SHA-256"), "{error}");
    assert!(
        progress.iter().all(|p| matches!(p, backup::Progress::Verified { .. })),
        "nothing was written: {progress:?}"
    );
    assert_eq!(backup::digest(target.as_ref()).await.unwrap().0, 0, "the target is still empty");

    // A part missing altogether, or a manifest that is not one, is refused too.
    bucket.delete(&victim.key).await.unwrap();
    let missing = restore_into(bucket.as_ref(), &manifest.id, target.as_ref()).await.unwrap_err();
    assert!(missing.to_string().contains(&victim.key) && missing.to_string().contains("missing"), "{missing}");
    let unknown = restore_into(bucket.as_ref(), "20200101T000000Z-NOPE00", target.as_ref()).await.unwrap_err();
    assert!(unknown.to_string().contains("does not exist"), "{unknown}");
    assert_eq!(backup::digest(target.as_ref()).await.unwrap().0, 0);
    assert_eq!(settled_digest(store).await.0, before.0, "the forced restore rewrote the same items");
}

/// A store that "dies" (fails, writing nothing) at the `fail_at`-th
/// transaction deleting orders, as if the process were killed there.
struct KilledAt {
    inner: Arc<dyn Store>,
    fail_at: usize,
    deleting_transactions: AtomicUsize,
}

#[async_trait]
impl Store for KilledAt {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn transact(&self, writes: Vec<WriteOp>) -> Result<(), StoreError> {
        let deletes_orders =
            writes.iter().any(|w| matches!(w, WriteOp::Delete { key, .. } if key.pk.starts_with("ORDER#")));
        if deletes_orders && self.deleting_transactions.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(StoreError::backend("killed", std::io::Error::other("process killed")));
        }
        self.inner.transact(writes).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn scan(&self, scan: &Scan) -> Result<ScanPage, StoreError> {
        self.inner.scan(scan).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn increment(&self, key: &ItemKey, attr: &str, expires_at: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, attr, expires_at).await
    }
}

/// Finished orders: `delivered` ones through the API (with events, sales
/// figures) and `count` more written directly as copies of one of them.
pub(crate) async fn finished_orders(app: &TestApp, shop: &Shop, count: usize) -> Vec<OrderId> {
    let customer = access_token(&shop.customer);
    let farmer = access_token(&shop.farmer_a);
    let mut ids = Vec::new();
    for (n, last) in [("delivered", "delivered"), ("cancelled", "cancelled")] {
        let body = json!({"lines": [{"productId": shop.apples, "quantity": 1}]});
        let placed: Value = checkout(app, &customer, &body, None).await.json().await.unwrap();
        let id = placed["orders"][0]["id"].as_str().unwrap().to_owned();
        let steps: &[&str] = if last == "delivered" { &["confirmed", "ready", "delivered"] } else { &["cancelled"] };
        for step in steps {
            let response =
                call(app, Method::POST, &format!("/orders/{id}/status"), Some(&json!({"status": step})), Some(&farmer))
                    .await;
            assert_eq!(response.status(), 200, "{n}: {step}");
        }
        ids.push(OrderId::parse(&id).unwrap());
    }
    let template = orders::get(app.state.store.as_ref(), ids[0]).await.unwrap().unwrap();
    for _ in 0..count {
        let copy = shared::domain::Order { id: OrderId::new(), ..template.clone() };
        app.state.store.transact(vec![orders::create(&copy)]).await.unwrap();
        ids.push(copy.id);
    }
    ids
}

pub(crate) async fn archive_run(
    store: &dyn Store,
    bucket: &dyn BlobStore,
    now: OffsetDateTime,
) -> Result<archive::ArchiveReport, archive::ArchiveError> {
    let settings = ArchiveSettings { min_age: time::Duration::days(180), batch_size: 1000 };
    archive::run(store, bucket, &At(now), settings, Instant::now() + Duration::from_secs(120)).await
}

async fn the_archive_survives_being_killed_and_keeps_every_order_once(app: TestApp) {
    let shop = shop(&app, 100).await;
    let customer = access_token(&shop.customer);
    let farmer = access_token(&shop.farmer_a);
    let store = Arc::clone(&app.state.store);
    let bucket = app.state.data_bucket.clone().unwrap();

    let eligible = finished_orders(&app, &shop, 28).await;
    // Not finished (old enough, but still confirmed).
    let body = json!({"lines": [{"productId": shop.pears, "quantity": 1}]});
    let placed: Value = checkout(&app, &customer, &body, None).await.json().await.unwrap();
    let open = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    let confirm = json!({"status": "confirmed"});
    assert_eq!(
        call(&app, Method::POST, &format!("/orders/{open}/status"), Some(&confirm), Some(&farmer)).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cutoff = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Too young: finished after the cutoff.
    let young = finished_orders(&app, &shop, 0).await;
    let untouched: Vec<OrderId> = young.iter().copied().chain([OrderId::parse(&open).unwrap()]).collect();
    let mut versions_before = Vec::new();
    for id in &untouched {
        versions_before.push(orders::get(store.as_ref(), *id).await.unwrap().unwrap().version);
    }
    eventually("the sales figures of every API order", || async {
        let sales: Value = app.get("/farmers/me/sales", Some(&farmer)).await.json().await.unwrap();
        (sales["days"].as_array().map_or(0, Vec::len) > 0).then_some(())
    })
    .await;
    settled_digest(store.as_ref()).await;
    let sales_before: Value = app.get("/farmers/me/sales", Some(&farmer)).await.json().await.unwrap();
    let now = cutoff + time::Duration::days(180);

    // Killed after the object was written and read back, before any delete.
    let killed = KilledAt { inner: Arc::clone(&store), fail_at: 1, deleting_transactions: AtomicUsize::new(0) };
    assert!(archive_run(&killed, bucket.as_ref(), now).await.is_err());
    assert_eq!(bucket.list(archive::OBJECT_PREFIX).await.unwrap().len(), 1, "the object was written");
    for id in &eligible {
        assert!(orders::get(store.as_ref(), *id).await.unwrap().is_some(), "nothing left the table yet");
    }
    // Rerun, killed halfway through deleting (after the first transaction of 12).
    let killed = KilledAt { inner: Arc::clone(&store), fail_at: 2, deleting_transactions: AtomicUsize::new(0) };
    assert!(archive_run(&killed, bucket.as_ref(), now).await.is_err());
    let mut left = 0;
    for id in &eligible {
        left += usize::from(orders::get(store.as_ref(), *id).await.unwrap().is_some());
    }
    assert_eq!(left, eligible.len() - 12, "halfway: the first 12 left the table");
    // Killed halfway again, then a clean run finishes.
    let killed = KilledAt { inner: Arc::clone(&store), fail_at: 2, deleting_transactions: AtomicUsize::new(0) };
    assert!(archive_run(&killed, bucket.as_ref(), now).await.is_err());
    let report = archive_run(store.as_ref(), bucket.as_ref(), now).await.unwrap();
    assert!(report.complete && report.resumed == 1, "{report:?}");
    let again = archive_run(store.as_ref(), bucket.as_ref(), now).await.unwrap();
    assert_eq!((again.archived, again.batches), (0, 0), "nothing left to archive: {again:?}");

    // Every eligible order is in the archive exactly once, and none in the table.
    let archived = archive::read_all(bucket.as_ref()).await.unwrap();
    let mut counts: BTreeMap<OrderId, usize> = BTreeMap::new();
    for order in &archived {
        *counts.entry(order.id).or_default() += 1;
    }
    assert_eq!(counts.len(), eligible.len(), "exactly the eligible orders are archived");
    for id in &eligible {
        assert_eq!(counts.get(id), Some(&1), "order {id} archived once");
        assert!(orders::get(store.as_ref(), *id).await.unwrap().is_none(), "order {id} left the table");
    }
    for key in bucket.list(archive::OBJECT_PREFIX).await.unwrap() {
        let month = cutoff.month() as u8;
        assert!(key.contains(&format!("year={}/month={month:02}/", cutoff.year())), "{key}");
    }
    // The too young and the unfinished are untouched.
    for (id, version) in untouched.iter().zip(versions_before) {
        let order = orders::get(store.as_ref(), *id).await.unwrap().expect("still in the table");
        assert_eq!(order.version, version, "order {id} untouched");
    }
    // Archived orders still read through the API, for their customer and farmer.
    for token in [&customer, &farmer] {
        let response = app.get(&format!("/orders/{}", eligible[0]), Some(token)).await;
        assert_eq!(response.status(), 200);
        let order: Value = response.json().await.unwrap();
        assert_eq!((order["archived"].clone(), order["status"].clone()), (json!(true), json!("delivered")));
        crate::helpers::assert_documented("Order", &order);
    }
    let paid = json!({"status": "paid"});
    let payment =
        call(&app, Method::POST, &format!("/orders/{}/payment", eligible[0]), Some(&paid), Some(&farmer)).await;
    assert!(crate::helpers::assert_problem(payment, 409).await["detail"].as_str().unwrap().contains("archived"));
    let stranger = access_token(&app.register(&crate::helpers::unique_email("stranger"), "customer").await);
    assert_eq!(app.get(&format!("/orders/{}", eligible[0]), Some(&stranger)).await.status(), 404);
    let live: Value = app.get(&format!("/orders/{}", young[0]), Some(&customer)).await.json().await.unwrap();
    assert_eq!(live["archived"], json!(false));
    // The farmer's sales figures did not change.
    let sales_after: Value = app.get("/farmers/me/sales", Some(&farmer)).await.json().await.unwrap();
    assert_eq!(sales_after, sales_before, "archiving leaves the sales figures alone");
    // No journal entry is left.
    let journal = store.query(&Query::partition("ARCHIVE")).await.unwrap();
    assert!(journal.items.is_empty(), "{:?}", journal.items);
}

async fn archive_and_backup_on_an_empty_table_write_nothing_surprising(app: TestApp) {
    let (store, _guard) = empty_store(is_aws(&app)).await;
    let (bucket_dir, bucket): (Option<TempDir>, Arc<dyn BlobStore>) = if is_aws(&app) {
        (None, Arc::new(fresh_bucket().await))
    } else {
        let dir = tempfile::tempdir().unwrap();
        let blobs = adapters::EmbeddedBlobs::open(dir.path(), "http://127.0.0.1:1").unwrap();
        (Some(dir), Arc::new(blobs))
    };
    let _ = bucket_dir;
    let report = archive_run(store.as_ref(), bucket.as_ref(), OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(report, archive::ArchiveReport { complete: true, ..Default::default() });
    assert!(bucket.list("").await.unwrap().is_empty(), "the archive wrote nothing");
    let cleanup = shared::photo_cleanup::run(store.as_ref(), bucket.as_ref(), &SystemClock, time::Duration::days(7))
        .await
        .unwrap();
    assert_eq!(cleanup, shared::photo_cleanup::CleanupReport::default());

    let manifest = backup::back_up(
        store.as_ref(),
        bucket.as_ref(),
        bucket.as_ref(),
        &key(),
        &SystemClock,
        &BackupSettings::default(),
        "test",
    )
    .await
    .unwrap();
    assert_eq!((manifest.items, manifest.parts.len()), (0, 0));
    assert!(manifest.counts.is_empty());
    let keys = bucket.list("").await.unwrap();
    let expected = ["manifest.json", "manifest.json.sig"].map(|name| format!("backups/{}/{name}", manifest.id));
    assert_eq!(keys, expected, "only the manifest and its signature");
    assert_eq!(backup::digest(store.as_ref()).await.unwrap().0, 0, "and the table is still empty");
    // The empty backup restores into an empty store.
    let (target, _target_guard) = empty_store(is_aws(&app)).await;
    restore_into(bucket.as_ref(), &manifest.id, target.as_ref()).await.unwrap();
    assert_eq!(backup::digest(target.as_ref()).await.unwrap().0, 0);
}

fn image(product: ProductId, name: &str) -> shared::domain::ProductImage {
    shared::domain::ProductImage {
        id: ImageId::new(),
        key: format!("public/images/{product}/{name}.jpg"),
        thumbnail_key: format!("public/thumbs/{product}/{name}.jpg"),
        width: 800,
        height: 600,
        content_type: "image/jpeg".into(),
    }
}

async fn photo_cleanup_removes_only_unreferenced_photos_after_the_grace_period(app: TestApp) {
    let shop = shop(&app, 5).await;
    let farmer = access_token(&shop.farmer_a);
    let store = app.state.store.as_ref();
    let assets = app.state.blobs.clone().unwrap();
    // Apples keep photo "kept"; pears had photo "shared" too and get unlisted;
    // "removed" was taken off apples.
    let apples = ProductId::parse(&shop.apples).unwrap();
    let pears = ProductId::parse(&shop.pears).unwrap();
    let kept = image(apples, "kept");
    let removed = image(apples, "removed");
    let unlisted = image(pears, "unlisted");
    for (id, images) in [(apples, vec![kept.clone()]), (pears, vec![unlisted.clone()])] {
        let current = products::get(store, id).await.unwrap().unwrap();
        let next = shared::domain::Product { images, version: current.version + 1, ..current.clone() };
        products::save(store, Some(&current), &next).await.unwrap();
    }
    for img in [&kept, &removed, &unlisted] {
        for key in [&img.key, &img.thumbnail_key] {
            assets.put(key, Bytes::from_static(b"jpeg"), "image/jpeg").await.unwrap();
        }
    }
    let unlist = call(&app, Method::DELETE, &format!("/products/{}", shop.pears), None, Some(&farmer)).await;
    assert_eq!(unlist.status(), 204);

    let start = OffsetDateTime::now_utc();
    let grace = time::Duration::days(7);
    let first = shared::photo_cleanup::run(store, assets.as_ref(), &At(start), grace).await.unwrap();
    assert_eq!((first.marked, first.removed), (4, 0), "{first:?}");
    let early =
        shared::photo_cleanup::run(store, assets.as_ref(), &At(start + time::Duration::days(6)), grace).await.unwrap();
    assert_eq!((early.marked, early.removed), (0, 0), "still within the grace period: {early:?}");
    let later =
        shared::photo_cleanup::run(store, assets.as_ref(), &At(start + time::Duration::days(8)), grace).await.unwrap();
    assert_eq!(later.removed, 4, "{later:?}");
    let left = assets.list(products::PUBLIC_PREFIX).await.unwrap();
    let mut expected = vec![kept.key.clone(), kept.thumbnail_key.clone()];
    expected.sort();
    let mut public: Vec<String> =
        left.into_iter().filter(|k| k.contains(&shop.apples) || k.contains(&shop.pears)).collect();
    public.sort();
    assert_eq!(public, expected, "only the referenced photo stays");
    let product: Value = app.get(&format!("/products/{}", shop.apples), None).await.json().await.unwrap();
    assert_eq!(product["images"].as_array().unwrap().len(), 1);
}

crate::helpers::scenarios!(
    on_both: [the_archive_survives_being_killed_and_keeps_every_order_once],
    embedded: [
        corrupt_part_or_busy_target_is_refused,
        archive_and_backup_on_an_empty_table_write_nothing_surprising,
        photo_cleanup_removes_only_unreferenced_photos_after_the_grace_period,
    ],
);

#[tokio::test]
async fn the_local_stack_fires_the_templates_schedules_on_request() {
    let app = spawn_app().await;
    let names = app.stack.scheduler.names();
    assert_eq!(names, ["archive.daily", "archive.hourly", "backup.daily"]);
    let fired = app.client.post(app.url("/_local/schedules/archive.daily")).send().await.unwrap();
    assert_eq!(fired.status(), 200);
    let body: Value = fired.json().await.unwrap();
    assert_eq!(body["result"]["ordersArchived"], 0);
    assert_eq!(body["result"]["archiveComplete"], true);
    let fired = app.client.post(app.url("/_local/schedules/backup")).send().await.unwrap();
    assert_eq!(fired.status(), 200);
    let body: Value = fired.json().await.unwrap();
    let id = body["result"]["backupId"].as_str().unwrap();
    assert!(backup::list(app.state.data_bucket.as_deref().unwrap()).await.unwrap().contains(&id.to_owned()));
    let unknown = app.client.post(app.url("/_local/schedules/nightly-nonsense")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}
