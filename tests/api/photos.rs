//! Product photos end to end on the local stack: ticket → presigned PUT to the
//! local bucket → S3 notification on the jobs queue → the queue pump → the worker
//! → the image and its thumbnail on the product and served at `/assets/`. And the
//! uploads that must never reach a listing: too large, not an image, or sent to a
//! key the ticket was not issued for. Published originals carry no metadata, and
//! tickets are capped per product and per farmer and hour.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::repo::products::{INCOMING_PREFIX, PUBLIC_PREFIX};

use crate::helpers::{access_token, assert_documented, assert_problem, spawn_app, unique_email, TestApp};

/// How long the worker may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(20);

/// A real JPEG photo-like image (a gradient).
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
    bytes.into_inner()
}

/// A farmer's listed product; returns (farmer token, product path).
async fn farmer_product(app: &TestApp) -> (String, String) {
    let admin = app.admin_token().await;
    let category: Value = app.post("/categories", &json!({"name": "Fruit"}), Some(&admin)).await.json().await.unwrap();
    let farmer = access_token(&app.register(&unique_email("ana"), "farmer").await);
    let body = json!({"name": "Apples", "categoryId": category["id"], "price": 300, "unit": "kg", "stock": 5});
    let product: Value = app.post("/products", &body, Some(&farmer)).await.json().await.unwrap();
    (farmer, format!("/products/{}", product["id"].as_str().unwrap()))
}

