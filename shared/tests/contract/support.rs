//! Backends under test: each hands out fresh, isolated storage per test (a temp
//! directory, or uniquely named AWS resources on the endpoint in
//! `AWS_ENDPOINT_URL`), plus helpers the suites share.

use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use serde_json::Value;
use shared::adapters::{self, provision, DynamoStore, EmbeddedBlobs, EmbeddedJobs, EmbeddedStore, S3Blobs, SqsJobs};
use shared::ports::{Attrs, BlobStore, Item, ItemKey, JobQueue, Page, Query, Store};
use tempfile::TempDir;

/// A source of fresh storage for one test.
pub trait Backend {
    /// A fresh, empty store.
    async fn store() -> StoreFixture;
    /// A fresh, empty blob store.
    async fn blobs() -> Fixture<dyn BlobStore>;
    /// A fresh, empty queue.
    async fn jobs() -> Fixture<dyn JobQueue>;
}

/// A port plus whatever keeps its storage alive (a temp directory).
pub struct Fixture<P: ?Sized> {
    pub port: Arc<P>,
    _dir: Option<TempDir>,
}

impl<P: ?Sized> std::ops::Deref for Fixture<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.port
    }
}

/// A store, and a way to open more independent handles on the same storage
/// (another SQLite connection, another SDK client), as separate processes would.
pub struct StoreFixture {
    pub store: Fixture<dyn Store>,
    reopen: Reopen,
}

enum Reopen {
    Embedded(PathBuf),
    Aws(String),
}

impl std::ops::Deref for StoreFixture {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store.port
    }
}

impl StoreFixture {
    /// Another, independent handle on the same storage (for the embedded
    /// store, its own SQLite connections, as another process has).
    pub async fn another_handle(&self) -> Arc<dyn Store> {
        match &self.reopen {
            Reopen::Embedded(path) => Arc::new(EmbeddedStore::open_unshared(path).expect("reopen embedded store")),
            Reopen::Aws(table) => {
                let sdk = adapters::sdk_config().await;
                Arc::new(DynamoStore::new(adapters::dynamo_client(&sdk), table.clone()))
            }
        }
    }
}

/// The embedded backend in a fresh temp directory.
pub struct Embedded;

impl Backend for Embedded {
    async fn store() -> StoreFixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("marketplace.db");
        let store = EmbeddedStore::open(&path).expect("open embedded store");
        StoreFixture { store: Fixture { port: Arc::new(store), _dir: Some(dir) }, reopen: Reopen::Embedded(path) }
    }

    async fn blobs() -> Fixture<dyn BlobStore> {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs =
            EmbeddedBlobs::open(&dir.path().join("blobs"), "http://127.0.0.1:3000").expect("open embedded blobs");
        Fixture { port: Arc::new(blobs), _dir: Some(dir) }
    }

    async fn jobs() -> Fixture<dyn JobQueue> {
        let dir = tempfile::tempdir().expect("temp dir");
        let jobs = EmbeddedJobs::open(&dir.path().join("marketplace.db"), "jobs").expect("open embedded jobs");
        Fixture { port: Arc::new(jobs), _dir: Some(dir) }
    }
}

/// The AWS backend on the endpoint in `AWS_ENDPOINT_URL` (moto under the README's
/// test command; DynamoDB Local, LocalStack or a real account work too). Every
/// test provisions its own uniquely named table, bucket or queue. Nothing is
/// deleted afterwards: moto keeps everything in memory, and on a real account
/// the resources are named `contract-…` for easy clean-up.
///
/// What moto (5.2) does differently, and how the suite copes:
/// - it never expires TTL items; the adapter filters expired items on every read
///   and in every condition, which DynamoDB needs too (its sweeper lags by days);
/// - it accepts up to 100 writes per transaction (so does DynamoDB today); both
///   adapters enforce the port's 25 writes and distinct keys before calling the
///   backend, so both answer `Invalid` alike;
/// - a transaction that fails restores a deep copy of the whole table, which is
///   not safe against a concurrent transaction on that table (a loser's item can
///   survive, or a request fails with a 500); the test command therefore runs
///   moto through `scripts/moto_server.py`, which answers one request at a time,
///   as each request is atomic on DynamoDB;
/// - S3 needs path-style addressing (`adapters::s3_client` switches it on
///   whenever an endpoint URL is configured);
/// - deleting with a stale receipt deletes the message (real SQS "may"); the
///   jobs suite only asserts that a stale receipt is not an error, and the
///   embedded queue's unit test pins its stricter behaviour.
pub struct Aws;

