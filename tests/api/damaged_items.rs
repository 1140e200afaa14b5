//! Stored items that do not decode, or hold a value outside its type's bounds:
//! lists, single reads, the farmer sync and the scheduled runs step over them
//! (reported, never a 500 or a failed run), and a product whose stock an older
//! write left above `Stock::MAX` stays readable and repairable by its farmer.
//! Every scenario runs on both backends.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use shared::archive::{self, ArchiveSettings};
use shared::domain::{OrderId, ProductId, Stock, UserId};
use shared::ports::{Condition, ItemKey, Store, SystemClock};
use shared::repo::{orders, products};

use crate::accounts::call;
use crate::helpers::{access_token, assert_problem, TestApp};
use crate::orders::{checkout, shop};

/// Rewrites one attribute of a stored item, as a bad write (or an older
/// version of the code) could have left it.
async fn tamper(store: &dyn Store, key: ItemKey, attribute: &str, value: Value) {
    let mut item = store.get(&key).await.unwrap().expect("the item exists");
    item.attrs.insert(attribute.into(), value);
    store.put(item, Condition::None).await.unwrap();
}

async fn listed_ids(app: &TestApp, path: &str, token: Option<&str>) -> Vec<String> {
    let response = app.get(path, token).await;
    assert_eq!(response.status(), 200, "GET {path}");
    let body: Value = response.json().await.unwrap();
    body["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect()
}

async fn a_product_with_stock_above_its_bound_stays_readable_and_its_farmer_repairs_it(app: TestApp) {
    let shop = shop(&app, 10).await;
    let farmer = access_token(&shop.farmer_a);
    let store = app.state.store.as_ref();
    let apples = ProductId::parse(&shop.apples).unwrap();
    tamper(store, products::key(apples), "stock", json!(Stock::MAX + 1_000)).await;

    // The catalogue answers for everyone, and shows the stock within its bound.
    let listed = listed_ids(&app, "/products", None).await;
    assert!(listed.contains(&shop.apples) && listed.contains(&shop.pears), "{listed:?}");
    let path = format!("/products/{}", shop.apples);
    let read: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(read["stock"], json!(Stock::MAX));

    // The farmer sets a valid stock; the stored item holds it again.
    let patched = call(&app, Method::PATCH, &path, Some(&json!({"stock": 40})), Some(&farmer)).await;
    assert_eq!(patched.status(), 200);
    let stored = store.get(&products::key(apples)).await.unwrap().unwrap();
    assert_eq!(stored.int("stock"), Some(40));

    // And can unlist it the same way.
    tamper(store, products::key(apples), "stock", json!(Stock::MAX + 5)).await;
    assert_eq!(call(&app, Method::DELETE, &path, None, Some(&farmer)).await.status(), 204);
    assert_problem(app.get(&path, None).await, 404).await;
}

async fn a_product_that_does_not_decode_is_skipped_by_lists_and_reads_as_absent(app: TestApp) {
    let shop = shop(&app, 10).await;
    let farmer = access_token(&shop.farmer_a);
    let store = app.state.store.as_ref();
    let pears = ProductId::parse(&shop.pears).unwrap();
    tamper(store, products::key(pears), "price", json!(-5)).await;

    // Every page that held it still answers, with the others in it.
    let mut walked = Vec::new();
    let mut path = "/products?limit=2".to_owned();
    loop {
        let response = app.get(&path, None).await;
        assert_eq!(response.status(), 200, "GET {path}");
        let page: Value = response.json().await.unwrap();
        walked.extend(page["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/products?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    walked.sort();
    let mut expected = vec![shop.apples.clone(), shop.cheese.clone()];
    expected.sort();
    assert_eq!(walked, expected, "walking the pages visits every other product once");
    for path in ["/products", "/products?sort=price_asc", "/products?inStock=true"] {
        let listed = listed_ids(&app, path, None).await;
        assert!(listed.contains(&shop.apples) && !listed.contains(&shop.pears), "{path}: {listed:?}");
    }
    let farmer_id = shop.farmer_a["user"]["id"].as_str().unwrap();
    let by_farmer = listed_ids(&app, &format!("/products?farmer={farmer_id}"), None).await;
    assert_eq!(by_farmer, vec![shop.apples.clone()]);
    // Its own reads and writes answer 404, never 500.
    let path = format!("/products/{}", shop.pears);
    assert_problem(app.get(&path, None).await, 404).await;
    assert_problem(call(&app, Method::PATCH, &path, Some(&json!({"stock": 1})), Some(&farmer)).await, 404).await;

    // The farmer sync steps over it and still hides the farmer's other products.
    let farmer_id = UserId::parse(farmer_id).unwrap();
    let user = shared::repo::users::get(store, farmer_id).await.unwrap().unwrap();
    let disabled = shared::domain::User { disabled: true, version: user.version + 1, ..user };
    shared::repo::users::save(store, &disabled).await.unwrap();
    let changed = shared::catalogue::sync_farmer(&app.state, farmer_id).await.unwrap();
    assert_eq!(changed, 1, "apples hidden; the bad item skipped");
    assert!(!listed_ids(&app, "/products", None).await.contains(&shop.apples));

    // The photo clean-up runs, and keeps what the bad item's stored images name.
    let assets = app.state.blobs.clone().unwrap();
    let photo = format!("public/images/{pears}/kept.jpg");
    tamper(store, products::key(pears), "images", json!([{"key": photo, "broken": true}])).await;
    assets.put(&photo, bytes::Bytes::from_static(b"jpeg"), "image/jpeg").await.unwrap();
    let grace = time::Duration::seconds(0);
    for _ in 0..2 {
        let report = shared::photo_cleanup::run(store, assets.as_ref(), &SystemClock, grace).await.unwrap();
        assert_eq!(report.removed, 0, "{report:?}");
    }
    assert_eq!(assets.list("public/").await.unwrap(), vec![photo]);
}

async fn order_lists_and_the_archive_step_over_an_order_that_does_not_decode(app: TestApp) {
    let shop = shop(&app, 10).await;
    let customer = access_token(&shop.customer);
    let mut placed = Vec::new();
    for product in [&shop.apples, &shop.cheese] {
        let body = json!({ "lines": [{"productId": product, "quantity": 1}] });
        let response = checkout(&app, &customer, &body, None).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        placed.push(body["orders"][0]["id"].as_str().unwrap().to_owned());
    }
    let store = app.state.store.as_ref();
    let bad = OrderId::parse(&placed[0]).unwrap();
    tamper(store, orders::key(bad), "total", json!("a lot")).await;

    assert_eq!(listed_ids(&app, "/orders", Some(&customer)).await, vec![placed[1].clone()]);
    assert_eq!(listed_ids(&app, "/orders", Some(&shop.admin)).await, vec![placed[1].clone()]);
    assert_problem(app.get(&format!("/orders/{}", placed[0]), Some(&customer)).await, 404).await;

    // An archive run over every order (none old enough) completes.
    let bucket = app.state.data_bucket.clone().unwrap();
    let settings = ArchiveSettings { min_age: time::Duration::days(-1), batch_size: 1000 };
    let deadline = Instant::now() + Duration::from_secs(120);
    let report = archive::run(store, bucket.as_ref(), &SystemClock, settings, deadline).await.unwrap();
    assert!(report.complete, "{report:?}");
}

crate::helpers::scenarios!(
    embedded: [
        a_product_with_stock_above_its_bound_stays_readable_and_its_farmer_repairs_it,
        a_product_that_does_not_decode_is_skipped_by_lists_and_reads_as_absent,
        order_lists_and_the_archive_step_over_an_order_that_does_not_decode,
    ],
);
