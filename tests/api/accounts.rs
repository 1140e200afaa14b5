//! Accounts end to end: email verification through the local mailbox, password
//! reset (same answer and same work for unknown emails, every session ended,
//! single-use tokens), password change, profiles and farmer pages, the admin
//! list, disabling and enabling, role changes, erasure (no item keeps the email
//! or name), and the authorization matrix of every account route. Storage
//! scenarios run on both backends.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use shared::adapters::StoredMail;
use shared::domain::UserId;
use shared::repo::link_tokens::{self, Purpose};

use crate::helpers::{access_token, assert_problem, refresh_token, unique_email, TestApp, PASSWORD};

/// Sends `method path` with an optional JSON body and bearer token.
pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// Polls until `check` returns `Some`, for at most 15 seconds.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message in the local mailbox, newest first, as `GET /_local/mail` lists them.
pub(crate) async fn mailbox(app: &TestApp) -> Vec<StoredMail> {
    let response = app.get("/_local/mail?format=json", None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    serde_json::from_value(body["items"].clone()).unwrap()
}

/// Waits for the newest message to `to` whose subject contains `subject`.
pub(crate) async fn wait_for_mail(app: &TestApp, to: &str, subject: &str) -> StoredMail {
    eventually(&format!("mail {subject:?} to {to}"), || async {
        mailbox(app).await.into_iter().find(|m| m.mail.to == to && m.mail.subject.contains(subject))
    })
    .await
}

/// The link in a message's text, and its token.
fn link_and_token(mail: &StoredMail) -> (String, String) {
    let link = mail.mail.text.split_whitespace().find(|w| w.starts_with("http")).expect("a link").to_owned();
    let token = link.split("token=").nth(1).expect("a token").to_owned();
    (link, token)
}

async fn create_category(app: &TestApp, admin: &str) -> String {
    let name = format!("Greens {}", ulid::Ulid::new());
    let response = app.post("/categories", &json!({ "name": name }), Some(admin)).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn create_product(app: &TestApp, farmer: &str, category: &str) -> String {
    let body = json!({"name": "Kale", "categoryId": category, "price": 300, "unit": "bunch", "stock": 5});
    let response = app.post("/products", &body, Some(farmer)).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Whether `product` is in `GET /products?farmer=` and readable at `GET /products/{id}`.
async fn publicly_visible(app: &TestApp, farmer_id: &str, product: &str) -> (bool, bool) {
    let page: Value = app.get(&format!("/products?farmer={farmer_id}"), None).await.json().await.unwrap();
    let listed = page["items"].as_array().unwrap().iter().any(|p| p["id"] == product);
    let read = app.get(&format!("/products/{product}"), None).await.status();
    assert!(read == 200 || read == 404, "{read}");
    (listed, read == 200)
}

async fn wait_visible(app: &TestApp, farmer_id: &str, product: &str, visible: bool) {
    eventually(&format!("product visible = {visible}"), || async {
        (publicly_visible(app, farmer_id, product).await == (visible, visible)).then_some(())
    })
    .await
}

fn user_id(session: &Value) -> String {
    session["user"]["id"].as_str().unwrap().to_owned()
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post("/auth/login", &json!({"email": email, "password": password}), None).await
}

async fn refresh_status(app: &TestApp, refresh: &str) -> u16 {
    app.post("/auth/refresh", &json!({ "refreshToken": refresh }), None).await.status().as_u16()
}

async fn verification_link_in_the_local_mailbox_verifies(app: TestApp) {
    let admin = app.admin_token().await;
    let category = create_category(&app, &admin).await;
    let email = unique_email("grower");
    let farmer = app.register_unverified(&email, "farmer").await;
    assert_eq!(farmer["user"]["emailVerified"], false);
    let token = access_token(&farmer);
    let product = create_product(&app, &token, &category).await;
    let farmer_id = user_id(&farmer);
    // Unverified: listed, but not in public browse or reads.
    assert_eq!(publicly_visible(&app, &farmer_id, &product).await, (false, false));

    let mail = wait_for_mail(&app, &email, "Confirm your email").await;
    let (link, verify_token) = link_and_token(&mail);
    assert!(link.starts_with(&app.url("/_local/links/verify-email?token=")), "{link}");
    assert!(mail.mail.html.contains("verify-email?token="), "the HTML body has the link too");
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the link opens the local stand-in page");

    // A tampered token is 400 and changes nothing.
    let mut tampered = verify_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_problem(app.post("/auth/verify-email", &json!({ "token": tampered }), None).await, 400).await;
    let me: Value = app.get("/auth/me", Some(&token)).await.json().await.unwrap();
    assert_eq!(me["emailVerified"], false);

    let verified = app.post("/auth/verify-email", &json!({ "token": verify_token }), None).await;
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.json::<Value>().await.unwrap()["emailVerified"], true);
    let me: Value = app.get("/auth/me", Some(&token)).await.json().await.unwrap();
    assert_eq!(me["emailVerified"], true);
    // Verified: the product appears in public.
    wait_visible(&app, &farmer_id, &product, true).await;

    // Used once: 410.
    assert_problem(app.post("/auth/verify-email", &json!({ "token": verify_token }), None).await, 410).await;

    // An expired token is 410 and verifies nothing.
    let other_email = unique_email("late");
    let other = app.register_unverified(&other_email, "customer").await;
    let other_id = UserId::parse(&user_id(&other)).unwrap();
    let store = app.state.store.as_ref();
    let now = time::OffsetDateTime::now_utc();
    let expired = link_tokens::issue(store, Purpose::VerifyEmail, other_id, -1, now).await.unwrap();
    assert_problem(app.post("/auth/verify-email", &json!({ "token": expired }), None).await, 410).await;
    let me: Value = app.get("/auth/me", Some(&access_token(&other))).await.json().await.unwrap();
    assert_eq!(me["emailVerified"], false);
    // A reset token is no verification token.
    let reset = link_tokens::issue(store, Purpose::ResetPassword, other_id, 3600, now).await.unwrap();
    assert_problem(app.post("/auth/verify-email", &json!({ "token": reset }), None).await, 400).await;

    // Resend: a new link for the unverified, 409 for the verified.
    let resent = app.post("/auth/verify-email/resend", &json!({}), Some(&access_token(&other))).await;
    assert_eq!(resent.status(), 202);
    wait_for_mail(&app, &other_email, "Confirm your email").await;
    assert_problem(app.post("/auth/verify-email/resend", &json!({}), Some(&token)).await, 409).await;
}

async fn password_reset_answers_alike_and_ends_every_session(app: TestApp) {
    let email = unique_email("forgetful");
    let first = app.register(&email, "customer").await;
    let second: Value = login(&app, &email, PASSWORD).await.json().await.unwrap();
    let unknown = unique_email("nobody");

    let for_unknown = app.post("/auth/password-reset", &json!({ "email": unknown }), None).await;
    let for_known = app.post("/auth/password-reset", &json!({ "email": email }), None).await;
    assert_eq!((for_known.status().as_u16(), for_unknown.status().as_u16()), (202, 202));
    assert_eq!(for_known.json::<Value>().await.unwrap(), for_unknown.json::<Value>().await.unwrap());

    let mail = wait_for_mail(&app, &email, "Reset your password").await;
    assert!(mailbox(&app).await.iter().all(|m| m.mail.to != unknown), "nothing is sent to an unknown address");
    let (link, token) = link_and_token(&mail);
    assert!(link.starts_with(&app.url("/_local/links/reset-password?token=")), "{link}");

    let new_password = "a brand new passphrase";
    let body = json!({ "token": token, "password": "short" });
    let weak = app.post("/auth/password-reset/confirm", &body, None).await;
    assert_eq!(assert_problem(weak, 422).await["errors"][0]["field"], "password");
    let body = json!({ "token": token, "password": new_password });
    assert_eq!(app.post("/auth/password-reset/confirm", &body, None).await.status(), 204);
    // A token works once.
    assert_problem(app.post("/auth/password-reset/confirm", &body, None).await, 410).await;
    // Every session ended.
    assert_eq!(refresh_status(&app, &refresh_token(&first)).await, 401);
    assert_eq!(refresh_status(&app, &refresh_token(&second)).await, 401);
    assert_eq!(login(&app, &email, PASSWORD).await.status(), 401);
    let fresh: Value = login(&app, &email, new_password).await.json().await.unwrap();
    assert_eq!(refresh_status(&app, &refresh_token(&fresh)).await, 200);
}

/// Resets for `email` in the mailbox.
async fn reset_mails(app: &TestApp, email: &str) -> usize {
    mailbox(app).await.iter().filter(|m| m.mail.to == email && m.mail.subject.contains("Reset your password")).count()
}

#[tokio::test]
async fn reset_requests_from_one_address_do_not_block_the_owner_asking_from_another() {
    let app = crate::helpers::spawn_app().await;
    let email = unique_email("victim");
    app.register(&email, "customer").await;
    let body = json!({ "email": email });
    let attacker = app.client_from("127.0.0.2");
    let limit = shared::accounts::RESET_PER_EMAIL_AND_ADDRESS;
    for _ in 0..limit.max {
        let response = attacker.post(app.url("/auth/password-reset")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 202);
    }
    let refused = attacker.post(app.url("/auth/password-reset")).json(&body).send().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 429).await;
    let sent = limit.max as usize;
    eventually("the attacker's resets mailed", || async { (reset_mails(&app, &email).await == sent).then_some(()) })
        .await;

    // The owner, from their own address, still gets a link.
    assert_eq!(app.post("/auth/password-reset", &body, None).await.status(), 202);
    eventually("the owner's reset mailed", || async { (reset_mails(&app, &email).await == sent + 1).then_some(()) })
        .await;
}

async fn a_password_change_ends_the_other_sessions_only(app: TestApp) {
    let email = unique_email("changer");
    let this = app.register(&email, "farmer").await;
    let other: Value = login(&app, &email, PASSWORD).await.json().await.unwrap();
    let token = access_token(&this);
    let wrong = json!({ "currentPassword": "not my password", "newPassword": "another good passphrase" });
    let refused = app.post("/auth/password", &wrong, Some(&token)).await;
    assert_eq!(assert_problem(refused, 422).await["errors"][0]["field"], "currentPassword");
    assert_eq!(refresh_status(&app, &refresh_token(&other)).await, 200, "nothing changed");
    let other: Value = login(&app, &email, PASSWORD).await.json().await.unwrap();

    let body = json!({ "currentPassword": PASSWORD, "newPassword": "another good passphrase" });
    assert_eq!(app.post("/auth/password", &body, Some(&token)).await.status(), 204);
    assert_eq!(refresh_status(&app, &refresh_token(&this)).await, 200, "this session carries on");
    assert_eq!(refresh_status(&app, &refresh_token(&other)).await, 401, "the other one ended");
    assert_eq!(login(&app, &email, "another good passphrase").await.status(), 200);
}

async fn profiles_and_public_farmer_pages(app: TestApp) {
    let admin = app.admin_token().await;
    let category = create_category(&app, &admin).await;
    let region = format!("Region {}", ulid::Ulid::new());
    let farmer = app.register(&unique_email("farm"), "farmer").await;
    let token = access_token(&farmer);
    let farmer_id = user_id(&farmer);
    let farm = json!({
        "farmName": "Green Acres", "town": "Ghent", "region": region,
        "coordinates": {"latitude": 51.05, "longitude": 3.72},
        "pickupNotes": "Saturdays 9-12", "offersDelivery": true, "deliveryNotes": "Within 20 km",
    });
    let body = json!({ "displayName": "Ana", "farm": farm });
    let updated = call(&app, Method::PATCH, "/users/me", Some(&body), Some(&token)).await;
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["displayName"], "Ana");
    assert_eq!(updated["farm"]["farmName"], "Green Acres");
    assert_eq!(updated["farm"]["coordinates"]["latitude"], 51.05);
    let me: Value = app.get("/users/me", Some(&token)).await.json().await.unwrap();
    assert_eq!(me["farm"], updated["farm"]);
    let bad = json!({ "farm": { "farmName": "X", "town": "T", "region": "R", "coordinates": {"latitude": 95, "longitude": 0} } });
    assert_problem(call(&app, Method::PATCH, "/users/me", Some(&bad), Some(&token)).await, 422).await;

    let customer = app.register(&unique_email("eater"), "customer").await;
    let refused =
        call(&app, Method::PATCH, "/users/me", Some(&json!({ "farm": farm })), Some(&access_token(&customer))).await;
    assert_eq!(assert_problem(refused, 422).await["errors"][0]["field"], "farm");

    // No listed product yet: not in the list, but the page exists.
    let list: Value = app.get(&format!("/farmers?region={}", region.to_uppercase()), None).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    create_product(&app, &token, &category).await;
    let list: Value = app.get(&format!("/farmers?region={}", region.to_uppercase()), None).await.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], farmer_id.as_str());
    assert_eq!(items[0]["listedProducts"], 1);
    let other_region: Value = app.get("/farmers?region=Elsewhere", None).await.json().await.unwrap();
    assert!(other_region["items"].as_array().unwrap().iter().all(|f| f["id"] != farmer_id.as_str()));

    let page = app.get(&format!("/farmers/{farmer_id}"), None).await;
    assert_eq!(page.status(), 200);
    let etag = page.headers()["etag"].to_str().unwrap().to_owned();
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["farm"]["town"], "Ghent");
    assert_eq!(page["listedProducts"], 1);
    let cached =
        app.client.get(app.url(&format!("/farmers/{farmer_id}"))).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(cached.status(), 304);
    assert_problem(app.get(&format!("/farmers/{}", user_id(&customer)), None).await, 404).await;
    assert_problem(app.get("/farmers/not-an-id", None).await, 404).await;
    let unverified = app.register_unverified(&unique_email("new"), "farmer").await;
    assert_problem(app.get(&format!("/farmers/{}", user_id(&unverified)), None).await, 404).await;
}

