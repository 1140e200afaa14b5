//! Abuse: refresh tokens racing, guessed and replayed, sessions past their
//! absolute lifetime; parallel password guessing, password spraying from one
//! address, sign-up floods, and the owner of an attacked account still getting
//! in. Storage-dependent scenarios run on both backends.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use serde_json::{json, Value};
use shared::accounts::{self, NewAccount, SelfServiceRole, LOGIN_PER_ACCOUNT_AND_ADDRESS, LOGIN_PER_ADDRESS};
use shared::domain::{DisplayName, Email, Password};
use shared::ports::Clock;
use time::OffsetDateTime;

use crate::helpers::{assert_problem, refresh_token, scenarios, unique_email, StateFixture, TestApp, PASSWORD};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/refresh", &json!({ "refreshToken": token }), None).await
}

async fn twenty_concurrent_refreshes_with_one_token_let_one_win_and_revoke_the_session(app: TestApp) {
    let session = app.register(&unique_email("race"), "customer").await;
    let token = refresh_token(&session);
    let responses = join_all((0..20).map(|_| refresh(&app, &token))).await;
    let mut winners = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            200 => winners.push(response.json::<Value>().await.unwrap()),
            _ => {
                assert_problem(response, 401).await;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    // The losers presented a secret the session had earlier: it is revoked.
    assert_problem(refresh(&app, &refresh_token(&winners[0])).await, 401).await;
}

async fn a_guessed_secret_for_a_live_session_is_401_and_revokes_nothing(app: TestApp) {
    let session = app.register(&unique_email("guess"), "customer").await;
    let token = refresh_token(&session);
    let (id, _) = token.split_once('.').unwrap();
    for guess in [format!("{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), format!("{id}.x")] {
        assert_problem(refresh(&app, &guess).await, 401).await;
        let logout = app.post("/auth/logout", &json!({ "refreshToken": guess }), None).await;
        assert_problem(logout, 401).await;
    }
    assert_eq!(refresh(&app, &token).await.status(), 200, "the session still works");
}

async fn logout_with_an_earlier_refresh_token_revokes_the_session(app: TestApp) {
    let session = app.register(&unique_email("logout"), "customer").await;
    let first = refresh_token(&session);
    let rotated: Value = refresh(&app, &first).await.json().await.unwrap();
    let logout = app.post("/auth/logout", &json!({ "refreshToken": first }), None).await;
    assert_eq!(logout.status(), 204);
    assert_problem(refresh(&app, &refresh_token(&rotated)).await, 401).await;
}

async fn parallel_guesses_for_one_account_check_at_most_the_limit_of_passwords(app: TestApp) {
    let email = unique_email("brute");
    app.register(&email, "customer").await;
    let before = app.state.counters.password_verifications.load(Ordering::Relaxed);
    let body = json!({ "email": email, "password": "a wrong guess" });
    let responses = join_all((0..20).map(|_| app.post("/auth/login", &body, None))).await;
    let mut statuses: Vec<u16> = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        if status == 429 {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(status);
    }
    let checked = app.state.counters.password_verifications.load(Ordering::Relaxed) - before;
    let limit = LOGIN_PER_ACCOUNT_AND_ADDRESS.max as u64;
    assert!(checked <= limit, "{checked} passwords checked, limit {limit}");
    assert_eq!(statuses.iter().filter(|s| **s == 401).count() as u64, checked, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count() as u64, 20 - checked, "{statuses:?}");
}

async fn the_owner_of_an_attacked_account_still_logs_in_from_their_address(app: TestApp) {
    let email = unique_email("owner");
    app.register(&email, "customer").await;
    let attacker = app.client_from("127.0.0.2");
    for _ in 0..LOGIN_PER_ACCOUNT_AND_ADDRESS.max + 3 {
        let guess = json!({ "email": email, "password": "a wrong guess" });
        attacker.post(app.url("/auth/login")).json(&guess).send().await.unwrap();
    }
    let blocked = attacker.post(app.url("/auth/login")).json(&json!({ "email": email, "password": PASSWORD }));
    assert_problem(blocked.send().await.unwrap(), 429).await;
    let owner = app.client_from("127.0.0.3");
    let login = owner.post(app.url("/auth/login")).json(&json!({ "email": email, "password": PASSWORD }));
    assert_eq!(login.send().await.unwrap().status(), 200, "the owner's address is not throttled");
}

async fn spraying_many_emails_from_one_address_is_throttled_there_only(app: TestApp) {
    let sprayer = app.client_from("127.0.0.4");
    let mut throttled_at = None;
    for attempt in 1..=50 {
        let guess = json!({ "email": unique_email("victim"), "password": "Summer2026!" });
        let response = sprayer.post(app.url("/auth/login")).json(&guess).send().await.unwrap();
        if response.status() == 429 {
            throttled_at = Some(attempt);
            break;
        }
        assert_problem(response, 401).await;
    }
    let throttled_at = throttled_at.expect("the address is throttled before its 50th email");
    assert_eq!(throttled_at as i64, LOGIN_PER_ADDRESS.max + 1);
    let email = unique_email("bystander");
    app.register(&email, "customer").await;
    let other = app.client_from("127.0.0.5").post(app.url("/auth/login"));
    let response = other.json(&json!({ "email": email, "password": PASSWORD })).send().await.unwrap();
    assert_eq!(response.status(), 200, "another address is unaffected");
}

async fn sign_ups_from_one_address_are_limited(app: TestApp) {
    let flooder = app.client_from("127.0.0.6");
    let mut statuses = Vec::new();
    for _ in 0..accounts::REGISTER_PER_ADDRESS.max + 2 {
        let body =
            json!({ "email": unique_email("flood"), "password": PASSWORD, "displayName": "F", "role": "customer" });
        statuses.push(flooder.post(app.url("/auth/register")).json(&body).send().await.unwrap().status().as_u16());
    }
    let allowed = accounts::REGISTER_PER_ADDRESS.max as usize;
    assert!(statuses[..allowed].iter().all(|s| *s == 202), "{statuses:?}");
    assert!(statuses[allowed..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(app.register(&unique_email("elsewhere"), "farmer").await["user"]["role"], "farmer");
}

scenarios!(
    embedded: [
        twenty_concurrent_refreshes_with_one_token_let_one_win_and_revoke_the_session,
        a_guessed_secret_for_a_live_session_is_401_and_revokes_nothing,
        logout_with_an_earlier_refresh_token_revokes_the_session,
        parallel_guesses_for_one_account_check_at_most_the_limit_of_passwords,
        the_owner_of_an_attacked_account_still_logs_in_from_their_address,
        spraying_many_emails_from_one_address_is_throttled_there_only,
        sign_ups_from_one_address_are_limited,
    ],
);

/// A clock the test moves.
struct ManualClock(Mutex<OffsetDateTime>);

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

async fn refreshing_does_not_extend_a_session_past_its_absolute_lifetime(fixture: StateFixture) {
    let mut state = fixture.state.clone();
    let start = OffsetDateTime::now_utc();
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    state.clock = clock.clone();
    let email = Email::parse(&unique_email("long")).unwrap();
    let new = NewAccount {
        email: email.clone(),
        password: Password::parse(PASSWORD.into()).unwrap(),
        display_name: DisplayName::parse("Long").unwrap(),
        role: SelfServiceRole::Customer,
    };
    accounts::register(&state, new, "127.0.0.1").await.unwrap();
    let signed = accounts::login(&state, email, PASSWORD.into(), "127.0.0.1").await.unwrap();
    let mut token = signed.session.refresh_token;
    let lifetime = state.token_settings.refresh_ttl;
    // Refresh every week: each works until the lifetime set at sign-in is over.
    for week in 1..=4 {
        *clock.0.lock().unwrap() = start + time::Duration::weeks(week);
        if time::Duration::weeks(week) < lifetime {
            token = accounts::refresh(&state, &token).await.unwrap().session.refresh_token;
        }
    }
    *clock.0.lock().unwrap() = start + lifetime + time::Duration::seconds(1);
    let late = accounts::refresh(&state, &token).await;
    assert!(matches!(late, Err(accounts::AccountError::Unauthenticated(_))), "{late:?}");
}

mod lifetime {
    use super::*;

    scenarios!(
        using embedded_fixture;
        embedded: [refreshing_does_not_extend_a_session_past_its_absolute_lifetime],
    );
}
