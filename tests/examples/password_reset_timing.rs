//! Times `POST /auth/password-reset` for emails with and without an account
//! through the local stack (gateway, embedded store, jobs queue), 50 of each,
//! interleaved, each email asked once (the per-email limit is 3 an hour) from
//! loopback addresses 127.0.0.10..19 (the per-address limit is 10 an hour).
//! Prints the median and p90 of each and checks the answers are identical.
//!
//! `cargo run --release -p marketplace-tests --example password_reset_timing [tries]`

use std::time::{Duration, Instant};

use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User};
use shared::AppState;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let tries: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let state = AppState::embedded_serving(dir.path(), &format!("http://{addr}")).await.expect("state");
    let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let _stack =
        infra::local::LocalStack::start(state.clone(), dir.path(), &template, listener, Default::default(), None)
            .await
            .expect("local stack");

    let password = Password::parse("correct horse battery staple".into()).expect("valid");
    let hash = PasswordHash::create(&password);
    let mut known = Vec::new();
    for n in 0..tries {
        let email = Email::parse(&format!("known-{n}@example.com")).expect("valid");
        let user = User::new(
            email.clone(),
            DisplayName::parse("Kim").expect("valid"),
            Role::Customer,
            hash.clone(),
            time::OffsetDateTime::now_utc(),
        );
        shared::repo::users::create(state.store.as_ref(), &user).await.expect("create");
        known.push(email.to_string());
    }
    let clients: Vec<reqwest::Client> = (10..20)
        .map(|last| {
            let address: std::net::IpAddr = format!("127.0.0.{last}").parse().expect("an address");
            reqwest::Client::builder().local_address(address).build().expect("a client")
        })
        .collect();
    let url = format!("http://{addr}/auth/password-reset");
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    let mut bodies = std::collections::BTreeSet::new();
    for n in 0..tries {
        let client = &clients[(n / 5) % clients.len()];
        let unknown = format!("unknown-{n}@example.com");
        let order: [(&str, bool); 2] =
            if n % 2 == 0 { [(&known[n], true), (&unknown, false)] } else { [(&unknown, false), (&known[n], true)] };
        for (email, is_known) in order {
            let started = Instant::now();
            let response = client.post(&url).json(&serde_json::json!({ "email": email })).send().await.expect("sent");
            let status = response.status().as_u16();
            let body = response.text().await.expect("a body");
            let elapsed = started.elapsed();
            assert_eq!(status, 202, "{email}: {body}");
            bodies.insert(body);
            if is_known {
                known_times.push(elapsed)
            } else {
                unknown_times.push(elapsed)
            }
        }
    }
    assert_eq!(bodies.len(), 1, "every answer has the same body");
    known_times.sort();
    unknown_times.sort();
    for (what, times) in [("known email", &known_times), ("unknown email", &unknown_times)] {
        println!(
            "{what:>14}: median {:>7.2} ms, p90 {:>7.2} ms over {} requests",
            percentile(times, 0.5).as_secs_f64() * 1e3,
            percentile(times, 0.9).as_secs_f64() * 1e3,
            times.len()
        );
    }
}
