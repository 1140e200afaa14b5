//! Load test of the local gateway on the embedded backend, loopback only: a
//! market of 2 000 products, then for each scenario and concurrency level
//! `connections` clients send requests back to back for a bounded time (and at
//! most a bounded number of requests). Scenarios: one product read, one
//! unfiltered page of 20, one filtered page of 20 (in stock, by price: nine in
//! ten products pass), and a marketplace's mix (mostly browsing: pages with
//! and without filters, product reads, categories; some sign-ins, checkouts
//! and status changes). Prints throughput, p50, p99 and errors per scenario,
//! and per kind of request for the mix. The load generator runs in the same
//! process, on the same cores.
//!
//! `cargo run --release -p marketplace-tests --example gateway_load [seconds per run]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/mod.rs"]
mod support;

/// Accounts the sign-ins use (`<prefix><n>@example.com`).
const SIGN_IN_ACCOUNTS: usize = 200;
const SIGN_IN_PREFIX: &str = "shopper-";

/// Most requests one run sends, whatever its duration.
const MAX_REQUESTS: usize = 400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ProductRead,
    Page,
    FilteredPage,
    Categories,
    SignIn,
    Checkout,
    StatusChange,
}

/// The mix, per 1 000 requests.
const MIX: &[(Kind, usize)] = &[
    (Kind::Page, 350),
    (Kind::FilteredPage, 150),
    (Kind::ProductRead, 400),
    (Kind::Categories, 60),
    (Kind::SignIn, 5),
    (Kind::Checkout, 20),
    (Kind::StatusChange, 15),
];

struct Target {
    base: String,
    market: support::Market,
    /// Orders the checkouts placed, for status changes (each is confirmed once).
    placed: tokio::sync::Mutex<Vec<(String, usize)>>,
}

fn pick(n: usize) -> Kind {
    let mut slot = n % 1000;
    for (kind, share) in MIX {
        if slot < *share {
            return *kind;
        }
        slot -= share;
    }
    Kind::ProductRead
}

/// Sends one request of `kind`; `Ok` when it got the status it should.
async fn send(client: &reqwest::Client, target: &Target, kind: Kind, n: usize) -> bool {
    let base = &target.base;
    let market = &target.market;
    let product = &market.products[(n * 7919) % market.products.len()];
    let request = match kind {
        Kind::ProductRead => client.get(format!("{base}/products/{product}")),
        Kind::Page => client.get(format!("{base}/products?limit=20")),
        Kind::FilteredPage => client.get(format!("{base}/products?inStock=true&sort=price_asc&limit=20")),
        Kind::Categories => client.get(format!("{base}/categories")),
        // From one of 200 loopback addresses: sign-ins are throttled per
        // source address (30 per 15 minutes), as they should be.
        // and per account, as they should be.
        Kind::SignIn => {
            static SIGN_INS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let k = SIGN_INS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let address: std::net::IpAddr = format!("127.0.1.{}", 1 + k % 200).parse().expect("an address");
            let from = reqwest::Client::builder().local_address(address).build().expect("a client");
            let email = format!("{SIGN_IN_PREFIX}{}@example.com", k % SIGN_IN_ACCOUNTS);
            from.post(format!("{base}/auth/login")).json(&json!({"email": email, "password": support::PASSWORD}))
        }
        Kind::Checkout => {
            let lines: Vec<Value> = (0..3)
                .map(|i| json!({"productId": market.products[(n + i * 2) % 9 % market.products.len()], "quantity": 1}))
                .collect();
            client
                .post(format!("{base}/orders"))
                .bearer_auth(&market.customer)
                .header("idempotency-key", ulid::Ulid::new().to_string())
                .json(&json!({ "lines": lines }))
        }
        Kind::StatusChange => {
            let Some((order, farmer)) = target.placed.lock().await.pop() else {
                // Nothing to confirm yet: read a product instead (counted as a status change).
                return client.get(format!("{base}/products/{product}")).send().await.is_ok_and(|r| r.status() == 200);
            };
            client
                .post(format!("{base}/orders/{order}/status"))
                .bearer_auth(&market.farmers[farmer])
                .json(&json!({"status": "confirmed"}))
        }
    };
    let Ok(response) = request.send().await else { return false };
    let status = response.status().as_u16();
    let Ok(body) = response.bytes().await else { return false };
    if kind == Kind::Checkout && status == 201 {
        if let Ok(placed) = serde_json::from_slice::<Value>(&body) {
            let mut orders = target.placed.lock().await;
            for order in placed["orders"].as_array().into_iter().flatten() {
                let farmer = usize::from(order["farmerId"].as_str() == Some(market.farmer_ids[1].as_str()));
                orders.push((order["id"].as_str().unwrap_or_default().to_owned(), farmer));
            }
        }
    }
    matches!((kind, status), (Kind::Checkout, 201) | (_, 200))
}

