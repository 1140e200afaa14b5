//! Events that are never lost: an order's event is written in the checkout's
//! own transaction, survives a crash before the relay hands it off and a
//! crash between hand-off and acknowledgement (delivered twice), and the
//! worker applies it exactly once (one notification, one sale, one mail)
//! while a poison message in the same batch alone fails. Both backends.

use std::time::Duration;

use serde_json::{json, Value};
use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User};
use shared::orders::{self, NewOrder};
use shared::repo::idempotency::{self, IdempotencyKey};
use shared::repo::{notifications, outbox, sales};
use shared::tokens::Claims;

use crate::helpers::{unique_email, StateFixture};

async fn account(state: &shared::AppState, role: Role) -> User {
    let password = Password::parse("correct horse battery".into()).unwrap();
    let user = User {
        email_verified: true,
        ..User::new(
            Email::parse(&unique_email("outbox")).unwrap(),
            DisplayName::parse("Kim").unwrap(),
            role,
            PasswordHash::create(&password),
            time::OffsetDateTime::now_utc(),
        )
    };
    shared::repo::users::create(state.store.as_ref(), &user).await.unwrap();
    user
}

fn claims(user: &User) -> Claims {
    Claims {
        sub: user.id.to_string(),
        role: user.role,
        sid: "s".into(),
        iat: 0,
        exp: i64::MAX,
        iss: shared::tokens::ISSUER.into(),
        aud: shared::tokens::AUDIENCE.into(),
    }
}

fn sqs_event(messages: &[(String, String)]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| json!({"messageId": id, "receiptHandle": format!("r-{id}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

async fn an_event_survives_crashes_and_takes_effect_once(fixture: StateFixture) {
    let state = fixture.state.clone();
    let store = state.store.as_ref();
    let jobs = state.jobs.clone().unwrap();
    let farmer = account(&state, Role::Farmer).await;
    let customer = account(&state, Role::Customer).await;
    let category = shared::catalogue::create_category(
        &state,
        serde_json::from_value(json!({ "name": format!("Outbox {}", ulid::Ulid::new()) })).unwrap(),
    )
    .await
    .unwrap();
    let new: shared::catalogue::NewProduct = serde_json::from_value(
        json!({"name": "Leeks", "categoryId": category.id, "price": 150, "unit": "bunch", "stock": 10}),
    )
    .unwrap();
    let product = shared::catalogue::create_product(&state, farmer.id, new, None).await.unwrap().product;
    let cart: NewOrder =
        serde_json::from_value(json!({ "lines": [{"productId": product.id, "quantity": 3}] })).unwrap();
    let key = IdempotencyKey::parse("outbox-test").unwrap();
    let fingerprint = idempotency::fingerprint(b"{}");
    let placed = orders::checkout(&state, &claims(&customer), cart, &key, &fingerprint).await.unwrap();
    assert!(jobs.receive(10, Duration::ZERO).await.unwrap().is_empty(), "nothing left the outbox yet");

    // Crash 1: the process dies after the commit, before any hand-off: the
    // event waits in the outbox.
    let pending = outbox::pending(store, 10).await.unwrap();
    assert_eq!(pending.len(), 1, "one event per order, committed with it");
    // Crash 2: after the restart, the relay hands it off and dies before
    // acknowledging it; the next relay hands it off again.
    outbox::hand_off(jobs.as_ref(), &pending[0]).await.unwrap();
    assert_eq!(outbox::relay(store, jobs.as_ref()).await.unwrap(), 1);
    assert!(outbox::pending(store, 10).await.unwrap().is_empty());
    let delivered = jobs.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(delivered.len(), 2, "delivered twice");
    assert_eq!(delivered[0].body, delivered[1].body);

    // The worker: both copies and a poison message in one batch.
    let mut batch: Vec<(String, String)> =
        delivered.iter().enumerate().map(|(i, m)| (format!("copy-{i}"), m.body.clone())).collect();
    batch.push(("poison".into(), "{\"job\": \"orderPlaced\", \"nonsense\": true}".into()));
    let response = worker::handle(&state, sqs_event(&batch)).await;
    let failed: Vec<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    assert_eq!(failed, ["poison"], "only the poison message fails");

    // Exactly once: one notification, one sale, one mail on its way.
    let (notes, _) = notifications::list(store, &notifications::list_query(farmer.id)).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].order_id, Some(placed.orders[0].id));
    assert_eq!(notifications::unread(store, farmer.id).await.unwrap(), 1);
    let today = shared::domain::format_date(time::OffsetDateTime::now_utc().date());
    let days = sales::range(store, farmer.id, &today, &today).await.unwrap();
    assert_eq!((days.len(), days[0].orders, days[0].units, days[0].revenue), (1, 1, 3, 450));
    for message in &delivered {
        jobs.delete(&message.receipt).await.unwrap();
    }
    assert_eq!(outbox::relay(store, jobs.as_ref()).await.unwrap(), 1, "one mail job, relayed once");
    let mails = jobs.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].body.contains("\"sendEmail\"") && mails[0].body.contains("New order"), "{}", mails[0].body);
}

crate::helpers::scenarios!(
    using embedded_fixture;
    embedded: [
        an_event_survives_crashes_and_takes_effect_once,
    ],
);
