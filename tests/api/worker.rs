//! The worker as the SQS event source drives it: partial batch failures (only
//! the poison message is reported) and idempotent attachment (a notification
//! delivered twice attaches the image once), uploads racing for a product's last
//! slot leaving nothing public behind, on both backends (DynamoDB and S3 at the
//! test endpoint); and the local queue pump moving a message that keeps
//! failing to the dead-letter queue after the template's `maxReceiveCount`.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{json, Value};
use shared::domain::{
    Category, CategoryId, CategoryName, ImageId, ListingStatus, Price, Product, ProductDescription, ProductId,
    ProductName, Slug, Stock, Unit, UserId,
};
use shared::ports::JobQueue;
use shared::repo::categories;
use shared::repo::products::{self, UploadTicket};
use shared::AppState;

use crate::helpers::{embedded_state, repo_root, StateFixture};
use crate::photos::jpeg;

/// A listed product (of a fresh category), with no images.
async fn listed_product(state: &AppState) -> Product {
    let now = time::OffsetDateTime::now_utc();
    let category = Category {
        id: CategoryId::new(),
        name: CategoryName::parse("Fruit").unwrap(),
        slug: Slug::parse(&format!("fruit-{}", ulid::Ulid::new().to_string().to_lowercase())).unwrap(),
        description: None,
        created_at: now,
        updated_at: now,
        version: 1,
        product_count: 0,
    };
    categories::create(state.store.as_ref(), &category).await.unwrap();
    let product = Product {
        id: ProductId::new(),
        farmer_id: UserId::new(),
        category_id: category.id,
        name: ProductName::parse("Pears").unwrap(),
        description: ProductDescription::default(),
        price: Price::parse(200).unwrap(),
        unit: Unit::Kg,
        stock: Stock::parse(4).unwrap(),
        harvest_date: None,
        images: Vec::new(),
        status: ListingStatus::Listed,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    products::save(state.store.as_ref(), None, &product).await.unwrap();
    product
}

/// A ticket for `product_id` (issued as the products function would, but
/// without its per-product cap) and an uploaded JPEG waiting under incoming/.
async fn upload_for(state: &AppState, product_id: ProductId) -> String {
    let now = time::OffsetDateTime::now_utc();
    let product = products::get(state.store.as_ref(), product_id).await.unwrap().unwrap();
    let photo = jpeg(320, 240);
    let image_id = ImageId::new();
    let key = products::upload_object_key(product.id, image_id);
    let ticket = UploadTicket {
        image_id,
        product_id: product.id,
        farmer_id: product.farmer_id,
        object_key: key.clone(),
        content_type: "image/jpeg".into(),
        size: photo.len() as u64,
        expires_at: now.unix_timestamp() + 3600,
    };
    let held = products::reservations(state.store.as_ref(), product.id, now.unix_timestamp()).await.unwrap();
    products::reserve_ticket(state.store.as_ref(), &product, &held, &ticket, ticket.expires_at).await.unwrap();
    state.blobs.as_ref().unwrap().put(&key, bytes::Bytes::from(photo), "image/jpeg").await.unwrap();
    key
}

/// A listed product with a ticket and an uploaded JPEG waiting under incoming/.
async fn uploaded_photo(state: &AppState) -> (ProductId, String) {
    let product = listed_product(state).await;
    let key = upload_for(state, product.id).await;
    (product.id, key)
}

fn s3_notification(key: &str) -> String {
    json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "assets"}, "object": {"key": key, "size": 1}}}]})
        .to_string()
}

