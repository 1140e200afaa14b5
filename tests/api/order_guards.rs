//! Orders under abuse: a cancellation can never lift stock past its maximum
//! (the catalogue keeps answering); a customer holds at most so many open
//! orders and units of a product, even checking out in parallel, and starts at
//! most ten checkouts a minute; orders the farmer never confirms expire, once,
//! with their stock back and both parties told, and a farmer confirming at the
//! same moment wins or loses whole; a price changing under a checkout is a
//! conflict, never a bill at either price. Storage scenarios run on both
//! backends.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::join_all;
use serde_json::{json, Value};
use shared::domain::ProductId;
use shared::ports::{Condition, Item, ItemKey, Page, Query, Scan, ScanPage, Store, StoreError, WriteOp};

use crate::accounts::{eventually, wait_for_mail};
use crate::helpers::{access_token, assert_problem, unique_email, TestApp};
use crate::orders::{checkout, shop, status_change, stock};

/// A cart of `quantity` units of `product`.
fn cart(product: &str, quantity: i64) -> Value {
    json!({ "lines": [{"productId": product, "quantity": quantity}] })
}

/// The id of the first order a checkout response placed.
async fn first_order(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 201, "checkout");
    let placed: Value = response.json().await.unwrap();
    placed["orders"][0]["id"].as_str().unwrap().to_owned()
}

/// Ten open orders at most, even when twenty checkouts race; closing one
/// (a cancellation) makes room again.
async fn checkout_refuses_an_order_past_the_open_order_limit(app: TestApp) {
    let shop = shop(&app, 1000).await;
    let customer = access_token(&shop.customer);
    let mut placed = Vec::new();
    for _ in 0..10 {
        placed.push(first_order(checkout(&app, &customer, &cart(&shop.apples, 1), None).await).await);
    }
    // Past the minute the throttle counts.
    app.clock.advance(time::Duration::minutes(2));
    let refused = assert_problem(checkout(&app, &customer, &cart(&shop.pears, 1), None).await, 409).await;
    assert_eq!(refused["type"], "/problems/open-order-limit");
    assert_eq!(refused["limit"], "openOrders");
    assert!(refused["detail"].as_str().unwrap().contains("at most 10"), "{refused}");
    assert_eq!(stock(&app, &shop.pears).await, 1000, "nothing was ordered");
    // A cancelled order no longer counts; a confirmed one still does.
    assert_eq!(status_change(&app, &customer, &placed[0], json!({"status": "cancelled"})).await.status(), 200);
    let farmer = access_token(&shop.farmer_a);
    assert_eq!(status_change(&app, &farmer, &placed[1], json!({"status": "confirmed"})).await.status(), 200);
    first_order(checkout(&app, &customer, &cart(&shop.pears, 1), None).await).await;
    assert_problem(checkout(&app, &customer, &cart(&shop.pears, 1), None).await, 409).await;
    // Another customer is not held by this one's orders.
    let other = access_token(&app.register(&unique_email("other"), "customer").await);
    first_order(checkout(&app, &other, &cart(&shop.pears, 1), None).await).await;
}