static AWS_ENV: Once = Once::new();

/// Fails (never skips) without an endpoint; fills in dummy credentials and a
/// region when none are set, before any SDK configuration is loaded.
async fn aws_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL is not set: run the README's test command, which starts moto"
    );
    AWS_ENV.call_once(|| {
        for (name, value) in
            [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")]
        {
            if std::env::var_os(name).is_none() {
                std::env::set_var(name, value);
            }
        }
    });
    adapters::sdk_config().await
}

/// A unique, lower-case resource name valid for tables, buckets and queues.
fn unique_name() -> String {
    format!("contract-{}", ulid::Ulid::new().to_string().to_lowercase())
}

impl Backend for Aws {
    async fn store() -> StoreFixture {
        let sdk = aws_config().await;
        let client = adapters::dynamo_client(&sdk);
        let table = unique_name();
        provision::create_table(&client, &table).await.expect("create table");
        let store = DynamoStore::new(client, table.clone());
        StoreFixture { store: Fixture { port: Arc::new(store), _dir: None }, reopen: Reopen::Aws(table) }
    }

    async fn blobs() -> Fixture<dyn BlobStore> {
        let sdk = aws_config().await;
        let client = adapters::s3_client(&sdk);
        let bucket = unique_name();
        provision::create_bucket(&client, &bucket).await.expect("create bucket");
        Fixture { port: Arc::new(S3Blobs::new(client, bucket)), _dir: None }
    }

    async fn jobs() -> Fixture<dyn JobQueue> {
        let sdk = aws_config().await;
        let client = adapters::sqs_client(&sdk);
        let url = provision::create_queue(&client, &unique_name(), None).await.expect("create queue");
        Fixture { port: Arc::new(SqsJobs::new(client, url)), _dir: None }
    }
}

/// An item from a JSON object literal.
pub fn item(pk: &str, sk: &str, attrs: Value) -> Item {
    let Value::Object(attrs) = attrs else { panic!("attributes must be a JSON object") };
    Item::new(ItemKey::new(pk, sk), attrs)
}

/// An item with no attributes.
pub fn bare(pk: &str, sk: &str) -> Item {
    Item::new(ItemKey::new(pk, sk), Attrs::new())
}

/// Every item of `query`, page by page through `start_after`, with the pages.
pub async fn query_all(store: &dyn Store, query: &Query) -> (Vec<Item>, Vec<Page>) {
    let mut query = query.clone();
    let mut items = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..1000 {
        let page = store.query(&query).await.expect("query");
        items.extend(page.items.iter().cloned());
        let next = page.last.clone();
        pages.push(page);
        match next {
            Some(last) => query.start_after = Some(last),
            None => return (items, pages),
        }
    }
    panic!("query did not finish within 1000 pages")
}

/// Index queries are eventually consistent on DynamoDB: waits (up to 10 s)
/// until `query` sees `expected` items, so the assertions after it are exact.
pub async fn settle_index(store: &dyn Store, query: &Query, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (items, _) = query_all(store, query).await;
        if items.len() == expected || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sort keys of `items`, for compact assertions.
pub fn sks(items: &[Item]) -> Vec<String> {
    items.iter().map(|item| item.key.sk.clone()).collect()
}

/// Epoch seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
