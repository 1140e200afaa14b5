//! What the benchmarks share: the local stack on a free port, accounts signed
//! in without the sign-up flow, a small market (category, farmers, products,
//! a customer), and percentiles.

#![allow(dead_code)] // each benchmark uses its own part

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User};
use shared::AppState;

/// The password of every benchmark account.
pub const PASSWORD: &str = "correct horse battery staple";

/// The `p` quantile (0..=1) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

/// The local stack over `state` (built by `make_state` for the address it
/// listens on), serving on a free loopback port; returns it and its base URL.
pub async fn local_stack<F, Fut>(dir: &Path, make_state: F) -> (infra::local::LocalStack, String, AppState)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = AppState>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let state = make_state(base.clone()).await;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let stack = infra::local::LocalStack::start(state.clone(), dir, &template, listener, Default::default(), None)
        .await
        .expect("local stack");
    (stack, base, state)
}

/// The local stack on the embedded backend in `dir`. One benchmark customer
/// places hundreds of orders, so the per-customer order limits are lifted
/// (the checkout throttle still counts each one).
pub async fn embedded_stack(dir: &Path) -> (infra::local::LocalStack, String, AppState) {
    let path = dir.to_owned();
    local_stack(dir, |base| async move {
        let mut state = AppState::embedded_serving(&path, &base).await.expect("state");
        state.order_limits = shared::config::OrderLimits {
            max_open_orders: 1_000_000_000,
            max_open_units_per_product: 1_000_000_000,
            checkouts_per_minute: 1_000_000_000,
            ..Default::default()
        };
        state
    })
    .await
}

/// Creates a verified account with `role` (number `n`) and signs it in;
/// returns the access token and the user id.
pub async fn sign_in(client: &reqwest::Client, base: &str, state: &AppState, role: Role, n: usize) -> (String, String) {
    let email = format!("bench-{n}@example.com");
    let user = User {
        email_verified: true,
        ..User::new(
            Email::parse(&email).expect("valid"),
            DisplayName::parse("Bench").expect("valid"),
            role,
            PasswordHash::create(&Password::parse(PASSWORD.into()).expect("valid")),
            time::OffsetDateTime::now_utc(),
        )
    };
    shared::repo::users::create(state.store.as_ref(), &user).await.expect("create");
    let session: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("a session");
    (session["accessToken"].as_str().expect("a token").to_owned(), user.id.to_string())
}

/// A small market: an admin, one category, two farmers and a customer.
pub struct Market {
    pub admin: String,
    /// The farmers' access tokens and their user ids.
    pub farmers: [String; 2],
    pub farmer_ids: [String; 2],
    pub customer: String,
    pub category: String,
    /// Every product listed, in creation order (alternating farmers).
    pub products: Vec<String>,
}

/// POSTs `body` to `path` with `token`; returns the JSON answer.
pub async fn post(client: &reqwest::Client, base: &str, path: &str, token: &str, body: &Value) -> Value {
    let response = client.post(format!("{base}{path}")).bearer_auth(token).json(body).send().await.expect("sent");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.expect("JSON")
}

/// Sets up a market with `products` products of ample stock, a few of them
/// out of stock (so an `inStock` filter drops some).
pub async fn market(client: &reqwest::Client, base: &str, state: &AppState, products: usize) -> Market {
    let (admin, _) = sign_in(client, base, state, Role::Admin, 0).await;
    let (farmer_a, farmer_a_id) = sign_in(client, base, state, Role::Farmer, 1).await;
    let (farmer_b, farmer_b_id) = sign_in(client, base, state, Role::Farmer, 2).await;
    let (farmers, farmer_ids) = ([farmer_a, farmer_b], [farmer_a_id, farmer_b_id]);
    let (customer, _) = sign_in(client, base, state, Role::Customer, 3).await;
    let category = post(client, base, "/categories", &admin, &json!({"name": "Bench produce"})).await;
    let category = category["id"].as_str().expect("an id").to_owned();
    let mut ids = Vec::with_capacity(products);
    for n in 0..products {
        let stock = if n % 10 == 9 { 0 } else { 1_000_000 };
        let body = json!({"name": format!("Produce {n}"), "categoryId": category, "price": 100 + (n * 37) % 900,
            "unit": "kg", "stock": stock});
        let product = post(client, base, "/products", &farmers[n % 2], &body).await;
        ids.push(product["id"].as_str().expect("an id").to_owned());
    }
    Market { admin, farmers, farmer_ids, customer, category, products: ids }
}
