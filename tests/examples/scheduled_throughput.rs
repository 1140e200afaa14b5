//! Throughput of the scheduled jobs on the embedded backend: seeds 100 000
//! finished orders (plus whatever else the count asks for) straight into a
//! fresh store, then times the archive of all of them, a backup of the whole
//! table and a restore of that backup into another fresh store, in items per
//! second. Not a test: run it when the archive, backup or store changes.
//!
//! `cargo run --release -p marketplace-tests --example scheduled_throughput [ORDERS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::adapters::{EmbeddedBlobs, EmbeddedStore};
use shared::archive::{self, ArchiveSettings};
use shared::backup::{self, BackupSettings};
use shared::domain::{
    CheckoutId, Fulfilment, FulfilmentMethod, Order, OrderId, OrderLine, OrderStatus, Payment, PaymentStatus,
    ProductId, StatusChange, Unit, UserId,
};
use shared::ports::{Clock, Store, SystemClock};
use shared::repo::orders;
use time::OffsetDateTime;

struct At(OffsetDateTime);

impl Clock for At {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

fn order(placed: OffsetDateTime, customer: UserId, farmer: UserId) -> Order {
    let lines = vec![OrderLine {
        product_id: ProductId::new(),
        name: "Apples".into(),
        unit: Unit::parse("kg").expect("a unit"),
        unit_price: 250,
        quantity: 2,
        line_total: 500,
    }];
    Order {
        id: OrderId::new(),
        checkout_id: CheckoutId::new(),
        customer_id: customer,
        farmer_id: farmer,
        lines,
        total: 500,
        fulfilment: Fulfilment { method: FulfilmentMethod::Pickup, address: None },
        status: OrderStatus::Delivered,
        history: vec![StatusChange {
            status: OrderStatus::Delivered,
            at: "2025-01-01T00:00:00Z".into(),
            by: farmer,
            reason: None,
        }],
        payment: Payment { method: "payOnFulfilment".into(), status: PaymentStatus::Paid },
        created_at: placed,
        updated_at: placed,
        version: 4,
        archived: false,
    }
}

fn rate(items: u64, took: Duration) -> String {
    format!("{items} items in {:.2} s = {:.0} items/s", took.as_secs_f64(), items as f64 / took.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("source.db")).expect("a store"));
    let bucket = EmbeddedBlobs::open(&dir.path().join("data"), "http://127.0.0.1:1").expect("a bucket");
    let (customer, farmer) = (UserId::new(), UserId::new());
    let placed = OffsetDateTime::now_utc();

    let started = Instant::now();
    let all: Vec<Order> = (0..count).map(|_| order(placed, customer, farmer)).collect();
    for chunk in all.chunks(25) {
        store.transact(chunk.iter().map(orders::create).collect()).await.expect("seed");
    }
    println!("seed:    {}", rate(count as u64, started.elapsed()));

    let key = backup::BackupKey::new(&backup::BackupKey::generate()).expect("a key");
    let started = Instant::now();
    let manifest =
        backup::back_up(store.as_ref(), &bucket, &bucket, &key, &SystemClock, &BackupSettings::default(), "embedded")
            .await
            .expect("backup");
    println!("backup:  {} ({} parts)", rate(manifest.items, started.elapsed()), manifest.parts.len());

    let target = EmbeddedStore::open(&dir.path().join("target.db")).expect("a store");
    let started = Instant::now();
    let into = backup::Target { store: &target, data: &bucket, clock: &SystemClock };
    backup::restore(&bucket, &manifest.id, &key, into, false, &mut |_| {}).await.expect("restore");
    println!("restore: {}", rate(manifest.items, started.elapsed()));

    let later = At(placed + time::Duration::days(181));
    let started = Instant::now();
    let report = archive::run(
        store.as_ref(),
        &bucket,
        &later,
        ArchiveSettings::default(),
        Instant::now() + Duration::from_secs(3600),
    )
    .await
    .expect("archive");
    assert_eq!(report.archived, count, "every order archived");
    println!("archive: {} ({} objects)", rate(report.archived as u64, started.elapsed()), report.batches);
}
