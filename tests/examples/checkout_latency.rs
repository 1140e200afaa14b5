//! Times `POST /orders` through the local stack on the embedded backend: each
//! checkout holds 3 lines from 2 farmers (one order each, 3 guarded stock
//! decrements, the checkout, the idempotency record and 2 outbox events in one
//! transaction), sent one at a time after a warm-up. Prints p50, p90 and p99.
//!
//! `cargo run --release -p marketplace-tests --example checkout_latency [checkouts]`

use std::time::Instant;

use serde_json::json;

#[path = "support/mod.rs"]
mod support;

#[tokio::main]
async fn main() {
    let checkouts: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(300);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_stack, base, state) = support::embedded_stack(dir.path()).await;
    let client = reqwest::Client::new();
    let market = support::market(&client, &base, &state, 3).await;
    // Two products of the first farmer, one of the second.
    let products = [&market.products[0], &market.products[2], &market.products[1]];
    let customer = market.customer;
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
        support::percentile_ms(&times, 0.5),
        support::percentile_ms(&times, 0.9),
        support::percentile_ms(&times, 0.99)
    );
}
