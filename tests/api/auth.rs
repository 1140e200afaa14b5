//! Accounts: register (alike for known and new emails), login, me, refresh
//! rotation and reuse detection, logout, and every way a token or a login can fail.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use shared::domain::Role;
use shared::tokens::{Claims, TokenKeys, AUDIENCE, ISSUER};

use crate::accounts::wait_for_mail;
use crate::helpers::{access_token, assert_problem, refresh_token, spawn_app, unique_email, PASSWORD};

#[tokio::test]
async fn register_login_me_refresh_logout_work_end_to_end() {
    let app = spawn_app().await;
    let email = unique_email("ada");
    let registered = app.register(&email, "farmer").await;
    assert_eq!(registered["user"]["email"], email);
    assert_eq!(registered["user"]["role"], "farmer");
    assert_eq!(registered["tokenType"], "Bearer");

    let login = app.post("/auth/login", &json!({"email": email.to_uppercase(), "password": PASSWORD}), None).await;
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "private, no-store");
    let session: Value = login.json().await.unwrap();

    let me = app.get("/auth/me", Some(&access_token(&session))).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], email);
    assert!(me.get("passwordHash").is_none());

    let refreshed = app.post("/auth/refresh", &json!({"refreshToken": refresh_token(&session)}), None).await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_ne!(refresh_token(&refreshed), refresh_token(&session));
    assert_eq!(app.get("/auth/me", Some(&access_token(&refreshed))).await.status(), 200);

    let logout = app.post("/auth/logout", &json!({"refreshToken": refresh_token(&refreshed)}), None).await;
    assert_eq!(logout.status(), 204);
    let after = app.post("/auth/refresh", &json!({"refreshToken": refresh_token(&refreshed)}), None).await;
    assert_problem(after, 401).await;
}

#[tokio::test]
async fn nobody_registers_as_admin() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/auth/register",
            &json!({"email": unique_email("x"), "password": PASSWORD, "displayName": "X", "role": "admin"}),
            None,
        )
        .await;
    let body = assert_problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "role");
}

#[tokio::test]
async fn registering_a_known_email_answers_like_a_new_one_and_mails_its_owner() {
    let app = spawn_app().await;
    let known = unique_email("known");
    app.register_as(&known, "customer", "Known Owner").await;
    let body = |email: &str| json!({"email": email, "password": "another long password", "displayName": "Someone", "role": "farmer"});
    let fresh = unique_email("fresh");
    let for_new = app.post("/auth/register", &body(&fresh), None).await;
    // The known address in another letter case.
    let for_known = app.post("/auth/register", &body(&known.to_uppercase()), None).await;
    assert_eq!((for_known.status().as_u16(), for_new.status().as_u16()), (202, 202));
    let header_names = |response: &reqwest::Response| {
        let mut names: Vec<String> =
            response.headers().keys().map(|name| name.to_string()).filter(|name| name != "date").collect();
        names.sort();
        names
    };
    assert_eq!(header_names(&for_known), header_names(&for_new));
    assert_eq!(for_known.json::<Value>().await.unwrap(), for_new.json::<Value>().await.unwrap());

    // The owner hears about it; the new address gets its verification link.
    let mail = wait_for_mail(&app, &known, "You already have an account").await;
    assert!(mail.mail.text.contains("Hello Known Owner,") && mail.mail.text.contains("reset"), "{}", mail.mail.text);
    wait_for_mail(&app, &fresh, "Confirm your email address").await;
    // The known account is untouched: only its own password signs in.
    let login = |email: &str, password: &str| {
        let body = json!({"email": email, "password": password});
        let app = &app;
        async move { app.post("/auth/login", &body, None).await.status().as_u16() }
    };
    assert_eq!(login(&known, "another long password").await, 401);
    assert_eq!(login(&known, PASSWORD).await, 200);
    assert_eq!(login(&fresh, "another long password").await, 200);
}