/// Ten checkouts at once by a customer holding five open orders: exactly
/// five more open, the rest are refused by the limit, never past it.
async fn racing_checkouts_never_pass_the_open_order_limit(app: TestApp) {
    let shop = shop(&app, 1000).await;
    let customer = access_token(&shop.customer);
    for _ in 0..5 {
        first_order(checkout(&app, &customer, &cart(&shop.apples, 1), None).await).await;
    }
    app.clock.advance(time::Duration::minutes(2));
    let mut statuses = std::collections::BTreeMap::new();
    let body = cart(&shop.pears, 1);
    for response in join_all((0..10).map(|_| checkout(&app, &customer, &body, None))).await {
        let status = response.status().as_u16();
        if status == 409 {
            assert_eq!(assert_problem(response, 409).await["limit"], "openOrders");
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(statuses, std::collections::BTreeMap::from([(201, 5), (409, 5)]));
    assert_eq!(stock(&app, &shop.pears).await, 995);
}

/// A hundred units of one product across open orders at most, per line.
async fn checkout_refuses_units_past_the_open_units_limit(app: TestApp) {
    let shop = shop(&app, 1000).await;
    let customer = access_token(&shop.customer);
    let first = first_order(checkout(&app, &customer, &cart(&shop.apples, 60), None).await).await;
    let both =
        json!({ "lines": [{"productId": shop.pears, "quantity": 100}, {"productId": shop.apples, "quantity": 41}] });
    let refused = assert_problem(checkout(&app, &customer, &both, None).await, 409).await;
    assert_eq!(refused["type"], "/problems/open-order-limit");
    assert_eq!(refused["limit"], "openUnitsPerProduct");
    assert!(refused["detail"].as_str().unwrap().starts_with("lines[1]"), "{refused}");
    assert_eq!((stock(&app, &shop.apples).await, stock(&app, &shop.pears).await), (940, 1000));
    first_order(checkout(&app, &customer, &cart(&shop.apples, 40), None).await).await;
    assert_problem(checkout(&app, &customer, &cart(&shop.apples, 1), None).await, 409).await;
    // Units of a shipped order are no longer open.
    let farmer = access_token(&shop.farmer_a);
    assert_eq!(status_change(&app, &farmer, &first, json!({"status": "confirmed"})).await.status(), 200);
    assert_eq!(status_change(&app, &farmer, &first, json!({"status": "ready"})).await.status(), 200);
    first_order(checkout(&app, &customer, &cart(&shop.apples, 60), None).await).await;
}

/// The eleventh checkout of an account within a minute answers 429 with
/// `Retry-After`, whatever it holds; other accounts are not slowed.
async fn an_eleventh_checkout_within_a_minute_is_throttled(app: TestApp) {
    let shop = shop(&app, 1000).await;
    let customer = access_token(&shop.customer);
    // Refused checkouts count too: probing is what the throttle is for.
    for _ in 0..5 {
        assert_problem(checkout(&app, &customer, &cart(&shop.apples, 101), None).await, 409).await;
    }
    for _ in 0..5 {
        first_order(checkout(&app, &customer, &cart(&shop.apples, 1), None).await).await;
    }
    let throttled = checkout(&app, &customer, &cart(&shop.apples, 1), None).await;
    let retry_after: i64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // The window slides: ten hits late in one minute weigh on the next one
    // until a tenth of it (6 s) has passed, so the wait can pass 60 s.
    assert!((1..=66).contains(&retry_after), "Retry-After {retry_after}");
    assert_problem(throttled, 429).await;
    // `Retry-After` is the wait, not a guess: well before it the account is
    // still refused (the clock also runs, so "well" is two seconds), and once
    // it has passed a checkout goes through.
    let mut waited = 0;
    if retry_after > 2 {
        waited = retry_after - 2;
        app.clock.advance(time::Duration::seconds(waited));
        assert_problem(checkout(&app, &customer, &cart(&shop.apples, 1), None).await, 429).await;
    }
    assert_eq!(stock(&app, &shop.apples).await, 995);
    let other = access_token(&app.register(&unique_email("other"), "customer").await);
    first_order(checkout(&app, &other, &cart(&shop.apples, 1), None).await).await;
    app.clock.advance(time::Duration::seconds(retry_after - waited));
    first_order(checkout(&app, &customer, &cart(&shop.apples, 1), None).await).await;
}

/// Fires the hourly expiry through the local scheduler; its result.
async fn fire_expiry(app: &TestApp) -> Value {
    let fired = app.client.post(app.url("/_local/schedules/archive.hourly")).send().await.unwrap();
    assert_eq!(fired.status(), 200);
    let body: Value = fired.json().await.unwrap();
    body["result"].clone()
}

async fn order(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/orders/{id}"), Some(token)).await.json().await.unwrap()
}

/// Orders still pending 48 hours on are cancelled by the hourly run: stock
/// back, both parties told in the app and by mail, the customer's limit freed;
/// a confirmed or younger order stays; a second run changes nothing.
async fn orders_pending_past_the_expiry_are_cancelled_once(app: TestApp) {
    let shop = shop(&app, 100).await;
    let (customer, farmer) = (access_token(&shop.customer), access_token(&shop.farmer_a));
    let stale = first_order(checkout(&app, &customer, &cart(&shop.apples, 3), None).await).await;
    let confirmed = first_order(checkout(&app, &customer, &cart(&shop.pears, 2), None).await).await;
    assert_eq!(status_change(&app, &farmer, &confirmed, json!({"status": "confirmed"})).await.status(), 200);
    app.clock.advance(time::Duration::hours(47));
    let young = first_order(checkout(&app, &customer, &cart(&shop.pears, 1), None).await).await;
    assert_eq!(fire_expiry(&app).await["expired"], 0, "nothing is 48 hours old yet");
    app.clock.advance(time::Duration::hours(2));
    let report = fire_expiry(&app).await;
    assert_eq!(report["expired"], 1, "{report}");
    let expired = order(&app, &customer, &stale).await;
    assert_eq!(expired["status"], "cancelled");
    let change = expired["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(change["by"], shared::orders::MARKETPLACE.to_string());
    assert!(change["reason"].as_str().unwrap().contains("48 hours"), "{change}");
    assert_eq!(order(&app, &customer, &confirmed).await["status"], "confirmed");
    assert_eq!(order(&app, &customer, &young).await["status"], "pending");
    assert_eq!((stock(&app, &shop.apples).await, stock(&app, &shop.pears).await), (100, 97));
    wait_for_mail(&app, &shop.customer_email, "Your order is cancelled").await;
    wait_for_mail(&app, &shop.farmer_a_email, "cancelled").await;
    eventually("the farmer's notification of the expiry", || async {
        let notes: Value = app.get("/users/me/notifications", Some(&farmer)).await.json().await.unwrap();
        notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["orderId"] == stale.as_str() && n["title"].as_str().unwrap().contains("cancelled"))
            .then_some(())
    })
    .await;
    let again = fire_expiry(&app).await;
    assert_eq!(again["expired"], 0, "{again}");
    assert_eq!(stock(&app, &shop.apples).await, 100, "stock went back once");
    // The younger order expires in its turn; the confirmed one never does.
    app.clock.advance(time::Duration::hours(47));
    assert_eq!(fire_expiry(&app).await["expired"], 1);
    assert_eq!(order(&app, &customer, &young).await["status"], "cancelled");
    assert_eq!(order(&app, &customer, &confirmed).await["status"], "confirmed");
    assert_eq!(stock(&app, &shop.pears).await, 98);
}

/// The farmer confirming as the expiry runs: exactly one of them wins, and
/// the stock and the order agree with the winner.
async fn a_confirmation_racing_the_expiry_wins_or_loses_whole(app: TestApp) {
    let shop = shop(&app, 100).await;
    let (customer, farmer) = (access_token(&shop.customer), access_token(&shop.farmer_a));
    for round in 0..3 {
        let id = first_order(checkout(&app, &customer, &cart(&shop.apples, 5), None).await).await;
        let before = stock(&app, &shop.apples).await;
        app.clock.advance(time::Duration::hours(49));
        let (confirm, report) =
            tokio::join!(status_change(&app, &farmer, &id, json!({"status": "confirmed"})), fire_expiry(&app));
        let status = order(&app, &customer, &id).await["status"].as_str().unwrap().to_owned();
        match confirm.status().as_u16() {
            200 => {
                assert_eq!(status, "confirmed", "round {round}");
                assert_eq!(report["expired"], 0, "round {round}");
                assert_eq!(stock(&app, &shop.apples).await, before, "round {round}");
            }
            409 => {
                assert_eq!(status, "cancelled", "round {round}");
                assert_eq!(report["expired"], 1, "round {round}");
                assert_eq!(stock(&app, &shop.apples).await, before + 5, "round {round}");
            }
            other => panic!("round {round}: confirm answered {other}"),
        }
    }
}

/// A customer's cancellation reaches the farmer in the app and by mail; the
/// reason is stored without control characters and the mail shows it as
/// text (HTML escaped), never as markup. The farmer's own cancellation tells
/// only the customer.
async fn a_customers_cancellation_tells_the_farmer_with_the_reason_as_plain_text(app: TestApp) {
    let shop = shop(&app, 10).await;
    let (customer, farmer) = (access_token(&shop.customer), access_token(&shop.farmer_a));
    let id = first_order(checkout(&app, &customer, &cart(&shop.apples, 2), None).await).await;
    let reason = "late\r\nBcc: x@example.com\u{7}\u{1b}[31m <b>bold</b>";
    let cancelled = status_change(&app, &customer, &id, json!({"status": "cancelled", "reason": reason})).await;
    assert_eq!(cancelled.status(), 200);
    let stored = "lateBcc: x@example.com[31m <b>bold</b>";
    let history = order(&app, &customer, &id).await["history"].clone();
    assert_eq!(history.as_array().unwrap().last().unwrap()["reason"], stored);
    let note = eventually("the farmer's notification of the cancellation", || async {
        let notes: Value = app.get("/users/me/notifications", Some(&farmer)).await.json().await.unwrap();
        notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["orderId"] == id.as_str() && n["title"] == "An order was cancelled")
            .cloned()
    })
    .await;
    assert!(note["body"].as_str().unwrap().contains(&format!("by the customer: {stored}")), "{note}");
    let mail = wait_for_mail(&app, &shop.farmer_a_email, "An order was cancelled").await;
    assert!(
        mail.mail.html.contains("&lt;b&gt;bold&lt;/b&gt;") && !mail.mail.html.contains("<b>bold"),
        "{}",
        mail.mail.html
    );
    assert!(mail.mail.text.contains(stored) && !mail.mail.text.contains('\r'), "{}", mail.mail.text);
    // The farmer cancelling tells the customer, not the farmer again.
    let other = first_order(checkout(&app, &customer, &cart(&shop.apples, 1), None).await).await;
    assert_eq!(status_change(&app, &farmer, &other, json!({"status": "cancelled"})).await.status(), 200);
    eventually("the customer's notification", || async {
        let notes: Value = app.get("/users/me/notifications", Some(&customer)).await.json().await.unwrap();
        notes["items"].as_array().unwrap().iter().any(|n| n["orderId"] == other.as_str()).then_some(())
    })
    .await;
    let notes: Value = app.get("/users/me/notifications", Some(&farmer)).await.json().await.unwrap();
    let about_other = notes["items"].as_array().unwrap().iter().filter(|n| n["orderId"] == other.as_str()).count();
    assert_eq!(about_other, 1, "only the new order's notice: {notes}");
}

/// A checkout of `quantity` apples delivered by farmer A; the order's id.
async fn delivered_order(app: &TestApp, shop: &crate::orders::Shop, quantity: i64, deliver: bool) -> String {
    let body = json!({
        "lines": [{"productId": shop.apples, "quantity": quantity}],
        "fulfilment": [{"farmerId": shop.farmer_a["user"]["id"], "method": "delivery",
            "address": {"line1": "1 Market Street", "postalCode": "9000", "town": "Ghent"}}],
    });
    let id = first_order(checkout(app, &access_token(&shop.customer), &body, None).await).await;
    if deliver {
        let farmer = access_token(&shop.farmer_a);
        for status in ["confirmed", "shipped", "delivered"] {
            assert_eq!(status_change(app, &farmer, &id, json!({ "status": status })).await.status(), 200, "{status}");
        }
    }
    id
}

async fn fire_daily(app: &TestApp) -> Value {
    let fired = app.client.post(app.url("/_local/schedules/archive.daily")).send().await.unwrap();
    assert_eq!(fired.status(), 200);
    fired.json::<Value>().await.unwrap()["result"].clone()
}

/// Delivery addresses go from orders finished more than 90 days ago, in the
/// table and in the archive; open and recently finished orders keep theirs.
async fn addresses_of_long_finished_orders_are_redacted(app: TestApp) {
    let shop = shop(&app, 100).await;
    let customer = access_token(&shop.customer);
    let old = delivered_order(&app, &shop, 1, true).await;
    let open = delivered_order(&app, &shop, 1, false).await;
    app.clock.advance(time::Duration::days(91));
    let recent = delivered_order(&app, &shop, 1, true).await;
    let run = fire_daily(&app).await;
    assert_eq!(run["addressesRedacted"], 1, "{run}");
    let redacted = order(&app, &customer, &old).await;
    assert_eq!(redacted["fulfilment"], json!({"method": "delivery", "address": null}));
    assert_eq!(redacted["status"], "delivered");
    for kept in [&open, &recent] {
        assert_eq!(order(&app, &customer, kept).await["fulfilment"]["address"]["town"], "Ghent", "{kept}");
    }
    // 181 days after `recent` was placed both finished orders are archived,
    // in the same run that would redact `recent` in the table.
    app.clock.advance(time::Duration::days(181));
    let run = fire_daily(&app).await;
    assert_eq!(run["ordersArchived"], 2, "{run}");
    let archived = order(&app, &customer, &recent).await;
    assert_eq!(archived["archived"], true);
    assert_eq!(archived["fulfilment"], json!({"method": "delivery", "address": null}));
    assert_eq!(order(&app, &customer, &open).await["fulfilment"]["address"]["town"], "Ghent");
}

crate::helpers::scenarios!(
    using spawn_app_with_order_limits;
    embedded: [
        checkout_refuses_an_order_past_the_open_order_limit,
        racing_checkouts_never_pass_the_open_order_limit,
        checkout_refuses_units_past_the_open_units_limit,
        an_eleventh_checkout_within_a_minute_is_throttled,
        orders_pending_past_the_expiry_are_cancelled_once,
        a_confirmation_racing_the_expiry_wins_or_loses_whole,
        a_customers_cancellation_tells_the_farmer_with_the_reason_as_plain_text,
        addresses_of_long_finished_orders_are_redacted,
    ],
);

/// A store that, once armed, changes a product's price just before the next
/// transaction taking its stock: a farmer's price change landing between the
/// checkout's read and its write.
struct PriceChangeBeforeCheckout {
    inner: Arc<dyn Store>,
    armed: Arc<Mutex<Option<(ItemKey, i64)>>>,
}

#[async_trait]
impl Store for PriceChangeBeforeCheckout {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }

    async fn transact(&self, writes: Vec<WriteOp>) -> Result<(), StoreError> {
        let takes_stock = |key: &ItemKey| {
            writes.iter().any(|w| matches!(w, WriteOp::Adjust { key: k, add, .. } if k == key && add[0].1 < 0))
        };
        let due = {
            let mut armed = self.armed.lock().unwrap();
            match armed.as_ref() {
                Some((key, _)) if takes_stock(key) => armed.take(),
                _ => None,
            }
        };
        if let Some((key, price)) = due {
            let mut product = self.inner.get(&key).await?.expect("the product");
            product.attrs.insert("price".into(), price.into());
            self.inner.put(product, Condition::None).await?;
        }
        self.inner.transact(writes).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }

    async fn scan(&self, scan: &Scan) -> Result<ScanPage, StoreError> {
        self.inner.scan(scan).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn increment(&self, key: &ItemKey, attr: &str, expires_at: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, attr, expires_at).await
    }
}