async fn admins_list_disable_enable_and_change_roles(app: TestApp) {
    let admin = app.admin_token().await;
    let category = create_category(&app, &admin).await;
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let farmer_email = format!("{tag}-farmer@example.com");
    let farmer = app.register(&farmer_email, "farmer").await;
    let customer = app.register(&format!("{tag}-customer@example.com"), "customer").await;
    let farmer_id = user_id(&farmer);
    let product = create_product(&app, &access_token(&farmer), &category).await;

    let all: Value = app.get(&format!("/users?emailPrefix={tag}"), Some(&admin)).await.json().await.unwrap();
    let emails: Vec<&str> = all["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, [format!("{tag}-customer@example.com").as_str(), &farmer_email]);
    let farmers: Value =
        app.get(&format!("/users?emailPrefix={tag}&role=farmer"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(farmers["items"].as_array().unwrap().len(), 1);
    let paged: Value = app.get(&format!("/users?emailPrefix={tag}&limit=1"), Some(&admin)).await.json().await.unwrap();
    let cursor = paged["nextCursor"].as_str().expect("a second page").to_owned();
    let next: Value =
        app.get(&format!("/users?emailPrefix={tag}&limit=1&cursor={cursor}"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(next["items"][0]["email"], farmer_email.as_str());

    // Disable: refresh fails at once, sign-in is refused, routes that read the
    // account refuse the access token at once, products leave public view.
    let disabled = app.post(&format!("/users/{farmer_id}/disable"), &json!({}), Some(&admin)).await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(disabled.json::<Value>().await.unwrap()["disabled"], true);
    assert_eq!(refresh_status(&app, &refresh_token(&farmer)).await, 401);
    assert_problem(login(&app, &farmer_email, PASSWORD).await, 403).await;
    assert_problem(app.get("/users/me", Some(&access_token(&farmer))).await, 401).await;
    let body = json!({"name": "Leeks", "categoryId": category, "price": 200, "unit": "kg", "stock": 1});
    assert_problem(app.post("/products", &body, Some(&access_token(&farmer))).await, 403).await;
    wait_visible(&app, &farmer_id, &product, false).await;
    let listed: Value =
        app.get(&format!("/users?emailPrefix={tag}&disabled=true"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let enabled = app.post(&format!("/users/{farmer_id}/enable"), &json!({}), Some(&admin)).await;
    assert_eq!(enabled.status(), 200);
    wait_visible(&app, &farmer_id, &product, true).await;
    assert_eq!(login(&app, &farmer_email, PASSWORD).await.status(), 200);

    // Role changes: a farmer made a customer leaves public view.
    let body = json!({ "role": "customer" });
    let changed = call(&app, Method::PATCH, &format!("/users/{farmer_id}"), Some(&body), Some(&admin)).await;
    assert_eq!(changed.json::<Value>().await.unwrap()["role"], "customer");
    wait_visible(&app, &farmer_id, &product, false).await;
    let body = json!({ "role": "farmer" });
    let customer_id = user_id(&customer);
    let changed = call(&app, Method::PATCH, &format!("/users/{customer_id}"), Some(&body), Some(&admin)).await;
    assert_eq!(changed.json::<Value>().await.unwrap()["role"], "farmer");
    let refreshed: Value =
        app.post("/auth/refresh", &json!({"refreshToken": refresh_token(&customer)}), None).await.json().await.unwrap();
    assert_eq!(refreshed["user"]["role"], "farmer", "the next refresh carries the new role");
    let admin_body = json!({ "role": "admin" });
    assert_problem(
        call(&app, Method::PATCH, &format!("/users/{customer_id}"), Some(&admin_body), Some(&admin)).await,
        422,
    )
    .await;
    assert_problem(app.post(&format!("/users/{}/disable", UserId::new()), &json!({}), Some(&admin)).await, 404).await;
}

/// The admin answers about a farmer (the user list, disable, enable, role
/// change) show the farm profile the farmer filled in, as `GET /users/me`
/// does; `null` once the account is no longer a farmer's.
#[tokio::test]
async fn admin_answers_show_a_farmers_farm_profile() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let farmer = app.register(&format!("{tag}-farmer@example.com"), "farmer").await;
    let farmer_id = user_id(&farmer);
    let farm = json!({ "farm": { "farmName": "Green Acres", "town": "Ghent", "region": "East Flanders" } });
    let updated = call(&app, Method::PATCH, "/users/me", Some(&farm), Some(&access_token(&farmer))).await;
    assert_eq!(updated.status(), 200);

    let listed: Value = app.get(&format!("/users?emailPrefix={tag}"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["farm"]["farmName"], "Green Acres", "GET /users: {listed}");
    for action in ["disable", "enable"] {
        let answer = app.post(&format!("/users/{farmer_id}/{action}"), &json!({}), Some(&admin)).await;
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer["farm"]["farmName"], "Green Acres", "{action}: {answer}");
    }
    let path = format!("/users/{farmer_id}");
    let to_customer = call(&app, Method::PATCH, &path, Some(&json!({ "role": "customer" })), Some(&admin)).await;
    let to_customer: Value = to_customer.json().await.unwrap();
    assert_eq!(to_customer["farm"], Value::Null, "a customer has no farm: {to_customer}");
    let to_farmer = call(&app, Method::PATCH, &path, Some(&json!({ "role": "farmer" })), Some(&admin)).await;
    let to_farmer: Value = to_farmer.json().await.unwrap();
    assert_eq!(to_farmer["farm"]["town"], "Ghent", "a farmer again shows the page kept: {to_farmer}");
}

/// Every item's text (key and attributes) in the app's store.
async fn every_item_text(app: &TestApp) -> Vec<String> {
    match &app.state.backend {
        shared::Backend::Embedded { .. } => {
            let db = rusqlite::Connection::open(app.dir.path().join("marketplace.db")).unwrap();
            let mut statement = db.prepare("SELECT pk, sk, attrs FROM items").unwrap();
            let rows = statement
                .query_map([], |row| {
                    Ok(format!(
                        "{} {} {}",
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?
                    ))
                })
                .unwrap();
            rows.map(Result::unwrap).collect()
        }
        shared::Backend::Aws { table } => {
            let sdk = shared::adapters::sdk_config().await;
            let client = shared::adapters::dynamo_client(&sdk);
            let mut texts = Vec::new();
            let mut start = None;
            loop {
                let page = client.scan().table_name(table).set_exclusive_start_key(start).send().await.unwrap();
                texts.extend(page.items().iter().map(|item| format!("{item:?}")));
                match page.last_evaluated_key() {
                    Some(key) if !key.is_empty() => start = Some(key.clone()),
                    _ => break,
                }
            }
            texts
        }
    }
}

async fn erasure_leaves_no_email_or_name_and_frees_the_email(app: TestApp) {
    let admin = app.admin_token().await;
    let category = create_category(&app, &admin).await;
    let email = unique_email("leaver");
    let name = format!("Leaving Name {}", ulid::Ulid::new());
    let farmer = app.register_as(&email, "farmer", &name).await;
    app.mark_verified(&farmer).await;
    let token = access_token(&farmer);
    let farmer_id = user_id(&farmer);
    let farm = json!({ "farm": { "farmName": format!("{name} Farm"), "town": "T", "region": "R" } });
    assert_eq!(call(&app, Method::PATCH, "/users/me", Some(&farm), Some(&token)).await.status(), 200);
    let product = create_product(&app, &token, &category).await;
    // A few failed logins and a reset request leave counters behind.
    assert_eq!(login(&app, &email, "wrong password!").await.status(), 401);
    assert_eq!(app.post("/auth/password-reset", &json!({ "email": email }), None).await.status(), 202);
    wait_for_mail(&app, &email, "Reset your password").await;
    let before = every_item_text(&app).await;
    assert!(
        before.iter().any(|t| t.contains(&email)) && before.iter().any(|t| t.contains(&name)),
        "the scan sees them"
    );

    let wrong = json!({ "password": "not my password" });
    assert_problem(call(&app, Method::DELETE, "/users/me", Some(&wrong), Some(&token)).await, 422).await;
    let right = json!({ "password": PASSWORD });
    assert_eq!(call(&app, Method::DELETE, "/users/me", Some(&right), Some(&token)).await.status(), 204);

    wait_visible(&app, &farmer_id, &product, false).await;
    eventually("the product unlisted", || async {
        let product =
            shared::repo::products::get(app.state.store.as_ref(), shared::domain::ProductId::parse(&product).unwrap())
                .await
                .unwrap()
                .unwrap();
        (!product.is_listed()).then_some(())
    })
    .await;
    let after = every_item_text(&app).await;
    let leaks: Vec<&String> = after.iter().filter(|t| t.contains(&email) || t.contains(&name)).collect();
    assert!(leaks.is_empty(), "items still hold the email or name: {leaks:?}");
    assert_eq!(refresh_status(&app, &refresh_token(&farmer)).await, 401);
    assert_problem(app.get("/users/me", Some(&token)).await, 401).await;
    assert_problem(app.get(&format!("/farmers/{farmer_id}"), None).await, 404).await;
    assert_eq!(login(&app, &email, PASSWORD).await.status(), 401);
    app.register(&email, "customer").await;
}

/// The signed-in user's id, from `GET /auth/me`.
async fn my_id(app: &TestApp, token: &str) -> String {
    let me: Value = app.get("/auth/me", Some(token)).await.json().await.unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn admins_cannot_erase_themselves_and_the_last_enabled_admin_stays(app: TestApp) {
    let first = app.admin_token().await;
    let first_id = my_id(&app, &first).await;
    let erase = json!({ "password": PASSWORD });
    let refused = assert_problem(call(&app, Method::DELETE, "/users/me", Some(&erase), Some(&first)).await, 403).await;
    assert!(refused["detail"].as_str().unwrap().contains("admin"), "{refused}");
    assert_eq!(app.get("/users/me", Some(&first)).await.status(), 200, "still there");

    // Alone, the admin can be neither disabled nor demoted.
    let last =
        assert_problem(app.post(&format!("/users/{first_id}/disable"), &json!({}), Some(&first)).await, 409).await;
    assert!(last["detail"].as_str().unwrap().contains("last enabled admin"), "{last}");
    let demote = json!({ "role": "customer" });
    let path = format!("/users/{first_id}");
    assert_problem(call(&app, Method::PATCH, &path, Some(&demote), Some(&first)).await, 409).await;

    // With a second admin, one may disable the other, but not then themselves.
    let second = app.admin_token().await;
    let second_id = my_id(&app, &second).await;
    assert_eq!(app.post(&format!("/users/{first_id}/disable"), &json!({}), Some(&second)).await.status(), 200);
    let second_path = format!("/users/{second_id}");
    assert_problem(app.post(&format!("{second_path}/disable"), &json!({}), Some(&second)).await, 409).await;
    assert_problem(call(&app, Method::PATCH, &second_path, Some(&demote), Some(&second)).await, 409).await;
    assert_eq!(app.post(&format!("/users/{first_id}/enable"), &json!({}), Some(&second)).await.status(), 200);
    let demoted = call(&app, Method::PATCH, &path, Some(&demote), Some(&second)).await;
    assert_eq!(demoted.status(), 200);
    assert_eq!(demoted.json::<Value>().await.unwrap()["role"], "customer");
    assert_problem(app.post(&format!("{second_path}/disable"), &json!({}), Some(&second)).await, 409).await;
    // The demoted admin's token still says admin; admin rights go by the
    // account on every route: the user list, categories, everyone's orders.
    assert_problem(app.get("/users", Some(&first)).await, 403).await;
    assert_eq!(app.get("/users", Some(&second)).await.status(), 200);
    let category = json!({ "name": format!("Demoted {}", ulid::Ulid::new()) });
    assert_problem(app.post("/categories", &category, Some(&first)).await, 403).await;
    assert_problem(app.get("/orders", Some(&first)).await, 403).await;
    assert_eq!(app.get("/orders", Some(&second)).await.status(), 200);
}

async fn a_demoted_farmer_can_no_longer_write_products_with_the_token_they_hold(app: TestApp) {
    let admin = app.admin_token().await;
    let category = create_category(&app, &admin).await;
    let farmer = app.register(&unique_email("demoted"), "farmer").await;
    let token = access_token(&farmer);
    let product = create_product(&app, &token, &category).await;
    let product_path = format!("/products/{product}");
    let patch = json!({ "stock": 3 });
    assert_eq!(call(&app, Method::PATCH, &product_path, Some(&patch), Some(&token)).await.status(), 200);

    let demote = json!({ "role": "customer" });
    let path = format!("/users/{}", user_id(&farmer));
    assert_eq!(call(&app, Method::PATCH, &path, Some(&demote), Some(&admin)).await.status(), 200);
    // The token still says farmer for its 15 minutes; the account does not.
    assert_problem(call(&app, Method::PATCH, &product_path, Some(&patch), Some(&token)).await, 403).await;
    let ticket = json!({ "contentType": "image/png", "size": 1000 });
    assert_problem(app.post(&format!("{product_path}/images"), &ticket, Some(&token)).await, 403).await;
    assert_problem(call(&app, Method::DELETE, &product_path, None, Some(&token)).await, 403).await;
    let stored =
        shared::repo::products::get(app.state.store.as_ref(), shared::domain::ProductId::parse(&product).unwrap())
            .await
            .unwrap()
            .unwrap();
    assert!(stored.is_listed(), "the refused DELETE changed nothing");
}

crate::helpers::scenarios!(
    embedded: [
        a_demoted_farmer_can_no_longer_write_products_with_the_token_they_hold,
        admins_cannot_erase_themselves_and_the_last_enabled_admin_stays,
        verification_link_in_the_local_mailbox_verifies,
        password_reset_answers_alike_and_ends_every_session,
        a_password_change_ends_the_other_sessions_only,
        profiles_and_public_farmer_pages,
        admins_list_disable_enable_and_change_roles,
        erasure_leaves_no_email_or_name_and_frees_the_email,
    ],
);

/// The clock skew the token verifier allows (`shared::tokens`).
const LEEWAY: Duration = Duration::from_secs(5);

/// Access tokens are not looked up on every call: a disabled user's token keeps
/// working on routes that do not read the account until it expires, and no
/// longer (the bound is the token's life, 15 minutes in the template; 2 s here).
/// Product writes read the account, so they refuse it at once.
#[tokio::test]
async fn a_disabled_users_access_token_stops_working_within_its_life() {
    let life = Duration::from_secs(2);
    let app = crate::helpers::spawn_stack_with(false, Default::default(), |state| {
        state.token_settings.access_ttl = life;
    })
    .await;
    let admin = app.admin_token().await;
    let category = create_category(&app, &admin).await;
    let farmer = app.register(&unique_email("soon-off"), "farmer").await;
    let issued = Instant::now();
    let token = access_token(&farmer);
    let product = create_product(&app, &token, &category).await;
    let status = app.post(&format!("/users/{}/disable", user_id(&farmer)), &json!({}), Some(&admin)).await.status();
    assert_eq!(status, 200);
    let patch = json!({ "stock": 3 });
    let write = call(&app, Method::PATCH, &format!("/products/{product}"), Some(&patch), Some(&token)).await;
    assert_problem(write, 403).await;
    let within = app.get("/users/me/notifications", Some(&token)).await;
    if issued.elapsed() < life + LEEWAY {
        assert_eq!(within.status(), 200, "within its life the token is only checked, not looked up");
    }
    tokio::time::sleep((life + LEEWAY + Duration::from_secs(1)).saturating_sub(issued.elapsed())).await;
    let after = app.get("/users/me/notifications", Some(&token)).await;
    assert_problem(after, 401).await;
    assert_eq!(refresh_status(&app, &refresh_token(&farmer)).await, 401);
}

/// The expected status of one route for each caller: anonymous, customer,
/// other customer, farmer, other farmer, admin.
type Expected = [u16; 6];

#[tokio::test]
async fn authorization_matrix_of_every_account_route() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let category = create_category(&app, &admin).await;
    let customer = app.register(&unique_email("c1"), "customer").await;
    let other_customer = app.register(&unique_email("c2"), "customer").await;
    let farmer = app.register(&unique_email("f1"), "farmer").await;
    let other_farmer = app.register(&unique_email("f2"), "farmer").await;
    create_product(&app, &access_token(&farmer), &category).await;
    let target = app.register(&unique_email("target"), "customer").await;
    let (customer_id, farmer_id, target_id) = (user_id(&customer), user_id(&farmer), user_id(&target));
    let tokens: [Option<String>; 6] = [
        None,
        Some(access_token(&customer)),
        Some(access_token(&other_customer)),
        Some(access_token(&farmer)),
        Some(access_token(&other_farmer)),
        Some(admin.clone()),
    ];
    let farm = json!({ "farm": { "farmName": "F", "town": "T", "region": "R" } });
    let routes: Vec<(Method, String, Value, Expected)> = vec![
        (Method::POST, "/auth/verify-email".into(), json!({"token": "nope"}), [400; 6]),
        (Method::POST, "/auth/verify-email/resend".into(), json!({}), [401, 409, 409, 409, 409, 202]),
        (Method::POST, "/auth/password-reset".into(), json!({"email": "someone@example.com"}), [202; 6]),
        (
            Method::POST,
            "/auth/password-reset/confirm".into(),
            json!({"token": "nope", "password": "long enough pass"}),
            [400; 6],
        ),
        (
            Method::POST,
            "/auth/password".into(),
            json!({"currentPassword": "wrong one", "newPassword": "long enough pass"}),
            [401, 422, 422, 422, 422, 422],
        ),
        (Method::GET, "/users/me".into(), Value::Null, [401, 200, 200, 200, 200, 200]),
        (Method::PATCH, "/users/me".into(), json!({"displayName": "Renamed"}), [401, 200, 200, 200, 200, 200]),
        (Method::PATCH, "/users/me".into(), farm, [401, 422, 422, 200, 200, 422]),
        (Method::DELETE, "/users/me".into(), json!({"password": "wrong one"}), [401, 422, 422, 422, 422, 403]),
        (Method::GET, "/farmers".into(), Value::Null, [200; 6]),
        (Method::GET, format!("/farmers/{farmer_id}"), Value::Null, [200; 6]),
        (Method::GET, "/users".into(), Value::Null, [401, 403, 403, 403, 403, 200]),
        (Method::PATCH, format!("/users/{customer_id}"), json!({"role": "customer"}), [401, 403, 403, 403, 403, 200]),
        (Method::POST, format!("/users/{target_id}/disable"), Value::Null, [401, 403, 403, 403, 403, 200]),
        (Method::POST, format!("/users/{target_id}/enable"), Value::Null, [401, 403, 403, 403, 403, 200]),
    ];
    let callers = ["anonymous", "customer", "other customer", "farmer", "other farmer", "admin"];
    let mut mismatches = Vec::new();
    for (method, path, body, expected) in &routes {
        for (caller, (token, want)) in callers.iter().zip(tokens.iter().zip(expected)) {
            // Password resets are limited per email: each caller asks for another.
            let mut body = body.clone();
            if body.get("email").is_some() {
                body["email"] = json!(unique_email("reset"));
            }
            let body = (!body.is_null()).then_some(&body);
            let got = call(&app, method.clone(), path, body, token.as_deref()).await.status().as_u16();
            if got != *want {
                mismatches.push(format!("{method} {path} as {caller}: {got}, expected {want}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "authorization matrix:\n  {}", mismatches.join("\n  "));
}
