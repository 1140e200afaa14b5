//! Upload tickets and the image slots they hold, on both backends: a farmer
//! asking for a whole selection of photos at once gets every ticket the free
//! slots allow and a clear 409 for the rest (never a spurious "busy"); a ticket
//! stops holding its slot when its hold lapses or when the worker consumes its
//! upload (also when a redelivery finds that an earlier delivery deleted the
//! upload but not the ticket).

use std::sync::{Arc, Mutex};

use futures::future::join_all;
use serde_json::{json, Value};
use shared::catalogue::{self, CatalogueError, ImageUpload};
use shared::domain::{ProductId, Role, MAX_IMAGES_PER_PRODUCT};
use shared::ports::Clock;
use shared::repo::products::{self, TICKET_HOLDS_SLOT_SECS};
use shared::tokens::Claims;
use time::OffsetDateTime;

use crate::helpers::{access_token, assert_problem, scenarios, unique_email, StateFixture, TestApp};

/// A new farmer's listed product over HTTP; returns (farmer token, product path).
async fn farmer_product(app: &TestApp, category: &Value) -> (String, String) {
    let farmer = access_token(&app.register(&unique_email("flo"), "farmer").await);
    let body = json!({"name": "Basil", "categoryId": category["id"], "price": 150, "unit": "bunch", "stock": 9});
    let product: Value = app.post("/products", &body, Some(&farmer)).await.json().await.unwrap();
    (farmer, format!("/products/{}", product["id"].as_str().unwrap()))
}

