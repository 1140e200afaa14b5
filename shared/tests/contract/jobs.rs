//! The job queue contract: send and receive, visibility timeouts and receive
//! counts, deletion, and stale receipts.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::Backend;

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_secs(1);
/// Comfortably past `SHORT`, for the message to be visible again.
const AFTER_SHORT: Duration = Duration::from_millis(1600);

pub async fn an_empty_queue_receives_nothing<B: Backend>() {
    let jobs = B::jobs().await;
    assert!(jobs.receive(10, LONG).await.unwrap().is_empty());
}

pub async fn a_sent_message_is_received_with_its_id_and_body<B: Backend>() {
    let jobs = B::jobs().await;
    let id = jobs.send(r#"{"type":"order.placed","orderId":"01J"}"#).await.unwrap();
    let received = jobs.receive(10, LONG).await.unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].id, id);
    assert_eq!(received[0].body, r#"{"type":"order.placed","orderId":"01J"}"#);
    assert_eq!(received[0].receive_count, 1);
    assert!(!received[0].receipt.is_empty());
}

pub async fn a_received_message_is_hidden_until_its_visibility_lapses<B: Backend>() {
    let jobs = B::jobs().await;
    let id = jobs.send("hello").await.unwrap();
    let first = jobs.receive(1, SHORT).await.unwrap().remove(0);
    assert!(jobs.receive(10, SHORT).await.unwrap().is_empty(), "hidden while in flight");
    tokio::time::sleep(AFTER_SHORT).await;
    let again = jobs.receive(1, LONG).await.unwrap();
    assert_eq!(again.len(), 1, "visible again after the timeout");
    assert_eq!((again[0].id.as_str(), again[0].receive_count), (id.as_str(), 2));
    assert_eq!(first.id, id);
    assert_ne!(again[0].receipt, first.receipt, "every receive issues a new receipt");
}

pub async fn a_deleted_message_is_not_received_again<B: Backend>() {
    let jobs = B::jobs().await;
    jobs.send("done soon").await.unwrap();
    let message = jobs.receive(1, SHORT).await.unwrap().remove(0);
    jobs.delete(&message.receipt).await.unwrap();
    tokio::time::sleep(AFTER_SHORT).await;
    assert!(jobs.receive(10, LONG).await.unwrap().is_empty());
}

pub async fn a_stale_receipt_is_not_an_error<B: Backend>() {
    let jobs = B::jobs().await;
    jobs.send("twice").await.unwrap();
    let first = jobs.receive(1, SHORT).await.unwrap().remove(0);
    tokio::time::sleep(AFTER_SHORT).await;
    let second = jobs.receive(1, LONG).await.unwrap().remove(0);
    jobs.delete(&first.receipt).await.unwrap();
    jobs.delete(&second.receipt).await.unwrap();
    jobs.delete(&second.receipt).await.unwrap();
}

pub async fn receive_returns_at_most_max_and_each_message_once<B: Backend>() {
    let jobs = B::jobs().await;
    let mut sent = HashSet::new();
    for i in 0..5 {
        sent.insert(jobs.send(&format!("job {i}")).await.unwrap());
    }
    let mut received = HashSet::new();
    for _ in 0..20 {
        let batch = jobs.receive(2, LONG).await.unwrap();
        assert!(batch.len() <= 2, "{batch:?}");
        for message in batch {
            assert!(received.insert(message.id), "received twice while in flight");
        }
        if received.len() == sent.len() {
            break;
        }
    }
    assert_eq!(received, sent);
    assert!(jobs.receive(10, LONG).await.unwrap().is_empty());
}