/// An SQS event of `(message id, body)` records, as Lambda delivers it.
fn sqs_event(messages: &[(&str, String)]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| json!({"messageId": id, "receiptHandle": format!("r-{id}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<&str> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
}

async fn a_batch_with_one_poison_message_reports_only_that_message(fixture: StateFixture) {
    let state = fixture.state;
    let (product_id, key) = uploaded_photo(&state).await;
    let event = sqs_event(&[
        ("good", s3_notification(&key)),
        ("poison", "this is not JSON".into()),
        ("test-event", json!({"Service": "Amazon S3", "Event": "s3:TestEvent"}).to_string()),
        ("shapeless", json!({"hello": "world"}).to_string()),
    ]);
    let response = worker::handle(&state, event).await;
    assert_eq!(failures(&response), ["poison", "shapeless"]);
    let product = products::get(state.store.as_ref(), product_id).await.unwrap().unwrap();
    assert_eq!(product.images.len(), 1, "the good message in the same batch was processed");
}

async fn the_same_notification_delivered_twice_attaches_the_image_once(fixture: StateFixture) {
    let state = fixture.state;
    let (product_id, key) = uploaded_photo(&state).await;
    // Twice in one batch, then again in a later batch (SQS is at-least-once).
    let twice = sqs_event(&[("a", s3_notification(&key)), ("b", s3_notification(&key))]);
    assert!(failures(&worker::handle(&state, twice).await).is_empty());
    let again = sqs_event(&[("c", s3_notification(&key))]);
    assert!(failures(&worker::handle(&state, again).await).is_empty());
    let product = products::get(state.store.as_ref(), product_id).await.unwrap().unwrap();
    assert_eq!(product.images.len(), 1);
    assert_eq!(product.version, 2, "attached in exactly one write");

    // A redelivery that races the first one: the upload is re-sent before either
    // finishes, so both see the object; the version check lets one attach.
    let (product_id, key) = uploaded_photo(&state).await;
    let racing = (0..4).map(|i| {
        let state = state.clone();
        let event = sqs_event(&[(&format!("m{i}"), s3_notification(&key))]);
        async move { failures(&worker::handle(&state, event).await).len() }
    });
    assert!(futures::future::join_all(racing).await.iter().all(|f| *f == 0));
    let product = products::get(state.store.as_ref(), product_id).await.unwrap().unwrap();
    assert_eq!(product.images.len(), 1);
}

/// Uploads racing for a product's last free slot: one attaches, the others'
/// published copies are deleted again, so the bucket's public objects are
/// exactly those the product shows.
async fn uploads_racing_for_the_last_slot_leave_eight_images_and_no_orphans(fixture: StateFixture) {
    let state = fixture.state;
    let blobs = state.blobs.clone().unwrap();
    let product = listed_product(&state).await;
    for _ in 0..7 {
        let key = upload_for(&state, product.id).await;
        assert!(matches!(worker::process_upload(&state, &key).await.unwrap(), worker::Outcome::Attached { .. }));
    }
    let mut racing = Vec::new();
    for _ in 0..3 {
        racing.push(upload_for(&state, product.id).await);
    }
    let outcomes = futures::future::join_all(racing.iter().map(|key| worker::process_upload(&state, key))).await;
    let attached = outcomes.iter().filter(|o| matches!(o, Ok(worker::Outcome::Attached { .. }))).count();
    assert_eq!(attached, 1, "{outcomes:?}");
    let product = products::get(state.store.as_ref(), product.id).await.unwrap().unwrap();
    assert_eq!(product.images.len(), 8);
    let mut shown: Vec<String> =
        product.images.iter().flat_map(|image| [image.key.clone(), image.thumbnail_key.clone()]).collect();
    shown.sort();
    let mut public = blobs.list(products::PUBLIC_PREFIX).await.unwrap();
    public.sort();
    assert_eq!(public, shown, "nothing under public/ that the product does not show");
    assert!(blobs.list(products::INCOMING_PREFIX).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_message_that_keeps_failing_moves_to_the_dead_letter_queue_after_max_receive_count() {
    let (state, dir) = embedded_state().await;
    let template = infra::template::Template::load(&repo_root().join("template.yaml")).unwrap();
    let source = &template.queue_sources[0];
    let (dlq_name, max_receives) = template.queue(&source.queue).unwrap().dead_letter.clone().unwrap();
    let settings = infra::pump::PumpSettings { visibility_timeout: Some(Duration::ZERO) };
    let db = dir.path().join("marketplace.db");
    let pump = infra::pump::QueuePump::for_template(&state, &template, &db, &settings).unwrap().remove(0);
    let queue = infra::pump::open_queue(&db, &source.queue).unwrap();
    let dlq = infra::pump::open_queue(&db, &dlq_name).unwrap();

    let (product_id, key) = uploaded_photo(&state).await;
    queue.send("poison: not an S3 notification").await.unwrap();
    queue.send(&s3_notification(&key)).await.unwrap();

    // Delivered (and failed) exactly maxReceiveCount times; the good one once.
    let first = pump.poll_once().await.unwrap();
    assert_eq!((first.delivered, first.failed, first.dead_lettered), (2, 1, 0));
    for _ in 1..max_receives {
        let report = pump.poll_once().await.unwrap();
        assert_eq!((report.delivered, report.failed, report.dead_lettered), (1, 1, 0));
    }
    let last = pump.poll_once().await.unwrap();
    assert_eq!((last.delivered, last.dead_lettered), (0, 1));
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty(), "the queue is empty");
    let dead = dlq.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison: not an S3 notification");
    let product = products::get(state.store.as_ref(), product_id).await.unwrap().unwrap();
    assert_eq!(product.images.len(), 1);
}

crate::helpers::on_both_backends!(
    using embedded_fixture, aws_fixture;
    a_batch_with_one_poison_message_reports_only_that_message,
    the_same_notification_delivered_twice_attaches_the_image_once,
    uploads_racing_for_the_last_slot_leave_eight_images_and_no_orphans,
);