/// The farmer raises a price while a checkout of it is under way: the
/// checkout answers 409 naming the line and bills nothing, neither price.
async fn a_price_change_racing_a_checkout_is_a_conflict_naming_the_line(aws: bool) {
    let armed = Arc::new(Mutex::new(None));
    let app = {
        let armed = Arc::clone(&armed);
        crate::helpers::spawn_stack_with(aws, Default::default(), move |state| {
            let inner = Arc::clone(&state.store);
            state.store = Arc::new(PriceChangeBeforeCheckout { inner, armed });
        })
        .await
    };
    let shop = shop(&app, 10).await;
    let customer = access_token(&shop.customer);
    *armed.lock().unwrap() = Some((shared::repo::products::key(ProductId::parse(&shop.pears).unwrap()), 999));
    let body =
        json!({ "lines": [{"productId": shop.apples, "quantity": 1}, {"productId": shop.pears, "quantity": 2}] });
    let refused = assert_problem(checkout(&app, &customer, &body, None).await, 409).await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.starts_with("lines[1]") && detail.contains("3.00 to 9.99"), "{refused}");
    assert_eq!((stock(&app, &shop.apples).await, stock(&app, &shop.pears).await), (10, 10), "nothing was ordered");
    let mine: Value = app.get("/orders", Some(&customer)).await.json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    // Checked out again, it bills the new price.
    let placed: Value = checkout(&app, &customer, &body, None).await.json().await.unwrap();
    assert_eq!(placed["total"], 250 + 2 * 999);
}

mod a_price_change_racing_a_checkout {
    #[tokio::test]
    async fn is_a_conflict_naming_the_line_on_embedded() {
        super::a_price_change_racing_a_checkout_is_a_conflict_naming_the_line(false).await
    }

    #[tokio::test]
    async fn is_a_conflict_naming_the_line_on_aws() {
        super::a_price_change_racing_a_checkout_is_a_conflict_naming_the_line(true).await
    }
}
