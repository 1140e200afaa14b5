//! Read and write capacity per route on DynamoDB: the local stack over a
//! DynamoDB table on a local AWS-compatible endpoint (moto, started here from
//! the project's `.venv` unless `AWS_ENDPOINT_URL` is set), a market of 60
//! products, then each route's request on its own, measured by the store's
//! capacity meter (`shared::adapters::CapacityMeter`): DynamoDB calls, the
//! units the endpoint reported and the units computed from item sizes (moto
//! reports placeholders, so the computed figures are the ones to use). Each
//! request is measured three times and the smallest reading kept, since the
//! local outbox relay polls the table in the background. Work a request leaves
//! to the outbox relay and the worker is measured apart, net of that polling.
//!
//! `cargo run --release -p marketplace-tests --example request_units`

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use shared::adapters::{self, CapacityMeter, CapacityUsed, DynamoStore};
use shared::AppState;

#[path = "support/mod.rs"]
mod support;

/// Starts moto on a free port unless an endpoint is configured; returns the
/// child to keep alive.
async fn endpoint() -> Option<tokio::process::Child> {
    for (name, value) in
        [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")]
    {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value);
        }
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        return None;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("bound").port();
    let child = tokio::process::Command::new(root.join(".venv/bin/python"))
        .args(["scripts/moto_server.py", "127.0.0.1", &port.to_string()])
        .current_dir(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("moto starts (run `make test` once to create .venv)");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/moto-api/")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::env::set_var("AWS_ENDPOINT_URL", &url);
    Some(child)
}

/// One route's request: method, path, token, body.
struct Call {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Value>,
    idempotent_key: bool,
}

async fn send(client: &reqwest::Client, base: &str, call: &Call) -> (u16, Value) {
    let mut request = client.request(call.method.clone(), format!("{base}{}", call.path));
    if let Some(token) = &call.token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    if call.idempotent_key {
        request = request.header("idempotency-key", ulid::Ulid::new().to_string());
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn row(name: &str, used: CapacityUsed) {
    println!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        used.calls, used.estimated_read, used.estimated_write, used.reported_read, used.reported_write
    );
}

/// The smallest reading of three runs of `call` (the background relay adds to some).
async fn measure(client: &reqwest::Client, base: &str, meter: &CapacityMeter, call: &Call) -> (CapacityUsed, Value) {
    measure_fewest(client, base, meter, [call, call, call]).await
}

/// The reading with the fewest DynamoDB calls over `calls`, each sent once a
/// little apart (the background relay adds to some), and the last answer.
async fn measure_fewest<'a>(
    client: &reqwest::Client,
    base: &str,
    meter: &CapacityMeter,
    calls: impl IntoIterator<Item = &'a Call>,
) -> (CapacityUsed, Value) {
    let mut best: Option<CapacityUsed> = None;
    let mut answer = Value::Null;
    for call in calls {
        let (used, body) = measure_once(client, base, meter, call).await;
        answer = body;
        if best.is_none_or(|b| used.calls < b.calls) {
            best = Some(used);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    (best.expect("at least one call"), answer)
}

/// Capacity the background used over `wait`, net of `idle_per_second`.
async fn background(meter: &CapacityMeter, idle: CapacityUsed, wait: Duration) -> CapacityUsed {
    let before = meter.used();
    tokio::time::sleep(wait).await;
    let used = meter.used().since(before);
    let scale = wait.as_secs_f64();
    CapacityUsed {
        calls: used.calls.saturating_sub((idle.calls as f64 * scale).round() as u64),
        reported_read: (used.reported_read - idle.reported_read * scale).max(0.0),
        reported_write: used.reported_write,
        estimated_read: (used.estimated_read - idle.estimated_read * scale).max(0.0),
        estimated_write: used.estimated_write,
    }
}

#[tokio::main]
async fn main() {
    let _moto = endpoint().await;
    let sdk = adapters::sdk_config().await;
    let table = format!("units-{}", ulid::Ulid::new().to_string().to_lowercase());
    adapters::provision::create_table(&adapters::dynamo_client(&sdk), &table).await.expect("a table");
    let dynamo = DynamoStore::new(adapters::dynamo_client(&sdk), table.clone());
    let meter: Arc<CapacityMeter> = dynamo.capacity();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_owned();
    let (_stack, base, state) = support::local_stack(dir.path(), |base| async move {
        let mut state = AppState::embedded_serving(&path, &base).await.expect("state");
        state.store = Arc::new(dynamo);
        state.backend = shared::Backend::Aws { table };
        state
    })
    .await;
    let client = reqwest::Client::new();
    let market = support::market(&client, &base, &state, 60).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = {
        let before = meter.used();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let used = meter.used().since(before);
        CapacityUsed {
            calls: used.calls / 2,
            reported_read: used.reported_read / 2.0,
            reported_write: used.reported_write / 2.0,
            estimated_read: used.estimated_read / 2.0,
            estimated_write: used.estimated_write / 2.0,
        }
    };

    let product = market.products[0].clone();
    let cart = json!({"lines": [
        {"productId": market.products[0], "quantity": 1},
        {"productId": market.products[2], "quantity": 1},
        {"productId": market.products[1], "quantity": 1}]});
    let call = |name, method, path: String, token: Option<&String>, body: Option<Value>| Call {
        name,
        method,
        path,
        token: token.cloned(),
        body,
        idempotent_key: false,
    };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let register = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        json!({"email": format!("units-{i}-{}@example.com", ulid::Ulid::new()), "password": support::PASSWORD,
            "displayName": "Units", "role": "customer"})
    };
    println!("Capacity per request on DynamoDB (table {}), a market of 60 products.\n", state.backend.name());
    println!("| route | DynamoDB calls | read units (from item sizes) | write units (from item sizes) | read units (reported) | write units (reported) |");
    println!("|---|---|---|---|---|---|");
    let calls = vec![
        call("GET /health", Method::GET, "/health".into(), None, None),
        call("GET /categories", Method::GET, "/categories".into(), None, None),
        call("GET /products (page of 20)", Method::GET, "/products?limit=20".into(), None, None),
        call(
            "GET /products?inStock=true&sort=price_asc",
            Method::GET,
            "/products?inStock=true&sort=price_asc&limit=20".into(),
            None,
            None,
        ),
        call("GET /products/{id}", Method::GET, format!("/products/{product}"), None, None),
        call(
            "POST /auth/login",
            Method::POST,
            "/auth/login".into(),
            None,
            Some(json!({"email": "bench-3@example.com", "password": support::PASSWORD})),
        ),
        call("GET /auth/me", Method::GET, "/auth/me".into(), Some(&market.customer), None),
        call("GET /users/me", Method::GET, "/users/me".into(), Some(&market.customer), None),
        call(
            "PATCH /products/{id}",
            Method::PATCH,
            format!("/products/{product}"),
            Some(&market.farmers[0]),
            Some(json!({"stock": 999_999})),
        ),
        call("GET /orders", Method::GET, "/orders".into(), Some(&market.customer), None),
    ];
    for c in &calls {
        row(c.name, measure(&client, &base, &meter, c).await.0);
    }
    let sign_ups: Vec<Call> = (0..3)
        .map(|_| call("POST /auth/register", Method::POST, "/auth/register".into(), None, Some(register())))
        .collect();
    row("POST /auth/register", measure_fewest(&client, &base, &meter, &sign_ups).await.0);
    let mut checkout =
        call("POST /orders (3 lines, 2 farmers)", Method::POST, "/orders".into(), Some(&market.customer), Some(cart));
    checkout.idempotent_key = true;
    let (used, placed) = measure(&client, &base, &meter, &checkout).await;
    row(checkout.name, used);
    // Each order confirms once: the smallest reading over the two orders of
    // that checkout and the first of another.
    let (status, another) = send(&client, &base, &checkout).await;
    assert_eq!(status, 201);
    let orders = placed["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .chain(another["orders"].as_array().expect("orders").iter().take(1));
    let confirmations: Vec<Call> = orders
        .map(|placed_order| {
            let order = placed_order["id"].as_str().expect("an order");
            let farmer = usize::from(placed_order["farmerId"].as_str() == Some(market.farmer_ids[1].as_str()));
            call(
                "POST /orders/{id}/status",
                Method::POST,
                format!("/orders/{order}/status"),
                Some(&market.farmers[farmer]),
                Some(json!({"status": "confirmed"})),
            )
        })
        .collect();
    row("POST /orders/{id}/status", measure_fewest(&client, &base, &meter, &confirmations).await.0);
    let order = placed["orders"][0]["id"].as_str().expect("an order").to_owned();
    row(
        "GET /orders/{id}",
        measure(
            &client,
            &base,
            &meter,
            &call("GET /orders/{id}", Method::GET, format!("/orders/{order}"), Some(&market.customer), None),
        )
        .await
        .0,
    );
    // What one checkout leaves to the relay and the worker (2 orders: 2 events,
    // notifications, sales figures, mail).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = send(&client, &base, &checkout).await;
    assert_eq!(status, 201);
    row("(async) one checkout's events: relay + worker", background(&meter, idle, Duration::from_secs(3)).await);
    println!(
        "\nIdle background (local outbox relay polling, per second): {} calls, {:.1} read units",
        idle.calls, idle.estimated_read
    );
}

async fn measure_once(
    client: &reqwest::Client,
    base: &str,
    meter: &CapacityMeter,
    call: &Call,
) -> (CapacityUsed, Value) {
    let before = meter.used();
    let (status, body) = send(client, base, call).await;
    assert!(status < 300, "{}: {status} {body}", call.name);
    (meter.used().since(before), body)
}
