//! Orders end to end: a checkout across two farmers (snapshots, totals, one
//! order each), the lifecycle with notifications, mail and sales figures from
//! the outbox, the oversell and idempotency storms, the cancel-versus-ship
//! race, a cancellation that would lift stock past its maximum, bad input that
//! writes nothing, and the authorization matrix of every order route. Storage scenarios run on both backends.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::Stock;

use crate::accounts::{call, eventually, wait_for_mail};
use crate::helpers::{access_token, assert_problem, unique_email, TestApp};

/// A shop: an admin, a category, two farmers with a product each, a customer.
pub(crate) struct Shop {
    pub admin: String,
    pub farmer_a: Value,
    pub farmer_b: Value,
    pub customer: Value,
    pub customer_email: String,
    pub farmer_a_email: String,
    pub apples: String,
    pub pears: String,
    pub cheese: String,
}

async fn product(app: &TestApp, farmer: &str, category: &str, name: &str, price: i64, stock: i64) -> String {
    let body = json!({"name": name, "categoryId": category, "price": price, "unit": "kg", "stock": stock});
    let response = app.post("/products", &body, Some(farmer)).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn shop(app: &TestApp, stock: i64) -> Shop {
    let admin = app.admin_token().await;
    let name = format!("Produce {}", ulid::Ulid::new());
    let category: Value = app.post("/categories", &json!({ "name": name }), Some(&admin)).await.json().await.unwrap();
    let category = category["id"].as_str().unwrap().to_owned();
    let farmer_a_email = unique_email("farmer-a");
    let farmer_a = app.register(&farmer_a_email, "farmer").await;
    let farmer_b = app.register(&unique_email("farmer-b"), "farmer").await;
    let farm = json!({ "farm": { "farmName": "A Farm", "town": "T", "region": "R", "offersDelivery": true } });
    let updated = call(app, Method::PATCH, "/users/me", Some(&farm), Some(&access_token(&farmer_a))).await;
    assert_eq!(updated.status(), 200);
    let customer_email = unique_email("buyer");
    let customer = app.register(&customer_email, "customer").await;
    let (a, b) = (access_token(&farmer_a), access_token(&farmer_b));
    Shop {
        apples: product(app, &a, &category, "Apples", 250, stock).await,
        pears: product(app, &a, &category, "Pears", 300, stock).await,
        cheese: product(app, &b, &category, "Cheese", 1200, stock).await,
        admin,
        farmer_a,
        farmer_b,
        customer,
        customer_email,
        farmer_a_email,
    }
}

/// `POST /orders` with `key` (a fresh one when `None`).
pub(crate) async fn checkout(app: &TestApp, token: &str, body: &Value, key: Option<&str>) -> reqwest::Response {
    let key = key.map(str::to_owned).unwrap_or_else(|| ulid::Ulid::new().to_string());
    app.client
        .post(app.url("/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn stock(app: &TestApp, product: &str) -> i64 {
    let body: Value = app.get(&format!("/products/{product}"), None).await.json().await.unwrap();
    body["stock"].as_i64().unwrap()
}

pub(crate) async fn status_change(app: &TestApp, token: &str, order: &str, body: Value) -> reqwest::Response {
    call(app, Method::POST, &format!("/orders/{order}/status"), Some(&body), Some(token)).await
}

async fn sales(app: &TestApp, token: &str) -> Value {
    app.get("/farmers/me/sales", Some(token)).await.json().await.unwrap()
}

async fn a_checkout_across_two_farmers_follows_its_lifecycle(app: TestApp) {
    let shop = shop(&app, 10).await;
    let customer = access_token(&shop.customer);
    let (farmer_a, farmer_b) = (access_token(&shop.farmer_a), access_token(&shop.farmer_b));
    let body = json!({
        "lines": [
            {"productId": shop.apples, "quantity": 2},
            {"productId": shop.cheese, "quantity": 1},
            {"productId": shop.pears, "quantity": 3},
        ],
        "fulfilment": [{"farmerId": shop.farmer_a["user"]["id"], "method": "delivery",
            "address": {"line1": "1 Market Street", "postalCode": "9000", "town": "Ghent"}}],
    });
    let response = checkout(&app, &customer, &body, None).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let placed: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/checkouts/{}", placed["id"].as_str().unwrap()));
    let orders = placed["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2, "one order per farmer");
    let order_a = orders.iter().find(|o| o["farmerId"] == shop.farmer_a["user"]["id"]).unwrap();
    assert_eq!(order_a["total"], 2 * 250 + 3 * 300);
    assert_eq!(order_a["lines"][0]["name"], "Apples");
    assert_eq!(order_a["fulfilment"]["method"], "delivery");
    assert_eq!(order_a["status"], "pending");
    assert_eq!(order_a["payment"]["status"], "due");
    assert_eq!(placed["total"], 2 * 250 + 3 * 300 + 1200);
    assert_eq!((stock(&app, &shop.apples).await, stock(&app, &shop.cheese).await), (8, 9));
    let order_id = order_a["id"].as_str().unwrap().to_owned();

    // Who sees what.
    let mine: Value = app.get("/orders", Some(&customer)).await.json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let incoming: Value = app.get("/orders", Some(&farmer_a)).await.json().await.unwrap();
    assert_eq!(incoming["items"].as_array().unwrap().len(), 1);
    assert_problem(app.get(&format!("/orders/{order_id}"), Some(&farmer_b)).await, 404).await;
    let stranger = access_token(&app.register(&unique_email("stranger"), "customer").await);
    assert_problem(app.get(&format!("/orders/{order_id}"), Some(&stranger)).await, 404).await;
    assert_problem(app.get(&location, Some(&stranger)).await, 404).await;
    let together: Value = app.get(&location, Some(&customer)).await.json().await.unwrap();
    assert_eq!(together["orders"].as_array().unwrap().len(), 2);

    // The farmer hears of it in the app and by mail; the sale counts.
    let notes = eventually("the farmer's notification", || async {
        let notes: Value = app.get("/users/me/notifications", Some(&farmer_a)).await.json().await.unwrap();
        // The count and the list are two reads (a list query is eventually
        // consistent on DynamoDB): wait until both show the order.
        (notes["unreadCount"] == 1 && notes["items"][0]["orderId"] == order_id.as_str()).then_some(notes)
    })
    .await;
    assert_eq!(notes["items"].as_array().unwrap().len(), 1);
    wait_for_mail(&app, &shop.farmer_a_email, "New order").await;
    let figures = eventually("the sales figures", || async {
        let figures = sales(&app, &farmer_a).await;
        (figures["orders"] == 1).then_some(figures)
    })
    .await;
    assert_eq!((figures["units"].as_i64(), figures["revenue"].as_i64()), (Some(5), Some(1400)));
    let csv = app
        .client
        .get(app.url("/farmers/me/sales"))
        .bearer_auth(&farmer_a)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("date,productId,productName,units,revenue") && csv.contains("\"Apples\",2,500"), "{csv}");
    let id = notes["items"][0]["id"].as_str().unwrap();
    let read = app.post(&format!("/users/me/notifications/{id}/read"), &json!({}), Some(&farmer_a)).await;
    assert_eq!(read.status(), 204);
    let notes: Value = app.get("/users/me/notifications", Some(&farmer_a)).await.json().await.unwrap();
    assert_eq!(notes["unreadCount"], 0);

    // The lifecycle: illegal moves are 409, a stale If-Match 412.
    assert_problem(status_change(&app, &customer, &order_id, json!({"status": "confirmed"})).await, 409).await;
    assert_problem(status_change(&app, &farmer_a, &order_id, json!({"status": "shipped"})).await, 409).await;
    let confirmed = status_change(&app, &farmer_a, &order_id, json!({"status": "confirmed"})).await;
    assert_eq!(confirmed.status(), 200);
    let stale = app
        .client
        .post(app.url(&format!("/orders/{order_id}/status")))
        .bearer_auth(&farmer_a)
        .header("if-match", "\"1\"")
        .json(&json!({"status": "shipped"}))
        .send()
        .await
        .unwrap();
    assert_problem(stale, 412).await;
    assert_problem(status_change(&app, &farmer_a, &order_id, json!({"status": "cancelled"})).await, 422).await;
    assert_eq!(status_change(&app, &farmer_a, &order_id, json!({"status": "shipped"})).await.status(), 200);
    let delivered = status_change(&app, &farmer_a, &order_id, json!({"status": "delivered"})).await;
    let delivered: Value = delivered.json().await.unwrap();
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["history"].as_array().unwrap().len(), 4);
    let paid = call(
        &app,
        Method::POST,
        &format!("/orders/{order_id}/payment"),
        Some(&json!({"status": "paid"})),
        Some(&farmer_a),
    )
    .await;
    assert_eq!(paid.json::<Value>().await.unwrap()["payment"]["status"], "paid");
    eventually("the customer's notifications", || async {
        let notes: Value = app.get("/users/me/notifications", Some(&customer)).await.json().await.unwrap();
        (notes["unreadCount"] == 3).then_some(())
    })
    .await;
    wait_for_mail(&app, &shop.customer_email, "Your order is delivered").await;

    // Filters: by status, by date.
    let delivered_only: Value = app.get("/orders?status=delivered", Some(&customer)).await.json().await.unwrap();
    assert_eq!(delivered_only["items"].as_array().unwrap().len(), 1);
    let long_ago: Value = app.get("/orders?from=2001-01-01&to=2001-12-31", Some(&customer)).await.json().await.unwrap();
    assert_eq!(long_ago["items"].as_array().unwrap().len(), 0);
    let everything: Value = app.get("/orders", Some(&shop.admin)).await.json().await.unwrap();
    assert!(everything["items"].as_array().unwrap().len() >= 2);
}

async fn a_hundred_checkouts_of_one_unit_against_thirty_sell_exactly_thirty(app: TestApp) {
    let shop = shop(&app, 30).await;
    let customer = access_token(&shop.customer);
    let body = json!({ "lines": [{"productId": shop.apples, "quantity": 1}] });
    let responses = join_all((0..100).map(|_| checkout(&app, &customer, &body, None))).await;
    let mut statuses = std::collections::BTreeMap::new();
    for response in responses {
        let status = response.status().as_u16();
        if status == 409 {
            let problem = assert_problem(response, 409).await;
            assert_eq!(problem["shortages"][0]["available"], 0, "{problem}");
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(statuses, std::collections::BTreeMap::from([(201, 30), (409, 70)]));
    assert_eq!(stock(&app, &shop.apples).await, 0);
    let farmer = access_token(&shop.farmer_a);
    eventually("thirty sales counted", || async { (sales(&app, &farmer).await["orders"] == 30).then_some(()) }).await;
    let figures = sales(&app, &farmer).await;
    assert_eq!(figures["units"], 30);
}

async fn twenty_identical_requests_with_one_key_make_one_order(app: TestApp) {
    let shop = shop(&app, 10).await;
    let customer = access_token(&shop.customer);
    let body = json!({ "lines": [{"productId": shop.apples, "quantity": 2}] });
    let key = ulid::Ulid::new().to_string();
    let responses = join_all((0..20).map(|_| checkout(&app, &customer, &body, Some(&key)))).await;
    let mut checkouts = std::collections::BTreeSet::new();
    for response in responses {
        match response.status().as_u16() {
            201 => {
                let placed: Value = response.json().await.unwrap();
                checkouts.insert(placed["id"].as_str().unwrap().to_owned());
            }
            409 => assert!(response.headers().contains_key("retry-after"), "an in-flight 409 says when to retry"),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checkouts.len(), 1, "every answer carries the one checkout");
    assert_eq!(stock(&app, &shop.apples).await, 8, "one decrement");
    let mine: Value = app.get("/orders", Some(&customer)).await.json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    // The same key with another body is refused.
    let other = json!({ "lines": [{"productId": shop.apples, "quantity": 3}] });
    let refused = assert_problem(checkout(&app, &customer, &other, Some(&key)).await, 422).await;
    assert_eq!(refused["errors"][0]["field"], "Idempotency-Key");
}

async fn cancel_and_ship_at_once_let_exactly_one_win(app: TestApp) {
    // Enough stock for three rounds whoever wins them.
    let shop = shop(&app, 30).await;
    let (customer, farmer) = (access_token(&shop.customer), access_token(&shop.farmer_a));
    for round in 0..3 {
        let body = json!({
            "lines": [{"productId": shop.apples, "quantity": 4}],
            "fulfilment": [{"farmerId": shop.farmer_a["user"]["id"], "method": "delivery",
                "address": {"line1": "1 Market Street", "postalCode": "9000", "town": "Ghent"}}],
        });
        let placed = checkout(&app, &customer, &body, None).await;
        assert_eq!(placed.status(), 201, "round {round}");
        let placed: Value = placed.json().await.unwrap();
        let order = placed["orders"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(status_change(&app, &farmer, &order, json!({"status": "confirmed"})).await.status(), 200);
        let before = stock(&app, &shop.apples).await;
        let (cancel, ship) = tokio::join!(
            status_change(&app, &farmer, &order, json!({"status": "cancelled", "reason": "frost"})),
            status_change(&app, &farmer, &order, json!({"status": "shipped"})),
        );
        let (cancel, ship) = (cancel.status().as_u16(), ship.status().as_u16());
        assert!(matches!((cancel, ship), (200, 409) | (409, 200)), "round {round}: cancel {cancel}, ship {ship}");
        let after = stock(&app, &shop.apples).await;
        assert_eq!(after, if cancel == 200 { before + 4 } else { before }, "stock restored only if cancel won");
    }
}

/// Every item's key and attributes, for before/after comparisons.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let db = rusqlite::Connection::open(app.dir.path().join("marketplace.db")).unwrap();
    let mut statement = db.prepare("SELECT pk, sk, attrs FROM items ORDER BY pk, sk").unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok(format!("{} {} {}", row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
        })
        .unwrap();
    rows.map(Result::unwrap).filter(|row| !row.starts_with("THROTTLE#")).collect()
}

#[tokio::test]
async fn bad_checkouts_are_4xx_and_write_nothing() {
    let app = crate::helpers::spawn_app().await;
    let shop = shop(&app, 5).await;
    let customer = access_token(&shop.customer);
    // An unlisted product, and a product of a disabled farmer.
    let gone = product(
        &app,
        &access_token(&shop.farmer_a),
        &{
            let p: Value = app.get(&format!("/products/{}", shop.apples), None).await.json().await.unwrap();
            p["categoryId"].as_str().unwrap().to_owned()
        },
        "Gone",
        100,
        5,
    )
    .await;
    assert_eq!(
        call(&app, Method::DELETE, &format!("/products/{gone}"), None, Some(&access_token(&shop.farmer_a)))
            .await
            .status(),
        204
    );
    let disabled = app.register(&unique_email("off"), "farmer").await;
    let category: Value = app.get(&format!("/products/{}", shop.apples), None).await.json().await.unwrap();
    let hidden =
        product(&app, &access_token(&disabled), category["categoryId"].as_str().unwrap(), "Hidden", 100, 5).await;
    let disabled_id = disabled["user"]["id"].as_str().unwrap();
    assert_eq!(app.post(&format!("/users/{disabled_id}/disable"), &json!({}), Some(&shop.admin)).await.status(), 200);
    eventually("the disabled farmer's product hidden", || async {
        (app.get(&format!("/products/{hidden}"), None).await.status() == 404).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // let the worker settle
    let thirteen: Vec<Value> =
        (0..13).map(|_| json!({"productId": ulid::Ulid::new().to_string(), "quantity": 1})).collect();
    let cases: Vec<(&str, Value, u16)> = vec![
        ("zero quantity", json!({"lines": [{"productId": shop.apples, "quantity": 0}]}), 422),
        ("negative quantity", json!({"lines": [{"productId": shop.apples, "quantity": -2}]}), 422),
        ("too many units", json!({"lines": [{"productId": shop.apples, "quantity": 1001}]}), 422),
        (
            "duplicate lines",
            json!({"lines": [{"productId": shop.apples, "quantity": 1}, {"productId": shop.apples, "quantity": 1}]}),
            422,
        ),
        ("unknown product", json!({"lines": [{"productId": ulid::Ulid::new().to_string(), "quantity": 1}]}), 422),
        ("unlisted product", json!({"lines": [{"productId": gone, "quantity": 1}]}), 422),
        ("a disabled farmer's product", json!({"lines": [{"productId": hidden, "quantity": 1}]}), 422),
        ("too many lines", json!({"lines": thirteen}), 422),
        ("no lines", json!({"lines": []}), 422),
        ("wrong types", json!({"lines": [{"productId": 7, "quantity": "two"}]}), 422),
        ("not an object", json!([1, 2]), 422),
        ("short", json!({"lines": [{"productId": shop.apples, "quantity": 6}]}), 409),
        (
            "delivery without address",
            json!({"lines": [{"productId": shop.apples, "quantity": 1}],
            "fulfilment": [{"farmerId": shop.farmer_a["user"]["id"], "method": "delivery"}]}),
            422,
        ),
        (
            "delivery by a farmer who does not deliver",
            json!({"lines": [{"productId": shop.cheese, "quantity": 1}],
            "fulfilment": [{"farmerId": shop.farmer_b["user"]["id"], "method": "delivery",
                "address": {"line1": "x", "postalCode": "1", "town": "y"}}]}),
            422,
        ),
    ];
    let unverified = app.register_unverified(&unique_email("new"), "customer").await;
    let before = snapshot(&app).await;
    for (what, body, status) in &cases {
        assert_problem(checkout(&app, &customer, body, None).await, *status).await;
        assert_eq!(snapshot(&app).await, before, "{what} wrote something");
    }
    let no_key =
        app.post("/orders", &json!({"lines": [{"productId": shop.apples, "quantity": 1}]}), Some(&customer)).await;
    assert_problem(no_key, 428).await;
    let body = json!({"lines": [{"productId": shop.apples, "quantity": 1}]});
    assert_problem(checkout(&app, &access_token(&unverified), &body, None).await, 403).await;
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

/// The reported takedown: order 1 000 of a product, have the farmer put its
/// stock back to the maximum, cancel. The units that would pass the maximum
/// are dropped, the order still cancels, and every read keeps working.
async fn a_cancellation_after_a_restock_to_the_maximum_keeps_the_catalogue_answering(app: TestApp) {
    let shop = shop(&app, Stock::MAX).await;
    let (customer, farmer) = (access_token(&shop.customer), access_token(&shop.farmer_a));
    let mut answers = Vec::new();
    let placed =
        checkout(&app, &customer, &json!({"lines": [{"productId": shop.apples, "quantity": 1000}]}), None).await;
    answers.push(("checkout", placed.status()));
    let placed: Value = placed.json().await.unwrap();
    let order = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    let restocked = call(
        &app,
        Method::PATCH,
        &format!("/products/{}", shop.apples),
        Some(&json!({"stock": Stock::MAX})),
        Some(&farmer),
    )
    .await;
    answers.push(("restock", restocked.status()));
    let cancelled = status_change(&app, &customer, &order, json!({"status": "cancelled"})).await;
    answers.push(("cancel", cancelled.status()));
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    for token in [None, Some(customer.as_str()), Some(farmer.as_str()), Some(shop.admin.as_str())] {
        answers.push(("catalogue", app.get("/products", token).await.status()));
        answers.push(("product", app.get(&format!("/products/{}", shop.apples), token).await.status()));
    }
    for (what, status) in &answers {
        assert!(status.is_success(), "{what} answered {status}");
    }
    assert_eq!(stock(&app, &shop.apples).await, Stock::MAX);
}

crate::helpers::scenarios!(
    on_both: [a_checkout_across_two_farmers_follows_its_lifecycle],
    embedded: [
        a_cancellation_after_a_restock_to_the_maximum_keeps_the_catalogue_answering,
        a_hundred_checkouts_of_one_unit_against_thirty_sell_exactly_thirty,
        twenty_identical_requests_with_one_key_make_one_order,
        cancel_and_ship_at_once_let_exactly_one_win,
    ],
);

/// The expected status of one route for: anonymous, unverified customer,
/// customer, other customer, farmer, other farmer, admin.
type Expected = [u16; 7];

#[tokio::test]
async fn authorization_matrix_of_every_order_route() {
    let app = crate::helpers::spawn_app().await;
    let shop = shop(&app, 50).await;
    let unverified = app.register_unverified(&unique_email("unverified"), "customer").await;
    let other_customer = app.register(&unique_email("other"), "customer").await;
    let tokens: [Option<String>; 7] = [
        None,
        Some(access_token(&unverified)),
        Some(access_token(&shop.customer)),
        Some(access_token(&other_customer)),
        Some(access_token(&shop.farmer_a)),
        Some(access_token(&shop.farmer_b)),
        Some(shop.admin.clone()),
    ];
    let callers = ["anonymous", "unverified customer", "customer", "other customer", "farmer", "other farmer", "admin"];
    let cart = json!({ "lines": [{"productId": shop.apples, "quantity": 1}] });
    // One order per caller that may change it, placed by the customer.
    let mut orders = Vec::new();
    for _ in 0..4 {
        let placed: Value = checkout(&app, &access_token(&shop.customer), &cart, None).await.json().await.unwrap();
        orders
            .push((placed["orders"][0]["id"].as_str().unwrap().to_owned(), placed["id"].as_str().unwrap().to_owned()));
    }
    let (order, checkout_id) = orders[0].clone();
    let mut mismatches = Vec::new();
    let mut check = |what: String, got: u16, want: u16| {
        if got != want {
            mismatches.push(format!("{what}: {got}, expected {want}"));
        }
    };
    let fixed: Vec<(Method, String, Option<Value>, Expected)> = vec![
        (Method::POST, "/orders".into(), Some(cart.clone()), [401, 403, 201, 201, 403, 403, 403]),
        (Method::GET, "/orders".into(), None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, format!("/orders/{order}"), None, [401, 404, 200, 404, 200, 404, 200]),
        (Method::GET, format!("/checkouts/{checkout_id}"), None, [401, 404, 200, 404, 404, 404, 200]),
        (
            Method::POST,
            format!("/orders/{order}/payment"),
            Some(json!({"status": "paid"})),
            [401, 404, 403, 404, 200, 404, 200],
        ),
        (Method::GET, "/users/me/notifications".into(), None, [401, 200, 200, 200, 200, 200, 200]),
        (
            Method::POST,
            "/users/me/notifications/01JDQ9B0000000000000000001/read".into(),
            None,
            [401, 404, 404, 404, 404, 404, 404],
        ),
        (Method::GET, "/farmers/me/sales".into(), None, [401, 403, 403, 403, 200, 200, 403]),
    ];
    for (method, path, body, expected) in &fixed {
        for (caller, (token, want)) in callers.iter().zip(tokens.iter().zip(expected)) {
            let got = if method == Method::POST && path == "/orders" {
                match token {
                    Some(token) => checkout(&app, token, body.as_ref().unwrap(), None).await.status().as_u16(),
                    None => app.post(path, body.as_ref().unwrap(), None).await.status().as_u16(),
                }
            } else {
                call(&app, method.clone(), path, body.as_ref(), token.as_deref()).await.status().as_u16()
            };
            check(format!("{method} {path} as {caller}"), got, *want);
        }
    }
    // Status changes: a fresh pending order per caller and change; confirming
    // is the farmer's (or an admin's), cancelling a pending order either party's.
    let changes: [(&str, Expected); 2] =
        [("confirmed", [401, 404, 409, 404, 200, 404, 200]), ("cancelled", [401, 404, 200, 404, 200, 404, 200])];
    for (status, expected) in changes {
        for (caller, (token, want)) in callers.iter().zip(tokens.iter().zip(expected)) {
            let placed: Value = checkout(&app, &access_token(&shop.customer), &cart, None).await.json().await.unwrap();
            let path = format!("/orders/{}/status", placed["orders"][0]["id"].as_str().unwrap());
            let body = json!({ "status": status });
            let got = call(&app, Method::POST, &path, Some(&body), token.as_deref()).await.status().as_u16();
            check(format!("{status} a pending order as {caller}"), got, want);
        }
    }
    assert!(mismatches.is_empty(), "authorization matrix:\n  {}", mismatches.join("\n  "));
}
