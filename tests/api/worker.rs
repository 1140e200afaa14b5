//! The worker as the SQS event source drives it: partial batch failures (only
//! the poison message is reported) and idempotent attachment (a notification
//! delivered twice attaches the image once), uploads racing for a product's last
//! slot leaving nothing public behind, originals of every format published
//! without their metadata, on both backends (DynamoDB and S3 at the test
//! endpoint); and the local queue pump moving a message that keeps
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
pub(crate) async fn listed_product(state: &AppState) -> Product {
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
        farmer_hidden: false,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    products::save(state.store.as_ref(), None, &product).await.unwrap();
    product
}

/// A ticket for `product_id` (issued as the products function would, but
/// without its per-product cap) and an uploaded JPEG waiting under incoming/.
pub(crate) async fn upload_for(state: &AppState, product_id: ProductId) -> String {
    upload_bytes(state, product_id, jpeg(320, 240), "image/jpeg").await
}

/// A ticket for `photo` (of `content_type`) and the photo waiting under incoming/.
async fn upload_bytes(state: &AppState, product_id: ProductId, photo: Vec<u8>, content_type: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let product = products::get(state.store.as_ref(), product_id).await.unwrap().unwrap();
    let image_id = ImageId::new();
    let key = products::upload_object_key(product.id, image_id);
    let ticket = UploadTicket {
        image_id,
        product_id: product.id,
        farmer_id: product.farmer_id,
        object_key: key.clone(),
        content_type: content_type.into(),
        size: photo.len() as u64,
        expires_at: now.unix_timestamp() + 3600,
    };
    let held = products::reservations(state.store.as_ref(), product.id, now.unix_timestamp()).await.unwrap();
    products::reserve_ticket(state.store.as_ref(), &product, &held, &ticket, ticket.expires_at).await.unwrap();
    state.blobs.as_ref().unwrap().put(&key, bytes::Bytes::from(photo), content_type).await.unwrap();
    key
}

/// A listed product with a ticket and an uploaded JPEG waiting under incoming/.
async fn uploaded_photo(state: &AppState) -> (ProductId, String) {
    let product = listed_product(state).await;
    let key = upload_for(state, product.id).await;
    (product.id, key)
}

/// An S3 `ObjectCreated:Put` notification of `key`, with the fields S3 always sends.
fn s3_notification(key: &str) -> String {
    json!({"Records": [{
        "eventTime": "2025-11-24T16:03:20.123Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:local"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "s3": {"bucket": {"name": "assets"}, "object": {"key": key, "size": 1}},
    }]})
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

/// What every test photo hides: a GPS position and a place name.
const SECRETS: [&[u8]; 3] = [b"GPS", b"52.52", b"old mill"];
/// Signs of a metadata container that must not be published either.
const CONTAINERS: [&[u8]; 3] = [b"Exif", b"xmpmeta", b"ns.adobe.com/xap"];

/// A TIFF structure as EXIF carries it: IFD0 pointing to a GPS IFD with
/// GPSLatitudeRef "N", and the owner's name.
pub(crate) fn exif_tiff() -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0, 26, 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(b"GPS 52.52N 13.40E, the old mill");
    tiff
}

const XMP: &[u8] = b"<x:xmpmeta><exif:GPSLatitude>52,31.2N</exif:GPSLatitude></x:xmpmeta>";

/// CRC-32 (ISO-HDLC) as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&[&kind[..], data].concat()).to_be_bytes());
    chunk
}

/// A PNG as an editor writes it: text (plain, compressed-flag off
/// international, XMP), EXIF, a timestamp and a private chunk before the image
/// data, and bytes after IEND.
fn png_with_metadata() -> Vec<u8> {
    let image = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 120]));
    let mut encoded = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut encoded), image::ImageFormat::Png).unwrap();
    let mut out = encoded[..33].to_vec(); // signature and IHDR
    out.extend(png_chunk(b"tEXt", b"Location\0the old mill, GPS 52.52N"));
    out.extend(png_chunk(b"iTXt", &[&b"XML:com.adobe.xmp\0\0\0\0\0"[..], XMP].concat()));
    out.extend(png_chunk(b"eXIf", &exif_tiff()));
    out.extend(png_chunk(b"tIME", &[7, 234, 6, 1, 12, 0, 0]));
    out.extend(png_chunk(b"prVt", b"GPS 52.52N 13.40E"));
    out.extend_from_slice(&encoded[33..]);
    out.extend_from_slice(b"GPS 52.52N 13.40E");
    out
}

fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = kind.to_vec();
    chunk.extend_from_slice(&(data.len() as u32).to_le_bytes());
    chunk.extend_from_slice(data);
    if data.len() % 2 == 1 {
        chunk.push(0);
    }
    chunk
}

