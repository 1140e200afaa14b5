//! The API contract's regressions: bodies are strict (no `null` where the document
//! says not nullable, no JSON array read as an object), every 409 a handler can give
//! is documented, a forged cursor (without the key, or with it but naming an
//! empty key) is a 400, never a 500, and racing cold starts agree on one cursor key.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::hmac;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::ports::ItemKey;
use shared::AppState;

use crate::helpers::{access_token, assert_problem, spawn_app, unique_email, StateFixture, TestApp};

async fn category(app: &TestApp, admin: &str, name: &str) -> Value {
    let response = app.post("/categories", &json!({ "name": name }), Some(admin)).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn product(app: &TestApp, farmer: &str, category_id: &str, name: &str) -> Value {
    let body = json!({"name": name, "categoryId": category_id, "price": 450, "unit": "kg", "stock": 3});
    let response = app.post("/products", &body, Some(farmer)).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client.patch(app.url(path)).bearer_auth(token).json(body).send().await.unwrap()
}

#[tokio::test]
async fn null_is_refused_where_the_document_says_not_nullable() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let problem =
        assert_problem(app.post("/categories", &json!({"name": "Nuts", "slug": null}), Some(&admin)).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "slug");

    let farmer = access_token(&app.register(&unique_email("farmer"), "farmer").await);
    let fruit = category(&app, &admin, "Fruit").await;
    let apples = product(&app, &farmer, fruit["id"].as_str().unwrap(), "Apples").await;
    let path = format!("/products/{}", apples["id"].as_str().unwrap());
    for field in ["categoryId", "name", "price", "stock", "unit"] {
        let problem = assert_problem(patch(&app, &path, &farmer, &json!({ field: null })).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    // Nullable fields still clear.
    let cleared = patch(&app, &path, &farmer, &json!({"description": null, "harvestDate": null})).await;
    assert_eq!(cleared.status(), 200);
    let unchanged: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!((unchanged["name"].as_str(), unchanged["price"].as_i64()), (Some("Apples"), Some(450)));
}

#[tokio::test]
async fn a_json_array_is_not_an_object_body() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let herbs = category(&app, &admin, "Herbs").await;
    let path = format!("/categories/{}", herbs["id"].as_str().unwrap());
    let problem = assert_problem(patch(&app, &path, &admin, &json!([null, null])).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "(body)");
    let after: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(after["version"], 1, "nothing was written");

    let email = unique_email("kim");
    let body = json!([email, "a long passphrase", "Kim", "customer"]);
    assert_problem(app.post("/auth/register", &body, None).await, 422).await;
    let login = app.post("/auth/login", &json!({"email": email, "password": "a long passphrase"}), None).await;
    assert_problem(login, 401).await;
    for body in [json!("text"), json!(7), json!(null)] {
        assert_problem(app.post("/auth/login", &body, None).await, 422).await;
    }
}

#[test]
fn every_conflict_a_handler_can_answer_is_documented() {
    let document = serde_json::to_value(infra::functions::openapi()).unwrap();
    for (path, method) in [
        ("/products", "post"),
        ("/products/{id}", "delete"),
        ("/products/{id}/images/{imageId}", "delete"),
        ("/products/{id}", "patch"),
        ("/categories/{id}", "delete"),
    ] {
        let responses = &document["paths"][path][method]["responses"];
        assert!(responses["409"].is_object(), "{method} {path} does not document 409: {responses}");
    }
}

/// The app's cursor key, as stored in its table.
async fn cursor_key(app: &TestApp) -> Vec<u8> {
    let item = app.state.store.get(&ItemKey::new("CURSORKEY", "-")).await.unwrap().expect("the cursor key item");
    STANDARD.decode(item.str("key").unwrap()).unwrap()
}

/// `cursor` with its key's `pk` replaced by `""`, signed with `key`.
fn forge_empty_pk(cursor: &str, key: &[u8]) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).unwrap();
    let (payload, _) = bytes.split_at(bytes.len() - 32);
    let mut payload: Value = serde_json::from_slice(payload).unwrap();
    payload["k"]["pk"] = json!("");
    let mut forged = payload.to_string().into_bytes();
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &forged);
    forged.extend_from_slice(tag.as_ref());
    URL_SAFE_NO_PAD.encode(forged)
}

/// `cursor` re-tagged with an unkeyed checksum (SHA-256 of the payload), as
/// anyone could compute it.
fn checksummed_without_the_key(cursor: &str) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).unwrap();
    let (payload, _) = bytes.split_at(bytes.len() - 32);
    let mut forged = payload.to_vec();
    forged.extend_from_slice(&Sha256::digest(payload));
    URL_SAFE_NO_PAD.encode(forged)
}

#[tokio::test]
async fn a_forged_cursor_is_400_with_or_without_the_key() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let farmer = access_token(&app.register(&unique_email("farmer"), "farmer").await);
    let first = category(&app, &admin, "Alpha").await;
    category(&app, &admin, "Beta").await;
    for name in ["Plums", "Pears"] {
        product(&app, &farmer, first["id"].as_str().unwrap(), name).await;
    }
    for list in ["/categories", "/products"] {
        let page: Value = app.get(&format!("{list}?limit=1"), None).await.json().await.unwrap();
        let cursor = page["nextCursor"].as_str().unwrap_or_else(|| panic!("{list} has a second page"));
        let second = app.get(&format!("{list}?limit=1&cursor={cursor}"), None).await;
        assert_eq!(second.status(), 200, "the cursor as given continues {list}");
        let unkeyed = checksummed_without_the_key(cursor);
        assert_problem(app.get(&format!("{list}?limit=1&cursor={unkeyed}"), None).await, 400).await;
        let forged = forge_empty_pk(cursor, &cursor_key(&app).await);
        assert_problem(app.get(&format!("{list}?limit=1&cursor={forged}"), None).await, 400).await;
    }
}

/// Cold starts of several functions at once against a store without a cursor
/// key all end up with the one key that was stored: a cursor any of them signs
/// continues in every other.
async fn racing_cold_starts_agree_on_one_cursor_key(fixture: StateFixture) {
    let cold_starts: Vec<AppState> =
        (0..8).map(|_| AppState { cursor_keys: Default::default(), ..fixture.state.clone() }).collect();
    let keys = futures::future::join_all(cold_starts.iter().map(AppState::cursors)).await;
    let query = shared::ports::Query::partition("CATEGORY#01");
    let last = shared::ports::Item::new(ItemKey::new("CATEGORY#01", "CATEGORY"), Default::default());
    for signer in &keys {
        let cursor = signer.as_ref().unwrap().encode("scope", &query, &last);
        for reader in &keys {
            assert_eq!(reader.as_ref().unwrap().decode("scope", &query, &cursor).unwrap().key, last.key);
        }
    }
}

crate::helpers::scenarios!(
    using embedded_fixture;
    embedded: [
        racing_cold_starts_agree_on_one_cursor_key,
    ],
);