struct Run {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: BTreeMap<Kind, Vec<Duration>>,
    errors_by_kind: BTreeMap<Kind, usize>,
}

async fn run(target: Arc<Target>, connections: usize, duration: Duration, only: Option<Kind>) -> Run {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().expect("a client");
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, target, counter) = (client.clone(), Arc::clone(&target), Arc::clone(&counter));
            tokio::spawn(async move {
                let mut seen: Vec<(Kind, Duration, bool)> = Vec::new();
                while started.elapsed() < duration {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= MAX_REQUESTS {
                        break;
                    }
                    let kind = only.unwrap_or_else(|| pick(n));
                    let sent = Instant::now();
                    let ok = send(&client, &target, kind, n).await;
                    seen.push((kind, sent.elapsed(), ok));
                }
                seen
            })
        })
        .collect();
    let mut result = Run {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: BTreeMap::new(),
        errors_by_kind: BTreeMap::new(),
    };
    for task in tasks {
        for (kind, latency, ok) in task.await.expect("a client task") {
            result.requests += 1;
            result.errors += usize::from(!ok);
            *result.errors_by_kind.entry(kind).or_default() += usize::from(!ok);
            result.latencies.entry(kind).or_default().push(latency);
        }
    }
    result.elapsed = started.elapsed();
    for latencies in result.latencies.values_mut() {
        latencies.sort();
    }
    result
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_stack, base, state) = support::embedded_stack(dir.path()).await;
    let client = reqwest::Client::new();
    let market = support::market(&client, &base, &state, 2000).await;
    let hash = shared::domain::PasswordHash::create(
        &shared::domain::Password::parse(support::PASSWORD.into()).expect("a password"),
    );
    for n in 0..SIGN_IN_ACCOUNTS {
        let user = shared::domain::User {
            email_verified: true,
            ..shared::domain::User::new(
                shared::domain::Email::parse(&format!("{SIGN_IN_PREFIX}{n}@example.com")).expect("an email"),
                shared::domain::DisplayName::parse("Shopper").expect("a name"),
                shared::domain::Role::Customer,
                hash.clone(),
                time::OffsetDateTime::now_utc(),
            )
        };
        shared::repo::users::create(state.store.as_ref(), &user).await.expect("an account");
    }
    let target = Arc::new(Target { base, market, placed: Default::default() });
    let duration = Duration::from_secs(seconds);
    println!("| scenario | connections | requests | errors | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    let scenarios: [(&str, Option<Kind>, &[usize]); 4] = [
        ("GET /products/{id}", Some(Kind::ProductRead), &[1, 16, 64]),
        ("GET /products?limit=20", Some(Kind::Page), &[1, 16, 64]),
        ("GET /products?inStock=true&sort=price_asc&limit=20", Some(Kind::FilteredPage), &[1, 16, 64]),
        ("mix", None, &[1, 16, 64]),
    ];
    let mut mix_at_64 = None;
    for (name, only, levels) in scenarios {
        for &connections in levels {
            let run = run(Arc::clone(&target), connections, duration, only).await;
            let mut all: Vec<Duration> = run.latencies.values().flatten().copied().collect();
            all.sort();
            println!(
                "| {name} | {connections} | {} | {} | {:.0} | {:.2} | {:.2} |",
                run.requests,
                run.errors,
                run.requests as f64 / run.elapsed.as_secs_f64(),
                support::percentile_ms(&all, 0.5),
                support::percentile_ms(&all, 0.99)
            );
            if only.is_none() && connections == 64 {
                mix_at_64 = Some(run);
            }
        }
    }
    if let Some(run) = mix_at_64 {
        println!("\nThe mix at 64 connections, by kind of request:\n");
        println!("| kind | requests | errors | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        for (kind, latencies) in &run.latencies {
            println!(
                "| {kind:?} | {} | {} | {:.2} | {:.2} |",
                latencies.len(),
                run.errors_by_kind.get(kind).copied().unwrap_or_default(),
                support::percentile_ms(latencies, 0.5),
                support::percentile_ms(latencies, 0.99)
            );
        }
    }
}