/// An extended WebP: VP8X (flags saying EXIF and XMP follow), the image, EXIF,
/// XMP and an unknown chunk, and bytes after the RIFF container.
fn webp_with_metadata() -> Vec<u8> {
    let (width, height) = (40u32, 30u32);
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 120]));
    let mut encoded = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut encoded), image::ImageFormat::WebP).unwrap();
    assert_eq!(&encoded[12..16], b"VP8L", "the image crate writes lossless WebP");
    let mut vp8x = vec![0x08 | 0x04, 0, 0, 0];
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend_from_slice(&encoded[12..]);
    body.extend(riff_chunk(b"EXIF", &exif_tiff()));
    body.extend(riff_chunk(b"XMP ", XMP));
    body.extend(riff_chunk(b"LOCN", b"GPS 52.52N, the old mill"));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(b"GPS 52.52N 13.40E");
    out
}

/// The four-letter chunk kinds of a PNG, and whether bytes follow IEND.
fn png_chunks(bytes: &[u8]) -> (Vec<String>, bool) {
    let mut kinds = Vec::new();
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned());
        i += 12 + length;
        if kinds.last().unwrap() == "IEND" {
            break;
        }
    }
    (kinds, i != bytes.len())
}

/// The chunk kinds of a WebP, and whether the RIFF size disagrees with the file.
fn webp_chunks(bytes: &[u8]) -> (Vec<String>, bool) {
    let riff_size = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let mut kinds = Vec::new();
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let length = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&bytes[i..i + 4]).into_owned());
        i += 8 + length + (length & 1);
    }
    (kinds, riff_size + 8 != bytes.len())
}

/// A photo of each format kept as an original, carrying a GPS position in
/// every metadata container the format has, is published (in the blob store
/// the CDN serves) as the same picture without any of them.
async fn originals_of_every_format_are_published_without_metadata(fixture: StateFixture) {
    let state = fixture.state;
    let product = listed_product(&state).await;
    let photos = [
        ("image/jpeg", crate::photos::jpeg_with_gps(64, 48), (64, 48)),
        ("image/png", png_with_metadata(), (40, 30)),
        ("image/webp", webp_with_metadata(), (40, 30)),
    ];
    for (content_type, photo, dimensions) in photos {
        let decoded = image::load_from_memory(&photo).unwrap();
        assert_eq!((decoded.width(), decoded.height()), dimensions, "{content_type}: the test photo decodes");
        assert!(SECRETS.iter().all(|s| photo.windows(s.len()).any(|w| w == *s)), "{content_type} carries them");
        let key = upload_bytes(&state, product.id, photo, content_type).await;
        let outcome = worker::process_upload(&state, &key).await.unwrap();
        assert!(matches!(outcome, worker::Outcome::Attached { .. }), "{content_type}: {outcome:?}");
    }
    let product = products::get(state.store.as_ref(), product.id).await.unwrap().unwrap();
    assert_eq!(product.images.len(), 3);
    let blobs = state.blobs.as_ref().unwrap();
    for (image, (width, height)) in product.images.iter().zip([(64, 48), (40, 30), (40, 30)]) {
        let published = blobs.get(&image.key).await.unwrap().expect("the original is published").bytes;
        let what = &image.content_type;
        for secret in SECRETS.iter().chain(&CONTAINERS) {
            let found = published.windows(secret.len()).any(|w| w == *secret);
            assert!(!found, "{what}: {:?} is still there", String::from_utf8_lossy(secret));
        }
        let decoded = image::load_from_memory(&published).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (width, height), "{what}: the same picture");
        match what.as_str() {
            "image/jpeg" => {
                let markers = crate::photos::jpeg_markers(&published);
                assert!(!markers.iter().any(|m| matches!(m, 0xE1 | 0xED | 0xFE)), "{markers:x?}");
                assert!(published.ends_with(&[0xFF, 0xD9]), "nothing after the end of the image");
            }
            "image/png" => {
                let (kinds, trailing) = png_chunks(&published);
                assert!(kinds.iter().all(|k| matches!(k.as_str(), "IHDR" | "IDAT" | "IEND")), "{kinds:?}");
                assert!(!trailing, "nothing after IEND");
            }
            _ => {
                let (kinds, bad_size) = webp_chunks(&published);
                assert_eq!(kinds, ["VP8X", "VP8L"]);
                assert_eq!(published[20] & 0x0C, 0, "VP8X no longer announces EXIF or XMP");
                assert!(!bad_size, "the RIFF size is the file's, nothing follows");
            }
        }
    }
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

crate::helpers::scenarios!(
    using embedded_fixture, aws_fixture;
    on_both: [the_same_notification_delivered_twice_attaches_the_image_once],
    embedded: [
        a_batch_with_one_poison_message_reports_only_that_message,
        uploads_racing_for_the_last_slot_leave_eight_images_and_no_orphans,
        originals_of_every_format_are_published_without_metadata,
    ],
);
