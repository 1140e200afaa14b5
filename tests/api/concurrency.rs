//! Twenty concurrent registrations of one email, in mixed letter case, from
//! twenty addresses (so no per-address limit applies), on each backend: exactly
//! one account.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on_aws, unique_email, TestApp, PASSWORD};

async fn twenty_concurrent_registrations_make_one_account(app: TestApp) {
    let email = unique_email("race");
    let requests = (0..20).map(|i| {
        let address = if i % 2 == 0 { email.clone() } else { email.to_uppercase() };
        let body =
            json!({"email": address, "password": PASSWORD, "displayName": format!("Racer {i}"), "role": "customer"});
        let client = app.client_from(&format!("127.0.0.{}", i + 10));
        let url = app.url("/auth/register");
        async move { client.post(url).json(&body).send().await.expect("sent").status().as_u16() }
    });
    let mut statuses = join_all(requests).await;
    statuses.sort();
    // Every sign-up answers alike: none tells whether the address had an account.
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let login = app.post("/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_eq!(login.status(), 200);
    let listed = shared::repo::users::list(
        app.state.store.as_ref(),
        shared::repo::users::list_query(Some(&email)),
        |_| true,
        10,
        100,
    )
    .await
    .unwrap()
    .0;
    assert_eq!(listed.len(), 1, "exactly one account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_registrations_on_embedded_make_one_account() {
    twenty_concurrent_registrations_make_one_account(spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_registrations_on_aws_make_one_account() {
    twenty_concurrent_registrations_make_one_account(spawn_app_on_aws().await).await;
}
