//! Benchmark of the argon2id password hash (OWASP parameters) that dominates
//! login and register latency: prints the median and p90 of N hash+verify runs.
//! Run as auth is built (opt-level 3, see the release profile in Cargo.toml):
//! `CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo run --release -p marketplace-shared --example password_hash_bench -- 40`.
//! In the dev profile argon2 and blake2 are optimised too.

use std::time::Instant;

use shared::domain::{Password, PasswordHash};

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(30).max(1);
    let password = Password::parse("correct horse battery staple".into()).expect("valid password");
    let mut hash_ms = Vec::with_capacity(runs);
    let mut verify_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let hash = PasswordHash::create(&password);
        hash_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        assert!(hash.verify(&password));
        verify_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for (name, mut samples) in [("hash", hash_ms), ("verify", verify_ms)] {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!("{name:>6}: median {:.1} ms, p90 {:.1} ms over {runs} runs (one core)", at(0.5), at(0.9));
    }
}