/// Twice as many tickets as slots, asked for at the same moment (a browser
/// uploading a selection of photos): exactly the free slots are issued, and
/// every refusal says the slots are taken. Three farmers in turn, as whether
/// requests collide depends on scheduling.
async fn a_burst_of_ticket_requests_for_one_product_gets_exactly_its_free_slots(app: TestApp) {
    let admin = app.admin_token().await;
    let category: Value = app.post("/categories", &json!({"name": "Herbs"}), Some(&admin)).await.json().await.unwrap();
    for _ in 0..3 {
        let (farmer, product) = farmer_product(&app, &category).await;
        let path = format!("{product}/images");
        let body = json!({"contentType": "image/jpeg", "size": 2048});
        let burst = (0..2 * MAX_IMAGES_PER_PRODUCT).map(|_| app.post(&path, &body, Some(&farmer)));
        let mut issued = 0;
        let mut refusals = Vec::new();
        for response in join_all(burst).await {
            if response.status() == 201 {
                issued += 1;
            } else {
                let problem = assert_problem(response, 409).await;
                refusals.push(problem["detail"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(issued, MAX_IMAGES_PER_PRODUCT, "refusals: {refusals:?}");
        assert!(refusals.iter().all(|detail| detail.contains("8 uploads in progress")), "{refusals:?}");
    }
}

scenarios!(
    embedded: [
        a_burst_of_ticket_requests_for_one_product_gets_exactly_its_free_slots,
    ],
);

/// A clock the test moves.
struct ManualClock(Mutex<OffsetDateTime>);

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// The claims of the product's farmer, whose account this stores (tickets go
/// by the stored account's role).
async fn farmer_claims(state: &shared::AppState, product: &shared::domain::Product) -> Claims {
    use shared::domain::{DisplayName, Email, PasswordHash, User};
    let account = User::new(
        Email::parse(&unique_email("flo")).unwrap(),
        DisplayName::parse("Flo").unwrap(),
        Role::Farmer,
        PasswordHash::from_stored("never used".into()),
        OffsetDateTime::now_utc(),
    );
    let account = User { id: product.farmer_id, ..account };
    shared::repo::users::create(state.store.as_ref(), &account).await.unwrap();
    Claims {
        sub: product.farmer_id.to_string(),
        role: Role::Farmer,
        sid: String::new(),
        iat: 0,
        exp: 0,
        iss: String::new(),
        aud: String::new(),
    }
}

async fn ask(state: &shared::AppState, caller: &Claims, product: ProductId) -> Result<(), CatalogueError> {
    let upload = ImageUpload { content_type: "image/png".into(), size: 500 };
    catalogue::issue_image_upload(state, caller, &product.to_string(), upload).await.map(|_| ())
}

async fn a_ticket_stops_holding_its_slot_once_its_hold_lapses_or_its_upload_is_consumed(fixture: StateFixture) {
    let mut state = fixture.state.clone();
    let start = OffsetDateTime::now_utc();
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    state.clock = clock.clone();
    let product = crate::worker::listed_product(&state).await;
    let farmer = farmer_claims(&state, &product).await;
    for _ in 0..MAX_IMAGES_PER_PRODUCT {
        ask(&state, &farmer, product.id).await.unwrap();
    }
    let full = ask(&state, &farmer, product.id).await;
    assert!(matches!(full, Err(CatalogueError::Conflict(_))), "{full:?}");

    // Just before the holds lapse, the slots are still taken; just after, free.
    *clock.0.lock().unwrap() = start + time::Duration::seconds(TICKET_HOLDS_SLOT_SECS - 1);
    let full = ask(&state, &farmer, product.id).await;
    assert!(matches!(full, Err(CatalogueError::Conflict(_))), "{full:?}");
    *clock.0.lock().unwrap() = start + time::Duration::seconds(TICKET_HOLDS_SLOT_SECS + 1);
    for _ in 0..MAX_IMAGES_PER_PRODUCT {
        ask(&state, &farmer, product.id).await.unwrap();
    }
    let full = ask(&state, &farmer, product.id).await;
    assert!(matches!(full, Err(CatalogueError::Conflict(_))), "{full:?}");

    // The worker consumes an upload that fails its checks: its slot is free again.
    let now = clock.now().unix_timestamp();
    let held = products::reservations(state.store.as_ref(), product.id, now).await.unwrap();
    assert_eq!(held.open.len(), MAX_IMAGES_PER_PRODUCT);
    let (image_id, _) = held.open[0];
    let key = products::upload_object_key(product.id, image_id);
    let blobs = state.blobs.as_ref().unwrap();
    blobs.put(&key, bytes::Bytes::from_static(b"not a png, and not 500 bytes"), "image/png").await.unwrap();
    let outcome = worker::process_upload(&state, &key).await.unwrap();
    assert!(matches!(outcome, worker::Outcome::Rejected(_)), "{outcome:?}");
    ask(&state, &farmer, product.id).await.unwrap();
    let full = ask(&state, &farmer, product.id).await;
    assert!(matches!(full, Err(CatalogueError::Conflict(_))), "{full:?}");
}

/// The upload is gone but its ticket is not (an earlier delivery deleted the
/// upload and then failed before freeing the ticket): the redelivery frees it.
async fn a_redelivery_finding_the_upload_gone_frees_the_tickets_slot(fixture: StateFixture) {
    let state = fixture.state;
    let product = crate::worker::listed_product(&state).await;
    let key = crate::worker::upload_for(&state, product.id).await;
    state.blobs.as_ref().unwrap().delete(&key).await.unwrap();
    let outcome = worker::process_upload(&state, &key).await.unwrap();
    assert_eq!(outcome, worker::Outcome::AlreadyHandled);
    let (_, image_id) = products::parse_upload_object_key(&key).unwrap();
    assert!(products::get_ticket(state.store.as_ref(), image_id).await.unwrap().is_none());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let held = products::reservations(state.store.as_ref(), product.id, now).await.unwrap();
    assert!(held.open.is_empty(), "{:?}", held.open);
}

mod slots {
    use super::*;

    scenarios!(
        using embedded_fixture;
        embedded: [
            a_ticket_stops_holding_its_slot_once_its_hold_lapses_or_its_upload_is_consumed,
            a_redelivery_finding_the_upload_gone_frees_the_tickets_slot,
        ],
    );
}
