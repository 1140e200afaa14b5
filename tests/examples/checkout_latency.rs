//! Times `POST /orders` through the local stack on the embedded backend: each
//! checkout holds 3 lines from 2 farmers (one order each, 3 guarded stock
//! decrements, the checkout, the idempotency record and 2 outbox events in one
//! transaction), sent one at a time after a warm-up. Prints p50, p90 and p99.
//!
//! `cargo run --release -p marketplace-tests --example checkout_latency [checkouts]`

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User};
use shared::AppState;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

async fn sign_in(client: &reqwest::Client, base: &str, state: &AppState, role: Role, n: usize) -> String {
    let email = format!("bench-{n}@example.com");
    let password = "correct horse battery staple";
    let user = User {
        email_verified: true,
        ..User::new(
            Email::parse(&email).expect("valid"),
            DisplayName::parse("Bench").expect("valid"),
            role,
            PasswordHash::create(&Password::parse(password.into()).expect("valid")),
            time::OffsetDateTime::now_utc(),
        )
    };
    shared::repo::users::create(state.store.as_ref(), &user).await.expect("create");
    let session: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("a session");
    session["accessToken"].as_str().expect("a token").to_owned()
}

#[tokio::main]
async fn main() {
    let checkouts: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(300);
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let state = AppState::embedded_serving(dir.path(), &base).await.expect("state");
    let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let _stack =
        infra::local::LocalStack::start(state.clone(), dir.path(), &template, listener, Default::default(), None)
            .await
            .expect("local stack");
    let client = reqwest::Client::new();
    let admin = sign_in(&client, &base, &state, Role::Admin, 0).await;
    let farmers = [
        sign_in(&client, &base, &state, Role::Farmer, 1).await,
        sign_in(&client, &base, &state, Role::Farmer, 2).await,
    ];
    let customer = sign_in(&client, &base, &state, Role::Customer, 3).await;
    let category: Value = client
        .post(format!("{base}/categories"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Bench"}))
        .send()
        .await
        .expect("category")
        .json()
        .await
        .expect("a category");
    let mut products = Vec::new();
    for (farmer, name) in [(&farmers[0], "Apples"), (&farmers[0], "Pears"), (&farmers[1], "Cheese")] {
        let body = json!({"name": name, "categoryId": category["id"], "price": 300, "unit": "kg", "stock": 1_000_000});
        let product: Value = client
            .post(format!("{base}/products"))
            .bearer_auth(farmer)
            .json(&body)
            .send()
            .await
            .expect("product")
            .json()
            .await
            .expect("a product");
        products.push(product["id"].as_str().expect("an id").to_owned());
    }
    let cart = json!({ "lines": products.iter().map(|p| json!({"productId": p, "quantity": 1})).collect::<Vec<_>>() });
    let mut times = Vec::with_capacity(checkouts);
    for n in 0..checkouts + 20 {
        let started = Instant::now();
        let response = client
            .post(format!("{base}/orders"))
            .bearer_auth(&customer)
            .header("idempotency-key", ulid::Ulid::new().to_string())
            .json(&cart)
            .send()
            .await
            .expect("checkout");
        let status = response.status();
        response.bytes().await.expect("a body");
        assert_eq!(status, 201);
        if n >= 20 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    println!(
        "POST /orders (3 lines, 2 farmers), {} checkouts: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99)
    );
}