async fn ticket(app: &TestApp, farmer: &str, product: &str, content_type: &str, size: usize) -> Value {
    let response =
        app.post(&format!("{product}/images"), &json!({"contentType": content_type, "size": size}), Some(farmer)).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// PUTs `body` to `url` with the ticket's headers, as a browser or curl would.
async fn upload_to(app: &TestApp, url: &str, ticket: &Value, body: Vec<u8>) -> reqwest::Response {
    let mut request = app.client.put(url);
    for (name, value) in ticket["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
    }
    request.body(body).send().await.unwrap()
}

async fn keys_under(app: &TestApp, prefix: &str) -> Vec<String> {
    app.state.blobs.as_ref().unwrap().list(prefix).await.unwrap()
}

/// Waits until the worker has consumed every incoming object.
async fn wait_until_incoming_is_empty(app: &TestApp) {
    let started = Instant::now();
    while !keys_under(app, INCOMING_PREFIX).await.is_empty() {
        assert!(started.elapsed() < PATIENCE, "the worker did not consume the uploads in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_real_jpeg_uploaded_with_its_ticket_appears_with_a_thumbnail_within_seconds() {
    let app = spawn_app().await;
    let (farmer, product) = farmer_product(&app).await;
    let photo = jpeg(1600, 1200);
    let ticket = ticket(&app, &farmer, &product, "image/jpeg", photo.len()).await;
    assert_documented("ImageUploadTicket", &ticket);
    assert_eq!(ticket["method"], "PUT");
    assert_eq!(ticket["headers"]["content-type"], "image/jpeg");
    assert_eq!(ticket["headers"]["content-length"], photo.len().to_string());

    let started = Instant::now();
    let put = upload_to(&app, ticket["uploadUrl"].as_str().unwrap(), &ticket, photo.clone()).await;
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let shown = loop {
        let current: Value = app.get(&product, None).await.json().await.unwrap();
        if !current["images"].as_array().unwrap().is_empty() {
            break current;
        }
        assert!(started.elapsed() < PATIENCE, "the photo did not appear in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("photo attached {} ms after the upload", started.elapsed().as_millis());
    let image = &shown["images"][0];
    assert_documented("Product", &shown);
    assert_documented("ProductImage", image);
    let listed: Value = app.get("/products", None).await.json().await.unwrap();
    assert_documented("ProductList", &listed);
    assert_eq!(listed["items"][0], shown, "browse shows the same product");
    assert_eq!(image["id"], ticket["imageId"]);
    assert_eq!((image["width"].clone(), image["height"].clone()), (json!(1600), json!(1200)));
    assert_eq!(image["contentType"], "image/jpeg");

    // Both are served like the CDN serves them: immutable, content-addressed.
    let base = format!("http://{}/assets/{PUBLIC_PREFIX}", app.addr);
    for (field, expected_type) in [("url", "image/jpeg"), ("thumbnailUrl", "image/jpeg")] {
        let url = image[field].as_str().unwrap();
        assert!(url.starts_with(&base), "{url}");
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], expected_type);
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let bytes = response.bytes().await.unwrap();
        if field == "url" {
            assert_eq!(bytes.as_ref(), photo.as_slice(), "the original is kept byte for byte");
        } else {
            let thumbnail = image::load_from_memory(&bytes).unwrap();
            assert_eq!((thumbnail.width(), thumbnail.height()), (400, 300));
        }
        let again = app.client.get(url).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
    }
    // Nothing is left behind: no incoming object, no ticket.
    wait_until_incoming_is_empty(&app).await;
    assert_eq!(keys_under(&app, PUBLIC_PREFIX).await.len(), 2);
    let image_id = shared::domain::ImageId::parse(ticket["imageId"].as_str().unwrap()).unwrap();
    assert!(shared::repo::products::get_ticket(app.state.store.as_ref(), image_id).await.unwrap().is_none());

    // The owner removes it again.
    let path = format!("{product}/images/{}", ticket["imageId"].as_str().unwrap());
    let deleted = app.client.delete(app.url(&path)).bearer_auth(&farmer).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let current: Value = app.get(&product, None).await.json().await.unwrap();
    assert_eq!(current["images"], json!([]));
    assert_problem(app.client.delete(app.url(&path)).bearer_auth(&farmer).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn oversized_fake_and_misdirected_uploads_never_reach_a_product() {
    let app = spawn_app().await;
    let (farmer, product) = farmer_product(&app).await;
    let six_mib = vec![0xFFu8; 6 * 1024 * 1024];

    // 1. A 6 MiB file gets no ticket at all.
    let asked = json!({"contentType": "image/jpeg", "size": six_mib.len()});
    assert_problem(app.post(&format!("{product}/images"), &asked, Some(&farmer)).await, 413).await;

    // 2. A 6 MiB body sent with a ticket for 1 MiB: refused at the door, as S3 does.
    let small = ticket(&app, &farmer, &product, "image/jpeg", 1024 * 1024).await;
    let put = upload_to(&app, small["uploadUrl"].as_str().unwrap(), &small, six_mib.clone()).await;
    assert_problem(put, 403).await;

    // 3. An endpoint that does not enforce the signed length (as the AWS test
    //    endpoint does not) lets it through: the worker then finds the real size.
    let key = format!("{INCOMING_PREFIX}{}/{}", &product["/products/".len()..], small["imageId"].as_str().unwrap());
    let blobs = app.state.blobs.as_ref().unwrap();
    blobs.put(&key, bytes::Bytes::from(six_mib), "image/jpeg").await.unwrap();
    let queue = infra::pump::open_queue(&app.dir.path().join("marketplace.db"), "JobsQueue").unwrap();
    let notification = json!({"Records": [{
        "eventTime": "2025-11-24T16:03:20.123Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:local"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "s3": {"bucket": {"name": "assets"}, "object": {"key": key}},
    }]});
    shared::ports::JobQueue::send(&queue, &notification.to_string()).await.unwrap();

    // 4. A text file named .jpg, with a ticket that matches its size.
    let text = b"I am a text file called photo.jpg, not a photo at all.".to_vec();
    let fake = ticket(&app, &farmer, &product, "image/jpeg", text.len()).await;
    let put = upload_to(&app, fake["uploadUrl"].as_str().unwrap(), &fake, text).await;
    assert_eq!(put.status(), 200, "the bucket stores what it is given; the worker judges it");

    // 5. A real photo sent with one ticket's signature to another key.
    let photo = jpeg(800, 600);
    let honest = ticket(&app, &farmer, &product, "image/jpeg", photo.len()).await;
    let url = honest["uploadUrl"].as_str().unwrap();
    let other_key_url = url.replace(honest["imageId"].as_str().unwrap(), &shared::domain::ImageId::new().to_string());
    assert_problem(upload_to(&app, &other_key_url, &honest, photo.clone()).await, 403).await;
    let other_product_url = url.replace(&product["/products/".len()..], &shared::domain::ProductId::new().to_string());
    assert_problem(upload_to(&app, &other_product_url, &honest, photo.clone()).await, 403).await;
    // ... and with a different content type than signed.
    let mut retyped = honest.clone();
    retyped["headers"]["content-type"] = json!("image/png");
    assert_problem(upload_to(&app, url, &retyped, photo).await, 403).await;

    wait_until_incoming_is_empty(&app).await;
    let current: Value = app.get(&product, None).await.json().await.unwrap();
    assert_eq!(current["images"], json!([]), "no bad upload reached the product");
    assert!(keys_under(&app, PUBLIC_PREFIX).await.is_empty(), "nothing was published");
    let listed: Value = app.get("/products", None).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["images"], json!([]));
}

#[tokio::test]
async fn only_public_assets_are_served() {
    let app = spawn_app().await;
    let blobs = app.state.blobs.as_ref().unwrap();
    blobs.put("incoming/x/y", bytes::Bytes::from_static(b"secret"), "image/jpeg").await.unwrap();
    for path in ["/assets/incoming/x/y", "/assets/public/none.jpg", "/assets/../blobs"] {
        assert_problem(app.get(path, None).await, 404).await;
    }
}

#[tokio::test]
async fn public_assets_are_served_with_the_cdns_security_headers() {
    let app = spawn_app().await;
    let blobs = app.state.blobs.as_ref().unwrap();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    blobs.put("public/images/p/i.svg", bytes::Bytes::from_static(svg), "image/svg+xml").await.unwrap();
    let response = app.get("/assets/public/images/p/i.svg", None).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-security-policy"], "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
        "no script runs, even in an SVG opened on its own"
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
}

#[tokio::test]
async fn browsers_may_put_to_upload_urls_from_the_frontend_origins() {
    let app = spawn_app().await;
    let (farmer, product) = farmer_product(&app).await;
    let ticket = ticket(&app, &farmer, &product, "image/png", 100).await;
    let url = ticket["uploadUrl"].as_str().unwrap();
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(preflight.headers()["access-control-allow-methods"], "PUT");
    // The API's own routes keep the API's rule (no PUT there).
    let api = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/products"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert!(api.headers().get("access-control-allow-origin").is_none());
}

/// A JPEG as a phone writes it: an EXIF APP1 with the GPS position
/// (`worker::exif_tiff`), an XMP APP1, a comment, and bytes after the image's end.
pub(crate) fn jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let encoded = jpeg(width, height);
    let tiff = crate::worker::exif_tiff();
    let exif = [b"Exif\0\0".as_slice(), &tiff].concat();
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<exif:GPSLatitude>52,31.2N</exif:GPSLatitude>".to_vec();
    let mut out = encoded[..2].to_vec();
    for (marker, payload) in [(0xE1u8, exif), (0xE1, xmp), (0xFE, b"the old mill farm".to_vec())] {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
    }
    out.extend_from_slice(&encoded[2..]);
    out.extend_from_slice(b"GPS 52.52N 13.40E");
    out
}

/// The markers of a JPEG's segments before its first scan.
pub(crate) fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut i = 2;
    while bytes[i] == 0xFF && bytes[i + 1] != 0xDA {
        markers.push(bytes[i + 1]);
        i += 2 + u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
    }
    markers
}

#[tokio::test]
async fn a_phone_photo_is_published_without_its_gps_position() {
    let app = spawn_app().await;
    let (farmer, product) = farmer_product(&app).await;
    let photo = jpeg_with_gps(640, 480);
    assert!(jpeg_markers(&photo).contains(&0xE1));
    let ticket = ticket(&app, &farmer, &product, "image/jpeg", photo.len()).await;
    let put = upload_to(&app, ticket["uploadUrl"].as_str().unwrap(), &ticket, photo).await;
    assert_eq!(put.status(), 200);
    wait_until_incoming_is_empty(&app).await;
    let shown: Value = app.get(&product, None).await.json().await.unwrap();
    let url = shown["images"][0]["url"].as_str().expect("the photo is on the product");
    let served = app.client.get(url).send().await.unwrap().bytes().await.unwrap();
    let markers = jpeg_markers(&served);
    assert!(!markers.iter().any(|m| matches!(m, 0xE1 | 0xED | 0xFE)), "EXIF, XMP, IPTC or a comment: {markers:x?}");
    assert!(served.ends_with(&[0xFF, 0xD9]), "nothing after the end of the image");
    for secret in [&b"Exif"[..], b"GPS", b"mill"] {
        assert!(
            !served.windows(secret.len()).any(|w| w == secret),
            "{:?} is still there",
            String::from_utf8_lossy(secret)
        );
    }
    assert_eq!(image::load_from_memory(&served).unwrap().width(), 640);
}

async fn the_ninth_open_ticket_is_refused_and_a_burst_of_tickets_hits_the_hourly_limit(app: TestApp) {
    let (farmer, product) = farmer_product(&app).await;
    let ask = |product: String| {
        let farmer = farmer.clone();
        let app = &app;
        async move {
            app.post(&format!("{product}/images"), &json!({"contentType": "image/png", "size": 1000}), Some(&farmer))
                .await
        }
    };
    for _ in 0..8 {
        assert_eq!(ask(product.clone()).await.status(), 201);
    }
    let ninth = assert_problem(ask(product.clone()).await, 409).await;
    assert!(ninth["detail"].as_str().unwrap().contains("8 uploads in progress"), "{ninth}");

    // More products of the same farmer: the hourly limit counts every request.
    let limit = shared::catalogue::TICKETS_PER_FARMER.max;
    let first: Value = app.get(&product, None).await.json().await.unwrap();
    let mut asked = 9;
    let mut throttled = None;
    for n in 0.. {
        let new = json!({"name": format!("Plums {n}"), "categoryId": first["categoryId"], "price": 300, "unit": "kg", "stock": 5});
        let created: Value = app.post("/products", &new, Some(&farmer)).await.json().await.unwrap();
        let path = format!("/products/{}", created["id"].as_str().unwrap());
        for _ in 0..8 {
            asked += 1;
            let response = ask(path.clone()).await;
            if response.status() == 429 {
                assert!(response.headers().contains_key("retry-after"));
                throttled = Some(asked);
                break;
            }
            assert_eq!(response.status(), 201);
        }
        if throttled.is_some() {
            break;
        }
    }
    assert_eq!(throttled, Some(limit + 1), "the request after {limit} in an hour is refused");
}

crate::helpers::scenarios!(
    embedded: [
        the_ninth_open_ticket_is_refused_and_a_burst_of_tickets_hits_the_hourly_limit,
    ],
);