#[tokio::test]
async fn wrong_password_is_401_and_unknown_email_too() {
    let app = spawn_app().await;
    let email = unique_email("pw");
    app.register(&email, "customer").await;
    let wrong = app.post("/auth/login", &json!({"email": email, "password": "not the password"}), None).await;
    assert_problem(wrong, 401).await;
    let unknown = app.post("/auth/login", &json!({"email": unique_email("nobody"), "password": PASSWORD}), None).await;
    assert_problem(unknown, 401).await;
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_with_retry_after() {
    let app = spawn_app().await;
    let email = unique_email("brute");
    app.register(&email, "customer").await;
    for _ in 0..shared::accounts::LOGIN_PER_ACCOUNT_AND_ADDRESS.max {
        let response = app.post("/auth/login", &json!({"email": email, "password": "guess guess guess"}), None).await;
        assert_eq!(response.status(), 401);
    }
    // Even the right password is refused while throttled.
    let response = app.post("/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // The five failures slide out of the last 15 minutes one fifth at a
    // time: the next try waits for the window's end and a fifth of the next.
    let limit = shared::accounts::LOGIN_PER_ACCOUNT_AND_ADDRESS;
    let fifth = (limit.window_secs / limit.max) as u64;
    assert!(retry_after > fifth && retry_after <= limit.window_secs as u64 + fifth, "{retry_after}");
    assert_problem(response, 429).await;
    // Another email is not affected.
    let other = unique_email("other");
    app.register(&other, "customer").await;
    let ok = app.post("/auth/login", &json!({"email": other, "password": PASSWORD}), None).await;
    assert_eq!(ok.status(), 200);
}

fn claims_for(session: &Value, exp_offset: i64) -> Claims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Claims {
        sub: session["user"]["id"].as_str().unwrap().to_owned(),
        role: Role::Customer,
        sid: "test".into(),
        iat: now,
        exp: now + exp_offset,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
    }
}

#[tokio::test]
async fn bad_access_tokens_are_401() {
    let app = spawn_app().await;
    let session = app.register(&unique_email("tok"), "customer").await;
    let good = access_token(&session);
    assert_eq!(app.get("/auth/me", Some(&good)).await.status(), 200);

    let expired = app.state.tokens.sign(&claims_for(&session, -120)).unwrap();
    let other_key = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
    let wrongly_signed = other_key.sign(&claims_for(&session, 600)).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);
    let alg_none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let wrong_audience = {
        let mut claims = claims_for(&session, 600);
        claims.aud = "someone-else".into();
        app.state.tokens.sign(&claims).unwrap()
    };
    for (name, token) in [
        ("expired", expired),
        ("wrongly signed", wrongly_signed),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("wrong audience", wrong_audience),
        ("garbage", "not-a-jwt".to_owned()),
    ] {
        let response = app.get("/auth/me", Some(&token)).await;
        assert_eq!(response.status(), 401, "{name} token");
        assert_problem(response, 401).await;
    }
    assert_problem(app.get("/auth/me", None).await, 401).await;
}

#[tokio::test]
async fn reused_refresh_token_is_401_and_revokes_the_session() {
    let app = spawn_app().await;
    let session = app.register(&unique_email("reuse"), "customer").await;
    let first = refresh_token(&session);
    let rotated: Value = app.post("/auth/refresh", &json!({"refreshToken": first}), None).await.json().await.unwrap();
    let second = refresh_token(&rotated);

    // The rotated-out token is refused...
    assert_problem(app.post("/auth/refresh", &json!({"refreshToken": first}), None).await, 401).await;
    // ...and its whole session is revoked, so the current token dies too.
    assert_problem(app.post("/auth/refresh", &json!({"refreshToken": second}), None).await, 401).await;
    // Another session of the same user is unaffected.
    let login = app.post("/auth/login", &json!({"email": session["user"]["email"], "password": PASSWORD}), None).await;
    let other: Value = login.json().await.unwrap();
    assert_eq!(app.post("/auth/refresh", &json!({"refreshToken": refresh_token(&other)}), None).await.status(), 200);
}

#[tokio::test]
async fn forged_refresh_tokens_are_401() {
    let app = spawn_app().await;
    let session = app.register(&unique_email("forge"), "customer").await;
    let token = refresh_token(&session);
    let (id, _) = token.split_once('.').unwrap();
    for forged in ["", "x", "a.b", &format!("{id}.wrongsecret"), &format!("{}.{}", ulid::Ulid::new(), "secret")] {
        assert_problem(app.post("/auth/refresh", &json!({"refreshToken": forged}), None).await, 401).await;
    }
}

#[tokio::test]
async fn a_customer_on_an_admin_route_is_403() {
    let app = spawn_app().await;
    let customer = app.register(&unique_email("cust"), "customer").await;
    let response = app.post("/categories", &json!({"name": "Nope"}), Some(&access_token(&customer))).await;
    assert_problem(response, 403).await;
    let farmer = app.register(&unique_email("farm"), "farmer").await;
    let response = app.post("/categories", &json!({"name": "Nope"}), Some(&access_token(&farmer))).await;
    assert_problem(response, 403).await;
    assert_problem(app.post("/categories", &json!({"name": "Nope"}), None).await, 401).await;
}
